//! Zab across whole simulated ensembles (3 and 5 voters and an observer) in
//! one thread: a seeded clock, network, disk and crashes, so a failing seed
//! replays exactly. It runs all of Zab that exists: leader election,
//! discovery, synchronisation and broadcast, with clients writing through
//! whichever member serves (a learner forwards the write to its leader).
//!
//! Each member is a `zab::peer::Peer` with a durable state (its log, current
//! and accepted epochs) and a disk that applies the peer's storage writes in
//! order and makes each durable a while after it is asked for (during the
//! faults, now and then a long while); a crash loses what was not yet
//! durable. Each seed runs three phases:
//! 1. faults: messages lost, duplicated and delayed past the finalize wait,
//!    partitions that change, members crashing and restarting (a restarted
//!    member keeps its durable state and starts again at round 1, as
//!    ZooKeeper's logical clock does). A member that left election looks
//!    again a while later, as it does when it loses its leader. Members
//!    hear which others they can reach (which lets an election skip its
//!    finalize wait) as a transport tells it: a member that crashed or is
//!    partitioned off is unreachable, and its quorum connections break; and
//!    now and then they are told wrong, which must never cost safety.
//! 2. healing: the network is whole and prompt, and so are disks (what was on its way during
//!    the faults is gone with the connections, and both ends of a connection
//!    that lost messages hear it broke), every member runs. For half
//!    the seeds every member looks again, and the voter with the most recent
//!    history must win; for the others members find out by themselves what
//!    the faults left (gaps, PINGs, the limits). Within a bounded time a
//!    leader must serve with a quorum of voters serving in its epoch, new
//!    writes must commit on it and on them, and no other leader may be left
//!    (PINGs and the sync limit end a leader that lost its quorum).
//! 3. a serving follower restarts: it must serve again under a leader.
//!
//! For a third of the seeds an epoch has only 8 to 39 zxids, so leaders run
//! out of them, in every phase, and lead their followers into a new epoch
//! without an election (`Left::Rediscover`); every check below holds across
//! those moves too.
//!
//! Every message goes through its wire encoding (`zab::wire`) on its way.
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use herd_engine::sim::{env_or, Faults, Network, Rng};
use herd_engine::zab::broadcast::{
    Limits, Payload, Record, Settings, Snapshot, Store, LAST_COUNTER,
};
use herd_engine::zab::discovery::{self, Epochs};
use herd_engine::zab::election::{PeerState, Vote};
use herd_engine::zab::peer::{Actions, Left, Message, Peer, Status, Stored, Write};
use herd_engine::zab::quorum::Ensemble;
use herd_engine::zab::wire::{self, Decoder};
use herd_engine::zab::{Millis, Sid};
use herd_engine::Zxid;

const DEFAULT_SEEDS: u64 = 20_000;
const FAULT_PHASE: Millis = 4_000;
/// How long after healing the ensemble must serve.
const HEAL_LIMIT: Millis = 15_000;
/// How long a member keeps to a leader during the faults: a random time
/// in this range, drawn whenever it leaves election.
const LOOK_AGAIN_AFTER: (Millis, Millis) = (200, 2_500);
const SETTINGS: Settings = Settings {
    limits: Limits {
        tick_ms: 100,
        init_ms: 1_000,
        sync_ms: 500,
    },
    // A DIFF longer than this is sent as a SNAP.
    diff_limit: 20,
    last_counter: LAST_COUNTER,
};
/// How long the disk takes to make a write durable; now and then during the
/// faults (one write in `SLOW_FSYNC_ONE_IN`) it stalls for up to
/// `SLOW_FSYNC_MS`, and writes after it wait too.
const FSYNC_MS: (Millis, Millis) = (1, 30);
const SLOW_FSYNC_ONE_IN: usize = 50;
const SLOW_FSYNC_MS: Millis = 1_500;
/// How often clients write while a leader serves.
const WRITE_EVERY_MS: Millis = 20;
const FAULTS: Faults = Faults {
    drop_percent: 10,
    duplicate_percent: 5,
    max_delay_ms: 400,
};

/// A write on its way to the disk.
struct Queued {
    at: Millis,
    write: Write,
}

