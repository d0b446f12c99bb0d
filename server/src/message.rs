//! The messages shards, the commit pipeline and the log writer exchange. Only
//! types: this module uses nothing else of the server's, so every module can
//! name them.

use std::sync::Arc;

use engine::acl::Id;
use engine::op::{OpResult, WriteOp};
use engine::txn::WatchEvent;
use engine::{SessionId, Zxid};
use herd_proto::ConnectRequest;

/// A connection, unique across shards.
pub type ConnId = u64;

/// What shards send to the pipeline.
pub enum ToPipeline {
    Connect {
        shard: usize,
        conn: ConnId,
        request: ConnectRequest,
    },
    Write {
        shard: usize,
        conn: ConnId,
        xid: i32,
        session: SessionId,
        auth: Arc<[Id]>,
        op: WriteOp,
    },
    Sync {
        shard: usize,
        conn: ConnId,
        xid: i32,
    },
    /// Sessions with client activity since the last touch.
    Touch(Vec<SessionId>),
    Disconnected {
        session: SessionId,
        conn: ConnId,
    },
    /// From the log writer (`storage::Durability`): everything up to this
    /// zxid is durable, or the log failed.
    Durable(Result<Zxid, String>),
    Stop,
}

/// What the pipeline sends to a shard, in order.
#[derive(Debug)]
pub enum ToShard {
    /// Handshake outcome; `session == 0` means expired or unknown.
    Connected {
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Transaction `zxid` is in the tree; these watches fire (none for a failed write).
    Committed {
        zxid: Zxid,
        events: Option<Arc<[WatchEvent]>>,
    },
    Reply {
        conn: ConnId,
        xid: i32,
        zxid: Zxid,
        result: OpResult,
    },
    /// Close the connection (its session expired or moved elsewhere).
    Close { conn: ConnId },
}
