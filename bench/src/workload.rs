//! The workloads, and the run that drives one: set-up through one session,
//! connect the sessions, start the clock (warm-up, then measure), drive the
//! workers until the deadline or the request budget, close the sessions.
//!
//! Everything lives under [`ROOT`]; a workload creates what it needs there and
//! tolerates what earlier runs left.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use crate::client::{Client, Code, WatchEvent, REQUEST_TIMEOUT};
use crate::keys::{KeyChooser, Rng};
use crate::proto::{code, create_mode, event, opcode, MultiOp, Reader, Write, WriteExt};
use crate::report::{progress_line, Recorder, Summary};
use crate::{Options, RunError, Workload};

/// Where every workload keeps its nodes.
pub const ROOT: &str = "/herd-bench";
/// Pipelined requests per batch during set-up.
const SETUP_WINDOW: usize = 256;
/// After the deadline, how long a run waits for its workers before aborting
/// them: a request can take up to its timeout, then the session closes.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// `watch`: how long the writer waits for every watcher to re-arm.
const WATCH_ROUND_TIMEOUT: Duration = Duration::from_secs(5);
/// `kafka`: how often the controller resigns, forcing an election.
const KAFKA_RESIGN_EVERY: Duration = Duration::from_millis(500);
/// `kafka`: partitions per topic.
const KAFKA_PARTITIONS_PER_TOPIC: u64 = 8;

/// What the workers of a run share.
pub struct Ctx {
    pub opts: Options,
    pub rec: Recorder,
    /// Set when the sessions are connected: (start of measuring, deadline).
    clock: OnceLock<(Instant, Instant)>,
    /// Measured requests left to issue, with `--requests`.
    remaining: Option<AtomicI64>,
    stop: AtomicBool,
    /// When the last measured request ended, in ns after the measuring start.
    last_end_ns: AtomicU64,
    value: Vec<u8>,
}

impl Ctx {
    fn new(opts: Options) -> Ctx {
        let value = (0..opts.value_size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        Ctx {
            remaining: opts.requests.map(|n| AtomicI64::new(n as i64)),
            opts,
            rec: Recorder::default(),
            clock: OnceLock::new(),
            stop: AtomicBool::new(false),
            last_end_ns: AtomicU64::new(0),
            value,
        }
    }

    /// Starts the warm-up now; measuring follows it.
    fn start_clock(&self) {
        let from = Instant::now() + self.opts.warmup;
        // With only --requests, the budget ends the run; the day is a backstop.
        let deadline = from + self.opts.duration.unwrap_or(Duration::from_secs(86_400));
        let _ = self.clock.set((from, deadline));
        self.rec.measure_from(from);
    }

    fn deadline(&self) -> Instant {
        self.clock.get().map_or_else(Instant::now, |c| c.1)
    }

    /// Whether a worker may issue another request (and takes it from the
    /// budget when measuring).
    pub fn go(&self) -> bool {
        let Some(&(from, deadline)) = self.clock.get() else {
            return false;
        };
        let now = Instant::now();
        if now >= deadline || self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if now >= from {
            if let Some(left) = &self.remaining {
                if left.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    self.stop.store(true, Ordering::Relaxed);
                    return false;
                }
            }
        }
        true
    }

    /// Whether the run is still on (for tasks that react rather than issue).
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline()
    }

    /// Records a request of type `op` from `start` to `end`.
    fn record(
        &self,
        session: usize,
        op: &'static str,
        start: Instant,
        end: Instant,
        result: Result<(), Code>,
        expected: &[Code],
    ) {
        self.rec.record(session, op, start, end, result, expected);
        let client_side = matches!(result, Err(code::CONNECTION_LOSS | code::OPERATION_TIMEOUT));
        if let Some(&(from, _)) = self.clock.get() {
            if start >= from && !client_side {
                let ns = end.saturating_duration_since(from).as_nanos() as u64;
                self.last_end_ns.fetch_max(ns, Ordering::Relaxed);
            }
        }
    }

    /// Awaits `request` and records it as `op`.
    async fn timed<T>(
        &self,
        session: usize,
        op: &'static str,
        expected: &[Code],
        request: impl Future<Output = Result<T, Code>>,
    ) -> Result<T, Code> {
        let start = Instant::now();
        let result = request.await;
        let end = Instant::now();
        self.record(
            session,
            op,
            start,
            end,
            result.as_ref().map(drop).map_err(|c| *c),
            expected,
        );
        result
    }
}

