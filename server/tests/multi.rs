//! Multi (transactions) and multi-read.
//!
//! How the crate reports a failed multi: `MultiWriteError::OperationFailed
//! { index, source }` where `index` is the position of the op that failed and
//! `source` its error. Real ZK answers the ops before it with "ok" (0), which
//! the crate skips, and the ops after it with RuntimeInconsistency (-2), which
//! the crate never looks at because it stops at the first real error.
//! Nothing of the failed multi is applied.

mod common;

use zookeeper_client::{
    Acls, CheckWriteError, Client, CreateMode, CreateOptions, Error, MultiReadResult,
    MultiWriteError, MultiWriteResult, Stat,
};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const PERSISTENT_SEQ: CreateOptions<'static> =
    CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

async fn stat_of(client: &Client, path: &str) -> Stat {
    client.check_stat(path).await.unwrap().expect("node exists")
}

/// Apache ZooKeeper 3.8.0 answers a create inside a multi without a stat
/// (ZOOKEEPER-4026), which the crate reports as an invalid stat (czxid -1);
/// newer servers return the real stat. Accept either, but nothing else.
fn assert_multi_create_stat(stat: &Stat, actual: &Stat) {
    if stat.czxid == -1 {
        assert!(stat.is_invalid(), "{stat:?}");
    } else {
        assert_eq!(stat, actual);
    }
}

