//! One member of an ensemble (ZooKeeper's `QuorumPeer`): it looks for a
//! leader, then leads or learns (discovery, synchronisation, broadcast), and
//! looks again when that ends. One state machine with no I/O, driven alike
//! by the server's quorum transport and by the simulator.
//!
//! ```text
//!  inputs                         Peer                          Actions
//!  receive(from, Message) ─►  Looking ──► Leading    ──►  send   (now)
//!  tick(now)              ─►     ▲        Following       writes (ops + token)
//!  durable(token)         ─►     │        Observing       commit (records, in order)
//!  propose(payload)       ─►     └─ abandon, step down ◄┘ touched (a leader's)
//! ```
//!
//! Storage: every change to the member's log and epochs comes out as a
//! [`Write`] of [`Store`] operations with a token. The driver applies the
//! writes in the order they come, makes each durable, and reports it with
//! [`Peer::durable`], in the same order. What may only leave once a write is
//! durable (ACKEPOCH, a leader's LEADERINFO, ACK, AckNewLeader) the peer holds
//! until then, and drops if its role changed meanwhile (the connection it
//! was for is gone).
//!
//! Invariants:
//! - nothing that acknowledges state is sent before that state is durable;
//!   nor is a LEADERINFO sent before the leader's own acceptance of its
//!   epoch is (a quorum of acceptances counts the leader's);
//! - a leader counts its own copy of a record only once it is durable, and
//!   begins with a durable log (what its earlier roles wrote came before
//!   its acceptance of the epoch, on which establishing it waited);
//! - [`Actions::commit`] hands out each committed record once, in zxid
//!   order, across roles: records up to the applied point are not handed
//!   out again, and a truncation below it is a broken protocol (asserted);
//!   a SNAP's snapshot ([`Actions::install`]) replaces the state and moves
//!   the applied point to its zxid;
//! - memory holds the last `diff_limit` committed records (up to half as
//!   many again, forgotten in steps) and those not yet
//!   committed: a learner further behind is sent a snapshot of the leader's
//!   state, which the driver makes when asked ([`Actions::snapshot_wanted`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::broadcast::{self, Durable, History, Record, Settings, Snapshot, Store};
use super::discovery::{self, Epochs};
use super::election::{self, Election, Notification, Outcome, PeerState};
use super::quorum::Ensemble;
use super::sync::{Sync, SyncCounts};
use super::{Millis, Sid};
use crate::{SessionId, Zxid};

/// What members say to each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Vote(Notification),
    Discovery(discovery::Message),
    Zab(broadcast::Message),
}

/// What a member holds durably: its epochs and its log (the records after
/// `base`, the zxid its snapshot holds everything up to).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub epochs: Epochs,
    pub base: Zxid,
    pub log: Vec<Record>,
}

/// Storage operations to apply in order and make durable; then report
/// `token` to [`Peer::durable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub token: u64,
    pub ops: Vec<Store>,
}

/// Why a member left its role: it looks for a leader again, except after
/// `Rediscover`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    Discovery(discovery::Abandon),
    Lost(broadcast::Lost),
    StepDown(broadcast::StepDown),
    /// Its connection to the leader broke, or its driver asked.
    Disconnected,
    /// The leader's epoch has no zxid left: the leader and its learners go
    /// through discovery and synchronisation together again, for a new
    /// epoch, without an election.
    Rediscover,
}

/// What a step asks of the driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// To send now.
    pub send: Vec<(Sid, Message)>,
    /// To write, in order, after every earlier write.
    pub writes: Vec<Write>,
    /// A snapshot from the leader (SNAP) that replaces the state; applied
    /// before `commit`.
    pub install: Option<Snapshot>,
    /// Newly committed records, in zxid order, to apply.
    pub commit: Vec<Record>,
    /// A learner needs a SNAP: hand [`Peer::snapshot`] the state as it is
    /// now (everything up to [`Peer::applied`] applied).
    pub snapshot_wanted: bool,
    /// Sessions learners report activity in (while leading).
    pub touched: Vec<SessionId>,
    /// Writes learners forward, by learner (while leading): to prepare and
    /// propose as the leader's own clients' writes.
    pub requests: Vec<(Sid, broadcast::Payload)>,
    /// Set when the member left its role in this step.
    pub left: Option<Left>,
}

impl Actions {
    fn merge(&mut self, more: Actions) {
        self.send.extend(more.send);
        self.writes.extend(more.writes);
        assert!(
            more.install.is_none() || self.commit.is_empty(),
            "a snapshot is installed before the commits that follow it"
        );
        self.install = more.install.or(self.install.take());
        self.commit.extend(more.commit);
        self.snapshot_wanted |= more.snapshot_wanted;
        self.touched.extend(more.touched);
        self.requests.extend(more.requests);
        self.left = self.left.or(more.left);
    }
}

