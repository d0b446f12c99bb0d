//! Reads answered on the shard (ZooKeeper's `FinalRequestProcessor` for
//! non-transactional requests): data, stats, children, ACLs, watch registration.
//!
//! Order of checks as ZooKeeper's: a missing node is `NoNode` before any ACL
//! check; reads check only for NUL in the path (clients validate the rest).
//!
//! The tree changes under a read (the pipeline commits on its own thread), so a
//! read that sets a watch names the state it observed ([`Registration::after`]):
//! a node's own version for data watches; for a child list or a missing node,
//! the version of the parent (or nearest existing ancestor), whose pzxid every
//! child create and delete raises and which the applier writes before the child
//! itself. Such a read takes that version, reads, and takes it again: the same
//! version both times, and a pzxid already wholly committed, mean nothing it
//! depends on changed in between. Otherwise it tries again, and when a
//! transaction it depends on is being committed right now, it returns
//! [`InFlight`] and is answered after the shard's next `Committed`.

use engine::acl::{self, perms, Id};

use engine::path;
use engine::stat::Stat;
use engine::tree::{join, DataTree};
use engine::txn::EventType;
use engine::znode::Znode;
use engine::{ErrorCode, SessionId, ZkResult, Zxid};
use herd_proto::jute::Write;
use herd_proto::{masked_acls, ReadOp, ReadResult, SetWatches};

use crate::watch::{ConnWatches, Registration, WatchKind, WatchTable};

/// A transaction touching what a read depends on is being committed: answer it
/// after the shard's next `Committed`.
#[derive(Debug, PartialEq, Eq)]
pub struct InFlight;

/// How often a read retries while what it depends on keeps changing, before it
/// waits for the next `Committed` instead.
const ATTEMPTS: usize = 16;

/// What a read needs of its shard.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub tree: &'a DataTree,
    /// The shard has dispatched every transaction up to this zxid: a
    /// persistent watch set now fires for changes after it.
    pub seen_through: Zxid,
}

