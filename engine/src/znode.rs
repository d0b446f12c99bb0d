//! A znode's state in its two forms:
//! - [`Node`]: plain fields, what a transaction reads, changes and commits;
//! - [`Znode`]: what the tree stores, one immutable, reference-counted
//!   allocation holding a whole version of the node, metadata and data.
//!
//! Resident memory per znode is mostly this allocation, so it is packed: a
//! 32-byte header (reference count, data length and flags, ACL list, czxid,
//! ctime), then only the fields that differ from their value in a fresh,
//! childless, persistent node, then the data:
//!
//! ```text
//!  0  refs u32 | data length and flags u32 | ACL list pointer | czxid | ctime
//! 32  [mzxid mtime]  if MODIFIED   (otherwise czxid, ctime)
//!     [pzxid]        if PARENT     (otherwise czxid)
//!     [owner]        if OWNED      (otherwise 0)
//!     [version]      if MODIFIED   (otherwise 0)
//!     [child_creates num_children]  if PARENT (otherwise 0, 0)
//!     [aversion]     if ACL_SET    (otherwise 0)
//!     data bytes
//! ```
//!
//! A fresh node with 100 bytes of data takes 132 bytes, one that has been
//! written to 152: both fit mimalloc's 160-byte size class.
//!
//! Invariants: a `Znode` never changes once built (a write builds a new one);
//! the allocation lives until its last `Znode` handle is dropped; its size is
//! always `HEADER + optional_len(flags) + data length`.

use std::alloc::{self, Layout};
use std::mem::{self, ManuallyDrop};
use std::ptr::{self, NonNull};
use std::sync::atomic::{self as atomic, AtomicU32, Ordering};
use std::sync::Arc;

use crate::acl::AclList;
use crate::stat::{NodeKind, Stat};
use crate::types::{TimeMs, Zxid};

/// Znode data as a transaction carries it. ZooKeeper keeps null (length -1 on
/// the wire) apart from empty.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Data(Option<Arc<[u8]>>);

impl Data {
    pub fn null() -> Data {
        Data(None)
    }

    pub fn new(bytes: &[u8]) -> Data {
        Data(Some(bytes.into()))
    }

    /// The bytes, `None` for null data.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// A prepared node's data: new bytes, or those of the stored version it
/// derives from (so changing a node's metadata copies no data until commit).
#[derive(Clone, Debug)]
pub enum Content {
    New(Data),
    Stored(Znode),
}

impl Content {
    /// The bytes, `None` for null data.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Content::New(d) => d.bytes(),
            Content::Stored(z) => z.data(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().map_or(0, <[u8]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Content) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Content {}

/// One znode as plain fields. Cloning is cheap: data and ACL are shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub data: Content,
    pub acl: AclList,
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime: TimeMs,
    pub mtime: TimeMs,
    pub version: i32,
    /// Number of children ever created here (ZooKeeper's persisted cversion). The
    /// sequential suffix is this value; clients see `2 * child_creates - num_children`.
    pub child_creates: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub num_children: i32,
}

impl Node {
    /// A fresh node created at `zxid`.
    pub fn new(data: Data, acl: AclList, zxid: Zxid, time: TimeMs, owner: i64) -> Node {
        Node {
            data: Content::New(data),
            acl,
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            child_creates: 0,
            aversion: 0,
            ephemeral_owner: owner,
            num_children: 0,
        }
    }

    /// The `Stat` clients see.
    pub fn stat(&self) -> Stat {
        self.fields().stat(self.data.len())
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.ephemeral_owner)
    }

