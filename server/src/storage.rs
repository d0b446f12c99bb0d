//! The transaction log on disk (`dataLogDir`): segment files in the format of
//! [`engine::log`], appended with one write and one fdatasync per batch, and
//! read back at start-up. A segment half full has its successor prepared
//! ahead ([`crate::spare`]).
//!
//! Recovery decisions (see `engine::log::Ending`):
//!
//! | what the scan finds                      | what happens                          |
//! |------------------------------------------|---------------------------------------|
//! | records, then zeros                      | replay all, append after them         |
//! | a torn tail in the newest segment        | warn with file and offset, zero it, replay the rest |
//! | damage with valid records after it       | refuse to start, naming file and offset |
//! | a zxid gap, a foreign or unreadable file | refuse to start                       |
//!
//! Only segments that may hold records after the newest valid snapshot are
//! read; older ones wait for autopurge (`herd-inspect verify` checks them all).
//!
//! The data directory is locked while herd runs; a second process is refused.
//! A failed write or fdatasync is reported to the pipeline, which stops
//! acknowledging writes (reads go on).

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::log::{self, Ending, SegmentHeader, HEADER_LEN};
use engine::tree::DataTree;
use engine::txn::{replay_noting, AclCache, Reparented};
use engine::types::{now_ms, TimeMs};
use engine::zab::broadcast::{Payload, Record};
use engine::Zxid;

use crate::config::Config;
use crate::spare::Spare;
use crate::stats::{Shared, Startup};

/// Why the log cannot be opened.
#[derive(Debug)]
pub enum StorageError {
    Io(PathBuf, io::Error),
    Locked(PathBuf),
    Damaged(String),
    /// The data directory belongs to a server of the other mode (standalone
    /// or ensemble member).
    OtherMode(String),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            StorageError::Locked(p) => write!(
                f,
                "{}: another herd is using this data directory",
                p.display()
            ),
            StorageError::Damaged(why) => {
                write!(f, "transaction log damaged: {why}; refusing to start")
            }
            StorageError::OtherMode(why) => write!(f, "{why}; refusing to start"),
        }
    }
}

impl std::error::Error for StorageError {}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |e| StorageError::Io(path.to_owned(), e)
}

/// What start-up found on disk.
pub struct Recovered {
    pub tree: DataTree,
    /// What the pipeline needs to carry on where the last run stopped.
    pub resume: Resume,
    /// Warnings for the operator (torn tails truncated, leftovers removed).
    pub warnings: Vec<String>,
}

pub struct Resume {
    /// Secret session passwords derive from; kept so sessions survive restarts.
    pub secret: [u8; 16],
    /// The last moment the previous run is known to have been alive: its newest
    /// logged transaction or its last liveness beat (`herd.lock`'s mtime),
    /// whichever is later. No client can have reached a session after it.
    pub down_since_ms: TimeMs,
    /// How long loading took and how many log records were replayed.
    pub startup: Startup,
}

/// How often a running herd refreshes the lock file's modification time, its
/// proof of life for the next start-up's session expiry.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// A batch of encoded records with contiguous zxids.
pub struct LogBatch {
    pub bytes: Vec<u8>,
    pub first_zxid: Zxid,
    pub last_zxid: Zxid,
}

/// The appendable end of the log.
pub struct TxnLog {
    dir: PathBuf,
    /// The format of the segments it writes (`engine::log`).
    format: u32,
    db_id: u64,
    file: Option<File>,
    offset: u64,
    prealloc_bytes: u64,
    force_sync: bool,
    /// `fsync.warningthresholdms`: a batch slower than this is logged.
    fsync_warning: Duration,
    /// Held locked while herd runs; its mtime is the liveness beat.
    lock: File,
    last_beat: Instant,
    /// The next segment, prepared once this one is half full.
    spare: Spare,
}

/// The size of a segment preallocated to `prealloc_bytes` (`preAllocSize`).
fn segment_bytes(prealloc_bytes: u64) -> u64 {
    prealloc_bytes.max(HEADER_LEN as u64)
}

