//! Randomized tests: histories generated from a simulated register must pass; corrupted ones
//! must fail; and on small histories the checker must agree with a brute-force search over
//! every order and every choice of which unknown writes took effect. Every case is seeded
//! (ChaCha8); a failing assertion prints its seed and the history.

use super::brute;
use super::*;
use crate::Verdict;
use crate::history::{Entry, EntryKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of generated histories.
#[derive(Clone, Copy)]
struct Shape {
    processes: u32,
    ops: usize,
    keys: usize,
    /// Chance an operation's outcome is unknown (then it applies with probability ½).
    unknown: f64,
    /// Chance a write fails outright (and does not apply).
    fail: f64,
    finals: bool,
}

/// One simulated operation, before its outcome is known.
struct SimOp {
    process: u32,
    key: usize,
    /// 0 read, 1 write, 2 cas, 3 multi-cas.
    kind: u8,
    sync: bool,
    invoke: u64,
    complete: Option<u64>,
    /// The instant it takes effect, if it does.
    effect: Option<u64>,
    unknown: bool,
    fails: bool,
    expected: i32,
    value: String,
    outcome: Option<OpOutcome>,
}

/// A history drawn from a real register: every operation takes effect at an instant inside
/// its interval (an unknown one possibly later, or never).
fn simulate(rng: &mut ChaCha8Rng, shape: Shape) -> (History, Vec<ServerFinal>) {
    let mut clock = vec![0u64; shape.processes as usize];
    let mut ops: Vec<SimOp> = Vec::new();
    for n in 0..shape.ops {
        let process = rng.random_range(0..shape.processes);
        let invoke = clock[process as usize] + rng.random_range(1..4);
        let complete = invoke + rng.random_range(0..12);
        clock[process as usize] = complete;
        let kind = rng.random_range(0..4u8);
        let unknown = rng.random_bool(shape.unknown);
        let fails = !unknown && kind != 0 && rng.random_bool(shape.fail);
        let effect = if fails || (unknown && (kind == 0 || rng.random_bool(0.5))) {
            None
        } else if unknown {
            Some(rng.random_range(invoke..=complete + 20))
        } else {
            Some(rng.random_range(invoke..=complete))
        };
        ops.push(SimOp {
            process,
            key: rng.random_range(0..shape.keys),
            kind,
            sync: rng.random_bool(0.8),
            invoke,
            complete: Some(complete),
            effect,
            unknown,
            fails,
            expected: rng.random_range(0..3),
            value: format!("v{n}"),
            outcome: None,
        });
    }
    // Some processes' last operation never completes.
    for p in 0..shape.processes {
        if rng.random_bool(0.3)
            && let Some(last) = ops.iter_mut().rev().find(|o| o.process == p)
        {
            last.complete = None;
            last.unknown = true;
            last.fails = false;
        }
    }

    // Apply effects in order; ties broken at random. Times are scaled so that an effect at
    // instant t falls after invokes at t and before completions at t.
    let mut order: Vec<(u64, u64, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.effect.map(|t| (t, rng.random::<u64>(), i)))
        .collect();
    order.sort_unstable();
    let mut registers = vec![(String::new(), 0i32, 0u64); shape.keys];
    let mut zxid = 0u64;
    for &(_, _, i) in &order {
        let op = &mut ops[i];
        let reg = &mut registers[op.key];
        let result = match op.kind {
            0 => OkResult::Read {
                value: reg.0.clone().into_bytes(),
                version: reg.1,
                mzxid: reg.2,
            },
            kind => {
                if kind >= 2 {
                    // Most conditional writes expect the version they find.
                    if rng.random_bool(0.6) {
                        op.expected = reg.1;
                    }
                    if op.expected != reg.1 {
                        op.outcome = Some(OpOutcome::Fail {
                            error: "BadVersion".to_string(),
                        });
                        continue;
                    }
                }
                zxid += 1;
                *reg = (op.value.clone(), reg.1 + 1, zxid);
                OkResult::Written {
                    version: reg.1,
                    zxid,
                }
            }
        };
        op.outcome = Some(OpOutcome::Ok { result, zxid });
    }

    let mut timed: Vec<(u64, u64, Entry)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let key = format!("k{}", op.key);
        let value = op.value.clone().into_bytes();
        let request = match op.kind {
            0 => Op::Read { key, sync: op.sync },
            1 => Op::Write { key, value },
            2 => Op::Cas {
                key,
                expected_version: op.expected,
                value,
            },
            _ => Op::MultiCas {
                key,
                expected_version: op.expected,
                value,
            },
        };
        let entry = |kind| Entry {
            time_ns: 0,
            process: op.process,
            session: u64::from(op.process) + 1,
            kind,
        };
        let op_id = i as u64 + 1;
        let invoke = EntryKind::Invoke { op_id, op: request };
        timed.push((op.invoke * 3, rng.random(), entry(invoke)));
        let Some(complete) = op.complete else {
            continue;
        };
        let outcome = if op.unknown {
            OpOutcome::Unknown {
                error: "ConnectionLoss".to_string(),
            }
        } else if op.fails {
            OpOutcome::Fail {
                error: "ConnectionLoss".to_string(),
            }
        } else {
            op.outcome.clone().expect("a known outcome took effect")
        };
        let kind = EntryKind::Complete { op_id, outcome };
        timed.push((complete * 3 + 2, rng.random(), entry(kind)));
    }
    timed.sort_unstable_by_key(|(t, tie, _)| (*t, *tie));
    let entries = timed
        .into_iter()
        .map(|(t, _, mut e)| {
            e.time_ns = t;
            e
        })
        .collect();
    let finals = if shape.finals {
        let values: BTreeMap<String, (Vec<u8>, i32)> = registers
            .iter()
            .enumerate()
            .map(|(k, (v, ver, _))| (format!("k{k}"), (v.clone().into_bytes(), *ver)))
            .collect();
        (1..=3)
            .map(|id| ServerFinal {
                id,
                digest: 1,
                zxid,
                values: values.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    (History { entries }, finals)
}

/// Indices of the entries completing synced reads with `Ok`.
fn synced_reads(h: &History) -> Vec<usize> {
    let synced: std::collections::BTreeSet<u64> = h
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Invoke {
                op_id,
                op: Op::Read { sync: true, .. },
            } => Some(*op_id),
            _ => None,
        })
        .collect();
    h.entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            matches!(&e.kind, EntryKind::Complete { op_id, outcome: OpOutcome::Ok { .. } }
                if synced.contains(op_id))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The synced reads that returned the initial data or an acknowledged write's: corrupting
/// one changes nothing else in the problem (no unknown write stops or starts being read), so
/// it must be the operation the failure points at.
fn reads_of_acknowledged_data(h: &History) -> Vec<usize> {
    let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut acknowledged: std::collections::BTreeSet<Vec<u8>> = [Vec::new()].into();
    for e in &h.entries {
        match &e.kind {
            EntryKind::Invoke {
                op_id,
                op: Op::Write { value, .. } | Op::Cas { value, .. } | Op::MultiCas { value, .. },
            } => {
                written.insert(*op_id, value.clone());
            }
            EntryKind::Complete {
                op_id,
                outcome:
                    OpOutcome::Ok {
                        result: OkResult::Written { .. },
                        ..
                    },
            } => acknowledged.extend(written.get(op_id).cloned()),
            _ => {}
        }
    }
    let mut reads = synced_reads(h);
    reads.retain(|&i| {
        let mut e = h.entries[i].clone();
        read_result(&mut e).is_some_and(|(value, _)| acknowledged.contains(value))
    });
    reads
}

fn read_result(e: &mut Entry) -> Option<(&mut Vec<u8>, &mut i32)> {
    match &mut e.kind {
        EntryKind::Complete {
            outcome:
                OpOutcome::Ok {
                    result: OkResult::Read { value, version, .. },
                    ..
                },
            ..
        } => Some((value, version)),
        _ => None,
    }
}

fn small_shape(rng: &mut ChaCha8Rng) -> Shape {
    Shape {
        processes: rng.random_range(1..=4),
        ops: rng.random_range(1..=8),
        keys: rng.random_range(1..=2),
        unknown: 0.25,
        fail: 0.1,
        finals: rng.random_bool(0.5),
    }
}

fn show(h: &History, finals: &[ServerFinal]) -> String {
    let finals: Vec<_> = finals.first().map(|f| &f.values).into_iter().collect();
    format!("{}finals: {finals:?}", History::render(&h.entries))
}

#[test]
fn simulated_histories_pass() {
    for seed in 0..1000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Shape {
            processes: rng.random_range(1..=8),
            ops: rng.random_range(1..=400),
            keys: rng.random_range(1..=3),
            unknown: rng.random_range(0.0..0.3),
            fail: 0.05,
            finals: rng.random_bool(0.7),
        };
        let (h, finals) = simulate(&mut rng, shape);
        let report = check(&h, &finals);
        assert!(
            report.passed(),
            "seed {seed}: {:?}\n{}",
            report.verdict,
            show(&h, &finals)
        );
    }
}

#[test]
fn simulated_histories_with_an_impossible_read_fail() {
    let mut failed = 0;
    for seed in 0..1000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Shape {
            processes: rng.random_range(1..=8),
            ops: rng.random_range(1..=400),
            keys: rng.random_range(1..=3),
            unknown: rng.random_range(0.0..0.3),
            fail: 0.05,
            finals: rng.random_bool(0.5),
        };
        let (mut h, finals) = simulate(&mut rng, shape);
        let reads = reads_of_acknowledged_data(&h);
        if reads.is_empty() {
            continue;
        }
        let victim = reads[rng.random_range(0..reads.len())];
        let (value, version) = read_result(&mut h.entries[victim]).expect("an Ok read");
        if rng.random_bool(0.5) {
            *version += 1000;
        } else {
            *value = b"never written".to_vec();
        }
        let report = check(&h, &finals);
        assert!(
            !report.passed(),
            "seed {seed}: corrupted entry {victim} passed\n{}",
            show(&h, &finals)
        );
        let Verdict::Fail { reason, slice } = &report.verdict else {
            unreachable!("checked above")
        };
        assert!(reason.contains("not linearizable"), "seed {seed}: {reason}");
        assert!(slice.len() <= crate::MAX_SLICE);
        assert!(
            slice.contains(&h.entries[victim]),
            "seed {seed}: the slice misses the corrupted read\n{}",
            History::render(slice)
        );
        failed += 1;
    }
    assert!(failed > 900, "only {failed} corrupted histories");
}

