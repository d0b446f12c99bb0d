//! An ensemble member's Zab driver (the I/O half of ZooKeeper's
//! `QuorumPeer`): one thread that runs [`engine::zab::peer::Peer`] over the
//! quorum [`Transport`] and the member's [`LogWriter`], and tells the commit
//! pipeline what it learns.
//!
//! ```text
//!  transport ── Event ──────┐
//!  pipeline ─── ToMember ───┼─► member thread: Peer ─► send now ─► transport
//!  log writer ─ Done ───────┘      │ writes ─► log writer thread (append, truncate,
//!                                  │   install, epochs; one fdatasync per round)
//!                                  │ Durable(tokens) ─► Peer::durable(token)
//!                                  └─► ToPipeline::Zab: commits, installs, role,
//!                                      learners' requests and touches
//! ```
//!
//! Invariants:
//! - storage writes go to the log writer in the order the peer issued them,
//!   and come back durable in that order ([`crate::log_writer`]);
//! - a round takes every message waiting before it hands its writes over,
//!   so the appends of many proposals share one fdatasync (group commit),
//!   and its proposals are sent before they are written;
//! - commits reach the pipeline in zxid order, and before the role change
//!   of the same round; a leader is reported as serving only once its whole
//!   history is committed and handed out, so the pipeline prepares writes
//!   against a tree that holds it;
//! - proposals prepared for an earlier term (before a role change the
//!   pipeline had not yet heard of) are dropped, never given new zxids.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::zab::broadcast::{Payload, Snapshot};
use engine::zab::election::PeerState;
use engine::zab::peer::{Actions, Left, Peer, Write};
use engine::zab::{epoch_of, Millis};
use engine::{SessionId, Zxid};

use crate::inbox::InboxSender;
use crate::log_writer::Done;
use crate::message::{FromZab, Serving, ToPipeline};
use crate::quorum::{Event, Transport};
use crate::stats::{QuorumStats, Shared};

/// What the member thread is told.
pub enum ToMember {
    Net(Event),
    /// From the log writer.
    Log(Done),
    /// Records the pipeline prepared as leader in `term`, with the zxids
    /// it gave them.
    Propose {
        term: u64,
        records: Vec<(Zxid, Payload)>,
    },
    /// A client's request, for the leader (`engine::forward`).
    Forward(Payload),
    /// Sessions this member's clients were active in.
    Touch(Vec<SessionId>),
    /// The state, for the SNAP the peer asked for.
    Snapshot(Snapshot),
    Stop,
}

/// Most messages taken into one round.
const MAX_ROUND: usize = 4096;

pub struct Member {
    peer: Peer,
    transport: Transport,
    /// The log writer's inbox and thread (gone once stopped).
    to_log: Option<(Sender<Vec<Write>>, JoinHandle<()>)>,
    to_pipeline: InboxSender<Vec<ToPipeline>>,
    began: Instant,
    /// Issued by the peer, not yet handed to the log writer.
    writes: Vec<Write>,
    /// For the pipeline, sent at the end of the round.
    out: Vec<ToPipeline>,
    serving: Serving,
    shared: Arc<Shared>,
    quorum_size: usize,
    /// The epoch it last reported leading in.
    led_epoch: Option<u32>,
    term: u64,
    /// When it began looking for a leader, while it looks (for mntr's
    /// election time).
    looking_since: Option<Millis>,
}

impl Member {
    /// `first` are the actions of the peer's start; `to_log` the started
    /// log writer, which reports to this member's inbox; `quorum_size` (the
    /// voters, as ZooKeeper counts it) is for mntr, which reads what the
    /// member reports in `shared`.
    pub fn new(
        (peer, first): (Peer, Actions),
        transport: Transport,
        to_log: (Sender<Vec<Write>>, JoinHandle<()>),
        to_pipeline: InboxSender<Vec<ToPipeline>>,
        (shared, quorum_size): (Arc<Shared>, usize),
        began: Instant,
    ) -> Member {
        let mut member = Member {
            peer,
            transport,
            to_log: Some(to_log),
            to_pipeline,
            began,
            writes: Vec::new(),
            out: Vec::new(),
            serving: Serving::No,
            shared,
            quorum_size,
            led_epoch: None,
            term: 0,
            looking_since: None,
        };
        member.carry_out(first);
        member
    }

