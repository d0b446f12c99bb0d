//! Sessions acting at once, on herd and on a real Apache ZooKeeper started
//! here. Their replies interleave as timing has it, so instead of comparing
//! them this checks ZooKeeper's guarantees over every session's whole history.
//!
//! Writers change three data znodes (conditional increments retried on
//! BadVersion, as Curator's SharedCount does; blind sets; multis setting two)
//! and the children of a group znode (ephemeral sequential members joining and
//! leaving), then close their sessions. Observers follow all four znodes: two
//! with one-shot watches set again on every notification, one with persistent
//! watches, one with a persistent-recursive watch on the top. They read other
//! znodes now and then, and have their connections cut (through a proxy) and
//! resumed on the same session with setWatches; one with persistent watches
//! reads again after resuming, since ZooKeeper does not replay what those
//! missed while disconnected.
//!
//! Checked for each seed, against both servers alike:
//! - no session sees a znode's version (the group's cversion) go back, nor the
//!   zxid of its replies;
//! - a one-shot notification comes only for an armed watch, and no reply shows
//!   a change to a znode with an armed watch before the notification of it;
//! - every write is counted once: a znode's final version is the number of
//!   acknowledged changes to it;
//! - every observer ends knowing the final version of every znode it follows.
//!
//! Run more: `HERD_CONC_SEEDS=50 HERD_CONC_WRITES=200 cargo test --release -p
//! herd-server --test concurrent -- --nocapture`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::raw;
use common::session::RawSession;
use engine::sim::{env_or, Rng};
use herd_proto::jute::{Reader, Write};
use herd_proto::opcode::*;

const WRITERS: usize = 3;
const DEFAULT_SEEDS: u64 = 6;
const DEFAULT_WRITES: usize = 150;
/// How long observers may take to catch up once the writers are done.
const CATCH_UP: Duration = Duration::from_secs(20);
const SESSION_TIMEOUT_MS: i32 = 30_000;

// Events and errors (Watcher.Event, KeeperException).
const NODE_CREATED: i32 = 1;
const NODE_DELETED: i32 = 2;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;
const BAD_VERSION: i32 = -103;
const EPHEMERAL_SEQUENTIAL: i32 = 3;

type Checked<T> = Result<T, String>;

/// The znodes of one seed's run.
#[derive(Clone)]
struct Layout {
    top: String,
    data: Vec<String>,
    group: String,
}

impl Layout {
    fn new(seed: u64) -> Layout {
        let top = format!("/conc{seed}");
        Layout {
            data: (0..3).map(|i| format!("{top}/d{i}")).collect(),
            group: format!("{top}/group"),
            top,
        }
    }

    /// Every znode an observer follows.
    fn followed(&self) -> Vec<String> {
        let mut all = self.data.clone();
        all.push(self.group.clone());
        all
    }
}

fn path_watch(path: &str, watch: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.string(path);
    b.bool(watch);
    b
}

fn set_data(b: &mut Vec<u8>, path: &str, data: &[u8], version: i32) {
    b.string(path);
    b.buffer(data);
    b.i32(version);
}

fn create(path: &str, flags: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.string(path);
    b.buffer(b"");
    b.acls(&engine::acl::Acl::open_unsafe());
    b.i32(flags);
    b
}

/// A read of a followed znode, and the version its reply shows: a data
/// znode's version, or the group's cversion.
fn read(layout: &Layout, path: &str, watch: bool) -> (i32, Vec<u8>) {
    let op = if path == layout.group {
        GET_CHILDREN2
    } else {
        GET_DATA
    };
    (op, path_watch(path, watch))
}

fn version_in(op: i32, body: &[u8]) -> Checked<i32> {
    let mut r = Reader::new(body);
    let stat = match op {
        GET_DATA => r.buffer().and_then(|_| r.stat()),
        GET_CHILDREN2 => r.strings().and_then(|_| r.stat()),
        _ => r.stat(),
    }
    .map_err(|_| format!("a reply to op {op} without a stat"))?;
    Ok(if op == GET_CHILDREN2 {
        stat.cversion
    } else {
        stat.version
    })
}

/// A frame from the server: `(xid, zxid, err, body)`.
type Frame = (i32, i64, i32, Vec<u8>);

/// A session over raw frames, through a proxy that can cut its connection.
struct Client {
    name: String,
    conn: RawSession,
    next_xid: i32,
    /// The highest version seen of each znode.
    versions: BTreeMap<String, i32>,
}

impl Client {
    fn open(addr: &str, name: String, read_only_flag: bool) -> Client {
        Client {
            conn: RawSession::open(addr, read_only_flag, SESSION_TIMEOUT_MS, &name),
            name,
            next_xid: 1,
            versions: BTreeMap::new(),
        }
    }

