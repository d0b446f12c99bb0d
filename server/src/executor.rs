//! A shard's executor: one glommio executor on its own thread that accepts
//! connections on the shared client port (SO_REUSEPORT), owns those connections,
//! their sessions' I/O and their watches, and answers reads from the shared tree
//! on its own core. What its connections share is the [`Shard`].
//!
//! The shard's inbox ([`crate::inbox`]) carries, in zxid order, what the commit
//! pipeline sends it: `Committed` transactions with their watch events, replies to
//! its writes and handshake outcomes; the executor hands each to its connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use engine::SessionId;
use futures_lite::StreamExt;
use glommio::net::{TcpListener, TcpStream};

use crate::conn::{self, Conn};
use crate::inbox::InboxReceiver;
use crate::message::{ConnId, ToPipeline, ToShard};
use crate::shard::Shard;
use crate::stats::{Latencies, ShardQuery};

pub struct Executor {
    shard: Shard,
    queries: async_channel::Receiver<ShardQuery>,
    conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    next_conn: Cell<u64>,
    scratch: RefCell<Vec<ConnId>>,
}

impl Executor {
    pub fn new(shard: Shard, queries: async_channel::Receiver<ShardQuery>) -> Executor {
        Executor {
            shard,
            queries,
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// Serves until the pipeline goes away.
    pub async fn run(self: Rc<Self>, listener: TcpListener, inbox: InboxReceiver<Vec<ToShard>>) {
        let mut inbox = inbox.listen();
        let accept = {
            let executor = self.clone();
            async move {
                let mut incoming = listener.incoming();
                while let Some(stream) = incoming.next().await {
                    if let Ok(stream) = stream {
                        let id = executor.new_conn_id();
                        glommio::spawn_local(executor.clone().serve(id, stream)).detach();
                    }
                }
            }
        };
        // Its own task: a pending accept re-polled on every wake of another future
        // would pile up wakers in glommio's accept source.
        let accepting = glommio::spawn_local(accept);
        let touch = {
            let executor = self.clone();
            let every = self.shard.config.session_check_interval();
            async move {
                loop {
                    glommio::timer::sleep(every).await;
                    executor.flush_touches();
                }
            }
        };
        glommio::spawn_local(touch).detach();
        let queries = {
            let executor = self.clone();
            async move {
                while let Ok(query) = executor.queries.recv().await {
                    let latencies = &executor.shard.latencies;
                    match query {
                        ShardQuery::Watches(reply) => {
                            let _ = reply.send(executor.watch_listing()).await;
                        }
                        ShardQuery::Latencies(reply) => {
                            let copy = latencies.borrow().clone();
                            let _ = reply.send(copy).await;
                        }
                        ShardQuery::ResetLatencies => {
                            *latencies.borrow_mut() = Latencies::default()
                        }
                    }
                }
            }
        };
        glommio::spawn_local(queries).detach();
        let forward = {
            let executor = self.clone();
            async move { executor.shard.to_pipeline.forward().await }
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

    /// Serves one accepted connection, listed among this shard's while it is open.
    async fn serve(self: Rc<Self>, id: ConnId, stream: TcpStream) {
        let Some(conn) = conn::open(&self.shard, id, &stream) else {
            return;
        };
        self.conns.borrow_mut().insert(id, conn.clone());
        conn::serve(&self.shard, &conn, stream).await;
        self.conns.borrow_mut().remove(&id);
    }

    /// (path, session) of every watch this shard holds, for `wchs`/`wchc`/`wchp`.
    fn watch_listing(&self) -> Vec<(String, SessionId)> {
        let conns = self.conns.borrow();
        let mut out = Vec::new();
        for (path, ids) in self.shard.watches.borrow().paths() {
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
        ((self.shard.index as u64) << 48) | n
    }

    fn dispatch(&self, batch: Vec<ToShard>) {
        let shard = &self.shard;
        for msg in batch {
            match msg {
                ToShard::Committed { zxid, events } => {
                    let mut targets = self.scratch.borrow_mut();
                    for event in events.iter().flat_map(|e| e.iter()) {
                        shard.watches.borrow_mut().trigger(event, &mut targets);
                        for id in targets.iter() {
                            if let Some(conn) = self.conn(*id) {
                                conn.notify(shard, zxid, event);
                            }
                        }
                        // Watches of replies still held fire behind those replies.
                        for id in shard.holding().iter() {
                            if let Some(conn) = self.conn(*id) {
                                conn.fire_unarmed(shard, zxid, event);
                            }
                        }
                    }
                    drop(targets);
                    shard.dispatched(zxid);
                    self.release_held();
                }
                ToShard::Reply {
                    conn,
                    xid,
                    zxid,
                    result,
                } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.on_reply(shard, xid, zxid, result);
                    }
                }
                ToShard::Connected {
                    conn,
                    session,
                    timeout_ms,
                    password,
                } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.on_connected(shard, session, timeout_ms, password);
                    }
                }
                ToShard::Close { conn } => {
                    if let Some(conn) = self.conn(conn) {
                        conn.close();
                    }
                }
            }
        }
        // Retries the reads that waited for a `Committed`.
        self.each(self.shard.take_parked(), |conn| conn.advance(shard));
    }

    fn release_held(&self) {
        let shard = &self.shard;
        let seen = shard.seen_through();
        self.each(shard.take_holding(), |conn| {
            if conn.release(shard, seen) {
                shard.hold(conn.id);
            }
        });
    }

    /// Calls `f` on each connection of `ids` that is still open.
    fn each(&self, ids: Vec<ConnId>, mut f: impl FnMut(&Conn)) {
        for id in ids {
            if let Some(conn) = self.conn(id) {
                f(&conn);
            }
        }
    }

    fn conn(&self, id: ConnId) -> Option<Rc<Conn>> {
        self.conns.borrow().get(&id).cloned()
    }

    fn flush_touches(&self) {
        let sessions: Vec<SessionId> = self
            .shard
            .take_touched()
            .into_iter()
            .filter_map(|id| self.conn(id))
            .map(|conn| {
                conn.active.set(false);
                conn.session()
            })
            .filter(|s| *s != 0)
            .collect();
        if !sessions.is_empty() {
            self.shard.to_pipeline.send(ToPipeline::Touch(sessions));
        }
    }
}