#[test]
fn agrees_with_brute_force_on_small_simulated_and_corrupted_histories() {
    let (mut passes, mut fails) = (0, 0);
    for seed in 0..20_000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = small_shape(&mut rng);
        let (mut h, mut finals) = simulate(&mut rng, shape);
        assert!(brute::linearizable(&h, &finals), "seed {seed}: brute force");
        // Swap one read's result, or the final value, for another plausible one.
        let reads = synced_reads(&h);
        let written: Vec<Vec<u8>> = (0..shape.ops)
            .map(|n| format!("v{n}").into_bytes())
            .collect();
        let pick = |rng: &mut ChaCha8Rng| {
            if rng.random_bool(0.2) {
                Vec::new()
            } else {
                written[rng.random_range(0..written.len())].clone()
            }
        };
        if !reads.is_empty() && rng.random_bool(0.7) {
            let victim = reads[rng.random_range(0..reads.len())];
            let (value, version) = read_result(&mut h.entries[victim]).expect("an Ok read");
            *value = pick(&mut rng);
            *version = rng.random_range(0..4);
        } else if !finals.is_empty() {
            let (data, version) = (pick(&mut rng), rng.random_range(0..4));
            for f in &mut finals {
                f.values.insert("k0".to_string(), (data.clone(), version));
            }
        }
        let expected = brute::linearizable(&h, &finals);
        let report = check(&h, &finals);
        assert_eq!(
            report.passed(),
            expected,
            "seed {seed}: checker {:?}, brute force {expected}\n{}",
            report.verdict,
            show(&h, &finals)
        );
        if expected {
            passes += 1;
        } else {
            fails += 1;
        }
    }
    assert!(passes > 2000 && fails > 2000, "{passes} pass, {fails} fail");
}

