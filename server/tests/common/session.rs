//! A session over raw frames through a [`Proxy`], so that its connection can
//! be cut as a network failure would and the session resumed on a new one, as
//! a client does: handshakes in either shape (with or without the readOnly
//! flag), and the session id, password and last zxid seen kept across them.
#![allow(dead_code)]

use std::net::TcpStream;

use herd_proto::{ConnectRequest, ConnectResponse};

use super::proxy::Proxy;
use super::raw;

pub struct RawSession {
    pub proxy: Proxy,
    pub stream: TcpStream,
    pub id: i64,
    pub password: Vec<u8>,
    /// Whether this session's handshakes carry the readOnly flag.
    pub read_only_flag: bool,
    /// The zxid of the latest reply read, which a resumption sends.
    pub last_zxid: i64,
    timeout_ms: i32,
}

impl RawSession {
    /// A new session on `addr`, through a proxy of its own. `what` names the
    /// session in failures.
    pub fn open(addr: &str, read_only_flag: bool, timeout_ms: i32, what: &str) -> RawSession {
        let proxy = Proxy::start(addr);
        let stream = raw::open_addr(&proxy.addr);
        let mut session = RawSession {
            proxy,
            stream,
            id: 0,
            password: vec![0; 16],
            read_only_flag,
            last_zxid: 0,
            timeout_ms,
        };
        session.handshake(what);
        session
    }

    /// Ends the connection at the proxy, on both sides; the server keeps the session.
    pub fn cut(&self) {
        self.proxy.cut();
    }

    /// The session on a new connection (what the old one still had on its way is lost).
    pub fn resume(&mut self, what: &str) {
        self.stream = raw::open_addr(&self.proxy.addr);
        self.handshake(what);
    }

    /// Sends a ConnectRequest for this session (a new one while it has none)
    /// and checks the answer: in the shape of the request, for the same session.
    fn handshake(&mut self, what: &str) {
        let request = ConnectRequest {
            last_zxid_seen: self.last_zxid,
            session_id: self.id,
            password: self.password.clone(),
            read_only: self.read_only_flag.then_some(false),
            ..ConnectRequest::new_session(self.timeout_ms)
        };
        let mut out = Vec::new();
        request.encode(&mut out);
        std::io::Write::write_all(&mut self.stream, &out).expect("send ConnectRequest");
        let frame = raw::read_frame(&mut self.stream).expect("a ConnectResponse");
        let response = ConnectResponse::decode(&frame).expect("a whole ConnectResponse");
        assert_eq!(
            response.read_only.is_some(),
            self.read_only_flag,
            "{what}: answered in the client's shape"
        );
        assert!(response.session_id != 0, "{what}: session refused");
        if self.id != 0 {
            assert_eq!(response.session_id, self.id, "{what}: the same session");
        }
        self.id = response.session_id;
        self.password = response.password.to_vec();
    }
}