struct Member {
    sid: Sid,
    /// What its disk holds durably.
    stored: Stored,
    /// `None` while down.
    peer: Option<Peer>,
    /// What it was when last looked at, to check what changes.
    status: Option<Status>,
    /// Its snapshot on disk: the state at `stored.base`.
    snapshot: Vec<Record>,
    /// Its state: the records it applied, in order (lost at a crash; it
    /// starts again from its snapshot), and the zxid it is at.
    state: Vec<Record>,
    applied: Zxid,
    relook_at: Millis,
    disk: VecDeque<Queued>,
    /// The members its peer was last told it cannot reach.
    unreachable: BTreeSet<Sid>,
}

impl Member {
    fn status(&self) -> Option<Status> {
        self.peer.as_ref().map(Peer::status)
    }

    /// Whether it leads or learns (left election).
    fn in_role(&self) -> bool {
        self.status().is_some_and(|s| s.state != PeerState::Looking)
    }

    /// The vote its history makes: as written while it runs.
    fn vote(&self) -> Vote {
        let (epoch, zxid) = match &self.peer {
            Some(p) => (p.epochs().current, p.last_zxid()),
            None => (
                self.stored.epochs.current,
                self.stored.log.last().map_or(0, |r| r.0),
            ),
        };
        Vote {
            epoch,
            zxid,
            leader: self.sid,
        }
    }
}

struct Sim {
    rng: Rng,
    now: Millis,
    ensemble: Ensemble,
    members: BTreeMap<Sid, Member>,
    net: Network<Message>,
    /// Every established epoch and its leader.
    established: BTreeMap<u32, Sid>,
    /// Every record any member committed.
    committed: BTreeMap<Zxid, Payload>,
    next_write: Millis,
    written: u64,
    /// Whether disks stall now and then (during the faults).
    slow_disks: bool,
    /// Snapshots installed (SNAPs), over the run.
    installs: usize,
    /// Its members' Zab settings: for a third of the seeds, epochs of a
    /// few dozen zxids, so that leaders run out of them and move on.
    settings: Settings,
    /// Members that went into a new epoch because theirs ran out of zxids.
    rediscoveries: usize,
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
                    stored: Stored {
                        epochs: Epochs {
                            accepted: 1,
                            current: 1,
                        },
                        base: 0,
                        log: history[..held].to_vec(),
                    },
                    peer: None,
                    status: None,
                    snapshot: Vec::new(),
                    state: Vec::new(),
                    applied: 0,
                    relook_at: 0,
                    disk: VecDeque::new(),
                    unreachable: BTreeSet::new(),
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
            slow_disks: true,
            installs: 0,
            settings: Settings {
                last_counter: if seed.is_multiple_of(3) {
                    8 + (seed / 3 % 32) as u32
                } else {
                    LAST_COUNTER
                },
                ..SETTINGS
            },
            rediscoveries: 0,
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

    /// Runs one input on `sid`'s peer (if it is up), carries out what it
    /// asks and checks what changed.
    fn step(&mut self, sid: Sid, input: impl FnOnce(&mut Peer, Millis) -> Actions) -> Checked {
        let now = self.now;
        let Some(peer) = self.member(sid).peer.as_mut() else {
            return Ok(());
        };
        let actions = input(peer, now);
        self.act(sid, actions)
    }

    fn act(&mut self, sid: Sid, actions: Actions) -> Checked {
        if let Some(why) = actions.left {
            self.log(|| format!("{sid} leaves its role: {why:?}"));
            self.rediscoveries += usize::from(why == Left::Rediscover);
        }
        for (to, msg) in actions.send {
            let msg = through_wire(msg)?;
            self.net.send(&mut self.rng, self.now, sid, to, msg);
        }
        for write in actions.writes {
            let slow = self.slow_disks && self.rng.below(SLOW_FSYNC_ONE_IN) == 0;
            let longest = if slow { SLOW_FSYNC_MS } else { FSYNC_MS.1 };
            let done = self.now + self.rng.between(FSYNC_MS.0, longest);
            let m = self.member(sid);
            let at = m.disk.back().map_or(0, |q| q.at).max(done);
            m.disk.push_back(Queued { at, write });
        }
        if let Some(s) = actions.install {
            self.installs(sid, s)?;
        }
        for (from, request) in actions.requests {
            self.log(|| format!("{sid} gets a write from {from}"));
            self.propose(sid, request)?;
        }
        for record in actions.commit {
            self.applies(sid, record)?;
        }
        self.changed(sid)?;
        if actions.snapshot_wanted {
            // A driver that applies on another thread hands over a state a
            // few records behind what its peer handed out.
            let lag = self.rng.below(4);
            let m = self.member(sid);
            let kept = &m.state[..m.state.len().saturating_sub(lag)];
            let snapshot = Snapshot {
                zxid: kept.last().map_or(0, |r| r.0),
                data: encode_state(kept),
            };
            self.step(sid, |p, _| p.snapshot(snapshot))?;
        }
        Ok(())
    }

