//! A shard: one glommio executor on its own thread that accepts connections on
//! the shared client port (SO_REUSEPORT), owns those connections, their sessions'
//! I/O and their watches, and answers reads from the shared tree on its own core.
//!
//! The shard's inbox ([`crate::inbox`]) carries, in zxid order, what the commit
//! pipeline sends it: `Committed` transactions with their watch events, replies to
//! its writes and handshake outcomes. A read reply that may reflect a transaction
//! the shard has not dispatched yet is held until it has (see `conn`), so a
//! change's notification always goes out before a reply that shows the change.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use engine::tree::DataTree;
use engine::{SessionId, Zxid};
use futures_lite::StreamExt;
use glommio::net::TcpListener;

use crate::config::Config;
use crate::conn::{self, Conn};
use crate::inbox::InboxReceiver;
use crate::outbox::Outbox;
use crate::pipeline::{ConnId, ToPipeline, ToShard};
use crate::stats::{Counters, Shared, WatchQuery};
use crate::watch::WatchTable;

pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub tree: Arc<DataTree>,
    pub shared: Arc<Shared>,
    pub counters: Arc<Counters>,
    pub to_pipeline: Outbox,
    watch_queries: async_channel::Receiver<WatchQuery>,
    pub conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    pub watches: RefCell<WatchTable>,
    /// Connections with client activity since the last flush to the tracker.
    touched: RefCell<Vec<ConnId>>,
    next_conn: Cell<u64>,
    scratch: RefCell<Vec<ConnId>>,
    /// Every transaction up to this zxid has been dispatched here.
    seen_through: Cell<Zxid>,
    /// Connections with replies held back for transactions not yet seen.
    holding: RefCell<Vec<ConnId>>,
    /// Connections whose next read waits for a `Committed` (see `read::InFlight`).
    parked: RefCell<Vec<ConnId>>,
}

