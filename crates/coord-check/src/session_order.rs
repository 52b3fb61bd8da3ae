//! Session order: what one session sees never goes back in time (ZooKeeper's "single system
//! image" and FIFO client order), for synced and plain reads alike.
//!
//! Per (process, session), over its successful operations in order:
//!
//! - reply zxids never decrease;
//! - a reply is never older than the data it carries (read mzxid, write zxid ≤ reply zxid);
//! - monotonic reads: a read of a key never returns a lower mzxid than an earlier read of it;
//! - read your writes: a read of a key after an acknowledged write to it returns an mzxid at
//!   least the write's zxid;
//! - writes follow reads: an acknowledged write or create gets a zxid above every zxid the
//!   session saw before it (the leader numbers a new txn above everything committed, and the
//!   session only saw committed state).

use crate::Report;
use crate::fasthash::FastMap;
use crate::history::{History, OkResult, Op, ProcessId};
use crate::ops::{Paired, pair};

/// The checker's name in reports.
pub const NAME: &str = "session-order";

/// Checks the order of what each session saw.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

/// A zxid a session saw and the operation that showed it (index into `Paired::ops`).
#[derive(Clone, Copy)]
struct Seen {
    zxid: u64,
    op: usize,
}

#[derive(Default)]
struct SessionView<'h> {
    /// The highest reply zxid so far.
    reply: Option<Seen>,
    /// Per key, the highest mzxid a read returned.
    read: FastMap<&'h str, Seen>,
    /// Per key, the highest zxid of an acknowledged write.
    written: FastMap<&'h str, Seen>,
}

struct Violation {
    what: String,
    ops: [usize; 2],
}

