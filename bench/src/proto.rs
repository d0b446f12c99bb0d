//! The client side of ZooKeeper's wire protocol, as much as the workloads use.
//! Frames, the jute reader/writer, opcodes and the handshake are herd's own
//! codec (`herd_proto`, which has no I/O and no server in it); this module
//! adds what only a client needs: create modes and event types as wire
//! numbers, `KeeperException.Code` names, and multi requests and results.

pub use herd_proto::jute::{Malformed, Reader, Write};
pub use herd_proto::{opcode, xid, ConnectRequest, ConnectResponse};

/// Watch event types (the engine's [`EventType`] as wire numbers, for matching).
pub mod event {
    use engine::txn::EventType;
    pub const NODE_CREATED: i32 = EventType::NodeCreated as i32;
    pub const NODE_DELETED: i32 = EventType::NodeDeleted as i32;
    pub const NODE_DATA_CHANGED: i32 = EventType::NodeDataChanged as i32;
    pub const NODE_CHILDREN_CHANGED: i32 = EventType::NodeChildrenChanged as i32;
}

/// Create modes as wire flags (the engine's [`CreateMode`]).
pub mod create_mode {
    use engine::op::CreateMode;
    pub const PERSISTENT: i32 = CreateMode::Persistent as i32;
    pub const EPHEMERAL: i32 = CreateMode::Ephemeral as i32;
    pub const PERSISTENT_SEQUENTIAL: i32 = CreateMode::PersistentSequential as i32;
    pub const EPHEMERAL_SEQUENTIAL: i32 = CreateMode::EphemeralSequential as i32;
}

/// `KeeperException.Code` values the benchmark tells apart, and two it makes
/// up on the client side as the Java client does: `CONNECTION_LOSS` when the
/// connection closes under a request, `OPERATION_TIMEOUT` when no reply comes
/// within the request timeout.
pub mod code {
    use engine::ErrorCode;
    pub const OK: i32 = ErrorCode::Ok as i32;
    pub const CONNECTION_LOSS: i32 = ErrorCode::ConnectionLoss as i32;
    pub const OPERATION_TIMEOUT: i32 = ErrorCode::OperationTimeout as i32;
    pub const NO_NODE: i32 = ErrorCode::NoNode as i32;
    pub const BAD_VERSION: i32 = ErrorCode::BadVersion as i32;
    pub const NODE_EXISTS: i32 = ErrorCode::NodeExists as i32;
}

/// ZooKeeper's name for an error code (`Code-7` style for codes it does not define).
pub fn code_name(code: i32) -> String {
    let known = engine::ErrorCode::from_code(code);
    if known.code() == code {
        format!("{known:?}")
    } else {
        format!("Code{code}")
    }
}

/// Writing the benchmark needs beyond the shared jute codec.
pub trait WriteExt {
    /// The ACL list `[world:anyone, all permissions]` without building it.
    fn open_acl(&mut self);
}

impl WriteExt for Vec<u8> {
    fn open_acl(&mut self) {
        self.i32(1);
        self.i32(31);
        self.string("world");
        self.string("anyone");
    }
}

/// One op of a multi transaction.
#[derive(Debug, Clone)]
pub enum MultiOp<'a> {
    Check {
        path: &'a str,
        version: i32,
    },
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    Create {
        path: &'a str,
        data: &'a [u8],
        mode: i32,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
}

/// Encodes a multi request body: `MultiHeader {type, done, err}` then the op,
/// ending with a header whose `done` is set.
pub fn encode_multi(out: &mut Vec<u8>, ops: &[MultiOp<'_>]) {
    for op in ops {
        let kind = match op {
            MultiOp::Check { .. } => opcode::CHECK,
            MultiOp::SetData { .. } => opcode::SET_DATA,
            MultiOp::Create { .. } => opcode::CREATE,
            MultiOp::Delete { .. } => opcode::DELETE,
        };
        out.i32(kind);
        out.bool(false);
        out.i32(-1);
        match op {
            MultiOp::Check { path, version } | MultiOp::Delete { path, version } => {
                out.string(path);
                out.i32(*version);
            }
            MultiOp::SetData {
                path,
                data,
                version,
            } => {
                out.string(path);
                out.buffer(data);
                out.i32(*version);
            }
            MultiOp::Create { path, data, mode } => {
                out.string(path);
                out.buffer(data);
                out.open_acl();
                out.i32(*mode);
            }
        }
    }
    out.i32(-1);
    out.bool(true);
    out.i32(-1);
}

/// The first error among a multi response's results (`OK` if none).
pub fn multi_error(body: &[u8]) -> Result<i32, Malformed> {
    let mut r = Reader::new(body);
    loop {
        let kind = r.i32()?;
        let done = r.bool()?;
        let err = r.i32()?;
        if done {
            return Ok(code::OK);
        }
        match kind {
            opcode::ERROR => {
                let err = r.i32()?;
                if err != code::OK {
                    return Ok(err);
                }
            }
            opcode::CREATE => {
                r.string()?;
            }
            opcode::CREATE2 => {
                r.string()?;
                r.stat()?;
            }
            opcode::SET_DATA => {
                r.stat()?;
            }
            opcode::CHECK | opcode::DELETE => {}
            _ => return Err(Malformed),
        }
        if err != code::OK && kind != opcode::ERROR {
            return Ok(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_error_finds_the_failed_op() {
        let mut body = Vec::new();
        body.i32(opcode::ERROR);
        body.bool(false);
        body.i32(code::BAD_VERSION);
        body.i32(code::BAD_VERSION);
        body.i32(-1);
        body.bool(true);
        body.i32(-1);
        assert_eq!(multi_error(&body), Ok(code::BAD_VERSION));
        let mut ok = Vec::new();
        ok.i32(opcode::CHECK);
        ok.bool(false);
        ok.i32(0);
        ok.i32(opcode::CREATE);
        ok.bool(false);
        ok.i32(0);
        ok.string("/a");
        ok.i32(-1);
        ok.bool(true);
        ok.i32(-1);
        assert_eq!(multi_error(&ok), Ok(code::OK));
    }
}
