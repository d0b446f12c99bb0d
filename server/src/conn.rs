//! One client connection: the handshake, the request loop, and the session's
//! FIFO order (ZooKeeper's `ServerCnxn`).
//!
//! Two tasks per connection: the reader decodes frames and handles requests; the
//! writer flushes the outbox. Replies leave in request order: a read arriving
//! while the session has writes in flight waits behind them (so it sees them),
//! and a reply that could reflect a transaction the shard has not dispatched yet
//! is held until it has, so the transaction's notifications go out first.
//!
//! The watches a read asks for are armed when its reply is written. While the
//! reply is held they wait here, unarmed; a change that fires one meanwhile is
//! notified right after that reply, never before it.
//!
//! A malformed, truncated or oversized frame closes this connection only.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use engine::acl::{self, Id};
use engine::op::OpResult;
use engine::txn::WatchEvent;
use engine::{ErrorCode, SessionId, Zxid};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use herd_proto::frame::{Frames, NoFrame, HEADER_LEN};
use herd_proto::jute::{Malformed, Write as _};
use herd_proto::{opcode, xid, ConnectRequest, ConnectResponse, ReadOp, Request};

use crate::fourlw;
use crate::message::{ConnId, ToPipeline};
use crate::read::{self, InFlight};
use crate::shard::Shard;
use crate::stats::{ConnInfo, Shared};
use crate::watch::{ConnWatches, Registration, Unarmed};

/// Writes and syncs a session may have in flight before its reader pauses.
pub const MAX_OUTSTANDING_PER_CONN: u64 = 1000;

/// A request waiting for its turn to be answered.
enum Queued {
    /// A write or a sync (`sync_path`), answered when the pipeline replies.
    /// `unsent` holds it back while a read queued before it is unanswered, so
    /// that read sees the session's earlier writes and none of its later ones.
    Write {
        xid: i32,
        op: i32,
        kinds: Vec<i32>,
        sync_path: Option<String>,
        unsent: Option<ToPipeline>,
        started: Instant,
    },
    Local {
        xid: i32,
        request: Local,
        started: Instant,
    },
}

/// Requests answered on the shard.
enum Local {
    Read(ReadOp),
    Ping,
    /// A SASL token: Ok with a null token and zxid 0 (see [`Request::Sasl`]).
    Sasl,
    /// An opcode ZooKeeper does not know: `Unimplemented`, with zxid -1 (it
    /// never got one), then the connection closes, as in ZooKeeper.
    Unknown,
}

/// A frame written only once the shard has dispatched `Committed` up to
/// `need`: a held reply, numbered `reply`, or a notification of one of that
/// reply's watches (`need` 0), which follows it.
struct Held {
    reply: u64,
    need: Zxid,
    frame: Vec<u8>,
}

struct State {
    session: SessionId,
    auth: Arc<[Id]>,
    queue: VecDeque<Queued>,
    /// Frames waiting for `Committed`, in the order they leave.
    held: VecDeque<Held>,
    /// Replies held so far (numbers them).
    replies: u64,
    /// Watches of held replies, armed when their reply leaves.
    unarmed: Vec<Unarmed>,
}

struct Outbox {
    buf: Vec<u8>,
    waker: Option<Waker>,
    close: bool,
}

pub struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    fd: RawFd,
    pub info: Arc<ConnInfo>,
    state: RefCell<State>,
    out: RefCell<Outbox>,
    handshake: Semaphore,
    window: Semaphore,
    /// Set by client activity, cleared when the shard reports it to the tracker.
    pub active: Cell<bool>,
    /// Whether the client's handshake had the readOnly flag (clients of
    /// ZooKeeper 3.4 and older send none, and expect none back).
    read_only_flag: Cell<bool>,
}

