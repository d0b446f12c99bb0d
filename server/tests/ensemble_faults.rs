//! Faults a herd ensemble survives as ZooKeeper's does, each on fresh
//! `herd` processes (server/tests/common/ensemble.rs) driven by the
//! independent `zookeeper-client` crate:
//!
//! - the leader paused (SIGSTOP) past syncLimit: the others elect a new
//!   leader and go on; resumed, the old leader acknowledges nothing on its own
//!   and rejoins as a follower;
//! - TRUNC: a leader that lost its followers logs a write it can never
//!   commit and dies; the others go on without it, and when it restarts its
//!   log drops that write;
//! - SNAP: a follower down while more than the DIFF limit of writes commit is
//!   sent a snapshot, and serves the whole tree;
//! - an observer serves reads and watches, forwards writes, and never counts
//!   towards a quorum;
//! - a session that reconnected through another member: a write on its old
//!   connection is refused (SessionMoved, which closes that connection, as
//!   ZooKeeper does), whichever members (leader or follower) the old and the
//!   new connection are on;
//!   A follower answers such a move only once the leader has heard of it;
//! - a session moved to a follower that has not yet applied its creation
//!   keeps its id (the follower asks the leader), and an expired one is
//!   refused there;
//! - a follower whose disk fills stops taking part and serving, and the
//!   others commit on.
//!
//! The tests run one at a time (each starts 3 or 4 processes on 2 cores).
//! Every wait is bounded; every process is killed at the end.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::timeout;
use zookeeper_client::{Acls, Client, CreateMode, Error, EventType};

mod common;

use common::ensemble::{connect, create_retrying, resume, Ensemble, WAIT};

/// herd's DIFF limit: a learner further behind than this gets a SNAP.
const DIFF_LIMIT: usize = 10_000;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(test: impl Future<Output = ()>) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

fn open() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Whether `path` exists on member `id`, after a sync there.
async fn exists_on(e: &Ensemble, id: u64, path: &str) -> bool {
    let c = connect(&e.connect_string(&[id])).await;
    c.sync("/").await.unwrap();
    c.check_stat(path).await.unwrap().is_some()
}

#[test]
fn a_paused_leader_is_replaced_and_rejoins_having_acknowledged_nothing() {
    run(async {
        let mut e = Ensemble::start(3, 0, "");
        let leader = e.settled();
        let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let on_leader = connect(&e.connect_string(&[leader])).await;
        let on_others = connect(&e.connect_string(&others)).await;
        on_leader.create("/before", b"", &open()).await.unwrap();

        e.member(leader).pause();
        // Sent to the paused leader: it waits in the socket.
        let paused_write = tokio::spawn({
            let c = on_leader.clone();
            async move { c.create("/paused", b"", &open()).await }
        });
        let new_leader = e.settled_among(&others);
        create_retrying(&on_others, "/after").await;

        e.member(leader).resume();
        let outcome = timeout(WAIT, paused_write)
            .await
            .expect("the paused write is answered")
            .unwrap();
        assert!(
            outcome.is_err(),
            "the old leader acknowledged a write on its own: {outcome:?}"
        );
        assert_eq!(e.settled(), new_leader, "{}", e.logs());
        assert_eq!(
            e.member(leader).mntr("zk_peer_state").as_deref(),
            Some("following - broadcast")
        );
        // Both looked at start and again now (ZooKeeper's election_time).
        for id in [leader, new_leader] {
            let elections = e.member(id).mntr("zk_cnt_election_time").unwrap();
            assert!(
                elections.parse::<u64>().unwrap() >= 2,
                "member {id}: {elections}"
            );
        }
        for id in 1..=3 {
            for (path, kept) in [("/before", true), ("/after", true), ("/paused", false)] {
                assert_eq!(exists_on(&e, id, path).await, kept, "{path} on member {id}");
            }
        }
    });
}

