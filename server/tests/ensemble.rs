//! A three-member herd ensemble as ZooKeeper users run one: three `herd`
//! processes, each from its own zoo.cfg with the same server.1-3 lines (on
//! 127.0.0.1, .2 and .3, with ports picked free) and a `myid`, driven by the
//! independent `zookeeper-client` crate.
//!
//! - writes through any member commit on every member in one order, and a
//!   watch set on one member fires for a write made through another;
//! - the leader killed with SIGKILL while a client writes through a
//!   follower: a new leader is elected, writes resume, no acknowledged
//!   write is lost, and a session that was connected to the killed leader
//!   moves to another member with its ephemeral node;
//! - the killed member restarts on its data directory (from a snapshot of
//!   its own: snapCount is small) and catches up;
//! - with two of three members down nothing is acknowledged, and service
//!   returns with the second member.
//!
//! Every wait is bounded; every process started is killed at the end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::timeout;
use zookeeper_client::{Acls, Client, CreateMode, EventType};

mod common;

use common::ensemble::{connect, create_retrying, Ensemble, WAIT};

const MEMBERS: u64 = 3;

/// The children of `path` as `client` sees them after a sync, sorted.
async fn children_synced(client: &Client, path: &str) -> Vec<String> {
    client.sync(path).await.unwrap();
    let mut c = client.list_children(path).await.unwrap();
    c.sort();
    c
}