/// A connection accepted on `shard`, entered in the shared tables; `None` if
/// it is over maxClientCnxns for its address (dropping the stream closes it).
pub fn open(shard: &Shard, id: ConnId, stream: &TcpStream) -> Option<Rc<Conn>> {
    let peer = stream.peer_addr().ok()?;
    if !shard.shared.admit(peer.ip(), shard.config.max_client_cnxns) {
        return None;
    }
    let _ = stream.set_nodelay(true);
    let conn = Rc::new(Conn {
        id,
        peer,
        fd: stream.as_raw_fd(),
        info: Arc::new(ConnInfo::new(peer)),
        state: RefCell::new(State {
            session: 0,
            auth: vec![Id::new("ip", &peer.ip().to_string())].into(),
            queue: VecDeque::new(),
            held: VecDeque::new(),
            replies: 0,
            unarmed: Vec::new(),
        }),
        out: RefCell::new(Outbox {
            buf: Vec::new(),
            waker: None,
            close: false,
        }),
        handshake: Semaphore::new(0),
        window: Semaphore::new(MAX_OUTSTANDING_PER_CONN),
        active: Cell::new(false),
        read_only_flag: Cell::new(true),
    });
    shard
        .shared
        .conns
        .lock()
        .expect("conns lock")
        .insert(id, conn.info.clone());
    Some(conn)
}

/// Serves an [`open`] connection until it closes, then drops its watches and
/// tells the pipeline its session lost it.
pub async fn serve(shard: &Shard, conn: &Rc<Conn>, stream: TcpStream) {
    let (reader, writer) = futures_lite::io::split(stream);
    let writing = glommio::spawn_local(write_loop(conn.clone(), writer, shard.shared.clone()));
    let _ = read_loop(shard, conn, reader).await;
    conn.close();
    writing.await;
    shard.watches.borrow_mut().remove_conn(conn.id);
    let session = conn.state.borrow().session;
    if session != 0 {
        shard.to_pipeline.send(ToPipeline::Disconnected {
            session,
            conn: conn.id,
        });
    }
}

/// Receives until `frames` buffers at least `n` bytes; false at end of stream.
async fn fill(
    frames: &mut Frames,
    rd: &mut (impl AsyncRead + Unpin),
    n: usize,
) -> io::Result<bool> {
    while frames.buffered().len() < n {
        let got = rd.read(frames.spare(n)).await?;
        if got == 0 {
            return Ok(false);
        }
        frames.received(got);
    }
    Ok(true)
}

/// The next frame, decoded by `decode`; `None` at end of stream between
/// frames. A frame over `jute.maxbuffer` is an error: it closes the connection.
async fn next<T>(
    frames: &mut Frames,
    rd: &mut (impl AsyncRead + Unpin),
    decode: impl FnOnce(&[u8]) -> T,
) -> io::Result<Option<T>> {
    loop {
        match frames.take() {
            Ok(frame) => return Ok(Some(decode(frame))),
            Err(NoFrame::Incomplete { need }) => {
                if !fill(frames, rd, need).await? {
                    return match frames.buffered() {
                        [] => Ok(None),
                        _ => Err(NoFrame::Incomplete { need }.into()),
                    };
                }
            }
            Err(too_large) => return Err(too_large.into()),
        }
    }
}

fn malformed(_: Malformed) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed request")
}

