//! `check_all` as the runner calls it: the ten reports in order, and no panic on any history.

use crate::history::{Entry, EntryKind, History, Notice, OkResult, Op, Outcome};
use crate::testkit::{Builder, finals};
use crate::{Params, check_all};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PARAMS: Params = Params {
    session_timeout_ms: 4_000,
    election_bound_ms: 2_000,
};

const NAMES: [&str; 10] = [
    "linearizable",
    "session-order",
    "watches",
    "ephemerals",
    "locks",
    "convergence",
    "recipe-locks",
    "election",
    "queue",
    "2pc",
];

#[test]
fn check_all_reports_the_ten_checkers_in_order() {
    let mut b = Builder::new();
    b.notice(
        1,
        Notice::WatchAdded {
            key: "k".to_string(),
            zxid: 2,
        },
    );
    let w = b.invoke(2, Builder::write("k", "a"));
    b.written(2, w, 1, 3);
    b.notice(
        1,
        Notice::WatchEvent {
            key: "k".to_string(),
            zxid: 3,
        },
    );
    let c = b.invoke(
        2,
        Op::CreateEphemeral {
            name: "e".to_string(),
        },
    );
    b.ok(2, c, OkResult::Created { czxid: 4 }, 4);
    let l = b.invoke(
        3,
        Op::LockAcquire {
            lock: "L".to_string(),
        },
    );
    b.ok(3, l, OkResult::Locked { fence: 5 }, 5);
    let r = b.invoke(1, Builder::read("k", true));
    b.read_at(1, r, "a", 1, 3, 5);
    b.notice(
        4,
        Notice::EphemeralsSeen {
            names: vec!["e".to_string()],
            zxid: 5,
        },
    );
    let l = b.invoke(5, Op::RecipeLock { lock: "R".into() });
    b.ok(5, l, OkResult::Locked { fence: 6 }, 6);
    let c = b.invoke(
        6,
        Op::Campaign {
            election: "E".into(),
        },
    );
    b.ok(6, c, OkResult::Leading { term: 7 }, 7);
    let queue = "Q".to_string();
    let item = "i1".to_string();
    let p = b.invoke(
        7,
        Op::QueuePut {
            queue: queue.clone(),
            item: item.clone(),
        },
    );
    b.ok(
        7,
        p,
        OkResult::Put {
            name: "item-1".into(),
        },
        8,
    );
    let t = b.invoke(
        7,
        Op::QueueTake {
            queue: queue.clone(),
        },
    );
    let taken = OkResult::Taken {
        item: item.clone(),
        name: "item-1".into(),
        claim: 9,
    };
    b.ok(7, t, taken, 9);
    let a = b.invoke(
        7,
        Op::QueueAck {
            queue: queue.clone(),
            item,
        },
    );
    b.ok(7, a, OkResult::Acked, 10);
    b.notice(7, Notice::QueueDrained { queue, zxid: 10 });
    let d = b.invoke(8, Op::TxnDecide { txn: "t".into() });
    b.ok(8, d, OkResult::Decided { commit: false }, 11);
    let h = b.finish();
    let reports = check_all(&h, &finals(3, &[("k", "a", 1)]), &PARAMS);
    let names: Vec<&str> = reports.iter().map(|r| r.checker.as_str()).collect();
    assert_eq!(names, NAMES);
    for r in &reports {
        assert!(r.passed(), "{r:?}");
        assert!(r.checked > 0, "{r:?}");
    }
}

