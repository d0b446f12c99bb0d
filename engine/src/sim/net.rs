//! A simulated network: every message is delivered after a seeded delay, in
//! the order it was sent to the same member (as over TCP; messages from
//! different members interleave freely); while faults are on, some are lost
//! or delivered twice; a partition loses every message crossing it,
//! including those already on their way when it began.

use std::collections::{BTreeMap, BTreeSet};

use super::Rng;
use crate::zab::{Millis, Sid};

/// What the network does to messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub drop_percent: usize,
    pub duplicate_percent: usize,
    /// Delays are uniform in `1..=max_delay_ms`.
    pub max_delay_ms: Millis,
}

impl Faults {
    /// A healthy network: nothing lost, short delays.
    pub const NONE: Faults = Faults {
        drop_percent: 0,
        duplicate_percent: 0,
        max_delay_ms: 10,
    };
}

pub struct Network<M> {
    /// Messages on their way, by delivery time then sending order.
    in_flight: BTreeMap<(Millis, u64), (Sid, Sid, M)>,
    sent: u64,
    faults: Faults,
    /// Pairs (lower id first) that cannot reach each other.
    cut: BTreeSet<(Sid, Sid)>,
    /// The latest delivery time from one member to another, which later
    /// messages between them may not precede.
    last_at: BTreeMap<(Sid, Sid), Millis>,
    pub dropped: u64,
    pub duplicated: u64,
}

fn pair(a: Sid, b: Sid) -> (Sid, Sid) {
    (a.min(b), a.max(b))
}

impl<M: Clone> Network<M> {
    pub fn new(faults: Faults) -> Network<M> {
        Network {
            in_flight: BTreeMap::new(),
            sent: 0,
            faults,
            cut: BTreeSet::new(),
            last_at: BTreeMap::new(),
            dropped: 0,
            duplicated: 0,
        }
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Sends `msg` at `now`; it arrives later, once, twice or never.
    pub fn send(&mut self, rng: &mut Rng, now: Millis, from: Sid, to: Sid, msg: M) {
        if rng.chance(self.faults.drop_percent) {
            self.dropped += 1;
            return;
        }
        let copies = if rng.chance(self.faults.duplicate_percent) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let earliest = self.last_at.get(&(from, to)).copied().unwrap_or(0);
            let at = (now + rng.between(1, self.faults.max_delay_ms)).max(earliest);
            self.last_at.insert((from, to), at);
            self.sent += 1;
            self.in_flight
                .insert((at, self.sent), (from, to, msg.clone()));
        }
    }

    /// When the next message arrives, if any is on its way.
    pub fn next_arrival(&self) -> Option<Millis> {
        self.in_flight.keys().next().map(|&(at, _)| at)
    }

    /// The next message due by `now` that crosses no partition: `(from, to,
    /// message)`. Those that cross one are lost on the way.
    pub fn deliver(&mut self, now: Millis) -> Option<(Sid, Sid, M)> {
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                return None;
            }
            let (from, to, msg) = entry.remove();
            if self.cut.contains(&pair(from, to)) {
                self.dropped += 1;
                continue;
            }
            return Some((from, to, msg));
        }
        None
    }

    /// Loses every message on its way from or to `sid` (its connections
    /// broke: it crashed, or the network was reset); `None`: every message.
    /// Returns the pairs `(from, to)` that lost messages.
    pub fn disconnect(&mut self, sid: Option<Sid>) -> BTreeSet<(Sid, Sid)> {
        let before = self.in_flight.len();
        let mut lost = BTreeSet::new();
        self.in_flight.retain(|_, (from, to, _)| {
            let kept = sid.is_some_and(|s| *from != s && *to != s);
            if !kept {
                lost.insert((*from, *to));
            }
            kept
        });
        // New connections: nothing ahead of their first messages.
        self.last_at
            .retain(|&(from, to), _| sid.is_some_and(|s| from != s && to != s));
        self.dropped += (before - self.in_flight.len()) as u64;
        lost
    }

    /// Splits the members into `groups` that cannot reach one another.
    pub fn partition(&mut self, groups: &[Vec<Sid>]) {
        self.cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for &x in a {
                    for &y in b {
                        self.cut.insert(pair(x, y));
                    }
                }
            }
        }
    }

    /// Whether a partition separates `a` and `b`.
    pub fn is_cut(&self, a: Sid, b: Sid) -> bool {
        self.cut.contains(&pair(a, b))
    }

    /// Every member reaches every other again.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_after_their_delay_and_not_across_a_partition() {
        let mut rng = Rng(7);
        let mut net = Network::new(Faults::NONE);
        for i in 0..20 {
            net.send(&mut rng, 0, 1, 2, i);
            net.send(&mut rng, 0, 1, 3, 100 + i);
        }
        assert!(net.deliver(0).is_none(), "nothing arrives with no delay");
        net.partition(&[vec![1, 2], vec![3]]);
        let mut got = Vec::new();
        while let Some((from, to, m)) = net.deliver(10) {
            assert_eq!((from, to), (1, 2), "1 and 3 are cut apart");
            got.push(m);
        }
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "in the order sent");
        assert_eq!(net.dropped, 20);
        assert_eq!(net.next_arrival(), None);
        net.heal();
        for i in 0..3 {
            net.send(&mut rng, 10, 1, 2, i);
            net.send(&mut rng, 10, 3, 2, i);
        }
        net.disconnect(Some(1));
        assert_eq!(net.deliver(100).map(|(from, ..)| from), Some(3));
        net.disconnect(None);
        assert_eq!(net.next_arrival(), None);
    }

    #[test]
    fn faults_lose_and_duplicate_some_messages() {
        let mut rng = Rng(1);
        let mut net = Network::new(Faults {
            drop_percent: 30,
            duplicate_percent: 30,
            max_delay_ms: 500,
        });
        for i in 0..1000 {
            net.send(&mut rng, 0, 1, 2, i);
        }
        let mut arrived = 0u64;
        let mut last = 0;
        while let Some(at) = net.next_arrival() {
            assert!(
                at >= last && at <= 500,
                "in delivery order, within the delay"
            );
            last = at;
            net.deliver(at).expect("due");
            arrived += 1;
        }
        assert!(
            net.dropped > 200 && net.duplicated > 150,
            "{} {}",
            net.dropped,
            net.duplicated
        );
        assert_eq!(arrived, 1000 - net.dropped + net.duplicated);
    }
}
