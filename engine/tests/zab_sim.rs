//! Zab across whole simulated ensembles (3 and 5 voters and an observer) in
//! one thread: a seeded clock, network, disk and crashes, so a failing seed
//! replays exactly. It runs all of Zab that exists: leader election,
//! discovery, synchronisation and broadcast, with clients writing through
//! whichever leader serves.
//!
//! Each member has a durable state (its log, current and accepted epochs)
//! and a disk that makes writes durable a while after they are asked for;
//! a crash loses what was not yet durable. Each seed runs three phases:
//! 1. faults: messages lost, duplicated and delayed past the finalize wait,
//!    partitions that change, members crashing and restarting (a restarted
//!    member keeps its durable state and starts again at round 1, as
//!    ZooKeeper's logical clock does). A member that left election looks
//!    again a while later, as it does when it loses its leader.
//! 2. healing: the network is whole and prompt (what was on its way during
//!    the faults is gone with the connections), every member runs. For half
//!    the seeds every member looks again, and the voter with the most recent
//!    history must win; for the others members find out by themselves what
//!    the faults left (gaps, PINGs, the limits). Within a bounded time a
//!    leader must serve with a quorum of voters serving in its epoch, new
//!    writes must commit on it and on them, and no other leader may be left
//!    (PINGs and the sync limit end a leader that lost its quorum).
//! 3. a serving follower restarts: it must serve again under a leader.
//!
//! Checked at every step:
//! - an election's leader is a voter; an observer observes;
//! - a member's round never goes back while it runs, nor its accepted epoch
//!   ever;
//! - at most one leader establishes each epoch, and only once a quorum has
//!   made that epoch durable; an ACKEPOCH comes from a member that made its
//!   epoch durable;
//! - committed records agree: every member commits the same payload at a
//!   zxid, and a leader starts serving only with every record any member
//!   ever committed in its log (no acknowledged write is lost);
//! - acknowledgements only for what is durable: a leader's commit point is
//!   held durably by a quorum of voters.
//!
//! More seeds: `HERD_SIM_SEEDS=100000 cargo test --release -p herd-engine
//! --test zab_sim`; one seed with its events: `HERD_SIM_SEED=N`.

use std::collections::{BTreeMap, VecDeque};

use herd_engine::sim::{env_or, Faults, Network, Rng};
use herd_engine::zab::broadcast::{self, Durable, Limits, Payload, Record};
use herd_engine::zab::discovery::{self, Epochs};
use herd_engine::zab::election::{self, Election, Notification, Outcome, PeerState, Vote};
use herd_engine::zab::quorum::Ensemble;
use herd_engine::zab::{Millis, Sid};
use herd_engine::Zxid;

const DEFAULT_SEEDS: u64 = 20_000;
const FAULT_PHASE: Millis = 4_000;
/// How long after healing the ensemble must serve.
const HEAL_LIMIT: Millis = 15_000;
/// How long a member keeps to a leader during the faults: a random time
/// in this range, drawn whenever it leaves election.
const LOOK_AGAIN_AFTER: (Millis, Millis) = (200, 2_500);
/// initLimit × tickTime.
const INIT_LIMIT_MS: Millis = 1_000;
const LIMITS: Limits = Limits {
    tick_ms: 100,
    init_ms: INIT_LIMIT_MS,
    sync_ms: 500,
};
/// How long the disk takes to make a write durable.
const FSYNC_MS: (Millis, Millis) = (1, 30);
/// How often clients write while a leader serves.
const WRITE_EVERY_MS: Millis = 20;
/// A DIFF longer than this is sent as a SNAP.
const DIFF_LIMIT: usize = 20;
const FAULTS: Faults = Faults {
    drop_percent: 10,
    duplicate_percent: 5,
    max_delay_ms: 400,
};

#[derive(Clone, Debug)]
enum Msg {
    Vote(Notification),
    Discovery(discovery::Message),
    Zab(broadcast::Message),
}

enum Role {
    Down,
    Looking(Election),
    Leading(Outcome, discovery::Leader, Option<broadcast::Leader>),
    Learning(Outcome, discovery::Learner, Option<broadcast::Learner>),
}

/// A write on its way to the disk, and what waits for it.
struct Write {
    at: Millis,
    log: Option<Vec<Record>>,
    current_epoch: Option<u32>,
    after: Vec<(Sid, Msg)>,
    /// For a leader: what to tell its broadcast once durable, if it still
    /// leads in the same role.
    leader_done: Option<(u64, Durable)>,
}

