//! Queues: `coord_recipes::LockingQueue` under the nemesis. Every item acknowledged as put
//! is consumed exactly once by the end of the run; no item is consumed twice, or consumed
//! without having been put.
//!
//! An item is *consumed* by a `QueueAck` (it deletes the item with its claim). Taking an
//! item only claims it: a consumer that dies or gives it back (`QueueRelease`) lets another
//! take it again, so an item may be taken many times and acked once. Items are unique
//! across the run. After the faults the runner drains the queue and records
//! `QueueDrained` once a listing finds it empty. Violations:
//!
//! - an item put twice (the runner promises unique items);
//! - an item taken or acked that no `QueuePut` may have put (none invoked, or all `Fail`);
//! - an item acked Ok twice;
//! - an item taken after an ack of it had completed Ok (it was deleted);
//! - two live claims of one item at once, or claim generations not growing (claims are
//!   holds of [`crate::holds`]: `QueueTake` Ok … `QueueAck`/`QueueRelease` invoke, a
//!   disconnect, a close, the session's end);
//! - a queue with items put Ok but no `QueueDrained` (nothing proves none was lost);
//! - after the drain, an item put Ok with no ack at all (Ok or unknown): lost.
//!
//! An item whose put is unknown may be consumed at most once; one whose ack is unknown and
//! that no later ack consumed was consumed by that ack.

use crate::fasthash::{FastMap, FastSet};
use crate::history::{EntryKind, History, Notice, OkResult, Op, Outcome};
use crate::holds::{self, Words};
use crate::ops::{Paired, pair};
use crate::{Report, Violation};
use std::collections::BTreeMap;

/// The checker's name in reports.
pub const NAME: &str = "queue";

const WORDS: Words = Words {
    what: "claim of item",
    fence: "claim",
    took: "claimed it",
    holding: "still held its claim",
};

/// Checks every queue's items.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

