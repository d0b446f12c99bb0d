//! Discovery: how an elected leader makes a quorum accept a new epoch before
//! it leads, ZooKeeper's FOLLOWERINFO / LEADERINFO / ACKEPOCH exchange.
//!
//! ```text
//!   learner                         leader
//!     │── FollowerInfo(accepted, last zxid) ─►│  a quorum of these (the leader's
//!     │                                       │  own included): new epoch = the
//!     │                                       │  highest accepted epoch + 1
//!     │◄──────────── LeaderInfo(new epoch) ───│  (the leader accepts it first)
//!  accept it durably,                         │
//!     │── AckEpoch(current epoch, last zxid) ►│  a quorum of these: established
//! ```
//!
//! Invariants:
//! - a member accepts an epoch at most once: its accepted epoch only grows,
//!   and an acknowledgement of an epoch it had already accepted does not
//!   count (ZooKeeper sends -1 then);
//! - a member's ACKEPOCH leaves only after its accepted epoch is durable: the
//!   [`Output`] type carries the write the sends wait for;
//! - so at most one leader establishes each epoch (two would need two quorums
//!   of acknowledgements, and quorums share a member);
//! - a leader that learns a voter in its quorum has a more recent history than
//!   its own gives up (the election should not have chosen it), as does one
//!   that has no quorum within the init limit.

use std::collections::BTreeMap;

use super::quorum::Ensemble;
use super::{Millis, Sid};
use crate::Zxid;

/// A member's durable epochs (ZooKeeper's `acceptedEpoch` and `currentEpoch`
/// files): the last epoch it agreed to follow, and the epoch of its history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Epochs {
    pub accepted: u32,
    pub current: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A learner's first word to its leader (FOLLOWERINFO, or OBSERVERINFO).
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: Zxid,
    },
    /// The epoch the leader proposes (LEADERINFO).
    LeaderInfo { new_epoch: u32 },
    /// From a leader whose epoch has no zxid left: its learners begin
    /// discovery with it again, without an election, and it proposes a new
    /// epoch as a newly elected leader does (ZooKeeper has no such message:
    /// its leader shuts down there and the ensemble elects again).
    Rediscover,
    /// A learner's answer (ACKEPOCH) to the proposal of `epoch`: its current
    /// epoch, or `None` if it had already accepted `epoch` before. It names
    /// the epoch (ZooKeeper's does not; it relies on each leadership having
    /// connections of its own): an answer to an earlier proposal of the same
    /// leader, still on its way, must not count for a later one.
    AckEpoch {
        epoch: u32,
        current_epoch: Option<u32>,
        last_zxid: Zxid,
    },
}

/// What a step asks of the member: make `accept_epoch` durable (when set),
/// and only then send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub accept_epoch: Option<u32>,
    pub send: Vec<(Sid, Message)>,
}

impl Output {
    fn send(to: Sid, msg: Message) -> Output {
        Output {
            accept_epoch: None,
            send: vec![(to, msg)],
        }
    }
}

/// Why a member leaves discovery and looks for a leader again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandon {
    /// No quorum, or no word from the leader, within the init limit.
    Timeout,
    /// A voter acknowledged with a more recent history than the leader's.
    FollowerAhead(Sid),
    /// The leader proposed an epoch older than one this member accepted.
    StaleEpoch { proposed: u32, accepted: u32 },
}

/// The leader's side of discovery.
#[derive(Clone, Debug)]
pub struct Leader {
    me: Sid,
    ensemble: Ensemble,
    /// The leader's own `(current epoch, last zxid)`.
    own: (u32, Zxid),
    own_accepted: u32,
    /// Accepted epochs reported by learners.
    infos: BTreeMap<Sid, u32>,
    new_epoch: Option<u32>,
    /// Learners that acknowledged the new epoch (first time accepted).
    acks: BTreeMap<Sid, (u32, Zxid)>,
    /// Every learner that acknowledged it, with its last zxid, until taken
    /// for synchronisation.
    joined: Vec<(Sid, Zxid)>,
    established: bool,
    deadline: Millis,
}

