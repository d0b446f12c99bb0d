//! The quorum transport: members' messages ([`engine::zab::peer::Message`])
//! over TCP, on the two ports zoo.cfg gives each member: election messages
//! on the election port, discovery and broadcast on the quorum port.
//!
//! ```text
//!  driver ──send(to, msg)──► encode once ─► pending ─flush()─► bounded queue ─► writer thread ─► TCP
//!  driver ◄──Event::Message── decoder ◄── reader thread ◄──────────────────── TCP
//!         ◄──Event::Disconnected(sid)   (a quorum connection broke)
//!         ◄──Event::Reachable(sid, up)  (an election connection came or went)
//! ```
//!
//! - One connection per pair of members and port, dialed by the member with
//!   the higher id (as ZooKeeper's `QuorumCnxManager` keeps only those); it
//!   carries messages both ways. The dialer retries with backoff, from
//!   [`RETRY_MIN_MS`] doubling to [`RETRY_MAX_MS`], each attempt bounded by
//!   `cnxTimeout`.
//! - A connection opens with a hello frame: [`HELLO_MAGIC`], the dialer's id
//!   and the port's kind. An unknown member, a wrong port or a bad frame
//!   closes the connection (only that one).
//! - Frames are herd-proto's (a 4-byte big-endian length), each holding one
//!   `zab::wire` body, checksummed; at most [`wire::MAX_BODY`] bytes.
//! - Sends never block the driver: they gather per connection until the
//!   driver flushes (once per round: a leader under load sends many small
//!   proposals and commits to each learner, and one hand-off to the writer
//!   thread carries them all). A flush holds at most one Ack and one Commit
//!   per connection: both are cumulative (everything up to their zxid), so
//!   a later one replaces the earlier, wherever it was (a learner then hears
//!   of a commit a few frames later, never of one not made). Each
//!   connection has a queue of at most [`QUEUE_FLUSHES`] flushes; a member
//!   that falls that far behind has its connection closed (it reconnects
//!   and is synchronised afresh), and a message to a member with no
//!   connection is dropped (Zab retransmits
//!   what matters: votes, FOLLOWERINFO, and a learner re-syncs).
//! - Messages from one member arrive in the order it sent them for as long
//!   as a connection lasts (Zab relies on it); when a quorum connection
//!   breaks the driver hears [`Event::Disconnected`].
//! - The driver hears [`Event::Reachable`] whenever the election connection
//!   with a member comes up or goes down, in that order (both are told while
//!   the connections are locked), so the last one it heard is the truth.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use engine::zab::broadcast::Message as Zab;
use engine::zab::peer::Message;
use engine::zab::wire::{self, Decoder};
use engine::zab::Sid;
use engine::Zxid;
use herd_proto::frame::{self, Frames};

/// The first bytes of every connection's hello frame.
pub const HELLO_MAGIC: &[u8; 8] = b"HERDZAB1";
/// Most flushes queued for one connection before it is closed as too slow.
pub const QUEUE_FLUSHES: usize = 16_384;
/// The first wait before dialing again, and the longest.
pub const RETRY_MIN_MS: u64 = 20;
pub const RETRY_MAX_MS: u64 = 1_000;
/// How often blocked threads look whether the transport stops.
const POLL_MS: u64 = 20;
/// Bytes one read takes while frames are small.
const READ_CHUNK: usize = 64 * 1024;

/// Which of a member's two ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    Election,
    Quorum,
}

impl Port {
    fn code(self) -> u8 {
        match self {
            Port::Election => 1,
            Port::Quorum => 2,
        }
    }

    /// The port a message travels on.
    fn of(msg: &Message) -> Port {
        match msg {
            Message::Vote(_) => Port::Election,
            Message::Discovery(_) | Message::Zab(_) => Port::Quorum,
        }
    }
}

/// Where a member listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub election: SocketAddr,
    pub quorum: SocketAddr,
}

