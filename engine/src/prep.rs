//! Request preparation (ZooKeeper's `PrepRequestProcessor`): validate a write
//! against the state it will meet, in ZooKeeper's order of checks so that the
//! same error code comes back, and turn it into a [`Txn`].
//!
//! A failed write still becomes a transaction (`Txn::Error`) and takes a zxid, as
//! in ZooKeeper. A multi is all or nothing: when op `i` fails, the ops before it
//! report `Ok`, op `i` its error, the ops after it `RuntimeInconsistency`, and none
//! of their changes stay in the view.

use crate::acl::{self, perms, Id};
use crate::error::{ErrorCode, ZkResult};
use crate::op::{CreateMode, CreateOp, OpResult, WriteOp};
use crate::path;
use crate::stat::{NodeKind, CONTAINER_OWNER, TTL_MAX_MS};
use crate::txn::{apply, Txn, View, WatchEvent};
use crate::types::SessionId;

/// Who is asking, and the server settings that change validation.
pub struct Context<'a> {
    pub session: SessionId,
    pub auth: &'a [Id],
    /// `zookeeper.extendedTypesEnabled`: TTL nodes allowed.
    pub extended_types: bool,
}

/// A prepared and applied write.
pub struct Prepared {
    pub txn: Txn,
    pub result: OpResult,
    pub events: Vec<WatchEvent>,
}

/// Validates `op`, applies it to `view`, and returns its transaction and result.
pub fn execute(op: &WriteOp, ctx: &Context<'_>, view: &mut View<'_>) -> Prepared {
    let mut events = Vec::new();
    let txn = match op {
        WriteOp::Multi(ops) => {
            let mark = view.mark();
            let mut txns = Vec::with_capacity(ops.len());
            let mut results = Vec::with_capacity(ops.len());
            for (i, sub) in ops.iter().enumerate() {
                match prepare(sub, ctx, view) {
                    Ok(txn) => {
                        results.push(apply(&txn, view, &mut events));
                        txns.push(txn);
                    }
                    Err(code) => {
                        view.rollback(mark);
                        events.clear();
                        txns = failed_multi(ops.len(), i, code);
                        results = txns.iter().map(|t| apply(t, view, &mut events)).collect();
                        break;
                    }
                }
            }
            return Prepared {
                txn: Txn::Multi(txns),
                result: OpResult::Multi(results),
                events,
            };
        }
        op => prepare(op, ctx, view).unwrap_or_else(|code| Txn::Error(code.code())),
    };
    let result = apply(&txn, view, &mut events);
    Prepared {
        txn,
        result,
        events,
    }
}

fn failed_multi(len: usize, failed: usize, code: ErrorCode) -> Vec<Txn> {
    (0..len)
        .map(|j| {
            let code = match j.cmp(&failed) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            };
            Txn::Error(code.code())
        })
        .collect()
}

/// One non-multi write to its transaction, or the error ZooKeeper would return.
fn prepare(op: &WriteOp, ctx: &Context<'_>, view: &View<'_>) -> ZkResult<Txn> {
    match op {
        WriteOp::Create(create) => prepare_create(create, ctx, view),
        WriteOp::Delete { path, version } => {
            let parent = deletable_parent(path)?;
            let parent = view.get(parent).ok_or(ErrorCode::NoNode)?;
            acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            next_version(node.version, *version)?;
            if node.num_children > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            Ok(Txn::Delete { path: path.clone() })
        }
        WriteOp::DeleteContainer { path } => {
            deletable_parent(path)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            if node.num_children > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            if !matches!(node.kind(), NodeKind::Container | NodeKind::Ttl(_)) {
                return Err(ErrorCode::BadVersion);
            }
            Ok(Txn::Delete { path: path.clone() })
        }
        WriteOp::SetData {
            path,
            data,
            version,
        } => {
            path::validate(path)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::WRITE, ctx.auth)?;
            let version = next_version(node.version, *version)?;
            Ok(Txn::SetData {
                path: path.clone(),
                data: data.clone(),
                version,
            })
        }
        WriteOp::SetAcl {
            path,
            acl: list,
            version,
        } => {
            path::validate(path)?;
            let list = acl::fixup(list, ctx.auth)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
            let version = next_version(node.aversion, *version)?;
            Ok(Txn::SetAcl {
                path: path.clone(),
                acl: list,
                version,
            })
        }
        WriteOp::Check { path, version } => {
            path::validate(path)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, ctx.auth)?;
            next_version(node.version, *version)?;
            Ok(Txn::Check { path: path.clone() })
        }
        WriteOp::CloseSession => Ok(Txn::CloseSession {
            session: ctx.session,
        }),
        WriteOp::Reconfig => Err(ErrorCode::ReconfigDisabled),
        WriteOp::Multi(_) => Err(ErrorCode::BadArguments),
    }
}

