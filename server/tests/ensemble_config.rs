//! The `herd` binary given a ZooKeeper ensemble's zoo.cfg: a member without
//! a valid `myid` refuses to start, saying why; and a zoo.cfg with a single
//! server line runs standalone, as in ZooKeeper. (Ensembles that start are
//! in ensemble.rs.) And what it logs, at the level zoo.cfg or the
//! environment sets.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_cfg(dir: &common::TempDir, servers: &str) -> std::path::PathBuf {
    let cfg = dir.0.join("zoo.cfg");
    let text = format!(
        "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=0\nadmin.enableServer=false\n{servers}",
        dir.0.join("data").display()
    );
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Runs `herd --config cfg` and returns its exit status and stderr; it must
/// exit within the limit (a server that starts is killed: `None`).
fn run(cfg: &std::path::Path) -> Option<(i32, String)> {
    run_with(cfg, &[])
}

/// [`run`] with environment variables `env` set.
fn run_with(cfg: &std::path::Path, env: &[(&str, &str)]) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herd"))
        .env_remove("HERD_LOG_LEVEL")
        .env_remove("ZOO_LOG4J_PROP")
        .envs(env.iter().copied())
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

const THREE: &str = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
                     server.3=127.0.0.3:2888:3888\n";

#[test]
fn an_ensemble_member_without_its_myid_is_refused() {
    let dir = common::TempDir::new();
    let (code, err) = run(&write_cfg(&dir, THREE)).expect("herd exits");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("myid must hold its id"), "{err}");
    std::fs::write(dir.0.join("data/myid"), "9").unwrap();
    let (_, err) = run(&write_cfg(&dir, THREE)).expect("herd exits");
    assert!(
        err.contains("myid is 9, which is not among the servers (1, 2, 3)"),
        "{err}"
    );
}

#[test]
fn a_single_server_line_runs_standalone() {
    let dir = common::TempDir::new();
    let cfg = write_cfg(&dir, "server.1=127.0.0.1:2888:3888\n");
    let (mut child, addr) = common::spawn_herd(&cfg, Stdio::null());
    let _ = child.kill();
    let _ = child.wait();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
}

#[test]
fn log_lines_carry_time_and_level_and_the_level_filters_them() {
    let dir = common::TempDir::new();
    let cfg = write_cfg(&dir, &format!("noSuchKey=1\n{THREE}"));
    let is_line = |l: &str, level: &str| {
        // 2026-12-03T07:47:32.123Z WARN  herd: ...
        let (stamp, rest) = l.split_once(' ').unwrap_or_default();
        stamp.len() == 24 && stamp.ends_with('Z') && rest.starts_with(level)
    };
    let (code, err) = run(&cfg).expect("herd exits: no myid");
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| is_line(l, "WARN  herd: ") && l.ends_with("unknown key noSuchKey ignored")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| is_line(l, "ERROR herd: ") && l.contains("myid")),
        "{err}"
    );
    for (env, warned) in [
        (("HERD_LOG_LEVEL", "error"), false),
        (("ZOO_LOG4J_PROP", "ERROR,CONSOLE"), false),
        (("ZOO_LOG4J_PROP", "INFO,ROLLINGFILE"), true),
    ] {
        let (_, err) = run_with(&cfg, &[env]).expect("herd exits");
        assert_eq!(err.contains("WARN  herd: "), warned, "{env:?}: {err}");
        assert!(err.contains("ERROR herd: "), "{env:?}: {err}");
    }
    let quiet = write_cfg(&dir, &format!("herd.logLevel=ERROR\nnoSuchKey=1\n{THREE}"));
    let (_, err) = run(&quiet).expect("herd exits");
    assert!(!err.contains("WARN  herd: "), "{err}");
    let (_, err) = run_with(&quiet, &[("HERD_LOG_LEVEL", "warn")]).expect("herd exits");
    assert!(err.contains("WARN  herd: "), "the environment wins: {err}");
}

#[tokio::test]
async fn slow_requests_are_logged_at_most_once_a_second() {
    let dir = common::TempDir::new();
    // Every flush takes 150 ms: each write is slower than the 100 ms threshold.
    let cfg = write_cfg(
        &dir,
        "herd.simulatedFlushDelayMs=150\nherd.slowRequestWarningMs=100\nshards=1\n",
    );
    let log = dir.0.join("herd.err");
    let stderr = std::fs::File::create(&log).unwrap();
    let (mut child, addr) = common::spawn_herd(&cfg, Stdio::from(stderr));
    let started = Instant::now();
    let client = zookeeper_client::Client::connect(&addr).await.unwrap();
    let open =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    for i in 0..3 {
        client
            .create(&format!("/slow-{i}"), b"", &open)
            .await
            .unwrap();
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let err = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("slower than herd.slowRequestWarningMs (100 ms)"))
        .collect();
    // The session and three creates, each over the threshold: a warning for
    // the first, and then at most one a second (about 600 ms in all, unless
    // the machine is slow).
    assert!(
        !warnings.is_empty() && warnings.len() as u64 <= 1 + took.as_secs(),
        "{took:?}: {err}"
    );
    assert!(
        warnings[0].contains("WARN  herd: shard 0: 1 requests slower")
            && warnings[0].contains("the slowest, a write, took 1"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let dir = common::TempDir::new();
    // The client port is known beforehand: herd's stdout, which would say it,
    // is closed.
    let port = common::free_port("127.0.0.1");
    // Three lines to print: the client port, the metrics and the AdminServer.
    let cfg = write_cfg(
        &dir,
        &format!(
            "clientPort={port}\nclientPortAddress=127.0.0.1\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.\
             PrometheusMetricsProvider\nmetricsProvider.httpHost=127.0.0.1\n\
             metricsProvider.httpPort=0\nadmin.enableServer=true\n\
             admin.serverAddress=127.0.0.1\nadmin.serverPort=0\n"
        ),
    );
    let mut child = Command::new(common::herd_binary())
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herd");
    // Closed before herd has started, so every line it prints meets a closed pipe.
    drop(child.stdout.take());
    // herd prints once it serves: wait for that, then give the lines (and a
    // panic over them) a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "herd never served on {port}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "herd exited before serving"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "herd exited once its stdout was closed");
}
