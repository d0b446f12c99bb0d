//! A blocking ZooKeeper client for one shell session: one TCP connection, one
//! session, one request in flight at a time (a shell waits for every answer).
//!
//! ```text
//!  call() ──frame──► socket ──► server
//!    ▲                             │
//!    └─ replies channel ◄── reader thread ◄──frames──┘
//!                              ├─ xid >= 0, -4 (auth): the caller's reply
//!                              ├─ xid -1: watch event ─► the event sink, at once
//!                              └─ xid -2: ping reply, dropped
//!  pinger thread: a ping every timeout/3 while the session lives
//! ```
//!
//! Frames and records are cut, encoded and decoded with herd's own codec
//! (`herd_proto`); this module only sends requests and routes replies. Because the server sends a transaction's notifications before the
//! reply of the request that caused them, and the reader thread hands both on
//! in arrival order, an event a command triggers is printed before the command
//! returns.
//!
//! A lost connection does not end the session: [`Client::reconnect`] opens it
//! again on the next address of the server list (as ZooKeeper's client moves
//! between an ensemble's members), with the session's id and password and the
//! last zxid it saw (a member behind that refuses it), and sends the
//! session's auth packets again. A server that answers with no session (it
//! expired) ends it. The shell sets its watches again (`setWatches2`).

use std::io::{self, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use engine::ErrorCode;
use herd_proto::frame::Frames;
use herd_proto::jute::{Malformed, Reader, Write};
use herd_proto::{opcode, xid, ConnectRequest, ConnectResponse, SetWatches};

/// How long the TCP connect and the handshake may take, per address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for its reply before failing with `OperationTimeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a socket write may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame accepted from the server: ZooKeeper's default
/// `jute.maxbuffer` (0xfffff) plus room for headers.
pub const FRAME_BYTES_MAX: usize = 0xfffff + 1024;
/// The most one socket read takes while frames are smaller.
const READ_BYTES_MAX: usize = 16 * 1024;

/// `Watcher.Event.KeeperState` values the shell prints.
pub mod state {
    pub const DISCONNECTED: i32 = 0;
    pub const SYNC_CONNECTED: i32 = 3;
    pub const AUTH_FAILED: i32 = 4;
    pub const CLOSED: i32 = 7;
    pub const EXPIRED: i32 = -112;
}

/// `Watcher.Event.EventType` values.
pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    pub const DATA_WATCH_REMOVED: i32 = 5;
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

/// A watch notification or a session state change (`WatchedEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub state: i32,
    pub kind: i32,
    /// `None` for state changes, printed as `null`.
    pub path: Option<String>,
}

impl WatchedEvent {
    pub fn session(state: i32) -> WatchedEvent {
        WatchedEvent {
            state,
            kind: event::NONE,
            path: None,
        }
    }
}

/// Where the reader thread delivers events, as they arrive.
pub type EventSink = Arc<dyn Fn(WatchedEvent) + Send + Sync>;

/// A reply frame after its header.
struct Frame {
    xid: i32,
    err: i32,
    body: Vec<u8>,
}

/// One session, on one connection at a time.
pub struct Client {
    link: Link,
    next_xid: i32,
    /// Every address of the server list, and the one connected to.
    servers: Vec<SocketAddr>,
    at: usize,
    session_id: i64,
    password: Vec<u8>,
    timeout_ms: i32,
    /// The newest zxid a reply carried.
    last_zxid: Arc<AtomicI64>,
    events: EventSink,
    /// The auth packets sent, to send again on a new connection.
    auths: Vec<(String, Vec<u8>)>,
}