fn segment_name(first_zxid: Zxid) -> String {
    format!("log.{first_zxid:016x}")
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let read = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let seed = now_ms() as u128 ^ (u128::from(std::process::id()) << 64);
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

/// Reads `name` in `dir`, creating it with fresh random bytes (fsynced) if absent.
fn persistent_random<const N: usize>(dir: &Path, name: &str) -> Result<[u8; N], StorageError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == N => Ok(bytes.try_into().expect("length checked")),
        Ok(_) => Err(StorageError::Damaged(format!(
            "{} has the wrong length",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes = random_bytes::<N>();
            let mut f = File::create(&path).map_err(io_at(&path))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_all())
                .map_err(io_at(&path))?;
            Ok(bytes)
        }
        Err(e) => Err(StorageError::Io(path, e)),
    }
}

/// The data directories, locked, and what start-up reads before the log.
struct Locked {
    lock: File,
    last_beat_ms: TimeMs,
    db_id: u64,
    secret: [u8; 16],
}

/// Creates and locks the data directories (a second process is refused).
fn lock(config: &Config) -> Result<Locked, StorageError> {
    let dir = &config.data_log_dir;
    for d in [&config.data_dir, dir] {
        std::fs::create_dir_all(d).map_err(io_at(d))?;
    }
    let lock_path = dir.join("herd.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_at(&lock_path))?;
    lock.try_lock()
        .map_err(|_| StorageError::Locked(dir.clone()))?;
    let last_beat_ms = lock
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as TimeMs);
    let db_id = u64::from_le_bytes(persistent_random::<8>(&config.data_dir, "herd.dbid")?);
    let secret = persistent_random::<16>(&config.data_dir, "herd.secret")?;
    Ok(Locked {
        lock,
        last_beat_ms,
        db_id,
        secret,
    })
}

