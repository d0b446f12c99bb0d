//! Watches: one-shot data / exist / child watches, persistent and
//! persistent-recursive watches, ordering guarantees and watch removal.
//!
//! Event zxid: Apache ZooKeeper 3.8 sends -1 in notification headers, 3.9
//! sends the triggering zxid (ZOOKEEPER-4655); tests do not pin it.

mod common;

use std::time::Duration;

use tokio::time::timeout;
use zookeeper_client::{
    Acls, AddWatchMode, CreateMode, CreateOptions, Error, EventType, OneshotWatcher,
    PersistentWatcher, SessionState, WatchedEvent,
};

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
const WAIT: Duration = Duration::from_secs(5);

fn check(event: &WatchedEvent, event_type: EventType, path: &str) {
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (event_type, path),
        "{event:?}"
    );
    assert_eq!(event.session_state, SessionState::SyncConnected);
}

async fn fired(watcher: OneshotWatcher) -> WatchedEvent {
    timeout(WAIT, watcher.changed())
        .await
        .expect("watch event within timeout")
}

/// The event must already have been delivered (no waiting at all).
async fn already_fired(watcher: OneshotWatcher) -> WatchedEvent {
    timeout(Duration::ZERO, watcher.changed())
        .await
        .expect("event delivered before the response")
}

async fn next(watcher: &mut PersistentWatcher) -> WatchedEvent {
    timeout(WAIT, watcher.changed())
        .await
        .expect("persistent watch event within timeout")
}

async fn assert_quiet(watcher: &mut PersistentWatcher) {
    if let Ok(event) = timeout(Duration::from_millis(300), watcher.changed()).await {
        panic!("unexpected event {event:?}");
    }
}

// ---------------------------------------------------------------- one-shot watches

#[tokio::test]
async fn data_watch_fires_node_data_changed() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_data_changed").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_data_changed/n", b"1", &PERSISTENT)
        .await
        .unwrap();
    let (data, _, watcher) = client
        .get_and_watch_data("/watch_data_changed/n")
        .await
        .unwrap();
    assert_eq!(data, b"1");
    other
        .set_data("/watch_data_changed/n", b"2", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_data_changed/n",
    );
}

#[tokio::test]
async fn data_watch_fires_node_deleted() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_data_deleted").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_data_deleted/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, watcher) = client
        .get_and_watch_data("/watch_data_deleted/n")
        .await
        .unwrap();
    other.delete("/watch_data_deleted/n", None).await.unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDeleted,
        "/watch_data_deleted/n",
    );
}

#[tokio::test]
async fn data_watch_ignores_child_changes() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_data_ignores_children").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_data_ignores_children/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, watcher) = client
        .get_and_watch_data("/watch_data_ignores_children/n")
        .await
        .unwrap();
    other
        .create("/watch_data_ignores_children/n/c", b"", &PERSISTENT)
        .await
        .unwrap();
    other
        .delete("/watch_data_ignores_children/n/c", None)
        .await
        .unwrap();
    other
        .set_acl("/watch_data_ignores_children/n", &Acls::anyone_all(), None)
        .await
        .unwrap();
    other
        .set_data("/watch_data_ignores_children/n", b"x", None)
        .await
        .unwrap();
    // The first (and only) event is the data change: child and ACL changes did not fire it.
    check(
        &fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_data_ignores_children/n",
    );
}

#[tokio::test]
async fn exists_watch_on_missing_node_fires_node_created() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_exists_created").await;
    let other = common::connect(&server).await;
    let (stat, watcher) = client
        .check_and_watch_stat("/watch_exists_created/n")
        .await
        .unwrap();
    assert_eq!(stat, None);
    other
        .create("/watch_exists_created/n", b"", &EPHEMERAL)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeCreated,
        "/watch_exists_created/n",
    );
}

#[tokio::test]
async fn exists_watch_on_existing_node_fires_changed_then_deleted() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_exists_existing").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_exists_existing/n", b"", &PERSISTENT)
        .await
        .unwrap();

    let (stat, watcher) = client
        .check_and_watch_stat("/watch_exists_existing/n")
        .await
        .unwrap();
    assert!(stat.is_some());
    // A failed (BadVersion) delete does not fire anything.
    assert_eq!(
        other
            .delete("/watch_exists_existing/n", Some(5))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    other
        .set_data("/watch_exists_existing/n", b"x", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_exists_existing/n",
    );

    let (_, watcher) = client
        .check_and_watch_stat("/watch_exists_existing/n")
        .await
        .unwrap();
    other
        .delete("/watch_exists_existing/n", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDeleted,
        "/watch_exists_existing/n",
    );
}

