//! herd against Apache ZooKeeper on the same inputs, so that a difference in
//! behaviour is found by a test rather than by a user.
//!
//! The lockstep test: several sessions run a seeded random sequence of
//! operations, one step at a time, against herd and against a real ZooKeeper
//! started here. Every write operation, reads with every kind of watch,
//! addWatch in both modes, checkWatches and removeWatches, multi, ephemeral
//! and sequential nodes, ACLs and addauth, sync, closing a session, bad paths,
//! an unknown opcode, and connections cut (through a proxy) and resumed on the
//! same session with setWatches, as a client does. Sessions speak both
//! handshake shapes (with and without readOnly). After each step every
//! session's frames are compared: replies (error codes, data, stats with their
//! zxids; times and session ids masked) and notifications (type, path, order).
//! The first difference fails the test with the seed and the step.
//!
//! The concurrent test: sessions act at once and only ZooKeeper's guarantees
//! are checked, over the whole history: a session never sees a node's version
//! go back, and every session that follows a node with a data watch (reading
//! again on each notification) ends at its final version.
//!
//! Run more seeds: `HERD_DIFF_SEEDS=1000 HERD_DIFF_STEPS=400 cargo test
//! --release -p herd-server --test differential -- --nocapture`
//! (`HERD_DIFF_SEED=N` runs one seed and prints its steps).
//!
//! What ZooKeeper 3.8 does differently on purpose is kept out of the inputs:
//! it keeps one watch mode per (connection, path), so a one-shot and a
//! persistent watch of one session on one path interfere (ZOOKEEPER-4466,
//! fixed in 3.9, whose behaviour herd has), and its checkWatches and
//! removeWatches know only the types Children, Data and Any, which also match
//! persistent watches (3.9 added Persistent and PersistentRecursive, and herd
//! has them), its checkWatches reports a watch any session holds on the path,
//! and both fail on a relative path while any recursive watch exists; a reconnect with a wrong password
//! first closes the session's live connection in ZooKeeper, not in herd. And
//! 3.8 sends -1 as a notification's zxid where 3.9 and herd send the change's.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::raw::{self, request};
use common::session::RawSession;
use engine::sim::{env_or, Rng};
use herd_proto::jute::{Reader, Write};
use herd_proto::opcode::*;

const SESSIONS: usize = 4;
const DEFAULT_SEEDS: u64 = 12;
const DEFAULT_STEPS: usize = 120;

/// An opcode ZooKeeper does not know.
const UNKNOWN: i32 = 99;

// ---------------------------------------------------------------- steps

/// The kinds of watch a client keeps, as ZooKeeper's client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Watch {
    Data,
    Exist,
    Child,
    Persistent,
    Recursive,
}

/// One operation of the sequence, applied to both servers alike.
#[derive(Clone, Debug)]
enum Step {
    /// A request: session, opcode, body.
    Request(usize, i32, Vec<u8>),
    /// A multi of (opcode, body) operations.
    Multi(usize, Vec<(i32, Vec<u8>)>),
    AddAuth(usize, String),
    /// Cut the session's connection, then resume it with setWatches.
    Reconnect(usize),
    /// Close the session and open a new one in its place.
    CloseAndReopen(usize),
}

/// What the generator knows of the tree and the sessions, to aim its steps.
struct Model {
    root: String,
    /// Paths that may exist (created once, maybe deleted since).
    paths: Vec<String>,
    /// Per session: (kind, path) of the watches it holds, as its client sees them.
    watches: Vec<BTreeSet<(Watch, String)>>,
}

fn path_body(path: &str, extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    b.string(path);
    extra(&mut b);
    b
}

fn open_acl() -> Vec<engine::acl::Acl> {
    engine::acl::Acl::open_unsafe()
}

/// Only the user `u1:p1` may do anything; everyone may read.
fn digest_acl() -> Vec<engine::acl::Acl> {
    vec![
        engine::acl::Acl {
            perms: engine::acl::perms::ALL,
            id: engine::acl::Id::new("digest", &engine::acl::digest("u1:p1")),
        },
        engine::acl::Acl {
            perms: engine::acl::perms::READ,
            id: engine::acl::Id::new("world", "anyone"),
        },
    ]
}

