//! Crash harness: a `herd` subprocess under concurrent writers is killed with
//! SIGKILL at varying moments, restarted on the same data directory, and must
//! hold every acknowledged write (at least at its acknowledged version) in a
//! consistent tree. Snapshots are taken (and old files purged) along the way, so
//! recovery runs from snapshots plus the log. Rounds and timings are bounded and seeded.

mod common;

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TempDir;
use zookeeper_client::{Acls, Client, CreateMode};

const ROUNDS: u64 = 6;
const WRITERS: usize = 4;

/// A herd child process on an ephemeral port.
struct Herd {
    child: Child,
    addr: String,
}

impl Herd {
    fn start(data: &TempDir) -> Herd {
        let cfg = data.0.join("zoo.cfg");
        let text = format!(
            "clientPort=0\nadmin.enableServer=false\ndataDir={}\npreAllocSize=256\n4lw.commands.whitelist=*\nsnapCount=500\nautopurge.purgeInterval=1\n",
            data.0.join("data").display()
        );
        std::fs::write(&cfg, text).unwrap();
        let (child, addr) = common::spawn_herd(&cfg, Stdio::inherit());
        Herd { child, addr }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the writers were told succeeded.
#[derive(Default)]
struct Acked {
    created: Vec<String>,
    /// (path, version) acknowledged by setData.
    set: Vec<(String, i32)>,
}

async fn writer(addr: String, round: u64, id: usize, acked: Arc<Mutex<Acked>>) {
    let Ok(client) = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&addr)
        .await
    else {
        return;
    };
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let counter = format!("/c/r{round}-w{id}");
    if client.create(&counter, b"0", &open).await.is_err() {
        return;
    }
    acked.lock().unwrap().created.push(counter.clone());
    for n in 0.. {
        let child = format!("{counter}-n{n}");
        match client.create(&child, &[b'x'; 100], &open).await {
            Ok(_) => acked.lock().unwrap().created.push(child),
            Err(_) => return,
        }
        match client
            .set_data(&counter, n.to_string().as_bytes(), None)
            .await
        {
            Ok(stat) => acked
                .lock()
                .unwrap()
                .set
                .push((counter.clone(), stat.version)),
            Err(_) => return,
        }
    }
}

/// numChildren and the child lists agree everywhere below `path`.
async fn check_consistent(client: &Client, path: &str) {
    let (children, stat) = client.get_children(path).await.unwrap();
    assert_eq!(
        stat.num_children as usize,
        children.len(),
        "{path}: numChildren"
    );
    // Every child present was created once; the root's /zookeeper is built in, not created.
    assert!(
        path == "/" || stat.cversion >= children.len() as i32,
        "{path}: cversion counts creates"
    );
    for c in children {
        let child = if path == "/" {
            format!("/{c}")
        } else {
            format!("{path}/{c}")
        };
        if child != "/zookeeper" {
            Box::pin(check_consistent(client, &child)).await;
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let data = TempDir::new();
    let herd = Herd::start(&data);
    let client = common::connect_addr(&herd.addr).await;
    client
        .create(
            "/c",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    drop(client);
    let mut herd = Some(herd);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..ROUNDS {
        let running = herd.take().unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| tokio::spawn(writer(running.addr.clone(), round, id, acked.clone())))
            .collect();
        // Seeded, varying kill moments between 30 and 330 ms.
        let delay = 30 + (round * 7919 + 13) % 300;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        running.kill();
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }

        let restarted = Herd::start(&data);
        let client = common::connect_addr(&restarted.addr).await;
        let acked_now = std::mem::take(&mut *acked.lock().unwrap());
        for path in &acked_now.created {
            assert!(
                client.check_stat(path).await.unwrap().is_some(),
                "round {round}: acknowledged create {path} lost"
            );
        }
        for (path, version) in &acked_now.set {
            let stat = client
                .check_stat(path)
                .await
                .unwrap()
                .expect("counter exists");
            assert!(
                stat.version >= *version,
                "round {round}: {path} at version {} < acknowledged {version}",
                stat.version
            );
        }
        assert!(
            !acked_now.created.is_empty(),
            "round {round}: the writers got nothing acknowledged"
        );
        check_consistent(&client, "/").await;
        drop(client);
        herd = Some(restarted);
    }
    let snapshots = std::fs::read_dir(data.0.join("data"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with("snapshot.")
        })
        .count();
    assert!(snapshots > 0, "recovery ran from snapshots too");
}
