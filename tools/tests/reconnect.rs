//! herd-cli's session moves to the next server of its list when its
//! connection is lost, as zkCli's does between an ensemble's members: the
//! shell (the library the binary runs) connects through a proxy listed first,
//! the proxy cuts the connection, and the next command finds the session open
//! again on the server listed second, with its ephemeral nodes, its one-shot
//! (data, exists, children) and persistent-recursive watches set again
//! (`setWatches2`), and zkCli's Disconnected and SyncConnected events.

#[path = "../../server/tests/common/proxy.rs"]
mod proxy;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_server::{Config, Server};
use herd_tools::shell::{output, Shell, Status};

/// What a shell printed, readable while it runs.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printed {
    /// Everything printed since the last take.
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn shell(server: &str) -> (Shell, Printed) {
    let out = Printed::default();
    // Errors go to the same place: a failing command's text is in the output.
    let mut s = Shell::new(server, 10_000, output(out.clone()), output(out.clone()));
    s.connect().expect("connect");
    (s, out)
}

fn run(s: &mut Shell, out: &Printed, line: &str) {
    let status = s.execute_line(line);
    assert_eq!(status, Status::Ok, "{line}: {}", out.take());
}

/// The ephemeralOwner line of `stat path`.
fn owner(s: &mut Shell, out: &Printed, path: &str) -> String {
    out.take();
    run(s, out, &format!("stat {path}"));
    let text = out.take();
    text.lines()
        .find(|l| l.starts_with("ephemeralOwner = "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned()
}

#[test]
fn a_lost_connection_moves_the_session_to_the_next_server_with_its_watches() {
    let dir = std::env::temp_dir().join(format!("herd-cli-reconnect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        "clientPort=0\nadmin.enableServer=false\ntickTime=2000\n4lw.commands.whitelist=*\nshards=2\npreAllocSize=1024\n";
    let mut config: Config = Config::parse(text, "test config").unwrap().0;
    config.data_dir = dir.clone();
    config.data_log_dir = dir.clone();
    let server = Server::start(config).expect("start herd");
    let direct = server.client_addr().to_string();
    let proxy = proxy::Proxy::start(&direct);

    let (mut s, out) = shell(&format!("{},{direct}", proxy.addr));
    for line in [
        "create /r one",
        "create -e /eph",
        "create /tree",
        "get -w /r",
        "ls -w /tree",
        "addWatch -m PERSISTENT_RECURSIVE /tree",
    ] {
        run(&mut s, &out, line);
    }
    // Node does not exist, and the watch stays.
    assert_eq!(s.execute_line("stat -w /missing"), Status::Failed(1));
    let before = owner(&mut s, &out, "/eph");

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.connected() {
        assert!(Instant::now() < deadline, "the cut is noticed");
        std::thread::sleep(Duration::from_millis(10));
    }
    out.take();
    let status = s.execute_line("ls /");
    let text = out.take();
    assert_eq!(status, Status::Ok, "{text}");
    let disconnected = "WatchedEvent state:Disconnected type:None path:null";
    let connected = "WatchedEvent state:SyncConnected type:None path:null";
    assert!(
        !text.contains(disconnected),
        "announced when it happened: {text}"
    );
    assert!(text.contains(connected), "{text}");
    assert!(
        text.trim_end().ends_with("[eph, r, tree, zookeeper]"),
        "{text}"
    );
    // The same session: a new ephemeral has the old one's owner.
    run(&mut s, &out, "create -e /eph2");
    assert_eq!(owner(&mut s, &out, "/eph2"), before);

    // Its watches fire for another session's writes.
    let (mut other, other_out) = shell(&direct);
    for line in ["set /r two", "create /missing", "create /tree/a"] {
        run(&mut other, &other_out, line);
    }
    let want = [
        "type:NodeDataChanged path:/r",
        "type:NodeCreated path:/missing",
        "type:NodeChildrenChanged path:/tree",
        "type:NodeCreated path:/tree/a",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !want.iter().all(|w| seen.contains(w)) {
        assert!(Instant::now() < deadline, "watches fired: {seen}");
        std::thread::sleep(Duration::from_millis(20));
        seen.push_str(&out.take());
    }
    drop(other);
    drop(s);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
