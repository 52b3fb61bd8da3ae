//! Pairs each `Invoke` with its `Complete`, and finds what makes a history malformed.
//!
//! Every checker works on [`Paired`]: the operations in invocation order, each with the
//! entries that bound it. A missing `Complete` (the run ended first) is an unknown outcome.

use crate::Report;
use crate::fasthash::FastMap;
use crate::history::{EntryKind, History, OkResult, Op, Outcome, ProcessId};

/// One operation: its invocation and, if recorded, its completion.
#[derive(Debug, Clone)]
pub(crate) struct Operation<'h> {
    pub(crate) op_id: u64,
    pub(crate) process: ProcessId,
    /// The session of the `Invoke` entry.
    pub(crate) session: u64,
    pub(crate) op: &'h Op,
    /// Index of the `Invoke` entry.
    pub(crate) invoke: usize,
    /// Index of the `Complete` entry; `complete > invoke`.
    pub(crate) complete: Option<usize>,
    pub(crate) outcome: Option<&'h Outcome>,
}

impl<'h> Operation<'h> {
    /// The result and reply zxid of a successful operation.
    pub(crate) fn ok(&self) -> Option<(&'h OkResult, u64)> {
        match self.outcome {
            Some(Outcome::Ok { result, zxid }) => Some((result, *zxid)),
            _ => None,
        }
    }

    /// Whether it may or may not have taken effect (`Unknown`, or never completed).
    pub(crate) fn is_unknown(&self) -> bool {
        matches!(self.outcome, None | Some(Outcome::Unknown { .. }))
    }

    /// The entries that bound it: the `Invoke`, then the `Complete` if any.
    pub(crate) fn entries(&self) -> impl Iterator<Item = usize> + use<> {
        std::iter::once(self.invoke).chain(self.complete)
    }
}

/// Why one entry makes the history malformed.
#[derive(Debug, Clone)]
pub(crate) struct Anomaly {
    /// The offending entry.
    pub(crate) entry: usize,
    /// Entries that give it context (e.g. the first use of a reused op id).
    pub(crate) related: Option<usize>,
    pub(crate) what: String,
}

/// A history with its operations paired.
pub(crate) struct Paired<'h> {
    pub(crate) history: &'h History,
    /// In invocation order.
    pub(crate) ops: Vec<Operation<'h>>,
    pub(crate) anomalies: Vec<Anomaly>,
}

impl Paired<'_> {
    /// The failing report every checker gives for a malformed history, if it is one.
    pub(crate) fn malformed(&self, checker: &str) -> Option<Report> {
        let first = self.anomalies.first()?;
        let reason = format!(
            "malformed history: {} problem(s); first at entry {}: {}",
            self.anomalies.len(),
            first.entry,
            first.what
        );
        let indices = self
            .anomalies
            .iter()
            .flat_map(|a| std::iter::once(a.entry).chain(a.related));
        Some(Report::fail(checker, 0, reason, self.history, indices))
    }
}

/// Whether `result` is what a successful `op` returns.
fn result_fits(op: &Op, result: &OkResult) -> bool {
    matches!(
        (op, result),
        (Op::Read { .. }, OkResult::Read { .. })
            | (
                Op::Write { .. } | Op::Cas { .. } | Op::MultiCas { .. },
                OkResult::Written { .. }
            )
            | (Op::CreateEphemeral { .. }, OkResult::Created { .. })
            | (Op::LockAcquire { .. }, OkResult::Locked { .. })
            | (Op::LockRelease { .. }, OkResult::Released)
            | (Op::RecipeLock { .. }, OkResult::Locked { .. })
            | (
                Op::RecipeUnlock { .. } | Op::Resign { .. } | Op::QueueRelease { .. },
                OkResult::Released
            )
            | (Op::FencedWrite { .. }, OkResult::Written { .. })
            | (Op::Campaign { .. }, OkResult::Leading { .. })
            | (Op::QueuePut { .. }, OkResult::Put { .. })
            | (
                Op::QueueTake { .. },
                OkResult::Taken { .. } | OkResult::Empty
            )
            | (Op::QueueAck { .. }, OkResult::Acked)
            | (Op::TxnBegin { .. }, OkResult::Begun)
            | (Op::TxnVote { .. }, OkResult::Voted)
            | (
                Op::TxnDecide { .. } | Op::TxnLearn { .. },
                OkResult::Decided { .. }
            )
    )
}