    fn now(&self) -> Millis {
        self.began.elapsed().as_millis() as Millis
    }

    /// Runs until `Stop` arrives, every sender is gone, or storage fails.
    pub fn run(mut self, inbox: Receiver<ToMember>) {
        loop {
            self.transport.flush();
            let wait = self.peer.deadline().saturating_sub(self.now()).clamp(1, 50);
            let mut stop = match inbox.recv_timeout(Duration::from_millis(wait)) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            for _ in 0..MAX_ROUND {
                if stop {
                    break;
                }
                match inbox.try_recv() {
                    Ok(msg) => stop = self.handle(msg),
                    Err(_) => break,
                }
            }
            if self.peer.deadline() <= self.now() {
                let actions = self.peer.tick(self.now());
                self.carry_out(actions);
            }
            // Proposals leave before they are written, here or anywhere.
            self.transport.flush();
            if !self.writes.is_empty() {
                let writes = std::mem::take(&mut self.writes);
                if let Some((to_log, _)) = &self.to_log {
                    // A writer gone has reported why; that stops this loop.
                    let _ = to_log.send(writes);
                }
            }
            if !stop {
                let serving = self.serving_now();
                self.report(serving);
            }
            self.report_quorum();
            if !self.out.is_empty() && !self.to_pipeline.send(std::mem::take(&mut self.out)) {
                stop = true;
            }
            if stop {
                self.transport.stop();
                if let Some((to_log, thread)) = self.to_log.take() {
                    drop(to_log);
                    let _ = thread.join();
                }
                return;
            }
        }
    }

    /// Takes one message; true for `Stop`.
    fn handle(&mut self, msg: ToMember) -> bool {
        let now = self.now();
        let actions = match msg {
            ToMember::Net(Event::Message(from, m)) => self.peer.receive(from, m, now),
            ToMember::Net(Event::Disconnected(from)) => self.peer.disconnected(from, now),
            ToMember::Net(Event::Reachable(sid, up)) => self.peer.reachable(sid, up, now),
            ToMember::Log(Done::Durable(tokens)) => {
                for token in tokens {
                    let actions = self.peer.durable(token);
                    self.carry_out(actions);
                }
                Actions::default()
            }
            ToMember::Log(Done::Failed(why)) => {
                crate::error!("{why}; this member no longer takes part in the ensemble");
                self.out.push(ToPipeline::Zab(FromZab::Failed(why)));
                self.report(Serving::No);
                return true;
            }
            ToMember::Propose { term, records } => {
                if term != self.term {
                    return false;
                }
                for (zxid, payload) in records {
                    let size = payload.len();
                    let Some((given, actions)) = self.peer.propose(payload) else {
                        // No longer serving: the role change is on its way.
                        break;
                    };
                    assert_eq!(given, zxid, "the pipeline and Zab agree on zxids");
                    self.shared.proposal_sizes.record(size);
                    self.carry_out(actions);
                }
                Actions::default()
            }
            ToMember::Forward(request) => self.peer.forward(request).unwrap_or_default(),
            ToMember::Touch(sessions) => {
                self.peer.touch(sessions);
                Actions::default()
            }
            ToMember::Snapshot(snapshot) => self.peer.snapshot(snapshot),
            ToMember::Stop => return true,
        };
        self.carry_out(actions);
        false
    }

