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
            return Prepared { txn: Txn::Multi(txns), result: OpResult::Multi(results), events };
        }
        op => prepare(op, ctx, view).unwrap_or_else(Txn::Error),
    };
    let result = apply(&txn, view, &mut events);
    Prepared { txn, result, events }
}

fn failed_multi(len: usize, failed: usize, code: ErrorCode) -> Vec<Txn> {
    (0..len)
        .map(|j| {
            Txn::Error(match j.cmp(&failed) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            })
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
        WriteOp::SetData { path, data, version } => {
            path::validate(path)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::WRITE, ctx.auth)?;
            let version = next_version(node.version, *version)?;
            Ok(Txn::SetData { path: path.clone(), data: data.clone(), version })
        }
        WriteOp::SetAcl { path, acl: list, version } => {
            path::validate(path)?;
            let list = acl::fixup(list, ctx.auth)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
            let version = next_version(node.aversion, *version)?;
            Ok(Txn::SetAcl { path: path.clone(), acl: list, version })
        }
        WriteOp::Check { path, version } => {
            path::validate(path)?;
            let node = view.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, ctx.auth)?;
            next_version(node.version, *version)?;
            Ok(Txn::Check { path: path.clone() })
        }
        WriteOp::CloseSession => Ok(Txn::CloseSession { session: ctx.session }),
        WriteOp::Multi(_) => Err(ErrorCode::BadArguments),
    }
}

fn prepare_create(op: &CreateOp, ctx: &Context<'_>, view: &View<'_>) -> ZkResult<Txn> {
    let mode = CreateMode::from_flags(op.flags)?;
    if mode.is_ttl() && !ctx.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl_ok = if mode.is_ttl() { op.ttl_ms > 0 && op.ttl_ms <= TTL_MAX_MS } else { op.ttl_ms < 0 };
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

/// The parent of a node that may be deleted; the root and ZooKeeper's own nodes may not.
fn deletable_parent(path: &str) -> ZkResult<&str> {
    path::validate(path)?;
    if matches!(path, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config") {
        return Err(ErrorCode::BadArguments);
    }
    Ok(path::parent(path))
}

/// `expected == -1` matches any version; the new version wraps like Java's int.
fn next_version(current: i32, expected: i32) -> ZkResult<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}
