//! `coord-verify`: runs a Coord ensemble under a seeded nemesis, records what the clients saw,
//! checks the history, prints a summary, and exits 0 only when every checker passed and the
//! ensemble recovered after every round.
//!
//! ```text
//! coord-verify [--nodes 3] [--duration 60] [--seed X] [--faults all|none|kill,pause,...]
//!              [--workers 12] [--lock-workers 3] [--recipe-workers 2] [--keys 8]
//!              [--session-timeout-ms 3000]
//!              [--op-timeout-ms 4000] [--history FILE] [--coordd PATH] [--keep-dir] [--no-check]
//! coord-verify --recheck FILE        (the checkers on a run saved with --history FILE)
//! ```
//!
//! Exit codes: 0 passed, 1 failed (a checker, or the ensemble did not recover), 2 the run could
//! not start (bad flags, no coordd, no ensemble), 130 interrupted.

use clap::Parser;
use coord_verify::nemesis::FaultKind;
use coord_verify::run::{self, RunConfig};
use coord_verify::summary;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "coord-verify",
    version,
    about = "Jepsen-style verification of a Coord ensemble under faults"
)]
struct Args {
    /// Voting servers in the ensemble (3 or 5; any odd number up to 9 works).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=9))]
    nodes: u64,
    /// Seconds of faults (setup and the end phase come on top).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seed of the nemesis and of every process's choices (default: random, always printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Faults to inject: a comma-separated list of kill, pause, partition, slow-disk,
    /// restart-all; or `all`, or `none`. Partitions need root (network namespaces).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Register workers (processes doing reads, writes, CAS, multi-CAS).
    #[arg(long, default_value_t = 12)]
    workers: usize,
    /// Lock workers (all on one lock).
    #[arg(long, default_value_t = 3)]
    lock_workers: usize,
    /// Recipe workers of each kind (coord-recipes under the nemesis): N lock workers, N
    /// election candidates, N queue producers, N queue consumers and ceil(N/2) 2PC groups
    /// (a coordinator and three participants). 0 disables them.
    #[arg(long, default_value_t = 2)]
    recipe_workers: usize,
    /// Register keys.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    keys: u64,
    /// Session timeout asked for, in ms (the servers grant 1000..=10000 with tick 500).
    #[arg(long, default_value_t = 3000)]
    session_timeout_ms: u64,
    /// Bound on one operation, in ms; past it the outcome is unknown.
    #[arg(long, default_value_t = 4000)]
    op_timeout_ms: u64,
    /// Write the history as JSON to FILE, and the servers' final states and the checkers'
    /// bounds to FILE.finals.json (for --recheck).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Run only the checkers, on a history saved with --history FILE; no ensemble.
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    recheck: Option<PathBuf>,
    /// The coordd binary (default: $COORDD, else the coordd next to this program or in its
    /// parent directory).
    #[arg(long, env = "COORDD")]
    coordd: Option<PathBuf>,
    /// Keep the ensemble's directory (configs, data, logs) and print where it is.
    #[arg(long)]
    keep_dir: bool,
    /// Record and summarise only; do not run the checkers.
    #[arg(long)]
    no_check: bool,
}

/// The coordd to run: the flag, else the one next to this program (target/<profile>/), else
/// one directory up (this program run from target/<profile>/deps/).
fn find_coordd(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("--coordd {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own path: {e}"))?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    for d in [Some(dir.as_path()), dir.parent()].into_iter().flatten() {
        let candidate = d.join("coordd");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no coordd next to {}: build it (cargo build -p coord-server --bin coordd) or pass \
         --coordd PATH / set COORDD",
        exe.display()
    ))
}

/// Resolves when the user asks the run to stop (Ctrl-C or SIGTERM).
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// What --history writes next to the history.
#[derive(serde::Serialize, serde::Deserialize)]
struct Finals {
    params: coord_check::Params,
    finals: Vec<coord_check::ServerFinal>,
}

fn finals_path(history: &std::path::Path) -> PathBuf {
    let mut p = history.as_os_str().to_owned();
    p.push(".finals.json");
    PathBuf::from(p)
}

fn write_json<T: serde::Serialize>(p: &std::path::Path, value: &T) -> Result<(), String> {
    let f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::to_writer(std::io::BufWriter::new(f), value)
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes the history and the finals of a run.
fn save(path: &std::path::Path, r: &run::RunResult) -> Result<(), String> {
    write_json(path, &r.history)?;
    let finals = Finals {
        params: r.params.clone(),
        finals: r.finals.clone(),
    };
    write_json(&finals_path(path), &finals)
}

/// --recheck: the checkers on a saved run.
fn recheck(path: &std::path::Path) -> ExitCode {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let loaded = read(path).and_then(|h| {
        let history: coord_check::history::History =
            serde_json::from_slice(&h).map_err(|e| format!("{}: {e}", path.display()))?;
        let fp = finals_path(path);
        let f: Finals =
            serde_json::from_slice(&read(&fp)?).map_err(|e| format!("{}: {e}", fp.display()))?;
        Ok((history, f))
    });
    let (history, f) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("coord-verify: --recheck: {e}");
            return ExitCode::from(2);
        }
    };
    let reports = coord_check::check_all(&history, &f.finals, &f.params);
    print!("{}", summary::render_reports(&reports));
    if reports.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,coord_verify=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(path) = &args.recheck {
        return recheck(path);
    }
    let faults = match FaultKind::parse_list(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("coord-verify: --faults: {e}");
            return ExitCode::from(2);
        }
    };
    let coordd = match find_coordd(args.coordd) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coord-verify: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = RunConfig {
        nodes: args.nodes as usize,
        duration: Duration::from_secs(args.duration),
        seed: args.seed.unwrap_or_else(rand::random),
        faults,
        workers: args.workers,
        lock_workers: args.lock_workers,
        recipe_workers: args.recipe_workers,
        keys: args.keys as usize,
        coordd,
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        keep_dir: args.keep_dir,
        check: !args.no_check,
    };
    eprintln!(
        "coord-verify: seed {} (replay: {})",
        cfg.seed,
        summary::replay_command(&cfg)
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coord-verify: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Dropping the run future (on a signal) drops the ensemble: processes killed, namespaces
    // deleted.
    let result = rt.block_on(async {
        tokio::select! {
            r = run::run(&cfg) => Some(r),
            () = interrupted() => None,
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        None => {
            eprintln!(
                "coord-verify: interrupted; the ensemble is stopped (seed {})",
                cfg.seed
            );
            ExitCode::from(130)
        }
        Some(Err(e)) => {
            eprintln!("coord-verify: the run could not start: {e}");
            ExitCode::from(2)
        }
        Some(Ok(r)) => {
            if let Some(path) = &args.history {
                match save(path, &r) {
                    Ok(()) => eprintln!("coord-verify: history written to {}", path.display()),
                    Err(e) => eprintln!("coord-verify: cannot write the history: {e}"),
                }
            }
            print!("{}", summary::render(&cfg, &r));
            if r.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
