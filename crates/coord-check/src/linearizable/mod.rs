//! Linearizability of the registers, one key at a time (a history is linearizable iff each
//! key's is: P-compositionality).
//!
//! The model is a register holding (data, version), starting at (empty, 0):
//!
//! | operation and outcome             | in the model                                          |
//! |-----------------------------------|-------------------------------------------------------|
//! | `Write` Ok `Written{version}`     | set data, version + 1, which must equal `version`     |
//! | `Cas`/`MultiCas` Ok               | same, and the version before must be the expected one |
//! | `Cas`/`MultiCas` Fail BadVersion  | the version differed from the expected one            |
//! | `Read{sync:true}` Ok              | the register held exactly (data, version)             |
//! | any write Unknown / no `Complete` | may take effect once, any time after its call, or not |
//! | other outcomes, `Read{sync:false}`| not part of the model                                 |
//!
//! When every server reports the same final (data, version) for a key, it is one more synced
//! read after everything, so an acknowledged write that was lost fails here. Written data is
//! unique across the run (the runner's contract), and a history breaking that is malformed.
//!
//! An unknown write whose data some synced read returned took effect, before the first such
//! read (after its own call) returned, and made the version that read saw: data is unique,
//! so the register held it from that write until the next. So its return is clamped to that
//! read's and its version is known, like an acknowledged write's. The search is in
//! `search.rs` (Lowe's just-in-time linearization with Porcupine's cache).

#[cfg(test)]
mod brute;
mod search;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_random;

use crate::fasthash::FastMap;
use crate::history::{Data, History, OkResult, Op, Outcome as OpOutcome};
use crate::ops::{Paired, pair};
use crate::{Report, ServerFinal};
use search::{Found, Kind, Outcome, Problem, RegOp, State, UNOBSERVED};
use std::collections::BTreeMap;

/// The checker's name in reports.
pub const NAME: &str = "linearizable";

/// How long the search may run on one key before it gives up as inconclusive: `base_steps +
/// steps_per_op × operations` steps (a step looks at one candidate or one choice).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Steps every key gets.
    pub base_steps: u64,
    /// Steps added per operation of the key.
    pub steps_per_op: u64,
}

impl Default for Budget {
    /// 5 M steps plus 200 per operation. A linearizable history takes a few steps per
    /// operation; the rest is for backtracking over one that is not. A step costs some tens
    /// of nanoseconds, so a key with 100 k operations gives up after a second or so.
    fn default() -> Budget {
        Budget {
            base_steps: 5_000_000,
            steps_per_op: 200,
        }
    }
}

impl Budget {
    fn for_ops(self, ops: usize) -> u64 {
        let per_op = self.steps_per_op.saturating_mul(ops as u64);
        self.base_steps.saturating_add(per_op)
    }
}

/// Checks every register's history with the default [`Budget`].
pub fn check(history: &History, finals: &[ServerFinal]) -> Report {
    check_with_budget(history, finals, Budget::default())
}

/// Checks every register's history, giving each key's search `budget`.
pub fn check_with_budget(history: &History, finals: &[ServerFinal], budget: Budget) -> Report {
    check_paired(&pair(history), finals, budget)
}

/// Where an operation of the search comes from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// `Paired::ops[i]`.
    Op(usize),
    /// The final value every server agrees on.
    Final,
}

/// One key's operations, ready for the search.
struct KeyCheck<'a> {
    key: &'a str,
    problem: Problem,
    origins: Vec<Origin>,
    /// Interned data: `values[id]`; id 0 is the initial empty data.
    values: Vec<&'a [u8]>,
    /// Operations checked, counting unknown writes nobody read.
    checked: u64,
}

/// The position of entry `index` in the search's event order; the even position just before
/// it is free for a clamped return.
fn position(index: usize) -> u64 {
    2 * index as u64 + 1
}

/// The final (data, version) of `key` if every server reports the same one.
fn agreed_final<'a>(finals: &'a [ServerFinal], key: &str) -> Option<(&'a [u8], i32)> {
    let (first, rest) = finals.split_first()?;
    let (data, version) = first.values.get(key)?;
    let same = |f: &ServerFinal| {
        f.values
            .get(key)
            .is_some_and(|(d, v)| d == data && v == version)
    };
    rest.iter().all(same).then_some((data.as_slice(), *version))
}

