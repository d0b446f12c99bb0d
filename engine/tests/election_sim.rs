//! Fast leader election across whole simulated ensembles (3 and 5 voters and
//! an observer) in one thread: seeded clock, network and crashes, so a
//! failing seed replays exactly.
//!
//! Each seed runs three phases:
//! 1. faults: messages lost, duplicated and delayed past the finalize wait,
//!    partitions that change, members crashing and restarting (a restarted
//!    member keeps its history and starts again at round 1, as ZooKeeper's
//!    logical clock does). A member that decided looks again a little later,
//!    in its next round, as it does when its leader fails to establish itself
//!    (discovery, which is not simulated here yet).
//! 2. healing: the network is whole and prompt (what was on its way during
//!    the faults is gone with the connections), every member runs; each one
//!    that decided during the faults looks again. All must decide within a
//!    bounded time, on one leader: the voter with the most recent history.
//! 3. a member restarts after that: it must join the established leader.
//!
//! Checked at every decision: the leader is a voter, an observer observes,
//! and a quorum of voters has a history no newer than the leader's (what
//! lets the leader's history include everything a quorum acknowledged); a
//! member's round never goes back while it runs.
//!
//! More seeds: `HERD_SIM_SEEDS=100000 cargo test --release -p herd-engine
//! --test election_sim`; one seed with its events: `HERD_SIM_SEED=N`.

use std::collections::BTreeMap;

use herd_engine::sim::{env_or, Faults, Network, Rng};
use herd_engine::zab::election::{self, Election, Notification, Outcome, PeerState, Vote};
use herd_engine::zab::quorum::Ensemble;
use herd_engine::zab::{Millis, Sid};

const DEFAULT_SEEDS: u64 = 20_000;
const FAULT_PHASE: Millis = 4_000;
/// How long after healing every member must have decided.
const HEAL_LIMIT: Millis = 10_000;
/// How long a member that decided during the faults keeps to it.
const LOOK_AGAIN_AFTER: Millis = 1_000;
const FAULTS: Faults = Faults {
    drop_percent: 20,
    duplicate_percent: 10,
    max_delay_ms: 400,
};

struct Member {
    sid: Sid,
    history: (u32, i64),
    up: bool,
    /// The latest round it took part in while up (it restarts at 1).
    round: u64,
    election: Option<Election>,
    outcome: Option<(Outcome, Millis)>,
}

