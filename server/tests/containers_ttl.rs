//! Server-side cleanup of container and TTL nodes.
//!
//! TIMING: real Apache ZooKeeper runs its container/TTL sweep every 60 s
//! (znode.container.checkIntervalMs default 60000), so these tests poll for up
//! to `expiry_wait()` = 70 s. When herd runs with a short check interval,
//! shorten `expiry_wait()` accordingly (e.g. a few times the interval).

mod common;

use std::time::Duration;

use tokio::time::{sleep, timeout, Instant};
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, EventType};

/// TIMING: shorten for herd (real ZK sweeps every 60 s).
fn expiry_wait() -> Duration {
    // Apache ZooKeeper sweeps every 60 s; the herd test server every few hundred ms.
    Duration::from_secs(if std::env::var("HERD_TEST_ZK").is_ok() {
        70
    } else {
        10
    })
}
const POLL: Duration = Duration::from_millis(250);

const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());

async fn wait_until_gone(client: &Client, path: &str) {
    let deadline = Instant::now() + expiry_wait();
    while client.check_stat(path).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{path} still exists after {:?}",
            expiry_wait()
        );
        sleep(POLL).await;
    }
}

#[tokio::test]
async fn container_is_deleted_after_its_last_child_is_removed() {
    let server = common::start();
    let root = "/container_cleanup";
    let client = common::fresh_root(&server, root).await;
    client
        .create("/container_cleanup/used", b"", &CONTAINER)
        .await
        .unwrap();
    client
        .create("/container_cleanup/used/child", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/container_cleanup/never_used", b"", &CONTAINER)
        .await
        .unwrap();
    client
        .create("/container_cleanup/busy", b"", &CONTAINER)
        .await
        .unwrap();
    client
        .create("/container_cleanup/busy/child", b"", &PERSISTENT)
        .await
        .unwrap();

    let (_, watcher) = client
        .check_and_watch_stat("/container_cleanup/used")
        .await
        .unwrap();
    client
        .delete("/container_cleanup/used/child", None)
        .await
        .unwrap();
    // Deleting the child by itself does not delete the container.
    assert!(client
        .check_stat("/container_cleanup/used")
        .await
        .unwrap()
        .is_some());

    wait_until_gone(&client, "/container_cleanup/used").await;
    let event = timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap();
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeDeleted, "/container_cleanup/used")
    );

    // A container that never had a child, and one that still has a child, stay.
    assert!(client
        .check_stat("/container_cleanup/never_used")
        .await
        .unwrap()
        .is_some());
    assert!(client
        .check_stat("/container_cleanup/busy")
        .await
        .unwrap()
        .is_some());
    let mut children = client.list_children(root).await.unwrap();
    children.sort();
    assert_eq!(children, vec!["busy", "never_used"]);
}

#[tokio::test]
async fn ttl_node_expires_when_childless_and_unmodified() {
    let server = common::start();
    let root = "/ttl_cleanup";
    let client = common::fresh_root(&server, root).await;
    let short = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(500));
    let short_seq = CreateMode::PersistentSequential
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(500));
    let long = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    client
        .create("/ttl_cleanup/short", b"", &short)
        .await
        .unwrap();
    client
        .create("/ttl_cleanup/s-", b"", &short_seq)
        .await
        .unwrap();
    client
        .create("/ttl_cleanup/with_child", b"", &short)
        .await
        .unwrap();
    client
        .create("/ttl_cleanup/with_child/c", b"", &PERSISTENT)
        .await
        .unwrap();
    client
        .create("/ttl_cleanup/long", b"", &long)
        .await
        .unwrap();

    wait_until_gone(&client, "/ttl_cleanup/short").await;
    wait_until_gone(&client, "/ttl_cleanup/s-0000000001").await;
    let mut children = client.list_children(root).await.unwrap();
    children.sort();
    assert_eq!(children, vec!["long", "with_child"]);
}
