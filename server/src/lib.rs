//! herd on the wire: ZooKeeper's client protocol served by thread-per-core
//! shards in front of one ordered commit pipeline.
//!
//! ```text
//!  client ─TCP─► shard (glommio executor, one per core; SO_REUSEPORT)
//!                  ├─ read  ─► shared DataTree ─► reply, on the same core
//!                  └─ write ─► pipeline: prep ─► durable ─► commit
//!                                 └─ Committed{zxid, events} + reply ─► shards
//! ```
//!
//! The pipeline is one sequencer: standalone it runs on shard 0's executor
//! ([`hosted`]), so a write on that shard crosses no thread until its log
//! write; an ensemble member's runs on a thread of its own.
//!
//! An ensemble member adds its Zab driver ([`member`]) behind the pipeline:
//! leading, the pipeline's records become proposals and commit once a quorum
//! logged them; following, it forwards writes to the leader and applies
//! what commits.
//!
//! - [`herd_proto`] (a crate of its own, `server/proto/`): frames, jute records
//!   and opcodes (pure), shared with herd-bench and herd-cli;
//! - [`message`]: what shards, the pipeline and the log writer send each other;
//! - [`executor`]: a shard's executor, which accepts and owns connections and
//!   dispatches the [`inbox`] from the pipeline; [`shard`]: the state its
//!   connections share, with the [`outbox`] to the pipeline;
//! - [`conn`]: one connection, its handshake and FIFO order;
//! - [`read`]: reads answered on the shard; [`watch`]: the shard's watch table;
//! - [`pipeline`]: the single ordered commit path, and [`hosted`]: it on a
//!   shard; [`storage`]: the log and snapshots on disk;
//! - [`config`]: zoo.cfg, and [`ensemble`]: its server.N lines and myid;
//!   [`epoch`]: a member's acceptedEpoch and currentEpoch files;
//!   [`quorum`]: members' messages over TCP (election and quorum ports);
//!   [`member`]: an ensemble member's Zab driver (peer, transport), and
//!   [`log_writer`]: its storage writes, on a thread of their own;
//!   [`fourlw`], [`metrics`], [`prometheus`], [`admin`] (the AdminServer),
//!   [`http`] (their listeners), [`stats`] and [`logging`]: operations;
//!   [`durable`]: files replaced so that a crash leaves old or new.
//!
//! Modules depend on each other without cycles; each uses only those on
//! earlier lines (and [`memory`], [`logging`], [`durable`] and [`cpus`], which
//! use none):
//!
//! ```text
//!  message   ensemble  epoch  quorum
//!  watch  stats  outbox  inbox  config
//!  metrics  http  prometheus
//!  read  fourlw  admin  storage  shard
//!  conn  log_writer  member
//!  pipeline
//!  hosted
//!  executor
//!  lib (Server)
//! ```
//!
//! [`Server::start`] is what the `herd` binary and the tests call.

pub mod admin;
pub mod config;
pub mod conn;
pub mod cpus;
pub mod durable;
pub mod ensemble;
pub mod epoch;
pub mod executor;
pub mod fourlw;
pub mod hosted;
pub mod http;
pub mod inbox;
pub mod log_writer;
pub mod logging;
pub mod member;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod prometheus;
pub mod quorum;
pub mod read;
pub mod shard;
pub mod spare;
pub mod stats;
pub mod storage;
pub mod watch;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

pub use config::Config;
use executor::Executor;
use hosted::Hosted;
use inbox::{InboxReceiver, InboxSender};
use log_writer::LogWriter;
use member::{Member, ToMember};
use message::ToPipeline;
use outbox::Outbox;
use pipeline::Pipeline;
use shard::Shard;
use stats::Shared;

/// A running herd.
pub struct Server {
    client_addr: SocketAddr,
    to_pipeline: InboxSender<Vec<ToPipeline>>,
    /// An ensemble member's pipeline thread (a standalone server's pipeline
    /// runs on shard 0: see [`hosted`]).
    pipeline: Option<JoinHandle<()>>,
    log_writer: Option<JoinHandle<()>>,
    /// An ensemble member's Zab driver and what stops it.
    member: Option<(mpsc::Sender<ToMember>, JoinHandle<()>)>,
    shards: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The autopurge thread and what stops it (dropping the sender).
    purger: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// The Prometheus endpoint, if configured (dropping it stops it).
    prometheus: Option<http::Endpoint>,
    /// The AdminServer, if on (dropping it stops it).
    admin: Option<http::Endpoint>,
}