impl Leader {
    pub fn start(
        me: Sid,
        ensemble: &Ensemble,
        epochs: Epochs,
        last_zxid: Zxid,
        now: Millis,
        init_limit_ms: Millis,
    ) -> Leader {
        Leader {
            me,
            ensemble: ensemble.clone(),
            own: (epochs.current, last_zxid),
            own_accepted: epochs.accepted,
            infos: BTreeMap::new(),
            new_epoch: None,
            acks: BTreeMap::new(),
            joined: Vec::new(),
            established: false,
            deadline: now + init_limit_ms,
        }
    }

    /// The epoch this leader leads in, once a quorum acknowledged it.
    pub fn established(&self) -> Option<u32> {
        self.new_epoch.filter(|_| self.established)
    }

    pub fn receive(&mut self, from: Sid, msg: Message) -> Result<Output, Abandon> {
        match msg {
            Message::FollowerInfo { accepted_epoch, .. } => {
                if let Some(epoch) = self.new_epoch {
                    return Ok(Output::send(from, Message::LeaderInfo { new_epoch: epoch }));
                }
                self.infos.insert(from, accepted_epoch);
                let heard = self.infos.keys().copied().chain([self.me]);
                if !self.ensemble.is_quorum(heard) {
                    return Ok(Output::default());
                }
                let highest = self
                    .infos
                    .values()
                    .copied()
                    .fold(self.own_accepted, u32::max);
                let epoch = highest + 1;
                self.new_epoch = Some(epoch);
                let tell = Message::LeaderInfo { new_epoch: epoch };
                Ok(Output {
                    accept_epoch: Some(epoch),
                    send: self.infos.keys().map(|&sid| (sid, tell)).collect(),
                })
            }
            Message::AckEpoch {
                epoch,
                current_epoch,
                last_zxid,
            } => {
                if Some(epoch) != self.new_epoch {
                    return Ok(Output::default()); // not what this leader proposed
                }
                self.joined.push((from, last_zxid));
                let Some(current) = current_epoch else {
                    return Ok(Output::default()); // an epoch acknowledged before: no count
                };
                // Only while establishing: a learner joining later may well be
                // ahead of the history this leader started from (it followed
                // it since), as in ZooKeeper's waitForEpochAck.
                if !self.established
                    && self.ensemble.is_voter(from)
                    && (current, last_zxid) > self.own
                {
                    return Err(Abandon::FollowerAhead(from));
                }
                self.acks.insert(from, (current, last_zxid));
                let acked = self.acks.keys().copied().chain([self.me]);
                if self.ensemble.is_quorum(acked) {
                    self.established = true;
                }
                Ok(Output::default())
            }
            Message::LeaderInfo { .. } | Message::Rediscover => Ok(Output::default()),
        }
    }

    /// When [`Leader::tick`] next has something to do, while not established.
    pub fn deadline(&self) -> Option<Millis> {
        (!self.established).then_some(self.deadline)
    }

    /// The learners that acknowledged the epoch since last asked, with
    /// their last zxids: those to synchronise.
    pub fn take_joined(&mut self) -> Vec<(Sid, Zxid)> {
        std::mem::take(&mut self.joined)
    }

    /// Gives up if the init limit passed before the epoch was established.
    pub fn tick(&mut self, now: Millis) -> Result<(), Abandon> {
        if !self.established && now >= self.deadline {
            return Err(Abandon::Timeout);
        }
        Ok(())
    }
}

/// How often a learner says FOLLOWERINFO again until its leader answers (a
/// leader that has not yet decided does not listen; ZooKeeper's learner
/// retries its connection likewise).
pub const LEARNER_RETRY_MS: Millis = 250;

/// A follower's or observer's side of discovery.
#[derive(Clone, Debug)]
pub struct Learner {
    leader: Sid,
    epochs: Epochs,
    last_zxid: Zxid,
    epoch: Option<u32>,
    deadline: Millis,
    retry_at: Millis,
}

