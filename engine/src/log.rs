//! The transaction log's on-disk format and its recovery decisions. Pure: bytes
//! in, records and verdicts out; the files themselves are the server's.
//!
//! A log is a sequence of segment files. Each starts with a 32-byte header:
//!
//! ```text
//!  0  magic  "HERDTXNL"        8 bytes
//!  8  format version (1, 2)    u32 LE
//! 12  reserved (0)             u32 LE
//! 16  database id              u64 LE   (same for every file of one data dir)
//! 24  first zxid of the file   i64 LE
//! ```
//!
//! then records, back to back, then zeros (the preallocated rest of the file):
//!
//! ```text
//!  0  payload length n (> 0)   u32 LE
//!  4  CRC32C of bytes 8..16+n  u32 LE   (zxid and payload)
//!  8  zxid                     i64 LE
//! 16  payload: a [`LogEntry`] archived with rkyv (n bytes)
//! ```
//!
//! Format 1 is a standalone server's log: each payload is a [`LogEntry`], and
//! zxids are contiguous, every zxid one transaction. Format 2 is an ensemble
//! member's: each payload is a [`Proposal`] (the entry and the request it
//! answers), and the zxids continue by one within an epoch or jump to the
//! first zxid of a later epoch (see [`follows`]). Reading stops at the first
//! record that is not whole and valid. If a valid record can still be found after
//! that point the log is corrupt in the middle and must not be trusted; otherwise
//! the bad bytes are a torn tail (a write cut short by a crash) and are dropped.

use std::mem;

use rkyv::api::high::HighSerializer;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

use crate::txn::Txn;
use crate::types::{SessionId, TimeMs, Zxid};
use crate::znode::MAX_DATA;

pub const MAGIC: &[u8; 8] = b"HERDTXNL";
/// A standalone server's log.
pub const FORMAT_VERSION: u32 = 1;
/// An ensemble member's log.
pub const MEMBER_FORMAT_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 32;
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest record payload the log holds, written or read: the pipeline refuses
/// a write whose record would be larger (see [`encode_payload`]), and recovery
/// takes a larger length for damage. Twice the largest znode: a request is at
/// most `jute.maxbuffer`, which is at most [`MAX_DATA`], and no single-node
/// write archives to more than its request plus two thirds (an ACL entry is 12
/// bytes or more on the wire, 20 archived), so every create, setData and setACL
/// herd accepts fits; only a multi of very many tiny operations can be refused.
pub const MAX_PAYLOAD: usize = 2 * (MAX_DATA + 1);

const _: () = assert!(MAX_PAYLOAD >= MAX_DATA + MAX_DATA * 2 / 3 + 4096);
// The length field is a u32.
const _: () = assert!(MAX_PAYLOAD <= u32::MAX as usize);
/// How far past the last good zxid a record found beyond damage may claim to be
/// and still count as "valid data after the damage".
const ZXID_WINDOW: i64 = 1 << 24;

/// What one record holds.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LogEntry {
    /// When the transaction was prepared (its ctime/mtime).
    pub time_ms: TimeMs,
    pub txn: Txn,
}

/// What a member's log record holds: the transaction, and the request it
/// answers (ZooKeeper's `TxnHeader` clientId and cxid), so that the member
/// the client is connected to can answer it when the record commits. A
/// transaction the server made itself (an expiry, a container sweep) has
/// session 0.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Proposal {
    pub session: SessionId,
    pub cxid: i32,
    pub entry: LogEntry,
}

/// A segment's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// [`FORMAT_VERSION`] or [`MEMBER_FORMAT_VERSION`].
    pub format: u32,
    pub db_id: u64,
    pub first_zxid: Zxid,
}

/// Whether `next` may follow `prev` in a log of `format`: the next zxid, or
/// in a member's log the first zxid (counter 1) of a later epoch.
pub fn follows(format: u32, prev: Zxid, next: Zxid) -> bool {
    next == prev + 1
        || (format == MEMBER_FORMAT_VERSION && (next >> 32) > (prev >> 32) && next as u32 == 1)
}

