//! Test harness: each `start()` runs a fresh in-process herd on an ephemeral
//! loopback port, stopped when the `TestServer` is dropped.
//!
//! Set `HERD_TEST_ZK=host:port` to run the same tests against another
//! ZooKeeper-protocol server instead (how their expectations were checked
//! against Apache ZooKeeper 3.8; start it with extendedTypesEnabled and the
//! super digest below, and expect the container/TTL tests to need its 60 s sweep).
#![allow(dead_code)]

pub mod ensemble;
pub mod proxy;
pub mod raw;
pub mod session;
pub mod zookeeper;

pub use zookeeper::free_port;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herd_server::{Config, Server};

/// How often the test server sweeps containers and TTL nodes.
pub const CONTAINER_CHECK_INTERVAL_MS: u64 = 300;

pub struct TestServer {
    pub addr: String,
    server: Option<Server>,
    /// The server's data directory, removed after the server stops.
    pub data: Option<TempDir>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.take();
    }
}

impl TestServer {
    /// The herd server itself (none under `HERD_TEST_ZK`).
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("a herd test server")
    }

    /// Stops the server (as a clean shutdown) and keeps its data directory.
    pub fn stop(mut self) -> TempDir {
        self.server.take();
        self.data
            .take()
            .expect("a herd test server has a data directory")
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("herd-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test data dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs of `size` (mount's `size=`, e.g. "256k") on a fresh directory,
/// unmounted on drop: a disk that fills up. Mounting needs root (CI runs as
/// root).
pub struct Tmpfs(pub TempDir);

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir.0)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0 .0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.path())
            .status();
    }
}

/// The configuration every test server uses: tickTime 2000, TTL nodes enabled,
/// super digest for `super:test`, all four-letter words, a fast container sweep,
/// a small log preallocation. `start_with` gives each server its own data directory.
pub fn config() -> Config {
    let text = format!(
        "clientPort=0\nadmin.enableServer=false\ntickTime=2000\nzookeeper.extendedTypesEnabled=true\n\
         zookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
         4lw.commands.whitelist=*\nznode.container.checkIntervalMs={CONTAINER_CHECK_INTERVAL_MS}\n\
         shards=2\npreAllocSize=1024\n"
    );
    Config::parse(&text, "test config")
        .expect("valid test config")
        .0
}

pub fn start() -> TestServer {
    start_with(config())
}

/// Starts herd with `config` in a fresh data directory.
pub fn start_with(config: Config) -> TestServer {
    start_in(config, TempDir::new())
}

/// Starts herd with `config` on the data directory `data` (recovering what it holds).
pub fn start_in(mut config: Config, data: TempDir) -> TestServer {
    if let Ok(addr) = std::env::var("HERD_TEST_ZK") {
        return TestServer {
            addr,
            server: None,
            data: None,
        };
    }
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    let server = Server::start(config).expect("start herd");
    TestServer {
        addr: server.client_addr().to_string(),
        server: Some(server),
        data: Some(data),
    }
}

/// A connected client with a 10 s session timeout.
pub async fn connect(server: &TestServer) -> zookeeper_client::Client {
    connect_addr(&server.addr).await
}

/// A connected client of the server at `addr`, with a 10 s session timeout.
pub async fn connect_addr(addr: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(addr)
        .await
        .expect("connect to test server")
}

/// A client working under `root`, created afresh. Leftovers from an earlier run
/// (only possible with `HERD_TEST_ZK`) are removed first, as the super user.
pub async fn fresh_root(server: &TestServer, root: &str) -> zookeeper_client::Client {
    let admin = connect(server).await;
    admin.auth("digest", b"super:test").await.unwrap();
    remove_tree(&admin, root).await;
    drop(admin);
    let client = connect(server).await;
    let open =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create(root, b"", &open).await.unwrap();
    client
}

async fn remove_tree(client: &zookeeper_client::Client, path: &str) {
    if let Ok(children) = client.list_children(path).await {
        for child in children {
            Box::pin(remove_tree(client, &format!("{path}/{child}"))).await;
        }
    }
    let _ = client.delete(path, None).await;
}

/// The status line, headers (lower-cased) and body of `GET path` over plain
/// HTTP/1.1 (the Prometheus endpoint, the AdminServer).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_fmt(
        &mut stream,
        format_args!("GET {path} HTTP/1.1\r\nHost: herd\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers end");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// The `herd` binary: Cargo names it to the server's own tests; the tests of
/// other packages (herd-tools') find it in their target directory, where
/// `cargo test --workspace` builds it.
pub fn herd_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_herd") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let herd = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("herd");
    assert!(
        herd.exists(),
        "{}: not built (cargo build --release --bin herd)",
        herd.display()
    );
    herd
}

/// `herd --config cfg` as a child process, its stderr to `stderr` (logging
/// at the level cfg sets: the environment's log level variables are
/// cleared), and the client address it prints first, once it serves.
pub fn spawn_herd(
    cfg: &std::path::Path,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    try_spawn_herd(cfg, stderr).unwrap_or_else(|e| panic!("{e}"))
}

/// [`spawn_herd`], or what went wrong when herd did not come to serve: what
/// it printed instead and how it ended (it is stopped if it still runs).
pub fn try_spawn_herd(
    cfg: &std::path::Path,
    stderr: std::process::Stdio,
) -> Result<(std::process::Child, String), String> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(herd_binary())
        .env_remove("HERD_LOG_LEVEL")
        .env_remove("ZOO_LOG4J_PROP")
        .arg("--config")
        .arg(cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn herd");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line
        .strip_prefix("herd serving ZooKeeper clients on ")
        .and_then(|rest| rest.split_whitespace().next())
    {
        Some(addr) => Ok((child, addr.to_owned())),
        None => {
            // An empty line is the end of its stdout: herd has exited.
            if !line.is_empty() {
                let _ = child.kill();
            }
            let status = child.wait();
            Err(format!(
                "unexpected first line from herd: {line:?}; herd's status: {status:?}"
            ))
        }
    }
}
