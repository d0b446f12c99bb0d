//! Snapshots: the whole tree and its sessions as a sequence of chunks, each an
//! rkyv archive followed by its nodes' data and covered by a checksum, so
//! start-up can map a file and rebuild without replaying the whole log. Pure:
//! bytes in, tree out; writing, fsync and rename are the server's.
//!
//! ```text
//!  0  magic "HERDSNAP"               8 bytes
//!  8  format version (3)             u32 LE
//! 12  reserved                       u32 LE
//! 16  zxid                           i64 LE   every transaction up to it is included
//! 24  body length n                  u64 LE   every chunk, with its header and padding
//! 32  chunk count                    u64 LE
//! 40  reserved                       24 bytes (the body starts 16-byte aligned)
//! 64  chunks, back to back (n bytes), each:
//!       0  archive length m          u64 LE
//!       8  data length d             u64 LE
//!      16  CRC32C of archive + data  u32 LE
//!      20  reserved                  12 bytes
//!      32  a [`Chunk`] archived with rkyv (m bytes), zeros to a multiple of 16
//!       …  its nodes' data, one after another (d bytes), zeros to a multiple of 16
//! ```
//!
//! A chunk holds the next nodes in key order (parents before children) and
//! sessions, and the ACL lists first used by its nodes; nodes number ACL lists
//! across the whole snapshot, in the order chunks introduce them, and find their
//! path in the chunk's path array and their data in its data section. So an
//! archive holds a few arrays and no per-node allocation: validating it is a few
//! bounds checks. Writing copies each node's data once, straight from the tree;
//! loading copies it once, into the tree.
//!
//! Chunks exist because rkyv addresses within an archive with 32-bit offsets:
//! one archive cannot hold a tree of more than 2 GiB. A chunk ends once it
//! holds [`CHUNK_BYTES`], so with the largest znode herd accepts it stays far
//! below that (checked at compile time), whatever the tree's size; writing one
//! chunk at a time also bounds the memory a snapshot takes.
//!
//! Format 2, written by earlier versions, is this header without a chunk count,
//! its body one bare archive of an [`Image`] (data inside), checksummed in the
//! header at 32; it still loads.
//!
//! Snapshots are fuzzy: taken while the pipeline keeps committing, they may also
//! hold some transactions after their zxid. Replaying the log from zxid + 1 is
//! idempotent over such state (see [`crate::txn`]), followed by
//! [`DataTree::recount_children_of`] for the parents the replay touched.

use std::collections::HashMap;
use std::sync::Arc;

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::vec::ArchivedVec;

use crate::acl::{Acl, AclList, ArchivedAcl};
use crate::log::FormatError;
use crate::tree::DataTree;
use crate::types::{SessionId, Zxid};
use crate::znode::{Content, Data, Node, Znode, MAX_DATA};

pub const MAGIC: &[u8; 8] = b"HERDSNAP";
pub const FORMAT_VERSION: u32 = 3;
/// The single-archive format of earlier versions, still read.
const FORMAT_VERSION_SINGLE: u32 = 2;
pub const HEADER_LEN: usize = 64;
const CHUNK_HEADER_LEN: usize = 32;

/// A chunk is closed once its nodes' paths, data and fixed fields reach this.
pub const CHUNK_BYTES: usize = 64 << 20;

// One more node (its path is at most a request, at most MAX_DATA bytes; its ACL
// list too) must not take a chunk's archive past rkyv's 2 GiB.
const _: () = assert!(CHUNK_BYTES + 2 * (MAX_DATA + 1) < i32::MAX as usize / 2);

/// What a chunk archives; its nodes' data follows the archive.
#[derive(Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Chunk {
    /// ACL lists first used in this chunk; nodes refer to lists by their index
    /// in the snapshot (earlier chunks' lists first).
    pub acls: Vec<Vec<Acl>>,
    /// Every node's path, one after another.
    pub paths: String,
    pub nodes: Vec<SnapNode>,
    pub sessions: Vec<(SessionId, i32)>,
}