/// Where a member stands, for its driver and for `srvr` / `mntr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: PeerState,
    /// The leader it leads or follows (none while looking).
    pub leader: Option<Sid>,
    /// The epoch it leads or acknowledged, once discovery settled it.
    pub epoch: Option<u32>,
    /// Whether it serves clients: synchronised, the leader with a quorum.
    pub serving: bool,
    /// The latest election round it took part in.
    pub round: u64,
}

enum Role {
    Looking(Election),
    Leading(Outcome, discovery::Leader, Option<broadcast::Leader>),
    Learning(Outcome, discovery::Learner, Option<broadcast::Learner>),
}

/// A write not yet durable, and what waits for it.
struct Pending {
    token: u64,
    /// The role it was written in: what waits for it is for that role only.
    incarnation: u64,
    durable: Option<Durable>,
    after: Vec<(Sid, Message)>,
}

pub struct Peer {
    me: Sid,
    ensemble: Ensemble,
    settings: Settings,
    /// As written (durable once the pending writes are).
    epochs: Epochs,
    /// The log, while no broadcast role holds it.
    log: History,
    round: u64,
    role: Role,
    /// Counts role changes.
    incarnation: u64,
    pending: VecDeque<Pending>,
    next_token: u64,
    /// Learners (with their last zxids) whose SNAP waits for a snapshot.
    awaiting_snapshot: Vec<(Sid, Zxid)>,
    /// Everything up to here was handed out in [`Actions::commit`] (or is in
    /// the snapshot the member started from).
    applied: Zxid,
    /// Voters the transport cannot reach now ([`Peer::reachable`]).
    unreachable: BTreeSet<Sid>,
    /// FOLLOWERINFOs that arrived while this member was still looking, the
    /// latest of each member: if it decides to lead, it takes them as if
    /// they arrived then (its followers may decide first; without this they
    /// would wait a [`discovery::LEARNER_RETRY_MS`] to say it again).
    early: BTreeMap<Sid, discovery::Message>,
    /// The learners this member synchronised as leader, since it started.
    syncs: SyncCounts,
}

impl Peer {
    /// Starts a member from what it holds durably: it looks for a leader.
    pub fn start(
        me: Sid,
        ensemble: &Ensemble,
        settings: Settings,
        stored: Stored,
        now: Millis,
    ) -> (Peer, Actions) {
        let log = History::new(stored.base, stored.log, stored.base);
        let history = (stored.epochs.current, log.last());
        let (election, out) = Election::start(me, ensemble, history, 1, now);
        let mut peer = Peer {
            me,
            ensemble: ensemble.clone(),
            settings,
            epochs: stored.epochs,
            log,
            round: 1,
            role: Role::Looking(election),
            incarnation: 0,
            pending: VecDeque::new(),
            next_token: 1,
            awaiting_snapshot: Vec::new(),
            applied: stored.base,
            unreachable: BTreeSet::new(),
            early: BTreeMap::new(),
            syncs: SyncCounts::default(),
        };
        let actions = peer.after_election(out, now);
        (peer, actions)
    }

    pub fn status(&self) -> Status {
        let (state, leader, epoch, serving) = match &self.role {
            Role::Looking(_) => (PeerState::Looking, None, None, false),
            Role::Leading(o, d, b) => (
                o.state,
                Some(self.me),
                d.established(),
                b.as_ref().is_some_and(broadcast::Leader::is_serving),
            ),
            Role::Learning(o, d, l) => (
                o.state,
                Some(o.vote.leader),
                d.epoch(),
                l.as_ref().is_some_and(broadcast::Learner::is_serving),
            ),
        };
        let round = match &self.role {
            Role::Looking(e) => e.round(),
            _ => self.round,
        };
        Status {
            state,
            leader,
            epoch,
            serving,
            round,
        }
    }

    /// A leader's learners, counted; none otherwise.
    pub fn learner_counts(&self) -> broadcast::LearnerCounts {
        match &self.role {
            Role::Leading(_, _, Some(b)) => b.learner_counts(),
            _ => broadcast::LearnerCounts::default(),
        }
    }

    /// The learners it synchronised as leader, by kind, since it started.
    pub fn sync_counts(&self) -> SyncCounts {
        self.syncs
    }

    /// The log as written: its base and records.
    pub fn log(&self) -> (Zxid, &[Record]) {
        let history = self.history();
        (history.base(), history.records())
    }

    /// The zxid of the last record of the log as written.
    pub fn last_zxid(&self) -> Zxid {
        self.history().last()
    }

    /// The history: its broadcast role's, or the one kept between roles.
    fn history(&self) -> &History {
        match &self.role {
            Role::Leading(_, _, Some(b)) => b.history(),
            Role::Learning(_, _, Some(l)) => l.history(),
            _ => &self.log,
        }
    }

    /// The epochs as written.
    pub fn epochs(&self) -> Epochs {
        self.epochs
    }

    /// Everything up to this zxid is committed and was handed out.
    pub fn applied(&self) -> Zxid {
        self.applied
    }

