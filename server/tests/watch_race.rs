//! Watches set by reads while other sessions write what they watch: a read
//! that saw a state leaves a watch that fires for the first change after it,
//! and its notification never arrives before the reply of the read that set
//! it. (A client registers its watcher when the reply arrives, so a
//! notification ahead of the reply finds no watcher, and the next change is
//! never reported: the observer hangs.)
//!
//! Stress tests in the shape of Curator recipes. Writer sessions (the
//! `zookeeper-client` crate) change a znode; observer sessions (raw frames, so
//! every frame's order is seen) follow it with a watching read and read again
//! on every notification. Each observer's whole stream is checked: no
//! notification while no watch is armed, states never go back, and the
//! observer ends at the writers' final state.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::{self, request};
use herd_proto::jute::{Reader, Write};
use zookeeper_client::{Acls, CreateMode, CreateOptions, Error};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const OBSERVERS: usize = 4;
const GET_DATA: i32 = 4;
const EXISTS: i32 = 3;
const GET_CHILDREN2: i32 = 12;
const NO_NODE: i32 = -101;

/// What an observer makes of one reply: the state it shows, where it has an
/// order, and whether it is the writers' final state.
type Judge = fn(err: i32, body: &[u8]) -> (Option<i64>, bool);

/// Follows `path` with watching `op` reads until `judge` says the final state
/// was read, or the history breaks a guarantee. With `behind_write`, each read
/// is sent right behind a write of the observer's own, so it waits in the
/// session's queue and its reply may be held.
fn observe(
    addr: &str,
    op: i32,
    path: &str,
    judge: Judge,
    behind_write: Option<&str>,
) -> Result<usize, String> {
    let mut s: TcpStream = raw::open_addr(addr);
    raw::handshake(&mut s, 10_000, 0, &[0; 16]).expect("observer session");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = i64::MIN;
    if let Some(own) = behind_write {
        let mut body = Vec::new();
        body.string(own);
        body.buffer(b"");
        body.acls(&engine::acl::Acl::open_unsafe());
        body.i32(1); // ephemeral
        request(&mut s, -10, 1, &body);
        assert_eq!(raw::read_reply(&mut s).2, 0, "create {own}");
    }
    for xid in (2..).step_by(2) {
        if let Some(own) = behind_write {
            let mut body = Vec::new();
            body.string(own);
            body.buffer(b"x");
            body.i32(-1);
            request(&mut s, xid - 1, 5, &body);
        }
        let mut body = Vec::new();
        body.string(path);
        body.bool(true);
        request(&mut s, xid, op, &body);
        // No watch is armed while this read is outstanding: the next frames are
        // the replies to the write and to the read.
        if behind_write.is_some() {
            let (rxid, _, err, _) = raw::read_reply(&mut s);
            if rxid == -1 {
                return Err(format!(
                    "op {op}: a notification before the reply of write {}",
                    xid - 1
                ));
            }
            assert_eq!((rxid, err), (xid - 1, 0), "setData reply");
        }
        let (rxid, _zxid, err, body) = raw::read_reply(&mut s);
        if rxid == -1 {
            return Err(format!(
                "op {op}: a notification before the reply of read {xid} (last state {last})"
            ));
        }
        assert_eq!(rxid, xid, "reply order");
        let (state, done) = judge(err, &body);
        if let Some(state) = state {
            if state < last {
                return Err(format!("op {op}: state went back from {last} to {state}"));
            }
            last = state;
        }
        if done {
            return Ok(xid as usize);
        }
        // The writers are not done: the watch must report a change.
        if Instant::now() > deadline {
            return Err(format!("op {op}: not done in time (state {last})"));
        }
        match raw::try_read_reply(&mut s, Duration::from_secs(5)) {
            Some((-1, ..)) => {}
            Some(other) => return Err(format!("op {op}: unexpected frame {other:?}")),
            None => return Err(format!("op {op}: stuck at state {last}: no notification")),
        }
    }
    unreachable!()
}

fn stat_of(body: &[u8], skip_data: bool) -> engine::stat::Stat {
    let mut r = Reader::new(body);
    if skip_data {
        r.buffer().expect("data");
    }
    r.stat().expect("stat")
}

