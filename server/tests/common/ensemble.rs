//! herd ensembles as ZooKeeper users run them: one `herd` process per
//! member, each from its own zoo.cfg with the same `server.N` lines (member N
//! on 127.0.0.N, ports picked free) and a `myid`; observers say
//! `:observer` on their line and `peerType=observer` in their own file.
//!
//! Every wait is bounded by [`WAIT`]; every process is killed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tokio::time::timeout;
use zookeeper_client::{Acls, Client, CreateMode, Error};

/// Bound on every wait for an ensemble to settle.
pub const WAIT: Duration = Duration::from_secs(30);

/// The zoo.cfg lines every member gets before the test's own: short ticks,
/// small snapshots (members snapshot on their own), every 4lw allowed.
const BASE_CONFIG: &str = "tickTime=100\ninitLimit=20\nsyncLimit=5\nmaxSessionTimeout=30000\n\
                           snapCount=40\nclientPort=0\nadmin.enableServer=false\npreAllocSize=256\n4lw.commands.whitelist=*\n";

pub struct Member {
    pub id: u64,
    pub dir: PathBuf,
    child: Option<Child>,
    pub addr: String,
}

impl Member {
    pub fn ip(id: u64) -> String {
        format!("127.0.0.{id}")
    }

    /// Starts (or restarts) member `id` on its data directory.
    fn start(id: u64, dir: PathBuf, config: &str) -> Member {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), format!("{id}\n")).unwrap();
        let cfg = dir.join("zoo.cfg");
        // Each member's HTTP endpoints, when a test turns them on, on its own
        // address: the same port on every member.
        let text = format!(
            "{BASE_CONFIG}dataDir={}\nclientPortAddress={ip}\nmetricsProvider.httpHost={ip}\n\
             admin.serverAddress={ip}\n{config}",
            dir.join("data").display(),
            ip = Member::ip(id)
        );
        std::fs::write(&cfg, text).unwrap();
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("herd.err"))
            .unwrap();
        let (child, addr) = super::try_spawn_herd(&cfg, Stdio::from(stderr)).unwrap_or_else(|e| {
            // The member's directory goes with the test's: say its reason now.
            let err = std::fs::read_to_string(dir.join("herd.err")).unwrap_or_default();
            panic!("member {id} did not start: {e}; its stderr:\n{err}")
        });
        Member {
            id,
            dir,
            child: Some(child),
            addr,
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on a child of this process, which it has not reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
    }

    /// SIGSTOP: the process stands still, its sockets open.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// The answer to a four-letter word; `None` if it is down.
    pub fn four_letter(&self, word: &str) -> Option<String> {
        self.child.as_ref()?;
        let mut s = TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(word.as_bytes()).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The `Mode:` that `srvr` reports; `None` while it does not serve (or
    /// is down).
    pub fn mode(&self) -> Option<String> {
        let text = self.four_letter("srvr")?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// mntr's value of `key`.
    pub fn mntr(&self, key: &str) -> Option<String> {
        let text = self.four_letter("mntr")?;
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
            .map(str::to_owned)
    }

    /// What it wrote to stderr, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("herd.err")).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused member would not die of SIGKILL any later.
            // SAFETY: as in `signal`.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
        self.kill();
    }
}

pub struct Ensemble {
    pub members: Vec<Member>,
    /// The zoo.cfg lines of the ensemble and the test (all but the member's
    /// own directory, address and peerType).
    config: String,
    observers: Vec<u64>,
    _dir: super::TempDir,
}

impl Ensemble {
    /// `voters` participants (ids 1..) and then `observers`, with the
    /// test's own zoo.cfg lines `extra` after the common ones.
    pub fn start(voters: u64, observers: u64, extra: &str) -> Ensemble {
        Ensemble::start_prepared(voters, observers, extra, |_, _| {})
    }

    /// [`Ensemble::start`], with `prepare(id, data_dir)` run before each member
    /// first starts (to give it a database to start from).
    pub fn start_prepared(
        voters: u64,
        observers: u64,
        extra: &str,
        prepare: impl Fn(u64, &std::path::Path),
    ) -> Ensemble {
        let dir = super::TempDir::new();
        let observer_ids: Vec<u64> = (voters + 1..=voters + observers).collect();
        let servers: String = (1..=voters + observers)
            .map(|id| {
                let ip = Member::ip(id);
                let kind = if observer_ids.contains(&id) {
                    ":observer"
                } else {
                    ""
                };
                format!(
                    "server.{id}={ip}:{}:{}{kind}\n",
                    super::free_port(&ip),
                    super::free_port(&ip)
                )
            })
            .collect();
        let mut e = Ensemble {
            members: Vec::new(),
            config: format!("{extra}{servers}"),
            observers: observer_ids,
            _dir: dir,
        };
        for id in 1..=voters + observers {
            prepare(id, &e.member_dir(id).join("data"));
            let m = e.launch(id);
            e.members.push(m);
        }
        e
    }

    fn member_dir(&self, id: u64) -> PathBuf {
        self._dir.0.join(format!("m{id}"))
    }

    fn launch(&self, id: u64) -> Member {
        let dir = self.member_dir(id);
        let peer_type = if self.observers.contains(&id) {
            "peerType=observer\n"
        } else {
            ""
        };
        Member::start(id, dir, &format!("{}{peer_type}", self.config))
    }

    pub fn member(&mut self, id: u64) -> &mut Member {
        &mut self.members[id as usize - 1]
    }

    pub fn restart(&mut self, id: u64) {
        let m = self.launch(id);
        *self.member(id) = m;
    }

    /// Waits until one of `ids` leads and the others follow (or observe);
    /// the leader's id.
    pub fn settled_among(&self, ids: &[u64]) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let modes: Vec<(u64, Option<String>)> = ids
                .iter()
                .map(|&id| (id, self.members[id as usize - 1].mode()))
                .collect();
            let leaders: Vec<u64> = modes
                .iter()
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(id, _)| *id)
                .collect();
            let learners = modes
                .iter()
                .filter(|(id, m)| {
                    let role = if self.observers.contains(id) {
                        "observer"
                    } else {
                        "follower"
                    };
                    m.as_deref() == Some(role)
                })
                .count();
            if leaders.len() == 1 && learners + 1 == modes.len() {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "not settled within {WAIT:?}: {modes:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until one running member leads and every other one follows or
    /// observes; the leader's id.
    pub fn settled(&self) -> u64 {
        let running: Vec<u64> = self
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.id)
            .collect();
        self.settled_among(&running)
    }

    /// What every member wrote to stderr, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- member {}:\n{}", m.id, m.log()))
            .collect()
    }

    pub fn connect_string(&self, ids: &[u64]) -> String {
        let addrs: Vec<&str> = ids
            .iter()
            .map(|&id| self.members[id as usize - 1].addr.as_str())
            .collect();
        addrs.join(",")
    }
}

/// A client of `to` (one address or several), with a 10 s session.
pub async fn connect(to: &str) -> Client {
    timeout(
        WAIT,
        Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(to),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// The session `session` resumed through `to`, answered within [`WAIT`].
pub async fn resume(session: &zookeeper_client::SessionInfo, to: &str) -> Result<Client, Error> {
    timeout(
        WAIT,
        Client::connector()
            .with_session(session.clone())
            .connect(to),
    )
    .await
    .expect("a resumed session answered in time")
}

/// Creates `path`, retrying through connection losses (the member lost its
/// leader) until the ensemble answers; an earlier attempt that committed
/// shows as NodeExists, which is also success.
pub async fn create_retrying(client: &Client, path: &str) {
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let deadline = Instant::now() + WAIT;
    loop {
        match client.create(path, path.as_bytes(), &open).await {
            Ok(_) | Err(Error::NodeExists) => return,
            Err(e @ (Error::ConnectionLoss | Error::Timeout)) => {
                assert!(Instant::now() < deadline, "{path}: {e:?} for {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{path}: {e:?}"),
        }
    }
}
