//! Zab over real sockets: three members (`zab::peer::Peer`), each on its own
//! loopback address (127.0.0.1, .2, .3) with its election and quorum ports,
//! talking through `herd_server::quorum::Transport`. Their disks are memory
//! (a write is durable as soon as it is applied); what this tests is the
//! transport under the protocol: a leader is elected and serves, writes
//! commit on every member in the same order, the leader stops and the others
//! elect a new one that keeps every committed write, and the old leader comes
//! back from its durable state and catches up.
//!
//! Each wait is bounded (`WAIT`); every member is stopped at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::zab::broadcast::{Limits, Payload, Record, Settings, Store, LAST_COUNTER};
use engine::zab::discovery::Epochs;
use engine::zab::election::PeerState;
use engine::zab::peer::{Actions, Peer, Status, Stored};
use engine::zab::quorum::Ensemble;
use engine::zab::{Millis, Sid};
use herd_server::quorum::{Addresses, Event, Listening, Transport};

const SETTINGS: Settings = Settings {
    limits: Limits {
        tick_ms: 50,
        init_ms: 500,
        sync_ms: 250,
    },
    // Large enough that no learner here needs a SNAP.
    diff_limit: 10_000,
    last_counter: LAST_COUNTER,
};
const WAIT: Duration = Duration::from_secs(15);

/// What the test sees of a member, and what it keeps across a restart.
#[derive(Default)]
struct View {
    status: Option<Status>,
    committed: Vec<Record>,
    stored: Stored,
    /// Writes for it to propose once it leads and serves.
    to_propose: Vec<Payload>,
}

struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(
        sid: Sid,
        listening: Listening,
        all: &[(Sid, Addresses)],
        view: Arc<Mutex<View>>,
    ) -> Member {
        let others: Vec<(Sid, Addresses)> = all.iter().filter(|m| m.0 != sid).copied().collect();
        let (events_tx, events) = mpsc::channel();
        let transport = listening.start(&others, Duration::from_millis(500), move |e| {
            events_tx.send(e).is_ok()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let ensemble = Ensemble::new(all.iter().map(|m| m.0), []).expect("ensemble");
        let thread = std::thread::spawn({
            let (view, stop) = (view.clone(), stop.clone());
            move || drive(sid, &ensemble, transport, events, &view, &stop)
        });
        Member {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the member's thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A member's driver: events and time into its peer, actions out.
fn drive(
    sid: Sid,
    ensemble: &Ensemble,
    mut transport: Transport,
    events: mpsc::Receiver<Event>,
    view: &Mutex<View>,
    stop: &AtomicBool,
) {
    let began = Instant::now();
    let now = || began.elapsed().as_millis() as Millis;
    let stored = view.lock().unwrap().stored.clone();
    let (mut peer, actions) = Peer::start(sid, ensemble, SETTINGS, stored, now());
    carry_out(&mut peer, &mut transport, view, actions);
    while !stop.load(Ordering::SeqCst) {
        let wait = peer.deadline().saturating_sub(now()).clamp(1, 20);
        let actions = match events.recv_timeout(Duration::from_millis(wait)) {
            Ok(Event::Message(from, msg)) => peer.receive(from, msg, now()),
            Ok(Event::Disconnected(from)) => peer.disconnected(from, now()),
            Ok(Event::Reachable(sid, up)) => peer.reachable(sid, up, now()),
            Err(RecvTimeoutError::Timeout) => Actions::default(),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        carry_out(&mut peer, &mut transport, view, actions);
        if peer.deadline() <= now() {
            let actions = peer.tick(now());
            carry_out(&mut peer, &mut transport, view, actions);
        }
        let proposals = std::mem::take(&mut view.lock().unwrap().to_propose);
        for payload in proposals {
            match peer.propose(payload.clone()) {
                Some((_, actions)) => carry_out(&mut peer, &mut transport, view, actions),
                None => view.lock().unwrap().to_propose.push(payload),
            }
        }
        view.lock().unwrap().status = Some(peer.status());
    }
    transport.stop();
}

/// Sends, writes (durable at once here), commits; then what the writes
/// being durable lets go; all sent at the end.
fn carry_out(peer: &mut Peer, transport: &mut Transport, view: &Mutex<View>, actions: Actions) {
    let mut queue = vec![actions];
    while let Some(a) = queue.pop() {
        assert!(!a.snapshot_wanted && a.install.is_none(), "no SNAP here");
        for (to, msg) in &a.send {
            transport.send(*to, msg);
        }
        let mut v = view.lock().unwrap();
        v.committed.extend(a.commit);
        for w in a.writes {
            for op in w.ops {
                apply(&mut v.stored, op);
            }
            queue.push(peer.durable(w.token));
        }
    }
    transport.flush();
}

fn apply(stored: &mut Stored, op: Store) {
    match op {
        Store::Append(records) => stored.log.extend(records),
        Store::Truncate(to) => stored.log.retain(|r| r.0 <= to),
        Store::AcceptEpoch(e) => stored.epochs.accepted = e,
        Store::CurrentEpoch(e) => stored.epochs.current = e,
        Store::Install(_) => panic!("no SNAP here"),
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status(view: &Mutex<View>) -> Option<Status> {
    view.lock().unwrap().status
}

/// The member that leads and serves with every other running member
/// serving under it in its epoch.
fn settled(views: &[(Sid, Arc<Mutex<View>>)]) -> Option<Sid> {
    let statuses: Vec<(Sid, Status)> = views
        .iter()
        .filter_map(|(sid, v)| status(v).map(|s| (*sid, s)))
        .collect();
    let (leader, epoch) = statuses.iter().find_map(|(sid, s)| {
        (s.state == PeerState::Leading && s.serving).then_some((*sid, s.epoch))
    })?;
    statuses
        .iter()
        .all(|(_, s)| s.serving && s.leader == Some(leader) && s.epoch == epoch)
        .then_some(leader)
}

fn payload(i: u64) -> Payload {
    Payload::from(i.to_be_bytes().as_slice())
}

fn committed(view: &Mutex<View>) -> Vec<Record> {
    view.lock().unwrap().committed.clone()
}

#[test]
fn three_members_elect_replicate_fail_over_and_catch_up_over_tcp() {
    let listening: Vec<(Sid, Listening)> = (1..=3u64)
        .map(|sid| {
            let ip = format!("127.0.0.{sid}");
            let at = Addresses {
                election: format!("{ip}:0").parse().unwrap(),
                quorum: format!("{ip}:0").parse().unwrap(),
            };
            (
                sid,
                Listening::bind(sid, at).expect("bind the member's ports"),
            )
        })
        .collect();
    let addresses: Vec<(Sid, Addresses)> = listening
        .iter()
        .map(|(sid, l)| (*sid, l.addresses().unwrap()))
        .collect();
    let views: Vec<(Sid, Arc<Mutex<View>>)> = (1..=3)
        .map(|sid| {
            let view = View {
                stored: Stored {
                    epochs: Epochs {
                        accepted: 0,
                        current: 0,
                    },
                    base: 0,
                    log: Vec::new(),
                },
                ..View::default()
            };
            (sid, Arc::new(Mutex::new(view)))
        })
        .collect();
    let mut members: Vec<Option<Member>> = listening
        .into_iter()
        .zip(&views)
        .map(|((sid, l), (_, view))| Some(Member::start(sid, l, &addresses, view.clone())))
        .collect();

    wait_until("a leader serving with both followers", || {
        settled(&views).is_some()
    });
    // Equal histories: the highest id wins when every vote is in within
    // the finalize wait, which depends on how fast connections come up
    // here; the election's order is the simulator's and election's tests.
    let leader = settled(&views).unwrap();
    let at = leader as usize - 1;
    let first: Vec<Payload> = (1..=20).map(payload).collect();
    views[at].1.lock().unwrap().to_propose = first.clone();
    wait_until("20 writes committed on every member", || {
        views.iter().all(|(_, v)| committed(v).len() == 20)
    });
    for (sid, v) in &views {
        let got: Vec<Payload> = committed(v).into_iter().map(|r| r.1).collect();
        assert_eq!(got, first, "member {sid} commits the writes in order");
    }
    let zxids: Vec<i64> = committed(&views[0].1).iter().map(|r| r.0).collect();
    assert!(
        zxids.windows(2).all(|w| w[1] == w[0] + 1),
        "one zxid each, in order"
    );

    // The leader stops: the other two elect one of themselves and keep
    // every committed write.
    members[at].take().unwrap().stop();
    let stopped = Instant::now();
    let survivors: Vec<(Sid, Arc<Mutex<View>>)> =
        views.iter().filter(|m| m.0 != leader).cloned().collect();
    let survivors = &survivors[..];
    wait_until("a new leader serving with the other member", || {
        settled(survivors).is_some_and(|l| l != leader)
    });
    eprintln!(
        "a new leader served {:?} after the old one stopped",
        stopped.elapsed()
    );
    let new_leader = settled(survivors).unwrap();
    let second: Vec<Payload> = (21..=30).map(payload).collect();
    views[new_leader as usize - 1].1.lock().unwrap().to_propose = second.clone();
    wait_until("10 more writes committed on both", || {
        survivors.iter().all(|(_, v)| committed(v).len() == 30)
    });
    let all: Vec<Payload> = first.iter().chain(&second).cloned().collect();
    for (sid, v) in survivors {
        let got: Vec<Payload> = committed(v).into_iter().map(|r| r.1).collect();
        assert_eq!(
            got, all,
            "member {sid} keeps the old leader's writes, then the new ones"
        );
    }

    // The old leader comes back from its durable state and catches up.
    {
        let mut v = views[at].1.lock().unwrap();
        v.committed.clear();
        v.status = None;
    }
    let again = Listening::bind(leader, addresses[at].1).expect("its ports again");
    members[at] = Some(Member::start(
        leader,
        again,
        &addresses,
        views[at].1.clone(),
    ));
    wait_until("the old leader serving again, caught up", || {
        settled(&views) == Some(new_leader) && committed(&views[at].1).len() == 30
    });
    let got: Vec<Payload> = committed(&views[at].1).into_iter().map(|r| r.1).collect();
    assert_eq!(got, all);
    for m in members.iter_mut().flatten() {
        m.stop();
    }
}
