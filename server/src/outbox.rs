//! A shard's outbox to the pipeline: messages from every connection task
//! gather in a local queue, and one forwarding task hands them over as a single
//! batch once the tasks that were ready ahead of it have run: to the pipeline
//! itself when it runs on this shard, or across threads.
//!
//! Why: a cross-thread send that finds the pipeline asleep costs a wake-up and
//! a context switch. Sent per request, that doubled the system calls of a write;
//! sent per batch, it is paid once for every request a reactor turn brought in.
//!
//! Order: messages leave in the order they were queued, so one connection's
//! requests reach the pipeline in the order it sent them. Latency: the forwarder
//! is woken by the first message of a batch and runs at the end of the current
//! round of ready tasks; nothing waits for a timer.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use crate::message::ToPipeline;

/// Where a batch goes: false once the pipeline is gone.
pub type Deliver = Box<dyn FnMut(Vec<ToPipeline>) -> bool>;

pub struct Outbox {
    queue: RefCell<Vec<ToPipeline>>,
    /// The forwarder, while it waits for a first message.
    forwarder: Cell<Option<Waker>>,
    pipeline: RefCell<Deliver>,
}

impl Outbox {
    pub fn new(pipeline: Deliver) -> Outbox {
        Outbox {
            queue: RefCell::new(Vec::new()),
            forwarder: Cell::new(None),
            pipeline: RefCell::new(pipeline),
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
            if !(self.pipeline.borrow_mut())(batch) {
                return;
            }
        }
    }
}
