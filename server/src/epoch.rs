//! A member's durable epochs, ZooKeeper's `acceptedEpoch` and `currentEpoch`
//! files in the data directory: each the epoch as decimal text and a newline.
//!
//! A file is replaced atomically: the new value goes to `<name>.tmp`, which is
//! fsynced, renamed over the file, and the directory fsynced; a crash leaves
//! the old value or the new one, never a mix (a leftover `.tmp` is ignored).
//! Zab acknowledges an epoch only after this returns (`zab::peer` holds the
//! acknowledgement until the write is reported durable).
//!
//! Loading checks what ZooKeeper checks: the current epoch is not after the
//! accepted one, nor older than the epoch of the last logged zxid. A member
//! without the files (a data directory that was standalone, or ZooKeeper's
//! before 3.4) takes both from its last zxid, as ZooKeeper does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use engine::zab::discovery::Epochs;
use engine::zab::epoch_of;
use engine::Zxid;

pub const ACCEPTED_EPOCH: &str = "acceptedEpoch";
pub const CURRENT_EPOCH: &str = "currentEpoch";

/// Why the epochs cannot be read: the member must not start.
#[derive(Debug)]
pub enum EpochError {
    Io(PathBuf, io::Error),
    Malformed(PathBuf, String),
    Inconsistent(String),
}

impl std::fmt::Display for EpochError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EpochError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            EpochError::Malformed(p, text) => {
                write!(f, "{}: not an epoch: {text:?}", p.display())
            }
            EpochError::Inconsistent(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for EpochError {}

/// The epoch files of one data directory.
pub struct EpochFiles {
    dir: PathBuf,
}

impl EpochFiles {
    pub fn new(dir: &Path) -> EpochFiles {
        EpochFiles {
            dir: dir.to_owned(),
        }
    }

    /// The durable epochs, given the last zxid of the member's log.
    pub fn load(&self, last_zxid: Zxid) -> Result<Epochs, EpochError> {
        let last_epoch = epoch_of(last_zxid);
        let current = self.read(CURRENT_EPOCH)?.unwrap_or(last_epoch);
        let accepted = self.read(ACCEPTED_EPOCH)?.unwrap_or(current);
        if current > accepted {
            return Err(EpochError::Inconsistent(format!(
                "the current epoch, {current}, is after the accepted epoch, {accepted}"
            )));
        }
        if last_epoch > current {
            return Err(EpochError::Inconsistent(format!(
                "the current epoch, {current}, is older than the last zxid, {last_zxid:#x}"
            )));
        }
        Ok(Epochs { accepted, current })
    }

    pub fn store_accepted(&self, epoch: u32) -> Result<(), EpochError> {
        self.write(ACCEPTED_EPOCH, epoch)
    }

    pub fn store_current(&self, epoch: u32) -> Result<(), EpochError> {
        self.write(CURRENT_EPOCH, epoch)
    }

    fn read(&self, name: &str) -> Result<Option<u32>, EpochError> {
        let path = self.dir.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EpochError::Io(path, e)),
        };
        match text.trim().parse() {
            Ok(epoch) => Ok(Some(epoch)),
            Err(_) => Err(EpochError::Malformed(path, text)),
        }
    }

    fn write(&self, name: &str, epoch: u32) -> Result<(), EpochError> {
        let text = format!("{epoch}\n");
        crate::durable::replace(&self.dir, &format!("{name}.tmp"), name, text.as_bytes())
            .map_err(|e| EpochError::Io(self.dir.join(name), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herd-epoch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn zxid(epoch: i64, counter: i64) -> Zxid {
        epoch << 32 | counter
    }

    #[test]
    fn epochs_survive_as_written_and_replace_atomically() {
        let dir = scratch("written");
        let files = EpochFiles::new(&dir);
        files.store_accepted(7).unwrap();
        files.store_current(6).unwrap();
        assert_eq!(
            files.load(zxid(6, 3)).unwrap(),
            Epochs {
                accepted: 7,
                current: 6
            }
        );
        assert_eq!(fs::read_to_string(dir.join(ACCEPTED_EPOCH)).unwrap(), "7\n");
        // A crash in the middle of a write leaves the old value and a .tmp.
        fs::write(dir.join("acceptedEpoch.tmp"), "8").unwrap();
        assert_eq!(files.load(zxid(6, 3)).unwrap().accepted, 7);
        files.store_accepted(8).unwrap();
        assert_eq!(files.load(zxid(6, 3)).unwrap().accepted, 8);
        assert!(!dir.join("acceptedEpoch.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_come_from_the_last_zxid_and_bad_ones_refuse() {
        let dir = scratch("checks");
        let files = EpochFiles::new(&dir);
        assert_eq!(
            files.load(zxid(3, 9)).unwrap(),
            Epochs {
                accepted: 3,
                current: 3
            },
            "a standalone data directory"
        );
        assert_eq!(files.load(0).unwrap(), Epochs::default(), "a new one");
        files.store_current(4).unwrap();
        files.store_accepted(3).unwrap();
        let err = files.load(zxid(4, 1)).unwrap_err().to_string();
        assert!(
            err.contains("current epoch, 4, is after the accepted epoch, 3"),
            "{err}"
        );
        files.store_accepted(4).unwrap();
        let err = files.load(zxid(5, 1)).unwrap_err().to_string();
        assert!(err.contains("older than the last zxid"), "{err}");
        fs::write(dir.join(CURRENT_EPOCH), "four\n").unwrap();
        let err = files.load(0).unwrap_err();
        assert!(matches!(err, EpochError::Malformed(..)), "{err}");
        assert!(
            err.to_string().contains("currentEpoch: not an epoch"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
