//! Persistent watches: each session's events for a key come in zxid order, none is missing,
//! and none is made up.
//!
//! A watch is (process, session, key), started by the first `WatchAdded` at zxid `Z0`
//! (a repeated `WatchAdded` in the same session is the same watch). Its events are the
//! session's later `WatchEvent`s on the key. Coord re-registers watches when a session
//! reconnects and ZooKeeper promises no gap for a live session, so the whole life of the
//! session is gap-free, up to `cap`: the highest zxid the session observed in any reply,
//! returned data, or event. Then:
//!
//! - event zxids of one watch strictly increase, and are above `Z0`;
//! - every acknowledged write to the key with zxid in `(Z0, cap]` appears as an event;
//! - an event's zxid is that of a write to the key. A zxid known to belong to another txn
//!   (another key's write, a create, a lock node) is made up; an unknown zxid must be an
//!   unknown write to the key (Unknown outcomes have no zxid): the distinct unexplained zxids
//!   of a key, in order of first sighting, must each be matched to a different unknown write
//!   to the key invoked before that sighting.
//!
//! A `WatchLost` (the server could not replay a gap and removed the watch) ends the
//! promise: writes after the last event the watch delivered before it need not appear.
//!
//! The runner must keep draining a session's event stream until it closes, also after the
//! session ended, or events it never read show up here as missing.

use crate::fasthash::FastMap;
use crate::history::{EntryKind, History, Notice, OkResult, Op, ProcessId};
use crate::ops::{Paired, pair};
use crate::{Report, Violation};
use std::collections::BTreeMap;

/// The checker's name in reports.
pub const NAME: &str = "watches";

/// Checks every persistent watch of the history.
pub fn check(history: &History) -> Report {
    check_paired(&pair(history))
}

/// A zxid and the entry that showed it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    zxid: u64,
    entry: usize,
}

struct Watch {
    added: Seen,
    events: Vec<Seen>,
    /// Set by `WatchLost`: no promise past the events delivered before it.
    lost: Option<Seen>,
}

/// What a known zxid was.
#[derive(Clone, Copy)]
enum Txn<'h> {
    /// A write to this key, by `Paired::ops[op]`.
    Write { key: &'h str, op: usize },
    /// Some other txn (a create, a lock node), by `Paired::ops[op]`.
    Other { op: usize },
}

type WatchId<'h> = (ProcessId, u64, &'h str);

