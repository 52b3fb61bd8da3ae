//! Locks: at most one holder at a time, and fencing tokens that grow.
//!
//! A `LockAcquire` completing Ok at entry `a` for process `p` on session `s` starts a hold
//! interval of that lock; it ends at the first of: `p`'s `LockRelease` invoke for the lock,
//! a `Disconnected` or `SessionEnded` notice for `s`, or `p` recording an entry under another
//! session. An interval with no end lasts to the end of the history. Entry indices order
//! events, so two intervals overlap iff one starts before the other ends.
//!
//! - Mutual exclusion: intervals of one lock held by different (process, session) never
//!   overlap.
//! - Fencing: if interval A ends before B starts, fence(A) < fence(B); equal fences are only
//!   allowed when the same session re-acquired through the same lock node.

use crate::Report;
use crate::fasthash::FastMap;
use crate::history::{EntryKind, History, Notice, OkResult, Op, ProcessId};
use crate::ops::{Paired, pair};
use std::collections::BTreeMap;

/// The checker's name in reports.
pub const NAME: &str = "locks";

/// Checks every lock's hold intervals.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

/// One hold of a lock.
#[derive(Clone, Copy, Debug)]
struct Hold {
    holder: (ProcessId, u64),
    fence: u64,
    /// The acquire's `Complete` entry.
    start: usize,
    /// The entry that ended it; `None`: held to the end of the history.
    end: Option<usize>,
    /// The acquire (index into `Paired::ops`).
    op: usize,
}

impl Hold {
    fn ends_before(&self, index: usize) -> bool {
        self.end.is_some_and(|end| end < index)
    }
}

/// What ends a process's holds: the first such entry after a given index.
#[derive(Default)]
struct Enders {
    /// Per (process, lock): entries invoking its release.
    releases: FastMap<(ProcessId, String), Vec<usize>>,
    /// Per session: `Disconnected` / `SessionEnded` entries.
    session_ends: FastMap<u64, Vec<usize>>,
    /// Per (process, session): the first entry after which the process used another session.
    switches: FastMap<(ProcessId, u64), Vec<usize>>,
}