    /// Cuts the connection (what was on its way is lost) and opens a new one
    /// on the same session.
    fn resume(&mut self) {
        self.conn.cut();
        self.conn.resume(&self.name);
    }

    fn send(&mut self, op: i32, body: &[u8]) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        raw::request(&mut self.conn.stream, xid, op, body);
        xid
    }

    /// The next frame, if one starts arriving within `wait`. A reply's zxid
    /// may not be older than one before it.
    fn next(&mut self, wait: Duration) -> Checked<Option<Frame>> {
        let Some(frame) = raw::try_read_reply(&mut self.conn.stream, wait) else {
            return Ok(None);
        };
        if frame.0 > 0 {
            if frame.1 < self.conn.last_zxid {
                return Err(format!(
                    "{}: reply {} carries zxid {:#x} after one with {:#x}",
                    self.name, frame.0, frame.1, self.conn.last_zxid
                ));
            }
            self.conn.last_zxid = frame.1;
        }
        Ok(Some(frame))
    }

    /// Sends a request and waits for its reply: `(err, body)`. This client
    /// holds no watches, so nothing else may arrive.
    fn call(&mut self, op: i32, body: &[u8]) -> Checked<(i32, Vec<u8>)> {
        let xid = self.send(op, body);
        match self.next(raw::READ_TIMEOUT)? {
            Some((got, _, err, body)) if got == xid => Ok((err, body)),
            Some(other) => Err(format!(
                "{}: expected reply {xid}, got {other:?}",
                self.name
            )),
            None => Err(format!("{}: no reply to {xid} (op {op})", self.name)),
        }
    }

    /// Records that a reply showed `path` at `version`; versions never go back.
    fn saw(&mut self, path: &str, version: i32) -> Checked<()> {
        let known = self.versions.entry(path.to_owned()).or_insert(version);
        if version < *known {
            return Err(format!(
                "{}: {path} went back from version {known} to {version}",
                self.name
            ));
        }
        *known = version;
        Ok(())
    }
}

// ---------------------------------------------------------------- writers

/// What one writer had acknowledged: changes per znode (data versions and
/// the group's child changes), and members still present when it closed.
#[derive(Default)]
struct Acked {
    changes: BTreeMap<String, i32>,
    members_left: i32,
}

fn writer(addr: &str, layout: &Layout, seed: u64, n: usize, writes: usize) -> Checked<Acked> {
    let mut rng = Rng(seed.wrapping_mul(1000) + n as u64);
    let mut c = Client::open(addr, format!("writer {n}"), n.is_multiple_of(2));
    let mut acked = Acked::default();
    let mut members: Vec<String> = Vec::new();
    let expect_ok = |what: &str, err: i32| -> Checked<()> {
        if err == 0 {
            Ok(())
        } else {
            Err(format!("writer {n}: {what} failed with {err}"))
        }
    };
    for _ in 0..writes {
        match rng.below(10) {
            0..=3 => {
                // A conditional increment, read again on BadVersion.
                let path = rng.pick(&layout.data).clone();
                let mut tries = 0;
                loop {
                    tries += 1;
                    if tries > 200 {
                        return Err(format!("writer {n}: no increment of {path} in 200 tries"));
                    }
                    let (err, body) = c.call(GET_DATA, &path_watch(&path, false))?;
                    expect_ok("getData", err)?;
                    let version = version_in(GET_DATA, &body)?;
                    c.saw(&path, version)?;
                    let value = Reader::new(&body)
                        .buffer()
                        .map_or(0, |d| d.try_into().map_or(0, i32::from_be_bytes));
                    let mut b = Vec::new();
                    set_data(&mut b, &path, &(value + 1).to_be_bytes(), version);
                    let (err, body) = c.call(SET_DATA, &b)?;
                    if err == BAD_VERSION {
                        continue;
                    }
                    expect_ok("setData", err)?;
                    let now = version_in(SET_DATA, &body)?;
                    if now != version + 1 {
                        return Err(format!(
                            "writer {n}: setData of {path} at {version} made version {now}"
                        ));
                    }
                    c.saw(&path, now)?;
                    *acked.changes.entry(path).or_default() += 1;
                    break;
                }
            }
            4 | 5 => {
                let path = rng.pick(&layout.data).clone();
                let mut b = Vec::new();
                set_data(&mut b, &path, &(rng.next_u64() as i32).to_be_bytes(), -1);
                let (err, body) = c.call(SET_DATA, &b)?;
                expect_ok("setData", err)?;
                c.saw(&path, version_in(SET_DATA, &body)?)?;
                *acked.changes.entry(path).or_default() += 1;
            }
            6 => {
                let first = rng.below(layout.data.len());
                let paths = [
                    layout.data[first].clone(),
                    layout.data[(first + 1) % layout.data.len()].clone(),
                ];
                let mut b = Vec::new();
                for path in &paths {
                    b.i32(SET_DATA);
                    b.bool(false);
                    b.i32(-1);
                    set_data(&mut b, path, b"multi", -1);
                }
                b.i32(-1);
                b.bool(true);
                b.i32(-1);
                let (err, body) = c.call(MULTI, &b)?;
                expect_ok("multi", err)?;
                let mut r = Reader::new(&body);
                for path in &paths {
                    let header = (r.i32(), r.bool(), r.i32());
                    if header != (Ok(SET_DATA), Ok(false), Ok(0)) {
                        return Err(format!("writer {n}: multi result {header:?}"));
                    }
                    let version = r.stat().map_err(|_| "multi result stat")?.version;
                    c.saw(path, version)?;
                    *acked.changes.entry(path.clone()).or_default() += 1;
                }
            }
            choice => {
                if choice == 9 && !members.is_empty() {
                    let member = members.swap_remove(rng.below(members.len()));
                    let mut b = Vec::new();
                    b.string(&member);
                    b.i32(-1);
                    let (err, _) = c.call(DELETE, &b)?;
                    expect_ok("delete", err)?;
                } else {
                    let (err, body) = c.call(
                        CREATE,
                        &create(&format!("{}/m-", layout.group), EPHEMERAL_SEQUENTIAL),
                    )?;
                    expect_ok("create", err)?;
                    let path = Reader::new(&body).string().map_err(|_| "created path")?;
                    members.push(path);
                }
                *acked.changes.entry(layout.group.clone()).or_default() += 1;
            }
        }
    }
    let (err, _) = c.call(CLOSE_SESSION, &[])?;
    expect_ok("closeSession", err)?;
    acked.members_left = members.len() as i32;
    Ok(acked)
}

