//! `herd-inspect snapshot FILE`: load a snapshot with [`engine::snapshot::load`],
//! which checks it exactly as herd's start-up does (header, body checksum,
//! archive), and describe the tree it holds with [`describe`], as `summary` does.
//! A file that fails those checks is one herd skips on start, with a warning
//! naming the same error, to load an older snapshot.
//!
//! ```text
//! zxid 0xd
//! file bytes 1232
//! nodes 10
//! data bytes 20
//! containers 1, ttl nodes 1
//! largest nodes (2):
//!   11 /a
//!   4 /b2
//! sessions 1
//!   0x100 timeout 4000ms
//! ephemerals 2
//!   0x100: /a/e1 /e2
//! ```
//!
//! With `--nodes`, a line per node follows in path order (a node, then its
//! children by name): `  /a/e1 len=2 version=0 czxid=0x4 mzxid=0x4 owner=0x100`.
//! The owner is 0 for all but ephemeral nodes, as clients see it; containers and
//! TTL nodes end in `container` and `ttl=<ms>ms` instead.

use engine::log::FormatError;
use engine::stat::NodeKind;
use engine::znode::Node;

use super::summary::describe;

/// The output of `snapshot` for a file's bytes, listing the `top` largest nodes
/// and, if `list_nodes`, every node; or why herd would not load the file.
pub fn lines(bytes: &[u8], top: usize, list_nodes: bool) -> Result<Vec<String>, FormatError> {
    let (zxid, tree) = engine::snapshot::load(bytes)?;
    let mut lines = vec![
        format!("zxid 0x{zxid:x}"),
        format!("file bytes {}", bytes.len()),
    ];
    lines.extend(describe(&tree, top).lines());
    if list_nodes {
        let all = tree.all();
        lines.push(format!("all nodes ({}):", all.len()));
        lines.extend(all.iter().map(|(path, node)| node_line(path, node)));
    }
    Ok(lines)
}

fn node_line(path: &str, node: &Node) -> String {
    let stat = node.stat();
    let mut line = format!(
        "  {path} len={} version={} czxid=0x{:x} mzxid=0x{:x} owner=0x{:x}",
        stat.data_length, stat.version, stat.czxid, stat.mzxid, stat.ephemeral_owner
    );
    match node.kind() {
        NodeKind::Container => line.push_str(" container"),
        NodeKind::Ttl(ttl_ms) => line.push_str(&format!(" ttl={ttl_ms}ms")),
        NodeKind::Persistent | NodeKind::Ephemeral(_) => {}
    }
    line
}