struct Member {
    sid: Sid,
    // Durable.
    log: Vec<Record>,
    current_epoch: u32,
    accepted_epoch: u32,
    // Lost at a crash.
    round: u64,
    role: Role,
    /// Counts role changes, so late disk completions find their role gone.
    incarnation: u64,
    relook_at: Millis,
    disk: VecDeque<Write>,
}

impl Member {
    fn epochs(&self) -> Epochs {
        Epochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        }
    }

    fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(0, |r| r.0)
    }

    fn vote(&self) -> Vote {
        Vote {
            epoch: self.current_epoch,
            zxid: self.last_zxid(),
            leader: self.sid,
        }
    }

    /// The log and commit point of its broadcast role, if it has one.
    fn broadcast(&self) -> Option<(&[Record], Zxid, bool)> {
        match &self.role {
            Role::Leading(_, _, Some(b)) => Some((
                b.history().records(),
                b.history().committed(),
                b.is_serving(),
            )),
            Role::Learning(_, _, Some(l)) => Some((
                l.history().records(),
                l.history().committed(),
                l.is_serving(),
            )),
            _ => None,
        }
    }
}

struct Sim {
    rng: Rng,
    now: Millis,
    ensemble: Ensemble,
    members: BTreeMap<Sid, Member>,
    net: Network<Msg>,
    /// Every established epoch and its leader.
    established: BTreeMap<u32, Sid>,
    /// Every record any member committed.
    committed: BTreeMap<Zxid, Payload>,
    next_write: Millis,
    written: u64,
    steps: usize,
    verbose: bool,
}

type Checked = Result<(), String>;

impl Sim {
    fn new(seed: u64, voters: u64, verbose: bool) -> Sim {
        let mut rng = Rng(seed);
        let observer = voters + 1;
        let ensemble = Ensemble::new(1..=voters, [observer]).expect("ensemble");
        // A history of epoch 1, of which each member holds a prefix.
        let history: Vec<Record> = (1..=6)
            .map(|c| ((1i64 << 32) | c, Payload::from(c.to_be_bytes().as_slice())))
            .collect();
        let members = (1..=observer)
            .map(|sid| {
                let held = rng.between(3, 6) as usize;
                let m = Member {
                    sid,
                    log: history[..held].to_vec(),
                    current_epoch: 1,
                    accepted_epoch: 1,
                    round: 0,
                    role: Role::Down,
                    incarnation: 0,
                    relook_at: 0,
                    disk: VecDeque::new(),
                };
                (sid, m)
            })
            .collect();
        Sim {
            rng,
            now: 0,
            ensemble,
            members,
            net: Network::new(FAULTS),
            established: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_write: 0,
            written: 0,
            steps: 0,
            verbose,
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("{:>6} ms  {}", self.now, what());
        }
    }

    fn member(&mut self, sid: Sid) -> &mut Member {
        self.members.get_mut(&sid).expect("member")
    }

    fn send(&mut self, from: Sid, out: impl IntoIterator<Item = (Sid, Msg)>) {
        for (to, msg) in out {
            self.net.send(&mut self.rng, self.now, from, to, msg);
        }
    }

    fn send_votes(&mut self, from: Sid, out: Vec<election::Send>) {
        self.send(from, out.into_iter().map(|(to, n)| (to, Msg::Vote(n))));
    }

    fn zab(out: Vec<(Sid, broadcast::Message)>) -> Vec<(Sid, Msg)> {
        out.into_iter().map(|(to, m)| (to, Msg::Zab(m))).collect()
    }

    /// Carries out a discovery step: the epoch made durable, then the sends.
    fn discovery_output(&mut self, sid: Sid, out: discovery::Output) -> Checked {
        if let Some(epoch) = out.accept_epoch {
            let m = self.member(sid);
            if epoch <= m.accepted_epoch {
                return Err(format!(
                    "{sid} accepts epoch {epoch} after {}",
                    m.accepted_epoch
                ));
            }
            m.accepted_epoch = epoch;
            self.log(|| format!("{sid} accepts epoch {epoch}"));
        }
        let sends = out.send.into_iter().map(|(to, m)| (to, Msg::Discovery(m)));
        self.send(sid, sends.collect::<Vec<_>>());
        Ok(())
    }

