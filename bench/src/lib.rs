//! `herd-bench`: a load generator for any ZooKeeper-protocol server (herd,
//! Apache ZooKeeper, ...).
//!
//! ```text
//!  Options ──► run() ── tokio runtime ──► workload: sessions x in-flight workers
//!                │                             │  each request timed, per op type
//!                │                             ▼
//!                │                       Recorder (HdrHistogram per op, errors by code)
//!                │   progress task ◄──────────┤  once a second: ops/s, p99 (stderr)
//!                ▼                             ▼
//!             Summary ──► table (stdout), --json, --hdr-dir (.hgrm), --svg
//! ```
//!
//! Each session is one TCP connection speaking the wire protocol through
//! [`client::Client`], which pipelines: `--inflight` workers share a session,
//! each with one request outstanding. Workloads live under `/herd-bench` and
//! create what they need there. A run warms up for `--warmup` seconds (measured
//! by nothing but the progress line), then measures for `--duration` seconds or
//! `--requests` requests, then closes its sessions. Every request has a timeout
//! ([`client::REQUEST_TIMEOUT`]), so a run always ends.
//!
//! [`run`] is what the binary and the tests call.

pub mod client;
pub mod keys;
pub mod proto;
pub mod report;
pub mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use keys::Dist;
pub use report::Summary;

/// The workloads (`herd-bench WORKLOAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// getData and setData on `--keys` nodes at `--ratio` reads per write.
    Mixed,
    /// getData only.
    Read,
    /// setData only.
    Write,
    /// create (ephemeral-sequential and persistent-sequential, alternating)
    /// then delete of the created node.
    CreateDelete,
    /// One writer sets a node; every other session holds a data watch on it:
    /// notification latency (setData sent -> event received) and fan-out rate.
    Watch,
    /// Sessions opened (TCP + handshake) and closed (closeSession) in a loop.
    Connect,
    /// multi transactions: check + setData with the expected version, create
    /// and delete of a child.
    Multi,
    /// Kafka's (pre-KRaft) ZooKeeper usage: see [`workload::kafka`].
    Kafka,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::Mixed,
        Workload::Read,
        Workload::Write,
        Workload::CreateDelete,
        Workload::Watch,
        Workload::Connect,
        Workload::Multi,
        Workload::Kafka,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Mixed => "mixed",
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::CreateDelete => "create-delete",
            Workload::Watch => "watch",
            Workload::Connect => "connect",
            Workload::Multi => "multi",
            Workload::Kafka => "kafka",
        }
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}"))
    }
}

/// Everything a run is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub workload: Workload,
    /// Sessions are spread round-robin over these.
    pub servers: Vec<SocketAddr>,
    pub sessions: usize,
    /// Requests in flight per session.
    pub inflight: usize,
    /// How long to measure; `None` with `requests` set: until that many.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    /// Stop after this many measured requests.
    pub requests: Option<u64>,
    /// Reads per write in `mixed` (10 = 10:1; 0 = writes only).
    pub ratio: u32,
    pub value_size: usize,
    pub keys: u64,
    pub dist: Dist,
    pub seed: u64,
    pub session_timeout_ms: i32,
    /// tokio worker threads (0: one per core).
    pub threads: usize,
    pub json: Option<PathBuf>,
    pub hdr_dir: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    /// Print the once-a-second progress line on stderr.
    pub progress: bool,
}

impl Options {
    /// The defaults, for `workload` against `servers`.
    pub fn new(workload: Workload, servers: Vec<SocketAddr>) -> Options {
        Options {
            workload,
            servers,
            sessions: 16,
            inflight: 8,
            duration: Some(Duration::from_secs(10)),
            warmup: Duration::from_secs(2),
            requests: None,
            ratio: 10,
            value_size: 100,
            keys: 1000,
            dist: Dist::Uniform,
            seed: 1,
            session_timeout_ms: 10_000,
            threads: 0,
            json: None,
            hdr_dir: None,
            svg: None,
            progress: true,
        }
    }

