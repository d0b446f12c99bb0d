//! A ZooKeeper transaction log file (`log.<zxid hex>`), read as herd
//! transactions.
//!
//! ```text
//! FileHeader   int magic "ZKLG", int version 2, long dbid
//! entries      long Adler-32 of the txn bytes, int length n, n txn bytes, byte 'B'
//!   txn bytes  TxnHeader {long session, int cxid, long zxid, long time, int type},
//!              the record of that type, 3.6+ a TxnDigest (ignored here)
//! end          a zero length (the rest is preallocated zeros) or the file's end
//! ```
//!
//! As ZooKeeper reads it: an entry cut short (the last write of a crash, or
//! one without its 'B') ends the file, a checksum that does not match its
//! bytes is damage and stops the reading. ZooKeeper's records map one to one
//! onto herd's [`Txn`]s: a create's parentCVersion is herd's `parent_cversion`,
//! setData and setACL carry the new version, a create's ephemeral owner is the
//! session in its header, containers and TTL nodes take their marker owner,
//! and a failed multi is logged as a multi of errors in both.

use engine::error::ErrorCode;
use engine::stat::{NodeKind, CONTAINER_OWNER};
use engine::txn::Txn;
use engine::znode::MAX_DATA;
use engine::{SessionId, TimeMs, Zxid};
use herd_proto::jute::Reader;
use herd_proto::opcode as op;

use super::{adler32, cut, header, FormatError};

/// "ZKLG".
pub const MAGIC: i32 = 0x5a4b_4c47;
/// FileHeader's length.
const HEADER_LEN: usize = 16;

/// One logged transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub zxid: Zxid,
    pub time_ms: TimeMs,
    pub session: SessionId,
    pub txn: Txn,
}

/// A log file read up to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub db_id: i64,
    pub entries: Vec<Entry>,
    /// Where an entry cut short starts, if one ends the file.
    pub partial_at: Option<usize>,
}

/// Reads a log file's entries.
pub fn read(bytes: &[u8]) -> Result<Log, FormatError> {
    let db_id = header(&mut Reader::new(bytes), MAGIC)?;
    let mut entries = Vec::new();
    let mut at = HEADER_LEN;
    let partial_at = loop {
        let rest = &bytes[at..];
        if rest.len() < 12 {
            // The end of the file, or a torn entry: zeros count as the end.
            break rest.iter().any(|&b| b != 0).then_some(at);
        }
        let stored = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        if len == 0 {
            break None;
        }
        let Some(body) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(12..12 + len))
        else {
            break Some(at);
        };
        if rest.get(12 + body.len()) != Some(&b'B') {
            break Some(at);
        }
        let computed = adler32(body);
        if stored != i64::from(computed) {
            return Err(FormatError::Checksum {
                at,
                stored,
                computed,
            });
        }
        entries.push(entry(body)?);
        at += 13 + body.len();
    };
    Ok(Log {
        db_id,
        entries,
        partial_at,
    })
}

/// One entry's txn bytes: its header and record.
fn entry(body: &[u8]) -> Result<Entry, FormatError> {
    let mut r = Reader::new(body);
    let truncated = cut("a transaction header");
    let session = r.i64().map_err(&truncated)?;
    let _cxid = r.i32().map_err(&truncated)?;
    let zxid = r.i64().map_err(&truncated)?;
    let time_ms = r.i64().map_err(&truncated)?;
    let kind = r.i32().map_err(&truncated)?;
    let txn = record(&mut r, kind, session, zxid)?;
    Ok(Entry {
        zxid,
        time_ms,
        session,
        txn,
    })
}

