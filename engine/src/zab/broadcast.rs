//! After discovery: synchronisation (the learner takes the leader's history
//! and acknowledges NEWLEADER once it is durable; the leader serves once a
//! quorum has) and atomic broadcast (PROPOSAL, ACK after the fsync that covers
//! it, COMMIT on a quorum of voters, in zxid order), without I/O.
//!
//! ```text
//!  leader                                   learner
//!    │── Sync(DIFF | TRUNC | SNAP, records) ──►│ its log := the leader's
//!    │── NewLeader(epoch) ────────────────────►│ durable, currentEpoch := epoch
//!    │◄─────────────────── AckNewLeader ───────│   (both before the ack)
//!  quorum: serve, commit the history           │
//!    │── UpToDate(committed) ─────────────────►│ serves
//!    │── Proposal(zxid, bytes) ───────────────►│ append; after its fsync:
//!    │◄─────────────────────────── Ack(zxid) ──│
//!  quorum (its own fsync included): commit     │
//!    │── Commit(zxid) / Inform to observers ──►│ applies, in order
//! ```
//!
//! Channels between two members are FIFO for as long as they last (TCP); a
//! learner that sees a gap in the proposals has lost its connection and
//! gives up (it looks for a leader again and is synchronised afresh).
//!
//! Liveness, as ZooKeeper's: the leader PINGs every learner each tick and
//! learners answer. A learner that hears nothing from its leader for the
//! sync limit (the init limit until it serves) gives up; so does a leader
//! that does not reach serving within the init limit, or that then hears
//! from fewer than a quorum of voters within a sync limit.
//!
//! Invariants:
//! - a record is acknowledged (ACK, AckNewLeader) only after the learner's
//!   log holds it durably: [`Output`] carries the durable write its `after`
//!   sends wait for;
//! - the leader commits a zxid only once a quorum of voters holds it
//!   durably, its own disk included, and commits in zxid order;
//! - a learner commits only records in its log, in order, never beyond what
//!   the leader committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::quorum::Ensemble;
use super::sync::{self, Sync};
use super::{Millis, Sid};
use crate::{SessionId, Zxid};

/// A transaction's bytes, encoded once and shared by the log and every send.
pub type Payload = Arc<[u8]>;

/// A log record.
pub type Record = (Zxid, Payload);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// How the learner's log becomes the leader's: the plan, and the
    /// records after the shared prefix. For a SNAP, `snapshot` is the
    /// leader's state at `base`, and the records are those after it.
    Sync {
        plan: Sync,
        base: Zxid,
        snapshot: Option<Payload>,
        records: Vec<Record>,
    },
    /// Sent right after the Sync: `last` is the zxid the learner's log ends
    /// at once it applied it. A learner that has not, lost a message, and
    /// must not acknowledge a history it does not hold.
    NewLeader {
        epoch: u32,
        last: Zxid,
    },
    AckNewLeader {
        epoch: u32,
    },
    /// The learner may serve; everything up to `committed` is committed.
    UpToDate {
        committed: Zxid,
    },
    Proposal(Record),
    /// The learner's log holds everything up to this zxid durably.
    Ack(Zxid),
    /// The leader's heartbeat, each tick (with no sessions), and the
    /// learner's answer: the sessions its clients were active in since its
    /// last answer, so that the leader, which expires sessions, keeps them.
    Ping(Vec<SessionId>),
    Commit(Zxid),
    /// A committed record, for an observer (which gets no proposals).
    Inform(Record),
    /// A client's write that reached a learner, for the leader to order
    /// (ZooKeeper's REQUEST): its bytes are the driver's (session, cxid
    /// and operation); the learner answers its client when the write's
    /// record commits.
    Request(Payload),
}

/// One change to a member's storage. A step's changes are written in order,
/// after every earlier step's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// Records to add at the end of the log.
    Append(Vec<Record>),
    /// Drop every record after this zxid (TRUNC).
    Truncate(Zxid),
    /// Replace the state and the whole log with a snapshot (SNAP): the
    /// history now starts after its zxid.
    Install(Snapshot),
    /// The epoch accepted in discovery (ZooKeeper's `acceptedEpoch` file).
    AcceptEpoch(u32),
    /// The epoch of the history (`currentEpoch`).
    CurrentEpoch(u32),
}

/// The replicated state as it is once every record up to `zxid` is
/// applied, in the bytes its driver made of it (Zab does not look inside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub zxid: Zxid,
    pub data: Payload,
}

/// A durable write: the log up to and including `log_to` as it now stands
/// (truncations included), and the current epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub log_to: Option<Zxid>,
    pub current_epoch: Option<u32>,
}

/// What a step asks of the member: send `now`; write `store`; make
/// `durable` durable (it covers `store` and everything written before);
/// and only then send `after`. `touched` (a leader's only) are sessions
/// learners report activity in, `requests` (a leader's only) the writes
/// they forward, by the learner they came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub now: Vec<(Sid, Message)>,
    pub store: Vec<Store>,
    pub durable: Option<Durable>,
    pub after: Vec<(Sid, Message)>,
    pub touched: Vec<SessionId>,
    pub requests: Vec<(Sid, Payload)>,
}