#[tokio::test]
async fn child_watch_fires_on_child_create_and_delete() {
    let server = common::start();
    let root = "/watch_children";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;

    let (children, watcher) = client.list_and_watch_children(root).await.unwrap();
    assert!(children.is_empty());
    other
        .create("/watch_children/a", b"", &PERSISTENT)
        .await
        .unwrap();
    check(&fired(watcher).await, EventType::NodeChildrenChanged, root);

    let (children, _, watcher) = client.get_and_watch_children(root).await.unwrap();
    assert_eq!(children, vec!["a"]);
    other.delete("/watch_children/a", None).await.unwrap();
    check(&fired(watcher).await, EventType::NodeChildrenChanged, root);
}

#[tokio::test]
async fn child_watch_ignores_data_and_grandchild_changes() {
    let server = common::start();
    let root = "/watch_children_ignores_data";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/watch_children_ignores_data/a", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, watcher) = client.list_and_watch_children(root).await.unwrap();
    other.set_data(root, b"x", None).await.unwrap();
    other
        .set_data("/watch_children_ignores_data/a", b"x", None)
        .await
        .unwrap();
    other
        .create(
            "/watch_children_ignores_data/a/grandchild",
            b"",
            &PERSISTENT,
        )
        .await
        .unwrap();
    other
        .create("/watch_children_ignores_data/b", b"", &PERSISTENT)
        .await
        .unwrap();
    check(&fired(watcher).await, EventType::NodeChildrenChanged, root);
}

/// Real ZK: a child watch on a node that gets deleted fires NodeDeleted for
/// that node (not NodeChildrenChanged).
#[tokio::test]
async fn child_watch_on_deleted_node_fires_node_deleted() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_children_node_deleted").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_children_node_deleted/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, watcher) = client
        .list_and_watch_children("/watch_children_node_deleted/n")
        .await
        .unwrap();
    other
        .delete("/watch_children_node_deleted/n", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDeleted,
        "/watch_children_node_deleted/n",
    );
}

#[tokio::test]
async fn oneshot_watch_must_be_rearmed() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_oneshot_rearm").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_oneshot_rearm/n", b"0", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, watcher) = client
        .get_and_watch_data("/watch_oneshot_rearm/n")
        .await
        .unwrap();
    other
        .set_data("/watch_oneshot_rearm/n", b"1", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_oneshot_rearm/n",
    );
    // Changes while no watch is armed are not replayed to a new watch.
    other
        .set_data("/watch_oneshot_rearm/n", b"2", None)
        .await
        .unwrap();
    let (data, stat, watcher) = client
        .get_and_watch_data("/watch_oneshot_rearm/n")
        .await
        .unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"2"[..], 2));
    other
        .set_data("/watch_oneshot_rearm/n", b"3", None)
        .await
        .unwrap();
    check(
        &fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_oneshot_rearm/n",
    );
}

#[tokio::test]
async fn every_watching_session_gets_the_event() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_many_sessions").await;
    let second = common::connect(&server).await;
    let writer = common::connect(&server).await;
    client
        .create("/watch_many_sessions/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, w1) = client
        .get_and_watch_data("/watch_many_sessions/n")
        .await
        .unwrap();
    let (_, w2) = client
        .check_and_watch_stat("/watch_many_sessions/n")
        .await
        .unwrap();
    let (_, _, w3) = second
        .get_and_watch_data("/watch_many_sessions/n")
        .await
        .unwrap();
    writer
        .set_data("/watch_many_sessions/n", b"x", None)
        .await
        .unwrap();
    for watcher in [w1, w2, w3] {
        check(
            &fired(watcher).await,
            EventType::NodeDataChanged,
            "/watch_many_sessions/n",
        );
    }
}