// ---------------------------------------------------------------- observers

#[derive(Clone, Copy, Debug)]
enum Follow {
    OneShot,
    Persistent,
    Recursive,
}

/// What the run tells the observers: the writers are done, and the final
/// version of every followed znode.
#[derive(Default)]
struct Outcome {
    done: AtomicBool,
    finals: OnceLock<BTreeMap<String, i32>>,
}

struct Observer {
    c: Client,
    layout: Layout,
    follow: Follow,
    /// One-shot watches whose read has been answered, by path: the version
    /// that read showed.
    armed: BTreeMap<String, i32>,
    /// Requests sent and not yet answered, by xid: the read's op, path and
    /// whether it sets a watch (`None` for addWatch and setWatches).
    pending: BTreeMap<i32, Option<(i32, String, bool)>>,
}

impl Observer {
    fn read(&mut self, path: &str, watch: bool) {
        let (op, body) = read(&self.layout, path, watch);
        let xid = self.c.send(op, &body);
        self.pending.insert(xid, Some((op, path.to_owned(), watch)));
    }

    fn persistent_watches(&self) -> Vec<(String, i32)> {
        match self.follow {
            Follow::OneShot => Vec::new(),
            Follow::Persistent => self.layout.followed().into_iter().map(|p| (p, 0)).collect(),
            Follow::Recursive => vec![(self.layout.top.clone(), 1)],
        }
    }

    fn start(&mut self) {
        for (path, mode) in self.persistent_watches() {
            let mut b = Vec::new();
            b.string(&path);
            b.i32(mode);
            let xid = self.c.send(ADD_WATCH, &b);
            self.pending.insert(xid, None);
        }
        let watch = matches!(self.follow, Follow::OneShot);
        for path in self.layout.followed() {
            self.read(&path, watch);
        }
    }

    /// Cuts the connection and resumes the session as a client does: its
    /// watches again with setWatches, and the reads that lost their replies
    /// sent again (with persistent watches, every znode read again).
    fn resume(&mut self) {
        self.c.resume();
        let lost: Vec<_> = std::mem::take(&mut self.pending)
            .into_values()
            .flatten()
            .collect();
        let persistent = self.persistent_watches();
        let mut b = Vec::new();
        b.i64(self.c.conn.last_zxid);
        let data: Vec<&String> = self
            .armed
            .keys()
            .filter(|p| **p != self.layout.group)
            .collect();
        let child: Vec<&String> = self
            .armed
            .keys()
            .filter(|p| **p == self.layout.group)
            .collect();
        b.strings(&data);
        b.strings::<&str>(&[]);
        b.strings(&child);
        let op = if persistent.is_empty() {
            SET_WATCHES
        } else {
            let of = |mode| -> Vec<&str> {
                persistent
                    .iter()
                    .filter(|(_, m)| *m == mode)
                    .map(|(p, _)| p.as_str())
                    .collect()
            };
            b.strings(&of(0));
            b.strings(&of(1));
            SET_WATCHES2
        };
        let xid = self.c.send(op, &b);
        self.pending.insert(xid, None);
        if persistent.is_empty() {
            for (_, path, watch) in lost {
                self.read(&path, watch);
            }
        } else {
            for path in self.layout.followed() {
                self.read(&path, false);
            }
        }
    }

