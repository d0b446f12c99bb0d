//! Transactions: the deterministic effect of a prepared write, and how it is
//! applied.
//!
//! ```text
//!   WriteOp ──prep::execute──► Txn ──apply──► View (pending overlay) ──commit──► DataTree
//!                                      │
//!                                      └─► OpResult + WatchEvents
//! ```
//!
//! [`apply`] is the only code that changes znodes. During preparation it runs
//! against a [`View`]: the tree plus the [`Pending`] changes of transactions that
//! are prepared but not yet committed, so the next request is validated against
//! the state it will really meet. The [`Change`]s it records are then committed
//! to the tree in zxid order. Replaying a logged transaction is the same `apply`.
//!
//! `apply` is idempotent against state that already holds later changes, as a
//! fuzzy snapshot does: a create of an existing node overwrites it without counting
//! it twice, deletes and updates of missing nodes do nothing, and versions, cversions
//! and pzxids come from the transaction or only grow. Replaying the log after a
//! snapshot's zxid therefore ends in the state the log describes.

use foldhash::HashMap;
use std::cell::RefCell;
use std::sync::Arc;

use crate::acl::{Acl, AclList};
use crate::error::ErrorCode;
use crate::op::OpResult;
use crate::path;
use crate::stat::NodeKind;
use crate::tree::DataTree;
use crate::types::{SessionId, TimeMs, Zxid};
use crate::znode::{Content, Data, Node};

/// A prepared write. Applying it cannot fail.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
// A multi holds transactions: the recursive field needs its bounds spelled out.
#[rkyv(serialize_bounds(
    __S: rkyv::ser::Writer + rkyv::ser::Allocator + rkyv::ser::Sharing,
    __S::Error: rkyv::rancor::Source,
))]
#[rkyv(deserialize_bounds(__D: rkyv::de::Pooling, __D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(
    __C: rkyv::validation::ArchiveContext + rkyv::validation::SharedContext,
    __C::Error: rkyv::rancor::Source,
)))]
pub enum Txn {
    CreateSession {
        session: SessionId,
        timeout_ms: i32,
    },
    CloseSession {
        session: SessionId,
    },
    Create {
        path: String,
        data: Data,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Data,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
    },
    Multi(#[rkyv(omit_bounds)] Vec<Txn>),
    /// A write that failed validation, with its error's wire code.
    Error(i32),
}

/// Watch event types (`Watcher.Event.EventType`), numbered as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

/// A change that fires watches on `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventType,
    pub path: String,
}

/// One step of committing a transaction to the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(String, Node),
    Remove(String),
    OpenSession(SessionId, i32),
    CloseSession(SessionId),
}

/// A prepared node state (`None`: deleted) and the zxid that wrote it.
type PendingNode = (Zxid, Option<Node>);

/// Node states prepared but not yet committed, with the zxid that last wrote each.
#[derive(Default)]
pub struct Pending {
    nodes: HashMap<String, PendingNode>,
}

