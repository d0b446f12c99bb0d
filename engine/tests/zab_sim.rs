//! Zab across whole simulated ensembles (3 and 5 voters and an observer) in
//! one thread: a seeded clock, network and crashes, so a failing seed replays
//! exactly. So far it covers what exists of Zab: leader election, then
//! discovery (the elected leader gets a quorum to accept a new epoch).
//!
//! Each seed runs three phases:
//! 1. faults: messages lost, duplicated and delayed past the finalize wait,
//!    partitions that change, members crashing and restarting (a restarted
//!    member keeps its history and durable epochs, and starts again at round
//!    1, as ZooKeeper's logical clock does). A member that left election looks
//!    again a while later, as it does when it loses its leader.
//! 2. healing: the network is whole and prompt (what was on its way during
//!    the faults is gone with the connections), every member runs and looks
//!    again. Within a bounded time the voter with the most recent history
//!    must lead an established epoch, with a quorum of voters following it in
//!    that epoch.
//! 3. a follower of that epoch restarts: it must follow a leader of an
//!    established epoch again (see [`Sim::rejoin`]).
//!
//! Checked at every step:
//! - an election's leader is a voter, and a quorum of voters has a history
//!   no newer than the leader's (what lets the leader's history hold
//!   everything a quorum acknowledged); an observer observes;
//! - a member's round never goes back while it runs, nor its accepted epoch
//!   ever;
//! - at most one leader establishes each epoch, and only once a quorum has
//!   made that epoch durable;
//! - an acknowledgement of an epoch comes from a member that has made it
//!   durable.
//!
//! More seeds: `HERD_SIM_SEEDS=100000 cargo test --release -p herd-engine
//! --test zab_sim`; one seed with its events: `HERD_SIM_SEED=N`.

use std::collections::BTreeMap;

use herd_engine::sim::{env_or, Faults, Network, Rng};
use herd_engine::zab::discovery::{self, Abandon, Epochs};
use herd_engine::zab::election::{self, Election, Notification, Outcome, PeerState, Vote};
use herd_engine::zab::quorum::Ensemble;
use herd_engine::zab::{Millis, Sid};

const DEFAULT_SEEDS: u64 = 20_000;
const FAULT_PHASE: Millis = 4_000;
/// How long after healing the ensemble must be established.
const HEAL_LIMIT: Millis = 15_000;
/// How long a member keeps to a leader during the faults: a random time
/// in this range, drawn whenever it leaves election.
const LOOK_AGAIN_AFTER: (Millis, Millis) = (200, 2_500);
/// initLimit × tickTime.
const INIT_LIMIT_MS: Millis = 1_000;
const FAULTS: Faults = Faults {
    drop_percent: 20,
    duplicate_percent: 10,
    max_delay_ms: 400,
};

#[derive(Clone, Copy, Debug)]
enum Msg {
    Vote(Notification),
    Discovery(discovery::Message),
}

enum Role {
    Down,
    Looking(Election),
    Leading(Outcome, discovery::Leader),
    Learning(Outcome, discovery::Learner),
}

struct Member {
    sid: Sid,
    /// Its history: `(current epoch, last zxid)`. Durable.
    history: (u32, i64),
    /// Durable.
    accepted_epoch: u32,
    /// The latest round it took part in while up (it restarts at 1).
    round: u64,
    role: Role,
    /// During the faults, when it gives up its leader.
    relook_at: Millis,
}

