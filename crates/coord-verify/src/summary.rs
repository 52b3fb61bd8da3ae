//! The per-run summary: operations by type and outcome, notices, faults, checker verdicts, and
//! on a failure the offending slice and the command that replays the run.

use crate::nemesis::FaultKind;
use crate::run::{RunConfig, RunResult};
use coord_check::history::{EntryKind, History, Notice, Op, Outcome};
use coord_check::{Report, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Operation types, in the order the table lists them.
pub const OP_TYPES: [&str; 21] = [
    "read",
    "read+sync",
    "write",
    "cas",
    "multi-cas",
    "create-eph",
    "lock-acquire",
    "lock-release",
    "rlock-acquire",
    "rlock-release",
    "fenced-write",
    "campaign",
    "resign",
    "queue-put",
    "queue-take",
    "queue-ack",
    "queue-release",
    "txn-begin",
    "txn-vote",
    "txn-decide",
    "txn-learn",
];

/// The table name of an operation.
pub fn op_type(op: &Op) -> &'static str {
    match op {
        Op::Read { sync: false, .. } => "read",
        Op::Read { sync: true, .. } => "read+sync",
        Op::Write { .. } => "write",
        Op::Cas { .. } => "cas",
        Op::MultiCas { .. } => "multi-cas",
        Op::CreateEphemeral { .. } => "create-eph",
        Op::LockAcquire { .. } => "lock-acquire",
        Op::LockRelease { .. } => "lock-release",
        Op::RecipeLock { .. } => "rlock-acquire",
        Op::RecipeUnlock { .. } => "rlock-release",
        Op::FencedWrite { .. } => "fenced-write",
        Op::Campaign { .. } => "campaign",
        Op::Resign { .. } => "resign",
        Op::QueuePut { .. } => "queue-put",
        Op::QueueTake { .. } => "queue-take",
        Op::QueueAck { .. } => "queue-ack",
        Op::QueueRelease { .. } => "queue-release",
        Op::TxnBegin { .. } => "txn-begin",
        Op::TxnVote { .. } => "txn-vote",
        Op::TxnDecide { .. } => "txn-decide",
        Op::TxnLearn { .. } => "txn-learn",
    }
}

/// Counts of operations by type: (ok, fail, unknown).
pub fn op_counts(history: &History) -> BTreeMap<&'static str, [u64; 3]> {
    let mut types = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, [u64; 3]> = BTreeMap::new();
    for e in &history.entries {
        match &e.kind {
            EntryKind::Invoke { op_id, op } => {
                types.insert(*op_id, op_type(op));
            }
            EntryKind::Complete { op_id, outcome } => {
                let t = types.get(op_id).copied().unwrap_or("?");
                let slot = match outcome {
                    Outcome::Ok { .. } => 0,
                    Outcome::Fail { .. } => 1,
                    Outcome::Unknown { .. } => 2,
                };
                counts.entry(t).or_default()[slot] += 1;
            }
            EntryKind::Notice(_) => {}
        }
    }
    counts
}

/// The command line that replays `cfg`.
pub fn replay_command(cfg: &RunConfig) -> String {
    let faults = if cfg.faults.is_empty() {
        "none".to_string()
    } else {
        cfg.faults
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "coord-verify --nodes {} --duration {} --seed {} --faults {faults} --workers {} \
         --lock-workers {} --recipe-workers {} --keys {} --session-timeout-ms {} \
         --op-timeout-ms {}",
        cfg.nodes,
        cfg.duration.as_secs(),
        cfg.seed,
        cfg.workers,
        cfg.lock_workers,
        cfg.recipe_workers,
        cfg.keys,
        cfg.session_timeout.as_millis(),
        cfg.op_timeout.as_millis()
    )
}

fn secs(ns: u64) -> String {
    format!("{:.1}s", ns as f64 / 1e9)
}

/// Each checker's verdict and count, then each failure's reason and slice.
pub fn render_reports(reports: &[Report]) -> String {
    let mut out = String::new();
    for rep in reports {
        let verdict = match &rep.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail { .. } => "FAIL",
        };
        let _ = writeln!(
            out,
            "  {:<16}{verdict}  ({} checked)",
            rep.checker, rep.checked
        );
    }
    for rep in reports {
        if let Verdict::Fail { reason, slice } = &rep.verdict {
            let _ = writeln!(out, "\n{} FAILED: {reason}", rep.checker);
            let _ = write!(out, "{}", History::render(slice));
        }
    }
    out
}