/// Arbitrary small histories: random intervals and random results.
fn arbitrary(rng: &mut ChaCha8Rng) -> (History, Vec<ServerFinal>) {
    let processes = rng.random_range(1..=4u32);
    let n = rng.random_range(1..=8usize);
    let mut clock = vec![0u64; processes as usize];
    let mut timed: Vec<(u64, u64, Entry)> = Vec::new();
    let value = |rng: &mut ChaCha8Rng| match rng.random_range(0..4) {
        0 => Vec::new(),
        _ => format!("v{}", rng.random_range(0..n)).into_bytes(),
    };
    for i in 0..n {
        let process = rng.random_range(0..processes);
        let invoke = clock[process as usize] + rng.random_range(1..4);
        let complete = invoke + rng.random_range(0..6);
        clock[process as usize] = complete;
        let key = "k0".to_string();
        let expected_version = rng.random_range(0..3);
        let written = format!("v{i}").into_bytes();
        let (op, outcome) = match rng.random_range(0..4) {
            0 => {
                let result = OkResult::Read {
                    value: value(rng),
                    version: rng.random_range(0..4),
                    mzxid: 0,
                };
                let op = Op::Read { key, sync: true };
                (op, OpOutcome::Ok { result, zxid: 0 })
            }
            kind => {
                let op = match kind {
                    1 => Op::Write {
                        key,
                        value: written,
                    },
                    2 => Op::Cas {
                        key,
                        expected_version,
                        value: written,
                    },
                    _ => Op::MultiCas {
                        key,
                        expected_version,
                        value: written,
                    },
                };
                let outcome = match rng.random_range(0..5) {
                    0 => OpOutcome::Unknown {
                        error: "Timeout".to_string(),
                    },
                    1 if kind != 1 => OpOutcome::Fail {
                        error: "BadVersion".to_string(),
                    },
                    1 => OpOutcome::Fail {
                        error: "ConnectionLoss".to_string(),
                    },
                    _ => OpOutcome::Ok {
                        result: OkResult::Written {
                            version: rng.random_range(1..4),
                            zxid: 0,
                        },
                        zxid: 0,
                    },
                };
                (op, outcome)
            }
        };
        let entry = |kind| Entry {
            time_ns: 0,
            process,
            session: 1,
            kind,
        };
        let op_id = i as u64 + 1;
        timed.push((
            invoke * 2,
            rng.random(),
            entry(EntryKind::Invoke { op_id, op }),
        ));
        let kind = EntryKind::Complete { op_id, outcome };
        timed.push((complete * 2 + 1, rng.random(), entry(kind)));
    }
    // Some processes' last operation never completes.
    for p in 0..processes {
        let last = timed.iter().rposition(|(_, _, e)| e.process == p);
        if let Some(last) = last.filter(|_| rng.random_bool(0.3)) {
            timed.remove(last);
        }
    }
    timed.sort_unstable_by_key(|(t, tie, _)| (*t, *tie));
    let entries = timed.into_iter().map(|(_, _, e)| e).collect();
    let finals = if rng.random_bool(0.5) {
        let (data, version) = (value(rng), rng.random_range(0..4));
        let mut finals = crate::testkit::finals(2, &[]);
        for f in &mut finals {
            f.values.insert("k0".to_string(), (data.clone(), version));
        }
        finals
    } else {
        Vec::new()
    };
    (History { entries }, finals)
}

#[test]
fn agrees_with_brute_force_on_small_arbitrary_histories() {
    let (mut passes, mut fails) = (0, 0);
    for seed in 0..20_000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (h, finals) = arbitrary(&mut rng);
        let expected = brute::linearizable(&h, &finals);
        let report = check(&h, &finals);
        assert_eq!(
            report.passed(),
            expected,
            "seed {seed}: checker {:?}, brute force {expected}\n{}",
            report.verdict,
            show(&h, &finals)
        );
        if expected {
            passes += 1;
        } else {
            fails += 1;
        }
    }
    assert!(
        passes > 1000 && fails > 10_000,
        "{passes} pass, {fails} fail"
    );
}