/// What the transport tells its driver.
#[derive(Debug)]
pub enum Event {
    Message(Sid, Message),
    /// The quorum connection with this member broke.
    Disconnected(Sid),
    /// The election connection with this member came up (true) or went
    /// down (false).
    Reachable(Sid, bool),
}

/// The listening half, bound before the members are known to one another
/// (tests bind port 0 and pass the addresses on).
pub struct Listening {
    me: Sid,
    election: TcpListener,
    quorum: TcpListener,
}

impl Listening {
    pub fn bind(me: Sid, at: Addresses) -> io::Result<Listening> {
        let listen = |addr| {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok::<_, io::Error>(l)
        };
        Ok(Listening {
            me,
            election: listen(at.election)?,
            quorum: listen(at.quorum)?,
        })
    }

    pub fn addresses(&self) -> io::Result<Addresses> {
        Ok(Addresses {
            election: self.election.local_addr()?,
            quorum: self.quorum.local_addr()?,
        })
    }

    /// Starts accepting and dialing: `members` are the others, with their
    /// addresses; events go to `events`, which answers false once no one
    /// listens.
    pub fn start(
        self,
        members: &[(Sid, Addresses)],
        connect_timeout: Duration,
        events: impl Fn(Event) -> bool + Send + Sync + 'static,
    ) -> Transport {
        let shared = Arc::new(Shared {
            me: self.me,
            members: members.iter().map(|(sid, _)| *sid).collect(),
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            events: Box::new(events),
        });
        let mut threads = Vec::new();
        for (listener, port) in [(self.election, Port::Election), (self.quorum, Port::Quorum)] {
            let shared = shared.clone();
            threads.push(spawn("herd-zab-accept", move || {
                accept_loop(&shared, listener, port)
            }));
        }
        for &(sid, at) in members.iter().filter(|(sid, _)| *sid < self.me) {
            for (addr, port) in [(at.election, Port::Election), (at.quorum, Port::Quorum)] {
                let shared = shared.clone();
                threads.push(spawn("herd-zab-dial", move || {
                    dial_loop(&shared, sid, addr, port, connect_timeout)
                }));
            }
        }
        Transport {
            shared,
            threads,
            pending: HashMap::new(),
        }
    }
}

/// A running transport; [`Transport::stop`] (or dropping it) closes every
/// connection and joins its threads.
pub struct Transport {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Frames sent since the last flush, per connection.
    pending: HashMap<(Sid, Port), Pending>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Where in `bytes` its Ack and its Commit are, if it holds one.
    ack: Option<Cumulative>,
    commit: Option<Cumulative>,
}

/// An Ack or a Commit: cumulative (everything up to `zxid`), so a later one
/// says all this one did.
#[derive(Clone, Copy)]
struct Cumulative {
    start: usize,
    end: usize,
    zxid: Zxid,
}

impl Transport {
    /// Queues `msg` for `to`, to go out at the next [`Transport::flush`].
    pub fn send(&mut self, to: Sid, msg: &Message) {
        let p = self.pending.entry((to, Port::of(msg))).or_default();
        let (same, other, zxid) = match msg {
            Message::Zab(Zab::Ack(z)) => (&mut p.ack, &mut p.commit, *z),
            Message::Zab(Zab::Commit(z)) => (&mut p.commit, &mut p.ack, *z),
            _ => return append_frames(&mut p.bytes, msg),
        };
        // The earlier one goes: this one, later in the stream, says all it did.
        if let Some(old) = same.take_if(|old| old.zxid <= zxid) {
            let len = old.end - old.start;
            p.bytes.drain(old.start..old.end);
            if let Some(o) = other.as_mut().filter(|o| o.start > old.start) {
                o.start -= len;
                o.end -= len;
            }
        }
        let start = p.bytes.len();
        append_frames(&mut p.bytes, msg);
        *same = Some(Cumulative {
            start,
            end: p.bytes.len(),
            zxid,
        });
    }