#[test]
fn a_write_the_old_leader_logged_alone_is_truncated_when_it_rejoins() {
    run(async {
        // A leader without followers keeps leading for syncLimit (2 s).
        let mut e = Ensemble::start(3, 0, "syncLimit=20\n");
        let leader = e.settled();
        let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let on_leader = connect(&e.connect_string(&[leader])).await;
        on_leader.create("/committed", b"", &open()).await.unwrap();
        for &id in &others {
            e.member(id).kill();
        }
        // It logs this one and can never commit it.
        let lost = tokio::spawn({
            let c = on_leader.clone();
            async move { c.create("/never", b"", &open()).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        e.member(leader).kill();
        let outcome = timeout(WAIT, lost).await.expect("answered").unwrap();
        assert!(
            outcome.is_err(),
            "acknowledged without a quorum: {outcome:?}"
        );

        // The others go on without it...
        for &id in &others {
            e.restart(id);
        }
        e.settled_among(&others);
        let on_others = connect(&e.connect_string(&others)).await;
        create_retrying(&on_others, "/later").await;
        // ...and it rejoins, dropping what it alone had.
        e.restart(leader);
        let new_leader = e.settled();
        assert_ne!(new_leader, leader);
        assert!(
            e.member(leader).log().contains("herd: TRUNC:"),
            "the old leader is truncated:\n{}",
            e.logs()
        );
        for (path, kept) in [("/committed", true), ("/later", true), ("/never", false)] {
            assert_eq!(exists_on(&e, leader, path).await, kept, "{path}");
        }
        let diffs: u64 = e
            .member(new_leader)
            .mntr("zk_diff_count")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            diffs >= 2,
            "TRUNCs count as DIFFs, as in ZooKeeper: {diffs}"
        );
        assert_eq!(
            e.member(new_leader).mntr("zk_snap_count").as_deref(),
            Some("0")
        );
    });
}

#[test]
fn a_follower_further_behind_than_the_diff_limit_is_sent_a_snapshot() {
    run(async {
        // Few snapshots of their own while the writes go on.
        let mut e = Ensemble::start(3, 0, "snapCount=5000\n");
        let leader = e.settled();
        let behind = leader % 3 + 1;
        e.member(behind).kill();
        let c = connect(&e.connect_string(&[leader])).await;
        c.create("/s", b"", &open()).await.unwrap();
        let (tasks, each) = (40, DIFF_LIMIT / 40 + 5);
        let writers: Vec<_> = (0..tasks)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for n in 0..each {
                        c.create(&format!("/s/{t}-{n}"), b"v", &open())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            timeout(WAIT * 4, w).await.expect("writes in time").unwrap();
        }
        let written = tasks * each;

        e.restart(behind);
        e.settled();
        assert!(
            e.member(behind).log().contains("herd: SNAP: installing"),
            "{}",
            e.logs()
        );
        assert_eq!(e.member(leader).mntr("zk_snap_count").as_deref(), Some("1"));
        let back = connect(&e.connect_string(&[behind])).await;
        back.sync("/s").await.unwrap();
        assert_eq!(back.list_children("/s").await.unwrap().len(), written);
        let stat = back.check_stat("/s").await.unwrap().unwrap();
        assert_eq!(stat.num_children as usize, written);
        let (data, _) = back
            .get_data(&format!("/s/{}-{}", tasks - 1, each - 1))
            .await
            .unwrap();
        assert_eq!(data, b"v");
    });
}

#[test]
fn an_observer_serves_reads_and_watches_forwards_writes_and_never_counts() {
    run(async {
        let mut e = Ensemble::start(3, 1, "");
        let observer = 4;
        let leader = e.settled();
        assert_eq!(e.member(observer).mode().as_deref(), Some("observer"));
        assert_eq!(
            e.member(observer).mntr("zk_peer_state").as_deref(),
            Some("observing - broadcast")
        );
        let l = e.member(leader);
        for (key, want) in [
            ("zk_learners", "3"),
            ("zk_synced_followers", "2"),
            ("zk_synced_observers", "1"),
            ("zk_quorum_size", "3"),
        ] {
            assert_eq!(l.mntr(key).as_deref(), Some(want), "{key}");
        }
        // Observers hold no elections, as in ZooKeeper.
        assert_eq!(
            e.member(observer).mntr("zk_cnt_election_time").as_deref(),
            Some("0")
        );

        // conf shows the ensemble as ZooKeeper's does.
        let conf = e.member(observer).four_letter("conf").unwrap();
        let lines: Vec<&str> = conf.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "membership: ")
            .expect(&conf);
        let quorum = &lines[at - 6..at];
        assert_eq!(
            [quorum[0], quorum[1], quorum[2], quorum[5]],
            ["initLimit=20", "syncLimit=5", "electionAlg=3", "peerType=1"]
        );
        let election_port = quorum[3].strip_prefix("electionPort=").expect(&conf);
        let quorum_port = quorum[4].strip_prefix("quorumPort=").expect(&conf);
        for (id, line) in (1..=4).zip(&lines[at + 1..at + 5]) {
            let role = if id == observer {
                "observer"
            } else {
                "participant"
            };
            assert!(
                line.starts_with(&format!("server.{id}=127.0.0.{id}:")) && line.ends_with(role),
                "{line}"
            );
        }
        assert_eq!(
            lines[at + 4],
            format!("server.4=127.0.0.4:{quorum_port}:{election_port}:observer")
        );
        assert_eq!(lines[at + 5..], ["version=0"]);

        let on_observer = connect(&e.connect_string(&[observer])).await;
        let on_leader = connect(&e.connect_string(&[leader])).await;
        // A watch on the observer fires for a write through the leader, and
        // the observer reads it.
        let (none, watcher) = on_observer.check_and_watch_stat("/o").await.unwrap();
        assert!(none.is_none());
        on_leader.create("/o", b"first", &open()).await.unwrap();
        let event = timeout(WAIT, watcher.changed()).await.expect("watch fires");
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::NodeCreated, "/o")
        );
        assert_eq!(on_observer.get_data("/o").await.unwrap().0, b"first");
        // A write through the observer commits everywhere.
        let stat = on_observer.set_data("/o", b"second", None).await.unwrap();
        assert_eq!(stat.version, 1);
        on_leader.sync("/o").await.unwrap();
        assert_eq!(on_leader.get_data("/o").await.unwrap().0, b"second");

        // The leader and the observer alone are no quorum.
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        for &id in &followers {
            e.member(id).kill();
        }
        let attempt = timeout(
            Duration::from_secs(3),
            on_observer.create("/o/alone", b"", &open()),
        )
        .await;
        assert!(
            !matches!(attempt, Ok(Ok(_))),
            "acknowledged with one voter: {attempt:?}"
        );
        e.restart(followers[0]);
        e.settled();
        let c = connect(&e.connect_string(&[observer])).await;
        create_retrying(&c, "/o/back").await;
        assert!(exists_on(&e, followers[0], "/o/back").await);
    });
}