    fn fields(&self) -> Fields {
        Fields {
            czxid: self.czxid,
            mzxid: self.mzxid,
            pzxid: self.pzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            child_creates: self.child_creates,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            num_children: self.num_children,
        }
    }
}

/// A node's numbers, without its ACL and data.
pub(crate) struct Fields {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime: TimeMs,
    pub mtime: TimeMs,
    pub version: i32,
    pub child_creates: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub num_children: i32,
}

impl Fields {
    fn stat(&self, data_len: usize) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self
                .child_creates
                .wrapping_mul(2)
                .wrapping_sub(self.num_children),
            aversion: self.aversion,
            // Clients see the owner of normal ephemerals only; containers and TTL nodes show 0.
            ephemeral_owner: match NodeKind::of_owner(self.ephemeral_owner) {
                NodeKind::Ephemeral(session) => session,
                _ => 0,
            },
            data_length: data_len as i32,
            num_children: self.num_children,
            pzxid: self.pzxid,
        }
    }

    /// Which optional groups differ from a fresh node's values.
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.mzxid != self.czxid || self.mtime != self.ctime || self.version != 0 {
            flags |= MODIFIED;
        }
        if self.pzxid != self.czxid || self.child_creates != 0 || self.num_children != 0 {
            flags |= PARENT;
        }
        if self.ephemeral_owner != 0 {
            flags |= OWNED;
        }
        if self.aversion != 0 {
            flags |= ACL_SET;
        }
        flags
    }
}

/// Largest data a znode holds (the length shares a word with the flags).
pub const MAX_DATA: usize = (1 << 27) - 1;
const LEN_MASK: u32 = MAX_DATA as u32;
const NULL_DATA: u32 = 1 << 27;
const MODIFIED: u32 = 1 << 28;
const PARENT: u32 = 1 << 29;
const OWNED: u32 = 1 << 30;
const ACL_SET: u32 = 1 << 31;

/// Bytes of the optional fields when all are present.
const MAX_OPTIONAL: usize = 20 + 16 + 8 + 4;

/// Bytes of the optional fields present under `flags`.
fn optional_len(flags: u32) -> usize {
    let has = |f| usize::from(flags & f != 0);
    20 * has(MODIFIED) + 16 * has(PARENT) + 8 * has(OWNED) + 4 * has(ACL_SET)
}

/// The fixed start of a [`Znode`]'s allocation (its fields are private: the
/// type is public only as the pointee `arc_swap` stores).
#[repr(C)]
pub struct Header {
    refs: AtomicU32,
    len_flags: u32,
    acl: ManuallyDrop<AclList>,
    czxid: Zxid,
    ctime: TimeMs,
}

const HEADER: usize = mem::size_of::<Header>();

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, mem::align_of::<Header>()).expect("znode sizes are small")
}

/// One stored version of a znode; a handle to a shared, immutable allocation.
pub struct Znode(NonNull<Header>);

// SAFETY: the allocation is immutable but for its atomic reference count, and
// its ACL list (an `Arc`) is itself Send and Sync.
unsafe impl Send for Znode {}
unsafe impl Sync for Znode {}

impl Znode {
    /// Packs `node` into a new allocation (copying its data).
    ///
    /// # Panics
    /// If the data is longer than [`MAX_DATA`]; callers cap requests below it.
    pub fn new(node: &Node) -> Znode {
        Znode::with_data(node, node.data.bytes())
    }

    /// [`Znode::new`] with `data` in place of the node's own (loading a
    /// snapshot copies data straight from the file into the tree).
    pub fn with_data(node: &Node, data: Option<&[u8]>) -> Znode {
        let fields = node.fields();
        let len = data.map_or(0, <[u8]>::len);
        assert!(len <= MAX_DATA, "znode data of {len} bytes");
        let flags = fields.flags() | if data.is_none() { NULL_DATA } else { 0 };
        let mut opt = [0u8; MAX_OPTIONAL];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            opt[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if flags & MODIFIED != 0 {
            put(&fields.mzxid.to_ne_bytes());
            put(&fields.mtime.to_ne_bytes());
        }
        if flags & PARENT != 0 {
            put(&fields.pzxid.to_ne_bytes());
        }
        if flags & OWNED != 0 {
            put(&fields.ephemeral_owner.to_ne_bytes());
        }
        if flags & MODIFIED != 0 {
            put(&fields.version.to_ne_bytes());
        }
        if flags & PARENT != 0 {
            put(&fields.child_creates.to_ne_bytes());
            put(&fields.num_children.to_ne_bytes());
        }
        if flags & ACL_SET != 0 {
            put(&fields.aversion.to_ne_bytes());
        }
        debug_assert_eq!(at, optional_len(flags));
        let layout = layout(HEADER + at + len);
        // SAFETY: the layout is non-zero (it holds a header); the header is
        // written first, then `at + len` bytes into the rest of the allocation.
        unsafe {
            let base = alloc::alloc(layout);
            let Some(header) = NonNull::new(base.cast::<Header>()) else {
                alloc::handle_alloc_error(layout)
            };
            header.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                len_flags: flags | len as u32,
                acl: ManuallyDrop::new(node.acl.clone()),
                czxid: fields.czxid,
                ctime: fields.ctime,
            });
            ptr::copy_nonoverlapping(opt.as_ptr(), base.add(HEADER), at);
            if let Some(data) = data {
                ptr::copy_nonoverlapping(data.as_ptr(), base.add(HEADER + at), len);
            }
            Znode(header)
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the allocation lives as long as any handle to it.
        unsafe { self.0.as_ref() }
    }

