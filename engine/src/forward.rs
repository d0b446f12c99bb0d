//! What an ensemble member forwards to its leader (ZooKeeper's REQUEST and
//! REVALIDATE packets): a client's write, a new session, a sync, or a
//! session's reconnect through this member, with the session and
//! cxid it came with, so that the leader's proposal names them and the
//! member answers its client when that proposal commits
//! ([`crate::log::Proposal`]). Pure: archived with rkyv, validated on decode.
//!
//! Every forwarded request is answered by exactly one proposal: a write by
//! its transaction (an error transaction if it failed), a new session by its
//! createSession, a sync by a check of `/` that changes nothing, committed
//! after everything the leader committed before it; a revalidation (a
//! session reconnecting through the member) as a sync, once the leader has
//! noted the session's new owner (its later requests through other members
//! fail with SessionMoved), so the leader has the move before the client
//! hears it is connected.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::acl::Id;
use crate::log::FormatError;
use crate::op::WriteOp;
use crate::types::SessionId;

/// The request itself.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Request {
    Write(WriteOp),
    /// A session the member assigned an id to, with its negotiated timeout.
    CreateSession {
        timeout_ms: i32,
    },
    Sync,
    /// The session's client reconnected through this member.
    Revalidate,
}

/// A forwarded request with its origin.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Forwarded {
    pub session: SessionId,
    pub cxid: i32,
    /// The identities the session authenticated as, for ACL checks.
    pub auth: Vec<Id>,
    pub request: Request,
}

pub fn encode(forwarded: &Forwarded) -> AlignedVec {
    rkyv::to_bytes::<rancor::Error>(forwarded).expect("archiving to memory cannot fail")
}

pub fn decode(bytes: &[u8]) -> Result<Forwarded, FormatError> {
    crate::log::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Acl;
    use crate::op::CreateOp;
    use crate::znode::Data;

    #[test]
    fn forwarded_requests_round_trip_and_damage_is_an_error() {
        let write = Request::Write(WriteOp::Multi(vec![
            WriteOp::Create(CreateOp {
                path: "/a".into(),
                data: Data::new(b"x"),
                acl: Acl::open_unsafe(),
                flags: 3,
                ttl_ms: -1,
            }),
            WriteOp::Check {
                path: "/a".into(),
                version: 4,
            },
        ]));
        for request in [
            write,
            Request::CreateSession { timeout_ms: 4000 },
            Request::Sync,
            Request::Revalidate,
        ] {
            let f = Forwarded {
                session: 0x0200_0000_0000_0009,
                cxid: 17,
                auth: vec![Id::new("digest", "u:x")],
                request,
            };
            let bytes = encode(&f);
            assert_eq!(decode(&bytes).unwrap(), f);
            assert!(decode(&bytes[..bytes.len() - 3]).is_err());
        }
    }
}