    fn notified(&mut self, kind: i32, path: &str) -> Checked<()> {
        let name = &self.c.name;
        let unexpected = || format!("{name}: unexpected event {kind} for {path}");
        match self.follow {
            Follow::OneShot => {
                let expected = if path == self.layout.group {
                    NODE_CHILDREN_CHANGED
                } else {
                    NODE_DATA_CHANGED
                };
                if kind != expected {
                    return Err(unexpected());
                }
                if self.armed.remove(path).is_none() {
                    return Err(format!(
                        "{name}: event {kind} for {path} with no watch armed"
                    ));
                }
                self.read(path, true);
            }
            Follow::Persistent => match kind {
                NODE_DATA_CHANGED | NODE_CHILDREN_CHANGED => self.read(path, false),
                _ => return Err(unexpected()),
            },
            Follow::Recursive => match kind {
                NODE_DATA_CHANGED if self.layout.data.iter().any(|d| d == path) => {
                    self.read(path, false)
                }
                NODE_CREATED | NODE_DELETED
                    if path
                        .strip_prefix(&self.layout.group)
                        .is_some_and(|rest| rest.starts_with('/')) =>
                {
                    let group = self.layout.group.clone();
                    self.read(&group, false);
                }
                _ => return Err(unexpected()),
            },
        }
        Ok(())
    }

    fn answered(&mut self, xid: i32, err: i32, body: &[u8]) -> Checked<()> {
        let name = self.c.name.clone();
        let Some(request) = self.pending.remove(&xid) else {
            return Err(format!("{name}: a reply {xid} to no request"));
        };
        if err != 0 {
            return Err(format!(
                "{name}: request {xid} ({request:?}) failed with {err}"
            ));
        }
        let Some((op, path, watch)) = request else {
            return Ok(());
        };
        let version = version_in(op, body)?;
        self.c.saw(&path, version)?;
        if let Some(&at) = self.armed.get(&path) {
            if version > at {
                return Err(format!(
                    "{name}: a reply shows {path} at version {version} before the \
                     notification for the watch set at {at}"
                ));
            }
        }
        if watch {
            self.armed.insert(path, version);
        }
        Ok(())
    }

    /// Whether this observer knows the final version of everything it follows.
    fn caught_up(&self, finals: &BTreeMap<String, i32>) -> bool {
        self.pending.is_empty()
            && finals
                .iter()
                .all(|(path, v)| self.c.versions.get(path) == Some(v))
    }
}

/// What an observer went through: resumed connections and notifications.
#[derive(Default, Debug)]
struct Seen {
    resumed: usize,
    events: usize,
}

fn observer(
    addr: &str,
    layout: Layout,
    seed: u64,
    n: usize,
    follow: Follow,
    outcome: &Outcome,
) -> Checked<Seen> {
    let mut rng = Rng(seed.wrapping_mul(1000) + 100 + n as u64);
    let name = format!("observer {n} ({follow:?})");
    let mut o = Observer {
        c: Client::open(addr, name.clone(), n % 2 == 1),
        layout,
        follow,
        armed: BTreeMap::new(),
        pending: BTreeMap::new(),
    };
    o.start();
    let started = Instant::now();
    let mut next_cut = started + Duration::from_millis(50 + rng.below(300) as u64);
    let mut next_ping = started + Duration::from_secs(3);
    let mut catch_up_by = None;
    let mut seen = Seen::default();
    loop {
        let now = Instant::now();
        if outcome.done.load(Ordering::Acquire) {
            let finals = outcome.finals.get().expect("finals are set before done");
            if o.caught_up(finals) {
                return Ok(seen);
            }
            let by = *catch_up_by.get_or_insert(now + CATCH_UP);
            if now > by {
                return Err(format!(
                    "{name}: still at {:?} after the writers ended at {finals:?} \
                     (armed {:?}, waiting for {:?})",
                    o.c.versions, o.armed, o.pending
                ));
            }
        } else if now > next_cut {
            o.resume();
            seen.resumed += 1;
            next_cut = now + Duration::from_millis(20 + rng.below(150) as u64);
        }
        if now > next_ping {
            raw::request(&mut o.c.conn.stream, -2, PING, &[]);
            next_ping = now + Duration::from_secs(3);
        }
        let Some((xid, _, err, body)) = o.c.next(Duration::from_millis(20))? else {
            continue;
        };
        match xid {
            -1 => {
                let mut r = Reader::new(&body);
                let kind = r.i32().map_err(|_| "event type")?;
                let _state = r.i32();
                let path = r.string().map_err(|_| "event path")?;
                o.notified(kind, &path)?;
                seen.events += 1;
            }
            -2 => {}
            _ => o.answered(xid, err, &body)?,
        }
        if rng.chance(10) {
            let followed = o.layout.followed();
            let path = rng.pick(&followed).clone();
            o.read(&path, false);
        }
    }
}

