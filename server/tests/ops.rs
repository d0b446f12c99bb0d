//! Single-operation semantics: every create mode, reads, writes, ACL ops,
//! children listing, sync, ephemerals listing, descendant counting, exact
//! Stat bookkeeping, sequential naming and error codes.
//!
//! Facts verified against Apache ZooKeeper 3.8 are written next to the
//! assertions that pin them.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zookeeper_client::{
    Acl, Acls, AuthId, Client, CreateMode, CreateOptions, Error, Permission, Stat,
};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const PERSISTENT_SEQ: CreateOptions<'static> =
    CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
const EPHEMERAL_SEQ: CreateOptions<'static> =
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn stat_of(client: &Client, path: &str) -> Stat {
    client.check_stat(path).await.unwrap().expect("node exists")
}

// ---------------------------------------------------------------- create modes

#[tokio::test]
async fn create_persistent_returns_full_stat() {
    let server = common::start();
    let root = "/ops_create_persistent";
    let client = common::fresh_root(&server, root).await;

    let before = now_ms();
    let (stat, seq) = client
        .create("/ops_create_persistent/n", b"hello", &PERSISTENT)
        .await
        .unwrap();
    let after = now_ms();
    assert_eq!(seq.into_i64(), -1, "non-sequential create has no sequence");
    assert!(stat.czxid > 0);
    assert_eq!(stat.mzxid, stat.czxid);
    assert_eq!(stat.pzxid, stat.czxid);
    assert_eq!(stat.ctime, stat.mtime);
    assert!(
        stat.ctime >= before - 5_000 && stat.ctime <= after + 5_000,
        "ctime is wall clock ms"
    );
    assert_eq!(stat.version, 0);
    assert_eq!(stat.cversion, 0);
    assert_eq!(stat.aversion, 0);
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.num_children, 0);

    // The Create2 stat is exactly what a later read reports.
    let (data, read_stat) = client.get_data("/ops_create_persistent/n").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(read_stat, stat);
    assert_eq!(stat_of(&client, "/ops_create_persistent/n").await, stat);
    assert_eq!(
        client.get_acl("/ops_create_persistent/n").await.unwrap().0,
        Acls::anyone_all().to_vec()
    );
}

#[tokio::test]
async fn create_with_empty_data() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_create_empty_data").await;
    let (stat, _) = client
        .create("/ops_create_empty_data/n", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(stat.data_length, 0);
    let (data, _) = client.get_data("/ops_create_empty_data/n").await.unwrap();
    assert!(data.is_empty());
}

#[tokio::test]
async fn create_ephemeral_owner_is_session_id() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_create_ephemeral").await;
    let (stat, _) = client
        .create("/ops_create_ephemeral/e", b"x", &EPHEMERAL)
        .await
        .unwrap();
    assert_eq!(stat.ephemeral_owner, client.session_id().0);
    assert_ne!(stat.ephemeral_owner, 0);
    assert_eq!(
        stat_of(&client, "/ops_create_ephemeral/e")
            .await
            .ephemeral_owner,
        client.session_id().0
    );

    // Another session sees the same owner.
    let other = common::connect(&server).await;
    assert_eq!(
        stat_of(&other, "/ops_create_ephemeral/e")
            .await
            .ephemeral_owner,
        client.session_id().0
    );
    assert_ne!(other.session_id().0, client.session_id().0);
}

#[tokio::test]
async fn ephemeral_cannot_have_children() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_ephemeral_no_children").await;
    client
        .create("/ops_ephemeral_no_children/e", b"", &EPHEMERAL)
        .await
        .unwrap();
    for options in [&PERSISTENT, &EPHEMERAL, &CONTAINER] {
        assert_eq!(
            client
                .create("/ops_ephemeral_no_children/e/c", b"", options)
                .await
                .unwrap_err(),
            Error::NoChildrenForEphemerals
        );
    }
    for options in [&PERSISTENT_SEQ, &EPHEMERAL_SEQ] {
        assert_eq!(
            client
                .create("/ops_ephemeral_no_children/e/c", b"", options)
                .await
                .unwrap_err(),
            Error::NoChildrenForEphemerals
        );
    }
    // Nothing was created and the failed creates did not touch the ephemeral.
    let stat = stat_of(&client, "/ops_ephemeral_no_children/e").await;
    assert_eq!((stat.num_children, stat.cversion), (0, 0));
}

