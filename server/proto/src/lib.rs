//! ZooKeeper's client protocol: frames, opcodes, and the records of every request
//! and response (`zookeeper.jute`). Pure: bytes in, typed requests out; typed
//! results in, bytes out. No I/O: the server (`herd-server`), `herd-bench` and
//! `herd-cli` bring their own sockets and share this codec.
//!
//! A frame ([`frame`]) is a 4-byte big-endian length followed by that many
//! bytes, at most the receiver's maximum (`jute.maxbuffer` on the server). The
//! first frame of a connection is a `ConnectRequest`; every later one starts with a
//! `RequestHeader {xid, type}`. Replies start with `ReplyHeader {xid, zxid, err}`;
//! a failed request (other than multi) has no body. The records inside a frame
//! are jute ([`jute`]).

pub mod frame;
pub mod jute;

use engine::acl::Acl;
use engine::op::{CreateOp, OpResult, WriteOp};
use engine::stat::Stat;
use engine::ErrorCode;
use jute::{Malformed, Reader, Write};

/// Opcodes (`ZooDefs.OpCode`).
pub mod opcode {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Reserved xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Session state carried in watch notifications (`KeeperState.SyncConnected`).
pub const STATE_SYNC_CONNECTED: i32 = 3;

/// The handshake a client opens with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// Absent in old clients' handshakes.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(frame: &[u8]) -> Result<ConnectRequest, Malformed> {
        let mut r = Reader::new(frame);
        Ok(ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            password: r.buffer()?.to_vec(),
            read_only: if r.remaining() > 0 {
                Some(r.bool()?)
            } else {
                None
            },
        })
    }

    /// The handshake of a client asking for a new session of `timeout_ms`.
    pub fn new_session(timeout_ms: i32) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            password: vec![0; 16],
            read_only: Some(false),
        }
    }

    /// Appends the request as a frame (clients' side).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = frame::begin(out);
        out.i32(self.protocol_version);
        out.i64(self.last_zxid_seen);
        out.i32(self.timeout_ms);
        out.i64(self.session_id);
        out.buffer(&self.password);
        if let Some(read_only) = self.read_only {
            out.bool(read_only);
        }
        frame::end(out, at);
    }
}

/// The server's answer to a [`ConnectRequest`], its password borrowed from the
/// frame (or the server's session). A session id of 0 means the session was
/// refused (expired, or a wrong password).
///
/// `read_only` is absent when the client's request had no readOnly flag: a
/// client of ZooKeeper 3.4 or older (ClickHouse's own, among others) takes a
/// 37-byte answer as malformed, and ZooKeeper answers such a client in its own
/// 36-byte shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectResponse<'a> {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: &'a [u8],
    pub read_only: Option<bool>,
}

impl<'a> ConnectResponse<'a> {
    /// Appends the response as a frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = frame::begin(out);
        out.i32(self.protocol_version);
        out.i32(self.timeout_ms);
        out.i64(self.session_id);
        out.buffer(self.password);
        if let Some(read_only) = self.read_only {
            out.bool(read_only);
        }
        frame::end(out, at);
    }

    /// Decodes a response frame (without its length), which holds nothing else,
    /// with or without the readOnly flag.
    pub fn decode(frame: &'a [u8]) -> Result<ConnectResponse<'a>, Malformed> {
        let mut r = Reader::new(frame);
        let response = ConnectResponse {
            protocol_version: r.i32()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            password: r.buffer()?,
            read_only: if r.remaining() > 0 {
                Some(r.bool()?)
            } else {
                None
            },
        };
        if r.remaining() != 0 {
            return Err(Malformed);
        }
        Ok(response)
    }

    /// A client's reading of the answer: the response if the server opened a
    /// session, `InvalidData` if it is malformed, `ConnectionRefused` if not.
    pub fn opened(frame: &'a [u8]) -> std::io::Result<ConnectResponse<'a>> {
        use std::io::{Error, ErrorKind};
        let response = ConnectResponse::decode(frame)
            .map_err(|_| Error::new(ErrorKind::InvalidData, "bad ConnectResponse"))?;
        if response.session_id == 0 || response.timeout_ms <= 0 {
            return Err(Error::new(
                ErrorKind::ConnectionRefused,
                "session refused by the server",
            ));
        }
        Ok(response)
    }
}

/// Watch types in checkWatches/removeWatches (`Watcher.WatcherType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children = 1,
    Data = 2,
    Any = 3,
    Persistent = 4,
    PersistentRecursive = 5,
}

