//! Four-letter words on the client port, in ZooKeeper's formats.

mod common;

use zookeeper_client::{Acls, CreateMode};

fn ask(addr: &str, word: &str) -> String {
    common::raw::four_letter_word(addr, word)
}

fn value<'a>(text: &'a str, key: &str, sep: char) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(sep)))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
}

#[tokio::test]
async fn every_word_answers_in_zookeepers_format() {
    let server = common::start();
    let client = common::connect(&server).await;
    let addr = server.addr.as_str();
    client
        .create(
            "/w",
            b"abc",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    client
        .create(
            "/w/e",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let (_, _, _watch) = client.get_and_watch_data("/w").await.unwrap();
    let session = format!("0x{:x}", client.session_id().0);

    assert_eq!(ask(addr, "ruok"), "imok");
    assert_eq!(ask(addr, "isro"), "rw");

    let srvr = ask(addr, "srvr");
    let keys: Vec<&str> = srvr.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count"
        ]
    );
    assert!(
        value(&srvr, "Zookeeper version", ':').starts_with("3.9."),
        "{srvr}"
    );
    assert_eq!(value(&srvr, "Mode", ':'), "standalone");
    assert_eq!(
        value(&srvr, "Node count", ':'),
        "7",
        "/ (counted twice, as ZooKeeper does), /zookeeper, quota, config, /w, /w/e"
    );
    assert_eq!(
        value(&srvr, "Connections", ':'),
        "2",
        "the client and this query, as ZooKeeper counts"
    );
    assert_eq!(value(&srvr, "Zxid", ':'), "0x3", "session, /w, /w/e");

    let stat = ask(addr, "stat");
    assert!(stat.starts_with("Zookeeper version: 3.9."), "{stat}");
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    assert!(stat.contains(&format!("sid={session}")), "{stat}");

    let mntr = ask(addr, "mntr");
    let first: Vec<&str> = mntr
        .lines()
        .take(7)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "zk_version",
            "zk_server_state",
            "zk_ephemerals_count",
            "zk_num_alive_connections",
            "zk_avg_latency",
            "zk_outstanding_requests",
            "zk_znode_count"
        ]
    );
    assert_eq!(value(&mntr, "zk_ephemerals_count", '\t'), "1");
    assert_eq!(value(&mntr, "zk_znode_count", '\t'), "7");
    assert_eq!(value(&mntr, "zk_watch_count", '\t'), "1");
    assert_eq!(value(&mntr, "zk_global_sessions", '\t'), "1");
    assert_eq!(value(&mntr, "zk_approximate_data_size", '\t'), "3");
    // Storage summaries, named as ZooKeeper names them: the writes so far were
    // fsynced in at least one batch, nothing was snapshotted, and start-up
    // (a fresh data directory) loaded no transactions.
    let count = |key| value(&mntr, key, '\t').parse::<u64>().unwrap();
    assert!(count("zk_cnt_fsynctime") >= 1, "{mntr}");
    assert!(count("zk_sum_sync_processor_batch_size") >= count("zk_cnt_sync_processor_batch_size"));
    assert_eq!(count("zk_cnt_snapshottime"), 0);
    assert_eq!(count("zk_cnt_startup_snap_load_time"), 1);
    assert_eq!(count("zk_max_startup_txns_loaded"), 0);
    // Request latencies as ZooKeeper's summaries, in ms: the new session and
    // two creates committed, the getData (and pings) answered locally.
    assert_eq!(count("zk_cnt_updatelatency"), 3, "{mntr}");
    assert!(count("zk_cnt_readlatency") >= 1, "{mntr}");
    for stat in ["avg", "min", "max", "p50", "p95", "p99", "p999", "sum"] {
        let key = format!("zk_{stat}_updatelatency");
        let v: f64 = value(&mntr, &key, '\t').parse().unwrap();
        assert!(v >= 0.0, "{key}");
    }
    let srst = ask(addr, "srst");
    assert_eq!(srst, "Server stats reset.\n");
    let mntr = ask(addr, "mntr");
    let count = |key| value(&mntr, key, '\t').parse::<u64>().unwrap();
    assert_eq!(count("zk_cnt_updatelatency"), 0, "srst clears them");

    let envi = ask(addr, "envi");
    assert!(
        envi.starts_with("Environment:\nzookeeper.version=3.9."),
        "{envi}"
    );
    let conf = ask(addr, "conf");
    assert_eq!(value(&conf, "tickTime", '='), "2000");
    assert_eq!(
        value(&conf, "clientPort", '='),
        addr.rsplit(':').next().unwrap(),
        "the bound port, not 0"
    );
    assert_eq!(value(&conf, "minSessionTimeout", '='), "4000");
    assert_eq!(value(&conf, "maxSessionTimeout", '='), "40000");
    let keys: Vec<&str> = conf.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "clientPort",
            "secureClientPort",
            "dataDir",
            "dataDirSize",
            "dataLogDir",
            "dataLogSize",
            "tickTime",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "clientPortListenBacklog",
            "serverId"
        ],
        "a standalone ZooKeeper 3.8's conf, key for key: {conf}"
    );
    let log_size: u64 = value(&conf, "dataLogSize", '=').parse().unwrap();
    assert!(
        log_size >= 1024,
        "the preallocated log segment counts: {conf}"
    );

    assert!(ask(addr, "cons").contains(&format!("sid={session}")));
    assert_eq!(
        ask(addr, "wchs"),
        "1 connections watching 1 paths\nTotal watches:1\n"
    );
    assert_eq!(ask(addr, "wchp"), format!("/w\n\t{session}\n"));
    assert_eq!(ask(addr, "wchc"), format!("{session}\n\t/w\n"));
    let dump = ask(addr, "dump");
    assert!(dump.contains(&format!("{session}:\n\t/w/e\n")), "{dump}");
    let dirs = ask(addr, "dirs");
    let logdir: u64 = value(&dirs, "logdir_size", ':').parse().unwrap();
    assert!(
        logdir >= 1024,
        "the preallocated log segment counts: {dirs}"
    );
    assert!(
        value(&dirs, "datadir_size", ':').parse::<u64>().unwrap() >= logdir,
        "same directory in tests"
    );
    assert_eq!(ask(addr, "srst"), "Server stats reset.\n");
    let srvr = ask(addr, "srvr");
    assert_eq!(value(&srvr, "Received", ':'), "1", "the srvr itself");
    assert_eq!(value(&srvr, "Sent", ':'), "1", "the srvr itself");
    assert_eq!(ask(addr, "crst"), "Connection stats reset.\n");
}