/// Locks the data directories, replays the log into a fresh tree, and returns the
/// log positioned for appending.
pub fn open(config: &Config) -> Result<(TxnLog, Recovered), StorageError> {
    let dir = config.data_log_dir.clone();
    let Locked {
        lock,
        last_beat_ms,
        db_id,
        secret,
    } = lock(config)?;

    let mut segments = numbered(&dir, "log.")?;
    segments.reverse();
    // The newest segment is always read (replayed, or where appending resumes):
    // read and scan it while the snapshot loads.
    let mut newest_read = segments.last().map(|(_, path)| {
        let path = path.clone();
        std::thread::spawn(move || read_segment(&path))
    });

    let mut warnings = Vec::new();
    let unfinished = config.data_dir.join(SNAPSHOT_TMP);
    if std::fs::remove_file(&unfinished).is_ok() {
        warnings.push(format!(
            "{}: removed a snapshot left unfinished by the previous run",
            unfinished.display()
        ));
    }
    let loading = Instant::now();
    let (tree, snapshot_zxid) = load_snapshot(&config.data_dir, &mut warnings)?;
    let snap_load_ms = loading.elapsed().as_millis() as u64;
    let replaying = Instant::now();
    let mut txns_loaded = 0;
    let mut acls = AclCache::default();
    let mut reparented = Reparented::default();
    let mut last_time_ms = 0;
    let mut append_at = None;
    let count = segments.len();
    for (i, (_, path)) in segments.iter().enumerate() {
        // A segment followed by one starting at or before the snapshot's next
        // zxid holds nothing to replay: not read (`herd-inspect verify` checks it).
        if segments
            .get(i + 1)
            .is_some_and(|(next_first, _)| *next_first <= snapshot_zxid + 1)
        {
            continue;
        }
        let newest = i + 1 == count;
        let prefetched = if newest { newest_read.take() } else { None };
        let (bytes, scan) = match prefetched {
            Some(reader) => reader.join().expect("a segment reader panicked")?,
            None => read_segment(path)?,
        };
        let name = path.display();
        if scan.header.db_id != db_id {
            return Err(StorageError::Damaged(format!(
                "{name} belongs to another data directory"
            )));
        }
        if scan.header.format != log::FORMAT_VERSION {
            return Err(StorageError::OtherMode(format!(
                "{name} is the log of an ensemble member; this configuration runs standalone"
            )));
        }
        if scan.header.first_zxid > tree.last_zxid() + 1 {
            return Err(StorageError::Damaged(format!(
                "{name} starts at zxid 0x{:x}, expected 0x{:x}",
                scan.header.first_zxid,
                tree.last_zxid() + 1
            )));
        }
        accept_ending(path, &bytes, &scan, newest, &mut warnings)?;
        // Records the snapshot already holds are skipped.
        for rec in scan.records.iter().filter(|r| r.zxid > tree.last_zxid()) {
            let payload = &bytes[rec.payload_at..rec.payload_at + rec.payload_len];
            let entry = log::decode_payload(payload).map_err(|e| {
                StorageError::Damaged(format!("{name}: record at zxid 0x{:x}: {e}", rec.zxid))
            })?;
            replay_noting(
                &tree,
                &mut acls,
                rec.zxid,
                entry.time_ms,
                &entry.txn,
                &mut reparented,
            );
            last_time_ms = entry.time_ms;
            txns_loaded += 1;
        }
        if newest {
            append_at = Some((path.clone(), scan.valid_end as u64));
        }
    }

    // Over a fuzzy snapshot, replay may leave child counts off, only under the
    // parents it created or deleted children of.
    if snapshot_zxid > 0 {
        tree.recount_children_of(&reparented.parents);
    }
    if config.purge_interval_hours > 0 {
        if let Err(e) = purge(&config.data_dir, &dir, config.snap_retain_count) {
            warnings.push(format!("autopurge in {}: {e}", config.data_dir.display()));
        }
    }
    let startup = Startup {
        snap_load_ms,
        txns_load_ms: replaying.elapsed().as_millis() as u64,
        txns_loaded,
    };
    let offset = append_at.as_ref().map_or(0, |(_, off)| *off);
    let file = match append_at {
        Some((path, _)) => Some(
            OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_at(&path))?,
        ),
        None => None,
    };
    let spare = Spare::new(&dir, segment_bytes(config.pre_alloc_bytes)).map_err(io_at(&dir))?;
    let mut log = TxnLog {
        format: log::FORMAT_VERSION,
        db_id,
        file,
        offset,
        prealloc_bytes: config.pre_alloc_bytes,
        force_sync: config.force_sync,
        fsync_warning: Duration::from_millis(config.fsync_warning_threshold_ms),
        dir,
        lock,
        last_beat: Instant::now(),
        spare,
    };
    log.beat();
    Ok((
        log,
        Recovered {
            tree,
            resume: Resume {
                secret,
                down_since_ms: last_beat_ms.max(last_time_ms),
                startup,
            },
            warnings,
        },
    ))
}

/// What an ensemble member's start-up found on disk: its newest snapshot (the
/// tree) and the log records after it, not yet applied: the member applies
/// them as Zab commits them.
pub struct MemberRecovered {
    pub tree: DataTree,
    /// The zxid the snapshot holds everything up to.
    pub base: Zxid,
    pub records: Vec<Record>,
    pub secret: [u8; 16],
    pub warnings: Vec<String>,
}

