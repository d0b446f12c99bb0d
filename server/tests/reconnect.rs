//! Watches across a reconnect: a session holds some of every kind of watch on
//! one path, its connection is cut (through a proxy; the server keeps the
//! session), and the client comes back on a new connection to the same session
//! and re-registers them with setWatches2, as ZooKeeper's clients do. Every
//! combination of kinds, with and without changes while it was away, must then
//! report exactly the events ZooKeeper reports.
//!
//! The Java client of ZooKeeper 3.8.0 numbers its setWatches2 like any request
//! (xid 3, not -8) and drops the connection if the reply carries another xid:
//! the reply echoes the request's xid.
//!
//! Run against Apache ZooKeeper (`HERD_TEST_ZK`), every combination passes on
//! 3.9. ZooKeeper 3.8 keeps one mode per (connection, path), and its
//! setWatches2 also files a persistent-recursive watch among the child
//! watches, so a child or persistent watch re-registered beside one on the
//! same path stops reporting child changes (ZOOKEEPER-4466, fixed in 3.9.0);
//! herd behaves as 3.9, and those combinations are skipped against a 3.8.

mod common;

use std::net::TcpStream;

use common::proxy::Proxy;
use common::raw::{self, next_incoming, read_reply, request, Incoming};
use herd_proto::jute::Write;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

const CREATED: i32 = 1;
const DELETED: i32 = 2;
const DATA_CHANGED: i32 = 3;
const CHILDREN_CHANGED: i32 = 4;

/// The kinds of watch a session can hold on one path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// getData (or exists on an existing node) with watch.
    Data,
    /// exists with watch on a missing node.
    Exist,
    /// getChildren with watch.
    Child,
    /// addWatch, persistent.
    Persistent,
    /// addWatch, persistent and recursive.
    Recursive,
}

fn body(path: &str, extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    b.string(path);
    extra(&mut b);
    b
}

/// Sets `kind` on `path`; returns the zxid of the reply.
fn set(s: &mut TcpStream, xid: i32, kind: Kind, path: &str) -> i64 {
    let (op, b) = match kind {
        Kind::Data => (4, body(path, |b| b.bool(true))),
        Kind::Exist => (3, body(path, |b| b.bool(true))),
        Kind::Child => (8, body(path, |b| b.bool(true))),
        Kind::Persistent => (106, body(path, |b| b.i32(0))),
        Kind::Recursive => (106, body(path, |b| b.i32(1))),
    };
    request(s, xid, op, &b);
    let (rxid, zxid, err, _) = read_reply(s);
    let expected = if kind == Kind::Exist { -101 } else { 0 };
    assert_eq!((rxid, err), (xid, expected), "setting {kind:?} on {path}");
    zxid
}

fn event(kind: i32, path: &str) -> Incoming {
    Incoming::Event(kind, path.to_owned())
}

