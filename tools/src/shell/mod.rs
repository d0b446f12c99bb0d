//! `herd-cli`: a shell compatible with ZooKeeper 3.8's `zkCli.sh`, for herd or
//! any other ZooKeeper-protocol server.
//!
//! ```text
//!  herd-cli -server h:p cmd args ─► run ─► Shell::execute (one command) ─► exit status
//!  herd-cli -server h:p          ─► run ─► line editor / stdin ─► Shell::execute_line ...
//!
//!  Shell::execute: words ─► command::parse (table of zkCli's commands) ─► a request
//!     on the session (client: blocking, one call at a time) ─► format: zkCli's text
//!  events: client reader thread ─► Watches (one-shot bookkeeping) ─► `WATCHER::` lines
//! ```
//!
//! Output follows zkCli byte for byte where scripts read it: results on stdout,
//! `Created /p` and error lines on stderr, `WATCHER::` blocks on stdout as events
//! arrive. As in zkCli, a one-shot command leaves its session to expire (so an
//! ephemeral it created outlives the process by the session timeout), and an
//! interactive shell exits with the status of its last command.
//!
//! Exit status: 0 success, 1 a failed command or bad arguments, 127 an unknown
//! command (zkCli's), 2 bad options to herd-cli itself.

pub mod client;
pub mod command;
pub mod format;

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use engine::acl::Acl;
use engine::ErrorCode;
use herd_proto::jute::{Reader, Write};
use herd_proto::{opcode, SetWatches, WatcherType};

use client::{event, state, Client, EventSink, Reconnect, WatchedEvent};
use command::{ArgError, Parsed, Spec};

/// The server zkCli connects to without `-server`.
pub const DEFAULT_SERVER: &str = "localhost:2181";
/// The session timeout zkCli asks for without `-timeout`.
pub const DEFAULT_TIMEOUT_MS: i32 = 30_000;
/// Entries `history` shows: the current command and the ten before it.
const HISTORY_SHOWN: usize = 11;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_OPTIONS: u8 = 2;
pub const EXIT_UNKNOWN_COMMAND: u8 = 127;

pub const HELP: &str = "\
herd-cli: a zkCli-compatible shell for herd and other ZooKeeper servers

usage:
  herd-cli [-server host:port[,host:port...]] [-timeout ms]            interactive
  herd-cli [-server host:port[,host:port...]] [-timeout ms] cmd args   one command

Default server localhost:2181, default session timeout 30000 ms. Type `help` in
the shell for the commands (those of zkCli 3.8).
";

/// Where the shell writes; shared with the thread that prints watch events.
pub type Output = Arc<Mutex<Box<dyn std::io::Write + Send>>>;

/// Wraps a writer as an [`Output`].
pub fn output(w: impl std::io::Write + Send + 'static) -> Output {
    Arc::new(Mutex::new(Box::new(w)))
}

fn emit(out: &Output, text: &str) {
    let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

fn emit_lines(out: &Output, lines: &[String]) {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    emit(out, &text);
}

/// The outcome of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Failed, with the exit status a one-shot run ends with.
    Failed(u8),
    /// `quit`.
    Quit,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok | Status::Quit => 0,
            Status::Failed(code) => code,
        }
    }
}

/// Why a command failed; printed on stderr.
enum Failure {
    /// A `KeeperException` on a path.
    Keeper(ErrorCode, Option<String>),
    /// A message of its own (bad arguments, client-side checks).
    Message(String),
    /// Already reported.
    Quiet,
}

type CmdResult = Result<(), Failure>;

fn keeper(path: &str) -> impl Fn(ErrorCode) -> Failure + '_ {
    move |code| Failure::Keeper(code, Some(path.to_owned()))
}

fn malformed(_: herd_proto::jute::Malformed) -> Failure {
    Failure::Message("malformed reply from the server".into())
}

/// The session's watches, as ZooKeeper's client keeps them: needed to answer
/// `removewatches` for a watch that is not there and to announce removals.
#[derive(Default)]
struct Watches {
    /// getData and exists watches (one-shot).
    data: BTreeSet<String>,
    /// Of those, exists watches left on a missing node.
    exist: BTreeSet<String>,
    /// getChildren watches (one-shot).
    child: BTreeSet<String>,
    /// addWatch PERSISTENT and PERSISTENT_RECURSIVE.
    persistent: BTreeSet<String>,
    /// Of those, PERSISTENT_RECURSIVE.
    recursive: BTreeSet<String>,
}

