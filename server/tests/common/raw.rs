//! Raw jute over blocking `std::net::TcpStream`s (with read timeouts, so a
//! test fails instead of hanging), for what a client library will not send:
//! malformed frames, hand-made handshakes, setWatches, watch removal.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use herd_proto::frame;
use herd_proto::jute::{Reader, Write};
use herd_proto::{ConnectRequest, ConnectResponse};

/// How long a raw read may wait before the test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The reply to a handshake: `(timeout_ms, session_id, password)`.
pub type Handshake = (i32, i64, Vec<u8>);

pub fn open(server: &super::TestServer) -> TcpStream {
    open_addr(&server.addr)
}

pub fn open_addr(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes one length-prefixed frame holding `payload`.
pub fn send_frame(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::new();
    let at = frame::begin(&mut out);
    out.extend_from_slice(payload);
    frame::end(&mut out, at);
    stream.write_all(&out)
}

/// Reads one frame's payload; `None` if the server closed the connection.
/// Panics on a read timeout.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    if !read_exact_or_closed(stream, &mut len) {
        return None;
    }
    let len = i32::from_be_bytes(len);
    assert!(len >= 0, "server sent a negative frame length {len}");
    let mut payload = vec![0u8; len as usize];
    if !read_exact_or_closed(stream, &mut payload) {
        return None;
    }
    Some(payload)
}

/// False when the stream ended (EOF or reset) before `buf` was filled.
pub fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) => panic!("read timed out after {READ_TIMEOUT:?}"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Asserts the server closes the connection without sending anything more.
pub fn assert_closed(stream: &mut TcpStream, what: &str) {
    assert_closed_within(stream, what, READ_TIMEOUT);
}

/// [`assert_closed`], waiting up to `wait` for the close.
pub fn assert_closed_within(stream: &mut TcpStream, what: &str, wait: Duration) {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("{what}: expected the connection to close, got {n} bytes"),
            Err(e) if is_timeout(&e) => {
                panic!("{what}: connection still open after {wait:?}")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return, // reset: closed too
        }
    }
}

/// Sends a ConnectRequest; returns the ConnectResponse, or `None` if the
/// server closed the connection instead of answering.
pub fn handshake(
    stream: &mut TcpStream,
    timeout_ms: i32,
    session_id: i64,
    password: &[u8],
) -> Option<Handshake> {
    let request = ConnectRequest {
        session_id,
        password: password.to_vec(),
        ..ConnectRequest::new_session(timeout_ms)
    };
    let mut hello = Vec::new();
    request.encode(&mut hello);
    stream.write_all(&hello).ok()?;
    let frame = read_frame(stream)?;
    let response = ConnectResponse::decode(&frame).expect("a whole ConnectResponse");
    assert_eq!(response.protocol_version, 0, "protocolVersion");
    assert_eq!(response.read_only, Some(false), "readOnly");
    Some((
        response.timeout_ms,
        response.session_id,
        response.password.to_vec(),
    ))
}

/// A raw connection with a new session.
pub fn raw_session(server: &super::TestServer, timeout_ms: i32) -> (TcpStream, Handshake) {
    let mut stream = open(server);
    let reply = handshake(&mut stream, timeout_ms, 0, &[0; 16]).expect("handshake accepted");
    assert_ne!(reply.1, 0, "new session id");
    assert_eq!(reply.2.len(), 16, "password length");
    (stream, reply)
}

/// Reads a reply header: `(xid, zxid, err)` and the body.
pub fn read_reply(stream: &mut TcpStream) -> (i32, i64, i32, Vec<u8>) {
    let frame = read_frame(stream).expect("a reply, not a closed connection");
    let mut r = Reader::new(&frame);
    let xid = r.i32().expect("xid");
    let zxid = r.i64().expect("zxid");
    let err = r.i32().expect("err");
    (xid, zxid, err, frame[16..].to_vec())
}

/// Whether a frame starts arriving within `wait` (false: nothing came).
/// Panics if the connection closes.
pub fn readable_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut first = [0u8; 1];
    let got = stream.peek(&mut first);
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    match got {
        Ok(n) if n > 0 => true,
        Ok(_) => panic!("connection closed"),
        Err(e) if is_timeout(&e) => false,
        Err(e) => panic!("read: {e}"),
    }
}

/// Reads a reply header and body like [`read_reply`], waiting at most `wait`;
/// `None` if nothing arrived in that time.
pub fn try_read_reply(stream: &mut TcpStream, wait: Duration) -> Option<(i32, i64, i32, Vec<u8>)> {
    readable_within(stream, wait).then(|| read_reply(stream))
}

/// Sends a 4-letter word and reads the whole answer.
pub fn four_letter_word(addr: &str, word: &str) -> String {
    let mut stream = open_addr(addr);
    stream.write_all(word.as_bytes()).unwrap();
    let mut text = Vec::new();
    match stream.read_to_end(&mut text) {
        Ok(_) => {}
        Err(e) if is_timeout(&e) => panic!("{word}: no end of answer after {READ_TIMEOUT:?}"),
        Err(e) => panic!("{word}: {e}"),
    }
    String::from_utf8(text).expect("utf-8 answer")
}

/// Sends a request frame: `RequestHeader {xid, op}` then `body`.
pub fn request(stream: &mut TcpStream, xid: i32, op: i32, body: &[u8]) {
    let mut payload = Vec::new();
    payload.i32(xid);
    payload.i32(op);
    payload.extend_from_slice(body);
    send_frame(stream, &payload).expect("send request");
}

/// What the server sent next: a notification or a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// `(event type, path)` of a watch notification.
    Event(i32, String),
    /// `(xid, err)` of a reply.
    Reply(i32, i32),
}

/// Reads the next frame as a notification or a reply header.
pub fn next_incoming(stream: &mut TcpStream) -> Incoming {
    let (xid, _zxid, err, body) = read_reply(stream);
    if xid == -1 {
        let mut r = Reader::new(&body);
        let kind = r.i32().expect("event type");
        assert_eq!(r.i32(), Ok(3), "state SyncConnected");
        Incoming::Event(kind, r.string().expect("path"))
    } else {
        Incoming::Reply(xid, err)
    }
}