/// The whole body of a format-2 snapshot: one chunk with the data inside.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Image {
    pub acls: Vec<Vec<Acl>>,
    pub paths: String,
    pub data: Vec<u8>,
    pub nodes: Vec<SnapNode>,
    pub sessions: Vec<(SessionId, i32)>,
}

/// One node: where its path and data are in its chunk, and its stat.
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
    let mut out = vec![0; HEADER_LEN];
    let header = encode_to(tree, zxid, CHUNK_BYTES, |bytes| {
        out.extend_from_slice(bytes);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    out[..HEADER_LEN].copy_from_slice(&header);
    out
}

/// A chunk being filled: the archived part, and the versions whose data follows it.
#[derive(Default)]
struct Open {
    chunk: Chunk,
    data: Vec<Znode>,
    data_len: usize,
}

impl Open {
    /// Roughly the bytes the chunk takes.
    fn weight(&self) -> usize {
        self.chunk.paths.len()
            + self.data_len
            + self.chunk.nodes.len() * std::mem::size_of::<SnapNode>()
            + self.chunk.sessions.len() * 16
    }

    /// Roughly the bytes its archive takes.
    fn archive_bytes(&self) -> usize {
        let acls: usize = self
            .chunk
            .acls
            .iter()
            .flatten()
            .map(|a| 32 + a.id.scheme.len() + a.id.id.len())
            .sum();
        self.weight() - self.data_len + acls + self.chunk.acls.len() * 8 + 4096
    }
}

/// Encodes the tree chunk by chunk, each chunk closed at `chunk_bytes`, handing
/// the body's bytes to `sink` as they are ready (at most one chunk's archive is
/// held in memory; data goes to `sink` straight from the tree), and returns the
/// header, which belongs in front of them: the writer leaves [`HEADER_LEN`]
/// bytes for it.
pub fn encode_to<E>(
    tree: &DataTree,
    zxid: Zxid,
    chunk_bytes: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<[u8; HEADER_LEN], E> {
    let mut acl_index: HashMap<AclList, u32> = HashMap::new();
    let mut open = Open::default();
    let (mut chunks, mut body_len) = (0u64, 0u64);
    let mut flush = |open: &mut Open, sink: &mut dyn FnMut(&[u8]) -> Result<(), E>| {
        body_len += seal(std::mem::take(open), sink)?;
        chunks += 1;
        Ok::<(), E>(())
    };
    let mut failed = Ok(());
    tree.for_each_node(|path, stored| {
        if failed.is_err() {
            return;
        }
        let n = stored.fields();
        let next = acl_index.len() as u32;
        let acl = *acl_index.entry(stored.acl().clone()).or_insert_with(|| {
            open.chunk.acls.push(stored.acl().to_vec());
            next
        });
        let (path_at, data_at) = (open.chunk.paths.len() as u64, open.data_len as u64);
        open.chunk.paths.push_str(path);
        let data_len = match stored.data() {
            Some(bytes) => {
                open.data_len += bytes.len();
                open.data.push(stored.clone());
                bytes.len() as i32
            }
            None => -1,
        };
        open.chunk.nodes.push(SnapNode {
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
        if open.weight() >= chunk_bytes {
            failed = flush(&mut open, &mut sink);
        }
    });
    failed?;
    for session in tree.sessions() {
        open.chunk.sessions.push(session);
        if open.weight() >= chunk_bytes {
            flush(&mut open, &mut sink)?;
        }
    }
    // The last chunk, however small (a snapshot has at least one: the root).
    if !open.chunk.nodes.is_empty() || !open.chunk.sessions.is_empty() {
        flush(&mut open, &mut sink)?;
    }
    Ok(header(zxid, body_len, chunks))
}

/// A format-3 header for `chunks` chunks making a body of `body_len` bytes.
fn header(zxid: Zxid, body_len: u64, chunks: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&zxid.to_le_bytes());
    header[24..32].copy_from_slice(&body_len.to_le_bytes());
    header[32..40].copy_from_slice(&chunks.to_le_bytes());
    header
}

/// A chunk's header: its archive's and data's lengths and their checksum.
fn chunk_header(archive_len: usize, data_len: usize, crc: u32) -> [u8; CHUNK_HEADER_LEN] {
    let mut head = [0u8; CHUNK_HEADER_LEN];
    head[..8].copy_from_slice(&(archive_len as u64).to_le_bytes());
    head[8..16].copy_from_slice(&(data_len as u64).to_le_bytes());
    head[16..20].copy_from_slice(&crc.to_le_bytes());
    head
}

const ZEROS: [u8; 16] = [0; 16];

/// Zeros that take `len` to a multiple of 16.
fn padding(len: usize) -> &'static [u8] {
    &ZEROS[..len.next_multiple_of(16) - len]
}

/// Writes `open` as a chunk: header, archive, data; returns the bytes written.
fn seal<E>(open: Open, sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<u64, E> {
    // Sized up front: growing a large archive by doubling copies it over and over.
    let room = AlignedVec::<16>::with_capacity(open.archive_bytes());
    let archive = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&open.chunk, room)
        .expect("a chunk stays within rkyv's limits");
    let data = || {
        open.data
            .iter()
            .map(|z| z.data().expect("only data is listed"))
    };
    let crc = data().fold(crc32c::crc32c(&archive), crc32c::crc32c_append);
    sink(&chunk_header(archive.len(), open.data_len, crc))?;
    sink(&archive)?;
    sink(padding(archive.len()))?;
    for bytes in data() {
        sink(bytes)?;
    }
    sink(padding(open.data_len))?;
    let written =
        CHUNK_HEADER_LEN + archive.len().next_multiple_of(16) + open.data_len.next_multiple_of(16);
    Ok(written as u64)
}

/// A chunk's bytes as found in a snapshot, and the checksum they must have.
struct Sealed<'a> {
    archive: &'a [u8],
    data: &'a [u8],
    crc: u32,
}

/// What a snapshot's body holds.
enum Body<'a> {
    /// Format 2: one archived [`Image`].
    Single {
        archive: &'a [u8],
        crc: u32,
    },
    Chunks(Vec<Sealed<'a>>),
}

/// The snapshot's zxid and its body, after checking the header and that the
/// chunks fill the body exactly.
fn read_body(bytes: &[u8]) -> Result<(Zxid, Body<'_>), FormatError> {
    let bad = |why: &str| FormatError::BadHeader(why.to_owned());
    let h = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| bad("file shorter than a snapshot header"))?;
    if &h[..8] != MAGIC {
        return Err(bad("not a herd snapshot (wrong magic)"));
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8"));
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    let version = u32_at(h, 8);
    let zxid = u64_at(h, 16) as Zxid;
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != u64_at(h, 24) {
        return Err(bad("snapshot truncated"));
    }
    match version {
        FORMAT_VERSION_SINGLE => Ok((
            zxid,
            Body::Single {
                archive: body,
                crc: u32_at(h, 32),
            },
        )),
        FORMAT_VERSION => {
            let mut chunks = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let head = rest
                    .get(..CHUNK_HEADER_LEN)
                    .ok_or_else(|| bad("a chunk header runs past the end"))?;
                let padded = |at: usize| {
                    usize::try_from(u64_at(head, at))
                        .ok()
                        .and_then(|len| Some((len, len.checked_next_multiple_of(16)?)))
                };
                let ((m, m_padded), (d, d_padded)) = padded(0)
                    .zip(padded(8))
                    .filter(|((_, m), (_, d))| {
                        m.checked_add(*d)
                            .is_some_and(|len| CHUNK_HEADER_LEN + len <= rest.len())
                    })
                    .ok_or_else(|| bad("a chunk runs past the end"))?;
                let data_at = CHUNK_HEADER_LEN + m_padded;
                chunks.push(Sealed {
                    archive: &rest[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + m],
                    data: &rest[data_at..data_at + d],
                    crc: u32_at(head, 16),
                });
                rest = &rest[data_at + d_padded..];
            }
            if chunks.len() as u64 != u64_at(h, 32) {
                return Err(bad("chunk count does not match the header"));
            }
            Ok((zxid, Body::Chunks(chunks)))
        }
        other => Err(bad(&format!(
            "snapshot format version {other}, this herd reads {FORMAT_VERSION_SINGLE} and {FORMAT_VERSION}"
        ))),
    }
}