fn lost(result: &Result<impl Sized, Code>) -> bool {
    matches!(result, Err(code::CONNECTION_LOSS))
}

/// Runs `opts.workload` and summarises it.
pub async fn run(opts: Options) -> Result<Summary, RunError> {
    let ctx = Arc::new(Ctx::new(opts));
    let progress = tokio::spawn(progress(ctx.clone()));
    let result = match ctx.opts.workload {
        Workload::Mixed | Workload::Read | Workload::Write => key_value(ctx.clone()).await,
        Workload::CreateDelete => create_delete(ctx.clone()).await,
        Workload::Watch => watch(ctx.clone()).await,
        Workload::Connect => connect(ctx.clone()).await,
        Workload::Multi => multi(ctx.clone()).await,
        Workload::Kafka => kafka::run(ctx.clone()).await,
    };
    ctx.stop.store(true, Ordering::Relaxed);
    progress.abort();
    result?;
    // Until the last answer, but never longer than asked: a request sent just
    // before the deadline is counted, the wait for its answer is not.
    let mut measured = Duration::from_nanos(ctx.last_end_ns.load(Ordering::Relaxed));
    if let Some(duration) = ctx.opts.duration {
        measured = measured.min(duration);
    }
    Ok(Summary::new(
        ctx.opts.workload.name(),
        measured,
        ctx.opts.sessions,
        ctx.opts.inflight,
        ctx.rec.totals(),
    ))
}

async fn progress(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let begun = Instant::now();
    loop {
        tick.tick().await;
        let (interval, errors) = ctx.rec.take_interval();
        if let (true, Some(&(from, deadline))) = (ctx.opts.progress, ctx.clock.get()) {
            let now = Instant::now();
            let phase = if now < from {
                "warmup"
            } else if now > deadline || ctx.stop.load(Ordering::Relaxed) {
                "draining"
            } else {
                ""
            };
            eprintln!(
                "{}",
                progress_line(
                    ctx.opts.workload.name(),
                    now - begun,
                    phase,
                    &interval,
                    errors
                )
            );
        }
    }
}

fn setup_error(what: &str, code: Code) -> RunError {
    RunError(format!("set-up: {what}: {}", crate::proto::code_name(code)))
}

/// Opens one session on server `index % servers`.
async fn open(
    ctx: &Ctx,
    index: usize,
    events: Option<mpsc::UnboundedSender<WatchEvent>>,
) -> Result<Client, RunError> {
    let addr: SocketAddr = ctx.opts.servers[index % ctx.opts.servers.len()];
    Client::connect(addr, ctx.opts.session_timeout_ms, events)
        .await
        .map_err(|e| RunError(format!("session {index} to {addr}: {e}")))
}

/// Opens `n` sessions at once (indices `first..first + n`).
async fn open_many(ctx: &Arc<Ctx>, first: usize, n: usize) -> Result<Vec<Arc<Client>>, RunError> {
    let mut set = JoinSet::new();
    for i in first..first + n {
        let ctx = ctx.clone();
        set.spawn(async move { (i, open(&ctx, i, None).await) });
    }
    let mut out: Vec<(usize, Client)> = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        let (i, client) = joined.map_err(|e| RunError(e.to_string()))?;
        out.push((i, client?));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, c)| Arc::new(c)).collect())
}

/// Creates each of `paths` (persistent, `data`), pipelined; an existing
/// node is fine. Returns the paths that already existed.
async fn create_all(
    client: &Client,
    paths: &[String],
    data: &[u8],
) -> Result<Vec<usize>, RunError> {
    let mut existed = Vec::new();
    for (chunk_index, chunk) in paths.chunks(SETUP_WINDOW).enumerate() {
        let replies: Vec<_> = chunk
            .iter()
            .map(|path| {
                client.send(opcode::CREATE, |b| {
                    b.string(path);
                    b.buffer(data);
                    b.open_acl();
                    b.i32(create_mode::PERSISTENT);
                })
            })
            .collect();
        for (i, reply) in replies.into_iter().enumerate() {
            match reply.await {
                Ok(_) => {}
                Err(code::NODE_EXISTS) => existed.push(chunk_index * SETUP_WINDOW + i),
                Err(code) => return Err(setup_error(&chunk[i], code)),
            }
        }
    }
    Ok(existed)
}

