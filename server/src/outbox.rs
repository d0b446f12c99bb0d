//! A shard's outbox to the pipeline thread: messages from every connection task
//! gather in a local queue, and one forwarding task sends them across as a single
//! batch once the tasks that were ready ahead of it have run.
//!
//! Why: a cross-thread send that finds the pipeline asleep costs a futex wake and
//! a context switch. Sent per request, that doubled the system calls of a write;
//! sent per batch, it is paid once for every request a reactor turn brought in.
//!
//! Order: messages leave in the order they were queued, so one connection's
//! requests reach the pipeline in the order it sent them. Latency: the forwarder
//! is woken by the first message of a batch and runs at the end of the current
//! round of ready tasks; nothing waits for a timer.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::mpsc::Sender;
use std::task::{Poll, Waker};

use crate::message::ToPipeline;

pub struct Outbox {
    queue: RefCell<Vec<ToPipeline>>,
    /// The forwarder, while it waits for a first message.
    forwarder: Cell<Option<Waker>>,
    pipeline: Sender<Vec<ToPipeline>>,
}

impl Outbox {
    pub fn new(pipeline: Sender<Vec<ToPipeline>>) -> Outbox {
        Outbox {
            queue: RefCell::new(Vec::new()),
            forwarder: Cell::new(None),
            pipeline,
        }
    }

    /// Queues `msg` for the next batch. Messages queued after the pipeline has
    /// gone (shutdown) are dropped with the outbox.
    pub fn send(&self, msg: ToPipeline) {
        self.queue.borrow_mut().push(msg);
        if let Some(waker) = self.forwarder.take() {
            waker.wake();
        }
    }

    /// Forwards batches until the pipeline is gone. Run as its own task on the
    /// shard's executor.
    pub async fn forward(&self) {
        loop {
            poll_fn(|cx| {
                if self.queue.borrow().is_empty() {
                    self.forwarder.set(Some(cx.waker().clone()));
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            let batch = std::mem::take(&mut *self.queue.borrow_mut());
            if self.pipeline.send(batch).is_err() {
                return;
            }
        }
    }
}
