//! Apache ZooKeeper's own data directory (3.4 to 3.9), as `herd-inspect
//! import-zk` reads it and `export-zk` writes it. Everything is jute
//! (big-endian, see [`herd_proto::jute`]):
//!
//! ```text
//! dataDir/version-2/snapshot.<zxid hex>    see [`snapshot`]
//!   FileHeader {magic "ZKSN", version 2, dbid}
//!   sessions, the ACL cache, every node (parents first, the root as ""), "/"
//!   seal: the Adler-32 of every byte before it (a long), then "/"
//!   3.6+: ZxidDigest {zxid, digest version, digest}, sealed again
//! dataLogDir/version-2/log.<zxid hex>      see [`txnlog`]
//!   FileHeader {magic "ZKLG", version 2, dbid}
//!   entries: Adler-32 of the txn bytes (a long), the txn bytes as a buffer
//!     (TxnHeader, its record, 3.6+ a TxnDigest), the byte 'B'
//!   zeros after the last entry (ZooKeeper preallocates)
//! ```
//!
//! A snapshot's zxid is the one in its name: every transaction up to it is in
//! it, and it is fuzzy, as herd's are (it may hold some later ones), so the log
//! is replayed over it from that zxid + 1 with herd's own idempotent
//! [`engine::txn::replay_noting`]. Pure: bytes in, tree or transactions out,
//! and tree in, bytes out; reading directories is the caller's.

pub mod snapshot;
pub mod txnlog;

use std::fmt;

use herd_proto::jute::Malformed;

/// The subdirectory of dataDir and dataLogDir ZooKeeper keeps its files in.
pub const VERSION_DIR: &str = "version-2";
/// The only file format version ZooKeeper has written since 3.0.
pub const FILE_VERSION: i32 = 2;

/// Why a ZooKeeper file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not start with the magic number of its kind.
    Magic {
        expected: i32,
        found: i32,
    },
    Version(i32),
    /// The file ends, or a length is impossible, inside what is named.
    Truncated(&'static str),
    /// A seal or an entry's checksum does not match its bytes.
    Checksum {
        at: usize,
        stored: i64,
        computed: u32,
    },
    /// A node whose parent is not before it, or an ACL reference the cache
    /// does not hold: ZooKeeper refuses such a snapshot too.
    Tree(String),
    /// A transaction type no ZooKeeper logs.
    TxnType {
        zxid: i64,
        kind: i32,
    },
    /// Data longer than herd stores ([`engine::znode::MAX_DATA`]).
    TooLarge(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Magic { expected, found } => write!(
                f,
                "not a ZooKeeper file of this kind: magic 0x{found:08x}, expected 0x{expected:08x}"
            ),
            FormatError::Version(v) => write!(f, "file format version {v}, only 2 is known"),
            FormatError::Truncated(what) => write!(f, "cut short while reading {what}"),
            FormatError::Checksum {
                at,
                stored,
                computed,
            } => write!(
                f,
                "checksum mismatch at byte {at}: stored 0x{stored:x}, computed 0x{computed:x}"
            ),
            FormatError::Tree(why) => f.write_str(why),
            FormatError::TxnType { zxid, kind } => {
                write!(f, "transaction 0x{zxid:x} has unknown type {kind}")
            }
            FormatError::TooLarge(path) => write!(
                f,
                "{path}: data longer than herd's largest znode ({} bytes)",
                engine::znode::MAX_DATA
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// Maps a jute decoding failure to [`FormatError::Truncated`] naming `what`.
fn cut(what: &'static str) -> impl Fn(Malformed) -> FormatError {
    move |_| FormatError::Truncated(what)
}

/// Checks a FileHeader {int magic, int version, long dbid}; returns the dbid.
fn header(r: &mut herd_proto::jute::Reader<'_>, magic: i32) -> Result<i64, FormatError> {
    let found = r.i32().map_err(cut("the file header"))?;
    if found != magic {
        return Err(FormatError::Magic {
            expected: magic,
            found,
        });
    }
    match r.i32().map_err(cut("the file header"))? {
        FILE_VERSION => r.i64().map_err(cut("the file header")),
        v => Err(FormatError::Version(v)),
    }
}

/// Adler-32 (RFC 1950), the checksum `java.util.zip.Adler32` computes.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 bytes is the longest run whose sums cannot overflow 32 bits.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The zxid in a `snapshot.<hex>` or `log.<hex>` file name, as ZooKeeper
/// reads it (a suffix after the hex, such as a compression's, is ignored);
/// `None` if the name is not of that kind.
pub fn zxid_of_name(name: &str, prefix: &str) -> Option<i64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let hex = rest.split('.').next()?;
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        // RFC 1950's example and zlib's reference values.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(&[0xff; 100_000]), {
            let (mut a, mut b) = (1u64, 0u64);
            for _ in 0..100_000 {
                a = (a + 0xff) % 65_521;
                b = (b + a) % 65_521;
            }
            ((b << 16) | a) as u32
        });
    }

    #[test]
    fn names_carry_their_zxid_in_hex() {
        assert_eq!(zxid_of_name("snapshot.1a", "snapshot"), Some(0x1a));
        assert_eq!(zxid_of_name("snapshot.1a.gz", "snapshot"), Some(0x1a));
        assert_eq!(zxid_of_name("log.100000001", "log"), Some(0x1_0000_0001));
        assert_eq!(zxid_of_name("log.xyz", "log"), None);
        assert_eq!(zxid_of_name("snapshot.1a", "log"), None);
        assert_eq!(zxid_of_name("snapshotx.1a", "snapshot"), None);
    }
}