/// Rebuilds a tree from snapshot bytes (validated in place, without
/// deserializing the archives), with its last zxid set to the snapshot's. The
/// checksums are computed on a second thread while the tree is built; a
/// mismatch discards the tree.
pub fn load(bytes: &[u8]) -> Result<(Zxid, DataTree), FormatError> {
    let (zxid, body) = read_body(bytes)?;
    std::thread::scope(|s| {
        let summed = s.spawn(|| match &body {
            Body::Single { archive, crc } => crc32c::crc32c(archive) == *crc,
            Body::Chunks(chunks) => chunks
                .iter()
                .all(|c| crc32c::crc32c_append(crc32c::crc32c(c.archive), c.data) == c.crc),
        });
        let built = build(&body);
        if !summed.join().expect("crc32c does not panic") {
            return Err(FormatError::BadPayload("snapshot checksum mismatch".into()));
        }
        let tree = built?;
        tree.restore_zxid(zxid);
        Ok((zxid, tree))
    })
}

/// `archive` itself if 16-byte aligned (a mapped file's chunks are), else an
/// aligned copy in `copy`.
fn aligned<'a>(archive: &'a [u8], copy: &'a mut AlignedVec<16>) -> &'a [u8] {
    if (archive.as_ptr() as usize).is_multiple_of(16) {
        return archive;
    }
    copy.extend_from_slice(archive);
    &copy[..]
}

