//! The quorum protocol's bytes: how a [`Message`] between members travels
//! as frame bodies (the transport puts each body in a length-prefixed frame,
//! as client frames are). Pure: messages in, bodies out, and back.
//!
//! Every body is checked: a CRC32C of the rest, then one item.
//!
//! ```text
//!  body  0  CRC32C of bytes 4..      u32 LE
//!        4  kind                     u8
//!        5  fields of that kind      little-endian, fixed width;
//!                                    a record is zxid i64, length u32, bytes
//! ```
//!
//! | kind | item                                  | fields                              |
//! |------|---------------------------------------|-------------------------------------|
//! | 1    | Vote (election notification)          | epoch u32, zxid i64, leader u64, round u64, state u8 |
//! | 2    | FollowerInfo                          | accepted epoch u32, last zxid i64   |
//! | 3    | LeaderInfo                            | new epoch u32                       |
//! | 4    | AckEpoch                              | epoch u32, has current u8, current u32, last zxid i64 |
//! | 5    | Sync header                           | plan u8 (1 DIFF, 2 TRUNC, 3 SNAP), plan zxid i64, base i64, has snapshot u8, snapshot length u64, records u32 |
//! | 15   | a chunk of the Sync's snapshot        | bytes (at most [`SNAPSHOT_CHUNK`])  |
//! | 6    | one record of the Sync                | record                              |
//! | 7    | NewLeader                             | epoch u32, last i64                 |
//! | 8    | AckNewLeader                          | epoch u32                           |
//! | 9    | UpToDate                              | committed i64                       |
//! | 10   | Proposal                              | record                              |
//! | 11   | Ack                                   | zxid i64                            |
//! | 12   | Ping                                  | sessions u32, then each i64         |
//! | 13   | Commit                                | zxid i64                            |
//! | 14   | Inform                                | record                              |
//! | 16   | Request (a write a learner forwards)  | bytes (the rest of the body)        |
//! | 17   | Rediscover (epoch out of zxids)       | none                                |
//!
//! A Sync is a header, its snapshot (a SNAP's) in chunks, and then one body
//! per record, so that no body is larger than the largest record
//! ([`MAX_BODY`]), however long the Sync or large the snapshot.
//! [`Decoder`] puts them back together; any other item is one message (a
//! PING naming more than [`MAX_PING_SESSIONS`] sessions goes as several).

use super::broadcast::{Message as Zab, Payload, Record};
use super::discovery::Message as Discovery;
use super::election::{Notification, PeerState, Vote};
use super::peer::Message;
use super::sync::Sync;
use crate::log::MAX_PAYLOAD;
use crate::Zxid;

/// The largest body: a record of the largest payload the log holds, with
/// its checksum, kind and record header.
pub const MAX_BODY: usize = MAX_PAYLOAD + 4 + 1 + 8 + 4;
/// Most snapshot bytes in one body: a SNAP's snapshot goes in chunks.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;
/// Most sessions one PING body names: an answer naming more is sent as
/// several PINGs.
pub const MAX_PING_SESSIONS: usize = 100_000;

/// Why bytes from a member are not a message: the connection they came on
/// cannot be trusted any more and is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    Checksum,
    Truncated,
    UnknownKind(u8),
    Invalid(&'static str),
    /// A record body where none was expected, or something else inside a Sync.
    OutOfPlace(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Checksum => write!(f, "checksum mismatch"),
            WireError::Truncated => write!(f, "body shorter than its fields"),
            WireError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            WireError::Invalid(what) => write!(f, "invalid {what}"),
            WireError::OutOfPlace(k) => write!(f, "message kind {k} out of place"),
        }
    }
}

impl std::error::Error for WireError {}

