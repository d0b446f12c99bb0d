//! `herd-inspect verify DIR`: judge a data directory's log the way herd's start-up
//! does (`server/src/storage.rs`), without changing a byte.
//!
//! | what the check finds                              | severity   | exit |
//! |---------------------------------------------------|------------|------|
//! | every segment clean, zxids contiguous from 0x1    | clean      | 0    |
//! | a torn tail in the newest segment                 | repairable | 2    |
//! | a torn tail in an older segment                   | damaged    | 1    |
//! | a bad record with valid records after it          | damaged    | 1    |
//! | a zxid gap inside a segment or between segments   | damaged    | 1    |
//! | a bad header, a database id from another directory | damaged   | 1    |
//! | a payload whose checksum matches but does not decode | damaged | 1    |
//! | an unreadable segment file                        | damaged    | 1    |
//!
//! "Repairable" means herd starts anyway: it drops the torn record with a warning.
//! "Damaged" means herd refuses to start. Unlike herd, the check goes on past the
//! first damage so that one run lists every damaged file.

use std::path::Path;

use engine::log::{self, Ending, LogEntry};
use engine::Zxid;

use super::dump::ending_text;

/// How bad a finding is; the worst one decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Clean,
    /// herd repairs it on start.
    Repairable,
    /// herd refuses to start.
    Damaged,
}

impl Severity {
    /// The process exit status for a check whose worst finding is `self`.
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Clean => 0,
            Severity::Damaged => 1,
            Severity::Repairable => 2,
        }
    }
}

/// One segment file as read from the directory.
#[derive(Clone, Debug)]
pub struct Segment {
    /// File name, `log.<first zxid in hex>`.
    pub name: String,
    /// Its bytes, or why they could not be read.
    pub bytes: Result<Vec<u8>, String>,
}

/// The database id the directory's `herd.dbid` file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbIdFile {
    /// No `herd.dbid` in the directory (dataDir may be elsewhere).
    Absent,
    Id(u64),
    /// Present but unusable: herd refuses to start.
    Bad(String),
}

/// A finding about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub what: String,
}

/// What the check found in one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub records: usize,
    /// First and last valid zxid.
    pub zxids: Option<(Zxid, Zxid)>,
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn severity(&self) -> Severity {
        self.problems
            .iter()
            .map(|p| p.severity)
            .max()
            .unwrap_or(Severity::Clean)
    }

    /// `name: N records, zxids A..B, clean` or the problems instead of `clean`.
    pub fn line(&self) -> String {
        let mut line = format!("{}: {} records", self.name, self.records);
        if let Some((first, last)) = self.zxids {
            line.push_str(&format!(", zxids 0x{first:x}..0x{last:x}"));
        }
        if self.problems.is_empty() {
            line.push_str(", clean");
        }
        for p in &self.problems {
            let tag = match p.severity {
                Severity::Clean => "note",
                Severity::Repairable => "repairable",
                Severity::Damaged => "DAMAGED",
            };
            line.push_str(&format!(", {tag}: {}", p.what));
        }
        line
    }
}

/// The whole directory's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Remarks about the directory that do not change the verdict.
    pub notes: Vec<String>,
    pub files: Vec<FileReport>,
    pub severity: Severity,
    /// Zxid of the last record handed to the replay callback (0: none).
    pub replayed_to: Zxid,
}

impl Report {
    /// The closing line of `verify`.
    pub fn verdict(&self) -> String {
        match self.severity {
            Severity::Clean => "verdict: clean".into(),
            Severity::Repairable => {
                "verdict: repairable on start (herd drops the torn tail with a warning)".into()
            }
            Severity::Damaged => "verdict: damaged (herd would refuse to start)".into(),
        }
    }

    /// Every output line of `verify`: notes, one line per file, the verdict.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.notes.iter().map(|n| format!("note: {n}")).collect();
        lines.extend(self.files.iter().map(FileReport::line));
        lines.push(self.verdict());
        lines
    }
}