impl Model {
    fn new(root: &str) -> Model {
        let mut paths = vec![root.to_owned()];
        for a in ["a", "b", "c"] {
            let p = format!("{root}/{a}");
            for b in ["x", "y"] {
                paths.push(format!("{p}/{b}"));
                paths.push(format!("{p}/{b}/z"));
            }
            paths.push(p);
        }
        Model {
            root: root.to_owned(),
            paths,
            watches: vec![BTreeSet::new(); SESSIONS],
        }
    }

    fn path(&self, rng: &mut Rng) -> String {
        if rng.chance(4) {
            // Paths ZooKeeper refuses, or that name nothing it could hold.
            let bad = [
                "",
                "a/b",
                "/a/",
                "/a//b",
                "/./a",
                "/a/..",
                "/a\u{1}b",
                "/a\u{7f}",
                "/a\u{85}",
                "/a\u{e000}",
                "/a\u{1f600}",
                "/zookeeper/quota",
            ];
            return rng.pick(&bad).to_string();
        }
        rng.pick(&self.paths).clone()
    }

    /// Whether ZooKeeper 3.8 would mix this watch up with another of the same
    /// session on the same path (one mode per connection and path).
    fn conflicts(&self, session: usize, path: &str, kind: Watch) -> bool {
        let persistent = |k: Watch| matches!(k, Watch::Persistent | Watch::Recursive);
        self.watches[session]
            .iter()
            .any(|(k, p)| p == path && (persistent(*k) || persistent(kind)) && *k != kind)
    }

    fn data(rng: &mut Rng) -> Vec<u8> {
        match rng.below(4) {
            0 => Vec::new(),
            1 => b"v".to_vec(),
            _ => format!("value-{}", rng.below(1000)).into_bytes(),
        }
    }

    fn version(rng: &mut Rng) -> i32 {
        if rng.chance(70) {
            -1
        } else {
            rng.below(3) as i32
        }
    }

    fn create_body(&self, rng: &mut Rng, path: &str) -> (i32, Vec<u8>) {
        let op = *rng.pick(&[CREATE, CREATE, CREATE2, CREATE_CONTAINER, CREATE_TTL]);
        // persistent, ephemeral, persistent sequential, ephemeral sequential
        let flags = if op == CREATE_CONTAINER {
            4
        } else if op == CREATE_TTL {
            *rng.pick(&[5, 6])
        } else {
            *rng.pick(&[0, 0, 1, 2, 3])
        };
        let acl = if rng.chance(10) {
            digest_acl()
        } else {
            open_acl()
        };
        let data = Self::data(rng);
        let body = path_body(path, |b| {
            b.buffer(&data);
            b.acls(&acl);
            b.i32(flags);
            if op == CREATE_TTL {
                b.i64(600_000);
            }
        });
        (op, body)
    }