/// Why log bytes cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    BadHeader(String),
    BadPayload(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::BadHeader(why) => write!(f, "bad header: {why}"),
            FormatError::BadPayload(why) => write!(f, "bad payload: {why}"),
        }
    }
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&self.format.to_le_bytes());
        h[16..24].copy_from_slice(&self.db_id.to_le_bytes());
        h[24..32].copy_from_slice(&self.first_zxid.to_le_bytes());
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        let h = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| FormatError::BadHeader("file shorter than a header".into()))?;
        if &h[..8] != MAGIC {
            return Err(FormatError::BadHeader(
                "not a herd transaction log (wrong magic)".into(),
            ));
        }
        let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION && version != MEMBER_FORMAT_VERSION {
            return Err(FormatError::BadHeader(format!(
                "format version {version}, this herd reads {FORMAT_VERSION} and \
                 {MEMBER_FORMAT_VERSION}"
            )));
        }
        Ok(SegmentHeader {
            format: version,
            db_id: u64::from_le_bytes(h[16..24].try_into().expect("8 bytes")),
            first_zxid: i64::from_le_bytes(h[24..32].try_into().expect("8 bytes")),
        })
    }
}

/// A record's payload: the transaction's only encoding. `None` if it would be
/// larger than the log holds ([`MAX_PAYLOAD`]).
pub fn encode_payload(entry: &LogEntry) -> Option<AlignedVec> {
    let mut buf = PayloadBuf::default();
    buf.encode_entry(entry).then_some(buf.0)
}

/// A buffer that payloads are encoded into one after another, so encoding
/// allocates only when a payload outgrows every earlier one. It holds the
/// last payload encoded.
#[derive(Default)]
pub struct PayloadBuf(AlignedVec);

impl PayloadBuf {
    /// Encodes a standalone log's `entry`; false if it is larger than the log
    /// holds ([`MAX_PAYLOAD`]).
    pub fn encode_entry(&mut self, entry: &LogEntry) -> bool {
        self.encode(entry)
    }

    /// Encodes a member's `proposal`; false if it is larger than the log holds.
    pub fn encode_proposal(&mut self, proposal: &Proposal) -> bool {
        self.encode(proposal)
    }

    fn encode<T>(&mut self, value: &T) -> bool
    where
        T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        self.0.clear();
        self.0 = rkyv::api::high::to_bytes_in(value, mem::take(&mut self.0))
            .expect("archiving to memory cannot fail");
        self.0.len() <= MAX_PAYLOAD
    }

    /// The last payload encoded.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Appends one record for `entry` at `zxid` to `out`. Panics if it is over
/// [`MAX_PAYLOAD`]: callers refuse such writes with [`encode_payload`] first.
pub fn encode_record(out: &mut Vec<u8>, zxid: Zxid, entry: &LogEntry) {
    let payload = encode_payload(entry).expect("a record within MAX_PAYLOAD");
    append_record(out, zxid, &payload);
}

/// Appends the record of an encoded `payload` at `zxid` to `out`.
pub fn append_record(out: &mut Vec<u8>, zxid: Zxid, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and validates a record payload.
pub fn decode_payload(payload: &[u8]) -> Result<LogEntry, FormatError> {
    decode(payload)
}

/// The entry a record of a segment of `format` holds (a member's records
/// wrap theirs in a [`Proposal`]).
pub fn decode_entry(format: u32, payload: &[u8]) -> Result<LogEntry, FormatError> {
    if format == MEMBER_FORMAT_VERSION {
        decode_proposal(payload).map(|p| p.entry)
    } else {
        decode_payload(payload)
    }
}

/// A member's record payload ([`Proposal`]); `None` if it would be larger
/// than the log holds.
pub fn encode_proposal(proposal: &Proposal) -> Option<AlignedVec> {
    let mut buf = PayloadBuf::default();
    buf.encode_proposal(proposal).then_some(buf.0)
}

/// Decodes and validates a member's record payload.
pub fn decode_proposal(payload: &[u8]) -> Result<Proposal, FormatError> {
    decode(payload)
}

/// Validates and decodes rkyv bytes of `T` (copied to an aligned buffer).
pub(crate) fn decode<T>(payload: &[u8]) -> Result<T, FormatError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<T, rancor::Error>(&aligned)
        .map_err(|e| FormatError::BadPayload(e.to_string()))
}

/// One valid record found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef {
    pub zxid: Zxid,
    /// Offset of the payload within the segment bytes.
    pub payload_at: usize,
    pub payload_len: usize,
}

