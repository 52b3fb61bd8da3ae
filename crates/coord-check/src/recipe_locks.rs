//! Recipe locks: `coord_recipes::Lock` under the nemesis. Never two live holders, fences
//! (hold generations: the czxid of the holder node) that grow, and fenced writes that the
//! servers accept only from the current holder.
//!
//! Holds are the intervals of [`crate::holds`] (`RecipeLock` Ok … `RecipeUnlock` invoke, a
//! disconnect, a close, the session's end). Violations:
//!
//! - two holders' intervals of one lock overlap;
//! - a hold that began after another ended has a fence not above it;
//! - a `FencedWrite` accepted although a later holder's node existed before it, or after
//!   its hold's release had completed, or refused while its hold was provably live (see
//!   `holds::fenced_writes`).

use crate::Report;
use crate::history::{History, OkResult, Op};
use crate::holds::{self, Words};
use crate::ops::{Paired, pair};

/// The checker's name in reports.
pub const NAME: &str = "recipe-locks";

const WORDS: Words = Words {
    what: "recipe lock",
    fence: "generation",
    took: "acquired it",
    holding: "still held it",
};

/// Checks every recipe lock's holds and fenced writes.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

fn released(op: &Op) -> Option<&str> {
    match op {
        Op::RecipeUnlock { lock } => Some(lock),
        _ => None,
    }
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let holds = holds::collect(
        paired,
        |op, result| match (op, result) {
            (Op::RecipeLock { lock }, OkResult::Locked { fence }) => Some((lock.as_str(), *fence)),
            _ => None,
        },
        released,
    );
    let mut checked = 0u64;
    let mut violations = Vec::new();
    for list in holds.values() {
        checked += list.len() as u64;
        violations.extend(holds::exclusion(paired, list, &WORDS));
        violations.extend(holds::fences_grow(paired, list, &WORDS));
    }
    let (writes, fenced) = holds::fenced_writes(paired, &holds, released);
    violations.extend(fenced);
    Report::from_violations(NAME, checked + writes, &violations, paired.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Notice, ProcessId};
    use crate::testkit::Builder;

    fn lock(b: &mut Builder, p: ProcessId, fence: u64) {
        let a = b.invoke(p, Op::RecipeLock { lock: "L".into() });
        b.ok(p, a, OkResult::Locked { fence }, fence);
    }

    fn unlock(b: &mut Builder, p: ProcessId) {
        let r = b.invoke(p, Op::RecipeUnlock { lock: "L".into() });
        b.ok(p, r, OkResult::Released, 0);
    }

    fn fenced(b: &mut Builder, p: ProcessId, fence: u64, accepted_at: Option<u64>) {
        let w = b.invoke(
            p,
            Op::FencedWrite {
                lock: "L".into(),
                fence,
            },
        );
        match accepted_at {
            Some(zxid) => b.written(p, w, 1, zxid),
            None => b.fail(p, w, "StaleSequencer"),
        }
    }

    #[test]
    fn holders_taking_turns_with_fenced_writes_pass() {
        let mut b = Builder::new();
        lock(&mut b, 1, 5);
        fenced(&mut b, 1, 5, Some(6));
        unlock(&mut b, 1);
        // The released holder's late write is refused: fine.
        fenced(&mut b, 1, 5, None);
        lock(&mut b, 2, 9);
        fenced(&mut b, 2, 9, Some(10));
        let session = b.session(2);
        b.notice(2, Notice::Closing { session });
        lock(&mut b, 3, 12);
        // A holder in jeopardy whose session survived may write.
        let session = b.session(3);
        b.notice(3, Notice::Disconnected { session });
        fenced(&mut b, 3, 12, Some(13));
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 3 + 4);
    }

    #[test]
    fn two_live_holders_fail() {
        let mut b = Builder::new();
        lock(&mut b, 1, 5);
        lock(&mut b, 2, 7);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("still held it"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_stale_write_accepted_after_the_next_holder_took_over_fails() {
        let mut b = Builder::new();
        lock(&mut b, 1, 5);
        let session = b.session(1);
        b.notice(1, Notice::Disconnected { session });
        lock(&mut b, 2, 9);
        // p1's write with generation 5 applied at zxid 11 > 9: its node was gone.
        fenced(&mut b, 1, 5, Some(11));
        let report = check(&b.finish());
        assert!(
            report.reason().contains("after p2 took over"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_write_accepted_after_its_release_fails() {
        let mut b = Builder::new();
        lock(&mut b, 1, 5);
        unlock(&mut b, 1);
        fenced(&mut b, 1, 5, Some(8));
        let report = check(&b.finish());
        assert!(
            report.reason().contains("release had completed"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_write_refused_while_provably_held_fails() {
        let mut b = Builder::new();
        lock(&mut b, 1, 5);
        fenced(&mut b, 1, 5, None);
        unlock(&mut b, 1);
        let report = check(&b.finish());
        assert!(report.reason().contains("refused"), "{}", report.reason());
    }

    #[test]
    fn generations_not_growing_fail() {
        let mut b = Builder::new();
        lock(&mut b, 1, 7);
        unlock(&mut b, 1);
        lock(&mut b, 2, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("is not above"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_malformed_history_fails() {
        let mut b = Builder::new();
        let a = b.invoke(1, Op::RecipeLock { lock: "L".into() });
        b.ok(1, a, OkResult::Acked, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("malformed history"),
            "{}",
            report.reason()
        );
    }
}