    /// Carries out a broadcast step: sends now, the durable write queued on
    /// the disk with what waits for it.
    fn broadcast_output(&mut self, sid: Sid, out: broadcast::Output) -> Checked {
        self.send(sid, Sim::zab(out.now));
        if let Some(d) = out.durable {
            let at = self.now + self.rng.between(FSYNC_MS.0, FSYNC_MS.1);
            let m = self.member(sid);
            let (log, leading) = match &m.role {
                Role::Leading(_, _, Some(b)) => (b.history().records(), true),
                Role::Learning(_, _, Some(l)) => (l.history().records(), false),
                _ => return Ok(()),
            };
            let log = d
                .log_to
                .map(|z| log.iter().filter(|r| r.0 <= z).cloned().collect());
            let write = Write {
                at,
                log,
                current_epoch: d.current_epoch,
                after: Sim::zab(out.after),
                leader_done: leading.then_some((m.incarnation, d)),
            };
            m.disk.push_back(write);
        }
        self.check_commits(sid)
    }

    /// Every record `sid` committed agrees with every other member's.
    fn check_commits(&mut self, sid: Sid) -> Checked {
        let Some((log, committed, _)) = self.members[&sid].broadcast() else {
            return Ok(());
        };
        for (zxid, payload) in log.iter().filter(|r| r.0 <= committed) {
            match self.committed.get(zxid) {
                Some(known) if known != payload => {
                    return Err(format!("{sid} committed another record at {zxid:#x}"))
                }
                Some(_) => {}
                None => {
                    self.committed.insert(*zxid, payload.clone());
                }
            }
        }
        Ok(())
    }

    /// Applies the writes that are due on `sid`'s disk (all of them with
    /// `all`, dropping what waits for them: its role changes).
    fn disk(&mut self, sid: Sid, all: bool) -> Checked {
        loop {
            let now = self.now;
            let m = self.member(sid);
            let Some(w) = m.disk.front() else {
                return Ok(());
            };
            if !all && w.at > now {
                return Ok(());
            }
            let w = m.disk.pop_front().expect("a write");
            if let Some(log) = w.log {
                m.log = log;
            }
            if let Some(e) = w.current_epoch {
                m.current_epoch = m.current_epoch.max(e);
            }
            if all {
                continue;
            }
            let incarnation = m.incarnation;
            self.send(sid, w.after);
            if let Some((inc, d)) = w.leader_done {
                if inc != incarnation {
                    continue;
                }
                let m = self.member(sid);
                let Role::Leading(_, _, Some(b)) = &mut m.role else {
                    continue;
                };
                let was_serving = b.is_serving();
                let out = b.durable(d);
                let serving = b.is_serving();
                self.broadcast_output(sid, out)?;
                if serving && !was_serving {
                    self.serves(sid)?;
                }
            }
        }
    }

    /// A leader starts serving: it must hold every record ever committed.
    fn serves(&mut self, sid: Sid) -> Checked {
        self.steps += 1;
        let (log, _, _) = self.members[&sid].broadcast().expect("leading");
        for (zxid, payload) in &self.committed {
            if !log.iter().any(|r| r.0 == *zxid && r.1 == *payload) {
                let zxids: Vec<String> = log.iter().map(|r| format!("{:x}", r.0)).collect();
                return Err(format!(
                    "{sid} serves without the committed record {zxid:#x}: its log is {zxids:?}"
                ));
            }
        }
        self.log(|| format!("{sid} serves"));
        Ok(())
    }

    fn enter(&mut self, sid: Sid, role: Role) -> Checked {
        self.disk(sid, true)?;
        let m = self.member(sid);
        m.role = role;
        m.incarnation += 1;
        Ok(())
    }

    /// `sid` starts looking in its next round.
    fn look(&mut self, sid: Sid) -> Checked {
        self.disk(sid, true)?;
        let (now, ensemble) = (self.now, self.ensemble.clone());
        let m = self.member(sid);
        let last = match &m.role {
            Role::Looking(e) => e.round(),
            _ => m.round,
        };
        m.round = last.max(m.round) + 1;
        let (history, round) = ((m.current_epoch, m.last_zxid()), m.round);
        let (e, out) = Election::start(sid, &ensemble, history, round, now);
        self.enter(sid, Role::Looking(e))?;
        self.log(|| format!("{sid} looks, round {round}, history {history:x?}"));
        self.send_votes(sid, out);
        Ok(())
    }

