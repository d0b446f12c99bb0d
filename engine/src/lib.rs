//! herd's state machine, with no sockets and no threads: the ZooKeeper data model
//! and everything that decides what a write does.
//!
//! ```text
//!  op::WriteOp ─► prep::execute ─► txn::Txn ─► txn::apply ─► tree::DataTree
//!                 (validate, ACL,              (the only code
//!                  versions, zxid)              that changes znodes)
//! ```
//!
//! - [`tree`]: the lock-free, single-writer tree of znodes that every shard reads.
//! - [`znode`]: a znode as fields, and the packed, immutable version the tree stores.
//! - [`prep`]: ZooKeeper's `PrepRequestProcessor` checks, in its order.
//! - [`txn`]: transactions, the pending overlay, and `apply`.
//! - [`session`]: session ids, passwords and expiry.
//! - [`log`]: the transaction log's format; [`forward`]: what a member
//!   forwards to its leader; [`snapshot`]: the snapshot format.
//! - [`acl`], [`path`], [`stat`], [`error`]: the data model's rules and records.
//! - [`time`]: epoch milliseconds as calendar text (logs, herd-inspect, herd-cli).
//! - [`zab`]: the ensemble's protocol, without I/O;
//!   [`sim`]: the seeded randomness and network that simulations drive it with.

pub mod acl;
pub mod error;
pub mod forward;
pub mod log;
pub mod op;
pub mod path;
pub mod prep;
pub mod session;
pub mod sim;
pub mod snapshot;
pub mod stat;
pub mod time;
pub mod tree;
pub mod txn;
pub mod types;
pub mod zab;
pub mod znode;

pub use error::{ErrorCode, ZkResult};
pub use types::{SessionId, TimeMs, Zxid};