/// What the recipe workers did: holds, fenced writes, leaders, items, transactions.
pub fn render_recipes(history: &History, drained: u64) -> String {
    use coord_check::history::OkResult;
    use std::collections::{BTreeSet, HashMap};
    let mut ops: HashMap<u64, &Op> = HashMap::new();
    let (mut holds, mut fenced_ok, mut refused, mut leaders) = (0u64, 0u64, 0u64, 0u64);
    let mut terms = BTreeSet::new();
    let (mut put, mut consumed) = (0u64, 0u64);
    let mut takes: HashMap<&str, u64> = HashMap::new();
    let mut decided: BTreeMap<&str, bool> = BTreeMap::new();
    for e in &history.entries {
        match &e.kind {
            EntryKind::Invoke { op_id, op } => {
                ops.insert(*op_id, op);
            }
            EntryKind::Complete { op_id, outcome } => {
                let Some(op) = ops.get(op_id) else { continue };
                match (op, outcome) {
                    (Op::RecipeLock { .. }, Outcome::Ok { .. }) => holds += 1,
                    (Op::FencedWrite { .. }, Outcome::Ok { .. }) => fenced_ok += 1,
                    (Op::FencedWrite { .. }, Outcome::Fail { error })
                        if error == "StaleSequencer" =>
                    {
                        refused += 1
                    }
                    (
                        Op::Campaign { .. },
                        Outcome::Ok {
                            result: OkResult::Leading { term },
                            ..
                        },
                    ) => {
                        leaders += 1;
                        terms.insert(*term);
                    }
                    (Op::QueuePut { .. }, Outcome::Ok { .. }) => put += 1,
                    (
                        Op::QueueTake { .. },
                        Outcome::Ok {
                            result: OkResult::Taken { item, .. },
                            ..
                        },
                    ) => *takes.entry(item).or_default() += 1,
                    (Op::QueueAck { .. }, Outcome::Ok { .. }) => consumed += 1,
                    (
                        Op::TxnDecide { txn } | Op::TxnLearn { txn, .. },
                        Outcome::Ok {
                            result: OkResult::Decided { commit },
                            ..
                        },
                    ) => {
                        decided.insert(txn, *commit);
                    }
                    _ => {}
                }
            }
            EntryKind::Notice(_) => {}
        }
    }
    let redelivered = takes.values().filter(|&&n| n > 1).count();
    let commits = decided.values().filter(|&&c| c).count();
    format!(
        "\nrecipes: {holds} lock holds, {fenced_ok} fenced writes accepted, {refused} stale \
         fenced writes refused; {leaders} leaders in {} terms; {put} items put, {consumed} \
         consumed, {redelivered} delivered more than once, drained {drained}; {} txns decided \
         ({commits} commit, {} abort)\n",
        terms.len(),
        decided.len(),
        decided.len() - commits
    )
}

