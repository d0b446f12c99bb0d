//! Fast leader election, as ZooKeeper's `FastLeaderElection` runs it, with no
//! I/O: notifications and the time go in, notifications to send come out.
//!
//! A LOOKING member proposes a leader and tells every voter: a
//! [`Notification`] of its [`Vote`], its round (ZooKeeper's logical clock,
//! `electionEpoch`) and its state. It adopts any better vote it hears in its
//! round; votes are ordered by the epoch of the candidate's history, then the
//! candidate's last zxid, then its id, so the member with the most recent
//! history wins. It decides when
//! - the LOOKING votes of a quorum of voters in its round agree with its own
//!   and no better vote arrives within [`FINALIZE_WAIT`], or at once when
//!   no better vote can arrive: every voter it can reach agrees with it (a
//!   voter agreeing has compared its own history with the proposal; the
//!   transport tells which voters it cannot reach, [`Election::reachable`]);
//!   or
//! - a quorum of voters that already follow or lead name one leader, and that
//!   leader itself said it leads (a member joining an established ensemble).
//!
//! ```text
//!   start ─► broadcast vote ─► hear vote ─┬─ newer round: join it, vote again
//!                 ▲                       ├─ better vote: adopt, vote again
//!                 │                       ├─ worse vote: tell its sender ours
//!                 │ nothing heard:        ├─ quorum agrees: finalize wait ─► decide
//!                 └─ resend, back off     └─ quorum established + LEADING ─► decide
//! ```
//!
//! Invariants:
//! - the round never goes back; a LOOKING voter's notification of an older
//!   round changes nothing (it gets this member's vote back);
//! - within a round the proposal only gets better;
//! - a decision through LOOKING votes has a quorum of voters whose own
//!   histories are no newer than the leader's (each voted for it only after
//!   comparing it with its own);
//! - an observer counts for nothing and never becomes leader;
//! - what the member knows of reachability only ever shortens the finalize
//!   wait: a decision still needs a quorum agreeing, so a wrong idea of who
//!   is reachable costs at most a worse leader, never safety.
//!
//! Election alone does not make a leader safe: two members may decide
//! differently when messages are lost. Discovery does (a quorum accepting
//! the new leader's epoch), and a member whose leader does not establish
//! itself looks again, in a later round.

use std::collections::{BTreeMap, BTreeSet};

use super::quorum::Ensemble;
use super::{Millis, Sid};
use crate::Zxid;

/// How long a member whose vote a quorum shares waits for a better one
/// before deciding (ZooKeeper's `finalizeWait`).
pub const FINALIZE_WAIT: Millis = 200;
/// The longest wait between rebroadcasts while nothing arrives; the wait
/// starts at [`FINALIZE_WAIT`] and doubles (`maxNotificationInterval`).
pub const MAX_NOTIFICATION_INTERVAL: Millis = 60_000;

/// A candidate for leader and how recent its history is. The derived order
/// is the election's: epoch, then zxid, then server id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vote {
    /// The epoch of the candidate's history (its currentEpoch).
    pub epoch: u32,
    /// The candidate's last logged zxid.
    pub zxid: Zxid,
    pub leader: Sid,
}

impl Vote {
    /// An observer's first vote: worse than any voter's, so it adopts theirs.
    pub const NONE: Vote = Vote {
        epoch: 0,
        zxid: Zxid::MIN,
        leader: 0,
    };
}

/// ZooKeeper's `ServerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// What a member tells others of its vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    /// The round the sender is in, or in which it decided.
    pub round: u64,
    pub state: PeerState,
}

impl Notification {
    /// Whether two notifications count as the same vote. While either is
    /// LOOKING the whole vote and the round must match; between established
    /// members, the leader and its epoch (ZooKeeper's `Vote.equals`).
    fn agrees(&self, other: &Notification) -> bool {
        if self.state == PeerState::Looking || other.state == PeerState::Looking {
            self.vote == other.vote && self.round == other.round
        } else {
            self.vote.leader == other.vote.leader && self.vote.epoch == other.vote.epoch
        }
    }
}

/// A notification and the member it goes to.
pub type Send = (Sid, Notification);

/// The end of an election: the role this member takes, and the vote it
/// decided on, in `round`: the round the leader was elected in, which for a
/// member that joined established members is theirs, possibly older than its
/// own (that stays where it was: ZooKeeper sets its logical clock back here,
/// herd keeps rounds monotonic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub state: PeerState,
    pub vote: Vote,
    pub round: u64,
}