fn first_after(list: Option<&Vec<usize>>, index: usize) -> Option<usize> {
    let list = list?;
    list.get(list.partition_point(|&e| e <= index)).copied()
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let history = paired.history;
    let mut enders = Enders::default();
    let mut current: FastMap<ProcessId, u64> = FastMap::default();
    for (i, entry) in history.entries.iter().enumerate() {
        if entry.session != 0 {
            let previous = current.insert(entry.process, entry.session);
            if let Some(old) = previous.filter(|&old| old != entry.session) {
                let who = (entry.process, old);
                enders.switches.entry(who).or_default().push(i);
            }
        }
        match &entry.kind {
            EntryKind::Invoke {
                op: Op::LockRelease { lock },
                ..
            } => {
                let who = (entry.process, lock.clone());
                enders.releases.entry(who).or_default().push(i);
            }
            EntryKind::Notice(
                Notice::Disconnected { session } | Notice::SessionEnded { session, .. },
            ) => enders.session_ends.entry(*session).or_default().push(i),
            _ => {}
        }
    }

    let mut holds: BTreeMap<&str, Vec<Hold>> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        let (Op::LockAcquire { lock }, Some((OkResult::Locked { fence }, _)), Some(start)) =
            (op.op, op.ok(), op.complete)
        else {
            continue;
        };
        let release = enders.releases.get(&(op.process, lock.clone()));
        let end = [
            first_after(release, start),
            first_after(enders.session_ends.get(&op.session), start),
            first_after(enders.switches.get(&(op.process, op.session)), start),
        ]
        .into_iter()
        .flatten()
        .min();
        holds.entry(lock).or_default().push(Hold {
            holder: (op.process, op.session),
            fence: *fence,
            start,
            end,
            op: i,
        });
    }

    let mut checked = 0u64;
    let mut violations: Vec<(String, [Hold; 2])> = Vec::new();
    for (lock, list) in &mut holds {
        checked += list.len() as u64;
        list.sort_by_key(|h| h.start);
        // Mutual exclusion: each hold against the one reaching furthest among those before.
        let mut furthest: Option<Hold> = None;
        for &hold in list.iter() {
            if let Some(f) = furthest
                && f.holder != hold.holder
                && !f.ends_before(hold.start)
            {
                violations.push((
                    format!(
                        "lock {lock}: p{} (fence {:#x}) acquired it while p{} (fence {:#x}) \
                         still held it",
                        hold.holder.0, hold.fence, f.holder.0, f.fence
                    ),
                    [f, hold],
                ));
            }
            let reaches_further = |f: &Hold| match (f.end, hold.end) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => b > a,
            };
            if furthest.as_ref().is_none_or(reaches_further) {
                furthest = Some(hold);
            }
        }
        // Fencing: each hold against the highest fence among holds ended before it began.
        let mut by_end: Vec<Hold> = list.iter().filter(|h| h.end.is_some()).copied().collect();
        by_end.sort_by_key(|h| h.end);
        let mut ended = by_end.iter().peekable();
        let mut highest: Option<Hold> = None;
        for &hold in list.iter() {
            while let Some(h) = ended.next_if(|h| h.ends_before(hold.start)) {
                if highest.is_none_or(|best| best.fence < h.fence) {
                    highest = Some(*h);
                }
            }
            let Some(before) = highest else {
                continue;
            };
            let reused = before.fence == hold.fence && before.holder == hold.holder;
            if before.fence >= hold.fence && !reused {
                violations.push((
                    format!(
                        "lock {lock}: fence {:#x} of p{} is not above fence {:#x} of p{}, \
                         whose hold ended before",
                        hold.fence, hold.holder.0, before.fence, before.holder.0
                    ),
                    [before, hold],
                ));
            }
        }
    }

    let Some((what, pair)) = violations.first() else {
        return Report::pass(NAME, checked);
    };
    let entries = pair
        .iter()
        .flat_map(|h| paired.ops[h.op].entries().chain(h.end));
    Report::first_of(
        NAME,
        checked,
        what.clone(),
        violations.len(),
        history,
        entries,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::testkit::Builder;

    fn acquire(b: &mut Builder, p: ProcessId, fence: u64) {
        let op = Op::LockAcquire {
            lock: "L".to_string(),
        };
        let a = b.invoke(p, op);
        b.ok(p, a, OkResult::Locked { fence }, fence);
    }

    fn release(b: &mut Builder, p: ProcessId) {
        let op = Op::LockRelease {
            lock: "L".to_string(),
        };
        let r = b.invoke(p, op);
        b.ok(p, r, OkResult::Released, 0);
    }

    #[test]
    fn holders_taking_turns_with_growing_fences_pass() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 5);
        release(&mut b, 1);
        acquire(&mut b, 2, 7);
        let session = b.session(2);
        b.notice(2, Notice::Disconnected { session });
        acquire(&mut b, 1, 9);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 3);
    }

    #[test]
    fn two_holders_at_once_fail() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 5);
        acquire(&mut b, 2, 7);
        release(&mut b, 1);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("still held it"),
            "{}",
            report.reason()
        );
        let Verdict::Fail { slice, .. } = &report.verdict else {
            unreachable!("failed above")
        };
        assert_eq!(slice.len(), 5, "both acquires and the release");
    }

    #[test]
    fn hold_without_end_lasts_to_the_end_of_the_history() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 5);
        b.advance_ms(60_000);
        acquire(&mut b, 2, 7);
        let report = check(&b.finish());
        assert!(!report.passed());
    }

    #[test]
    fn session_end_or_switch_ends_a_hold() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 5);
        let session = b.session(1);
        let reason = "expired".to_string();
        b.notice(1, Notice::SessionEnded { session, reason });
        acquire(&mut b, 2, 7);
        b.set_session(2, 0x999);
        b.notice(
            2,
            Notice::SessionStarted {
                session: 0x999,
                timeout_ms: 4000,
            },
        );
        acquire(&mut b, 3, 8);
        assert!(check(&b.finish()).passed());
    }

    #[test]
    fn fence_not_growing_fails() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 7);
        release(&mut b, 1);
        acquire(&mut b, 2, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("is not above"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn same_session_reacquiring_its_node_may_reuse_the_fence() {
        let mut b = Builder::new();
        acquire(&mut b, 1, 7);
        let session = b.session(1);
        b.notice(1, Notice::Disconnected { session });
        acquire(&mut b, 1, 7);
        assert!(check(&b.finish()).passed());
    }
}
