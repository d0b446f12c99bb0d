//! An ensemble member's storage (`storage::open_member` and the `TxnLog`
//! operations Zab asks for), on real files: appended records come back at
//! the next start with their zxids (across an epoch's jump) and the session
//! and cxid they name; TRUNC drops exactly the records after its zxid, in
//! the newest segment and in whole segments; a SNAP's snapshot replaces the
//! log; and a data directory of the other mode is refused, saying why.

use engine::log::{self, LogEntry, Proposal};
use engine::tree::DataTree;
use engine::txn::Txn;
use engine::Zxid;
use herd_server::storage::{self, LogBatch, StorageError, TxnLog};
use herd_server::Config;

mod common;

fn config(dir: &common::TempDir) -> Config {
    let text = format!(
        "dataDir={}\npreAllocSize=4\nclientPort=0\nadmin.enableServer=false\n",
        dir.0.join("data").display()
    );
    Config::parse(&text, "test config").unwrap().0
}

fn e(epoch: i64, counter: i64) -> Zxid {
    (epoch << 32) | counter
}

fn proposal(zxid: Zxid) -> Vec<u8> {
    let p = Proposal {
        session: 0x0300_0000_0000_0001,
        cxid: zxid as i32,
        entry: LogEntry {
            time_ms: 1,
            // Long enough that a few records fill a 4 KiB segment.
            txn: Txn::Delete {
                path: format!("/n{zxid:x}-{}", "x".repeat(300)),
            },
        },
    };
    log::encode_proposal(&p).unwrap().to_vec()
}

/// Appends one batch of records at `zxids`.
fn append(log: &mut TxnLog, zxids: &[Zxid]) {
    let mut bytes = Vec::new();
    for &z in zxids {
        log::append_record(&mut bytes, z, &proposal(z));
    }
    log.append(&LogBatch {
        bytes,
        first_zxid: zxids[0],
        last_zxid: *zxids.last().unwrap(),
    })
    .unwrap();
}

fn reopen(cfg: &Config, log: TxnLog) -> (TxnLog, storage::MemberRecovered) {
    drop(log);
    storage::open_member(cfg).unwrap()
}

fn zxids(r: &storage::MemberRecovered) -> Vec<Zxid> {
    r.records.iter().map(|r| r.0).collect()
}

#[test]
fn a_members_log_comes_back_truncates_and_installs_snapshots() {
    let dir = common::TempDir::new();
    let cfg = config(&dir);
    let (mut log, r) = storage::open_member(&cfg).unwrap();
    assert_eq!((r.base, r.records.len()), (0, 0));
    // Many small batches, so that there are several segments.
    let mut all = Vec::new();
    for c in 1..=40 {
        all.push(e(1, c));
        append(&mut log, &[e(1, c)]);
    }
    append(&mut log, &[e(3, 1), e(3, 2)]);
    all.extend([e(3, 1), e(3, 2)]);
    let segments = std::fs::read_dir(dir.0.join("data"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("log.")
        })
        .count();
    assert!(segments > 2, "{segments} segments");
    let (mut log, r) = reopen(&cfg, log);
    assert_eq!(zxids(&r), all);
    let decoded = log::decode_proposal(&r.records[5].1).unwrap();
    assert_eq!(
        (decoded.session, decoded.cxid),
        (0x0300_0000_0000_0001, e(1, 6) as i32)
    );

    // TRUNC within the newest segment, then across segments; appends go on after.
    log.truncate_after(e(3, 1)).unwrap();
    let (mut log, r) = reopen(&cfg, log);
    assert_eq!(zxids(&r), all[..41].to_vec());
    log.truncate_after(e(1, 7)).unwrap();
    append(&mut log, &[e(4, 1)]);
    let (mut log, r) = reopen(&cfg, log);
    let mut want = all[..7].to_vec();
    want.push(e(4, 1));
    assert_eq!(zxids(&r), want);

    // SNAP: the snapshot replaces the log; records continue after it.
    let tree = DataTree::new();
    let image = engine::snapshot::encode(&tree, e(5, 9));
    log.install(&dir.0.join("data"), e(5, 9), &image).unwrap();
    let (mut log, r) = reopen(&cfg, log);
    assert_eq!((r.base, r.records.len()), (e(5, 9), 0));
    assert_eq!(r.tree.last_zxid(), e(5, 9));
    append(&mut log, &[e(5, 10)]);
    let (log, r) = reopen(&cfg, log);
    assert_eq!(zxids(&r), vec![e(5, 10)]);

    // A member's directory is not a standalone server's.
    drop(log);
    match storage::open(&cfg) {
        Err(StorageError::OtherMode(why)) => {
            assert!(why.contains("the log of an ensemble member"), "{why}")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a standalone server opened a member's log"),
    }
}

#[test]
fn a_standalone_log_with_transactions_is_refused_by_a_member() {
    let dir = common::TempDir::new();
    let cfg = config(&dir);
    let (mut log, _) = storage::open(&cfg).unwrap();
    let mut bytes = Vec::new();
    log::encode_record(
        &mut bytes,
        1,
        &LogEntry {
            time_ms: 1,
            txn: Txn::CreateSession {
                session: 5,
                timeout_ms: 4000,
            },
        },
    );
    log.append(&LogBatch {
        bytes,
        first_zxid: 1,
        last_zxid: 1,
    })
    .unwrap();
    drop(log);
    match storage::open_member(&cfg) {
        Err(StorageError::OtherMode(why)) => {
            assert!(why.contains("standalone server's log"), "{why}")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a member opened a standalone log with transactions"),
    }
}