impl Outcome {
    /// The outcome once discovery made `epoch` the ensemble's: members of an
    /// established ensemble name it in their answers, so that a member
    /// joining later finds them agreeing (ZooKeeper's `updateElectionVote`).
    pub fn in_epoch(self, epoch: u32) -> Outcome {
        Outcome {
            vote: Vote { epoch, ..self.vote },
            ..self
        }
    }

    /// What this member answers a LOOKING member with from now on.
    pub fn notification(&self) -> Notification {
        Notification {
            vote: self.vote,
            round: self.round,
            state: self.state,
        }
    }
}

/// What a member that is not looking answers a notification with: its
/// outcome, to a member that is looking.
pub fn answer(outcome: &Outcome, from: Sid, n: &Notification) -> Option<Send> {
    (n.state == PeerState::Looking).then(|| (from, outcome.notification()))
}

/// One member's election, from [`Election::start`] until it has an
/// [`Outcome`].
#[derive(Clone, Debug)]
pub struct Election {
    me: Sid,
    ensemble: Ensemble,
    /// This member's own vote for itself (an observer's is [`Vote::NONE`]).
    initial: Vote,
    round: u64,
    proposal: Vote,
    /// The latest notification of each voter in this round, this member's
    /// own included (ZooKeeper's `recvset`).
    votes: BTreeMap<Sid, Notification>,
    /// The latest notification of each voter that follows or leads, of any
    /// round (`outofelection`).
    established: BTreeMap<Sid, Notification>,
    /// Set while a quorum agrees with the proposal: when to decide.
    finalize_at: Option<Millis>,
    /// Voters the transport cannot reach now: no vote of theirs arrives.
    unreachable: BTreeSet<Sid>,
    /// When to broadcast again if nothing arrives, and the wait after that.
    resend_at: Millis,
    interval: Millis,
    outcome: Option<Outcome>,
}