/// Creates `path` and its missing ancestors.
async fn ensure_path(client: &Client, path: &str) -> Result<(), RunError> {
    let mut prefixes = Vec::new();
    for (i, c) in path.char_indices().skip(1) {
        if c == '/' {
            prefixes.push(path[..i].to_owned());
        }
    }
    prefixes.push(path.to_owned());
    for p in prefixes {
        create_all(client, &[p], b"").await?;
    }
    Ok(())
}

/// Deletes every child of `path` (one level), pipelined.
async fn delete_children(client: &Client, path: &str) -> Result<(), RunError> {
    let children = client
        .get_children(path, false)
        .await
        .map_err(|c| setup_error(path, c))?;
    for chunk in children.chunks(SETUP_WINDOW) {
        let replies: Vec<_> = chunk
            .iter()
            .map(|child| {
                let child = format!("{path}/{child}");
                client.send(opcode::DELETE, move |b| {
                    b.string(&child);
                    b.i32(-1);
                })
            })
            .collect();
        for reply in replies {
            match reply.await {
                Ok(_) | Err(code::NO_NODE) => {}
                Err(c) => return Err(setup_error(path, c)),
            }
        }
    }
    Ok(())
}

/// Runs `worker(session, slot)` `inflight` times per session, closing each
/// session when its workers are done; returns when all are, or aborts them a
/// grace period after the deadline.
async fn drive<F, Fut>(ctx: &Arc<Ctx>, clients: Vec<Arc<Client>>, worker: F)
where
    F: Fn(Arc<Client>, usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    for (s, client) in clients.into_iter().enumerate() {
        let (worker, inflight) = (worker.clone(), ctx.opts.inflight);
        sessions.spawn(async move {
            let mut slots = JoinSet::new();
            for k in 0..inflight {
                slots.spawn(worker(client.clone(), s, k));
            }
            while slots.join_next().await.is_some() {}
            if let Ok(client) = Arc::try_unwrap(client) {
                let _ = client.close().await;
            }
        });
    }
    finish(ctx, sessions).await;
}

async fn finish(ctx: &Ctx, mut tasks: JoinSet<()>) {
    let until = tokio::time::Instant::from_std(ctx.deadline() + REQUEST_TIMEOUT + DRAIN_GRACE);
    while let Ok(Some(_)) = tokio::time::timeout_at(until, tasks.join_next()).await {}
    tasks.abort_all();
}

fn key_paths(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("{ROOT}/keys/k{i:07}")).collect()
}

/// `mixed`, `read`, `write`.
async fn key_value(ctx: Arc<Ctx>) -> Result<(), RunError> {
    let paths = Arc::new(key_paths(ctx.opts.keys));
    {
        let admin = open(&ctx, 0, None).await?;
        ensure_path(&admin, &format!("{ROOT}/keys")).await?;
        let existed = create_all(&admin, &paths, &ctx.value).await?;
        // Earlier runs may have left other values: make every value this size.
        for chunk in existed.chunks(SETUP_WINDOW) {
            let replies: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let (path, value) = (&paths[i], &ctx.value);
                    admin.send(opcode::SET_DATA, |b| {
                        b.string(path);
                        b.buffer(value);
                        b.i32(-1);
                    })
                })
                .collect();
            for r in replies {
                r.await.map_err(|c| setup_error("setData", c))?;
            }
        }
        let _ = admin.close().await;
    }
    let clients = open_many(&ctx, 0, ctx.opts.sessions).await?;
    let chooser = Arc::new(KeyChooser::new(ctx.opts.dist, ctx.opts.keys));
    ctx.start_clock();
    let (read_share, ratio) = match ctx.opts.workload {
        Workload::Read => (1, 0),
        Workload::Write => (0, 1),
        _ => (ctx.opts.ratio as u64, ctx.opts.ratio as u64 + 1),
    };
    let worker_ctx = ctx.clone();
    drive(&ctx, clients, move |client, s, k| {
        let (ctx, paths, chooser) = (worker_ctx.clone(), paths.clone(), chooser.clone());
        async move {
            let mut rng = Rng::new(ctx.opts.seed ^ ((s as u64) << 20 | k as u64));
            while ctx.go() {
                let path = &paths[chooser.next(&mut rng) as usize];
                let read = ratio == 0 || rng.below(ratio) < read_share;
                let result = if read {
                    ctx.timed(s, "getData", &[], client.get_data(path, false))
                        .await
                        .map(drop)
                } else {
                    ctx.timed(s, "setData", &[], client.set_data(path, &ctx.value, -1))
                        .await
                        .map(drop)
                };
                if lost(&result) {
                    break;
                }
            }
        }
    })
    .await;
    Ok(())
}

