//! Synchronisation: how the leader brings a learner's history to its own
//! before the learner acknowledges NEWLEADER: ZooKeeper's DIFF, TRUNC and
//! SNAP. This module makes the choice; the leader's storage sends the records
//! or the snapshot it names.
//!
//! The leader's history is a snapshot base (`base`: the zxid its oldest
//! snapshot covers) followed by the logged transactions it still has
//! (`logged`, ascending). Zab guarantees that wherever a learner's history
//! and the leader's hold the same zxid, they agree on everything up to it;
//! so the learner keeps the longest prefix they share and receives the rest:
//!
//! | the learner's last zxid            | plan                              |
//! |------------------------------------|-----------------------------------|
//! | the leader's last                  | DIFF of nothing                   |
//! | in the leader's log, or its base   | DIFF of what follows it           |
//! | beyond the leader's last           | TRUNC to the leader's last        |
//! | inside the log's range, not in it  | TRUNC to the zxid before it, DIFF |
//! | older than the base                | SNAP                              |
//!
//! and a DIFF longer than `diff_limit` records becomes a SNAP (ZooKeeper
//! weighs the log's size against the snapshot's the same way).

use crate::Zxid;

/// How many learners a leader synchronised each way (mntr's `zk_diff_count`
/// counts DIFFs and TRUNCs, as ZooKeeper's does; `zk_snap_count` SNAPs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub diff: u64,
    pub trunc: u64,
    pub snap: u64,
}

impl SyncCounts {
    pub fn count(&mut self, plan: Sync) {
        match plan {
            Sync::Diff { .. } => self.diff += 1,
            Sync::Trunc { .. } => self.trunc += 1,
            Sync::Snap => self.snap += 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Send the records after `after` (the learner's last zxid).
    Diff { after: Zxid },
    /// The learner drops its records after `to`, then gets those after it.
    Trunc { to: Zxid },
    /// The learner replaces its state with a snapshot, then gets the
    /// records after it.
    Snap,
}

/// The plan for a learner whose last zxid is `peer_last`.
pub fn plan(base: Zxid, logged: &[Zxid], peer_last: Zxid, diff_limit: usize) -> Sync {
    let last = logged.last().copied().unwrap_or(base);
    if peer_last > last {
        return Sync::Trunc { to: last };
    }
    if peer_last < base {
        return Sync::Snap;
    }
    // Records after the shared prefix: the learner's last is a record of
    // ours (or the base), or falls between two of ours.
    let shared = logged.partition_point(|&z| z <= peer_last);
    if logged.len() - shared > diff_limit {
        return Sync::Snap;
    }
    let prefix_end = if shared == 0 {
        base
    } else {
        logged[shared - 1]
    };
    if prefix_end == peer_last {
        Sync::Diff { after: peer_last }
    } else {
        Sync::Trunc { to: prefix_end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: i64, counter: i64) -> Zxid {
        epoch << 32 | counter
    }

    #[test]
    fn the_plan_for_each_kind_of_learner_history() {
        let base = z(1, 2);
        let logged = [z(1, 3), z(1, 4), z(2, 1), z(3, 1), z(3, 2)];
        // (learner's last zxid, plan, why)
        let cases = [
            (
                z(3, 2),
                Sync::Diff { after: z(3, 2) },
                "in sync: an empty diff",
            ),
            (z(1, 4), Sync::Diff { after: z(1, 4) }, "a prefix of ours"),
            (
                z(1, 2),
                Sync::Diff { after: z(1, 2) },
                "exactly our snapshot's base",
            ),
            (
                z(3, 5),
                Sync::Trunc { to: z(3, 2) },
                "ahead of us in our epoch",
            ),
            (
                z(4, 1),
                Sync::Trunc { to: z(3, 2) },
                "an epoch we never led",
            ),
            (
                z(2, 7),
                Sync::Trunc { to: z(2, 1) },
                "proposals of epoch 2 that never made our history",
            ),
            (
                z(1, 9),
                Sync::Trunc { to: z(1, 4) },
                "a branch before our epoch 2 began",
            ),
            (z(1, 1), Sync::Snap, "older than our oldest snapshot"),
            (
                0,
                Sync::Snap,
                "an empty learner, and we no longer log from 0",
            ),
        ];
        for (peer, expected, why) in cases {
            assert_eq!(plan(base, &logged, peer, 100), expected, "{why}");
        }
    }

    #[test]
    fn a_long_diff_becomes_a_snapshot() {
        let logged: Vec<Zxid> = (1..=10).map(|c| z(1, c)).collect();
        assert_eq!(
            plan(0, &logged, z(1, 7), 3),
            Sync::Diff { after: z(1, 7) },
            "3 to send"
        );
        assert_eq!(plan(0, &logged, z(1, 6), 3), Sync::Snap, "4 to send");
        assert_eq!(
            plan(0, &logged, 0, 100),
            Sync::Diff { after: 0 },
            "from the start"
        );
        assert_eq!(
            plan(0, &[], 0, 0),
            Sync::Diff { after: 0 },
            "two empty histories"
        );
    }
}
