//! An ensemble member's log writer (ZooKeeper's `SyncRequestProcessor`):
//! one thread that applies the Zab peer's storage writes (log appends,
//! truncations, snapshot installs, epoch files) and reports each write's
//! token durable to the member thread, which keeps sending, receiving and
//! counting acknowledgements meanwhile. So a leader's proposals and its
//! followers' acks flow while it fsyncs, and two followers' copies can
//! commit a record before the leader's own is durable.
//!
//! Invariants:
//! - writes are applied in the order they were handed over, and a token is
//!   reported only after the fdatasync covering its write; pending appends
//!   are synced before an epoch file, a truncation or a snapshot is written;
//! - every write waiting when a round begins shares one fdatasync (group
//!   commit);
//! - after the first failure nothing more is written or reported durable.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use engine::log;
use engine::zab::broadcast::Store;
use engine::zab::peer::Write;

use crate::epoch::EpochFiles;
use crate::stats::Shared;
use crate::storage::{LogBatch, TxnLog};

/// What the log writer reports.
pub enum Done {
    /// These writes' tokens, in the order issued, are durable.
    Durable(Vec<u64>),
    /// Storage failed; nothing more will be written.
    Failed(String),
}

/// A member's storage, as the log writer thread holds it.
pub struct LogWriter {
    pub log: TxnLog,
    pub epochs: EpochFiles,
    pub data_dir: PathBuf,
    pub shared: Arc<Shared>,
}

impl LogWriter {
    /// Starts the thread. It reports through `report` until that answers
    /// false, and ends once the returned sender is dropped.
    pub fn spawn(
        self,
        report: impl FnMut(Done) -> bool + Send + 'static,
    ) -> std::io::Result<(Sender<Vec<Write>>, JoinHandle<()>)> {
        let (to_log, writes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("herd-zab-log".into())
            .spawn(move || self.run(writes, report))?;
        Ok((to_log, thread))
    }

    fn run(mut self, writes: Receiver<Vec<Write>>, mut report: impl FnMut(Done) -> bool) {
        while let Ok(mut round) = writes.recv() {
            while let Ok(more) = writes.try_recv() {
                round.extend(more);
            }
            let done = match self.apply(&round) {
                Ok(()) => Done::Durable(round.iter().map(|w| w.token).collect()),
                Err(why) => Done::Failed(why),
            };
            let failed = matches!(done, Done::Failed(_));
            if !report(done) || failed {
                return;
            }
        }
    }

    /// Applies a round's writes in order, with one fdatasync for the
    /// appends between other operations.
    fn apply(&mut self, round: &[Write]) -> Result<(), String> {
        let mut batch: Option<LogBatch> = None;
        for op in round.iter().flat_map(|w| &w.ops) {
            match op {
                Store::Append(records) => {
                    let b = batch.get_or_insert_with(|| LogBatch {
                        bytes: Vec::new(),
                        first_zxid: records.first().map_or(0, |r| r.0),
                        last_zxid: 0,
                    });
                    for (zxid, payload) in records {
                        log::append_record(&mut b.bytes, *zxid, payload);
                        b.last_zxid = *zxid;
                    }
                }
                other => {
                    self.append(batch.take())?;
                    self.store(other)?;
                }
            }
        }
        self.append(batch.take())
    }

    fn append(&mut self, batch: Option<LogBatch>) -> Result<(), String> {
        let Some(b) = batch.filter(|b| !b.bytes.is_empty()) else {
            return Ok(());
        };
        let started = Instant::now();
        self.log
            .append(&b)
            .map_err(|e| format!("writing the transaction log: {e}"))?;
        self.log.note_batch(&self.shared, &b, started);
        Ok(())
    }

    fn store(&mut self, op: &Store) -> Result<(), String> {
        match op {
            Store::Append(_) => unreachable!("appends are batched"),
            Store::Truncate(to) => {
                crate::info!("TRUNC: the log drops what follows 0x{to:x}, as its leader's");
                self.log
                    .truncate_after(*to)
                    .map_err(|e| format!("truncating the transaction log after 0x{to:x}: {e}"))
            }
            Store::Install(s) => {
                crate::info!("SNAP: installing the leader's snapshot at 0x{:x}", s.zxid);
                self.log
                    .install(&self.data_dir, s.zxid, &s.data)
                    .map_err(|e| format!("installing the leader's snapshot at 0x{:x}: {e}", s.zxid))
            }
            Store::AcceptEpoch(e) => self.epochs.store_accepted(*e).map_err(|e| e.to_string()),
            Store::CurrentEpoch(e) => self.epochs.store_current(*e).map_err(|e| e.to_string()),
        }
    }
}