/// Answers one read into `out` (a whole reply frame), returning the watches it
/// asks for; nothing is written on `InFlight`. Registrations go to the caller,
/// which arms them once the reply is written; `watches` is consulted for
/// checkWatches and removeWatches.
pub fn answer(
    shard: Context<'_>,
    session: SessionId,
    auth: &[Id],
    xid: i32,
    read: &ReadOp,
    out: &mut Vec<u8>,
    watches: &mut ConnWatches<'_>,
) -> Result<Vec<Registration>, InFlight> {
    let tree = shard.tree;
    let zxid = tree.last_zxid();
    let mut added = Vec::new();
    let reply = |out: &mut Vec<u8>, result: ZkResult<()>, body: &dyn Fn(&mut Vec<u8>)| match result
    {
        Ok(()) => herd_proto::reply(out, xid, zxid, ErrorCode::Ok, body),
        Err(code) => herd_proto::reply(out, xid, zxid, code, |_| {}),
    };
    let register = |added: &mut Vec<Registration>, kind, path: &str, after| {
        added.push(Registration {
            kind,
            path: path.to_owned(),
            after,
        })
    };
    match read {
        ReadOp::Exists { path, watch } => match observe(tree, path, *watch)? {
            Observed::Node(node) => {
                if *watch {
                    register(&mut added, WatchKind::Data, path, node.stat().mzxid);
                }
                reply(out, Ok(()), &|out| out.stat(&node.stat()))
            }
            Observed::Missing(since) => {
                if let Some(after) = since {
                    register(&mut added, WatchKind::Data, path, after);
                }
                reply(out, Err(ErrorCode::NoNode), &|_| {})
            }
            Observed::Invalid => reply(out, Err(ErrorCode::BadArguments), &|_| {}),
        },
        ReadOp::GetData { path, watch } => {
            let entry = readable(tree, path, perms::READ, auth);
            match entry {
                Ok(node) => {
                    let stat = node.stat();
                    if *watch {
                        register(&mut added, WatchKind::Data, path, stat.mzxid);
                    }
                    reply(out, Ok(()), &|out| {
                        out.data(node.data());
                        out.stat(&stat);
                    })
                }
                Err(code) => reply(out, Err(code), &|_| {}),
            }
        }
        ReadOp::GetAcl { path } => match readable(tree, path, perms::READ | perms::ADMIN, auth) {
            Ok(node) => {
                let admin = acl::check(node.acl(), perms::ADMIN, auth).is_ok();
                let list = masked_acls(node.acl(), admin);
                let stat = node.stat();
                reply(out, Ok(()), &|out| {
                    out.acls(&list);
                    out.stat(&stat);
                })
            }
            Err(code) => reply(out, Err(code), &|_| {}),
        },
        ReadOp::GetChildren {
            path,
            watch,
            with_stat,
        } => {
            let listed = list_children(tree, path, auth, out, |out, result| match result {
                Ok(stat) => reply(out, Ok(()), &|out| {
                    children(tree, path, out);
                    if *with_stat {
                        out.stat(stat);
                    }
                }),
                Err(code) => reply(out, Err(code), &|_| {}),
            })?;
            if let (true, Some(pzxid)) = (*watch, listed) {
                register(&mut added, WatchKind::Child, path, pzxid);
            }
        }
        ReadOp::GetAllChildrenNumber { path } => match readable(tree, path, perms::READ, auth) {
            Ok(_) => {
                // ZooKeeper counts the paths that start with `path + "/"`: for
                // the root's other name, "", that is the root too.
                let n = descendants(tree, path) + i32::from(path.is_empty());
                reply(out, Ok(()), &|out| out.i32(n))
            }
            Err(code) => reply(out, Err(code), &|_| {}),
        },
        ReadOp::GetEphemerals { prefix } => {
            let all = tree.ephemerals(session);
            let prefix = prefix.trim();
            let list: Vec<String> = if prefix.is_empty() || prefix == "/" {
                all
            } else {
                all.into_iter().filter(|p| p.starts_with(prefix)).collect()
            };
            reply(out, Ok(()), &|out| out.strings(&list))
        }
        ReadOp::MultiRead(ops) => {
            herd_proto::reply(out, xid, zxid, ErrorCode::Ok, |out| {
                for op in ops {
                    match op {
                        ReadOp::GetChildren { path, .. } => {
                            match readable(tree, path, perms::READ, auth) {
                                Ok(_) => herd_proto::multi_read_item(
                                    out,
                                    ReadResult::Children(&tree.children(path)),
                                ),
                                Err(code) => {
                                    herd_proto::multi_read_item(out, ReadResult::Error(code))
                                }
                            }
                        }
                        ReadOp::GetData { path, .. } => {
                            match readable(tree, path, perms::READ, auth) {
                                Ok(node) => herd_proto::multi_read_item(
                                    out,
                                    ReadResult::Data(node.data(), &node.stat()),
                                ),
                                Err(code) => {
                                    herd_proto::multi_read_item(out, ReadResult::Error(code))
                                }
                            }
                        }
                        _ => unreachable!("the decoder admits only getChildren and getData"),
                    }
                }
                herd_proto::multi_read_end(out);
            });
        }
        ReadOp::WhoAmI => reply(out, Ok(()), &|out| {
            out.i32(auth.len() as i32);
            for id in auth {
                out.string(&id.scheme);
                // The digest scheme names its user without the password hash.
                let user = if id.scheme == "digest" {
                    id.id.split(':').next().unwrap_or("")
                } else {
                    &id.id
                };
                out.string(user);
            }
        }),
        ReadOp::CheckWatches { path, kind } => {
            let found = WatchTable::kinds_of(*kind)
                .iter()
                .any(|k| watches.contains(*k, path));
            reply(
                out,
                if found {
                    Ok(())
                } else {
                    Err(ErrorCode::NoWatcher)
                },
                &|_| {},
            )
        }
        ReadOp::RemoveWatches { path, kind } => {
            let mut removed = false;
            for k in WatchTable::kinds_of(*kind) {
                removed |= watches.remove(*k, path);
            }
            reply(
                out,
                if removed {
                    Ok(())
                } else {
                    Err(ErrorCode::NoWatcher)
                },
                &|_| {},
            )
        }
        ReadOp::AddWatch { path, recursive } => {
            let kind = if *recursive {
                WatchKind::Recursive
            } else {
                WatchKind::Persistent
            };
            register(&mut added, kind, path, shard.seen_through);
            reply(out, Ok(()), &|out| out.i32(0))
        }
        ReadOp::SetWatches(w) => {
            let frame = out.len();
            match set_watches(shard, w, out, &mut added) {
                Ok(()) => herd_proto::reply(out, xid, zxid, ErrorCode::Ok, |_| {}),
                Err(InFlight) => {
                    out.truncate(frame);
                    return Err(InFlight);
                }
            }
        }
    }
    Ok(added)
}