async fn read_loop(
    shard: &Shard,
    conn: &Rc<Conn>,
    mut rd: impl AsyncRead + Unpin,
) -> io::Result<()> {
    let mut frames = Frames::new(shard.config.max_buffer_bytes, 16 * 1024);
    if !fill(&mut frames, &mut rd, HEADER_LEN).await? {
        return Ok(());
    }
    // Packets are counted as ZooKeeper counts them: the handshake is one, and
    // so is every notification sent; a four-letter word counts one each way
    // as it arrives, so `srvr` reports itself.
    shard.counters.received.fetch_add(1, Relaxed);
    conn.info.received.fetch_add(1, Relaxed);
    if let Some(word) = fourlw::word(&frames.buffered()[..HEADER_LEN]) {
        shard.counters.sent.fetch_add(1, Relaxed);
        let text = fourlw::answer(&shard.config, &shard.shared, &shard.tree, word).await;
        conn.push_raw(text.as_bytes());
        return Ok(());
    }
    let Some(request) = next(&mut frames, &mut rd, ConnectRequest::decode).await? else {
        return Ok(());
    };
    let request = request.map_err(malformed)?;
    conn.read_only_flag.set(request.read_only.is_some());
    if request.last_zxid_seen > shard.tree.last_zxid() {
        // The client has seen a newer state than this server has: it must go elsewhere.
        return Ok(());
    }
    // A new session is a committed transaction: ZooKeeper counts its latency
    // as an update's (a resumed one is not committed, and not counted).
    let (started, creates) = (Instant::now(), request.session_id == 0);
    shard.to_pipeline.send(ToPipeline::Connect {
        shard: shard.index,
        conn: conn.id,
        request,
    });
    let _ = conn.handshake.acquire(1).await;
    if conn.state.borrow().session == 0 {
        return Ok(());
    }
    if creates {
        shard.record_latency(started, true);
    }
    loop {
        let Some(request) = next(&mut frames, &mut rd, herd_proto::decode_request).await? else {
            return Ok(());
        };
        let (xid, op, request) = request.map_err(malformed)?;
        conn.handle(shard, xid, op, request).await;
        if conn.out.borrow().close {
            return Ok(());
        }
    }
}

