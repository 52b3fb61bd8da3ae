//! The short verification run of the README's test command: 3 nodes, every fault, a fixed
//! seed, about 105 s. It must pass, and its summary must show faults of every kind,
//! operations of every outcome, and the recipe workers (coord-recipes' lock, election,
//! queue and 2PC) doing real work, judged by their checkers. Needs root (network
//! namespaces for partitions).

mod common;
use std::process::Command;

/// The count after `name` on a summary line `  <name>   <count>…`.
fn count_after(summary: &str, name: &str) -> Option<u64> {
    summary.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()? == name).then(|| words.next()?.trim_end_matches(',').parse().ok())?
    })
}

#[test]
fn a_short_run_under_every_fault_passes() {
    let coordd = common::coordd();
    // The server by environment rather than flag keeps "coordd" out of the verifier's own
    // command line (a `pkill -f coordd` elsewhere on the box then spares it). The recipe
    // workers are in the default mix (`--recipe-workers 2`).
    let out = Command::new(common::verify_bin())
        .args(["--nodes", "3", "--duration", "90", "--seed", "20261122"])
        .args(["--faults", "all"])
        .env("COORDD", &coordd)
        .output()
        .expect("run coord-verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    let context = format!(
        "{stdout}\n--- stderr (last lines) ---\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.status.success(),
        "coord-verify exited with {}\n{context}",
        out.status
    );
    for kind in ["kill", "pause", "partition", "slow-disk", "restart-all"] {
        let n = count_after(&stdout, kind);
        assert!(
            n.is_some_and(|n| n > 0),
            "no {kind} fault injected\n{context}"
        );
    }
    // The "all" row of the operations table: ok, fail, unknown, total.
    let all: Vec<u64> = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("all"))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(all.len(), 4, "no totals row\n{context}");
    assert!(
        all[0] > 0 && all[1] > 0 && all[2] > 0,
        "operations of every outcome (ok {}, fail {}, unknown {})\n{context}",
        all[0],
        all[1],
        all[2]
    );
    // The recipe workers did real work (the ok column of their rows): locks held, leaders
    // elected, items consumed, transactions decided, fenced writes accepted.
    for row in [
        "rlock-acquire",
        "fenced-write",
        "campaign",
        "queue-put",
        "queue-ack",
        "txn-decide",
        "txn-learn",
    ] {
        let ok = count_after(&stdout, row);
        assert!(
            ok.is_some_and(|n| n > 0),
            "no successful {row} operation\n{context}"
        );
    }
    // Every recipe checker judged something and passed.
    for checker in ["recipe-locks", "election", "queue", "2pc"] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(checker));
        assert!(
            line.is_some_and(|l| l.contains("PASS") && !l.contains("(0 checked)")),
            "checker {checker}: {line:?}\n{context}"
        );
    }
    assert!(
        stdout.contains("drained 1"),
        "the queue was not drained\n{context}"
    );
    assert!(stdout.contains("result: PASS"), "{context}");
}
