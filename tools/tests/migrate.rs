//! `herd-inspect import-zk` and `export-zk` through a real Apache ZooKeeper
//! 3.8 (the Debian package; skipped when it is not installed, unless
//! `HERD_REQUIRE_ZK` is set):
//!
//! 1. ZooKeeper, with small snapCount so that it rolls logs and writes fuzzy
//!    snapshots as it goes, takes every kind of write (sequential, ephemeral,
//!    container and TTL nodes, ACLs of each scheme, multis that commit and
//!    that fail, deletes, a large node); it is restarted halfway, so the
//!    newest snapshot is followed by logged transactions, and killed at the
//!    end with a session still open.
//! 2. import-zk writes a herd data directory; herd started on it serves the
//!    tree ZooKeeper served, node by node (data, every stat field, ACLs), and
//!    expires the imported session after its timeout, deleting its ephemerals.
//! 3. herd takes more writes and stops; export-zk writes a ZooKeeper
//!    snapshot, and ZooKeeper started on it serves herd's tree node by node.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use common::{zookeeper, TempDir};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use herd_server::{Config, Server};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, CreateOptions, Permission, Stat};

/// Each node's data, stat and ACL.
type Tree = BTreeMap<String, (Vec<u8>, Stat, Vec<Acl>)>;

const OPEN: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
/// The digest identity every client here authenticates as.
const USER: &[u8] = b"alice:secret";

async fn connect(addr: &str, timeout: Duration) -> Client {
    let client = Client::connector()
        .with_session_timeout(timeout)
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    client.auth("digest", USER).await.expect("auth");
    client
}

/// Every node under `/`, read through `client`.
async fn read_tree(client: &Client) -> Tree {
    let mut tree = Tree::new();
    let mut todo = vec!["/".to_owned()];
    while let Some(path) = todo.pop() {
        let (data, stat) = client.get_data(&path).await.expect("get_data");
        let (acl, _) = client.get_acl(&path).await.expect("get_acl");
        for child in client.list_children(&path).await.expect("list_children") {
            todo.push(if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            });
        }
        tree.insert(path, (data, stat, acl));
    }
    tree
}

/// The two trees hold the same paths, each with the same data, stat and ACL.
fn assert_same(expected: &Tree, actual: &Tree, what: &str) {
    let missing: Vec<_> = expected
        .keys()
        .filter(|p| !actual.contains_key(*p))
        .collect();
    assert!(missing.is_empty(), "{what}: nodes missing: {missing:?}");
    let extra: Vec<_> = actual
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: nodes that should not be there: {extra:?}"
    );
    for (path, want) in expected {
        let got = actual.get(path);
        assert_eq!(got, Some(want), "{what}: {path}");
    }
}

fn inspect(args: &[&str]) -> (u8, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = herd_tools::inspect::run(&args, &mut out, &mut err);
    let text = String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap();
    (code, text)
}

fn start_herd(data: &Path) -> Server {
    let text = "clientPort=0\nadmin.enableServer=false\ntickTime=2000\nzookeeper.extendedTypesEnabled=true\n\
                4lw.commands.whitelist=*\npreAllocSize=1024\n";
    let mut config: Config = Config::parse(text, "test config").expect("valid config").0;
    config.data_dir = data.to_owned();
    config.data_log_dir = data.to_owned();
    Server::start(config).expect("start herd on the imported directory")
}