    fn abandon(&mut self, sid: Sid, why: impl std::fmt::Debug) -> Checked {
        self.log(|| format!("{sid} abandons: {why:?}"));
        self.look(sid)
    }

    fn crash(&mut self, sid: Sid) {
        let m = self.member(sid);
        m.role = Role::Down;
        m.round = 0;
        m.incarnation += 1;
        m.disk.clear(); // what was not yet durable is lost
        self.net.disconnect(Some(sid));
        self.log(|| format!("{sid} crashes"));
    }

    /// Checks a fresh election outcome of `sid` and starts its discovery.
    fn decided(&mut self, sid: Sid, outcome: Outcome) -> Checked {
        self.steps += 1;
        self.log(|| format!("{sid} decides {outcome:?}"));
        let leader = outcome.vote.leader;
        if !self.ensemble.is_voter(leader) {
            return Err(format!("{sid} elected {leader}, which does not vote"));
        }
        let expected = if leader == sid {
            PeerState::Leading
        } else if self.ensemble.is_voter(sid) {
            PeerState::Following
        } else {
            PeerState::Observing
        };
        if outcome.state != expected {
            return Err(format!("{sid} decided {outcome:?}, expected {expected:?}"));
        }
        let (now, ensemble) = (self.now, self.ensemble.clone());
        let relook_at = now + self.rng.between(LOOK_AGAIN_AFTER.0, LOOK_AGAIN_AFTER.1);
        let m = self.member(sid);
        if let Role::Looking(e) = &m.role {
            m.round = m.round.max(e.round());
        }
        m.relook_at = relook_at;
        let (epochs, last_zxid) = (m.epochs(), m.last_zxid());
        if leader == sid {
            let d = discovery::Leader::start(sid, &ensemble, epochs, last_zxid, now, INIT_LIMIT_MS);
            self.enter(sid, Role::Leading(outcome, d, None))
        } else {
            let (d, out) = discovery::Learner::start(leader, epochs, last_zxid, now, INIT_LIMIT_MS);
            self.enter(sid, Role::Learning(outcome, d, None))?;
            self.discovery_output(sid, out)
        }
    }

    /// When `m` next has something to do on its own.
    fn timer(m: &Member, relook: bool) -> Option<Millis> {
        let disk = m.disk.front().map(|w| w.at);
        let own = match &m.role {
            Role::Down => None,
            Role::Looking(e) => Some(e.deadline()),
            Role::Leading(_, d, b) => {
                let own = d.deadline().or(b.as_ref().map(broadcast::Leader::deadline));
                [own, relook.then_some(m.relook_at)]
                    .into_iter()
                    .flatten()
                    .min()
            }
            Role::Learning(_, d, b) => {
                let own = d
                    .deadline()
                    .or(b.as_ref().map(broadcast::Learner::deadline));
                [own, relook.then_some(m.relook_at)]
                    .into_iter()
                    .flatten()
                    .min()
            }
        };
        [disk, own].into_iter().flatten().min()
    }

    /// Runs every event up to `until`, clients writing as it goes.
    fn run(&mut self, until: Millis, relook: bool) -> Checked {
        loop {
            let timers = self
                .members
                .values()
                .filter_map(|m| Sim::timer(m, relook))
                .min();
            let events = [timers, self.net.next_arrival(), Some(self.next_write)];
            match events.into_iter().flatten().min() {
                Some(at) if at <= until => self.now = self.now.max(at),
                _ => {
                    self.now = until;
                    return Ok(());
                }
            }
            while let Some((from, to, msg)) = self.net.deliver(self.now) {
                self.receive(from, to, msg)?;
            }
            let sids: Vec<Sid> = self.members.keys().copied().collect();
            for &sid in &sids {
                self.disk(sid, false)?;
                self.tick(sid, relook)?;
            }
            if self.now >= self.next_write {
                self.next_write = self.now + WRITE_EVERY_MS;
                self.client_write()?;
            }
        }
    }

    /// A client writes through a leader that serves, if there is one.
    fn client_write(&mut self) -> Checked {
        let serving = self.members.values().find_map(|m| match &m.role {
            Role::Leading(_, _, Some(b)) if b.is_serving() => Some(m.sid),
            _ => None,
        });
        let Some(sid) = serving else {
            return Ok(());
        };
        self.written += 1;
        let payload = Payload::from((1000 + self.written).to_be_bytes().as_slice());
        let m = self.member(sid);
        let Role::Leading(_, _, Some(b)) = &mut m.role else {
            return Ok(());
        };
        let Some((zxid, out)) = b.propose(payload) else {
            return Ok(());
        };
        self.log(|| format!("{sid} proposes {zxid:#x}"));
        self.broadcast_output(sid, out)
    }