#[tokio::test]
async fn an_ensemble_replicates_fails_over_and_catches_up() {
    let mut ensemble = Ensemble::start(MEMBERS, 0, "");
    let leader = ensemble.settled();
    // mntr's quorum rows, as ZooKeeper's.
    for id in 1..=MEMBERS {
        let m = ensemble.member(id);
        let state = if id == leader {
            "leading - broadcast"
        } else {
            "following - broadcast"
        };
        assert_eq!(
            m.mntr("zk_peer_state").as_deref(),
            Some(state),
            "member {id}"
        );
        assert_eq!(m.mntr("zk_quorum_size").as_deref(), Some("3"), "voters");
        let synced = m.mntr("zk_synced_followers");
        assert_eq!(
            synced.as_deref(),
            (id == leader).then_some("2"),
            "member {id}"
        );
    }
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());

    // Writes through every member, in one order everywhere.
    let mut clients = Vec::new();
    for id in 1..=MEMBERS {
        clients.push(connect(&ensemble.connect_string(&[id])).await);
    }
    clients[0].create("/e", b"", &open).await.unwrap();
    for round in 0..5 {
        for (i, c) in clients.iter().enumerate() {
            let (_, n) = c
                .create("/e/s-", format!("{i}/{round}").as_bytes(), &seq)
                .await
                .unwrap();
            assert_eq!(
                n.into_i64(),
                (round * 3 + i) as i64,
                "sequence numbers in commit order"
            );
            let stat = c.set_data("/e", &[i as u8], None).await.unwrap();
            assert_eq!(stat.version, (round * 3 + i + 1) as i32);
        }
    }
    let expected: Vec<String> = (0..15).map(|n| format!("s-{n:010}")).collect();
    for c in &clients {
        assert_eq!(children_synced(c, "/e").await, expected);
        let (data, stat) = c.get_data("/e").await.unwrap();
        assert_eq!((data, stat.version), (vec![2], 15));
    }
    for n in 0..15 {
        let (data, _) = clients[1].get_data(&format!("/e/s-{n:010}")).await.unwrap();
        assert_eq!(data, format!("{}/{}", n % 3, n / 3).into_bytes());
    }
    // Every member logged the 31 writes (and the sessions' creations) in
    // group commits that mntr counts, as ZooKeeper's SyncRequestProcessor.
    for id in 1..=MEMBERS {
        let m = ensemble.member(id);
        let logged: u64 = m
            .mntr("zk_sum_sync_processor_batch_size")
            .unwrap()
            .parse()
            .unwrap();
        let fsyncs: u64 = m.mntr("zk_cnt_fsynctime").unwrap().parse().unwrap();
        assert!(logged >= 31, "member {id} logged {logged} records");
        assert!(
            (1..=logged).contains(&fsyncs),
            "member {id}: {fsyncs} fsyncs"
        );
    }

    // A watch set through one member fires for a write through another.
    let watcher_at = (leader % MEMBERS) as usize; // a follower's client
    let (stat, watcher) = clients[watcher_at]
        .check_and_watch_stat("/e/w")
        .await
        .unwrap();
    assert!(stat.is_none());
    clients[(watcher_at + 1) % 3]
        .create("/e/w", b"", &open)
        .await
        .unwrap();
    let event = timeout(WAIT, watcher.changed()).await.expect("watch fires");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeCreated, "/e/w")
    );

    // A session on the leader with an ephemeral node, free to move.
    let all: Vec<u64> = std::iter::once(leader)
        .chain((1..=MEMBERS).filter(|&id| id != leader))
        .collect();
    let mover = connect(&ensemble.connect_string(&all[..1])).await;
    let mover_session = mover.session_id();
    mover
        .create(
            "/e/eph",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    drop(clients);

    // The leader killed under a follower's writes.
    let follower = all[1];
    let writer_client = Arc::new(connect(&ensemble.connect_string(&[follower])).await);
    writer_client.create("/w", b"", &open).await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let writer = tokio::spawn({
        let (client, acked) = (writer_client.clone(), acked.clone());
        async move {
            for n in 0..400 {
                let path = format!("/w/n{n:04}");
                create_retrying(&client, &path).await;
                acked.lock().unwrap().push((path, Instant::now()));
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "writes before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_kill = acked.lock().unwrap().len();
    ensemble.member(leader).kill();
    let killed_at = Instant::now();
    timeout(WAIT * 2, writer)
        .await
        .expect("writes resume")
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    let resumed = acked
        .iter()
        .find(|(_, at)| *at > killed_at)
        .map(|(_, at)| *at - killed_at);
    eprintln!(
        "{before_kill} writes acknowledged before the kill; the first after it {resumed:?} later"
    );
    let new_leader = ensemble.settled();
    assert_ne!(new_leader, leader);

    // Nothing acknowledged is lost, on either survivor.
    for id in all[1..].iter() {
        let c = connect(&ensemble.connect_string(&[*id])).await;
        let have = children_synced(&c, "/w").await;
        let want: Vec<String> = acked
            .iter()
            .map(|(p, _)| p["/w/".len()..].to_owned())
            .collect();
        assert_eq!(
            have, want,
            "member {id} holds every acknowledged write, in order"
        );
    }

    // The session moved with its ephemeral node: it is usable again (its
    // client reconnects to a survivor), the node still exists.
    let mover_moved = Client::connector()
        .with_session(mover.session().clone())
        .connect(&ensemble.connect_string(&all[1..]))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the session resumes on a survivor: {e:?}\n{}",
                ensemble.logs()
            )
        });
    assert_eq!(mover_moved.session_id(), mover_session);
    let owner = mover_moved
        .check_stat("/e/eph")
        .await
        .unwrap()
        .expect("ephemeral kept");
    assert_eq!(owner.ephemeral_owner, mover_session.0);
    drop(mover);

    // The killed member restarts and catches up.
    ensemble.restart(leader);
    ensemble.settled();
    let back = connect(&ensemble.connect_string(&[leader])).await;
    assert_eq!(children_synced(&back, "/w").await.len(), acked.len());
    assert_eq!(children_synced(&back, "/e").await.len(), 17);
    // It started from one of its own (fuzzy) snapshots: counts are whole.
    for (path, n) in [("/w", acked.len()), ("/e", 17)] {
        let stat = back.check_stat(path).await.unwrap().unwrap();
        assert_eq!(stat.num_children as usize, n, "{path}: numChildren");
    }
    let snapshots = std::fs::read_dir(ensemble.member(leader).dir.join("data"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    assert!(snapshots > 0, "members write snapshots of their own");

    // Two of three down: the last one acknowledges nothing...
    let last = ensemble.settled();
    let others: Vec<u64> = (1..=MEMBERS).filter(|&id| id != last).collect();
    let alone = connect(&ensemble.connect_string(&[last])).await;
    for id in &others {
        ensemble.member(*id).kill();
    }
    let attempt = timeout(Duration::from_secs(3), alone.create("/lonely", b"", &open)).await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a lone member acknowledged a write: {attempt:?}"
    );
    // ...until the second returns.
    ensemble.restart(others[0]);
    ensemble.settled();
    let c = connect(&ensemble.connect_string(&[others[0], last])).await;
    create_retrying(&c, "/lonely").await;
    assert!(c.check_stat("/lonely").await.unwrap().is_some());
}