    /// When [`Peer::tick`] next has something to do.
    pub fn deadline(&self) -> Millis {
        match &self.role {
            Role::Looking(e) => e.deadline(),
            Role::Leading(_, d, b) => d
                .deadline()
                .or(b.as_ref().map(broadcast::Leader::deadline))
                .unwrap_or(Millis::MAX),
            Role::Learning(_, d, l) => d
                .deadline()
                .or(l.as_ref().map(broadcast::Learner::deadline))
                .unwrap_or(Millis::MAX),
        }
    }

    pub fn receive(&mut self, from: Sid, msg: Message, now: Millis) -> Actions {
        let settings = self.settings;
        match (&mut self.role, msg) {
            (Role::Looking(e), Message::Vote(n)) => {
                let out = e.receive(from, n, now);
                self.after_election(out, now)
            }
            (Role::Leading(o, ..) | Role::Learning(o, ..), Message::Vote(n)) => {
                let send = election::answer(o, from, &n).into_iter();
                Actions {
                    send: send.map(|(to, n)| (to, Message::Vote(n))).collect(),
                    ..Actions::default()
                }
            }
            (
                Role::Looking(_),
                Message::Discovery(dm @ discovery::Message::FollowerInfo { .. }),
            ) => {
                self.early.insert(from, dm);
                Actions::default()
            }
            (Role::Looking(_), _) => Actions::default(), // not listening yet
            (Role::Learning(o, ..), Message::Discovery(discovery::Message::Rediscover)) => {
                if o.vote.leader == from {
                    self.learn_again(now)
                } else {
                    Actions::default()
                }
            }
            (Role::Leading(..), Message::Discovery(dm)) => self.leader_discovery(from, dm, now),
            (Role::Learning(o, d, b), Message::Discovery(dm)) => match d.receive(from, dm) {
                Err(why) => self.abandon(Left::Discovery(why), now),
                Ok(out) => {
                    if let (None, Some(epoch)) = (&b, d.epoch()) {
                        *o = o.in_epoch(epoch);
                        let log = take_log(&mut self.log, self.applied);
                        *b = Some(broadcast::Learner::new(
                            from,
                            epoch,
                            log,
                            settings.limits,
                            now,
                        ));
                    }
                    self.discovery_output(out)
                }
            },
            (Role::Leading(_, _, Some(b)), Message::Zab(zm)) => {
                let out = b.receive(from, zm);
                self.broadcast_output(out)
            }
            (Role::Learning(_, _, Some(l)), Message::Zab(zm)) => match l.receive(from, zm) {
                Err(lost) => self.abandon(Left::Lost(lost), now),
                Ok(out) => self.broadcast_output(out),
            },
            (_, Message::Zab(_)) => Actions::default(),
        }
    }

    /// Time passed: election rebroadcasts, PINGs, the init and sync limits.
    pub fn tick(&mut self, now: Millis) -> Actions {
        match &mut self.role {
            Role::Looking(e) => {
                let out = e.tick(now);
                self.after_election(out, now)
            }
            Role::Leading(_, _, Some(b)) => match b.tick(now) {
                Err(broadcast::StepDown::ZxidsExhausted) => self.lead_again(now),
                Err(why) => self.abandon(Left::StepDown(why), now),
                Ok(out) => self.broadcast_output(out),
            },
            Role::Leading(_, d, None) => match d.tick(now) {
                Err(why) => self.abandon(Left::Discovery(why), now),
                Ok(()) => Actions::default(),
            },
            Role::Learning(_, _, Some(l)) => match l.tick(now) {
                Err(why) => self.abandon(Left::Lost(why), now),
                Ok(()) => Actions::default(),
            },
            Role::Learning(_, d, None) => match d.tick(now) {
                Err(why) => self.abandon(Left::Discovery(why), now),
                Ok(out) => self.discovery_output(out),
            },
        }
    }

    /// The write `token` is durable (tokens come back in the order issued).
    pub fn durable(&mut self, token: u64) -> Actions {
        let done = self.pending.pop_front().expect("a write was pending");
        assert_eq!(done.token, token, "writes become durable in order");
        if done.incarnation != self.incarnation {
            return Actions::default();
        }
        let mut actions = Actions {
            send: done.after,
            ..Actions::default()
        };
        if let (Role::Leading(_, _, Some(b)), Some(d)) = (&mut self.role, done.durable) {
            let out = b.durable(d);
            actions.merge(self.broadcast_output(out));
        }
        actions
    }

    /// Proposes a transaction, if this member leads and serves: its zxid.
    pub fn propose(&mut self, payload: broadcast::Payload) -> Option<(Zxid, Actions)> {
        let Role::Leading(_, _, Some(b)) = &mut self.role else {
            return None;
        };
        let (zxid, out) = b.propose(payload)?;
        Some((zxid, self.broadcast_output(out)))
    }