/// One connection: its socket and threads.
struct Link {
    stream: Arc<Mutex<TcpStream>>,
    replies: mpsc::Receiver<Frame>,
    closing: Arc<AtomicBool>,
    /// Cleared by the reader thread when the connection ends.
    alive: Arc<AtomicBool>,
    /// Dropping it stops the pinger.
    stop_pinger: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// Why [`Client::reconnect`] failed.
#[derive(Debug)]
pub enum Reconnect {
    /// A server answered that the session is gone.
    Expired,
    /// No server could be reached.
    Unreachable(io::Error),
}

impl Client {
    /// Connects to the first address of `server` (a `host:port` list separated
    /// by commas) that accepts, opens a new session asking for `timeout_ms`, and
    /// starts the reader and pinger threads.
    pub fn connect(server: &str, timeout_ms: i32, events: EventSink) -> io::Result<Client> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no server address");
        let mut servers = Vec::new();
        for host in server.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            match host.to_socket_addrs() {
                Ok(a) => servers.extend(a),
                Err(e) => last = io::Error::new(e.kind(), format!("{host}: {e}")),
            }
        }
        let last_zxid = Arc::new(AtomicI64::new(0));
        let hello = ConnectRequest::new_session(timeout_ms);
        for (at, &addr) in servers.iter().enumerate() {
            match Link::open(addr, &hello, events.clone(), last_zxid.clone()) {
                Ok((link, session_id, password, timeout_ms)) => {
                    return Ok(Client {
                        link,
                        next_xid: 1,
                        servers,
                        at,
                        session_id,
                        password,
                        timeout_ms,
                        last_zxid,
                        events,
                        auths: Vec::new(),
                    })
                }
                Err(e) => last = io::Error::new(e.kind(), format!("{addr}: {e}")),
            }
        }
        Err(last)
    }

    /// Opens the session again on the next address that takes it, starting
    /// after the one it was on, and sends its auth packets again.
    pub fn reconnect(&mut self) -> Result<SocketAddr, Reconnect> {
        let hello = ConnectRequest {
            last_zxid_seen: self.last_zxid.load(Ordering::SeqCst),
            session_id: self.session_id,
            password: self.password.clone(),
            ..ConnectRequest::new_session(self.timeout_ms)
        };
        let mut last = io::Error::new(io::ErrorKind::NotConnected, "no server address");
        for step in 1..=self.servers.len() {
            let at = (self.at + step) % self.servers.len();
            let addr = self.servers[at];
            match Link::open(addr, &hello, self.events.clone(), self.last_zxid.clone()) {
                Ok((link, ..)) => {
                    self.link.closing.store(true, Ordering::SeqCst);
                    self.link = link;
                    self.at = at;
                    for (scheme, auth) in self.auths.clone() {
                        let _ = self.send_auth(&scheme, &auth);
                    }
                    return Ok(addr);
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Reconnect::Expired)
                }
                Err(e) => last = io::Error::new(e.kind(), format!("{addr}: {e}")),
            }
        }
        Err(Reconnect::Unreachable(last))
    }

    /// The newest zxid the session has seen.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::SeqCst)
    }

    /// Whether the connection is still up.
    pub fn is_alive(&self) -> bool {
        self.link.alive.load(Ordering::SeqCst)
    }

    /// Sends request `op` whose record `body` writes, and waits for its reply:
    /// the response record, or the error code of the reply header.
    pub fn call(&mut self, op: i32, body: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>, ErrorCode> {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        self.call_xid(xid, op, body)
    }

    /// `addauth`: the auth packet (reserved xid -4). Waits for the server's
    /// answer, so later requests run with the new identity.
    pub fn auth(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ErrorCode> {
        self.send_auth(scheme, auth)?;
        self.auths.push((scheme.to_owned(), auth.to_vec()));
        Ok(())
    }

    fn send_auth(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ErrorCode> {
        self.call_xid(xid::AUTH, opcode::AUTH, |b| {
            b.i32(0); // type
            b.string(scheme);
            b.buffer(auth);
        })
        .map(drop)
    }

    /// `setWatches2` (reserved xid -8): the session's watches, on a new
    /// connection; the server fires those whose node changed after
    /// `relative_zxid`.
    pub fn set_watches(&mut self, w: &SetWatches) -> Result<(), ErrorCode> {
        self.call_xid(xid::SET_WATCHES, opcode::SET_WATCHES2, |b| {
            b.i64(w.relative_zxid);
            for list in [&w.data, &w.exist, &w.child, &w.persistent, &w.recursive] {
                b.strings(list);
            }
        })
        .map(drop)
    }

    /// Closes the session (`closeSession`) and the connection.
    pub fn close(mut self) -> Result<(), ErrorCode> {
        self.link.closing.store(true, Ordering::SeqCst);
        let result = self.call(opcode::CLOSE_SESSION, |_| {}).map(drop);
        drop(self);
        result
    }

    fn call_xid(
        &mut self,
        xid: i32,
        op: i32,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Vec<u8>, ErrorCode> {
        let mut frame = Vec::with_capacity(64);
        herd_proto::request(&mut frame, xid, op, body);
        {
            let mut stream = self.link.stream.lock().unwrap_or_else(|e| e.into_inner());
            stream
                .write_all(&frame)
                .map_err(|_| ErrorCode::ConnectionLoss)?;
        }
        loop {
            match self.link.replies.recv_timeout(REQUEST_TIMEOUT) {
                // A reply to an earlier call that timed out: skip it.
                Ok(reply) if reply.xid != xid => continue,
                Ok(reply) if reply.err == 0 => return Ok(reply.body),
                Ok(reply) => return Err(ErrorCode::from_code(reply.err)),
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(ErrorCode::OperationTimeout),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(ErrorCode::ConnectionLoss),
            }
        }
    }
}

impl Link {
    /// Connects to `addr` and says `hello`; the session the server opened:
    /// (the link, its id, password and negotiated timeout).
    fn open(
        addr: SocketAddr,
        hello: &ConnectRequest,
        events: EventSink,
        last_zxid: Arc<AtomicI64>,
    ) -> io::Result<(Link, i64, Vec<u8>, i32)> {
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut bytes = Vec::with_capacity(48);
        hello.encode(&mut bytes);
        stream.write_all(&bytes)?;
        let mut incoming = Frames::new(FRAME_BYTES_MAX, READ_BYTES_MAX);
        let (session_id, password, negotiated_timeout_ms) =
            incoming.read_from(&mut stream, |answer| {
                ConnectResponse::opened(answer)
                    .map(|r| (r.session_id, r.password.to_vec(), r.timeout_ms))
            })??;
        // The server expires a session it hears nothing from for its timeout;
        // ZooKeeper's client gives up reading after two thirds of it.
        let idle = Duration::from_millis((negotiated_timeout_ms as u64 * 2 / 3).max(1000));
        stream.set_read_timeout(Some(idle))?;

        let closing = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicBool::new(true));
        let (reply_tx, replies) = mpsc::channel();
        let reader = {
            let stream = stream.try_clone()?;
            let (closing, alive) = (closing.clone(), alive.clone());
            std::thread::Builder::new()
                .name("herd-cli-reader".into())
                .spawn(move || {
                    read_loop(stream, incoming, reply_tx, events, closing, last_zxid);
                    alive.store(false, Ordering::SeqCst);
                })?
        };
        let stream = Arc::new(Mutex::new(stream));
        let (stop_pinger, stop) = mpsc::channel::<()>();
        let pinger = {
            let stream = stream.clone();
            let every = Duration::from_millis((negotiated_timeout_ms as u64 / 3).max(100));
            std::thread::Builder::new()
                .name("herd-cli-pinger".into())
                .spawn(move || ping_loop(stream, stop, every))?
        };
        let link = Link {
            stream,
            replies,
            closing,
            alive,
            stop_pinger: Some(stop_pinger),
            threads: vec![reader, pinger],
        };
        Ok((link, session_id, password, negotiated_timeout_ms))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.stop_pinger.take();
        let _ = self
            .stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown(Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn read_loop(
    mut stream: TcpStream,
    mut frames: Frames,
    replies: mpsc::Sender<Frame>,
    events: EventSink,
    closing: Arc<AtomicBool>,
    last_zxid: Arc<AtomicI64>,
) {
    let route = |frame: &[u8]| route(frame, &replies, &events, &last_zxid);
    while let Ok(Ok(true)) = frames.read_from(&mut stream, route) {}
    if !closing.load(Ordering::SeqCst) {
        events(WatchedEvent::session(state::DISCONNECTED));
    }
}

/// Hands one frame from the server to the caller or the event sink; false
/// once the client is gone.
fn route(
    frame: &[u8],
    replies: &mpsc::Sender<Frame>,
    events: &EventSink,
    last_zxid: &AtomicI64,
) -> Result<bool, Malformed> {
    let mut r = Reader::new(frame);
    let (xid, zxid, err) = (r.i32()?, r.i64()?, r.i32()?);
    if xid != xid::NOTIFICATION && zxid > 0 {
        last_zxid.fetch_max(zxid, Ordering::SeqCst);
    }
    match xid {
        xid::NOTIFICATION => {
            let (kind, state, path) = (r.i32()?, r.i32()?, r.string()?);
            events(WatchedEvent {
                state,
                kind,
                path: Some(path),
            });
        }
        xid::PING => {}
        _ => {
            if xid == xid::AUTH && err == ErrorCode::AuthFailed.code() {
                events(WatchedEvent::session(state::AUTH_FAILED));
            }
            let body = frame[16..].to_vec();
            return Ok(replies.send(Frame { xid, err, body }).is_ok());
        }
    }
    Ok(true)
}

fn ping_loop(stream: Arc<Mutex<TcpStream>>, stop: mpsc::Receiver<()>, every: Duration) {
    let mut ping = Vec::with_capacity(12);
    herd_proto::request(&mut ping, xid::PING, opcode::PING, |_| {});
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let mut stream = stream.lock().unwrap_or_else(|e| e.into_inner());
        if stream.write_all(&ping).is_err() {
            return;
        }
    }
}
