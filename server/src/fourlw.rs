//! Four-letter words on the client port (`ruok`, `srvr`, `mntr`, ...), in
//! ZooKeeper's output formats, since monitoring tools and clients parse them
//! (kazoo reads the version from `envi`). Only words in
//! `4lw.commands.whitelist` are answered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use engine::tree::DataTree;

use crate::config::{Config, ALL_FOUR_LETTER_WORDS};
use crate::metrics::{self, version, Metric, Value, QUANTILES};
use crate::stats::Shared;

/// The word a connection opened with, if its first four bytes are one.
pub fn word(first: &[u8]) -> Option<&'static str> {
    ALL_FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first)
}

/// The text answering `word`.
pub async fn answer(config: &Config, shared: &Shared, tree: &DataTree, word: &str) -> String {
    if !config.four_letter_words.contains(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    // As ZooKeeper: words about the serving state wait for a member to serve.
    let about_serving = matches!(
        word,
        "srvr" | "stat" | "mntr" | "cons" | "crst" | "srst" | "dump" | "wchs" | "wchc" | "wchp"
    );
    if about_serving && shared.mode().is_none() {
        return "This ZooKeeper instance is not currently serving requests\n".to_owned();
    }
    let watches = match word {
        "wchs" | "wchp" | "wchc" | "mntr" => shared.watches().await,
        _ => Vec::new(),
    };
    // Listing directories is blocking I/O: done off the shard's thread.
    let dir_sizes = match word {
        "dirs" | "conf" => {
            let dirs = [config.data_dir.clone(), config.data_log_dir.clone()];
            Some(
                glommio::executor()
                    .spawn_blocking(move || dirs.map(|d| dir_size(&d)))
                    .await,
            )
        }
        _ => None,
    };
    let mut s = String::new();
    if word == "mntr" {
        for metric in metrics::gather(shared, tree, watches.len()) {
            mntr_line(&mut s, &metric);
        }
        return s;
    }
    let (min, avg, max) = shared.latency_ms();
    let received = shared.total(|c| &c.received);
    let sent = shared.total(|c| &c.sent);
    let conns = shared.conns.lock().expect("conns lock");
    let server_block = |s: &mut String| {
        let _ = writeln!(
            s,
            "Latency min/avg/max: {}/{:.4}/{}",
            min.floor(),
            avg,
            max.ceil()
        );
        let _ = writeln!(s, "Received: {received}");
        let _ = writeln!(s, "Sent: {sent}");
        let _ = writeln!(s, "Connections: {}", conns.len());
        let _ = writeln!(
            s,
            "Outstanding: {}",
            conns.values().map(|c| c.queued.load(Relaxed)).sum::<u64>()
        );
        let _ = writeln!(s, "Zxid: 0x{:x}", tree.last_zxid());
        let _ = writeln!(s, "Mode: {}", shared.mode().unwrap_or_default());
        let _ = writeln!(s, "Node count: {}", tree.node_count());
        if shared.mode() == Some("leader") {
            let (last, min, max) = shared.proposal_sizes.get();
            let _ = writeln!(s, "Proposal sizes last/min/max: {last}/{min}/{max}");
        }
    };
    let cons = |s: &mut String| {
        let mut list: Vec<_> = conns.values().collect();
        list.sort_by_key(|c| c.peer);
        for c in list {
            let _ = writeln!(
                s,
                " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop=NA,est=0,to={},lzxid=0x{:x})",
                c.peer,
                c.queued.load(Relaxed),
                c.received.load(Relaxed),
                c.sent.load(Relaxed),
                c.session.load(Relaxed),
                c.timeout_ms.load(Relaxed),
                c.last_zxid.load(Relaxed),
            );
        }
        s.push('\n');
    };
    match word {
        "ruok" => s.push_str("imok"),
        "isro" => s.push_str("rw"),
        "srvr" => {
            let _ = writeln!(s, "Zookeeper version: {}", version());
            server_block(&mut s);
        }
        "stat" => {
            let _ = writeln!(s, "Zookeeper version: {}", version());
            s.push_str("Clients:\n");
            cons(&mut s);
            server_block(&mut s);
        }
        "cons" => cons(&mut s),
        "envi" => {
            s.push_str("Environment:\n");
            let _ = writeln!(s, "zookeeper.version={}", version());
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let _ = writeln!(s, "host.name={}", host.trim());
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let env = |k: &str| std::env::var(k).unwrap_or_default();
            let _ = writeln!(s, "herd.version={}", env!("CARGO_PKG_VERSION"));
            let _ = writeln!(
                s,
                "os.name={}",
                if cfg!(target_os = "linux") {
                    "Linux"
                } else {
                    std::env::consts::OS
                }
            );
            let _ = writeln!(
                s,
                "os.arch={}",
                if cfg!(target_arch = "x86_64") {
                    "amd64"
                } else {
                    std::env::consts::ARCH
                }
            );
            let _ = writeln!(s, "os.version={}", release.trim());
            let _ = writeln!(s, "user.name={}", env("USER"));
            let _ = writeln!(s, "user.home={}", env("HOME"));
            let _ = writeln!(
                s,
                "user.dir={}",
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
        }
        "conf" => {
            let c = config;
            let _ = writeln!(s, "clientPort={}", shared.client_port.load(Relaxed));
            let _ = writeln!(s, "secureClientPort=-1");
            // ZooKeeper 3.8 labels these two sizes the wrong way round
            // (dataDirSize sums its log directory); they are equal unless
            // dataLogDir is set apart, and herd gives each its own.
            let [data, log] = dir_sizes.expect("sized above for conf");
            let _ = writeln!(s, "dataDir={}", c.data_dir.display());
            let _ = writeln!(s, "dataDirSize={data}");
            let _ = writeln!(s, "dataLogDir={}", c.data_log_dir.display());
            let _ = writeln!(s, "dataLogSize={log}");
            let _ = writeln!(s, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(s, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(s, "minSessionTimeout={}", c.min_session_timeout_ms);
            let _ = writeln!(s, "maxSessionTimeout={}", c.max_session_timeout_ms);
            let _ = writeln!(s, "clientPortListenBacklog=-1");
            let _ = writeln!(s, "serverId={}", c.server_id);
            let me = c.ensemble.servers.get(&u64::from(c.server_id));
            if let (Some(me), true) = (me, shared.quorum.lock().expect("quorum").is_some()) {
                // A member: the quorum settings and the ensemble, as
                // ZooKeeper's QuorumPeer dumps them (electionAlg 3 is fast
                // leader election; peerType 0 a participant, 1 an observer).
                let e = &c.ensemble;
                let _ = writeln!(s, "initLimit={}", e.init_limit_ticks);
                let _ = writeln!(s, "syncLimit={}", e.sync_limit_ticks);
                let _ = writeln!(s, "electionAlg=3");
                let _ = writeln!(s, "electionPort={}", me.election_port);
                let _ = writeln!(s, "quorumPort={}", me.quorum_port);
                let _ = writeln!(s, "peerType={}", u8::from(me.observer));
                let _ = writeln!(s, "membership: ");
                for (id, l) in &e.servers {
                    let role = if l.observer {
                        "observer"
                    } else {
                        "participant"
                    };
                    let _ = write!(
                        s,
                        "server.{id}={}:{}:{}:{role}",
                        l.host, l.quorum_port, l.election_port
                    );
                    if let Some((addr, port)) = &l.client {
                        let _ = write!(s, ";{}:{port}", addr.as_deref().unwrap_or("0.0.0.0"));
                    }
                    s.push('\n');
                }
                let _ = writeln!(s, "version=0");
            }
        }
        "crst" => {
            for c in conns.values() {
                c.received.store(0, Relaxed);
                c.sent.store(0, Relaxed);
            }
            s.push_str("Connection stats reset.\n");
        }
        "srst" => {
            for c in &shared.shards {
                c.reset();
            }
            shared.proposal_sizes.reset();
            s.push_str("Server stats reset.\n");
        }
        "wchs" => {
            let sessions: BTreeSet<i64> = watches.iter().map(|(_, sid)| *sid).collect();
            let paths: BTreeSet<&str> = watches.iter().map(|(p, _)| p.as_str()).collect();
            let _ = writeln!(
                s,
                "{} connections watching {} paths",
                sessions.len(),
                paths.len()
            );
            let _ = writeln!(s, "Total watches:{}", watches.len());
        }
        "wchp" => {
            let mut last: Option<&str> = None;
            for (path, session) in &watches {
                if last != Some(path) {
                    let _ = writeln!(s, "{path}");
                    last = Some(path);
                }
                let _ = writeln!(s, "\t0x{session:x}");
            }
        }
        "wchc" => {
            let mut by_session: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
            for (path, session) in &watches {
                by_session.entry(*session).or_default().push(path);
            }
            for (session, paths) in by_session {
                let _ = writeln!(s, "0x{session:x}");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
        }
        "dump" => {
            s.push_str("SessionTracker dump:\n");
            let sessions = tree.sessions();
            let _ = writeln!(s, "Global Sessions({}):", sessions.len());
            for (id, timeout) in &sessions {
                let _ = writeln!(s, "0x{id:x}\t{timeout}ms");
            }
            s.push_str("ephemeral nodes dump:\n");
            let _ = writeln!(
                s,
                "Sessions with Ephemerals ({}):",
                sessions
                    .iter()
                    .filter(|(id, _)| !tree.ephemerals(*id).is_empty())
                    .count()
            );
            for (id, _) in &sessions {
                let paths = tree.ephemerals(*id);
                if !paths.is_empty() {
                    let _ = writeln!(s, "0x{id:x}:");
                    for p in paths {
                        let _ = writeln!(s, "\t{p}");
                    }
                }
            }
        }
        "dirs" => {
            let [data, log] = dir_sizes.expect("sized above for dirs");
            let _ = writeln!(s, "datadir_size: {data}");
            let _ = writeln!(s, "logdir_size: {log}");
        }
        _ => unreachable!("only known words reach here"),
    }
    s
}

/// Total size of the files directly in `dir` (0 if it cannot be read).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes `metric` as `mntr` does: `zk_NAME\tVALUE`, and a summary as its
/// `zk_avg_NAME`, min, max, p50, p95, p99, p999, cnt and sum lines (a value
/// recorded once has no percentiles).
fn mntr_line(s: &mut String, metric: &Metric) {
    let name = metric.name;
    match &metric.value {
        Value::Text(v) => {
            let _ = writeln!(s, "zk_{name}\t{v}");
        }
        Value::Gauge(v) => {
            let _ = writeln!(s, "zk_{name}\t{v}");
        }
        Value::Count(v) => {
            let _ = writeln!(s, "zk_{name}\t{v}");
        }
        Value::Ratio(v) => {
            let _ = writeln!(s, "zk_{name}\t{v:.4}");
        }
        Value::Summary(h) => {
            let value = |v: f64| {
                if h.fractional {
                    format!("{v:.3}")
                } else {
                    format!("{v}")
                }
            };
            match h.quantiles {
                Some(quantiles) => {
                    let _ = writeln!(s, "zk_avg_{name}\t{:.4}", h.mean);
                    let _ = writeln!(s, "zk_min_{name}\t{}", value(h.min));
                    let _ = writeln!(s, "zk_max_{name}\t{}", value(h.max));
                    for ((label, _), v) in QUANTILES.iter().zip(quantiles) {
                        let _ = writeln!(s, "zk_{label}_{name}\t{}", value(v));
                    }
                }
                None => {
                    for (stat, v) in [("avg", h.mean), ("min", h.min), ("max", h.max)] {
                        let _ = writeln!(s, "zk_{stat}_{name}\t{v}");
                    }
                }
            }
            let _ = writeln!(s, "zk_cnt_{name}\t{}", h.count);
            let _ = writeln!(s, "zk_sum_{name}\t{}", value(h.sum));
        }
    }
}
