//! The data tree: every znode, readable from any thread without locks, written by
//! exactly one thread (the commit pipeline's applier).
//!
//! Nodes live in a lock-free skip list keyed by `parent + "\0" + name` (see
//! [`key`]): the children of a node are one contiguous key range, in name order,
//! and reading them never walks grandchildren. Each entry holds the node's
//! current [`Znode`] version, replaced whole on every change.
//!
//! Invariants (kept by [`crate::txn::apply`], checked in tests):
//! - every node but the root has its parent in the tree;
//! - a node's `num_children` equals the number of keys in its child range;
//! - a normal ephemeral node is in the ephemeral index under its owner, containers
//!   and TTL nodes are in their sets, and nothing else is.

use std::cell::RefCell;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapAny;
use crossbeam_skiplist::{SkipMap, SkipSet};

use crate::acl::Acl;
use crate::stat::NodeKind;
use crate::types::{SessionId, Zxid};
use crate::znode::{Data, Node, Znode};

mod key;

use key::{path_of_key, with_key, Key};

/// The shared tree. See the module documentation for its invariants.
pub struct DataTree {
    /// Each node's current version, swapped atomically on update (see `put`).
    nodes: SkipMap<Key, ArcSwapAny<Znode>>,
    /// (owner session, path) of every normal ephemeral node.
    ephemerals: SkipSet<(SessionId, String)>,
    containers: SkipSet<String>,
    ttls: SkipSet<String>,
    /// Open sessions and their negotiated timeouts.
    sessions: SkipMap<SessionId, i32>,
    node_count: AtomicUsize,
    data_bytes: AtomicUsize,
    last_zxid: AtomicI64,
    /// The zxid being committed: set before its first change is visible.
    applying_zxid: AtomicI64,
}