impl Watches {
    /// Forgets the one-shot watches `e` triggered.
    fn fired(&mut self, e: &WatchedEvent) {
        let Some(path) = &e.path else { return };
        match e.kind {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => {
                self.data.remove(path);
                self.exist.remove(path);
            }
            event::NODE_CHILDREN_CHANGED => {
                self.child.remove(path);
            }
            event::NODE_DELETED => {
                self.data.remove(path);
                self.exist.remove(path);
                self.child.remove(path);
            }
            _ => {}
        }
    }

    /// What a new connection is told of them (`setWatches2`).
    fn to_set(&self, relative_zxid: i64) -> SetWatches {
        let list = |all: &BTreeSet<String>, except: &BTreeSet<String>| {
            all.difference(except).cloned().collect()
        };
        let none = BTreeSet::new();
        SetWatches {
            relative_zxid,
            data: list(&self.data, &self.exist),
            exist: list(&self.exist, &none),
            child: list(&self.child, &none),
            persistent: list(&self.persistent, &self.recursive),
            recursive: list(&self.recursive, &none),
        }
    }
}

/// One shell: a session (when connected), its history and its outputs.
pub struct Shell {
    out: Output,
    err: Output,
    server: String,
    timeout_ms: i32,
    client: Option<Client>,
    history: Vec<String>,
    print_watches: Arc<AtomicBool>,
    watches: Arc<Mutex<Watches>>,
    /// The status of the last command other than `quit`.
    last: Status,
}

impl Shell {
    /// A shell for `server`, not yet connected.
    pub fn new(server: &str, timeout_ms: i32, out: Output, err: Output) -> Shell {
        Shell {
            out,
            err,
            server: server.to_owned(),
            timeout_ms,
            client: None,
            history: Vec::new(),
            print_watches: Arc::new(AtomicBool::new(true)),
            watches: Arc::default(),
            last: Status::Ok,
        }
    }

    /// Whether the session is up.
    pub fn connected(&self) -> bool {
        self.client.as_ref().is_some_and(Client::is_alive)
    }

    /// The status of the last command other than `quit`.
    pub fn last_status(&self) -> Status {
        self.last
    }

    /// zkCli's prompt: `[zk: host:port(CONNECTED) 3] `.
    pub fn prompt(&self) -> String {
        let state = if self.connected() {
            "CONNECTED"
        } else {
            "CLOSED"
        };
        format!("[zk: {}({state}) {}] ", self.server, self.history.len())
    }

    fn sink(&self) -> EventSink {
        let (out, print, watches) = (
            self.out.clone(),
            self.print_watches.clone(),
            self.watches.clone(),
        );
        Arc::new(move |e: WatchedEvent| {
            watches.lock().unwrap_or_else(|e| e.into_inner()).fired(&e);
            if print.load(Ordering::SeqCst) {
                emit(&out, &format::watcher_text(&e));
            }
        })
    }

    fn announce(&self, e: WatchedEvent) {
        (self.sink())(e);
    }

    /// Opens a new session on the shell's server, replacing (closing) any
    /// current one. Announces the session like zkCli's default watcher.
    pub fn connect(&mut self) -> Result<(), String> {
        self.disconnect();
        *self.watches.lock().unwrap_or_else(|e| e.into_inner()) = Watches::default();
        let client = Client::connect(&self.server, self.timeout_ms, self.sink())
            .map_err(|e| format!("Unable to connect to {}: {e}", self.server))?;
        self.client = Some(client);
        self.announce(WatchedEvent::session(state::SYNC_CONNECTED));
        Ok(())
    }