/// Watches a reconnecting client re-registers (setWatches / setWatches2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

/// A request answered on the shard from the local tree and watch table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    GetAllChildrenNumber {
        path: String,
    },
    GetEphemerals {
        prefix: String,
    },
    MultiRead(Vec<ReadOp>),
    WhoAmI,
    CheckWatches {
        path: String,
        kind: WatcherType,
    },
    RemoveWatches {
        path: String,
        kind: WatcherType,
    },
    AddWatch {
        path: String,
        recursive: bool,
    },
    SetWatches(SetWatches),
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Read(ReadOp),
    /// A write, with the opcodes of a multi's ops (for encoding their results).
    Write(WriteOp, Vec<i32>),
    Sync(String),
    Ping,
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    /// A SASL token. herd does no SASL, and answers as a ZooKeeper without
    /// it does: Ok, and no token back.
    Sasl,
    /// An opcode ZooKeeper does not know.
    Unknown,
}

/// Decodes a request frame into its header (xid, opcode) and request.
pub fn decode_request(frame: &[u8]) -> Result<(i32, i32, Request), Malformed> {
    let mut r = Reader::new(frame);
    let xid = r.i32()?;
    let op = r.i32()?;
    let request = match op {
        opcode::PING => Request::Ping,
        opcode::AUTH => {
            let _type = r.i32()?;
            Request::Auth {
                scheme: r.string()?,
                auth: r.buffer()?.to_vec(),
            }
        }
        opcode::SYNC => Request::Sync(r.string()?),
        opcode::CLOSE_SESSION => Request::Write(WriteOp::CloseSession, Vec::new()),
        opcode::MULTI => {
            let (ops, kinds) = decode_multi(&mut r)?;
            Request::Write(WriteOp::Multi(ops), kinds)
        }
        opcode::MULTI_READ => Request::Read(ReadOp::MultiRead(decode_multi_read(&mut r)?)),
        opcode::DELETE_CONTAINER => Request::Write(
            WriteOp::DeleteContainer {
                path: String::from_utf8_lossy(frame[8..].as_ref()).into_owned(),
            },
            Vec::new(),
        ),
        opcode::RECONFIG => Request::Write(WriteOp::Reconfig, Vec::new()),
        opcode::SASL => Request::Sasl,
        opcode::SET_WATCHES | opcode::SET_WATCHES2 => {
            let mut w = SetWatches {
                relative_zxid: r.i64()?,
                data: r.strings()?,
                exist: r.strings()?,
                child: r.strings()?,
                ..SetWatches::default()
            };
            if op == opcode::SET_WATCHES2 {
                w.persistent = r.strings()?;
                w.recursive = r.strings()?;
            }
            Request::Read(ReadOp::SetWatches(w))
        }
        opcode::CHECK_WATCHES | opcode::REMOVE_WATCHES => {
            let path = r.string()?;
            let kind = match r.i32()? {
                1 => WatcherType::Children,
                2 => WatcherType::Data,
                3 => WatcherType::Any,
                4 => WatcherType::Persistent,
                5 => WatcherType::PersistentRecursive,
                _ => return Err(Malformed),
            };
            Request::Read(if op == opcode::CHECK_WATCHES {
                ReadOp::CheckWatches { path, kind }
            } else {
                ReadOp::RemoveWatches { path, kind }
            })
        }
        opcode::ADD_WATCH => {
            let path = r.string()?;
            let recursive = match r.i32()? {
                0 => false,
                1 => true,
                _ => return Err(Malformed),
            };
            Request::Read(ReadOp::AddWatch { path, recursive })
        }
        opcode::GET_EPHEMERALS => Request::Read(ReadOp::GetEphemerals {
            prefix: r.string()?,
        }),
        opcode::WHO_AM_I => Request::Read(ReadOp::WhoAmI),
        _ => match decode_op(op, &mut r)? {
            Some(DecodedOp::Read(read)) => Request::Read(read),
            Some(DecodedOp::Write(write)) => Request::Write(write, Vec::new()),
            None => Request::Unknown,
        },
    };
    Ok((xid, op, request))
}

