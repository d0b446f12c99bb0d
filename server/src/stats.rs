//! Counters behind the four-letter words (`srvr`, `mntr`, `cons`, ...). Each
//! shard writes its own atomics; readers sum them. Connection records live in a
//! registry touched only on connect and close, never per request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::message::ConnId;

/// Start-up timings (ZooKeeper's `startup_*` metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct Startup {
    pub snap_load_ms: u64,
    pub txns_load_ms: u64,
    pub txns_loaded: u64,
}

/// Request latency and packet counters (one per shard).
#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_sum_us: AtomicU64,
    pub latency_min_us: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub auth_failed: AtomicU64,
}

impl Counters {
    pub fn record_latency(&self, us: u64) {
        if self.latency_count.fetch_add(1, Relaxed) == 0 {
            self.latency_min_us.store(us, Relaxed);
        } else {
            self.latency_min_us.fetch_min(us, Relaxed);
        }
        self.latency_sum_us.fetch_add(us, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
    }

    pub fn reset(&self) {
        for c in [
            &self.received,
            &self.sent,
            &self.latency_count,
            &self.latency_sum_us,
            &self.latency_min_us,
            &self.latency_max_us,
        ] {
            c.store(0, Relaxed);
        }
    }
}

/// One client connection as `cons` shows it.
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub session: AtomicI64,
    pub timeout_ms: AtomicI64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub last_zxid: AtomicI64,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            session: AtomicI64::new(0),
            timeout_ms: AtomicI64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_zxid: AtomicI64::new(-1),
        }
    }
}

/// Storage statistics for `mntr`: the log writer's group commits (records per
/// batch, microseconds per write + fdatasync, recorded once per batch), snapshot
/// writes (milliseconds each) and what start-up took.
pub struct StorageStats {
    pub batch_records: hdrhistogram::Histogram<u64>,
    pub sync_us: hdrhistogram::Histogram<u64>,
    pub snapshot_ms: hdrhistogram::Histogram<u64>,
    pub startup: Startup,
    /// Batches slower than `fsync.warningthresholdms`.
    pub fsync_threshold_exceeded: u64,
}

/// An empty histogram of 3 significant figures.
fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new(3).expect("3 significant figures is valid")
}

impl Default for StorageStats {
    fn default() -> Self {
        StorageStats {
            batch_records: histogram(),
            sync_us: histogram(),
            snapshot_ms: histogram(),
            startup: Startup::default(),
            fsync_threshold_exceeded: 0,
        }
    }
}

/// The latencies of the requests one shard answered, in µs, as ZooKeeper's
/// `readlatency` (everything answered locally: reads, pings, auth) and
/// `updatelatency` (writes, answered once committed) summaries count them.
/// A shard keeps its own and records into it with no lock and no atomics;
/// metrics ask for a copy (see [`ShardQuery`]).
#[derive(Clone)]
pub struct Latencies {
    pub read: hdrhistogram::Histogram<u64>,
    pub update: hdrhistogram::Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        // Two significant figures (1%): 64 KiB per histogram up to an hour.
        let h = || {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds")
        };
        Latencies {
            read: h(),
            update: h(),
        }
    }
}

impl Latencies {
    /// Adds `other`'s counts into these.
    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on every shard: adding cannot fail.
        let _ = self.read.add(&other.read);
        let _ = self.update.add(&other.update);
    }
}

/// What the operations side (four-letter words, the HTTP endpoints) asks of a
/// shard, over a channel its executor answers between requests.
pub enum ShardQuery {
    /// (path, session) of every watch the shard holds.
    Watches(async_channel::Sender<Vec<(String, i64)>>),
    /// A copy of the shard's [`Latencies`].
    Latencies(async_channel::Sender<Latencies>),
    /// Clear them (`srst`, `stat_reset`).
    ResetLatencies,
}

/// State every shard shares.
pub struct Shared {
    pub storage: Mutex<StorageStats>,
    /// The client port actually bound (differs from the config's when that is 0).
    pub client_port: std::sync::atomic::AtomicU16,
    /// Where to ask each shard for its watches and latencies.
    pub queries: Vec<async_channel::Sender<ShardQuery>>,
    pub started: Instant,
    pub shards: Vec<Arc<Counters>>,
    pub conns: Mutex<HashMap<ConnId, Arc<ConnInfo>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// How the server serves: one of the `MODE_` codes.
    pub mode: std::sync::atomic::AtomicU8,
    /// An ensemble member's view of its quorum (mntr's quorum rows).
    pub quorum: Mutex<Option<QuorumStats>>,
    /// A member's elections: milliseconds from looking to following or
    /// leading (ZooKeeper's `election_time`; observers record none).
    pub elections: Mutex<hdrhistogram::Histogram<u64>>,
    /// The proposals of this member's current leadership.
    pub proposal_sizes: ProposalSizes,
}

/// Sizes in bytes of the proposals a leader broadcast, as ZooKeeper's
/// `Proposal sizes last/min/max` (srvr, stat) and `zk_*_proposal_size` (mntr):
/// -1 until the first, and again after `srst` or at a new leadership. Only the
/// member's thread records, so the three need not change together.
pub struct ProposalSizes {
    last: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

impl ProposalSizes {
    fn new() -> ProposalSizes {
        ProposalSizes {
            last: AtomicI64::new(-1),
            min: AtomicI64::new(-1),
            max: AtomicI64::new(-1),
        }
    }