    /// The state at a zxid up to [`Peer::applied`], for the learners that
    /// wait for a SNAP. A driver that applies on another thread may be a
    /// little behind; a snapshot older than the records the leader still
    /// holds is refused by asking for one again.
    pub fn snapshot(&mut self, snapshot: Snapshot) -> Actions {
        assert!(
            snapshot.zxid <= self.applied,
            "a snapshot of the state as applied"
        );
        let Role::Leading(_, _, Some(b)) = &mut self.role else {
            self.awaiting_snapshot.clear();
            return Actions::default();
        };
        if snapshot.zxid < b.history().base() {
            return Actions {
                snapshot_wanted: !self.awaiting_snapshot.is_empty(),
                ..Actions::default()
            };
        }
        let waiting = std::mem::take(&mut self.awaiting_snapshot);
        self.syncs.snap += waiting.len() as u64;
        let syncs: Vec<broadcast::Output> = waiting
            .into_iter()
            .map(|(sid, last)| b.add_learner(sid, last, Some(snapshot.clone())))
            .collect();
        let mut actions = Actions::default();
        for out in syncs {
            actions.merge(self.broadcast_output(out));
        }
        actions
    }

    /// A client's write that reached this learner, forwarded to its leader;
    /// `None` when it does not serve (the client is told to look elsewhere).
    pub fn forward(&self, request: broadcast::Payload) -> Option<Actions> {
        let Role::Learning(_, _, Some(l)) = &self.role else {
            return None;
        };
        let (to, msg) = l.forward(request)?;
        Some(Actions {
            send: vec![(to, Message::Zab(msg))],
            ..Actions::default()
        })
    }

    /// Sessions this member's clients were active in; a learner reports
    /// them to its leader in its next PING answer.
    pub fn touch(&mut self, sessions: impl IntoIterator<Item = SessionId>) {
        if let Role::Learning(_, _, Some(l)) = &mut self.role {
            l.touch(sessions);
        }
    }

    /// The connection to `sid` broke: a leader stops sending to it; a
    /// learner of it looks for a leader again.
    pub fn disconnected(&mut self, sid: Sid, now: Millis) -> Actions {
        self.early.remove(&sid);
        match &mut self.role {
            Role::Leading(_, _, Some(b)) => {
                b.remove_learner(sid);
                Actions::default()
            }
            Role::Learning(o, ..) if o.vote.leader == sid => self.abandon(Left::Disconnected, now),
            _ => Actions::default(),
        }
    }

    /// The transport can (`up`) or cannot reach `sid` now (its election
    /// connection is up or not). A member looking for a leader decides
    /// without the finalize wait once every voter it can reach agrees.
    pub fn reachable(&mut self, sid: Sid, up: bool, now: Millis) -> Actions {
        if up {
            self.unreachable.remove(&sid);
        } else {
            self.unreachable.insert(sid);
        }
        match &mut self.role {
            Role::Looking(e) => {
                e.reachable(sid, up, now);
                self.after_election(Vec::new(), now)
            }
            _ => Actions::default(),
        }
    }

    /// Leaves whatever role this member has and looks for a leader again.
    pub fn look_again(&mut self, now: Millis) -> Actions {
        self.abandon(Left::Disconnected, now)
    }

    fn abandon(&mut self, why: Left, now: Millis) -> Actions {
        let mut actions = self.look(now);
        actions.left = Some(why);
        actions
    }

    /// Starts looking, in the round after the last one it took part in.
    fn look(&mut self, now: Millis) -> Actions {
        self.take_log_back();
        self.awaiting_snapshot.clear();
        self.round = self.status().round + 1;
        let history = (self.epochs.current, self.last_zxid());
        let (mut e, out) = Election::start(self.me, &self.ensemble, history, self.round, now);
        for &sid in &self.unreachable {
            e.reachable(sid, false, now);
        }
        self.early.clear();
        self.role = Role::Looking(e);
        self.incarnation += 1;
        self.after_election(out, now)
    }

    /// The epoch has no zxid left (ZOOKEEPER-1277): rather than step down
    /// into an election, as ZooKeeper's leader does, this one tells every
    /// member to discover again and begins discovery as if just elected. It
    /// may lead only once a quorum accepts a new epoch from it, and that
    /// quorum's acknowledgements must not be ahead of its history, exactly
    /// as after an election; its followers keep to it, so none of them
    /// looks. Its proposals not yet committed are in its history, and the
    /// synchronisation of the new epoch commits them.
    fn lead_again(&mut self, now: Millis) -> Actions {
        let Role::Leading(outcome, _, Some(b)) = &self.role else {
            unreachable!("only a leader runs out of zxids");
        };
        let outcome = *outcome;
        // Every voter, and the observers it knows of.
        let me = self.me;
        let told: BTreeSet<Sid> = (self.ensemble.voters())
            .chain(b.learners())
            .chain(self.awaiting_snapshot.iter().map(|&(sid, _)| sid))
            .filter(|&sid| sid != me)
            .collect();
        self.take_log_back();
        self.awaiting_snapshot.clear();
        self.early.clear();
        self.incarnation += 1;
        let (init_ms, last) = (self.settings.limits.init_ms, self.last_zxid());
        let d = discovery::Leader::start(me, &self.ensemble, self.epochs, last, now, init_ms);
        self.role = Role::Leading(outcome, d, None);
        let send = told
            .into_iter()
            .map(|sid| (sid, Message::Discovery(discovery::Message::Rediscover)))
            .collect();
        Actions {
            send,
            left: Some(Left::Rediscover),
            ..Actions::default()
        }
    }