/// A leader's learners, counted (mntr's quorum rows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnerCounts {
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
}

/// Why a learner stops following.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// A message is missing: the connection to the leader broke.
    Gap { expected_after: Zxid, got: Zxid },
    /// The leader sent something that makes no sense in this state.
    Unexpected,
    /// Nothing from the leader within the limit.
    LeaderSilent,
}

/// Why a leader stops leading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDown {
    /// Not serving within the init limit.
    NotSynced,
    /// Fewer than a quorum of voters heard from within a sync limit.
    NoQuorum,
    /// The epoch's zxid counter is used up: a new epoch must begin (the
    /// peer leads into it at once, without an election).
    ZxidsExhausted,
}

/// The last zxid counter an epoch uses ([`Settings::last_counter`] unless a
/// test sets one lower). ZooKeeper never proposes a zxid whose counter is all
/// ones: its leader shuts down there, which forces an election and a new
/// epoch (ZOOKEEPER-1277). herd's leader stops there too, rather than let the
/// counter wrap into zxids already used, and moves its followers to a new
/// epoch without an election (see `peer`).
pub const LAST_COUNTER: u32 = u32::MAX - 1;

/// ZooKeeper's timing: `tickTime`, and `initLimit` and `syncLimit` in
/// milliseconds (ticks times tickTime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub tick_ms: Millis,
    pub init_ms: Millis,
    pub sync_ms: Millis,
}

/// How a member runs Zab: its timing, the longest DIFF a leader sends
/// before it sends a SNAP instead, and the last zxid counter of an epoch
/// ([`LAST_COUNTER`]; lower in tests, to run through epochs quickly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
    pub diff_limit: usize,
    pub last_counter: u32,
}

/// A member's log as broadcast sees it: the snapshot base, the records
/// after it, and how far they are committed.
#[derive(Clone, Debug)]
pub struct History {
    base: Zxid,
    log: Vec<Record>,
    committed: Zxid,
}

