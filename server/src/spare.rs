//! The next transaction-log segment, prepared ahead: a file in the log
//! directory whose blocks are already written (zeros) and durable when the
//! log rolls onto it.
//!
//! Why: a block that `fallocate` reserved stays *unwritten* until its first
//! write, and an fdatasync after that write must also commit the block's
//! change to written to the filesystem journal (ext4, measured here; xfs has
//! unwritten extents too). Over blocks that
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

use crate::durable;

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
    dir: PathBuf,
    /// Its temporary name in `dir`.
    name: &'static str,
}

impl Candidate {
    /// Makes the file durable as `dir/segment` ([`durable::publish`]),
    /// refusing a name that exists.
    pub fn install(self, segment: &str) -> io::Result<File> {
        if self.dir.join(segment).exists() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        durable::publish(&self.file, &self.dir, self.name, segment)?;
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
        if let Some(job) = self.job.take_if(|job| job.is_finished()) {
            let prepared = job
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the preparing thread panicked")));
            match prepared {
                Ok(file) => return Ok(self.candidate(file, SPARE_NAME)),
                Err(e) => crate::warn!(
                    "preparing the next log segment in {}: {e}; making a fresh one",
                    self.dir.display()
                ),
            }
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(FRESH_NAME))?;
        reserve(&file, self.size)?;
        Ok(self.candidate(file, FRESH_NAME))
    }

    fn candidate(&self, file: File, name: &'static str) -> Candidate {
        Candidate {
            file,
            dir: self.dir.clone(),
            name,
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herd-spare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn wait_prepared(spare: &Spare) {
        let job = spare.job.as_ref().expect("a preparation started");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !job.is_finished() {
            assert!(std::time::Instant::now() < deadline, "preparing 8 KiB");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_prepared_spare_becomes_the_segment_and_a_missing_one_a_fresh_file() {
        let dir = dir("roll");
        let mut spare = Spare::new(&dir, 8192).unwrap();
        spare.prepare();
        wait_prepared(&spare);
        let inode = std::fs::metadata(dir.join(SPARE_NAME)).unwrap().ino();
        let next = spare.next_segment().unwrap();
        assert_eq!(next.name, SPARE_NAME);
        let file = next.install("log.1").unwrap();
        drop(file);
        let meta = std::fs::metadata(dir.join("log.1")).unwrap();
        assert_eq!((meta.ino(), meta.len()), (inode, 8192), "the spare renamed");
        assert!(std::fs::read(dir.join("log.1"))
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        assert!(!dir.join(SPARE_NAME).exists());

        // Nothing prepared: a fresh file of the same size, which refuses to
        // take a name that exists and stays under its temporary name.
        let next = spare.next_segment().unwrap();
        assert_eq!(next.name, FRESH_NAME);
        assert_eq!(next.file.metadata().unwrap().len(), 8192);
        let refused = next.install("log.1").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert!(dir.join(FRESH_NAME).exists());
        // A new log removes what the earlier one left.
        Spare::new(&dir, 8192).unwrap();
        assert!(!dir.join(FRESH_NAME).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_preparation_falls_back_to_a_fresh_file() {
        let dir = dir("failed");
        let mut spare = Spare::new(&dir, 8192).unwrap();
        // The spare's name taken by a directory: opening it fails.
        std::fs::create_dir(dir.join(SPARE_NAME)).unwrap();
        spare.prepare();
        wait_prepared(&spare);
        let next = spare.next_segment().unwrap();
        assert_eq!(next.name, FRESH_NAME);
        next.install("log.1").unwrap();
        assert_eq!(std::fs::metadata(dir.join("log.1")).unwrap().len(), 8192);
        assert!(spare.job.is_none(), "the failed preparation was collected");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