    fn next(&mut self, rng: &mut Rng) -> Step {
        let s = rng.below(SESSIONS);
        let roll = rng.below(100);
        let path = self.path(rng);
        match roll {
            0..=19 => {
                let (op, body) = self.create_body(rng, &path);
                Step::Request(s, op, body)
            }
            20..=27 => Step::Request(s, DELETE, path_body(&path, |b| b.i32(Self::version(rng)))),
            28..=39 => {
                let data = Self::data(rng);
                Step::Request(
                    s,
                    SET_DATA,
                    path_body(&path, |b| {
                        b.buffer(&data);
                        b.i32(Self::version(rng));
                    }),
                )
            }
            40..=61 => {
                let op = *rng.pick(&[EXISTS, GET_DATA, GET_CHILDREN, GET_CHILDREN2]);
                let mut watch = rng.chance(60);
                let kind = match op {
                    GET_CHILDREN | GET_CHILDREN2 => Watch::Child,
                    _ => Watch::Data,
                };
                if watch
                    && (self.conflicts(s, &path, kind) || self.conflicts(s, &path, Watch::Exist))
                {
                    watch = false;
                }
                Step::Request(s, op, path_body(&path, |b| b.bool(watch)))
            }
            62..=64 => {
                let acl = if rng.chance(50) {
                    digest_acl()
                } else {
                    open_acl()
                };
                Step::Request(
                    s,
                    SET_ACL,
                    path_body(&path, |b| {
                        b.acls(&acl);
                        b.i32(Self::version(rng));
                    }),
                )
            }
            65..=71 => {
                let n = 1 + rng.below(4);
                let ops = (0..n)
                    .map(|_| {
                        let path = self.path(rng);
                        match rng.below(4) {
                            0 => self.create_body(rng, &path),
                            1 => (DELETE, path_body(&path, |b| b.i32(Self::version(rng)))),
                            2 => {
                                let data = Self::data(rng);
                                let version = Self::version(rng);
                                (
                                    SET_DATA,
                                    path_body(&path, |b| {
                                        b.buffer(&data);
                                        b.i32(version);
                                    }),
                                )
                            }
                            _ => (CHECK, path_body(&path, |b| b.i32(Self::version(rng)))),
                        }
                    })
                    .collect();
                Step::Multi(s, ops)
            }
            72..=75 => {
                let recursive = rng.chance(50);
                let kind = if recursive {
                    Watch::Recursive
                } else {
                    Watch::Persistent
                };
                if self.conflicts(s, &path, kind) {
                    return Step::Request(s, PING, Vec::new());
                }
                Step::Request(s, ADD_WATCH, path_body(&path, |b| b.i32(recursive as i32)))
            }
            76..=79 => {
                let op = *rng.pick(&[CHECK_WATCHES, REMOVE_WATCHES]);
                let path = match self.watches[s].iter().nth(rng.below(8)) {
                    Some((_, p)) if rng.chance(70) => p.clone(),
                    _ => path,
                };
                // With a recursive watch anywhere, ZooKeeper walks the path's
                // parents and fails (MarshallingError) on one without a slash.
                let path = if path.starts_with('/') {
                    path
                } else {
                    self.root.clone()
                };
                // Children, Data or Any: ZooKeeper 3.8 knows no other type (3.9
                // added Persistent and PersistentRecursive, as herd has them),
                // and its Children and Data also match persistent watches.
                let persistent = self.watches[s]
                    .iter()
                    .any(|(k, p)| *p == path && matches!(k, Watch::Persistent | Watch::Recursive));
                let kind = if persistent {
                    3
                } else {
                    1 + rng.below(3) as i32
                };
                // ZooKeeper 3.8's checkWatches also finds other sessions' watches.
                let others = (0..SESSIONS)
                    .filter(|o| *o != s)
                    .any(|o| self.watches[o].iter().any(|(_, p)| *p == path));
                let op = if others { REMOVE_WATCHES } else { op };
                Step::Request(s, op, path_body(&path, |b| b.i32(kind)))
            }
            80..=81 => Step::Request(s, SYNC, path_body(&path, |_| {})),
            82..=83 => Step::Request(s, GET_ACL, path_body(&path, |_| {})),
            84 => Step::Request(s, GET_ALL_CHILDREN_NUMBER, path_body(&path, |_| {})),
            85 => Step::Request(s, GET_EPHEMERALS, path_body(&self.root, |_| {})),
            86 => Step::Request(s, WHO_AM_I, Vec::new()),
            87..=88 => Step::AddAuth(s, format!("u{}:p{}", 1 + rng.below(2), 1)),
            89..=94 => Step::Reconnect(s),
            95..=96 => Step::CloseAndReopen(s),
            97 => match rng.below(3) {
                // An unknown opcode; reconfig (disabled); SASL (not configured).
                0 => Step::Request(s, UNKNOWN, Vec::new()),
                1 => {
                    let mut b = Vec::new();
                    b.string("");
                    b.string("");
                    b.string("");
                    b.i64(-1);
                    Step::Request(s, RECONFIG, b)
                }
                _ => Step::Request(s, SASL, {
                    let mut b = Vec::new();
                    b.buffer(b"token");
                    b
                }),
            },
            _ => Step::Request(s, PING, Vec::new()),
        }
    }

