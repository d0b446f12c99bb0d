//! Znode metadata: the `Stat` record clients see, and how ephemeralOwner encodes
//! the node's kind (ZooKeeper's `EphemeralType`).

use crate::types::{SessionId, TimeMs, Zxid};

/// The `Stat` record exactly as ZooKeeper sends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub ctime: TimeMs,
    pub mtime: TimeMs,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: Zxid,
}

/// ephemeralOwner of a container node (`Long.MIN_VALUE`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte marking an extended type (TTL) in ephemeralOwner.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000u64 as i64;
/// Largest TTL in milliseconds that fits the encoding (40 bits).
pub const TTL_MAX_MS: i64 = 0xff_ffff_ffff;

/// What kind of node an ephemeralOwner value denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(SessionId),
    Container,
    Ttl(i64),
}

impl NodeKind {
    pub fn of_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & EXTENDED_MASK == EXTENDED_MASK {
            NodeKind::Ttl(owner & TTL_MAX_MS)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(s) => s,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl(ttl) => EXTENDED_MASK | (ttl & TTL_MAX_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encoding_round_trips() {
        for kind in [
            NodeKind::Persistent,
            NodeKind::Ephemeral(0x1234),
            NodeKind::Container,
            NodeKind::Ttl(1000),
            NodeKind::Ttl(TTL_MAX_MS),
        ] {
            assert_eq!(NodeKind::of_owner(kind.owner()), kind);
        }
        assert_eq!(NodeKind::Ttl(1000).owner() as u64, 0xff00_0000_0000_03e8);
    }
}
