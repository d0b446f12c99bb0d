//! Watch requests a client library sends on its own schedule, driven by hand:
//! setWatches2 after a reconnect (missed changes are notified at once, the
//! rest re-registered), checkWatches, removeWatches and addWatch.

mod common;

use common::raw::{self, next_incoming, request, Incoming};
use herd_proto::jute::Write;
use zookeeper_client::{Acls, CreateMode, CreateOptions};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

const CREATED: i32 = 1;
const DELETED: i32 = 2;
const DATA_CHANGED: i32 = 3;
const CHILDREN_CHANGED: i32 = 4;
const NO_WATCHER: i32 = -121;

fn event(kind: i32, path: &str) -> Incoming {
    Incoming::Event(kind, path.to_owned())
}

fn path_body(path: &str, extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = Vec::new();
    body.string(path);
    extra(&mut body);
    body
}

#[tokio::test]
async fn set_watches2_notifies_missed_changes_and_rearms_the_rest() {
    let server = common::start();
    let client = common::connect(&server).await;
    for p in ["/sw", "/sw/a", "/sw/b", "/sw/c", "/sw/d", "/sw/gone"] {
        client.create(p, b"1", &PERSISTENT).await.unwrap();
    }
    let seen = client.check_stat("/sw/gone").await.unwrap().unwrap().czxid;
    // What a disconnected client misses:
    client.set_data("/sw/a", b"2", None).await.unwrap();
    client.delete("/sw/gone", None).await.unwrap();
    client
        .create("/sw/c/child", b"", &PERSISTENT)
        .await
        .unwrap();
    client.create("/sw/new", b"", &PERSISTENT).await.unwrap();

    let (mut stream, _) = raw::raw_session(&server, 10_000);
    let mut body = Vec::new();
    body.i64(seen);
    body.strings(&["/sw/a", "/sw/gone", "/sw/d"]); // data
    body.strings(&["/sw/new", "/sw/none"]); // exist
    body.strings(&["/sw/c", "/sw/b"]); // child
    body.strings(&["/sw/p"]); // persistent
    body.strings(&["/sw/r"]); // persistent recursive
    request(&mut stream, -8, 105, &body);
    let expected = [
        event(DATA_CHANGED, "/sw/a"),
        event(DELETED, "/sw/gone"),
        event(CREATED, "/sw/new"),
        event(CHILDREN_CHANGED, "/sw/c"),
        Incoming::Reply(-8, 0),
    ];
    for e in expected {
        assert_eq!(next_incoming(&mut stream), e);
    }

    // The rest were re-armed: each fires on the next change.
    client.set_data("/sw/d", b"2", None).await.unwrap();
    client.create("/sw/none", b"", &PERSISTENT).await.unwrap();
    client.create("/sw/b/x", b"", &PERSISTENT).await.unwrap();
    client.create("/sw/p", b"", &PERSISTENT).await.unwrap();
    client.create("/sw/r", b"", &PERSISTENT).await.unwrap();
    client.create("/sw/r/deep", b"", &PERSISTENT).await.unwrap();
    client.set_data("/sw/p", b"2", None).await.unwrap();
    let expected = [
        event(DATA_CHANGED, "/sw/d"),
        event(CREATED, "/sw/none"),
        event(CHILDREN_CHANGED, "/sw/b"),
        event(CREATED, "/sw/p"),
        event(CREATED, "/sw/r"),
        event(CREATED, "/sw/r/deep"),
        event(DATA_CHANGED, "/sw/p"),
    ];
    for e in expected {
        assert_eq!(next_incoming(&mut stream), e);
    }
}

#[tokio::test]
async fn check_remove_and_add_watches() {
    let server = common::start();
    let client = common::connect(&server).await;
    client.create("/cw", b"", &PERSISTENT).await.unwrap();
    let (mut s, _) = raw::raw_session(&server, 10_000);
    let check = |s: &mut std::net::TcpStream, xid: i32, kind: i32| {
        request(s, xid, 17, &path_body("/cw", |b| b.i32(kind)));
        next_incoming(s)
    };
    let remove = |s: &mut std::net::TcpStream, xid: i32, kind: i32| {
        request(s, xid, 18, &path_body("/cw", |b| b.i32(kind)));
        next_incoming(s)
    };
    request(&mut s, 1, 4, &path_body("/cw", |b| b.bool(true))); // getData, watch
    assert_eq!(next_incoming(&mut s), Incoming::Reply(1, 0));
    request(&mut s, 2, 8, &path_body("/cw", |b| b.bool(true))); // getChildren, watch
    assert_eq!(next_incoming(&mut s), Incoming::Reply(2, 0));

    assert_eq!(
        check(&mut s, 3, 2),
        Incoming::Reply(3, 0),
        "data watch present"
    );
    assert_eq!(
        remove(&mut s, 4, 1),
        Incoming::Reply(4, 0),
        "child watch removed"
    );
    assert_eq!(
        remove(&mut s, 5, 1),
        Incoming::Reply(5, NO_WATCHER),
        "already gone"
    );
    assert_eq!(check(&mut s, 6, 1), Incoming::Reply(6, NO_WATCHER));
    assert_eq!(
        remove(&mut s, 7, 3),
        Incoming::Reply(7, 0),
        "any: the data watch"
    );
    assert_eq!(check(&mut s, 8, 2), Incoming::Reply(8, NO_WATCHER));

    // With no watch left, this session's own setData comes back without an event.
    request(
        &mut s,
        9,
        5,
        &path_body("/cw", |b| {
            b.buffer(b"x");
            b.i32(-1);
        }),
    );
    assert_eq!(next_incoming(&mut s), Incoming::Reply(9, 0));

    // addWatch (persistent): the event precedes the reply to the write that caused it.
    request(&mut s, 10, 106, &path_body("/cw", |b| b.i32(0)));
    assert_eq!(next_incoming(&mut s), Incoming::Reply(10, 0));
    assert_eq!(
        check(&mut s, 11, 4),
        Incoming::Reply(11, 0),
        "persistent watch present"
    );
    for xid in [12, 13] {
        request(
            &mut s,
            xid,
            5,
            &path_body("/cw", |b| {
                b.buffer(b"y");
                b.i32(-1);
            }),
        );
        assert_eq!(
            next_incoming(&mut s),
            event(DATA_CHANGED, "/cw"),
            "persistent: fires every time"
        );
        assert_eq!(next_incoming(&mut s), Incoming::Reply(xid, 0));
    }
}