/// Keeps in `map[key]` the higher of it and `seen`.
fn keep_highest<'h>(map: &mut FastMap<&'h str, Seen>, key: &'h str, seen: Seen) {
    let slot = map.entry(key).or_insert(seen);
    if slot.zxid < seen.zxid {
        *slot = seen;
    }
}

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let mut sessions: FastMap<(ProcessId, u64), SessionView<'_>> = FastMap::default();
    let mut violations: Vec<Violation> = Vec::new();
    let mut checked = 0;
    for (i, op) in paired.ops.iter().enumerate() {
        let Some((result, reply)) = op.ok() else {
            continue;
        };
        checked += 1;
        let view = sessions.entry((op.process, op.session)).or_default();
        let id = |k: usize| paired.ops[k].op_id;
        if let Some(last) = view.reply
            && reply < last.zxid
        {
            violations.push(Violation {
                what: format!(
                    "reply zxid went back from {:#x} (#{}) to {reply:#x} (#{})",
                    last.zxid,
                    id(last.op),
                    op.op_id
                ),
                ops: [last.op, i],
            });
        }
        let key = op.op.key();
        match (result, key) {
            (OkResult::Read { mzxid, .. }, Some(key)) => {
                if *mzxid > reply {
                    violations.push(Violation {
                        what: format!(
                            "#{} returned data of {mzxid:#x} in a reply at {reply:#x}",
                            op.op_id
                        ),
                        ops: [i, i],
                    });
                }
                if let Some(last) = view.read.get(key)
                    && *mzxid < last.zxid
                {
                    violations.push(Violation {
                        what: format!(
                            "monotonic reads: #{} read {key} at mzxid {mzxid:#x} after #{} \
                             read it at {:#x}",
                            op.op_id,
                            id(last.op),
                            last.zxid
                        ),
                        ops: [last.op, i],
                    });
                }
                if let Some(write) = view.written.get(key)
                    && *mzxid < write.zxid
                {
                    violations.push(Violation {
                        what: format!(
                            "read your writes: #{} read {key} at mzxid {mzxid:#x} after the \
                             session's write #{} at {:#x}",
                            op.op_id,
                            id(write.op),
                            write.zxid
                        ),
                        ops: [write.op, i],
                    });
                }
                keep_highest(
                    &mut view.read,
                    key,
                    Seen {
                        zxid: *mzxid,
                        op: i,
                    },
                );
            }
            (OkResult::Written { zxid, .. }, _) | (OkResult::Created { czxid: zxid }, _) => {
                if *zxid > reply {
                    violations.push(Violation {
                        what: format!(
                            "#{} was written at {zxid:#x} but replied at {reply:#x}",
                            op.op_id
                        ),
                        ops: [i, i],
                    });
                }
                if let Some(last) = view.reply
                    && *zxid <= last.zxid
                {
                    violations.push(Violation {
                        what: format!(
                            "writes follow reads: #{} ({}) got zxid {zxid:#x}, not above \
                             {:#x} that #{} showed the session before",
                            op.op_id,
                            op.op,
                            last.zxid,
                            id(last.op)
                        ),
                        ops: [last.op, i],
                    });
                }
                if let (Some(key), Op::Write { .. } | Op::Cas { .. } | Op::MultiCas { .. }) =
                    (key, op.op)
                {
                    keep_highest(&mut view.written, key, Seen { zxid: *zxid, op: i });
                }
            }
            _ => {}
        }
        if view.reply.is_none_or(|last| last.zxid < reply) {
            view.reply = Some(Seen { zxid: reply, op: i });
        }
    }
    let Some(first) = violations.first() else {
        return Report::pass(NAME, checked);
    };
    let op = &paired.ops[first.ops[1]];
    let reason = format!(
        "process {} session {:#x}: {}",
        op.process, op.session, first.what
    );
    let entries = first.ops.iter().flat_map(|&k| paired.ops[k].entries());
    Report::first_of(
        NAME,
        checked,
        reason,
        violations.len(),
        paired.history,
        entries,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::testkit::Builder;

    #[test]
    fn session_that_only_moves_forward_passes() {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.written(1, w, 1, 5);
        let r = b.invoke(1, Builder::read("k", false));
        b.read_at(1, r, "a", 1, 5, 7);
        let r = b.invoke(1, Builder::read("k", true));
        b.read_at(1, r, "a", 1, 5, 9);
        let w = b.invoke(1, Builder::write("k", "b"));
        b.written(1, w, 2, 10);
        // Another session may lag behind this one.
        let r = b.invoke(2, Builder::read("k", false));
        b.read_at(2, r, "", 0, 0, 3);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 5);
    }

    #[test]
    fn reply_zxid_going_back_fails() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", false));
        b.read_at(1, r, "", 0, 0, 9);
        let r = b.invoke(1, Builder::read("j", false));
        b.read_at(1, r, "", 0, 0, 8);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("reply zxid went back"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn plain_read_older_than_an_earlier_read_fails() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", true));
        b.read_at(1, r, "b", 2, 6, 9);
        let r = b.invoke(1, Builder::read("k", false));
        b.read_at(1, r, "a", 1, 5, 9);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("monotonic reads"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn read_missing_the_sessions_own_write_fails() {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.ok(
            1,
            w,
            OkResult::Written {
                version: 1,
                zxid: 5,
            },
            5,
        );
        let r = b.invoke(1, Builder::read("k", false));
        b.read_at(1, r, "", 0, 0, 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("read your writes"),
            "{}",
            report.reason()
        );
        let Verdict::Fail { slice, .. } = &report.verdict else {
            unreachable!("failed above")
        };
        assert_eq!(slice.len(), 4);
    }

    #[test]
    fn write_numbered_below_what_the_session_saw_fails() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", true));
        b.read_at(1, r, "", 0, 0, 9);
        let w = b.invoke(1, Builder::write("k", "a"));
        b.ok(
            1,
            w,
            OkResult::Written {
                version: 1,
                zxid: 7,
            },
            9,
        );
        let report = check(&b.finish());
        assert!(
            report.reason().contains("writes follow reads"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn reply_older_than_its_data_fails() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", true));
        b.read_at(1, r, "a", 1, 9, 8);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("in a reply at"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn a_new_session_of_the_same_process_starts_afresh() {
        let mut b = Builder::new();
        let r = b.invoke(1, Builder::read("k", true));
        b.read_at(1, r, "b", 2, 6, 9);
        b.set_session(1, 0x999);
        let r = b.invoke(1, Builder::read("k", false));
        b.read_at(1, r, "a", 1, 5, 5);
        assert!(check(&b.finish()).passed());
    }
}
