//! herd-inspect against segments built in memory with `engine::log::encode_record`
//! and snapshots with `engine::snapshot::encode`: exact dump lines, verify's verdict
//! and exit status for each kind of damage, the numbers summary derives from a
//! replayed log, and what snapshot reports about a file herd would or would not load.

use std::path::{Path, PathBuf};

use engine::acl::Acl;
use engine::log::{encode_record, LogEntry, SegmentHeader};
use engine::stat::NodeKind;
use engine::tree::DataTree;
use engine::txn::{replay, AclCache, Txn};
use engine::znode::Data;
use engine::Zxid;
use herd_tools::inspect::check::{check, DbIdFile, Segment, Severity};
use herd_tools::inspect::dump::dump;
use herd_tools::inspect::run;
use herd_tools::inspect::summary::summarize;

/// 2023-11-14T22:13:20.000Z; record i is logged i seconds later.
const T0_MS: i64 = 1_700_000_000_000;
const DB: u64 = 0x2a;

fn entry(i: usize, txn: &Txn) -> LogEntry {
    LogEntry {
        time_ms: T0_MS + 1000 * i as i64,
        txn: txn.clone(),
    }
}

/// A segment of database `db` whose records are `txns` from zxid `first`, and the
/// offset at which each record starts.
fn segment_at(db: u64, first: Zxid, txns: &[Txn]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = SegmentHeader {
        format: engine::log::FORMAT_VERSION,
        db_id: db,
        first_zxid: first,
    }
    .encode()
    .to_vec();
    let mut offsets = Vec::new();
    for (i, txn) in txns.iter().enumerate() {
        offsets.push(bytes.len());
        encode_record(&mut bytes, first + i as Zxid, &entry(i, txn));
    }
    (bytes, offsets)
}

fn segment(first: Zxid, txns: &[Txn]) -> Vec<u8> {
    segment_at(DB, first, txns).0
}

fn create(path: &str, data: &[u8], owner: i64) -> Txn {
    Txn::Create {
        path: path.into(),
        data: Data::new(data),
        acl: Acl::open_unsafe(),
        ephemeral_owner: owner,
        parent_cversion: 0,
    }
}

fn session(id: i64) -> Txn {
    Txn::CreateSession {
        session: id,
        timeout_ms: 4000,
    }
}