    /// Learns from a reply what the client would: watches set or removed, and
    /// the names sequential creates returned.
    fn learn(&mut self, s: usize, op: i32, body: &[u8], err: i32, sent: &[u8]) {
        let mut r = Reader::new(sent);
        let path = r.string().unwrap_or_default();
        let watched = match op {
            EXISTS | GET_DATA | GET_CHILDREN | GET_CHILDREN2 => r.bool().unwrap_or(false),
            _ => false,
        };
        let w = &mut self.watches[s];
        match (op, err) {
            (EXISTS, 0) | (GET_DATA, 0) if watched => {
                w.insert((Watch::Data, path));
            }
            (EXISTS, -101) if watched => {
                w.insert((Watch::Exist, path));
            }
            (GET_CHILDREN | GET_CHILDREN2, 0) if watched => {
                w.insert((Watch::Child, path));
            }
            (ADD_WATCH, 0) => {
                let kind = if r.i32() == Ok(1) {
                    Watch::Recursive
                } else {
                    Watch::Persistent
                };
                w.insert((kind, path));
            }
            (REMOVE_WATCHES, 0) => {
                let kinds: &[Watch] = match r.i32() {
                    Ok(1) => &[Watch::Child],
                    Ok(2) => &[Watch::Data, Watch::Exist],
                    Ok(4) => &[Watch::Persistent],
                    Ok(5) => &[Watch::Recursive],
                    _ => &[
                        Watch::Data,
                        Watch::Exist,
                        Watch::Child,
                        Watch::Persistent,
                        Watch::Recursive,
                    ],
                };
                w.retain(|(k, p)| *p != path || !kinds.contains(k));
            }
            (CREATE | CREATE2 | CREATE_CONTAINER | CREATE_TTL, 0) => {
                let made = Reader::new(body).string().unwrap_or_default();
                if made != path && !self.paths.contains(&made) {
                    self.paths.push(made);
                }
            }
            _ => {}
        }
    }

    /// A notification consumes the one-shot watches it fires, as in the client.
    fn notified(&mut self, s: usize, kind: i32, path: &str) {
        let gone: &[Watch] = match kind {
            1 | 3 => &[Watch::Data, Watch::Exist],
            2 => &[Watch::Data, Watch::Exist, Watch::Child],
            4 => &[Watch::Child],
            _ => &[],
        };
        self.watches[s].retain(|(k, p)| p != path || !gone.contains(k));
    }
}

// ---------------------------------------------------------------- one server

/// A frame as received, decoded far enough to compare.
#[derive(Clone, Debug)]
struct Frame {
    xid: i32,
    zxid: i64,
    err: i32,
    body: Vec<u8>,
}

impl Frame {
    /// The mark `read_until` leaves where the server closed the connection.
    fn closed() -> Frame {
        Frame {
            xid: 0,
            zxid: 0,
            err: 0,
            body: b"<connection closed>".to_vec(),
        }
    }

    fn is_close(&self) -> bool {
        self.xid == 0 && self.body == b"<connection closed>"
    }
}

struct Session {
    conn: RawSession,
    next_xid: i32,
    auth: Vec<String>,
}

/// One server under test, with its sessions.
struct Side {
    name: &'static str,
    addr: String,
    sessions: Vec<Session>,
    /// Every session id this server gave out, by slot (for masking owners).
    ids: Vec<(i64, String)>,
}

impl Side {
    fn new(name: &'static str, addr: &str) -> Side {
        let mut side = Side {
            name,
            addr: addr.to_owned(),
            sessions: Vec::new(),
            ids: Vec::new(),
        };
        for slot in 0..SESSIONS {
            let session = side.open(slot, slot % 2 == 0);
            side.sessions.push(session);
        }
        side
    }

    /// A new session in `slot`.
    fn open(&mut self, slot: usize, read_only_flag: bool) -> Session {
        let conn = RawSession::open(&self.addr, read_only_flag, 30_000, self.name);
        self.ids
            .push((conn.id, format!("s{slot}#{}", self.ids.len())));
        Session {
            conn,
            next_xid: 1,
            auth: Vec::new(),
        }
    }

    fn owner(&self, id: i64) -> String {
        if id == 0 {
            return "0".into();
        }
        self.ids
            .iter()
            .find(|(known, _)| *known == id)
            .map_or_else(|| "unknown".into(), |(_, name)| name.clone())
    }

    fn send(&mut self, s: usize, op: i32, body: &[u8]) -> i32 {
        let session = &mut self.sessions[s];
        // Pings go out as -2, which their replies carry whatever was sent.
        let xid = if op == PING { -2 } else { session.next_xid };
        session.next_xid += 1;
        let mut payload = Vec::new();
        payload.i32(xid);
        payload.i32(op);
        payload.extend_from_slice(body);
        if let Err(e) = raw::send_frame(&mut session.conn.stream, &payload) {
            panic!("{}: session {s} cannot send op {op}: {e}", self.name);
        }
        xid
    }