#[tokio::test]
async fn multi_triggers_watches() {
    let server = common::start();
    let root = "/watch_multi";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/watch_multi/a", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, data_watcher) = client.get_and_watch_data("/watch_multi/a").await.unwrap();
    let (_, child_watcher) = client.list_and_watch_children(root).await.unwrap();
    let (_, exist_watcher) = client.check_and_watch_stat("/watch_multi/b").await.unwrap();
    let mut writer = other.new_multi_writer();
    writer.add_set_data("/watch_multi/a", b"x", None).unwrap();
    writer
        .add_create("/watch_multi/b", b"", &PERSISTENT)
        .unwrap();
    writer.commit().await.unwrap();
    check(
        &fired(data_watcher).await,
        EventType::NodeDataChanged,
        "/watch_multi/a",
    );
    check(
        &fired(child_watcher).await,
        EventType::NodeChildrenChanged,
        root,
    );
    check(
        &fired(exist_watcher).await,
        EventType::NodeCreated,
        "/watch_multi/b",
    );
}

// ---------------------------------------------------------------- ordering

/// A client sees the watch event before it sees the new data.
#[tokio::test]
async fn watch_event_arrives_before_later_read_response() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_order_before_read").await;
    let other = common::connect(&server).await;
    client
        .create("/watch_order_before_read/n", b"old", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/watch_order_before_read/p", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, data_watcher) = client
        .get_and_watch_data("/watch_order_before_read/n")
        .await
        .unwrap();
    let (_, child_watcher) = client
        .list_and_watch_children("/watch_order_before_read/p")
        .await
        .unwrap();

    other
        .set_data("/watch_order_before_read/n", b"new", None)
        .await
        .unwrap();
    other
        .create("/watch_order_before_read/p/c", b"", &PERSISTENT)
        .await
        .unwrap();

    let (data, _) = client.get_data("/watch_order_before_read/n").await.unwrap();
    assert_eq!(data, b"new");
    check(
        &already_fired(data_watcher).await,
        EventType::NodeDataChanged,
        "/watch_order_before_read/n",
    );
    // The read above was issued after both changes, so the child event is in too.
    check(
        &already_fired(child_watcher).await,
        EventType::NodeChildrenChanged,
        "/watch_order_before_read/p",
    );
}

/// Events caused by a session's own write arrive before that write's response.
#[tokio::test]
async fn own_write_event_arrives_before_write_response() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_order_own_write").await;
    client
        .create("/watch_order_own_write/n", b"", &PERSISTENT)
        .await
        .unwrap();

    let (_, _, watcher) = client
        .get_and_watch_data("/watch_order_own_write/n")
        .await
        .unwrap();
    client
        .set_data("/watch_order_own_write/n", b"x", None)
        .await
        .unwrap();
    check(
        &already_fired(watcher).await,
        EventType::NodeDataChanged,
        "/watch_order_own_write/n",
    );

    let (_, _, data_watcher) = client
        .get_and_watch_data("/watch_order_own_write/n")
        .await
        .unwrap();
    let (_, exist_watcher) = client
        .check_and_watch_stat("/watch_order_own_write/n")
        .await
        .unwrap();
    let (_, child_watcher) = client
        .list_and_watch_children("/watch_order_own_write/n")
        .await
        .unwrap();
    let (_, parent_watcher) = client
        .list_and_watch_children("/watch_order_own_write")
        .await
        .unwrap();
    client
        .delete("/watch_order_own_write/n", None)
        .await
        .unwrap();
    check(
        &already_fired(data_watcher).await,
        EventType::NodeDeleted,
        "/watch_order_own_write/n",
    );
    check(
        &already_fired(exist_watcher).await,
        EventType::NodeDeleted,
        "/watch_order_own_write/n",
    );
    check(
        &already_fired(child_watcher).await,
        EventType::NodeDeleted,
        "/watch_order_own_write/n",
    );
    check(
        &already_fired(parent_watcher).await,
        EventType::NodeChildrenChanged,
        "/watch_order_own_write",
    );
}