    /// `sid` replaces its state with a leader's snapshot: which must be
    /// exactly the records committed up to it.
    fn installs(&mut self, sid: Sid, snapshot: Snapshot) -> Checked {
        let state = decode_state(&snapshot.data);
        let committed: Vec<Record> = self
            .committed
            .range(..=snapshot.zxid)
            .map(|(z, p)| (*z, p.clone()))
            .collect();
        if state != committed {
            return Err(format!(
                "{sid} installs a snapshot at {:#x} of {} records; {} were committed up to it",
                snapshot.zxid,
                state.len(),
                committed.len()
            ));
        }
        self.log(|| format!("{sid} installs a snapshot at {:#x}", snapshot.zxid));
        self.installs += 1;
        let m = self.member(sid);
        m.state = state;
        m.applied = snapshot.zxid;
        Ok(())
    }

    /// `sid` applies a committed record: the same everywhere, and no
    /// committed record skipped before it.
    fn applies(&mut self, sid: Sid, (zxid, payload): Record) -> Checked {
        let applied = self.members[&sid].applied;
        if zxid <= applied {
            return Err(format!("{sid} applies {zxid:#x} after {applied:#x}"));
        }
        if let Some((skipped, _)) = self.committed.range(applied + 1..zxid).next() {
            return Err(format!(
                "{sid} applies {zxid:#x} without the committed {skipped:#x}"
            ));
        }
        match self.committed.get(&zxid) {
            Some(known) if *known != payload => {
                return Err(format!("{sid} committed another record at {zxid:#x}"))
            }
            Some(_) => {}
            None => {
                self.committed.insert(zxid, payload.clone());
            }
        }
        let m = self.member(sid);
        m.applied = zxid;
        m.state.push((zxid, payload));
        Ok(())
    }

    /// Checks what changed in `sid`'s status since it was last looked at.
    fn changed(&mut self, sid: Sid) -> Checked {
        let (before, now) = {
            let m = self.member(sid);
            let now = m.status();
            (std::mem::replace(&mut m.status, now), now)
        };
        let (Some(before), Some(now)) = (before, now) else {
            return Ok(());
        };
        if now.round < before.round {
            return Err(format!(
                "{sid}'s round went back from {} to {}",
                before.round, now.round
            ));
        }
        if before.state == PeerState::Looking && now.state != PeerState::Looking {
            self.decided(sid, now)?;
        }
        if now.state == PeerState::Leading {
            if let (Some(epoch), true) = (now.epoch, now.epoch != before.epoch) {
                self.epoch_established(sid, epoch)?;
            }
            if now.serving && !(before.serving && before.epoch == now.epoch) {
                self.serves(sid)?;
            }
        }
        Ok(())
    }

    /// Applies the writes that are due on `sid`'s disk, in order.
    fn disk(&mut self, sid: Sid) -> Checked {
        loop {
            let now = self.now;
            let m = self.member(sid);
            match m.disk.front() {
                Some(q) if q.at <= now => {}
                _ => return Ok(()),
            }
            let Queued { write, .. } = m.disk.pop_front().expect("a write");
            for op in write.ops {
                apply(m, op)?;
            }
            self.step(sid, |p, _| p.durable(write.token))?;
        }
    }

    /// A leader starts serving: it must hold every record ever committed,
    /// in its log or, up to the log's base, in its state.
    fn serves(&mut self, sid: Sid) -> Checked {
        self.steps += 1;
        let m = &self.members[&sid];
        let (base, log) = m.peer.as_ref().expect("up").log();
        for (zxid, payload) in &self.committed {
            let in_state = *zxid <= base && m.state.iter().any(|r| r.0 == *zxid && r.1 == *payload);
            if !in_state && !log.iter().any(|r| r.0 == *zxid && r.1 == *payload) {
                let zxids: Vec<String> = log.iter().map(|r| format!("{:x}", r.0)).collect();
                return Err(format!(
                    "{sid} serves without the committed record {zxid:#x}: its log is {zxids:?}"
                ));
            }
        }
        self.log(|| format!("{sid} serves"));
        Ok(())
    }