/// The data and expected version of a register write.
fn write_parts(op: &Op) -> Option<(&[u8], Option<i32>)> {
    match op {
        Op::Write { value, .. } => Some((value, None)),
        Op::Cas {
            value,
            expected_version,
            ..
        }
        | Op::MultiCas {
            value,
            expected_version,
            ..
        } => Some((value, Some(*expected_version))),
        _ => None,
    }
}

/// Two writes of one datum (or a write of the initial empty data): the offending operation
/// and the earlier one, if any.
struct Duplicate {
    op: usize,
    earlier: Option<usize>,
}

fn build<'a>(
    paired: &Paired<'a>,
    key: &'a str,
    indices: &[usize],
    final_value: Option<(&'a [u8], i32)>,
) -> Result<KeyCheck<'a>, Duplicate> {
    let mut interned: FastMap<&'a [u8], u32> = FastMap::from_iter([(&b""[..], 0)]);
    let mut values: Vec<&'a [u8]> = vec![b""];
    let mut intern = |data: &'a [u8]| -> u32 {
        *interned.entry(data).or_insert_with(|| {
            values.push(data);
            values.len() as u32 - 1
        })
    };
    // The operation writing each datum; the initial empty data has none.
    let mut writer: FastMap<u32, usize> = FastMap::default();

    let mut problem = Problem::default();
    let mut origins = Vec::new();
    let mut unknown: Vec<(usize, u32, Option<i32>)> = Vec::new();
    for &i in indices {
        let op = &paired.ops[i];
        let call = position(op.invoke);
        let ret = op.complete.map(position);
        let kind = match (op.op, op.outcome) {
            (Op::Read { sync: true, .. }, Some(OpOutcome::Ok { result, .. })) => {
                let OkResult::Read { value, version, .. } = result else {
                    continue;
                };
                let value = intern(value);
                Kind::Observe(State {
                    value,
                    version: *version,
                })
            }
            (Op::Read { .. }, _) => continue,
            (write, outcome) => {
                let Some((data, expected)) = write_parts(write) else {
                    continue;
                };
                let value = intern(data);
                if value == 0 {
                    return Err(Duplicate {
                        op: i,
                        earlier: None,
                    });
                }
                if let Some(&earlier) = writer.get(&value) {
                    let earlier = Some(earlier);
                    return Err(Duplicate { op: i, earlier });
                }
                writer.insert(value, i);
                match outcome {
                    Some(OpOutcome::Ok {
                        result: OkResult::Written { version, .. },
                        ..
                    }) => Kind::Set {
                        value,
                        expected,
                        new_version: *version,
                    },
                    Some(OpOutcome::Ok { .. }) => continue,
                    Some(OpOutcome::Fail { error }) => match expected {
                        Some(expected) if error == "BadVersion" => Kind::Refuse { expected },
                        _ => continue,
                    },
                    Some(OpOutcome::Unknown { .. }) | None => {
                        unknown.push((i, value, expected));
                        continue;
                    }
                }
            }
        };
        let Some(ret) = ret else { continue };
        problem.ops.push(RegOp { call, ret, kind });
        origins.push(Origin::Op(i));
    }

    let end = position(paired.history.entries.len());
    if let Some((data, version)) = final_value {
        let value = intern(data);
        problem.ops.push(RegOp {
            call: end,
            ret: end + 2,
            kind: Kind::Observe(State { value, version }),
        });
        origins.push(Origin::Final);
    }

    // The reads that saw each datum: (return, version), sorted.
    let mut seen_by: FastMap<u32, Vec<(u64, i32)>> = FastMap::default();
    for op in &problem.ops {
        if let Kind::Observe(state) = op.kind {
            let reads = seen_by.entry(state.value).or_default();
            reads.push((op.ret, state.version));
        }
    }
    for reads in seen_by.values_mut() {
        reads.sort_unstable();
    }
    let mut unobserved = 0;
    for &(i, value, expected) in &unknown {
        let call = position(paired.ops[i].invoke);
        let first_seen = seen_by.get(&value).and_then(|reads| {
            let k = reads.partition_point(|&(r, _)| r <= call);
            reads.get(k)
        });
        if let Some(&(ret, version)) = first_seen {
            // Data is unique, so the register held it from this write until the next one:
            // the read's version is the one this write made.
            let kind = Kind::Set {
                value,
                expected,
                new_version: version,
            };
            problem.ops.push(RegOp {
                call,
                ret: ret - 1,
                kind,
            });
            origins.push(Origin::Op(i));
        } else if let Some(expected) = expected {
            unobserved += 1;
            let earliest = problem.unobserved_cas.entry(expected).or_insert(call);
            *earliest = (*earliest).min(call);
        } else {
            unobserved += 1;
            problem.unobserved_writes.push(call);
        }
    }
    problem.unobserved_writes.sort_unstable();
    let from_history = origins
        .iter()
        .filter(|o| matches!(o, Origin::Op(_)))
        .count();
    Ok(KeyCheck {
        key,
        problem,
        origins,
        values,
        checked: (from_history + unobserved) as u64,
    })
}