#[tokio::test]
async fn events_arrive_in_change_order() {
    let server = common::start();
    let root = "/watch_order_of_changes";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    for name in ["a", "b", "c"] {
        client
            .create(&format!("{root}/{name}"), b"", &PERSISTENT)
            .await
            .unwrap();
    }
    let mut watcher = client
        .watch(root, AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    // Pipelined writes from another session.
    let writes = [
        other.set_data("/watch_order_of_changes/c", b"1", None),
        other.set_data("/watch_order_of_changes/a", b"1", None),
        other.set_data("/watch_order_of_changes/b", b"1", None),
        other.set_data("/watch_order_of_changes/a", b"2", None),
    ];
    for write in writes {
        write.await.unwrap();
    }
    other
        .delete("/watch_order_of_changes/b", None)
        .await
        .unwrap();
    other
        .create("/watch_order_of_changes/d", b"", &PERSISTENT)
        .await
        .unwrap();
    let expected = [
        (EventType::NodeDataChanged, "/watch_order_of_changes/c"),
        (EventType::NodeDataChanged, "/watch_order_of_changes/a"),
        (EventType::NodeDataChanged, "/watch_order_of_changes/b"),
        (EventType::NodeDataChanged, "/watch_order_of_changes/a"),
        (EventType::NodeDeleted, "/watch_order_of_changes/b"),
        (EventType::NodeCreated, "/watch_order_of_changes/d"),
    ];
    for (event_type, path) in expected {
        check(&next(&mut watcher).await, event_type, path);
    }
    assert_quiet(&mut watcher).await;
}

// ---------------------------------------------------------------- persistent watches

/// Persistent (non-recursive) watch: data changes, child list changes,
/// deletion and re-creation of the node itself; it survives firing.
#[tokio::test]
async fn persistent_watch_sees_node_and_child_list_events() {
    let server = common::start();
    let root = "/watch_persistent";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/watch_persistent/a", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/watch_persistent/a/b", b"", &PERSISTENT)
        .await
        .unwrap();
    let mut watcher = client
        .watch("/watch_persistent/a", AddWatchMode::Persistent)
        .await
        .unwrap();

    other
        .create("/watch_persistent/a/c", b"", &PERSISTENT)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeChildrenChanged,
        "/watch_persistent/a",
    );
    other
        .set_data("/watch_persistent/a", b"x", None)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeDataChanged,
        "/watch_persistent/a",
    );
    other
        .set_data("/watch_persistent/a", b"y", None)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeDataChanged,
        "/watch_persistent/a",
    );
    // Child data changes and grandchildren are not reported.
    other
        .set_data("/watch_persistent/a/c", b"x", None)
        .await
        .unwrap();
    other
        .create("/watch_persistent/a/c/d", b"", &PERSISTENT)
        .await
        .unwrap();
    other.delete("/watch_persistent/a/c/d", None).await.unwrap();
    assert_quiet(&mut watcher).await;
    other.delete("/watch_persistent/a/c", None).await.unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeChildrenChanged,
        "/watch_persistent/a",
    );
    other.delete("/watch_persistent/a/b", None).await.unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeChildrenChanged,
        "/watch_persistent/a",
    );
    other.delete("/watch_persistent/a", None).await.unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeDeleted,
        "/watch_persistent/a",
    );
    other
        .create("/watch_persistent/a", b"", &PERSISTENT)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeCreated,
        "/watch_persistent/a",
    );
    assert_quiet(&mut watcher).await;
}

#[tokio::test]
async fn persistent_watch_on_missing_node() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_persistent_missing").await;
    let other = common::connect(&server).await;
    let mut watcher = client
        .watch("/watch_persistent_missing/n", AddWatchMode::Persistent)
        .await
        .unwrap();
    other
        .create("/watch_persistent_missing/n", b"", &PERSISTENT)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeCreated,
        "/watch_persistent_missing/n",
    );
    other
        .delete("/watch_persistent_missing/n", None)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeDeleted,
        "/watch_persistent_missing/n",
    );
}