// ---------------------------------------------------------------- a run

/// One seed against the server at `addr`; what each observer went through.
fn run_seed(addr: &str, seed: u64, writes: usize) -> Checked<Vec<Seen>> {
    let layout = Layout::new(seed);
    let mut setup = Client::open(addr, "setup".into(), true);
    for path in std::iter::once(&layout.top)
        .chain(&layout.data)
        .chain(std::iter::once(&layout.group))
    {
        let (err, _) = setup.call(CREATE, &create(path, 0))?;
        if err != 0 {
            return Err(format!("create {path}: {err}"));
        }
    }
    let outcome = Arc::new(Outcome::default());
    let follows = [
        Follow::OneShot,
        Follow::OneShot,
        Follow::Persistent,
        Follow::Recursive,
    ];
    let observers: Vec<_> = follows
        .iter()
        .enumerate()
        .map(|(n, &follow)| {
            let (addr, layout, outcome) = (addr.to_owned(), layout.clone(), outcome.clone());
            thread::spawn(move || observer(&addr, layout, seed, n, follow, &outcome))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (addr, layout) = (addr.to_owned(), layout.clone());
            thread::spawn(move || writer(&addr, &layout, seed, n, writes))
        })
        .collect();
    let mut expected: BTreeMap<String, i32> =
        layout.followed().into_iter().map(|p| (p, 0)).collect();
    let mut failure = None;
    for w in writers {
        match w.join().expect("writer thread") {
            Ok(acked) => {
                for (path, n) in acked.changes {
                    *expected.get_mut(&path).expect("a followed znode") += n;
                }
                // Closing the session deleted the members it still had.
                *expected.get_mut(&layout.group).expect("the group") += acked.members_left;
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let mut finals = BTreeMap::new();
    for path in layout.followed() {
        let (op, body) = read(&layout, &path, false);
        let (err, body) = setup.call(op, &body)?;
        if err != 0 {
            return Err(format!("final read of {path}: {err}"));
        }
        finals.insert(path, version_in(op, &body)?);
    }
    outcome.finals.set(finals.clone()).expect("set once");
    outcome.done.store(true, Ordering::Release);
    let mut seen = Vec::new();
    for o in observers {
        match o.join().expect("observer thread") {
            Ok(s) => seen.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if finals != expected {
        return Err(format!(
            "final versions {finals:?}, but the acknowledged writes make {expected:?}"
        ));
    }
    Ok(seen)
}

/// Runs every seed against the server at `addr`; the first failure, with its seed.
fn run_all(name: &str, addr: &str) {
    let seeds = env_or("HERD_CONC_SEEDS", DEFAULT_SEEDS);
    let writes = env_or("HERD_CONC_WRITES", DEFAULT_WRITES);
    for seed in 1..=seeds {
        let started = Instant::now();
        match run_seed(addr, seed, writes) {
            Ok(seen) => eprintln!(
                "{name}: seed {seed} kept every guarantee in {:?}; observers {seen:?}",
                started.elapsed()
            ),
            Err(e) => panic!("{name}, seed {seed}: {e}"),
        }
    }
}

#[test]
fn herd_keeps_zookeepers_guarantees_under_concurrent_sessions() {
    let herd = common::start();
    run_all("herd", &herd.addr);
}

/// The same histories on ZooKeeper: what this test asks is what ZooKeeper
/// guarantees, not only what herd does.
#[test]
fn zookeeper_keeps_the_guarantees_this_test_checks() {
    let Some(zk) = common::zookeeper::start("concurrent", "forceSync=no\n", &[]) else {
        return;
    };
    run_all("ZooKeeper", &zk.addr);
}
