//! The next transaction-log segment, prepared ahead: a file in the log
//! directory whose blocks are already written (zeros) and durable when the
//! log rolls onto it.
//!
//! Why: a block that `fallocate` reserved stays *unwritten* until its first
//! write, and an fdatasync after that write must also commit the block's
//! change to written to the filesystem journal (ext4, xfs). Over blocks that
//! hold zeros already, an fdatasync flushes the data alone. Preparing the
//! zeros off the log writer's thread takes that journal commit out of every
//! batch's fdatasync.
//!
//! Invariants:
//! - the next segment is made under a temporary name (the spare's, or a fresh
//!   file's when no spare is ready) and renamed to its `log.` name only after
//!   its header is written and fsynced, so a roll that fails part way (a full
//!   disk) leaves no segment recovery would refuse;
//! - temporary names do not start with `log.`, so recovery, purging and
//!   herd-inspect never read them, and both are removed when the log opens;
//! - a spare is handed over only once its zeros are durable (the preparing
//!   thread fsyncs before it returns);
//! - at most one preparation runs at a time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// The spare's name in the log directory.
pub const SPARE_NAME: &str = "spare.segment";
/// Where a fresh segment is made when no spare is ready.
pub const FRESH_NAME: &str = "fresh.segment";

/// Zeros are written out this much at a time, with [`PAUSE`] between, so
/// the log writer's fdatasyncs never queue behind much of them.
const CHUNK: usize = 256 << 10;
const PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// A spare segment being prepared or ready.
pub struct Spare {
    dir: PathBuf,
    size: u64,
    job: Option<JoinHandle<io::Result<File>>>,
}

/// A file about to become the next segment; not one until [`Candidate::install`].
pub struct Candidate {
    pub file: File,
    path: PathBuf,
}

impl Candidate {
    /// Renames the file to `segment`, refusing a name that exists. Durable
    /// once the caller fsyncs the directory.
    pub fn install(self, segment: &Path) -> io::Result<File> {
        if segment.exists() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        std::fs::rename(&self.path, segment)?;
        Ok(self.file)
    }
}

impl Spare {
    /// Spares of `size` bytes in `dir`; removes what an earlier run left.
    pub fn new(dir: &Path, size: u64) -> io::Result<Spare> {
        for name in [SPARE_NAME, FRESH_NAME] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(Spare {
            dir: dir.to_owned(),
            size,
            job: None,
        })
    }

    /// Starts preparing a spare unless one is ready or being prepared.
    pub fn prepare(&mut self) {
        if self.job.is_some() {
            return;
        }
        let (path, size) = (self.dir.join(SPARE_NAME), self.size);
        let job = std::thread::Builder::new()
            .name("herd-log-spare".into())
            .spawn(move || zero_filled(&path, size));
        match job {
            Ok(job) => self.job = Some(job),
            Err(e) => crate::warn!("cannot start preparing a log segment: {e}"),
        }
    }

    /// The next segment's file: the spare if one is ready now (this does not
    /// wait for one being prepared), else a fresh one of the same size.
    pub fn next_segment(&mut self) -> io::Result<Candidate> {
        if self.job.as_ref().is_some_and(JoinHandle::is_finished) {
            let prepared = match self.job.take().expect("checked").join() {
                Ok(prepared) => prepared,
                Err(_) => Err(io::Error::other("the preparing thread panicked")),
            };
            match prepared {
                Ok(file) => {
                    return Ok(Candidate {
                        file,
                        path: self.dir.join(SPARE_NAME),
                    })
                }
                Err(e) => crate::warn!(
                    "preparing the next log segment in {}: {e}; making a fresh one",
                    self.dir.display()
                ),
            }
        }
        let path = self.dir.join(FRESH_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        reserve(&file, self.size)?;
        Ok(Candidate { file, path })
    }
}

/// Gives `file` a length of `size` bytes, reserving its blocks where the
/// filesystem can (they read as zeros either way).
fn reserve(file: &File, size: u64) -> io::Result<()> {
    // SAFETY: fallocate only reserves blocks for a file descriptor we own.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) } != 0 {
        file.set_len(size)?;
    }
    Ok(())
}

/// A file of `size` zero bytes at `path` whose blocks are written and durable.
fn zero_filled(path: &Path, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Reserving first fails at once on a full disk rather than part way.
    reserve(&file, size)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < size {
        let n = zeros.len().min((size - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        // Writes the chunk out and waits for it, without the journal commit
        // and cache flush an fdatasync would add each time (one at the end).
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: sync_file_range only starts and waits for writeback of a
        // file descriptor we own.
        if unsafe { libc::sync_file_range(file.as_raw_fd(), at as i64, n as i64, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        at += n as u64;
        std::thread::sleep(PAUSE);
    }
    file.sync_all()?;
    Ok(file)
}