/// The bodies that carry `msg`, in order.
pub fn encode(msg: &Message) -> Vec<Vec<u8>> {
    let one = |kind: u8, fields: &dyn Fn(&mut Vec<u8>)| {
        let mut b = begin(kind);
        fields(&mut b);
        vec![finish(b)]
    };
    match msg {
        Message::Vote(n) => one(1, &|b| {
            put_u32(b, n.vote.epoch);
            put_i64(b, n.vote.zxid);
            put_u64(b, n.vote.leader);
            put_u64(b, n.round);
            b.push(state_code(n.state));
        }),
        Message::Discovery(Discovery::FollowerInfo {
            accepted_epoch,
            last_zxid,
        }) => one(2, &|b| {
            put_u32(b, *accepted_epoch);
            put_i64(b, *last_zxid);
        }),
        Message::Discovery(Discovery::LeaderInfo { new_epoch }) => {
            one(3, &|b| put_u32(b, *new_epoch))
        }
        Message::Discovery(Discovery::Rediscover) => one(17, &|_| {}),
        Message::Discovery(Discovery::AckEpoch {
            epoch,
            current_epoch,
            last_zxid,
        }) => one(4, &|b| {
            put_u32(b, *epoch);
            b.push(u8::from(current_epoch.is_some()));
            put_u32(b, current_epoch.unwrap_or(0));
            put_i64(b, *last_zxid);
        }),
        Message::Zab(Zab::Sync {
            plan,
            base,
            snapshot,
            records,
        }) => {
            let (code, at) = match *plan {
                Sync::Diff { after } => (1, after),
                Sync::Trunc { to } => (2, to),
                Sync::Snap => (3, 0),
            };
            let mut bodies = one(5, &|b| {
                b.push(code);
                put_i64(b, at);
                put_i64(b, *base);
                b.push(u8::from(snapshot.is_some()));
                put_u64(b, snapshot.as_ref().map_or(0, |s| s.len() as u64));
                put_u32(b, records.len() as u32);
            });
            let chunks = snapshot.iter().flat_map(|s| s.chunks(SNAPSHOT_CHUNK));
            bodies.extend(chunks.flat_map(|c| one(15, &|b| b.extend_from_slice(c))));
            bodies.extend(records.iter().flat_map(|r| one(6, &|b| put_record(b, r))));
            bodies
        }
        Message::Zab(Zab::NewLeader { epoch, last }) => one(7, &|b| {
            put_u32(b, *epoch);
            put_i64(b, *last);
        }),
        Message::Zab(Zab::AckNewLeader { epoch }) => one(8, &|b| put_u32(b, *epoch)),
        Message::Zab(Zab::UpToDate { committed }) => one(9, &|b| put_i64(b, *committed)),
        Message::Zab(Zab::Proposal(r)) => one(10, &|b| put_record(b, r)),
        Message::Zab(Zab::Ack(zxid)) => one(11, &|b| put_i64(b, *zxid)),
        Message::Zab(Zab::Ping(sessions)) if sessions.len() > MAX_PING_SESSIONS => sessions
            .chunks(MAX_PING_SESSIONS)
            .flat_map(|chunk| encode(&Message::Zab(Zab::Ping(chunk.to_vec()))))
            .collect(),
        Message::Zab(Zab::Ping(sessions)) => one(12, &|b| {
            put_u32(b, sessions.len() as u32);
            for s in sessions {
                put_i64(b, *s);
            }
        }),
        Message::Zab(Zab::Commit(zxid)) => one(13, &|b| put_i64(b, *zxid)),
        Message::Zab(Zab::Inform(r)) => one(14, &|b| put_record(b, r)),
        Message::Zab(Zab::Request(bytes)) => one(16, &|b| b.extend_from_slice(bytes)),
    }
}

/// A Sync being put back together: its snapshot's bytes still to come,
/// then its records.
struct PartialSync {
    plan: Sync,
    base: Zxid,
    snapshot: Option<Vec<u8>>,
    snapshot_left: u64,
    records: Vec<Record>,
    left: u32,
}

impl PartialSync {
    fn is_whole(&self) -> bool {
        self.snapshot_left == 0 && self.left == 0
    }

    fn into_message(self) -> Message {
        Message::Zab(Zab::Sync {
            plan: self.plan,
            base: self.base,
            snapshot: self.snapshot.map(Payload::from),
            records: self.records,
        })
    }
}

/// Turns bodies from one connection back into messages. One per
/// connection: a Sync spans bodies.
#[derive(Default)]
pub struct Decoder {
    sync: Option<PartialSync>,
}