    fn receive(&mut self, from: Sid, to: Sid, msg: Msg) -> Checked {
        let now = self.now;
        let m = self.member(to);
        match (&mut m.role, msg) {
            (Role::Down, _) => Ok(()),
            (Role::Looking(e), Msg::Vote(n)) => {
                let before = e.round();
                let out = e.receive(from, n, now);
                let (after, outcome) = (e.round(), e.outcome());
                if after < before {
                    return Err(format!("{to}'s round went back from {before} to {after}"));
                }
                self.send_votes(to, out);
                match outcome {
                    Some(outcome) => self.decided(to, outcome),
                    None => Ok(()),
                }
            }
            (Role::Leading(o, _, _) | Role::Learning(o, _, _), Msg::Vote(n)) => {
                let answer = election::answer(o, from, &n);
                self.send_votes(to, answer.into_iter().collect());
                Ok(())
            }
            (Role::Looking(_), _) => Ok(()), // not listening yet
            (Role::Leading(..), Msg::Discovery(dm)) => self.leader_discovery(from, to, dm),
            (Role::Learning(o, d, b), Msg::Discovery(dm)) => match d.receive(from, dm) {
                Err(why) => self.abandon(to, why),
                Ok(out) => {
                    if let (None, Some(epoch)) = (&b, d.epoch()) {
                        *o = o.in_epoch(epoch);
                        let (leader, log) = (from, m.log.clone());
                        *b = Some(broadcast::Learner::new(
                            leader,
                            epoch,
                            (0, log),
                            LIMITS,
                            now,
                        ));
                    }
                    self.discovery_output(to, out)
                }
            },
            (Role::Leading(_, _, Some(b)), Msg::Zab(zm)) => {
                let out = b.receive(from, zm);
                self.broadcast_output(to, out)
            }
            (Role::Learning(_, _, Some(l)), Msg::Zab(zm)) => match l.receive(from, zm) {
                Err(lost) => self.abandon(to, lost),
                Ok(out) => self.broadcast_output(to, out),
            },
            (_, Msg::Zab(_)) => Ok(()),
        }
    }

    fn leader_discovery(&mut self, from: Sid, to: Sid, dm: discovery::Message) -> Checked {
        if let discovery::Message::AckEpoch {
            epoch,
            current_epoch: Some(_),
            ..
        } = dm
        {
            self.acked_durably(from, epoch)?;
        }
        let (ensemble, now) = (self.ensemble.clone(), self.now);
        let m = self.member(to);
        let Role::Leading(o, d, b) = &mut m.role else {
            return Ok(());
        };
        let was = d.established();
        let out = match d.receive(from, dm) {
            Err(why) => return self.abandon(to, why),
            Ok(out) => out,
        };
        let Some(epoch) = d.established() else {
            return self.discovery_output(to, out);
        };
        *o = o.in_epoch(epoch);
        let b = b.get_or_insert_with(|| {
            broadcast::Leader::new(
                to,
                &ensemble,
                epoch,
                (0, m.log.clone()),
                DIFF_LIMIT,
                LIMITS,
                now,
            )
        });
        let syncs: Vec<broadcast::Output> = d
            .take_joined()
            .into_iter()
            .map(|(sid, last)| b.add_learner(sid, last))
            .collect();
        self.discovery_output(to, out)?;
        if was.is_none() {
            self.epoch_established(to, epoch)?;
        }
        for out in syncs {
            self.broadcast_output(to, out)?;
        }
        Ok(())
    }

    /// An ACKEPOCH of `epoch` arrived from `from`: it must have made the
    /// epoch durable (it may have accepted a later one since).
    fn acked_durably(&self, from: Sid, epoch: u32) -> Checked {
        let accepted = self.members[&from].accepted_epoch;
        if accepted < epoch {
            return Err(format!(
                "{from} acknowledged epoch {epoch} with only {accepted} durable"
            ));
        }
        Ok(())
    }

