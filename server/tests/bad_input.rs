//! Hostile and broken input on the wire: oversized, negative and truncated
//! frames, malformed and unknown requests, maxClientCnxns, wrong session
//! passwords and session expiry of a silent client. (Four-letter words and
//! their whitelist: `four_letter_words.rs`.)
//!
//! Each test talks raw jute over a blocking `std::net::TcpStream` (with read
//! timeouts, so nothing hangs) and checks that a well-behaved session opened
//! before the bad input keeps working afterwards.

mod common;

use std::io::Write as _;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::raw::*;
use herd_proto::jute::{Reader, Write};
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

const GET_DATA: i32 = 4;
const SET_DATA: i32 = 5;
const CREATE: i32 = 1;
const PING: i32 = 11;
const PING_XID: i32 = -2;
const UNIMPLEMENTED: i32 = -6;

/// Checks that a session opened before the bad input still works.
async fn assert_works(client: &Client, path: &str) {
    client
        .create(path, b"still here", &PERSISTENT)
        .await
        .expect("create after bad input");
    let (data, _) = client
        .get_data(path)
        .await
        .expect("get_data after bad input");
    assert_eq!(data, b"still here");
}

/// ZooKeeper's default jute.maxbuffer is 1 MiB - 1 (0xfffff): a frame of that
/// length is served, one byte more closes the connection.
#[test]
fn the_default_frame_limit_is_zookeepers() {
    let server = common::start();
    for (len, served) in [(0xfffff, true), (0x100000, false)] {
        let (mut stream, _) = raw_session(&server, 10_000);
        let mut payload = Vec::new();
        payload.i32(1);
        payload.i32(SET_DATA);
        payload.string("/frame-limit-missing");
        let fill = len - payload.len() - 4 - 4;
        payload.buffer(&vec![b'x'; fill]);
        payload.i32(-1);
        assert_eq!(payload.len(), len);
        let _ = send_frame(&mut stream, &payload);
        if served {
            let (xid, _, err, _) = common::raw::read_reply(&mut stream);
            assert_eq!(
                (xid, err),
                (1, -101),
                "a {len}-byte frame is served (NoNode)"
            );
        } else {
            assert_closed(&mut stream, "a frame one byte over 0xfffff");
        }
    }
}

#[tokio::test]
async fn frame_over_max_buffer_closes_connection() {
    let mut config = common::config();
    config.max_buffer_bytes = 1024;
    let server = common::start_with(config);
    let other = common::connect(&server).await;

    let (mut stream, _) = raw_session(&server, 10_000);
    // setData whose frame is 1100 bytes, over jute.maxbuffer = 1024.
    let mut payload = Vec::new();
    payload.i32(1);
    payload.i32(SET_DATA);
    payload.string("/big");
    payload.buffer(&[b'x'; 1100 - 4 - 4 - 4 - 4 - 4 - 4]);
    payload.i32(-1);
    assert_eq!(payload.len(), 1100);
    let _ = send_frame(&mut stream, &payload);
    assert_closed(&mut stream, "frame of 1100 bytes");

    // Only the length is judged: a bare header announcing 1025 bytes is enough.
    let (mut stream, _) = raw_session(&server, 10_000);
    stream.write_all(&1025i32.to_be_bytes()).unwrap();
    assert_closed(&mut stream, "frame length 1025");

    // Also before the handshake.
    let mut stream = open(&server);
    stream.write_all(&4096i32.to_be_bytes()).unwrap();
    assert_closed(&mut stream, "oversized ConnectRequest");

    assert_works(&other, "/after_big_frame").await;
}

#[tokio::test]
async fn negative_frame_length_closes_connection() {
    let server = common::start();
    let other = common::connect(&server).await;

    let mut stream = open(&server);
    stream.write_all(&(-1i32).to_be_bytes()).unwrap();
    assert_closed(&mut stream, "negative length before handshake");

    let (mut stream, _) = raw_session(&server, 10_000);
    stream.write_all(&i32::MIN.to_be_bytes()).unwrap();
    assert_closed(&mut stream, "negative length after handshake");

    assert_works(&other, "/after_negative_length").await;
}

