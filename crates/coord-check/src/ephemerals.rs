//! Ephemerals live exactly as long as their session: present while it is demonstrably alive,
//! gone within the timeout (plus an election) once it ended.
//!
//! `CreateEphemeral{name}` makes `name` belong to the creating session (an `Unknown` create
//! may have). `EphemeralsSeen{names, zxid}` at time `t` is a linearizable observation of the
//! state at `zxid`, whose read was sent at `t`. A session ends at its `SessionEnded` notice,
//! or when its process first records an entry under another session (it stopped using it,
//! so stopped heartbeating it). Violations:
//!
//! - a name seen at `t` when every session that may own it ended at `te` with
//!   `t > te + timeout + election_bound` (timeout: the larger of `Params::session_timeout_ms`
//!   and the negotiated one);
//! - a name missing from an observation at `Z` although created at `czxid < Z` by a session
//!   that later got a reply with zxid `> Z` (so it was alive, and nothing deletes ephemerals
//!   but the end of their session);
//! - a name seen at `Z` that no operation created, or that was only created (Ok) after `Z`.

use crate::fasthash::{FastMap, FastSet};
use crate::history::{EntryKind, History, Notice, OkResult, Op, ProcessId};
use crate::ops::{Paired, pair};
use crate::{Params, Report, Violation};

/// The checker's name in reports.
pub const NAME: &str = "ephemerals";

/// Checks every observation of the ephemerals against their sessions' lives.
pub fn check(history: &History, params: &Params) -> Report {
    check_paired(&pair(history), params)
}

/// One create of a name: `Paired::ops[op]`, by `session`, at `czxid` if acknowledged.
struct Create {
    op: usize,
    session: u64,
    czxid: Option<u64>,
}

struct Observation<'h> {
    entry: usize,
    time_ns: u64,
    zxid: u64,
    names: FastSet<&'h str>,
}

