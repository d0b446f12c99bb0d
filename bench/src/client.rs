//! A small pipelining ZooKeeper client on tokio: one TCP connection, one
//! session.
//!
//! ```text
//!  call() ──► [xid -> reply slot] ──frame──► writer task ──batched writes──► server
//!                     ▲                        (pings when idle)
//!                     └── reader task ◄──frames── server
//!                           ├─ xid >= 0: completes the pending call
//!                           ├─ xid -1:  watch event ─► events channel (stamped on arrival)
//!                           └─ xid -2:  ping reply, dropped
//! ```
//!
//! Any number of calls may be in flight; the server answers a session's
//! requests in order, and the xid map pairs each reply with its caller. When
//! the connection closes every pending call fails with `ConnectionLoss`; a call
//! with no reply within [`REQUEST_TIMEOUT`] fails with `OperationTimeout`. No
//! reconnection: a benchmark session that loses its connection is done.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_proto::frame::{Frames, NoFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::proto::{
    self, code, opcode, xid, ConnectRequest, ConnectResponse, Malformed, Reader, Write, WriteExt,
};

/// How long a call waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the TCP connect and handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame accepted from the server (ZooKeeper's default `jute.maxbuffer`
/// plus room for the header).
pub const FRAME_BYTES_MAX: usize = 1024 * 1024 + 1024;
/// The most one socket read takes while frames are smaller.
const READ_BYTES_MAX: usize = 64 * 1024;
/// The writer coalesces queued frames into one write of at most this many bytes.
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;

/// A successful reply: the header's zxid and the response record.
#[derive(Debug)]
pub struct Reply {
    pub zxid: i64,
    pub body: Vec<u8>,
}

/// A failed call: a `KeeperException.Code` (negative).
pub type Code = i32;

/// A watch notification, stamped when the reader task decoded it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: i32,
    pub path: String,
    pub received: Instant,
}

type Pending = HashMap<i32, oneshot::Sender<Result<Reply, Code>>>;

struct Outbox {
    next_xid: i32,
    /// `None` once the connection is gone.
    pending: Option<Pending>,
}

