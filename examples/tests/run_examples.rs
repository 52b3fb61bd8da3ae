//! Runs every Rust example against a real 3-server ensemble (the `coordd` processes of
//! `coord-testkit`), as a user would after `eval "$(coordd dev | head -2)"`, and checks
//! that each ends well and prints the lines that show its recipe did its job.

use coord_testkit::Cluster;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `target/<profile>`, the directory above this test binary's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn coordd() -> PathBuf {
    if let Some(p) = std::env::var_os("COORDD") {
        return PathBuf::from(p);
    }
    let path = profile_dir().join("coordd");
    assert!(
        path.is_file(),
        "no coordd at {}: build it first with `cargo build -p coord-server --bin coordd` \
         (or set COORDD)",
        path.display()
    );
    path
}

/// Runs example `name` with the ensemble in `COORD_SERVERS` / `COORD_CA`; its stdout.
fn run(cluster: &Cluster, name: &str) -> String {
    let exe = profile_dir().join("examples").join(name);
    assert!(
        exe.is_file(),
        "no example binary at {}: `cargo test` and `cargo nextest run` build the examples; \
         or run `cargo build -p coord-examples --examples`",
        exe.display()
    );
    let servers: Vec<String> = cluster
        .servers
        .iter()
        .map(|s| s.client.to_string())
        .collect();
    let out = Command::new(&exe)
        .env("COORD_SERVERS", servers.join(","))
        .env("COORD_CA", cluster.ca())
        .output()
        .expect("start the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "example {name} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rust_example_runs_to_its_end_on_a_real_ensemble() {
    let cluster = Cluster::builder(coordd())
        .voters(3)
        .start()
        .expect("start the ensemble");
    tokio::time::timeout(Duration::from_secs(60), cluster.wait_stable())
        .await
        .expect("a stable leader within 60 s");

    let out = run(&cluster, "lock");
    assert!(
        out.contains("done: each worker held the lock alone, in queue order"),
        "lock:\n{out}"
    );
    assert_eq!(lines_with(&out, ": released").len(), 3, "lock:\n{out}");

    let out = run(&cluster, "fenced_writer");
    // The writer that lost its session is refused; the store keeps only fenced writes.
    assert!(
        out.contains("storage: write \"a2\" refused"),
        "fenced_writer:\n{out}"
    );
    assert!(
        out.contains("storage: final contents [\"a1\", \"b1\"]"),
        "fenced_writer:\n{out}"
    );

    let out = run(&cluster, "scheduler");
    assert!(
        out.contains("done: 10 jobs run, each acked once"),
        "scheduler:\n{out}"
    );
    assert_eq!(
        lines_with(&out, ": leader (term").len(),
        2,
        "scheduler:\n{out}"
    );

    let out = run(&cluster, "two_phase");
    assert!(
        out.contains("p2: recovered; the decision of txn-commit-")
            && out.contains("is Some(Commit)"),
        "two_phase:\n{out}"
    );
    assert_eq!(
        lines_with(&out, ": committing txn-commit-").len(),
        2,
        "two_phase:\n{out}"
    );
    assert_eq!(
        lines_with(&out, ": aborting txn-abort-").len(),
        3,
        "two_phase:\n{out}"
    );

    // Three-phase: the coordinator stops after one pre-commit; the participants terminate
    // without it and commit; the second transaction aborts on p1's no.
    let out = run(&cluster, "three_phase");
    assert_eq!(
        lines_with(&out, ": committing txn-commit-").len(),
        3,
        "three_phase:\n{out}"
    );
    assert_eq!(
        lines_with(&out, ": aborting txn-abort-").len(),
        3,
        "three_phase:\n{out}"
    );
    assert!(
        !lines_with(&out, "txn-commit-")
            .iter()
            .any(|l| l.contains("aborting")),
        "three_phase:\n{out}"
    );
}