    /// Reads `s`'s frames up to the reply `xid`, then every session's frames
    /// up to a barrier (a read, answered only after the notifications of what
    /// it could reflect), and returns them all by session.
    fn settle(&mut self, s: usize, xid: Option<i32>) -> Vec<Vec<Frame>> {
        let mut frames = vec![Vec::new(); SESSIONS];
        if let Some(xid) = xid {
            self.read_until(s, xid, &mut frames[s]);
        }
        for (i, out) in frames.iter_mut().enumerate() {
            if out.last().is_some_and(|f| f.is_close()) {
                continue;
            }
            let barrier = self.send(i, EXISTS, &path_body("/", |b| b.bool(false)));
            self.read_until(i, barrier, out);
            if out.last().is_some_and(|f| f.xid == barrier) {
                out.pop(); // the barrier's own reply
            }
        }
        frames
    }

    fn read_until(&mut self, s: usize, xid: i32, out: &mut Vec<Frame>) {
        let session = &mut self.sessions[s];
        loop {
            let mut first = [0u8; 1];
            match session.conn.stream.peek(&mut first) {
                Err(e) if raw::is_timeout(&e) => panic!(
                    "{}: session {s} waits for reply {xid} in vain, after {out:?}",
                    self.name
                ),
                Err(_) => {
                    out.push(Frame::closed());
                    return;
                }
                Ok(_) => {}
            }
            let Some(frame) = raw::read_frame(&mut session.conn.stream) else {
                out.push(Frame::closed());
                return;
            };
            let mut r = Reader::new(&frame);
            let f = Frame {
                xid: r.i32().expect("xid"),
                zxid: r.i64().expect("zxid"),
                err: r.i32().expect("err"),
                body: frame[16..].to_vec(),
            };
            let done = f.xid == xid;
            if f.xid > 0 && f.zxid > 0 {
                session.conn.last_zxid = f.zxid;
            }
            out.push(f);
            if done {
                return;
            }
        }
    }

    /// Cuts the connection and resumes the session on a new one: auth again,
    /// then setWatches (2 if there are persistent watches) with what the
    /// client holds; returns the frames of that resumption.
    fn reconnect(
        &mut self,
        s: usize,
        watches: &BTreeSet<(Watch, String)>,
        cut: bool,
    ) -> Vec<Frame> {
        let session = &mut self.sessions[s].conn;
        if cut {
            session.cut();
            raw::assert_closed(&mut session.stream, "a cut connection");
        }
        session.resume(self.name);
        let mut out = Vec::new();
        for auth in self.sessions[s].auth.clone() {
            let xid = self.send_auth(s, &auth);
            self.read_until(s, xid, &mut out);
        }
        let of = |kind: Watch| -> Vec<&str> {
            watches
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, p)| p.as_str())
                .collect()
        };
        let persistent = !of(Watch::Persistent).is_empty() || !of(Watch::Recursive).is_empty();
        if !watches.is_empty() {
            let mut b = Vec::new();
            b.i64(self.sessions[s].conn.last_zxid);
            b.strings(&of(Watch::Data));
            b.strings(&of(Watch::Exist));
            b.strings(&of(Watch::Child));
            if persistent {
                b.strings(&of(Watch::Persistent));
                b.strings(&of(Watch::Recursive));
            }
            let op = if persistent {
                SET_WATCHES2
            } else {
                SET_WATCHES
            };
            let xid = self.send(s, op, &b);
            self.read_until(s, xid, &mut out);
        }
        out
    }

    fn send_auth(&mut self, s: usize, auth: &str) -> i32 {
        let mut b = Vec::new();
        b.i32(0);
        b.string("digest");
        b.buffer(auth.as_bytes());
        let session = &mut self.sessions[s];
        request(&mut session.conn.stream, -4, AUTH, &b);
        -4
    }
}

// ---------------------------------------------------------------- comparing

fn stat(r: &mut Reader<'_>, side: &Side) -> String {
    let Ok(st) = r.stat() else {
        return "<no stat>".into();
    };
    format!(
        "stat(czxid={:#x} mzxid={:#x} pzxid={:#x} v={} cv={} av={} owner={} len={} children={})",
        st.czxid,
        st.mzxid,
        st.pzxid,
        st.version,
        st.cversion,
        st.aversion,
        side.owner(st.ephemeral_owner),
        st.data_length,
        st.num_children
    )
}