/// Persistent creates `/n1`, `/n2`, ... : replayable filler.
fn creates(from: usize, n: usize) -> Vec<Txn> {
    (from..from + n)
        .map(|i| create(&format!("/n{i}"), b"x", 0))
        .collect()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("herd-inspect-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(name), bytes).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn name(first: Zxid) -> String {
    format!("log.{first:016x}")
}

/// Runs the CLI, returning (exit status, stdout lines, stderr).
fn cli(args: &[&str]) -> (u8, Vec<String>, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&args, &mut out, &mut err);
    let out = String::from_utf8(out).unwrap();
    (
        code,
        out.lines().map(str::to_owned).collect(),
        String::from_utf8(err).unwrap(),
    )
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn dump_prints_one_exact_line_per_transaction_kind() {
    let txns = vec![
        session(0x1000_0000_0000_0009),
        create("/a", b"hello", 0),
        create("/a/e", b"", 0x1000_0000_0000_0009),
        create("/c", b"", NodeKind::Container.owner()),
        create("/t", b"", NodeKind::Ttl(5000).owner()),
        Txn::SetData {
            path: "/a".into(),
            data: Data::null(),
            version: 1,
        },
        Txn::SetAcl {
            path: "/a".into(),
            acl: Acl::read_unsafe(),
            version: 1,
        },
        Txn::Check { path: "/a".into() },
        Txn::Delete { path: "/t".into() },
        Txn::Multi(vec![
            create("/m", b"", 0),
            Txn::SetData {
                path: "/m".into(),
                data: Data::new(b"1"),
                version: 1,
            },
            Txn::Check { path: "/a".into() },
        ]),
        Txn::Multi(vec![Txn::Error(0), Txn::Error(-101)]),
        Txn::Error(-110),
        Txn::CloseSession {
            session: 0x1000_0000_0000_0009,
        },
    ];
    let mut bytes = segment(1, &txns);
    // The preallocated rest of a segment is zeros: still clean.
    bytes.extend_from_slice(&[0; 1024]);
    let d = dump(&bytes).unwrap();
    let expected = [
        "0x1 2023-11-14T22:13:20.000Z session=0x1000000000000009 createSession",
        "0x2 2023-11-14T22:13:21.000Z create /a",
        "0x3 2023-11-14T22:13:22.000Z session=0x1000000000000009 create /a/e",
        "0x4 2023-11-14T22:13:23.000Z container create /c",
        "0x5 2023-11-14T22:13:24.000Z ttl=5000ms create /t",
        "0x6 2023-11-14T22:13:25.000Z setData /a",
        "0x7 2023-11-14T22:13:26.000Z setACL /a",
        "0x8 2023-11-14T22:13:27.000Z check /a",
        "0x9 2023-11-14T22:13:28.000Z delete /t",
        "0xa 2023-11-14T22:13:29.000Z multi(3) create:/m setData:/m check:/a",
        "0xb 2023-11-14T22:13:30.000Z multi(2) error(0) error(-101)",
        "0xc 2023-11-14T22:13:31.000Z error(-110)",
        "0xd 2023-11-14T22:13:32.000Z session=0x1000000000000009 closeSession",
    ];
    assert_eq!(d.lines, expected);
    assert_eq!(
        d.summary,
        "summary: 13 records, zxids 0x1..0xd, database 0x2a, clean"
    );
    assert_eq!(d.undecodable, 0);
}

/// How the summary line names each ending (one row per case).
#[test]
fn dump_summary_names_how_the_segment_ends() {
    let txns = creates(1, 4);
    let (good, at) = segment_at(DB, 1, &txns);
    let mut torn = good.clone();
    torn.truncate(good.len() - 3);
    let mut corrupt = good.clone();
    corrupt[at[1] + 20] ^= 0x40;
    let mut gap = segment(1, &txns[..2]);
    encode_record(&mut gap, 4, &entry(2, &txns[2]));
    let empty = segment(5, &[]);
    let rows: Vec<(&str, &[u8], String, usize)> = vec![
        (
            "whole records",
            &good,
            "summary: 4 records, zxids 0x1..0x4, database 0x2a, clean".into(),
            4,
        ),
        (
            "last record cut short",
            &torn,
            format!(
                "summary: 3 records, zxids 0x1..0x3, database 0x2a, torn tail at offset {}",
                at[3]
            ),
            3,
        ),
        (
            "bit flip in the second record",
            &corrupt,
            format!(
                "summary: 1 records, zxids 0x1..0x1, database 0x2a, corrupt at offset {} with valid records at {}",
                at[1], at[2]
            ),
            1,
        ),
        (
            "zxid 0x3 missing",
            &gap,
            format!(
                "summary: 2 records, zxids 0x1..0x2, database 0x2a, zxid gap at offset {}: expected 0x3, found 0x4",
                at[2]
            ),
            2,
        ),
        (
            "header only",
            &empty,
            "summary: 0 records, none from first zxid 0x5, database 0x2a, clean".into(),
            0,
        ),
    ];
    for (why, bytes, summary, lines) in rows {
        let d = dump(bytes).unwrap();
        assert_eq!(d.summary, summary, "{why}");
        assert_eq!(d.lines.len(), lines, "{why}");
    }
}

#[test]
fn log_command_dumps_a_file_and_rejects_a_foreign_one() {
    let dir = TempDir::new("log-command");
    dir.write(&name(1), &segment(1, &[session(0x5)]));
    dir.write(
        "not-a-log",
        b"PK\x03\x04 something else entirely, long enough",
    );
    let file = dir.0.join(name(1));
    let (code, out, _) = cli(&["log", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        [
            "0x1 2023-11-14T22:13:20.000Z session=0x5 createSession",
            "summary: 1 records, zxids 0x1..0x1, database 0x2a, clean",
        ]
    );
    let other = dir.0.join("not-a-log");
    let (code, out, _) = cli(&["log", other.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out[0].ends_with("bad header: not a herd transaction log (wrong magic)"));
    let (code, _, err) = cli(&["log", dir.0.join("missing").to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
}

/// verify's exit status for each state of a data directory (one row per case).
#[test]
fn verify_exit_status_per_kind_of_damage() {
    let first = creates(1, 3);
    let second = creates(4, 3);
    let (older, older_at) = segment_at(DB, 1, &first);
    let (newest, newest_at) = segment_at(DB, 4, &second);
    let cut = |b: &[u8]| b[..b.len() - 5].to_vec();
    let flip = |b: &[u8], at: usize| {
        let mut b = b.to_vec();
        b[at + 20] ^= 1;
        b
    };
    let mut gap_inside = segment(4, &second[..1]);
    encode_record(&mut gap_inside, 6, &entry(1, &second[1]));
    let mut bad_magic = newest.clone();
    bad_magic[0] = b'X';
    let seg = |first: Zxid, bytes: &[u8]| (name(first), bytes.to_vec());
    type Row = (&'static str, Vec<(String, Vec<u8>)>, Option<u64>, u8);
    let rows: Vec<Row> = vec![
        (
            "two clean segments",
            vec![seg(1, &older), seg(4, &newest)],
            Some(DB),
            0,
        ),
        ("an empty directory", vec![], None, 0),
        (
            "no herd.dbid beside the segments",
            vec![seg(1, &older)],
            None,
            0,
        ),
        (
            "newest segment torn",
            vec![seg(1, &older), seg(4, &cut(&newest))],
            Some(DB),
            2,
        ),
        (
            "older segment torn",
            vec![seg(1, &cut(&older)), seg(4, &newest)],
            Some(DB),
            1,
        ),
        (
            "bit flip before the last record",
            vec![seg(1, &older), seg(4, &flip(&newest, newest_at[1]))],
            Some(DB),
            1,
        ),
        (
            "bit flip in an older segment's middle",
            vec![seg(1, &flip(&older, older_at[0])), seg(4, &newest)],
            Some(DB),
            1,
        ),
        (
            "zxid gap inside a segment",
            vec![seg(1, &older), seg(4, &gap_inside)],
            Some(DB),
            1,
        ),
        (
            "zxid gap between segments",
            vec![seg(1, &older), seg(5, &segment(5, &second))],
            Some(DB),
            1,
        ),
        (
            "log does not start at 0x1",
            vec![seg(4, &newest)],
            Some(DB),
            1,
        ),
        (
            "segments of two databases",
            vec![seg(1, &older), seg(4, &segment_at(7, 4, &second).0)],
            None,
            1,
        ),
        (
            "herd.dbid of another database",
            vec![seg(1, &older)],
            Some(7),
            1,
        ),
        (
            "bad magic",
            vec![seg(1, &older), seg(4, &bad_magic)],
            Some(DB),
            1,
        ),
        (
            "torn newest and a gap: damage wins",
            vec![seg(1, &older), seg(5, &cut(&segment(5, &second)))],
            Some(DB),
            1,
        ),
    ];
    for (i, (why, files, db, want)) in rows.into_iter().enumerate() {
        let dir = TempDir::new(&format!("verify-{i}"));
        for (file, bytes) in &files {
            dir.write(file, bytes);
        }
        if let Some(db) = db {
            dir.write("herd.dbid", &db.to_le_bytes());
        }
        let (code, out, err) = cli(&["verify", dir_arg(&dir.0)]);
        assert_eq!(code, want, "{why}: {out:#?} {err}");
        let verdict = match want {
            0 => "verdict: clean",
            1 => "verdict: damaged (herd would refuse to start)",
            _ => "verdict: repairable on start (herd drops the torn tail with a warning)",
        };
        assert_eq!(out.last().map(String::as_str), Some(verdict), "{why}");
    }
}

#[test]
fn verify_prints_a_line_per_file() {
    let dir = TempDir::new("verify-lines");
    let (older, _) = segment_at(DB, 1, &creates(1, 2));
    let (newest, at) = segment_at(DB, 3, &creates(3, 2));
    dir.write(&name(1), &older);
    dir.write(&name(3), &newest[..newest.len() - 1]);
    dir.write("log.backup", b"ignored");
    dir.write("herd.dbid", &DB.to_le_bytes());
    let (code, out, _) = cli(&["verify", dir_arg(&dir.0)]);
    assert_eq!(code, 2);
    assert_eq!(
        out,
        [
            "note: log.backup: not named log.<hex zxid>, herd ignores it".to_owned(),
            "log.0000000000000001: 2 records, zxids 0x1..0x2, clean".to_owned(),
            format!(
                "log.0000000000000003: 1 records, zxids 0x3..0x3, repairable: torn tail at offset {} (herd drops it on start)",
                at[1]
            ),
            "verdict: repairable on start (herd drops the torn tail with a warning)".to_owned(),
        ]
    );

    // The same bytes, but the torn segment is no longer the newest.
    dir.write(&name(4), &segment(4, &creates(4, 1)));
    let (code, out, _) = cli(&["verify", dir_arg(&dir.0)]);
    assert_eq!(code, 1);
    assert_eq!(
        out[2],
        format!(
            "log.0000000000000003: 1 records, zxids 0x3..0x3, DAMAGED: torn tail at offset {} in an older segment",
            at[1]
        )
    );
    assert_eq!(
        out[3],
        "log.0000000000000004: 1 records, zxids 0x4..0x4, clean"
    );
}

#[test]
fn verify_reports_a_payload_that_does_not_decode() {
    // A record with a valid checksum around bytes that are not an archived LogEntry.
    let mut bytes = segment(1, &creates(1, 1));
    let at = bytes.len();
    let payload = [0xffu8; 24];
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&2i64.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let crc = crc32c(&bytes[at + 8..]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    let segments = [Segment {
        name: name(1),
        bytes: Ok(bytes.clone()),
    }];
    let mut replayed = Vec::new();
    let report = check(&segments, &DbIdFile::Id(DB), 0, |zxid, _| {
        replayed.push(zxid)
    });
    assert_eq!(report.severity, Severity::Damaged);
    assert_eq!(replayed, [1], "replay stops at the undecodable record");
    assert!(
        report.files[0].problems[0]
            .what
            .starts_with(&format!("record 0x2 at offset {at}: ")),
        "{:?}",
        report.files[0]
    );
    let d = dump(&bytes).unwrap();
    assert_eq!(d.undecodable, 1);
    assert!(
        d.summary.ends_with(", clean, 1 undecodable payloads"),
        "{}",
        d.summary
    );
}

/// CRC32C (Castagnoli), bit by bit: an independent check of the format's checksum.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn summary_counts_the_replayed_tree() {
    let (s1, s2) = (0x100, 0x200);
    let first = vec![
        session(s1),
        session(s2),
        create("/a", b"hello", 0),
        create("/a/e1", b"xy", s1),
        create("/b", &[7; 10], 0),
        create("/c", b"", NodeKind::Container.owner()),
        create("/t", b"ttl", NodeKind::Ttl(60_000).owner()),
    ];
    let second = vec![
        create("/e2", b"", s1),
        create("/f", b"gone", s2),
        Txn::SetData {
            path: "/a".into(),
            data: Data::new(b"hello world"),
            version: 1,
        },
        Txn::Multi(vec![
            Txn::Delete { path: "/b".into() },
            create("/b2", b"1234", 0),
        ]),
        Txn::Error(-101),
        Txn::CloseSession { session: s2 },
    ];
    let segments = [
        Segment {
            name: name(1),
            bytes: Ok(segment(1, &first)),
        },
        Segment {
            name: name(8),
            bytes: Ok(segment(8, &second)),
        },
    ];
    let s = summarize(&segments, &DbIdFile::Id(DB), None, 3);
    let (last, s) = (s.last, s.tree);
    // `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`, then
    // /a /a/e1 /c /t /e2 /b2 (/b deleted, /f removed with its session).
    assert_eq!(s.nodes, 4 + 6);
    assert_eq!(s.data_bytes, 11 + 2 + 3 + 4);
    assert_eq!(
        s.largest,
        [
            ("/a".to_owned(), 11),
            ("/b2".to_owned(), 4),
            ("/t".to_owned(), 3)
        ]
    );
    assert_eq!(s.sessions, [(s1, 4000)]);
    assert_eq!(
        s.ephemerals.into_iter().collect::<Vec<_>>(),
        [(s1, vec!["/a/e1".to_owned(), "/e2".to_owned()])]
    );
    assert_eq!((s.containers, s.ttl_nodes), (1, 1));
    assert_eq!(last, Some((13, T0_MS + 5000)));

    let dir = TempDir::new("summary");
    for seg in &segments {
        dir.write(&seg.name, seg.bytes.as_ref().unwrap());
    }
    dir.write("herd.dbid", &DB.to_le_bytes());
    let (code, out, _) = cli(&["summary", dir_arg(&dir.0), "--top", "2"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        [
            "last zxid 0xd at 2023-11-14T22:13:25.000Z",
            "nodes 10",
            "data bytes 20",
            "containers 1, ttl nodes 1",
            "largest nodes (2):",
            "  11 /a",
            "  4 /b2",
            "sessions 1",
            "  0x100 timeout 4000ms",
            "ephemerals 2",
            "  0x100: /a/e1 /e2",
            "log: clean",
        ]
    );
    // A damaged snapshot is skipped as start-up skips it: same tree, one note.
    dir.write("snapshot.5", b"not a snapshot");
    let (code, again, _) = cli(&["summary", dir_arg(&dir.0), "--top", "2"]);
    assert_eq!(code, 0);
    assert!(
        again[0].contains("snapshot.5: bad header")
            && again[0].ends_with("trying an older snapshot"),
        "{}",
        again[0]
    );
    assert_eq!(again[1..], out[..]);
}

#[test]
fn summary_stops_where_herd_would() {
    let first = creates(1, 3);
    let (older, _) = segment_at(DB, 1, &first);
    let newest = segment(4, &creates(4, 2));
    let torn = [
        Segment {
            name: name(1),
            bytes: Ok(older.clone()),
        },
        Segment {
            name: name(4),
            bytes: Ok(newest[..newest.len() - 2].to_vec()),
        },
    ];
    // A torn newest tail is dropped and the rest replayed.
    let s = summarize(&torn, &DbIdFile::Id(DB), None, 10);
    assert_eq!(s.report.severity, Severity::Repairable);
    assert_eq!(s.tree.nodes, 4 + 4);
    assert_eq!(
        s.lines().last().unwrap(),
        "log: repairable on start (herd drops the torn tail with a warning); \
         the summary covers zxids up to 0x4 (run verify for details)"
    );
    // A foreign segment stops replay before any of its records.
    let foreign = [
        Segment {
            name: name(1),
            bytes: Ok(older),
        },
        Segment {
            name: name(4),
            bytes: Ok(segment_at(9, 4, &creates(4, 2)).0),
        },
    ];
    let s = summarize(&foreign, &DbIdFile::Absent, None, 10);
    assert_eq!(s.report.severity, Severity::Damaged);
    assert_eq!((s.tree.nodes, s.report.replayed_to), (4 + 3, 3));
}

#[test]
fn usage_errors_exit_3_and_help_documents_the_exit_codes() {
    let (code, out, _) = cli(&["--help"]);
    assert_eq!(code, 0);
    let help = out.join("\n");
    for needle in [
        "0  clean",
        "1  damaged",
        "2  repairable",
        "3  could not run",
    ] {
        assert!(help.contains(needle), "{needle}");
    }
    assert_eq!(cli(&[]).0, 3);
    assert_eq!(cli(&["frobnicate", "x"]).0, 3);
    assert_eq!(cli(&["summary", "/nonexistent-herd-dir"]).0, 3);
    assert_eq!(cli(&["summary", "/tmp", "--top", "many"]).0, 3);
    assert_eq!(cli(&["summary", "/tmp", "--nodes"]).0, 3);
    // An existing file: only the unknown option can make this a usage error.
    assert_eq!(cli(&["snapshot", "/dev/null", "--all"]).0, 3);
}

/// The snapshot of the tree that replaying `txns` from zxid 0x1 builds, labelled
/// with the last of them.
fn snapshot_of(txns: &[Txn]) -> Vec<u8> {
    let tree = DataTree::new();
    let mut acls = AclCache::default();
    for (i, txn) in txns.iter().enumerate() {
        let e = entry(i, txn);
        replay(&tree, &mut acls, 1 + i as Zxid, e.time_ms, &e.txn);
    }
    engine::snapshot::encode(&tree, txns.len() as Zxid)
}

/// Two sessions with ephemerals, a container, a TTL node and data of several sizes.
fn snapshot_txns() -> Vec<Txn> {
    let (s1, s2) = (0x100, 0x200);
    vec![
        Txn::CreateSession {
            session: s1,
            timeout_ms: 4000,
        },
        Txn::CreateSession {
            session: s2,
            timeout_ms: 10_000,
        },
        create("/a", b"hello", 0),
        create("/a/e1", b"xy", s1),
        create("/b", &[7; 10], 0),
        create("/c", b"", NodeKind::Container.owner()),
        create("/t", b"ttl", NodeKind::Ttl(60_000).owner()),
        create("/e2", b"", s1),
        create("/f", b"four", s2),
        Txn::SetData {
            path: "/a".into(),
            data: Data::new(b"hello world"),
            version: 1,
        },
    ]
}

#[test]
fn snapshot_describes_the_tree_it_holds() {
    let bytes = snapshot_of(&snapshot_txns());
    let dir = TempDir::new("snapshot");
    dir.write("snapshot.000000000000000a", &bytes);
    let file = dir.0.join("snapshot.000000000000000a");
    let (code, out, err) = cli(&["snapshot", file.to_str().unwrap(), "--top", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        [
            "zxid 0xa".to_owned(),
            format!("file bytes {}", bytes.len()),
            "nodes 11".to_owned(),
            "data bytes 30".to_owned(),
            "containers 1, ttl nodes 1".to_owned(),
            "largest nodes (3):".to_owned(),
            "  11 /a".to_owned(),
            "  10 /b".to_owned(),
            "  4 /f".to_owned(),
            "sessions 2".to_owned(),
            "  0x100 timeout 4000ms".to_owned(),
            "  0x200 timeout 10000ms".to_owned(),
            "ephemerals 3".to_owned(),
            "  0x100: /a/e1 /e2".to_owned(),
            "  0x200: /f".to_owned(),
        ]
    );
    // `summary` of a directory holding only this snapshot describes the same tree.
    let (code, summary, _) = cli(&["summary", dir_arg(&dir.0), "--top", "3"]);
    assert_eq!(code, 0);
    assert_eq!(summary[1..summary.len() - 1], out[2..]);
}

#[test]
fn snapshot_nodes_lists_every_node_in_path_order() {
    let dir = TempDir::new("snapshot-nodes");
    dir.write("snapshot.000000000000000a", &snapshot_of(&snapshot_txns()));
    let file = dir.0.join("snapshot.000000000000000a");
    let (code, out, err) = cli(&["snapshot", file.to_str().unwrap(), "--nodes"]);
    assert_eq!(code, 0, "{err}");
    // Default --top 10: all five nodes with data.
    assert_eq!(out[5], "largest nodes (5):");
    let at = out.iter().position(|l| l == "all nodes (11):").unwrap();
    assert_eq!(
        out[at + 1..],
        [
            "  / len=0 version=0 czxid=0x0 mzxid=0x0 owner=0x0",
            "  /a len=11 version=1 czxid=0x3 mzxid=0xa owner=0x0",
            "  /a/e1 len=2 version=0 czxid=0x4 mzxid=0x4 owner=0x100",
            "  /b len=10 version=0 czxid=0x5 mzxid=0x5 owner=0x0",
            "  /c len=0 version=0 czxid=0x6 mzxid=0x6 owner=0x0 container",
            "  /e2 len=0 version=0 czxid=0x8 mzxid=0x8 owner=0x100",
            "  /f len=4 version=0 czxid=0x9 mzxid=0x9 owner=0x200",
            "  /t len=3 version=0 czxid=0x7 mzxid=0x7 owner=0x0 ttl=60000ms",
            "  /zookeeper len=0 version=0 czxid=0x0 mzxid=0x0 owner=0x0",
            "  /zookeeper/config len=0 version=0 czxid=0x0 mzxid=0x0 owner=0x0",
            "  /zookeeper/quota len=0 version=0 czxid=0x0 mzxid=0x0 owner=0x0",
        ]
    );
    // Options in either order.
    let (_, reordered, _) = cli(&["snapshot", file.to_str().unwrap(), "--top", "10", "--nodes"]);
    assert_eq!(reordered, out);
}

/// snapshot's verdict on a file herd would not load (one row per case): exit 1
/// and a single line naming the file, as `log` reports a foreign file.
#[test]
fn snapshot_rejects_a_file_herd_would_not_load() {
    let good = snapshot_of(&snapshot_txns());
    let mut flipped = good.clone();
    // The first byte of the first chunk's archive (after the 32-byte chunk header).
    flipped[engine::snapshot::HEADER_LEN + 32] ^= 0x10;
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a bit flipped in the body",
            flipped,
            "bad payload: snapshot checksum mismatch",
        ),
        (
            "the body cut short",
            good[..good.len() - 1].to_vec(),
            "bad header: snapshot truncated",
        ),
        (
            "only part of the header",
            good[..engine::snapshot::HEADER_LEN - 1].to_vec(),
            "bad header: file shorter than a snapshot header",
        ),
        (
            "another file's magic",
            bad_magic,
            "bad header: not a herd snapshot (wrong magic)",
        ),
    ];
    let dir = TempDir::new("snapshot-damaged");
    for (why, bytes, error) in rows {
        dir.write("snapshot.000000000000000a", &bytes);
        let file = dir.0.join("snapshot.000000000000000a");
        let file = file.to_str().unwrap();
        let (code, out, err) = cli(&["snapshot", file]);
        assert_eq!(code, 1, "{why}: {err}");
        assert_eq!(out, [format!("{file}: {error}")], "{why}");
    }
    let missing = dir.0.join("snapshot.0000000000000001");
    let (code, out, err) = cli(&["snapshot", missing.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(out.is_empty());
    assert!(
        err.starts_with(&format!("herd-inspect: {}: ", missing.display())),
        "{err}"
    );
}
