//! A standalone server's pipeline, run on shard 0's executor instead of a
//! thread of its own: the hosting shard's outbox hands it each batch
//! directly, and what other threads send it (the other shards' batches, the
//! log writer's durable reports, stop) arrives through its
//! [`inbox`](crate::inbox), rung only while it waits. A write then crosses
//! no thread between its shard and the pipeline, and the pipeline never
//! preempts the shard: on one core that was a context switch or two per
//! batch, with the wake-ups that caused them.
//!
//! Invariants:
//! - the pipeline is borrowed only inside a synchronous handling step, never
//!   across an await, and handling sends nothing that is handled at once,
//!   so no step runs inside another;
//! - messages are handled in the order each sender queued them, as on the
//!   pipeline's own thread;
//! - once `Stop` is handled (or every sender is gone) the pipeline is
//!   dropped, which closes every shard's inbox and stops the log writer;
//!   later batches are refused.

use std::cell::RefCell;
use std::rc::Rc;

use crate::inbox::ShardInbox;
use crate::message::ToPipeline;
use crate::outbox::Deliver;
use crate::pipeline::{Pipeline, MAX_BATCH};

/// The pipeline on its shard, until it stops.
#[derive(Clone)]
pub struct Hosted(Rc<RefCell<Option<Pipeline>>>);

impl Hosted {
    /// Hosts `pipeline` on the calling executor and does what comes before
    /// serving.
    pub fn new(mut pipeline: Pipeline) -> Hosted {
        pipeline.start();
        Hosted(Rc::new(RefCell::new(Some(pipeline))))
    }

    /// The hosting shard's outbox delivery.
    pub fn deliver(&self) -> Deliver {
        let hosted = self.clone();
        Box::new(move |mut batch| hosted.handle(&mut batch))
    }

    /// Handles what other threads send and runs the periodic checks, until
    /// the pipeline stops. Run as a task on the hosting executor.
    pub async fn serve(self, mut inbox: ShardInbox<Vec<ToPipeline>>, tick: std::time::Duration) {
        let checks = {
            let hosted = self.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(tick).await;
                    if !hosted.handle(&mut Vec::new()) {
                        return;
                    }
                }
            })
        };
        let mut batch = Vec::new();
        while let Some(msgs) = inbox.recv().await {
            batch.extend(msgs);
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Some(more) => batch.extend(more),
                    None => break,
                }
            }
            if !self.handle(&mut batch) {
                break;
            }
        }
        self.0.borrow_mut().take();
        drop(checks);
    }

    /// One handling step; false once the pipeline has stopped.
    fn handle(&self, batch: &mut Vec<ToPipeline>) -> bool {
        let mut slot = self.0.borrow_mut();
        let Some(pipeline) = slot.as_mut() else {
            return false;
        };
        if pipeline.handle(batch) {
            return true;
        }
        *slot = None;
        false
    }
}
