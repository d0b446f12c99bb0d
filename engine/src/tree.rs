//! The data tree: every znode, readable from any thread without locks, written by
//! exactly one thread (the commit pipeline's applier).
//!
//! Nodes live in a lock-free skip list keyed by `parent + "\0" + name` (the root's
//! key is empty). Paths cannot contain NUL and NUL sorts before every other
//! character, so the children of a node are one contiguous key range, in name order,
//! and reading them never walks grandchildren.
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

use arc_swap::ArcSwap;
use crossbeam_skiplist::{SkipMap, SkipSet};

use crate::acl::Acl;
use crate::path;
use crate::stat::{NodeKind, Stat};
use crate::types::{SessionId, TimeMs, Zxid};

/// Znode data. ZooKeeper keeps null (length -1 on the wire) apart from empty.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Data(Option<Arc<[u8]>>);

impl Data {
    pub fn null() -> Data {
        Data(None)
    }

    pub fn new(bytes: &[u8]) -> Data {
        Data(Some(bytes.into()))
    }

    /// The bytes, `None` for null data.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One znode. Cloning is cheap: data and ACL are shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub data: Data,
    pub acl: Arc<[Acl]>,
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime: TimeMs,
    pub mtime: TimeMs,
    pub version: i32,
    /// Number of children ever created here (ZooKeeper's persisted cversion). The
    /// sequential suffix is this value; clients see `2 * child_creates - num_children`.
    pub child_creates: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub num_children: i32,
}

impl Node {
    /// A fresh node created at `zxid`.
    pub fn new(data: Data, acl: Arc<[Acl]>, zxid: Zxid, time: TimeMs, owner: i64) -> Node {
        Node {
            data,
            acl,
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            child_creates: 0,
            aversion: 0,
            ephemeral_owner: owner,
            num_children: 0,
        }
    }

    /// The `Stat` clients see.
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.child_creates * 2 - self.num_children,
            aversion: self.aversion,
            // Clients see the owner of normal ephemerals only; containers and TTL nodes show 0.
            ephemeral_owner: match self.kind() {
                NodeKind::Ephemeral(session) => session,
                _ => 0,
            },
            data_length: self.data.len() as i32,
            num_children: self.num_children,
            pzxid: self.pzxid,
        }
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.ephemeral_owner)
    }
}

/// The shared tree. See the module documentation for its invariants.
pub struct DataTree {
    /// Each value is swapped atomically on update (see `put`).
    nodes: SkipMap<Box<str>, ArcSwap<Node>>,
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
    /// Scratch buffer for building keys, so lookups do not allocate.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    /// Scratch bounds of a child range.
    static RANGE: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

fn write_key(path: &str, out: &mut String) {
    out.clear();
    if path != "/" {
        out.push_str(path::parent(path));
        out.push('\0');
        out.push_str(path::name(path));
    }
}

/// The path a key stands for (the inverse of `write_key`).
fn path_of_key(key: &str, out: &mut String) {
    out.clear();
    match key.split_once('\0') {
        None => out.push('/'),
        Some(("/", name)) => {
            out.push('/');
            out.push_str(name);
        }
        Some((parent, name)) => {
            out.push_str(parent);
            out.push('/');
            out.push_str(name);
        }
    }
}

/// Runs `f` on `path`'s key, built in a thread-local buffer (no allocation).
fn with_key<R>(path: &str, f: impl FnOnce(&str) -> R) -> R {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        write_key(path, &mut k);
        f(&k)
    })
}

