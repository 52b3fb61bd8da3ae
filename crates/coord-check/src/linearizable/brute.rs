//! The brute-force reference: is there an order of the operations of each key, respecting
//! real time, and a choice of unknown writes that took effect, explaining every result?
//! Deliberately naive and independent of the checker: it tries every subset of the unknown
//! writes and every order, so it only serves histories of a few operations.

use super::agreed_final;
use crate::ServerFinal;
use crate::history::{EntryKind, History, OkResult, Op, Outcome as OpOutcome};
use std::collections::BTreeMap;

enum Effect {
    Read(Vec<u8>, i32),
    Set {
        value: Vec<u8>,
        expected: Option<i32>,
        version: Option<i32>,
    },
    Refuse(i32),
}

struct BOp {
    call: usize,
    /// `None`: never returned (unknown), so it may take effect any time after its call.
    ret: Option<usize>,
    effect: Effect,
    optional: bool,
}

pub(super) fn linearizable(h: &History, finals: &[ServerFinal]) -> bool {
    let mut keys: BTreeMap<String, Vec<BOp>> = BTreeMap::new();
    let end = h.entries.len();
    for (i, e) in h.entries.iter().enumerate() {
        let EntryKind::Invoke { op_id, op } = &e.kind else {
            continue;
        };
        // Every key with operations gets the final read, as in the checker.
        let Some(key) = op.key() else {
            continue;
        };
        let key_ops = keys.entry(key.to_string()).or_default();
        let completion = h.entries[i..]
            .iter()
            .enumerate()
            .find_map(|(j, c)| match &c.kind {
                EntryKind::Complete { op_id: id, outcome } if id == op_id => Some((i + j, outcome)),
                _ => None,
            });
        let ret = completion.map(|(j, _)| j);
        let outcome = completion.map(|(_, o)| o);
        let bop = match (op, outcome) {
            (Op::Read { sync: true, .. }, Some(OpOutcome::Ok { result, .. })) => {
                let OkResult::Read { value, version, .. } = result else {
                    continue;
                };
                BOp {
                    call: i,
                    ret,
                    effect: Effect::Read(value.clone(), *version),
                    optional: false,
                }
            }
            (Op::Read { .. }, _) => continue,
            (Op::Write { value, .. }, o)
            | (Op::Cas { value, .. }, o)
            | (Op::MultiCas { value, .. }, o) => {
                let expected = match op {
                    Op::Cas {
                        expected_version, ..
                    }
                    | Op::MultiCas {
                        expected_version, ..
                    } => Some(*expected_version),
                    _ => None,
                };
                match o {
                    Some(OpOutcome::Ok {
                        result: OkResult::Written { version, .. },
                        ..
                    }) => BOp {
                        call: i,
                        ret,
                        effect: Effect::Set {
                            value: value.clone(),
                            expected,
                            version: Some(*version),
                        },
                        optional: false,
                    },
                    Some(OpOutcome::Fail { error }) => match expected {
                        Some(e) if error == "BadVersion" => BOp {
                            call: i,
                            ret,
                            effect: Effect::Refuse(e),
                            optional: false,
                        },
                        _ => continue,
                    },
                    Some(OpOutcome::Ok { .. }) => continue,
                    Some(OpOutcome::Unknown { .. }) | None => BOp {
                        call: i,
                        ret: None,
                        effect: Effect::Set {
                            value: value.clone(),
                            expected,
                            version: None,
                        },
                        optional: true,
                    },
                }
            }
            _ => continue,
        };
        key_ops.push(bop);
    }
    for (key, ops) in &mut keys {
        if let Some((v, ver)) = agreed_final(finals, key) {
            ops.push(BOp {
                call: end,
                ret: Some(end + 1),
                effect: Effect::Read(v.to_vec(), ver),
                optional: false,
            });
        }
    }
    keys.values().all(|ops| key_linearizable(ops))
}

fn key_linearizable(ops: &[BOp]) -> bool {
    let optional: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].optional).collect();
    (0u32..1 << optional.len()).any(|mask| {
        let included: Vec<bool> = (0..ops.len())
            .map(|i| match optional.iter().position(|&o| o == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            })
            .collect();
        let mut placed = vec![false; ops.len()];
        orders(ops, &included, &mut placed, (Vec::new(), 0))
    })
}

/// Tries every next operation whose real-time predecessors are all placed.
fn orders(ops: &[BOp], included: &[bool], placed: &mut [bool], state: (Vec<u8>, i32)) -> bool {
    let remaining: Vec<usize> = (0..ops.len())
        .filter(|&i| included[i] && !placed[i])
        .collect();
    if remaining.is_empty() {
        return true;
    }
    for &i in &remaining {
        let blocked = remaining
            .iter()
            .any(|&j| j != i && ops[j].ret.is_some_and(|r| r < ops[i].call));
        if blocked {
            continue;
        }
        let next = match &ops[i].effect {
            Effect::Read(v, ver) => (state.0 == *v && state.1 == *ver).then(|| state.clone()),
            Effect::Refuse(e) => (state.1 != *e).then(|| state.clone()),
            Effect::Set {
                value,
                expected,
                version,
            } => {
                let matches = expected.is_none_or(|e| e == state.1);
                match version {
                    Some(v) => (matches && *v == state.1 + 1).then(|| (value.clone(), *v)),
                    // An unknown conditional write whose version differs is a no-op.
                    None if matches => Some((value.clone(), state.1 + 1)),
                    None => Some(state.clone()),
                }
            }
        };
        if let Some(next) = next {
            placed[i] = true;
            let ok = orders(ops, included, placed, next);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}