impl Decoder {
    /// The message `body` completes, if it completes one.
    pub fn push(&mut self, body: &[u8]) -> Result<Option<Message>, WireError> {
        let (crc, rest) = body.split_at_checked(4).ok_or(WireError::Truncated)?;
        if crc32c::crc32c(rest) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(WireError::Checksum);
        }
        let mut r = Fields(rest);
        let kind = r.u8()?;
        if let Some(sync) = &mut self.sync {
            match (kind, &mut sync.snapshot) {
                (15, Some(bytes)) if sync.snapshot_left > 0 => {
                    let chunk = r.rest();
                    if chunk.is_empty() || chunk.len() as u64 > sync.snapshot_left {
                        return Err(WireError::Invalid("snapshot chunk"));
                    }
                    bytes.extend_from_slice(chunk);
                    sync.snapshot_left -= chunk.len() as u64;
                }
                (6, _) if sync.snapshot_left == 0 => {
                    sync.records.push(r.record()?);
                    r.end()?;
                    sync.left -= 1;
                }
                _ => return Err(WireError::OutOfPlace(kind)),
            }
            if !sync.is_whole() {
                return Ok(None);
            }
            return Ok(self.sync.take().map(PartialSync::into_message));
        }
        let msg = match kind {
            1 => {
                let vote = Vote {
                    epoch: r.u32()?,
                    zxid: r.i64()?,
                    leader: r.u64()?,
                };
                let round = r.u64()?;
                let code = r.u8()?;
                let state = STATES
                    .into_iter()
                    .find(|&s| state_code(s) == code)
                    .ok_or(WireError::Invalid("peer state"))?;
                Message::Vote(Notification { vote, round, state })
            }
            2 => Message::Discovery(Discovery::FollowerInfo {
                accepted_epoch: r.u32()?,
                last_zxid: r.i64()?,
            }),
            3 => Message::Discovery(Discovery::LeaderInfo {
                new_epoch: r.u32()?,
            }),
            17 => Message::Discovery(Discovery::Rediscover),
            4 => {
                let epoch = r.u32()?;
                let has = r.u8()?;
                let current = r.u32()?;
                let current_epoch = match has {
                    0 => None,
                    1 => Some(current),
                    _ => return Err(WireError::Invalid("current epoch flag")),
                };
                Message::Discovery(Discovery::AckEpoch {
                    epoch,
                    current_epoch,
                    last_zxid: r.i64()?,
                })
            }
            5 => {
                let code = r.u8()?;
                let at = r.i64()?;
                let plan = match code {
                    1 => Sync::Diff { after: at },
                    2 => Sync::Trunc { to: at },
                    3 => Sync::Snap,
                    _ => return Err(WireError::Invalid("sync plan")),
                };
                let base = r.i64()?;
                let has_snapshot = r.u8()?;
                let snapshot_left = r.u64()?;
                let snapshot = match (has_snapshot, snapshot_left) {
                    (0, 0) => None,
                    (1, _) => Some(Vec::new()),
                    _ => return Err(WireError::Invalid("snapshot flag")),
                };
                let sync = PartialSync {
                    plan,
                    base,
                    snapshot,
                    snapshot_left,
                    records: Vec::new(),
                    left: r.u32()?,
                };
                r.end()?;
                if !sync.is_whole() {
                    self.sync = Some(sync);
                    return Ok(None);
                }
                sync.into_message()
            }
            7 => Message::Zab(Zab::NewLeader {
                epoch: r.u32()?,
                last: r.i64()?,
            }),
            8 => Message::Zab(Zab::AckNewLeader { epoch: r.u32()? }),
            9 => Message::Zab(Zab::UpToDate {
                committed: r.i64()?,
            }),
            10 => Message::Zab(Zab::Proposal(r.record()?)),
            11 => Message::Zab(Zab::Ack(r.i64()?)),
            12 => {
                let n = r.u32()? as usize;
                if n > MAX_PING_SESSIONS {
                    return Err(WireError::Invalid("session count"));
                }
                let sessions = (0..n).map(|_| r.i64()).collect::<Result<_, _>>()?;
                Message::Zab(Zab::Ping(sessions))
            }
            13 => Message::Zab(Zab::Commit(r.i64()?)),
            14 => Message::Zab(Zab::Inform(r.record()?)),
            16 => {
                let bytes = r.rest();
                if bytes.len() > MAX_PAYLOAD {
                    return Err(WireError::Invalid("request length"));
                }
                Message::Zab(Zab::Request(Payload::from(bytes)))
            }
            6 | 15 => return Err(WireError::OutOfPlace(kind)),
            other => return Err(WireError::UnknownKind(other)),
        };
        r.end()?;
        Ok(Some(msg))
    }
}

