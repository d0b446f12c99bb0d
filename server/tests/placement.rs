//! Shards run on the CPUs the process was given: `taskset -c N herd` (or a
//! cgroup's cpuset) keeps every herd thread on CPU N, as it keeps
//! ZooKeeper's. herd pins each shard to one CPU, chosen among the allowed
//! ones; it used to pin shard i to CPU i whatever the mask said.
//!
//! Runs the real binary under `taskset` (util-linux); bounded waits; the
//! process is killed at the end.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every thread's (name, Cpus_allowed_list) of process `pid`.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((name.trim().to_string(), allowed));
    }
    out
}

#[test]
fn shards_stay_on_the_cpus_the_process_may_use() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs to tell them apart");
    let last = (cpus - 1).to_string();
    let data = common::TempDir::new();
    let cfg = data.0.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort=0\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\n",
            data.0.display()
        ),
    )
    .unwrap();
    let herd = Killed(
        Command::new("taskset")
            .args(["-c", &last])
            .arg(Path::new(env!("CARGO_BIN_EXE_herd")))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("taskset runs herd"),
    );
    // taskset execs herd in the same process.
    let pid = herd.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let shards = loop {
        let shards: Vec<_> = threads(pid)
            .into_iter()
            .filter(|(name, _)| name.starts_with("herd-shard"))
            .collect();
        if !shards.is_empty() {
            break shards;
        }
        assert!(Instant::now() < deadline, "herd started no shard");
        std::thread::sleep(Duration::from_millis(20));
    };
    // One shard per allowed CPU: one here (glommio names its helper thread
    // after its executor).
    let mut names: Vec<_> = shards.iter().map(|(name, _)| name.as_str()).collect();
    names.dedup();
    assert_eq!(names, ["herd-shard-0-1"], "{shards:?}");
    for (name, allowed) in threads(pid) {
        assert_eq!(allowed, last, "thread {name} runs only on CPU {last}");
    }
}
