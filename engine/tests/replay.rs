//! Property: for random sequences of writes, replaying the logged records into a
//! fresh tree rebuilds exactly the tree the writes produced (nodes, stats, data,
//! ACLs, ephemerals, sessions), and so does loading a snapshot (exact or fuzzy)
//! and replaying the log after it. Seeded; each seed is one case.

use herd_engine::acl::{self, perms, Acl, Id};
use herd_engine::log::{self, LogEntry};
use herd_engine::op::{CreateOp, WriteOp};
use herd_engine::prep::{self, Context};
use herd_engine::snapshot;
use herd_engine::tree::DataTree;
use herd_engine::txn::{apply, replay, replay_noting, AclCache, Pending, Reparented, Txn, View};
use herd_engine::znode::Data;

/// xorshift64*: small, seeded, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: [&str; 8] = ["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/q", "/c", "/c/s-"];

fn random_op(rng: &mut Rng, nested: bool) -> WriteOp {
    let path = PATHS[rng.below(PATHS.len() as u64) as usize].to_owned();
    let data = if rng.below(5) == 0 {
        Data::null()
    } else {
        Data::new(format!("v{}", rng.below(100)).as_bytes())
    };
    let version = if rng.below(3) == 0 {
        rng.below(3) as i32
    } else {
        -1
    };
    match rng.below(if nested { 5 } else { 7 }) {
        0 | 1 => WriteOp::Create(CreateOp {
            path,
            data,
            acl: if rng.below(4) == 0 {
                vec![Acl {
                    perms: perms::ALL,
                    id: Id::new("digest", &acl::digest("u:p")),
                }]
            } else {
                Acl::open_unsafe()
            },
            // Persistent, ephemeral, both sequential kinds, container.
            flags: rng.below(5) as i32,
            ttl_ms: -1,
        }),
        2 => WriteOp::Delete { path, version },
        3 => WriteOp::SetData {
            path,
            data,
            version,
        },
        4 => WriteOp::SetAcl {
            path,
            acl: Acl::read_unsafe(),
            version,
        },
        5 => WriteOp::Multi(
            (0..1 + rng.below(3))
                .map(|_| random_op(rng, true))
                .collect(),
        ),
        _ => WriteOp::CloseSession,
    }
}

#[test]
fn replaying_the_log_rebuilds_the_same_tree() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let live = DataTree::new();
        let mut pending = Pending::default();
        let mut acls = AclCache::default();
        let mut log_bytes = Vec::new();
        let super_ids = [Id::new("super", "")];
        let mut sessions: Vec<i64> = vec![];
        for zxid in 1..=60i64 {
            let time = 1_000 + zxid;
            let mut view = View::new(&live, &mut pending, &mut acls, zxid, time);
            // Open a session now and then, so ephemerals and closes have owners.
            let txn = if sessions.is_empty() || rng.below(8) == 0 {
                let txn = Txn::CreateSession {
                    session: 100 + zxid,
                    timeout_ms: 4000,
                };
                apply(&txn, &mut view, &mut Vec::new());
                sessions.push(100 + zxid);
                txn
            } else {
                let session = sessions[rng.below(sessions.len() as u64) as usize];
                let op = random_op(&mut rng, false);
                let ctx = Context {
                    session,
                    auth: &super_ids,
                    extended_types: true,
                };
                if op == WriteOp::CloseSession {
                    sessions.retain(|s| *s != session);
                }
                prep::execute(&op, &ctx, &mut view).txn
            };
            let changes = view.into_changes();
            live.commit(zxid, &changes);
            pending.retire(zxid, &changes);
            log::encode_record(&mut log_bytes, zxid, &LogEntry { time_ms: time, txn });
        }

        let mut segment = log::SegmentHeader {
            format: log::FORMAT_VERSION,
            db_id: 1,
            first_zxid: 1,
        }
        .encode()
        .to_vec();
        segment.extend_from_slice(&log_bytes);
        let scan = log::scan(&segment).unwrap();
        assert_eq!(scan.records.len(), 60, "seed {seed}");
        let rebuilt = DataTree::new();
        let mut acls = AclCache::default();
        for rec in scan.records {
            let entry =
                log::decode_payload(&segment[rec.payload_at..rec.payload_at + rec.payload_len])
                    .unwrap();
            replay(&rebuilt, &mut acls, rec.zxid, entry.time_ms, &entry.txn);
        }
        assert_eq!(rebuilt.all(), live.all(), "seed {seed}: nodes");
        assert_eq!(rebuilt.sessions(), live.sessions(), "seed {seed}: sessions");
        assert_eq!(rebuilt.last_zxid(), live.last_zxid(), "seed {seed}: zxid");
        for (s, _) in live.sessions() {
            assert_eq!(
                rebuilt.ephemerals(s),
                live.ephemerals(s),
                "seed {seed}: ephemerals of {s}"
            );
        }
        assert_eq!(
            (rebuilt.node_count(), rebuilt.data_bytes()),
            (live.node_count(), live.data_bytes())
        );

        // From a snapshot at zxid k plus the log after it: exact (the tree as of k)
        // and fuzzy (every later change already in, as a snapshot taken while
        // writes go on can hold), replay ends in the same tree.
        let k = 1 + rng.below(59) as usize;
        let entries: Vec<LogEntry> = log::scan(&segment)
            .unwrap()
            .records
            .iter()
            .map(|r| {
                log::decode_payload(&segment[r.payload_at..r.payload_at + r.payload_len]).unwrap()
            })
            .collect();
        let as_of_k = DataTree::new();
        let mut acls = AclCache::default();
        for (i, e) in entries[..k].iter().enumerate() {
            replay(&as_of_k, &mut acls, i as i64 + 1, e.time_ms, &e.txn);
        }
        for (kind, source) in [("exact", &as_of_k), ("fuzzy", &live)] {
            let (zxid, restored) = snapshot::load(&snapshot::encode(source, k as i64)).unwrap();
            assert_eq!(zxid, k as i64);
            let mut acls = AclCache::default();
            let mut reparented = Reparented::default();
            for (i, e) in entries.iter().enumerate().skip(k) {
                let zxid = i as i64 + 1;
                replay_noting(
                    &restored,
                    &mut acls,
                    zxid,
                    e.time_ms,
                    &e.txn,
                    &mut reparented,
                );
            }
            restored.recount_children_of(&reparented.parents);
            assert_eq!(
                restored.all(),
                live.all(),
                "seed {seed}, {kind} snapshot at {k}: nodes"
            );
            assert_eq!(
                restored.sessions(),
                live.sessions(),
                "seed {seed}, {kind}: sessions"
            );
            for (s, _) in live.sessions() {
                assert_eq!(
                    restored.ephemerals(s),
                    live.ephemerals(s),
                    "seed {seed}, {kind}: ephemerals"
                );
            }
            assert_eq!(
                restored.node_count(),
                live.node_count(),
                "seed {seed}, {kind}: count"
            );
            assert_eq!(
                restored.last_zxid(),
                live.last_zxid(),
                "seed {seed}, {kind}: zxid"
            );
        }
        for (path, node) in live.all() {
            assert_eq!(
                node.num_children,
                live.children(&path).len() as i32,
                "seed {seed}: numChildren of {path}"
            );
        }
    }
}
