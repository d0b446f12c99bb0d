//! `herd-inspect log FILE`: one line per record of a segment, then how it ends.
//!
//! ```text
//! 0x1 2026-11-22T02:48:17.000Z session=0x9 createSession
//! 0x2 2026-11-22T02:48:17.120Z create /demo
//! 0x3 2026-11-22T02:48:18.004Z session=0x9 create /demo/worker-0000000000
//! 0x4 2026-11-22T02:48:19.500Z multi(2) setData:/demo check:/demo
//! 0x5 2026-11-22T02:48:20.000Z error(-101)
//! summary: 5 records, zxids 0x1..0x5, database 0x2a, clean
//! ```
//!
//! The session column appears for transactions that have one: createSession and
//! closeSession, and a create whose node is ephemeral (its owner). Containers and
//! TTL nodes carry a marker in their ephemeralOwner rather than a session; they
//! show `container` and `ttl=<ms>ms` in that column instead.

use engine::log::{self, Ending, FormatError, LogEntry};
use engine::stat::NodeKind;
use engine::txn::Txn;
use engine::Zxid;

use engine::time::iso8601_utc;

/// A dumped segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// One per valid record, in log order.
    pub lines: Vec<String>,
    /// Records, zxid range, database id and ending.
    pub summary: String,
    pub ending: Ending,
    /// Records whose checksum matched but whose payload does not decode.
    pub undecodable: usize,
}

/// Dumps the bytes of one segment file.
pub fn dump(bytes: &[u8]) -> Result<Dump, FormatError> {
    let scan = log::scan(bytes)?;
    let mut lines = Vec::with_capacity(scan.records.len());
    let mut undecodable = 0;
    for rec in &scan.records {
        let payload = &bytes[rec.payload_at..rec.payload_at + rec.payload_len];
        match log::decode_entry(scan.header.format, payload) {
            Ok(entry) => lines.push(record_line(rec.zxid, &entry)),
            Err(e) => {
                undecodable += 1;
                lines.push(format!("0x{:x} {e}", rec.zxid));
            }
        }
    }
    let mut summary = format!("summary: {} records, ", scan.records.len());
    match (scan.records.first(), scan.records.last()) {
        (Some(first), Some(last)) => {
            summary.push_str(&format!("zxids 0x{:x}..0x{:x}, ", first.zxid, last.zxid))
        }
        _ => summary.push_str(&format!(
            "none from first zxid 0x{:x}, ",
            scan.header.first_zxid
        )),
    }
    summary.push_str(&format!(
        "database 0x{:x}, {}",
        scan.header.db_id,
        ending_text(&scan.ending)
    ));
    if undecodable > 0 {
        summary.push_str(&format!(", {undecodable} undecodable payloads"));
    }
    Ok(Dump {
        lines,
        summary,
        ending: scan.ending,
        undecodable,
    })
}

/// How a segment ends, in words.
pub fn ending_text(ending: &Ending) -> String {
    match ending {
        Ending::Clean => "clean".into(),
        Ending::TornTail { at } => format!("torn tail at offset {at}"),
        Ending::Corrupt { at, valid_after } => {
            format!("corrupt at offset {at} with valid records at {valid_after}")
        }
        Ending::Gap {
            at,
            expected,
            found,
        } => format!("zxid gap at offset {at}: expected 0x{expected:x}, found 0x{found:x}"),
    }
}

/// `zxid time [session] type path(s)` for one record.
pub fn record_line(zxid: Zxid, entry: &LogEntry) -> String {
    let mut line = format!("0x{zxid:x} {}", iso8601_utc(entry.time_ms));
    match &entry.txn {
        Txn::CreateSession { session, .. } | Txn::CloseSession { session } => {
            line.push_str(&format!(" session=0x{session:x}"))
        }
        Txn::Create {
            ephemeral_owner, ..
        } => match NodeKind::of_owner(*ephemeral_owner) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => line.push_str(&format!(" session=0x{session:x}")),
            NodeKind::Container => line.push_str(" container"),
            NodeKind::Ttl(ttl_ms) => line.push_str(&format!(" ttl={ttl_ms}ms")),
        },
        _ => {}
    }
    line.push(' ');
    line.push_str(&describe(&entry.txn));
    line
}

/// A transaction's type and path(s); a multi lists its parts as `type:path`.
fn describe(txn: &Txn) -> String {
    match txn {
        Txn::Multi(parts) => {
            let mut text = format!("multi({})", parts.len());
            for part in parts {
                text.push(' ');
                text.push_str(&part_text(part, ":"));
            }
            text
        }
        other => part_text(other, " "),
    }
}

fn part_text(txn: &Txn, sep: &str) -> String {
    let (kind, path) = match txn {
        Txn::CreateSession { .. } => ("createSession", None),
        Txn::CloseSession { .. } => ("closeSession", None),
        Txn::Create { path, .. } => ("create", Some(path)),
        Txn::Delete { path } => ("delete", Some(path)),
        Txn::SetData { path, .. } => ("setData", Some(path)),
        Txn::SetAcl { path, .. } => ("setACL", Some(path)),
        Txn::Check { path } => ("check", Some(path)),
        Txn::Multi(parts) => return format!("multi({})", parts.len()),
        Txn::Error(code) => return format!("error({code})"),
    };
    match path {
        Some(path) => format!("{kind}{sep}{path}"),
        None => kind.to_owned(),
    }
}