enum DecodedOp {
    Read(ReadOp),
    Write(WriteOp),
}

/// The single-path operations that may also appear inside multi / multiRead.
fn decode_op(op: i32, r: &mut Reader<'_>) -> Result<Option<DecodedOp>, Malformed> {
    use DecodedOp::{Read, Write};
    Ok(Some(match op {
        opcode::CREATE | opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
            let path = r.string()?;
            let data = r.data()?;
            let acl = r.acls()?;
            let flags = r.i32()?;
            let ttl_ms = if op == opcode::CREATE_TTL {
                r.i64()?
            } else {
                -1
            };
            Write(WriteOp::Create(CreateOp {
                path,
                data,
                acl,
                flags,
                ttl_ms,
            }))
        }
        opcode::DELETE => Write(WriteOp::Delete {
            path: r.string()?,
            version: r.i32()?,
        }),
        opcode::SET_DATA => Write(WriteOp::SetData {
            path: r.string()?,
            data: r.data()?,
            version: r.i32()?,
        }),
        opcode::SET_ACL => Write(WriteOp::SetAcl {
            path: r.string()?,
            acl: r.acls()?,
            version: r.i32()?,
        }),
        opcode::CHECK => Write(WriteOp::Check {
            path: r.string()?,
            version: r.i32()?,
        }),
        opcode::EXISTS => Read(ReadOp::Exists {
            path: r.string()?,
            watch: r.bool()?,
        }),
        opcode::GET_DATA => Read(ReadOp::GetData {
            path: r.string()?,
            watch: r.bool()?,
        }),
        opcode::GET_ACL => Read(ReadOp::GetAcl { path: r.string()? }),
        opcode::GET_CHILDREN | opcode::GET_CHILDREN2 => Read(ReadOp::GetChildren {
            path: r.string()?,
            watch: r.bool()?,
            with_stat: op == opcode::GET_CHILDREN2,
        }),
        opcode::GET_ALL_CHILDREN_NUMBER => Read(ReadOp::GetAllChildrenNumber { path: r.string()? }),
        _ => return Ok(None),
    }))
}

/// `MultiHeader {type, done, err}` then the op, until a header with done set.
fn multi_ops(
    r: &mut Reader<'_>,
    mut each: impl FnMut(i32, DecodedOp) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    loop {
        let op = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(());
        }
        each(op, decode_op(op, r)?.ok_or(Malformed)?)?;
    }
}

fn with_stat_in_multi(flags: i32) -> bool {
    use engine::op::CreateMode;
    matches!(
        CreateMode::from_flags(flags),
        Ok(CreateMode::Container
            | CreateMode::PersistentWithTtl
            | CreateMode::PersistentSequentialWithTtl)
    )
}