fn payload_error(e: rancor::Error) -> FormatError {
    FormatError::BadPayload(e.to_string())
}

/// The tree the body holds (its bytes not yet known to be intact: rkyv
/// validates the structure, so damage gives an error, never a bad read).
fn build(body: &Body<'_>) -> Result<DataTree, FormatError> {
    // Snapshot paths are distinct (a walk of one tree) and include the root.
    let tree = DataTree::empty();
    let mut acls: Vec<AclList> = Vec::new();
    let mut copy = AlignedVec::<16>::new();
    match body {
        Body::Single { archive, .. } => {
            let image = rkyv::access::<ArchivedImage, rancor::Error>(aligned(archive, &mut copy))
                .map_err(payload_error)?;
            let parts = Parts {
                acls: &image.acls,
                paths: &image.paths,
                data: &image.data,
                nodes: &image.nodes,
                sessions: &image.sessions,
            };
            parts.build(&tree, &mut acls)?;
        }
        Body::Chunks(chunks) => {
            for sealed in chunks {
                copy.clear();
                let chunk = rkyv::access::<ArchivedChunk, rancor::Error>(aligned(
                    sealed.archive,
                    &mut copy,
                ))
                .map_err(payload_error)?;
                let parts = Parts {
                    acls: &chunk.acls,
                    paths: &chunk.paths,
                    data: sealed.data,
                    nodes: &chunk.nodes,
                    sessions: &chunk.sessions,
                };
                parts.build(&tree, &mut acls)?;
            }
        }
    }
    Ok(tree)
}

/// The pieces of a chunk (or a format-2 image) nodes are built from.
struct Parts<'a> {
    acls: &'a ArchivedVec<ArchivedVec<ArchivedAcl>>,
    paths: &'a str,
    data: &'a [u8],
    nodes: &'a [ArchivedSnapNode],
    sessions: &'a ArchivedVec<ArchivedSessionEntry>,
}