/// What happened to one item (indices into `Paired::ops`).
#[derive(Default)]
struct Item {
    puts: Vec<usize>,
    takes: Vec<usize>,
    acks: Vec<usize>,
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let mut items: BTreeMap<(&str, &str), Item> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        match (op.op, op.ok()) {
            (Op::QueuePut { queue, item }, _) => {
                items.entry((queue, item)).or_default().puts.push(i);
            }
            (Op::QueueTake { queue }, Some((OkResult::Taken { item, .. }, _))) => {
                items.entry((queue, item)).or_default().takes.push(i);
            }
            (Op::QueueAck { queue, item }, _) => {
                items.entry((queue, item)).or_default().acks.push(i);
            }
            _ => {}
        }
    }
    let mut drained: FastMap<&str, usize> = FastMap::default();
    for (i, e) in paired.history.entries.iter().enumerate() {
        if let EntryKind::Notice(Notice::QueueDrained { queue, .. }) = &e.kind {
            drained.entry(queue.as_str()).or_insert(i);
        }
    }

    let ops = &paired.ops;
    let entries_of =
        |list: &[usize]| -> Vec<usize> { list.iter().flat_map(|&k| ops[k].entries()).collect() };
    let mut violations = Vec::new();
    let mut undrained: FastSet<&str> = FastSet::default();
    let mut checked = 0u64;
    for (&(queue, item), it) in &items {
        let put_ok = it.puts.iter().any(|&k| ops[k].ok().is_some());
        if !it.puts.is_empty() {
            checked += 1;
        }
        if it.puts.len() > 1 {
            violations.push(Violation {
                what: format!("queue {queue}: item {item} was put twice (items must be unique)"),
                entries: entries_of(&it.puts),
            });
        }
        let acked_ok: Vec<usize> = it
            .acks
            .iter()
            .copied()
            .filter(|&k| ops[k].ok().is_some())
            .collect();
        let may_be_put = it
            .puts
            .iter()
            .any(|&k| !matches!(ops[k].outcome, Some(Outcome::Fail { .. })));
        if !may_be_put && (!it.takes.is_empty() || !acked_ok.is_empty()) {
            let mut entries = entries_of(&it.puts);
            entries.extend(entries_of(&it.takes));
            entries.extend(entries_of(&acked_ok));
            violations.push(Violation {
                what: format!("queue {queue}: item {item} was taken but never put"),
                entries,
            });
        }
        if acked_ok.len() > 1 {
            violations.push(Violation {
                what: format!(
                    "queue {queue}: item {item} was consumed {} times",
                    acked_ok.len()
                ),
                entries: entries_of(&acked_ok),
            });
        }
        if let Some(first_ack) = acked_ok.iter().filter_map(|&k| ops[k].complete).min()
            && let Some(&late) = it.takes.iter().find(|&&k| ops[k].invoke > first_ack)
        {
            let mut entries = entries_of(&acked_ok);
            entries.extend(ops[late].entries());
            violations.push(Violation {
                what: format!(
                    "queue {queue}: item {item} was taken again by p{} after it was consumed",
                    ops[late].process
                ),
                entries,
            });
        }
        if put_ok {
            if !drained.contains_key(queue) {
                undrained.insert(queue);
            } else if it
                .acks
                .iter()
                .all(|&k| matches!(ops[k].outcome, Some(Outcome::Fail { .. })))
            {
                let mut entries = entries_of(&it.puts);
                entries.extend(entries_of(&it.takes));
                entries.extend(entries_of(&it.acks));
                entries.extend(drained.get(queue).copied());
                violations.push(Violation {
                    what: format!(
                        "queue {queue}: item {item} was put (ok) but never consumed, and the \
                         queue was drained: lost"
                    ),
                    entries,
                });
            }
        }
    }
    let mut undrained: Vec<&str> = undrained.into_iter().collect();
    undrained.sort_unstable();
    for queue in undrained {
        violations.push(Violation {
            what: format!(
                "queue {queue}: items were put but the queue was never drained, so nothing \
                 proves that none was lost"
            ),
            entries: Vec::new(),
        });
    }

    let claims = holds::collect(
        paired,
        |op, result| match (op, result) {
            (Op::QueueTake { .. }, OkResult::Taken { item, claim, .. }) => {
                Some((item.as_str(), *claim))
            }
            _ => None,
        },
        |op| match op {
            Op::QueueAck { item, .. } | Op::QueueRelease { item, .. } => Some(item.as_str()),
            _ => None,
        },
    );
    for list in claims.values() {
        violations.extend(holds::exclusion(paired, list, &WORDS));
        violations.extend(holds::fences_grow(paired, list, &WORDS));
    }
    Report::from_violations(NAME, checked, &violations, paired.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Notice, ProcessId};
    use crate::testkit::Builder;

    fn put(b: &mut Builder, p: ProcessId, item: &str, ok: bool) {
        let op = Op::QueuePut {
            queue: "Q".into(),
            item: item.into(),
        };
        let k = b.invoke(p, op);
        if ok {
            let name = format!("item-{item}");
            b.ok(p, k, OkResult::Put { name }, 1);
        } else {
            b.unknown(p, k);
        }
    }

    fn take(b: &mut Builder, p: ProcessId, item: &str, claim: u64) {
        let k = b.invoke(p, Op::QueueTake { queue: "Q".into() });
        let result = OkResult::Taken {
            item: item.into(),
            name: format!("item-{item}"),
            claim,
        };
        b.ok(p, k, result, claim);
    }

    fn ack(b: &mut Builder, p: ProcessId, item: &str, ok: bool) {
        let op = Op::QueueAck {
            queue: "Q".into(),
            item: item.into(),
        };
        let k = b.invoke(p, op);
        if ok {
            b.ok(p, k, OkResult::Acked, 1);
        } else {
            b.unknown(p, k);
        }
    }

    fn drained(b: &mut Builder, p: ProcessId) {
        let queue = "Q".to_string();
        b.notice(p, Notice::QueueDrained { queue, zxid: 99 });
    }

    #[test]
    fn items_consumed_once_after_redelivery_pass() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        put(&mut b, 1, "b", true);
        put(&mut b, 1, "c", false);
        // p2 takes a and dies (its session ends): a is taken again by p3 and acked.
        take(&mut b, 2, "a", 10);
        let session = b.session(2);
        let reason = "expired".to_string();
        b.notice(2, Notice::SessionEnded { session, reason });
        take(&mut b, 3, "a", 12);
        ack(&mut b, 3, "a", true);
        // b's ack is unknown (and applied: nobody takes it again).
        take(&mut b, 3, "b", 14);
        ack(&mut b, 3, "b", false);
        // c's put was unknown and applied; consumed once.
        take(&mut b, 3, "c", 16);
        ack(&mut b, 3, "c", true);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 3);
    }

    #[test]
    fn an_item_consumed_twice_fails() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        take(&mut b, 2, "a", 10);
        ack(&mut b, 2, "a", true);
        take(&mut b, 3, "a", 12);
        ack(&mut b, 3, "a", true);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("consumed 2 times"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_lost_item_fails() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        put(&mut b, 1, "b", true);
        take(&mut b, 2, "a", 10);
        ack(&mut b, 2, "a", true);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(report.reason().contains("lost"), "{}", report.reason());
    }

    #[test]
    fn an_undrained_queue_fails() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("never drained"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn an_item_never_put_fails() {
        let mut b = Builder::new();
        take(&mut b, 2, "ghost", 10);
        ack(&mut b, 2, "ghost", true);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(report.reason().contains("never put"), "{}", report.reason());
    }

    #[test]
    fn two_live_claims_fail() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        take(&mut b, 2, "a", 10);
        take(&mut b, 3, "a", 12);
        ack(&mut b, 3, "a", true);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("still held its claim"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn taken_after_consumed_fails() {
        let mut b = Builder::new();
        put(&mut b, 1, "a", true);
        take(&mut b, 2, "a", 10);
        ack(&mut b, 2, "a", true);
        take(&mut b, 3, "a", 12);
        drained(&mut b, 4);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("after it was consumed"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_malformed_history_fails() {
        let mut b = Builder::new();
        let k = b.invoke(2, Op::QueueTake { queue: "Q".into() });
        b.ok(2, k, OkResult::Voted, 1);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("malformed history"),
            "{}",
            report.reason()
        );
    }
}