/// Polls until `path` is gone, for at most `limit`.
async fn gone_within(client: &Client, path: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if client.check_stat(path).await.expect("exists").is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Writes of every kind, first half: before ZooKeeper's restart.
async fn first_half(c: &Client) {
    let alice = [Acl::new(
        Permission::ALL,
        AuthId::new("digest", &digest_id()),
    )];
    let ip = [Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1"))];
    c.create("/app", b"root of the app", &OPEN).await.unwrap();
    c.create("/app/cfg", b"v1", &OPEN).await.unwrap();
    for v in [&b"v2"[..], b"v3"] {
        c.set_data("/app/cfg", v, None).await.unwrap();
    }
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    for _ in 0..3 {
        c.create("/app/seq-", b"s", &seq).await.unwrap();
    }
    c.delete("/app/seq-0000000002", None).await.unwrap();
    for (path, data, acls) in [
        ("/app/locked", &b"only alice"[..], Acls::new(&alice)),
        ("/app/ro", b"read only", Acls::anyone_read()),
        ("/app/ip", b"", Acls::new(&ip)),
        ("/app/mine", b"", Acls::creator_all()),
    ] {
        let mode = CreateMode::Persistent.with_acls(acls);
        c.create(path, data, &mode).await.unwrap();
    }
    let container = CreateMode::Container.with_acls(Acls::anyone_all());
    c.create("/app/box", b"", &container).await.unwrap();
    c.create("/app/box/c", b"in the box", &OPEN).await.unwrap();
    c.create(
        "/app/ttl",
        b"lives an hour",
        &OPEN.with_ttl(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    c.create("/app/big", &vec![7u8; 500_000], &OPEN)
        .await
        .unwrap();
    let mut multi = c.new_multi_writer();
    multi.add_create("/app/m", b"multi", &OPEN).unwrap();
    multi.add_create("/app/m/x", b"", &OPEN).unwrap();
    multi.add_set_data("/app/cfg", b"v4", Some(2)).unwrap();
    multi.add_delete("/app/seq-0000000003", None).unwrap();
    multi.commit().await.unwrap();
    let mut failing = c.new_multi_writer();
    failing.add_create("/app/never", b"", &OPEN).unwrap();
    failing.add_check_version("/app/cfg", 99).unwrap();
    assert!(failing.commit().await.is_err());
    c.set_acl("/app/cfg", &Acls::anyone_all(), None)
        .await
        .unwrap();
    for i in 0..30 {
        c.create(&format!("/app/n{i}"), format!("{i}").as_bytes(), &OPEN)
            .await
            .unwrap();
    }
}

/// Second half, after the restart: in the log after the newest snapshot.
async fn second_half(c: &Client, brief: &Client) {
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let eph_seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    c.create("/app/eph", b"mine until I expire", &eph)
        .await
        .unwrap();
    c.create("/app/es-", b"", &eph_seq).await.unwrap();
    brief.create("/app/brief", b"", &eph).await.unwrap();
    for i in 0..10 {
        c.delete(&format!("/app/n{i}"), None).await.unwrap();
    }
    c.set_data("/app/big", &vec![8u8; 400_000], None)
        .await
        .unwrap();
    c.create("/app/after", b"logged only", &OPEN).await.unwrap();
    let mut multi = c.new_multi_writer();
    multi.add_delete("/app/m/x", None).unwrap();
    multi.add_create("/app/m/y", b"", &OPEN).unwrap();
    multi.commit().await.unwrap();
    let shared = [
        Acl::new(Permission::ALL, AuthId::new("digest", &digest_id())),
        Acl::new(Permission::READ, AuthId::anyone()),
    ];
    c.set_acl("/app/mine", &Acls::new(&shared), Some(0))
        .await
        .unwrap();
}

/// The last zxid the server at `addr` reports (`srvr`).
fn served_zxid(addr: &str) -> i64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect for srvr");
    s.write_all(b"srvr").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let hex = answer
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .unwrap_or_else(|| panic!("no Zxid in {answer:?}"));
    i64::from_str_radix(hex.trim(), 16).unwrap()
}

/// `digest:alice:<base64 sha1>`'s id part.
fn digest_id() -> String {
    engine::acl::digest(std::str::from_utf8(USER).unwrap())
}

#[tokio::test]
async fn a_zookeeper_database_moves_to_herd_and_back() {
    let Some(mut zk) = zookeeper::start("migrate", "", &["zookeeper.snapCount=10"]) else {
        return;
    };
    let herd_dir = TempDir::new();

    // 1. ZooKeeper's database.
    let c = connect(&zk.addr, Duration::from_secs(30)).await;
    first_half(&c).await;
    drop(c);
    zk.restart();
    // The session whose ephemerals travel: 6 s, so herd expires it soon.
    let c = connect(&zk.addr, Duration::from_secs(6)).await;
    let brief = connect(&zk.addr, Duration::from_secs(30)).await;
    second_half(&c, &brief).await;
    // A closed session's ephemerals go with it (closeSession is logged).
    drop(brief);
    assert!(gone_within(&c, "/app/brief", Duration::from_secs(10)).await);
    let session = c.session_id().0;
    let expected = read_tree(&c).await;
    assert_eq!(expected["/app/eph"].1.ephemeral_owner, session);
    assert_eq!(expected.len(), 40, "{:?}", expected.keys());
    let last_zxid = served_zxid(&zk.addr);
    zk.stop();
    let version2 = zk.data_dir().join("version-2");
    let snapshots = std::fs::read_dir(&version2)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    assert!(snapshots >= 3, "ZooKeeper wrote {snapshots} snapshots");

    // 2. Import, and herd serves the same tree.
    let zk_data = zk.data_dir();
    let (code, report) = inspect(&[
        "import-zk",
        zk_data.to_str().unwrap(),
        herd_dir.0.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("read snapshot."), "{report}");
    // The second half was written after the newest snapshot: some of it comes from a log.
    let replayed: usize = report
        .lines()
        .filter_map(|l| {
            l.strip_prefix("replayed ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(replayed > 0, "{report}");
    assert!(report.contains("wrote a herd snapshot"), "{report}");
    assert!(
        report.contains(&format!("last zxid 0x{last_zxid:x}")),
        "{report}"
    );
    // A second import into the same directory is refused, losing nothing.
    let (code, refusal) = inspect(&[
        "import-zk",
        zk_data.to_str().unwrap(),
        herd_dir.0.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{refusal}");
    assert!(refusal.contains("already holds a database"), "{refusal}");

    let server = start_herd(&herd_dir.0);
    let addr = server.client_addr().to_string();
    assert_eq!(
        served_zxid(&addr),
        last_zxid,
        "herd starts at ZooKeeper's last zxid"
    );
    let h = connect(&addr, Duration::from_secs(30)).await;
    let imported = read_tree(&h).await;
    assert_same(&expected, &imported, "herd after import-zk");
    // The next writes (h's session, then this) continue ZooKeeper's zxids.
    let stat = h
        .create("/app/herd-made", b"by herd", &OPEN)
        .await
        .unwrap()
        .0;
    assert_eq!(stat.czxid, last_zxid + 2);
    // The imported session expires on herd after its 6 s, and its ephemerals with it.
    assert!(
        gone_within(&h, "/app/eph", Duration::from_secs(20)).await,
        "imported session never expired"
    );
    let left: Vec<String> = h.list_children("/app").await.unwrap();
    assert!(!left.iter().any(|c| c.starts_with("es-")), "{left:?}");
    drop(c);

    // 3. More writes on herd, then export back to ZooKeeper.
    // A sequential suffix goes on from ZooKeeper's count of children created.
    let (_, app) = h.get_data("/app").await.unwrap();
    let created = (app.cversion + app.num_children) / 2;
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let (_, made) = h.create("/app/seq-", b"herd", &seq).await.unwrap();
    assert_eq!(made.into_i64(), i64::from(created));
    h.delete("/app/ro", None).await.unwrap();
    h.set_data("/app/cfg", b"v5", None).await.unwrap();
    let keeper = connect(&addr, Duration::from_secs(30)).await;
    keeper
        .create(
            "/app/herd-eph",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let on_herd = read_tree(&h).await;
    assert!(!on_herd.contains_key("/app/eph"));
    let last = served_zxid(&addr);
    server.stop();
    drop((h, keeper));

    std::fs::remove_dir_all(&version2).unwrap();
    let (code, report) = inspect(&[
        "export-zk",
        herd_dir.0.to_str().unwrap(),
        zk_data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("wrote "), "{report}");
    zk.restart();
    assert_eq!(
        served_zxid(&zk.addr),
        last,
        "ZooKeeper starts at herd's last zxid"
    );
    let z = connect(&zk.addr, Duration::from_secs(30)).await;
    let exported = read_tree(&z).await;
    assert_same(&on_herd, &exported, "ZooKeeper after export-zk");
    // ZooKeeper goes on from herd's last zxid.
    let stat = z.create("/app/zk-again", b"", &OPEN).await.unwrap().0;
    assert_eq!(stat.czxid, last + 2);
}

/// The tree without /zookeeper, whose config node an ensemble fills with its
/// own membership.
fn user_nodes(tree: Tree) -> Tree {
    tree.into_iter()
        .filter(|(path, _)| path != "/zookeeper" && !path.starts_with("/zookeeper/"))
        .collect()
}

#[tokio::test]
async fn a_zookeeper_database_imported_into_every_member_starts_an_ensemble() {
    let Some(mut zk) = zookeeper::start("migrate-ensemble", "", &[]) else {
        return;
    };
    let c = connect(&zk.addr, Duration::from_secs(30)).await;
    first_half(&c).await;
    let expected = user_nodes(read_tree(&c).await);
    drop(c);
    let last_zxid = served_zxid(&zk.addr);
    zk.stop();
    let zk_data = zk.data_dir();

    // import-zk into each member's dataDir, then the three start as an ensemble.
    let e = common::ensemble::Ensemble::start_prepared(3, 0, "", |id, data| {
        let (code, report) = inspect(&[
            "import-zk",
            zk_data.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "member {id}: {report}");
    });
    let leader = e.settled();
    for m in &e.members {
        let client = connect(&m.addr, Duration::from_secs(30)).await;
        client.sync("/").await.unwrap();
        let served = user_nodes(read_tree(&client).await);
        assert_same(&expected, &served, &format!("member {}", m.id));
    }
    // Writes go on in a new epoch, after ZooKeeper's last zxid, on every member.
    let writer = connect(
        &e.members[leader as usize - 1].addr,
        Duration::from_secs(30),
    )
    .await;
    let stat = writer.create("/after-import", b"", &OPEN).await.unwrap().0;
    assert!(
        stat.czxid > last_zxid,
        "0x{:x} after 0x{last_zxid:x}",
        stat.czxid
    );
    assert!(
        stat.czxid >> 32 > last_zxid >> 32,
        "a new epoch: 0x{:x}",
        stat.czxid
    );
    for m in &e.members {
        let client = connect(&m.addr, Duration::from_secs(30)).await;
        client.sync("/").await.unwrap();
        let (_, seen) = client.get_data("/after-import").await.unwrap();
        assert_eq!(seen.czxid, stat.czxid, "member {}", m.id);
    }
}