    /// Closes the session, if any, announcing `Closed`.
    fn disconnect(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close();
            self.announce(WatchedEvent::session(state::CLOSED));
        }
    }

    /// Runs one command line, recording it in the history.
    pub fn execute_line(&mut self, line: &str) -> Status {
        let words = command::split_words(line);
        if words.is_empty() {
            return Status::Ok;
        }
        self.history.push(line.trim().to_owned());
        self.execute(&words)
    }

    /// Checks a command's name and arguments without running it; prints what is
    /// wrong. One-shot mode uses it to fail before connecting.
    pub fn check(&self, words: &[String]) -> Status {
        match self.resolve(words) {
            Ok(_) => Status::Ok,
            Err(status) => status,
        }
    }

    fn resolve(&self, words: &[String]) -> Result<(&'static Spec, Parsed), Status> {
        let Some(name) = words.first() else {
            return Err(Status::Failed(EXIT_FAILED));
        };
        let Some(spec) = command::find(name) else {
            if name == "help" {
                emit(&self.err, &command::usage_all());
                return Err(Status::Ok);
            }
            emit(
                &self.err,
                &format!(
                    "{}Command not found: Command not found {name}\n",
                    command::usage_all()
                ),
            );
            return Err(Status::Failed(EXIT_UNKNOWN_COMMAND));
        };
        command::parse(spec, &words[1..])
            .map(|p| (spec, p))
            .map_err(|e| {
                let usage = command::usage_line(spec);
                let text = match e {
                    ArgError::UnknownOption(o) => format!("Unrecognized option: {o}\n{usage}\n"),
                    ArgError::MissingValue(o) => {
                        format!("Missing argument for option: {o}\n{usage}\n")
                    }
                    ArgError::Arity => format!("{usage}\n"),
                };
                emit(&self.err, &text);
                Status::Failed(EXIT_FAILED)
            })
    }

    /// Runs one command given as words (name first).
    pub fn execute(&mut self, words: &[String]) -> Status {
        let status = match self.resolve(words) {
            Err(status) => status,
            Ok((spec, parsed)) => self.dispatch(spec, &parsed),
        };
        if status != Status::Quit {
            self.last = status;
        }
        status
    }

    fn dispatch(&mut self, spec: &Spec, p: &Parsed) -> Status {
        match spec.name {
            "quit" => {
                self.disconnect();
                return Status::Quit;
            }
            "redo" => return self.redo(p),
            _ => {}
        }
        if spec.needs_session && self.client.is_some() && !self.connected() {
            // Lost: the session opens again elsewhere, or it is gone.
            let _ = self.session();
        }
        if spec.needs_session && !self.connected() {
            emit(&self.out, "Not connected\n");
            return Status::Failed(EXIT_FAILED);
        }
        let result = match spec.name {
            "ls" => self.ls(p),
            "create" => self.create(p),
            "get" => self.get(p),
            "set" => self.set(p),
            "delete" => self.delete(p),
            "deleteall" => self.delete_all(p),
            "stat" => self.stat(p),
            "getAcl" => self.get_acl(p),
            "setAcl" => self.set_acl(p),
            "addauth" => self.add_auth(p),
            "sync" => self.sync(p),
            "addWatch" => self.add_watch(p),
            "removewatches" => self.remove_watches(p),
            "getEphemerals" => self.get_ephemerals(p),
            "getAllChildrenNumber" => self.all_children_number(p),
            "whoami" => self.who_am_i(),
            "config" => self.config(p),
            "connect" => self.reconnect(p),
            "close" => {
                self.disconnect();
                Ok(())
            }
            "history" => {
                let from = self.history.len().saturating_sub(HISTORY_SHOWN);
                let lines: Vec<String> = (from..self.history.len())
                    .map(|i| format!("{i} - {}", self.history[i]))
                    .collect();
                emit_lines(&self.out, &lines);
                Ok(())
            }
            "printwatches" => self.printwatches(p),
            other => Err(Failure::Message(format!("{other}: not implemented"))),
        };
        match result {
            Ok(()) => Status::Ok,
            Err(failure) => {
                match failure {
                    Failure::Keeper(code, path) => {
                        emit_lines(&self.err, &[format::error_line(code, path.as_deref())])
                    }
                    Failure::Message(m) => emit_lines(&self.err, &[m]),
                    Failure::Quiet => {}
                }
                Status::Failed(EXIT_FAILED)
            }
        }
    }

    fn call(&mut self, op: i32, body: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>, ErrorCode> {
        self.session()?.call(op, body)
    }

    /// The session's client, its connection opened again on the next server
    /// of the list if it was lost (as zkCli's client moves between an
    /// ensemble's members), with its watches set again there.
    fn session(&mut self) -> Result<&mut Client, ErrorCode> {
        let client = self.client.as_mut().ok_or(ErrorCode::ConnectionLoss)?;
        if !client.is_alive() {
            match client.reconnect() {
                Ok(_) => {
                    let set = self
                        .watches
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .to_set(client.last_zxid());
                    self.announce(WatchedEvent::session(state::SYNC_CONNECTED));
                    let client = self.client.as_mut().expect("reconnected");
                    client.set_watches(&set)?;
                }
                Err(Reconnect::Expired) => {
                    self.client = None;
                    self.announce(WatchedEvent::session(state::EXPIRED));
                    return Err(ErrorCode::SessionExpired);
                }
                Err(Reconnect::Unreachable(_)) => return Err(ErrorCode::ConnectionLoss),
            }
        }
        self.client.as_mut().ok_or(ErrorCode::ConnectionLoss)
    }

    fn print_stat(&self, r: &mut Reader<'_>) -> CmdResult {
        let stat = r.stat().map_err(malformed)?;
        emit_lines(&self.out, &format::stat_lines(&stat));
        Ok(())
    }

    fn watch(&self, set: fn(&mut Watches) -> &mut BTreeSet<String>, path: &str) {
        set(&mut self.watches.lock().unwrap_or_else(|e| e.into_inner())).insert(path.to_owned());
    }

    fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, Failure> {
        let body = self
            .call(opcode::GET_CHILDREN, |b| {
                b.string(path);
                b.bool(watch);
            })
            .map_err(keeper(path))?;
        let mut children = Reader::new(&body).strings().map_err(malformed)?;
        children.sort();
        if watch {
            self.watch(|w| &mut w.child, path);
        }
        Ok(children)
    }

    /// `path` and every node under it, parents before children, children sorted.
    fn subtree(&mut self, path: &str, watch: bool) -> Result<Vec<String>, Failure> {
        let mut nodes = vec![path.to_owned()];
        let mut i = 0;
        while i < nodes.len() {
            let parent = nodes[i].clone();
            let children = match self.children(&parent, watch) {
                Ok(c) => c,
                // Deleted meanwhile: nothing under it.
                Err(Failure::Keeper(ErrorCode::NoNode, _)) if i > 0 => Vec::new(),
                Err(e) => return Err(e),
            };
            let under: Vec<String> = children
                .iter()
                .map(|c| engine::tree::join(&parent, c))
                .collect();
            // Depth first: a node's subtree right after it.
            nodes.splice(i + 1..i + 1, under);
            i += 1;
        }
        Ok(nodes)
    }

    fn ls(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or("/"))?;
        let watch = p.has('w');
        if p.has('R') {
            let nodes = self.subtree(path, watch)?;
            emit_lines(&self.out, &nodes);
            return Ok(());
        }
        let op = if p.has('s') {
            opcode::GET_CHILDREN2
        } else {
            opcode::GET_CHILDREN
        };
        let body = self
            .call(op, |b| {
                b.string(path);
                b.bool(watch);
            })
            .map_err(keeper(path))?;
        let mut r = Reader::new(&body);
        let mut children = r.strings().map_err(malformed)?;
        children.sort();
        if watch {
            self.watch(|w| &mut w.child, path);
        }
        emit_lines(&self.out, &[format!("[{}]", children.join(", "))]);
        if p.has('s') {
            self.print_stat(&mut r)?;
        }
        Ok(())
    }

    fn create(&mut self, p: &Parsed) -> CmdResult {
        let (sequential, ephemeral, container) = (p.has('s'), p.has('e'), p.has('c'));
        let ttl_ms = match p.value('t') {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| Failure::Message("-t argument must be a long value".into()))?,
            ),
        };
        if container && (sequential || ephemeral) {
            return Err(Failure::Message(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."
                    .into(),
            ));
        }
        if ttl_ms.is_some() && ephemeral {
            return Err(Failure::Message(
                "TTLs cannot be used with Ephemeral znodes".into(),
            ));
        }
        if ttl_ms.is_some() && container {
            return Err(Failure::Message(
                "TTLs cannot be used with Container znodes".into(),
            ));
        }
        let path = p.arg(0).unwrap_or_default();
        format::validate_path(path, sequential).map_err(Failure::Message)?;
        let data = p.arg(1).map(str::as_bytes);
        let acl = match p.arg(2) {
            None => Acl::open_unsafe(),
            Some(text) => parse_acl(text, path)?,
        };
        // CreateMode flags.
        let flags = match (ttl_ms.is_some(), container, ephemeral, sequential) {
            (true, _, _, false) => 5,
            (true, _, _, true) => 6,
            (false, true, _, _) => 4,
            (false, false, e, s) => i32::from(e) | (i32::from(s) << 1),
        };
        let op = if ttl_ms.is_some() {
            opcode::CREATE_TTL
        } else if container {
            opcode::CREATE_CONTAINER
        } else {
            opcode::CREATE
        };
        let body = self
            .call(op, |b| {
                b.string(path);
                match data {
                    Some(d) => b.buffer(d),
                    None => b.i32(-1),
                }
                b.acls(&acl);
                b.i32(flags);
                if let Some(ttl) = ttl_ms {
                    b.i64(ttl);
                }
            })
            .map_err(keeper(path))?;
        let created = Reader::new(&body).string().map_err(malformed)?;
        emit_lines(&self.err, &[format!("Created {created}")]);
        Ok(())
    }

    fn get(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let watch = p.has('w');
        let body = self
            .call(opcode::GET_DATA, |b| {
                b.string(path);
                b.bool(watch);
            })
            .map_err(keeper(path))?;
        if watch {
            self.watch(|w| &mut w.data, path);
        }
        let mut r = Reader::new(&body);
        let data = r.data().map_err(malformed)?;
        let text = match data.bytes() {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => "null".to_owned(),
        };
        emit_lines(&self.out, &[text]);
        if p.has('s') {
            self.print_stat(&mut r)?;
        }
        Ok(())
    }

    fn set(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let data = p.arg(1).unwrap_or_default().as_bytes();
        let version = version(p)?;
        let body = self
            .call(opcode::SET_DATA, |b| {
                b.string(path);
                b.buffer(data);
                b.i32(version);
            })
            .map_err(keeper(path))?;
        if p.has('s') {
            self.print_stat(&mut Reader::new(&body))?;
        }
        Ok(())
    }

    fn delete(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let version = version(p)?;
        self.call(opcode::DELETE, |b| {
            b.string(path);
            b.i32(version);
        })
        .map_err(keeper(path))?;
        Ok(())
    }

    fn delete_all(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        if let Some(b) = p.value('b') {
            b.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Failure::Message("batch size must be a positive integer".into()))?;
        }
        let nodes = self.subtree(path, false)?;
        let mut failed = false;
        for node in nodes.iter().rev() {
            let result = self.call(opcode::DELETE, |b| {
                b.string(node);
                b.i32(-1);
            });
            match result {
                Ok(_) | Err(ErrorCode::NoNode) => {}
                Err(_) => failed = true,
            }
        }
        if failed {
            return Err(Failure::Message(
                "Failed to delete some node(s) in the subtree!".into(),
            ));
        }
        Ok(())
    }

    fn stat(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let watch = p.has('w');
        let reply = self.call(opcode::EXISTS, |b| {
            b.string(path);
            b.bool(watch);
        });
        if watch && matches!(reply, Ok(_) | Err(ErrorCode::NoNode)) {
            // An exists watch is left even on a missing node.
            self.watch(|w| &mut w.data, path);
            if reply.is_err() {
                self.watch(|w| &mut w.exist, path);
            }
        }
        let body = reply.map_err(keeper(path))?;
        self.print_stat(&mut Reader::new(&body))
    }

    fn get_acl(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let body = self
            .call(opcode::GET_ACL, |b| b.string(path))
            .map_err(keeper(path))?;
        let mut r = Reader::new(&body);
        let acl = r.acls().map_err(malformed)?;
        emit_lines(&self.out, &format::acl_lines(&acl));
        if p.has('s') {
            self.print_stat(&mut r)?;
        }
        Ok(())
    }

    fn set_acl(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let acl = parse_acl(p.arg(1).unwrap_or_default(), path)?;
        let version = version(p)?;
        let nodes = if p.has('R') {
            self.subtree(path, false)?
        } else {
            vec![path.to_owned()]
        };
        for node in &nodes {
            let body = self
                .call(opcode::SET_ACL, |b| {
                    b.string(node);
                    b.acls(&acl);
                    b.i32(version);
                })
                .map_err(keeper(node))?;
            if p.has('s') && !p.has('R') {
                self.print_stat(&mut Reader::new(&body))?;
            }
        }
        Ok(())
    }

    fn add_auth(&mut self, p: &Parsed) -> CmdResult {
        let scheme = p.arg(0).unwrap_or_default();
        let auth = p.arg(1).unwrap_or_default().as_bytes();
        self.session()
            .and_then(|c| c.auth(scheme, auth))
            .map_err(|code| Failure::Keeper(code, None))
    }

    fn sync(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        match self.call(opcode::SYNC, |b| b.string(path)) {
            Ok(_) => {
                emit_lines(&self.out, &["Sync is OK".into()]);
                Ok(())
            }
            Err(code) => {
                emit_lines(&self.out, &[format!("Sync has failed. rc={}", code.code())]);
                Err(Failure::Quiet)
            }
        }
    }

    fn add_watch(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let recursive = match p.value('m') {
            None | Some("PERSISTENT_RECURSIVE") => true,
            Some("PERSISTENT") => false,
            Some(other) => {
                return Err(Failure::Message(format!(
                    "{other}: mode must be PERSISTENT or PERSISTENT_RECURSIVE\n{}",
                    command::usage_line(command::find("addWatch").expect("addWatch is a command"))
                )))
            }
        };
        self.call(opcode::ADD_WATCH, |b| {
            b.string(path);
            b.i32(i32::from(recursive));
        })
        .map_err(keeper(path))?;
        self.watch(|w| &mut w.persistent, path);
        if recursive {
            self.watch(|w| &mut w.recursive, path);
        }
        Ok(())
    }

    fn remove_watches(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let kind = if p.has('c') {
            WatcherType::Children
        } else if p.has('d') {
            WatcherType::Data
        } else {
            WatcherType::Any
        };
        // What the client holds, checked first as ZooKeeper's client does.
        let (data, child, persistent) = {
            let w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
            (
                w.data.contains(path),
                w.child.contains(path),
                w.persistent.contains(path),
            )
        };
        let removed = match kind {
            WatcherType::Data => [data, false, false],
            WatcherType::Children => [false, child, false],
            // Any: the shell asks for no other type.
            _ => [data, child, persistent],
        };
        if !removed.iter().any(|&r| r) {
            return Err(Failure::Keeper(ErrorCode::NoWatcher, Some(path.to_owned())));
        }
        if !p.has('l') {
            self.call(opcode::REMOVE_WATCHES, |b| {
                b.string(path);
                b.i32(kind as i32);
            })
            .map_err(keeper(path))?;
        }
        let events = [
            event::DATA_WATCH_REMOVED,
            event::CHILD_WATCH_REMOVED,
            event::PERSISTENT_WATCH_REMOVED,
        ];
        {
            let mut guard = self.watches.lock().unwrap_or_else(|e| e.into_inner());
            let w = &mut *guard;
            let sets = [&mut w.data, &mut w.child, &mut w.persistent];
            for (set, gone) in sets.into_iter().zip(removed) {
                if gone {
                    set.remove(path);
                }
            }
            if removed[0] {
                w.exist.remove(path);
            }
            if removed[2] {
                w.recursive.remove(path);
            }
        }
        for (kind, gone) in events.into_iter().zip(removed) {
            if gone {
                self.announce(WatchedEvent {
                    state: state::SYNC_CONNECTED,
                    kind,
                    path: Some(path.to_owned()),
                });
            }
        }
        Ok(())
    }

    fn get_ephemerals(&mut self, p: &Parsed) -> CmdResult {
        let prefix = checked_path(p.arg(0).unwrap_or("/"))?;
        let body = self
            .call(opcode::GET_EPHEMERALS, |b| b.string(prefix))
            .map_err(keeper(prefix))?;
        let mut paths = Reader::new(&body).strings().map_err(malformed)?;
        paths.sort();
        emit_lines(&self.out, &[format!("[{}]", paths.join(", "))]);
        Ok(())
    }

    fn all_children_number(&mut self, p: &Parsed) -> CmdResult {
        let path = checked_path(p.arg(0).unwrap_or_default())?;
        let body = self
            .call(opcode::GET_ALL_CHILDREN_NUMBER, |b| b.string(path))
            .map_err(keeper(path))?;
        let n = Reader::new(&body).i32().map_err(malformed)?;
        emit_lines(&self.out, &[n.to_string()]);
        Ok(())
    }

    fn who_am_i(&mut self) -> CmdResult {
        let body = self
            .call(opcode::WHO_AM_I, |_| {})
            .map_err(|code| Failure::Keeper(code, None))?;
        let mut r = Reader::new(&body);
        let n = r.i32().map_err(malformed)?;
        let mut lines = vec!["Auth scheme: User".to_owned()];
        for _ in 0..n.max(0) {
            let scheme = r.string().map_err(malformed)?;
            let user = r.string().map_err(malformed)?;
            lines.push(format!("{scheme}: {user}"));
        }
        emit_lines(&self.out, &lines);
        Ok(())
    }

    fn config(&mut self, p: &Parsed) -> CmdResult {
        const CONFIG_NODE: &str = "/zookeeper/config";
        let watch = p.has('w');
        let body = self
            .call(opcode::GET_DATA, |b| {
                b.string(CONFIG_NODE);
                b.bool(watch);
            })
            .map_err(keeper(CONFIG_NODE))?;
        if watch {
            self.watch(|w| &mut w.data, CONFIG_NODE);
        }
        let mut r = Reader::new(&body);
        let data = r.data().map_err(malformed)?;
        let text = String::from_utf8_lossy(data.bytes().unwrap_or_default()).into_owned();
        let text = if p.has('c') {
            client_config(&text)
        } else {
            text
        };
        emit_lines(&self.out, &[text]);
        if p.has('s') {
            self.print_stat(&mut r)?;
        }
        Ok(())
    }

    fn reconnect(&mut self, p: &Parsed) -> CmdResult {
        if let Some(server) = p.arg(0) {
            self.server = server.to_owned();
        }
        self.connect().map_err(Failure::Message)
    }

    fn printwatches(&mut self, p: &Parsed) -> CmdResult {
        match p.arg(0) {
            None => {
                let on = self.print_watches.load(Ordering::SeqCst);
                emit_lines(
                    &self.err,
                    &[format!("printwatches is {}", if on { "on" } else { "off" })],
                );
                Ok(())
            }
            Some("on") => {
                self.print_watches.store(true, Ordering::SeqCst);
                Ok(())
            }
            Some("off") => {
                self.print_watches.store(false, Ordering::SeqCst);
                Ok(())
            }
            Some(_) => Err(Failure::Message(command::usage_line(
                command::find("printwatches").expect("printwatches is a command"),
            ))),
        }
    }

    fn redo(&mut self, p: &Parsed) -> Status {
        let n = p.arg(0).and_then(|n| n.parse::<usize>().ok());
        // The `redo` line itself is the last entry.
        let current = self.history.len().saturating_sub(1);
        match n.filter(|&n| n < current) {
            Some(n) => {
                let line = self.history[n].clone();
                if let Some(last) = self.history.last_mut() {
                    *last = line.clone();
                }
                self.execute(&command::split_words(&line))
            }
            None => {
                emit_lines(&self.err, &["Command index out of range".into()]);
                Status::Failed(EXIT_FAILED)
            }
        }
    }
}