struct Sim {
    rng: Rng,
    now: Millis,
    ensemble: Ensemble,
    members: BTreeMap<Sid, Member>,
    net: Network<Notification>,
    decisions: usize,
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
                let history = (epoch, (i64::from(epoch) << 32) | rng.between(0, 4) as i64);
                let m = Member {
                    sid,
                    history,
                    up: true,
                    round: 0,
                    election: None,
                    outcome: None,
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
            decisions: 0,
            verbose,
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("{:>6} ms  {}", self.now, what());
        }
    }

    fn send(&mut self, from: Sid, out: Vec<election::Send>) {
        for (to, n) in out {
            self.net.send(&mut self.rng, self.now, from, to, n);
        }
    }

    /// `sid` starts looking in its next round.
    fn look(&mut self, sid: Sid) {
        let m = self.members.get_mut(&sid).expect("member");
        m.round = m.election.as_ref().map_or(m.round, Election::round) + 1;
        m.outcome = None;
        let (e, out) = Election::start(sid, &self.ensemble, m.history, m.round, self.now);
        let round = m.round;
        m.election = Some(e);
        self.log(|| format!("{sid} looks, round {round}"));
        self.send(sid, out);
    }

    fn crash(&mut self, sid: Sid) {
        let m = self.members.get_mut(&sid).expect("member");
        m.up = false;
        m.election = None;
        m.outcome = None;
        m.round = 0;
        self.net.disconnect(Some(sid));
        self.log(|| format!("{sid} crashes"));
    }

    fn restart(&mut self, sid: Sid) {
        self.members.get_mut(&sid).expect("member").up = true;
        self.look(sid);
    }

    /// Checks a fresh decision of `sid` and records it.
    fn decided(&mut self, sid: Sid, outcome: Outcome) -> Result<(), String> {
        self.decisions += 1;
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
        let now = self.now;
        self.members.get_mut(&sid).expect("member").outcome = Some((outcome, now));
        Ok(())
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

    /// Runs every event up to `until`: deliveries, election timers, and
    /// (with `relook`) members looking again after deciding.
    fn run(&mut self, until: Millis, relook: bool) -> Result<(), String> {
        loop {
            let timers = self
                .members
                .values()
                .filter_map(|m| {
                    let e = m.election.as_ref().filter(|e| e.outcome().is_none());
                    e.map(Election::deadline).or(m
                        .outcome
                        .filter(|_| relook)
                        .map(|(_, at)| at + LOOK_AGAIN_AFTER))
                })
                .min();
            let next = [timers, self.net.next_arrival()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => self.now = self.now.max(at),
                _ => {
                    self.now = until;
                    return Ok(());
                }
            }
            while let Some((from, to, n)) = self.net.deliver(self.now) {
                self.receive(from, to, n)?;
            }
            let sids: Vec<Sid> = self.members.keys().copied().collect();
            for sid in sids {
                self.tick(sid, relook)?;
            }
        }
    }

    fn receive(&mut self, from: Sid, to: Sid, n: Notification) -> Result<(), String> {
        let now = self.now;
        let m = self.members.get_mut(&to).expect("member");
        if !m.up {
            return Ok(());
        }
        let Some(e) = m.election.as_mut() else {
            return Ok(());
        };
        let before = (e.round(), e.outcome());
        let out = e.receive(from, n, now);
        let after = (e.round(), e.outcome());
        if after.0 < before.0 {
            return Err(format!(
                "{to}'s round went back from {} to {}",
                before.0, after.0
            ));
        }
        self.send(to, out);
        if let (None, Some(outcome)) = (before.1, after.1) {
            self.decided(to, outcome)?;
        }
        Ok(())
    }

    fn tick(&mut self, sid: Sid, relook: bool) -> Result<(), String> {
        let now = self.now;
        let m = self.members.get_mut(&sid).expect("member");
        if !m.up {
            return Ok(());
        }
        if let Some((_, at)) = m.outcome {
            if relook && now >= at + LOOK_AGAIN_AFTER {
                self.look(sid);
            }
            return Ok(());
        }
        let Some(e) = m.election.as_mut() else {
            return Ok(());
        };
        let out = e.tick(now);
        let outcome = e.outcome();
        self.send(sid, out);
        if let Some(outcome) = outcome {
            self.decided(sid, outcome)?;
        }
        Ok(())
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
                    if self.members[&sid].up {
                        self.crash(sid);
                    } else {
                        self.restart(sid);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Heals everything; every member must then agree, on the most recent voter.
    fn heal(&mut self) -> Result<Sid, String> {
        self.log(|| "heal: whole network, every member up".into());
        self.net.heal();
        self.net.set_faults(Faults::NONE);
        // The faulty connections are gone, and what was on them.
        self.net.disconnect(None);
        let sids: Vec<Sid> = self.members.keys().copied().collect();
        for sid in sids {
            if self.members[&sid].up {
                self.look(sid);
            } else {
                self.restart(sid);
            }
        }
        let deadline = self.now + HEAL_LIMIT;
        while self.now < deadline && self.members.values().any(|m| m.outcome.is_none()) {
            let until = self.now + 100;
            self.run(until, false)?;
        }
        let best = self
            .ensemble
            .voters()
            .map(|v| self.vote_of(v))
            .max()
            .expect("voters");
        for m in self.members.values() {
            match m.outcome {
                None => return Err(format!("{} undecided {HEAL_LIMIT} ms after healing", m.sid)),
                Some((o, _)) if o.vote.leader != best.leader => {
                    return Err(format!(
                        "{} decided {o:?} after healing; the most recent voter is {best:?}",
                        m.sid
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(best.leader)
    }

    /// A member other than the leader restarts: it joins the leader.
    fn rejoin(&mut self, leader: Sid) -> Result<(), String> {
        let others: Vec<Sid> = self
            .members
            .keys()
            .copied()
            .filter(|&s| s != leader)
            .collect();
        let sid = *self.rng.pick(&others);
        self.crash(sid);
        self.run(self.now + 100, false)?;
        self.restart(sid);
        let deadline = self.now + HEAL_LIMIT;
        while self.now < deadline && self.members[&sid].outcome.is_none() {
            let until = self.now + 100;
            self.run(until, false)?;
        }
        match self.members[&sid].outcome {
            Some((o, _)) if o.vote.leader == leader => Ok(()),
            other => Err(format!(
                "{sid} restarted and decided {other:?}, not leader {leader}"
            )),
        }
    }
}

fn run_seed(seed: u64, voters: u64, verbose: bool) -> Result<usize, String> {
    let mut sim = Sim::new(seed, voters, verbose);
    sim.faults()?;
    let leader = sim.heal()?;
    sim.rejoin(leader)?;
    Ok(sim.decisions)
}

#[test]
fn elections_agree_on_the_most_recent_voter_once_the_faults_end() {
    let (seeds, verbose) = match std::env::var("HERD_SIM_SEED") {
        Ok(one) => {
            let seed: u64 = one.parse().expect("HERD_SIM_SEED is a number");
            (seed..=seed, true)
        }
        Err(_) => (1..=env_or("HERD_SIM_SEEDS", DEFAULT_SEEDS), false),
    };
    let mut decisions = 0;
    for seed in seeds {
        // Odd seeds: 3 voters; even: 5. Both with an observer.
        let voters = if seed % 2 == 1 { 3 } else { 5 };
        match run_seed(seed, voters, verbose) {
            Ok(n) => decisions += n,
            Err(e) => panic!("seed {seed} ({voters} voters): {e}"),
        }
    }
    assert!(decisions > 0, "elections decided something");
    eprintln!("{decisions} decisions checked");
}