    /// Parses the command line after the program name.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut args = args.iter();
        let workload: Workload = args.next().ok_or("missing WORKLOAD")?.parse()?;
        let mut o = Options::new(workload, Vec::new());
        let mut servers = "127.0.0.1:2181".to_owned();
        let mut duration_set = false;
        while let Some(flag) = args.next() {
            let (flag, inline) = match flag.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (flag.as_str(), None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or(format!("{flag} needs a value"))
            };
            fn num<T: FromStr>(flag: &str, v: String) -> Result<T, String> {
                v.parse().map_err(|_| format!("{flag}: bad value {v:?}"))
            }
            let secs = |flag: &str, v: String| -> Result<Duration, String> {
                let s: f64 = num(flag, v)?;
                if !(0.0..=86_400.0).contains(&s) {
                    return Err(format!("{flag}: out of range"));
                }
                Ok(Duration::from_secs_f64(s))
            };
            match flag {
                "--servers" => servers = value()?,
                "--sessions" => o.sessions = num(flag, value()?)?,
                "--inflight" => o.inflight = num(flag, value()?)?,
                "--duration" => {
                    o.duration = Some(secs(flag, value()?)?);
                    duration_set = true;
                }
                "--warmup" => o.warmup = secs(flag, value()?)?,
                "--requests" => o.requests = Some(num(flag, value()?)?),
                "--ratio" => o.ratio = num(flag, value()?)?,
                "--value-size" => o.value_size = num(flag, value()?)?,
                "--keys" => o.keys = num(flag, value()?)?,
                "--dist" => {
                    o.dist = match value()?.as_str() {
                        "uniform" => Dist::Uniform,
                        "zipfian" => Dist::Zipfian,
                        other => return Err(format!("--dist: uniform or zipfian, not {other:?}")),
                    }
                }
                "--seed" => o.seed = num(flag, value()?)?,
                "--session-timeout-ms" => o.session_timeout_ms = num(flag, value()?)?,
                "--threads" => o.threads = num(flag, value()?)?,
                "--json" => o.json = Some(value()?.into()),
                "--hdr-dir" => o.hdr_dir = Some(value()?.into()),
                "--svg" => o.svg = Some(value()?.into()),
                "--quiet" => o.progress = false,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if o.requests.is_some() && !duration_set {
            o.duration = None;
        }
        o.servers = servers
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or(format!("--servers: cannot resolve {s:?}"))
            })
            .collect::<Result<_, _>>()?;
        o.check()?;
        Ok(o)
    }

    fn check(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("no servers".into());
        }
        if self.sessions == 0 || self.inflight == 0 || self.keys == 0 {
            return Err("--sessions, --inflight and --keys must be at least 1".into());
        }
        if self.value_size > 1024 * 1000 {
            return Err("--value-size: at most 1024000 (jute.maxbuffer)".into());
        }
        if self.duration.is_none() && self.requests.is_none() {
            return Err("give --duration or --requests".into());
        }
        Ok(())
    }
}

/// The usage text.
pub const USAGE: &str = "\
usage: herd-bench WORKLOAD [options]

workloads: mixed read write create-delete watch connect multi kafka

  --servers H:P[,H:P]   servers; sessions spread round-robin   [127.0.0.1:2181]
  --sessions N          sessions (connections)                  [16]
  --inflight N          requests in flight per session          [8]
  --duration S          seconds to measure                      [10]
  --warmup S            seconds before measuring                [2]
  --requests N          stop after N measured requests (alone: no time limit)
  --ratio R             mixed: reads per write (0: writes only) [10]
  --value-size B        bytes per value                         [100]
  --keys N              nodes (kafka: partitions)               [1000]
  --dist D              uniform | zipfian (theta 0.99)          [uniform]
  --seed N              seed of the key choice                  [1]
  --session-timeout-ms N                                        [10000]
  --threads N           client threads (0: one per core)        [0]
  --json FILE           write the summary as JSON
  --hdr-dir DIR         write DIR/<op>.hgrm percentile distributions
  --svg FILE            write a latency-by-percentile plot
  --quiet               no progress line
";

/// Errors that stop a run before it measures anything.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Runs one benchmark on its own tokio runtime and returns what it measured;
/// writes `--json`, `--hdr-dir` and `--svg` when asked.
pub fn run(options: &Options) -> Result<Summary, RunError> {
    options.check().map_err(RunError)?;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // One thread runs a current-thread runtime. Measured pinned to one CPU
    // (reads, 16 sessions x 8, against herd on another): through a
    // multi-thread runtime with one worker, herd-bench itself was the
    // bottleneck (82k reads/s, about 1.2 system calls per read on the
    // server); through a current-thread one, 322k reads/s, the requests
    // reaching the server in larger batches (why, not traced: presumably
    // its tasks running in the order they were woken).
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = builder
        .enable_all()
        .thread_name("herd-bench")
        .build()
        .map_err(|e| RunError(format!("tokio runtime: {e}")))?;
    let summary = runtime.block_on(workload::run(options.clone()))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    let io = |what: &str, e: std::io::Error| RunError(format!("{what}: {e}"));
    let write = |path: &std::path::Path, text: String| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)
    };
    if let Some(path) = &options.json {
        write(path, summary.json()).map_err(|e| io("--json", e))?;
    }
    if let Some(dir) = &options.hdr_dir {
        summary.write_hgrm(dir).map_err(|e| io("--hdr-dir", e))?;
    }
    if let Some(path) = &options.svg {
        write(path, summary.svg()).map_err(|e| io("--svg", e))?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_command_line() {
        let o = Options::parse(&args(
            "mixed --servers 127.0.0.1:1,127.0.0.1:2 --sessions 3 --inflight=2 --duration 1.5 \
             --ratio 4 --dist zipfian --json /tmp/x.json",
        ))
        .unwrap();
        assert_eq!(o.workload, Workload::Mixed);
        assert_eq!(o.servers.len(), 2);
        assert_eq!((o.sessions, o.inflight, o.ratio), (3, 2, 4));
        assert_eq!(o.duration, Some(Duration::from_millis(1500)));
        assert_eq!(o.dist, Dist::Zipfian);
        let o = Options::parse(&args("create-delete --requests 100")).unwrap();
        assert_eq!((o.duration, o.requests), (None, Some(100)));
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            "",
            "nosuch",
            "mixed --sessions 0",
            "mixed --dist pareto",
            "mixed --bogus 1",
            "mixed --duration",
            "mixed --duration -1",
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
