//! Four-letter words on the client port (`ruok`, `srvr`, `mntr`, ...), in
//! ZooKeeper's output formats, since monitoring tools and clients parse them
//! (kazoo reads the version from `envi`). Only words in
//! `4lw.commands.whitelist` are answered.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use engine::tree::DataTree;

use crate::config::{Config, ALL_FOUR_LETTER_WORDS};
use crate::metrics::{self, version, Flat, Metric};
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
        "wchs" | "wchp" | "wchc" => shared.watches().await,
        _ => Vec::new(),
    };
    match word {
        "srst" => shared.reset_server_stats().await,
        "crst" => shared.reset_connection_stats(),
        _ => {}
    }
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
        for metric in metrics::current(shared, tree).await {
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
        let _ = writeln!(s, "Node count: {}", metrics::znode_count(tree));
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
            for (key, value) in environment() {
                let _ = writeln!(s, "{key}={value}");
            }
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
                for (id, line) in &e.servers {
                    let _ = writeln!(s, "server.{id}={line}");
                }
                let _ = writeln!(s, "version=0");
            }
        }
        "crst" => s.push_str("Connection stats reset.\n"),
        "srst" => s.push_str("Server stats reset.\n"),
        "wchs" => {
            let groups = WatchGroups::of(&watches);
            let _ = writeln!(
                s,
                "{} connections watching {} paths",
                groups.by_session.len(),
                groups.by_path.len()
            );
            let _ = writeln!(s, "Total watches:{}", watches.len());
        }
        "wchp" => {
            for (path, sessions) in WatchGroups::of(&watches).by_path {
                let _ = writeln!(s, "{path}");
                for session in sessions {
                    let _ = writeln!(s, "\t0x{session:x}");
                }
            }
        }
        "wchc" => {
            for (session, paths) in WatchGroups::of(&watches).by_session {
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

/// Watches (path, session) grouped by session and by path, each in order.
pub struct WatchGroups<'a> {
    pub by_session: BTreeMap<i64, Vec<&'a str>>,
    pub by_path: BTreeMap<&'a str, Vec<i64>>,
}

impl<'a> WatchGroups<'a> {
    pub fn of(watches: &'a [(String, i64)]) -> WatchGroups<'a> {
        let mut groups = WatchGroups {
            by_session: BTreeMap::new(),
            by_path: BTreeMap::new(),
        };
        for (path, session) in watches {
            groups.by_session.entry(*session).or_default().push(path);
            groups.by_path.entry(path).or_default().push(*session);
        }
        groups
    }
}

/// What `envi` reports, in its order: ZooKeeper's keys that mean something
/// outside a JVM, and herd's version.
pub fn environment() -> Vec<(&'static str, String)> {
    let read = |f: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let os = if cfg!(target_os = "linux") {
        "Linux"
    } else {
        std::env::consts::OS
    };
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        std::env::consts::ARCH
    };
    let dir = std::env::current_dir().map(|d| d.display().to_string());
    vec![
        ("zookeeper.version", version()),
        ("host.name", read("/proc/sys/kernel/hostname")),
        ("herd.version", env!("CARGO_PKG_VERSION").to_owned()),
        ("os.name", os.to_owned()),
        ("os.arch", arch.to_owned()),
        ("os.version", read("/proc/sys/kernel/osrelease")),
        ("user.name", user_name()),
        ("user.home", env("HOME")),
        ("user.dir", dir.unwrap_or_default()),
    ]
}

/// The name of the user the process runs as, from /etc/passwd (as Java's
/// `user.name`), or `$USER` if it is not there.
fn user_name() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_owned())
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_default())
}

/// Total size of the files directly in `dir` (0 if it cannot be read).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes `metric` as `mntr` does: `zk_NAME\tVALUE` lines.
fn mntr_line(s: &mut String, metric: &Metric) {
    metric.flatten(|name, value| {
        let _ = match value {
            Flat::Text(v) => writeln!(s, "zk_{name}\t{v}"),
            Flat::Int(v) => writeln!(s, "zk_{name}\t{v}"),
            Flat::Ratio(v) => writeln!(s, "zk_{name}\t{v:.4}"),
            Flat::Stat {
                v,
                fractional: true,
            } => writeln!(s, "zk_{name}\t{v:.3}"),
            Flat::Stat { v, .. } => writeln!(s, "zk_{name}\t{v}"),
        };
    });
}
