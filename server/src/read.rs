//! Reads answered on the shard (ZooKeeper's `FinalRequestProcessor` for
//! non-transactional requests): data, stats, children, ACLs, watch registration.
//!
//! Order of checks as ZooKeeper's: a missing node is `NoNode` before any ACL
//! check; reads check only for NUL in the path (clients validate the rest).

use engine::acl::{self, perms, Id};

use engine::tree::{join, DataTree};
use engine::txn::EventType;
use engine::znode::Znode;
use engine::{ErrorCode, SessionId, ZkResult};

use crate::pipeline::ConnId;
use crate::proto::jute::Write;
use crate::proto::{self, masked_acls, xid, ReadOp, ReadResult, SetWatches};
use crate::shard::Shard;
use crate::watch::{WatchKind, WatchTable};

/// Answers one read into `out` (a whole reply frame).
pub fn answer(
    shard: &Shard,
    conn: ConnId,
    session: SessionId,
    auth: &[Id],
    xid: i32,
    read: ReadOp,
    out: &mut Vec<u8>,
) {
    let tree = &*shard.tree;
    let zxid = tree.last_zxid();
    let mut watches = shard.watches.borrow_mut();
    let reply = |out: &mut Vec<u8>, result: ZkResult<()>, body: &dyn Fn(&mut Vec<u8>)| match result
    {
        Ok(()) => proto::reply(out, xid, zxid, ErrorCode::Ok, body),
        Err(code) => proto::reply(out, xid, zxid, code, |_| {}),
    };
    match read {
        ReadOp::Exists { path, watch } => {
            let node = lookup(tree, &path);
            if watch && node != Err(ErrorCode::BadArguments) {
                watches.add(conn, WatchKind::Data, &path);
            }
            match node {
                Ok(stat) => reply(out, Ok(()), &|out| out.stat(&stat)),
                Err(code) => reply(out, Err(code), &|_| {}),
            }
        }
        ReadOp::GetData { path, watch } => {
            let entry = readable(tree, &path, perms::READ, auth);
            match entry {
                Ok(node) => {
                    if watch {
                        watches.add(conn, WatchKind::Data, &path);
                    }
                    let stat = node.stat();
                    reply(out, Ok(()), &|out| {
                        out.data(node.data());
                        out.stat(&stat);
                    })
                }
                Err(code) => reply(out, Err(code), &|_| {}),
            }
        }
        ReadOp::GetAcl { path } => match readable(tree, &path, perms::READ | perms::ADMIN, auth) {
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
        } => match readable(tree, &path, perms::READ, auth) {
            Ok(node) => {
                if watch {
                    watches.add(conn, WatchKind::Child, &path);
                }
                let stat = node.stat();
                reply(out, Ok(()), &|out| {
                    children(tree, &path, out);
                    if with_stat {
                        out.stat(&stat);
                    }
                })
            }
            Err(code) => reply(out, Err(code), &|_| {}),
        },
        ReadOp::GetAllChildrenNumber { path } => match readable(tree, &path, perms::READ, auth) {
            Ok(_) => {
                let n = descendants(tree, &path);
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
            proto::reply(out, xid, zxid, ErrorCode::Ok, |out| {
                for op in ops {
                    match op {
                        ReadOp::GetChildren { path, .. } => {
                            match readable(tree, &path, perms::READ, auth) {
                                Ok(_) => proto::multi_read_item(
                                    out,
                                    ReadResult::Children(&tree.children(&path)),
                                ),
                                Err(code) => proto::multi_read_item(out, ReadResult::Error(code)),
                            }
                        }
                        ReadOp::GetData { path, .. } => {
                            match readable(tree, &path, perms::READ, auth) {
                                Ok(node) => proto::multi_read_item(
                                    out,
                                    ReadResult::Data(node.data(), &node.stat()),
                                ),
                                Err(code) => proto::multi_read_item(out, ReadResult::Error(code)),
                            }
                        }
                        _ => unreachable!("the decoder admits only getChildren and getData"),
                    }
                }
                proto::multi_read_end(out);
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
            let found = WatchTable::kinds_of(kind)
                .iter()
                .any(|k| watches.contains(conn, *k, &path));
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
            for k in WatchTable::kinds_of(kind) {
                removed |= watches.remove(conn, *k, &path);
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
            let kind = if recursive {
                WatchKind::Recursive
            } else {
                WatchKind::Persistent
            };
            watches.add(conn, kind, &path);
            reply(out, Ok(()), &|out| out.i32(0))
        }
        ReadOp::SetWatches(w) => {
            set_watches(tree, &mut watches, conn, &w, out);
            proto::reply(out, xid::SET_WATCHES, zxid, ErrorCode::Ok, |_| {});
        }
    }
}

fn lookup(tree: &DataTree, path: &str) -> ZkResult<engine::stat::Stat> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    tree.get(path).map(|n| n.stat()).ok_or(ErrorCode::NoNode)
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
    tree: &DataTree,
    watches: &mut WatchTable,
    conn: ConnId,
    w: &SetWatches,
    out: &mut Vec<u8>,
) {
    let fire =
        |out: &mut Vec<u8>, kind: EventType, p: &str| proto::notification(out, -1, kind as i32, p);
    for p in &w.data {
        match tree.get(p).map(|n| n.stat().mzxid) {
            None => fire(out, EventType::NodeDeleted, p),
            Some(mzxid) if mzxid > w.relative_zxid => fire(out, EventType::NodeDataChanged, p),
            Some(_) => watches.add(conn, WatchKind::Data, p),
        }
    }
    for p in &w.exist {
        if tree.get(p).is_some() {
            fire(out, EventType::NodeCreated, p);
        } else {
            watches.add(conn, WatchKind::Data, p);
        }
    }
    for p in &w.child {
        match tree.get(p).map(|n| n.stat().pzxid) {
            None => fire(out, EventType::NodeDeleted, p),
            Some(pzxid) if pzxid > w.relative_zxid => fire(out, EventType::NodeChildrenChanged, p),
            Some(_) => watches.add(conn, WatchKind::Child, p),
        }
    }
    for p in &w.persistent {
        watches.add(conn, WatchKind::Persistent, p);
    }
    for p in &w.recursive {
        watches.add(conn, WatchKind::Recursive, p);
    }
}