/// What one change notifies a session holding `held` on `path` (consuming
/// one-shot watches), in ZooKeeper's order: the node's event, then its parent's.
fn notified(held: &mut Vec<Kind>, path: &str, change: &Change) -> Vec<Incoming> {
    let mut out = Vec::new();
    let mut fire = |kind: i32, at: &str, by: &[Kind], held: &mut Vec<Kind>| {
        if held.iter().any(|k| by.contains(k)) {
            out.push(event(kind, at));
        }
        held.retain(|k| !by.contains(k) || matches!(k, Kind::Persistent | Kind::Recursive));
    };
    match change {
        Change::SetData => fire(
            DATA_CHANGED,
            path,
            &[Kind::Data, Kind::Persistent, Kind::Recursive],
            held,
        ),
        Change::Create => fire(
            CREATED,
            path,
            &[Kind::Exist, Kind::Persistent, Kind::Recursive],
            held,
        ),
        Change::Delete => {
            fire(
                DELETED,
                path,
                &[Kind::Data, Kind::Child, Kind::Persistent, Kind::Recursive],
                held,
            );
            // A deleted node's one-shot watches are gone.
            held.retain(|k| matches!(k, Kind::Persistent | Kind::Recursive));
        }
        Change::CreateChild(name) => {
            fire(CREATED, &format!("{path}/{name}"), &[Kind::Recursive], held);
            fire(
                CHILDREN_CHANGED,
                path,
                &[Kind::Child, Kind::Persistent],
                held,
            );
        }
        Change::DeleteChild(name) => {
            fire(DELETED, &format!("{path}/{name}"), &[Kind::Recursive], held);
            fire(
                CHILDREN_CHANGED,
                path,
                &[Kind::Child, Kind::Persistent],
                held,
            );
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Change {
    SetData,
    Create,
    Delete,
    CreateChild(&'static str),
    DeleteChild(&'static str),
}

async fn apply(client: &Client, path: &str, change: Change) {
    match change {
        Change::SetData => client.set_data(path, b"x", None).await.map(drop),
        Change::Create => client.create(path, b"", &PERSISTENT).await.map(drop),
        Change::Delete => client.delete(path, None).await,
        Change::CreateChild(name) => {
            let child = format!("{path}/{name}");
            client.create(&child, b"", &PERSISTENT).await.map(drop)
        }
        Change::DeleteChild(name) => client.delete(&format!("{path}/{name}"), None).await,
    }
    .unwrap_or_else(|e| panic!("{change:?} {path}: {e}"));
}

/// One round: `kinds` on `path` (existing or not), a cut, `away` changes made
/// by another session meanwhile, a reconnect with setWatches2, then `after`
/// changes; every notification is checked in order.
async fn round(
    server: &common::TestServer,
    proxy: &Proxy,
    client: &Client,
    path: &str,
    kinds: &[Kind],
    away: &[Change],
    after: &[Change],
) {
    let mut s = raw::open_addr(&proxy.addr);
    let (_, session, password) = raw::handshake(&mut s, 20_000, 0, &[0; 16]).expect("session");
    let mut seen = 0;
    for (i, kind) in kinds.iter().enumerate() {
        seen = seen.max(set(&mut s, i as i32 + 1, *kind, path));
    }
    proxy.cut();
    raw::assert_closed(&mut s, "cut connection");
    for change in away {
        apply(client, path, *change).await;
    }
    let mut s = raw::open_addr(&proxy.addr);
    let (_, resumed, _) = raw::handshake(&mut s, 20_000, session, &password).expect("resume");
    assert_eq!(resumed, session, "same session");
    let listed = |k: Kind| -> Vec<&str> {
        if kinds.contains(&k) {
            vec![path]
        } else {
            vec![]
        }
    };
    let mut b = Vec::new();
    b.i64(seen);
    b.strings(&listed(Kind::Data));
    b.strings(&listed(Kind::Exist));
    b.strings(&listed(Kind::Child));
    b.strings(&listed(Kind::Persistent));
    b.strings(&listed(Kind::Recursive));
    let xid = kinds.len() as i32 + 1;
    request(&mut s, xid, 105, &b);

    // What setWatches reports at once: one-shot watches whose node changed
    // while away fire now (ZooKeeper's DataTree.setWatches); the rest re-arm.
    let mut held = kinds.to_vec();
    let changed_data = away
        .iter()
        .any(|c| matches!(c, Change::SetData | Change::Create));
    let changed_children = away
        .iter()
        .any(|c| matches!(c, Change::CreateChild(_) | Change::DeleteChild(_)));
    let mut expected = Vec::new();
    if held.contains(&Kind::Data) && changed_data {
        expected.push(event(DATA_CHANGED, path));
        held.retain(|k| *k != Kind::Data);
    }
    if held.contains(&Kind::Exist) && away.iter().any(|c| matches!(c, Change::Create)) {
        expected.push(event(CREATED, path));
        held.retain(|k| *k != Kind::Exist);
    }
    if held.contains(&Kind::Child) && changed_children {
        expected.push(event(CHILDREN_CHANGED, path));
        held.retain(|k| *k != Kind::Child);
    }
    expected.push(Incoming::Reply(xid, 0));
    let mut got = Vec::new();
    collect(&mut s, &mut got, expected.len());
    for change in after {
        apply(client, path, *change).await;
        expected.extend(notified(&mut held, path, change));
    }
    // A ping's reply marks the end: nothing else may arrive before it.
    request(&mut s, -2, 11, &[]);
    expected.push(Incoming::Reply(-2, 0));
    collect(&mut s, &mut got, expected.len());
    assert_eq!(
        got, expected,
        "kinds {kinds:?} on {path}, {away:?} while away, then {after:?}"
    );
    request(&mut s, xid + 1, -11, &[]);
    let _ = next_incoming(&mut s);
    let _ = server;
}

/// Reads frames into `got` until it holds `n`, or nothing more comes (then
/// the caller's comparison shows what is missing).
fn collect(s: &mut TcpStream, got: &mut Vec<Incoming>, n: usize) {
    while got.len() < n && raw::readable_within(s, std::time::Duration::from_secs(2)) {
        got.push(next_incoming(s));
    }
}

/// Whether the server under test is an Apache ZooKeeper 3.8.
fn reference_is_3_8(server: &common::TestServer) -> bool {
    std::env::var("HERD_TEST_ZK").is_ok()
        && raw::four_letter_word(&server.addr, "srvr").starts_with("Zookeeper version: 3.8.")
}

/// Every non-empty subset of `kinds`.
fn subsets(kinds: &[Kind]) -> Vec<Vec<Kind>> {
    (1..1u32 << kinds.len())
        .map(|bits| {
            (0..kinds.len())
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| kinds[i])
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn every_combination_of_watches_on_an_existing_node_survives_a_reconnect() {
    let server = common::start();
    let proxy = Proxy::start(&server.addr);
    let client = common::fresh_root(&server, "/reconnect").await;
    let kinds = [Kind::Data, Kind::Child, Kind::Persistent, Kind::Recursive];
    let after = [
        Change::SetData,
        Change::CreateChild("c"),
        Change::DeleteChild("c"),
        Change::SetData,
    ];
    let lost_beside_recursive = reference_is_3_8(&server);
    for (i, held) in subsets(&kinds).iter().enumerate() {
        let child_kind = held.contains(&Kind::Child) || held.contains(&Kind::Persistent);
        if lost_beside_recursive && child_kind && held.contains(&Kind::Recursive) {
            continue;
        }
        for (j, away) in [&[][..], &[Change::SetData, Change::CreateChild("w")][..]]
            .iter()
            .enumerate()
        {
            let path = format!("/reconnect/n{i}-{j}");
            client.create(&path, b"", &PERSISTENT).await.unwrap();
            round(&server, &proxy, &client, &path, held, away, &after).await;
        }
    }
}

#[tokio::test]
async fn every_combination_of_watches_on_a_missing_node_survives_a_reconnect() {
    let server = common::start();
    let proxy = Proxy::start(&server.addr);
    let client = common::fresh_root(&server, "/reconnect-missing").await;
    let kinds = [Kind::Exist, Kind::Persistent, Kind::Recursive];
    for (i, held) in subsets(&kinds).iter().enumerate() {
        // Created while away, or only after the reconnect.
        let quiet = [Change::Create, Change::SetData, Change::Delete];
        let path = format!("/reconnect-missing/q{i}");
        round(&server, &proxy, &client, &path, held, &[], &quiet).await;
        let path = format!("/reconnect-missing/a{i}");
        let after = [Change::SetData, Change::Delete];
        round(
            &server,
            &proxy,
            &client,
            &path,
            held,
            &[Change::Create],
            &after,
        )
        .await;
    }
}
