//! Every workload against an in-process herd for about a second, with few
//! sessions: each must measure a non-zero throughput and no unexpected error.
//!
//! Set `HERD_BENCH_TARGET=host:port` to run them against another
//! ZooKeeper-protocol server instead (Apache ZooKeeper with
//! `zookeeper.extendedTypesEnabled=true` and `maxClientCnxns=0`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herd_bench::{Options, Workload};
use herd_server::{Config, Server};

fn config() -> Config {
    let text = "clientPort=0\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\ntickTime=2000\nmaxClientCnxns=0\n\
                zookeeper.extendedTypesEnabled=true\n4lw.commands.whitelist=*\nshards=2\n";
    let mut config = Config::parse(text, "smoke config").expect("valid config").0;
    config.client_port = 0;
    config.extended_types = true;
    config
}

/// An in-process herd with its own data directory, both gone on drop.
struct Herd {
    server: Option<Server>,
    dir: std::path::PathBuf,
}

impl Drop for Herd {
    fn drop(&mut self) {
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn target(name: &str) -> (SocketAddr, Option<Herd>) {
    if let Ok(addr) = std::env::var("HERD_BENCH_TARGET") {
        return (addr.parse().expect("HERD_BENCH_TARGET=host:port"), None);
    }
    let dir = std::env::temp_dir().join(format!("herd-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = config();
    config.data_dir = dir.clone();
    config.data_log_dir = dir.clone();
    let server = Server::start(config).expect("start herd");
    (
        server.client_addr(),
        Some(Herd {
            server: Some(server),
            dir,
        }),
    )
}

fn options(workload: Workload, addr: SocketAddr) -> Options {
    let mut o = Options::new(workload, vec![addr]);
    o.sessions = 3;
    o.inflight = 2;
    o.warmup = Duration::from_millis(200);
    o.duration = Some(Duration::from_secs(1));
    o.keys = 50;
    o.value_size = 32;
    o.threads = 2;
    o.progress = false;
    o
}

#[test]
fn every_workload_runs_against_herd() {
    let (addr, _server) = target("t1");
    let dir = std::env::temp_dir().join(format!("herd-bench-smoke-{}", std::process::id()));
    // One client thread (a current-thread runtime) and two (a multi-thread one).
    for (workload, threads) in Workload::ALL.into_iter().flat_map(|w| [(w, 1), (w, 2)]) {
        let mut o = options(workload, addr);
        o.threads = threads;
        if workload == Workload::Mixed {
            o.json = Some(dir.join("mixed.json"));
            o.hdr_dir = Some(dir.join("hdr"));
            o.svg = Some(dir.join("mixed.svg"));
            o.dist = herd_bench::Dist::Zipfian;
        }
        let started = Instant::now();
        let summary = herd_bench::run(&o).unwrap_or_else(|e| panic!("{}: {e}", workload.name()));
        let took = started.elapsed();
        println!("{}", summary.table());
        assert!(
            took < Duration::from_secs(15),
            "{} took {took:?}",
            workload.name()
        );
        assert!(
            summary.ops_per_s() > 0.0,
            "{}: no throughput",
            workload.name()
        );
        assert_eq!(
            summary.unexpected_errors(),
            0,
            "{}: unexpected errors\n{}",
            workload.name(),
            summary.table()
        );
        let expect: &[&str] = match workload {
            Workload::Mixed => &["getData", "setData"],
            Workload::Read => &["getData"],
            Workload::Write => &["setData"],
            Workload::CreateDelete => &["create", "delete"],
            Workload::Watch => &["setData", "notify", "arm"],
            Workload::Connect => &["connect", "close"],
            Workload::Multi => &["multi"],
            Workload::Kafka => &["elect", "partition-state", "isr-change"],
        };
        for op in expect {
            let count = summary.op(op).map_or(0, |o| o.count);
            assert!(
                count > 0,
                "{}: no {op}\n{}",
                workload.name(),
                summary.table()
            );
        }
    }
    let json = std::fs::read_to_string(dir.join("mixed.json")).unwrap();
    assert!(json.contains("\"workload\":\"mixed\""), "{json}");
    assert!(dir.join("hdr/getData.hgrm").exists());
    assert!(std::fs::read_to_string(dir.join("mixed.svg"))
        .unwrap()
        .contains("<polyline"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_request_budget_ends_the_run() {
    let (addr, _server) = target("t2");
    let mut o = options(Workload::Write, addr);
    o.duration = None;
    o.warmup = Duration::ZERO;
    o.requests = Some(300);
    let summary = herd_bench::run(&o).unwrap();
    let count = summary.op("setData").map_or(0, |o| o.count);
    assert_eq!(count, 300, "{}", summary.table());
}
