//! Convergence: once healed, every server holds the same tree, and it keeps every
//! acknowledged write.
//!
//! - Every [`ServerFinal`] reports the same digest and zxid, and the same (data, version)
//!   for every key any of them reports.
//! - For every key with operations in the history, the final version is at least the highest
//!   acknowledged (`Written`) version; the final data is the data of some write to the key
//!   that may have applied (Ok or Unknown), or empty at version 0; and if that write was
//!   acknowledged at version `v`, the final version is `v` (nothing overwrote it).

use crate::fasthash::FastMap;
use crate::history::{Data, History, OkResult, Op};
use crate::ops::{Paired, pair};
use crate::{Report, ServerFinal};
use std::collections::{BTreeMap, BTreeSet};

/// The checker's name in reports.
pub const NAME: &str = "convergence";

/// Checks the servers' final states against each other and the history.
pub fn check(history: &History, finals: &[ServerFinal]) -> Report {
    check_paired(&pair(history), finals)
}

/// What the history says about one key.
#[derive(Default)]
struct KeyWrites<'h> {
    /// Data of writes that may have applied, with the version acknowledged if any, and the
    /// writing operation (index into `Paired::ops`).
    data: FastMap<&'h [u8], (Option<i32>, usize)>,
    /// The highest acknowledged version and its write.
    highest: Option<(i32, usize)>,
}

pub(crate) fn check_paired(paired: &Paired<'_>, finals: &[ServerFinal]) -> Report {
    if let Some(report) = paired.malformed(NAME) {
        return report;
    }
    let history = paired.history;
    let fail = |checked, reason: String, ops: &[usize]| {
        let entries = ops.iter().flat_map(|&i| paired.ops[i].entries());
        Report::fail(NAME, checked, reason, history, entries)
    };
    let Some((first, rest)) = finals.split_first() else {
        return fail(0, "no server reported its final state".to_string(), &[]);
    };
    let mut checked = 0u64;
    for server in rest {
        checked += 1;
        if (server.digest, server.zxid) != (first.digest, first.zxid) {
            let reason = format!(
                "server {} ends at zxid {:#x} with digest {:#x}, server {} at {:#x} with {:#x}",
                first.id, first.zxid, first.digest, server.id, server.zxid, server.digest
            );
            return fail(checked, reason, &[]);
        }
    }
    let keys: BTreeSet<&str> = finals
        .iter()
        .flat_map(|f| f.values.keys().map(String::as_str))
        .collect();
    for key in &keys {
        for server in rest {
            checked += 1;
            let (a, b) = (first.values.get(*key), server.values.get(*key));
            if a != b {
                let show = |v: Option<&(Vec<u8>, i32)>| match v {
                    Some((data, version)) => format!("{} at version {version}", Data(data)),
                    None => "nothing".to_string(),
                };
                let reason = format!(
                    "key {key}: server {} holds {}, server {} holds {}",
                    first.id,
                    show(a),
                    server.id,
                    show(b)
                );
                return fail(checked, reason, &[]);
            }
        }
    }

    let mut writes: BTreeMap<&str, KeyWrites<'_>> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        let Some(key) = op.op.key() else {
            continue;
        };
        let entry = writes.entry(key).or_default();
        let (Op::Write { value, .. } | Op::Cas { value, .. } | Op::MultiCas { value, .. }) = op.op
        else {
            continue;
        };
        match op.ok() {
            Some((OkResult::Written { version, .. }, _)) => {
                entry.data.insert(value, (Some(*version), i));
                if entry.highest.is_none_or(|(v, _)| v < *version) {
                    entry.highest = Some((*version, i));
                }
            }
            _ if op.is_unknown() => {
                entry.data.entry(value).or_insert((None, i));
            }
            _ => {}
        }
    }
    for (key, known) in &writes {
        checked += 1;
        let Some((data, version)) = first.values.get(*key) else {
            return fail(checked, format!("key {key}: no server reports it"), &[]);
        };
        let (data, version) = (data.as_slice(), *version);
        if let Some((highest, op)) = known.highest
            && version < highest
        {
            let reason = format!(
                "key {key}: final version {version} is below acknowledged version {highest} \
                 (#{})",
                paired.ops[op].op_id
            );
            return fail(checked, reason, &[op]);
        }
        if data.is_empty() && version == 0 {
            continue;
        }
        match known.data.get(data) {
            None => {
                let reason = format!(
                    "key {key}: final data {} at version {version} was never written",
                    Data(data)
                );
                return fail(checked, reason, &[]);
            }
            Some(&(Some(acked), op)) if acked != version => {
                let reason = format!(
                    "key {key}: final data {} at version {version}, but #{} wrote it as \
                     version {acked}",
                    Data(data),
                    paired.ops[op].op_id
                );
                return fail(checked, reason, &[op]);
            }
            Some(_) => {}
        }
    }
    Report::pass(NAME, checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Builder, finals};

    /// k: "a" acknowledged at version 1, "b" unknown. j: untouched but read.
    fn history() -> History {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.written(1, w, 1, 5);
        let w = b.invoke(1, Builder::write("k", "b"));
        b.unknown(1, w);
        let w = b.invoke(1, Builder::write("k", "c"));
        b.fail(1, w, "ConnectionLoss");
        let r = b.invoke(2, Builder::read("j", false));
        b.read_ok(2, r, "", 0);
        b.finish()
    }

    #[test]
    fn agreeing_servers_holding_every_acknowledged_write_pass() {
        let h = history();
        for k in [("k", "a", 1), ("k", "b", 2)] {
            let report = check(&h, &finals(3, &[k, ("j", "", 0)]));
            assert!(report.passed(), "{k:?}: {}", report.reason());
        }
    }

    #[test]
    fn servers_disagreeing_fail() {
        let h = history();
        let mut servers = finals(3, &[("k", "a", 1), ("j", "", 0)]);
        servers[2].digest = 0xbad;
        let report = check(&h, &servers);
        assert!(report.reason().contains("digest"), "{}", report.reason());

        let mut servers = finals(3, &[("k", "a", 1), ("j", "", 0)]);
        servers[1]
            .values
            .insert("k".to_string(), (b"b".to_vec(), 2));
        let report = check(&h, &servers);
        assert!(
            report.reason().contains("server 2 holds"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn lost_acknowledged_write_fails() {
        let report = check(&history(), &finals(3, &[("k", "", 0), ("j", "", 0)]));
        assert!(
            report.reason().contains("below acknowledged"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn final_data_nobody_wrote_or_a_failed_write_fails() {
        for data in ["zzz", "c"] {
            let report = check(&history(), &finals(3, &[("k", data, 2), ("j", "", 0)]));
            assert!(
                report.reason().contains("never written"),
                "{}",
                report.reason()
            );
        }
    }

    #[test]
    fn acknowledged_data_at_another_version_fails() {
        let report = check(&history(), &finals(3, &[("k", "a", 2), ("j", "", 0)]));
        assert!(
            report.reason().contains("wrote it as"),
            "{}",
            report.reason()
        );
    }

    #[test]
    fn missing_key_or_no_finals_fail() {
        let report = check(&history(), &finals(3, &[("k", "a", 1)]));
        assert!(
            report.reason().contains("key j: no server"),
            "{}",
            report.reason()
        );
        let report = check(&history(), &[]);
        assert!(
            report.reason().contains("no server reported"),
            "{}",
            report.reason()
        );
    }
}
