//! A shard's watch table (ZooKeeper's `WatchManager`), for the connections that
//! shard owns. Watches belong to a connection: they go when it closes, and a
//! reconnecting client re-registers them with setWatches.
//!
//! One-shot data watches (set by exists/getData) and child watches (getChildren)
//! fire once; persistent watches fire on every event at their path; persistent
//! recursive watches fire on every event at or below their path except
//! NodeChildrenChanged. A connection gets at most one notification per event.
//!
//! A watch a read asks for is a [`Registration`]: it names the zxid of the
//! state the read observed at its path, and fires only for later changes. The
//! table holds armed watches, which fire on every event the shard dispatches
//! from now on; a registration is armed once the reply of the read that asked
//! for it has been written (until then the connection keeps it, see `conn`), so
//! no notification of a watch ever reaches a client before the reply that set it.

use foldhash::{HashMap, HashMapExt, HashSet};

use engine::path;
use engine::txn::{EventType, WatchEvent};
use engine::Zxid;
use herd_proto::WatcherType;

use crate::message::ConnId;

/// The kinds of registration a connection can hold on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    Recursive,
}

impl WatchKind {
    /// Whether a watch of this kind on `watched` fires on `event`; the rule
    /// [`WatchTable::trigger`] applies through its indexes.
    pub fn fires_on(self, watched: &str, event: &WatchEvent) -> bool {
        let here = event.path == watched;
        match (self, event.kind) {
            (WatchKind::Data, EventType::NodeChildrenChanged) => false,
            (WatchKind::Data, _) => here,
            (WatchKind::Child, EventType::NodeDeleted | EventType::NodeChildrenChanged) => here,
            (WatchKind::Child, _) => false,
            (WatchKind::Persistent, _) => here,
            (WatchKind::Recursive, EventType::NodeChildrenChanged) => false,
            (WatchKind::Recursive, _) => path::is_at_or_below(&event.path, watched),
        }
    }

    /// One-shot kinds are consumed by the event they fire on.
    pub fn is_one_shot(self) -> bool {
        matches!(self, WatchKind::Data | WatchKind::Child)
    }
}

/// A watch a read asked for: `kind` on `path`, firing only for changes after
/// `after`, the zxid of the state the read observed there (the node's mzxid for
/// a data watch, its pzxid for a child watch, the pzxid of the nearest existing
/// ancestor for a watch on a missing node, the shard's dispatch point for a
/// persistent watch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub kind: WatchKind,
    pub path: String,
    pub after: Zxid,
}

/// A registration waiting for the reply of the read that asked for it, the
/// connection's `reply`-th held reply, to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unarmed {
    pub reply: u64,
    pub registration: Registration,
}

/// One connection's watches, armed and unarmed, as checkWatches and
/// removeWatches see them.
pub struct ConnWatches<'a> {
    pub conn: ConnId,
    pub table: &'a mut WatchTable,
    pub unarmed: &'a mut Vec<Unarmed>,
}

impl ConnWatches<'_> {
    pub fn contains(&self, kind: WatchKind, path: &str) -> bool {
        self.table.contains(self.conn, kind, path)
            || self
                .unarmed
                .iter()
                .any(|u| u.registration.kind == kind && u.registration.path == path)
    }

    /// Removes the watch, armed or not; whether there was one.
    pub fn remove(&mut self, kind: WatchKind, path: &str) -> bool {
        let armed = self.table.remove(self.conn, kind, path);
        let before = self.unarmed.len();
        self.unarmed
            .retain(|u| u.registration.kind != kind || u.registration.path != path);
        armed || self.unarmed.len() != before
    }
}

const KINDS: [WatchKind; 4] = [
    WatchKind::Data,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::Recursive,
];

#[derive(Default)]
pub struct WatchTable {
    by_path: [HashMap<String, HashSet<ConnId>>; 4],
    by_conn: HashMap<ConnId, HashSet<(WatchKind, String)>>,
}

impl WatchTable {
    fn map(&mut self, kind: WatchKind) -> &mut HashMap<String, HashSet<ConnId>> {
        &mut self.by_path[kind as usize]
    }

    pub fn add(&mut self, conn: ConnId, kind: WatchKind, path: &str) {
        self.map(kind)
            .entry(path.to_owned())
            .or_default()
            .insert(conn);
        self.by_conn
            .entry(conn)
            .or_default()
            .insert((kind, path.to_owned()));
    }

    pub fn contains(&self, conn: ConnId, kind: WatchKind, path: &str) -> bool {
        self.by_path[kind as usize]
            .get(path)
            .is_some_and(|s| s.contains(&conn))
    }

    /// Removes one registration; whether it was there.
    pub fn remove(&mut self, conn: ConnId, kind: WatchKind, path: &str) -> bool {
        let map = self.map(kind);
        let Some(set) = map.get_mut(path) else {
            return false;
        };
        let removed = set.remove(&conn);
        if set.is_empty() {
            map.remove(path);
        }
        if let Some(mine) = self.by_conn.get_mut(&conn) {
            mine.remove(&(kind, path.to_owned()));
        }
        removed
    }

