//! Session tracking on the leader (ZooKeeper's `SessionTrackerImpl`): which
//! sessions are alive, when each expires, and the ids and passwords handed out.
//!
//! Pure bookkeeping driven by the caller's clock: `touch` on any client activity,
//! `expired(now)` to collect sessions past their deadline. An expired or closing
//! session is never touched back to life; its close goes through the pipeline as
//! a transaction so ephemeral deletion is ordered with every other write.
//!
//! In an ensemble the leader also knows each session's owner: the member its
//! client last connected through (set when the session is created there or
//! revalidated on a reconnect). A request through any other member comes from
//! a connection the session moved away from, and fails with SessionMoved.

use std::collections::HashMap;

use crate::types::{SessionId, TimeMs};

/// Why [`SessionTracker::check`] refuses a session's write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, expired or closing: SessionExpired.
    Expired,
    /// Its client moved to another member: SessionMoved.
    Moved,
}

#[derive(Debug)]
struct Tracked {
    timeout_ms: i32,
    expires_at_ms: TimeMs,
    closing: bool,
    /// The server its client is connected through, once known.
    owner: Option<u64>,
}

/// Live sessions and their deadlines.
#[derive(Debug)]
pub struct SessionTracker {
    sessions: HashMap<SessionId, Tracked>,
    next_id: SessionId,
}

impl SessionTracker {
    /// Ids start from the clock, with `server_id` in the top byte, as in ZooKeeper.
    pub fn new(server_id: u8, now: TimeMs) -> SessionTracker {
        let base = ((now as u64) << 24 >> 8) as i64;
        SessionTracker {
            sessions: HashMap::new(),
            next_id: base | (i64::from(server_id) << 56),
        }
    }

    /// A fresh session id.
    pub fn next_session_id(&mut self) -> SessionId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Starts tracking `session` (new, or recovered from a snapshot).
    pub fn add(&mut self, session: SessionId, timeout_ms: i32, now: TimeMs) {
        let expires_at_ms = now + i64::from(timeout_ms);
        self.sessions.insert(
            session,
            Tracked {
                timeout_ms,
                expires_at_ms,
                closing: false,
                owner: None,
            },
        );
    }

    /// Extends the session's deadline; false when it is unknown or closing.
    pub fn touch(&mut self, session: SessionId, now: TimeMs) -> bool {
        match self.sessions.get_mut(&session) {
            Some(t) if !t.closing => {
                t.expires_at_ms = now + i64::from(t.timeout_ms);
                true
            }
            _ => false,
        }
    }

    /// The negotiated timeout of a live session.
    pub fn timeout_ms(&self, session: SessionId) -> Option<i32> {
        self.sessions
            .get(&session)
            .filter(|t| !t.closing)
            .map(|t| t.timeout_ms)
    }

    /// The session's client is connected through `server` now.
    pub fn set_owner(&mut self, session: SessionId, server: u64) {
        if let Some(t) = self.sessions.get_mut(&session) {
            t.owner = Some(server);
        }
    }

    /// A write of `session` that came through `server` (`None`: one any
    /// member may send, as a close): extends the session's deadline, as any
    /// activity does, and says whether the write may go on. Refused when the
    /// session is unknown or closing, or when it came from a connection the
    /// session has moved away from (ZooKeeper's `checkSession` owner test; an
    /// owner not yet known moves nothing).
    pub fn check(
        &mut self,
        session: SessionId,
        server: Option<u64>,
        now: TimeMs,
    ) -> Result<(), Refused> {
        match self.sessions.get_mut(&session) {
            Some(t) if !t.closing => {
                t.expires_at_ms = now + i64::from(t.timeout_ms);
                match (t.owner, server) {
                    (Some(owner), Some(through)) if owner != through => Err(Refused::Moved),
                    _ => Ok(()),
                }
            }
            _ => Err(Refused::Expired),
        }
    }

    /// Marks the session as closing: it can no longer be touched or reconnected.
    pub fn set_closing(&mut self, session: SessionId) {
        if let Some(t) = self.sessions.get_mut(&session) {
            t.closing = true;
        }
    }

    /// Forgets a session once its close transaction is committed.
    pub fn remove(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// Sessions past their deadline, now marked closing, in id order.
    pub fn expired(&mut self, now: TimeMs) -> Vec<SessionId> {
        let mut out: Vec<SessionId> = self
            .sessions
            .iter_mut()
            .filter(|(_, t)| !t.closing && t.expires_at_ms <= now)
            .map(|(id, t)| {
                t.closing = true;
                *id
            })
            .collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// The 16-byte password of a session: derived from a server secret, so it can be
/// checked on reconnect without storing it.
pub fn password(secret: &[u8; 16], session: SessionId) -> [u8; 16] {
    let mut h = sha1_smol::Sha1::new();
    h.update(secret);
    h.update(&session.to_be_bytes());
    let digest = h.digest().bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_touches() {
        let mut t = SessionTracker::new(1, 1_000);
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_eq!(a >> 56, 1, "server id in the top byte");
        assert_eq!(b, a + 1);
        t.add(a, 100, 0);
        t.add(b, 100, 0);
        assert!(t.touch(a, 50));
        assert_eq!(t.expired(99), Vec::<SessionId>::new());
        assert_eq!(t.expired(100), vec![b]);
        assert!(!t.touch(b, 101), "an expiring session stays expired");
        assert_eq!(t.expired(150), vec![a]);
        assert_eq!(t.expired(1_000), Vec::<SessionId>::new(), "reported once");
        t.remove(a);
        assert_eq!(t.timeout_ms(a), None);
    }

    #[test]
    fn a_session_moves_with_its_owner() {
        let mut t = SessionTracker::new(1, 1_000);
        let a = t.next_session_id();
        t.add(a, 4_000, 1_000);
        assert_eq!(t.check(a, Some(2), 1_000), Ok(()), "no owner known yet");
        t.set_owner(a, 2);
        assert_eq!(t.check(a, Some(2), 1_000), Ok(()));
        assert_eq!(t.check(a, Some(3), 2_000), Err(Refused::Moved));
        assert!(
            t.expired(5_500).is_empty(),
            "a moved write still touched it"
        );
        assert_eq!(t.check(a, None, 2_000), Ok(()), "a close through any");
        t.set_owner(a, 3);
        assert_eq!(t.check(a, Some(2), 2_000), Err(Refused::Moved));
        assert_eq!(t.check(a, Some(3), 2_000), Ok(()));
        assert_eq!(t.check(a + 1, Some(2), 2_000), Err(Refused::Expired));
        t.set_closing(a);
        assert_eq!(t.check(a, Some(3), 2_000), Err(Refused::Expired));
    }

    #[test]
    fn password_depends_on_secret_and_session() {
        let s = [7u8; 16];
        assert_eq!(password(&s, 5), password(&s, 5));
        assert_ne!(password(&s, 5), password(&s, 6));
        assert_ne!(password(&s, 5), password(&[8u8; 16], 5));
    }
}
