//! Zab, ZooKeeper's atomic broadcast, as state machines with no I/O: each
//! takes what arrived (a message, the time) and returns what to send, so the
//! server's quorum transport can drive it over TCP and a simulator can drive a
//! whole ensemble in one thread, deterministically.
//!
//! ```text
//!   LOOKING ──election──► LEADING ──discovery, sync──► broadcast
//!      ▲                  FOLLOWING                        │
//!      └──────────── lost quorum / leader ◄────────────────┘
//! ```
//!
//! - [`quorum`]: who votes, who observes, and what a quorum is.
//! - [`election`]: fast leader election, while a member is LOOKING.
//! - [`discovery`]: the elected leader gets a quorum to accept a new epoch.
//! - [`sync`]: DIFF, TRUNC or SNAP, to bring a learner to the leader's history.
//! - [`broadcast`]: synchronisation, then PROPOSAL / ACK / COMMIT.
//! - [`peer`]: a whole member (`QuorumPeer`): the above in sequence, with
//!   its storage writes and what waits for them.
//! - [`wire`]: the bytes members send each other.

pub mod broadcast;
pub mod discovery;
pub mod election;
pub mod peer;
pub mod quorum;
pub mod sync;
pub mod wire;

/// A server id: the `N` of `server.N` in zoo.cfg, as the `myid` file holds it.
pub type Sid = u64;

/// Milliseconds on a member's clock. Only differences matter: the server
/// passes a monotonic clock, the simulator its own.
pub type Millis = u64;

/// The epoch part of a zxid (its high 32 bits).
pub fn epoch_of(zxid: crate::Zxid) -> u32 {
    (zxid >> 32) as u32
}