/// Pairs the operations of `history` and lists its anomalies.
pub(crate) fn pair(history: &History) -> Paired<'_> {
    let mut ops: Vec<Operation<'_>> = Vec::new();
    let mut anomalies = Vec::new();
    let mut by_id: FastMap<u64, usize> = FastMap::default();
    let mut in_flight: FastMap<ProcessId, usize> = FastMap::default();
    let mut last_time = 0;
    for (i, entry) in history.entries.iter().enumerate() {
        if entry.time_ns < last_time {
            anomalies.push(Anomaly {
                entry: i,
                related: i.checked_sub(1),
                what: "time goes backwards".to_string(),
            });
        }
        last_time = entry.time_ns;
        match &entry.kind {
            EntryKind::Invoke { op_id, op } => {
                if let Some(&first) = by_id.get(op_id) {
                    anomalies.push(Anomaly {
                        entry: i,
                        related: Some(ops[first].invoke),
                        what: format!("op id #{op_id} invoked twice"),
                    });
                    continue;
                }
                if let Some(&busy) = in_flight.get(&entry.process) {
                    anomalies.push(Anomaly {
                        entry: i,
                        related: Some(ops[busy].invoke),
                        what: format!(
                            "process {} invoked #{op_id} while #{} was in flight",
                            entry.process, ops[busy].op_id
                        ),
                    });
                }
                by_id.insert(*op_id, ops.len());
                in_flight.insert(entry.process, ops.len());
                ops.push(Operation {
                    op_id: *op_id,
                    process: entry.process,
                    session: entry.session,
                    op,
                    invoke: i,
                    complete: None,
                    outcome: None,
                });
            }
            EntryKind::Complete { op_id, outcome } => {
                let Some(&k) = by_id.get(op_id) else {
                    anomalies.push(Anomaly {
                        entry: i,
                        related: None,
                        what: format!("#{op_id} completed but never invoked"),
                    });
                    continue;
                };
                let op = &mut ops[k];
                let problem = if let Some(earlier) = op.complete {
                    Some((earlier, format!("#{op_id} completed twice")))
                } else if op.process != entry.process {
                    Some((
                        op.invoke,
                        format!(
                            "#{op_id} invoked by process {} but completed by process {}",
                            op.process, entry.process
                        ),
                    ))
                } else {
                    match outcome {
                        Outcome::Ok { result, .. } if !result_fits(op.op, result) => {
                            Some((op.invoke, format!("#{op_id} ({}) returned {result}", op.op)))
                        }
                        _ => None,
                    }
                };
                if let Some((related, what)) = problem {
                    anomalies.push(Anomaly {
                        entry: i,
                        related: Some(related),
                        what,
                    });
                    continue;
                }
                op.complete = Some(i);
                op.outcome = Some(outcome);
                if in_flight.get(&entry.process) == Some(&k) {
                    in_flight.remove(&entry.process);
                }
            }
            EntryKind::Notice(_) => {}
        }
    }
    Paired {
        history,
        ops,
        anomalies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Builder;

    #[test]
    fn well_formed_history_pairs_every_operation() {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        let r = b.invoke(2, Builder::read("k", true));
        b.written(1, w, 1, 5);
        b.unknown(2, r);
        b.invoke(1, Builder::read("k", false));
        let h = b.finish();
        let paired = pair(&h);
        assert!(paired.anomalies.is_empty(), "{:?}", paired.anomalies);
        assert_eq!(paired.ops.len(), 3);
        assert_eq!(paired.ops[0].complete, Some(2));
        assert!(paired.ops[1].is_unknown());
        assert!(paired.ops[2].is_unknown() && paired.ops[2].complete.is_none());
    }

    #[test]
    fn complete_without_invoke_and_reused_id_are_anomalies() {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.written(1, w, 1, 5);
        b.invoke_with_id(2, w, Builder::read("k", true));
        b.written(3, 99, 2, 6);
        let h = b.finish();
        let paired = pair(&h);
        assert_eq!(paired.anomalies.len(), 2, "{:?}", paired.anomalies);
        let report = paired.malformed("x").unwrap();
        assert!(!report.passed());
    }

    #[test]
    fn wrong_result_kind_and_overlap_and_time_going_back_are_anomalies() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", true));
        b.invoke(1, Builder::read("k", true));
        b.written(1, r, 1, 5);
        let mut h = b.finish();
        h.entries[0].time_ns = u64::MAX;
        let paired = pair(&h);
        let whats: Vec<&str> = paired.anomalies.iter().map(|a| a.what.as_str()).collect();
        assert_eq!(whats.len(), 3, "{whats:?}");
        assert!(whats.iter().any(|w| w.contains("time goes backwards")));
        assert!(whats.iter().any(|w| w.contains("in flight")));
        assert!(whats.iter().any(|w| w.contains("returned Written")));
    }
}
