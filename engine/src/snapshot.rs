//! Snapshots: the whole tree and its sessions as one rkyv archive with a
//! checksum, so start-up can map a file and rebuild without replaying the whole
//! log. Pure: bytes in, tree out; writing, fsync and rename are the server's.
//!
//! ```text
//!  0  magic "HERDSNAP"               8 bytes
//!  8  format version (2)             u32 LE
//! 12  reserved                       u32 LE
//! 16  zxid                           i64 LE   every transaction up to it is included
//! 24  body length n                  u64 LE
//! 32  CRC32C of the body             u32 LE
//! 36  reserved                       28 bytes (the body starts 16-byte aligned)
//! 64  body: an [`Image`] archived with rkyv (n bytes)
//! ```
//!
//! Node paths and data sit in two byte arrays that nodes index, so the archive
//! holds three large arrays and no per-node allocation: validating it is a few
//! bounds checks, and loading copies each node's bytes once, into the tree.
//!
//! Snapshots are fuzzy: taken while the pipeline keeps committing, they may also
//! hold some transactions after their zxid. Replaying the log from zxid + 1 is
//! idempotent over such state (see [`crate::txn`]), followed by
//! [`DataTree::recount_children_of`] for the parents the replay touched.

use std::collections::HashMap;
use std::sync::Arc;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::acl::{Acl, AclList};
use crate::log::FormatError;
use crate::tree::DataTree;
use crate::types::{SessionId, Zxid};
use crate::znode::{Content, Data, Node, Znode, MAX_DATA};

pub const MAGIC: &[u8; 8] = b"HERDSNAP";
pub const FORMAT_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 64;

/// The archived content.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Image {
    /// Distinct ACL lists; nodes refer to them by index.
    pub acls: Vec<Vec<Acl>>,
    /// Every node's path, one after another.
    pub paths: String,
    /// Every node's data, one after another.
    pub data: Vec<u8>,
    pub nodes: Vec<SnapNode>,
    pub sessions: Vec<(SessionId, i32)>,
}

/// One node: where its path and data are, and its stat.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapNode {
    pub path_at: u64,
    pub path_len: u32,
    /// -1 for null data (ZooKeeper keeps it apart from empty).
    pub data_len: i32,
    pub data_at: u64,
    pub acl: u32,
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub child_creates: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub num_children: i32,
}

/// Encodes the tree as it is while this runs (fuzzy), labelled with `zxid`: the
/// last zxid committed before the walk started. Header and body in one buffer.
pub fn encode(tree: &DataTree, zxid: Zxid) -> Vec<u8> {
    let (header, body) = encode_parts(tree, zxid);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    out
}

/// [`encode`] as its header and its body, for writing one after the other
/// without a copy of the body. The walk copies no data: nodes share it.
pub fn encode_parts(tree: &DataTree, zxid: Zxid) -> ([u8; HEADER_LEN], AlignedVec) {
    let mut acl_index: HashMap<AclList, u32> = HashMap::new();
    let mut acls = Vec::new();
    let mut nodes = Vec::with_capacity(tree.node_count());
    let (mut paths, mut data) = (String::new(), Vec::new());
    tree.for_each_node(|path, stored| {
        let n = stored.fields();
        let acl = *acl_index.entry(stored.acl().clone()).or_insert_with(|| {
            acls.push(stored.acl().to_vec());
            (acls.len() - 1) as u32
        });
        let (path_at, data_at) = (paths.len() as u64, data.len() as u64);
        paths.push_str(path);
        let data_len = match stored.data() {
            Some(bytes) => {
                data.extend_from_slice(bytes);
                bytes.len() as i32
            }
            None => -1,
        };
        nodes.push(SnapNode {
            path_at,
            path_len: path.len() as u32,
            data_len,
            data_at,
            acl,
            czxid: n.czxid,
            mzxid: n.mzxid,
            pzxid: n.pzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            child_creates: n.child_creates,
            aversion: n.aversion,
            ephemeral_owner: n.ephemeral_owner,
            num_children: n.num_children,
        });
    });
    let image = Image {
        acls,
        paths,
        data,
        nodes,
        sessions: tree.sessions(),
    };
    let body = rkyv::to_bytes::<rancor::Error>(&image).expect("archiving to memory cannot fail");
    (header(zxid, &body), body)
}

/// The header in front of `body`.
fn header(zxid: Zxid, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&zxid.to_le_bytes());
    header[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[32..36].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    header
}

/// The snapshot's zxid and the body's checksum, after checking the header and
/// the body's length.
fn read_header(bytes: &[u8]) -> Result<(Zxid, u32), FormatError> {
    let bad = |why: &str| FormatError::BadHeader(why.to_owned());
    let h = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| bad("file shorter than a snapshot header"))?;
    if &h[..8] != MAGIC {
        return Err(bad("not a herd snapshot (wrong magic)"));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(bad(&format!(
            "snapshot format version {version}, this herd reads {FORMAT_VERSION}"
        )));
    }
    let zxid = i64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes")) as usize;
    let crc = u32::from_le_bytes(h[32..36].try_into().expect("4 bytes"));
    if bytes.len() - HEADER_LEN != len {
        return Err(bad("snapshot truncated"));
    }
    Ok((zxid, crc))
}