fn checked_path(path: &str) -> Result<&str, Failure> {
    format::validate_path(path, false).map_err(Failure::Message)?;
    Ok(path)
}

fn version(p: &Parsed) -> Result<i32, Failure> {
    match p.value('v') {
        None => Ok(-1),
        Some(v) => v
            .parse()
            .map_err(|_| Failure::Message(format!("-v argument must be an integer: {v}"))),
    }
}

fn parse_acl(text: &str, path: &str) -> Result<Vec<Acl>, Failure> {
    format::parse_acl(text).map_err(|why| {
        Failure::Message(format!(
            "{why}\n{}",
            format::error_line(ErrorCode::InvalidAcl, Some(path))
        ))
    })
}

/// `config -c`: the dynamic configuration's version and client addresses,
/// as ZooKeeper's `ConfigUtils.getClientConfigStr` prints them.
fn client_config(config: &str) -> String {
    let mut version = "0".to_owned();
    let mut clients = Vec::new();
    for line in config.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            version = v.trim().to_owned();
        } else if let Some((_, server)) = line.split_once('=') {
            // server.N=host:quorum:election[:role];clientHost:clientPort
            if let Some((_, client)) = server.split_once(';') {
                clients.push(client.trim().to_owned());
            }
        }
    }
    format!("{version} {}", clients.join(","))
}