impl Member {
    fn epochs(&self) -> Epochs {
        Epochs {
            accepted: self.accepted_epoch,
            current: self.history.0,
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
    steps: usize,
    verbose: bool,
}

impl Sim {
    fn new(seed: u64, voters: u64, verbose: bool) -> Sim {
        let mut rng = Rng(seed);
        let observer = voters + 1;
        let ensemble = Ensemble::new(1..=voters, [observer]).expect("ensemble");
        let members = (1..=observer)
            .map(|sid| {
                let epoch = rng.between(1, 3) as u32;
                let m = Member {
                    sid,
                    history: (epoch, (i64::from(epoch) << 32) | rng.between(0, 4) as i64),
                    accepted_epoch: epoch + rng.between(0, 1) as u32,
                    round: 0,
                    role: Role::Down,
                    relook_at: 0,
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

    /// Carries out a discovery step: the durable write first, then the sends.
    fn discovery_output(&mut self, sid: Sid, out: discovery::Output) -> Result<(), String> {
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
        self.send(
            sid,
            out.send.into_iter().map(|(to, m)| (to, Msg::Discovery(m))),
        );
        Ok(())
    }

    /// `sid` starts looking in its next round.
    fn look(&mut self, sid: Sid) {
        let (now, ensemble) = (self.now, self.ensemble.clone());
        let m = self.member(sid);
        let last = match &m.role {
            Role::Looking(e) => e.round(),
            _ => m.round,
        };
        m.round = last.max(m.round) + 1;
        let (e, out) = Election::start(sid, &ensemble, m.history, m.round, now);
        let round = m.round;
        m.role = Role::Looking(e);
        self.log(|| format!("{sid} looks, round {round}"));
        self.send_votes(sid, out);
    }

    fn abandon(&mut self, sid: Sid, why: Abandon) {
        self.log(|| format!("{sid} abandons: {why:?}"));
        self.look(sid);
    }

    fn crash(&mut self, sid: Sid) {
        let m = self.member(sid);
        m.role = Role::Down;
        m.round = 0;
        self.net.disconnect(Some(sid));
        self.log(|| format!("{sid} crashes"));
    }

    /// Checks a fresh election outcome of `sid` and starts its discovery.
    fn decided(&mut self, sid: Sid, outcome: Outcome) -> Result<(), String> {
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
        let no_newer = self
            .ensemble
            .voters()
            .filter(|v| self.vote_of(*v) <= outcome.vote);
        if !self.ensemble.is_quorum(no_newer) {
            return Err(format!(
                "{sid} elected {outcome:?}, newer than the histories of fewer than a quorum"
            ));
        }
        let (now, ensemble) = (self.now, self.ensemble.clone());
        let relook_at = now + self.rng.between(LOOK_AGAIN_AFTER.0, LOOK_AGAIN_AFTER.1);
        let m = self.member(sid);
        if let Role::Looking(e) = &m.role {
            m.round = m.round.max(e.round());
        }
        m.relook_at = relook_at;
        let (epochs, last_zxid) = (m.epochs(), m.history.1);
        if leader == sid {
            let d = discovery::Leader::start(sid, &ensemble, epochs, last_zxid, now, INIT_LIMIT_MS);
            m.role = Role::Leading(outcome, d);
            Ok(())
        } else {
            let (d, out) = discovery::Learner::start(leader, epochs, last_zxid, now, INIT_LIMIT_MS);
            m.role = Role::Learning(outcome, d);
            self.discovery_output(sid, out)
        }
    }

    /// The vote a member casts for itself.
    fn vote_of(&self, sid: Sid) -> Vote {
        let (epoch, zxid) = self.members[&sid].history;
        Vote {
            epoch,
            zxid,
            leader: sid,
        }
    }

    /// When `m` next has something to do on its own.
    fn timer(m: &Member, relook: bool) -> Option<Millis> {
        let own = match &m.role {
            Role::Down => return None,
            Role::Looking(e) => return Some(e.deadline()),
            Role::Leading(_, d) => d.deadline(),
            Role::Learning(_, d) => d.deadline(),
        };
        let relook_at = relook.then_some(m.relook_at);
        [own, relook_at].into_iter().flatten().min()
    }

    /// Runs every event up to `until`.
    fn run(&mut self, until: Millis, relook: bool) -> Result<(), String> {
        loop {
            let timers = self
                .members
                .values()
                .filter_map(|m| Sim::timer(m, relook))
                .min();
            match [timers, self.net.next_arrival()]
                .into_iter()
                .flatten()
                .min()
            {
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
            for sid in sids {
                self.tick(sid, relook)?;
            }
        }
    }

    fn receive(&mut self, from: Sid, to: Sid, msg: Msg) -> Result<(), String> {
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
            (Role::Leading(o, _) | Role::Learning(o, _), Msg::Vote(n)) => {
                let answer = election::answer(o, from, &n);
                self.send_votes(to, answer.into_iter().collect());
                Ok(())
            }
            (Role::Looking(_), Msg::Discovery(_)) => Ok(()), // not listening yet
            (Role::Leading(_, d), Msg::Discovery(dm)) => {
                let was = d.established();
                let result = d.receive(from, dm);
                let now_established = d.established();
                if let discovery::Message::AckEpoch {
                    epoch,
                    current_epoch: Some(_),
                    ..
                } = dm
                {
                    self.acked_durably(from, epoch)?;
                }
                match result {
                    Err(why) => {
                        self.abandon(to, why);
                        Ok(())
                    }
                    Ok(out) => {
                        self.discovery_output(to, out)?;
                        match (was, now_established) {
                            (None, Some(epoch)) => self.epoch_established(to, epoch),
                            _ => Ok(()),
                        }
                    }
                }
            }
            (Role::Learning(_, d), Msg::Discovery(dm)) => match d.receive(from, dm) {
                Err(why) => {
                    self.abandon(to, why);
                    Ok(())
                }
                Ok(out) => self.discovery_output(to, out),
            },
        }
    }

    /// An ACKEPOCH of `epoch` arrived from `from`: it must have made the
    /// epoch durable (it may have accepted a later one since).
    fn acked_durably(&self, from: Sid, epoch: u32) -> Result<(), String> {
        let accepted = self.members[&from].accepted_epoch;
        if accepted < epoch {
            return Err(format!(
                "{from} acknowledged epoch {epoch} with only {accepted} durable"
            ));
        }
        Ok(())
    }

    fn epoch_established(&mut self, leader: Sid, epoch: u32) -> Result<(), String> {
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

    fn tick(&mut self, sid: Sid, relook: bool) -> Result<(), String> {
        let now = self.now;
        let m = self.member(sid);
        if !matches!(m.role, Role::Down | Role::Looking(_)) && relook && now >= m.relook_at {
            self.log(|| format!("{sid} loses its leader"));
            self.look(sid);
            return Ok(());
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
            Role::Leading(_, d) => match d.tick(now) {
                Err(why) => {
                    self.abandon(sid, why);
                    Ok(())
                }
                Ok(()) => Ok(()),
            },
            Role::Learning(_, d) => match d.tick(now) {
                Err(why) => {
                    self.abandon(sid, why);
                    Ok(())
                }
                Ok(out) => self.discovery_output(sid, out),
            },
        }
    }

    /// The fault phase: partitions and crashes change every so often.
    fn faults(&mut self) -> Result<(), String> {
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for sid in sids.clone() {
            self.look(sid);
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
                        self.look(sid);
                    } else {
                        self.crash(sid);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The leader of an established epoch, with a quorum of voters following
    /// it in that epoch, if there is one.
    fn settled(&self) -> Option<(Sid, u32)> {
        let (leader, epoch) = self.members.values().find_map(|m| match &m.role {
            Role::Leading(_, d) => d.established().map(|e| (m.sid, e)),
            _ => None,
        })?;
        let following = self.members.values().filter_map(|m| match &m.role {
            Role::Learning(o, d) if o.vote.leader == leader && d.epoch() == Some(epoch) => {
                Some(m.sid)
            }
            _ => None,
        });
        self.ensemble
            .is_quorum(following.chain([leader]))
            .then_some((leader, epoch))
    }

    /// Heals everything: the most recent voter must then lead an epoch.
    fn heal(&mut self) -> Result<(Sid, u32), String> {
        self.log(|| "heal: whole network, every member up".into());
        self.net.heal();
        self.net.set_faults(Faults::NONE);
        // The faulty connections are gone, and what was on them.
        self.net.disconnect(None);
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for sid in sids {
            self.look(sid);
        }
        let deadline = self.now + HEAL_LIMIT;
        while self.now < deadline && self.settled().is_none() {
            let until = self.now + 100;
            self.run(until, false)?;
        }
        let best = self
            .ensemble
            .voters()
            .map(|v| self.vote_of(v))
            .max()
            .expect("voters");
        match self.settled() {
            None => Err(format!(
                "no established leader {HEAL_LIMIT} ms after healing"
            )),
            Some((leader, _)) if leader != best.leader => Err(format!(
                "{leader} leads after healing; the most recent voter is {best:?}"
            )),
            Some(settled) => Ok(settled),
        }
    }

    /// Whether `m` follows (or observes) a leader in an epoch that leader established.
    fn in_established_epoch(&self, m: &Member) -> bool {
        match &m.role {
            Role::Learning(o, d) => d
                .epoch()
                .is_some_and(|e| self.established.get(&e) == Some(&o.vote.leader)),
            _ => false,
        }
    }

    /// A follower of the established epoch restarts: it must end following
    /// a leader in an established epoch again. Usually the same one; but a
    /// member that had accepted a later epoch than the leader's cannot join
    /// it (that would break its promise), keeps looking, and may elect
    /// another leader with the restarted one, as in ZooKeeper.
    fn rejoin(&mut self, epoch: u32) -> Result<(), String> {
        let followers: Vec<Sid> = self
            .members
            .values()
            .filter(|m| matches!(&m.role, Role::Learning(_, d) if d.epoch() == Some(epoch)))
            .map(|m| m.sid)
            .collect();
        let sid = *self.rng.pick(&followers);
        self.crash(sid);
        self.run(self.now + 100, false)?;
        self.look(sid);
        let deadline = self.now + HEAL_LIMIT;
        while self.now < deadline && !self.in_established_epoch(&self.members[&sid]) {
            let until = self.now + 100;
            self.run(until, false)?;
        }
        if self.in_established_epoch(&self.members[&sid]) {
            Ok(())
        } else {
            Err(format!("{sid} restarted and follows no established leader"))
        }
    }
}

fn run_seed(seed: u64, voters: u64, verbose: bool) -> Result<usize, String> {
    let mut sim = Sim::new(seed, voters, verbose);
    sim.faults()?;
    let (_, epoch) = sim.heal()?;
    sim.rejoin(epoch)?;
    Ok(sim.steps)
}

#[test]
fn ensembles_elect_and_establish_the_most_recent_voter_once_the_faults_end() {
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
    eprintln!("{steps} decisions and established epochs checked");
}