/// A multi's operations, and the result type each answers with. As in
/// ZooKeeper, a create in a multi answers by its mode, whatever its opcode:
/// with a stat (create2) for a container or TTL node, with the path alone
/// (create) otherwise.
fn decode_multi(r: &mut Reader<'_>) -> Result<(Vec<WriteOp>, Vec<i32>), Malformed> {
    let (mut ops, mut kinds) = (Vec::new(), Vec::new());
    multi_ops(r, |op, decoded| match decoded {
        DecodedOp::Write(w) if !matches!(w, WriteOp::SetAcl { .. }) => {
            kinds.push(match &w {
                WriteOp::Create(c) if with_stat_in_multi(c.flags) => opcode::CREATE2,
                WriteOp::Create(_) => opcode::CREATE,
                _ => op,
            });
            ops.push(w);
            Ok(())
        }
        _ => Err(Malformed),
    })?;
    Ok((ops, kinds))
}

fn decode_multi_read(r: &mut Reader<'_>) -> Result<Vec<ReadOp>, Malformed> {
    let mut ops = Vec::new();
    multi_ops(r, |_, decoded| match decoded {
        DecodedOp::Read(read @ (ReadOp::GetChildren { .. } | ReadOp::GetData { .. })) => {
            ops.push(read);
            Ok(())
        }
        _ => Err(Malformed),
    })?;
    Ok(ops)
}

/// Appends a request frame (clients' side): `RequestHeader {xid, type}`, then
/// the record `body` writes.
pub fn request(out: &mut Vec<u8>, xid: i32, op: i32, body: impl FnOnce(&mut Vec<u8>)) {
    let at = frame::begin(out);
    out.i32(xid);
    out.i32(op);
    body(out);
    frame::end(out, at);
}

/// Appends a reply frame: header, then `body` when the request succeeded or
/// `always_body` (multi) is set.
pub fn reply(
    out: &mut Vec<u8>,
    xid: i32,
    zxid: i64,
    err: ErrorCode,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let at = frame::begin(out);
    out.i32(xid);
    out.i64(zxid);
    out.i32(err.code());
    body(out);
    frame::end(out, at);
}

/// Appends a watch notification frame.
pub fn notification(out: &mut Vec<u8>, zxid: i64, event_type: i32, path: &str) {
    reply(out, xid::NOTIFICATION, zxid, ErrorCode::Ok, |out| {
        out.i32(event_type);
        out.i32(STATE_SYNC_CONNECTED);
        out.string(path);
    });
}

/// Encodes the body of a successful write's response for opcode `op`.
pub fn write_result(out: &mut Vec<u8>, op: i32, kinds: &[i32], result: &OpResult) {
    match result {
        OpResult::Create { path, stat } => {
            out.string(path);
            if op != opcode::CREATE {
                out.stat(stat);
            }
        }
        OpResult::SetData { stat } | OpResult::SetAcl { stat } => out.stat(stat),
        OpResult::Multi(results) => {
            for (result, kind) in results.iter().zip(kinds) {
                multi_item(out, *kind, result);
            }
            multi_end(out);
        }
        OpResult::Delete
        | OpResult::Check
        | OpResult::CreateSession
        | OpResult::CloseSession
        | OpResult::Error(_) => {}
    }
}

fn multi_item(out: &mut Vec<u8>, kind: i32, result: &OpResult) {
    let (header_type, err) = match result {
        OpResult::Error(code) => (opcode::ERROR, code.code()),
        OpResult::Create { .. } if kind != opcode::CREATE => (opcode::CREATE2, 0),
        _ => (kind, 0),
    };
    out.i32(header_type);
    out.bool(false);
    out.i32(err);
    match result {
        OpResult::Error(code) => out.i32(code.code()),
        _ => write_result(out, header_type, &[], result),
    }
}

fn multi_end(out: &mut Vec<u8>) {
    out.i32(-1);
    out.bool(true);
    out.i32(-1);
}

/// One result of a multiRead.
pub enum ReadResult<'a> {
    Children(&'a [String]),
    Data(Option<&'a [u8]>, &'a Stat),
    Error(ErrorCode),
}