/// `create-delete`: sequential nodes, ephemeral and persistent in turn.
async fn create_delete(ctx: Arc<Ctx>) -> Result<(), RunError> {
    let dir = format!("{ROOT}/cd");
    {
        let admin = open(&ctx, 0, None).await?;
        ensure_path(&admin, &dir).await?;
        delete_children(&admin, &dir).await?;
        let _ = admin.close().await;
    }
    let clients = open_many(&ctx, 0, ctx.opts.sessions).await?;
    ctx.start_clock();
    let worker_ctx = ctx.clone();
    drive(&ctx, clients, move |client, s, k| {
        let (ctx, prefix) = (worker_ctx.clone(), format!("{dir}/s{s}-{k}-"));
        async move {
            let mut ephemeral = true;
            while ctx.go() {
                let mode = if ephemeral {
                    create_mode::EPHEMERAL_SEQUENTIAL
                } else {
                    create_mode::PERSISTENT_SEQUENTIAL
                };
                ephemeral = !ephemeral;
                let created = ctx
                    .timed(s, "create", &[], client.create(&prefix, &ctx.value, mode))
                    .await;
                let result = match created {
                    Ok(path) => ctx.timed(s, "delete", &[], client.delete(&path, -1)).await,
                    Err(c) => Err(c),
                };
                if lost(&result) {
                    break;
                }
            }
        }
    })
    .await;
    Ok(())
}

fn multi_node(session: usize, slot: usize) -> String {
    format!("{ROOT}/multi/s{session}-{slot}")
}

/// `multi`: each worker owns a node and commits
/// `[check(v), setData(v), create(child), delete(child)]` against it.
async fn multi(ctx: Arc<Ctx>) -> Result<(), RunError> {
    let dir = format!("{ROOT}/multi");
    {
        let admin = open(&ctx, 0, None).await?;
        ensure_path(&admin, &dir).await?;
        let nodes: Vec<String> = (0..ctx.opts.sessions)
            .flat_map(|s| (0..ctx.opts.inflight).map(move |k| multi_node(s, k)))
            .collect();
        create_all(&admin, &nodes, b"").await?;
        for n in &nodes {
            delete_children(&admin, n).await?;
        }
        let _ = admin.close().await;
    }
    let clients = open_many(&ctx, 0, ctx.opts.sessions).await?;
    ctx.start_clock();
    let worker_ctx = ctx.clone();
    drive(&ctx, clients, move |client, s, k| {
        let (ctx, path) = (worker_ctx.clone(), multi_node(s, k));
        let child = format!("{path}/t");
        async move {
            let mut version = None;
            while ctx.go() {
                let v = match version {
                    Some(v) => v,
                    None => match client.get_data(&path, false).await {
                        Ok(reply) => {
                            let mut r = Reader::new(&reply.body);
                            let _ = r.buffer();
                            match r.stat() {
                                Ok(stat) => stat.version,
                                Err(_) => break,
                            }
                        }
                        Err(_) => break,
                    },
                };
                let ops = [
                    MultiOp::Check {
                        path: &path,
                        version: v,
                    },
                    MultiOp::SetData {
                        path: &path,
                        data: &ctx.value,
                        version: v,
                    },
                    MultiOp::Create {
                        path: &child,
                        data: b"",
                        mode: create_mode::PERSISTENT,
                    },
                    MultiOp::Delete {
                        path: &child,
                        version: -1,
                    },
                ];
                let result = ctx.timed(s, "multi", &[], client.multi(&ops)).await;
                version = result.ok().map(|()| v + 1);
                if lost(&result) {
                    break;
                }
            }
        }
    })
    .await;
    Ok(())
}