#[tokio::test]
async fn truncated_frame_closes_connection() {
    let server = common::start();
    let other = common::connect(&server).await;

    // Before the handshake.
    let mut stream = open(&server);
    stream.write_all(&100i32.to_be_bytes()).unwrap();
    stream.write_all(&[0u8; 10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut stream, "truncated ConnectRequest");

    // After the handshake.
    let (mut stream, _) = raw_session(&server, 10_000);
    stream.write_all(&100i32.to_be_bytes()).unwrap();
    stream.write_all(&[0u8; 10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut stream, "truncated request");

    assert_works(&other, "/after_truncated").await;
}

#[tokio::test]
async fn malformed_request_closes_connection() {
    let server = common::start();
    let other = common::connect(&server).await;

    // getData whose path claims 1000 bytes in a frame of 19.
    let (mut stream, _) = raw_session(&server, 10_000);
    let mut payload = Vec::new();
    payload.i32(1);
    payload.i32(GET_DATA);
    payload.i32(1000);
    payload.extend_from_slice(b"/a");
    payload.bool(false);
    send_frame(&mut stream, &payload).unwrap();
    assert_closed(&mut stream, "getData with an overlong path");

    // getData cut short after its header.
    let (mut stream, _) = raw_session(&server, 10_000);
    let mut payload = Vec::new();
    payload.i32(1);
    payload.i32(GET_DATA);
    send_frame(&mut stream, &payload).unwrap();
    assert_closed(&mut stream, "getData without a body");

    // A ConnectRequest too short to hold its fields.
    let mut stream = open(&server);
    send_frame(&mut stream, &[0u8; 7]).unwrap();
    assert_closed(&mut stream, "short ConnectRequest");

    assert_works(&other, "/after_malformed").await;
}

/// As ZooKeeper: the reply is Unimplemented with zxid -1 (no zxid was
/// assigned), then the connection closes; the session lives on and resumes
/// on a new connection.
#[tokio::test]
async fn unknown_opcode_is_unimplemented_and_closes_only_its_connection() {
    let server = common::start();
    let other = common::connect(&server).await;

    let (mut stream, (_, session, password)) = raw_session(&server, 10_000);
    let mut payload = Vec::new();
    payload.i32(77);
    payload.i32(999);
    payload.string("/whatever");
    send_frame(&mut stream, &payload).unwrap();
    let (xid, zxid, err, body) = read_reply(&mut stream);
    assert_eq!((xid, zxid, err), (77, -1, UNIMPLEMENTED));
    assert!(body.is_empty(), "error reply has no body: {body:?}");
    assert_closed(&mut stream, "the connection of an unknown opcode");

    let mut again = open(&server);
    let resumed = handshake(&mut again, 10_000, session, &password).expect("resumed");
    assert_eq!(resumed.1, session, "the same session");
    let mut payload = Vec::new();
    payload.i32(78);
    payload.i32(3); // exists
    payload.string("/");
    payload.bool(false);
    send_frame(&mut again, &payload).unwrap();
    let (xid, _zxid, err, body) = read_reply(&mut again);
    assert_eq!((xid, err), (78, 0));
    assert_eq!(body.len(), 68, "exists replies with a Stat");

    assert_works(&other, "/after_unknown_opcode").await;
}

#[tokio::test]
async fn max_client_cnxns_per_address() {
    let mut config = common::config();
    config.max_client_cnxns = 3;
    let server = common::start_with(config);
    // The well-behaved client is one of the three connections from 127.0.0.1.
    let other = common::connect(&server).await;
    let (first, _) = raw_session(&server, 10_000);
    let (_second, _) = raw_session(&server, 10_000);

    let mut fourth = open(&server);
    assert_eq!(
        handshake(&mut fourth, 10_000, 0, &[0; 16]),
        None,
        "a fourth connection from the same address gets no ConnectResponse"
    );
    assert_closed(&mut fourth, "fourth connection");

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(2);
    let accepted = loop {
        let mut stream = open(&server);
        if let Some(reply) = handshake(&mut stream, 10_000, 0, &[0; 16]) {
            break Some((stream, reply));
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_stream, (timeout, session, _)) =
        accepted.expect("a connection is accepted once one of the three closed");
    assert_ne!(session, 0);
    assert_eq!(timeout, 10_000);

    assert_works(&other, "/after_max_cnxns").await;
}

#[tokio::test]
async fn reconnect_with_wrong_password_is_refused() {
    let server = common::start();
    let other = common::connect(&server).await;

    let (_first, (timeout, session, password)) = raw_session(&server, 10_000);
    assert_eq!(timeout, 10_000);

    let mut wrong = password.clone();
    wrong[0] ^= 0xff;
    let mut stream = open(&server);
    let reply = handshake(&mut stream, 10_000, session, &wrong).expect("a ConnectResponse");
    assert_eq!(reply.0, 0, "timeOut of a refused reconnect");
    assert_eq!(reply.1, 0, "sessionId of a refused reconnect");
    assert_closed(&mut stream, "refused reconnect");

    let mut stream = open(&server);
    let reply = handshake(&mut stream, 10_000, session, &password).expect("a ConnectResponse");
    assert_eq!(reply.1, session, "same session with the right password");
    assert_eq!(reply.0, 10_000, "the session's timeout");
    assert_eq!(reply.2, password);

    // The reattached connection works.
    let mut ping = Vec::new();
    ping.i32(PING_XID);
    ping.i32(PING);
    send_frame(&mut stream, &ping).unwrap();
    let (xid, _, err, _) = read_reply(&mut stream);
    assert_eq!((xid, err), (PING_XID, 0));

    assert_works(&other, "/after_wrong_password").await;
}

#[tokio::test]
async fn silent_session_expires_and_loses_its_ephemeral() {
    let server = common::start();
    let other = common::connect(&server).await;

    // A raw session with the smallest timeout (2 × tickTime), which creates an
    // ephemeral node and then says nothing more.
    let (mut stream, (timeout, session, password)) = raw_session(&server, 4000);
    assert_eq!(timeout, 4000);
    let mut payload = Vec::new();
    payload.i32(1);
    payload.i32(CREATE);
    payload.string("/silent");
    payload.buffer(b"e");
    payload.i32(1); // one ACL: world:anyone, all permissions
    payload.i32(31);
    payload.string("world");
    payload.string("anyone");
    payload.i32(1); // ephemeral
    send_frame(&mut stream, &payload).unwrap();
    let (xid, _, err, body) = read_reply(&mut stream);
    assert_eq!((xid, err), (1, 0));
    let mut r = Reader::new(&body);
    assert_eq!(r.string().as_deref(), Ok("/silent"));

    let stat = other
        .check_stat("/silent")
        .await
        .unwrap()
        .expect("ephemeral exists");
    assert_eq!(stat.ephemeral_owner, session);

    let started = Instant::now();
    while other.check_stat("/silent").await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "ephemeral of a silent 4 s session still there after 12 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone_after = started.elapsed();
    assert!(
        gone_after >= Duration::from_secs(2),
        "expired too early: {gone_after:?}"
    );
    drop(stream);

    let mut stream = open(&server);
    let reply = handshake(&mut stream, 4000, session, &password).expect("a ConnectResponse");
    assert_eq!(reply.0, 0, "timeOut of an expired session");
    assert_eq!(reply.1, 0, "sessionId of an expired session");
    assert_closed(&mut stream, "reconnect to an expired session");

    assert_works(&other, "/after_expiry").await;
}

#[tokio::test]
async fn reconfig_and_sasl_are_answered_as_by_zookeeper_without_them() {
    let server = common::start();
    let (mut stream, _) = raw_session(&server, 10_000);
    // reconfig: joining/leaving/newMembers strings, curConfigId long.
    let mut body = Vec::new();
    body.string("");
    body.string("");
    body.string("");
    body.i64(-1);
    request(&mut stream, 5, 16, &body);
    let (xid, zxid, err, _) = read_reply(&mut stream);
    assert_eq!((xid, err), (5, -123), "ReconfigDisabled");
    assert!(
        zxid > 0,
        "a refused reconfig is a failed transaction, with a zxid"
    );
    // A SASL token to a server without SASL: Ok, zxid 0, no token back.
    let mut token = Vec::new();
    token.buffer(b"token");
    request(&mut stream, 6, 102, &token);
    assert_eq!(
        read_reply(&mut stream),
        (6, 0, 0, vec![0xff; 4]),
        "a null token"
    );
    request(&mut stream, PING_XID, PING, &[]);
    assert_eq!(next_incoming(&mut stream), Incoming::Reply(PING_XID, 0));
}

#[tokio::test]
async fn client_that_saw_a_newer_zxid_is_refused() {
    let server = common::start();
    let other = common::connect(&server).await;
    let mut stream = open(&server);
    let mut handshake = Vec::new();
    handshake.i32(0);
    handshake.i64(1 << 40); // lastZxidSeen far beyond this server's
    handshake.i32(10_000);
    handshake.i64(0);
    handshake.buffer(&[0; 16]);
    handshake.bool(false);
    send_frame(&mut stream, &handshake).unwrap();
    assert_closed(&mut stream, "handshake from the future");
    assert_works(&other, "/after_future_client").await;
}

#[tokio::test]
async fn session_reattached_elsewhere_closes_its_old_connection() {
    let server = common::start();
    let (mut old, (timeout, session, password)) = raw_session(&server, 10_000);
    let mut new = open(&server);
    let again = handshake(&mut new, timeout, session, &password).expect("reattached");
    assert_eq!(again, (timeout, session, password));
    assert_closed(&mut old, "the session's previous connection");
    request(&mut new, PING_XID, PING, &[]);
    assert_eq!(next_incoming(&mut new), Incoming::Reply(PING_XID, 0));
}