/// Appends one multiRead result.
pub fn multi_read_item(out: &mut Vec<u8>, result: ReadResult<'_>) {
    match result {
        ReadResult::Children(children) => {
            out.i32(opcode::GET_CHILDREN);
            out.bool(false);
            out.i32(0);
            out.strings(children);
        }
        ReadResult::Data(data, stat) => {
            out.i32(opcode::GET_DATA);
            out.bool(false);
            out.i32(0);
            out.data(data);
            out.stat(stat);
        }
        ReadResult::Error(code) => {
            out.i32(opcode::ERROR);
            out.bool(false);
            out.i32(code.code());
            out.i32(code.code());
        }
    }
}

/// Ends a multiRead result list.
pub fn multi_read_end(out: &mut Vec<u8>) {
    multi_end(out);
}

/// Shares an ACL list for encoding.
pub fn masked_acls(acl: &[Acl], admin: bool) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if !admin && a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: engine::acl::Id {
                        scheme: a.id.scheme.clone(),
                        id: format!("{user}:x"),
                    },
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame's record, without its 4-byte length.
    fn record(bytes: &[u8]) -> &[u8] {
        let (body, rest) = frame::split(bytes, usize::MAX).expect("a whole frame");
        assert!(rest.is_empty(), "one frame");
        body
    }

    #[test]
    fn requests_round_trip() {
        let mut out = Vec::new();
        request(&mut out, 7, opcode::GET_DATA, |b| {
            b.string("/a");
            b.bool(true);
        });
        assert_eq!(record(&out).len(), 4 + 4 + 4 + 2 + 1);
        let get = ReadOp::GetData {
            path: "/a".into(),
            watch: true,
        };
        assert_eq!(
            decode_request(record(&out)),
            Ok((7, opcode::GET_DATA, Request::Read(get)))
        );
        out.clear();
        request(&mut out, xid::PING, opcode::PING, |_| {});
        assert_eq!(out, [0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);
        assert_eq!(
            decode_request(record(&out)),
            Ok((xid::PING, opcode::PING, Request::Ping))
        );
    }

    #[test]
    fn handshake_records_round_trip() {
        let mut out = Vec::new();
        let request = ConnectRequest::new_session(5000);
        request.encode(&mut out);
        assert_eq!(record(&out).len(), 4 + 8 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(ConnectRequest::decode(record(&out)), Ok(request.clone()));
        // An old client sends no readOnly flag.
        let old = ConnectRequest {
            read_only: None,
            ..request
        };
        out.clear();
        old.encode(&mut out);
        assert_eq!(ConnectRequest::decode(record(&out)), Ok(old));

        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x0100_0000_0000_0001,
            password: &[7; 16],
            read_only: Some(false),
        };
        out.clear();
        response.encode(&mut out);
        assert_eq!(ConnectResponse::decode(record(&out)), Ok(response));
        let mut longer = record(&out).to_vec();
        longer.push(0);
        assert_eq!(ConnectResponse::decode(&longer), Err(Malformed));
        let body = record(&out);
        assert_eq!(
            ConnectResponse::decode(&body[..body.len() - 2]),
            Err(Malformed)
        );
        // The shape an old client gets: no readOnly flag, 36 bytes.
        let mut old = Vec::new();
        let without = ConnectResponse {
            read_only: None,
            ..response
        };
        without.encode(&mut old);
        assert_eq!(record(&old).len(), 4 + 4 + 8 + 4 + 16);
        assert_eq!(ConnectResponse::decode(record(&old)), Ok(without));

        // What a client makes of it: opened, malformed, refused.
        assert_eq!(ConnectResponse::opened(body).unwrap(), response);
        let kind = |frame: &[u8]| ConnectResponse::opened(frame).unwrap_err().kind();
        assert_eq!(kind(&longer), std::io::ErrorKind::InvalidData);
        out.clear();
        ConnectResponse {
            session_id: 0,
            ..response
        }
        .encode(&mut out);
        assert_eq!(kind(record(&out)), std::io::ErrorKind::ConnectionRefused);
    }
}