impl Election {
    /// Starts looking in `round` (one past the last this member took part in
    /// since it started), proposing itself with its history `(epoch, zxid)`
    /// if it votes. Returns the election and its first notifications.
    pub fn start(
        me: Sid,
        ensemble: &Ensemble,
        history: (u32, Zxid),
        round: u64,
        now: Millis,
    ) -> (Election, Vec<Send>) {
        let initial = if ensemble.is_voter(me) {
            Vote {
                epoch: history.0,
                zxid: history.1,
                leader: me,
            }
        } else {
            Vote::NONE
        };
        let mut e = Election {
            me,
            ensemble: ensemble.clone(),
            initial,
            round,
            proposal: initial,
            votes: BTreeMap::new(),
            established: BTreeMap::new(),
            finalize_at: None,
            unreachable: BTreeSet::new(),
            resend_at: now + FINALIZE_WAIT,
            interval: FINALIZE_WAIT,
            outcome: None,
        };
        e.record_own();
        let out = e.broadcast();
        (e, out)
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// The latest round this member took part in; its next election starts
    /// one past it.
    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    /// When [`Election::tick`] next has something to do.
    pub fn deadline(&self) -> Millis {
        self.finalize_at.unwrap_or(self.resend_at)
    }

    /// This member's notification as it stands.
    fn current(&self) -> Notification {
        Notification {
            vote: self.proposal,
            round: self.round,
            state: PeerState::Looking,
        }
    }

    /// The proposal to every other voter (observers are answered, not told).
    fn broadcast(&self) -> Vec<Send> {
        let n = self.current();
        self.ensemble
            .voters()
            .filter(|&sid| sid != self.me)
            .map(|sid| (sid, n))
            .collect()
    }

    fn record_own(&mut self) {
        if self.ensemble.is_voter(self.me) {
            let own = self.current();
            self.votes.insert(self.me, own);
        }
    }

    /// Whether the voters in `votes` that agree with `target` are a quorum.
    fn quorum_for(&self, votes: &BTreeMap<Sid, Notification>, target: &Notification) -> bool {
        self.ensemble.is_quorum(
            votes
                .iter()
                .filter(|(_, n)| n.agrees(target))
                .map(|(&sid, _)| sid),
        )
    }

    /// ZooKeeper's `checkLeader`: another member is a leader to follow only
    /// if it said it leads; this member only in the round it is in.
    fn leader_confirmed(&self, votes: &BTreeMap<Sid, Notification>, n: &Notification) -> bool {
        if n.vote.leader == self.me {
            self.round == n.round
        } else {
            votes
                .get(&n.vote.leader)
                .is_some_and(|l| l.state == PeerState::Leading)
        }
    }

    fn decide(&mut self, vote: Vote, round: u64) {
        let state = if vote.leader == self.me {
            PeerState::Leading
        } else if self.ensemble.is_voter(self.me) {
            PeerState::Following
        } else {
            PeerState::Observing
        };
        self.outcome = Some(Outcome { state, vote, round });
    }

    /// A notification from `from`; returns what to send.
    pub fn receive(&mut self, from: Sid, n: Notification, now: Millis) -> Vec<Send> {
        if let Some(outcome) = &self.outcome {
            return answer(outcome, from, &n).into_iter().collect();
        }
        if !self.ensemble.is_voter(from) {
            // An observer asking: tell it where this member stands.
            return vec![(from, self.current())];
        }
        self.resend_at = now + self.interval;
        match n.state {
            PeerState::Looking => self.looking(from, n, now),
            PeerState::Following | PeerState::Leading => {
                self.established_vote(from, n);
                Vec::new()
            }
            PeerState::Observing => Vec::new(),
        }
    }

    fn looking(&mut self, from: Sid, n: Notification, now: Millis) -> Vec<Send> {
        let mut out = Vec::new();
        if n.round > self.round {
            self.round = n.round;
            self.votes.clear();
            self.proposal = n.vote.max(self.initial);
            self.finalize_at = None;
            self.record_own();
            out = self.broadcast();
        } else if n.round < self.round {
            return vec![(from, self.current())];
        } else if n.vote > self.proposal {
            // A new proposal waits its own finalize wait.
            self.proposal = n.vote;
            self.finalize_at = None;
            self.record_own();
            out = self.broadcast();
        } else if n.vote < self.proposal {
            // Its sender has not heard this member's vote (or would have
            // adopted it): a member that looked again since its last
            // broadcast would otherwise stay silent until it rebroadcasts.
            out = vec![(from, self.current())];
        }
        self.votes.insert(from, n);
        self.settle(now);
        out
    }

    /// With a quorum agreeing on the proposal: decides at once if every
    /// voter it can reach agrees, else waits [`FINALIZE_WAIT`] for a better
    /// vote. Without: waits for more votes.
    fn settle(&mut self, now: Millis) {
        let own = self.current();
        if !self.quorum_for(&self.votes, &own) {
            self.finalize_at = None;
        } else if self.ensemble.voters().all(|v| {
            self.unreachable.contains(&v) || self.votes.get(&v).is_some_and(|n| n.agrees(&own))
        }) {
            self.decide(self.proposal, self.round);
        } else {
            self.finalize_at.get_or_insert(now + FINALIZE_WAIT);
        }
    }

    /// The transport can (`up`) or cannot reach voter `sid` now. A member
    /// that waits to decide may decide at once.
    pub fn reachable(&mut self, sid: Sid, up: bool, now: Millis) {
        if up {
            self.unreachable.remove(&sid);
        } else if self.ensemble.is_voter(sid) && sid != self.me {
            self.unreachable.insert(sid);
        }
        if self.outcome.is_none() {
            self.settle(now);
        }
    }

    fn established_vote(&mut self, from: Sid, n: Notification) {
        if n.round == self.round {
            self.votes.insert(from, n);
            if self.quorum_for(&self.votes, &n) && self.leader_confirmed(&self.votes, &n) {
                self.decide(n.vote, n.round);
                return;
            }
        }
        self.established.insert(from, n);
        if self.quorum_for(&self.established, &n) && self.leader_confirmed(&self.established, &n) {
            self.decide(n.vote, n.round);
        }
    }

    /// The time passed: decide once the finalize wait is over, or broadcast
    /// again (and wait twice as long) if nothing arrived.
    pub fn tick(&mut self, now: Millis) -> Vec<Send> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        if let Some(at) = self.finalize_at {
            if now >= at {
                self.decide(self.proposal, self.round);
                return Vec::new();
            }
        }
        if now < self.resend_at {
            return Vec::new();
        }
        self.interval = (self.interval * 2).min(MAX_NOTIFICATION_INTERVAL);
        self.resend_at = now + self.interval;
        self.broadcast()
    }
}

#[cfg(test)]
mod tests {
    use super::PeerState::*;
    use super::*;

    fn vote(epoch: u32, zxid: Zxid, leader: Sid) -> Vote {
        Vote {
            epoch,
            zxid,
            leader,
        }
    }

    fn looking(v: Vote, round: u64) -> Notification {
        Notification {
            vote: v,
            round,
            state: Looking,
        }
    }

    fn three() -> Ensemble {
        Ensemble::new([1, 2, 3], [9]).unwrap()
    }