/// How a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Valid records, then only zeros (or nothing).
    Clean,
    /// Bytes from `at` are not a valid record and no valid record follows: a torn write.
    TornTail { at: usize },
    /// The record at `at` is damaged, yet a valid record starts at `valid_after`.
    Corrupt { at: usize, valid_after: usize },
    /// Records do not continue the zxid sequence: `found` where `expected` was due.
    Gap {
        at: usize,
        expected: Zxid,
        found: Zxid,
    },
}

/// The records of a segment and how it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub header: SegmentHeader,
    pub records: Vec<RecordRef>,
    /// Offset just past the last valid record: where appending resumes.
    pub valid_end: usize,
    pub ending: Ending,
}

/// The record at `at` if it is whole and its checksum matches.
fn record_at(bytes: &[u8], at: usize) -> Option<RecordRef> {
    let head = bytes.get(at..at + RECORD_HEADER_LEN)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let zxid = i64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    let body = bytes.get(at + 8..at + RECORD_HEADER_LEN + len)?;
    (crc32c::crc32c(body) == crc).then_some(RecordRef {
        zxid,
        payload_at: at + RECORD_HEADER_LEN,
        payload_len: len,
    })
}

/// Reads a whole segment file's bytes and decides how it ends.
pub fn scan(bytes: &[u8]) -> Result<Scan, FormatError> {
    let header = SegmentHeader::decode(bytes)?;
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    let mut prev = header.first_zxid - 1;
    while let Some(rec) = record_at(bytes, at) {
        let continues = if records.is_empty() {
            rec.zxid == header.first_zxid
        } else {
            follows(header.format, prev, rec.zxid)
        };
        if !continues {
            let expected = if records.is_empty() {
                header.first_zxid
            } else {
                prev + 1
            };
            let ending = Ending::Gap {
                at,
                expected,
                found: rec.zxid,
            };
            return Ok(Scan {
                header,
                records,
                valid_end: at,
                ending,
            });
        }
        records.push(rec);
        prev = rec.zxid;
        at = rec.payload_at + rec.payload_len;
    }
    let rest = &bytes[at..];
    let ending = if rest.iter().all(|b| *b == 0) {
        Ending::Clean
    } else {
        let last = prev;
        // In a member's log the records after damage may be of a later epoch.
        let plausible = |zxid: Zxid| {
            zxid > last
                && (zxid <= last + ZXID_WINDOW
                    || (header.format == MEMBER_FORMAT_VERSION
                        && zxid as u32 as i64 <= ZXID_WINDOW))
        };
        let later = (at + 1..bytes.len().saturating_sub(RECORD_HEADER_LEN)).find(|&p| {
            let zxid = i64::from_le_bytes(bytes[p + 8..p + 16].try_into().expect("8 bytes"));
            plausible(zxid) && record_at(bytes, p).is_some()
        });
        match later {
            Some(valid_after) => Ending::Corrupt { at, valid_after },
            None => Ending::TornTail { at },
        }
    };
    Ok(Scan {
        header,
        records,
        valid_end: at,
        ending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Acl;
    use crate::znode::Data;

    fn segment(first: Zxid, txns: &[Txn]) -> Vec<u8> {
        let mut bytes = SegmentHeader {
            format: FORMAT_VERSION,
            db_id: 7,
            first_zxid: first,
        }
        .encode()
        .to_vec();
        for (i, t) in txns.iter().enumerate() {
            encode_record(
                &mut bytes,
                first + i as i64,
                &LogEntry {
                    time_ms: 1000 + i as i64,
                    txn: t.clone(),
                },
            );
        }
        bytes
    }

    fn sample() -> Vec<Txn> {
        vec![
            Txn::CreateSession {
                session: 9,
                timeout_ms: 4000,
            },
            Txn::Create {
                path: "/a".into(),
                data: Data::new(b"hello"),
                acl: Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::Multi(vec![
                Txn::SetData {
                    path: "/a".into(),
                    data: Data::null(),
                    version: 1,
                },
                Txn::Check { path: "/a".into() },
            ]),
            Txn::Error(-101),
        ]
    }

    #[test]
    fn records_round_trip() {
        let txns = sample();
        let bytes = segment(5, &txns);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.ending, Ending::Clean);
        assert_eq!(
            scan.header,
            SegmentHeader {
                format: FORMAT_VERSION,
                db_id: 7,
                first_zxid: 5
            }
        );
        assert_eq!(scan.valid_end, bytes.len());
        for (i, rec) in scan.records.iter().enumerate() {
            assert_eq!(rec.zxid, 5 + i as i64);
            let entry =
                decode_payload(&bytes[rec.payload_at..rec.payload_at + rec.payload_len]).unwrap();
            assert_eq!(
                entry,
                LogEntry {
                    time_ms: 1000 + i as i64,
                    txn: txns[i].clone()
                }
            );
        }
    }

    /// How each kind of damage is judged (one row per case).
    #[test]
    fn damage_decisions() {
        let good = segment(1, &sample());
        let scanned = scan(&good).unwrap();
        let second = scanned.records[1].payload_at - RECORD_HEADER_LEN;
        let third = scanned.records[2].payload_at - RECORD_HEADER_LEN;
        let mut zero_tail = good.clone();
        zero_tail.extend_from_slice(&[0; 4096]);
        let mut cut = good.clone();
        cut.truncate(good.len() - 3);
        let mut flipped_last = good.clone();
        *flipped_last.last_mut().unwrap() ^= 1;
        let mut flipped_middle = good.clone();
        flipped_middle[second + RECORD_HEADER_LEN] ^= 0x40;
        let mut zeroed_header = good.clone();
        zeroed_header[second..second + 4].fill(0);
        let mut garbage_tail = good.clone();
        garbage_tail.extend_from_slice(&[0xab; 40]);
        let rows: Vec<(&str, &[u8], Ending, usize)> = vec![
            (
                "preallocated zeros after the records",
                &zero_tail,
                Ending::Clean,
                4,
            ),
            (
                "last record cut short",
                &cut,
                Ending::TornTail {
                    at: scanned.records[3].payload_at - 16,
                },
                3,
            ),
            (
                "bit flip in the last record",
                &flipped_last,
                Ending::TornTail {
                    at: scanned.records[3].payload_at - 16,
                },
                3,
            ),
            (
                "bit flip in a middle record",
                &flipped_middle,
                Ending::Corrupt {
                    at: second,
                    valid_after: third,
                },
                1,
            ),
            (
                "zeroed header in the middle",
                &zeroed_header,
                Ending::Corrupt {
                    at: second,
                    valid_after: third,
                },
                1,
            ),
            (
                "garbage after the last record",
                &garbage_tail,
                Ending::TornTail { at: good.len() },
                4,
            ),
        ];
        for (why, bytes, ending, kept) in rows {
            let s = scan(bytes).unwrap();
            assert_eq!(s.ending, ending, "{why}");
            assert_eq!(s.records.len(), kept, "{why}");
        }
    }

    /// A member's segment with records at `zxids`.
    fn member_segment(zxids: &[Zxid]) -> Vec<u8> {
        let mut bytes = SegmentHeader {
            format: MEMBER_FORMAT_VERSION,
            db_id: 7,
            first_zxid: zxids[0],
        }
        .encode()
        .to_vec();
        for &zxid in zxids {
            let proposal = Proposal {
                session: 0x0100_0000_0000_0001,
                cxid: zxid as i32,
                entry: LogEntry {
                    time_ms: 5,
                    txn: Txn::Delete { path: "/x".into() },
                },
            };
            append_record(&mut bytes, zxid, &encode_proposal(&proposal).unwrap());
        }
        bytes
    }

    #[test]
    fn a_members_log_jumps_only_to_the_start_of_a_later_epoch() {
        let e = |epoch: i64, counter: i64| (epoch << 32) | counter;
        let s = scan(&member_segment(&[e(1, 7), e(1, 8), e(3, 1), e(3, 2)])).unwrap();
        assert_eq!(s.ending, Ending::Clean);
        assert_eq!(s.records.len(), 4);
        let payload = &member_segment(&[e(1, 7)])[HEADER_LEN + RECORD_HEADER_LEN..];
        let decoded = decode_proposal(payload.split_at(s.records[0].payload_len).0).unwrap();
        assert_eq!(
            (decoded.session, decoded.cxid),
            (0x0100_0000_0000_0001, e(1, 7) as i32)
        );
        for bad in [[e(1, 7), e(1, 9)], [e(1, 7), e(3, 2)], [e(3, 1), e(1, 8)]] {
            let s = scan(&member_segment(&bad)).unwrap();
            assert!(
                matches!(s.ending, Ending::Gap { found, .. } if found == bad[1]),
                "{bad:x?}: {:?}",
                s.ending
            );
        }
        // A standalone log never jumps.
        let mut standalone = member_segment(&[e(1, 8), e(3, 1)]);
        standalone[8] = FORMAT_VERSION as u8;
        assert!(matches!(
            scan(&standalone).unwrap().ending,
            Ending::Gap { .. }
        ));
        // Damage followed by a record of a later epoch is damage, not a torn tail.
        let mut damaged = member_segment(&[e(1, 7), e(1, 8), e(4, 1)]);
        let second = HEADER_LEN + RECORD_HEADER_LEN + first_payload_len(&damaged);
        damaged[second + 20] ^= 0xff;
        assert!(matches!(
            scan(&damaged).unwrap().ending,
            Ending::Corrupt { .. }
        ));
    }

    /// The payload length of a segment's first record.
    fn first_payload_len(bytes: &[u8]) -> usize {
        u32::from_le_bytes(bytes[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap()) as usize
    }

    #[test]
    fn zxid_gaps_and_bad_headers_are_reported() {
        let mut bytes = segment(1, &sample()[..1]);
        encode_record(
            &mut bytes,
            3,
            &LogEntry {
                time_ms: 0,
                txn: Txn::Error(0),
            },
        );
        let s = scan(&bytes).unwrap();
        assert!(
            matches!(
                s.ending,
                Ending::Gap {
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{:?}",
            s.ending
        );
        assert!(scan(b"HERDTXNX").is_err());
        let mut wrong_version = segment(1, &[]);
        wrong_version[8] = 9;
        assert!(matches!(
            scan(&wrong_version),
            Err(FormatError::BadHeader(_))
        ));
    }

    /// Bytes of the jute request a single-node write came in: header, path,
    /// data, ACL entries (perms, scheme, id) and the trailing flags or version.
    fn request_len(path: &str, data: usize, acl: &[Acl]) -> usize {
        let acl_len: usize = acl
            .iter()
            .map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len())
            .sum();
        8 + 4 + path.len() + 4 + data + 4 + acl_len + 4
    }

    fn payload_len(txn: Txn) -> usize {
        encode_payload(&LogEntry { time_ms: 1, txn })
            .expect("within MAX_PAYLOAD")
            .len()
    }

    /// What [`MAX_PAYLOAD`]'s compile-time check relies on: a single-node
    /// write's record is at most its request plus two thirds, plus a little.
    #[test]
    fn a_single_node_writes_record_is_at_most_five_thirds_of_its_request() {
        let world = |scheme: &str, id: &str| Acl {
            perms: 31,
            id: crate::acl::Id::new(scheme, id),
        };
        let long = "/".to_owned() + &"p".repeat(300);
        let cases: Vec<(&str, usize, Vec<Acl>)> = vec![
            ("/a", 0, vec![world("world", "anyone")]),
            ("/a", 1 << 20, vec![world("world", "anyone")]),
            (
                &long,
                100,
                vec![world("digest", "user:0123456789abcdef0123456789a=")],
            ),
            // Many ACL entries of empty strings: the worst ratio archived.
            ("/a", 0, (0..5000).map(|_| world("", "")).collect()),
            (
                "/a",
                10,
                (0..5000).map(|_| world("ip", "10.0.0.1")).collect(),
            ),
        ];
        for (path, data, acl) in cases {
            let request = request_len(path, data, &acl);
            let bytes = Data::new(&vec![7; data]);
            let created = payload_len(Txn::Create {
                path: path.to_owned(),
                data: bytes.clone(),
                acl: acl.clone(),
                ephemeral_owner: 0x1234,
                parent_cversion: 3,
            });
            let set = payload_len(Txn::SetData {
                path: path.to_owned(),
                data: bytes,
                version: 2,
            });
            let acl_set = payload_len(Txn::SetAcl {
                path: path.to_owned(),
                acl,
                version: 2,
            });
            for (what, len) in [("create", created), ("setData", set), ("setACL", acl_set)] {
                assert!(
                    len <= request * 5 / 3 + 256,
                    "{what} of {path:.8}: {len} bytes archived from a {request}-byte request"
                );
            }
        }
    }
}