impl Shard {
    pub fn new(
        index: usize,
        config: Arc<Config>,
        tree: Arc<DataTree>,
        shared: Arc<Shared>,
        to_pipeline: Outbox,
        watch_queries: async_channel::Receiver<WatchQuery>,
    ) -> Shard {
        Shard {
            index,
            counters: shared.shards[index].clone(),
            seen_through: Cell::new(tree.last_zxid()),
            holding: RefCell::new(Vec::new()),
            parked: RefCell::new(Vec::new()),
            config,
            tree,
            shared,
            to_pipeline,
            watch_queries,
            conns: RefCell::new(HashMap::new()),
            watches: RefCell::new(WatchTable::default()),
            touched: RefCell::new(Vec::new()),
            next_conn: Cell::new(0),
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// Serves until the pipeline goes away.
    pub async fn run(self: Rc<Self>, listener: TcpListener, inbox: InboxReceiver) {
        let mut inbox = inbox.listen();
        let accept = {
            let shard = self.clone();
            async move {
                let mut incoming = listener.incoming();
                while let Some(stream) = incoming.next().await {
                    if let Ok(stream) = stream {
                        let id = shard.new_conn_id();
                        glommio::spawn_local(conn::serve(shard.clone(), id, stream)).detach();
                    }
                }
            }
        };
        // Its own task: a pending accept re-polled on every wake of another future
        // would pile up wakers in glommio's accept source.
        let accepting = glommio::spawn_local(accept);
        let touch = {
            let shard = self.clone();
            let every = self.config.session_check_interval();
            async move {
                loop {
                    glommio::timer::sleep(every).await;
                    shard.flush_touches();
                }
            }
        };
        glommio::spawn_local(touch).detach();
        let queries = {
            let shard = self.clone();
            async move {
                while let Ok(reply) = shard.watch_queries.recv().await {
                    let _ = reply.send(shard.watch_listing()).await;
                }
            }
        };
        glommio::spawn_local(queries).detach();
        let forward = {
            let shard = self.clone();
            async move { shard.to_pipeline.forward().await }
        };
        glommio::spawn_local(forward).detach();
        let dispatch = async move {
            while let Some(batch) = inbox.recv().await {
                self.dispatch(batch);
            }
        };
        dispatch.await;
        drop(accepting);
    }

    /// (path, session) of every watch this shard holds, for `wchs`/`wchc`/`wchp`.
    fn watch_listing(&self) -> Vec<(String, SessionId)> {
        let conns = self.conns.borrow();
        let mut out = Vec::new();
        for (path, ids) in self.watches.borrow().paths() {
            out.extend(
                ids.iter()
                    .filter_map(|id| conns.get(id))
                    .map(|c| (path.clone(), c.session())),
            );
        }
        out
    }

    fn new_conn_id(&self) -> ConnId {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        ((self.index as u64) << 48) | n
    }

    fn dispatch(&self, batch: Vec<ToShard>) {
        for msg in batch {
            match msg {
                ToShard::Committed { zxid, events } => {
                    let mut targets = self.scratch.borrow_mut();
                    for event in events.iter().flat_map(|e| e.iter()) {
                        self.watches.borrow_mut().trigger(event, &mut targets);
                        for id in targets.iter() {
                            if let Some(conn) = self.conn(*id) {
                                conn.notify(zxid, event);
                            }
                        }
                        // Watches of replies still held fire behind those replies.
                        for id in self.holding.borrow().iter() {
                            if let Some(conn) = self.conn(*id) {
                                conn.fire_unarmed(zxid, event);
                            }
                        }
                    }
                    drop(targets);
                    self.seen_through.set(zxid);
                    self.release_held();
                }
                ToShard::Reply {
                    conn,
                    xid,
                    zxid,
                    result,
                } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.on_reply(self, xid, zxid, result);
                    }
                }
                ToShard::Connected {
                    conn,
                    session,
                    timeout_ms,
                    password,
                } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.on_connected(session, timeout_ms, password);
                    }
                }
                ToShard::Close { conn } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.close();
                    }
                }
            }
        }
        if !self.parked.borrow().is_empty() {
            self.unpark();
        }
    }

    /// The zxid through which this shard has dispatched every transaction.
    pub fn seen_through(&self) -> Zxid {
        self.seen_through.get()
    }

    /// Remembers that `conn` holds replies waiting for a later `Committed`.
    pub fn hold(&self, conn: ConnId) {
        self.holding.borrow_mut().push(conn);
    }

    fn release_held(&self) {
        let seen = self.seen_through.get();
        self.each(&self.holding, |conn| {
            if conn.release(self, seen) {
                self.holding.borrow_mut().push(conn.id);
            }
        });
    }

    /// Remembers that `conn`'s next read waits for the next `Committed`.
    pub fn park(&self, conn: ConnId) {
        self.parked.borrow_mut().push(conn);
    }

    /// Retries the reads that waited for a `Committed`.
    fn unpark(&self) {
        self.each(&self.parked, |conn| conn.advance(self));
    }

    /// Takes the connections listed in `list` (which `f` may refill) and
    /// calls `f` on each that is still open.
    fn each(&self, list: &RefCell<Vec<ConnId>>, mut f: impl FnMut(&Conn)) {
        let waiting = std::mem::take(&mut *list.borrow_mut());
        for id in waiting {
            if let Some(conn) = self.conn(id) {
                f(&conn);
            }
        }
    }

    pub fn conn(&self, id: ConnId) -> Option<Rc<Conn>> {
        self.conns.borrow().get(&id).cloned()
    }

    /// Notes client activity; sent to the session tracker in batches.
    pub fn touch(&self, conn: &Conn) {
        if !conn.active.replace(true) {
            self.touched.borrow_mut().push(conn.id);
        }
    }

    fn flush_touches(&self) {
        let touched = std::mem::take(&mut *self.touched.borrow_mut());
        let sessions: Vec<SessionId> = touched
            .into_iter()
            .filter_map(|id| self.conn(id))
            .map(|conn| {
                conn.active.set(false);
                conn.session()
            })
            .filter(|s| *s != 0)
            .collect();
        if !sessions.is_empty() {
            self.to_pipeline.send(ToPipeline::Touch(sessions));
        }
    }
}
