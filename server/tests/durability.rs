//! The transaction log: acknowledged writes survive restarts, a torn tail is
//! dropped, corruption in the middle refuses start-up, a second server on the
//! same data directory is refused, a full disk stops writes but not reads,
//! snapshots are taken, purged and recovered, and sessions that expired while
//! herd was down are gone when it is back.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TempDir;
use engine::log;
use herd_server::Server;
use zookeeper_client::{Acls, CreateMode, Error};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log."))
        .collect();
    logs.sort();
    logs
}

fn start_error(data: &TempDir) -> String {
    let mut config = common::config();
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    match Server::start(config) {
        Ok(_) => panic!("herd started on {}", data.0.display()),
        Err(e) => e.to_string(),
    }
}

/// Writes a few nodes and returns the server's data directory after a clean stop.
async fn populated() -> TempDir {
    let server = common::start();
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/d", b"root", &open).await.unwrap();
    for i in 0..20 {
        client
            .create(&format!("/d/n{i}"), format!("v{i}").as_bytes(), &open)
            .await
            .unwrap();
    }
    drop(client);
    server.stop()
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let server = common::start();
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    client.create("/r", b"", &open).await.unwrap();
    client.create("/r/a", b"one", &open).await.unwrap();
    let set = client.set_data("/r/a", b"two", Some(0)).await.unwrap();
    let (_, seq_name) = client.create("/r/s-", b"", &seq).await.unwrap();
    client.create("/r/gone", b"", &open).await.unwrap();
    client.delete("/r/gone", None).await.unwrap();
    client.create("/r/e", b"mine", &eph).await.unwrap();
    let parent = client.check_stat("/r").await.unwrap().unwrap();
    let session = client.session_id();
    let info = client.session().clone();
    let data = server.stop();

    let server = common::start_in(common::config(), data);
    let client = common::connect(&server).await;
    assert_eq!(
        client.get_data("/r/a").await.unwrap(),
        (b"two".to_vec(), set)
    );
    assert_eq!(
        client.check_stat("/r").await.unwrap(),
        Some(parent),
        "cversion, pzxid, numChildren kept"
    );
    assert_eq!(client.list_children("/r").await.unwrap().len(), 3);
    assert!(client
        .check_stat(&format!("/r/s-{seq_name}"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(client.check_stat("/r/gone").await.unwrap(), None);
    let (data_e, stat_e) = client.get_data("/r/e").await.unwrap();
    assert_eq!(
        (data_e.as_slice(), stat_e.ephemeral_owner),
        (&b"mine"[..], session.0),
        "the session lives on"
    );
    // Zxids continue after the recovered ones; the sequence counter too.
    let (later, next_seq) = client.create("/r/s-", b"", &seq).await.unwrap();
    assert!(later.czxid > parent.pzxid);
    assert_eq!(
        next_seq.into_i64(),
        seq_name.into_i64() + 3,
        "creates of s-, gone and e counted"
    );
    // The session recovered from the log can be resumed with its password.
    let resumed = zookeeper_client::Client::connector()
        .with_session(info)
        .connect(&server.addr)
        .await
        .expect("resume the recovered session");
    assert_eq!(resumed.session_id(), session);
}

#[tokio::test]
async fn second_server_on_the_same_data_directory_is_refused() {
    let server = common::start();
    let data = server.data.as_ref().unwrap();
    let err = start_error(data);
    assert!(
        err.contains("another herd is using this data directory"),
        "{err}"
    );
    let client = common::connect(&server).await;
    assert!(
        client.check_stat("/zookeeper").await.unwrap().is_some(),
        "the first keeps serving"
    );
}

#[tokio::test]
async fn torn_tail_is_dropped_and_the_log_continues() {
    let data = populated().await;
    let seg = segments(&data.0).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let scan = log::scan(&bytes).unwrap();
    let last = *scan.records.last().unwrap();
    // Tear the last record: half of it written, as if the machine died mid-write.
    let start = last.payload_at - log::RECORD_HEADER_LEN;
    let torn_len = (scan.valid_end - start) / 2;
    let mut torn = bytes.clone();
    torn[start + torn_len..scan.valid_end].fill(0);
    std::fs::write(&seg, &torn).unwrap();

    let server = common::start_in(common::config(), data);
    let client = common::connect(&server).await;
    assert_eq!(
        client.list_children("/d").await.unwrap().len(),
        19,
        "the torn create is gone"
    );
    assert_eq!(client.check_stat("/d/n19").await.unwrap(), None);
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/d/after", b"", &open).await.unwrap();
    drop(client);
    let data = server.stop();
    let server = common::start_in(common::config(), data);
    let client = common::connect(&server).await;
    assert!(
        client.check_stat("/d/after").await.unwrap().is_some(),
        "writes after the repair survive"
    );
    assert_eq!(client.list_children("/d").await.unwrap().len(), 20);
}

#[tokio::test]
async fn corruption_in_the_middle_refuses_to_start() {
    let data = populated().await;
    let seg = segments(&data.0).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let scan = log::scan(&bytes).unwrap();
    let victim = scan.records[5];
    bytes[victim.payload_at + 3] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let err = start_error(&data);
    let offset = victim.payload_at - log::RECORD_HEADER_LEN;
    assert!(
        err.contains(&format!("{}: bad record at offset {offset}", seg.display())),
        "{err}"
    );
    assert!(err.contains("valid records follow"), "{err}");
}

#[tokio::test]
async fn foreign_file_header_refuses_to_start() {
    // A header that is not herd's: refuse and say so.
    let data = populated().await;
    let seg = segments(&data.0).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[..8].copy_from_slice(b"NOTHERD!");
    std::fs::write(&seg, &bytes).unwrap();
    let err = start_error(&data);
    assert!(err.contains("not a herd transaction log"), "{err}");
}

/// A tmpfs that fills up: writes stop being acknowledged, reads go on, and
/// everything acknowledged is there after a restart. Needs root to mount.
#[tokio::test]
async fn full_disk_stops_writes_but_not_reads() {
    let mount = common::Tmpfs::mount("256k");
    let data = TempDir(mount.path().join("data"));
    let mut config = common::config();
    config.pre_alloc_bytes = 32 << 10;
    let server = common::start_in(config.clone(), data);
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let value = vec![7u8; 8 << 10];
    let mut acked = Vec::new();
    let failure = loop {
        let path = format!("/big{}", acked.len());
        match client.create(&path, &value, &open).await {
            Ok(_) => acked.push(path),
            Err(e) => break e,
        }
        assert!(acked.len() < 100, "a 256 KiB disk cannot take 800 KiB");
    };
    assert_eq!(
        failure,
        Error::UnexpectedErrorCode(-1),
        "SystemError once the log cannot write"
    );
    assert!(!acked.is_empty());
    let again = client.create("/after-full", b"", &open).await;
    assert_eq!(
        again.unwrap_err(),
        Error::UnexpectedErrorCode(-1),
        "no write is acknowledged after a failure"
    );
    assert_eq!(
        client.get_data(&acked[0]).await.unwrap().0,
        value,
        "reads go on"
    );

    drop(client);
    let data = server.stop();
    // Restart on the same full disk: every acknowledged node is back.
    let server = common::start_in(config, data);
    let client = common::connect(&server).await;
    for p in &acked {
        assert!(
            client.check_stat(p).await.unwrap().is_some(),
            "{p} was acknowledged"
        );
    }
    assert_eq!(client.check_stat("/after-full").await.unwrap(), None);
}

fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn snapshots_are_taken_purged_and_recovered() {
    let mut config = common::config();
    config.snap_count = 40;
    config.purge_interval_hours = 1;
    config.pre_alloc_bytes = 4096;
    let server = common::start_with(config.clone());
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/s", b"", &open).await.unwrap();
    for i in 0..300 {
        client
            .create(&format!("/s/n{i}"), b"v", &open)
            .await
            .unwrap();
        client
            .set_data("/s", format!("{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    let dir = server.data.as_ref().unwrap().0.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while named(&dir, "snapshot.").len() < 3 {
        assert!(std::time::Instant::now() < deadline, "snapshots were taken");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stat = client.check_stat("/s").await.unwrap().unwrap();
    drop(client);
    let data = server.stop();
    // Autopurge runs at start and then every purgeInterval hours.
    let before = named(&data.0, "snapshot.");
    assert!(before.len() > 3, "no purge between: {before:?}");
    let dir = data.0.clone();
    let server = common::start_in(config.clone(), data);
    let after = named(&dir, "snapshot.");
    let kept: Vec<_> = after.iter().filter(|p| before.contains(p)).collect();
    assert_eq!(kept, before.iter().rev().take(3).rev().collect::<Vec<_>>());
    // A start that replayed log records writes one more, in the background.
    assert!(after.len() - kept.len() <= 1, "{after:?}");
    let first_log = named(&dir, "log.").into_iter().next().unwrap();
    assert_ne!(
        first_log.file_name().unwrap(),
        "log.0000000000000001",
        "segments before the snapshots purged"
    );
    let client = common::connect(&server).await;
    assert_eq!(
        client.check_stat("/s").await.unwrap(),
        Some(stat),
        "snapshot + log replay"
    );
    assert_eq!(client.list_children("/s").await.unwrap().len(), 300);
    drop(client);
    let data = server.stop();

    // A damaged newest snapshot: fall back to an older one and the log after it.
    let newest = named(&data.0, "snapshot.").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    let server = common::start_in(config.clone(), data);
    let client = common::connect(&server).await;
    assert_eq!(
        client.check_stat("/s").await.unwrap(),
        Some(stat),
        "older snapshot + log"
    );
    drop(client);
    let data = server.stop();

    // No snapshot at all, and the log no longer starts at the beginning: refuse.
    for snap in named(&data.0, "snapshot.") {
        std::fs::remove_file(snap).unwrap();
    }
    let err = start_error(&data);
    assert!(
        err.contains("starts at zxid") && err.contains("expected 0x1"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unfinished_snapshot_is_removed_at_start() {
    let data = populated().await;
    let tmp = data.0.join("snapshot.tmp");
    std::fs::write(&tmp, b"HERDSNAP cut short by a crash").unwrap();
    // Recovery alone: a started server's own first snapshot (it replays the
    // log) would soon write a new snapshot.tmp.
    let mut config = common::config();
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    let (log, recovered) = herd_server::storage::open(&config).expect("recovers");
    assert!(!tmp.exists(), "snapshot.tmp removed");
    assert_eq!(
        recovered.warnings,
        [format!(
            "{}: removed a snapshot left unfinished by the previous run",
            tmp.display()
        )]
    );
    drop((log, recovered));
    let server = common::start_in(common::config(), data);
    let client = common::connect(&server).await;
    assert_eq!(client.list_children("/d").await.unwrap().len(), 20);
}

/// ZooKeeper gives every recovered session a full timeout; herd first expires
/// those whose timeout ran out while it was down (counted from the last moment
/// the old process was alive), and only the others may reconnect.
#[tokio::test]
async fn sessions_whose_timeout_passed_while_down_expire_at_start() {
    let server = common::start();
    let connect = |secs| {
        zookeeper_client::Client::connector()
            .with_session_timeout(Duration::from_secs(secs))
            .connect(&server.addr)
    };
    let short = connect(4).await.unwrap();
    let long = connect(30).await.unwrap();
    assert_eq!(short.session_timeout(), Duration::from_secs(4));
    assert_eq!(long.session_timeout(), Duration::from_secs(30));
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    short.create("/short", b"", &ephemeral).await.unwrap();
    long.create("/long", b"", &ephemeral).await.unwrap();
    let (short_session, long_session) = (short.session().clone(), long.session().clone());
    let data = server.stop();
    drop((short, long));
    tokio::time::sleep(Duration::from_millis(4500)).await;

    let server = common::start_in(common::config(), data);
    let client = common::connect(&server).await;
    assert_eq!(
        client.check_stat("/short").await.unwrap(),
        None,
        "expired while down"
    );
    let owner = client
        .check_stat("/long")
        .await
        .unwrap()
        .unwrap()
        .ephemeral_owner;
    assert_eq!(owner, long_session.id().0, "still within its timeout");
    let again = zookeeper_client::Client::connector()
        .with_session(short_session)
        .connect(&server.addr)
        .await;
    assert!(matches!(again, Err(Error::SessionExpired)), "{again:?}");
    let resumed = zookeeper_client::Client::connector()
        .with_session(long_session)
        .with_session_timeout(Duration::from_secs(30))
        .connect(&server.addr)
        .await
        .unwrap();
    assert_eq!(resumed.session_id().0, owner);
    resumed.delete("/long", None).await.unwrap();
}

/// One raw getData of `path`: (error, data).
fn raw_get(stream: &mut std::net::TcpStream, xid: i32, path: &str) -> (i32, Vec<u8>) {
    use herd_proto::jute::{Reader, Write};
    let mut body = Vec::new();
    body.string(path);
    body.bool(false);
    common::raw::request(stream, xid, 4, &body);
    let (rxid, _, err, body) = common::raw::read_reply(stream);
    assert_eq!(rxid, xid);
    let data = if err == 0 {
        Reader::new(&body).buffer().unwrap().to_vec()
    } else {
        Vec::new()
    };
    (err, data)
}

/// The largest request herd accepts (a create whose frame is exactly
/// jute.maxbuffer at its cap, the largest znode) is acknowledged and survives a
/// restart that replays it from the log and one that loads it from a snapshot.
/// A multi whose log record would be over the log's limit is refused at the
/// request, as ZooKeeper refuses a request over jute.maxbuffer: its connection
/// is closed and nothing changes.
#[tokio::test]
async fn the_largest_write_survives_restarts_and_one_the_log_cannot_hold_is_refused() {
    use herd_proto::jute::Write;
    let mut config = common::config();
    config.max_buffer_bytes = engine::znode::MAX_DATA;
    let server = common::start_with(config.clone());
    let (mut s, _) = common::raw::raw_session(&server, 30_000);
    let create = |data: &[u8]| {
        let mut body = Vec::new();
        body.string("/big");
        body.buffer(data);
        body.acls(&engine::acl::Acl::open_unsafe());
        body.i32(0);
        body
    };
    // Frame payload: xid and opcode, then the body.
    let room = engine::znode::MAX_DATA - (8 + create(&[]).len());
    let data: Vec<u8> = (0..room).map(|i| (i % 251) as u8).collect();
    let body = create(&data);
    assert_eq!(
        8 + body.len(),
        engine::znode::MAX_DATA,
        "a frame of jute.maxbuffer"
    );
    common::raw::request(&mut s, 1, 1, &body);
    let (xid, zxid, err, _) = common::raw::read_reply(&mut s);
    assert_eq!((xid, err), (1, 0), "the largest create is acknowledged");

    // About 19 bytes a check on the wire, 48 archived: 106 MB of request, a
    // record over 256 MiB.
    let checks = log::MAX_PAYLOAD / 48 + 10_000;
    let mut multi = Vec::with_capacity(checks * 19 + 9);
    for _ in 0..checks {
        multi.i32(13);
        multi.bool(false);
        multi.i32(-1);
        multi.string("/a");
        multi.i32(0);
    }
    multi.i32(-1);
    multi.bool(true);
    multi.i32(-1);
    assert!(
        8 + multi.len() <= engine::znode::MAX_DATA,
        "within jute.maxbuffer"
    );
    common::raw::request(&mut s, 2, 14, &multi);
    let wait = Duration::from_secs(60);
    common::raw::assert_closed_within(&mut s, "a multi the log cannot hold", wait);
    drop(multi);
    let (mut s, _) = common::raw::raw_session(&server, 30_000);
    assert_eq!(raw_get(&mut s, 1, "/big"), (0, data.clone()));
    let (_, after, _, _) = {
        common::raw::request(&mut s, 2, 11, &[]);
        common::raw::read_reply(&mut s)
    };
    assert_eq!(
        after,
        zxid + 1,
        "the refused multi took no zxid (one: this session)"
    );
    drop(s);

    // A restart replays the create from the log, and writes a snapshot of it.
    let data_dir = server.stop();
    let dir = data_dir.0.clone();
    let server = common::start_in(config.clone(), data_dir);
    let (mut s, _) = common::raw::raw_session(&server, 30_000);
    assert_eq!(raw_get(&mut s, 1, "/big"), (0, data.clone()), "replayed");
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while named(&dir, "snapshot.").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a snapshot after the replay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data_dir = server.stop();
    // The next start loads it from the snapshot, and replays only the session
    // opened after that snapshot was taken.
    let server = common::start_in(config, data_dir);
    let mntr = common::raw::four_letter_word(&server.addr, "mntr");
    assert!(mntr.contains("zk_max_startup_txns_loaded\t1\n"), "{mntr}");
    let (mut s, _) = common::raw::raw_session(&server, 30_000);
    assert_eq!(raw_get(&mut s, 1, "/big"), (0, data), "from the snapshot");
}

/// Threads of this process preparing a spare segment (`herd-log-spare`).
fn preparing_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "herd-log-spare")
        .count()
}

/// Once a segment is half full the next one is prepared as a zero-filled
/// file beside it, and the log rolls onto that very file (same inode); the
/// records written there recover, and the temporary files of a roll an
/// earlier run left behind are removed at start-up without affecting recovery.
/// (A roll that fails on a full disk: `full_disk_stops_writes_but_not_reads`.)
#[tokio::test]
async fn the_next_segment_is_prepared_ahead_and_rolled_onto() {
    use std::os::unix::fs::MetadataExt;
    const SEGMENT: u64 = 64 << 10;
    let mut config = common::config();
    config.pre_alloc_bytes = SEGMENT;
    let server = common::start_with(config.clone());
    let dir = server.data.as_ref().unwrap().0.clone();
    let spare = dir.join(herd_server::spare::SPARE_NAME);
    let client = common::connect(&server).await;
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let value = vec![5u8; 1024];
    let mut written = 0;
    let create = |i: usize| {
        let (client, value, open) = (&client, &value, &open);
        async move { client.create(&format!("/p{i}"), value, open).await.unwrap() }
    };
    // Half a segment of records: about 32 creates of 1 KiB.
    while !spare.exists() {
        assert!(written < 60, "no spare prepared after {written} KiB");
        written += 1;
        create(written).await;
    }
    assert_eq!(segments(&dir).len(), 1, "still the first segment");
    // The roll takes the spare only if its preparation is over: wait until no
    // preparing thread runs in this process (other tests' servers have them too).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while preparing_threads() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spare is prepared"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let meta = std::fs::metadata(&spare).unwrap();
    assert_eq!(meta.len(), SEGMENT);
    assert!(
        std::fs::read(&spare).unwrap().iter().all(|&b| b == 0),
        "a spare holds zeros"
    );
    while segments(&dir).len() < 2 {
        assert!(written < 200, "no roll after {written} KiB");
        written += 1;
        create(written).await;
    }
    let second = segments(&dir).pop().unwrap();
    assert_eq!(
        std::fs::metadata(&second).unwrap().ino(),
        meta.ino(),
        "{} is the spare renamed",
        second.display()
    );
    for _ in 0..5 {
        written += 1;
        create(written).await;
    }
    drop(client);
    let data = server.stop();

    // A spare or fresh segment left by an earlier run (here: not zeros, no
    // header) is removed at start.
    for name in [
        herd_server::spare::SPARE_NAME,
        herd_server::spare::FRESH_NAME,
    ] {
        std::fs::write(data.0.join(name), [0xff; 100]).unwrap();
    }
    let server = common::start_in(config, data);
    for name in [
        herd_server::spare::SPARE_NAME,
        herd_server::spare::FRESH_NAME,
    ] {
        assert!(!dir.join(name).exists(), "the leftover {name} is removed");
    }
    let client = common::connect(&server).await;
    for i in 1..=written {
        let (data, _) = client.get_data(&format!("/p{i}")).await.unwrap();
        assert_eq!(data, value, "/p{i} recovered");
    }
}