pub(crate) fn check_paired(paired: &Paired<'_>, params: &Params) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let history = paired.history;
    // Session ends (time, entry), negotiated timeouts, and observations.
    let mut ends: FastMap<u64, (u64, usize)> = FastMap::default();
    let mut timeouts: FastMap<u64, u64> = FastMap::default();
    let mut current: FastMap<ProcessId, u64> = FastMap::default();
    let mut observations: Vec<Observation<'_>> = Vec::new();
    for (i, entry) in history.entries.iter().enumerate() {
        if entry.session != 0 {
            let previous = current.insert(entry.process, entry.session);
            if let Some(old) = previous.filter(|&old| old != entry.session) {
                ends.entry(old).or_insert((entry.time_ns, i));
            }
        }
        let EntryKind::Notice(notice) = &entry.kind else {
            continue;
        };
        match notice {
            Notice::SessionStarted {
                session,
                timeout_ms,
            } => {
                timeouts.insert(*session, *timeout_ms);
            }
            Notice::SessionEnded { session, .. } => {
                ends.entry(*session).or_insert((entry.time_ns, i));
            }
            Notice::EphemeralsSeen { names, zxid } => observations.push(Observation {
                entry: i,
                time_ns: entry.time_ns,
                zxid: *zxid,
                names: names.iter().map(String::as_str).collect(),
            }),
            _ => {}
        }
    }

    let mut creates: FastMap<&str, Vec<Create>> = FastMap::default();
    // Per session, its reply with the highest zxid: (zxid, op).
    let mut latest: FastMap<u64, (u64, usize)> = FastMap::default();
    for (i, op) in paired.ops.iter().enumerate() {
        if let Some((_, reply)) = op.ok() {
            let slot = latest.entry(op.session).or_insert((reply, i));
            if slot.0 < reply {
                *slot = (reply, i);
            }
        }
        let Op::CreateEphemeral { name } = op.op else {
            continue;
        };
        let czxid = match op.ok() {
            Some((OkResult::Created { czxid }, _)) => Some(*czxid),
            _ if op.is_unknown() => None,
            _ => continue,
        };
        creates.entry(name).or_default().push(Create {
            op: i,
            session: op.session,
            czxid,
        });
    }

    let grace_ns = |session: u64| {
        let negotiated = timeouts.get(&session).copied().unwrap_or(0);
        let ms =
            (params.session_timeout_ms.max(negotiated)).saturating_add(params.election_bound_ms);
        ms.saturating_mul(1_000_000)
    };
    let mut violations: Vec<Violation> = Vec::new();
    let mut checked = 0u64;

    // Names seen: created, not before their creation, not long after their session ended.
    for obs in &observations {
        for &name in &obs.names {
            checked += 1;
            let owners = creates.get(name).map(Vec::as_slice).unwrap_or_default();
            if owners.is_empty() {
                violations.push(Violation {
                    what: format!("{name} seen at {:#x} but never created", obs.zxid),
                    entries: vec![obs.entry],
                });
                continue;
            }
            let create_entries = owners.iter().flat_map(|c| paired.ops[c.op].entries());
            if owners.iter().all(|c| c.czxid.is_some_and(|z| z > obs.zxid)) {
                violations.push(Violation {
                    what: format!("{name} seen at {:#x}, before it was created", obs.zxid),
                    entries: std::iter::once(obs.entry).chain(create_entries).collect(),
                });
                continue;
            }
            let expired = |c: &Create| {
                ends.get(&c.session)
                    .is_some_and(|&(end, _)| obs.time_ns > end.saturating_add(grace_ns(c.session)))
            };
            if owners.iter().all(expired) {
                let owner = &owners[0];
                let (end, end_entry) = ends[&owner.session];
                violations.push(Violation {
                    what: format!(
                        "{name} of session {:#x} seen {} ms after the session ended, more than \
                         its timeout plus an election ({} ms)",
                        owner.session,
                        (obs.time_ns - end) / 1_000_000,
                        grace_ns(owner.session) / 1_000_000
                    ),
                    entries: [obs.entry, end_entry]
                        .into_iter()
                        .chain(create_entries)
                        .collect(),
                });
            }
        }
    }

    // Names missing while their session was demonstrably alive.
    let mut by_zxid: Vec<usize> = (0..observations.len()).collect();
    by_zxid.sort_by_key(|&k| observations[k].zxid);
    for (&name, owners) in &creates {
        for create in owners {
            let Some(czxid) = create.czxid else {
                continue;
            };
            let Some(&(alive, later)) = latest.get(&create.session) else {
                continue;
            };
            let from = by_zxid.partition_point(|&k| observations[k].zxid <= czxid);
            let to = by_zxid.partition_point(|&k| observations[k].zxid < alive);
            for &k in by_zxid.get(from..to).unwrap_or_default() {
                let obs = &observations[k];
                checked += 1;
                if obs.names.contains(name) {
                    continue;
                }
                let create_op = &paired.ops[create.op];
                violations.push(Violation {
                    what: format!(
                        "{name} (created at {czxid:#x} by session {:#x}) missing at {:#x}, \
                         though the session got a reply at {alive:#x} (#{})",
                        create.session, obs.zxid, paired.ops[later].op_id
                    ),
                    entries: create_op
                        .entries()
                        .chain([obs.entry])
                        .chain(paired.ops[later].entries())
                        .collect(),
                });
            }
        }
    }

    Report::from_violations(NAME, checked, &violations, history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::testkit::Builder;

    const PARAMS: Params = Params {
        session_timeout_ms: 4_000,
        election_bound_ms: 1_000,
    };

    fn create(b: &mut Builder, p: ProcessId, name: &str, czxid: u64) {
        let op = Op::CreateEphemeral {
            name: name.to_string(),
        };
        let c = b.invoke(p, op);
        b.ok(p, c, OkResult::Created { czxid }, czxid);
    }

    fn seen(b: &mut Builder, names: &[&str], zxid: u64) {
        let names = names.iter().map(|n| n.to_string()).collect();
        b.notice(9, Notice::EphemeralsSeen { names, zxid });
    }

    fn ended(b: &mut Builder, p: ProcessId) {
        let session = b.session(p);
        let reason = "expired".to_string();
        b.notice(p, Notice::SessionEnded { session, reason });
    }

    fn read(b: &mut Builder, p: ProcessId, reply: u64) {
        let r = b.invoke(p, Builder::read("k", false));
        b.read_at(p, r, "", 0, 0, reply);
    }

    #[test]
    fn ephemeral_present_while_alive_and_gone_after_the_timeout_passes() {
        let mut b = Builder::new();
        create(&mut b, 1, "e1", 5);
        seen(&mut b, &["e1"], 6);
        read(&mut b, 1, 7);
        ended(&mut b, 1);
        b.advance_ms(3_000);
        seen(&mut b, &["e1"], 8);
        b.advance_ms(3_000);
        seen(&mut b, &[], 9);
        let report = check(&b.finish(), &PARAMS);
        assert!(report.passed(), "{}", report.reason());
        assert_eq!(report.checked, 3);
    }

    #[test]
    fn ephemeral_outliving_its_session_fails() {
        let mut b = Builder::new();
        create(&mut b, 1, "e1", 5);
        ended(&mut b, 1);
        b.advance_ms(5_500);
        seen(&mut b, &["e1"], 9);
        let report = check(&b.finish(), &PARAMS);
        assert!(
            report.reason().contains("after the session ended"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn negotiated_timeout_above_the_parameter_is_allowed_for() {
        let mut b = Builder::new();
        let session = b.session(1);
        b.notice(
            1,
            Notice::SessionStarted {
                session,
                timeout_ms: 10_000,
            },
        );
        create(&mut b, 1, "e1", 5);
        ended(&mut b, 1);
        b.advance_ms(5_500);
        seen(&mut b, &["e1"], 9);
        assert!(check(&b.finish(), &PARAMS).passed());
    }

    #[test]
    fn switching_sessions_ends_the_old_one() {
        let mut b = Builder::new();
        create(&mut b, 1, "e1", 5);
        b.set_session(1, 0x999);
        read(&mut b, 1, 6);
        b.advance_ms(6_000);
        seen(&mut b, &["e1"], 9);
        let report = check(&b.finish(), &PARAMS);
        assert!(
            report.reason().contains("after the session ended"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn ephemeral_missing_while_its_session_was_alive_fails() {
        let mut b = Builder::new();
        create(&mut b, 1, "e1", 5);
        seen(&mut b, &[], 6);
        read(&mut b, 1, 7);
        let report = check(&b.finish(), &PARAMS);
        assert!(
            report.reason().contains("missing at 0x6"),
            "{}",
            report.reason()
        );
        let Verdict::Fail { slice, .. } = &report.verdict else {
            unreachable!("failed above")
        };
        assert_eq!(slice.len(), 5);
    }

    #[test]
    fn ephemeral_missing_after_the_sessions_last_reply_may_be_gone() {
        let mut b = Builder::new();
        create(&mut b, 1, "e1", 5);
        read(&mut b, 1, 6);
        seen(&mut b, &[], 7);
        assert!(check(&b.finish(), &PARAMS).passed());
    }

    #[test]
    fn ephemeral_nobody_created_or_seen_before_its_create_fails() {
        let mut b = Builder::new();
        seen(&mut b, &["ghost"], 3);
        let report = check(&b.finish(), &PARAMS);
        assert!(
            report.reason().contains("never created"),
            "{}",
            report.reason()
        );

        let mut b = Builder::new();
        seen(&mut b, &["e1"], 3);
        create(&mut b, 1, "e1", 5);
        let report = check(&b.finish(), &PARAMS);
        assert!(
            report.reason().contains("before it was created"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn unknown_create_may_explain_a_name() {
        let mut b = Builder::new();
        let op = Op::CreateEphemeral {
            name: "e1".to_string(),
        };
        let c = b.invoke(1, op);
        b.unknown(1, c);
        seen(&mut b, &["e1"], 6);
        assert!(check(&b.finish(), &PARAMS).passed());
    }
}