impl KeyCheck<'_> {
    fn describe_state(&self, state: State) -> String {
        let data = match self.values.get(state.value as usize) {
            Some(data) if state.value != UNOBSERVED => Data(data).to_string(),
            _ => "the data of an unacknowledged write nobody read".to_string(),
        };
        format!("{data} at version {}", state.version)
    }

    fn describe_op(&self, paired: &Paired<'_>, op: usize) -> String {
        match self.origins[op] {
            Origin::Op(i) => {
                let op = &paired.ops[i];
                let outcome = match op.outcome {
                    Some(OpOutcome::Ok { result, .. }) => result.to_string(),
                    Some(OpOutcome::Fail { error }) => format!("fail {error}"),
                    Some(OpOutcome::Unknown { .. }) | None => "unknown".to_string(),
                };
                format!("#{} of p{} ({} -> {outcome})", op.op_id, op.process, op.op)
            }
            Origin::Final => match self.problem.ops[op].kind {
                Kind::Observe(state) => format!(
                    "the final value every server holds ({})",
                    self.describe_state(state)
                ),
                _ => "the final value every server holds".to_string(),
            },
        }
    }

    fn failure(&self, paired: &Paired<'_>, outcome: &Outcome) -> (String, Vec<usize>) {
        let f = &outcome.frontier;
        let total = self.problem.ops.len();
        let mut reason = match outcome.found {
            Found::BudgetExceeded => format!(
                "key {}: inconclusive: budget exceeded after {} steps; ",
                self.key, outcome.steps
            ),
            _ => format!("key {}: not linearizable: ", self.key),
        };
        reason.push_str(&format!(
            "the longest linearizable prefix holds {} of {total} operations and leaves {}",
            f.linearized,
            self.describe_state(f.state)
        ));
        if let Some(blocking) = f.blocking {
            let verb = match outcome.found {
                Found::BudgetExceeded => "is the next to return",
                _ => "cannot take effect before it returns",
            };
            reason.push_str(&format!("; {} {verb}", self.describe_op(paired, blocking)));
        }
        let ops = f
            .blocking
            .iter()
            .chain(&f.recent)
            .chain(&f.pending)
            .filter_map(|&op| match self.origins[op] {
                Origin::Op(i) => Some(i),
                Origin::Final => None,
            });
        let entries = ops.flat_map(|i| paired.ops[i].entries()).collect();
        (reason, entries)
    }
}

pub(crate) fn check_paired(paired: &Paired<'_>, finals: &[ServerFinal], budget: Budget) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        if let Some(key) = op.op.key() {
            by_key.entry(key).or_default().push(i);
        }
    }
    let mut checked = 0;
    let mut failures: Vec<(String, Vec<usize>)> = Vec::new();
    for (key, indices) in &by_key {
        let final_value = agreed_final(finals, key);
        let key_check = match build(paired, key, indices, final_value) {
            Ok(k) => k,
            Err(dup) => {
                let op = &paired.ops[dup.op];
                let what = match write_parts(op.op) {
                    Some((data, _)) if !data.is_empty() => format!("writes {} again", Data(data)),
                    _ => "writes the initial empty data".to_string(),
                };
                let reason = format!(
                    "malformed history: key {key}: #{} {what} (written data must be unique)",
                    op.op_id
                );
                let mut entries: Vec<usize> = op.entries().collect();
                if let Some(earlier) = dup.earlier {
                    entries.extend(paired.ops[earlier].entries());
                }
                failures.push((reason, entries));
                continue;
            }
        };
        checked += key_check.checked;
        let outcome = search::search(
            &key_check.problem,
            budget.for_ops(key_check.problem.ops.len()),
        );
        if outcome.found != Found::Linearizable {
            failures.push(key_check.failure(paired, &outcome));
        }
    }
    let Some((mut reason, entries)) = failures.first().cloned() else {
        return Report::pass(NAME, checked);
    };
    if failures.len() > 1 {
        reason.push_str(&format!(" ({} keys fail in all)", failures.len()));
    }
    Report::fail(NAME, checked, reason, paired.history, entries)
}