thread_local! {
    /// Scratch bounds of a child range.
    static RANGE: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding what every ZooKeeper starts with: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new() -> DataTree {
        let tree = DataTree::empty();
        let open = Arc::new(Acl::open_unsafe());
        let empty = Data::new(&[]);
        let node = |children| Node {
            num_children: children,
            ..Node::new(empty.clone(), open.clone(), 0, 0, 0)
        };
        tree.put("/", &node(1));
        tree.put("/zookeeper", &node(2));
        tree.put("/zookeeper/quota", &node(0));
        let config = Node {
            acl: Arc::new(Acl::read_unsafe()),
            aversion: -1,
            ..node(0)
        };
        tree.put("/zookeeper/config", &config);
        tree
    }

    /// A tree without any node, not even the root: for loading a snapshot,
    /// which holds every node of the tree it was taken from.
    pub(crate) fn empty() -> DataTree {
        DataTree {
            nodes: SkipMap::new(),
            ephemerals: SkipSet::new(),
            containers: SkipSet::new(),
            ttls: SkipSet::new(),
            sessions: SkipMap::new(),
            node_count: AtomicUsize::new(0),
            data_bytes: AtomicUsize::new(0),
            last_zxid: AtomicI64::new(0),
            applying_zxid: AtomicI64::new(0),
        }
    }

    /// Looks a node up without allocating; the node stays valid however the
    /// tree changes afterwards.
    pub fn get(&self, path: &str) -> Option<Znode> {
        self.entry(path).map(|e| e.value().load_full())
    }

    /// The skip-list entry of `path`, looked up without allocating.
    fn entry(
        &self,
        path: &str,
    ) -> Option<crossbeam_skiplist::map::Entry<'_, Key, ArcSwapAny<Znode>>> {
        with_key(root_alias(path), |k| self.nodes.get(k))
    }

    /// Visits the names of `path`'s children in order, without allocating
    /// (`f` must not list children itself: the range bounds are thread-local).
    pub fn for_each_child(&self, path: &str, mut f: impl FnMut(&str)) {
        let path = root_alias(path);
        RANGE.with(|r| {
            let (start, end) = &mut *r.borrow_mut();
            start.clear();
            start.push_str(path);
            start.push('\0');
            end.clear();
            end.push_str(path);
            end.push('\u{1}');
            let range = (
                Bound::Included(start.as_str()),
                Bound::Excluded(end.as_str()),
            );
            for entry in self.nodes.range::<str, _>(range) {
                f(&entry.key().as_str()[path.len() + 1..]);
            }
        })
    }

    /// The names of `path`'s children in order.
    pub fn children(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_child(path, |name| out.push(name.to_owned()));
        out
    }

    /// Paths of the normal ephemeral nodes owned by `session`.
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        let start = (session, String::new());
        self.ephemerals
            .range(start..)
            .take_while(|e| e.value().0 == session)
            .map(|e| e.value().1.clone())
            .collect()
    }

    /// Every container node's path.
    pub fn containers(&self) -> Vec<String> {
        self.containers.iter().map(|e| e.value().clone()).collect()
    }

    /// Every TTL node's path.
    pub fn ttls(&self) -> Vec<String> {
        self.ttls.iter().map(|e| e.value().clone()).collect()
    }

    /// Open sessions with their timeouts.
    pub fn sessions(&self) -> Vec<(SessionId, i32)> {
        self.sessions
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The negotiated timeout of `session`, if it is open.
    pub fn session_timeout(&self, session: SessionId) -> Option<i32> {
        self.sessions.get(&session).map(|e| *e.value())
    }

    /// Makes this tree hold exactly what `other` holds (an ensemble member
    /// installing its leader's snapshot). Writer only, and only while no
    /// client reads it: a reader meanwhile could see parts of both.
    pub fn replace_with(&self, other: DataTree) {
        self.nodes.clear();
        self.ephemerals.clear();
        self.containers.clear();
        self.ttls.clear();
        self.sessions.clear();
        self.node_count.store(0, Ordering::Relaxed);
        self.data_bytes.store(0, Ordering::Relaxed);
        let mut path = String::new();
        for entry in other.nodes.iter() {
            path_of_key(entry.key().as_str(), &mut path);
            self.insert_new(&path, entry.value().load().clone());
        }
        for entry in other.sessions.iter() {
            self.sessions.insert(*entry.key(), *entry.value());
        }
        self.restore_zxid(other.last_zxid());
    }

    pub(crate) fn open_session(&self, session: SessionId, timeout_ms: i32) {
        self.sessions.insert(session, timeout_ms);
    }

    pub(crate) fn close_session(&self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.node_count.load(Ordering::Relaxed)
    }

    /// Sum of the data lengths of all znodes.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes.load(Ordering::Relaxed)
    }

    /// The zxid of the last transaction applied.
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid.load(Ordering::Acquire)
    }

    /// An upper bound of every change a reader has seen so far: load it after a
    /// read, and no change the read observed has a larger zxid.
    pub fn applying_zxid(&self) -> Zxid {
        self.applying_zxid.load(Ordering::Acquire)
    }

    /// Called by the applier before a transaction's first change is visible.
    pub(crate) fn begin_commit(&self, zxid: Zxid) {
        assert!(
            zxid > self.last_zxid(),
            "zxids are committed in increasing order"
        );
        self.applying_zxid.store(zxid, Ordering::Release);
    }

    /// Sets the last zxid of a tree rebuilt from a snapshot.
    pub(crate) fn restore_zxid(&self, zxid: Zxid) {
        self.applying_zxid.store(zxid, Ordering::Release);
        self.last_zxid.store(zxid, Ordering::Release);
    }

    /// Called by the applier after a transaction's changes are in the tree.
    pub(crate) fn end_commit(&self, zxid: Zxid) {
        self.last_zxid.store(zxid, Ordering::Release);
    }

    /// Inserts or replaces a node. Writer only. A replaced node is swapped in
    /// place, so a reader sees the old or the new version, never neither.
    pub fn put(&self, path: &str, node: &Node) {
        let new_len = node.data.len();
        let kind = node.kind();
        if let Some(entry) = self.entry(path) {
            let old = entry.value().swap(Znode::new(node));
            self.data_bytes.fetch_add(new_len, Ordering::Relaxed);
            self.data_bytes.fetch_sub(old.data_len(), Ordering::Relaxed);
            // Only replay over a fuzzy snapshot recreates a node as another kind.
            let old_kind = old.kind();
            if old_kind != kind {
                self.unindex(path, old_kind);
                self.index(path, kind);
            }
            return;
        }
        self.node_count.fetch_add(1, Ordering::Relaxed);
        self.data_bytes.fetch_add(new_len, Ordering::Relaxed);
        self.index(path, kind);
        self.nodes
            .insert(Key::of(path), ArcSwapAny::new(Znode::new(node)));
    }

    /// Inserts a node known to be absent (loading a snapshot, whose paths are
    /// distinct): one skip-list search instead of `put`'s two. Writer only.
    pub(crate) fn insert_new(&self, path: &str, node: Znode) {
        self.node_count.fetch_add(1, Ordering::Relaxed);
        self.data_bytes
            .fetch_add(node.data_len(), Ordering::Relaxed);
        self.index(path, node.kind());
        self.nodes.insert(Key::of(path), ArcSwapAny::new(node));
    }

    fn index(&self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.insert((s, path.to_owned()));
            }
            NodeKind::Container => {
                self.containers.insert(path.to_owned());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            NodeKind::Persistent => {}
        }
    }

    /// Removes a node. Writer only.
    pub fn remove(&self, path: &str) {
        if let Some(old) = with_key(path, |k| self.nodes.remove(k)) {
            let old = old.value().load();
            self.unindex(path, old.kind());
            self.node_count.fetch_sub(1, Ordering::Relaxed);
            self.data_bytes.fetch_sub(old.data_len(), Ordering::Relaxed);
        }
    }

    fn unindex(&self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.remove(&(s, path.to_owned()));
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            NodeKind::Persistent => {}
        }
    }

    /// Sets the numChildren of each of `parents` (paths; missing ones are
    /// skipped) to its real child count. Writer only; run after replaying the
    /// log over a fuzzy snapshot with the parents the replay created or deleted
    /// children under ([`crate::txn::Reparented`]): a parent may have been
    /// captured before or after some of those changes. Other nodes' children did
    /// not change during the snapshot's walk, so their counts are whole.
    pub fn recount_children_of<'a>(&self, parents: impl IntoIterator<Item = &'a String>) {
        for parent in parents {
            let Some(entry) = self.entry(parent) else {
                continue;
            };
            let mut count = 0;
            self.for_each_child(parent, |_| count += 1);
            let mut node = entry.value().load().node();
            if node.num_children != count {
                node.num_children = count;
                entry.value().store(Znode::new(&node));
            }
        }
    }

    /// Visits every node with its path, parents before their children (key
    /// order), without copying nodes. A fuzzy view while the writer runs.
    pub fn for_each_node(&self, mut f: impl FnMut(&str, &Znode)) {
        let mut path = String::new();
        for entry in self.nodes.iter() {
            path_of_key(entry.key().as_str(), &mut path);
            f(&path, &entry.value().load());
        }
    }

    /// Every (path, node) in key order; for checks and inspection, not hot paths.
    pub fn all(&self) -> Vec<(String, Node)> {
        let mut out = Vec::new();
        self.walk("/", &mut out);
        out
    }

    fn walk(&self, path: &str, out: &mut Vec<(String, Node)>) {
        let Some(node) = self.get(path) else { return };
        out.push((path.to_owned(), node.node()));
        for child in self.children(path) {
            self.walk(&join(path, &child), out);
        }
    }
}