    /// Its leader ran out of zxids and discovers again: so does this
    /// learner, with the same leader (see [`Peer::lead_again`]).
    fn learn_again(&mut self, now: Millis) -> Actions {
        let Role::Learning(outcome, ..) = &self.role else {
            unreachable!("only a learner follows a leader into a new epoch");
        };
        let outcome = *outcome;
        self.take_log_back();
        self.incarnation += 1;
        let (init_ms, last) = (self.settings.limits.init_ms, self.last_zxid());
        let (d, out) =
            discovery::Learner::start(outcome.vote.leader, self.epochs, last, now, init_ms);
        self.role = Role::Learning(outcome, d, None);
        let mut actions = self.discovery_output(out);
        actions.left = Some(Left::Rediscover);
        actions
    }

    /// The log back from a broadcast role that ends.
    fn take_log_back(&mut self) {
        let log = match &mut self.role {
            Role::Leading(_, _, b) => b.take().map(broadcast::Leader::into_history),
            Role::Learning(_, _, l) => l.take().map(broadcast::Learner::into_history),
            Role::Looking(_) => None,
        };
        if let Some(log) = log {
            self.log = log;
        }
    }

    /// Sends an election's notifications; if it decided, takes the role.
    fn after_election(&mut self, out: Vec<election::Send>, now: Millis) -> Actions {
        let mut actions = Actions {
            send: out
                .into_iter()
                .map(|(to, n)| (to, Message::Vote(n)))
                .collect(),
            ..Actions::default()
        };
        let Role::Looking(e) = &self.role else {
            return actions;
        };
        let Some(outcome) = e.outcome() else {
            return actions;
        };
        self.round = self.round.max(e.round());
        self.incarnation += 1;
        let (init_ms, last) = (self.settings.limits.init_ms, self.last_zxid());
        let leader = outcome.vote.leader;
        let early = std::mem::take(&mut self.early);
        if leader == self.me {
            let d =
                discovery::Leader::start(self.me, &self.ensemble, self.epochs, last, now, init_ms);
            self.role = Role::Leading(outcome, d, None);
            for (from, info) in early {
                actions.merge(self.leader_discovery(from, info, now));
            }
        } else {
            let (d, out) = discovery::Learner::start(leader, self.epochs, last, now, init_ms);
            self.role = Role::Learning(outcome, d, None);
            actions.merge(self.discovery_output(out));
        }
        actions
    }

    fn leader_discovery(&mut self, from: Sid, dm: discovery::Message, now: Millis) -> Actions {
        let Role::Leading(o, d, b) = &mut self.role else {
            return Actions::default();
        };
        let out = match d.receive(from, dm) {
            Err(why) => return self.abandon(Left::Discovery(why), now),
            Ok(out) => out,
        };
        let Some(epoch) = d.established() else {
            return self.discovery_output(out);
        };
        *o = o.in_epoch(epoch);
        if b.is_none() {
            let log = take_log(&mut self.log, self.applied);
            // Its log is durable: its last write was its acceptance of the
            // epoch (after every earlier one), and no member acknowledged
            // the epoch before that was durable.
            assert!(self.pending.is_empty(), "established with writes pending");
            let (me, settings) = (self.me, self.settings);
            *b = Some(broadcast::Leader::new(
                me,
                &self.ensemble,
                epoch,
                log,
                settings,
                now,
            ));
        }
        let b = b.as_mut().expect("leading");
        let mut syncs = Vec::new();
        let mut snapshot_wanted = false;
        for (sid, last) in d.take_joined() {
            let plan = b.plan_for(last);
            if plan == Sync::Snap {
                self.awaiting_snapshot.push((sid, last));
                snapshot_wanted = true;
            } else {
                self.syncs.count(plan);
                syncs.push(b.add_learner(sid, last, None));
            }
        }
        let mut actions = self.discovery_output(out);
        actions.snapshot_wanted = snapshot_wanted;
        for out in syncs {
            actions.merge(self.broadcast_output(out));
        }
        actions
    }

    /// A discovery step: the accepted epoch written first, and the sends
    /// after it is durable.
    fn discovery_output(&mut self, out: discovery::Output) -> Actions {
        let send: Vec<(Sid, Message)> = out
            .send
            .into_iter()
            .map(|(to, m)| (to, Message::Discovery(m)))
            .collect();
        let Some(epoch) = out.accept_epoch else {
            // Nothing of discovery overtakes the accepted epoch: a LEADERINFO
            // to a learner that came late waits for the leader's own.
            if let Some(p) = self.pending.back_mut() {
                if p.incarnation == self.incarnation {
                    p.after.extend(send);
                    return Actions::default();
                }
            }
            return Actions {
                send,
                ..Actions::default()
            };
        };
        assert!(
            epoch > self.epochs.accepted,
            "an accepted epoch only grows: {epoch} after {}",
            self.epochs.accepted
        );
        self.epochs.accepted = epoch;
        Actions {
            writes: vec![self.write(vec![Store::AcceptEpoch(epoch)], None, send)],
            ..Actions::default()
        }
    }

