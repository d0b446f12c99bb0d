//! The server's metrics, named and typed as ZooKeeper's: gathered once here and
//! written out two ways, as `mntr` lines (`zk_NAME\tVALUE`, see [`crate::fourlw`])
//! and in the Prometheus text format (see [`crate::prometheus`]). Names carry no
//! `zk_` prefix; both writers keep this order, which is `mntr`'s.

use std::sync::atomic::Ordering::Relaxed;

use engine::tree::DataTree;

use crate::stats::{Latencies, Shared};

/// The ZooKeeper release whose client protocol herd serves.
pub const ZOOKEEPER_VERSION: &str = "3.9.3";

/// The version line: ZooKeeper's version first (clients parse it), herd's beside it.
pub fn version() -> String {
    format!(
        "{ZOOKEEPER_VERSION}-herd-{}, built on {}",
        env!("CARGO_PKG_VERSION"),
        env!("HERD_BUILT_ON")
    )
}

/// The node count ZooKeeper reports (`srvr`, `mntr`, the AdminServer): its
/// tree holds the root under two names, "" and "/", and counts it twice.
pub fn znode_count(tree: &DataTree) -> usize {
    tree.node_count() + 1
}

/// One metric's value.
pub enum Value {
    /// Only in `mntr` (version, server state): Prometheus has no text values.
    Text(String),
    /// A level that goes up and down (a Prometheus gauge).
    Gauge(i64),
    /// A fractional gauge, written to four decimals in `mntr`.
    Ratio(f64),
    /// A count that only grows (a Prometheus counter).
    Count(u64),
    Summary(Summary),
}

/// A distribution, in the unit ZooKeeper reports it in.
pub struct Summary {
    pub count: u64,
    /// The values' sum, rounded to a whole raw unit as ZooKeeper rounds it.
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// p50, p95, p99 and p99.9; `None` for a value recorded once.
    pub quantiles: Option<[f64; 4]>,
    /// Whether values are fractions (a histogram of µs reported in ms).
    pub fractional: bool,
}

/// The quantiles of [`Summary::quantiles`].
pub const QUANTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)];

impl Summary {
    /// `h`'s values divided by `per_unit` (1000 turns µs into ms).
    fn of(h: &hdrhistogram::Histogram<u64>, per_unit: f64) -> Summary {
        Summary {
            count: h.len(),
            sum: (h.mean() * h.len() as f64).round() / per_unit,
            mean: h.mean() / per_unit,
            min: h.min() as f64 / per_unit,
            max: h.max() as f64 / per_unit,
            quantiles: Some(QUANTILES.map(|(_, q)| h.value_at_quantile(q) as f64 / per_unit)),
            fractional: per_unit != 1.0,
        }
    }

    /// One value recorded once (ZooKeeper's start-up metrics).
    fn once(v: u64) -> Summary {
        let v = v as f64;
        Summary {
            count: 1,
            sum: v,
            mean: v,
            min: v,
            max: v,
            quantiles: None,
            fractional: false,
        }
    }
}

pub struct Metric {
    pub name: &'static str,
    pub value: Value,
}

/// One `mntr` value: a metric, or one statistic of a summary.
pub enum Flat<'a> {
    Text(&'a str),
    Int(i64),
    /// Written to four decimals in `mntr`.
    Ratio(f64),
    /// A summary's value in its unit: to three decimals if `fractional`,
    /// else whole.
    Stat {
        v: f64,
        fractional: bool,
    },
}

impl Metric {
    /// Calls `f` with each `mntr` name and value of this metric: itself, or for
    /// a summary its `avg_NAME`, min, max, p50, p95, p99, p999, cnt and sum (a
    /// value recorded once has no percentiles), as ZooKeeper's `mntr` and the
    /// AdminServer's `monitor` list them.
    pub fn flatten(&self, mut f: impl FnMut(&str, Flat)) {
        let name = self.name;
        let h = match &self.value {
            Value::Text(v) => return f(name, Flat::Text(v)),
            Value::Gauge(v) => return f(name, Flat::Int(*v)),
            Value::Count(v) => return f(name, Flat::Int(*v as i64)),
            Value::Ratio(v) => return f(name, Flat::Ratio(*v)),
            Value::Summary(h) => h,
        };
        let stat = |v: f64| Flat::Stat {
            v,
            fractional: h.fractional,
        };
        match h.quantiles {
            Some(quantiles) => {
                f(&format!("avg_{name}"), Flat::Ratio(h.mean));
                f(&format!("min_{name}"), stat(h.min));
                f(&format!("max_{name}"), stat(h.max));
                for ((label, _), v) in QUANTILES.iter().zip(quantiles) {
                    f(&format!("{label}_{name}"), stat(v));
                }
            }
            None => {
                for (label, v) in [("avg", h.mean), ("min", h.min), ("max", h.max)] {
                    f(&format!("{label}_{name}"), stat(v));
                }
            }
        }
        f(&format!("cnt_{name}"), Flat::Int(h.count as i64));
        f(&format!("sum_{name}"), stat(h.sum));
    }
}