    /// Sends what goes now; queues writes; passes the rest to the pipeline.
    fn carry_out(&mut self, actions: Actions) {
        for (to, msg) in &actions.send {
            self.transport.send(*to, msg);
        }
        self.writes.extend(actions.writes);
        if let Some(snapshot) = actions.install {
            self.out.push(ToPipeline::Zab(FromZab::Install(snapshot)));
        }
        if !actions.commit.is_empty() {
            self.out
                .push(ToPipeline::Zab(FromZab::Commit(actions.commit)));
        }
        if !actions.requests.is_empty() {
            self.out
                .push(ToPipeline::Zab(FromZab::Requests(actions.requests)));
        }
        if !actions.touched.is_empty() {
            self.out
                .push(ToPipeline::Zab(FromZab::Touched(actions.touched)));
        }
        if actions.snapshot_wanted {
            self.out.push(ToPipeline::Zab(FromZab::SnapshotWanted));
        }
        match actions.left {
            Some(Left::Rediscover) => crate::info!(
                "member {:?}: the epoch has no zxid left; discovering a new one with leader {:?}",
                self.peer.status().state,
                self.peer.status().leader
            ),
            Some(why) => crate::info!(
                "member {:?} looks for a leader again: {why:?}",
                self.peer.status().state
            ),
            None => {}
        }
    }

    /// How the member serves now (see the module's invariants).
    fn serving_now(&self) -> Serving {
        let status = self.peer.status();
        if !status.serving {
            return Serving::No;
        }
        match status.state {
            PeerState::Leading => {
                if let Serving::Leading { .. } = self.serving {
                    if status.epoch == self.led_epoch {
                        return self.serving; // its proposals are in flight
                    }
                }
                let last = self.peer.last_zxid();
                if self.peer.applied() != last {
                    return Serving::No;
                }
                let epoch = status.epoch.expect("a serving leader has an epoch");
                let next = if epoch_of(last) == epoch {
                    last + 1
                } else {
                    (i64::from(epoch) << 32) | 1
                };
                Serving::Leading { next }
            }
            PeerState::Following | PeerState::Observing => Serving::Following,
            PeerState::Looking => Serving::No,
        }
    }

    /// Updates what mntr shows of the quorum (no allocation: this runs
    /// every round), and times elections as ZooKeeper does: from looking to
    /// following or leading (observers record none).
    fn report_quorum(&mut self) {
        let status = self.peer.status();
        let now = self.now();
        match (status.state, self.looking_since) {
            (PeerState::Looking, None) => self.looking_since = Some(now),
            (PeerState::Leading | PeerState::Following, Some(since)) => {
                let mut elections = self.shared.elections.lock().expect("election stats");
                let _ = elections.record(now.saturating_sub(since));
                self.looking_since = None;
            }
            (PeerState::Observing, Some(_)) => self.looking_since = None,
            _ => {}
        }
        // (state, serving, epoch settled): serving is broadcast; before it, an
        // epoch settled is synchronisation, none yet discovery.
        let peer_state = match (status.state, status.serving, status.epoch.is_some()) {
            (PeerState::Looking, ..) => "looking",
            (PeerState::Leading, true, _) => "leading - broadcast",
            (PeerState::Leading, false, true) => "leading - synchronization",
            (PeerState::Leading, false, false) => "leading - discovery",
            (PeerState::Following, true, _) => "following - broadcast",
            (PeerState::Following, false, true) => "following - synchronization",
            (PeerState::Following, false, false) => "following - discovery",
            (PeerState::Observing, true, _) => "observing - broadcast",
            (PeerState::Observing, false, true) => "observing - synchronization",
            (PeerState::Observing, false, false) => "observing - discovery",
        };
        let stats = QuorumStats {
            peer_state,
            quorum_size: self.quorum_size,
            learners: self.peer.learner_counts(),
            syncs: self.peer.sync_counts(),
        };
        *self.shared.quorum.lock().expect("quorum stats") = Some(stats);
    }

    fn report(&mut self, serving: Serving) {
        let status = self.peer.status();
        let same = match (self.serving, serving) {
            (Serving::Leading { .. }, Serving::Leading { .. }) => status.epoch == self.led_epoch,
            (a, b) => a == b,
        };
        if same {
            return;
        }
        self.serving = serving;
        self.led_epoch = match serving {
            Serving::Leading { .. } => {
                self.shared.proposal_sizes.reset();
                status.epoch
            }
            _ => None,
        };
        self.term += 1;
        crate::info!(
            "member serves as {serving:?} (state {:?}, leader {:?}, epoch {:?})",
            status.state,
            status.leader,
            status.epoch
        );
        self.out.push(ToPipeline::Zab(FromZab::Role {
            serving,
            term: self.term,
        }));
    }
}
