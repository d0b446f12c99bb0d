//! The commit pipeline: the one sequencer that orders every write (ZooKeeper's
//! `PrepRequestProcessor` -> `SyncRequestProcessor` -> `FinalRequestProcessor`),
//! run on shard 0 when standalone ([`crate::hosted`]) and on a thread of its
//! own in an ensemble member ([`Pipeline::run`]).
//!
//! ```text
//!  shards ──ToPipeline──► [prep: session check, validate, zxid, Txn]   one batch at a time
//!                               │
//!                         [log]  encoded records ──► log writer thread
//!                               │   (group commit: one write + fdatasync per batch;
//!                               │    the next batch is prepared meanwhile)
//!                         Durable(zxid) ◄──┘
//!                               │
//!                         for each txn in zxid order:
//!                           commit  ──► DataTree
//!                           Committed{zxid, events} ──► every shard
//!                           reply   ──► the origin shard
//! ```
//!
//! Invariants:
//! - zxids are assigned in arrival order and committed in that order;
//! - every zxid reaches every shard as one `Committed` message, in zxid order,
//!   after the tree shows it; a shard holds back a read reply until it has seen
//!   `Committed` for everything the read could have observed, so notifications
//!   always precede replies that reflect their change;
//! - a reply leaves after its transaction is in the tree (read-your-writes) and
//!   after every earlier transaction's events (zxid order on each session);
//! - sessions are created, closed and expired only by committed transactions;
//! - nothing is committed or acknowledged before the fdatasync covering it, and
//!   after a failed write or fdatasync nothing more is (reads go on).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::acl::Id;
use engine::forward::{self, Forwarded, Request};
use engine::log::{self, LogEntry, PayloadBuf, Proposal};
use engine::op::{OpResult, WriteOp};
use engine::prep::{self, Context};
use engine::session::{self, Refused, SessionTracker};
use engine::stat::NodeKind;
use engine::tree::DataTree;
use engine::txn::{apply, AclCache, Change, Pending, Reparented, Txn, View, WatchEvent};
use engine::types::now_ms;
use engine::zab::broadcast::{Payload, Record, Snapshot};
use engine::zab::Sid;
use engine::{ErrorCode, SessionId, Zxid};
use herd_proto::ConnectRequest;

use crate::config::Config;
use crate::inbox::ToShardSender;
use crate::member::ToMember;
use crate::message::{ConnId, FromZab, Serving, ToPipeline, ToShard};
use crate::stats::{self, Shared};
use crate::storage::{self, LogBatch, Resume};

/// Most messages taken from the inbox into one batch.
pub const MAX_BATCH: usize = 4096;

struct Origin {
    shard: usize,
    conn: ConnId,
    xid: i32,
}

/// One prepared transaction, or a reply that only needs ordering (sync, handshakes).
struct Entry {
    zxid: Zxid,
    /// Whether `zxid` was taken by this entry (a transaction) or is just the current one.
    is_txn: bool,
    changes: Vec<Change>,
    events: Vec<WatchEvent>,
    reply: Option<(Origin, OpResult)>,
    /// A message for a shard in commit order: a handshake's outcome, or a
    /// connection to close.
    message: Option<(usize, ToShard)>,
    closes_session: Option<SessionId>,
}

pub struct Pipeline {
    config: Arc<Config>,
    tree: Arc<DataTree>,
    shared: Arc<Shared>,
    pending: Pending,
    acls: AclCache,
    tracker: SessionTracker,
    shards: Vec<ToShardSender>,
    out: Vec<Vec<ToShard>>,
    zxid: Zxid,
    secret: [u8; 16],
    /// Which connection currently holds each session.
    owners: HashMap<SessionId, (usize, ConnId)>,
    next_container_check: Instant,
    next_expiry_check: Instant,
    super_ids: Arc<[Id]>,
    /// The log writer (standalone only).
    log: Option<Sender<LogBatch>>,
    /// Records of transactions prepared since the last batch went to the log.
    log_buf: Vec<u8>,
    /// Where each transaction's payload is encoded before it is recorded.
    payloads: PayloadBuf,
    log_first: Option<Zxid>,
    /// Prepared batches waiting for durability, with the zxid each needs.
    awaiting: VecDeque<(Zxid, Vec<Entry>)>,
    durable_zxid: Zxid,
    /// Why the log failed; from then on writes are refused.
    failed: Option<String>,
    /// Transactions committed since the last snapshot, and when the next is due.
    since_snapshot: u64,
    snapshot_at: u64,
    /// The snapshot being written, if one is: the pipeline does not wait for
    /// it, except when it stops (see `Drop`), so that no snapshot is left
    /// half-written under a data directory a new server may already use.
    snapshot: Option<JoinHandle<()>>,
    /// The CPUs snapshot threads run on: the process's, as the pipeline may
    /// run on a shard pinned to one.
    snapshot_cpus: Arc<[usize]>,
    /// Set when this server is an ensemble member.
    member: Option<Replicated>,
}

