//! The messages shards, the commit pipeline, the log writer and an ensemble
//! member's Zab driver exchange. Only types: this module uses nothing else of
//! the server's, so every module can name them.

use std::sync::Arc;

use engine::acl::Id;
use engine::op::{OpResult, WriteOp};
use engine::txn::WatchEvent;
use engine::zab::broadcast::{Payload, Record, Snapshot};
use engine::zab::Sid;
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
        session: SessionId,
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
    /// From an ensemble member's Zab driver.
    Zab(FromZab),
    Stop,
}

/// Whether and how an ensemble member serves clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Looking for a leader, or synchronising: no client is served.
    No,
    /// Leading with a quorum; its next proposal takes zxid `next`.
    Leading { next: Zxid },
    /// Following (or observing) a leader it is synchronised with.
    Following,
}

/// What an ensemble member's Zab driver tells the pipeline, in the order it
/// happened.
#[derive(Debug)]
pub enum FromZab {
    /// The member now serves so. `term` counts these changes: proposals made
    /// for an earlier term are dropped.
    Role { serving: Serving, term: u64 },
    /// Records committed, in zxid order: each once, across roles.
    Commit(Vec<Record>),
    /// A leader's snapshot replaces the state (SNAP), before later commits.
    Install(Snapshot),
    /// Requests learners forwarded to this leader (`engine::forward`), each
    /// with the learner it came from.
    Requests(Vec<(Sid, Payload)>),
    /// Sessions learners' clients were active in.
    Touched(Vec<SessionId>),
    /// The leader needs a snapshot of the state to SNAP a learner with.
    SnapshotWanted,
    /// The member's storage failed: it no longer takes part.
    Failed(String),
}

impl ToShard {
    /// A handshake refused: the session is expired or unknown.
    pub fn refused(conn: ConnId) -> ToShard {
        ToShard::Connected {
            conn,
            session: 0,
            timeout_ms: 0,
            password: [0; 16],
        }
    }
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
