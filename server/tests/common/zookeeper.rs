//! A real Apache ZooKeeper (the Debian `zookeeper` package) started on a free
//! loopback port for a test, stopped and its data removed on drop: the
//! reference differential tests compare herd with. Self-contained, so the
//! tools' tests include it too (`#[path]`).
#![allow(dead_code)]

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// ZooKeeper's jar, from the Debian package.
pub const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// How long ZooKeeper may take to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ZooKeeper {
    pub addr: String,
    /// `None` while stopped.
    child: Option<Child>,
    dir: PathBuf,
    props: Vec<String>,
}

impl ZooKeeper {
    /// Its dataDir (and dataLogDir): ZooKeeper's files are in `version-2` there.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Kills it (as a crash would: nothing is flushed or closed first),
    /// keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data, serving once this returns.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(&self.dir.join("zoo.cfg"), &self.props));
        let deadline = Instant::now() + START_TIMEOUT;
        while !serving(&self.addr) {
            assert!(Instant::now() < deadline, "ZooKeeper did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(cfg: &Path, props: &[String]) -> Child {
    Command::new("java")
        .arg("-Dzookeeper.extendedTypesEnabled=true")
        .args(props.iter().map(|p| format!("-D{p}")))
        .arg("-Dlog4j.configuration=file:/dev/null")
        .arg("-cp")
        .arg("/etc/zookeeper/conf:/usr/share/java/*")
        .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ZooKeeper")
}

/// A port on `ip` for a server that a test starts later (a member's quorum
/// ports, a port a config names). Taken from below the kernel's ephemeral
/// range (32768 and up here), so no socket bound to port 0 and no outgoing
/// connection of a test running meanwhile can take it before that server
/// binds it; a process-wide counter keeps this process's tests apart and
/// the process id spreads processes out. A port that is bound now is skipped.
pub fn free_port(ip: &str) -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 16384;
    const SPAN: u16 = 16384;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + base.wrapping_add(step) % SPAN;
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} below the ephemeral range");
}

/// Whether the server at `addr` serves requests. ZooKeeper answers `ruok` as
/// soon as its port is open, before it has loaded its data and while it still
/// drops sessions; `srvr` reports its version only once it serves.
pub fn serving(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = Vec::new();
    s.write_all(b"srvr").is_ok()
        && s.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"Zookeeper version:")
}

/// A standalone ZooKeeper with `extra` zoo.cfg lines, the Java system
/// properties `props` (`name=value`) and extended types (TTL nodes) enabled,
/// serving once this returns; `None` if it is not installed (unless
/// `HERD_REQUIRE_ZK` is set: then that fails).
pub fn start(tag: &str, extra: &str, props: &[&str]) -> Option<ZooKeeper> {
    if !Path::new(ZK_JAR).exists() {
        // CI installs it, and sets this so that a lost install fails instead.
        assert!(
            std::env::var_os("HERD_REQUIRE_ZK").is_none(),
            "{ZK_JAR} not found, and HERD_REQUIRE_ZK is set"
        );
        eprintln!("{ZK_JAR} not found: no Apache ZooKeeper to compare with");
        return None;
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herd-zk-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create ZooKeeper's directory");
    let port = free_port("127.0.0.1");
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\n{extra}",
            dir.join("data").display()
        ),
    )
    .expect("write zoo.cfg");
    let mut zk = ZooKeeper {
        addr: format!("127.0.0.1:{port}"),
        child: None,
        dir,
        props: props.iter().map(|p| p.to_string()).collect(),
    };
    zk.restart();
    Some(zk)
}