#[test]
fn a_write_on_the_connection_a_session_moved_away_from_is_refused() {
    run(async {
        let e = Ensemble::start(3, 0, "");
        let leader = e.settled();
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let moves = [
            (followers[0], followers[1]),
            (leader, followers[0]),
            (followers[1], leader),
        ];
        for (n, (old, new)) in moves.into_iter().enumerate() {
            let first = connect(&e.connect_string(&[old])).await;
            first.create(&format!("/m{n}"), b"", &open()).await.unwrap();
            let moved = resume(first.session(), &e.connect_string(&[new]))
                .await
                .expect("the session reconnects through another member");
            assert_eq!(moved.session_id(), first.session_id());
            // At once, before anything through the new member: the move is
            // the leader's before the client hears it is connected.
            // ZooKeeper closes that connection rather than answer
            // SESSIONMOVED (ZOOKEEPER-710): the client sees a connection loss.
            let stale = first.create(&format!("/m{n}/old"), b"", &open()).await;
            assert_eq!(
                stale.map(|_| ()),
                Err(Error::ConnectionLoss),
                "a write through {old} after the move to {new}"
            );
            // (The old client now reconnects with the session on its own,
            // taking it back, so the check is through a session of its own.)
            assert!(!exists_on(&e, new, &format!("/m{n}/old")).await);
        }
    });
}

