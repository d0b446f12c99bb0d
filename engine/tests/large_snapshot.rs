//! A snapshot of a tree larger than one rkyv archive can address (2 GiB):
//! before snapshots were written in chunks, encoding such a tree failed, and
//! with it every later snapshot. Built from the largest znodes herd accepts.
//! (About 5 GiB of memory and half a minute here, most of it the kernel
//! handing out fresh pages.)

use std::sync::Arc;

use herd_engine::acl::Acl;
use herd_engine::snapshot;
use herd_engine::tree::DataTree;
use herd_engine::znode::{Data, Node, MAX_DATA};

#[test]
fn a_tree_of_more_than_2_gib_snapshots_and_loads() {
    let tree = DataTree::new();
    let open = Arc::new(Acl::open_unsafe());
    let nodes = (2usize << 30) / MAX_DATA + 2;
    let mut value = vec![0u8; MAX_DATA];
    value[0] = 1;
    value[MAX_DATA - 1] = 2;
    let value = Data::new(&value);
    for i in 0..nodes {
        let node = Node::new(value.clone(), open.clone(), i as i64 + 1, 5, 0);
        tree.put(&format!("/big{i:02}"), &node);
    }
    drop(value);
    assert!(tree.data_bytes() > 2 << 30);
    let bytes = snapshot::encode(&tree, 42);
    let (node_count, data_bytes) = (tree.node_count(), tree.data_bytes());
    drop(tree);
    let (zxid, loaded) = snapshot::load(&bytes).expect("a snapshot over 2 GiB loads");
    drop(bytes);
    assert_eq!(zxid, 42);
    assert_eq!(loaded.node_count(), node_count);
    assert_eq!(loaded.data_bytes(), data_bytes);
    for i in 0..nodes {
        let node = loaded.get(&format!("/big{i:02}")).expect("node");
        let data = node.data().unwrap();
        assert_eq!((data.len(), data[0], data[MAX_DATA - 1]), (MAX_DATA, 1, 2));
        assert_eq!(node.stat().czxid, i as i64 + 1);
    }
}
