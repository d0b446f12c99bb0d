//! A ZooKeeper snapshot file (`snapshot.<zxid hex>`), read into a herd
//! [`DataTree`] and written from one.
//!
//! ```text
//! FileHeader   int magic "ZKSN", int version 2, long dbid (-1)
//! sessions     int count, then per session: long id, int timeout (ms)
//! ACL cache    int count, then per list: long key, vector<ACL>
//!              (a node's key -1 means world:anyone all, not in the cache)
//! nodes        per node, parents first: ustring path (the root as ""),
//!              buffer data (-1 null), long ACL key, StatPersisted {czxid,
//!              mzxid, ctime, mtime, version, cversion, aversion,
//!              ephemeralOwner, pzxid}
//!              then the ustring "/" ends them
//! seal         long Adler-32 of every byte before it, ustring "/"
//! 3.6+         ZxidDigest {long zxid, int version, long digest}, seal again
//! ```
//!
//! ZooKeeper persists a node's cversion as the number of children ever
//! created under it, which is herd's `child_creates`; clients of both see
//! `2 * cversion - numChildren`. Child counts are not stored: they are counted
//! once every node is in. ephemeralOwner carries the node's kind in both
//! (container, TTL), so nodes and their stats carry over field for field.

use std::collections::{HashMap, HashSet};

use engine::acl::{Acl, AclList};
use engine::tree::DataTree;
use engine::txn::{AclCache, Change};
use engine::znode::{Content, Node, MAX_DATA};
use engine::Zxid;
use herd_proto::jute::{Reader, Write};

use super::{adler32, cut, header, FormatError, FILE_VERSION};

/// "ZKSN".
pub const MAGIC: i32 = 0x5a4b_534e;
/// The digest version ZooKeeper 3.6 to 3.9 write.
const DIGEST_VERSION: i32 = 2;
/// A ZxidDigest record's length.
const DIGEST_LEN: usize = 8 + 4 + 8;

/// A snapshot read into a tree.
pub struct Loaded {
    /// The tree, its last zxid the snapshot's (from its name), its sessions open.
    pub tree: DataTree,
    pub nodes: usize,
    pub sessions: usize,
    /// Whether it carries the (sealed) digest of 3.6 and later.
    pub digest: bool,
}

/// Reads a snapshot whose name carries `zxid`, checking its seals as
/// ZooKeeper does. Nodes of `/zookeeper` the file lacks (3.4 had no
/// `/zookeeper/config`) stay as a fresh herd tree has them.
pub fn load(bytes: &[u8], zxid: Zxid) -> Result<Loaded, FormatError> {
    let mut r = Reader::new(bytes);
    header(&mut r, MAGIC)?;
    let sessions: Vec<Change> = (0..count(&mut r, "the session count", 12)?)
        .map(|_| {
            let id = r.i64().map_err(cut("a session"))?;
            let timeout = r.i32().map_err(cut("a session"))?;
            Ok(Change::OpenSession(id, timeout))
        })
        .collect::<Result<_, FormatError>>()?;

    let mut interned = AclCache::default();
    let mut acls: HashMap<i64, AclList> = HashMap::new();
    for _ in 0..count(&mut r, "the ACL cache", 12)? {
        let key = r.i64().map_err(cut("the ACL cache"))?;
        let list = r.acls().map_err(cut("the ACL cache"))?;
        acls.insert(key, interned.intern(&list));
    }
    let open = interned.intern(&Acl::open_unsafe());

    let tree = DataTree::new();
    let mut parents: HashSet<String> = HashSet::new();
    let mut nodes = 0;
    loop {
        let path = r.string().map_err(cut("a node's path"))?;
        if path == "/" {
            break;
        }
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        let data = r.data().map_err(cut("a node's data"))?;
        if data.bytes().map_or(0, <[u8]>::len) > MAX_DATA {
            return Err(FormatError::TooLarge(path));
        }
        let key = r.i64().map_err(cut("a node's ACL"))?;
        let acl = match key {
            -1 => open.clone(),
            key => acls.get(&key).cloned().ok_or_else(|| {
                FormatError::Tree(format!("{path}: ACL {key} is not in the snapshot's cache"))
            })?,
        };
        let mut stat = || r.i64().map_err(cut("a node's stat"));
        let (czxid, mzxid, ctime, mtime) = (stat()?, stat()?, stat()?, stat()?);
        let mut stat32 = || r.i32().map_err(cut("a node's stat"));
        let (version, cversion, aversion) = (stat32()?, stat32()?, stat32()?);
        let mut stat = || r.i64().map_err(cut("a node's stat"));
        let (ephemeral_owner, pzxid) = (stat()?, stat()?);
        if path != "/" {
            let parent = engine::path::parent(&path);
            if tree.get(parent).is_none() {
                return Err(FormatError::Tree(format!(
                    "{path} comes before its parent (or has none)"
                )));
            }
            if !parents.contains(parent) {
                parents.insert(parent.to_owned());
            }
        }
        let node = Node {
            data: Content::New(data),
            acl,
            czxid,
            mzxid,
            pzxid,
            ctime,
            mtime,
            version,
            child_creates: cversion,
            aversion,
            ephemeral_owner,
            num_children: 0,
        };
        tree.put(&path, &node);
        nodes += 1;
    }
    check_seal(&mut r, bytes)?;
    let digest = r.remaining() >= DIGEST_LEN;
    if digest {
        r.i64().map_err(cut("the digest"))?;
        r.i32().map_err(cut("the digest"))?;
        r.i64().map_err(cut("the digest"))?;
        check_seal(&mut r, bytes)?;
    }
    // Nodes kept from the fresh tree (`/zookeeper/config`) are counted too.
    parents.extend(["/".to_owned(), "/zookeeper".to_owned()]);
    tree.recount_children_of(&parents);
    // ZooKeeper's first snapshot (snapshot.0, written at its first start)
    // precedes every transaction: the fresh tree's zxid 0 is already right,
    // and no session can have been created.
    if zxid > 0 {
        tree.commit(zxid, &sessions);
    } else if !sessions.is_empty() {
        return Err(FormatError::Tree(
            "sessions in a snapshot taken before any transaction".into(),
        ));
    }
    Ok(Loaded {
        tree,
        nodes,
        sessions: sessions.len(),
        digest,
    })
}