/// Every metric of this server now, the shards asked for their watch count and
/// request latencies (what `mntr`, Prometheus and `monitor` show).
pub async fn current(shared: &Shared, tree: &DataTree) -> Vec<Metric> {
    let watches = shared.watches().await.len();
    let latencies = shared.latencies().await;
    gather(shared, tree, watches, Some(&latencies))
}

/// Every metric of this server now; `watch_count` is the number of watches on
/// all shards and `latencies` their request latencies (both asked of them by
/// the caller; without latencies, `readlatency` and `updatelatency` are left out).
pub fn gather(
    shared: &Shared,
    tree: &DataTree,
    watch_count: usize,
    latencies: Option<&Latencies>,
) -> Vec<Metric> {
    use Value::{Count, Gauge, Ratio, Text};
    let (min, avg, max) = shared.latency_ms();
    let (connections, outstanding) = {
        let conns = shared.conns.lock().expect("conns lock");
        let queued: u64 = conns.values().map(|c| c.queued.load(Relaxed)).sum();
        (conns.len(), queued)
    };
    let ephemerals: usize = tree
        .sessions()
        .iter()
        .map(|(id, _)| tree.ephemerals(*id).len())
        .sum();
    let gauge = |n: usize| Gauge(n as i64);
    let mut m = vec![
        ("version", Text(version())),
        (
            "server_state",
            Text(shared.mode().unwrap_or_default().into()),
        ),
        ("ephemerals_count", gauge(ephemerals)),
        ("num_alive_connections", gauge(connections)),
        ("avg_latency", Ratio(avg)),
        ("outstanding_requests", Gauge(outstanding as i64)),
        ("znode_count", gauge(znode_count(tree))),
        ("global_sessions", gauge(tree.session_count())),
        ("packets_sent", Gauge(shared.total(|c| &c.sent) as i64)),
        (
            "packets_received",
            Gauge(shared.total(|c| &c.received) as i64),
        ),
        ("watch_count", gauge(watch_count)),
        (
            "auth_failed_count",
            Gauge(shared.total(|c| &c.auth_failed) as i64),
        ),
        ("min_latency", Gauge(min.floor() as i64)),
        ("approximate_data_size", Gauge(tree.data_bytes() as i64)),
        ("max_latency", Gauge(max.ceil() as i64)),
    ];
    if let Some(q) = *shared.quorum.lock().expect("quorum stats") {
        m.push(("peer_state", Text(q.peer_state.into())));
        m.push(("quorum_size", gauge(q.quorum_size)));
        // ZooKeeper counts TRUNCs as DIFFs.
        m.push(("diff_count", Count(q.syncs.diff + q.syncs.trunc)));
        m.push(("snap_count", Count(q.syncs.snap)));
        if shared.mode() == Some("leader") {
            m.push(("learners", gauge(q.learners.learners)));
            m.push(("synced_followers", gauge(q.learners.synced_followers)));
            m.push(("synced_non_voting_followers", Gauge(0)));
            m.push(("synced_observers", gauge(q.learners.synced_observers)));
            m.push(("pending_syncs", Gauge(0)));
            let (last, min, max) = shared.proposal_sizes.get();
            m.push(("last_proposal_size", Gauge(last)));
            m.push(("min_proposal_size", Gauge(min)));
            m.push(("max_proposal_size", Gauge(max)));
        }
    }
    // As in ZooKeeper, also on a standalone server (no elections there).
    let elections = Summary::of(&shared.elections.lock().expect("election stats"), 1.0);
    m.push(("election_time", Value::Summary(elections)));
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    m.push(("open_file_descriptor_count", gauge(open_fds)));
    m.push(("max_file_descriptor_count", Gauge(max_open_files())));
    m.push(("local_sessions", Gauge(0)));
    m.push(("uptime", Gauge(shared.started.elapsed().as_millis() as i64)));
    let storage = shared.storage.lock().expect("storage stats lock");
    let batches = Summary::of(&storage.batch_records, 1.0);
    m.push(("sync_processor_batch_size", Value::Summary(batches)));
    let fsyncs = Summary::of(&storage.sync_us, 1000.0);
    m.push(("fsynctime", Value::Summary(fsyncs)));
    let snapshots = Summary::of(&storage.snapshot_ms, 1.0);
    m.push(("snapshottime", Value::Summary(snapshots)));
    if let Some(l) = latencies {
        // In ms, as ZooKeeper's; µs underneath, so fractions of a ms show.
        m.push(("readlatency", Value::Summary(Summary::of(&l.read, 1000.0))));
        m.push((
            "updatelatency",
            Value::Summary(Summary::of(&l.update, 1000.0)),
        ));
    }
    let startup = storage.startup;
    for (name, v) in [
        ("startup_snap_load_time", startup.snap_load_ms),
        ("startup_txns_load_time", startup.txns_load_ms),
        ("startup_txns_loaded", startup.txns_loaded),
    ] {
        m.push((name, Value::Summary(Summary::once(v))));
    }
    m.into_iter()
        .map(|(name, value)| Metric { name, value })
        .collect()
}

/// This process's limit on open files (`Max open files` in /proc), 0 if unknown.
fn max_open_files() -> i64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