#[test]
fn a_leader_out_of_zxids_moves_to_a_new_epoch_without_an_election() {
    run(async {
        let mut e = Ensemble::start(3, 0, "herd.lastZxidCounter=40\n");
        let leader = e.settled();
        let epoch_of = |e: &mut Ensemble, id: u64| {
            let srvr = e.member(id).four_letter("srvr").unwrap();
            let zxid = srvr
                .lines()
                .find_map(|l| l.strip_prefix("Zxid: 0x"))
                .expect(&srvr);
            i64::from_str_radix(zxid, 16).unwrap() >> 32
        };
        let first_epoch = epoch_of(&mut e, leader);
        let client = connect(&e.connect_string(&[1, 2, 3])).await;
        let session = client.session_id();
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        client.create("/mine", b"", &ephemeral).await.unwrap();
        for i in 0..200 {
            create_retrying(&client, &format!("/r{i}")).await;
        }
        assert_eq!(e.settled(), leader, "the same member leads: {}", e.logs());
        let epochs = epoch_of(&mut e, leader) - first_epoch;
        assert!(epochs >= 4, "about 200 writes in epochs of 40: {epochs}");
        assert!(
            e.member(leader)
                .log()
                .contains("the epoch has no zxid left"),
            "{}",
            e.logs()
        );
        for id in 1..=3 {
            // One election each: the one at start.
            assert_eq!(
                e.member(id).mntr("zk_cnt_election_time").as_deref(),
                Some("1"),
                "member {id}"
            );
            let c = connect(&e.connect_string(&[id])).await;
            c.sync("/").await.unwrap();
            for i in 0..200 {
                let path = format!("/r{i}");
                assert!(
                    c.check_stat(&path).await.unwrap().is_some(),
                    "{path} on {id}"
                );
            }
        }
        assert_eq!(client.session_id(), session, "the session went on");
        let (_, stat) = client.get_data("/mine").await.unwrap();
        assert_eq!(stat.ephemeral_owner, session.0, "its ephemeral too");
    });
}

/// A follower whose disk fills up (a small tmpfs under its data directory)
/// stops taking part and serving; the other two commit on, and every write
/// they acknowledged is on both. Needs root to mount (CI runs as root).
#[test]
fn a_member_whose_disk_fills_stops_and_the_others_commit_on() {
    run(async {
        let mut e = Ensemble::start(3, 0, "");
        let first = e.settled();
        // The member to fill is down while the others elect, so it comes
        // back as a follower.
        e.member(first).kill();
        let others: Vec<u64> = (1..=3).filter(|&id| id != first).collect();
        let leader = e.settled_among(&others);
        let mount = common::Tmpfs::mount("1m");
        let data = e.member(first).dir.join("data");
        let small = mount.path().join("data");
        std::fs::create_dir(&small).unwrap();
        for entry in std::fs::read_dir(&data).unwrap() {
            let from = entry.unwrap().path();
            std::fs::copy(&from, small.join(from.file_name().unwrap())).unwrap();
        }
        std::fs::remove_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&small, &data).unwrap();
        e.restart(first);
        assert_eq!(e.settled(), leader);

        let c = connect(&e.connect_string(&others)).await;
        let value = vec![b'x'; 1024];
        let mut written = 0;
        while !e.member(first).log().contains("no longer takes part") {
            assert!(written < 4000, "1 MiB never filled:\n{}", e.logs());
            c.create(&format!("/full-{written}"), &value, &open())
                .await
                .unwrap();
            written += 1;
        }
        for _ in 0..20 {
            c.create(&format!("/full-{written}"), &value, &open())
                .await
                .unwrap();
            written += 1;
        }
        assert!(
            e.member(first).log().contains(
                "writing the transaction log: No space left on device (os error 28); \
                 this member no longer takes part in the ensemble"
            ),
            "{}",
            e.member(first).log()
        );
        let deadline = std::time::Instant::now() + WAIT;
        while e.member(first).mode().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the full member still serves"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for &id in &others {
            let on = connect(&e.connect_string(&[id])).await;
            on.sync("/").await.unwrap();
            let stat = on.check_stat("/").await.unwrap().unwrap();
            // The root holds /zookeeper besides the writes.
            assert_eq!(stat.num_children as usize, written + 1, "on member {id}");
            let (data, _) = on
                .get_data(&format!("/full-{}", written - 1))
                .await
                .unwrap();
            assert_eq!(data, value);
        }
    });
}