#[test]
fn malformed_history_fails_every_checker_without_panicking() {
    let mut b = Builder::new();
    b.written(1, 7, 1, 3);
    let reports = check_all(&b.finish(), &[], &PARAMS);
    assert_eq!(reports.len(), NAMES.len());
    for r in &reports {
        assert!(!r.passed(), "{r:?}");
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, names: &[&'a str]) -> &'a str {
    names[rng.random_range(0..names.len())]
}

fn random_op(rng: &mut ChaCha8Rng) -> Op {
    let key = pick(rng, &["k1", "k2"]).to_string();
    let value = format!("v{}", rng.random_range(0..6)).into_bytes();
    let expected_version = rng.random_range(-1..4);
    let item = pick(rng, &["i1", "i2"]).to_string();
    let txn = pick(rng, &["t1", "t2"]).to_string();
    let participant = pick(rng, &["a", "b"]).to_string();
    match rng.random_range(0..20) {
        0 => Op::Read {
            key,
            sync: rng.random(),
        },
        1 => Op::Write { key, value },
        2 => Op::Cas {
            key,
            expected_version,
            value,
        },
        3 => Op::MultiCas {
            key,
            expected_version,
            value,
        },
        4 => Op::CreateEphemeral {
            name: pick(rng, &["e1", "e2"]).to_string(),
        },
        5 => Op::LockAcquire {
            lock: "L".to_string(),
        },
        6 => Op::LockRelease {
            lock: "L".to_string(),
        },
        7 => Op::RecipeLock { lock: "R".into() },
        8 => Op::RecipeUnlock { lock: "R".into() },
        9 => Op::FencedWrite {
            lock: pick(rng, &["R", "E"]).to_string(),
            fence: rng.random_range(0..12),
        },
        10 => Op::Campaign {
            election: "E".into(),
        },
        11 => Op::Resign {
            election: "E".into(),
        },
        12 => Op::QueuePut {
            queue: "Q".into(),
            item,
        },
        13 => Op::QueueTake { queue: "Q".into() },
        14 => Op::QueueAck {
            queue: "Q".into(),
            item,
        },
        15 => Op::QueueRelease {
            queue: "Q".into(),
            item,
        },
        16 => Op::TxnBegin {
            txn,
            participants: vec!["a".into(), "b".into()],
        },
        17 => Op::TxnVote {
            txn,
            participant,
            yes: rng.random(),
        },
        18 => Op::TxnDecide { txn },
        _ => Op::TxnLearn { txn, participant },
    }
}

fn random_outcome(rng: &mut ChaCha8Rng, op: &Op) -> Outcome {
    let zxid = rng.random_range(0..12);
    match rng.random_range(0..4) {
        0 => Outcome::Fail {
            error: pick(rng, &["BadVersion", "NoNode", "StaleSequencer"]).to_string(),
        },
        1 => Outcome::Unknown {
            error: "Timeout".to_string(),
        },
        _ => {
            let result = match op {
                Op::Read { .. } => OkResult::Read {
                    value: format!("v{}", rng.random_range(0..6)).into_bytes(),
                    version: rng.random_range(-1..5),
                    mzxid: rng.random_range(0..12),
                },
                Op::Write { .. } | Op::Cas { .. } | Op::MultiCas { .. } => OkResult::Written {
                    version: if rng.random_bool(0.9) {
                        rng.random_range(0..5)
                    } else {
                        i32::MAX
                    },
                    zxid,
                },
                Op::CreateEphemeral { .. } => OkResult::Created { czxid: zxid },
                Op::LockAcquire { .. } | Op::RecipeLock { .. } => OkResult::Locked {
                    fence: rng.random_range(0..12),
                },
                Op::LockRelease { .. }
                | Op::RecipeUnlock { .. }
                | Op::Resign { .. }
                | Op::QueueRelease { .. } => OkResult::Released,
                Op::FencedWrite { .. } => OkResult::Written { version: 1, zxid },
                Op::Campaign { .. } => OkResult::Leading {
                    term: rng.random_range(0..12),
                },
                Op::QueuePut { .. } => OkResult::Put { name: "n".into() },
                Op::QueueTake { .. } if rng.random_bool(0.2) => OkResult::Empty,
                Op::QueueTake { .. } => OkResult::Taken {
                    item: pick(rng, &["i1", "i2", "i3"]).to_string(),
                    name: "n".into(),
                    claim: rng.random_range(0..12),
                },
                Op::QueueAck { .. } => OkResult::Acked,
                Op::TxnBegin { .. } => OkResult::Begun,
                Op::TxnVote { .. } => OkResult::Voted,
                Op::TxnDecide { .. } | Op::TxnLearn { .. } => OkResult::Decided {
                    commit: rng.random(),
                },
            };
            Outcome::Ok { result, zxid }
        }
    }
}

fn random_notice(rng: &mut ChaCha8Rng, session: u64) -> Notice {
    let key = pick(rng, &["k1", "k2"]).to_string();
    let zxid = rng.random_range(0..12);
    match rng.random_range(0..8) {
        6 => Notice::Closing { session },
        7 => Notice::QueueDrained {
            queue: "Q".into(),
            zxid,
        },
        0 => Notice::SessionStarted {
            session,
            timeout_ms: rng.random_range(0..u64::MAX),
        },
        1 => Notice::SessionEnded {
            session,
            reason: "expired".to_string(),
        },
        2 => Notice::Disconnected { session },
        3 => Notice::WatchAdded { key, zxid },
        4 => Notice::WatchEvent { key, zxid },
        _ => Notice::EphemeralsSeen {
            names: vec![pick(rng, &["e1", "e2", "e3"]).to_string()],
            zxid,
        },
    }
}

/// Well-formed histories (each process one operation at a time, results of the right kind)
/// with random contents, so every checker runs past the malformed-history gate.
fn random_well_formed(rng: &mut ChaCha8Rng) -> History {
    let mut entries = Vec::new();
    let mut in_flight: Vec<Option<(u64, Op)>> = vec![None; 4];
    let mut sessions = [1u64, 2, 3, 4];
    let mut time_ns = 0;
    for op_id in 0..rng.random_range(0..60) {
        time_ns += rng.random_range(0..3_000_000_000);
        let process = rng.random_range(0..4u32);
        let p = process as usize;
        if rng.random_bool(0.05) {
            sessions[p] += 10;
        }
        let kind = match in_flight[p].take() {
            Some((op_id, op)) if rng.random_bool(0.8) => EntryKind::Complete {
                op_id,
                outcome: random_outcome(rng, &op),
            },
            Some(busy) if rng.random_bool(0.5) => {
                in_flight[p] = Some(busy);
                EntryKind::Notice(random_notice(rng, sessions[p]))
            }
            Some(busy) => {
                in_flight[p] = Some(busy);
                continue;
            }
            None if rng.random_bool(0.3) => EntryKind::Notice(random_notice(rng, sessions[p])),
            None => {
                let op = random_op(rng);
                in_flight[p] = Some((op_id, op.clone()));
                EntryKind::Invoke { op_id, op }
            }
        };
        entries.push(Entry {
            time_ns,
            process,
            session: sessions[p],
            kind,
        });
    }
    History { entries }
}

/// Anything at all: reused and unknown op ids, results of the wrong kind, time going back.
fn random_garbage(rng: &mut ChaCha8Rng) -> History {
    let entries = (0..rng.random_range(0..40))
        .map(|_| {
            let op = random_op(rng);
            let other = random_op(rng);
            let op_id = rng.random_range(0..8);
            let kind = match rng.random_range(0..3) {
                0 => EntryKind::Invoke { op_id, op },
                1 => EntryKind::Complete {
                    op_id,
                    outcome: random_outcome(rng, &other),
                },
                _ => {
                    let session = rng.random_range(0..3);
                    EntryKind::Notice(random_notice(rng, session))
                }
            };
            Entry {
                time_ns: rng.random(),
                process: rng.random_range(0..3),
                session: rng.random_range(0..3),
                kind,
            }
        })
        .collect();
    History { entries }
}

#[test]
fn no_history_makes_a_checker_panic() {
    for seed in 0..10_000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let h = if seed % 2 == 0 {
            random_well_formed(&mut rng)
        } else {
            random_garbage(&mut rng)
        };
        let servers = match rng.random_range(0..3) {
            0 => Vec::new(),
            1 => finals(2, &[("k1", "v1", 1)]),
            _ => finals(1, &[("k1", "v1", i32::MAX), ("k2", "", 0)]),
        };
        let params = Params {
            session_timeout_ms: rng.random_range(0..u64::MAX),
            election_bound_ms: rng.random_range(0..u64::MAX),
        };
        let reports = std::panic::catch_unwind(|| check_all(&h, &servers, &params));
        let reports = reports
            .unwrap_or_else(|_| panic!("seed {seed} panicked on\n{}", History::render(&h.entries)));
        assert_eq!(reports.len(), NAMES.len(), "seed {seed}");
        for r in &reports {
            if let crate::Verdict::Fail { slice, .. } = &r.verdict {
                assert!(slice.len() <= crate::MAX_SLICE, "seed {seed}: {r:?}");
            }
        }
    }
}
