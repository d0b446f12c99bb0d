//! The commit pipeline: one thread that orders every write (ZooKeeper's
//! `PrepRequestProcessor` -> `SyncRequestProcessor` -> `FinalRequestProcessor`).
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
use engine::log::{self, LogEntry};
use engine::op::{OpResult, WriteOp};
use engine::prep::{self, Context};
use engine::session::{self, SessionTracker};
use engine::stat::NodeKind;
use engine::tree::DataTree;
use engine::txn::{apply, AclCache, Change, Pending, Txn, View, WatchEvent};
use engine::types::now_ms;
use engine::{ErrorCode, SessionId, Zxid};
use herd_proto::ConnectRequest;

use crate::config::Config;
use crate::inbox::InboxSender;
use crate::message::{ConnId, ToPipeline, ToShard};
use crate::stats::Shared;
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
    shards: Vec<InboxSender>,
    out: Vec<Vec<ToShard>>,
    zxid: Zxid,
    secret: [u8; 16],
    /// Which connection currently holds each session.
    owners: HashMap<SessionId, (usize, ConnId)>,
    next_container_check: Instant,
    next_expiry_check: Instant,
    super_ids: Arc<[Id]>,
    log: Sender<LogBatch>,
    /// Records of transactions prepared since the last batch went to the log.
    log_buf: Vec<u8>,
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
        shards: Vec<InboxSender>,
        resume: Resume,
        log: Sender<LogBatch>,
    ) -> Pipeline {
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
        }
    }

    /// Runs until `Stop` arrives or every sender is gone.
    pub fn run(mut self, inbox: Receiver<Vec<ToPipeline>>) {
        let tick = self.config.session_check_interval();
        let mut batch = Vec::new();
        // Sessions that expired while herd was down close first: no request
        // reaches the pipeline before their closes have zxids.
        let mut expired = Vec::new();
        self.expire_sessions(&mut expired);
        if !expired.is_empty() {
            self.make_durable(expired);
        }
        self.maybe_snapshot();
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
            // Stop ends the run once what arrived before it is handled.
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
            if stop {
                return;
            }
        }
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
                if self.failed.is_some() {
                    let refused = OpResult::Error(ErrorCode::SystemError);
                    entries.push(Entry::reply(self.zxid, origin, refused));
                    return;
                }
                if !self.tracker.touch(session, now) {
                    let result = OpResult::Error(ErrorCode::SessionExpired);
                    entries.push(Entry::reply(self.zxid, origin, result));
                    return;
                }
                if op == WriteOp::CloseSession {
                    self.tracker.set_closing(session);
                }
                let closes = (op == WriteOp::CloseSession).then_some(session);
                let Some((mut entry, result)) = self.execute(&op, session, &auth) else {
                    // Its record would not fit the log: refused as ZooKeeper
                    // refuses a request over jute.maxbuffer, by closing the
                    // connection (once the session's earlier replies are out).
                    eprintln!(
                        "herd: closing the connection of session 0x{session:x}: its request \
                         would need a log record over {} bytes",
                        log::MAX_PAYLOAD
                    );
                    let close = ToShard::Close { conn: origin.conn };
                    entries.push(Entry {
                        message: Some((origin.shard, close)),
                        ..Entry::empty(self.zxid)
                    });
                    return;
                };
                entry.reply = Some((origin, result));
                entry.closes_session = closes;
                entries.push(entry);
            }
            ToPipeline::Sync { shard, conn, xid } => {
                entries.push(Entry::reply(
                    self.zxid,
                    Origin { shard, conn, xid },
                    OpResult::Check,
                ));
            }
            ToPipeline::Touch(sessions) => {
                for s in sessions {
                    self.tracker.touch(s, now);
                }
            }
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

    /// Validates and applies one write to the pending view, taking a zxid and
    /// encoding its log record; returns the entry to commit and the write's
    /// result. `None`, with nothing changed, if the record would be larger than
    /// the log holds.
    fn execute(
        &mut self,
        op: &WriteOp,
        session: SessionId,
        auth: &[Id],
    ) -> Option<(Entry, OpResult)> {
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
        let Some(payload) = log::encode_payload(&entry) else {
            view.rollback(mark);
            self.zxid -= 1;
            return None;
        };
        let changes = view.into_changes();
        self.record(&payload);
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
        let refused = ToShard::Connected {
            conn,
            session: 0,
            timeout_ms: 0,
            password: [0; 16],
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
            let payload = log::encode_payload(&LogEntry { time_ms: now, txn })
                .expect("a createSession record is small");
            self.record(&payload);
            self.tracker.add(session, timeout_ms, now);
            self.owners.insert(session, (shard, conn));
            let password = session::password(&self.secret, session);
            let connected = ToShard::Connected {
                conn,
                session,
                timeout_ms,
                password,
            };
            entries.push(Entry {
                changes,
                is_txn: true,
                message: Some((shard, connected)),
                ..Entry::empty(self.zxid)
            });
            return;
        }
        let session = request.session_id;
        let valid = request.password == session::password(&self.secret, session)
            && self.tracker.touch(session, now);
        let connected = match (valid, self.tracker.timeout_ms(session)) {
            (true, Some(timeout_ms)) => {
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
            _ => refused,
        };
        entries.push(Entry {
            message: Some((shard, connected)),
            ..Entry::empty(self.zxid)
        });
    }

    /// Closes sessions past their deadline; checked every tick, not every batch.
    fn expire_sessions(&mut self, entries: &mut Vec<Entry>) {
        let now = Instant::now();
        if now < self.next_expiry_check || self.failed.is_some() {
            return;
        }
        self.next_expiry_check = now + self.config.session_check_interval();
        for session in self.tracker.expired(now_ms()) {
            let (mut entry, _) = self
                .execute(&WriteOp::CloseSession, session, &[])
                .expect("a closeSession record is small");
            entry.closes_session = Some(session);
            entries.push(entry);
        }
    }

    /// Deletes empty containers that once had children and TTL nodes unmodified
    /// past their TTL (ZooKeeper's `ContainerManager`).
    fn check_containers(&mut self, entries: &mut Vec<Entry>) {
        let now = Instant::now();
        if now < self.next_container_check || self.failed.is_some() {
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
                .execute(&WriteOp::DeleteContainer { path }, 0, &ids)
                .expect("a delete's record is small");
            entries.push(entry);
        }
    }

    /// Appends the record of the transaction at `self.zxid` to the batch.
    fn record(&mut self, payload: &[u8]) {
        self.log_first.get_or_insert(self.zxid);
        log::append_record(&mut self.log_buf, self.zxid, payload);
    }

    /// Hands the batch's records to the log writer; the batch commits once the
    /// writer reports them durable. Meanwhile the next batch is prepared.
    fn make_durable(&mut self, entries: Vec<Entry>) {
        if let Some(first_zxid) = self.log_first.take() {
            let bytes = std::mem::take(&mut self.log_buf);
            let batch = LogBatch {
                bytes,
                first_zxid,
                last_zxid: self.zxid,
            };
            if self.log.send(batch).is_err() {
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
        let zxid = tree.last_zxid();
        let spawned = std::thread::Builder::new()
            .name("herd-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let written = storage::write_snapshot(&tree, zxid, &config.data_dir);
                if let Ok(mut stats) = shared.storage.lock() {
                    stats
                        .snapshot_ms
                        .saturating_record(started.elapsed().as_millis() as u64);
                }
                crate::memory::release_freed();
                if let Err(e) = written {
                    eprintln!(
                        "herd: writing a snapshot at zxid 0x{zxid:x} in {}: {e}",
                        config.data_dir.display()
                    );
                }
            });
        self.snapshot = spawned.ok();
    }

    /// The log cannot make writes durable: refuse every write not yet durable and
    /// all later ones. Nothing prepared after the last durable zxid is committed.
    fn fail(&mut self, why: String) {
        eprintln!("herd: {why}; no longer accepting writes");
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
                    let refused = ToShard::Connected {
                        conn,
                        session: 0,
                        timeout_ms: 0,
                        password: [0; 16],
                    };
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