impl Pending {
    /// Forgets the entries whose latest writer was `zxid`, now that it is committed.
    pub fn retire(&mut self, zxid: Zxid, changes: &[Change]) {
        for change in changes {
            if let Change::Put(p, _) | Change::Remove(p) = change {
                if self.nodes.get(p).is_some_and(|(z, _)| *z == zxid) {
                    self.nodes.remove(p);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The tree as the transaction at `zxid` sees it, recording what it changes.
pub struct View<'a> {
    tree: &'a DataTree,
    pending: &'a mut Pending,
    acls: &'a mut AclCache,
    pub zxid: Zxid,
    pub time: TimeMs,
    changes: Vec<Change>,
    undo: Vec<(String, Option<PendingNode>)>,
    /// The last [`READ_MEMO`] nodes read from the tree (`None`: absent), so that `apply`
    /// does not search the skip list again for the nodes `prepare` looked at.
    /// Valid while the view lives: the tree changes only when a transaction is
    /// committed, after its view has ended.
    read: RefCell<Vec<(String, Option<Node>)>>,
}

/// How many tree reads a [`View`] remembers: a create or delete reads a node
/// and its parent.
const READ_MEMO: usize = 2;

/// A point to roll a [`View`] back to (a failed multi).
pub struct Mark {
    changes: usize,
    undo: usize,
}

impl<'a> View<'a> {
    pub fn new(
        tree: &'a DataTree,
        pending: &'a mut Pending,
        acls: &'a mut AclCache,
        zxid: Zxid,
        time: TimeMs,
    ) -> Self {
        View {
            tree,
            pending,
            acls,
            zxid,
            time,
            changes: Vec::new(),
            undo: Vec::new(),
            read: RefCell::new(Vec::new()),
        }
    }

    pub fn get(&self, path: &str) -> Option<Node> {
        if let Some((_, node)) = self.pending.nodes.get(path) {
            return node.clone();
        }
        let mut read = self.read.borrow_mut();
        if let Some((_, node)) = read.iter().find(|(p, _)| p == path) {
            return node.clone();
        }
        let node = self.tree.get(path).map(|n| n.node());
        if read.len() == READ_MEMO {
            read.remove(0);
        }
        read.push((path.to_owned(), node.clone()));
        node
    }

    fn put(&mut self, path: &str, node: Node) {
        self.record(path, Some(node.clone()));
        self.changes.push(Change::Put(path.to_owned(), node));
    }

    fn remove(&mut self, path: &str) {
        self.record(path, None);
        self.changes.push(Change::Remove(path.to_owned()));
    }

    fn record(&mut self, path: &str, node: Option<Node>) {
        let old = self
            .pending
            .nodes
            .insert(path.to_owned(), (self.zxid, node));
        self.undo.push((path.to_owned(), old));
    }

    pub fn mark(&self) -> Mark {
        Mark {
            changes: self.changes.len(),
            undo: self.undo.len(),
        }
    }

    /// Undoes everything recorded since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        for (path, old) in self.undo.drain(mark.undo..).rev() {
            match old {
                Some(entry) => self.pending.nodes.insert(path, entry),
                None => self.pending.nodes.remove(&path),
            };
        }
        self.changes.truncate(mark.changes);
    }

    /// The normal ephemerals `session` owns, prepared ones included.
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        let mut paths: Vec<String> = self
            .tree
            .ephemerals(session)
            .into_iter()
            .filter(|p| !self.pending.nodes.contains_key(p))
            .collect();
        for (p, (_, node)) in &self.pending.nodes {
            if node
                .as_ref()
                .is_some_and(|n| n.kind() == NodeKind::Ephemeral(session))
            {
                paths.push(p.clone());
            }
        }
        paths.sort();
        paths
    }

    /// Ends the view, returning the changes to commit.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}

/// Interns ACL lists: most nodes share a handful.
#[derive(Default)]
pub struct AclCache {
    lists: HashMap<Vec<Acl>, AclList>,
}

impl AclCache {
    pub fn intern(&mut self, acl: &[Acl]) -> AclList {
        if let Some(list) = self.lists.get(acl) {
            return list.clone();
        }
        let list = Arc::new(acl.to_vec());
        self.lists.insert(acl.to_vec(), list.clone());
        list
    }
}

/// Applies `txn` to `view`, returning the client result and the watch events in
/// the order ZooKeeper fires them.
pub fn apply(txn: &Txn, view: &mut View<'_>, events: &mut Vec<WatchEvent>) -> OpResult {
    let zxid = view.zxid;
    match txn {
        Txn::CreateSession {
            session,
            timeout_ms,
        } => {
            view.changes
                .push(Change::OpenSession(*session, *timeout_ms));
            OpResult::CreateSession
        }
        Txn::CloseSession { session } => {
            for p in view.ephemerals(*session) {
                delete(view, &p, events);
            }
            view.changes.push(Change::CloseSession(*session));
            OpResult::CloseSession
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            let parent_path = path::parent(path);
            // Replaying over a fuzzy snapshot: the parent may be gone already (a
            // later delete is in the log too) and the node may already be there.
            let Some(mut parent) = view.get(parent_path) else {
                return OpResult::Error(ErrorCode::NoNode);
            };
            parent.child_creates = parent.child_creates.max(*parent_cversion);
            if view.get(path).is_none() {
                parent.num_children += 1;
            }
            parent.pzxid = parent.pzxid.max(zxid);
            let acl = view.acls.intern(acl);
            let node = Node::new(data.clone(), acl, zxid, view.time, *ephemeral_owner);
            let stat = node.stat();
            view.put(parent_path, parent);
            view.put(path, node);
            events.push(WatchEvent {
                kind: EventType::NodeCreated,
                path: path.clone(),
            });
            events.push(WatchEvent {
                kind: EventType::NodeChildrenChanged,
                path: parent_path.to_owned(),
            });
            OpResult::Create {
                path: path.clone(),
                stat,
            }
        }
        Txn::Delete { path } => {
            delete(view, path, events);
            OpResult::Delete
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            let Some(mut node) = view.get(path) else {
                return OpResult::Error(ErrorCode::NoNode);
            };
            node.data = Content::New(data.clone());
            node.version = *version;
            node.mzxid = zxid;
            node.mtime = view.time;
            let stat = node.stat();
            view.put(path, node);
            events.push(WatchEvent {
                kind: EventType::NodeDataChanged,
                path: path.clone(),
            });
            OpResult::SetData { stat }
        }
        Txn::SetAcl { path, acl, version } => {
            let Some(mut node) = view.get(path) else {
                return OpResult::Error(ErrorCode::NoNode);
            };
            node.acl = view.acls.intern(acl);
            node.aversion = *version;
            let stat = node.stat();
            view.put(path, node);
            OpResult::SetAcl { stat }
        }
        Txn::Check { .. } => OpResult::Check,
        Txn::Multi(txns) => OpResult::Multi(txns.iter().map(|t| apply(t, view, events)).collect()),
        Txn::Error(code) => OpResult::Error(ErrorCode::from_code(*code)),
    }
}

/// Deletes `path`; a no-op when it is already gone (replay over a fuzzy snapshot).
fn delete(view: &mut View<'_>, path: &str, events: &mut Vec<WatchEvent>) {
    let parent_path = path::parent(path);
    if view.get(path).is_none() {
        return;
    }
    if let Some(mut parent) = view.get(parent_path) {
        parent.num_children -= 1;
        parent.pzxid = parent.pzxid.max(view.zxid);
        view.put(parent_path, parent);
    }
    view.remove(path);
    events.push(WatchEvent {
        kind: EventType::NodeDeleted,
        path: path.to_owned(),
    });
    events.push(WatchEvent {
        kind: EventType::NodeChildrenChanged,
        path: parent_path.to_owned(),
    });
}

impl DataTree {
    /// Commits the changes of the transaction at `zxid`. Writer only.
    pub fn commit(&self, zxid: Zxid, changes: &[Change]) {
        self.begin_commit(zxid);
        for change in changes {
            match change {
                Change::Put(p, node) => self.put(p, node),
                Change::Remove(p) => self.remove(p),
                Change::OpenSession(s, timeout) => self.open_session(*s, *timeout),
                Change::CloseSession(s) => self.close_session(*s),
            }
        }
        self.end_commit(zxid);
    }
}

/// Re-applies a logged transaction during recovery: the same [`apply`] that ran
/// when it was prepared, straight onto the tree.
pub fn replay(tree: &DataTree, acls: &mut AclCache, zxid: Zxid, time: TimeMs, txn: &Txn) {
    replay_noting(tree, acls, zxid, time, txn, &mut Reparented::default());
}

/// Parents whose children a replay created or deleted: after replaying over a
/// fuzzy snapshot, only their child counts can be off (see
/// [`DataTree::recount_children_of`]).
#[derive(Default)]
pub struct Reparented {
    pub parents: std::collections::HashSet<String>,
    /// The parent noted last: runs of changes under one parent skip the hashing.
    last: String,
}

impl Reparented {
    /// Notes the parents of the nodes the changes of the transaction at
    /// `zxid` create or delete.
    pub fn note_changes(&mut self, zxid: Zxid, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Put(path, node) if node.czxid == zxid => self.note(path),
                Change::Remove(path) => self.note(path),
                _ => {}
            }
        }
    }

    fn note(&mut self, path: &str) {
        let parent = crate::path::parent(path);
        if parent != self.last {
            self.last.clear();
            self.last.push_str(parent);
            if !self.parents.contains(parent) {
                self.parents.insert(parent.to_owned());
            }
        }
    }
}

/// [`replay`], noting in `reparented` the parents of nodes it creates or deletes.
pub fn replay_noting(
    tree: &DataTree,
    acls: &mut AclCache,
    zxid: Zxid,
    time: TimeMs,
    txn: &Txn,
    reparented: &mut Reparented,
) {
    let mut pending = Pending::default();
    let mut view = View::new(tree, &mut pending, acls, zxid, time);
    apply(txn, &mut view, &mut Vec::new());
    let changes = view.into_changes();
    reparented.note_changes(zxid, &changes);
    tree.commit(zxid, &changes);
}