impl Learner {
    /// Starts with a FOLLOWERINFO to `leader`.
    pub fn start(
        leader: Sid,
        epochs: Epochs,
        last_zxid: Zxid,
        now: Millis,
        init_limit_ms: Millis,
    ) -> (Learner, Output) {
        let learner = Learner {
            leader,
            epochs,
            last_zxid,
            epoch: None,
            deadline: now + init_limit_ms,
            retry_at: now + LEARNER_RETRY_MS,
        };
        let hello = learner.hello();
        (learner, hello)
    }

    fn hello(&self) -> Output {
        let info = Message::FollowerInfo {
            accepted_epoch: self.epochs.accepted,
            last_zxid: self.last_zxid,
        };
        Output::send(self.leader, info)
    }

    /// The epoch of the leader this learner acknowledged.
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    pub fn receive(&mut self, from: Sid, msg: Message) -> Result<Output, Abandon> {
        let Message::LeaderInfo { new_epoch } = msg else {
            return Ok(Output::default());
        };
        if from != self.leader || self.epoch.is_some() {
            return Ok(Output::default());
        }
        let accepted = self.epochs.accepted;
        let (accept_epoch, current_epoch) = match new_epoch.cmp(&accepted) {
            std::cmp::Ordering::Greater => (Some(new_epoch), Some(self.epochs.current)),
            std::cmp::Ordering::Equal => (None, None),
            std::cmp::Ordering::Less => {
                return Err(Abandon::StaleEpoch {
                    proposed: new_epoch,
                    accepted,
                })
            }
        };
        if let Some(e) = accept_epoch {
            self.epochs.accepted = e;
        }
        self.epoch = Some(new_epoch);
        let ack = Message::AckEpoch {
            epoch: new_epoch,
            current_epoch,
            last_zxid: self.last_zxid,
        };
        Ok(Output {
            accept_epoch,
            send: vec![(self.leader, ack)],
        })
    }

    /// When [`Learner::tick`] next has something to do, while it waits.
    pub fn deadline(&self) -> Option<Millis> {
        self.epoch
            .is_none()
            .then_some(self.retry_at.min(self.deadline))
    }

    /// Gives up if the leader said nothing within the init limit; until
    /// then, says FOLLOWERINFO again every [`LEARNER_RETRY_MS`].
    pub fn tick(&mut self, now: Millis) -> Result<Output, Abandon> {
        if self.epoch.is_some() {
            return Ok(Output::default());
        }
        if now >= self.deadline {
            return Err(Abandon::Timeout);
        }
        if now < self.retry_at {
            return Ok(Output::default());
        }
        self.retry_at = now + LEARNER_RETRY_MS;
        Ok(self.hello())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Ensemble {
        Ensemble::new([1, 2, 3], [9]).unwrap()
    }

    fn info(accepted_epoch: u32, last_zxid: Zxid) -> Message {
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
        }
    }

    fn ack(epoch: u32, current_epoch: Option<u32>, last_zxid: Zxid) -> Message {
        Message::AckEpoch {
            epoch,
            current_epoch,
            last_zxid,
        }
    }

    const OWN: Epochs = Epochs {
        accepted: 4,
        current: 3,
    };

    #[test]
    fn a_quorum_of_infos_gives_the_epoch_after_every_accepted_one() {
        let mut l = Leader::start(1, &three(), OWN, 30, 0, 1000);
        assert_eq!(
            l.receive(9, info(9, 0)),
            Ok(Output::default()),
            "an observer is no quorum"
        );
        let out = l.receive(2, info(6, 20)).unwrap();
        let tell = Message::LeaderInfo { new_epoch: 10 };
        assert_eq!(out.accept_epoch, Some(10), "the leader accepts it first");
        assert_eq!(
            out.send,
            [(2, tell), (9, tell)],
            "9 reported 9: the highest"
        );
        assert_eq!(
            l.receive(3, info(2, 5)),
            Ok(Output::send(3, tell)),
            "late: the same epoch"
        );
    }

