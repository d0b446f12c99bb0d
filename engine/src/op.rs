//! Write operations as the commit pipeline receives them (decoded from the wire,
//! not yet validated) and what they return.

use crate::acl::Acl;
use crate::error::{ErrorCode, ZkResult};
use crate::stat::Stat;
use crate::znode::Data;

/// ZooKeeper's `CreateMode`, numbered as its wire flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

impl CreateMode {
    /// The mode for a wire flag; `BadArguments` for an unknown one.
    pub fn from_flags(flags: i32) -> ZkResult<CreateMode> {
        Ok(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// A create of any kind (create, create2, createContainer, createTTL).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CreateOp {
    pub path: String,
    pub data: Data,
    pub acl: Vec<Acl>,
    /// The raw wire flags; turned into a [`CreateMode`] during preparation.
    pub flags: i32,
    /// Only for createTTL; `-1` otherwise.
    pub ttl_ms: i64,
}

/// A request that goes through the commit pipeline. Archived (rkyv) when a
/// member forwards it to its leader ([`crate::forward`]).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
// A multi holds operations: the recursive field needs its bounds spelled out.
#[rkyv(serialize_bounds(
    __S: rkyv::ser::Writer + rkyv::ser::Allocator + rkyv::ser::Sharing,
    __S::Error: rkyv::rancor::Source,
))]
#[rkyv(deserialize_bounds(__D: rkyv::de::Pooling, __D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(
    __C: rkyv::validation::ArchiveContext + rkyv::validation::SharedContext,
    __C::Error: rkyv::rancor::Source,
)))]
pub enum WriteOp {
    Create(CreateOp),
    Delete {
        path: String,
        version: i32,
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
        version: i32,
    },
    Multi(#[rkyv(omit_bounds)] Vec<WriteOp>),
    /// Server-initiated removal of an empty container or an expired TTL node.
    DeleteContainer {
        path: String,
    },
    CloseSession,
    /// Dynamic reconfiguration, which herd does not do: refused with
    /// ReconfigDisabled, as by a ZooKeeper without `reconfigEnabled`, as a
    /// failed write (it takes a zxid there too).
    Reconfig,
}

/// The outcome of one write, before it is encoded for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    Create {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Check,
    /// Per-op results; a failed multi has only `Error` entries.
    Multi(Vec<OpResult>),
    CreateSession,
    CloseSession,
    Error(ErrorCode),
}

impl OpResult {
    /// The error code for the reply header. A multi always reports `Ok` there,
    /// as ZooKeeper does: its per-op results carry the failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            OpResult::Error(code) => *code,
            _ => ErrorCode::Ok,
        }
    }
}