#[tokio::test]
async fn create_sequential_appends_ten_digit_counter() {
    let server = common::start();
    let root = "/ops_create_sequential";
    let client = common::fresh_root(&server, root).await;

    let (stat0, seq0) = client
        .create("/ops_create_sequential/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    let (_, seq1) = client
        .create("/ops_create_sequential/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    let (estat, seq2) = client
        .create("/ops_create_sequential/e-", b"", &EPHEMERAL_SEQ)
        .await
        .unwrap();
    assert_eq!(stat0.ephemeral_owner, 0);
    assert_eq!(estat.ephemeral_owner, client.session_id().0);
    assert_eq!(
        (seq0.into_i64(), seq1.into_i64(), seq2.into_i64()),
        (0, 1, 2)
    );
    assert_eq!(seq0.to_string(), "0000000000");
    assert_eq!(seq2.to_string(), "0000000002");

    // A non-sequential child create also advances the parent counter.
    client
        .create("/ops_create_sequential/plain", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, seq4) = client
        .create("/ops_create_sequential/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(seq4.into_i64(), 4);

    assert_eq!(
        sorted(client.list_children(root).await.unwrap()),
        vec![
            "e-0000000002",
            "plain",
            "s-0000000000",
            "s-0000000001",
            "s-0000000004"
        ]
    );
}

/// Real ZooKeeper: the parent's cversion counts creates AND deletes of
/// children, but the sequential suffix only counts child creates (deletes do
/// not advance it).
#[tokio::test]
async fn sequential_counter_counts_creates_not_deletes() {
    let server = common::start();
    let root = "/ops_sequential_after_delete";
    let client = common::fresh_root(&server, root).await;

    let (_, s0) = client
        .create("/ops_sequential_after_delete/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(s0.to_string(), "0000000000");
    client
        .delete("/ops_sequential_after_delete/s-0000000000", None)
        .await
        .unwrap();
    assert_eq!(stat_of(&client, root).await.cversion, 2);

    let (_, s1) = client
        .create("/ops_sequential_after_delete/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(s1.to_string(), "0000000001");

    client
        .create("/ops_sequential_after_delete/x", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_sequential_after_delete/y", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .delete("/ops_sequential_after_delete/x", None)
        .await
        .unwrap();
    client
        .delete("/ops_sequential_after_delete/y", None)
        .await
        .unwrap();
    // 4 creates + 3 deletes so far.
    assert_eq!(stat_of(&client, root).await.cversion, 7);

    let (_, s2) = client
        .create("/ops_sequential_after_delete/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(s2.to_string(), "0000000004");
    let stat = stat_of(&client, root).await;
    assert_eq!(stat.cversion, 8);
    assert_eq!(stat.num_children, 2);
    assert_eq!(
        sorted(client.list_children(root).await.unwrap()),
        vec!["s-0000000001", "s-0000000004"]
    );
}

/// Same rule when the delete and the sequential create are pipelined.
#[tokio::test]
async fn sequential_counter_with_pipelined_delete() {
    let server = common::start();
    let root = "/ops_sequential_pipelined";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/ops_sequential_pipelined/x", b"", &PERSISTENT)
        .await
        .unwrap();
    let delete = client.delete("/ops_sequential_pipelined/x", None);
    let create = client.create("/ops_sequential_pipelined/s-", b"", &PERSISTENT_SEQ);
    delete.await.unwrap();
    let (_, seq) = create.await.unwrap();
    assert_eq!(seq.to_string(), "0000000001");
    assert_eq!(stat_of(&client, root).await.cversion, 3);
}

/// A sequential create may end in '/': the name is just the counter.
#[tokio::test]
async fn sequential_path_may_end_with_slash() {
    let server = common::start();
    let root = "/ops_sequential_trailing_slash";
    let client = common::fresh_root(&server, root).await;
    let (_, seq) = client
        .create("/ops_sequential_trailing_slash/", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 0);
    assert_eq!(
        client.list_children(root).await.unwrap(),
        vec!["0000000000"]
    );
}

#[tokio::test]
async fn create_container_and_ttl_report_zero_ephemeral_owner() {
    let server = common::start();
    let root = "/ops_create_container_ttl";
    let client = common::fresh_root(&server, root).await;

    let (cstat, cseq) = client
        .create("/ops_create_container_ttl/c", b"c", &CONTAINER)
        .await
        .unwrap();
    assert_eq!(cseq.into_i64(), -1);
    // Real ZK does not expose the internal container/TTL marker in the stat.
    assert_eq!(cstat.ephemeral_owner, 0);
    assert_eq!(stat_of(&client, "/ops_create_container_ttl/c").await, cstat);

    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    let (tstat, _) = client
        .create("/ops_create_container_ttl/t", b"t", &ttl)
        .await
        .unwrap();
    assert_eq!(tstat.ephemeral_owner, 0);
    assert_eq!(tstat.data_length, 1);
    assert_eq!(stat_of(&client, "/ops_create_container_ttl/t").await, tstat);

    let seq_ttl = CreateMode::PersistentSequential
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    let (sstat, seq) = client
        .create("/ops_create_container_ttl/s-", b"", &seq_ttl)
        .await
        .unwrap();
    assert_eq!(seq.to_string(), "0000000002");
    assert_eq!(sstat.ephemeral_owner, 0);

    // Containers and TTL nodes may have children.
    client
        .create("/ops_create_container_ttl/c/child", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_create_container_ttl/t/child", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        sorted(client.list_children(root).await.unwrap()),
        vec!["c", "s-0000000002", "t"]
    );
}

#[tokio::test]
async fn create_errors() {
    let server = common::start();
    let root = "/ops_create_errors";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/ops_create_errors/n", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        client
            .create("/ops_create_errors/n", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        client
            .create("/ops_create_errors/n", b"", &EPHEMERAL)
            .await
            .unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        client
            .create("/ops_create_errors/n", b"", &CONTAINER)
            .await
            .unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        client
            .create("/ops_create_errors/missing/n", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client
            .create("/ops_create_errors/missing/s-", b"", &PERSISTENT_SEQ)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    // Failed creates leave the parent untouched.
    let stat = stat_of(&client, root).await;
    assert_eq!((stat.cversion, stat.num_children), (1, 1));
}

// ---------------------------------------------------------------- delete

#[tokio::test]
async fn delete_with_and_without_version() {
    let server = common::start();
    let root = "/ops_delete";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/ops_delete/a", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_delete/b", b"", &PERSISTENT)
        .await
        .unwrap();
    client.set_data("/ops_delete/b", b"1", None).await.unwrap();

    client.delete("/ops_delete/a", None).await.unwrap();
    assert_eq!(client.check_stat("/ops_delete/a").await.unwrap(), None);

    assert_eq!(
        client.delete("/ops_delete/b", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        client.delete("/ops_delete/b", Some(2)).await.unwrap_err(),
        Error::BadVersion
    );
    client.delete("/ops_delete/b", Some(1)).await.unwrap();
    assert_eq!(client.check_stat("/ops_delete/b").await.unwrap(), None);

    assert_eq!(
        client.delete("/ops_delete/b", None).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client.delete("/ops_delete/b", Some(1)).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client.list_children(root).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn delete_non_empty_fails() {
    let server = common::start();
    let root = "/ops_delete_not_empty";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/ops_delete_not_empty/p", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_delete_not_empty/p/c", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        client
            .delete("/ops_delete_not_empty/p", None)
            .await
            .unwrap_err(),
        Error::NotEmpty
    );
    assert_eq!(
        client
            .delete("/ops_delete_not_empty/p", Some(0))
            .await
            .unwrap_err(),
        Error::NotEmpty
    );
    // Real ZK checks the version before emptiness.
    assert_eq!(
        client
            .delete("/ops_delete_not_empty/p", Some(7))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    client
        .delete("/ops_delete_not_empty/p/c", None)
        .await
        .unwrap();
    client
        .delete("/ops_delete_not_empty/p", Some(0))
        .await
        .unwrap();
}

// ---------------------------------------------------------------- data

#[tokio::test]
async fn exists_reports_stat_or_none() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_exists").await;
    assert_eq!(
        client.check_stat("/ops_exists/missing").await.unwrap(),
        None
    );
    assert_eq!(
        client
            .check_stat("/ops_exists/missing/deeper")
            .await
            .unwrap(),
        None
    );
    let (stat, _) = client
        .create("/ops_exists/n", b"abc", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(
        client.check_stat("/ops_exists/n").await.unwrap(),
        Some(stat)
    );
}

#[tokio::test]
async fn set_data_bumps_version_and_mzxid() {
    let server = common::start();
    let root = "/ops_set_data";
    let client = common::fresh_root(&server, root).await;
    let (created, _) = client
        .create("/ops_set_data/n", b"one", &PERSISTENT)
        .await
        .unwrap();

    let s1 = client
        .set_data("/ops_set_data/n", b"twotwo", Some(0))
        .await
        .unwrap();
    assert_eq!(s1.version, 1);
    assert!(s1.mzxid > created.mzxid);
    assert_eq!(s1.czxid, created.czxid);
    assert_eq!(s1.pzxid, created.pzxid, "data change does not move pzxid");
    assert_eq!(s1.ctime, created.ctime);
    assert!(s1.mtime >= created.mtime);
    assert_eq!(s1.data_length, 6);
    assert_eq!((s1.cversion, s1.aversion, s1.num_children), (0, 0, 0));
    assert_eq!(
        client.get_data("/ops_set_data/n").await.unwrap(),
        (b"twotwo".to_vec(), s1)
    );

    // Unconditional write (-1).
    let s2 = client.set_data("/ops_set_data/n", b"", None).await.unwrap();
    assert_eq!(s2.version, 2);
    assert_eq!(s2.data_length, 0);
    assert!(s2.mzxid > s1.mzxid);

    // Same data still counts as a change.
    let s3 = client
        .set_data("/ops_set_data/n", b"", Some(2))
        .await
        .unwrap();
    assert_eq!(s3.version, 3);
    assert!(s3.mzxid > s2.mzxid);

    assert_eq!(
        client
            .set_data("/ops_set_data/n", b"x", Some(2))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        client
            .set_data("/ops_set_data/n", b"x", Some(4))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        client
            .set_data("/ops_set_data/missing", b"x", None)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client
            .set_data("/ops_set_data/missing", b"x", Some(0))
            .await
            .unwrap_err(),
        Error::NoNode
    );
    // The failed writes changed nothing.
    assert_eq!(
        client.get_data("/ops_set_data/n").await.unwrap(),
        (Vec::new(), s3)
    );
    // Writing a child's data does not touch the parent.
    assert_eq!(
        stat_of(&client, root).await.mzxid,
        stat_of(&client, root).await.czxid
    );
}

#[tokio::test]
async fn get_data_errors() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_get_data_errors").await;
    assert_eq!(
        client
            .get_data("/ops_get_data_errors/missing")
            .await
            .unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test]
async fn binary_data_round_trips() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_binary_data").await;
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let (stat, _) = client
        .create("/ops_binary_data/n", &data, &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(stat.data_length, 100_000);
    assert_eq!(client.get_data("/ops_binary_data/n").await.unwrap().0, data);
}

// ---------------------------------------------------------------- children & parent stat

#[tokio::test]
async fn parent_stat_tracks_child_changes() {
    let server = common::start();
    let root = "/ops_parent_stat";
    let client = common::fresh_root(&server, root).await;
    let parent0 = stat_of(&client, root).await;
    assert_eq!(
        (parent0.cversion, parent0.num_children, parent0.pzxid),
        (0, 0, parent0.czxid)
    );

    let (a, _) = client
        .create("/ops_parent_stat/a", b"", &PERSISTENT)
        .await
        .unwrap();
    let parent1 = stat_of(&client, root).await;
    assert_eq!(parent1.cversion, 1);
    assert_eq!(parent1.num_children, 1);
    assert_eq!(
        parent1.pzxid, a.czxid,
        "pzxid = zxid of the last child change"
    );
    assert_eq!(
        parent1.mzxid, parent0.mzxid,
        "child changes do not touch mzxid"
    );
    assert_eq!(parent1.mtime, parent0.mtime);
    assert_eq!(parent1.version, 0);

    let (b, _) = client
        .create("/ops_parent_stat/b", b"", &EPHEMERAL)
        .await
        .unwrap();
    let parent2 = stat_of(&client, root).await;
    assert_eq!(
        (parent2.cversion, parent2.num_children, parent2.pzxid),
        (2, 2, b.czxid)
    );

    // Child data changes do not affect the parent.
    client
        .set_data("/ops_parent_stat/a", b"x", None)
        .await
        .unwrap();
    assert_eq!(stat_of(&client, root).await, parent2);

    client.delete("/ops_parent_stat/a", None).await.unwrap();
    let parent3 = stat_of(&client, root).await;
    assert_eq!(parent3.cversion, 3, "delete counts as a child change");
    assert_eq!(parent3.num_children, 1);
    assert!(parent3.pzxid > parent2.pzxid, "delete moves pzxid");
    assert_eq!(parent3.mzxid, parent0.mzxid);

    // The delete's zxid lies strictly between the previous and the next write.
    let (later, _) = client
        .create("/ops_parent_stat/c", b"", &PERSISTENT)
        .await
        .unwrap();
    assert!(parent3.pzxid < later.czxid);
    let parent4 = stat_of(&client, root).await;
    assert_eq!(
        (parent4.cversion, parent4.num_children, parent4.pzxid),
        (4, 2, later.czxid)
    );
}

#[tokio::test]
async fn get_children_and_get_children2() {
    let server = common::start();
    let root = "/ops_get_children";
    let client = common::fresh_root(&server, root).await;
    assert_eq!(
        client.list_children(root).await.unwrap(),
        Vec::<String>::new()
    );
    for name in ["b", "a", "c"] {
        client
            .create(&format!("{root}/{name}"), b"", &PERSISTENT)
            .await
            .unwrap();
    }
    client
        .create("/ops_get_children/a/deep", b"", &PERSISTENT)
        .await
        .unwrap();
    // Real ZK returns children in no particular order; compare sorted.
    assert_eq!(
        sorted(client.list_children(root).await.unwrap()),
        vec!["a", "b", "c"]
    );

    let (children, stat) = client.get_children(root).await.unwrap();
    assert_eq!(sorted(children), vec!["a", "b", "c"]);
    assert_eq!(stat, stat_of(&client, root).await);
    assert_eq!((stat.num_children, stat.cversion), (3, 3));

    assert_eq!(
        client.list_children("/ops_get_children/a").await.unwrap(),
        vec!["deep"]
    );
    assert_eq!(
        client
            .list_children("/ops_get_children/missing")
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client
            .get_children("/ops_get_children/missing")
            .await
            .unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test]
async fn count_descendants_excludes_node_itself() {
    let server = common::start();
    let root = "/ops_count_descendants";
    let client = common::fresh_root(&server, root).await;
    assert_eq!(client.count_descendants_number(root).await.unwrap(), 0);
    client
        .create("/ops_count_descendants/a", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_count_descendants/a/b", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_count_descendants/a/b/c", b"", &EPHEMERAL)
        .await
        .unwrap();
    client
        .create("/ops_count_descendants/d", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_eq!(client.count_descendants_number(root).await.unwrap(), 4);
    assert_eq!(
        client
            .count_descendants_number("/ops_count_descendants/a")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        client
            .count_descendants_number("/ops_count_descendants/a/b/c")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .count_descendants_number("/ops_count_descendants/missing")
            .await
            .unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test]
async fn get_ephemerals_lists_own_session_by_prefix() {
    let server = common::start();
    let root = "/ops_get_ephemerals";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/ops_get_ephemerals/e1", b"", &EPHEMERAL)
        .await
        .unwrap();
    client
        .create("/ops_get_ephemerals/p", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ops_get_ephemerals/p/e2", b"", &EPHEMERAL)
        .await
        .unwrap();
    client
        .create("/ops_get_ephemerals/x-", b"", &EPHEMERAL_SEQ)
        .await
        .unwrap();
    other
        .create("/ops_get_ephemerals/theirs", b"", &EPHEMERAL)
        .await
        .unwrap();

    // Order is unspecified in real ZK; compare sorted.
    assert_eq!(
        sorted(client.list_ephemerals(root).await.unwrap()),
        vec![
            "/ops_get_ephemerals/e1",
            "/ops_get_ephemerals/p/e2",
            "/ops_get_ephemerals/x-0000000002"
        ]
    );
    // Plain string-prefix matching, the node itself included.
    assert_eq!(
        client
            .list_ephemerals("/ops_get_ephemerals/e")
            .await
            .unwrap(),
        vec!["/ops_get_ephemerals/e1"]
    );
    assert_eq!(
        client
            .list_ephemerals("/ops_get_ephemerals/e1")
            .await
            .unwrap(),
        vec!["/ops_get_ephemerals/e1"]
    );
    assert_eq!(
        client
            .list_ephemerals("/ops_get_ephemerals/p")
            .await
            .unwrap(),
        vec!["/ops_get_ephemerals/p/e2"]
    );
    // A missing prefix is not an error.
    assert_eq!(
        client
            .list_ephemerals("/ops_get_ephemerals/zzz")
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        other.list_ephemerals(root).await.unwrap(),
        vec!["/ops_get_ephemerals/theirs"]
    );
    // Deleted ephemerals disappear from the list.
    client.delete("/ops_get_ephemerals/e1", None).await.unwrap();
    assert_eq!(
        client
            .list_ephemerals("/ops_get_ephemerals/e")
            .await
            .unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn sync_succeeds_even_for_missing_path() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_sync").await;
    client.sync("/ops_sync").await.unwrap();
    client.sync("/ops_sync/missing").await.unwrap();
    client.sync("/").await.unwrap();
}

// ---------------------------------------------------------------- acl ops

#[tokio::test]
async fn set_acl_bumps_aversion_only() {
    let server = common::start();
    let root = "/ops_set_acl";
    let client = common::fresh_root(&server, root).await;
    let (created, _) = client
        .create("/ops_set_acl/n", b"d", &PERSISTENT)
        .await
        .unwrap();

    let acl = [
        Acl::new(Permission::READ | Permission::ADMIN, AuthId::anyone()),
        Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1")),
    ];
    let s1 = client
        .set_acl("/ops_set_acl/n", &acl, Some(0))
        .await
        .unwrap();
    assert_eq!(s1.aversion, 1);
    assert_eq!(s1.version, 0);
    assert_eq!(s1.mzxid, created.mzxid, "ACL change is not a data change");
    assert_eq!(s1.mtime, created.mtime);
    assert_eq!(s1.pzxid, created.pzxid);
    assert_eq!(s1.cversion, 0);
    let (read_acl, read_stat) = client.get_acl("/ops_set_acl/n").await.unwrap();
    assert_eq!(read_acl, acl.to_vec());
    assert_eq!(read_stat, s1);

    assert_eq!(
        client
            .set_acl("/ops_set_acl/n", &acl, Some(0))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        client
            .set_acl("/ops_set_acl/n", &acl, Some(2))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    let s2 = client
        .set_acl("/ops_set_acl/n", &Acls::anyone_all(), None)
        .await
        .unwrap();
    assert_eq!(s2.aversion, 2);
    let s3 = client
        .set_acl("/ops_set_acl/n", &Acls::anyone_all(), Some(2))
        .await
        .unwrap();
    assert_eq!(s3.aversion, 3, "setting the same ACL still counts");
    assert_eq!(
        client.get_acl("/ops_set_acl/n").await.unwrap(),
        (Acls::anyone_all().to_vec(), s3)
    );

    assert_eq!(
        client
            .set_acl("/ops_set_acl/missing", &Acls::anyone_all(), None)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client.get_acl("/ops_set_acl/missing").await.unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test]
async fn duplicate_acl_entries_are_collapsed() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_duplicate_acl").await;
    let acl = [
        Acl::new(Permission::READ, AuthId::anyone()),
        Acl::new(Permission::READ, AuthId::anyone()),
    ];
    client
        .create(
            "/ops_duplicate_acl/n",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&acl)),
        )
        .await
        .unwrap();
    assert_eq!(
        client.get_acl("/ops_duplicate_acl/n").await.unwrap().0,
        vec![Acl::new(Permission::READ, AuthId::anyone())]
    );
}

// ---------------------------------------------------------------- paths

/// The crate validates these paths before sending anything, so these only
/// confirm that the client refuses them; they never reach the server.
#[tokio::test]
async fn client_rejects_malformed_paths() {
    let server = common::start();
    let client = common::fresh_root(&server, "/ops_client_bad_paths").await;
    for path in [
        "",
        "a",
        "/ops_client_bad_paths/",
        "/ops_client_bad_paths//b",
        "/ops_client_bad_paths/./b",
        "/ops_client_bad_paths/../b",
        "/ops_client_bad_paths/\u{1}",
        "/ops_client_bad_paths/a\u{0}b",
    ] {
        let err = client.create(path, b"", &PERSISTENT).await.unwrap_err();
        assert!(matches!(err, Error::BadArguments(_)), "{path:?}: {err:?}");
        let err = client.get_data(path).await.unwrap_err();
        assert!(matches!(err, Error::BadArguments(_)), "{path:?}: {err:?}");
    }
}

/// Paths whose last component is "." or ".." pass the crate's check and are
/// rejected by the server with BadArguments (the crate reports server-side
/// BadArguments as `BadArguments("server error")`).
#[tokio::test]
async fn server_rejects_relative_last_component() {
    let server = common::start();
    let root = "/ops_server_bad_paths";
    let client = common::fresh_root(&server, root).await;
    for path in ["/ops_server_bad_paths/.", "/ops_server_bad_paths/.."] {
        assert_eq!(
            client.create(path, b"", &PERSISTENT).await.unwrap_err(),
            Error::BadArguments(&"server error")
        );
        assert_eq!(
            client.create(path, b"", &EPHEMERAL).await.unwrap_err(),
            Error::BadArguments(&"server error")
        );
        // Reads do not validate: the node simply does not exist.
        assert_eq!(client.get_data(path).await.unwrap_err(), Error::NoNode);
        assert_eq!(client.check_stat(path).await.unwrap(), None);
    }
    // Real ZK checks that the parent exists before validating the name.
    assert_eq!(
        client
            .create("/ops_server_bad_paths/missing/.", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        client
            .create("/ops_server_bad_paths/missing/..", b"", &PERSISTENT)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(stat_of(&client, root).await.cversion, 0);
}