/// ZooKeeper's tree also knows the root as the empty path (reads of "" answer
/// for `/`; writes refuse it as a path).
fn root_alias(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// `parent` + `/` + `name`, without doubling the root's slash.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::znode::Content;

    #[test]
    fn initial_tree_matches_zookeeper() {
        let tree = DataTree::new();
        assert_eq!(tree.children("/"), vec!["zookeeper"]);
        assert_eq!(tree.children("/zookeeper"), vec!["config", "quota"]);
        assert_eq!(tree.get("/").unwrap().stat().cversion, -1);
        assert_eq!(tree.get("/zookeeper").unwrap().stat().cversion, -2);
        assert_eq!(tree.get("/zookeeper/config").unwrap().stat().aversion, -1);
        assert_eq!(tree.node_count(), 4);
    }

    #[test]
    fn replace_with_leaves_exactly_the_other_trees_nodes_sessions_and_zxid() {
        let tree = DataTree::new();
        let n = tree.get("/").unwrap().node();
        tree.put("/old", &n);
        tree.open_session(5, 4000);
        tree.restore_zxid(90);
        let other = DataTree::new();
        let eph = Node {
            ephemeral_owner: 7,
            ..n.clone()
        };
        other.put("/new", &eph);
        other.open_session(7, 6000);
        other.restore_zxid(40);
        tree.replace_with(other);
        assert_eq!(tree.children("/"), vec!["new", "zookeeper"]);
        assert!(tree.get("/old").is_none());
        assert_eq!(tree.sessions(), vec![(7, 6000)]);
        assert_eq!(tree.session_timeout(5), None);
        assert_eq!(tree.ephemerals(7), vec!["/new".to_owned()]);
        assert_eq!((tree.last_zxid(), tree.node_count()), (40, 5));
    }

    #[test]
    fn children_are_one_range_without_grandchildren() {
        let tree = DataTree::new();
        let n = tree.get("/").unwrap().node();
        for p in ["/a", "/a/x", "/a/x/deep", "/a/y", "/ab", "/a-"] {
            tree.put(p, &n);
        }
        assert_eq!(tree.children("/a"), vec!["x", "y"]);
        assert_eq!(tree.children("/"), vec!["a", "a-", "ab", "zookeeper"]);
        tree.remove("/a/x");
        assert_eq!(tree.children("/a"), vec!["y"]);
    }

    #[test]
    fn recount_fixes_the_parents_named_and_only_those() {
        let tree = DataTree::new();
        let n = tree.get("/").unwrap().node();
        let leaf = Node {
            num_children: 0,
            ..n.clone()
        };
        // As a fuzzy snapshot can hold them: /p counted before /p/a and /p/b
        // were added, /q counted with a child that is gone.
        tree.put("/p", &leaf);
        tree.put("/p/a", &leaf);
        tree.put("/p/b", &leaf);
        tree.put(
            "/q",
            &Node {
                num_children: 1,
                ..leaf
            },
        );
        tree.recount_children_of(&["/p".to_owned(), "/gone".to_owned()]);
        assert_eq!(tree.get("/p").unwrap().stat().num_children, 2);
        assert_eq!(
            tree.get("/q").unwrap().stat().num_children,
            1,
            "not named: left alone"
        );
        tree.recount_children_of(&["/q".to_owned()]);
        assert_eq!(tree.get("/q").unwrap().stat().num_children, 0);
    }

    #[test]
    fn readers_never_miss_a_node_being_replaced() {
        // Each version's data spells its version, and every version is a new
        // allocation, so a reader holding a released one would likely find
        // another version's bytes (or the allocator's) there.
        let tree = DataTree::new();
        let base = tree.get("/").unwrap().node();
        tree.put("/a", &base);
        let version_of = |node: &Znode| {
            let data = node.data().expect("every version has data");
            let text = std::str::from_utf8(data).expect("written as text");
            text.trim_end_matches('.')
                .parse::<i32>()
                .expect("a version")
        };
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut seen = 0;
                    let mut held = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let node = tree.get("/a").expect("a replaced node is always there");
                        let version = node.stat().version;
                        assert!(version >= seen, "versions only grow");
                        if version > 0 {
                            assert_eq!(version_of(&node), version, "data of the version read");
                        }
                        seen = version;
                        // Keep a few handles across later replacements.
                        held.push(node);
                        if held.len() == 64 {
                            for (i, old) in held.drain(..).enumerate() {
                                assert_eq!(version_of(&old), old.stat().version, "held {i}");
                            }
                        }
                    }
                });
            }
            for version in 1..=50_000 {
                // Sizes vary so that released versions are reused for others.
                let text = format!("{version}{}", ".".repeat(version as usize % 200));
                tree.put(
                    "/a",
                    &Node {
                        version,
                        data: Content::New(Data::new(text.as_bytes())),
                        ..base.clone()
                    },
                );
            }
            done.store(true, Ordering::Relaxed);
        });
        assert_eq!(tree.get("/a").unwrap().stat().version, 50_000);
        assert_eq!(version_of(&tree.get("/a").unwrap()), 50_000);
        assert_eq!(tree.node_count(), 5);
    }
}