/// A `(SessionId, timeout)` pair as archived.
type ArchivedSessionEntry = rkyv::Archived<(SessionId, i32)>;

impl Parts<'_> {
    /// Adds the ACL lists, nodes and sessions to `tree`; `acls` gathers the
    /// lists of every chunk so far.
    fn build(&self, tree: &DataTree, acls: &mut Vec<AclList>) -> Result<(), FormatError> {
        for list in self.acls.iter() {
            let list = rkyv::deserialize::<Vec<Acl>, rancor::Error>(list).map_err(payload_error)?;
            acls.push(Arc::new(list));
        }
        let out_of_range = || FormatError::BadPayload("node path or data out of range".into());
        for n in self.nodes {
            let acl = acls
                .get(n.acl.to_native() as usize)
                .cloned()
                .ok_or_else(|| FormatError::BadPayload("ACL index out of range".into()))?;
            let path_at = n.path_at.to_native() as usize;
            let path = self
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
                    Some(self.data.get(at..at + len).ok_or_else(out_of_range)?)
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
        for s in self.sessions.iter() {
            tree.open_session(s.0.to_native(), s.1.to_native());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format-3 snapshot of the given chunks, each with its data section.
    fn framed(chunks: Vec<(Chunk, &[u8])>) -> Vec<u8> {
        let mut body = Vec::new();
        let count = chunks.len() as u64;
        for (chunk, data) in chunks {
            let archive = rkyv::to_bytes::<rancor::Error>(&chunk).unwrap();
            let crc = crc32c::crc32c_append(crc32c::crc32c(&archive), data);
            let head = chunk_header(archive.len(), data.len(), crc);
            for part in [
                &head[..],
                &archive,
                padding(archive.len()),
                data,
                padding(data.len()),
            ] {
                body.extend_from_slice(part);
            }
        }
        [&header(9, body.len() as u64, count)[..], &body[..]].concat()
    }

    fn node(path_len: u32, data_len: i32) -> SnapNode {
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

    fn root_chunk(root: SnapNode) -> (Chunk, &'static [u8]) {
        let chunk = Chunk {
            acls: vec![Acl::open_unsafe()],
            paths: "/".into(),
            nodes: vec![root],
            sessions: vec![(5, 4000)],
        };
        (chunk, b"ab")
    }

    /// A snapshot whose checksum holds but whose nodes point outside its arrays
    /// (a bug or a crafted file) is refused, not trusted.
    #[test]
    fn nodes_pointing_outside_the_arrays_are_refused() {
        let (zxid, tree) = load(&framed(vec![root_chunk(node(1, 2))])).unwrap();
        assert_eq!(
            (zxid, tree.node_count(), tree.sessions()),
            (9, 1, vec![(5, 4000)])
        );
        assert_eq!(tree.get("/").unwrap().data(), Some(&b"ab"[..]));
        let null = load(&framed(vec![root_chunk(node(1, -1))])).unwrap().1;
        assert_eq!(null.get("/").unwrap().data(), None);
        for bad in [
            node(2, 2),
            node(1, 3),
            node(1, -2),
            SnapNode {
                acl: 1,
                ..node(1, 2)
            },
        ] {
            let err = load(&framed(vec![root_chunk(bad)])).err().expect("refused");
            assert!(matches!(err, FormatError::BadPayload(_)), "{err}");
        }
    }

    /// A tree with `n` nodes under `/t`, every fifth with an ACL list of its
    /// own, and some sessions.
    fn sample(n: usize) -> DataTree {
        let tree = DataTree::new();
        let open = Arc::new(Acl::open_unsafe());
        let parent = Node {
            num_children: n as i32,
            ..Node::new(Data::new(b"p"), open.clone(), 1, 1, 0)
        };
        tree.put("/t", &parent);
        for i in 0..n {
            let acl = if i % 5 == 0 {
                Arc::new(vec![Acl {
                    perms: i as i32 % 31 + 1,
                    id: crate::acl::Id::new("world", "anyone"),
                }])
            } else {
                open.clone()
            };
            let data = if i % 7 == 0 {
                Data::null()
            } else {
                Data::new(format!("value {i}").as_bytes())
            };
            tree.put(
                &format!("/t/n{i:04}"),
                &Node::new(data, acl, i as i64 + 2, 7, 0),
            );
        }
        for s in 0..40 {
            tree.open_session(0x100 + s, 4000 + s as i32);
        }
        tree
    }

    fn write(tree: &DataTree, chunk_bytes: usize) -> Vec<u8> {
        let mut out = vec![0; HEADER_LEN];
        let header = encode_to(tree, 77, chunk_bytes, |b| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        out[..HEADER_LEN].copy_from_slice(&header);
        out
    }

    fn chunk_count(snapshot: &[u8]) -> u64 {
        u64::from_le_bytes(snapshot[32..40].try_into().unwrap())
    }

    #[test]
    fn a_tree_in_many_chunks_loads_as_the_same_tree() {
        let tree = sample(300);
        let whole = write(&tree, CHUNK_BYTES);
        assert_eq!(chunk_count(&whole), 1);
        let small = write(&tree, 256);
        assert!(chunk_count(&small) > 50, "{} chunks", chunk_count(&small));
        for snapshot in [whole, small] {
            let (zxid, loaded) = load(&snapshot).unwrap();
            assert_eq!(zxid, 77);
            assert_eq!(loaded.all(), tree.all(), "nodes, stats, data and ACLs");
            assert_eq!(loaded.sessions(), tree.sessions());
            assert_eq!(loaded.node_count(), tree.node_count());
            assert_eq!(loaded.data_bytes(), tree.data_bytes());
        }
    }

    #[test]
    fn damaged_or_cut_chunks_are_refused() {
        let good = write(&sample(100), 512);
        assert!(chunk_count(&good) > 3);
        let mut flipped = good.clone();
        let at = good.len() / 2;
        flipped[at] ^= 0x40;
        let err = load(&flipped).err().expect("a flipped byte is refused");
        assert!(
            matches!(err, FormatError::BadPayload(_) | FormatError::BadHeader(_)),
            "{err}"
        );
        let mut cut = good.clone();
        cut.truncate(good.len() - 16);
        assert_eq!(
            load(&cut).err(),
            Some(FormatError::BadHeader("snapshot truncated".into()))
        );
        let mut miscounted = good.clone();
        miscounted[32] += 1;
        assert_eq!(
            load(&miscounted).err(),
            Some(FormatError::BadHeader(
                "chunk count does not match the header".into()
            ))
        );
        // A chunk length that runs past the body.
        let mut long = good.clone();
        long[HEADER_LEN + 6] = 0x7f;
        assert_eq!(
            load(&long).err(),
            Some(FormatError::BadHeader("a chunk runs past the end".into()))
        );
    }

    /// What earlier versions wrote: one bare archive, its checksum in the header.
    #[test]
    fn format_2_snapshots_still_load() {
        let image = Image {
            acls: vec![Acl::open_unsafe()],
            paths: "/".into(),
            data: b"ab".to_vec(),
            nodes: vec![node(1, 2)],
            sessions: vec![(5, 4000)],
        };
        let body = rkyv::to_bytes::<rancor::Error>(&image).unwrap();
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&2u32.to_le_bytes());
        header[16..24].copy_from_slice(&12i64.to_le_bytes());
        header[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
        header[32..36].copy_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        let old = [&header[..], &body[..]].concat();
        let (zxid, tree) = load(&old).unwrap();
        assert_eq!((zxid, tree.node_count()), (12, 1));
        assert_eq!(tree.get("/").unwrap().data(), Some(&b"ab"[..]));
        let mut damaged = old.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(
            load(&damaged).err(),
            Some(FormatError::BadPayload("snapshot checksum mismatch".into()))
        );
    }
}
