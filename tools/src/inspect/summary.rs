//! `herd-inspect summary DIR`: replay the log into a [`DataTree`] exactly as
//! herd's start-up does ([`engine::txn::replay`], record by record, stopping at
//! the first damage) and describe the tree that results with [`describe`], which
//! `snapshot FILE` shares.

use std::collections::BTreeMap;

use engine::stat::NodeKind;
use engine::tree::DataTree;
use engine::txn::{replay_noting, AclCache, Reparented};
use engine::{SessionId, TimeMs, Zxid};

use super::check::{check, DbIdFile, Report, Segment};
use engine::time::iso8601_utc;

/// How many of the largest nodes `summary` and `snapshot` list unless told otherwise.
pub const TOP_DEFAULT: usize = 10;

/// The replayed log: its last transaction, the tree it left, and how far it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Zxid and time of the last transaction replayed.
    pub last: Option<(Zxid, TimeMs)>,
    pub tree: TreeSummary,
    /// The log check that decided how far replay went.
    pub report: Report,
}

/// A [`DataTree`], described: what `summary` and `snapshot` print about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeSummary {
    /// Znodes, `/` and `/zookeeper/...` included (as `mntr` counts them).
    pub nodes: usize,
    pub data_bytes: usize,
    /// The largest nodes by data length, largest first (ties by path); empty data left out.
    pub largest: Vec<(String, usize)>,
    /// Open sessions and their timeouts, by id.
    pub sessions: Vec<(SessionId, i32)>,
    /// Paths of the ephemeral nodes each session owns.
    pub ephemerals: BTreeMap<SessionId, Vec<String>>,
    pub containers: usize,
    pub ttl_nodes: usize,
}

/// Replays `segments` and summarizes the tree, listing the `top` largest nodes.
pub fn summarize(
    segments: &[Segment],
    db_id_file: &DbIdFile,
    snapshot: Option<(Zxid, DataTree)>,
    top: usize,
) -> Summary {
    let (base, tree) = snapshot.unwrap_or_else(|| (0, DataTree::new()));
    let mut acls = AclCache::default();
    let mut reparented = Reparented::default();
    let mut last = None;
    let report = check(segments, db_id_file, base, |zxid, entry| {
        replay_noting(
            &tree,
            &mut acls,
            zxid,
            entry.time_ms,
            &entry.txn,
            &mut reparented,
        );
        last = Some((zxid, entry.time_ms));
    });
    if base > 0 {
        tree.recount_children_of(&reparented.parents);
    }
    Summary {
        last,
        tree: describe(&tree, top),
        report,
    }
}

/// Describes `tree`, listing its `top` largest nodes.
pub fn describe(tree: &DataTree, top: usize) -> TreeSummary {
    let mut largest = Vec::new();
    let mut ephemerals: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
    let (mut containers, mut ttl_nodes) = (0, 0);
    for (path, node) in tree.all() {
        match node.kind() {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                ephemerals.entry(session).or_default().push(path.clone())
            }
            NodeKind::Container => containers += 1,
            NodeKind::Ttl(_) => ttl_nodes += 1,
        }
        if !node.data.is_empty() {
            largest.push((path, node.data.len()));
        }
    }
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest.truncate(top);
    for paths in ephemerals.values_mut() {
        paths.sort();
    }
    let mut sessions = tree.sessions();
    sessions.sort();
    TreeSummary {
        nodes: tree.node_count(),
        data_bytes: tree.data_bytes(),
        largest,
        sessions,
        ephemerals,
        containers,
        ttl_nodes,
    }
}

impl Summary {
    /// The output of `summary`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![match self.last {
            Some((zxid, time_ms)) => format!("last zxid 0x{zxid:x} at {}", iso8601_utc(time_ms)),
            None => "last zxid 0x0 (nothing replayed)".into(),
        }];
        lines.extend(self.tree.lines());
        lines.push(match self.report.severity {
            super::check::Severity::Clean => "log: clean".into(),
            _ => format!(
                "log: {}; the summary covers zxids up to 0x{:x} (run verify for details)",
                self.report.verdict().trim_start_matches("verdict: "),
                self.report.replayed_to
            ),
        });
        lines
    }
}

impl TreeSummary {
    /// Counts, the largest nodes, sessions, then ephemerals by owner.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("nodes {}", self.nodes),
            format!("data bytes {}", self.data_bytes),
            format!(
                "containers {}, ttl nodes {}",
                self.containers, self.ttl_nodes
            ),
            format!("largest nodes ({}):", self.largest.len()),
        ];
        for (path, len) in &self.largest {
            lines.push(format!("  {len} {path}"));
        }
        lines.push(format!("sessions {}", self.sessions.len()));
        for (session, timeout_ms) in &self.sessions {
            lines.push(format!("  0x{session:x} timeout {timeout_ms}ms"));
        }
        let count: usize = self.ephemerals.values().map(Vec::len).sum();
        lines.push(format!("ephemerals {count}"));
        for (session, paths) in &self.ephemerals {
            lines.push(format!("  0x{session:x}: {}", paths.join(" ")));
        }
        lines
    }
}