/// Writes a getChildren reply with `write` (given the node's stat, or the
/// error) so that the child list and the stat are of one version of the node:
/// it is taken before and after the list, and must be the same version with
/// its pzxid wholly committed. Returns that pzxid (`None` after an error).
fn list_children(
    tree: &DataTree,
    path: &str,
    auth: &[Id],
    out: &mut Vec<u8>,
    write: impl Fn(&mut Vec<u8>, ZkResult<&Stat>),
) -> Result<Option<Zxid>, InFlight> {
    let frame = out.len();
    for _ in 0..ATTEMPTS {
        let node = match readable(tree, path, perms::READ, auth) {
            Ok(node) => node,
            Err(code) => {
                write(out, Err(code));
                return Ok(None);
            }
        };
        let stat = node.stat();
        if stat.pzxid > tree.last_zxid() {
            return Err(InFlight);
        }
        write(out, Ok(&stat));
        if tree.get(path).is_some_and(|again| again.is(&node)) {
            return Ok(Some(stat.pzxid));
        }
        out.truncate(frame);
    }
    Err(InFlight)
}

/// What a read found at a path.
enum Observed {
    Node(Znode),
    /// No node; with a watch asked for, the zxid of the state observed
    /// (see [`absent_since`]).
    Missing(Option<Zxid>),
    /// The path holds a NUL.
    Invalid,
}

/// Looks `path` up; a read that will watch a missing node also learns when
/// the node last appeared or disappeared.
fn observe(tree: &DataTree, path: &str, watch: bool) -> Result<Observed, InFlight> {
    if path.contains('\0') {
        return Ok(Observed::Invalid);
    }
    for _ in 0..ATTEMPTS {
        if let Some(node) = tree.get(path) {
            return Ok(Observed::Node(node));
        }
        if !watch {
            return Ok(Observed::Missing(None));
        }
        if let Some(since) = absent_since(tree, path)? {
            return Ok(Observed::Missing(Some(since)));
        }
        // Created meanwhile: look again.
    }
    Err(InFlight)
}

/// For a node found missing: the zxid of the last create or delete of it (or
/// of the ancestor whose absence implies its own), read as the pzxid of its
/// nearest existing ancestor; `None` if the node exists after all. Every
/// create or delete below an ancestor passes through one of its children, so
/// nothing that could bring `path` into being happened after that pzxid while
/// the ancestor keeps the same version.
fn absent_since(tree: &DataTree, path: &str) -> Result<Option<Zxid>, InFlight> {
    for _ in 0..ATTEMPTS {
        let mut missing = path;
        let mut ancestor = path::parent(path);
        let found = loop {
            if ancestor.is_empty() {
                // Not an absolute path: no create can ever make it.
                return Ok(Some(0));
            }
            match tree.get(ancestor) {
                Some(node) => break node,
                None => {
                    missing = ancestor;
                    ancestor = path::parent(ancestor);
                }
            }
        };
        let pzxid = found.stat().pzxid;
        if pzxid > tree.last_zxid() {
            return Err(InFlight);
        }
        if tree.get(missing).is_some() {
            if missing == path {
                return Ok(None);
            }
            continue;
        }
        if tree.get(ancestor).is_some_and(|again| again.is(&found)) {
            return Ok(Some(pzxid));
        }
    }
    Err(InFlight)
}

/// The node at `path` if it exists and the session may `perm` on it.
fn readable(tree: &DataTree, path: &str, perm: i32, auth: &[Id]) -> ZkResult<Znode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
    acl::check(node.acl(), perm, auth)?;
    Ok(node)
}

/// Encodes the child names as a jute vector straight from the tree.
fn children(tree: &DataTree, path: &str, out: &mut Vec<u8>) {
    let at = out.len();
    out.i32(0);
    let mut n = 0i32;
    tree.for_each_child(path, |name| {
        out.string(name);
        n += 1;
    });
    out[at..at + 4].copy_from_slice(&n.to_be_bytes());
}

fn descendants(tree: &DataTree, path: &str) -> i32 {
    let mut count = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        tree.for_each_child(&p, |name| {
            count += 1;
            stack.push(join(&p, name));
        });
    }
    count
}

