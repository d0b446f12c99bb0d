//! The members of an ensemble and its quorums. A quorum is a strict majority
//! of the voters (ZooKeeper's participants); observers learn what the voters
//! decide but never count towards a quorum, and never lead.

use std::collections::BTreeSet;

use super::Sid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ensemble {
    /// Everyone else the ensemble lists is an observer: it is answered and
    /// told, but nothing here needs to know which ones there are.
    voters: BTreeSet<Sid>,
}

/// Why a set of members is not an ensemble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnsembleError {
    NoVoters,
    /// A server listed both as a voter and as an observer.
    Both(Sid),
}

impl std::fmt::Display for EnsembleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnsembleError::NoVoters => write!(f, "an ensemble needs at least one participant"),
            EnsembleError::Both(sid) => {
                write!(
                    f,
                    "server {sid} is listed both as participant and as observer"
                )
            }
        }
    }
}

impl Ensemble {
    pub fn new(
        voters: impl IntoIterator<Item = Sid>,
        observers: impl IntoIterator<Item = Sid>,
    ) -> Result<Ensemble, EnsembleError> {
        let voters: BTreeSet<Sid> = voters.into_iter().collect();
        let observers: BTreeSet<Sid> = observers.into_iter().collect();
        if voters.is_empty() {
            return Err(EnsembleError::NoVoters);
        }
        if let Some(&both) = voters.intersection(&observers).next() {
            return Err(EnsembleError::Both(both));
        }
        Ok(Ensemble { voters })
    }

    pub fn voters(&self) -> impl Iterator<Item = Sid> + '_ {
        self.voters.iter().copied()
    }

    pub fn is_voter(&self, sid: Sid) -> bool {
        self.voters.contains(&sid)
    }

    /// The number of voters a quorum needs.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `sids` (repeats allowed) include a strict majority of the voters.
    pub fn is_quorum(&self, sids: impl IntoIterator<Item = Sid>) -> bool {
        let voting: BTreeSet<Sid> = sids.into_iter().filter(|s| self.is_voter(*s)).collect();
        voting.len() >= self.quorum_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_is_a_strict_majority_of_the_voters() {
        let three = Ensemble::new([1, 2, 3], [4]).unwrap();
        let four = Ensemble::new([1, 2, 3, 4], []).unwrap();
        let five = Ensemble::new([1, 2, 3, 4, 5], [6]).unwrap();
        // (ensemble, members heard from, is a quorum, why)
        let cases: [(&Ensemble, &[Sid], bool, &str); 8] = [
            (&three, &[1, 2], true, "2 of 3"),
            (&three, &[1], false, "1 of 3"),
            (&three, &[1, 4], false, "an observer does not count"),
            (&three, &[2, 2], false, "one voter counted once"),
            (&four, &[1, 2], false, "half is not a majority"),
            (&four, &[1, 2, 3], true, "3 of 4"),
            (&five, &[1, 2, 6], false, "2 of 5 and an observer"),
            (&five, &[1, 3, 5], true, "3 of 5"),
        ];
        for (ensemble, sids, expected, why) in cases {
            assert_eq!(ensemble.is_quorum(sids.iter().copied()), expected, "{why}");
        }
    }

    #[test]
    fn an_ensemble_needs_voters_and_no_member_twice() {
        assert_eq!(Ensemble::new([], [1]), Err(EnsembleError::NoVoters));
        assert_eq!(Ensemble::new([1, 2], [2]), Err(EnsembleError::Both(2)));
        let e = Ensemble::new([3, 1], [2]).unwrap();
        assert!(!e.is_voter(2) && e.is_voter(3) && e.is_voter(1) && !e.is_voter(4));
    }
}