    /// A broadcast step: sends, the write and what waits for it, and the
    /// records it committed.
    fn broadcast_output(&mut self, out: broadcast::Output) -> Actions {
        let mut actions = Actions {
            send: zab(out.now),
            touched: out.touched,
            requests: out.requests,
            ..Actions::default()
        };
        for op in &out.store {
            match op {
                Store::Truncate(to) => assert!(
                    *to >= self.applied,
                    "truncating to {to:#x} would undo commits up to {:#x}",
                    self.applied
                ),
                Store::CurrentEpoch(e) => self.epochs.current = *e,
                Store::Install(s) => {
                    self.applied = s.zxid;
                    actions.install = Some(s.clone());
                }
                Store::Append(_) | Store::AcceptEpoch(_) => {}
            }
        }
        if out.store.is_empty() && out.durable.is_none() {
            actions.send.extend(zab(out.after));
        } else {
            let write = self.write(out.store, out.durable, zab(out.after));
            actions.writes.push(write);
        }
        actions.commit = self.newly_committed();
        // Forgotten half a limit at a time: compacting moves the records
        // kept, so doing it at every step would cost a copy of them per step.
        let limit = self.settings.diff_limit;
        let over = |h: &History| h.records().len() > limit + limit / 2;
        match &mut self.role {
            Role::Leading(_, _, Some(b)) if over(b.history()) => b.compact(limit),
            Role::Learning(_, _, Some(l)) if over(l.history()) => l.compact(limit),
            _ => {}
        }
        actions
    }

    fn write(
        &mut self,
        ops: Vec<Store>,
        durable: Option<Durable>,
        after: Vec<(Sid, Message)>,
    ) -> Write {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.push_back(Pending {
            token,
            incarnation: self.incarnation,
            durable,
            after,
        });
        Write { token, ops }
    }

    /// The records committed since last handed out.
    fn newly_committed(&mut self) -> Vec<Record> {
        let history = self.history();
        if history.committed() <= self.applied {
            return Vec::new();
        }
        assert!(
            history.base() <= self.applied,
            "a history from {:#x} on skips records after {:#x}",
            history.base(),
            self.applied
        );
        let (applied, committed) = (self.applied, history.committed());
        let records = history.records();
        let from = records.partition_point(|r| r.0 <= applied);
        let to = records.partition_point(|r| r.0 <= committed);
        let newly = records[from..to].to_vec();
        self.applied = committed;
        newly
    }
}

fn zab(out: Vec<(Sid, broadcast::Message)>) -> Vec<(Sid, Message)> {
    out.into_iter()
        .map(|(to, m)| (to, Message::Zab(m)))
        .collect()
}