impl History {
    /// The records after `base`, of which those up to `committed` (at
    /// least the base) are known to be committed.
    pub fn new(base: Zxid, log: Vec<Record>, committed: Zxid) -> History {
        let last = log.last().map_or(base, |r| r.0);
        History {
            base,
            log,
            committed: committed.clamp(base, last),
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.log
    }

    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// The zxid of its last record (the base when it has none).
    pub fn last(&self) -> Zxid {
        self.log.last().map_or(self.base, |r| r.0)
    }

    pub fn base(&self) -> Zxid {
        self.base
    }

    pub fn into_records(self) -> Vec<Record> {
        self.log
    }

    /// Forgets committed records but the last `keep` (the longest DIFF
    /// sent; a learner further behind gets a SNAP): the base moves up to
    /// the last record forgotten. Memory then holds at most `keep`
    /// committed records and those not yet committed.
    fn compact(&mut self, keep: usize) {
        let committed = self.log.partition_point(|r| r.0 <= self.committed);
        if committed > keep {
            let forget = committed - keep;
            self.base = self.log[forget - 1].0;
            self.log.drain(..forget);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a quorum to hold its history.
    Syncing,
    /// The history is committed; its current epoch is being made durable.
    PersistingEpoch,
    Serving,
}

/// How far the leader knows a learner to be.
#[derive(Clone, Debug)]
struct Peer {
    observer: bool,
    /// Highest zxid it holds durably, as it acknowledged.
    acked: Zxid,
    /// It acknowledged NEWLEADER.
    synced: bool,
}

/// The leader of an established epoch.
#[derive(Clone, Debug)]
pub struct Leader {
    me: Sid,
    ensemble: Ensemble,
    epoch: u32,
    /// The history it leads with, then its proposals.
    history: History,
    durable_to: Zxid,
    /// Its history (the initial one of the epoch) is committed once a
    /// quorum holds it; then it makes the epoch its current one, durably,
    /// and serves.
    history_end: Zxid,
    phase: Phase,
    counter: u32,
    last_counter: u32,
    peers: BTreeMap<Sid, Peer>,
    diff_limit: usize,
    limits: Limits,
    next_ping: Millis,
    /// The end of the current window: by then it must serve (while it does
    /// not), or have heard from a quorum within it (`heard`).
    window_end: Millis,
    heard: BTreeSet<Sid>,
}

impl Leader {
    /// Leads `epoch` with its durable history, from `now`.
    pub fn new(
        me: Sid,
        ensemble: &Ensemble,
        epoch: u32,
        history: History,
        settings: Settings,
        now: Millis,
    ) -> Leader {
        let last = history.last();
        let Settings {
            limits,
            diff_limit,
            last_counter,
        } = settings;
        Leader {
            me,
            ensemble: ensemble.clone(),
            epoch,
            history,
            durable_to: last,
            history_end: last,
            phase: Phase::Syncing,
            counter: 0,
            last_counter,
            peers: BTreeMap::new(),
            diff_limit,
            limits,
            next_ping: now + limits.tick_ms,
            window_end: now + limits.init_ms,
            heard: BTreeSet::new(),
        }
    }

    /// When [`Leader::tick`] next has something to do: at once when the
    /// epoch's zxids are used up.
    pub fn deadline(&self) -> Millis {
        if self.exhausted() {
            return 0;
        }
        self.next_ping.min(self.window_end)
    }

    fn exhausted(&self) -> bool {
        self.counter >= self.last_counter
    }

    /// PINGs each tick; steps down when a window ends without progress, or
    /// when the epoch has no zxid left.
    pub fn tick(&mut self, now: Millis) -> Result<Output, StepDown> {
        if self.exhausted() {
            return Err(StepDown::ZxidsExhausted);
        }
        if now >= self.window_end {
            if self.phase != Phase::Serving {
                return Err(StepDown::NotSynced);
            }
            let heard = self.heard.iter().copied().chain([self.me]);
            if !self.ensemble.is_quorum(heard) {
                return Err(StepDown::NoQuorum);
            }
            self.heard.clear();
            self.window_end = now + self.limits.sync_ms;
        }
        let mut out = Output::default();
        if now >= self.next_ping {
            self.next_ping = now + self.limits.tick_ms;
            let ping = |&sid| (sid, Message::Ping(Vec::new()));
            out.now = self.peers.keys().map(ping).collect();
        }
        Ok(out)
    }

    pub fn is_serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn into_history(self) -> History {
        self.history
    }

    /// How a learner whose last zxid is `last_zxid` is to be synchronised;
    /// a SNAP needs the leader's state ([`Leader::add_learner`]).
    pub fn plan_for(&self, last_zxid: Zxid) -> Sync {
        let zxids: Vec<Zxid> = self.history.log.iter().map(|r| r.0).collect();
        sync::plan(self.history.base, &zxids, last_zxid, self.diff_limit)
    }

    /// A learner that acknowledged this epoch, with its last zxid: what
    /// brings it to this leader's log (for a SNAP, `snapshot`: this
    /// leader's state at a zxid it committed, at or after its base), then
    /// NEWLEADER. From then on it gets every proposal.
    pub fn add_learner(&mut self, sid: Sid, last_zxid: Zxid, snapshot: Option<Snapshot>) -> Output {
        let plan = self.plan_for(last_zxid);
        let (from, base, snapshot) = match (plan, snapshot) {
            (Sync::Diff { after }, _) => (after, self.history.base, None),
            (Sync::Trunc { to }, _) => (to, self.history.base, None),
            (Sync::Snap, Some(s)) => {
                assert!(
                    s.zxid >= self.history.base && s.zxid <= self.history.committed,
                    "a snapshot at {:#x}: records after it are not all here",
                    s.zxid
                );
                (s.zxid, s.zxid, Some(s.data))
            }
            (Sync::Snap, None) => panic!("a SNAP without the leader's snapshot"),
        };
        let records = self
            .history
            .log
            .iter()
            .filter(|r| r.0 > from)
            .cloned()
            .collect();
        self.peers.insert(
            sid,
            Peer {
                observer: !self.ensemble.is_voter(sid),
                acked: Zxid::MIN,
                synced: false,
            },
        );
        let sync = Message::Sync {
            plan,
            base,
            snapshot,
            records,
        };
        let newleader = Message::NewLeader {
            epoch: self.epoch,
            last: self.history.last(),
        };
        Output {
            now: vec![(sid, sync), (sid, newleader)],
            ..Output::default()
        }
    }

    /// Forgets committed records but the last `keep` (see [`History`]).
    pub fn compact(&mut self, keep: usize) {
        self.history.compact(keep);
    }

    /// How many learners it synchronises or leads, and how many followers
    /// and observers of them acknowledged NEWLEADER.
    pub fn learner_counts(&self) -> LearnerCounts {
        let synced = |observer: bool| {
            self.peers
                .values()
                .filter(|p| p.synced && p.observer == observer)
                .count()
        };
        LearnerCounts {
            learners: self.peers.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
        }
    }

    /// The learners it synchronises or leads.
    pub fn learners(&self) -> impl Iterator<Item = Sid> + '_ {
        self.peers.keys().copied()
    }

    /// A learner's connection broke: it gets nothing more.
    pub fn remove_learner(&mut self, sid: Sid) {
        self.peers.remove(&sid);
    }

    /// Proposes a transaction (only while serving, and while the epoch has
    /// zxids left; see [`Settings::last_counter`]): its zxid, and the output: the
    /// proposal to every learner now, the leader's own append.
    pub fn propose(&mut self, payload: Payload) -> Option<(Zxid, Output)> {
        if self.phase != Phase::Serving || self.exhausted() {
            return None;
        }
        self.counter += 1;
        let zxid = (i64::from(self.epoch) << 32) | i64::from(self.counter);
        let record = (zxid, payload);
        self.history.log.push(record.clone());
        let now = self
            .peers
            .iter()
            .filter(|(_, p)| !p.observer)
            .map(|(&sid, _)| (sid, Message::Proposal(record.clone())))
            .collect();
        let out = Output {
            now,
            store: vec![Store::Append(vec![record])],
            durable: Some(Durable {
                log_to: Some(zxid),
                current_epoch: None,
            }),
            ..Output::default()
        };
        Some((zxid, out))
    }

    /// A durable write this leader asked for is done.
    pub fn durable(&mut self, done: Durable) -> Output {
        if let Some(zxid) = done.log_to {
            self.durable_to = self.durable_to.max(zxid);
        }
        let mut out = Output::default();
        if done.current_epoch == Some(self.epoch) && self.phase == Phase::PersistingEpoch {
            self.phase = Phase::Serving;
            let up = Message::UpToDate {
                committed: self.history.committed,
            };
            out.now = self
                .peers
                .iter()
                .filter(|(_, p)| p.synced)
                .map(|(&sid, _)| (sid, up.clone()))
                .collect();
        }
        let more = self.advance();
        out.now.extend(more.now);
        out.store = more.store;
        out.durable = more.durable;
        out
    }

    pub fn receive(&mut self, from: Sid, msg: Message) -> Output {
        let Some(peer) = self.peers.get_mut(&from) else {
            return Output::default();
        };
        self.heard.insert(from);
        match msg {
            Message::AckNewLeader { epoch } if epoch == self.epoch => {
                peer.synced = true;
                peer.acked = peer.acked.max(self.history_end);
                let mut out = self.advance();
                if self.phase == Phase::Serving {
                    out.now.push((
                        from,
                        Message::UpToDate {
                            committed: self.history.committed,
                        },
                    ));
                }
                out
            }
            Message::Ack(zxid) if peer.synced => {
                peer.acked = peer.acked.max(zxid);
                self.advance()
            }
            Message::Ping(touched) => Output {
                touched,
                ..Output::default()
            },
            Message::Request(request) if peer.synced => Output {
                requests: vec![(from, request)],
                ..Output::default()
            },
            _ => Output::default(),
        }
    }

    /// The highest zxid a quorum of voters holds durably.
    fn quorum_durable(&self) -> Zxid {
        let mut held: Vec<Zxid> = self
            .peers
            .iter()
            .filter(|(&sid, p)| p.synced && self.ensemble.is_voter(sid))
            .map(|(_, p)| p.acked)
            .chain([self.durable_to])
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(self.ensemble.quorum_size() - 1)
            .copied()
            .unwrap_or(Zxid::MIN)
    }

    /// Commits what a quorum holds: first the whole history (then it
    /// serves: UpToDate to whoever synced), then proposals in order.
    fn advance(&mut self) -> Output {
        let mut out = Output::default();
        let held = self.quorum_durable().min(self.history.last());
        match self.phase {
            Phase::Syncing if held >= self.history_end => {
                self.phase = Phase::PersistingEpoch;
                self.history.committed = self.history_end;
                out.store = vec![Store::CurrentEpoch(self.epoch)];
                out.durable = Some(Durable {
                    log_to: None,
                    current_epoch: Some(self.epoch),
                });
                return out;
            }
            Phase::Syncing | Phase::PersistingEpoch => return out,
            Phase::Serving => {}
        }
        if held <= self.history.committed {
            return out;
        }
        let log = &self.history.log;
        let from = log.partition_point(|r| r.0 <= self.history.committed);
        let newly = &log[from..log.partition_point(|r| r.0 <= held)];
        self.history.committed = held;
        // Every learner that got its Sync gets these, acknowledged NEWLEADER
        // or not: FIFO puts them after the Sync, and an observer has no
        // other way to the records committed meanwhile.
        for (&sid, peer) in &self.peers {
            if peer.observer {
                out.now
                    .extend(newly.iter().map(|r| (sid, Message::Inform(r.clone()))));
            } else {
                out.now.push((sid, Message::Commit(held)));
            }
        }
        out
    }
}

/// Where a learner is in synchronisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AwaitingSync,
    /// The Sync is applied; NEWLEADER must follow it.
    AwaitingNewLeader,
    /// NEWLEADER acknowledged: proposals and commits come; not serving yet.
    Following,
    /// UPTODATE came.
    Serving,
}

/// A follower's or observer's side, from discovery on.
#[derive(Clone, Debug)]
pub struct Learner {
    leader: Sid,
    epoch: u32,
    history: History,
    /// Commits announced for records still on their way.
    commit_to: Zxid,
    stage: Stage,
    limits: Limits,
    /// Whether the leader said anything since `window_end` was set.
    heard: bool,
    window_end: Millis,
    /// Sessions active since the last PING answer.
    touched: Vec<SessionId>,
}

impl Learner {
    /// Follows `leader` in `epoch`, from its durable history, from `now`.
    pub fn new(leader: Sid, epoch: u32, history: History, limits: Limits, now: Millis) -> Learner {
        Learner {
            leader,
            epoch,
            commit_to: history.committed,
            history,
            stage: Stage::AwaitingSync,
            limits,
            heard: false,
            window_end: now + limits.init_ms,
            touched: Vec::new(),
        }
    }