    pub fn record(&self, bytes: usize) {
        let n = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.last.store(n, Relaxed);
        let min = self.min.load(Relaxed);
        if min == -1 || n < min {
            self.min.store(n, Relaxed);
        }
        self.max.fetch_max(n, Relaxed);
    }

    pub fn reset(&self) {
        for v in [&self.last, &self.min, &self.max] {
            v.store(-1, Relaxed);
        }
    }

    /// (last, min, max).
    pub fn get(&self) -> (i64, i64, i64) {
        (
            self.last.load(Relaxed),
            self.min.load(Relaxed),
            self.max.load(Relaxed),
        )
    }
}

/// What mntr reports of a member's quorum, as ZooKeeper names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumStats {
    /// `looking`, or `leading|following|observing - discovery|synchronization|broadcast`.
    pub peer_state: &'static str,
    /// The voting members (ZooKeeper's voting view).
    pub quorum_size: usize,
    /// A leader's learners.
    pub learners: engine::zab::broadcast::LearnerCounts,
    /// The learners it synchronised as leader, by kind.
    pub syncs: engine::zab::sync::SyncCounts,
}

/// [`Shared::mode`] codes.
pub const MODE_STANDALONE: u8 = 0;
pub const MODE_NOT_SERVING: u8 = 1;
pub const MODE_LEADER: u8 = 2;
pub const MODE_FOLLOWER: u8 = 3;
pub const MODE_OBSERVER: u8 = 4;

impl Shared {
    pub fn new(queries: Vec<async_channel::Sender<ShardQuery>>) -> Shared {
        let shards = queries.len();
        Shared {
            storage: Mutex::new(StorageStats::default()),
            client_port: std::sync::atomic::AtomicU16::new(0),
            queries,
            started: Instant::now(),
            shards: (0..shards).map(|_| Arc::new(Counters::default())).collect(),
            conns: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            mode: std::sync::atomic::AtomicU8::new(MODE_STANDALONE),
            quorum: Mutex::new(None),
            elections: Mutex::new(histogram()),
            proposal_sizes: ProposalSizes::new(),
        }
    }

    /// The mode `srvr`, `stat` and `mntr` report (`standalone`, `leader`,
    /// `follower`, `observer`); `None` while an ensemble member does not serve.
    pub fn mode(&self) -> Option<&'static str> {
        match self.mode.load(std::sync::atomic::Ordering::Relaxed) {
            MODE_STANDALONE => Some("standalone"),
            MODE_LEADER => Some("leader"),
            MODE_FOLLOWER => Some("follower"),
            MODE_OBSERVER => Some("observer"),
            _ => None,
        }
    }

    /// Counts a new connection from `ip`; false when that would exceed `max` (0 = no limit).
    pub fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        let n = per_ip.entry(ip).or_default();
        if max != 0 && *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Every watch on every shard as (path, session), sorted.
    pub async fn watches(&self) -> Vec<(String, i64)> {
        let mut all: Vec<_> = self
            .ask(ShardQuery::Watches)
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort();
        all
    }

    /// Every shard's request latencies, added up.
    pub async fn latencies(&self) -> Latencies {
        let mut all = Latencies::default();
        for part in self.ask(ShardQuery::Latencies).await {
            all.add(&part);
        }
        all
    }

    /// `srst`, `stat_reset`: clears the request and packet counters, the
    /// proposal sizes and every shard's request latencies.
    pub async fn reset_server_stats(&self) {
        for c in &self.shards {
            c.reset();
        }
        self.proposal_sizes.reset();
        for q in &self.queries {
            let _ = q.send(ShardQuery::ResetLatencies).await;
        }
    }

    /// `crst`, `connection_stat_reset`: clears every connection's packet counts.
    pub fn reset_connection_stats(&self) {
        for c in self.conns.lock().expect("conns lock").values() {
            c.received.store(0, Relaxed);
            c.sent.store(0, Relaxed);
        }
    }

    /// Each shard's answer to the query `make` builds around a reply channel
    /// (shards that stopped do not answer).
    async fn ask<T>(&self, make: impl Fn(async_channel::Sender<T>) -> ShardQuery) -> Vec<T> {
        let (tx, rx) = async_channel::bounded(self.queries.len().max(1));
        let mut asked = 0;
        for q in &self.queries {
            if q.send(make(tx.clone())).await.is_ok() {
                asked += 1;
            }
        }
        let mut answers = Vec::new();
        for _ in 0..asked {
            match rx.recv().await {
                Ok(answer) => answers.push(answer),
                Err(_) => break,
            }
        }
        answers
    }

    pub fn set_startup(&self, startup: Startup) {
        if let Ok(mut stats) = self.storage.lock() {
            stats.startup = startup;
        }
    }

    /// Sum of one counter over all shards.
    pub fn total(&self, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|c| f(c).load(Relaxed)).sum()
    }

    /// (min, avg, max) request latency in milliseconds.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let count = self.total(|c| &c.latency_count);
        if count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let min = self
            .shards
            .iter()
            .filter(|c| c.latency_count.load(Relaxed) > 0)
            .map(|c| c.latency_min_us.load(Relaxed))
            .min()
            .unwrap_or(0);
        let max = self
            .shards
            .iter()
            .map(|c| c.latency_max_us.load(Relaxed))
            .max()
            .unwrap_or(0);
        let avg = self.total(|c| &c.latency_sum_us) as f64 / count as f64;
        (min as f64 / 1000.0, avg / 1000.0, max as f64 / 1000.0)
    }
}