/// Global options before the command.
struct Options {
    server: String,
    timeout_ms: i32,
    command: Vec<String>,
}

fn parse_options(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        server: DEFAULT_SERVER.to_owned(),
        timeout_ms: DEFAULT_TIMEOUT_MS,
        command: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "-h" | "--help" => return Ok(None),
            "-server" => {
                o.server = value(i)?;
                i += 2;
            }
            "-timeout" => {
                let v = value(i)?;
                o.timeout_ms = v
                    .parse()
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(|| format!("-timeout: expected milliseconds, got {v:?}"))?;
                i += 2;
            }
            // zkCli's: accepted for compatibility, without effect here.
            "-r" | "-waitforconnection" => i += 1,
            "-client-configuration" => {
                value(i)?;
                i += 2;
            }
            _ => {
                o.command = args[i..].to_vec();
                break;
            }
        }
    }
    Ok(Some(o))
}

/// Runs `herd-cli` with `args` (program name excluded): one command when
/// `args` name one, otherwise an interactive shell reading `input` (with line
/// editing and history when stdin is a terminal and `input` is `None`).
pub fn run(args: &[String], input: Option<&mut dyn BufRead>, out: Output, err: Output) -> u8 {
    let options = match parse_options(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            emit(&out, HELP);
            return 0;
        }
        Err(why) => {
            emit(&err, &format!("herd-cli: {why}\n{HELP}"));
            return EXIT_BAD_OPTIONS;
        }
    };
    let mut shell = Shell::new(
        &options.server,
        options.timeout_ms,
        out.clone(),
        err.clone(),
    );
    if !options.command.is_empty() {
        let status = shell.check(&options.command);
        if status != Status::Ok {
            return status.exit_code();
        }
        emit(&out, &format!("Connecting to {}\n", options.server));
        if let Err(why) = shell.connect() {
            emit(&err, &format!("{why}\n"));
            return EXIT_FAILED;
        }
        return shell.execute(&options.command).exit_code();
    }
    emit(&out, &format!("Connecting to {}\n", options.server));
    if let Err(why) = shell.connect() {
        emit(&err, &format!("{why}\n"));
    }
    match input {
        Some(input) => read_loop(&mut shell, input),
        None if std::io::stdin().is_terminal() => edit_loop(&mut shell, &err),
        None => read_loop(&mut shell, &mut std::io::stdin().lock()),
    }
    shell.disconnect();
    shell.last_status().exit_code()
}

/// Commands from a pipe or file, one per line, without prompts (as zkCli does
/// without a terminal).
fn read_loop(shell: &mut Shell, input: &mut dyn BufRead) {
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if shell.execute_line(&line) == Status::Quit {
                    return;
                }
            }
        }
    }
}

/// Commands typed at a terminal, with rustyline's line editing and history.
fn edit_loop(shell: &mut Shell, err: &Output) {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            emit(
                err,
                &format!("herd-cli: no line editor ({e}); reading plain lines\n"),
            );
            return read_loop(shell, &mut std::io::stdin().lock());
        }
    };
    loop {
        match editor.readline(&shell.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if shell.execute_line(&line) == Status::Quit {
                    return;
                }
            }
            // Ctrl-C abandons the line, as in zkCli; Ctrl-D ends the shell.
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => return,
        }
    }
}