/// Rebuilds a tree from snapshot bytes (validated in place, without
/// deserializing the archive), with its last zxid set to the snapshot's. The
/// body's checksum is computed on a second thread while the tree is built; a
/// mismatch discards the tree.
pub fn load(bytes: &[u8]) -> Result<(Zxid, DataTree), FormatError> {
    let (zxid, crc) = read_header(bytes)?;
    let body = &bytes[HEADER_LEN..];
    std::thread::scope(|s| {
        let summed = s.spawn(|| crc32c::crc32c(body));
        let built = build(body);
        if summed.join().expect("crc32c does not panic") != crc {
            return Err(FormatError::BadPayload("snapshot checksum mismatch".into()));
        }
        let tree = built?;
        tree.restore_zxid(zxid);
        Ok((zxid, tree))
    })
}

/// The tree an archived [`Image`] holds (its bytes not yet known to be intact:
/// rkyv validates the structure, so damage gives an error, never a bad read).
fn build(body: &[u8]) -> Result<DataTree, FormatError> {
    let copy;
    let body = if (body.as_ptr() as usize).is_multiple_of(16) {
        body
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        copy = aligned;
        &copy[..]
    };
    let image = rkyv::access::<ArchivedImage, rancor::Error>(body)
        .map_err(|e| FormatError::BadPayload(e.to_string()))?;
    let acls: Vec<AclList> = image
        .acls
        .iter()
        .map(|list| rkyv::deserialize::<Vec<Acl>, rancor::Error>(list).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(|e| FormatError::BadPayload(e.to_string()))?;
    // Snapshot paths are distinct (a walk of one tree) and include the root.
    let tree = DataTree::empty();
    let out_of_range = || FormatError::BadPayload("node path or data out of range".into());
    for n in image.nodes.iter() {
        let acl = acls
            .get(n.acl.to_native() as usize)
            .cloned()
            .ok_or_else(|| FormatError::BadPayload("ACL index out of range".into()))?;
        let path_at = n.path_at.to_native() as usize;
        let path = image
            .paths
            .get(path_at..path_at + n.path_len.to_native() as usize)
            .ok_or_else(out_of_range)?;
        let data = match n.data_len.to_native() {
            -1 => None,
            len => {
                let at = n.data_at.to_native() as usize;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= MAX_DATA)
                    .ok_or_else(out_of_range)?;
                Some(image.data.get(at..at + len).ok_or_else(out_of_range)?)
            }
        };
        let node = Node {
            data: Content::New(Data::null()),
            acl,
            czxid: n.czxid.to_native(),
            mzxid: n.mzxid.to_native(),
            pzxid: n.pzxid.to_native(),
            ctime: n.ctime.to_native(),
            mtime: n.mtime.to_native(),
            version: n.version.to_native(),
            child_creates: n.child_creates.to_native(),
            aversion: n.aversion.to_native(),
            ephemeral_owner: n.ephemeral_owner.to_native(),
            num_children: n.num_children.to_native(),
        };
        tree.insert_new(path, Znode::with_data(&node, data));
    }
    for s in image.sessions.iter() {
        tree.open_session(s.0.to_native(), s.1.to_native());
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(image: &Image) -> Vec<u8> {
        let body = rkyv::to_bytes::<rancor::Error>(image).unwrap();
        [&header(9, &body)[..], &body[..]].concat()
    }

    fn root(path_len: u32, data_len: i32) -> SnapNode {
        SnapNode {
            path_at: 0,
            path_len,
            data_len,
            data_at: 0,
            acl: 0,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            child_creates: 0,
            aversion: 0,
            ephemeral_owner: 0,
            num_children: 0,
        }
    }

    /// A snapshot whose checksum holds but whose nodes point outside its arrays
    /// (a bug or a crafted file) is refused, not trusted.
    #[test]
    fn nodes_pointing_outside_the_arrays_are_refused() {
        let image = |node| Image {
            acls: vec![Acl::open_unsafe()],
            paths: "/".into(),
            data: b"ab".to_vec(),
            nodes: vec![node],
            sessions: vec![(5, 4000)],
        };
        let (zxid, tree) = load(&framed(&image(root(1, 2)))).unwrap();
        assert_eq!(
            (zxid, tree.node_count(), tree.sessions()),
            (9, 1, vec![(5, 4000)])
        );
        assert_eq!(tree.get("/").unwrap().data(), Some(&b"ab"[..]));
        let null = load(&framed(&image(root(1, -1)))).unwrap().1;
        assert_eq!(null.get("/").unwrap().data(), None);
        for bad in [
            root(2, 2),
            root(1, 3),
            root(1, -2),
            SnapNode {
                acl: 1,
                ..root(1, 2)
            },
        ] {
            let err = load(&framed(&image(bad))).err().expect("refused");
            assert!(matches!(err, FormatError::BadPayload(_)), "{err}");
        }
    }
}