    /// `sid` starts, or looks again in its next round.
    fn look(&mut self, sid: Sid) -> Checked {
        let (now, ensemble, settings) = (self.now, self.ensemble.clone(), self.settings);
        let m = self.member(sid);
        if m.peer.is_some() {
            self.log(|| format!("{sid} looks again"));
            return self.step(sid, |p, now| p.look_again(now));
        }
        m.state = m.snapshot.clone();
        m.applied = m.stored.base;
        let (peer, actions) = Peer::start(sid, &ensemble, settings, m.stored.clone(), now);
        m.status = Some(peer.status());
        m.peer = Some(peer);
        m.unreachable.clear();
        self.log(|| format!("{sid} starts"));
        self.act(sid, actions)?;
        self.tell_reachability()
    }

    fn crash(&mut self, sid: Sid) -> Checked {
        let m = self.member(sid);
        m.peer = None;
        m.status = None;
        m.disk.clear(); // what was not yet durable is lost
        let _ = self.net.disconnect(Some(sid));
        self.log(|| format!("{sid} crashes"));
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for other in sids {
            self.step(other, |p, now| p.disconnected(sid, now))?;
        }
        self.tell_reachability()
    }

    /// Tells every running member which others it can reach now (up, and
    /// not partitioned off), where that changed since it was last told.
    fn tell_reachability(&mut self) -> Checked {
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for &a in &sids {
            for &b in sids.iter().filter(|&&b| b != a) {
                let up = self.members[&b].peer.is_some() && !self.net.is_cut(a, b);
                self.tell(a, b, up)?;
            }
        }
        Ok(())
    }

    fn tell(&mut self, a: Sid, b: Sid, up: bool) -> Checked {
        let m = self.member(a);
        if m.peer.is_none() || m.unreachable.contains(&b) != up {
            return Ok(());
        }
        if up {
            m.unreachable.remove(&b);
        } else {
            m.unreachable.insert(b);
        }
        self.step(a, |p, now| p.reachable(b, up, now))
    }

    /// Checks a fresh election outcome of `sid`.
    fn decided(&mut self, sid: Sid, status: Status) -> Checked {
        self.steps += 1;
        self.log(|| format!("{sid} decides {status:?}"));
        let leader = status.leader.expect("a decided member has a leader");
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
        if status.state != expected {
            return Err(format!("{sid} decided {status:?}, expected {expected:?}"));
        }
        let relook_at = self.now + self.rng.between(LOOK_AGAIN_AFTER.0, LOOK_AGAIN_AFTER.1);
        self.member(sid).relook_at = relook_at;
        Ok(())
    }