const STATES: [PeerState; 4] = [
    PeerState::Looking,
    PeerState::Following,
    PeerState::Leading,
    PeerState::Observing,
];

/// A peer state's byte, the one table of them.
fn state_code(state: PeerState) -> u8 {
    match state {
        PeerState::Looking => 1,
        PeerState::Following => 2,
        PeerState::Leading => 3,
        PeerState::Observing => 4,
    }
}

fn begin(kind: u8) -> Vec<u8> {
    let mut b = vec![0; 4];
    b.push(kind);
    b
}

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&b[4..]);
    b[..4].copy_from_slice(&crc.to_le_bytes());
    b
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_record(b: &mut Vec<u8>, (zxid, payload): &Record) {
    put_i64(b, *zxid);
    put_u32(b, payload.len() as u32);
    b.extend_from_slice(payload);
}

/// Fields read in order from a body.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.take().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        self.take().map(i64::from_le_bytes)
    }

    /// Everything left, taken.
    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let zxid = self.i64()?;
        let len = self.u32()? as usize;
        if len > MAX_PAYLOAD {
            return Err(WireError::Invalid("record length"));
        }
        let (payload, rest) = self.0.split_at_checked(len).ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok((zxid, Payload::from(payload)))
    }

    /// Nothing may follow the last field.
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Invalid("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;

    fn rec(zxid: Zxid, len: usize) -> Record {
        (zxid, Payload::from(vec![zxid as u8; len]))
    }

    /// One of every message, with the edge values of its fields.
    fn every_message() -> Vec<Message> {
        let vote = Vote {
            epoch: u32::MAX,
            zxid: Zxid::MIN,
            leader: u64::MAX,
        };
        let mut all = vec![
            Message::Vote(Notification {
                vote,
                round: 7,
                state: PeerState::Observing,
            }),
            Message::Discovery(Discovery::FollowerInfo {
                accepted_epoch: 3,
                last_zxid: 3 << 32 | 9,
            }),
            Message::Discovery(Discovery::LeaderInfo { new_epoch: 4 }),
            Message::Discovery(Discovery::Rediscover),
            Message::Discovery(Discovery::AckEpoch {
                epoch: 4,
                current_epoch: Some(0),
                last_zxid: -1,
            }),
            Message::Discovery(Discovery::AckEpoch {
                epoch: 4,
                current_epoch: None,
                last_zxid: 0,
            }),
        ];
        for plan in [Sync::Diff { after: 5 }, Sync::Trunc { to: 2 }] {
            let records = vec![rec(6, 0), rec(7, 300)];
            all.push(Message::Zab(Zab::Sync {
                plan,
                base: 1,
                snapshot: None,
                records,
            }));
        }
        let snapshot = |len: usize| Some(Payload::from(vec![9; len]));
        for (snapshot, records) in [
            (snapshot(SNAPSHOT_CHUNK * 2 + 1), vec![rec(6, 2)]),
            (snapshot(5), vec![]),
            (snapshot(0), vec![rec(6, 2)]),
        ] {
            all.push(Message::Zab(Zab::Sync {
                plan: Sync::Snap,
                base: 5,
                snapshot,
                records,
            }));
        }
        all.push(Message::Zab(Zab::Sync {
            plan: Sync::Diff { after: 5 },
            base: 0,
            snapshot: None,
            records: vec![],
        }));
        all.extend(
            [
                Zab::NewLeader { epoch: 4, last: 9 },
                Zab::AckNewLeader { epoch: 4 },
                Zab::UpToDate { committed: 9 },
                Zab::Proposal(rec(10, 1000)),
                Zab::Ack(10),
                Zab::Ping(vec![]),
                Zab::Ping(vec![1, -1, i64::MAX]),
                Zab::Commit(10),
                Zab::Inform(rec(11, 1)),
            ]
            .map(Message::Zab),
        );
        all
    }

    #[test]
    fn every_message_comes_back_as_it_was_sent_one_after_another() {
        let mut d = Decoder::default();
        for msg in every_message() {
            let bodies = encode(&msg);
            let (last, first) = bodies.split_last().unwrap();
            for b in first {
                assert_eq!(d.push(b), Ok(None), "{msg:?}: more bodies to come");
            }
            assert_eq!(d.push(last), Ok(Some(msg.clone())));
        }
    }

    #[test]
    fn damaged_or_misplaced_bodies_are_errors() {
        let mut d = Decoder::default();
        let ack = encode(&Message::Zab(Zab::Ack(3))).remove(0);
        let mut flipped = ack.clone();
        flipped[6] ^= 1;
        assert_eq!(d.push(&flipped), Err(WireError::Checksum));
        assert_eq!(d.push(&ack[..3]), Err(WireError::Truncated));
        assert_eq!(d.push(&finish(begin(99))), Err(WireError::UnknownKind(99)));
        assert_eq!(d.push(&finish(begin(11))), Err(WireError::Truncated));
        let mut long = begin(11);
        put_i64(&mut long, 3);
        long.push(0);
        assert_eq!(
            d.push(&finish(long)),
            Err(WireError::Invalid("trailing bytes"))
        );
        let sync = encode(&Message::Zab(Zab::Sync {
            plan: Sync::Snap,
            base: 0,
            snapshot: Some(Payload::from(&b"tree"[..])),
            records: vec![rec(1, 4), rec(2, 4)],
        }));
        assert_eq!(
            d.push(&sync[2]),
            Err(WireError::OutOfPlace(6)),
            "a record alone"
        );
        assert_eq!(
            d.push(&sync[1]),
            Err(WireError::OutOfPlace(15)),
            "a chunk alone"
        );
        assert_eq!(d.push(&sync[0]), Ok(None));
        assert_eq!(
            d.push(&sync[2]),
            Err(WireError::OutOfPlace(6)),
            "a record before the snapshot is whole"
        );
        let mut long = begin(15);
        long.extend_from_slice(b"trees");
        assert_eq!(
            d.push(&finish(long)),
            Err(WireError::Invalid("snapshot chunk")),
            "more snapshot than announced"
        );
        assert_eq!(d.push(&sync[1]), Ok(None));
        assert_eq!(
            d.push(&ack),
            Err(WireError::OutOfPlace(11)),
            "an ACK in the middle of a Sync"
        );
        let mut huge = begin(10);
        put_i64(&mut huge, 1);
        put_u32(&mut huge, MAX_PAYLOAD as u32 + 1);
        let mut d = Decoder::default();
        assert_eq!(
            d.push(&finish(huge)),
            Err(WireError::Invalid("record length"))
        );
    }

    /// Random bytes, and every message cut or bit-flipped at random, never
    /// panic the decoder: each is a message or an error.
    #[test]
    fn random_damage_never_panics() {
        let mut rng = Rng(7);
        let bodies: Vec<Vec<u8>> = every_message().iter().flat_map(encode).collect();
        for _ in 0..20_000 {
            let mut d = Decoder::default();
            let mut b = rng.pick(&bodies).clone();
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => {
                    let at = rng.below(b.len());
                    b[at] ^= 1 << rng.below(8);
                }
                _ => {
                    // A valid checksum over damaged fields.
                    let at = 4 + rng.below(b.len() - 4);
                    b[at] = rng.below(256) as u8;
                    b = finish(b);
                }
            }
            let _ = d.push(&b);
        }
    }

    #[test]
    fn a_ping_naming_very_many_sessions_goes_as_several() {
        let sessions: Vec<i64> = (0..MAX_PING_SESSIONS as i64 * 2 + 1).collect();
        let bodies = encode(&Message::Zab(Zab::Ping(sessions.clone())));
        assert_eq!(bodies.len(), 3);
        let mut d = Decoder::default();
        let mut back = Vec::new();
        for b in &bodies {
            match d.push(b) {
                Ok(Some(Message::Zab(Zab::Ping(s)))) => back.extend(s),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, sessions);
    }

    #[test]
    fn the_largest_record_fills_the_largest_body_exactly() {
        let big = Message::Zab(Zab::Proposal(rec(1, MAX_PAYLOAD)));
        let bodies = encode(&big);
        assert_eq!(bodies.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_BODY]);
        assert_eq!(Decoder::default().push(&bodies[0]), Ok(Some(big)));
    }
}