#[tokio::test]
async fn multi_applies_all_ops_with_one_zxid() {
    let server = common::start();
    let root = "/multi_all_ops";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_all_ops/old", b"", &PERSISTENT)
        .await
        .unwrap();
    let root_before = stat_of(&client, root).await;

    let mut writer = client.new_multi_writer();
    writer
        .add_create("/multi_all_ops/a", b"A", &PERSISTENT)
        .unwrap();
    writer
        .add_create("/multi_all_ops/a/b", b"B", &PERSISTENT)
        .unwrap();
    writer
        .add_create("/multi_all_ops/s-", b"", &PERSISTENT_SEQ)
        .unwrap();
    writer
        .add_set_data("/multi_all_ops/a", b"A2", Some(0))
        .unwrap();
    writer.add_check_version("/multi_all_ops/a", 1).unwrap();
    writer.add_delete("/multi_all_ops/old", Some(0)).unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results.len(), 6);

    let a = stat_of(&client, "/multi_all_ops/a").await;
    let b = stat_of(&client, "/multi_all_ops/a/b").await;
    let s = stat_of(&client, "/multi_all_ops/s-0000000002").await;
    match &results[0] {
        MultiWriteResult::Create { path, stat } => {
            assert_eq!(path, "/multi_all_ops/a");
            // (the create's own stat predates the later set_data in the same multi)
            if stat.czxid != -1 {
                assert_eq!(stat.czxid, a.czxid);
                assert_eq!(stat.version, 0);
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    match &results[1] {
        MultiWriteResult::Create { path, stat } => {
            assert_eq!(path, "/multi_all_ops/a/b");
            assert_multi_create_stat(stat, &b);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &results[2] {
        MultiWriteResult::Create { path, stat } => {
            assert_eq!(
                path, "/multi_all_ops/s-0000000002",
                "sequence counts 'old' and 'a'"
            );
            assert_multi_create_stat(stat, &s);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(results[3], MultiWriteResult::SetData { stat: a });
    assert_eq!(results[4], MultiWriteResult::Check);
    assert_eq!(results[5], MultiWriteResult::Delete);

    // One transaction, one zxid.
    assert_eq!(a.czxid, a.mzxid);
    assert_eq!(b.czxid, a.czxid);
    assert_eq!(s.czxid, a.czxid);
    assert_eq!(a.version, 1);
    assert_eq!(client.get_data("/multi_all_ops/a").await.unwrap().0, b"A2");
    assert_eq!(client.check_stat("/multi_all_ops/old").await.unwrap(), None);

    let root_after = stat_of(&client, root).await;
    assert_eq!(root_after.pzxid, a.czxid);
    assert_eq!(
        root_after.cversion,
        root_before.cversion + 3,
        "two creates and one delete"
    );
    assert_eq!(root_after.num_children, 2);
}

#[tokio::test]
async fn multi_failure_reports_failing_index_and_applies_nothing() {
    let server = common::start();
    let root = "/multi_atomic_failure";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_atomic_failure/exists", b"keep", &PERSISTENT)
        .await
        .unwrap();
    let root_before = stat_of(&client, root).await;
    let exists_before = stat_of(&client, "/multi_atomic_failure/exists").await;

    let mut writer = client.new_multi_writer();
    writer
        .add_create("/multi_atomic_failure/new1", b"", &PERSISTENT)
        .unwrap();
    writer
        .add_set_data("/multi_atomic_failure/exists", b"changed", None)
        .unwrap();
    writer
        .add_create("/multi_atomic_failure/exists", b"", &PERSISTENT)
        .unwrap();
    writer
        .add_create("/multi_atomic_failure/new2", b"", &PERSISTENT)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 2,
            source: Error::NodeExists
        }
    );

    assert_eq!(
        client
            .check_stat("/multi_atomic_failure/new1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .check_stat("/multi_atomic_failure/new2")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .get_data("/multi_atomic_failure/exists")
            .await
            .unwrap(),
        (b"keep".to_vec(), exists_before)
    );
    assert_eq!(stat_of(&client, root).await, root_before);

    // The failed multi did not consume a sequence number either.
    let (_, seq) = client
        .create("/multi_atomic_failure/s-", b"", &PERSISTENT_SEQ)
        .await
        .unwrap();
    assert_eq!(seq.to_string(), "0000000001");
}

#[tokio::test]
async fn multi_error_codes_per_op() {
    let server = common::start();
    let root = "/multi_error_codes";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_error_codes/n", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/multi_error_codes/n/c", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/multi_error_codes/e", b"", &EPHEMERAL)
        .await
        .unwrap();

    async fn single(
        client: &Client,
        build: impl FnOnce(&mut zookeeper_client::MultiWriter<'_>),
    ) -> MultiWriteError {
        let mut writer = client.new_multi_writer();
        writer.add_check_version("/multi_error_codes", 0).unwrap();
        build(&mut writer);
        writer.commit().await.unwrap_err()
    }
    let failed = |source| MultiWriteError::OperationFailed { index: 1, source };

    assert_eq!(
        single(&client, |w| w
            .add_check_version("/multi_error_codes/n", 5)
            .unwrap())
        .await,
        failed(Error::BadVersion)
    );
    assert_eq!(
        single(&client, |w| w
            .add_check_version("/multi_error_codes/none", 0)
            .unwrap())
        .await,
        failed(Error::NoNode)
    );
    assert_eq!(
        single(&client, |w| w
            .add_set_data("/multi_error_codes/n", b"", Some(3))
            .unwrap())
        .await,
        failed(Error::BadVersion)
    );
    assert_eq!(
        single(&client, |w| w
            .add_set_data("/multi_error_codes/none", b"", None)
            .unwrap())
        .await,
        failed(Error::NoNode)
    );
    assert_eq!(
        single(&client, |w| w
            .add_delete("/multi_error_codes/n", None)
            .unwrap())
        .await,
        failed(Error::NotEmpty)
    );
    assert_eq!(
        single(&client, |w| w
            .add_delete("/multi_error_codes/none", None)
            .unwrap())
        .await,
        failed(Error::NoNode)
    );
    assert_eq!(
        single(&client, |w| w
            .add_delete("/multi_error_codes/n/c", Some(9))
            .unwrap())
        .await,
        failed(Error::BadVersion)
    );
    assert_eq!(
        single(&client, |w| w
            .add_create("/multi_error_codes/none/x", b"", &PERSISTENT)
            .unwrap())
        .await,
        failed(Error::NoNode)
    );
    assert_eq!(
        single(&client, |w| w
            .add_create("/multi_error_codes/e/x", b"", &PERSISTENT)
            .unwrap())
        .await,
        failed(Error::NoChildrenForEphemerals)
    );
    assert_eq!(
        single(&client, |w| w
            .add_create("/multi_error_codes/.", b"", &PERSISTENT)
            .unwrap())
        .await,
        failed(Error::BadArguments(&"server error"))
    );
    // The failing op may be the first one.
    let mut writer = client.new_multi_writer();
    writer.add_check_version("/multi_error_codes/n", 1).unwrap();
    writer
        .add_create("/multi_error_codes/never", b"", &PERSISTENT)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 0,
            source: Error::BadVersion
        }
    );
    assert_eq!(
        client.check_stat("/multi_error_codes/never").await.unwrap(),
        None
    );
    assert_eq!(stat_of(&client, root).await.cversion, 2);
}

#[tokio::test]
async fn multi_ops_see_effects_of_earlier_ops() {
    let server = common::start();
    let root = "/multi_sees_earlier_ops";
    let client = common::fresh_root(&server, root).await;

    let mut writer = client.new_multi_writer();
    writer
        .add_create("/multi_sees_earlier_ops/p", b"", &PERSISTENT)
        .unwrap();
    writer
        .add_set_data("/multi_sees_earlier_ops/p", b"1", Some(0))
        .unwrap();
    writer
        .add_set_data("/multi_sees_earlier_ops/p", b"2", Some(1))
        .unwrap();
    writer
        .add_check_version("/multi_sees_earlier_ops/p", 2)
        .unwrap();
    writer
        .add_create("/multi_sees_earlier_ops/p/c", b"", &PERSISTENT)
        .unwrap();
    writer
        .add_delete("/multi_sees_earlier_ops/p/c", Some(0))
        .unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results.len(), 6);
    let p = stat_of(&client, "/multi_sees_earlier_ops/p").await;
    assert_eq!(p.version, 2);
    assert_eq!(p.cversion, 2);
    assert_eq!(p.num_children, 0);
    assert_eq!(p.pzxid, p.czxid);
    // Each result is the node's stat right after that op, not at the end of
    // the multi: the child create/delete came later.
    assert_eq!(
        results[2],
        MultiWriteResult::SetData {
            stat: Stat { cversion: 0, ..p }
        }
    );

    // Deleting a node created earlier in the same failing multi: still atomic.
    let mut writer = client.new_multi_writer();
    writer
        .add_create("/multi_sees_earlier_ops/q", b"", &PERSISTENT)
        .unwrap();
    writer
        .add_delete("/multi_sees_earlier_ops/p", None)
        .unwrap();
    writer
        .add_delete("/multi_sees_earlier_ops/p", None)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 2,
            source: Error::NoNode
        }
    );
    assert_eq!(
        client
            .check_stat("/multi_sees_earlier_ops/q")
            .await
            .unwrap(),
        None
    );
    assert_eq!(stat_of(&client, "/multi_sees_earlier_ops/p").await, p);
}

#[tokio::test]
async fn multi_delete_then_sequential_create() {
    let server = common::start();
    let root = "/multi_delete_then_sequential";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_delete_then_sequential/x", b"", &PERSISTENT)
        .await
        .unwrap();
    let mut writer = client.new_multi_writer();
    writer
        .add_delete("/multi_delete_then_sequential/x", None)
        .unwrap();
    writer
        .add_create("/multi_delete_then_sequential/s-", b"", &PERSISTENT_SEQ)
        .unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results[0], MultiWriteResult::Delete);
    match &results[1] {
        MultiWriteResult::Create { path, .. } => {
            assert_eq!(path, "/multi_delete_then_sequential/s-0000000001")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(stat_of(&client, root).await.cversion, 3);
}

#[tokio::test]
async fn multi_empty_is_ok() {
    let server = common::start();
    let client = common::fresh_root(&server, "/multi_empty").await;
    assert_eq!(client.new_multi_writer().commit().await.unwrap(), vec![]);
    assert!(client.new_multi_reader().commit().await.unwrap().is_empty());
}

#[tokio::test]
async fn check_writer_separates_check_failure() {
    let server = common::start();
    let root = "/multi_check_writer";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_check_writer/guard", b"", &PERSISTENT)
        .await
        .unwrap();

    let mut writer = client
        .new_check_writer("/multi_check_writer/guard", Some(0))
        .unwrap();
    writer
        .add_create("/multi_check_writer/a", b"", &PERSISTENT)
        .unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results.len(), 1);

    let mut writer = client
        .new_check_writer("/multi_check_writer/guard", Some(1))
        .unwrap();
    writer
        .add_create("/multi_check_writer/b", b"", &PERSISTENT)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        CheckWriteError::CheckFailed {
            source: Error::BadVersion
        }
    );

    let mut writer = client
        .new_check_writer("/multi_check_writer/gone", None)
        .unwrap();
    writer
        .add_create("/multi_check_writer/b", b"", &PERSISTENT)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        CheckWriteError::CheckFailed {
            source: Error::NoNode
        }
    );

    let mut writer = client
        .new_check_writer("/multi_check_writer/guard", None)
        .unwrap();
    writer
        .add_create("/multi_check_writer/a", b"", &PERSISTENT)
        .unwrap();
    assert_eq!(
        writer.commit().await.unwrap_err(),
        CheckWriteError::OperationFailed {
            index: 0,
            source: Error::NodeExists
        }
    );
    assert_eq!(
        client.check_stat("/multi_check_writer/b").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn multi_read_reports_errors_individually() {
    let server = common::start();
    let root = "/multi_read";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/multi_read/a", b"data-a", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/multi_read/a/x", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/multi_read/a/y", b"", &PERSISTENT)
        .await
        .unwrap();
    let a = stat_of(&client, "/multi_read/a").await;

    let mut reader = client.new_multi_reader();
    reader.add_get_data("/multi_read/a").unwrap();
    reader.add_get_children("/multi_read/a").unwrap();
    reader.add_get_data("/multi_read/missing").unwrap();
    reader.add_get_children("/multi_read/missing").unwrap();
    reader.add_get_data("/multi_read/a/x").unwrap();
    let results = reader.commit().await.unwrap();
    assert_eq!(results.len(), 5);
    match &results[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!(data, b"data-a");
            assert_eq!(stat, &a);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &results[1] {
        MultiReadResult::Children { children } => {
            let mut children = children.clone();
            children.sort();
            assert_eq!(children, vec!["x", "y"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        matches!(&results[2], MultiReadResult::Error { err: Error::NoNode }),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], MultiReadResult::Error { err: Error::NoNode }),
        "{:?}",
        results[3]
    );
    match &results[4] {
        MultiReadResult::Data { data, stat } => {
            assert!(data.is_empty());
            assert_eq!(stat, &stat_of(&client, "/multi_read/a/x").await);
        }
        other => panic!("unexpected {other:?}"),
    }
}
