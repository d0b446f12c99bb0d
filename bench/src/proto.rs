//! The client side of ZooKeeper's wire protocol, as much as the workloads use:
//! jute encoding (big-endian `int`/`long`, one-byte `boolean`, `buffer` and
//! `ustring` as an int length then bytes, `vector` as an int count then
//! elements), frames (a 4-byte big-endian length, then the record), opcodes and
//! `KeeperException.Code` names.
//!
//! herd's server crate has the full codec (`herd_server::proto`); this small
//! one keeps the benchmark free of the server's dependencies (glommio) so that
//! it builds and runs anywhere a ZooKeeper client would.

/// Opcodes (`ZooDefs.OpCode`).
pub mod opcode {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_CHILDREN: i32 = 8;
    pub const PING: i32 = 11;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Reserved xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
}

/// Watch event types (`Watcher.Event.EventType`).
pub mod event {
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
}

/// Create modes (`CreateMode` flags).
pub mod create_mode {
    pub const PERSISTENT: i32 = 0;
    pub const EPHEMERAL: i32 = 1;
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
}

/// `KeeperException.Code` values the benchmark tells apart, and two it makes
/// up on the client side as the Java client does: `CONNECTION_LOSS` when the
/// connection closes under a request, `OPERATION_TIMEOUT` when no reply comes
/// within the request timeout.
pub mod code {
    pub const OK: i32 = 0;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const OPERATION_TIMEOUT: i32 = -7;
    pub const NO_NODE: i32 = -101;
    pub const BAD_VERSION: i32 = -103;
    pub const NODE_EXISTS: i32 = -110;
}

/// The name ZooKeeper gives an error code (`KeeperException.Code`).
pub fn code_name(code: i32) -> String {
    let name = match code {
        0 => "Ok",
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -13 => "NewConfigNoQuorum",
        -14 => "ReconfigInProgress",
        -100 => "APIError",
        -101 => "NoNode",
        -102 => "NoAuth",
        -103 => "BadVersion",
        -108 => "NoChildrenForEphemerals",
        -110 => "NodeExists",
        -111 => "NotEmpty",
        -112 => "SessionExpired",
        -113 => "InvalidCallback",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -118 => "SessionMoved",
        -119 => "NotReadOnly",
        -120 => "EphemeralOnLocalSession",
        -121 => "NoWatcher",
        -122 => "RequestTimeout",
        -123 => "ReconfigDisabled",
        -124 => "SessionClosedRequireSasl",
        -125 => "QuotaExceeded",
        -127 => "Throttled",
        _ => return format!("Code{code}"),
    };
    name.to_owned()
}

/// A frame or record that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Appends jute records to a buffer.
pub trait Write {
    fn i32(&mut self, v: i32);
    fn i64(&mut self, v: i64);
    fn bool(&mut self, v: bool);
    fn buffer(&mut self, v: &[u8]);
    fn string(&mut self, v: &str);
    /// The ACL list `[world:anyone, ALL]` (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    fn open_acl(&mut self);
}

impl Write for Vec<u8> {
    fn i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    fn buffer(&mut self, v: &[u8]) {
        self.i32(v.len() as i32);
        self.extend_from_slice(v);
    }
    fn string(&mut self, v: &str) {
        self.buffer(v.as_bytes());
    }
    fn open_acl(&mut self) {
        self.i32(1);
        self.i32(31);
        self.string("world");
        self.string("anyone");
    }
}

/// Starts a length-prefixed frame; returns where its length goes.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Writes the length of the frame begun at `at`.
pub fn end_frame(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Reads jute records from one frame.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let out = self.buf.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(out)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| Malformed)?,
        ))
    }

    pub fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| Malformed)?,
        ))
    }

    pub fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A `buffer`; null reads as empty.
    pub fn buffer(&mut self) -> Result<&'a [u8], Malformed> {
        match self.i32()? {
            -1 => Ok(&[]),
            n if n < 0 => Err(Malformed),
            n => self.take(n as usize),
        }
    }

    pub fn string(&mut self) -> Result<String, Malformed> {
        Ok(String::from_utf8_lossy(self.buffer()?).into_owned())
    }

    pub fn strings(&mut self) -> Result<Vec<String>, Malformed> {
        let n = self.i32()?.max(0) as usize;
        if n > self.remaining() / 4 {
            return Err(Malformed);
        }
        (0..n).map(|_| self.string()).collect()
    }

    /// A `Stat`; returns its `version` (data version), skipping the rest.
    pub fn stat_version(&mut self) -> Result<i32, Malformed> {
        let stat = self.take(STAT_LEN)?;
        Ok(i32::from_be_bytes(
            stat[32..36].try_into().map_err(|_| Malformed)?,
        ))
    }
}

/// A `Stat` on the wire: czxid, mzxid, ctime, mtime (longs), version, cversion,
/// aversion (ints), ephemeralOwner (long), dataLength, numChildren (ints),
/// pzxid (long).
pub const STAT_LEN: usize = 8 * 4 + 4 * 3 + 8 + 4 * 2 + 8;

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
            15 => {
                r.string()?;
                r.stat_version()?;
            }
            opcode::SET_DATA => {
                r.stat_version()?;
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
    fn stat_version_is_the_fifth_field() {
        let mut out = Vec::new();
        for v in 0..4 {
            out.i64(v);
        }
        out.i32(77);
        out.extend_from_slice(&[0; STAT_LEN - 36]);
        assert_eq!(Reader::new(&out).stat_version(), Ok(77));
        assert_eq!(
            Reader::new(&out[..STAT_LEN - 1]).stat_version(),
            Err(Malformed)
        );
    }

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