    fn epoch_established(&mut self, leader: Sid, epoch: u32) -> Checked {
        self.steps += 1;
        self.log(|| format!("{leader} establishes epoch {epoch}"));
        if let Some(other) = self.established.insert(epoch, leader) {
            return Err(format!(
                "epoch {epoch} established by {other} and by {leader}"
            ));
        }
        let accepted = self
            .members
            .values()
            .filter(|m| m.accepted_epoch >= epoch)
            .map(|m| m.sid);
        if !self.ensemble.is_quorum(accepted) {
            return Err(format!(
                "{leader} established epoch {epoch}, which fewer than a quorum accepted"
            ));
        }
        Ok(())
    }

    fn tick(&mut self, sid: Sid, relook: bool) -> Checked {
        let now = self.now;
        let m = self.member(sid);
        let in_role = matches!(m.role, Role::Leading(..) | Role::Learning(..));
        if in_role && relook && now >= m.relook_at {
            self.log(|| format!("{sid} loses its leader"));
            return self.look(sid);
        }
        match &mut m.role {
            Role::Down => Ok(()),
            Role::Looking(e) => {
                let out = e.tick(now);
                let outcome = e.outcome();
                self.send_votes(sid, out);
                match outcome {
                    Some(outcome) => self.decided(sid, outcome),
                    None => Ok(()),
                }
            }
            Role::Leading(_, _, Some(b)) => match b.tick(now) {
                Err(why) => self.abandon(sid, why),
                Ok(out) => self.broadcast_output(sid, out),
            },
            Role::Leading(_, d, None) => match d.tick(now) {
                Err(why) => self.abandon(sid, why),
                Ok(()) => Ok(()),
            },
            Role::Learning(_, _, Some(l)) => match l.tick(now) {
                Err(why) => self.abandon(sid, why),
                Ok(()) => Ok(()),
            },
            Role::Learning(_, d, None) => match d.tick(now) {
                Err(why) => self.abandon(sid, why),
                Ok(out) => self.discovery_output(sid, out),
            },
        }
    }