impl Server {
    /// Starts the pipeline and the shards, bound to the configured client port
    /// (port 0 picks a free one: see [`Server::client_addr`]). A configuration
    /// of an ensemble is refused (`InvalidInput`): herd runs standalone only.
    pub fn start(mut config: Config) -> io::Result<Server> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let mode = config
            .ensemble
            .mode(&config.data_dir, "the configuration")
            .map_err(invalid)?;
        let mode_is_member = matches!(mode, ensemble::Mode::Member { .. });
        let (to_pipeline, pipeline_inbox) = inbox::inbox()?;
        let (query_senders, query_receivers): (Vec<_>, Vec<_>) = (0..config.shards)
            .map(|_| async_channel::unbounded())
            .unzip();
        let shared = Arc::new(Shared::new(query_senders));
        let (tree, resume, sink, member, log_writer) = match mode {
            ensemble::Mode::Standalone => {
                let (log, recovered) = storage::open(&config).map_err(io::Error::other)?;
                for warning in &recovered.warnings {
                    crate::warn!("{warning}");
                }
                let (log_tx, log_rx) = mpsc::channel();
                let durable_tx = to_pipeline.clone();
                let delay = std::time::Duration::from_millis(config.simulated_flush_delay_ms);
                let writer = move |shared| {
                    let report = move |outcome| durable_tx.send(vec![ToPipeline::Durable(outcome)]);
                    move || storage::write_loop(log, log_rx, report, shared, delay)
                };
                let sink = pipeline::Sink::Log(log_tx);
                (recovered.tree, recovered.resume, sink, None, Some(writer))
            }
            ensemble::Mode::Member { id, .. } => {
                config.server_id = id as u8;
                if let Some(port) = config.ensemble.servers[&id].client.as_ref().map(|c| c.1) {
                    config.client_port = port;
                }
                let started = start_member(&config, id, to_pipeline.clone(), shared.clone())?;
                let to_member = started.to_member;
                (
                    started.tree,
                    started.resume,
                    pipeline::Sink::Zab(to_member.clone(), started.logged_to),
                    Some((to_member, started.thread)),
                    None,
                )
            }
        };
        let config = Arc::new(config);
        let tree = Arc::new(tree);
        // Bound before the pipeline and shards start, so that a port in use
        // stops start-up with nothing left running.
        let prometheus = match config.prometheus {
            Some(at) => Some(prometheus::serve(at, shared.clone(), tree.clone())?),
            None => None,
        };
        // As in ZooKeeper, an AdminServer that cannot bind stops a standalone
        // server from starting, and only warns on an ensemble's member.
        let admin = match &config.admin {
            Some(at) => match admin::serve(at, config.clone(), shared.clone(), tree.clone()) {
                Ok(endpoint) => Some(endpoint),
                Err(e) if mode_is_member => {
                    crate::warn!("AdminServer not started on {}: {e}", at.addr);
                    None
                }
                Err(e) => {
                    let why = format!("AdminServer on {}: {e}", at.addr);
                    return Err(io::Error::new(e.kind(), why));
                }
            },
            None => None,
        };
        memory::release_freed();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.shards)
            .map(|_| inbox::inbox())
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let log_writer = match log_writer {
            Some(writer) => Some(
                std::thread::Builder::new()
                    .name("herd-log".into())
                    .spawn(writer(shared.clone()))?,
            ),
            None => None,
        };
        shared.set_startup(resume.startup);
        let pipeline = Pipeline::new(
            config.clone(),
            tree.clone(),
            shared.clone(),
            senders,
            resume,
            sink,
        );
        // Standalone, shard 0 hosts the pipeline; a member's has its own
        // thread beside the Zab driver's.
        let (mut hosted, pipeline) = if mode_is_member {
            let thread = std::thread::Builder::new()
                .name("herd-pipeline".into())
                .spawn(move || pipeline.run(pipeline_inbox.blocking()))?;
            (None, Some(thread))
        } else {
            (Some((pipeline, pipeline_inbox)), None)
        };
        let mut shards = Vec::new();

        let cpus = cpus::allowed();
        let mut addr = SocketAddr::new(config.client_port_address, config.client_port);
        for (index, (inbox, queries)) in receivers.into_iter().zip(query_receivers).enumerate() {
            let (bound_tx, bound_rx) = mpsc::channel();
            let (config, tree, shard_shared) = (config.clone(), tree.clone(), shared.clone());
            let route = match hosted.take() {
                Some((pipeline, remote)) => Route::Host(Box::new(pipeline), remote),
                None => Route::Send(to_pipeline.clone()),
            };
            let handle = LocalExecutorBuilder::new(Placement::Fixed(cpus[index % cpus.len()]))
                .name(&format!("herd-shard-{index}"))
                .spawn(move || async move {
                    let listener = match TcpListener::bind(addr) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    let (outbox, pipeline) = match route {
                        Route::Host(pipeline, remote) => {
                            let hosted = Hosted::new(*pipeline);
                            let tick = config.session_check_interval();
                            let serving = hosted.clone().serve(remote.listen(), tick);
                            (
                                Outbox::new(hosted.deliver()),
                                Some(glommio::spawn_local(serving)),
                            )
                        }
                        Route::Send(sender) => {
                            (Outbox::new(Box::new(move |b| sender.send(b))), None)
                        }
                    };
                    let shard = Shard::new(index, config, tree, shard_shared, outbox);
                    let executor = Rc::new(Executor::new(shard, queries));
                    executor.run(listener, inbox).await;
                    if let Some(pipeline) = pipeline {
                        pipeline.await;
                    }
                })
                .map_err(|e| io::Error::other(e.to_string()))?;
            shards.push(handle);
            match bound_rx.recv().map_err(io::Error::other)? {
                Ok(bound) => {
                    addr = bound;
                    shared
                        .client_port
                        .store(bound.port(), std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    let _ = to_pipeline.send(vec![ToPipeline::Stop]);
                    return Err(io::Error::other(e.to_string()));
                }
            }
        }
        let purger = match config.purge_interval_hours {
            0 => None,
            hours => {
                let (stop, stopped) = mpsc::channel();
                let every = std::time::Duration::from_secs(hours * 3600);
                let config = config.clone();
                let handle = std::thread::Builder::new()
                    .name("herd-purge".into())
                    .spawn(move || storage::purge_every(&config, every, stopped))?;
                Some((stop, handle))
            }
        };
        Ok(Server {
            prometheus,
            admin,
            client_addr: addr,
            to_pipeline,
            pipeline,
            log_writer,
            member,
            shards,
            purger,
        })
    }

    /// The address clients connect to.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The address the Prometheus endpoint listens on, if it is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|p| p.addr)
    }

    /// The address the AdminServer listens on, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// Stops accepting, closes every connection and waits for all threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.to_pipeline.send(vec![ToPipeline::Stop]);
        if let Some((to_member, _)) = &self.member {
            let _ = to_member.send(ToMember::Stop);
        }
        self.join();
    }

    fn join(&mut self) {
        let member = self.member.take().map(|(_, t)| t);
        for t in [self.pipeline.take(), self.log_writer.take(), member]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        for s in self.shards.drain(..) {
            let _ = s.join();
        }
        if let Some((stop, handle)) = self.purger.take() {
            drop(stop);
            let _ = handle.join();
        }
        drop(self.prometheus.take());
        drop(self.admin.take());
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        self.join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How a shard's outbox reaches the pipeline.
enum Route {
    /// This shard hosts it (shard 0 of a standalone server), with the inbox
    /// for what other threads send it.
    Host(Box<Pipeline>, InboxReceiver<Vec<ToPipeline>>),
    /// Across threads, through its inbox.
    Send(InboxSender<Vec<ToPipeline>>),
}

/// The secret every member derives session passwords from, so that a session
/// moves between members with its password. Fixed, as ZooKeeper's is: the
/// password only keeps clients from taking over sessions by mistake.
const ENSEMBLE_SECRET: [u8; 16] = *b"herd ensemble v1";

/// The longest DIFF a leader sends before it sends a SNAP instead, in records.
const DIFF_LIMIT: usize = 10_000;

/// A member's Zab driver, started.
struct MemberStarted {
    /// The tree to serve from (its snapshot; Zab hands out the log).
    tree: engine::tree::DataTree,
    resume: storage::Resume,
    to_member: mpsc::Sender<ToMember>,
    /// The last zxid its log held at start-up.
    logged_to: engine::Zxid,
    thread: JoinHandle<()>,
}

/// Opens a member's storage, binds its election and quorum ports, and starts
/// its Zab driver.
fn start_member(
    config: &Config,
    me: u64,
    to_pipeline: InboxSender<Vec<ToPipeline>>,
    shared: Arc<Shared>,
) -> io::Result<MemberStarted> {
    use engine::zab::broadcast::{Limits, Settings};
    use engine::zab::peer::{Peer, Stored};
    use std::net::ToSocketAddrs;

    let e = &config.ensemble;
    let (log, recovered) = storage::open_member(config).map_err(io::Error::other)?;
    for warning in &recovered.warnings {
        crate::warn!("{warning}");
    }
    let last = recovered.records.last().map_or(recovered.base, |r| r.0);
    let epochs = epoch::EpochFiles::new(&config.data_dir)
        .load(last)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let resolve = |host: &str, port: u16| {
        (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{host}: no address")))
    };
    let mut members = Vec::new();
    for line in e.servers.values() {
        let at = quorum::Addresses {
            election: resolve(&line.host, line.election_port)?,
            quorum: resolve(&line.host, line.quorum_port)?,
        };
        members.push((line.id, at));
    }
    let mine = members
        .iter()
        .find(|m| m.0 == me)
        .expect("mode checked myid")
        .1;
    let bind = if e.quorum_listen_on_all_ips {
        let any = |a: SocketAddr| SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), a.port());
        quorum::Addresses {
            election: any(mine.election),
            quorum: any(mine.quorum),
        }
    } else {
        mine
    };
    let listening = quorum::Listening::bind(me, bind)?;
    let others: Vec<_> = members.into_iter().filter(|m| m.0 != me).collect();
    let (to_member, inbox) = mpsc::channel();
    let net = to_member.clone();
    let transport = listening.start(
        &others,
        std::time::Duration::from_millis(e.cnx_timeout_ms),
        move |event| net.send(ToMember::Net(event)).is_ok(),
    );
    let ensemble = engine::zab::quorum::Ensemble::new(
        e.servers.values().filter(|s| !s.observer).map(|s| s.id),
        e.servers.values().filter(|s| s.observer).map(|s| s.id),
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    let tick = u64::from(config.tick_time_ms);
    let settings = Settings {
        limits: Limits {
            tick_ms: tick,
            init_ms: tick * u64::from(e.init_limit_ticks),
            sync_ms: tick * u64::from(e.sync_limit_ticks),
        },
        diff_limit: DIFF_LIMIT,
        last_counter: config.last_zxid_counter,
    };
    let stored = Stored {
        epochs,
        base: recovered.base,
        log: recovered.records,
    };
    let began = std::time::Instant::now();
    let peer = Peer::start(me, &ensemble, settings, stored, 0);
    let writer = LogWriter {
        log,
        epochs: epoch::EpochFiles::new(&config.data_dir),
        data_dir: config.data_dir.clone(),
        shared: shared.clone(),
    };
    let report = to_member.clone();
    let to_log = writer.spawn(move |done| report.send(ToMember::Log(done)).is_ok())?;
    let quorum = (shared, ensemble.voters().count());
    let member = Member::new(peer, transport, to_log, to_pipeline, quorum, began);
    let thread = std::thread::Builder::new()
        .name("herd-zab".into())
        .spawn(move || member.run(inbox))?;
    let resume = storage::Resume {
        secret: ENSEMBLE_SECRET,
        down_since_ms: engine::types::now_ms(),
        startup: stats::Startup::default(),
    };
    Ok(MemberStarted {
        tree: recovered.tree,
        resume,
        to_member,
        logged_to: last,
        thread,
    })
}