    /// Everything after the header: the optional fields, then the data.
    fn tail(&self) -> &[u8] {
        let flags = self.header().len_flags;
        let len = optional_len(flags) + (flags & LEN_MASK) as usize;
        // SAFETY: the allocation is `HEADER + len` bytes, all initialized by `new`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>().add(HEADER), len) }
    }

    /// Whether both are the same version (one allocation), not just equal.
    pub fn is(&self, other: &Znode) -> bool {
        self.0 == other.0
    }

    /// The data, `None` for null data.
    pub fn data(&self) -> Option<&[u8]> {
        let flags = self.header().len_flags;
        if flags & NULL_DATA != 0 {
            return None;
        }
        Some(&self.tail()[optional_len(flags)..])
    }

    /// Length of the data (0 for null).
    pub fn data_len(&self) -> usize {
        (self.header().len_flags & LEN_MASK) as usize
    }

    pub fn acl(&self) -> &AclList {
        &self.header().acl
    }

    /// The numbers, decoded without touching the reference counts.
    pub(crate) fn fields(&self) -> Fields {
        let h = self.header();
        let flags = h.len_flags;
        let mut rest = self.tail();
        let mut take = |n: usize| {
            let (field, after) = rest.split_at(n);
            rest = after;
            field
        };
        let mut i64_if = |flag: u32, default: i64| {
            if flags & flag == 0 {
                return default;
            }
            i64::from_ne_bytes(take(8).try_into().expect("8 bytes"))
        };
        let mzxid = i64_if(MODIFIED, h.czxid);
        let mtime = i64_if(MODIFIED, h.ctime);
        let pzxid = i64_if(PARENT, h.czxid);
        let ephemeral_owner = i64_if(OWNED, 0);
        let mut i32_if = |flag: u32| {
            if flags & flag == 0 {
                return 0;
            }
            i32::from_ne_bytes(take(4).try_into().expect("4 bytes"))
        };
        let version = i32_if(MODIFIED);
        let child_creates = i32_if(PARENT);
        let num_children = i32_if(PARENT);
        let aversion = i32_if(ACL_SET);
        Fields {
            czxid: h.czxid,
            mzxid,
            pzxid,
            ctime: h.ctime,
            mtime,
            version,
            child_creates,
            aversion,
            ephemeral_owner,
            num_children,
        }
    }

    /// The `Stat` clients see.
    pub fn stat(&self) -> Stat {
        self.fields().stat(self.data_len())
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.fields().ephemeral_owner)
    }

    /// This version as plain fields, sharing its data (no copy).
    pub fn node(&self) -> Node {
        let f = self.fields();
        Node {
            data: Content::Stored(self.clone()),
            acl: self.acl().clone(),
            czxid: f.czxid,
            mzxid: f.mzxid,
            pzxid: f.pzxid,
            ctime: f.ctime,
            mtime: f.mtime,
            version: f.version,
            child_creates: f.child_creates,
            aversion: f.aversion,
            ephemeral_owner: f.ephemeral_owner,
            num_children: f.num_children,
        }
    }
}

impl Clone for Znode {
    fn clone(&self) -> Znode {
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        // As `Arc` does: far more handles than can exist means a leak loop.
        if old > u32::MAX / 2 {
            std::process::abort();
        }
        Znode(self.0)
    }
}