/// A count that cannot exceed what is left, at `min_len` bytes per element.
fn count(r: &mut Reader<'_>, what: &'static str, min_len: usize) -> Result<usize, FormatError> {
    let n = r.i32().map_err(cut(what))?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= r.remaining() / min_len)
        .ok_or(FormatError::Truncated(what))
}

/// Reads a seal and checks it against every byte before it.
fn check_seal(r: &mut Reader<'_>, bytes: &[u8]) -> Result<(), FormatError> {
    let at = bytes.len() - r.remaining();
    let computed = adler32(&bytes[..at]);
    let stored = r.i64().map_err(cut("a seal"))?;
    let slash = r.string().map_err(cut("a seal"))?;
    if stored != i64::from(computed) || slash != "/" {
        return Err(FormatError::Checksum {
            at,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Appends a seal over every byte written so far.
fn seal(out: &mut Vec<u8>) {
    let sum = adler32(out);
    out.i64(i64::from(sum));
    out.string("/");
}

/// The tree as a ZooKeeper 3.6+ snapshot (an empty digest, as ZooKeeper
/// writes when it has none, so no reader compares one), which 3.4 and 3.5
/// read too: they stop after the first seal. Its zxid goes in the file name.
pub fn encode(tree: &DataTree) -> Vec<u8> {
    let mut out = Vec::new();
    out.i32(MAGIC);
    out.i32(FILE_VERSION);
    out.i64(-1);
    let sessions = tree.sessions();
    out.i32(sessions.len() as i32);
    for (id, timeout) in sessions {
        out.i64(id);
        out.i32(timeout);
    }
    // The cache numbers lists from 1, in the order nodes first use them.
    let mut keys: HashMap<AclList, i64> = HashMap::new();
    let mut lists: Vec<AclList> = Vec::new();
    tree.for_each_node(|_, stored| {
        if !keys.contains_key(stored.acl()) {
            lists.push(stored.acl().clone());
            keys.insert(stored.acl().clone(), lists.len() as i64);
        }
    });
    out.i32(lists.len() as i32);
    for (i, list) in lists.iter().enumerate() {
        out.i64(i as i64 + 1);
        out.acls(list);
    }
    tree.for_each_node(|path, stored| {
        out.string(if path == "/" { "" } else { path });
        out.data(stored.data());
        out.i64(keys[stored.acl()]);
        let n = stored.node();
        for v in [n.czxid, n.mzxid, n.ctime, n.mtime] {
            out.i64(v);
        }
        for v in [n.version, n.child_creates, n.aversion] {
            out.i32(v);
        }
        out.i64(n.ephemeral_owner);
        out.i64(n.pzxid);
    });
    out.string("/");
    seal(&mut out);
    out.i64(0);
    out.i32(DIGEST_VERSION);
    out.i64(0);
    seal(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::stat::NodeKind;
    use engine::txn::{replay, Txn};
    use engine::znode::Data;

    fn sample() -> DataTree {
        let tree = DataTree::new();
        let mut acls = AclCache::default();
        let txns = [
            Txn::CreateSession {
                session: 0x77,
                timeout_ms: 6000,
            },
            Txn::Create {
                path: "/a".into(),
                data: Data::new(b"one"),
                acl: Acl::read_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::Create {
                path: "/a/e".into(),
                data: Data::null(),
                acl: Acl::open_unsafe(),
                ephemeral_owner: 0x77,
                parent_cversion: 1,
            },
            Txn::Create {
                path: "/c".into(),
                data: Data::new(b""),
                acl: Acl::open_unsafe(),
                ephemeral_owner: NodeKind::Container.owner(),
                parent_cversion: 2,
            },
            Txn::SetData {
                path: "/a".into(),
                data: Data::new(b"two"),
                version: 1,
            },
        ];
        for (i, txn) in txns.iter().enumerate() {
            replay(&tree, &mut acls, i as i64 + 1, 1000 + i as i64, txn);
        }
        tree
    }

    #[test]
    fn a_written_snapshot_reads_back_node_for_node() {
        let tree = sample();
        let bytes = encode(&tree);
        let loaded = load(&bytes, tree.last_zxid()).unwrap();
        assert_eq!((loaded.nodes, loaded.sessions, loaded.digest), (7, 1, true));
        assert_eq!(loaded.tree.all(), tree.all());
        assert_eq!(loaded.tree.sessions(), vec![(0x77, 6000)]);
        assert_eq!(loaded.tree.last_zxid(), 5);
        assert_eq!(loaded.tree.ephemerals(0x77), vec!["/a/e".to_owned()]);
        assert_eq!(loaded.tree.containers(), vec!["/c".to_owned()]);
    }

    #[test]
    fn the_first_snapshot_precedes_every_transaction() {
        // ZooKeeper writes snapshot.0 at its first start: the fresh tree.
        let fresh = DataTree::new();
        let loaded = load(&encode(&fresh), 0).unwrap();
        assert_eq!(loaded.tree.last_zxid(), 0);
        assert_eq!(loaded.tree.all(), fresh.all());
        // A session in it cannot be: refused, not loaded.
        assert!(matches!(
            load(&encode(&sample()), 0),
            Err(FormatError::Tree(_))
        ));
    }

    #[test]
    fn damage_is_reported_not_loaded() {
        let bytes = encode(&sample());
        // A flipped data byte breaks the first seal.
        let at = bytes.windows(3).position(|w| w == b"two").unwrap();
        let mut flipped = bytes.clone();
        flipped[at] ^= 1;
        assert!(matches!(
            load(&flipped, 5),
            Err(FormatError::Checksum { .. })
        ));
        // Cut anywhere before the first seal ends: never a tree.
        let first_seal_end = bytes.len() - DIGEST_LEN - 13;
        for cut in [0, 3, 20, at, first_seal_end - 1] {
            assert!(load(&bytes[..cut], 5).is_err(), "cut at {cut}");
        }
        // Without the digest (3.5 and before) it still loads.
        let old = load(&bytes[..first_seal_end], 5).unwrap();
        assert!(!old.digest);
        let mut magic = bytes.clone();
        magic[0] = 0;
        assert!(matches!(load(&magic, 5), Err(FormatError::Magic { .. })));
    }

    #[test]
    fn an_orphan_or_an_unknown_acl_is_refused() {
        let mut out = Vec::new();
        out.i32(MAGIC);
        out.i32(FILE_VERSION);
        out.i64(-1);
        out.i32(0);
        out.i32(0);
        let node = |out: &mut Vec<u8>, path: &str, acl: i64| {
            out.string(path);
            out.data(Some(b"x"));
            out.i64(acl);
            for _ in 0..4 {
                out.i64(1);
            }
            for _ in 0..3 {
                out.i32(0);
            }
            out.i64(0);
            out.i64(1);
        };
        let mut orphan = out.clone();
        node(&mut orphan, "", -1);
        node(&mut orphan, "/x/y", -1);
        orphan.string("/");
        seal(&mut orphan);
        assert!(matches!(load(&orphan, 1), Err(FormatError::Tree(_))));
        let mut unknown = out.clone();
        node(&mut unknown, "", 3);
        unknown.string("/");
        seal(&mut unknown);
        assert!(matches!(load(&unknown, 1), Err(FormatError::Tree(_))));
    }
}