    #[test]
    fn votes_are_ordered_by_epoch_then_zxid_then_id() {
        // (better, worse, why)
        let cases = [
            (
                vote(2, 1, 1),
                vote(1, 100, 3),
                "a newer epoch beats a longer history",
            ),
            (vote(1, 5, 1), vote(1, 4, 3), "same epoch: the later zxid"),
            (vote(1, 5, 3), vote(1, 5, 2), "same history: the higher id"),
            (
                vote(0, 0, 1),
                Vote::NONE,
                "any voter beats an observer's none",
            ),
        ];
        for (better, worse, why) in cases {
            assert!(better > worse, "{why}");
        }
    }

    #[test]
    fn a_member_starts_by_proposing_itself_to_every_other_voter() {
        let (e, out) = Election::start(2, &three(), (1, 7), 4, 0);
        let own = looking(vote(1, 7, 2), 4);
        assert_eq!(out, [(1, own), (3, own)]);
        assert_eq!(e.deadline(), FINALIZE_WAIT);
        let (o, out) = Election::start(9, &three(), (1, 9), 1, 0);
        assert_eq!(o.proposal(), Vote::NONE, "an observer proposes no one");
        assert_eq!(out.len(), 3, "an observer asks every voter");
    }

    #[test]
    fn a_better_vote_is_adopted_and_told_to_everyone() {
        let (mut e, _) = Election::start(1, &three(), (1, 7), 1, 0);
        let better = looking(vote(1, 9, 3), 1);
        let out = e.receive(3, better, 10);
        assert_eq!(e.proposal(), vote(1, 9, 3));
        assert_eq!(out, [(2, better), (3, better)]);
        // A worse vote changes nothing; its sender has not heard ours.
        let out = e.receive(2, looking(vote(1, 8, 2), 1), 11);
        assert_eq!(out, [(2, better)]);
        assert_eq!(e.proposal(), vote(1, 9, 3));
        // The same vote: nothing to say.
        assert!(e.receive(2, better, 12).is_empty());
    }

    #[test]
    fn a_newer_round_restarts_the_count_with_the_better_of_both_votes() {
        let (mut e, _) = Election::start(1, &three(), (1, 7), 1, 0);
        e.receive(2, looking(vote(1, 9, 2), 1), 1);
        // Round 3 from 3 with a worse vote: join the round, vote for ourselves.
        let out = e.receive(3, looking(vote(1, 2, 3), 3), 2);
        assert_eq!((e.round(), e.proposal()), (3, vote(1, 7, 1)));
        assert_eq!(
            out,
            [
                (2, looking(vote(1, 7, 1), 3)),
                (3, looking(vote(1, 7, 1), 3))
            ]
        );
    }

    #[test]
    fn an_older_round_gets_this_members_vote_back_and_changes_nothing() {
        let (mut e, _) = Election::start(1, &three(), (1, 7), 5, 0);
        let out = e.receive(2, looking(vote(9, 9, 2), 4), 1);
        assert_eq!(out, [(2, looking(vote(1, 7, 1), 5))]);
        assert_eq!(e.proposal(), vote(1, 7, 1));
    }

    #[test]
    fn a_quorum_decides_after_the_finalize_wait_unless_a_better_vote_comes() {
        let (mut e, _) = Election::start(1, &three(), (1, 9), 1, 0);
        e.receive(2, looking(vote(1, 9, 1), 1), 100);
        assert_eq!(e.deadline(), 100 + FINALIZE_WAIT);
        assert!(e.tick(299).is_empty());
        assert_eq!(e.outcome(), None, "not before the wait is over");
        e.tick(300);
        assert_eq!(
            e.outcome(),
            Some(Outcome {
                state: Leading,
                vote: vote(1, 9, 1),
                round: 1
            })
        );

        let (mut f, _) = Election::start(1, &three(), (1, 9), 1, 0);
        f.receive(2, looking(vote(1, 9, 1), 1), 100);
        f.receive(3, looking(vote(1, 10, 3), 1), 150);
        f.tick(300);
        assert_eq!(
            f.outcome(),
            None,
            "a better vote within the wait reopens it"
        );
        f.receive(2, looking(vote(1, 10, 3), 1), 310);
        f.tick(510);
        assert_eq!(
            f.outcome().map(|o| (o.state, o.vote.leader)),
            Some((Following, 3))
        );
    }