    /// When `m` next has something to do on its own.
    fn timer(m: &Member, relook: bool) -> Option<Millis> {
        let disk = m.disk.front().map(|q| q.at);
        let own = m.peer.as_ref().map(Peer::deadline);
        let relook = (relook && m.in_role()).then_some(m.relook_at);
        [disk, own, relook].into_iter().flatten().min()
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
                self.disk(sid)?;
                self.tick(sid, relook)?;
            }
            if self.now >= self.next_write {
                self.next_write = self.now + WRITE_EVERY_MS;
                self.client_write()?;
            }
        }
    }

    /// A client writes through a member that serves, if there is one: a
    /// learner forwards it to its leader.
    fn client_write(&mut self) -> Checked {
        let serving: Vec<Sid> = self
            .members
            .values()
            .filter(|m| m.status().is_some_and(|s| s.serving))
            .map(|m| m.sid)
            .collect();
        if serving.is_empty() {
            return Ok(());
        }
        let sid = *self.rng.pick(&serving);
        self.written += 1;
        let payload = Payload::from((1000 + self.written).to_be_bytes().as_slice());
        let peer = self.member(sid).peer.as_mut().expect("up");
        if peer.status().state == PeerState::Leading {
            return self.propose(sid, payload);
        }
        match peer.forward(payload) {
            Some(actions) => self.act(sid, actions),
            None => Err(format!("{sid} serves and cannot forward a write")),
        }
    }

    /// `sid` proposes a write, if it leads and serves.
    fn propose(&mut self, sid: Sid, payload: Payload) -> Checked {
        let peer = self.member(sid).peer.as_mut().expect("up");
        let Some((zxid, actions)) = peer.propose(payload) else {
            return Ok(());
        };
        self.log(|| format!("{sid} proposes {zxid:#x}"));
        self.act(sid, actions)
    }

    fn receive(&mut self, from: Sid, to: Sid, msg: Message) -> Checked {
        if let Message::Discovery(discovery::Message::AckEpoch {
            epoch,
            current_epoch: Some(_),
            ..
        }) = msg
        {
            self.acked_durably(from, epoch)?;
        }
        self.step(to, |p, now| p.receive(from, msg, now))
    }

    /// An ACKEPOCH of `epoch` arrived from `from`: it must have made the
    /// epoch durable (it may have accepted a later one since).
    fn acked_durably(&self, from: Sid, epoch: u32) -> Checked {
        let accepted = self.members[&from].stored.epochs.accepted;
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
            .filter(|m| m.stored.epochs.accepted >= epoch)
            .map(|m| m.sid);
        if !self.ensemble.is_quorum(accepted) {
            return Err(format!(
                "{leader} established epoch {epoch}, which fewer than a quorum accepted"
            ));
        }
        Ok(())
    }

    fn tick(&mut self, sid: Sid, relook: bool) -> Checked {
        let m = &self.members[&sid];
        if relook && m.in_role() && self.now >= m.relook_at {
            self.log(|| format!("{sid} loses its leader"));
            return self.look(sid);
        }
        if m.peer.as_ref().is_some_and(|p| p.deadline() <= self.now) {
            return self.step(sid, |p, now| p.tick(now));
        }
        Ok(())
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
            match self.rng.below(5) {
                0 => {
                    let mut groups = vec![Vec::new(), Vec::new()];
                    for &sid in &sids {
                        groups[self.rng.below(2)].push(sid);
                    }
                    self.log(|| format!("partition {groups:?}"));
                    self.net.partition(&groups);
                    self.tell_reachability()?;
                }
                1 => {
                    self.log(|| "heal the partition".into());
                    self.net.heal();
                    self.tell_reachability()?;
                }
                2 => {
                    let sid = *self.rng.pick(&sids);
                    if self.members[&sid].peer.is_none() {
                        self.look(sid)?;
                    } else {
                        self.crash(sid)?;
                    }
                }
                3 => {
                    // A wrong idea of who is reachable.
                    let (a, b) = (*self.rng.pick(&sids), *self.rng.pick(&sids));
                    let up = self.rng.chance(50);
                    if a != b {
                        self.log(|| format!("{a} is told {b} is reachable: {up} (maybe wrong)"));
                        self.tell(a, b, up)?;
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
        let leaders = self.members.values().filter_map(|m| {
            let s = m.status()?;
            (s.state == PeerState::Leading && s.serving).then_some((m.sid, s.epoch?))
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
        m.status().is_some_and(|s| {
            s.state != PeerState::Leading
                && s.leader == Some(leader)
                && s.epoch == Some(epoch)
                && s.serving
        })
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
        self.tell_reachability()?;
        // The faulty connections are gone, and what was on them: both ends
        // of one that lost messages hear it broke. Disks are prompt again.
        for (from, to) in self.net.disconnect(None) {
            self.step(to, |p, now| p.disconnected(from, now))?;
            self.step(from, |p, now| p.disconnected(to, now))?;
        }
        self.slow_disks = false;
        let prompt = self.now + FSYNC_MS.1;
        for m in self.members.values_mut() {
            for q in &mut m.disk {
                q.at = q.at.min(prompt);
            }
        }
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for sid in sids {
            if everyone_looks || self.members[&sid].peer.is_none() {
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
            let statuses: Vec<_> = self.members.values().map(|m| (m.sid, m.status())).collect();
            return Err(format!(
                "nothing serves {HEAL_LIMIT} ms after healing: {statuses:?}"
            ));
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
                .filter_map(Member::status)
                .filter(|s| s.state == PeerState::Leading && s.serving);
            let (Some((leader, epoch)), Some(last)) = (s.settled(), s.committed.keys().next_back())
            else {
                return false;
            };
            let caught_up = s.members.values().filter(|m| {
                (m.sid == leader || s.serves_under(m, leader, epoch))
                    && m.peer.as_ref().is_some_and(|p| p.applied() >= *last)
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
        self.crash(sid)?;
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

/// A message as the member it goes to decodes it from its bytes.
fn through_wire(msg: Message) -> Result<Message, String> {
    let mut decoder = Decoder::default();
    let mut decoded = None;
    for body in wire::encode(&msg) {
        decoded = decoder.push(&body).map_err(|e| format!("{msg:?}: {e}"))?;
    }
    match decoded {
        Some(back) if back == msg => Ok(back),
        other => Err(format!("{msg:?} came back as {other:?}")),
    }
}

/// The bytes of a state (the records applied), as a snapshot holds it.
fn encode_state(state: &[Record]) -> Payload {
    let mut bytes = Vec::new();
    for (zxid, payload) in state {
        bytes.extend_from_slice(&zxid.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    Payload::from(bytes)
}

fn decode_state(mut bytes: &[u8]) -> Vec<Record> {
    let mut state = Vec::new();
    while !bytes.is_empty() {
        let zxid = i64::from_le_bytes(bytes[..8].try_into().expect("a zxid"));
        let len = u32::from_le_bytes(bytes[8..12].try_into().expect("a length")) as usize;
        state.push((zxid, Payload::from(&bytes[12..12 + len])));
        bytes = &bytes[12 + len..];
    }
    state
}

/// Applies one storage operation to what a member holds durably, checking
/// that it makes sense there.
fn apply(m: &mut Member, op: Store) -> Checked {
    let (sid, stored) = (m.sid, &mut m.stored);
    match op {
        Store::Append(records) => {
            for r in records {
                let last = stored.log.last().map_or(stored.base, |l| l.0);
                if r.0 <= last {
                    return Err(format!("{sid} appends {:#x} after {last:#x}", r.0));
                }
                stored.log.push(r);
            }
        }
        Store::Truncate(to) => stored.log.retain(|r| r.0 <= to),
        Store::Install(snapshot) => {
            stored.log.clear();
            stored.base = snapshot.zxid;
            m.snapshot = decode_state(&snapshot.data);
        }
        Store::AcceptEpoch(e) => {
            if e <= stored.epochs.accepted {
                return Err(format!(
                    "{sid} accepts epoch {e} after {}",
                    stored.epochs.accepted
                ));
            }
            stored.epochs.accepted = e;
        }
        Store::CurrentEpoch(e) => stored.epochs.current = stored.epochs.current.max(e),
    }
    Ok(())
}

/// Runs one seed: the decisions checked and the snapshots installed.
fn run_seed(seed: u64, voters: u64, verbose: bool) -> Result<(usize, usize, usize), String> {
    let mut sim = Sim::new(seed, voters, verbose);
    sim.faults()?;
    // Every other pair of seeds, healing restarts every election (the most
    // recent voter must win); otherwise members find out by themselves
    // (gaps, PINGs, limits) what the faults left them with.
    let (leader, epoch) = sim.heal((seed / 2).is_multiple_of(2))?;
    sim.rejoin(leader, epoch)?;
    Ok((sim.steps, sim.installs, sim.rediscoveries))
}

#[test]
fn ensembles_keep_committed_writes_through_faults_and_serve_once_healed() {
    let (seeds, verbose, many) = match std::env::var("HERD_SIM_SEED") {
        Ok(one) => {
            let seed: u64 = one.parse().expect("HERD_SIM_SEED is a number");
            (seed..=seed, true, false)
        }
        Err(_) => {
            let n = env_or("HERD_SIM_SEEDS", DEFAULT_SEEDS);
            (1..=n, false, n >= 1_000)
        }
    };
    let (mut steps, mut installs, mut rediscoveries) = (0, 0, 0);
    for seed in seeds {
        // Odd seeds: 3 voters; even: 5. Both with an observer.
        let voters = if seed % 2 == 1 { 3 } else { 5 };
        match run_seed(seed, voters, verbose) {
            Ok((n, snaps, again)) => {
                steps += n;
                installs += snaps;
                rediscoveries += again;
            }
            Err(e) => panic!("seed {seed} ({voters} voters): {e}"),
        }
    }
    assert!(steps > 0, "something was decided");
    assert!(
        installs > 0 || !many,
        "over many seeds, some learners are sent a SNAP"
    );
    assert!(
        rediscoveries > 0 || !many,
        "over many seeds, leaders run out of zxids and move on to new epochs"
    );
    eprintln!(
        "{steps} decisions, epochs and leaders checked; {installs} snapshots installed; \
         {rediscoveries} moves to a new epoch when zxids ran out"
    );
}