    /// Hands what was sent since the last flush to the connections that are
    /// up, one queue entry each; never blocks.
    pub fn flush(&mut self) {
        if self.pending.values().all(|p| p.bytes.is_empty()) {
            return;
        }
        let mut links = self.shared.links.lock().expect("links");
        for (&(to, port), pending) in &mut self.pending {
            if pending.bytes.is_empty() {
                continue;
            }
            (pending.ack, pending.commit) = (None, None);
            let bytes = std::mem::take(&mut pending.bytes);
            let Some(link) = links.get(&(to, port)) else {
                continue;
            };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                link.queue.try_send(bytes)
            {
                // Too far behind, or gone: it reconnects and catches up.
                let _ = link.stream.shutdown(Shutdown::Both);
                links.remove(&(to, port));
                if port == Port::Election {
                    (self.shared.events)(Event::Reachable(to, false));
                }
            }
        }
    }

    /// Whether a connection to `to` on `port` is up.
    pub fn is_connected(&self, to: Sid, port: Port) -> bool {
        let links = self.shared.links.lock().expect("links");
        links.contains_key(&(to, port))
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let links = std::mem::take(&mut *self.shared.links.lock().expect("links"));
        for link in links.values() {
            let _ = link.stream.shutdown(Shutdown::Both);
        }
        drop(links);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One connection's sending side.
struct Link {
    id: u64,
    queue: SyncSender<Vec<u8>>,
    stream: TcpStream,
}

struct Shared {
    me: Sid,
    members: Vec<Sid>,
    links: Mutex<HashMap<(Sid, Port), Link>>,
    next_link: AtomicU64,
    stopping: AtomicBool,
    events: Box<dyn Fn(Event) -> bool + Send + Sync>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Serves a connection with `sid` on `port` until it breaks: this
    /// thread reads, a writer thread writes what the queue holds.
    fn serve(&self, sid: Sid, port: Port, stream: TcpStream) {
        let (Ok(write_half), Ok(closer)) = (stream.try_clone(), stream.try_clone()) else {
            return;
        };
        let (queue, frames) = mpsc::sync_channel(QUEUE_FLUSHES);
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let link = Link {
            id,
            queue,
            stream: closer,
        };
        {
            let mut links = self.links.lock().expect("links");
            match links.insert((sid, port), link) {
                // A member that restarted: its old connection is dead.
                Some(old) => {
                    let _ = old.stream.shutdown(Shutdown::Both);
                }
                None if port == Port::Election => {
                    (self.events)(Event::Reachable(sid, true));
                }
                None => {}
            }
        }
        if self.stopping() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let writer = spawn("herd-zab-write", move || write_loop(write_half, frames));
        let _ = self.read_loop(sid, &stream);
        let _ = stream.shutdown(Shutdown::Both);
        {
            let mut links = self.links.lock().expect("links");
            if links.get(&(sid, port)).is_some_and(|l| l.id == id) {
                links.remove(&(sid, port));
                if port == Port::Election && !self.stopping() {
                    (self.events)(Event::Reachable(sid, false));
                }
            }
        }
        let _ = writer.join();
        if port == Port::Quorum && !self.stopping() {
            (self.events)(Event::Disconnected(sid));
        }
    }

    /// Hands what `sid` sends to the driver until the connection ends, a
    /// frame is bad, or the driver is gone.
    fn read_loop(&self, sid: Sid, mut stream: &TcpStream) -> io::Result<()> {
        let mut frames = Frames::new(wire::MAX_BODY, READ_CHUNK);
        let mut decoder = Decoder::default();
        loop {
            let decoded = frames.read_from(&mut stream, |body| decoder.push(body))?;
            if let Some(msg) = decoded.map_err(io::Error::other)? {
                if !(self.events)(Event::Message(sid, msg)) {
                    return Ok(());
                }
            }
        }
    }
}

/// Appends `msg`'s frames to `buf`.
fn append_frames(buf: &mut Vec<u8>, msg: &Message) {
    for body in wire::encode(msg) {
        let at = frame::begin(buf);
        buf.extend_from_slice(&body);
        frame::end(buf, at);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a transport thread")
}

/// Most bytes gathered into one write.
const WRITE_GATHER: usize = 256 * 1024;

fn write_loop(mut stream: TcpStream, flushes: Receiver<Vec<u8>>) {
    // Ends when the link is dropped (its sender with it) or the socket fails.
    // The flushes queued meanwhile go out in one write.
    let mut gathered = Vec::new();
    while let Ok(first) = flushes.recv() {
        let mut more = flushes.try_recv().ok();
        let out: &[u8] = if more.is_none() {
            &first
        } else {
            gathered.clear();
            gathered.extend_from_slice(&first);
            while let Some(next) = more.take() {
                gathered.extend_from_slice(&next);
                if gathered.len() < WRITE_GATHER {
                    more = flushes.try_recv().ok();
                }
            }
            &gathered
        };
        if stream.write_all(out).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn hello(me: Sid, port: Port) -> Vec<u8> {
    let mut f = Vec::new();
    let at = frame::begin(&mut f);
    f.extend_from_slice(HELLO_MAGIC);
    f.extend_from_slice(&me.to_le_bytes());
    f.push(port.code());
    frame::end(&mut f, at);
    f
}

/// Reads a hello frame: the dialer's id, if it is a member dialing the
/// right port.
fn read_hello(stream: &mut TcpStream, shared: &Shared, port: Port) -> io::Result<Sid> {
    let expected = hello(0, port).len();
    let mut buf = vec![0; expected];
    stream.read_exact(&mut buf)?;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let (body, _) = frame::split(&buf, expected).map_err(io::Error::from)?;
    if body.len() != 17 || &body[..8] != HELLO_MAGIC {
        return Err(bad("not a herd member's hello"));
    }
    let sid = Sid::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    if body[16] != port.code() {
        return Err(bad("hello for the other port"));
    }
    if sid <= shared.me || !shared.members.contains(&sid) {
        return Err(bad("hello from a member that does not dial here"));
    }
    Ok(sid)
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener, port: Port) {
    let mut served = Vec::new();
    while !shared.stopping() {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let shared = shared.clone();
                served.push(spawn("herd-zab-read", move || {
                    let ready = stream
                        .set_nonblocking(false)
                        .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(5))))
                        .and_then(|()| read_hello(&mut stream, &shared, port))
                        .and_then(|sid| stream.set_read_timeout(None).map(|()| sid));
                    if let Ok(sid) = ready {
                        let _ = stream.set_nodelay(true);
                        shared.serve(sid, port, stream);
                    }
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(POLL_MS));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(POLL_MS)),
        }
        served.retain(|t: &JoinHandle<()>| !t.is_finished());
    }
    for t in served {
        let _ = t.join();
    }
}

fn dial_loop(shared: &Shared, sid: Sid, addr: SocketAddr, port: Port, timeout: Duration) {
    let mut wait = RETRY_MIN_MS;
    while !shared.stopping() {
        let connected = TcpStream::connect_timeout(&addr, timeout).and_then(|mut s| {
            s.set_nodelay(true)?;
            s.write_all(&hello(shared.me, port))?;
            Ok(s)
        });
        match connected {
            Ok(stream) => {
                wait = RETRY_MIN_MS;
                shared.serve(sid, port, stream);
            }
            Err(_) => wait = (wait * 2).min(RETRY_MAX_MS),
        }
        // Back off, looking now and then whether to stop.
        let mut slept = 0;
        while slept < wait && !shared.stopping() {
            std::thread::sleep(Duration::from_millis(POLL_MS.min(wait)));
            slept += POLL_MS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Member 1 listening, knowing member 2 (which would dial it).
    fn member_one() -> (Transport, Addresses, Receiver<Event>) {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listening = Listening::bind(
            1,
            Addresses {
                election: any,
                quorum: any,
            },
        )
        .unwrap();
        let at = listening.addresses().unwrap();
        let (tx, rx) = mpsc::channel();
        // Member 2's own ports are never dialed: 1 < 2.
        let two = Addresses {
            election: any,
            quorum: any,
        };
        let transport = listening.start(&[(2, two)], Duration::from_millis(200), move |e| {
            tx.send(e).is_ok()
        });
        (transport, at, rx)
    }

    /// Whether the other end closed `stream` (within a bound).
    fn closed(stream: &mut TcpStream) -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        matches!(stream.read(&mut [0; 1]), Ok(0) | Err(_))
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        let at = frame::begin(&mut f);
        f.extend_from_slice(body);
        frame::end(&mut f, at);
        f
    }

    #[test]
    fn strangers_wrong_ports_and_bad_frames_close_only_their_connection() {
        let (mut transport, at, events) = member_one();
        let refused = [
            (at.quorum, framed(b"GET / HTTP/1.1\r\n\r\n")),
            (at.quorum, hello(9, Port::Quorum)),
            (at.quorum, hello(2, Port::Election)),
            (at.election, hello(1, Port::Election)),
        ];
        for (addr, first) in refused {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&first).unwrap();
            assert!(closed(&mut s), "{first:?} is refused");
        }
        // Member 2, properly: a message arrives; a damaged frame ends the
        // connection, and the driver hears of it.
        let mut two = TcpStream::connect(at.quorum).unwrap();
        two.write_all(&hello(2, Port::Quorum)).unwrap();
        let ack = Message::Zab(Zab::Ack(7));
        two.write_all(&framed(&wire::encode(&ack)[0])).unwrap();
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Message(2, got)) => assert_eq!(got, ack),
            other => panic!("{other:?}"),
        }
        wait_connected(&transport, 2);
        let mut damaged = wire::encode(&ack).remove(0);
        damaged[5] ^= 1;
        two.write_all(&framed(&damaged)).unwrap();
        assert!(closed(&mut two));
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Disconnected(2)) => {}
            other => panic!("{other:?}"),
        }
        // It comes back, and messages flow the other way too.
        let mut two = TcpStream::connect(at.quorum).unwrap();
        two.write_all(&hello(2, Port::Quorum)).unwrap();
        wait_connected(&transport, 2);
        transport.send(2, &ack);
        transport.flush();
        let mut frames = Frames::new(wire::MAX_BODY, 1024);
        two.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let got = frames.read_from(&mut two, |body| Decoder::default().push(body));
        assert_eq!(got.unwrap(), Ok(Some(ack)));
        transport.stop();
        assert!(closed(&mut two), "stopping closes every connection");
    }

    #[test]
    fn a_flush_sends_in_order_with_one_ack_and_one_commit_the_latest() {
        let (mut transport, at, _events) = member_one();
        let mut two = TcpStream::connect(at.quorum).unwrap();
        two.write_all(&hello(2, Port::Quorum)).unwrap();
        wait_connected(&transport, 2);
        let zab = |m| Message::Zab(m);
        for m in [
            Zab::Ack(3),
            Zab::Commit(5),
            Zab::Ack(7),
            Zab::Ping(vec![4]),
            Zab::Commit(9),
            Zab::Commit(8),
            Zab::Ack(8),
            Zab::Request(Arc::from(&[1u8, 2][..])),
        ] {
            transport.send(2, &zab(m));
        }
        transport.flush();
        // A flush already handed off is not rewritten.
        transport.send(2, &zab(Zab::Commit(11)));
        transport.flush();
        // Commit(8) after Commit(9) says less: both stay.
        let want = [
            Zab::Ping(vec![4]),
            Zab::Commit(9),
            Zab::Commit(8),
            Zab::Ack(8),
            Zab::Request(Arc::from(&[1u8, 2][..])),
            Zab::Commit(11),
        ];
        let mut frames = Frames::new(wire::MAX_BODY, 1024);
        two.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for m in want {
            let got = frames.read_from(&mut two, |body| Decoder::default().push(body));
            assert_eq!(got.unwrap(), Ok(Some(zab(m))));
        }
        transport.stop();
    }

    fn wait_connected(transport: &Transport, sid: Sid) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !transport.is_connected(sid, Port::Quorum) {
            assert!(
                std::time::Instant::now() < deadline,
                "{sid} never connected"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