/// Runs `OBSERVERS` observers beside `writers`, then checks every history.
/// Half the observers send each read behind a write of their own.
async fn race(
    server: &common::TestServer,
    op: i32,
    path: &'static str,
    judge: Judge,
    writers: tokio::task::JoinSet<()>,
) {
    let observers: Vec<_> = (0..OBSERVERS)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let own = format!("/observer-{op}-{i}");
                observe(&addr, op, path, judge, (i % 2 == 1).then_some(own.as_str()))
            })
        })
        .collect();
    let mut writers = writers;
    while let Some(done) = writers.join_next().await {
        done.expect("writer task");
    }
    for o in observers {
        o.join()
            .expect("observer thread")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

const COUNTERS: u32 = 4;
const INCREMENTS: u32 = 250;

/// Curator's `SharedCount`: conditional setData, retried on BadVersion.
async fn increment(addr: String, path: &'static str) {
    let client = common::connect_addr(&addr).await;
    let mut done = 0;
    while done < INCREMENTS {
        let (data, stat) = client.get_data(path).await.expect("read counter");
        let value = u32::from_be_bytes(data[..4].try_into().unwrap()) + 1;
        match client
            .set_data(path, &value.to_be_bytes(), Some(stat.version))
            .await
        {
            Ok(_) => done += 1,
            Err(Error::BadVersion) => {}
            Err(e) => panic!("setData: {e}"),
        }
    }
}

#[tokio::test]
async fn a_data_watch_fires_for_the_next_version_after_the_reply() {
    let server = common::start();
    let client = common::connect(&server).await;
    let path = "/shared-count";
    client
        .create(path, &0u32.to_be_bytes(), &PERSISTENT)
        .await
        .unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..COUNTERS {
        writers.spawn(increment(server.addr.clone(), path));
    }
    race(&server, GET_DATA, path, judge_counter, writers).await;
    let (data, stat) = client.get_data(path).await.unwrap();
    assert_eq!(
        u32::from_be_bytes(data[..4].try_into().unwrap()),
        COUNTERS * INCREMENTS
    );
    assert_eq!(stat.version, (COUNTERS * INCREMENTS) as i32);
}

fn judge_counter(err: i32, body: &[u8]) -> (Option<i64>, bool) {
    assert_eq!(err, 0, "getData");
    let version = stat_of(body, true).version;
    (
        Some(version.into()),
        version == (COUNTERS * INCREMENTS) as i32,
    )
}

const MEMBERS: u32 = 3;
const ROUNDS: u32 = 150;

/// A lock's waiters: each member creates and deletes its child, round after round.
async fn join_and_leave(addr: String, parent: &'static str, member: u32) {
    let client = common::connect_addr(&addr).await;
    let child = format!("{parent}/m{member}");
    for _ in 0..ROUNDS {
        client
            .create(&child, b"", &PERSISTENT)
            .await
            .expect("create child");
        client.delete(&child, None).await.expect("delete child");
    }
}

const BATCHES: u32 = 20;
const BATCH: u32 = 500;

/// Whole batches of children in one multi each: committing one takes long
/// enough that reads often meet the parent half-way through it.
async fn batches(addr: String, parent: &'static str) {
    let client = common::connect_addr(&addr).await;
    for _ in 0..BATCHES {
        for create in [true, false] {
            let mut multi = client.new_multi_writer();
            for i in 0..BATCH {
                let child = format!("{parent}/b{i}");
                if create {
                    multi.add_create(&child, b"", &PERSISTENT).unwrap();
                } else {
                    multi.add_delete(&child, None).unwrap();
                }
            }
            multi.commit().await.expect("multi");
        }
    }
}

#[tokio::test]
async fn a_child_watch_fires_for_the_next_child_change_after_the_reply() {
    let server = common::start();
    let client = common::connect(&server).await;
    let parent = "/lock";
    client.create(parent, b"", &PERSISTENT).await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for member in 0..MEMBERS {
        writers.spawn(join_and_leave(server.addr.clone(), parent, member));
    }
    writers.spawn(batches(server.addr.clone(), parent));
    race(&server, GET_CHILDREN2, parent, judge_children, writers).await;
    let (children, stat) = client.get_children(parent).await.unwrap();
    assert!(children.is_empty());
    assert_eq!(stat.cversion, FINAL_CVERSION);
}

/// Every create and delete of a child raises the parent's cversion by one.
const FINAL_CVERSION: i32 = (2 * MEMBERS * ROUNDS + 2 * BATCHES * BATCH) as i32;

fn judge_children(err: i32, body: &[u8]) -> (Option<i64>, bool) {
    assert_eq!(err, 0, "getChildren2");
    let mut r = Reader::new(body);
    let children = r.strings().expect("children");
    let stat = r.stat().expect("stat");
    assert_eq!(
        stat.num_children as usize,
        children.len(),
        "children and stat agree"
    );
    (Some(stat.cversion.into()), stat.cversion == FINAL_CVERSION)
}

const FLIPS: u32 = 300;

/// A node that comes and goes (a leader's ephemeral, say), then stays with version 1.
async fn flip(addr: String, path: &'static str) {
    let client = common::connect_addr(&addr).await;
    for _ in 0..FLIPS {
        client.create(path, b"", &PERSISTENT).await.expect("create");
        client.delete(path, None).await.expect("delete");
    }
    client.create(path, b"", &PERSISTENT).await.expect("create");
    client.set_data(path, b"end", None).await.expect("setData");
}

#[tokio::test]
async fn an_exists_watch_fires_for_the_next_create_or_delete_after_the_reply() {
    let server = common::start();
    let client = common::connect(&server).await;
    client.create("/leader", b"", &PERSISTENT).await.unwrap();
    let path = "/leader/current";
    let mut writers = tokio::task::JoinSet::new();
    writers.spawn(flip(server.addr.clone(), path));
    race(&server, EXISTS, path, judge_exists, writers).await;
    let (data, _) = client.get_data(path).await.unwrap();
    assert_eq!(data, b"end");
}

fn judge_exists(err: i32, body: &[u8]) -> (Option<i64>, bool) {
    match err {
        0 => {
            let stat = stat_of(body, false);
            (Some(stat.czxid), stat.version == 1)
        }
        NO_NODE => (None, false),
        other => panic!("exists: error {other}"),
    }
}