/// The log, for a broadcast role that begins, with what this member knows
/// to be committed: what it applied.
fn take_log(log: &mut History, applied: Zxid) -> History {
    let log = std::mem::replace(log, History::new(0, Vec::new(), 0));
    let base = log.base();
    History::new(base, log.into_records(), applied)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use super::*;
    use crate::zab::broadcast::{Limits, Payload, LAST_COUNTER};

    const SETTINGS: Settings = Settings {
        limits: Limits {
            tick_ms: 100,
            init_ms: 1000,
            sync_ms: 500,
        },
        diff_limit: 10,
        last_counter: LAST_COUNTER,
    };

    fn rec(counter: i64) -> Record {
        (
            1 << 32 | counter,
            Payload::from(counter.to_be_bytes().as_slice()),
        )
    }

    /// Three voters on a prompt network. Disks complete writes when told
    /// (`flush`), so a test sees what waits for them.
    struct Ensemble3 {
        peers: BTreeMap<Sid, Peer>,
        net: VecDeque<(Sid, Sid, Message)>,
        disks: BTreeMap<Sid, VecDeque<Write>>,
        commits: BTreeMap<Sid, Vec<Zxid>>,
        now: Millis,
        /// Crashed members: what goes to them is lost; they do nothing.
        down: BTreeSet<Sid>,
        /// Deliver discovery messages ahead of the rest (as when the quorum
        /// connection is quicker than the election one).
        discovery_first: bool,
    }

    impl Ensemble3 {
        fn new(logs: [Vec<Record>; 3]) -> Ensemble3 {
            Ensemble3::with(SETTINGS, logs)
        }

        fn with(settings: Settings, logs: [Vec<Record>; 3]) -> Ensemble3 {
            let ensemble = Ensemble::new([1, 2, 3], []).unwrap();
            let mut e = Ensemble3 {
                peers: BTreeMap::new(),
                net: VecDeque::new(),
                disks: BTreeMap::new(),
                commits: BTreeMap::new(),
                now: 0,
                down: BTreeSet::new(),
                discovery_first: false,
            };
            for (sid, log) in (1..=3).zip(logs) {
                let stored = Stored {
                    epochs: Epochs {
                        accepted: 1,
                        current: 1,
                    },
                    base: 0,
                    log,
                };
                let (peer, actions) = Peer::start(sid, &ensemble, settings, stored, 0);
                e.peers.insert(sid, peer);
                e.act(sid, actions);
            }
            e
        }

        fn act(&mut self, sid: Sid, actions: Actions) {
            self.net
                .extend(actions.send.into_iter().map(|(to, m)| (sid, to, m)));
            self.disks.entry(sid).or_default().extend(actions.writes);
            let commits = self.commits.entry(sid).or_default();
            commits.extend(actions.commit.iter().map(|r| r.0));
        }

        /// Delivers messages and, with `flush`, completes writes, until
        /// nothing is left to do; then lets time pass by `ms`.
        fn run(&mut self, flush: bool, ms: Millis) {
            loop {
                let next =
                    match self.net.iter().position(|(.., m)| {
                        self.discovery_first && matches!(m, Message::Discovery(_))
                    }) {
                        Some(at) => self.net.remove(at),
                        None => self.net.pop_front(),
                    };
                if let Some((from, to, msg)) = next {
                    if self.down.contains(&to) {
                        continue;
                    }
                    let actions = self
                        .peers
                        .get_mut(&to)
                        .unwrap()
                        .receive(from, msg, self.now);
                    self.act(to, actions);
                    continue;
                }
                if !flush {
                    break;
                }
                let due = self
                    .disks
                    .iter_mut()
                    .find_map(|(&sid, d)| d.pop_front().map(|w| (sid, w)));
                match due {
                    Some((sid, w)) => {
                        let actions = self.peers.get_mut(&sid).unwrap().durable(w.token);
                        self.act(sid, actions);
                    }
                    None => break,
                }
            }
            let until = self.now + ms;
            while self.now < until {
                self.now += 10;
                let up: Vec<Sid> = (1..=3).filter(|s| !self.down.contains(s)).collect();
                for sid in up {
                    let actions = self.peers.get_mut(&sid).unwrap().tick(self.now);
                    self.act(sid, actions);
                }
                self.run(flush, 0);
            }
        }

        fn status(&self, sid: Sid) -> Status {
            self.peers[&sid].status()
        }

        /// `sid` crashes: the others' connections with it break, and their
        /// transports can no longer reach it.
        fn crash(&mut self, sid: Sid) {
            self.down.insert(sid);
            for other in (1..=3).filter(|&o| o != sid) {
                let peer = self.peers.get_mut(&other).unwrap();
                let mut actions = peer.disconnected(sid, self.now);
                actions.merge(peer.reachable(sid, false, self.now));
                self.act(other, actions);
            }
        }
    }

    #[test]
    fn a_leader_out_of_zxids_leads_its_followers_into_a_new_epoch_without_an_election() {
        let settings = Settings {
            last_counter: 3,
            ..SETTINGS
        };
        let mut e = Ensemble3::with(settings, [vec![rec(1)], vec![rec(1), rec(2)], vec![]]);
        e.run(true, 600);
        let before: Vec<Status> = (1..=3).map(|sid| e.status(sid)).collect();
        assert_eq!(
            (before[1].state, before[1].epoch),
            (PeerState::Leading, Some(2))
        );
        assert!(before.iter().all(|s| s.serving));
        let mut proposed = Vec::new();
        for n in 0..3 {
            let payload = Payload::from(vec![n]);
            let leader = e.peers.get_mut(&2).unwrap();
            let (zxid, actions) = leader.propose(payload).expect("zxids left");
            proposed.push(zxid);
            e.act(2, actions);
        }
        let leader = e.peers.get_mut(&2).unwrap();
        assert_eq!(proposed, [2 << 32 | 1, 2 << 32 | 2, 2 << 32 | 3]);
        assert!(
            leader.propose(Payload::from(vec![9])).is_none(),
            "none left"
        );
        assert_eq!(leader.deadline(), 0, "the leader moves on at once");
        // Messages only, no disk: the proposals are not committed yet when
        // the leader finds its epoch used up.
        e.run(false, 0);
        let actions = e.peers.get_mut(&2).unwrap().tick(e.now);
        assert_eq!(actions.left, Some(Left::Rediscover));
        e.act(2, actions);
        e.run(true, 0);
        for (sid, was) in (1..=3).zip(&before) {
            let s = e.status(sid);
            assert_eq!(
                (s.state, s.leader, s.epoch, s.serving),
                (was.state, Some(2), Some(3), true),
                "member {sid} in the new epoch"
            );
            assert_eq!(s.round, was.round, "member {sid} held no election");
            assert_eq!(
                e.commits[&sid][e.commits[&sid].len() - 3..],
                proposed,
                "member {sid} committed the proposals of the old epoch"
            );
        }
        assert_eq!(e.peers[&2].sync_counts().diff, 4, "both followers twice");
        let (zxid, _) = e
            .peers
            .get_mut(&2)
            .unwrap()
            .propose(Payload::from(vec![3]))
            .unwrap();
        assert_eq!(zxid, 3 << 32 | 1, "the counter starts again");
    }

    #[test]
    fn survivors_of_a_dead_leader_serve_again_without_waiting_out_a_timer() {
        let mut e = Ensemble3::new([vec![rec(1)], vec![rec(1), rec(2)], vec![rec(1)]]);
        e.run(true, 600);
        assert_eq!(e.status(2).state, PeerState::Leading);
        // The follower decides first and its FOLLOWERINFO reaches 3 while 3
        // still looks: 3 takes it once it decides, and no time need pass
        // (no finalize wait: the only voter that could disagree is gone).
        e.discovery_first = true;
        let at = e.now;
        e.crash(2);
        e.run(true, 0);
        assert_eq!(e.now, at);
        let (s1, s3) = (e.status(1), e.status(3));
        assert_eq!((s3.state, s3.serving), (PeerState::Leading, true));
        assert_eq!(
            (s1.state, s1.leader, s1.serving),
            (PeerState::Following, Some(3), true)
        );
        assert_eq!(s3.epoch, Some(3));
        let diff = SyncCounts {
            diff: 1,
            ..SyncCounts::default()
        };
        assert_eq!(e.peers[&3].sync_counts(), diff, "1 by DIFF");
        assert_eq!(e.peers[&2].sync_counts().diff, 2, "as the first leader");
    }

    #[test]
    fn the_most_recent_member_leads_and_every_member_commits_each_record_once() {
        let mut e = Ensemble3::new([vec![rec(1)], vec![rec(1), rec(2)], vec![]]);
        e.run(true, 600);
        let leader = e.status(2);
        assert_eq!(
            leader.state,
            PeerState::Leading,
            "2 holds the most recent history"
        );
        assert!(leader.serving && leader.epoch == Some(2));
        for sid in [1, 3] {
            let s = e.status(sid);
            assert_eq!(
                (s.state, s.leader, s.serving),
                (PeerState::Following, Some(2), true)
            );
        }
        for sid in 1..=3 {
            assert_eq!(
                e.commits[&sid],
                [rec(1).0, rec(2).0],
                "{sid} applies the history"
            );
            assert_eq!(
                e.peers[&sid].epochs(),
                Epochs {
                    accepted: 2,
                    current: 2
                }
            );
        }
        let (zxid, actions) = e.peers.get_mut(&2).unwrap().propose(rec(9).1).unwrap();
        assert_eq!(zxid, 2 << 32 | 1);
        e.act(2, actions);
        e.run(true, 300);
        for sid in 1..=3 {
            assert_eq!(
                e.commits[&sid],
                [rec(1).0, rec(2).0, zxid],
                "{sid}: once each"
            );
        }
        // Looking again and following the same history hands nothing out twice.
        let actions = e.peers.get_mut(&1).unwrap().look_again(e.now);
        assert_eq!(actions.left, Some(Left::Disconnected));
        e.act(1, actions);
        e.run(true, 1500);
        assert!(e.status(1).serving);
        assert_eq!(e.commits[&1], [rec(1).0, rec(2).0, zxid]);
    }

    #[test]
    fn acknowledgements_wait_for_the_writes_that_cover_them() {
        let mut e = Ensemble3::new([vec![], vec![rec(1)], vec![]]);
        e.run(true, 600);
        assert!(e.status(2).serving);
        let (zxid, actions) = e.peers.get_mut(&2).unwrap().propose(rec(5).1).unwrap();
        assert_eq!(
            actions
                .writes
                .iter()
                .map(|w| w.ops.clone())
                .collect::<Vec<_>>(),
            [vec![Store::Append(vec![(zxid, rec(5).1)])]],
            "the leader writes its proposal"
        );
        e.act(2, actions);
        e.run(false, 0);
        assert!(
            e.net.is_empty(),
            "no ACK leaves before the follower's fsync"
        );
        assert!(!e.commits[&2].contains(&zxid));
        // The followers' writes complete: their ACKs go; the leader still
        // lacks its own durable copy and 1 + 3 are a quorum without it.
        for sid in [1, 3] {
            let w = e
                .disks
                .get_mut(&sid)
                .unwrap()
                .pop_front()
                .expect("the proposal's write");
            assert_eq!(w.ops, [Store::Append(vec![(zxid, rec(5).1)])]);
            let actions = e.peers.get_mut(&sid).unwrap().durable(w.token);
            assert_eq!(
                actions.send,
                [(2, Message::Zab(broadcast::Message::Ack(zxid)))]
            );
            e.act(sid, actions);
        }
        e.run(false, 0);
        assert!(
            e.commits[&2].contains(&zxid),
            "two durable copies of three commit it"
        );
    }
}
