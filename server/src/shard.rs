//! A shard's state on its own thread, shared by its connections: the tree and
//! configuration, its counters, the outbox to the pipeline, its watch table, and
//! how far it has dispatched the pipeline's `Committed` messages. The
//! connections themselves belong to the executor ([`crate::executor`]), which
//! dispatches those messages; this state names connections by id only.
//!
//! A read reply that may reflect a transaction the shard has not dispatched yet
//! is held until it has (see `conn`), so a change's notification always goes out
//! before a reply that shows the change.

use std::cell::{Cell, Ref, RefCell};
use std::sync::Arc;

use engine::tree::DataTree;
use engine::Zxid;

use crate::config::Config;
use crate::message::ConnId;
use crate::outbox::Outbox;
use crate::stats::{Counters, Latencies, Shared};
use crate::watch::WatchTable;

pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub tree: Arc<DataTree>,
    pub shared: Arc<Shared>,
    pub counters: Arc<Counters>,
    /// This shard's request latencies (`readlatency`, `updatelatency`).
    pub latencies: RefCell<Latencies>,
    /// Requests slower than `herd.slowRequestWarningMs` since the last warning.
    slow: Cell<SlowRequests>,
    pub to_pipeline: Outbox,
    pub watches: RefCell<WatchTable>,
    /// Connections with client activity since the last flush to the tracker.
    touched: RefCell<Vec<ConnId>>,
    /// Every transaction up to this zxid has been dispatched here.
    seen_through: Cell<Zxid>,
    /// Connections with replies held back for transactions not yet seen.
    holding: RefCell<Vec<ConnId>>,
    /// Connections whose next read waits for a `Committed` (see `read::InFlight`).
    parked: RefCell<Vec<ConnId>>,
}

/// What a shard has seen of slow requests since it last warned.
#[derive(Clone, Copy, Default)]
struct SlowRequests {
    count: u64,
    slowest_us: u64,
    slowest_update: bool,
    warned: Option<std::time::Instant>,
}

impl SlowRequests {
    /// Counts a slow request of `us` µs answered at `now`. Returns what to warn
    /// about (the requests counted since the last warning, this one included)
    /// if there was no warning yet or the last is a second old, and starts
    /// counting afresh; `None` while warnings are held back.
    fn note(&mut self, us: u64, update: bool, now: std::time::Instant) -> Option<SlowRequests> {
        self.count += 1;
        if us > self.slowest_us {
            (self.slowest_us, self.slowest_update) = (us, update);
        }
        let recent = self
            .warned
            .is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1));
        if recent {
            return None;
        }
        let report = *self;
        *self = SlowRequests {
            warned: Some(now),
            ..SlowRequests::default()
        };
        Some(report)
    }
}

impl Shard {
    /// Counts a request that arrived at `started` and is answered now: in the
    /// shard's counters (`srvr`'s latency) and its read or update latencies.
    pub fn record_latency(&self, started: std::time::Instant, update: bool) {
        let us = started.elapsed().as_micros() as u64;
        self.counters.record_latency(us);
        let mut latencies = self.latencies.borrow_mut();
        let histogram = if update {
            &mut latencies.update
        } else {
            &mut latencies.read
        };
        histogram.saturating_record(us);
        drop(latencies);
        let threshold = self.config.slow_request_warning_ms.saturating_mul(1000);
        if threshold > 0 && us > threshold {
            self.note_slow(us, update);
        }
    }

    /// Counts a slow request; at most once a second per shard, logs how many
    /// there were since the last warning and the slowest, so that an
    /// overloaded server does not also flood its log.
    fn note_slow(&self, us: u64, update: bool) {
        let mut slow = self.slow.get();
        let report = slow.note(us, update, std::time::Instant::now());
        self.slow.set(slow);
        if let Some(r) = report {
            crate::warn!(
                "shard {}: {} requests slower than herd.slowRequestWarningMs ({} ms) since \
                 the last warning; the slowest, a {}, took {} ms",
                self.index,
                r.count,
                self.config.slow_request_warning_ms,
                if r.slowest_update { "write" } else { "read" },
                r.slowest_us / 1000
            );
        }
    }

    pub fn new(
        index: usize,
        config: Arc<Config>,
        tree: Arc<DataTree>,
        shared: Arc<Shared>,
        to_pipeline: Outbox,
    ) -> Shard {
        Shard {
            index,
            counters: shared.shards[index].clone(),
            latencies: RefCell::new(Latencies::default()),
            slow: Cell::new(SlowRequests::default()),
            seen_through: Cell::new(tree.last_zxid()),
            holding: RefCell::new(Vec::new()),
            parked: RefCell::new(Vec::new()),
            config,
            tree,
            shared,
            to_pipeline,
            watches: RefCell::new(WatchTable::default()),
            touched: RefCell::new(Vec::new()),
        }
    }

    /// The zxid through which this shard has dispatched every transaction.
    pub fn seen_through(&self) -> Zxid {
        self.seen_through.get()
    }

    /// Notes that every transaction through `zxid` has been dispatched.
    pub fn dispatched(&self, zxid: Zxid) {
        self.seen_through.set(zxid);
    }

    /// Remembers that `conn` holds replies waiting for a later `Committed`.
    pub fn hold(&self, conn: ConnId) {
        self.holding.borrow_mut().push(conn);
    }

    /// The connections holding replies.
    pub fn holding(&self) -> Ref<'_, [ConnId]> {
        Ref::map(self.holding.borrow(), Vec::as_slice)
    }

    /// Takes the connections holding replies, to release what they can
    /// (those still holding [`Shard::hold`] again).
    pub fn take_holding(&self) -> Vec<ConnId> {
        std::mem::take(&mut *self.holding.borrow_mut())
    }

    /// Remembers that `conn`'s next read waits for the next `Committed`.
    pub fn park(&self, conn: ConnId) {
        self.parked.borrow_mut().push(conn);
    }

    /// Takes the connections whose reads waited for a `Committed`, to retry them.
    pub fn take_parked(&self) -> Vec<ConnId> {
        std::mem::take(&mut *self.parked.borrow_mut())
    }

    /// Notes client activity on `conn` (once between two flushes); sent to the
    /// session tracker in batches.
    pub fn touch(&self, conn: ConnId) {
        self.touched.borrow_mut().push(conn);
    }

    /// Takes the connections touched since the last flush.
    pub fn take_touched(&self) -> Vec<ConnId> {
        std::mem::take(&mut *self.touched.borrow_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn slow_requests_are_reported_at_most_once_a_second() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut slow = SlowRequests::default();
        // (at ms, µs, a write, reported: count, slowest µs, slowest a write)
        type Report = Option<(u64, u64, bool)>;
        let table: [(u64, u64, bool, Report); 6] = [
            (0, 1_500_000, false, Some((1, 1_500_000, false))),
            (200, 2_000_000, true, None),
            (900, 1_200_000, false, None),
            (1_000, 1_100_000, false, Some((3, 2_000_000, true))),
            (1_999, 3_000_000, false, None),
            (2_500, 1_000_001, true, Some((2, 3_000_000, false))),
        ];
        for (ms, us, update, want) in table {
            let got = slow
                .note(us, update, at(ms))
                .map(|r| (r.count, r.slowest_us, r.slowest_update));
            assert_eq!(got, want, "at {ms} ms");
        }
    }
}
