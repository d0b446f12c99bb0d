//! `herd-inspect import-zk` and `export-zk`: moving a database from Apache
//! ZooKeeper to herd and back.
//!
//! ```text
//! import-zk: ZooKeeper's newest snapshot that reads ──zk::snapshot::load──► DataTree
//!            its logs from that zxid on ──zk::txnlog::read──► replay_noting ──┘
//!            ──► storage::write_snapshot into HERD_DATADIR (herd starts from it)
//! export-zk: storage::open (herd's own start-up: snapshot + log, the lock held)
//!            ──► zk::snapshot::encode ──► ZK_DATADIR/version-2/snapshot.<zxid>
//! ```
//!
//! Both write into a directory that holds no database yet, and only a whole,
//! fsynced file under its final name, so an interrupted run leaves nothing a
//! server would load. Sessions travel with the tree: their ephemeral nodes
//! stay until the sessions expire, a timeout after the new server starts
//! (clients cannot resume them there, as each server checks the session
//! password with its own secret).

use std::path::{Path, PathBuf};

use engine::tree::DataTree;
use engine::txn::{replay_noting, AclCache, Reparented};
use engine::Zxid;
use herd_server::Config;

use crate::zk::{snapshot, txnlog, zxid_of_name, VERSION_DIR};

/// ZooKeeper's files under `dir`: `dir/version-2`, or `dir` itself when it is
/// that directory.
fn version_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.file_name().is_some_and(|n| n == VERSION_DIR) && dir.is_dir() {
        return Ok(dir.to_owned());
    }
    let inner = dir.join(VERSION_DIR);
    if inner.is_dir() {
        Ok(inner)
    } else {
        Err(format!(
            "{}: no {VERSION_DIR} directory: not a ZooKeeper dataDir",
            dir.display()
        ))
    }
}