/// The record of a transaction of type `kind` logged for `session`.
fn record(
    r: &mut Reader<'_>,
    kind: i32,
    session: SessionId,
    zxid: Zxid,
) -> Result<Txn, FormatError> {
    let truncated = cut("a transaction record");
    let path = |r: &mut Reader<'_>| r.string().map_err(cut("a transaction record"));
    let data = |r: &mut Reader<'_>, path: &str| {
        let data = r.data().map_err(cut("a transaction record"))?;
        if data.bytes().map_or(0, <[u8]>::len) > MAX_DATA {
            return Err(FormatError::TooLarge(path.to_owned()));
        }
        Ok(data)
    };
    Ok(match kind {
        op::CREATE_SESSION => Txn::CreateSession {
            session,
            timeout_ms: r.i32().map_err(&truncated)?,
        },
        // 3.6+ also lists the ephemerals to delete: the session's own, which
        // herd's close finds itself.
        op::CLOSE_SESSION => Txn::CloseSession { session },
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            let path = path(r)?;
            let data = data(r, &path)?;
            let acl = r.acls().map_err(&truncated)?;
            let ephemeral = kind != op::CREATE_CONTAINER
                && kind != op::CREATE_TTL
                && r.bool().map_err(&truncated)?;
            let parent_cversion = r.i32().map_err(&truncated)?;
            let ephemeral_owner = match kind {
                op::CREATE_CONTAINER => CONTAINER_OWNER,
                op::CREATE_TTL => NodeKind::Ttl(r.i64().map_err(&truncated)?).owner(),
                _ if ephemeral => session,
                _ => 0,
            };
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            }
        }
        op::DELETE | op::DELETE_CONTAINER => Txn::Delete { path: path(r)? },
        // A reconfig is logged as the setData of /zookeeper/config.
        op::SET_DATA | op::RECONFIG => {
            let path = path(r)?;
            Txn::SetData {
                data: data(r, &path)?,
                version: r.i32().map_err(&truncated)?,
                path,
            }
        }
        op::SET_ACL => Txn::SetAcl {
            path: path(r)?,
            acl: r.acls().map_err(&truncated)?,
            version: r.i32().map_err(&truncated)?,
        },
        op::CHECK => {
            let path = path(r)?;
            r.i32().map_err(&truncated)?;
            Txn::Check { path }
        }
        op::MULTI => {
            let n = r.i32().map_err(&truncated)?;
            // Each part takes at least its type and a length.
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= r.remaining() / 8)
                .ok_or(FormatError::Truncated("a multi"))?;
            let mut parts = Vec::with_capacity(n);
            for _ in 0..n {
                let kind = r.i32().map_err(&truncated)?;
                let bytes = r.buffer().map_err(&truncated)?;
                parts.push(record(&mut Reader::new(bytes), kind, session, zxid)?);
            }
            Txn::Multi(failed_as_a_whole(parts))
        }
        op::ERROR => Txn::Error(r.i32().map_err(&truncated)?),
        kind => return Err(FormatError::TxnType { zxid, kind }),
    })
}

