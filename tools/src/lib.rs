//! herd's operator tools, as a library the binaries are thin wrappers around.
//!
//! - [`inspect`]: `herd-inspect`, which reads a data directory's transaction log
//!   and snapshots without starting herd: dump a segment, check a directory the
//!   way start-up would, replay it and summarize the resulting tree, or check and
//!   summarize one snapshot; and move a database from Apache ZooKeeper to herd
//!   and back (`import-zk`, `export-zk`).
//! - [`zk`]: Apache ZooKeeper's snapshot and transaction log formats.
//!
//! Nothing here knows the log's or the snapshots' byte layout: segments are read
//! with [`engine::log::scan`] and [`engine::log::decode_payload`] and replayed with
//! [`engine::txn::replay`], snapshots loaded with [`engine::snapshot::load`], the
//! same functions herd's start-up uses, so the tools and the server cannot
//! disagree about what a log or snapshot holds. ZooKeeper's own files are read
//! and written by [`zk`], the only byte layout this crate knows.

pub mod inspect;
pub mod shell;
pub mod zk;