async fn write_loop(
    conn: Rc<Conn>,
    mut wr: impl futures_lite::io::AsyncWrite + Unpin,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::new();
    loop {
        let closing = poll_fn(|cx| {
            let mut out = conn.out.borrow_mut();
            if !out.buf.is_empty() {
                std::mem::swap(&mut out.buf, &mut buf);
                Poll::Ready(false)
            } else if out.close {
                Poll::Ready(true)
            } else {
                out.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if closing || wr.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = wr.flush().await;
    // The connection leaves the shared tables before its peer can see it close
    // (ZooKeeper too removes a connection before closing its socket): a client
    // that reconnects or asks `srvr` right away is neither refused by
    // maxClientCnxns nor counted twice.
    shared.conns.lock().expect("conns lock").remove(&conn.id);
    shared.release(conn.peer.ip());
    // SAFETY: `fd` belongs to the stream both halves share, which is still open
    // (the reader holds its half); shutdown only ends I/O on it, so the reader's
    // pending read returns and the connection winds down.
    unsafe {
        libc::shutdown(conn.fd, libc::SHUT_RDWR);
    }
}

impl Conn {
    pub fn session(&self) -> SessionId {
        self.state.borrow().session
    }

    /// Closes the connection once everything queued is written.
    pub fn close(&self) {
        let mut out = self.out.borrow_mut();
        out.close = true;
        if let Some(w) = out.waker.take() {
            w.wake();
        }
    }

    fn push_raw(&self, bytes: &[u8]) {
        let mut out = self.out.borrow_mut();
        out.buf.extend_from_slice(bytes);
        if let Some(w) = out.waker.take() {
            w.wake();
        }
    }

    /// Writes a frame straight to the outbox.
    fn emit(&self, shard: &Shard, encode: impl FnOnce(&mut Vec<u8>)) {
        shard.counters.sent.fetch_add(1, Relaxed);
        let mut out = self.out.borrow_mut();
        encode(&mut out.buf);
        if let Some(w) = out.waker.take() {
            w.wake();
        }
        self.info.sent.fetch_add(1, Relaxed);
    }

    /// Sends a reply in request order. `encode` appends the frame and returns the
    /// zxid it may reflect; unless the shard has dispatched that transaction (and
    /// so its notifications), the frame is moved aside and held until it has.
    fn send_reply(&self, shard: &Shard, encode: impl FnOnce(&mut Vec<u8>) -> Zxid) {
        let mut out = self.out.borrow_mut();
        let start = out.buf.len();
        let need = encode(&mut out.buf);
        self.place(shard, &mut out, start, need, Vec::new());
    }

    /// Sends or holds the reply written at `out.buf[start..]`; `watches` are the
    /// registrations the request asked for, armed when the reply leaves.
    fn place(
        &self,
        shard: &Shard,
        out: &mut Outbox,
        start: usize,
        need: Zxid,
        watches: Vec<Registration>,
    ) {
        shard.counters.sent.fetch_add(1, Relaxed);
        let mut state = self.state.borrow_mut();
        if state.held.is_empty() && need <= shard.seen_through() {
            self.info.sent.fetch_add(1, Relaxed);
            if let Some(w) = out.waker.take() {
                w.wake();
            }
            if !watches.is_empty() {
                let mut table = shard.watches.borrow_mut();
                for r in watches {
                    table.add(self.id, r.kind, &r.path);
                }
            }
        } else {
            let frame = out.buf.split_off(start);
            if state.held.is_empty() {
                shard.hold(self.id);
            }
            state.replies += 1;
            let reply = state.replies;
            state.held.push_back(Held { reply, need, frame });
            state
                .unarmed
                .extend(watches.into_iter().map(|registration| Unarmed {
                    reply,
                    registration,
                }));
        }
    }

    /// Writes held frames now covered by `seen`, arming the watches of each
    /// reply that leaves; true if some still wait.
    pub fn release(&self, shard: &Shard, seen: Zxid) -> bool {
        let mut state = self.state.borrow_mut();
        while state.held.front().is_some_and(|h| h.need <= seen) {
            let held = state.held.pop_front().expect("front exists");
            self.push_raw(&held.frame);
            self.info.sent.fetch_add(1, Relaxed);
            if state.unarmed.iter().any(|u| u.reply == held.reply) {
                let mut table = shard.watches.borrow_mut();
                state.unarmed.retain(|u| {
                    let mine = u.reply == held.reply;
                    if mine {
                        let r = &u.registration;
                        table.add(self.id, r.kind, &r.path);
                    }
                    !mine
                });
            }
        }
        !state.held.is_empty()
    }

    /// Fires the unarmed watches `event` (at `zxid`) triggers: one notification,
    /// held right after the last reply whose watch fired, so it follows every
    /// reply that set one of them. One-shot watches are consumed.
    pub fn fire_unarmed(&self, shard: &Shard, zxid: Zxid, event: &WatchEvent) {
        let mut state = self.state.borrow_mut();
        if state.unarmed.is_empty() {
            return;
        }
        let mut last = None;
        state.unarmed.retain(|u| {
            let r = &u.registration;
            if r.after < zxid && r.kind.fires_on(&r.path, event) {
                last = last.max(Some(u.reply));
                !r.kind.is_one_shot()
            } else {
                true
            }
        });
        if let Some(reply) = last {
            shard.counters.sent.fetch_add(1, Relaxed);
            let mut frame = Vec::new();
            herd_proto::notification(&mut frame, zxid, event.kind as i32, &event.path);
            let at = state
                .held
                .iter()
                .rposition(|h| h.reply == reply)
                .expect("an unarmed watch's reply is held")
                + 1;
            state.held.insert(
                at,
                Held {
                    reply,
                    need: 0,
                    frame,
                },
            );
        }
    }

    pub fn notify(&self, shard: &Shard, zxid: Zxid, event: &WatchEvent) {
        self.emit(shard, |out| {
            herd_proto::notification(out, zxid, event.kind as i32, &event.path)
        });
    }

    pub fn on_connected(
        &self,
        shard: &Shard,
        session: SessionId,
        timeout_ms: i32,
        password: [u8; 16],
    ) {
        self.state.borrow_mut().session = session;
        self.info.session.store(session, Relaxed);
        self.info.timeout_ms.store(i64::from(timeout_ms), Relaxed);
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: session,
            password: &password,
            read_only: self.read_only_flag.get().then_some(false),
        };
        self.emit(shard, |out| response.encode(out));
        if session == 0 {
            self.close();
        }
        self.handshake.signal(1);
    }

    async fn handle(&self, shard: &Shard, xid: i32, op: i32, request: Request) {
        let started = Instant::now();
        shard.counters.received.fetch_add(1, Relaxed);
        self.info.received.fetch_add(1, Relaxed);
        let session = self.session();
        if !self.active.replace(true) {
            shard.touch(self.id);
        }
        match request {
            Request::Auth { scheme, auth } => self.authenticate(shard, xid, &scheme, &auth),
            Request::Write(write, kinds) => {
                let _ = self.window.acquire(1).await;
                let auth = self.state.borrow().auth.clone();
                let msg = ToPipeline::Write {
                    shard: shard.index,
                    conn: self.id,
                    xid,
                    session,
                    auth,
                    op: write,
                };
                self.enqueue_write(
                    shard,
                    Queued::Write {
                        xid,
                        op,
                        kinds,
                        sync_path: None,
                        unsent: Some(msg),
                        started,
                    },
                );
            }
            Request::Sync(path) => {
                let _ = self.window.acquire(1).await;
                let msg = ToPipeline::Sync {
                    shard: shard.index,
                    conn: self.id,
                    xid,
                    session,
                };
                let sync_path = Some(path);
                self.enqueue_write(
                    shard,
                    Queued::Write {
                        xid,
                        op,
                        kinds: Vec::new(),
                        sync_path,
                        unsent: Some(msg),
                        started,
                    },
                );
            }
            Request::Read(read) => self.local(shard, xid, Local::Read(read), started),
            Request::Ping => self.local(shard, xid, Local::Ping, started),
            Request::Sasl => self.local(shard, xid, Local::Sasl, started),
            Request::Unknown => self.local(shard, xid, Local::Unknown, started),
        }
    }

    fn enqueue_write(&self, shard: &Shard, write: Queued) {
        self.info.queued.fetch_add(1, Relaxed);
        self.state.borrow_mut().queue.push_back(write);
        self.advance(shard);
    }

    /// Moves the session's queue forward: answers reads whose writes are done and
    /// sends writes that no unanswered read precedes. A read that must wait for
    /// the next `Committed` ([`InFlight`]) stays first in the queue, and the
    /// shard calls this again once it has dispatched one.
    pub fn advance(&self, shard: &Shard) {
        loop {
            let front = {
                let mut state = self.state.borrow_mut();
                match state.queue.front() {
                    Some(Queued::Local { .. }) => state.queue.pop_front(),
                    _ => None,
                }
            };
            let Some(Queued::Local {
                xid,
                request,
                started,
            }) = front
            else {
                break;
            };
            if !self.answer(shard, xid, &request, started) {
                self.wait_for_commit(shard, xid, request, started);
                return;
            }
        }
        let mut to_send = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            for item in state.queue.iter_mut() {
                match item {
                    Queued::Local { .. } => break,
                    Queued::Write { unsent, .. } => to_send.extend(unsent.take()),
                }
            }
        }
        for msg in to_send {
            shard.to_pipeline.send(msg);
        }
    }

    fn local(&self, shard: &Shard, xid: i32, request: Local, started: Instant) {
        let idle = self.state.borrow().queue.is_empty();
        if !idle {
            self.state.borrow_mut().queue.push_back(Queued::Local {
                xid,
                request,
                started,
            });
        } else if !self.answer(shard, xid, &request, started) {
            self.wait_for_commit(shard, xid, request, started);
        }
    }

    /// Puts a read that could not be answered yet back first in the queue.
    fn wait_for_commit(&self, shard: &Shard, xid: i32, request: Local, started: Instant) {
        self.state.borrow_mut().queue.push_front(Queued::Local {
            xid,
            request,
            started,
        });
        shard.park(self.id);
    }

    /// Answers a request on the shard; false if it must wait for the next
    /// `Committed` (nothing was sent).
    fn answer(&self, shard: &Shard, xid: i32, request: &Local, started: Instant) -> bool {
        match request {
            Local::Ping => {
                // The reply names the last zxid applied (clients take it as
                // seen): as ZooKeeper's, it follows every notification of
                // the transactions up to there.
                let zxid = shard.tree.last_zxid();
                self.send_reply(shard, |out| {
                    herd_proto::reply(out, xid::PING, zxid, ErrorCode::Ok, |_| {});
                    zxid
                });
            }
            Local::Sasl => self.send_reply(shard, |out| {
                herd_proto::reply(out, xid, 0, ErrorCode::Ok, |out| out.data(None));
                0
            }),
            Local::Unknown => {
                self.send_reply(shard, |out| {
                    herd_proto::reply(out, xid, -1, ErrorCode::Unimplemented, |_| {});
                    0
                });
                // ZooKeeper closes the connection after answering (the session stays).
                self.close();
            }
            Local::Read(read) => {
                let (session, auth) = {
                    let state = self.state.borrow();
                    (state.session, state.auth.clone())
                };
                let mut out = self.out.borrow_mut();
                let start = out.buf.len();
                let answered = {
                    let mut state = self.state.borrow_mut();
                    let mut table = shard.watches.borrow_mut();
                    let mut watches = ConnWatches {
                        conn: self.id,
                        table: &mut table,
                        unarmed: &mut state.unarmed,
                    };
                    let context = read::Context {
                        tree: &shard.tree,
                        seen_through: shard.seen_through(),
                    };
                    read::answer(
                        context,
                        session,
                        &auth,
                        xid,
                        read,
                        &mut out.buf,
                        &mut watches,
                    )
                };
                match answered {
                    Ok(added) => {
                        // Whatever the read saw was committed at or before this zxid.
                        let need = shard.tree.applying_zxid();
                        self.place(shard, &mut out, start, need, added);
                    }
                    Err(InFlight) => return false,
                }
            }
        }
        shard.record_latency(started, false);
        true
    }

    pub fn on_reply(&self, shard: &Shard, xid: i32, zxid: Zxid, result: OpResult) {
        let front = self.state.borrow_mut().queue.pop_front();
        let Some(Queued::Write {
            xid: expected,
            op,
            kinds,
            sync_path,
            started,
            ..
        }) = front
        else {
            unreachable!("a reply arrives only for a queued write");
        };
        debug_assert_eq!(xid, expected, "replies come back in request order");
        self.window.signal(1);
        self.info.queued.fetch_sub(1, Relaxed);
        self.info.last_zxid.store(zxid, Relaxed);
        let err = result.error_code();
        self.send_reply(shard, |out| {
            herd_proto::reply(out, xid, zxid, err, |out| {
                if let Some(path) = &sync_path {
                    out.string(path);
                } else if err == ErrorCode::Ok || op == opcode::MULTI {
                    herd_proto::write_result(out, op, &kinds, &result);
                }
            });
            zxid
        });
        shard.record_latency(started, true);
        if op == opcode::CLOSE_SESSION {
            self.close();
            return;
        }
        self.advance(shard);
    }

    /// `addauth`: the reply echoes the request's xid (-4 from most clients).
    fn authenticate(&self, shard: &Shard, xid: i32, scheme: &str, auth: &[u8]) {
        let id = match scheme {
            "digest" => Some(Id::new(
                "digest",
                &acl::digest(&String::from_utf8_lossy(auth)),
            )),
            "ip" => Some(Id::new("ip", &self.peer.ip().to_string())),
            _ => None,
        };
        let Some(id) = id else {
            shard.counters.auth_failed.fetch_add(1, Relaxed);
            self.send_reply(shard, |out| {
                herd_proto::reply(out, xid, 0, ErrorCode::AuthFailed, |_| {});
                0
            });
            self.close();
            return;
        };
        let is_super =
            shard.config.super_digest.as_deref() == Some(id.id.as_str()) && id.scheme == "digest";
        {
            let mut state = self.state.borrow_mut();
            let mut ids: Vec<Id> = state.auth.to_vec();
            if !ids.contains(&id) {
                ids.push(id);
            }
            if is_super {
                ids.push(Id::new("super", ""));
            }
            state.auth = ids.into();
        }
        self.send_reply(shard, |out| {
            herd_proto::reply(out, xid, 0, ErrorCode::Ok, |_| {});
            0
        });
    }
}
