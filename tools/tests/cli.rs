//! herd-cli end to end: the binary, run one command at a time and as an
//! interactive shell fed on stdin, against an in-process herd and, when the
//! Debian `zookeeper` package is installed, a real Apache ZooKeeper started here
//! on a free port. Each command's exit status, stdout and stderr must match the
//! expected text (checked against zkCli 3.8) once zxids, times and session ids
//! are masked, so herd's output equals ZooKeeper's.

#[path = "../../server/tests/common/zookeeper.rs"]
mod zookeeper;

use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herd_server::{Config, Server};

/// How long one herd-cli run may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("herd-cli-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server under test, stopped on drop.
struct Target {
    name: &'static str,
    addr: String,
    herd: Option<Server>,
    zk: Option<zookeeper::ZooKeeper>,
    _data: Option<TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.zk.take();
        if let Some(server) = self.herd.take() {
            server.stop();
        }
    }
}

fn start_herd() -> Target {
    let data = TempDir::new("herd");
    let text = "clientPort=0\nadmin.enableServer=false\ntickTime=2000\nzookeeper.extendedTypesEnabled=true\n\
                4lw.commands.whitelist=*\nshards=2\npreAllocSize=1024\n";
    let mut config: Config = Config::parse(text, "test config").expect("valid config").0;
    config.data_dir = data.0.clone();
    config.data_log_dir = data.0.clone();
    let server = Server::start(config).expect("start herd");
    Target {
        name: "herd",
        addr: server.client_addr().to_string(),
        herd: Some(server),
        zk: None,
        _data: Some(data),
    }
}

/// Apache ZooKeeper on a free port, or `None` when it is not installed.
fn start_zookeeper() -> Option<Target> {
    let zk = zookeeper::start("cli", "", &[])?;
    Some(Target {
        name: "zookeeper",
        addr: zk.addr.clone(),
        herd: None,
        zk: Some(zk),
        _data: None,
    })
}

/// Tests that start servers run one at a time: `free_port` gives a port that is
/// free now, and two ZooKeepers racing for it would answer each other's `srvr`.
static SERVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// herd and, when installed, ZooKeeper; hold the guard while using them.
fn targets() -> (std::sync::MutexGuard<'static, ()>, Vec<Target>) {
    let serial = SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut t = vec![start_herd()];
    t.extend(start_zookeeper());
    (serial, t)
}

/// One herd-cli run: exit status, stdout, stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs herd-cli with `args`, feeding `stdin`, killing it after [`RUN_TIMEOUT`].
fn herd_cli(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herd-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herd-cli");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for herd-cli") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herd-cli {args:?} did not finish in {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    Run {
        code: status.code().unwrap_or(-1),
        out: out.join().unwrap(),
        err: err.join().unwrap(),
    }
}

/// Drops the banner zkCli prints too (`Connecting to`, the connect event).
fn denoise(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Connecting to ")
            || line == "WatchedEvent state:SyncConnected type:None path:null"
            || line == "WatchedEvent state:Closed type:None path:null"
        {
            // and the `WATCHER::` header and blank lines before it
            while matches!(lines.last(), Some(&"") | Some(&"WATCHER::")) {
                lines.pop();
            }
            continue;
        }
        lines.push(line);
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Masks what differs between servers and runs: zxids, times, session ids.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|line| {
            let masked = match line.split_once(" = ") {
                Some((f @ ("cZxid" | "mZxid" | "pZxid"), v)) if v.starts_with("0x") => {
                    format!("{f} = ZXID")
                }
                Some((f @ ("ctime" | "mtime"), v)) if v.ends_with(char::is_numeric) => {
                    format!("{f} = TIME")
                }
                Some(("ephemeralOwner", v)) if v != "0x0" => "ephemeralOwner = SESSION".into(),
                _ => line.to_owned(),
            };
            format!("{masked}\n")
        })
        .collect()
}