/// Recursive watch: NodeCreated / NodeDataChanged / NodeDeleted for the node
/// and every descendant, never NodeChildrenChanged.
#[tokio::test]
async fn persistent_recursive_watch_sees_subtree_without_child_events() {
    let server = common::start();
    let root = "/watch_recursive";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/watch_recursive/a", b"", &PERSISTENT)
        .await
        .unwrap();
    let mut watcher = client
        .watch(root, AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    other
        .create("/watch_recursive/a/c", b"", &PERSISTENT)
        .await
        .unwrap();
    other
        .set_data("/watch_recursive/a", b"x", None)
        .await
        .unwrap();
    other
        .set_data("/watch_recursive/a/c", b"x", None)
        .await
        .unwrap();
    other
        .create("/watch_recursive/a/c/d", b"", &EPHEMERAL)
        .await
        .unwrap();
    other.set_data(root, b"r", None).await.unwrap();
    other.delete("/watch_recursive/a/c/d", None).await.unwrap();
    other.delete("/watch_recursive/a/c", None).await.unwrap();
    other.delete("/watch_recursive/a", None).await.unwrap();
    other
        .create("/watch_recursive/a", b"", &PERSISTENT)
        .await
        .unwrap();
    let expected = [
        (EventType::NodeCreated, "/watch_recursive/a/c"),
        (EventType::NodeDataChanged, "/watch_recursive/a"),
        (EventType::NodeDataChanged, "/watch_recursive/a/c"),
        (EventType::NodeCreated, "/watch_recursive/a/c/d"),
        (EventType::NodeDataChanged, "/watch_recursive"),
        (EventType::NodeDeleted, "/watch_recursive/a/c/d"),
        (EventType::NodeDeleted, "/watch_recursive/a/c"),
        (EventType::NodeDeleted, "/watch_recursive/a"),
        (EventType::NodeCreated, "/watch_recursive/a"),
    ];
    for (event_type, path) in expected {
        check(&next(&mut watcher).await, event_type, path);
    }
    assert_quiet(&mut watcher).await;
}

#[tokio::test]
async fn recursive_watch_does_not_see_siblings_or_parent() {
    let server = common::start();
    let root = "/watch_recursive_scope";
    let client = common::fresh_root(&server, root).await;
    let other = common::connect(&server).await;
    client
        .create("/watch_recursive_scope/a", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/watch_recursive_scope/ab", b"", &PERSISTENT)
        .await
        .unwrap();
    let mut watcher = client
        .watch(
            "/watch_recursive_scope/a",
            AddWatchMode::PersistentRecursive,
        )
        .await
        .unwrap();
    other.set_data(root, b"x", None).await.unwrap();
    other
        .set_data("/watch_recursive_scope/ab", b"x", None)
        .await
        .unwrap();
    other
        .create("/watch_recursive_scope/ab/c", b"", &PERSISTENT)
        .await
        .unwrap();
    other
        .create("/watch_recursive_scope/b", b"", &PERSISTENT)
        .await
        .unwrap();
    assert_quiet(&mut watcher).await;
    other
        .create("/watch_recursive_scope/a/c", b"", &PERSISTENT)
        .await
        .unwrap();
    check(
        &next(&mut watcher).await,
        EventType::NodeCreated,
        "/watch_recursive_scope/a/c",
    );
}

// ---------------------------------------------------------------- removal

#[tokio::test]
#[allow(deprecated)]
async fn remove_watch_succeeds_for_armed_watch() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_remove").await;
    client
        .create("/watch_remove/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, watcher) = client.get_and_watch_data("/watch_remove/n").await.unwrap();
    watcher.remove().await.unwrap();
    let (_, watcher) = client
        .list_and_watch_children("/watch_remove/n")
        .await
        .unwrap();
    watcher.remove().await.unwrap();
    let (_, watcher) = client
        .check_and_watch_stat("/watch_remove/missing")
        .await
        .unwrap();
    watcher.remove().await.unwrap();
    let watcher = client
        .watch("/watch_remove/n", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    watcher.remove().await.unwrap();
}

/// The crate sends RemoveWatches right behind a set_data that already
/// triggered (and thereby consumed) the watch on the server, which answers
/// NoWatcher.
#[tokio::test]
#[allow(deprecated)]
async fn remove_watch_already_triggered_is_no_watcher() {
    let server = common::start();
    let client = common::fresh_root(&server, "/watch_remove_no_watcher").await;
    client
        .create("/watch_remove_no_watcher/n", b"", &PERSISTENT)
        .await
        .unwrap();
    let (_, _, watcher) = client
        .get_and_watch_data("/watch_remove_no_watcher/n")
        .await
        .unwrap();
    let write = client.set_data("/watch_remove_no_watcher/n", b"x", None);
    assert_eq!(watcher.remove().await.unwrap_err(), Error::NoWatcher);
    assert_eq!(write.await.unwrap().version, 1);
}