    /// The kinds a checkWatches/removeWatches type refers to.
    pub fn kinds_of(kind: WatcherType) -> &'static [WatchKind] {
        match kind {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data],
            WatcherType::Any => &KINDS,
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::Recursive],
        }
    }

    /// Drops every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        for (kind, path) in self.by_conn.remove(&conn).unwrap_or_default() {
            let map = self.map(kind);
            if let Some(set) = map.get_mut(&path) {
                set.remove(&conn);
                if set.is_empty() {
                    map.remove(&path);
                }
            }
        }
    }

    /// Total registrations, for `wchs` and `mntr`.
    pub fn count(&self) -> usize {
        self.by_path
            .iter()
            .map(|m| m.values().map(HashSet::len).sum::<usize>())
            .sum()
    }

    /// Every (path, connections) pair, for `wchp` and `wchc`.
    pub fn paths(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut all: HashMap<&str, HashSet<ConnId>> = HashMap::new();
        for map in &self.by_path {
            for (p, conns) in map {
                all.entry(p).or_default().extend(conns);
            }
        }
        let mut out: Vec<_> = all
            .into_iter()
            .map(|(p, c)| (p.to_owned(), c.into_iter().collect()))
            .collect();
        out.sort();
        out
    }

    /// Connections to notify of `event`, each once; one-shot watches are consumed.
    pub fn trigger(&mut self, event: &WatchEvent, out: &mut Vec<ConnId>) {
        out.clear();
        let p = event.path.as_str();
        let mut take = |table: &mut Self, kind: WatchKind| {
            if let Some(set) = table.map(kind).remove(p) {
                for conn in set {
                    if let Some(mine) = table.by_conn.get_mut(&conn) {
                        mine.remove(&(kind, p.to_owned()));
                    }
                    out.push(conn);
                }
            }
        };
        match event.kind {
            EventType::NodeCreated | EventType::NodeDataChanged => take(self, WatchKind::Data),
            EventType::NodeDeleted => {
                take(self, WatchKind::Data);
                take(self, WatchKind::Child);
            }
            EventType::NodeChildrenChanged => take(self, WatchKind::Child),
        }
        if let Some(set) = self.by_path[WatchKind::Persistent as usize].get(p) {
            out.extend(set);
        }
        let recursive = &self.by_path[WatchKind::Recursive as usize];
        if event.kind != EventType::NodeChildrenChanged && !recursive.is_empty() {
            let mut at = p;
            loop {
                if let Some(set) = recursive.get(at) {
                    out.extend(set);
                }
                if at == "/" {
                    break;
                }
                at = path::parent(at);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(t: &mut WatchTable, kind: EventType, path: &str) -> Vec<ConnId> {
        let mut out = Vec::new();
        t.trigger(
            &WatchEvent {
                kind,
                path: path.to_owned(),
            },
            &mut out,
        );
        out
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut t = WatchTable::default();
        t.add(1, WatchKind::Data, "/a");
        t.add(2, WatchKind::Child, "/a");
        assert_eq!(fire(&mut t, EventType::NodeDataChanged, "/a"), vec![1]);
        assert_eq!(
            fire(&mut t, EventType::NodeDataChanged, "/a"),
            Vec::<ConnId>::new()
        );
        t.add(1, WatchKind::Data, "/a");
        assert_eq!(
            fire(&mut t, EventType::NodeDeleted, "/a"),
            vec![1, 2],
            "delete fires data and child watches"
        );
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn persistent_and_recursive() {
        let mut t = WatchTable::default();
        t.add(1, WatchKind::Persistent, "/a");
        t.add(2, WatchKind::Recursive, "/");
        t.add(1, WatchKind::Data, "/a");
        assert_eq!(
            fire(&mut t, EventType::NodeDataChanged, "/a"),
            vec![1, 2],
            "one notification per connection"
        );
        assert_eq!(
            fire(&mut t, EventType::NodeChildrenChanged, "/a"),
            vec![1],
            "recursive skips child events"
        );
        assert_eq!(fire(&mut t, EventType::NodeCreated, "/a/b/c"), vec![2]);
        assert_eq!(t.count(), 2, "persistent watches stay");
        t.remove_conn(2);
        assert_eq!(
            fire(&mut t, EventType::NodeCreated, "/x"),
            Vec::<ConnId>::new()
        );
        assert!(t.remove(1, WatchKind::Persistent, "/a"));
        assert!(!t.remove(1, WatchKind::Persistent, "/a"));
        assert_eq!(t.count(), 0);
    }

    #[test]
    fn trigger_follows_fires_on() {
        let paths = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"];
        let kinds = [
            EventType::NodeCreated,
            EventType::NodeDeleted,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged,
        ];
        // One connection per (kind, path) watch.
        let watches: Vec<(ConnId, WatchKind, &str)> = KINDS
            .iter()
            .flat_map(|k| paths.iter().map(move |p| (*k, *p)))
            .enumerate()
            .map(|(i, (k, p))| (i as ConnId, k, p))
            .collect();
        for kind in kinds {
            for at in paths {
                let mut t = WatchTable::default();
                for (conn, k, p) in &watches {
                    t.add(*conn, *k, p);
                }
                let event = WatchEvent {
                    kind,
                    path: at.to_owned(),
                };
                let mut fired = Vec::new();
                t.trigger(&event, &mut fired);
                let expected: Vec<ConnId> = watches
                    .iter()
                    .filter(|(_, k, p)| k.fires_on(p, &event))
                    .map(|(c, _, _)| *c)
                    .collect();
                assert_eq!(fired, expected, "{kind:?} at {at}");
                let consumed = expected
                    .iter()
                    .filter(|c| watches[**c as usize].1.is_one_shot())
                    .count();
                assert_eq!(t.count(), watches.len() - consumed, "{kind:?} at {at}");
            }
        }
    }
}