/// A follower answers a session's move only once the leader has heard of
/// it (ZooKeeper's follower waits for its revalidation): with the leader
/// stopped the connect waits, and once it resumes, the connect succeeds and
/// the old connection's write is refused. Answering before the leader knew
/// let that write through (the ensemble differential saw it).
#[test]
fn a_follower_answers_a_move_only_once_the_leader_knows() {
    run(async {
        // syncLimit long enough that the stopped leader keeps its followers.
        let e = Ensemble::start(3, 0, "syncLimit=100\n");
        let leader = e.settled();
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        for (n, old) in [leader, followers[1]].into_iter().enumerate() {
            let first = connect(&e.connect_string(&[old])).await;
            first.create(&format!("/w{n}"), b"", &open()).await.unwrap();
            let to = e.connect_string(&[followers[0]]);
            e.members[leader as usize - 1].pause();
            let session = first.session().clone();
            let mut moving = tokio::spawn(async move {
                Client::connector().with_session(session).connect(&to).await
            });
            let early = timeout(Duration::from_millis(500), &mut moving).await;
            e.members[leader as usize - 1].resume();
            assert!(
                early.is_err(),
                "move {n}: the follower answered while the leader was stopped"
            );
            let moved = timeout(WAIT, moving)
                .await
                .expect("in time")
                .unwrap()
                .expect("the session reconnects through the follower");
            assert_eq!(moved.session_id(), first.session_id(), "move {n}");
            let stale = first.create(&format!("/w{n}/old"), b"", &open()).await;
            assert_eq!(stale.map(|_| ()), Err(Error::ConnectionLoss), "move {n}");
            assert!(!exists_on(&e, followers[0], &format!("/w{n}/old")).await);
        }
    });
}

/// A session that expired (its client cut off, no ping for its timeout)
/// is refused when it comes back through a follower, after the round the
/// follower's revalidation takes: the client hears SessionExpired, and its
/// ephemeral is gone on every member.
#[test]
fn an_expired_session_is_refused_through_a_follower() {
    run(async {
        let e = Ensemble::start(3, 0, "");
        let leader = e.settled();
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let proxy = common::proxy::Proxy::start(&e.connect_string(&[followers[0]]));
        let gone = timeout(
            WAIT,
            Client::connector()
                .with_session_timeout(Duration::from_millis(1000))
                .connect(&proxy.addr),
        )
        .await
        .expect("in time")
        .unwrap();
        let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        gone.create("/expiring", b"", &eph).await.unwrap();
        let session = gone.session().clone();
        drop(proxy);
        let watcher = connect(&e.connect_string(&[followers[1]])).await;
        let deadline = std::time::Instant::now() + WAIT;
        while watcher.check_stat("/expiring").await.unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for &id in &followers {
            let again = resume(&session, &e.connect_string(&[id])).await;
            assert!(
                matches!(again, Err(Error::SessionExpired)),
                "through {id}: {:?}",
                again.map(|c| c.session_id())
            );
        }
        assert!(!exists_on(&e, leader, "/expiring").await);
    });
}

/// A session created through one follower while another stood still, moved
/// at once to that other follower (whose tree does not hold it yet): the
/// follower asks the leader, as ZooKeeper's does, and the session keeps its
/// id instead of being refused as expired.
#[test]
fn a_session_moves_to_a_follower_that_has_not_applied_its_creation_yet() {
    run(async {
        let e = Ensemble::start(3, 0, "");
        let leader = e.settled();
        let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let (through, behind) = (followers[0], followers[1]);
        for round in 0..5 {
            e.members[behind as usize - 1].pause();
            let first = connect(&e.connect_string(&[through])).await;
            e.members[behind as usize - 1].resume();
            let moved = resume(first.session(), &e.connect_string(&[behind]))
                .await
                .unwrap_or_else(|err| panic!("round {round}: the move was refused: {err:?}"));
            assert_eq!(moved.session_id(), first.session_id(), "round {round}");
            let path = format!("/moved-{round}");
            moved.create(&path, b"", &open()).await.unwrap();
            assert!(exists_on(&e, leader, &path).await);
        }
    });
}