impl Drop for Znode {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        atomic::fence(Ordering::Acquire);
        let size = HEADER + self.tail().len();
        // SAFETY: this was the last handle: nothing else reads the allocation.
        unsafe {
            ManuallyDrop::drop(&mut (*self.0.as_ptr()).acl);
            alloc::dealloc(self.0.as_ptr().cast::<u8>(), layout(size));
        }
    }
}

impl std::fmt::Debug for Znode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Znode")
            .field("stat", &self.stat())
            .field("data", &self.data())
            .finish()
    }
}

// SAFETY: `into_ptr`/`from_ptr` hand over one reference without touching the
// count, and `as_ptr` only borrows; the pointer is the allocation's start.
unsafe impl arc_swap::RefCnt for Znode {
    type Base = Header;

    fn into_ptr(me: Znode) -> *mut Header {
        ManuallyDrop::new(me).0.as_ptr()
    }

    fn as_ptr(me: &Znode) -> *mut Header {
        me.0.as_ptr()
    }

    unsafe fn from_ptr(ptr: *const Header) -> Znode {
        // SAFETY: arc_swap passes back only pointers `into_ptr` returned.
        Znode(unsafe { NonNull::new_unchecked(ptr.cast_mut()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Acl;
    use crate::stat::CONTAINER_OWNER;

    fn fresh(data: Data) -> Node {
        Node::new(data, Arc::new(Acl::open_unsafe()), 7, 1_000, 0)
    }

    #[test]
    fn every_field_round_trips_whichever_groups_are_present() {
        let base = fresh(Data::new(b"hello"));
        let variants = [
            base.clone(),
            Node {
                mzxid: 9,
                mtime: 2_000,
                version: 3,
                ..base.clone()
            },
            Node {
                pzxid: 11,
                child_creates: 5,
                num_children: 2,
                ..base.clone()
            },
            Node {
                ephemeral_owner: CONTAINER_OWNER,
                ..base.clone()
            },
            Node {
                aversion: 4,
                ..base.clone()
            },
            Node {
                data: Content::New(Data::null()),
                mzxid: -1,
                mtime: i64::MAX,
                version: i32::MIN,
                pzxid: i64::MIN,
                child_creates: i32::MAX,
                num_children: 1,
                ephemeral_owner: 0x1234,
                aversion: -1,
                ..base.clone()
            },
        ];
        for node in variants {
            let stored = Znode::new(&node);
            assert_eq!(stored.node(), node);
            assert_eq!(stored.stat(), node.stat());
            assert_eq!(stored.kind(), node.kind());
            assert_eq!(stored.data(), node.data.bytes());
        }
    }

    #[test]
    fn null_and_empty_data_stay_apart() {
        let null = Znode::new(&fresh(Data::null()));
        let empty = Znode::new(&fresh(Data::new(&[])));
        assert_eq!(null.data(), None);
        assert_eq!(empty.data(), Some(&[][..]));
        assert_eq!(null.stat().data_length, 0);
        assert_eq!(null.node().data.bytes(), None);
    }

    #[test]
    fn a_fresh_node_stores_only_the_header_and_its_data() {
        let node = Znode::new(&fresh(Data::new(&[1; 100])));
        assert_eq!(HEADER, 32);
        assert_eq!(node.tail().len(), 100);
        let written = Znode::new(&Node {
            mzxid: 8,
            version: 1,
            ..fresh(Data::new(&[1; 100]))
        });
        assert_eq!(written.tail().len(), 120);
    }

    #[test]
    fn the_last_handle_frees_the_version_and_its_acl_reference() {
        let acl: AclList = Arc::new(Acl::open_unsafe());
        let node = Node::new(Data::new(b"x"), acl.clone(), 1, 1, 0);
        let stored = Znode::new(&node);
        drop(node);
        assert_eq!(Arc::strong_count(&acl), 2);
        let copy = stored.clone();
        let derived = stored.node();
        drop(stored);
        assert_eq!(copy.data(), Some(&b"x"[..]));
        drop(copy);
        assert_eq!(Arc::strong_count(&acl), 3, "held by the derived node");
        assert_eq!(derived.data.bytes(), Some(&b"x"[..]));
        drop(derived);
        assert_eq!(Arc::strong_count(&acl), 1);
    }
}
