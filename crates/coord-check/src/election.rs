//! Leader election: `coord_recipes::Election` under the nemesis. At most one leader per
//! term, never two live leaders at once, terms that grow, and leaders' fenced writes
//! accepted only from the current leader.
//!
//! A leadership is a hold of [`crate::holds`]: `Campaign` Ok (term = the czxid of the
//! leader's holder node) until `Resign` invoke, a disconnect, a close or the session's end.
//! Violations:
//!
//! - two (process, session)s leading in the same term;
//! - two leaderships of one election overlapping;
//! - a leadership that began after another ended with a term not above it;
//! - a leader's `FencedWrite` judged as in `holds::fenced_writes`.

use crate::fasthash::FastMap;
use crate::history::{History, OkResult, Op};
use crate::holds::{self, Hold, Words};
use crate::ops::{Paired, pair};
use crate::{Report, Violation};

/// The checker's name in reports.
pub const NAME: &str = "election";

const WORDS: Words = Words {
    what: "election",
    fence: "term",
    took: "became leader",
    holding: "still led",
};

/// Checks every election's leaderships.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

fn resigned(op: &Op) -> Option<&str> {
    match op {
        Op::Resign { election } => Some(election),
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
            (Op::Campaign { election }, OkResult::Leading { term }) => {
                Some((election.as_str(), *term))
            }
            _ => None,
        },
        resigned,
    );
    let mut checked = 0u64;
    let mut violations = Vec::new();
    for list in holds.values() {
        checked += list.len() as u64;
        let mut terms: FastMap<u64, &Hold<'_>> = FastMap::default();
        for h in list {
            match terms.get(&h.fence) {
                Some(first) if first.holder != h.holder => {
                    let mut entries = first.entries(paired);
                    entries.extend(h.entries(paired));
                    violations.push(Violation {
                        what: format!(
                            "election {}: term {:#x} has two leaders, p{} and p{}",
                            h.name, h.fence, first.holder.0, h.holder.0
                        ),
                        entries,
                    });
                }
                Some(_) => {}
                None => {
                    terms.insert(h.fence, h);
                }
            }
        }
        violations.extend(holds::exclusion(paired, list, &WORDS));
        violations.extend(holds::fences_grow(paired, list, &WORDS));
    }
    let (writes, fenced) = holds::fenced_writes(paired, &holds, resigned);
    violations.extend(fenced);
    Report::from_violations(NAME, checked + writes, &violations, paired.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Notice, ProcessId};
    use crate::testkit::Builder;

    fn campaign(b: &mut Builder, p: ProcessId, term: u64) {
        let a = b.invoke(
            p,
            Op::Campaign {
                election: "E".into(),
            },
        );
        b.ok(p, a, OkResult::Leading { term }, term);
    }

    fn resign(b: &mut Builder, p: ProcessId) {
        let r = b.invoke(
            p,
            Op::Resign {
                election: "E".into(),
            },
        );
        b.ok(p, r, OkResult::Released, 0);
    }

    #[test]
    fn leaders_in_growing_terms_pass() {
        let mut b = Builder::new();
        campaign(&mut b, 1, 5);
        resign(&mut b, 1);
        campaign(&mut b, 2, 8);
        let session = b.session(2);
        b.notice(
            2,
            Notice::SessionEnded {
                session,
                reason: "expired".into(),
            },
        );
        campaign(&mut b, 3, 11);
        let w = b.invoke(
            3,
            Op::FencedWrite {
                lock: "E".into(),
                fence: 11,
            },
        );
        b.written(3, w, 1, 12);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 4);
    }

    #[test]
    fn two_leaders_in_one_term_fail() {
        let mut b = Builder::new();
        campaign(&mut b, 1, 5);
        resign(&mut b, 1);
        campaign(&mut b, 2, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("two leaders"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn overlapping_leaders_fail() {
        let mut b = Builder::new();
        campaign(&mut b, 1, 5);
        campaign(&mut b, 2, 8);
        resign(&mut b, 1);
        let report = check(&b.finish());
        assert!(report.reason().contains("still led"), "{}", report.reason());
    }

    #[test]
    fn a_deposed_leaders_write_accepted_late_fails() {
        let mut b = Builder::new();
        campaign(&mut b, 1, 5);
        resign(&mut b, 1);
        campaign(&mut b, 2, 8);
        let w = b.invoke(
            1,
            Op::FencedWrite {
                lock: "E".into(),
                fence: 5,
            },
        );
        b.written(1, w, 1, 9);
        let report = check(&b.finish());
        assert!(report.reason().contains("took over"), "{}", report.reason());
    }

    #[test]
    fn a_malformed_history_fails() {
        let mut b = Builder::new();
        b.ok(1, 42, OkResult::Leading { term: 5 }, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("malformed history"),
            "{}",
            report.reason()
        );
    }
}