pub(crate) fn check_paired(paired: &Paired<'_>) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let history = paired.history;
    let mut txns: FastMap<u64, Txn<'_>> = FastMap::default();
    let mut writes: FastMap<&str, Vec<(u64, usize)>> = FastMap::default();
    let mut unknown_writes: FastMap<&str, Vec<usize>> = FastMap::default();
    let mut caps: FastMap<(ProcessId, u64), Seen> = FastMap::default();
    let mut raise = |who: (ProcessId, u64), seen: Seen| {
        let cap = caps.entry(who).or_insert(seen);
        if cap.zxid < seen.zxid {
            *cap = seen;
        }
    };
    for (i, op) in paired.ops.iter().enumerate() {
        let is_write = matches!(
            op.op,
            Op::Write { .. } | Op::Cas { .. } | Op::MultiCas { .. }
        );
        if let (true, Some(key), true) = (is_write, op.op.key(), op.is_unknown()) {
            unknown_writes.entry(key).or_default().push(op.invoke);
        }
        let (Some((result, reply)), Some(complete)) = (op.ok(), op.complete) else {
            continue;
        };
        let who = (op.process, op.session);
        raise(
            who,
            Seen {
                zxid: reply,
                entry: complete,
            },
        );
        let seen = |zxid| Seen {
            zxid,
            entry: complete,
        };
        match (result, op.op.key()) {
            (OkResult::Written { zxid, .. }, Some(key)) => {
                txns.entry(*zxid).or_insert(Txn::Write { key, op: i });
                writes.entry(key).or_default().push((*zxid, i));
                raise(who, seen(*zxid));
            }
            (OkResult::Read { mzxid, .. }, _) => raise(who, seen(*mzxid)),
            (OkResult::Created { czxid: zxid }, _) | (OkResult::Locked { fence: zxid }, _) => {
                txns.entry(*zxid).or_insert(Txn::Other { op: i });
                raise(who, seen(*zxid));
            }
            _ => {}
        }
    }
    for list in writes.values_mut() {
        list.sort_unstable();
    }

    let mut watches: BTreeMap<WatchId<'_>, Watch> = BTreeMap::new();
    let mut violations: Vec<Violation> = Vec::new();
    for (i, entry) in history.entries.iter().enumerate() {
        let EntryKind::Notice(notice) = &entry.kind else {
            continue;
        };
        let who = (entry.process, entry.session);
        match notice {
            Notice::WatchAdded { key, zxid } => {
                let seen = Seen {
                    zxid: *zxid,
                    entry: i,
                };
                raise(who, seen);
                watches.entry((who.0, who.1, key)).or_insert(Watch {
                    added: seen,
                    events: Vec::new(),
                    lost: None,
                });
            }
            Notice::WatchEvent { key, zxid } => {
                let seen = Seen {
                    zxid: *zxid,
                    entry: i,
                };
                raise(who, seen);
                match watches.get_mut(&(who.0, who.1, key.as_str())) {
                    Some(watch) => watch.events.push(seen),
                    None => violations.push(Violation {
                        what: format!(
                            "process {} session {:#x} got an event on {key} at {zxid:#x} \
                             without a watch on it",
                            who.0, who.1
                        ),
                        entries: vec![i],
                    }),
                }
            }
            Notice::WatchLost { key, zxid } => {
                if let Some(watch) = watches.get_mut(&(who.0, who.1, key.as_str())) {
                    watch.lost.get_or_insert(Seen {
                        zxid: *zxid,
                        entry: i,
                    });
                }
            }
            Notice::EphemeralsSeen { zxid, .. } => raise(
                who,
                Seen {
                    zxid: *zxid,
                    entry: i,
                },
            ),
            _ => {}
        }
    }

    let mut checked = 0u64;
    // Per key: each unexplained event zxid with the entry that first showed it.
    let mut unexplained: FastMap<&str, FastMap<u64, usize>> = FastMap::default();
    for (&(process, session, key), watch) in &watches {
        let name = format!("watch of process {process} session {session:#x} on {key}");
        let z0 = watch.added;
        checked += watch.events.len() as u64;
        for pair in watch.events.windows(2) {
            if pair[1].zxid <= pair[0].zxid {
                violations.push(Violation {
                    what: format!(
                        "{name}: event at {:#x} after one at {:#x}",
                        pair[1].zxid, pair[0].zxid
                    ),
                    entries: vec![z0.entry, pair[0].entry, pair[1].entry],
                });
            }
        }
        for event in &watch.events {
            if event.zxid <= z0.zxid {
                violations.push(Violation {
                    what: format!(
                        "{name}: event at {:#x} but the watch was added at {:#x}",
                        event.zxid, z0.zxid
                    ),
                    entries: vec![z0.entry, event.entry],
                });
            }
            match txns.get(&event.zxid) {
                Some(Txn::Write { key: k, .. }) if *k == key => {}
                Some(Txn::Write { op, .. } | Txn::Other { op }) => {
                    let op = &paired.ops[*op];
                    violations.push(Violation {
                        what: format!(
                            "{name}: event at {:#x}, the zxid of #{} ({})",
                            event.zxid, op.op_id, op.op
                        ),
                        entries: [z0.entry, event.entry]
                            .into_iter()
                            .chain(op.entries())
                            .collect(),
                    });
                }
                None => {
                    let first = unexplained.entry(key).or_default().entry(event.zxid);
                    let first = first.or_insert(event.entry);
                    *first = (*first).min(event.entry);
                }
            }
        }
        // Every acknowledged write in (Z0, cap] must be among the events; for a lost watch,
        // cap is its last event before the loss.
        let cap = match watch.lost {
            Some(lost) => watch
                .events
                .iter()
                .filter(|e| e.entry < lost.entry)
                .max_by_key(|e| e.zxid)
                .copied(),
            None => caps.get(&(process, session)).copied(),
        };
        let Some(cap) = cap else {
            continue;
        };
        let Some(list) = writes.get(key) else {
            continue;
        };
        let from = list.partition_point(|&(z, _)| z <= z0.zxid);
        let to = list.partition_point(|&(z, _)| z <= cap.zxid);
        let mut got: Vec<u64> = watch.events.iter().map(|e| e.zxid).collect();
        got.sort_unstable();
        for &(zxid, op) in list.get(from..to).unwrap_or_default() {
            checked += 1;
            if got.binary_search(&zxid).is_ok() {
                continue;
            }
            let w = &paired.ops[op];
            let k = watch.events.partition_point(|e| e.zxid < zxid);
            let around = [k.checked_sub(1), Some(k)]
                .into_iter()
                .flatten()
                .filter_map(|k| watch.events.get(k).map(|e| e.entry));
            violations.push(Violation {
                what: format!(
                    "{name}: no event for #{} at {zxid:#x}, though the watch was added at \
                     {:#x} and the session saw {:#x}",
                    w.op_id, z0.zxid, cap.zxid
                ),
                entries: [z0.entry, cap.entry]
                    .into_iter()
                    .chain(w.entries())
                    .chain(around)
                    .collect(),
            });
        }
    }

    // Unexplained zxids need distinct unknown writes invoked before their first sighting.
    for (key, zxids) in &unexplained {
        let mut sightings: Vec<(usize, u64)> = zxids.iter().map(|(&z, &e)| (e, z)).collect();
        sightings.sort_unstable();
        let mut candidates = unknown_writes.get(key).cloned().unwrap_or_default();
        candidates.sort_unstable();
        for (n, &(entry, zxid)) in sightings.iter().enumerate() {
            let available = candidates.partition_point(|&invoke| invoke < entry);
            if available <= n {
                violations.push(Violation {
                    what: format!(
                        "an event on {key} at {zxid:#x} matches no write to {key} \
                         ({} unexplained zxids by then, {available} unknown writes invoked)",
                        n + 1
                    ),
                    entries: vec![entry],
                });
                break;
            }
        }
    }

    Report::from_violations(NAME, checked, &violations, history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Builder;

    fn added(b: &mut Builder, p: ProcessId, key: &str, zxid: u64) {
        b.notice(
            p,
            Notice::WatchAdded {
                key: key.to_string(),
                zxid,
            },
        );
    }

    fn event(b: &mut Builder, p: ProcessId, key: &str, zxid: u64) {
        b.notice(
            p,
            Notice::WatchEvent {
                key: key.to_string(),
                zxid,
            },
        );
    }

    fn write(b: &mut Builder, p: ProcessId, key: &str, value: &str, version: i32, zxid: u64) {
        let w = b.invoke(p, Builder::write(key, value));
        b.written(p, w, version, zxid);
    }

    /// Process 1 watches k from zxid 4; process 2 writes k at 5 and 7 and j at 6.
    fn base() -> Builder {
        let mut b = Builder::new();
        added(&mut b, 1, "k", 4);
        write(&mut b, 2, "k", "a", 1, 5);
        write(&mut b, 2, "j", "x", 1, 6);
        write(&mut b, 2, "k", "b", 2, 7);
        b
    }

    #[test]
    fn every_write_seen_in_order_passes() {
        let mut b = base();
        event(&mut b, 1, "k", 5);
        event(&mut b, 1, "k", 7);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 4);
    }

    #[test]
    fn a_lost_watch_owes_nothing_after_its_last_event_but_everything_before() {
        // Events at 5, then the server gives the watch up: 7 may be missing.
        let mut b = base();
        event(&mut b, 1, "k", 5);
        let lost = |b: &mut Builder| {
            b.notice(
                1,
                Notice::WatchLost {
                    key: "k".into(),
                    zxid: 9,
                },
            )
        };
        lost(&mut b);
        let report = check(&b.finish());
        assert!(report.passed(), "{}", report.reason());
        // But a write before its last delivered event must still have been delivered.
        let mut b = base();
        event(&mut b, 1, "k", 7);
        lost(&mut b);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("no event for"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn missing_event_below_what_the_session_saw_fails() {
        let mut b = base();
        event(&mut b, 1, "k", 7);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("no event for"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn events_beyond_what_the_session_saw_may_be_missing() {
        let mut b = base();
        event(&mut b, 1, "k", 5);
        b.notice(
            1,
            Notice::SessionEnded {
                session: 0x101,
                reason: "expired".to_string(),
            },
        );
        assert!(check(&b.finish()).passed());
    }

    #[test]
    fn events_out_of_order_fail() {
        let mut b = base();
        event(&mut b, 1, "k", 7);
        event(&mut b, 1, "k", 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("after one at"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn event_for_another_keys_write_fails() {
        let mut b = base();
        event(&mut b, 1, "k", 5);
        event(&mut b, 1, "k", 6);
        event(&mut b, 1, "k", 7);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("the zxid of"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn event_before_the_watch_was_added_fails() {
        let mut b = Builder::new();
        write(&mut b, 2, "k", "a", 1, 5);
        added(&mut b, 1, "k", 6);
        event(&mut b, 1, "k", 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("the watch was added"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn event_without_a_watch_fails() {
        let mut b = Builder::new();
        write(&mut b, 2, "k", "a", 1, 5);
        event(&mut b, 1, "k", 5);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("without a watch"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn unexplained_zxid_needs_an_unknown_write_to_the_key() {
        for (unknowns, passes) in [(0, false), (1, true)] {
            let mut b = base();
            for n in 0..unknowns {
                let u = b.invoke(3, Builder::write("k", &format!("u{n}")));
                b.unknown(3, u);
            }
            event(&mut b, 1, "k", 5);
            event(&mut b, 1, "k", 7);
            event(&mut b, 1, "k", 8);
            let report = check(&b.finish());
            assert_eq!(report.passed(), passes, "{unknowns}: {}", report.reason());
        }
    }

    #[test]
    fn one_unknown_write_explains_one_zxid_only() {
        let mut b = base();
        let u = b.invoke(3, Builder::write("k", "u"));
        b.unknown(3, u);
        event(&mut b, 1, "k", 5);
        event(&mut b, 1, "k", 7);
        event(&mut b, 1, "k", 8);
        event(&mut b, 1, "k", 9);
        let report = check(&b.finish());
        assert!(
            report.reason().contains("matches no write"),
            "{}",
            report.reason()
        );
    }
}
