//! Histories of what clients saw while a nemesis broke the ensemble, and the checkers that
//! judge them against Coord's promises.
//!
//! ```text
//!   runner ──records──> History ──┬──> linearizable   registers: Write/Cas/MultiCas/synced Read
//!   servers ──status──> finals  ──┤──> session-order  per session: zxids never go back, RYW
//!                                 ├──> watches        persistent watches: ordered, gap-free
//!                                 ├──> ephemerals     live while the session is, gone after
//!                                 ├──> locks          no two holders at once, fences grow
//!                                 ├──> convergence    servers agree, acknowledged writes kept
//!                                 │    (the recipes of coord-recipes under the nemesis:)
//!                                 ├──> recipe-locks   Lock: one live holder, fenced writes
//!                                 ├──> election       one leader per term and at a time
//!                                 ├──> queue          LockingQueue: each item consumed once
//!                                 └──> 2pc            one decision, commit only on all yes
//! ```
//!
//! Each checker is a module with a `check` function returning a [`Report`]; [`check_all`]
//! runs the ten in that order. Checkers never panic on a malformed history (a `Complete`
//! without its `Invoke`, a reused op id, an `Ok` result of the wrong kind, time going back):
//! they fail with a "malformed history" reason that points at the offending entries, since a
//! history the runner recorded wrongly proves nothing either way.
//!
//! A failing [`Verdict`] carries a small slice of the history (at most [`MAX_SLICE`] entries,
//! in recording order) that shows the violation; [`history::History::render`] prints it.
#![warn(missing_docs)]

pub mod convergence;
pub mod election;
pub mod ephemerals;
mod fasthash;
pub mod history;
mod holds;
pub mod linearizable;
pub mod locks;
mod ops;
pub mod queue;
pub mod recipe_locks;
pub mod session_order;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests_all;
pub mod txn;
pub mod watches;

use history::{Entry, History};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most entries a failing verdict's slice holds.
pub const MAX_SLICE: usize = 30;

/// Timing bounds the checkers allow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    /// The negotiated session timeout of the run's sessions.
    pub session_timeout_ms: u64,
    /// How long electing a new leader may take (added to the timeout for ephemerals).
    pub election_bound_ms: u64,
}

/// What one server holds after the run, once everything is healed and converged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFinal {
    /// The server's id in the ensemble.
    pub id: u64,
    /// The server's tree digest and last applied zxid (from its status).
    pub digest: u64,
    /// The server's last applied zxid.
    pub zxid: u64,
    /// Each register key's (data, version), read on this server after the run.
    pub values: BTreeMap<String, (Vec<u8>, i32)>,
}

/// A checker's judgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    /// No violation found.
    Pass,
    /// `slice` is the smallest part of the history that shows the violation.
    Fail {
        /// What is wrong, in words.
        reason: String,
        /// The entries that show it, in recording order.
        slice: Vec<Entry>,
    },
}

/// One checker's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The checker's name ("linearizable", "session-order", ...).
    pub checker: String,
    /// Its judgement.
    pub verdict: Verdict,
    /// How many items (operations, intervals, events…) it examined.
    pub checked: u64,
}

impl Report {
    /// Whether the checker found nothing wrong.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass)
    }

    /// Why it failed ("" when it passed).
    pub fn reason(&self) -> &str {
        match &self.verdict {
            Verdict::Pass => "",
            Verdict::Fail { reason, .. } => reason,
        }
    }

    /// The failure for the first of `total` violations: its reason (with the count when
    /// there are more) and the slice of its entries (see [`Report::fail`]).
    pub(crate) fn first_of(
        checker: &str,
        checked: u64,
        mut reason: String,
        total: usize,
        history: &History,
        indices: impl IntoIterator<Item = usize>,
    ) -> Report {
        if total > 1 {
            reason.push_str(&format!(" ({total} violations in all)"));
        }
        Report::fail(checker, checked, reason, history, indices)
    }

    /// Pass if `violations` is empty, else the failure for the first of them (see
    /// [`Report::first_of`]).
    pub(crate) fn from_violations(
        checker: &str,
        checked: u64,
        violations: &[Violation],
        history: &History,
    ) -> Report {
        match violations.first() {
            None => Report::pass(checker, checked),
            Some(first) => Report::first_of(
                checker,
                checked,
                first.what.clone(),
                violations.len(),
                history,
                first.entries.iter().copied(),
            ),
        }
    }

    pub(crate) fn pass(checker: &str, checked: u64) -> Report {
        Report {
            checker: checker.to_string(),
            verdict: Verdict::Pass,
            checked,
        }
    }

    /// A failure whose slice is the entries at `indices` of `history` (sorted, deduplicated,
    /// cut to [`MAX_SLICE`] keeping the first ones given).
    pub(crate) fn fail(
        checker: &str,
        checked: u64,
        reason: String,
        history: &History,
        indices: impl IntoIterator<Item = usize>,
    ) -> Report {
        let mut picked: Vec<usize> = Vec::new();
        for i in indices {
            if picked.len() == MAX_SLICE {
                break;
            }
            if i < history.entries.len() && !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked.sort_unstable();
        Report {
            checker: checker.to_string(),
            verdict: Verdict::Fail {
                reason,
                slice: picked
                    .into_iter()
                    .map(|i| history.entries[i].clone())
                    .collect(),
            },
            checked,
        }
    }
}

/// One broken promise: what, and the history entries (by index) that show it.
pub(crate) struct Violation {
    pub(crate) what: String,
    pub(crate) entries: Vec<usize>,
}

/// Runs every checker, in the order linearizable, session-order, watches, ephemerals, locks,
/// convergence, recipe-locks, election, queue, 2pc.
pub fn check_all(history: &History, finals: &[ServerFinal], params: &Params) -> Vec<Report> {
    let paired = ops::pair(history);
    vec![
        linearizable::check_paired(&paired, finals, linearizable::Budget::default()),
        session_order::check_paired(&paired),
        watches::check_paired(&paired),
        ephemerals::check_paired(&paired, params),
        locks::check_paired(&paired),
        convergence::check_paired(&paired, finals),
        recipe_locks::check_paired(&paired),
        election::check_paired(&paired),
        queue::check_paired(&paired),
        txn::check_paired(&paired),
    ]
}