fn prepare_create(op: &CreateOp, ctx: &Context<'_>, view: &View<'_>) -> ZkResult<Txn> {
    let mode = CreateMode::from_flags(op.flags)?;
    if mode.is_ttl() && !ctx.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl_ok = if mode.is_ttl() {
        op.ttl_ms > 0 && op.ttl_ms <= TTL_MAX_MS
    } else {
        op.ttl_ms < 0
    };
    if !ttl_ok || !op.path.contains('/') || op.path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let acl = acl::fixup(&op.acl, ctx.auth)?;
    let parent_path = path::parent(&op.path);
    let parent = view.get(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
    let path = if mode.is_sequential() {
        format!("{}{:010}", op.path, parent.child_creates)
    } else {
        op.path.clone()
    };
    path::validate(&path)?;
    if view.get(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(parent.kind(), NodeKind::Ephemeral(_)) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let ephemeral_owner = match mode {
        CreateMode::Container => CONTAINER_OWNER,
        _ if mode.is_ttl() => NodeKind::Ttl(op.ttl_ms).owner(),
        _ if mode.is_ephemeral() => ctx.session,
        _ => 0,
    };
    Ok(Txn::Create {
        path,
        data: op.data.clone(),
        acl,
        ephemeral_owner,
        parent_cversion: parent.child_creates + 1,
    })
}

/// The parent of a node to delete. ZooKeeper checks a delete's path only as far
/// as finding the parent needs (`getParentPathAndValidate`): a slash, no NUL,
/// not a system node; anything else that names no node is `NoNode`.
fn deletable_parent(path: &str) -> ZkResult<&str> {
    let slash = path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0')
        || matches!(
            path,
            "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
        )
    {
        return Err(ErrorCode::BadArguments);
    }
    Ok(if slash == 0 { "/" } else { &path[..slash] })
}

/// `expected == -1` matches any version; the new version wraps like Java's int.
fn next_version(current: i32, expected: i32) -> ZkResult<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Acl;
    use crate::op::CreateOp;
    use crate::tree::DataTree;
    use crate::txn::{AclCache, Pending};
    use crate::znode::Data;

    struct Harness {
        tree: DataTree,
        pending: Pending,
        acls: AclCache,
        zxid: i64,
        uncommitted: Vec<(i64, Vec<crate::txn::Change>)>,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                tree: DataTree::new(),
                pending: Pending::default(),
                acls: AclCache::default(),
                zxid: 0,
                uncommitted: Vec::new(),
            }
        }

        /// Prepares `op` against the tree plus everything prepared but not committed.
        fn prepare(&mut self, op: WriteOp) -> OpResult {
            self.zxid += 1;
            let ctx = Context {
                session: 7,
                auth: &[],
                extended_types: true,
            };
            let mut view = View::new(
                &self.tree,
                &mut self.pending,
                &mut self.acls,
                self.zxid,
                1000,
            );
            let prepared = execute(&op, &ctx, &mut view);
            self.uncommitted.push((self.zxid, view.into_changes()));
            prepared.result
        }

        fn commit_all(&mut self) {
            for (zxid, changes) in self.uncommitted.drain(..) {
                self.tree.commit(zxid, &changes);
                self.pending.retire(zxid, &changes);
            }
            assert!(self.pending.is_empty());
        }
    }

    fn create(path: &str, flags: i32) -> WriteOp {
        WriteOp::Create(CreateOp {
            path: path.into(),
            data: Data::new(b"d"),
            acl: Acl::open_unsafe(),
            flags,
            ttl_ms: -1,
        })
    }

    #[test]
    fn pipelined_writes_see_each_other_before_commit() {
        let mut h = Harness::new();
        assert!(matches!(
            h.prepare(create("/a", 0)),
            OpResult::Create { .. }
        ));
        assert!(matches!(
            h.prepare(create("/a/n", 0)),
            OpResult::Create { .. }
        ));
        let set = h.prepare(WriteOp::SetData {
            path: "/a/n".into(),
            data: Data::new(b"v1"),
            version: 0,
        });
        assert!(matches!(set, OpResult::SetData { stat } if stat.version == 1));
        assert_eq!(
            h.prepare(WriteOp::Delete {
                path: "/a/n".into(),
                version: 1
            }),
            OpResult::Delete
        );
        assert_eq!(
            h.prepare(WriteOp::Delete {
                path: "/a/n".into(),
                version: -1
            }),
            OpResult::Error(ErrorCode::NoNode)
        );
        h.commit_all();
        let a = h.tree.get("/a").unwrap().stat();
        assert_eq!((a.num_children, a.cversion), (0, 2));
        assert!(h.tree.get("/a/n").is_none());
    }

    #[test]
    fn failed_multi_reports_ok_error_runtime_inconsistency_and_changes_nothing() {
        let mut h = Harness::new();
        let multi = WriteOp::Multi(vec![
            create("/m", 0),
            create("/m", 0),
            WriteOp::Check {
                path: "/m".into(),
                version: 3,
            },
        ]);
        let expected = OpResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::NodeExists),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ]);
        assert_eq!(h.prepare(multi), expected);
        h.commit_all();
        assert!(h.tree.get("/m").is_none());
        assert_eq!(
            h.tree.get("/").unwrap().node().child_creates,
            0,
            "no sequence number used"
        );
    }

    /// A view remembers its tree reads; a node it has written since must be
    /// read as written, and a rollback must leave the tree's state readable.
    #[test]
    fn a_multi_reads_its_own_writes_over_the_tree_reads_it_remembers() {
        let mut h = Harness::new();
        h.prepare(create("/a", 0));
        h.commit_all();
        let set = |version| WriteOp::SetData {
            path: "/a".into(),
            data: Data::new(b"v"),
            version,
        };
        let check = |version| WriteOp::Check {
            path: "/a".into(),
            version,
        };
        let stale = WriteOp::Multi(vec![check(0), set(0), check(0)]);
        let expected = OpResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::BadVersion),
        ]);
        assert_eq!(h.prepare(stale), expected);
        let fresh = h.prepare(WriteOp::Multi(vec![check(0), set(0), check(1), set(1)]));
        let OpResult::Multi(results) = fresh else {
            panic!("{fresh:?}")
        };
        let versions: Vec<_> = results
            .iter()
            .map(|r| match r {
                OpResult::SetData { stat } => stat.version,
                OpResult::Check => -1,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(versions, [-1, 1, -1, 2]);
        h.commit_all();
        assert_eq!(h.tree.get("/a").unwrap().stat().version, 2);
    }

    #[test]
    fn create_checks_in_zookeeper_order() {
        let mut h = Harness::new();
        h.prepare(create("/e", 1));
        let rows = [
            (create("/missing/x", 0), ErrorCode::NoNode, "parent missing"),
            (
                create("/e/x", 0),
                ErrorCode::NoChildrenForEphemerals,
                "ephemeral parent",
            ),
            (create("/e", 0), ErrorCode::NodeExists, "exists"),
            (
                create("/bad/", 0),
                ErrorCode::NoNode,
                "parent of /bad/ is /bad",
            ),
            (create("/x", 9), ErrorCode::BadArguments, "unknown flags"),
            (
                create("/x", 5),
                ErrorCode::BadArguments,
                "TTL mode without a TTL",
            ),
            (
                WriteOp::Create(CreateOp {
                    path: "/x".into(),
                    data: Data::null(),
                    acl: vec![],
                    flags: 0,
                    ttl_ms: -1,
                }),
                ErrorCode::InvalidAcl,
                "empty ACL",
            ),
        ];
        for (op, code, why) in rows {
            assert_eq!(h.prepare(op), OpResult::Error(code), "{why}");
        }
        let seq = h.prepare(create("/s-", 2));
        assert!(
            matches!(seq, OpResult::Create { ref path, .. } if path == "/s-0000000001"),
            "{seq:?}"
        );
    }
}