fn acls(r: &mut Reader<'_>) -> String {
    match r.acls() {
        Ok(list) => format!(
            "{:?}",
            list.iter()
                .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                .collect::<Vec<_>>()
        ),
        Err(_) => "<bad acl>".into(),
    }
}

/// A reply's body as text, by the opcode it answers; times and session ids
/// masked, lists whose order the server picks sorted.
fn describe_body(op: i32, body: &[u8], side: &Side) -> String {
    let mut r = Reader::new(body);
    let text = match op {
        CREATE => format!("{:?}", r.string()),
        CREATE2 | CREATE_CONTAINER | CREATE_TTL => {
            let path = r.string();
            format!("{path:?} {}", stat(&mut r, side))
        }
        EXISTS | SET_DATA | SET_ACL => stat(&mut r, side),
        GET_DATA => {
            let data = r
                .data()
                .map(|d| d.bytes().map(|d| String::from_utf8_lossy(d).into_owned()));
            format!("{data:?} {}", stat(&mut r, side))
        }
        GET_ACL => {
            let list = acls(&mut r);
            format!("{list} {}", stat(&mut r, side))
        }
        GET_CHILDREN => format!("{:?}", r.strings().map(sorted)),
        GET_CHILDREN2 => {
            let children = r.strings().map(sorted);
            format!("{children:?} {}", stat(&mut r, side))
        }
        GET_EPHEMERALS => format!("{:?}", r.strings().map(sorted)),
        SYNC => format!("{:?}", r.string()),
        GET_ALL_CHILDREN_NUMBER | ADD_WATCH => format!("{:?}", r.i32()),
        WHO_AM_I => {
            let n = r.i32().unwrap_or(0);
            let mut ids: Vec<String> = (0..n)
                .map(|_| format!("{:?}:{:?}", r.string(), r.string()))
                .collect();
            ids.sort();
            format!("{ids:?}")
        }
        MULTI => {
            let mut results = Vec::new();
            loop {
                let (Ok(kind), Ok(done), Ok(err)) = (r.i32(), r.bool(), r.i32()) else {
                    results.push("<bad multi>".into());
                    break;
                };
                if done {
                    break;
                }
                let item = match kind {
                    -1 => format!("error {:?}", r.i32()),
                    CREATE => format!("create {:?}", r.string()),
                    CREATE2 => {
                        let path = r.string();
                        format!("create2 {path:?} {}", stat(&mut r, side))
                    }
                    SET_DATA => format!("setData {}", stat(&mut r, side)),
                    other => format!("op {other}"),
                };
                results.push(format!("{item} (err {err})"));
            }
            format!("{results:?}")
        }
        _ => String::new(),
    };
    let rest = r.remaining();
    if rest > 0 {
        format!("{text} +{rest} bytes")
    } else {
        text
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Frames as text: notifications by type and path (zxid masked: ZooKeeper 3.8
/// sends -1), replies by xid, zxid, error and body.
fn describe(frames: &[Frame], ops: &BTreeMap<i32, i32>, side: &Side) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            if f.xid == -1 {
                let mut r = Reader::new(&f.body);
                let (kind, state, path) = (r.i32(), r.i32(), r.string());
                format!("event {kind:?} state {state:?} {path:?}")
            } else if f.is_close() {
                "connection closed".into()
            } else {
                let op = ops.get(&f.xid).copied().unwrap_or(0);
                let body = if f.err == 0 || op == MULTI {
                    describe_body(op, &f.body, side)
                } else {
                    format!("{} body bytes", f.body.len())
                };
                format!(
                    "reply xid {} zxid {:#x} err {} {body}",
                    f.xid, f.zxid, f.err
                )
            }
        })
        .collect()
}

/// The two servers, driven in lockstep.
struct Pair {
    sides: [Side; 2],
    /// Per session: opcode of each xid sent (for decoding replies).
    ops: Vec<BTreeMap<i32, i32>>,
}

impl Pair {
    /// Applies `step` to both servers; returns each server's frames, by session.
    fn apply(&mut self, step: &Step, model: &Model) -> [Vec<Vec<Frame>>; 2] {
        let ops = &mut self.ops;
        self.sides.each_mut().map(|side| {
            let mut frames = Self::apply_to(side, step, model, ops);
            // A connection the server closed (not a closed session) comes back,
            // as a client reconnects.
            for (s, session_frames) in frames.iter_mut().enumerate() {
                let closed = session_frames.last().is_some_and(Frame::is_close);
                if closed && !matches!(step, Step::CloseAndReopen(c) if *c == s) {
                    let resumed = side.reconnect(s, &model.watches[s], false);
                    for f in &resumed {
                        if f.xid > 0 {
                            ops[s].insert(f.xid, SET_WATCHES);
                        }
                    }
                    session_frames.extend(resumed);
                }
            }
            frames
        })
    }

