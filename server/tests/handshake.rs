//! The handshake in both shapes clients speak: with the readOnly flag (3.5+
//! clients) and without it (3.4 and older, and ClickHouse's own client). Each
//! gets its answer in its own shape, 37 or 36 bytes of payload, as from
//! Apache ZooKeeper, whether the session is new, resumed or refused; and an
//! old client's session then works like any other.

mod common;

use std::net::TcpStream;

use common::raw::{self, read_reply, request};
use herd_proto::jute::{Reader, Write};
use herd_proto::{ConnectRequest, ConnectResponse};

/// Sends `request` and returns the answer's payload; `None` if the server
/// closed the connection instead.
fn hello(stream: &mut TcpStream, request: &ConnectRequest) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    request.encode(&mut out);
    std::io::Write::write_all(stream, &out).expect("send handshake");
    raw::read_frame(stream)
}

fn shaped(read_only: Option<bool>, session_id: i64, password: &[u8]) -> ConnectRequest {
    ConnectRequest {
        session_id,
        password: password.to_vec(),
        read_only,
        ..ConnectRequest::new_session(10_000)
    }
}

/// The answer's length, checked against the shape the request was in.
fn answer_of(frame: &[u8], read_only: Option<bool>) -> ConnectResponse<'_> {
    let expected_len = if read_only.is_some() { 37 } else { 36 };
    assert_eq!(
        frame.len(),
        expected_len,
        "payload length for readOnly {read_only:?}"
    );
    let response = ConnectResponse::decode(frame).expect("a ConnectResponse");
    assert_eq!(response.read_only, read_only.map(|_| false));
    assert_eq!(response.protocol_version, 0);
    response
}

#[test]
fn each_client_gets_the_answer_in_the_shape_it_spoke() {
    let server = common::start();
    for shape in [None, Some(false), Some(true)] {
        // A new session.
        let mut s = raw::open(&server);
        let frame = hello(&mut s, &shaped(shape, 0, &[0; 16])).expect("answered");
        let opened = answer_of(&frame, shape);
        assert_ne!(opened.session_id, 0, "a new session");
        assert_eq!(opened.timeout_ms, 10_000);
        assert_eq!(opened.password.len(), 16);
        let (session, password) = (opened.session_id, opened.password.to_vec());
        drop(s);

        // The same session, resumed on a new connection.
        let mut s = raw::open(&server);
        let frame = hello(&mut s, &shaped(shape, session, &password)).expect("answered");
        let resumed = answer_of(&frame, shape);
        assert_eq!(resumed.session_id, session);
        assert_eq!(resumed.password, &password[..]);

        // An unknown session: refused in the same shape, then closed. (A wrong
        // password for a live session is refused too, but ZooKeeper first
        // closes the session's current connection; herd does not.)
        let mut other = raw::open(&server);
        let unknown = session ^ 0x00ff_ff00;
        let frame = hello(&mut other, &shaped(shape, unknown, &[9; 16])).expect("answered");
        let refused = answer_of(&frame, shape);
        assert_eq!((refused.session_id, refused.timeout_ms), (0, 0));
        assert_eq!(refused.password, &[0; 16]);
        raw::assert_closed(&mut other, "refused handshake");

        // The session works as any other: create, read back, ping, close.
        let path = format!("/old-client-{}", shape.map_or(2, i32::from));
        let mut body = Vec::new();
        body.string(&path);
        body.buffer(b"v");
        body.acls(&engine::acl::Acl::open_unsafe());
        body.i32(0);
        request(&mut s, 1, 1, &body);
        let (xid, _, err, body) = read_reply(&mut s);
        assert_eq!((xid, err), (1, 0), "create");
        assert_eq!(Reader::new(&body).string().unwrap(), path);
        let mut body = Vec::new();
        body.string(&path);
        body.bool(false);
        request(&mut s, 2, 4, &body);
        let (xid, _, err, body) = read_reply(&mut s);
        assert_eq!((xid, err), (2, 0), "getData");
        assert_eq!(Reader::new(&body).buffer().unwrap(), b"v");
        request(&mut s, -2, 11, &[]);
        assert_eq!(read_reply(&mut s).0, -2, "ping");
        request(&mut s, 3, -11, &[]);
        assert_eq!(read_reply(&mut s).0, 3, "closeSession");
        raw::assert_closed(&mut s, "closed session");
    }
}