/// Re-registers a reconnecting client's watches; changes it missed since
/// `relative_zxid` are notified at once instead (ZooKeeper's `DataTree.setWatches`).
fn set_watches(
    shard: Context<'_>,
    w: &SetWatches,
    out: &mut Vec<u8>,
    added: &mut Vec<Registration>,
) -> Result<(), InFlight> {
    let tree = shard.tree;
    let fire = |out: &mut Vec<u8>, kind: EventType, p: &str| {
        herd_proto::notification(out, -1, kind as i32, p)
    };
    let mut register = |kind, path: &str, after| {
        added.push(Registration {
            kind,
            path: path.to_owned(),
            after,
        })
    };
    for p in &w.data {
        match tree.get(p).map(|n| n.stat().mzxid) {
            None => fire(out, EventType::NodeDeleted, p),
            Some(mzxid) if mzxid > w.relative_zxid => fire(out, EventType::NodeDataChanged, p),
            Some(mzxid) => register(WatchKind::Data, p, mzxid),
        }
    }
    for p in &w.exist {
        match observe(tree, p, true)? {
            Observed::Node(_) => fire(out, EventType::NodeCreated, p),
            Observed::Missing(since) => register(WatchKind::Data, p, since.unwrap_or(0)),
            Observed::Invalid => {}
        }
    }
    for p in &w.child {
        match tree.get(p).map(|n| n.stat().pzxid) {
            None => fire(out, EventType::NodeDeleted, p),
            Some(pzxid) if pzxid > w.relative_zxid => fire(out, EventType::NodeChildrenChanged, p),
            Some(pzxid) => register(WatchKind::Child, p, pzxid),
        }
    }
    let now = shard.seen_through;
    for p in &w.persistent {
        register(WatchKind::Persistent, p, now);
    }
    for p in &w.recursive {
        register(WatchKind::Recursive, p, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::znode::{Data, Node};

    /// A tree with `/a` (pzxid `pzxid`) and `/a/x`, committed through `last`.
    fn tree(pzxid: Zxid, last: Zxid) -> DataTree {
        let tree = DataTree::new();
        let open = std::sync::Arc::new(acl::Acl::open_unsafe());
        let leaf = Node::new(Data::new(b""), open, 1, 0, 0);
        let a = Node {
            pzxid,
            num_children: 1,
            ..leaf.clone()
        };
        tree.put("/a", &a);
        tree.put("/a/x", &leaf);
        tree.commit(last, &[]);
        tree
    }

    #[test]
    fn a_missing_node_was_last_changed_at_its_nearest_ancestors_pzxid() {
        let t = tree(7, 7);
        assert_eq!(absent_since(&t, "/a/y"), Ok(Some(7)), "parent exists");
        assert_eq!(
            absent_since(&t, "/a/y/z"),
            Ok(Some(7)),
            "grandparent exists"
        );
        let root_pzxid = t.get("/").unwrap().stat().pzxid;
        assert_eq!(
            absent_since(&t, "/b/c"),
            Ok(Some(root_pzxid)),
            "up to the root"
        );
        assert_eq!(absent_since(&t, "/a/x"), Ok(None), "it exists after all");
        assert_eq!(
            absent_since(&t, "relative"),
            Ok(Some(0)),
            "cannot ever exist"
        );
    }

    #[test]
    fn reads_wait_while_the_parents_last_child_change_is_being_committed() {
        // pzxid 8 with only 7 committed: transaction 8 has written /a and may
        // not have written its child yet.
        let t = tree(8, 7);
        assert_eq!(absent_since(&t, "/a/y"), Err(InFlight));
        let mut out = Vec::new();
        let listed = list_children(&t, "/a", &[], &mut out, |out, _| out.push(1));
        assert_eq!(listed, Err(InFlight));
        assert!(out.is_empty(), "nothing written while in flight");
        t.commit(8, &[]);
        assert_eq!(absent_since(&t, "/a/y"), Ok(Some(8)));
        let listed = list_children(&t, "/a", &[], &mut out, |out, stat| {
            assert_eq!(stat.map(|s| s.num_children), Ok(1));
            out.push(1)
        });
        assert_eq!((listed, out), (Ok(Some(8)), vec![1]));
    }

    #[test]
    fn a_child_list_of_a_missing_node_is_no_node() {
        let t = tree(7, 7);
        let mut out = Vec::new();
        let listed = list_children(&t, "/none", &[], &mut out, |out, result| {
            assert_eq!(result.err(), Some(ErrorCode::NoNode));
            out.push(0)
        });
        assert_eq!(listed, Ok(None));
    }
}