    fn apply_to(
        side: &mut Side,
        step: &Step,
        model: &Model,
        ops: &mut [BTreeMap<i32, i32>],
    ) -> Vec<Vec<Frame>> {
        {
            let mut record = |s: usize, xid: i32, op: i32| {
                ops[s].insert(xid, op);
            };
            match step {
                Step::Request(s, UNKNOWN, body) => {
                    // ZooKeeper answers, then closes the connection (when, it
                    // does not say: a request sent after may be answered too):
                    // the client comes back on a new one.
                    let xid = side.send(*s, UNKNOWN, body);
                    record(*s, xid, UNKNOWN);
                    let mut answer = Vec::new();
                    side.read_until(*s, xid, &mut answer);
                    let resumed = side.reconnect(*s, &model.watches[*s], true);
                    for f in &resumed {
                        if f.xid > 0 {
                            record(*s, f.xid, SET_WATCHES);
                        }
                    }
                    answer.extend(resumed);
                    let mut frames = side.settle(*s, None);
                    frames[*s].splice(0..0, answer);
                    frames
                }
                Step::Request(s, op, body) => {
                    let xid = side.send(*s, *op, body);
                    record(*s, xid, *op);
                    side.settle(*s, Some(xid))
                }
                Step::Multi(s, items) => {
                    let mut b = Vec::new();
                    for (op, body) in items {
                        b.i32(*op);
                        b.bool(false);
                        b.i32(-1);
                        b.extend_from_slice(body);
                    }
                    b.i32(-1);
                    b.bool(true);
                    b.i32(-1);
                    let xid = side.send(*s, MULTI, &b);
                    record(*s, xid, MULTI);
                    side.settle(*s, Some(xid))
                }
                Step::AddAuth(s, auth) => {
                    let xid = side.send_auth(*s, auth);
                    side.sessions[*s].auth.push(auth.clone());
                    side.settle(*s, Some(xid))
                }
                Step::Reconnect(s) => {
                    let resumed = side.reconnect(*s, &model.watches[*s], true);
                    for f in &resumed {
                        if f.xid > 0 {
                            record(*s, f.xid, SET_WATCHES);
                        }
                    }
                    let mut frames = side.settle(*s, None);
                    frames[*s].splice(0..0, resumed);
                    frames
                }
                Step::CloseAndReopen(s) => {
                    let xid = side.send(*s, CLOSE_SESSION, &[]);
                    record(*s, xid, CLOSE_SESSION);
                    let mut closing = Vec::new();
                    side.read_until(*s, xid, &mut closing);
                    raw::assert_closed(&mut side.sessions[*s].conn.stream, "a closed session");
                    let flag = side.sessions[*s].conn.read_only_flag;
                    side.sessions[*s] = side.open(*s, !flag);
                    let mut frames = side.settle(*s, None);
                    frames[*s].splice(0..0, closing);
                    frames
                }
            }
        }
    }
}