/// One session on one connection.
pub struct Client {
    session_id: i64,
    outbox: Arc<Mutex<Outbox>>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Client {
    /// Connects, performs the handshake (`ConnectRequest` with a fresh session)
    /// and starts the reader and writer tasks. Watch events go to `events` when
    /// given, and are dropped otherwise.
    pub async fn connect(
        addr: SocketAddr,
        session_timeout_ms: i32,
        events: Option<mpsc::UnboundedSender<WatchEvent>>,
    ) -> io::Result<Client> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (mut read, mut write) = stream.into_split();
        let mut incoming = Frames::new(FRAME_BYTES_MAX, READ_BYTES_MAX);

        let mut hello = Vec::with_capacity(64);
        ConnectRequest::new_session(session_timeout_ms).encode(&mut hello);
        write.write_all(&hello).await?;
        let opened = next_frame(&mut read, &mut incoming, |answer| {
            ConnectResponse::opened(answer).map(|r| (r.timeout_ms, r.session_id))
        });
        let (negotiated_ms, session_id) =
            tokio::time::timeout(CONNECT_TIMEOUT, opened)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))???;

        let outbox = Arc::new(Mutex::new(Outbox {
            next_xid: 1,
            pending: Some(HashMap::new()),
        }));
        let (frames, queue) = mpsc::unbounded_channel();
        let ping_every = Duration::from_millis((negotiated_ms / 3).max(100) as u64);
        let tasks = vec![
            tokio::spawn(write_loop(write, queue, ping_every)),
            tokio::spawn(read_loop(read, incoming, outbox.clone(), events)),
        ];
        Ok(Client {
            session_id,
            outbox,
            frames,
            tasks,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// Sends a request and returns a future of its reply; `body` writes the
    /// request record after the header. Requests leave in call order.
    pub fn send(
        &self,
        op: i32,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> impl std::future::Future<Output = Result<Reply, Code>> {
        let (tx, rx) = oneshot::channel();
        let mut frame = Vec::with_capacity(64);
        herd_proto::request(&mut frame, 0, op, body); // the xid is filled in below
        {
            let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
            let xid = outbox.next_xid;
            outbox.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
            frame[4..8].copy_from_slice(&xid.to_be_bytes());
            // The frame is queued under the lock, so xids go out in order.
            match &mut outbox.pending {
                Some(pending) if self.frames.send(frame).is_ok() => {
                    pending.insert(xid, tx);
                }
                _ => {
                    let _ = tx.send(Err(code::CONNECTION_LOSS));
                }
            }
        }
        async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(code::CONNECTION_LOSS),
                Err(_) => Err(code::OPERATION_TIMEOUT),
            }
        }
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> Result<Reply, Code> {
        self.send(opcode::GET_DATA, |b| {
            b.string(path);
            b.bool(watch);
        })
        .await
    }

    /// setData; returns the new data version.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<i32, Code> {
        let reply = self
            .send(opcode::SET_DATA, |b| {
                b.string(path);
                b.buffer(data);
                b.i32(version);
            })
            .await?;
        Reader::new(&reply.body)
            .stat()
            .map(|s| s.version)
            .map_err(|_| code::CONNECTION_LOSS)
    }

    /// create with an open ACL; returns the created path.
    pub async fn create(&self, path: &str, data: &[u8], mode: i32) -> Result<String, Code> {
        let reply = self
            .send(opcode::CREATE, |b| {
                b.string(path);
                b.buffer(data);
                b.open_acl();
                b.i32(mode);
            })
            .await?;
        Reader::new(&reply.body)
            .string()
            .map_err(|_| code::CONNECTION_LOSS)
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Code> {
        self.send(opcode::DELETE, |b| {
            b.string(path);
            b.i32(version);
        })
        .await
        .map(drop)
    }

    pub async fn exists(&self, path: &str, watch: bool) -> Result<Reply, Code> {
        self.send(opcode::EXISTS, |b| {
            b.string(path);
            b.bool(watch);
        })
        .await
    }

    pub async fn get_children(&self, path: &str, watch: bool) -> Result<Vec<String>, Code> {
        let reply = self
            .send(opcode::GET_CHILDREN, |b| {
                b.string(path);
                b.bool(watch);
            })
            .await?;
        Reader::new(&reply.body)
            .strings()
            .map_err(|_| code::CONNECTION_LOSS)
    }

    /// A multi transaction; fails with the first failed op's code.
    pub async fn multi(&self, ops: &[proto::MultiOp<'_>]) -> Result<(), Code> {
        let reply = self
            .send(opcode::MULTI, |b| proto::encode_multi(b, ops))
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(code) => return Err(code),
        };
        match proto::multi_error(&reply.body) {
            Ok(code::OK) => Ok(()),
            Ok(err) => Err(err),
            Err(_) => Err(code::CONNECTION_LOSS),
        }
    }

    /// Closes the session (`closeSession`) and waits for the server's answer.
    pub async fn close(self) -> Result<(), Code> {
        let result = self.send(opcode::CLOSE_SESSION, |_| {}).await.map(drop);
        drop(self);
        result
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The next frame from the server, decoded by `decode`; an error once the
/// connection ends, or if the server sends a frame over [`FRAME_BYTES_MAX`].
async fn next_frame<T>(
    read: &mut OwnedReadHalf,
    frames: &mut Frames,
    decode: impl FnOnce(&[u8]) -> T,
) -> io::Result<T> {
    loop {
        match frames.take() {
            Ok(frame) => return Ok(decode(frame)),
            Err(incomplete @ NoFrame::Incomplete { need }) => {
                let got = read.read(frames.spare(need)).await?;
                if got == 0 {
                    return Err(incomplete.into());
                }
                frames.received(got);
            }
            Err(too_large) => return Err(too_large.into()),
        }
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    ping_every: Duration,
) {
    let mut ping = Vec::with_capacity(12);
    herd_proto::request(&mut ping, xid::PING, opcode::PING, |_| {});
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES_MAX);
    loop {
        let first = match tokio::time::timeout(ping_every, queue.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(_) => ping.clone(),
        };
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH_BYTES_MAX {
            match queue.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if write.write_all(&batch).await.is_err() {
            return;
        }
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    mut frames: Frames,
    outbox: Arc<Mutex<Outbox>>,
    events: Option<mpsc::UnboundedSender<WatchEvent>>,
) {
    let route = |frame: &[u8]| route(frame, &outbox, events.as_ref());
    while let Ok(Ok(())) = next_frame(&mut read, &mut frames, route).await {}
    // Connection gone: fail everything still waiting, and every later call.
    let pending = outbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending
        .take();
    for (_, slot) in pending.into_iter().flatten() {
        let _ = slot.send(Err(code::CONNECTION_LOSS));
    }
}

/// Hands one frame from the server to its caller or the events channel.
fn route(
    frame: &[u8],
    outbox: &Mutex<Outbox>,
    events: Option<&mpsc::UnboundedSender<WatchEvent>>,
) -> Result<(), Malformed> {
    let mut r = Reader::new(frame);
    let (xid, zxid, err) = (r.i32()?, r.i64()?, r.i32()?);
    match xid {
        xid::NOTIFICATION => {
            let received = Instant::now();
            let (kind, _state, path) = (r.i32()?, r.i32()?, r.string()?);
            if let Some(events) = events {
                let _ = events.send(WatchEvent {
                    kind,
                    path,
                    received,
                });
            }
        }
        xid::PING => {}
        _ => {
            let slot = outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending
                .as_mut()
                .and_then(|p| p.remove(&xid));
            if let Some(slot) = slot {
                let body = frame[16..].to_vec();
                let _ = slot.send(if err == code::OK {
                    Ok(Reply { zxid, body })
                } else {
                    Err(err)
                });
            }
        }
    }
    Ok(())
}