    /// When [`Learner::tick`] next has something to do.
    pub fn deadline(&self) -> Millis {
        self.window_end
    }

    /// Gives up when a window ends without a word from the leader: the
    /// init limit until it serves, the sync limit after.
    pub fn tick(&mut self, now: Millis) -> Result<(), Lost> {
        if now < self.window_end {
            return Ok(());
        }
        if !self.heard {
            return Err(Lost::LeaderSilent);
        }
        self.heard = false;
        let limit = if self.stage == Stage::Serving {
            self.limits.sync_ms
        } else {
            self.limits.init_ms
        };
        self.window_end = now + limit;
        Ok(())
    }

    pub fn is_serving(&self) -> bool {
        self.stage == Stage::Serving
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn into_history(self) -> History {
        self.history
    }

    /// Forgets committed records but the last `keep` (see [`History`]).
    pub fn compact(&mut self, keep: usize) {
        self.history.compact(keep);
    }

    /// Whether it acknowledged NEWLEADER.
    fn synced(&self) -> bool {
        matches!(self.stage, Stage::Following | Stage::Serving)
    }

    fn apply_commits(&mut self) {
        self.history.committed = self
            .commit_to
            .min(self.history.last())
            .max(self.history.committed);
    }

    pub fn receive(&mut self, from: Sid, msg: Message) -> Result<Output, Lost> {
        if from != self.leader {
            return Ok(Output::default());
        }
        self.heard = true;
        match msg {
            Message::Sync {
                plan,
                base,
                snapshot,
                records,
            } if self.stage == Stage::AwaitingSync => {
                self.stage = Stage::AwaitingNewLeader;
                let mut store = Vec::new();
                match plan {
                    Sync::Diff { after } if after != self.history.last() => {
                        return Err(Lost::Unexpected)
                    }
                    Sync::Diff { .. } => {}
                    Sync::Trunc { to } => {
                        self.history.log.retain(|r| r.0 <= to);
                        store.push(Store::Truncate(to));
                    }
                    Sync::Snap => {
                        let Some(data) = snapshot else {
                            return Err(Lost::Unexpected);
                        };
                        self.history.log.clear();
                        self.history.base = base;
                        // A snapshot holds committed state only.
                        self.history.committed = base;
                        store.push(Store::Install(Snapshot { zxid: base, data }));
                    }
                }
                let last = self.history.last();
                let new: Vec<Record> = records.into_iter().filter(|r| r.0 > last).collect();
                self.history.log.extend(new.iter().cloned());
                if !new.is_empty() {
                    store.push(Store::Append(new));
                }
                self.history.committed = self.history.committed.min(self.history.last());
                Ok(Output {
                    store,
                    ..Output::default()
                })
            }
            Message::NewLeader { epoch, last } if epoch == self.epoch && !self.synced() => {
                if self.stage != Stage::AwaitingNewLeader || last != self.history.last() {
                    return Err(Lost::Gap {
                        expected_after: self.history.last(),
                        got: last,
                    });
                }
                self.stage = Stage::Following;
                Ok(Output {
                    store: vec![Store::CurrentEpoch(epoch)],
                    durable: Some(Durable {
                        log_to: Some(last),
                        current_epoch: Some(epoch),
                    }),
                    after: vec![(from, Message::AckNewLeader { epoch })],
                    ..Output::default()
                })
            }
            Message::UpToDate { committed } if self.synced() => {
                self.commit_to = self.commit_to.max(committed);
                self.apply_commits();
                self.stage = Stage::Serving;
                Ok(Output::default())
            }
            Message::Proposal(record) if self.synced() => {
                let zxid = record.0;
                let Some(mut out) = self.append(record)? else {
                    return Ok(Output::default()); // a copy of one it has
                };
                self.apply_commits(); // commits announced before it arrived
                out.after = vec![(from, Message::Ack(zxid))];
                Ok(out)
            }
            Message::Commit(zxid) if self.synced() => {
                self.commit_to = self.commit_to.max(zxid);
                self.apply_commits();
                Ok(Output::default())
            }
            Message::Inform(record) if self.synced() => {
                let zxid = record.0;
                let Some(out) = self.append(record)? else {
                    return Ok(Output::default());
                };
                self.commit_to = self.commit_to.max(zxid);
                self.apply_commits();
                Ok(out)
            }
            Message::Ping(_) => Ok(Output {
                now: vec![(from, Message::Ping(std::mem::take(&mut self.touched)))],
                ..Output::default()
            }),
            Message::Sync { .. } | Message::NewLeader { .. } => Err(Lost::Unexpected),
            _ => Ok(Output::default()),
        }
    }

    /// A client's write, to forward to the leader (only while serving:
    /// before, the leader may not be the one that commits it).
    pub fn forward(&self, request: Payload) -> Option<(Sid, Message)> {
        self.is_serving()
            .then_some((self.leader, Message::Request(request)))
    }

    /// Sessions this member's clients were active in: the answer to the
    /// next PING names them.
    pub fn touch(&mut self, sessions: impl IntoIterator<Item = SessionId>) {
        self.touched.extend(sessions);
    }

    /// Appends the next record of the leader's, to be written and made
    /// durable: `None` for a copy of one it has, a gap if records are
    /// missing before it.
    fn append(&mut self, record: Record) -> Result<Option<Output>, Lost> {
        let (zxid, last) = (record.0, self.history.last());
        if zxid <= last {
            return Ok(None);
        }
        if zxid != self.next_after(last) {
            return Err(Lost::Gap {
                expected_after: last,
                got: zxid,
            });
        }
        self.history.log.push(record.clone());
        Ok(Some(Output {
            store: vec![Store::Append(vec![record])],
            durable: Some(Durable {
                log_to: Some(zxid),
                current_epoch: None,
            }),
            ..Output::default()
        }))
    }

    /// The zxid the leader proposes after `last` in this epoch: the next
    /// counter, or the first of the epoch.
    fn next_after(&self, last: Zxid) -> Zxid {
        if super::epoch_of(last) == self.epoch {
            last + 1
        } else {
            (i64::from(self.epoch) << 32) | 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: i64, counter: i64) -> Zxid {
        epoch << 32 | counter
    }

    fn rec(zxid: Zxid) -> Record {
        (zxid, Payload::from(zxid.to_be_bytes().as_slice()))
    }

    fn three() -> Ensemble {
        Ensemble::new([1, 2, 3], [9]).unwrap()
    }

    const LIMITS: Limits = Limits {
        tick_ms: 100,
        init_ms: 1000,
        sync_ms: 500,
    };

    /// A leader of `epoch` (ensemble 1, 2, 3 and observer 9) from a
    /// durable log.
    fn leader(epoch: u32, log: Vec<Record>) -> Leader {
        let settings = Settings {
            limits: LIMITS,
            diff_limit: 10,
            last_counter: LAST_COUNTER,
        };
        Leader::new(1, &three(), epoch, History::new(0, log, 0), settings, 0)
    }

    fn sends(out: &Output) -> Vec<(Sid, &'static str)> {
        let name = |m: &Message| match m {
            Message::Sync { .. } => "sync",
            Message::NewLeader { .. } => "newleader",
            Message::AckNewLeader { .. } => "acknewleader",
            Message::UpToDate { .. } => "uptodate",
            Message::Proposal(_) => "proposal",
            Message::Ack(_) => "ack",
            Message::Commit(_) => "commit",
            Message::Inform(_) => "inform",
            Message::Request(_) => "request",
            Message::Ping(_) => "ping",
        };
        out.now.iter().map(|(s, m)| (*s, name(m))).collect()
    }

    /// A leader of epoch 2 with history 1.1, 1.2, serving with learners 2 and 9.
    fn serving_leader() -> Leader {
        let mut l = leader(2, vec![rec(z(1, 1)), rec(z(1, 2))]);
        l.add_learner(2, z(1, 1), None);
        l.add_learner(9, z(1, 2), None);
        assert!(l
            .receive(9, Message::AckNewLeader { epoch: 2 })
            .durable
            .is_none());
        let out = l.receive(2, Message::AckNewLeader { epoch: 2 });
        assert_eq!(
            out.durable,
            Some(Durable {
                log_to: None,
                current_epoch: Some(2)
            }),
            "a quorum holds the history: make the epoch current"
        );
        assert!(!l.is_serving(), "not before the epoch is durable");
        let out = l.durable(out.durable.unwrap());
        assert!(l.is_serving());
        assert_eq!(sends(&out), [(2, "uptodate"), (9, "uptodate")]);
        assert_eq!(l.history().committed(), z(1, 2), "the history is committed");
        l
    }

    #[test]
    fn a_learner_is_synchronised_then_told_of_the_new_leader() {
        let mut l = leader(2, vec![rec(z(1, 1)), rec(z(1, 2))]);
        let out = l.add_learner(3, z(1, 1), None);
        assert_eq!(
            out.now[0].1,
            Message::Sync {
                plan: Sync::Diff { after: z(1, 1) },
                base: 0,
                snapshot: None,
                records: vec![rec(z(1, 2))]
            }
        );
        assert_eq!(
            out.now[1].1,
            Message::NewLeader {
                epoch: 2,
                last: z(1, 2)
            }
        );
        assert!(
            l.propose(rec(0).1).is_none(),
            "no proposals before it serves"
        );
        serving_leader();
    }

    #[test]
    fn a_proposal_commits_on_a_quorum_of_durable_copies_the_leaders_own_included() {
        let mut l = serving_leader();
        let (zxid, out) = l.propose(rec(0).1).expect("serving");
        assert_eq!(zxid, z(2, 1));
        assert_eq!(sends(&out), [(2, "proposal")], "observers get no proposals");
        assert!(out.durable.is_some(), "the leader logs it too");
        assert!(
            sends(&l.receive(2, Message::Ack(zxid))).is_empty(),
            "the leader's own fsync is missing"
        );
        assert_eq!(l.history().committed(), z(1, 2));
        let out = l.durable(Durable {
            log_to: Some(zxid),
            current_epoch: None,
        });
        assert_eq!(sends(&out), [(2, "commit"), (9, "inform")]);
        assert_eq!(l.history().committed(), zxid);
        // A second proposal: acked by the follower only, then the leader's fsync.
        let (second, _) = l.propose(rec(1).1).unwrap();
        l.receive(3, Message::Ack(second));
        assert_eq!(
            l.history().committed(),
            zxid,
            "3 never synced: its ack does not count"
        );
    }

    #[test]
    fn a_learner_acknowledges_only_what_it_holds_durably_and_stops_at_a_gap() {
        let leader = 1;
        let mut f = Learner::new(leader, 2, History::new(0, vec![rec(z(1, 1))], 0), LIMITS, 0);
        let newleader = Message::NewLeader {
            epoch: 2,
            last: z(1, 2),
        };
        assert!(
            f.clone().receive(leader, newleader.clone()).is_err(),
            "a NEWLEADER without its Sync"
        );
        let sync = Message::Sync {
            plan: Sync::Diff { after: z(1, 1) },
            base: 0,
            snapshot: None,
            records: vec![rec(z(1, 2))],
        };
        let out = f.receive(leader, sync).unwrap();
        assert_eq!(out.store, [Store::Append(vec![rec(z(1, 2))])]);
        assert_eq!(out.durable, None, "durable by NEWLEADER");
        let out = f.receive(leader, newleader).unwrap();
        assert!(out.now.is_empty());
        assert_eq!(out.store, [Store::CurrentEpoch(2)]);
        assert_eq!(
            out.durable,
            Some(Durable {
                log_to: Some(z(1, 2)),
                current_epoch: Some(2)
            })
        );
        assert_eq!(out.after, [(leader, Message::AckNewLeader { epoch: 2 })]);
        // Proposals: acknowledged after their fsync; a copy ignored; a gap is fatal.
        let out = f.receive(leader, Message::Proposal(rec(z(2, 1)))).unwrap();
        assert!(out.now.is_empty() && out.after == [(leader, Message::Ack(z(2, 1)))]);
        assert_eq!(out.store, [Store::Append(vec![rec(z(2, 1))])]);
        assert_eq!(
            f.receive(leader, Message::Proposal(rec(z(2, 1)))),
            Ok(Output::default())
        );
        f.receive(leader, Message::Commit(z(2, 2))).unwrap();
        assert_eq!(
            f.history().committed(),
            z(2, 1),
            "a commit of a record it lacks waits for it"
        );
        assert_eq!(
            f.clone().receive(leader, Message::Proposal(rec(z(2, 3)))),
            Err(Lost::Gap {
                expected_after: z(2, 1),
                got: z(2, 3)
            })
        );
        f.receive(leader, Message::Proposal(rec(z(2, 2)))).unwrap();
        assert_eq!(f.history().committed(), z(2, 2));
        assert!(!f.is_serving(), "serves after UPTODATE only");
        f.receive(leader, Message::UpToDate { committed: z(2, 2) })
            .unwrap();
        assert!(f.is_serving());
    }

    #[test]
    fn a_learner_behind_a_trunc_or_a_snap_takes_the_leaders_history() {
        let leader_log = vec![rec(z(1, 1)), rec(z(3, 1))];
        let mut l = leader(4, leader_log.clone());
        let Message::Sync {
            plan,
            base,
            snapshot,
            records,
        } = l.add_learner(2, z(2, 5), None).now[0].1.clone()
        else {
            panic!("a sync first");
        };
        assert_eq!(plan, Sync::Trunc { to: z(1, 1) });
        let mut f = Learner::new(
            1,
            4,
            History::new(0, vec![rec(z(1, 1)), rec(z(2, 5))], 0),
            LIMITS,
            0,
        );
        let out = f
            .receive(
                1,
                Message::Sync {
                    plan,
                    base,
                    snapshot,
                    records,
                },
            )
            .unwrap();
        assert_eq!(
            out.store,
            [Store::Truncate(z(1, 1)), Store::Append(vec![rec(z(3, 1))])]
        );
        assert_eq!(
            f.history().records(),
            &leader_log[..],
            "its epoch-2 record is gone"
        );
    }

    #[test]
    fn a_leader_keeps_the_last_committed_records_and_sends_a_snapshot_to_learners_behind_them() {
        let mut l = serving_leader();
        for i in 0..4 {
            let (zxid, _) = l.propose(rec(i).1).unwrap();
            l.receive(2, Message::Ack(zxid));
            l.durable(Durable {
                log_to: Some(zxid),
                current_epoch: None,
            });
        }
        assert_eq!(l.history().committed(), z(2, 4));
        l.compact(2);
        assert_eq!(
            l.history().base(),
            z(2, 2),
            "the base moves to the last record forgotten"
        );
        let kept: Vec<Zxid> = l.history().records().iter().map(|r| r.0).collect();
        assert_eq!(kept, [z(2, 3), z(2, 4)]);
        assert_eq!(l.plan_for(z(2, 2)), Sync::Diff { after: z(2, 2) });
        assert_eq!(l.plan_for(z(1, 2)), Sync::Snap, "behind the base");
        let state = Snapshot {
            zxid: z(2, 3),
            data: Payload::from(&b"tree at 2.3"[..]),
        };
        let out = l.add_learner(3, z(1, 2), Some(state.clone()));
        let sync = out.now[0].1.clone();
        assert_eq!(
            sync,
            Message::Sync {
                plan: Sync::Snap,
                base: z(2, 3),
                snapshot: Some(state.data.clone()),
                records: vec![l.history().records()[1].clone()],
            },
            "the snapshot, then the records after it"
        );
        let mut f = Learner::new(1, 2, History::new(0, vec![rec(z(1, 1))], 0), LIMITS, 0);
        let out = f.receive(1, sync).unwrap();
        assert_eq!(
            out.store,
            [
                Store::Install(state),
                Store::Append(vec![l.history().records()[1].clone()])
            ]
        );
        assert_eq!(f.history().base(), z(2, 3));
        assert_eq!(
            f.history().committed(),
            z(2, 3),
            "a snapshot is committed state"
        );
    }

    #[test]
    fn silence_ends_leading_and_following() {
        // A leader that never serves gives up at the init limit.
        let mut l = leader(2, vec![]);
        l.add_learner(2, 0, None);
        assert_eq!(
            sends(&l.tick(100).unwrap()),
            [(2, "ping")],
            "a ping each tick"
        );
        assert!(sends(&l.tick(150).unwrap()).is_empty());
        assert_eq!(l.tick(1000), Err(StepDown::NotSynced));
        // A serving one needs a quorum heard from in each sync window.
        let mut l = serving_leader();
        assert!(
            l.tick(1000).is_ok(),
            "2 and 9 answered within the first window"
        );
        l.receive(9, Message::Ping(vec![]));
        assert_eq!(
            l.tick(1500),
            Err(StepDown::NoQuorum),
            "an observer is no quorum"
        );
        let mut l = serving_leader();
        l.tick(1000).unwrap();
        let out = l.receive(2, Message::Ping(vec![0x51]));
        assert_eq!(out.touched, [0x51], "the sessions 2 reports active");
        let write = Payload::from(&b"create /a"[..]);
        let out = l.receive(2, Message::Request(write.clone()));
        assert_eq!(out.requests, [(2, write.clone())], "a forwarded write");
        assert!(
            l.receive(3, Message::Request(write)).requests.is_empty(),
            "not from a member it does not lead"
        );
        assert!(l.tick(1500).is_ok(), "2 answered");

        let mut f = Learner::new(1, 2, History::new(0, vec![], 0), LIMITS, 0);
        f.touch([0x51, 0x52]);
        let answer = f.receive(1, Message::Ping(vec![])).unwrap();
        assert_eq!(
            answer.now,
            [(1, Message::Ping(vec![0x51, 0x52]))],
            "the answer names the sessions active since the last one"
        );
        let answer = f.receive(1, Message::Ping(vec![])).unwrap();
        assert_eq!(answer.now, [(1, Message::Ping(vec![]))], "once");
        assert_eq!(f.tick(999), Ok(()));
        assert_eq!(f.tick(1000), Ok(()), "heard within the init window");
        assert_eq!(f.tick(2000), Err(Lost::LeaderSilent));
    }

    #[test]
    fn a_leader_stops_rather_than_wrap_its_zxid_counter() {
        let mut l = serving_leader();
        l.counter = LAST_COUNTER - 1;
        assert!(l.deadline() > 0);
        let (zxid, _) = l.propose(rec(0).1).expect("the last zxid of the epoch");
        assert_eq!(zxid, z(2, i64::from(LAST_COUNTER)));
        assert!(l.propose(rec(1).1).is_none(), "no zxid is left");
        assert_eq!(l.deadline(), 0, "due at once");
        assert_eq!(l.tick(1), Err(StepDown::ZxidsExhausted));
    }
}