/// Runs one seed; `Err` names the first step where the servers differ.
fn run_seed(herd: &str, zk: &str, seed: u64, steps: usize, verbose: bool) -> Result<(), String> {
    let root = format!("/diff{seed}");
    let mut pair = Pair {
        sides: [Side::new("herd", herd), Side::new("zookeeper", zk)],
        ops: vec![BTreeMap::new(); SESSIONS],
    };
    let mut model = Model::new(&root);
    let mut rng = Rng(seed);
    let setup = Step::Request(
        0,
        CREATE,
        path_body(&root, |b| {
            b.buffer(b"");
            b.acls(&open_acl());
            b.i32(0);
        }),
    );
    let mut all = vec![setup];
    for i in 0..=steps {
        let step = if i == 0 {
            all[0].clone()
        } else {
            let step = model.next(&mut rng);
            all.push(step.clone());
            step
        };
        if verbose {
            eprintln!("seed {seed} step {i}: {step:?}");
        }
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pair.apply(&step, &model)));
        let [herd_frames, zk_frames] = match applied {
            Ok(frames) => frames,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("seed {seed}, step {i} ({step:?}): {why}"));
            }
        };
        for s in 0..SESSIONS {
            let mut h = describe(&herd_frames[s], &pair.ops[s], &pair.sides[0]);
            let mut z = describe(&zk_frames[s], &pair.ops[s], &pair.sides[1]);
            if matches!(step, Step::CloseAndReopen(_)) {
                // A closed session's ephemerals go in no specified order
                // (ZooKeeper's: a HashSet's), and their events with them.
                for lines in [&mut h, &mut z] {
                    lines.sort_by_key(|l| !l.starts_with("event"));
                    let events = lines.iter().filter(|l| l.starts_with("event")).count();
                    lines[..events].sort();
                }
            }
            if verbose && !h.is_empty() {
                eprintln!("  session {s}: {h:?}");
            }
            if h != z {
                return Err(format!(
                    "seed {seed}, step {i} ({step:?}), session {s}:\n  herd:      {h:#?}\n  zookeeper: {z:#?}"
                ));
            }
            // Both agree: learn from herd's frames what the client would.
            for f in &herd_frames[s] {
                if f.xid == -1 {
                    let mut r = Reader::new(&f.body);
                    let kind = r.i32().unwrap_or(0);
                    let _ = r.i32();
                    model.notified(s, kind, &r.string().unwrap_or_default());
                }
            }
        }
        learn_step(&mut model, &step, &herd_frames);
    }
    // Close every session, so none expires (a timed transaction) during the
    // next seed.
    for side in &mut pair.sides {
        for s in 0..SESSIONS {
            let xid = side.send(s, CLOSE_SESSION, &[]);
            let mut frames = Vec::new();
            side.read_until(s, xid, &mut frames);
        }
    }
    Ok(())
}

fn learn_step(model: &mut Model, step: &Step, frames: &[Vec<Frame>]) {
    match step {
        Step::Request(s, op, body) => {
            if let Some(reply) = frames[*s].iter().rev().find(|f| f.xid > 0) {
                model.learn(*s, *op, &reply.body, reply.err, body);
            }
        }
        Step::Multi(s, items) => {
            if let Some(reply) = frames[*s].iter().rev().find(|f| f.xid > 0) {
                let mut r = Reader::new(&reply.body);
                for (op, body) in items {
                    let (Ok(kind), Ok(done), Ok(_)) = (r.i32(), r.bool(), r.i32()) else {
                        break;
                    };
                    if done {
                        break;
                    }
                    let rest = &reply.body[reply.body.len() - r.remaining()..];
                    match kind {
                        CREATE | CREATE2 => model.learn(*s, *op, rest, 0, body),
                        _ => {}
                    }
                    // Skip this result's body.
                    match kind {
                        -1 => drop(r.i32()),
                        CREATE => drop(r.string()),
                        CREATE2 => {
                            let _ = r.string();
                            let _ = r.stat();
                        }
                        SET_DATA => drop(r.stat()),
                        _ => {}
                    }
                }
            }
        }
        Step::CloseAndReopen(s) => model.watches[*s].clear(),
        Step::AddAuth(..) | Step::Reconnect(_) => {}
    }
}

#[test]
fn herd_answers_every_step_as_zookeeper_does() {
    // No container or TTL sweep during the run: it deletes on a timer.
    let day = "znode.container.checkIntervalMs=86400000";
    let Some(zk) = common::zookeeper::start("differential", "forceSync=no\n", &[day]) else {
        return;
    };
    let mut config = common::config();
    config.container_check_interval_ms = 86_400_000;
    let herd = common::start_with(config);
    let steps = env_or("HERD_DIFF_STEPS", DEFAULT_STEPS);
    let seeds: Vec<u64> = match std::env::var("HERD_DIFF_SEED") {
        Ok(one) => vec![one.parse().expect("HERD_DIFF_SEED is a number")],
        Err(_) => (1..=env_or("HERD_DIFF_SEEDS", DEFAULT_SEEDS)).collect(),
    };
    let verbose = seeds.len() == 1;
    for seed in seeds {
        if let Err(difference) = run_seed(&herd.addr, &zk.addr, seed, steps, verbose) {
            panic!("herd and ZooKeeper differ at {difference}");
        }
    }
}