/// `connect`: each of `--sessions` loops opens a session (TCP connect and
/// handshake: `connect`) and closes it (`close`).
async fn connect(ctx: Arc<Ctx>) -> Result<(), RunError> {
    ctx.start_clock();
    let mut loops = JoinSet::new();
    for s in 0..ctx.opts.sessions {
        let ctx = ctx.clone();
        loops.spawn(async move {
            let addr = ctx.opts.servers[s % ctx.opts.servers.len()];
            while ctx.go() {
                let start = Instant::now();
                let client = Client::connect(addr, ctx.opts.session_timeout_ms, None).await;
                let end = Instant::now();
                let client = match client {
                    Ok(c) => {
                        ctx.record(s, "connect", start, end, Ok(()), &[]);
                        c
                    }
                    Err(_) => {
                        ctx.record(s, "connect", start, end, Err(code::CONNECTION_LOSS), &[]);
                        continue;
                    }
                };
                let _ = ctx.timed(s, "close", &[], client.close()).await;
            }
        });
    }
    finish(&ctx, loops).await;
    Ok(())
}

/// `watch`: one writer sets a node; every other session holds a one-shot
/// data watch on it. A round: the writer stamps the time and sends setData;
/// each watcher records `notify` = event arrival - stamp, then re-arms with
/// getData(watch) (`arm`); when all have re-armed the next round starts. The
/// `notify` rate is the fan-out rate.
async fn watch(ctx: Arc<Ctx>) -> Result<(), RunError> {
    let path = Arc::new(format!("{ROOT}/watch/n"));
    {
        let admin = open(&ctx, 0, None).await?;
        ensure_path(&admin, &path).await?;
        let _ = admin.close().await;
    }
    let watchers = ctx.opts.sessions.saturating_sub(1).max(1);
    let writer = open(&ctx, 0, None).await?;
    let mut sessions = Vec::new();
    for w in 0..watchers {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = open(&ctx, w + 1, Some(tx)).await?;
        client
            .get_data(&path, true)
            .await
            .map_err(|c| setup_error("arm watch", c))?;
        sessions.push((client, rx));
    }
    let base = Instant::now();
    let stamp = Arc::new(AtomicU64::new(0));
    let armed = Arc::new(AtomicUsize::new(watchers));
    let rearmed = Arc::new(Notify::new());
    ctx.start_clock();

    let mut tasks = JoinSet::new();
    for (w, (client, mut rx)) in sessions.into_iter().enumerate() {
        let (ctx, path, stamp, armed, rearmed) = (
            ctx.clone(),
            path.clone(),
            stamp.clone(),
            armed.clone(),
            rearmed.clone(),
        );
        tasks.spawn(async move {
            let s = w + 1;
            while ctx.running() {
                // Wake at least once a second to notice a spent --requests budget.
                let ev = match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                if ev.kind != event::NODE_DATA_CHANGED {
                    continue;
                }
                let sent = base + Duration::from_nanos(stamp.load(Ordering::Acquire));
                ctx.record(s, "notify", sent, ev.received, Ok(()), &[]);
                let result = ctx.timed(s, "arm", &[], client.get_data(&path, true)).await;
                if lost(&result) {
                    break;
                }
                armed.fetch_add(1, Ordering::AcqRel);
                rearmed.notify_one();
            }
            let _ = client.close().await;
        });
    }
    {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            while ctx.go() {
                let all_armed = tokio::time::timeout(WATCH_ROUND_TIMEOUT, async {
                    while armed.load(Ordering::Acquire) < watchers {
                        rearmed.notified().await;
                    }
                })
                .await;
                if all_armed.is_err() {
                    ctx.record(
                        0,
                        "notify",
                        Instant::now(),
                        Instant::now(),
                        Err(code::OPERATION_TIMEOUT),
                        &[],
                    );
                    break;
                }
                armed.store(0, Ordering::Release);
                stamp.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                let result = ctx
                    .timed(0, "setData", &[], writer.set_data(&path, &ctx.value, -1))
                    .await;
                if lost(&result) {
                    break;
                }
            }
            let _ = writer.close().await;
        });
    }
    finish(&ctx, tasks).await;
    Ok(())
}