/// Locks the data directories and reads an ensemble member's snapshot and
/// log (format 2); the log is returned positioned for appending. A log of a
/// standalone server holding records after the snapshot is refused.
pub fn open_member(config: &Config) -> Result<(TxnLog, MemberRecovered), StorageError> {
    let dir = config.data_log_dir.clone();
    let Locked {
        lock,
        db_id,
        secret,
        ..
    } = lock(config)?;
    let mut warnings = Vec::new();
    for name in [SNAPSHOT_TMP, INSTALL_TMP] {
        let unfinished = config.data_dir.join(name);
        if std::fs::remove_file(&unfinished).is_ok() {
            warnings.push(format!(
                "{}: removed a snapshot left unfinished by the previous run",
                unfinished.display()
            ));
        }
    }
    let (tree, base) = load_snapshot(&config.data_dir, &mut warnings)?;
    let mut segments = numbered(&dir, "log.")?;
    segments.reverse();
    let mut records: Vec<Record> = Vec::new();
    let mut append_at = None;
    let count = segments.len();
    for (i, (_, path)) in segments.iter().enumerate() {
        if segments
            .get(i + 1)
            .is_some_and(|(next_first, _)| *next_first <= base + 1)
        {
            continue;
        }
        let newest = i + 1 == count;
        let (bytes, scan) = read_segment(path)?;
        let name = path.display();
        if scan.header.db_id != db_id {
            return Err(StorageError::Damaged(format!(
                "{name} belongs to another data directory"
            )));
        }
        let after_base = scan.records.iter().filter(|r| r.zxid > base);
        if scan.header.format != log::MEMBER_FORMAT_VERSION {
            if after_base.count() > 0 {
                return Err(StorageError::OtherMode(format!(
                    "{name} is a standalone server's log with transactions after the newest \
                     snapshot; start this data directory standalone once, let it write a \
                     snapshot (it does on start-up) and stop it, then start it as a member"
                )));
            }
            continue;
        }
        let last = records.last().map_or(base, |r| r.0);
        if scan.header.first_zxid > last + 1
            && !log::follows(scan.header.format, last, scan.header.first_zxid)
        {
            return Err(StorageError::Damaged(format!(
                "{name} starts at zxid 0x{:x}, after 0x{last:x}",
                scan.header.first_zxid
            )));
        }
        accept_ending(path, &bytes, &scan, newest, &mut warnings)?;
        for rec in after_base {
            let payload = &bytes[rec.payload_at..rec.payload_at + rec.payload_len];
            log::decode_proposal(payload).map_err(|e| {
                StorageError::Damaged(format!("{name}: record at zxid 0x{:x}: {e}", rec.zxid))
            })?;
            records.push((rec.zxid, Payload::from(payload)));
        }
        if newest {
            append_at = Some((path.clone(), scan.valid_end as u64));
        }
    }
    let file = match &append_at {
        Some((path, _)) => Some(
            OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_at(path))?,
        ),
        None => None,
    };
    let spare = Spare::new(&dir, segment_bytes(config.pre_alloc_bytes)).map_err(io_at(&dir))?;
    let mut log = TxnLog {
        format: log::MEMBER_FORMAT_VERSION,
        db_id,
        offset: append_at.map_or(0, |(_, off)| off),
        file,
        prealloc_bytes: config.pre_alloc_bytes,
        force_sync: config.force_sync,
        fsync_warning: Duration::from_millis(config.fsync_warning_threshold_ms),
        dir,
        lock,
        last_beat: Instant::now(),
        spare,
    };
    log.beat();
    Ok((
        log,
        MemberRecovered {
            tree,
            base,
            records,
            secret,
            warnings,
        },
    ))
}

/// Whether a segment's ending lets start-up go on: a torn tail of the newest
/// segment is zeroed (with a warning); any other damage refuses.
fn accept_ending(
    path: &Path,
    bytes: &[u8],
    scan: &log::Scan,
    newest: bool,
    warnings: &mut Vec<String>,
) -> Result<(), StorageError> {
    let name = path.display();
    match scan.ending {
        Ending::Clean => Ok(()),
        Ending::TornTail { at } if newest => {
            warnings.push(format!(
                "{name}: torn record at offset {at} dropped (a write cut short by a crash)"
            ));
            let dirty = bytes.iter().rposition(|b| *b != 0).map_or(at, |p| p + 1);
            zero_range(path, at as u64, dirty - at).map_err(io_at(path))
        }
        Ending::TornTail { at } => Err(StorageError::Damaged(format!(
            "{name}: bad record at offset {at} in an older segment"
        ))),
        Ending::Corrupt { at, valid_after } => Err(StorageError::Damaged(format!(
            "{name}: bad record at offset {at} but valid records follow at offset {valid_after}"
        ))),
        Ending::Gap {
            at,
            expected,
            found,
        } => Err(StorageError::Damaged(format!(
            "{name}: record at offset {at} has zxid 0x{found:x}, expected 0x{expected:x}"
        ))),
    }
}