    #[test]
    fn no_finalize_wait_once_every_voter_it_can_reach_agrees() {
        // All three agree: nothing better can come.
        let (mut e, _) = Election::start(1, &three(), (1, 9), 1, 0);
        e.receive(2, looking(vote(1, 10, 3), 1), 10);
        e.receive(3, looking(vote(1, 10, 3), 1), 11);
        assert_eq!(e.outcome().map(|o| o.state), Some(Following));

        // 3 is gone (its leader died, say): 1 and 2 agreeing decide at once,
        // whether 3 went before or after the quorum formed.
        let (mut f, _) = Election::start(1, &three(), (1, 9), 1, 0);
        f.reachable(3, false, 5);
        f.receive(2, looking(vote(1, 9, 2), 1), 10);
        assert_eq!(
            f.outcome().map(|o| (o.state, o.vote.leader)),
            Some((Following, 2))
        );
        let (mut g, _) = Election::start(1, &three(), (1, 9), 1, 0);
        g.receive(2, looking(vote(1, 9, 2), 1), 10);
        assert_eq!(g.outcome(), None, "3 might have a better vote");
        g.reachable(3, false, 20);
        assert_eq!(
            g.outcome().map(|o| (o.state, o.vote.leader)),
            Some((Following, 2))
        );

        // Back again, 3 is waited for; unreachable without a quorum decides
        // nothing; nor does an observer's reachability count.
        let (mut h, _) = Election::start(1, &three(), (1, 9), 1, 0);
        h.reachable(3, false, 5);
        h.reachable(3, true, 6);
        h.reachable(9, false, 7);
        h.receive(2, looking(vote(1, 9, 2), 1), 10);
        assert_eq!(h.outcome(), None);
        assert_eq!(h.deadline(), 10 + FINALIZE_WAIT);
        let (mut k, _) = Election::start(1, &three(), (1, 9), 1, 0);
        k.reachable(2, false, 5);
        k.reachable(3, false, 5);
        assert_eq!(k.outcome(), None, "one voter is no quorum");
    }

    #[test]
    fn a_late_member_follows_a_quorum_of_established_members_whose_leader_leads() {
        let established = |state, round| Notification {
            vote: vote(2, 40, 3),
            round,
            state,
        };
        let (mut e, _) = Election::start(1, &three(), (1, 9), 1, 0);
        e.receive(2, established(Following, 6), 10);
        assert_eq!(e.outcome(), None, "one follower is not a quorum");
        e.receive(2, established(Following, 6), 11);
        assert_eq!(e.outcome(), None, "nor is the same one twice");
        e.receive(3, established(Leading, 6), 12);
        assert_eq!(
            e.outcome(),
            Some(Outcome {
                state: Following,
                vote: vote(2, 40, 3),
                round: 6
            })
        );

        // Followers alone, naming a leader that has not said it leads: wait.
        let five = Ensemble::new([1, 2, 3, 4, 5], []).unwrap();
        let (mut g, _) = Election::start(1, &five, (1, 9), 1, 0);
        for sid in [2, 4, 5] {
            g.receive(sid, established(Following, 6), 10);
        }
        assert_eq!(g.outcome(), None, "the leader's own word is needed");
    }

    #[test]
    fn an_observer_never_counts_and_never_leads() {
        // 1 and the observer 9 agree on 1: not a quorum of voters.
        let (mut e, _) = Election::start(1, &three(), (1, 9), 1, 0);
        let out = e.receive(9, looking(Vote::NONE, 1), 10);
        assert_eq!(
            out,
            [(9, looking(vote(1, 9, 1), 1))],
            "the observer is answered"
        );
        e.tick(10_000);
        assert_eq!(e.outcome(), None);

        // The observer adopts the voters' vote and observes once they agree.
        let (mut o, _) = Election::start(9, &three(), (5, 99), 1, 0);
        o.receive(1, looking(vote(1, 9, 1), 1), 10);
        o.receive(2, looking(vote(1, 9, 1), 1), 11);
        o.tick(11 + FINALIZE_WAIT);
        assert_eq!(
            o.outcome().map(|x| (x.state, x.vote.leader)),
            Some((Observing, 1))
        );
    }

    #[test]
    fn silence_is_met_with_rebroadcasts_that_back_off() {
        let (mut e, _) = Election::start(1, &three(), (1, 9), 1, 0);
        let mut sent_at = Vec::new();
        let mut now = 0;
        while now < 3_100 {
            now += 50;
            if !e.tick(now).is_empty() {
                sent_at.push(now);
            }
        }
        assert_eq!(sent_at, [200, 600, 1400, 3000]);
        // Once decided, a looking member gets the outcome; others nothing.
        e.receive(2, looking(vote(1, 9, 1), 1), now);
        e.tick(now + FINALIZE_WAIT);
        let outcome = e.outcome().expect("decided");
        let asking = looking(vote(0, 0, 3), 1);
        assert_eq!(e.receive(3, asking, now), [(3, outcome.notification())]);
        assert!(e.receive(2, outcome.notification(), now).is_empty());
    }
}