    /// The fault phase: partitions and crashes change every so often.
    fn faults(&mut self) -> Checked {
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for &sid in &sids {
            self.look(sid)?;
        }
        while self.now < FAULT_PHASE {
            let until = self.now + self.rng.between(100, 600);
            self.run(until, true)?;
            match self.rng.below(4) {
                0 => {
                    let mut groups = vec![Vec::new(), Vec::new()];
                    for &sid in &sids {
                        groups[self.rng.below(2)].push(sid);
                    }
                    self.log(|| format!("partition {groups:?}"));
                    self.net.partition(&groups);
                }
                1 => {
                    self.log(|| "heal the partition".into());
                    self.net.heal();
                }
                2 => {
                    let sid = *self.rng.pick(&sids);
                    if matches!(self.members[&sid].role, Role::Down) {
                        self.look(sid)?;
                    } else {
                        self.crash(sid);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A serving leader and its epoch, with a quorum of voters serving
    /// under it in that epoch, if there is one. (A leader cut off from its
    /// followers may think it serves until its sync limit ends; it cannot
    /// commit anything without a quorum meanwhile.)
    fn settled(&self) -> Option<(Sid, u32)> {
        let leaders = self.members.values().filter_map(|m| match &m.role {
            Role::Leading(_, d, Some(b)) if b.is_serving() => d.established().map(|e| (m.sid, e)),
            _ => None,
        });
        leaders.into_iter().find(|&(leader, epoch)| {
            let serving = self
                .members
                .values()
                .filter(|m| self.serves_under(m, leader, epoch));
            self.ensemble
                .is_quorum(serving.map(|m| m.sid).chain([leader]))
        })
    }

    fn serves_under(&self, m: &Member, leader: Sid, epoch: u32) -> bool {
        matches!(&m.role, Role::Learning(o, d, Some(l))
            if o.vote.leader == leader && d.epoch() == Some(epoch) && l.is_serving())
    }

    /// Runs until `done` holds, for at most `limit`.
    fn run_until(&mut self, limit: Millis, done: impl Fn(&Sim) -> bool) -> Result<bool, String> {
        let deadline = self.now + limit;
        while self.now < deadline && !done(self) {
            let until = self.now + 50;
            self.run(until, false)?;
        }
        Ok(done(self))
    }

    /// Heals everything: the most recent voter must then lead and serve,
    /// and new writes commit on a quorum.
    fn heal(&mut self, everyone_looks: bool) -> Result<(Sid, u32), String> {
        self.log(|| "heal: whole network, every member up".into());
        self.net.heal();
        self.net.set_faults(Faults::NONE);
        // The faulty connections are gone, and what was on them.
        self.net.disconnect(None);
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for sid in sids {
            if everyone_looks || matches!(self.members[&sid].role, Role::Down) {
                self.look(sid)?;
            }
        }
        let best = self
            .ensemble
            .voters()
            .map(|v| self.members[&v].vote())
            .max()
            .expect("voters");
        if !self.run_until(HEAL_LIMIT, |s| s.settled().is_some())? {
            return Err(format!("nothing serves {HEAL_LIMIT} ms after healing"));
        }
        let (leader, _) = self.settled().expect("settled");
        if everyone_looks && leader != best.leader {
            return Err(format!(
                "{leader} leads after healing; the most recent voter is {best:?}"
            ));
        }
        // Then: one leader serves (any left over from the faults stepped
        // down; leadership may move once more, to a member ahead of the
        // first one that comes back), and new writes commit on it and on a
        // quorum serving under it.
        let target = self.written + 5;
        let stable = |s: &Sim| {
            let leading = s
                .members
                .values()
                .filter(|m| matches!(&m.role, Role::Leading(_, _, Some(b)) if b.is_serving()));
            let (Some((leader, epoch)), Some(last)) = (s.settled(), s.committed.keys().next_back())
            else {
                return false;
            };
            let caught_up = s.members.values().filter(|m| {
                (m.sid == leader || s.serves_under(m, leader, epoch))
                    && m.broadcast().is_some_and(|b| b.1 >= *last)
            });
            leading.count() == 1
                && s.written >= target
                && s.ensemble.is_quorum(caught_up.map(|m| m.sid))
        };
        if !self.run_until(HEAL_LIMIT, stable)? {
            return Err(format!(
                "no single leader with new writes committed on a quorum {HEAL_LIMIT} ms after \
                 healing (serving: {:?})",
                self.settled()
            ));
        }
        Ok(self.settled().expect("settled"))
    }

    /// A serving follower restarts: the ensemble must serve again with it,
    /// under its old leader or, if it and a member that could not rejoin that
    /// leader now make a quorum of their own, under a new one.
    fn rejoin(&mut self, leader: Sid, epoch: u32) -> Checked {
        let followers: Vec<Sid> = self
            .members
            .values()
            .filter(|m| self.serves_under(m, leader, epoch))
            .map(|m| m.sid)
            .collect();
        let sid = *self.rng.pick(&followers);
        self.crash(sid);
        self.run(self.now + 100, false)?;
        self.look(sid)?;
        let serving_again = |s: &Sim| {
            s.settled()
                .is_some_and(|(l, e)| l == sid || s.serves_under(&s.members[&sid], l, e))
        };
        if self.run_until(HEAL_LIMIT, serving_again)? {
            Ok(())
        } else {
            Err(format!("{sid} restarted and does not serve again"))
        }
    }
}

fn run_seed(seed: u64, voters: u64, verbose: bool) -> Result<usize, String> {
    let mut sim = Sim::new(seed, voters, verbose);
    sim.faults()?;
    // Every other pair of seeds, healing restarts every election (the most
    // recent voter must win); otherwise members find out by themselves
    // (gaps, PINGs, limits) what the faults left them with.
    let (leader, epoch) = sim.heal((seed / 2).is_multiple_of(2))?;
    sim.rejoin(leader, epoch)?;
    Ok(sim.steps)
}

#[test]
fn ensembles_keep_committed_writes_through_faults_and_serve_once_healed() {
    let (seeds, verbose) = match std::env::var("HERD_SIM_SEED") {
        Ok(one) => {
            let seed: u64 = one.parse().expect("HERD_SIM_SEED is a number");
            (seed..=seed, true)
        }
        Err(_) => (1..=env_or("HERD_SIM_SEEDS", DEFAULT_SEEDS), false),
    };
    let mut steps = 0;
    for seed in seeds {
        // Odd seeds: 3 voters; even: 5. Both with an observer.
        let voters = if seed % 2 == 1 { 3 } else { 5 };
        match run_seed(seed, voters, verbose) {
            Ok(n) => steps += n,
            Err(e) => panic!("seed {seed} ({voters} voters): {e}"),
        }
    }
    assert!(steps > 0, "something was decided");
    eprintln!("{steps} decisions, epochs and leaders checked");
}