/// Checks `segments` (sorted by first zxid, as herd orders them) and hands every
/// record herd would replay after the snapshot at `base` (0: none), in order, to
/// `on_record`. Replay stops at the first damage, as herd's start-up does;
/// checking does not.
pub fn check(
    segments: &[Segment],
    db_id_file: &DbIdFile,
    base: Zxid,
    mut on_record: impl FnMut(Zxid, &LogEntry),
) -> Report {
    let mut notes = Vec::new();
    let mut files = Vec::with_capacity(segments.len());
    // The database id every segment must carry, and where it came from.
    let mut db: Option<(u64, String)> = None;
    match db_id_file {
        DbIdFile::Id(id) => db = Some((*id, "herd.dbid".into())),
        DbIdFile::Absent if !segments.is_empty() => notes.push(
            "no herd.dbid in this directory: segments are only compared with each other \
             (herd reads it from dataDir)"
                .into(),
        ),
        DbIdFile::Absent => {}
        DbIdFile::Bad(why) => files.push(FileReport {
            name: "herd.dbid".into(),
            records: 0,
            zxids: None,
            problems: vec![Problem {
                severity: Severity::Damaged,
                what: why.clone(),
            }],
        }),
    }
    if segments.is_empty() {
        notes.push("no log segments: herd would start with an empty tree".into());
    }
    // herd replays into the snapshot's tree (or a fresh one, whose last zxid is 0).
    let mut expected: Option<Zxid> = Some(base + 1);
    let mut replaying = files.is_empty();
    let mut replayed_to = 0;
    for (i, segment) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let mut report = FileReport {
            name: segment.name.clone(),
            records: 0,
            zxids: None,
            problems: Vec::new(),
        };
        let scanned = match &segment.bytes {
            Err(why) => Err(format!("cannot read: {why}")),
            Ok(bytes) => log::scan(bytes)
                .map(|scan| (bytes, scan))
                .map_err(|e| e.to_string()),
        };
        let (bytes, scan) = match scanned {
            Ok(found) => found,
            Err(why) => {
                damage(&mut report, why);
                files.push(report);
                replaying = false;
                // Where the next segment should start is unknown now.
                expected = None;
                continue;
            }
        };
        report.records = scan.records.len();
        report.zxids = scan
            .records
            .first()
            .zip(scan.records.last())
            .map(|(f, l)| (f.zxid, l.zxid));
        match &db {
            Some((id, source)) if *id != scan.header.db_id => damage(
                &mut report,
                format!(
                    "database id 0x{:x} differs from {source}'s 0x{id:x} (another data directory)",
                    scan.header.db_id
                ),
            ),
            Some(_) => {}
            None => db = Some((scan.header.db_id, segment.name.clone())),
        }
        if let Some(want) = expected {
            // The oldest segment may begin before the snapshot: its start is skipped.
            let fits = if i == 0 {
                scan.header.first_zxid <= want
            } else {
                scan.header.first_zxid == want
            };
            if !fits {
                damage(
                    &mut report,
                    format!(
                        "starts at zxid 0x{:x}, expected 0x{want:x}",
                        scan.header.first_zxid
                    ),
                );
            }
        }
        match scan.ending {
            Ending::Clean => {}
            Ending::TornTail { .. } if newest => report.problems.push(Problem {
                severity: Severity::Repairable,
                what: format!("{} (herd drops it on start)", ending_text(&scan.ending)),
            }),
            Ending::TornTail { .. } => damage(
                &mut report,
                format!("{} in an older segment", ending_text(&scan.ending)),
            ),
            Ending::Corrupt { .. } | Ending::Gap { .. } => {
                damage(&mut report, ending_text(&scan.ending))
            }
        }
        // herd judges the header and the ending before replaying any record.
        replaying &= report.severity() < Severity::Damaged;
        for rec in &scan.records {
            let payload = &bytes[rec.payload_at..rec.payload_at + rec.payload_len];
            match log::decode_entry(scan.header.format, payload) {
                Ok(_) if rec.zxid <= base => {}
                Ok(entry) if replaying => {
                    on_record(rec.zxid, &entry);
                    replayed_to = rec.zxid;
                }
                Ok(_) => {}
                Err(e) => {
                    damage(
                        &mut report,
                        format!(
                            "record 0x{:x} at offset {}: {e}",
                            rec.zxid,
                            rec.payload_at - log::RECORD_HEADER_LEN
                        ),
                    );
                    replaying = false;
                }
            }
        }
        expected = Some(scan.header.first_zxid + scan.records.len() as Zxid);
        files.push(report);
    }
    let severity = files
        .iter()
        .map(FileReport::severity)
        .max()
        .unwrap_or(Severity::Clean);
    Report {
        notes,
        files,
        severity,
        replayed_to,
    }
}

fn damage(report: &mut FileReport, what: String) {
    report.problems.push(Problem {
        severity: Severity::Damaged,
        what,
    });
}

/// Reads a data directory's `log.*` segments, sorted by the zxid in their names
/// (as herd sorts them), and its `herd.dbid`. Files named `log.` plus something
/// that is not a hex zxid are ignored by herd; they are returned by name in the
/// last field so callers can say so.
pub fn read_dir(dir: &Path) -> std::io::Result<(Vec<Segment>, DbIdFile, Vec<String>)> {
    let mut named = Vec::new();
    let mut ignored = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(suffix) = name.strip_prefix("log.") else {
            continue;
        };
        match i64::from_str_radix(suffix, 16) {
            Ok(zxid) => named.push((zxid, name)),
            Err(_) => ignored.push(name),
        }
    }
    named.sort();
    ignored.sort();
    let segments = named
        .into_iter()
        .map(|(_, name)| Segment {
            bytes: std::fs::read(dir.join(&name)).map_err(|e| e.to_string()),
            name,
        })
        .collect();
    let db_id = match std::fs::read(dir.join("herd.dbid")) {
        Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(id) => DbIdFile::Id(u64::from_le_bytes(id)),
            Err(_) => DbIdFile::Bad(format!("{} bytes long, expected 8", bytes.len())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DbIdFile::Absent,
        Err(e) => DbIdFile::Bad(format!("cannot read: {e}")),
    };
    Ok((segments, db_id, ignored))
}
