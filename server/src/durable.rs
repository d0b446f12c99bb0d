//! A file replaced durably: its new contents go to a temporary file in the
//! same directory, which is fsynced, renamed over the final name, and the
//! directory fsynced. A crash at any point leaves the old file or the new one
//! whole, never a mix; a leftover temporary file is what a crash mid-write
//! leaves, and its owner removes it on start.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;

/// Writes `bytes` as `dir/name`, through `dir/tmp`; durable when it returns.
pub fn replace(dir: &Path, tmp: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
    replace_with(dir, tmp, name, |file| file.write_all(bytes))
}

/// [`replace`], the contents written by `write` into the temporary file (for
/// contents produced as they are written out).
pub fn replace_with(
    dir: &Path,
    tmp: &str,
    name: &str,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = File::create(dir.join(tmp))?;
    write(&mut file)?;
    publish(&file, dir, tmp, name)
}

/// Makes `file`, written as `dir/tmp`, durable as `dir/name`: fsyncs it,
/// renames it over `name` and fsyncs the directory.
pub fn publish(file: &File, dir: &Path, tmp: &str, name: &str) -> io::Result<()> {
    file.sync_all()?;
    std::fs::rename(dir.join(tmp), dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_contents_replace_the_old_and_no_temporary_stays() {
        let dir = std::env::temp_dir().join(format!("herd-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        replace(&dir, "f.tmp", "f", b"one").unwrap();
        replace(&dir, "f.tmp", "f", b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"two");
        assert!(!dir.join("f.tmp").exists());
        assert!(replace(&dir.join("missing"), "f.tmp", "f", b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