/// `kafka`: how a (pre-KRaft) Kafka cluster uses ZooKeeper, one session per
/// broker.
///
/// - registration: each broker creates the ephemeral `brokers/ids/<id>` and
///   keeps a child watch on `brokers/ids` (`brokers-list`);
/// - controller election: brokers race to create the ephemeral `controller`
///   (`elect`; losers get `NodeExists` and watch it with exists:
///   `controller-watch`); the winner bumps `controller_epoch` with a
///   conditional setData; every 500 ms the controller resigns (`resign`,
///   deletes the node) and the others race again: `failover` is the time
///   from the resign to the next win;
/// - partition state: each broker leads the partitions `p % brokers == id`
///   and updates `brokers/topics/t<t>/partitions/<p>/state` with setData at
///   the version it last saw (`partition-state`), and reads others' state
///   (`partition-read`);
/// - change notifications: brokers create persistent-sequential
///   `isr_change_notification/isr_change_` nodes (`isr-change`); the
///   controller holds a child watch there, lists (`isr-list`) and deletes
///   (`isr-delete`) them.
///
/// `--keys` is the number of partitions, 8 per topic.
pub mod kafka {
    use super::*;

    struct Paths {
        root: String,
        ids: String,
        controller: String,
        epoch: String,
        isr: String,
        isr_prefix: String,
        states: Vec<String>,
    }

    struct Shared {
        paths: Paths,
        /// When the last resign was sent, ns after `base` (0: none pending).
        resigned_ns: AtomicU64,
        base: Instant,
    }

    struct Broker {
        ctx: Arc<Ctx>,
        shared: Arc<Shared>,
        client: Arc<Client>,
        id: usize,
        controller: AtomicBool,
    }

    pub(super) async fn run(ctx: Arc<Ctx>) -> Result<(), RunError> {
        let root = format!("{ROOT}/kafka");
        let partitions = ctx.opts.keys;
        let paths = Paths {
            ids: format!("{root}/brokers/ids"),
            controller: format!("{root}/controller"),
            epoch: format!("{root}/controller_epoch"),
            isr: format!("{root}/isr_change_notification"),
            isr_prefix: format!("{root}/isr_change_notification/isr_change_"),
            states: (0..partitions)
                .map(|g| {
                    format!(
                        "{root}/brokers/topics/t{}/partitions/{}/state",
                        g / KAFKA_PARTITIONS_PER_TOPIC,
                        g % KAFKA_PARTITIONS_PER_TOPIC
                    )
                })
                .collect(),
            root,
        };
        {
            let admin = open(&ctx, 0, None).await?;
            for p in [&paths.ids, &paths.isr, &paths.epoch] {
                ensure_path(&admin, p).await?;
            }
            let topics = partitions.div_ceil(KAFKA_PARTITIONS_PER_TOPIC);
            let mut dirs = Vec::new();
            for t in 0..topics {
                dirs.push(format!("{}/brokers/topics/t{t}", paths.root));
                dirs.push(format!("{}/brokers/topics/t{t}/partitions", paths.root));
            }
            ensure_path(&admin, &format!("{}/brokers/topics", paths.root)).await?;
            create_all(&admin, &dirs, b"").await?;
            let parts: Vec<String> = paths
                .states
                .iter()
                .map(|s| s.trim_end_matches("/state").to_owned())
                .collect();
            create_all(&admin, &parts, b"").await?;
            create_all(&admin, &paths.states, &ctx.value).await?;
            delete_children(&admin, &paths.isr).await?;
            let _ = admin.close().await;
        }
        let shared = Arc::new(Shared {
            paths,
            resigned_ns: AtomicU64::new(0),
            base: Instant::now(),
        });
        let mut brokers = Vec::new();
        for id in 0..ctx.opts.sessions {
            let (tx, rx) = mpsc::unbounded_channel();
            let client = Arc::new(open(&ctx, id, Some(tx)).await?);
            brokers.push((client, rx));
        }
        ctx.start_clock();
        let mut tasks = JoinSet::new();
        for (id, (client, rx)) in brokers.into_iter().enumerate() {
            let broker = Arc::new(Broker {
                ctx: ctx.clone(),
                shared: shared.clone(),
                client,
                id,
                controller: AtomicBool::new(false),
            });
            tasks.spawn(broker_session(broker, rx));
        }
        finish(&ctx, tasks).await;
        Ok(())
    }

