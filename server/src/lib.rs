//! herd on the wire: ZooKeeper's client protocol served by thread-per-core
//! shards in front of one ordered commit pipeline.
//!
//! ```text
//!  client ─TCP─► shard (glommio executor, one per core; SO_REUSEPORT)
//!                  ├─ read  ─► shared DataTree ─► reply, on the same core
//!                  └─ write ─► pipeline thread: prep ─► durable ─► commit
//!                                 └─ Committed{zxid, events} + reply ─► shards
//! ```
//!
//! - [`herd_proto`] (a crate of its own, `server/proto/`): frames, jute records
//!   and opcodes (pure), shared with herd-bench and herd-cli;
//! - [`message`]: what shards, the pipeline and the log writer send each other;
//! - [`executor`]: a shard's executor, which accepts and owns connections and
//!   dispatches the [`inbox`] from the pipeline; [`shard`]: the state its
//!   connections share, with the [`outbox`] to the pipeline;
//! - [`conn`]: one connection, its handshake and FIFO order;
//! - [`read`]: reads answered on the shard; [`watch`]: the shard's watch table;
//! - [`pipeline`]: the single ordered commit path; [`storage`]: the log and
//!   snapshots on disk;
//! - [`config`]: zoo.cfg, and [`ensemble`]: its server.N lines and myid;
//!   [`epoch`]: a member's acceptedEpoch and currentEpoch files;
//!   [`quorum`]: members' messages over TCP (election and quorum ports);
//!   [`fourlw`] and [`stats`]: operations.
//!
//! Modules depend on each other without cycles; each uses only those on
//! earlier lines (and [`memory`], which uses none):
//!
//! ```text
//!  message   ensemble  epoch  quorum
//!  watch  stats  outbox  inbox  config
//!  read  fourlw  storage  shard
//!  conn  pipeline
//!  executor
//!  lib (Server)
//! ```
//!
//! [`Server::start`] is what the `herd` binary and the tests call.

pub mod config;
pub mod conn;
pub mod ensemble;
pub mod epoch;
pub mod executor;
pub mod fourlw;
pub mod inbox;
pub mod memory;
pub mod message;
pub mod outbox;
pub mod pipeline;
pub mod quorum;
pub mod read;
pub mod shard;
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
use message::ToPipeline;
use outbox::Outbox;
use pipeline::Pipeline;
use shard::Shard;
use stats::Shared;

/// A running herd.
pub struct Server {
    client_addr: SocketAddr,
    to_pipeline: mpsc::Sender<Vec<ToPipeline>>,
    pipeline: Option<JoinHandle<()>>,
    log_writer: Option<JoinHandle<()>>,
    shards: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The autopurge thread and what stops it (dropping the sender).
    purger: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Server {
    /// Starts the pipeline and the shards, bound to the configured client port
    /// (port 0 picks a free one: see [`Server::client_addr`]). A configuration
    /// of an ensemble is refused (`InvalidInput`): herd runs standalone only.
    pub fn start(config: Config) -> io::Result<Server> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        match config.ensemble.mode(&config.data_dir, "the configuration") {
            Ok(ensemble::Mode::Standalone) => {}
            Ok(ensemble::Mode::Member { id, members }) => {
                return Err(invalid(ensemble::NotReplicated { id, members }.to_string()))
            }
            Err(e) => return Err(invalid(e)),
        }
        let config = Arc::new(config);
        let (log, recovered) = storage::open(&config).map_err(io::Error::other)?;
        for warning in &recovered.warnings {
            eprintln!("herd: warning: {warning}");
        }
        let tree = Arc::new(recovered.tree);
        memory::release_freed();
        let (query_senders, query_receivers): (Vec<_>, Vec<_>) = (0..config.shards)
            .map(|_| async_channel::unbounded())
            .unzip();
        let shared = Arc::new(Shared::new(query_senders));
        let (to_pipeline, pipeline_inbox) = mpsc::channel();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.shards)
            .map(|_| inbox::inbox())
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let (log_tx, log_rx) = mpsc::channel();
        let durable_tx = to_pipeline.clone();
        let log_writer = std::thread::Builder::new().name("herd-log".into()).spawn({
            let shared = shared.clone();
            let delay = std::time::Duration::from_millis(config.simulated_flush_delay_ms);
            let report = move |outcome| durable_tx.send(vec![ToPipeline::Durable(outcome)]).is_ok();
            move || storage::write_loop(log, log_rx, report, shared, delay)
        })?;
        shared.set_startup(recovered.resume.startup);
        let pipeline = Pipeline::new(
            config.clone(),
            tree.clone(),
            shared.clone(),
            senders,
            recovered.resume,
            log_tx,
        );
        let pipeline = std::thread::Builder::new()
            .name("herd-pipeline".into())
            .spawn(move || pipeline.run(pipeline_inbox))?;
        let mut shards = Vec::new();

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut addr = SocketAddr::new(config.client_port_address, config.client_port);
        for (index, (inbox, queries)) in receivers.into_iter().zip(query_receivers).enumerate() {
            let (bound_tx, bound_rx) = mpsc::channel();
            let (config, tree, shard_shared, outbox) = (
                config.clone(),
                tree.clone(),
                shared.clone(),
                Outbox::new(to_pipeline.clone()),
            );
            let handle = LocalExecutorBuilder::new(Placement::Fixed(index % cores))
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
                    let shard = Shard::new(index, config, tree, shard_shared, outbox);
                    let executor = Rc::new(Executor::new(shard, queries));
                    executor.run(listener, inbox).await;
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
            client_addr: addr,
            to_pipeline,
            pipeline: Some(pipeline),
            log_writer: Some(log_writer),
            shards,
            purger,
        })
    }

    /// The address clients connect to.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Stops accepting, closes every connection and waits for all threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.to_pipeline.send(vec![ToPipeline::Stop]);
        self.join();
    }

    fn join(&mut self) {
        for t in [self.pipeline.take(), self.log_writer.take()]
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