/// The `prefix.<hex zxid>[.suffix]` files of `dir`, oldest first.
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<(Zxid, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found: Vec<(Zxid, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            Some((zxid_of_name(&name, prefix)?, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Refuses a target directory that already holds a database of either kind.
fn refuse_occupied(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    for prefix in ["snapshot", "log"] {
        if let Some((_, file)) = numbered(dir, prefix)?.first() {
            return Err(format!(
                "{}: already holds a database ({}); give an empty directory",
                dir.display(),
                file.display()
            ));
        }
    }
    Ok(())
}

fn name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads ZooKeeper's database (`zk_data`, its logs in `zk_log`) into a tree at
/// ZooKeeper's last zxid, as ZooKeeper's own start-up would, with a line per
/// step and per file skipped.
pub fn read_zookeeper(zk_data: &Path, zk_log: &Path) -> Result<(DataTree, Vec<String>), String> {
    let (snap_dir, log_dir) = (version_dir(zk_data)?, version_dir(zk_log)?);
    let mut lines = Vec::new();
    let mut loaded = None;
    // Newest first, as ZooKeeper tries them.
    for (zxid, path) in numbered(&snap_dir, "snapshot")?.into_iter().rev() {
        let name = name_of(&path);
        if name.matches('.').count() > 1 {
            return Err(format!(
                "{}: a compressed snapshot (zookeeper.snapshot.compression.method); \
                 only uncompressed ones are read: restart ZooKeeper once without it, \
                 so that it writes one",
                path.display()
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match snapshot::load(&bytes, zxid) {
            Ok(snap) => {
                lines.push(format!(
                    "read {name}: {} znodes, {} sessions{}",
                    snap.nodes,
                    snap.sessions,
                    if snap.digest { ", sealed digest" } else { "" }
                ));
                loaded = Some((zxid, snap.tree));
                break;
            }
            Err(e) => lines.push(format!("skipped {name}: {e}; trying an older one")),
        }
    }
    let (base, tree) = loaded.unwrap_or_else(|| {
        lines.push("no snapshot: replaying the logs over an empty tree".to_owned());
        (0, DataTree::new())
    });

    let logs = numbered(&log_dir, "log")?;
    // The newest log starting at or before base + 1 holds it; older ones are covered.
    let first = logs.iter().rposition(|(z, _)| *z <= base + 1).unwrap_or(0);
    if let Some((start, path)) = logs.get(first).filter(|(z, _)| *z > base + 1) {
        return Err(format!(
            "{}: starts at zxid 0x{start:x}, but the snapshot ends at 0x{base:x}: \
             the transactions between are missing",
            path.display()
        ));
    }
    let (mut acls, mut reparented) = (AclCache::default(), Reparented::default());
    let mut replayed = 0;
    for (_, path) in &logs[first..] {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let log = txnlog::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = name_of(path);
        let mut here = 0;
        for e in log.entries.iter().filter(|e| e.zxid > tree.last_zxid()) {
            replay_noting(&tree, &mut acls, e.zxid, e.time_ms, &e.txn, &mut reparented);
            here += 1;
        }
        replayed += here;
        lines.push(format!("replayed {here} transactions from {name}"));
        if let Some(at) = log.partial_at {
            lines.push(format!(
                "{name}: an unfinished entry at byte {at} ends it, as ZooKeeper reads it"
            ));
        }
    }
    tree.recount_children_of(&reparented.parents);
    lines.push(format!(
        "ZooKeeper's database: {} znodes, {} sessions, last zxid 0x{:x} ({replayed} \
         transactions after the snapshot)",
        tree.node_count(),
        tree.session_count(),
        tree.last_zxid()
    ));
    Ok((tree, lines))
}

/// `import-zk`: ZooKeeper's database written as a herd snapshot in `herd_data`.
pub fn import_zk(zk_data: &Path, zk_log: &Path, herd_data: &Path) -> Result<Vec<String>, String> {
    refuse_occupied(herd_data)?;
    let (tree, mut lines) = read_zookeeper(zk_data, zk_log)?;
    std::fs::create_dir_all(herd_data).map_err(|e| format!("{}: {e}", herd_data.display()))?;
    let zxid = tree.last_zxid();
    herd_server::storage::write_snapshot(&tree, zxid, herd_data)
        .map_err(|e| format!("writing a snapshot in {}: {e}", herd_data.display()))?;
    lines.push(format!(
        "wrote a herd snapshot at zxid 0x{zxid:x} in {}: start herd with dataDir={0}",
        herd_data.display()
    ));
    Ok(lines)
}

/// `export-zk`: the database of a stopped standalone herd (`herd_data`, its
/// log in `herd_log`) written as a ZooKeeper snapshot in `zk_data/version-2`.
pub fn export_zk(herd_data: &Path, herd_log: &Path, zk_data: &Path) -> Result<Vec<String>, String> {
    let holds_database = |dir: &Path, prefix| numbered(dir, prefix).map(|f| !f.is_empty());
    if !(holds_database(herd_data, "snapshot")? || holds_database(herd_log, "log")?) {
        return Err(format!("{}: no herd database here", herd_data.display()));
    }
    let out_dir = zk_data.join(VERSION_DIR);
    refuse_occupied(&out_dir)?;
    let config = Config {
        data_dir: herd_data.to_owned(),
        data_log_dir: herd_log.to_owned(),
        ..Config::default()
    };
    // herd's own start-up, which locks the directories: a running herd is refused.
    let (log, recovered) = herd_server::storage::open(&config)
        .map_err(|e| format!("reading the herd database (a standalone server's): {e}"))?;
    let mut lines = recovered.warnings;
    let tree = recovered.tree;
    let bytes = snapshot::encode(&tree);
    drop(log);
    let zxid = tree.last_zxid();
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let name = format!("snapshot.{zxid:x}");
    let path = out_dir.join(&name);
    herd_server::durable::replace(&out_dir, "herd-export.tmp", &name, &bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    lines.push(format!(
        "wrote {}: {} znodes, {} sessions, last zxid 0x{zxid:x}: start ZooKeeper with \
         dataDir={}",
        path.display(),
        tree.node_count(),
        tree.session_count(),
        zk_data.display()
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zookeeper_dir_is_found_from_either_level() {
        let base = std::env::temp_dir().join(format!("herd-migrate-{}", std::process::id()));
        let v2 = base.join(VERSION_DIR);
        std::fs::create_dir_all(&v2).unwrap();
        assert_eq!(version_dir(&base).unwrap(), v2);
        assert_eq!(version_dir(&v2).unwrap(), v2);
        assert!(version_dir(&base.join("nothing")).is_err());
        std::fs::write(v2.join("log.1"), b"").unwrap();
        std::fs::write(v2.join("snapshot.a"), b"").unwrap();
        std::fs::write(v2.join("snapshot.1b"), b"").unwrap();
        std::fs::write(v2.join("other"), b"").unwrap();
        assert_eq!(
            numbered(&v2, "snapshot").unwrap(),
            vec![(0xa, v2.join("snapshot.a")), (0x1b, v2.join("snapshot.1b"))]
        );
        assert!(refuse_occupied(&v2)
            .unwrap_err()
            .contains("already holds a database"));
        assert!(refuse_occupied(&base).is_ok());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