/// A segment's bytes and where its records are. Read, not mapped: a
/// preallocated segment may be sparse, and faulting in a hole on a full
/// filesystem (tmpfs) kills the process with SIGBUS.
fn read_segment(path: &Path) -> Result<(Vec<u8>, log::Scan), StorageError> {
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    let scan =
        log::scan(&bytes).map_err(|e| StorageError::Damaged(format!("{}: {e}", path.display())))?;
    Ok((bytes, scan))
}

/// Where a snapshot is written before it is renamed into place.
const SNAPSHOT_TMP: &str = "snapshot.tmp";
/// Where a member writes the snapshot of a SNAP (beside one of its own that
/// may be being written).
const INSTALL_TMP: &str = "snapshot.install.tmp";

fn snapshot_name(zxid: Zxid) -> String {
    format!("snapshot.{zxid:016x}")
}

/// Files in `dir` named `prefix` + a hex zxid, newest (highest zxid) first.
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<(Zxid, PathBuf)>, StorageError> {
    let mut found: Vec<(Zxid, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_at(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let zxid = i64::from_str_radix(name.strip_prefix(prefix)?, 16).ok()?;
            Some((zxid, e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    Ok(found)
}

/// The newest snapshot that maps and validates, or an empty tree. A damaged
/// snapshot is skipped with a warning: the log still holds what it covered
/// (purging keeps every segment an older snapshot needs). Also what
/// `herd-inspect` replays over.
pub fn load_snapshot(
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<(DataTree, Zxid), StorageError> {
    for (_, path) in numbered(dir, "snapshot.")? {
        let file = File::open(&path).map_err(io_at(&path))?;
        // SAFETY: snapshot files are written once, renamed into place, and never
        // modified while herd holds the data directory's lock.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_at(&path))?;
        match engine::snapshot::load(&map) {
            Ok((zxid, tree)) => return Ok((tree, zxid)),
            Err(e) => warnings.push(format!("{}: {e}; trying an older snapshot", path.display())),
        }
    }
    Ok((DataTree::new(), 0))
}

/// Writes a fuzzy snapshot of `tree` labelled `zxid` (all of it committed):
/// written whole under a temporary name, fsynced, renamed into place. Call it on
/// a thread of its own: it lowers that thread's CPU priority (nice 10), so
/// shards and the pipeline keep the cores while it runs.
pub fn write_snapshot(tree: &DataTree, zxid: Zxid, data_dir: &Path) -> io::Result<()> {
    // SAFETY: plain system calls on the calling thread's own id. On Linux the
    // nice value is per thread. Failure only leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
    crate::durable::replace_with(data_dir, SNAPSHOT_TMP, &snapshot_name(zxid), |f| {
        // The chunks go out as they are archived; the header, which counts
        // them, last.
        f.write_all(&[0; engine::snapshot::HEADER_LEN])?;
        let chunk_bytes = engine::snapshot::CHUNK_BYTES;
        let header = engine::snapshot::encode_to(tree, zxid, chunk_bytes, |b| f.write_all(b))?;
        f.write_all_at(&header, 0)
    })
}

/// Removes all but the newest `retain` snapshots and the log segments that only
/// older snapshots needed (ZooKeeper's autopurge). Safe beside a running herd:
/// a snapshot written meanwhile only needs segments newer than those removed.
pub fn purge(data_dir: &Path, log_dir: &Path, retain: usize) -> io::Result<()> {
    let snapshots = numbered(data_dir, "snapshot.").map_err(|e| io::Error::other(e.to_string()))?;
    for (_, old) in snapshots.iter().skip(retain) {
        std::fs::remove_file(old)?;
    }
    let oldest_kept = snapshots
        .iter()
        .take(retain)
        .next_back()
        .map_or(0, |(z, _)| *z);
    let segments = numbered(log_dir, "log.").map_err(|e| io::Error::other(e.to_string()))?;
    // Newest first: a segment may go once a newer one starts at or before oldest_kept + 1.
    let mut covered = false;
    for (first, seg) in &segments {
        if covered {
            std::fs::remove_file(seg)?;
        } else if *first <= oldest_kept + 1 {
            covered = true;
        }
    }
    Ok(())
}

/// Purges every `every` interval until `stop` is dropped (ZooKeeper's
/// `DatadirCleanupManager`; [`open`] purged at start). Failures are reported
/// and retried next time.
pub fn purge_every(config: &Config, every: Duration, stop: Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        if let Err(e) = purge(
            &config.data_dir,
            &config.data_log_dir,
            config.snap_retain_count,
        ) {
            crate::warn!("autopurge in {}: {e}", config.data_dir.display());
        }
    }
}

fn zero_range(path: &Path, at: u64, len: usize) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&vec![0u8; len], at)?;
    f.sync_data()
}

impl TxnLog {
    /// Counts a batch written since `started` in mntr's batch sizes and fsync
    /// times; one slower than `fsync.warningthresholdms` is logged and counted,
    /// as ZooKeeper does.
    pub fn note_batch(&self, shared: &Shared, batch: &LogBatch, started: Instant) {
        let took = started.elapsed();
        let slow = took > self.fsync_warning;
        if let Ok(mut stats) = shared.storage.lock() {
            stats
                .batch_records
                .saturating_record((batch.last_zxid - batch.first_zxid + 1) as u64);
            stats.sync_us.saturating_record(took.as_micros() as u64);
            stats.fsync_threshold_exceeded += u64::from(slow);
        }
        if slow {
            crate::warn!(
                "writing and fsync-ing {} bytes of the transaction log in {} took {} ms, over \
                 fsync.warningthresholdms ({} ms): every write waits for it",
                batch.bytes.len(),
                self.dir.display(),
                took.as_millis(),
                self.fsync_warning.as_millis()
            );
        }
    }

    /// Refreshes the lock file's modification time (see [`Resume::down_since_ms`]).
    /// Best effort: a missed beat only makes the next start-up count the
    /// server as down a little earlier.
    fn beat(&mut self) {
        let _ = self.lock.set_modified(std::time::SystemTime::now());
        self.last_beat = Instant::now();
    }

    /// Drops every record after `to` (a member's TRUNC): newer segments are
    /// removed, and the one holding `to` is zeroed after it; appending
    /// resumes there. Durable when it returns.
    pub fn truncate_after(&mut self, to: Zxid) -> io::Result<()> {
        let segments = numbered(&self.dir, "log.").map_err(io::Error::other)?;
        self.file = None;
        self.offset = 0;
        for (first, path) in segments {
            if first > to {
                std::fs::remove_file(&path)?;
                continue;
            }
            let (bytes, scan) = read_segment(&path).map_err(io::Error::other)?;
            if scan.header.format != self.format {
                break;
            }
            let end = scan
                .records
                .iter()
                .find(|r| r.zxid > to)
                .map_or(scan.valid_end, |r| r.payload_at - log::RECORD_HEADER_LEN);
            let dirty = bytes.iter().rposition(|b| *b != 0).map_or(end, |p| p + 1);
            if dirty > end {
                zero_range(&path, end as u64, dirty - end)?;
            }
            self.file = Some(OpenOptions::new().write(true).open(&path)?);
            self.offset = end as u64;
            break;
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Replaces the log with a snapshot (a member's SNAP): `image` (the
    /// snapshot format of `engine::snapshot`) is written to `data_dir` as
    /// the snapshot at `zxid`, then every log segment and every newer
    /// snapshot is removed. Durable when it returns.
    pub fn install(&mut self, data_dir: &Path, zxid: Zxid, image: &[u8]) -> io::Result<()> {
        crate::durable::replace(data_dir, INSTALL_TMP, &snapshot_name(zxid), image)?;
        let newer = numbered(data_dir, "snapshot.").map_err(io::Error::other)?;
        for (_, path) in newer.iter().filter(|(z, _)| *z > zxid) {
            std::fs::remove_file(path)?;
        }
        for (_, path) in numbered(&self.dir, "log.").map_err(io::Error::other)? {
            std::fs::remove_file(path)?;
        }
        self.file = None;
        self.offset = 0;
        File::open(data_dir)?.sync_all()?;
        File::open(&self.dir)?.sync_all()
    }

    /// Writes a batch and makes it durable (unless `forceSync=no`): one
    /// pwrite and one fdatasync, called here rather than through io_uring,
    /// whose fsync always runs on a kernel worker thread and so costs a
    /// wake-up and two context switches more per batch.
    pub fn append(&mut self, batch: &LogBatch) -> io::Result<()> {
        let full = self.offset + batch.bytes.len() as u64 > self.prealloc_bytes
            && self.offset > HEADER_LEN as u64;
        if self.file.is_none() || full {
            self.roll(batch.first_zxid)?;
        }
        let file = self.file.as_ref().expect("a segment is open");
        file.write_all_at(&batch.bytes, self.offset)?;
        if self.force_sync {
            file.sync_data()?;
        }
        self.offset += batch.bytes.len() as u64;
        if self.offset > self.prealloc_bytes / 2 {
            self.spare.prepare();
        }
        Ok(())
    }

    /// Starts a new, preallocated segment whose first record is `first_zxid`:
    /// the spare if one is ready, else a fresh file; either gets its segment
    /// name only once its header is durable.
    fn roll(&mut self, first_zxid: Zxid) -> io::Result<()> {
        let next = self.spare.next_segment()?;
        next.file.write_all_at(
            &SegmentHeader {
                format: self.format,
                db_id: self.db_id,
                first_zxid,
            }
            .encode(),
            0,
        )?;
        let file = next.install(&segment_name(first_zxid))?;
        self.file = Some(file);
        self.offset = HEADER_LEN as u64;
        Ok(())
    }
}

/// What the log writer reports after each batch: every record up to this
/// zxid is durable, or why the log failed (after which nothing more is written).
pub type Durability = Result<Zxid, String>;

/// Runs the log writer: every batch that arrives while a write is in flight joins
/// the next one (group commit). Reports each durable zxid, or the first error,
/// through `report`, and stops once `report` answers false (no one listens).
pub fn write_loop(
    mut log: TxnLog,
    batches: Receiver<LogBatch>,
    mut report: impl FnMut(Durability) -> bool,
    shared: Arc<Shared>,
    simulated_delay: Duration,
) {
    let mut failed = false;
    loop {
        if log.last_beat.elapsed() >= BEAT_EVERY {
            log.beat();
        }
        let mut batch = match batches.recv_timeout(BEAT_EVERY) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Ok(more) = batches.try_recv() {
            batch.bytes.extend_from_slice(&more.bytes);
            batch.last_zxid = more.last_zxid;
        }
        if failed {
            continue;
        }
        let started = Instant::now();
        let appended = log.append(&batch);
        if !simulated_delay.is_zero() {
            std::thread::sleep(simulated_delay);
        }
        log.note_batch(&shared, &batch, started);
        let outcome = appended.map(|()| batch.last_zxid).map_err(|e| {
            failed = true;
            format!("writing the transaction log in {}: {e}", log.dir.display())
        });
        if !report(outcome) {
            return;
        }
    }
}