/// Renders the summary of a run.
pub fn render(cfg: &RunConfig, r: &RunResult) -> String {
    let mut out = String::new();
    let faults = if cfg.faults.is_empty() {
        "none".to_string()
    } else {
        cfg.faults
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(",")
    };
    let _ = writeln!(
        out,
        "coord-verify: {} nodes, {} s, seed {}, faults {faults}, {} workers + {} lock workers + {} \
         recipe workers of each kind + 1 observer, {} keys",
        cfg.nodes,
        cfg.duration.as_secs(),
        cfg.seed,
        cfg.workers,
        cfg.lock_workers,
        cfg.recipe_workers,
        cfg.keys
    );
    let _ = writeln!(
        out,
        "session timeout {} ms, election bound {} ms (ZAB timing {} ms; longest of {} stretches \
         without a leader {:.1} s; expiry scan {} ms), op timeout {} ms",
        r.params.session_timeout_ms,
        r.params.election_bound_ms,
        crate::run::zab_election_bound().as_millis(),
        r.leaderless.stretches,
        r.leaderless.longest.as_secs_f64(),
        crate::run::EXPIRY_SCAN.as_millis(),
        cfg.op_timeout.as_millis()
    );

    // Operations.
    let counts = op_counts(&r.history);
    let _ = writeln!(
        out,
        "\noperations ({} history entries):",
        r.history.entries.len()
    );
    let _ = writeln!(
        out,
        "  {:<14}{:>8}{:>8}{:>8}{:>8}",
        "type", "ok", "fail", "unknown", "total"
    );
    let mut total = [0u64; 3];
    for t in OP_TYPES {
        let c = counts.get(t).copied().unwrap_or_default();
        for k in 0..3 {
            total[k] += c[k];
        }
        let _ = writeln!(
            out,
            "  {t:<14}{:>8}{:>8}{:>8}{:>8}",
            c[0],
            c[1],
            c[2],
            c.iter().sum::<u64>()
        );
    }
    let _ = writeln!(
        out,
        "  {:<14}{:>8}{:>8}{:>8}{:>8}",
        "all",
        total[0],
        total[1],
        total[2],
        total.iter().sum::<u64>()
    );
    if r.cache.hits + r.cache.misses > 0 {
        let _ = writeln!(
            out,
            "  cached reads (checked as linearizable): {} from a client cache, {} from a server; {} invalidations",
            r.cache.hits, r.cache.misses, r.cache.invalidations
        );
    }
    if r.cut_short > 0 {
        let _ = writeln!(
            out,
            "  ({} operations were cut short at the end and count as unknown)",
            r.cut_short
        );
    }

    // Notices.
    let mut started = 0;
    let mut ended: BTreeMap<String, u64> = BTreeMap::new();
    let (mut disconnects, mut watches, mut events, mut lost, mut seen) = (0, 0, 0, 0, 0);
    let (mut closing, mut drained) = (0, 0);
    for e in &r.history.entries {
        if let EntryKind::Notice(n) = &e.kind {
            match n {
                Notice::SessionStarted { .. } => started += 1,
                Notice::SessionEnded { reason, .. } => {
                    *ended.entry(reason.clone()).or_default() += 1
                }
                Notice::Disconnected { .. } => disconnects += 1,
                Notice::WatchAdded { .. } => watches += 1,
                Notice::WatchEvent { .. } => events += 1,
                Notice::WatchLost { .. } => lost += 1,
                Notice::EphemeralsSeen { .. } => seen += 1,
                Notice::Closing { .. } => closing += 1,
                Notice::QueueDrained { .. } => drained += 1,
            }
        }
    }
    let ended_text: Vec<String> = ended.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "\nsessions: {started} started ({closing} closed by their process), ended: {}; {disconnects} disconnects; {watches} watches added, {events} watch events, {lost} watches given up by a server that could not replay a gap; {seen} ephemeral observations",
        if ended_text.is_empty() {
            "none".to_string()
        } else {
            ended_text.join(", ")
        }
    );

    if cfg.recipe_workers > 0 {
        out.push_str(&render_recipes(&r.history, drained));
        if let Some(e) = &r.drain_error {
            let _ = writeln!(out, "  the queue drain FAILED: {e}");
        }
    }

    // Faults.
    let _ = writeln!(out, "\nfaults ({} rounds):", r.faults.len());
    for k in FaultKind::ALL {
        let of_kind: Vec<_> = r.faults.iter().filter(|f| f.kind == k).collect();
        let worst = of_kind
            .iter()
            .filter_map(|f| f.recovery.as_ref().ok())
            .max()
            .map(|d| format!(", slowest recovery {:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:<12}{:>4}{worst}", k.name(), of_kind.len());
    }
    for f in &r.faults {
        let rec = match &f.recovery {
            Ok(d) => format!("stable {:.1}s after heal", d.as_secs_f64()),
            Err(e) => format!("FAILED: {e}"),
        };
        let _ = writeln!(
            out,
            "  [{:>7} – {:>7}] {}; {rec}",
            secs(f.start_ns),
            secs(f.healed_ns),
            f.what
        );
    }
    if let Some(e) = &r.nemesis_error {
        let _ = writeln!(out, "  nemesis stopped early: {e}");
    }

    // Final state.
    if let Some(e) = &r.end_error {
        let _ = writeln!(out, "\nend of run FAILED: {e}");
    } else {
        let digests: Vec<String> = r
            .finals
            .iter()
            .map(|f| format!("n{} zxid {:#x} digest {:#x}", f.id, f.zxid, f.digest))
            .collect();
        let _ = writeln!(out, "\nfinal state: {}", digests.join("; "));
    }

    // Checkers.
    let _ = writeln!(out, "\ncheckers:");
    match (&r.reports, &r.check_error) {
        (_, Some(e)) => {
            let _ = writeln!(out, "  could not run: {e}");
        }
        (None, None) => {
            let _ = writeln!(out, "  not run (--no-check)");
        }
        (Some(reports), None) => out.push_str(&render_reports(reports)),
    }

    let t = &r.timings;
    let _ = writeln!(
        out,
        "\ntimings: setup {:.1}s, faults {:.1}s, end {:.1}s, check {:.1}s",
        t.setup.as_secs_f64(),
        t.faults.as_secs_f64(),
        t.end.as_secs_f64(),
        t.check.as_secs_f64()
    );
    if let Some(dir) = &r.kept_dir {
        let _ = writeln!(out, "ensemble directory kept: {}", dir.display());
    }
    if r.passed() {
        let _ = writeln!(out, "\nresult: PASS (seed {})", cfg.seed);
    } else {
        let _ = writeln!(out, "\nresult: FAIL (seed {})", cfg.seed);
        let _ = writeln!(out, "replay: {}", replay_command(cfg));
    }
    out
}
