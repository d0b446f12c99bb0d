//! herd's operator tools, as a library the binaries are thin wrappers around.
//!
//! - [`inspect`]: `herd-inspect`, which reads a data directory's transaction log
//!   without starting herd: dump a segment, check a directory the way start-up
//!   would, or replay it and summarize the resulting tree.
//!
//! Nothing here knows the log's byte layout: segments are read with
//! [`engine::log::scan`] and [`engine::log::decode_payload`] and replayed with
//! [`engine::txn::replay`], the same functions herd's start-up uses, so the tools
//! and the server cannot disagree about what a log holds.

pub mod inspect;
pub mod shell;