/// A multi that failed is logged by ZooKeeper with the parts prepared before
/// the failing one as they were (a create, a setData, ...) and the failing
/// one as an error; its DataTree applies none of them. So here: if any part is
/// an error, every part becomes one (Ok before it, RuntimeInconsistency
/// after), as ZooKeeper rewrites them on replay.
fn failed_as_a_whole(parts: Vec<Txn>) -> Vec<Txn> {
    let Some(failed) = parts.iter().position(|t| matches!(t, Txn::Error(_))) else {
        return parts;
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| match part {
            Txn::Error(code) => Txn::Error(code),
            _ if i < failed => Txn::Error(ErrorCode::Ok as i32),
            _ => Txn::Error(ErrorCode::RuntimeInconsistency as i32),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::acl::Acl;
    use engine::znode::Data;
    use herd_proto::jute::Write;

    fn txn_bytes(session: i64, zxid: i64, kind: i32, record: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.i64(session);
        out.i32(7);
        out.i64(zxid);
        out.i64(1000 + zxid);
        out.i32(kind);
        out.extend_from_slice(record);
        out
    }

    fn framed(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.i32(MAGIC);
        out.i32(2);
        out.i64(0);
        for body in entries {
            out.i64(i64::from(adler32(body)));
            out.buffer(body);
            out.push(b'B');
        }
        out
    }

    fn create(path: &str, ephemeral: bool, parent_cversion: i32) -> Vec<u8> {
        let mut r = Vec::new();
        r.string(path);
        r.data(Some(b"v"));
        r.acls(&Acl::open_unsafe());
        r.bool(ephemeral);
        r.i32(parent_cversion);
        r
    }

    #[test]
    fn a_failed_multi_applies_none_of_its_parts() {
        let set = Txn::SetData {
            path: "/a".into(),
            data: Data::new(b"w"),
            version: 4,
        };
        let check = Txn::Check { path: "/a".into() };
        assert_eq!(
            failed_as_a_whole(vec![set.clone(), Txn::Error(-103), check.clone()]),
            vec![Txn::Error(0), Txn::Error(-103), Txn::Error(-2)]
        );
        let whole = vec![set, check];
        assert_eq!(failed_as_a_whole(whole.clone()), whole, "nothing failed");
    }

    #[test]
    fn every_record_kind_becomes_herds_transaction() {
        let mut session = Vec::new();
        session.i32(30_000);
        let mut ttl = Vec::new();
        ttl.string("/t");
        ttl.data(None);
        ttl.acls(&Acl::open_unsafe());
        ttl.i32(3);
        ttl.i64(5000);
        let mut set = Vec::new();
        set.string("/a");
        set.data(Some(b"w"));
        set.i32(4);
        let mut multi = Vec::new();
        multi.i32(2);
        multi.i32(op::CREATE);
        multi.buffer(&create("/m", true, 2));
        let mut err = Vec::new();
        err.i32(-101);
        multi.i32(op::ERROR);
        multi.buffer(&err);
        let bytes = framed(&[
            txn_bytes(0x5, 1, op::CREATE_SESSION, &session),
            txn_bytes(0x5, 2, op::CREATE, &create("/e", true, 1)),
            txn_bytes(0x5, 3, op::CREATE_TTL, &ttl),
            txn_bytes(0x5, 4, op::SET_DATA, &set),
            txn_bytes(0x5, 5, op::MULTI, &multi),
            txn_bytes(0x5, 6, op::CLOSE_SESSION, &[]),
        ]);
        let mut padded = bytes.clone();
        padded.resize(bytes.len() + 4096, 0);
        let log = read(&padded).unwrap();
        assert_eq!(log.partial_at, None);
        let txns: Vec<_> = log.entries.iter().map(|e| e.txn.clone()).collect();
        let created = |path: &str, data: Data, owner: i64, cv: i32| Txn::Create {
            path: path.into(),
            data,
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion: cv,
        };
        assert_eq!(
            txns,
            vec![
                Txn::CreateSession {
                    session: 5,
                    timeout_ms: 30_000
                },
                created("/e", Data::new(b"v"), 5, 1),
                created("/t", Data::null(), NodeKind::Ttl(5000).owner(), 3),
                Txn::SetData {
                    path: "/a".into(),
                    data: Data::new(b"w"),
                    version: 4
                },
                // The create prepared before the failing part is not applied.
                Txn::Multi(vec![Txn::Error(0), Txn::Error(-101)]),
                Txn::CloseSession { session: 5 },
            ]
        );
        assert_eq!(
            log.entries
                .iter()
                .map(|e| (e.zxid, e.time_ms))
                .collect::<Vec<_>>(),
            (1..=6).map(|z| (z, 1000 + z)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_cut_entry_ends_the_file_and_a_bad_checksum_is_damage() {
        let bytes = framed(&[
            txn_bytes(1, 1, op::CREATE, &create("/a", false, 1)),
            txn_bytes(1, 2, op::DELETE, &{
                let mut d = Vec::new();
                d.string("/a");
                d
            }),
        ]);
        let second = HEADER_LEN + 13 + txn_bytes(1, 1, op::CREATE, &create("/a", false, 1)).len();
        for cut in [second + 12, second + 20, bytes.len() - 1] {
            let log = read(&bytes[..cut]).unwrap();
            assert_eq!(
                (log.entries.len(), log.partial_at),
                (1, Some(second)),
                "cut {cut}"
            );
        }
        let mut no_b = bytes.clone();
        *no_b.last_mut().unwrap() = 0;
        assert_eq!(read(&no_b).unwrap().partial_at, Some(second));
        let mut flipped = bytes.clone();
        flipped[second + 20] ^= 1;
        assert!(matches!(read(&flipped), Err(FormatError::Checksum { .. })));
        let mut unknown = framed(&[txn_bytes(1, 1, 99, &[])]);
        assert!(matches!(
            read(&unknown),
            Err(FormatError::TxnType { zxid: 1, kind: 99 })
        ));
        unknown[0] = b'X';
        assert!(matches!(read(&unknown), Err(FormatError::Magic { .. })));
    }
}