#[tokio::test]
async fn words_outside_the_whitelist_are_refused() {
    let mut config = common::config();
    config.four_letter_words = ["srvr".to_owned()].into();
    let server = common::start_with(config);
    assert_eq!(
        ask(&server.addr, "mntr"),
        "mntr is not executed because it is not in the whitelist.\n"
    );
    assert_eq!(
        ask(&server.addr, "ruok"),
        "ruok is not executed because it is not in the whitelist.\n"
    );
    assert!(ask(&server.addr, "srvr").starts_with("Zookeeper version: 3.9."));
    // The session protocol still works on the same port.
    let client = common::connect(&server).await;
    assert!(client.check_stat("/zookeeper").await.unwrap().is_some());
}

/// A connection leaves the server's tables before its peer sees it close: a
/// client that reconnects at once is not refused by maxClientCnxns, and `srvr`
/// does not count the connection that just ended.
#[test]
fn a_closed_connection_is_forgotten_before_its_peer_sees_the_close() {
    let mut config = common::config();
    config.max_client_cnxns = 1;
    let server = common::start_with(config);
    // Busy threads keep the cores contended, so a shard's clean-up after a
    // close is often scheduled after the client's next connection is served.
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let rounds = || {
            for round in 0..2000 {
                assert_eq!(ask(&server.addr, "ruok"), "imok", "round {round}");
                let srvr = ask(&server.addr, "srvr");
                assert_eq!(value(&srvr, "Connections", ':'), "1", "round {round}");
            }
        };
        let outcome = std::panic::catch_unwind(rounds);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// The packets `srvr` reports received and sent over one exchange, with the
/// share of the `srvr` queries themselves taken out.
async fn packets_of_an_exchange(addr: &str) -> (u64, u64) {
    let counts = || {
        let srvr = ask(addr, "srvr");
        let count = |key| value(&srvr, key, ':').parse::<u64>().unwrap();
        (count("Received"), count("Sent"))
    };
    let before = counts();
    let idle = counts();
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let watcher = common::connect_addr(addr).await;
    watcher.create("/counted", b"", &open).await.unwrap();
    let (_, _, watch) = watcher.get_and_watch_data("/counted").await.unwrap();
    let writer = common::connect_addr(addr).await;
    writer.set_data("/counted", b"x", None).await.unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.changed())
        .await
        .expect("the data watch fires");
    assert_eq!(event.path, "/counted");
    // ZooKeeper may count a packet sent a moment after the client has it:
    // ask until two answers agree (each query counts itself; take those out).
    let query = (idle.0 - before.0, idle.1 - before.1);
    let mut last = None;
    for n in 1..=20 {
        let after = counts();
        let exchange = (
            after.0 - idle.0 - n * query.0,
            after.1 - idle.1 - n * query.1,
        );
        if last == Some(exchange) {
            break;
        }
        last = Some(exchange);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last.expect("asked at least once")
}

/// Two handshakes, each followed by the client library's ping, a create, a
/// getData and a setData arrive; their seven answers and the notification
/// leave. herd counts them as ZooKeeper does (which counts the handshake and
/// the notification too), so dashboards built on its counters read the same.
#[tokio::test]
async fn packets_are_counted_as_zookeeper_counts_them() {
    let server = common::start();
    assert_eq!(packets_of_an_exchange(&server.addr).await, (7, 8), "herd");
    if let Some(zk) = common::zookeeper::start("packets", "", &[]) {
        assert_eq!(packets_of_an_exchange(&zk.addr).await, (7, 8), "ZooKeeper");
    }
}