/// A node's key, allocated at its exact length (it lives as long as the node).
fn key_of(path: &str) -> Box<str> {
    with_key(path, |k| Box::from(k))
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
        let open: Arc<[Acl]> = Acl::open_unsafe().into();
        let empty = Data::new(&[]);
        let node = |children| Node {
            num_children: children,
            ..Node::new(empty.clone(), open.clone(), 0, 0, 0)
        };
        tree.put("/", node(1));
        tree.put("/zookeeper", node(2));
        tree.put("/zookeeper/quota", node(0));
        let config = Node {
            acl: Acl::read_unsafe().into(),
            aversion: -1,
            ..node(0)
        };
        tree.put("/zookeeper/config", config);
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
    pub fn get(&self, path: &str) -> Option<Arc<Node>> {
        self.entry(path).map(|e| e.value().load_full())
    }

    /// The skip-list entry of `path`, looked up without allocating.
    fn entry(
        &self,
        path: &str,
    ) -> Option<crossbeam_skiplist::map::Entry<'_, Box<str>, ArcSwap<Node>>> {
        with_key(path, |k| self.nodes.get(k))
    }

    /// Visits the names of `path`'s children in order, without allocating
    /// (`f` must not list children itself: the range bounds are thread-local).
    pub fn for_each_child(&self, path: &str, mut f: impl FnMut(&str)) {
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
                f(&entry.key()[path.len() + 1..]);
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
    pub fn put(&self, path: &str, node: Node) {
        let new_len = node.data.len();
        let kind = node.kind();
        if let Some(entry) = self.entry(path) {
            let old = entry.value().swap(Arc::new(node));
            self.data_bytes.fetch_add(new_len, Ordering::Relaxed);
            self.data_bytes.fetch_sub(old.data.len(), Ordering::Relaxed);
            // Only replay over a fuzzy snapshot recreates a node as another kind.
            if old.kind() != kind {
                self.unindex(path, &old);
                self.index(path, kind);
            }
            return;
        }
        self.node_count.fetch_add(1, Ordering::Relaxed);
        self.data_bytes.fetch_add(new_len, Ordering::Relaxed);
        self.index(path, kind);
        self.nodes.insert(key_of(path), ArcSwap::from_pointee(node));
    }

    /// Inserts a node known to be absent (loading a snapshot, whose paths are
    /// distinct): one skip-list search instead of `put`'s two. Writer only.
    pub(crate) fn insert_new(&self, path: &str, node: Node) {
        self.node_count.fetch_add(1, Ordering::Relaxed);
        self.data_bytes
            .fetch_add(node.data.len(), Ordering::Relaxed);
        self.index(path, node.kind());
        self.nodes.insert(key_of(path), ArcSwap::from_pointee(node));
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
            self.unindex(path, &old);
            self.node_count.fetch_sub(1, Ordering::Relaxed);
            self.data_bytes.fetch_sub(old.data.len(), Ordering::Relaxed);
        }
    }

    fn unindex(&self, path: &str, node: &Node) {
        match node.kind() {
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
            let node = entry.value().load();
            if node.num_children != count {
                let recounted = Node {
                    num_children: count,
                    ..(**node).clone()
                };
                entry.value().store(Arc::new(recounted));
            }
        }
    }

    /// Visits every node with its path, parents before their children (key
    /// order), without copying nodes. A fuzzy view while the writer runs.
    pub fn for_each_node(&self, mut f: impl FnMut(&str, &Node)) {
        let mut path = String::new();
        for entry in self.nodes.iter() {
            path_of_key(entry.key(), &mut path);
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
        out.push((path.to_owned(), (*node).clone()));
        for child in self.children(path) {
            self.walk(&join(path, &child), out);
        }
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

    #[test]
    fn initial_tree_matches_zookeeper() {
        let tree = DataTree::new();
        assert_eq!(tree.children("/"), vec!["zookeeper"]);
        assert_eq!(tree.children("/zookeeper"), vec!["config", "quota"]);
        assert_eq!(tree.get("/").unwrap().stat().cversion, -1);
        assert_eq!(tree.get("/zookeeper").unwrap().stat().cversion, -2);
        assert_eq!(tree.get("/zookeeper/config").unwrap().aversion, -1);
        assert_eq!(tree.node_count(), 4);
    }

    #[test]
    fn children_are_one_range_without_grandchildren() {
        let tree = DataTree::new();
        let n = (*tree.get("/").unwrap()).clone();
        for p in ["/a", "/a/x", "/a/x/deep", "/a/y", "/ab", "/a-"] {
            tree.put(p, n.clone());
        }
        assert_eq!(tree.children("/a"), vec!["x", "y"]);
        assert_eq!(tree.children("/"), vec!["a", "a-", "ab", "zookeeper"]);
        tree.remove("/a/x");
        assert_eq!(tree.children("/a"), vec!["y"]);
    }

    #[test]
    fn recount_fixes_the_parents_named_and_only_those() {
        let tree = DataTree::new();
        let n = (*tree.get("/").unwrap()).clone();
        let leaf = Node {
            num_children: 0,
            ..n.clone()
        };
        // As a fuzzy snapshot can hold them: /p counted before /p/a and /p/b
        // were added, /q counted with a child that is gone.
        tree.put("/p", leaf.clone());
        tree.put("/p/a", leaf.clone());
        tree.put("/p/b", leaf.clone());
        tree.put(
            "/q",
            Node {
                num_children: 1,
                ..leaf
            },
        );
        tree.recount_children_of(&["/p".to_owned(), "/gone".to_owned()]);
        assert_eq!(tree.get("/p").unwrap().num_children, 2);
        assert_eq!(
            tree.get("/q").unwrap().num_children,
            1,
            "not named: left alone"
        );
        tree.recount_children_of(&["/q".to_owned()]);
        assert_eq!(tree.get("/q").unwrap().num_children, 0);
    }

    #[test]
    fn readers_never_miss_a_node_being_replaced() {
        let tree = DataTree::new();
        let base = (*tree.get("/").unwrap()).clone();
        tree.put("/a", base.clone());
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut seen = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        let node = tree.get("/a").expect("a replaced node is always there");
                        assert!(node.version as u64 >= seen, "versions only grow");
                        seen = node.version as u64;
                    }
                });
            }
            for version in 1..=50_000 {
                tree.put(
                    "/a",
                    Node {
                        version,
                        ..base.clone()
                    },
                );
            }
            done.store(true, Ordering::Relaxed);
        });
        assert_eq!(tree.get("/a").unwrap().version, 50_000);
        assert_eq!(tree.node_count(), 5);
    }
}