    #[test]
    fn a_quorum_of_first_acknowledgements_establishes_the_epoch() {
        let mut l = Leader::start(1, &three(), OWN, 30, 0, 1000);
        l.receive(2, info(4, 20)).unwrap();
        l.receive(2, ack(5, None, 20)).unwrap();
        assert_eq!(
            l.established(),
            None,
            "an epoch it had accepted before does not count"
        );
        l.receive(9, ack(5, Some(3), 30)).unwrap();
        assert_eq!(l.established(), None, "an observer does not count");
        l.receive(3, ack(4, Some(3), 30)).unwrap();
        assert_eq!(
            l.established(),
            None,
            "an answer to another proposal does not count"
        );
        l.receive(3, ack(5, Some(3), 30)).unwrap();
        assert_eq!(l.established(), Some(5));
        assert!(
            l.receive(2, ack(5, Some(5), 90)).is_ok(),
            "once established, a learner ahead of where it began is welcome"
        );
        assert_eq!(
            l.tick(5000),
            Ok(()),
            "an established leader has no init deadline"
        );
    }

    #[test]
    fn a_leader_gives_up_on_a_voter_ahead_of_it_or_on_the_init_limit() {
        let mut l = Leader::start(1, &three(), OWN, 30, 0, 1000);
        l.receive(2, info(4, 20)).unwrap();
        // (ack, abandons, why)
        let cases = [
            (ack(5, Some(3), 31), true, "same epoch, later zxid"),
            (ack(5, Some(4), 0), true, "a later epoch"),
            (ack(5, Some(3), 30), false, "the same history"),
            (ack(5, Some(2), 99), false, "an older epoch"),
        ];
        for (msg, abandons, why) in cases {
            assert_eq!(l.clone().receive(3, msg).is_err(), abandons, "{why}");
        }
        assert_eq!(l.tick(999), Ok(()));
        assert_eq!(l.tick(1000), Err(Abandon::Timeout));
    }

    #[test]
    fn a_learner_acknowledges_an_epoch_once_and_after_making_it_durable() {
        let (mut f, out) = Learner::start(1, OWN, 30, 0, 1000);
        assert_eq!(out, Output::send(1, info(4, 30)));
        // (proposed epoch, accepts durably, acknowledges with, why)
        let cases = [
            (
                5,
                Some(5),
                Some(ack(5, Some(3), 30)),
                "a newer epoch: accepted",
            ),
            (
                4,
                None,
                Some(ack(4, None, 30)),
                "the epoch it accepted: no count",
            ),
            (3, None, None, "an older one: give up"),
        ];
        for (new_epoch, accept, answer, why) in cases {
            let got = f.clone().receive(1, Message::LeaderInfo { new_epoch });
            match answer {
                Some(a) => assert_eq!(
                    got,
                    Ok(Output {
                        accept_epoch: accept,
                        send: vec![(1, a)]
                    }),
                    "{why}"
                ),
                None => assert_eq!(
                    got,
                    Err(Abandon::StaleEpoch {
                        proposed: 3,
                        accepted: 4
                    }),
                    "{why}"
                ),
            }
        }
        assert_eq!(
            f.receive(2, Message::LeaderInfo { new_epoch: 7 }),
            Ok(Output::default()),
            "only its leader's word counts"
        );
        assert_eq!(f.clone().tick(249), Ok(Output::default()));
        assert_eq!(
            f.clone().tick(250),
            Ok(Output::send(1, info(4, 30))),
            "said again"
        );
        assert_eq!(f.clone().tick(1000), Err(Abandon::Timeout));
        f.receive(1, Message::LeaderInfo { new_epoch: 5 }).unwrap();
        assert_eq!((f.epoch(), f.tick(2000)), (Some(5), Ok(Output::default())));
        assert_eq!(
            f.receive(1, Message::LeaderInfo { new_epoch: 6 }),
            Ok(Output::default()),
            "one epoch per leader"
        );
    }
}
