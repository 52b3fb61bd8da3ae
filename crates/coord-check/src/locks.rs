//! Locks: at most one holder at a time, and fencing tokens that grow.
//!
//! A `LockAcquire` completing Ok at entry `a` for process `p` on session `s` starts a hold
//! interval of that lock; it ends at the first of: `p`'s `LockRelease` invoke for the lock,
//! a `Disconnected`, `Closing` or `SessionEnded` notice for `s`, or `p` recording an entry
//! under another session (see `crate::holds`). An interval with no end lasts to the end of
//! the history. Entry indices order events, so two intervals overlap iff one starts before
//! the other ends.
//!
//! - Mutual exclusion: intervals of one lock held by different (process, session) never
//!   overlap.
//! - Fencing: if interval A ends before B starts, fence(A) < fence(B); equal fences are only
//!   allowed when the same session re-acquired through the same lock node.

use crate::Report;
use crate::history::{History, OkResult, Op};
use crate::holds::{self, Words};
use crate::ops::{Paired, pair};

/// The checker's name in reports.
pub const NAME: &str = "locks";

const WORDS: Words = Words {
    what: "lock",
    fence: "fence",
    took: "acquired it",
    holding: "still held it",
};

/// Checks every lock's hold intervals.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let holds = holds::collect(
        paired,
        |op, result| match (op, result) {
            (Op::LockAcquire { lock }, OkResult::Locked { fence }) => Some((lock.as_str(), *fence)),
            _ => None,
        },
        |op| match op {
            Op::LockRelease { lock } => Some(lock.as_str()),
            _ => None,
        },
    );
    let mut checked = 0u64;
    let mut violations = Vec::new();
    for list in holds.values() {
        checked += list.len() as u64;
        violations.extend(holds::exclusion(paired, list, &WORDS));
        violations.extend(holds::fences_grow(paired, list, &WORDS));
    }
    Report::from_violations(NAME, checked, &violations, paired.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::history::{Notice, ProcessId};
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