    async fn broker_session(b: Arc<Broker>, events: mpsc::UnboundedReceiver<WatchEvent>) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        let me = format!("{}/{}", p.ids, b.id);
        let registration = format!("{{\"host\":\"127.0.0.1\",\"port\":{}}}", 9092 + b.id);
        let registered = ctx
            .timed(
                s,
                "register",
                &[],
                b.client
                    .create(&me, registration.as_bytes(), create_mode::EPHEMERAL),
            )
            .await;
        if registered.is_ok() {
            let _ = ctx
                .timed(s, "brokers-list", &[], b.client.get_children(&p.ids, true))
                .await;
            elect(&b).await;
            let mut slots = JoinSet::new();
            slots.spawn(events_loop(b.clone(), events));
            for k in 0..ctx.opts.inflight {
                slots.spawn(partition_worker(b.clone(), k));
            }
            while slots.join_next().await.is_some() {}
        }
        if let Ok(broker) = Arc::try_unwrap(b) {
            if let Ok(client) = Arc::try_unwrap(broker.client) {
                let _ = client.close().await;
            }
        }
    }

    /// Races for the controller node; the loser watches it.
    async fn elect(b: &Broker) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        for _ in 0..3 {
            let won = ctx
                .timed(
                    s,
                    "elect",
                    &[code::NODE_EXISTS],
                    b.client.create(
                        &p.controller,
                        b.id.to_string().as_bytes(),
                        create_mode::EPHEMERAL,
                    ),
                )
                .await;
            match won {
                Ok(_) => {
                    b.controller.store(true, Ordering::Release);
                    let resigned = b.shared.resigned_ns.swap(0, Ordering::AcqRel);
                    if resigned != 0 {
                        let from = b.shared.base + Duration::from_nanos(resigned);
                        ctx.record(s, "failover", from, Instant::now(), Ok(()), &[]);
                    }
                    become_controller(b).await;
                    return;
                }
                Err(code::NODE_EXISTS) => {
                    let watched = ctx
                        .timed(
                            s,
                            "controller-watch",
                            &[code::NO_NODE],
                            b.client.exists(&p.controller, true),
                        )
                        .await;
                    if watched.is_ok() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    async fn become_controller(b: &Broker) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        let epoch = b.client.get_data(&p.epoch, false).await;
        if let Ok(reply) = epoch {
            let mut r = Reader::new(&reply.body);
            let _ = r.buffer();
            if let Ok(v) = r.stat().map(|s| s.version) {
                let _ = ctx
                    .timed(
                        s,
                        "controller-epoch",
                        &[code::BAD_VERSION],
                        b.client
                            .set_data(&p.epoch, (v + 1).to_string().as_bytes(), v),
                    )
                    .await;
            }
        }
        handle_isr_changes(b).await;
    }

    /// The controller lists the change notifications (re-arming its child
    /// watch) and deletes them.
    async fn handle_isr_changes(b: &Broker) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        let Ok(children) = ctx
            .timed(s, "isr-list", &[], b.client.get_children(&p.isr, true))
            .await
        else {
            return;
        };
        let deletes: Vec<_> = children
            .iter()
            .map(|c| {
                let path = format!("{}/{c}", p.isr);
                (
                    Instant::now(),
                    b.client.send(opcode::DELETE, move |w| {
                        w.string(&path);
                        w.i32(-1);
                    }),
                )
            })
            .collect();
        for (start, reply) in deletes {
            let result = reply.await.map(drop);
            ctx.record(
                s,
                "isr-delete",
                start,
                Instant::now(),
                result,
                &[code::NO_NODE],
            );
        }
    }

    async fn events_loop(b: Arc<Broker>, mut events: mpsc::UnboundedReceiver<WatchEvent>) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        let deadline = tokio::time::Instant::from_std(ctx.deadline());
        let mut resign = tokio::time::interval(KAFKA_RESIGN_EVERY);
        resign.tick().await;
        while ctx.running() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = resign.tick() => {
                    if b.controller.swap(false, Ordering::AcqRel) {
                        let ns = b.shared.base.elapsed().as_nanos() as u64;
                        b.shared.resigned_ns.store(ns.max(1), Ordering::Release);
                        let _ = ctx
                            .timed(s, "resign", &[code::NO_NODE], b.client.delete(&p.controller, -1))
                            .await;
                        elect(&b).await;
                    }
                }
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    match ev.kind {
                        event::NODE_DELETED if ev.path == p.controller => elect(&b).await,
                        event::NODE_CREATED if ev.path == p.controller => {
                            let _ = ctx
                                .timed(s, "controller-watch", &[code::NO_NODE], b.client.exists(&p.controller, true))
                                .await;
                        }
                        event::NODE_CHILDREN_CHANGED if ev.path == p.ids => {
                            let _ = ctx
                                .timed(s, "brokers-list", &[], b.client.get_children(&p.ids, true))
                                .await;
                        }
                        event::NODE_CHILDREN_CHANGED
                            if ev.path == p.isr && b.controller.load(Ordering::Acquire) =>
                        {
                            handle_isr_changes(&b).await;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// One in-flight slot of a broker: updates the state of the partitions it
    /// leads at their known versions, reads others', announces ISR changes.
    async fn partition_worker(b: Arc<Broker>, slot: usize) {
        let (ctx, s, p) = (&b.ctx, b.id, &b.shared.paths);
        let (brokers, inflight) = (ctx.opts.sessions as u64, ctx.opts.inflight as u64);
        let owned: Vec<usize> = (0..p.states.len() as u64)
            .filter(|g| g % brokers == b.id as u64 && (g / brokers) % inflight == slot as u64)
            .map(|g| g as usize)
            .collect();
        let mut versions: Vec<Option<i32>> = vec![None; owned.len()];
        let mut rng = Rng::new(ctx.opts.seed ^ ((s as u64) << 20 | slot as u64));
        let mut i: u64 = 0;
        while ctx.go() {
            i += 1;
            // Of every 8: one ISR change, two reads, five state updates.
            let kind = match i % 8 {
                0 => 0,
                3 | 6 => 1,
                _ if owned.is_empty() => 1,
                _ => 2,
            };
            let result = if kind == 0 {
                ctx.timed(
                    s,
                    "isr-change",
                    &[],
                    b.client.create(
                        &p.isr_prefix,
                        b"{\"version\":1}",
                        create_mode::PERSISTENT_SEQUENTIAL,
                    ),
                )
                .await
                .map(drop)
            } else if kind == 1 {
                let g = rng.below(p.states.len() as u64) as usize;
                ctx.timed(
                    s,
                    "partition-read",
                    &[],
                    b.client.get_data(&p.states[g], false),
                )
                .await
                .map(drop)
            } else {
                let j = (i as usize) % owned.len();
                let path = &p.states[owned[j]];
                let version = match versions[j] {
                    Some(v) => v,
                    None => match b.client.get_data(path, false).await {
                        Ok(reply) => {
                            let mut r = Reader::new(&reply.body);
                            let _ = r.buffer();
                            r.stat().map_or(-1, |s| s.version)
                        }
                        Err(_) => -1,
                    },
                };
                let result = ctx
                    .timed(
                        s,
                        "partition-state",
                        &[],
                        b.client.set_data(path, &ctx.value, version),
                    )
                    .await;
                versions[j] = result.ok();
                result.map(drop)
            };
            if lost(&result) {
                break;
            }
        }
    }
}
