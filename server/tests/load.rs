//! Sustained traffic on long-lived connections: the server keeps answering.

mod common;

use zookeeper_client::{Acls, CreateMode};

/// Tens of thousands of commits while no new connection arrives: every commit
/// wakes the shards, and none of that may accumulate anywhere (a glommio accept
/// future sharing a task with the inbox once piled up a waker per wake-up until
/// the shard panicked at 32767).
#[tokio::test]
async fn shards_survive_many_commits_without_new_connections() {
    let server = common::start();
    let client = common::connect(&server).await;
    let reader = common::connect(&server).await;
    client
        .create(
            "/load",
            b"0",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    for i in 1..=40_000 {
        let stat = client.set_data("/load", b"x", None).await.unwrap();
        assert_eq!(stat.version, i);
    }
    let (data, stat) = reader.get_data("/load").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"x"[..], 40_000));
    let late = common::connect(&server).await;
    assert!(
        late.check_stat("/load").await.unwrap().is_some(),
        "still accepting"
    );
}
