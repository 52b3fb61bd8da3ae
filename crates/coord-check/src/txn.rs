//! Two-phase commit: `coord_recipes::{Coordinator, Participant}` under the nemesis. Every
//! process that learns a transaction's outcome learns the same one, and a transaction
//! commits only if every participant voted yes.
//!
//! Per transaction: `TxnBegin{participants}` by the coordinator, `TxnVote` by each
//! participant, and decisions (`TxnDecide` by the coordinator, `TxnLearn` by participants,
//! each Ok with the decision that holds). Violations:
//!
//! - two decisions of one transaction that differ (commit and abort);
//! - a commit of a transaction that no `TxnBegin` may have begun (none, or all `Fail`);
//! - a commit although a participant's no vote was applied (Ok);
//! - a commit although a listed participant has no yes vote that may have been applied
//!   (none invoked, or all `Fail`).

use crate::history::{History, OkResult, Op, Outcome};
use crate::ops::{Paired, pair};
use crate::{Report, Violation};
use std::collections::BTreeMap;

/// The checker's name in reports.
pub const NAME: &str = "2pc";

/// Checks every transaction's decisions against its votes.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

/// One transaction's operations (indices into `Paired::ops`).
#[derive(Default)]
struct Txn {
    begins: Vec<usize>,
    votes: Vec<usize>,
    /// Ok decisions: (op, commit).
    decisions: Vec<(usize, bool)>,
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let ops = &paired.ops;
    let mut txns: BTreeMap<&str, Txn> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op.op {
            Op::TxnBegin { txn, .. } => txns.entry(txn).or_default().begins.push(i),
            Op::TxnVote { txn, .. } => txns.entry(txn).or_default().votes.push(i),
            Op::TxnDecide { txn } | Op::TxnLearn { txn, .. } => {
                if let Some((OkResult::Decided { commit }, _)) = op.ok() {
                    txns.entry(txn).or_default().decisions.push((i, *commit));
                }
            }
            _ => {}
        }
    }
    let applied = |k: usize| !matches!(ops[k].outcome, Some(Outcome::Fail { .. }));
    let mut violations = Vec::new();
    let mut checked = 0u64;
    for (txn, t) in &txns {
        if t.decisions.is_empty() {
            continue;
        }
        checked += 1;
        let decisions: Vec<usize> = t
            .decisions
            .iter()
            .flat_map(|&(k, _)| ops[k].entries())
            .collect();
        let commit = t.decisions.iter().find(|(_, c)| *c);
        if let (Some(&(c, _)), Some(&(a, _))) = (commit, t.decisions.iter().find(|(_, c)| !*c)) {
            violations.push(Violation {
                what: format!(
                    "txn {txn}: p{} learned commit but p{} learned abort",
                    ops[c].process, ops[a].process
                ),
                entries: decisions.clone(),
            });
        }
        let Some(&(c, _)) = commit else {
            continue;
        };
        let with = |mut entries: Vec<usize>, more: &[usize]| {
            entries.extend(more.iter().flat_map(|&k| ops[k].entries()));
            entries
        };
        let begun: Vec<usize> = t.begins.iter().copied().filter(|&k| applied(k)).collect();
        let Some(&begin) = begun.first() else {
            violations.push(Violation {
                what: format!(
                    "txn {txn}: p{} learned commit but it never began",
                    ops[c].process
                ),
                entries: with(decisions.clone(), &t.begins),
            });
            continue;
        };
        let Op::TxnBegin { participants, .. } = ops[begin].op else {
            continue;
        };
        for v in &t.votes {
            if let Op::TxnVote {
                participant,
                yes: false,
                ..
            } = ops[*v].op
                && ops[*v].ok().is_some()
            {
                violations.push(Violation {
                    what: format!(
                        "txn {txn}: committed (p{} learned it) although {participant} voted no",
                        ops[c].process
                    ),
                    entries: with(decisions.clone(), &[*v]),
                });
            }
        }
        for p in participants {
            let yes = t.votes.iter().any(|&v| {
                matches!(ops[v].op, Op::TxnVote { participant, yes: true, .. } if participant == p)
                    && applied(v)
            });
            if !yes {
                let theirs: Vec<usize> = t
                    .votes
                    .iter()
                    .copied()
                    .filter(|&v| matches!(ops[v].op, Op::TxnVote { participant, .. } if participant == p))
                    .collect();
                violations.push(Violation {
                    what: format!(
                        "txn {txn}: committed (p{} learned it) without a yes vote of {p}",
                        ops[c].process
                    ),
                    entries: with(with(decisions.clone(), &[begin]), &theirs),
                });
            }
        }
    }
    Report::from_violations(NAME, checked, &violations, paired.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ProcessId;
    use crate::testkit::Builder;

    fn begin(b: &mut Builder, txn: &str) {
        let op = Op::TxnBegin {
            txn: txn.into(),
            participants: vec!["a".into(), "b".into()],
        };
        let k = b.invoke(1, op);
        b.ok(1, k, OkResult::Begun, 1);
    }

    fn vote(b: &mut Builder, p: ProcessId, txn: &str, yes: bool, applied: bool) {
        let participant = if p == 2 { "a" } else { "b" }.to_string();
        let op = Op::TxnVote {
            txn: txn.into(),
            participant,
            yes,
        };
        let k = b.invoke(p, op);
        if applied {
            b.ok(p, k, OkResult::Voted, 2);
        } else {
            b.fail(p, k, "NoNode");
        }
    }

    fn decided(b: &mut Builder, p: ProcessId, txn: &str, commit: bool) {
        let op = if p == 1 {
            Op::TxnDecide { txn: txn.into() }
        } else {
            Op::TxnLearn {
                txn: txn.into(),
                participant: "x".into(),
            }
        };
        let k = b.invoke(p, op);
        b.ok(p, k, OkResult::Decided { commit }, 3);
    }

    #[test]
    fn agreeing_decisions_pass() {
        let mut b = Builder::new();
        begin(&mut b, "t1");
        vote(&mut b, 2, "t1", true, true);
        vote(&mut b, 3, "t1", true, true);
        decided(&mut b, 1, "t1", true);
        decided(&mut b, 2, "t1", true);
        decided(&mut b, 3, "t1", true);
        begin(&mut b, "t2");
        vote(&mut b, 2, "t2", true, true);
        vote(&mut b, 3, "t2", false, true);
        decided(&mut b, 1, "t2", false);
        decided(&mut b, 2, "t2", false);
        // t3: b never voted; a participant aborted on its timeout.
        begin(&mut b, "t3");
        vote(&mut b, 2, "t3", true, true);
        decided(&mut b, 2, "t3", false);
        decided(&mut b, 1, "t3", false);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 3);
    }

    #[test]
    fn a_split_decision_fails() {
        let mut b = Builder::new();
        begin(&mut b, "t1");
        vote(&mut b, 2, "t1", true, true);
        vote(&mut b, 3, "t1", true, true);
        decided(&mut b, 1, "t1", true);
        decided(&mut b, 3, "t1", false);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("learned abort"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_commit_over_a_no_vote_fails() {
        let mut b = Builder::new();
        begin(&mut b, "t1");
        vote(&mut b, 2, "t1", true, true);
        vote(&mut b, 3, "t1", false, true);
        decided(&mut b, 1, "t1", true);
        let report = check(&b.finish());
        assert!(report.reason().contains("voted no"), "{}", report.reason());
    }

    #[test]
    fn a_commit_without_every_yes_fails() {
        let mut b = Builder::new();
        begin(&mut b, "t1");
        vote(&mut b, 2, "t1", true, true);
        vote(&mut b, 3, "t1", true, false);
        decided(&mut b, 2, "t1", true);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("without a yes vote of b"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_malformed_history_fails() {
        let mut b = Builder::new();
        let k = b.invoke(1, Op::TxnDecide { txn: "t".into() });
        b.ok(1, k, OkResult::Voted, 1);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("malformed history"),
            "{}",
            report.reason()
        );
    }
}