/// whoami lists identities in the server's order (ZooKeeper's differs from
/// herd's): sorts each run of `scheme: id` lines.
fn sort_identities(text: &str) -> String {
    let is_identity = |l: &str| l.starts_with("ip: ") || l.starts_with("digest: ");
    let mut lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let run = lines[i..].iter().take_while(|l| is_identity(l)).count();
        lines[i..i + run].sort_unstable();
        i += run.max(1);
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn one_shot(t: &Target, cmd: &str) -> Run {
    let mut args = vec!["-server", t.addr.as_str(), "-timeout", "5000"];
    let words: Vec<&str> = cmd.split(' ').collect();
    args.extend(words);
    let r = herd_cli(&args, "");
    Run {
        code: r.code,
        out: normalize(&denoise(&r.out)),
        err: normalize(&denoise(&r.err)),
    }
}

fn stat_block(
    cversion: i32,
    version: i32,
    aversion: i32,
    owner: &str,
    len: usize,
    n: i32,
) -> String {
    format!(
        "cZxid = ZXID\nctime = TIME\nmZxid = ZXID\nmtime = TIME\npZxid = ZXID\n\
         cversion = {cversion}\ndataVersion = {version}\naclVersion = {aversion}\n\
         ephemeralOwner = {owner}\ndataLength = {len}\nnumChildren = {n}\n"
    )
}

/// Runs `script` (command, expected exit status, stdout, stderr) on every
/// target and checks each run against it.
fn check_script(script: &[(&str, i32, String, String)]) {
    let (_serial, targets) = targets();
    for t in &targets {
        for (cmd, code, out, err) in script {
            let run = one_shot(t, cmd);
            let want = Run {
                code: *code,
                out: out.clone(),
                err: err.clone(),
            };
            assert_eq!(run, want, "{}: herd-cli {cmd}", t.name);
        }
    }
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn one_shot_commands_print_zkclis_text() {
    let script = vec![
        ("create /r", 0, s(""), s("Created /r\n")),
        ("create /r/t hello_world", 0, s(""), s("Created /r/t\n")),
        ("create /r/t again", 1, s(""), s("Node already exists: /r/t\n")),
        (
            "get -s /r/t",
            0,
            format!("hello_world\n{}", stat_block(0, 0, 0, "0x0", 11, 0)),
            s(""),
        ),
        ("set /r/t updated_value", 0, s(""), s("")),
        ("stat /r/t", 0, stat_block(0, 1, 0, "0x0", 13, 0), s("")),
        (
            "set -s /r/t v3",
            0,
            stat_block(0, 2, 0, "0x0", 2, 0),
            s(""),
        ),
        ("create -s /r/t/seq-", 0, s(""), s("Created /r/t/seq-0000000000\n")),
        (
            "create -e -s /r/t/eph- e",
            0,
            s(""),
            s("Created /r/t/eph-0000000001\n"),
        ),
        (
            "get -s /r/t/seq-0000000000",
            0,
            format!("null\n{}", stat_block(0, 0, 0, "0x0", 0, 0)),
            s(""),
        ),
        (
            "stat /r/t/eph-0000000001",
            0,
            stat_block(0, 0, 0, "SESSION", 1, 0),
            s(""),
        ),
        ("ls /r/t", 0, s("[eph-0000000001, seq-0000000000]\n"), s("")),
        (
            "ls -s /r",
            0,
            format!("[t]\n{}", stat_block(1, 0, 0, "0x0", 0, 1)),
            s(""),
        ),
        (
            "ls -R /r",
            0,
            s("/r\n/r/t\n/r/t/eph-0000000001\n/r/t/seq-0000000000\n"),
            s(""),
        ),
        ("getAllChildrenNumber /r", 0, s("3\n"), s("")),
        ("get /r/missing", 1, s(""), s("Node does not exist: /r/missing\n")),
        ("stat /r/missing", 1, s(""), s("Node does not exist: /r/missing\n")),
        ("ls /r/missing", 1, s(""), s("Node does not exist: /r/missing\n")),
        ("delete /r/t", 1, s(""), s("Node not empty: /r/t\n")),
        (
            "delete -v 5 /r/t/seq-0000000000",
            1,
            s(""),
            s("version No is not valid : /r/t/seq-0000000000\n"),
        ),
        ("set -v 9 /r/t x", 1, s(""), s("version No is not valid : /r/t\n")),
        ("delete -v 0 /r/t/seq-0000000000", 0, s(""), s("")),
        ("getAcl /r/t", 0, s("'world,'anyone\n: cdrwa\n"), s("")),
        (
            "create /r/no/parent x",
            1,
            s(""),
            s("Node does not exist: /r/no/parent\n"),
        ),
        ("create /r/acl secret world:anyone:r", 0, s(""), s("Created /r/acl\n")),
        ("getAcl /r/acl", 0, s("'world,'anyone\n: r\n"), s("")),
        ("set /r/acl x", 1, s(""), s("Insufficient permission : /r/acl\n")),
        (
            "setAcl /r/acl digest:alice:ZJx5AlI8tdnKxY9ht1N9Cb3pzZk=:cdrwa",
            1,
            s(""),
            s("Insufficient permission : /r/acl\n"),
        ),
        ("create /r/open x", 0, s(""), s("Created /r/open\n")),
        (
            "setAcl -s /r/open digest:alice:ZJx5AlI8tdnKxY9ht1N9Cb3pzZk=:cdrwa",
            0,
            stat_block(0, 0, 1, "0x0", 1, 0),
            s(""),
        ),
        ("get /r/open", 1, s(""), s("Insufficient permission : /r/open\n")),
        ("create -c /r/cont", 0, s(""), s("Created /r/cont\n")),
        ("create -t 600000 /r/ttl d", 0, s(""), s("Created /r/ttl\n")),
        ("sync /r", 0, s("Sync is OK\n"), s("")),
        ("getEphemerals /r", 0, s("[]\n"), s("")),
        (
            "create -c -e /r/bad",
            1,
            s(""),
            s("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.\n"),
        ),
        (
            "create -t x /r/bad",
            1,
            s(""),
            s("-t argument must be a long value\n"),
        ),
        (
            "create /r/bad d foo",
            1,
            s(""),
            s("foo does not have the form scheme:id:perm\nAcl is not valid : /r/bad\n"),
        ),
        ("get r", 1, s(""), s("Path must start with / character\n")),
        ("get", 1, s(""), s("get [-s] [-w] path\n")),
        (
            "get -x /r",
            1,
            s(""),
            s("Unrecognized option: -x\nget [-s] [-w] path\n"),
        ),
        (
            "delete -v x /r",
            1,
            s(""),
            s("-v argument must be an integer: x\n"),
        ),
        (
            "removewatches /r",
            1,
            s(""),
            s("KeeperErrorCode = No such watcher for /r\n"),
        ),
        ("deleteall /r/t", 0, s(""), s("")),
        ("ls /r", 0, s("[acl, cont, open, ttl]\n"), s("")),
        ("deleteall /r/none", 1, s(""), s("Node does not exist: /r/none\n")),
    ];
    check_script(&script);
}

#[test]
fn unknown_command_lists_the_commands_and_exits_127() {
    // Checked before connecting: no server needed.
    let r = herd_cli(&["-server", "127.0.0.1:1", "bogus", "x"], "");
    assert_eq!(r.code, 127);
    assert_eq!(r.out, "");
    assert!(r.err.contains("\tget [-s] [-w] path\n"), "{}", r.err);
    assert!(r
        .err
        .ends_with("Command not found: Command not found bogus\n"));
}

#[test]
fn unreachable_server_fails_one_shot_commands() {
    let port = zookeeper::free_port("127.0.0.1");
    let addr = format!("127.0.0.1:{port}");
    let r = herd_cli(&["-server", &addr, "ls", "/"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.err.starts_with(&format!("Unable to connect to {addr}")),
        "{}",
        r.err
    );
}

#[test]
fn bad_options_exit_2() {
    let r = herd_cli(&["-timeout", "soon"], "");
    assert_eq!(r.code, 2);
    assert!(r
        .err
        .starts_with("herd-cli: -timeout: expected milliseconds"));
}

/// One interactive session on stdin: watches fire and print between commands,
/// addauth lets the session read a protected node, history numbers the lines,
/// close leaves the shell unconnected, and the shell exits with the status of
/// its last command.
#[test]
fn interactive_session_prints_watches_auth_and_history() {
    const ACL: &str = "digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa";
    let input = format!(
        "create /w data\nget -w /w\nset /w changed\nls -w /w\ncreate /w/c\nstat -w /w/c\n\
         stat -w /w/none\nremovewatches /w/none -d\naddWatch -m PERSISTENT /w\nremovewatches /w/c -d\nremovewatches /w\n\
         create /w/p x {ACL}\nget /w/p\naddauth digest bob:pw\nget /w/p\ncreate -e /w/e\n\
         getEphemerals /w\nwhoami\nprintwatches off\nset /w again\nhistory\nclose\nls /\n\
         connect\nls /w\ndeleteall /none\nquit\n"
    );
    let event = |kind: &str, path: &str| {
        format!("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{path}\n")
    };
    let history = [
        "removewatches /w",
        &format!("create /w/p x {ACL}"),
        "get /w/p",
        "addauth digest bob:pw",
        "get /w/p",
        "create -e /w/e",
        "getEphemerals /w",
        "whoami",
        "printwatches off",
        "set /w again",
        "history",
    ]
    .iter()
    .enumerate()
    .map(|(i, line)| format!("{} - {line}\n", i + 10))
    .collect::<String>();
    let want_out = [
        "Connecting to ADDR\n".to_owned(),
        event("None", "null"),
        "data\n".into(),
        event("NodeDataChanged", "/w"),
        "[]\n".into(),
        event("NodeChildrenChanged", "/w"),
        stat_block(0, 0, 0, "0x0", 0, 0),
        // An exists watch stays on a missing node.
        event("DataWatchRemoved", "/w/none"),
        event("DataWatchRemoved", "/w/c"),
        event("PersistentWatchRemoved", "/w"),
        "x\n[/w/e]\nAuth scheme: User\ndigest: bob\nip: 127.0.0.1\n".into(),
        history,
        // close and connect announce nothing with printwatches off; the closed
        // session's ephemeral is gone.
        "Not connected\n[c, p]\n".into(),
    ]
    .concat();
    let want_err = "Created /w\nCreated /w/c\nNode does not exist: /w/none\nCreated /w/p\nInsufficient permission : /w/p\n\
                    Created /w/e\nNode does not exist: /none\n";
    let (_serial, all) = targets();
    for t in all {
        let r = herd_cli(&["-server", &t.addr, "-timeout", "5000"], &input);
        let out = sort_identities(&normalize(&r.out.replace(&t.addr, "ADDR")));
        assert_eq!(
            (r.code, out.as_str(), r.err.as_str()),
            (1, want_out.as_str(), want_err),
            "{}",
            t.name
        );
    }
}