/// An ensemble member's side of the pipeline. Leading, it prepares writes as
/// a standalone server does, but hands their records to Zab, which reports
/// them committed (in place of the log writer's durable). Following, it
/// forwards its clients' requests to the leader and applies what Zab
/// commits, answering its clients from the records that name them. Not
/// serving, it closes every client connection and refuses new ones (clients
/// move to another member with their sessions).
struct Replicated {
    to: Sender<ToMember>,
    serving: Serving,
    term: u64,
    /// Requests forwarded to the leader, by (session, cxid): who waits.
    forwarded: HashMap<(SessionId, i32), Waiting>,
    /// Records prepared since the last batch went to Zab.
    proposals: Vec<(Zxid, Payload)>,
    /// The member started from a fuzzy snapshot: the records up to here (its
    /// log at start-up) are applied over it, noting the parents whose child
    /// counts that may leave off; they are recounted before it serves.
    fuzzy_until: Zxid,
    reparented: Reparented,
}

/// Hands a request for the leader to the member, which forwards it; false
/// when the member is gone.
fn to_leader(m: &Replicated, request: &Forwarded) -> bool {
    let payload = Payload::from(forward::encode(request).as_slice());
    m.to.send(ToMember::Forward(payload)).is_ok()
}

/// A client waiting for its forwarded request to commit.
enum Waiting {
    Reply(Origin),
    Connect {
        shard: usize,
        conn: ConnId,
    },
    /// A session reconnecting through this learner: answered once its
    /// revalidation's record commits.
    Reconnect {
        shard: usize,
        conn: ConnId,
    },
}

impl Drop for Pipeline {
    /// A snapshot still being written finishes before the pipeline is gone
    /// (and with it the server, its data directory lock released).
    fn drop(&mut self) {
        if let Some(t) = self.snapshot.take() {
            let _ = t.join();
        }
    }
}

/// Where prepared records go to become durable.
pub enum Sink {
    /// A standalone server's log writer.
    Log(Sender<LogBatch>),
    /// An ensemble member's Zab driver, and the last record of its log at
    /// start-up (applied over its fuzzy snapshot as Zab commits it).
    Zab(Sender<ToMember>, Zxid),
}

/// A point in the second half of `snap_count`, as ZooKeeper picks it.
fn snapshot_point(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + (now_ms() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) % half
}

impl Pipeline {
    pub fn new(
        config: Arc<Config>,
        tree: Arc<DataTree>,
        shared: Arc<Shared>,
        shards: Vec<ToShardSender>,
        resume: Resume,
        sink: Sink,
    ) -> Pipeline {
        let (log, member) = match sink {
            Sink::Log(log) => (Some(log), None),
            Sink::Zab(to, fuzzy_until) => (None, Some((to, fuzzy_until))),
        };
        let n = shards.len();
        let check = Duration::from_millis(config.container_check_interval_ms);
        let config_snap_count = config.snap_count;
        let now = now_ms();
        let mut tracker = SessionTracker::new(config.server_id, now);
        // A recovered session whose timeout ran out while herd was down expires
        // before anything else is served ([`Pipeline::run`]); the others get a
        // full timeout from now to reconnect, as in ZooKeeper.
        for (session, timeout_ms) in tree.sessions() {
            let expired_while_down = now - resume.down_since_ms >= i64::from(timeout_ms);
            let last_seen = if expired_while_down {
                resume.down_since_ms
            } else {
                now
            };
            tracker.add(session, timeout_ms, last_seen);
        }
        // A start that replayed log records snapshots at once (in the
        // background), so the next start has less to replay; ZooKeeper also
        // snapshots on every start, before serving.
        let replayed = resume.startup.txns_loaded;
        let secret = resume.secret;
        Pipeline {
            shared,
            tracker,
            durable_zxid: tree.last_zxid(),
            zxid: tree.last_zxid(),
            config,
            tree,
            pending: Pending::default(),
            acls: AclCache::default(),
            shards,
            out: (0..n).map(|_| Vec::new()).collect(),
            secret,
            owners: HashMap::new(),
            next_container_check: Instant::now() + check,
            next_expiry_check: Instant::now(),
            super_ids: vec![Id::new("super", "")].into(),
            log,
            log_buf: Vec::new(),
            payloads: PayloadBuf::default(),
            log_first: None,
            awaiting: VecDeque::new(),
            failed: None,
            since_snapshot: replayed,
            snapshot_at: if replayed > 0 {
                0
            } else {
                snapshot_point(config_snap_count)
            },
            snapshot: None,
            snapshot_cpus: crate::cpus::allowed().into(),
            member: member.map(|(to, fuzzy_until)| Replicated {
                to,
                serving: Serving::No,
                term: 0,
                forwarded: HashMap::new(),
                proposals: Vec::new(),
                fuzzy_until,
                reparented: Reparented::default(),
            }),
        }
    }

    fn serving(&self) -> Option<Serving> {
        self.member.as_ref().map(|m| m.serving)
    }

    /// Whether this pipeline prepares writes: standalone, or leading.
    fn prepares(&self) -> bool {
        matches!(self.serving(), None | Some(Serving::Leading { .. }))
    }

    /// Runs on a thread of its own (an ensemble member's) until `Stop`
    /// arrives or every sender is gone.
    pub fn run(mut self, inbox: Receiver<Vec<ToPipeline>>) {
        let tick = self.config.session_check_interval();
        let mut batch = Vec::new();
        self.start();
        loop {
            match inbox.recv_timeout(tick) {
                Ok(msgs) => batch.extend(msgs),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(msgs) => batch.extend(msgs),
                    Err(_) => break,
                }
            }
            if !self.handle(&mut batch) {
                return;
            }
        }
    }

    /// What comes before serving: sessions that expired while herd was
    /// down close first, so no request reaches the pipeline before their
    /// closes have zxids.
    pub(crate) fn start(&mut self) {
        let mut expired = Vec::new();
        self.expire_sessions(&mut expired);
        if !expired.is_empty() {
            self.make_durable(expired);
        }
        self.maybe_snapshot();
    }

    /// Handles the messages of `batch` (emptying it) and the periodic
    /// checks that are due; false once `Stop` was among them, when those
    /// before it are handled and the rest dropped.
    pub(crate) fn handle(&mut self, batch: &mut Vec<ToPipeline>) -> bool {
        let stop = match batch.iter().position(|m| matches!(m, ToPipeline::Stop)) {
            Some(at) => {
                batch.truncate(at);
                true
            }
            None => false,
        };
        let mut entries = Vec::with_capacity(batch.len());
        for msg in batch.drain(..) {
            self.prepare(msg, &mut entries);
        }
        self.expire_sessions(&mut entries);
        self.check_containers(&mut entries);
        if !entries.is_empty() {
            self.make_durable(entries);
        }
        self.commit_durable();
        !stop
    }

    fn prepare(&mut self, msg: ToPipeline, entries: &mut Vec<Entry>) {
        let now = now_ms();
        match msg {
            ToPipeline::Connect {
                shard,
                conn,
                request,
            } => self.connect(shard, conn, request, entries),
            ToPipeline::Write {
                shard,
                conn,
                xid,
                session,
                auth,
                op,
            } => {
                let origin = Origin { shard, conn, xid };
                match self.serving() {
                    Some(Serving::Following) => {
                        let request = Request::Write(op);
                        self.forward(session, auth.to_vec(), request, Waiting::Reply(origin));
                    }
                    Some(Serving::No) => self.close(origin.shard, origin.conn),
                    _ => {
                        let me = self.me();
                        self.write(Some(origin), me, session, xid, &auth, op, entries)
                    }
                }
            }
            ToPipeline::Sync {
                shard,
                conn,
                xid,
                session,
            } => {
                let origin = Origin { shard, conn, xid };
                match self.serving() {
                    Some(Serving::Following) => {
                        // The leader answers with a record of its own, committed
                        // after everything it committed before.
                        self.forward(session, Vec::new(), Request::Sync, Waiting::Reply(origin));
                    }
                    Some(Serving::No) => self.close(shard, conn),
                    _ => entries.push(Entry::reply(self.zxid, origin, OpResult::Check)),
                }
            }
            ToPipeline::Touch(sessions) => match &self.member {
                Some(m) if m.serving == Serving::Following => {
                    let _ = m.to.send(ToMember::Touch(sessions));
                }
                _ => {
                    for s in sessions {
                        self.tracker.touch(s, now);
                    }
                }
            },
            ToPipeline::Zab(from) => self.zab(from, entries),
            ToPipeline::Disconnected { session, conn } => {
                if self.owners.get(&session).is_some_and(|(_, c)| *c == conn) {
                    self.owners.remove(&session);
                }
            }
            ToPipeline::Durable(Ok(zxid)) => self.durable_zxid = zxid,
            ToPipeline::Durable(Err(why)) => self.fail(why),
            ToPipeline::Stop => unreachable!("handled by run"),
        }
    }

    /// Prepares a client's write: from this server's client (`origin`, who
    /// gets the reply) or forwarded by a learner (`None`: the learner answers
    /// when the record commits, so every outcome is a record).
    /// Prepares a write of `session` that came through member `through`
    /// (this one for its own clients' requests): answered through `origin`,
    /// or, forwarded, by its record.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        origin: Option<Origin>,
        through: Sid,
        session: SessionId,
        cxid: i32,
        auth: &[Id],
        op: WriteOp,
        entries: &mut Vec<Entry>,
    ) {
        // A close is exempt from the owner test, as in ZooKeeper: the
        // expiry of a session is no owner's.
        let through = (op != WriteOp::CloseSession).then_some(through);
        let refused = if self.failed.is_some() {
            Some(ErrorCode::SystemError)
        } else {
            match self.tracker.check(session, through, now_ms()) {
                Ok(()) => None,
                Err(Refused::Expired) => Some(ErrorCode::SessionExpired),
                Err(Refused::Moved) => Some(ErrorCode::SessionMoved),
            }
        };
        if let Some(code) = refused {
            let result = OpResult::Error(code);
            match origin {
                // ZooKeeper answers a moved session's request by closing
                // the connection (ZOOKEEPER-710), as a learner does when
                // this comes back as the request's record.
                Some(origin) if code == ErrorCode::SessionMoved => {
                    entries.push(self.closing(origin));
                }
                Some(origin) => entries.push(Entry::reply(self.zxid, origin, result)),
                None => {
                    let txn = Txn::Error(code.code());
                    entries.push(self.record_only(session, cxid, txn));
                }
            }
            return;
        }
        if op == WriteOp::CloseSession {
            self.tracker.set_closing(session);
        }
        let closes = (op == WriteOp::CloseSession).then_some(session);
        let Some((mut entry, result)) = self.execute(&op, session, cxid, auth) else {
            // Its record would not fit the log: refused as ZooKeeper
            // refuses a request over jute.maxbuffer, by closing the
            // connection (once the session's earlier replies are out).
            crate::warn!(
                "closing the connection of session 0x{session:x}: its request \
                 would need a log record over {} bytes",
                log::MAX_PAYLOAD
            );
            match origin {
                Some(origin) => entries.push(self.closing(origin)),
                None => {
                    let txn = Txn::Error(ErrorCode::MarshallingError.code());
                    entries.push(self.record_only(session, cxid, txn));
                }
            }
            return;
        };
        entry.reply = origin.map(|o| (o, result));
        entry.closes_session = closes;
        entries.push(entry);
    }

    /// Closes the connection a request came on, once the replies before it
    /// are out.
    fn closing(&self, origin: Origin) -> Entry {
        let close = ToShard::Close { conn: origin.conn };
        Entry {
            message: Some((origin.shard, close)),
            ..Entry::empty(self.zxid)
        }
    }

    /// A transaction that changes nothing, only answering a forwarded request.
    fn record_only(&mut self, session: SessionId, cxid: i32, txn: Txn) -> Entry {
        self.zxid += 1;
        let entry = LogEntry {
            time_ms: now_ms(),
            txn,
        };
        let recorded = encode(
            &mut self.payloads,
            self.member.is_some(),
            session,
            cxid,
            entry,
        );
        assert!(recorded, "a record without data is small");
        self.record();
        Entry {
            is_txn: true,
            ..Entry::empty(self.zxid)
        }
    }

    /// What Zab reports (an ensemble member only).
    fn zab(&mut self, from: FromZab, entries: &mut Vec<Entry>) {
        match from {
            FromZab::Role { serving, term } => self.role(serving, term),
            FromZab::Commit(records) => {
                if self.prepares() {
                    // Leading: every record committed is one this pipeline
                    // prepared in this term (see `member`).
                    if let Some((zxid, _)) = records.last() {
                        self.durable_zxid = self.durable_zxid.max(*zxid);
                    }
                } else {
                    for record in records {
                        self.apply_committed(record);
                    }
                    self.flush();
                    self.maybe_snapshot();
                }
            }
            FromZab::Install(snapshot) => self.install(snapshot),
            FromZab::Requests(requests) => {
                for (from, bytes) in requests {
                    match forward::decode(&bytes) {
                        Ok(f) if self.prepares() => self.forwarded(from, f, entries),
                        Ok(_) => {} // led no more: the learner looks again too
                        Err(e) => crate::warn!("a learner forwarded a bad request: {e}"),
                    }
                }
            }
            FromZab::Touched(sessions) => {
                let now = now_ms();
                for s in sessions {
                    self.tracker.touch(s, now);
                }
            }
            FromZab::SnapshotWanted => {
                let zxid = self.tree.last_zxid();
                let data = engine::snapshot::encode(&self.tree, zxid);
                if let Some(m) = &self.member {
                    let snapshot = Snapshot {
                        zxid,
                        data: Payload::from(data),
                    };
                    let _ = m.to.send(ToMember::Snapshot(snapshot));
                }
            }
            FromZab::Failed(why) => self.fail(why),
        }
    }

    /// A request learner `from` forwarded, prepared as the leader's own
    /// clients' are; its record answers it (a revalidation only moves the
    /// session to `from`).
    fn forwarded(&mut self, from: Sid, f: Forwarded, entries: &mut Vec<Entry>) {
        let Forwarded {
            session,
            cxid,
            auth,
            request,
        } = f;
        match request {
            Request::Write(op) => self.write(None, from, session, cxid, &auth, op, entries),
            Request::CreateSession { timeout_ms } => {
                let entry = if self.failed.is_some() {
                    self.record_only(session, cxid, Txn::Error(ErrorCode::SystemError.code()))
                } else {
                    self.create_session(session, cxid, timeout_ms, from)
                };
                entries.push(entry);
            }
            Request::Sync | Request::Revalidate => {
                // A revalidation first moves a live session to `from`; both
                // are answered by a check of `/` committed behind everything
                // before them (an expired session's is refused).
                if request == Request::Revalidate && self.tracker.touch(session, now_ms()) {
                    self.tracker.set_owner(session, from);
                }
                let check = WriteOp::Check {
                    path: "/".to_owned(),
                    version: -1,
                };
                self.write(None, from, session, cxid, &auth, check, entries);
            }
        }
    }

    /// The member's role changed. Whatever this pipeline prepared and has not
    /// seen committed is forgotten (what of it commits comes back as
    /// records), and its clients are disconnected: they reconnect, to this
    /// member or another, with their sessions.
    fn role(&mut self, serving: Serving, term: u64) {
        let Some(m) = &mut self.member else {
            return;
        };
        m.serving = serving;
        m.term = term;
        let mode = match serving {
            Serving::No => stats::MODE_NOT_SERVING,
            Serving::Leading { .. } => stats::MODE_LEADER,
            Serving::Following if self.config.ensemble.observer => stats::MODE_OBSERVER,
            Serving::Following => stats::MODE_FOLLOWER,
        };
        self.shared
            .mode
            .store(mode, std::sync::atomic::Ordering::Relaxed);
        m.proposals.clear();
        let waiting: Vec<Waiting> = m.forwarded.drain().map(|(_, w)| w).collect();
        for w in waiting {
            let (shard, conn) = match w {
                Waiting::Reply(o) => (o.shard, o.conn),
                Waiting::Connect { shard, conn } | Waiting::Reconnect { shard, conn } => {
                    (shard, conn)
                }
            };
            self.out[shard].push(ToShard::Close { conn });
        }
        for (_, entries) in std::mem::take(&mut self.awaiting) {
            for entry in entries {
                if let Some((origin, _)) = entry.reply {
                    self.out[origin.shard].push(ToShard::Close { conn: origin.conn });
                }
                if let Some((shard, ToShard::Connected { conn, .. })) = entry.message {
                    self.out[shard].push(ToShard::Close { conn });
                }
            }
        }
        for (_, (shard, conn)) in self.owners.drain() {
            self.out[shard].push(ToShard::Close { conn });
        }
        if let Some(m) = self.member.as_mut().filter(|_| serving != Serving::No) {
            let noted = std::mem::take(&mut m.reparented);
            self.tree.recount_children_of(&noted.parents);
        }
        self.pending = Pending::default();
        self.zxid = self.tree.last_zxid();
        self.durable_zxid = self.zxid;
        if let Serving::Leading { next } = serving {
            self.zxid = next - 1;
            self.durable_zxid = self.zxid;
            let now = now_ms();
            self.tracker = SessionTracker::new(self.config.server_id, now);
            for (session, timeout_ms) in self.tree.sessions() {
                self.tracker.add(session, timeout_ms, now);
            }
        }
        self.flush();
    }

    /// Applies a record Zab committed that this pipeline did not prepare
    /// (following): to the tree, its watches to every shard, and its answer
    /// to the client waiting here for it, if one is.
    fn apply_committed(&mut self, (zxid, payload): Record) {
        let proposal = match log::decode_proposal(&payload) {
            Ok(p) => p,
            Err(e) => return self.fail(format!("a committed record at 0x{zxid:x}: {e}")),
        };
        let Proposal {
            session,
            cxid,
            entry,
        } = proposal;
        let mut view = View::new(
            &self.tree,
            &mut self.pending,
            &mut self.acls,
            zxid,
            entry.time_ms,
        );
        let mut events = Vec::new();
        let result = apply(&entry.txn, &mut view, &mut events);
        let changes = view.into_changes();
        if let Some(m) = self.member.as_mut().filter(|m| zxid <= m.fuzzy_until) {
            m.reparented.note_changes(zxid, &changes);
        }
        self.tree.commit(zxid, &changes);
        self.pending.retire(zxid, &changes);
        self.zxid = zxid;
        self.durable_zxid = zxid;
        self.since_snapshot += 1;
        let events: Option<Arc<[WatchEvent]>> = (!events.is_empty()).then(|| events.into());
        for out in &mut self.out {
            out.push(ToShard::Committed {
                zxid,
                events: events.clone(),
            });
        }
        let waiting = self
            .member
            .as_mut()
            .and_then(|m| m.forwarded.remove(&(session, cxid)));
        if let Txn::CloseSession { session: closed } = entry.txn {
            if let Some((shard, conn)) = self.owners.remove(&closed) {
                let answered = matches!(&waiting, Some(Waiting::Reply(o)) if o.conn == conn);
                if !answered {
                    self.out[shard].push(ToShard::Close { conn });
                }
            }
        }
        match (waiting, &entry.txn) {
            (Some(Waiting::Reply(origin)), Txn::Error(code))
                if *code == ErrorCode::SessionMoved.code() =>
            {
                self.out[origin.shard].push(ToShard::Close { conn: origin.conn });
            }
            (Some(Waiting::Reply(origin)), _) => {
                self.out[origin.shard].push(ToShard::Reply {
                    conn: origin.conn,
                    xid: origin.xid,
                    zxid,
                    result,
                });
            }
            (Some(Waiting::Connect { shard, conn }), Txn::CreateSession { timeout_ms, .. }) => {
                let answer = self.connected(shard, conn, session, *timeout_ms);
                self.out[shard].push(answer);
            }
            (Some(Waiting::Connect { shard, conn }), _) => {
                self.out[shard].push(ToShard::refused(conn));
            }
            (Some(Waiting::Reconnect { shard, conn }), _) => {
                let answer = match self.tree.session_timeout(session) {
                    Some(timeout_ms) => self.connected(shard, conn, session, timeout_ms),
                    None => ToShard::refused(conn),
                };
                self.out[shard].push(answer);
            }
            (None, _) => {}
        }
    }

    /// Replaces the state with a leader's snapshot (SNAP). No client is
    /// served meanwhile (the member is synchronising).
    fn install(&mut self, snapshot: Snapshot) {
        match engine::snapshot::load(&snapshot.data) {
            Ok((zxid, tree)) => {
                // A snapshot being written walks the tree: it finishes first.
                if let Some(t) = self.snapshot.take() {
                    let _ = t.join();
                }
                self.tree.replace_with(tree);
                self.zxid = zxid;
                self.durable_zxid = zxid;
                self.pending = Pending::default();
                for out in &mut self.out {
                    out.push(ToShard::Committed { zxid, events: None });
                }
                self.flush();
            }
            Err(e) => self.fail(format!(
                "the leader's snapshot at 0x{:x}: {e}",
                snapshot.zxid
            )),
        }
    }

    /// Validates and applies one write to the pending view, taking a zxid and
    /// encoding its log record; returns the entry to commit and the write's
    /// result. `None`, with nothing changed, if the record would be larger than
    /// the log holds.
    fn execute(
        &mut self,
        op: &WriteOp,
        session: SessionId,
        cxid: i32,
        auth: &[Id],
    ) -> Option<(Entry, OpResult)> {
        let is_member = self.member.is_some();
        self.zxid += 1;
        let time_ms = now_ms();
        let ctx = Context {
            session,
            auth,
            extended_types: self.config.extended_types,
        };
        let mut view = View::new(
            &self.tree,
            &mut self.pending,
            &mut self.acls,
            self.zxid,
            time_ms,
        );
        let mark = view.mark();
        let prepared = prep::execute(op, &ctx, &mut view);
        let entry = LogEntry {
            time_ms,
            txn: prepared.txn,
        };
        if !encode(&mut self.payloads, is_member, session, cxid, entry) {
            view.rollback(mark);
            self.zxid -= 1;
            return None;
        }
        let changes = view.into_changes();
        self.record();
        let entry = Entry {
            is_txn: true,
            changes,
            events: prepared.events,
            ..Entry::empty(self.zxid)
        };
        Some((entry, prepared.result))
    }

    fn connect(
        &mut self,
        shard: usize,
        conn: ConnId,
        request: ConnectRequest,
        entries: &mut Vec<Entry>,
    ) {
        let now = now_ms();
        let refused = ToShard::refused(conn);
        let following = match self.serving() {
            Some(Serving::No) => return self.close(shard, conn),
            Some(Serving::Following) => true,
            _ => false,
        };
        if request.session_id == 0 {
            if self.failed.is_some() {
                entries.push(Entry {
                    message: Some((shard, refused)),
                    ..Entry::empty(self.zxid)
                });
                return;
            }
            let session = self.tracker.next_session_id();
            let timeout_ms = self.config.negotiate_timeout(request.timeout_ms);
            if following {
                // The leader creates it; the client hears once that commits.
                let request = Request::CreateSession { timeout_ms };
                self.forward(
                    session,
                    Vec::new(),
                    request,
                    Waiting::Connect { shard, conn },
                );
                return;
            }
            let me = self.me();
            let mut entry = self.create_session(session, 0, timeout_ms, me);
            entry.message = Some((shard, self.connected(shard, conn, session, timeout_ms)));
            entries.push(entry);
            return;
        }
        let session = request.session_id;
        let password_ok = request.password == session::password(&self.secret, session);
        // A learner asks the leader, as ZooKeeper's does, and answers once
        // the leader's answer commits here: the leader then has the session
        // as connected through this member, so the old connection's next
        // request is refused (SessionMoved) however soon it comes, and this
        // tree holds everything before it (a session created through another
        // member and not yet applied here included).
        let timeout = if following {
            if password_ok {
                let waiting = Waiting::Reconnect { shard, conn };
                return self.forward(session, Vec::new(), Request::Revalidate, waiting);
            }
            None
        } else if password_ok && self.tracker.touch(session, now) {
            let me = self.me();
            self.tracker.set_owner(session, me);
            self.tracker.timeout_ms(session)
        } else {
            None
        };
        let connected = match (password_ok, timeout) {
            (true, Some(timeout_ms)) => self.connected(shard, conn, session, timeout_ms),
            _ => refused,
        };
        entries.push(Entry {
            message: Some((shard, connected)),
            ..Entry::empty(self.zxid)
        });
    }

    /// `session` is now `conn`'s (an older connection of it here is closed):
    /// the answer to its connect.
    fn connected(
        &mut self,
        shard: usize,
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
    ) -> ToShard {
        if let Some((old_shard, old_conn)) = self.owners.insert(session, (shard, conn)) {
            if old_conn != conn {
                self.out[old_shard].push(ToShard::Close { conn: old_conn });
            }
        }
        let password = session::password(&self.secret, session);
        ToShard::Connected {
            conn,
            session,
            timeout_ms,
            password,
        }
    }

    /// Prepares a createSession (a leader's or a standalone server's) for a
    /// client connected through member `owner`.
    fn create_session(
        &mut self,
        session: SessionId,
        cxid: i32,
        timeout_ms: i32,
        owner: Sid,
    ) -> Entry {
        let now = now_ms();
        self.zxid += 1;
        let mut view = View::new(
            &self.tree,
            &mut self.pending,
            &mut self.acls,
            self.zxid,
            now,
        );
        let txn = Txn::CreateSession {
            session,
            timeout_ms,
        };
        apply(&txn, &mut view, &mut Vec::new());
        let changes = view.into_changes();
        let recorded = encode(
            &mut self.payloads,
            self.member.is_some(),
            session,
            cxid,
            LogEntry { time_ms: now, txn },
        );
        assert!(recorded, "a createSession record is small");
        self.record();
        self.tracker.add(session, timeout_ms, now);
        self.tracker.set_owner(session, owner);
        Entry {
            changes,
            is_txn: true,
            ..Entry::empty(self.zxid)
        }
    }

    /// This server's id (its myid; standalone, its serverId).
    fn me(&self) -> Sid {
        Sid::from(self.config.server_id)
    }

    /// Sends a client's request to the leader; `waiting` is answered when
    /// the record that answers it commits.
    fn forward(
        &mut self,
        session: SessionId,
        auth: Vec<engine::acl::Id>,
        request: Request,
        waiting: Waiting,
    ) {
        let m = self.member.as_mut().expect("only a member forwards");
        let cxid = match &waiting {
            Waiting::Reply(origin) => origin.xid,
            Waiting::Connect { .. } | Waiting::Reconnect { .. } => 0,
        };
        let forwarded = Forwarded {
            session,
            cxid,
            auth,
            request,
        };
        if to_leader(m, &forwarded) {
            m.forwarded.insert((session, cxid), waiting);
        }
    }

    /// Closes a connection now (a member that does not serve).
    fn close(&mut self, shard: usize, conn: ConnId) {
        self.out[shard].push(ToShard::Close { conn });
        self.flush();
    }

    /// Closes sessions past their deadline; checked every tick, not every batch.
    fn expire_sessions(&mut self, entries: &mut Vec<Entry>) {
        let now = Instant::now();
        if now < self.next_expiry_check || self.failed.is_some() || !self.prepares() {
            return;
        }
        self.next_expiry_check = now + self.config.session_check_interval();
        for session in self.tracker.expired(now_ms()) {
            let (mut entry, _) = self
                .execute(&WriteOp::CloseSession, session, 0, &[])
                .expect("a closeSession record is small");
            entry.closes_session = Some(session);
            entries.push(entry);
        }
    }

    /// Deletes empty containers that once had children and TTL nodes unmodified
    /// past their TTL (ZooKeeper's `ContainerManager`).
    fn check_containers(&mut self, entries: &mut Vec<Entry>) {
        let now = Instant::now();
        if now < self.next_container_check || self.failed.is_some() || !self.prepares() {
            return;
        }
        self.next_container_check =
            now + Duration::from_millis(self.config.container_check_interval_ms);
        let wall = now_ms();
        let never_used = self.config.container_max_never_used_interval_ms as i64;
        let mut candidates = Vec::new();
        for path in self.tree.containers().into_iter().chain(self.tree.ttls()) {
            let Some(node) = self.tree.get(&path).map(|stored| stored.node()) else {
                continue;
            };
            if node.num_children != 0 {
                continue;
            }
            let idle = wall - node.mtime;
            let due = match node.kind() {
                NodeKind::Container => {
                    node.child_creates > 0 || (never_used > 0 && idle > never_used)
                }
                NodeKind::Ttl(ttl) => ttl != 0 && idle > ttl,
                _ => false,
            };
            if due {
                candidates.push(path);
            }
        }
        let ids = self.super_ids.clone();
        for path in candidates {
            let (entry, _) = self
                .execute(&WriteOp::DeleteContainer { path }, 0, 0, &ids)
                .expect("a delete's record is small");
            entries.push(entry);
        }
    }

    /// Appends the record of the transaction at `self.zxid`, the payload
    /// encoded last, to the batch.
    fn record(&mut self) {
        let payload = self.payloads.bytes();
        if let Some(m) = &mut self.member {
            m.proposals.push((self.zxid, Payload::from(payload)));
            return;
        }
        self.log_first.get_or_insert(self.zxid);
        log::append_record(&mut self.log_buf, self.zxid, payload);
    }

    /// Hands the batch's records to the log writer (or, leading, to Zab); the
    /// batch commits once the writer reports them durable (Zab, committed).
    /// Meanwhile the next batch is prepared.
    fn make_durable(&mut self, entries: Vec<Entry>) {
        if let Some(m) = &mut self.member {
            if !m.proposals.is_empty() {
                let records = std::mem::take(&mut m.proposals);
                let term = m.term;
                if m.to.send(ToMember::Propose { term, records }).is_err() {
                    self.fail("the ensemble member stopped".to_owned());
                }
            }
        } else if let Some(first_zxid) = self.log_first.take() {
            let bytes = std::mem::take(&mut self.log_buf);
            let batch = LogBatch {
                bytes,
                first_zxid,
                last_zxid: self.zxid,
            };
            let sent = self.log.as_ref().is_some_and(|log| log.send(batch).is_ok());
            if !sent {
                self.fail("the log writer stopped".to_owned());
            }
        }
        self.awaiting.push_back((self.zxid, entries));
    }

    /// Commits, in order, every waiting batch the log has made durable.
    fn commit_durable(&mut self) {
        while let Some((need, _)) = self.awaiting.front() {
            if *need > self.durable_zxid && self.failed.is_none() {
                break;
            }
            let (_, entries) = self.awaiting.pop_front().expect("front exists");
            self.since_snapshot += entries.iter().filter(|e| e.is_txn).count() as u64;
            self.commit(entries);
        }
        self.maybe_snapshot();
    }

    /// Starts a background fuzzy snapshot once enough transactions have committed
    /// and none is being written. The pipeline does not wait for it.
    fn maybe_snapshot(&mut self) {
        let busy = self.snapshot.as_ref().is_some_and(|t| !t.is_finished());
        if self.since_snapshot < self.snapshot_at || busy {
            return;
        }
        if let Some(done) = self.snapshot.take() {
            let _ = done.join();
        }
        self.since_snapshot = 0;
        self.snapshot_at = snapshot_point(self.config.snap_count);
        let (tree, config, shared) = (self.tree.clone(), self.config.clone(), self.shared.clone());
        let cpus = self.snapshot_cpus.clone();
        let zxid = tree.last_zxid();
        let spawned = std::thread::Builder::new()
            .name("herd-snapshot".into())
            .spawn(move || {
                crate::cpus::allow(&cpus);
                let started = Instant::now();
                let written = storage::write_snapshot(&tree, zxid, &config.data_dir);
                if let Ok(mut stats) = shared.storage.lock() {
                    stats
                        .snapshot_ms
                        .saturating_record(started.elapsed().as_millis() as u64);
                }
                crate::memory::release_freed();
                if let Err(e) = written {
                    crate::error!(
                        "writing a snapshot at zxid 0x{zxid:x} in {}: {e}",
                        config.data_dir.display()
                    );
                }
            });
        self.snapshot = spawned.ok();
    }

    /// The log cannot make writes durable: refuse every write not yet durable and
    /// all later ones. Nothing prepared after the last durable zxid is committed.
    fn fail(&mut self, why: String) {
        crate::error!("{why}; no longer accepting writes");
        self.failed = Some(why);
        for (_, entries) in std::mem::take(&mut self.awaiting) {
            for entry in entries {
                if let Some((origin, _)) = entry.reply {
                    let refused = ToShard::Reply {
                        conn: origin.conn,
                        xid: origin.xid,
                        zxid: self.durable_zxid,
                        result: OpResult::Error(ErrorCode::SystemError),
                    };
                    self.out[origin.shard].push(refused);
                }
                if let Some((shard, ToShard::Connected { conn, .. })) = entry.message {
                    let refused = ToShard::refused(conn);
                    self.out[shard].push(refused);
                }
            }
        }
        self.pending = Pending::default();
        self.log_buf.clear();
        self.log_first = None;
        self.zxid = self.durable_zxid;
        self.flush();
    }

    fn commit(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.is_txn {
                self.tree.commit(entry.zxid, &entry.changes);
                self.pending.retire(entry.zxid, &entry.changes);
                let events: Option<Arc<[WatchEvent]>> =
                    (!entry.events.is_empty()).then(|| entry.events.into());
                for out in &mut self.out {
                    out.push(ToShard::Committed {
                        zxid: entry.zxid,
                        events: events.clone(),
                    });
                }
            }
            if let Some(session) = entry.closes_session {
                self.tracker.remove(session);
                if let Some((shard, conn)) = self.owners.remove(&session) {
                    if entry.reply.as_ref().is_none_or(|(o, _)| o.conn != conn) {
                        self.out[shard].push(ToShard::Close { conn });
                    }
                }
            }
            if let Some((origin, result)) = entry.reply {
                let reply = ToShard::Reply {
                    conn: origin.conn,
                    xid: origin.xid,
                    zxid: entry.zxid,
                    result,
                };
                self.out[origin.shard].push(reply);
            }
            if let Some((shard, msg)) = entry.message {
                self.out[shard].push(msg);
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        for (out, shard) in self.out.iter_mut().zip(&self.shards) {
            if !out.is_empty() {
                // Fails only when the shard is gone (shutdown).
                shard.send(std::mem::take(out));
            }
        }
    }
}

/// Encodes a record's payload into `buf`: a standalone log's entry, or a
/// member's proposal naming the request. False if it is larger than the log holds.
fn encode(
    buf: &mut PayloadBuf,
    member: bool,
    session: SessionId,
    cxid: i32,
    entry: LogEntry,
) -> bool {
    if member {
        buf.encode_proposal(&Proposal {
            session,
            cxid,
            entry,
        })
    } else {
        buf.encode_entry(&entry)
    }
}

impl Entry {
    fn empty(zxid: Zxid) -> Entry {
        Entry {
            zxid,
            is_txn: false,
            changes: Vec::new(),
            events: Vec::new(),
            reply: None,
            message: None,
            closes_session: None,
        }
    }

    fn reply(zxid: Zxid, origin: Origin, result: OpResult) -> Entry {
        Entry {
            reply: Some((origin, result)),
            ..Entry::empty(zxid)
        }
    }
}
