//! One verification run, start to verdict.
//!
//! ```text
//!   start ensemble ─ wait stable ─ create /verify tree ─ spawn processes
//!        ─ nemesis rounds for `duration` ─ stop processes ─ heal, wait stable
//!        ─ drain the recipe queue ─ wait converged ─ read every key on every server
//!        ─ stop ensemble ─ check_all(history, finals)
//! ```
//!
//! Every wait is bounded; a bound that runs out is reported as a failure of the run, never a
//! hang or a panic. The ensemble's processes and namespaces go when the [`Cluster`] drops,
//! also when the run is cancelled (Ctrl-C drops this future).

use crate::nemesis::{self, FaultKind, FaultRecord, Leaderless, NemesisConfig, Schedule};
use crate::recipe_workers;
use crate::record::Recorder;
use crate::workers::{self, EPH_DIR, Env, LOCK_DIR, RegisterRole, key_path};
use coord_check::history::{EntryKind, History, Notice};
use coord_check::{Params, Report, ServerFinal};
use coord_client::{Client, CreateOptions, ErrorCode};
use coord_testkit::Cluster;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The lock every lock worker contends for.
pub const LOCK_NAME: &str = "l0";

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Voting servers (3 or 5).
    pub nodes: usize,
    /// How long the nemesis runs (the run takes longer: setup and the end phase).
    pub duration: Duration,
    /// Seeds the nemesis and every process's choices.
    pub seed: u64,
    /// Enabled fault kinds (empty: none).
    pub faults: Vec<FaultKind>,
    /// Register workers.
    pub workers: usize,
    /// Lock workers (all on one lock).
    pub lock_workers: usize,
    /// Recipe workers of each kind: that many recipe lock workers, election candidates,
    /// queue producers and queue consumers, and half as many (rounded up) 2PC groups of a
    /// coordinator and three participants. 0: none.
    pub recipe_workers: usize,
    /// Register keys.
    pub keys: usize,
    /// The `coordd` binary.
    pub coordd: PathBuf,
    /// Session timeout asked for.
    pub session_timeout: Duration,
    /// Bound on one operation.
    pub op_timeout: Duration,
    /// Keep the ensemble's directory (configs, data, logs).
    pub keep_dir: bool,
    /// Run the checkers.
    pub check: bool,
}

/// Durations of the run's phases.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Ensemble start to first operation.
    pub setup: Duration,
    /// The nemesis phase.
    pub faults: Duration,
    /// Stopping processes, healing, converging, reading finals.
    pub end: Duration,
    /// The checkers.
    pub check: Duration,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The recorded history.
    pub history: History,
    /// The rounds of faults.
    pub faults: Vec<FaultRecord>,
    /// Why the nemesis stopped early (a fault not applied or healed, no recovery).
    pub nemesis_error: Option<String>,
    /// Why the end phase failed (no convergence, finals not read).
    pub end_error: Option<String>,
    /// Why the recipe queue could not be drained after the faults.
    pub drain_error: Option<String>,
    /// Each server's final state.
    pub finals: Vec<ServerFinal>,
    /// The checkers' bounds.
    pub params: Params,
    /// Stretches without a leader that can commit, as the nemesis sampled them.
    pub leaderless: Leaderless,
    /// The checkers' reports (`None` when not checked or they could not run).
    pub reports: Option<Vec<Report>>,
    /// Why the checkers could not run.
    pub check_error: Option<String>,
    /// Where the ensemble's directory was kept.
    pub kept_dir: Option<PathBuf>,
    /// Durations.
    pub timings: Timings,
    /// Processes stopped before their last operation completed.
    pub cut_short: usize,
    /// The cached readers' cache counts.
    pub cache: coord_client::CacheStats,
}

impl RunResult {
    /// Whether the ensemble recovered after every round and the end phase succeeded.
    pub fn recovered(&self) -> bool {
        self.nemesis_error.is_none() && self.end_error.is_none() && self.drain_error.is_none()
    }

    /// Whether the run passed: recovered, and every checker passed (when they ran; with
    /// `check` off, recovering is all).
    pub fn passed(&self) -> bool {
        self.recovered()
            && self.check_error.is_none()
            && self.reports.as_ref().is_none_or(|r| {
                !r.is_empty()
                    && r.iter()
                        .all(|r| matches!(r.verdict, coord_check::Verdict::Pass))
            })
    }
}

/// How long electing a leader may take, from the ensemble's ZAB timing: a follower notices a
/// silent leader after `sync_limit` ticks and a new leader has `init_limit` ticks for
/// discovery and sync; doubled for one failed attempt (a candidate that dies, or every server
/// starting at once after a restart of the whole ensemble).
pub fn zab_election_bound() -> Duration {
    let z = coord_server::config::ZabTuning::default();
    Duration::from_millis(2 * (z.sync_limit_ticks + z.init_limit_ticks) * z.tick_ms)
}

/// The election bound the checkers get: [`zab_election_bound`], or the longest stretch the
/// nemesis saw without a leader that can commit (plus its sampling period) if that was longer
/// — a restart of the whole ensemble is down before any election starts, and a new leader
/// gives every live session a fresh timeout, so a dead session may outlive its timeout by that
/// whole stretch. Rounds are spaced by more than the session timeout, so one stretch is all
/// an expiry can overlap.
///
/// On top comes [`EXPIRY_SCAN`]: the leader looks for sessions past their timeout once per
/// server tick, so a dead session is expired up to a tick after its timeout ran out; and two
/// client-cache leases (`cache_lease_ms`, the servers' default): a server of a new leader
/// accepts no session for a lease, so the fresh timeouts count from the end of it, and an
/// expiry (a session's end invalidates every cached node) is applied once every caching
/// session acknowledged, or at most a lease after it committed.
pub fn election_bound(seen: &Leaderless) -> Duration {
    let lease = Duration::from_millis(coord_server::config::Config::default().cache_lease_ms);
    zab_election_bound().max(seen.longest + Duration::from_millis(500)) + EXPIRY_SCAN + lease * 2
}

/// The period of the leader's scan for expired sessions: the servers' `tick_ms` (coord-testkit
/// writes `tick_ms = 500` into every server's config).
pub const EXPIRY_SCAN: Duration = Duration::from_millis(500);

const STABLE_BOUND: Duration = Duration::from_secs(60);
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// Creates `/verify`, the keys (empty data, version 0), `/verify/eph`, the lock's parent and
/// the recipes' nodes, retrying for up to 30 s.
async fn setup_tree(cluster: &Cluster, keys: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut paths = vec![
        "/verify".to_string(),
        "/verify/k".to_string(),
        EPH_DIR.to_string(),
        LOCK_DIR.to_string(),
        format!("{LOCK_DIR}/{LOCK_NAME}"),
    ];
    paths.extend((0..keys).map(|k| key_path(&k.to_string())));
    paths.extend(recipe_workers::setup_paths());
    let mut last = String::new();
    while Instant::now() < deadline {
        let cfg = cluster
            .client_config()
            .connect_timeout(Duration::from_secs(3));
        let c = match Client::connect(cfg).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut done = true;
        for p in &paths {
            match c.create(p, b"", CreateOptions::persistent()).await {
                Ok(_) => {}
                Err(e) if e.code() == ErrorCode::NodeExists => {}
                Err(e) => {
                    last = format!("create {p}: {e}");
                    done = false;
                    break;
                }
            }
        }
        let _ = c.close().await;
        if done {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not create the /verify tree: {last}"))
}

/// Reads every key on server `i` after a sync, through a session pinned to it.
async fn read_values(
    cluster: &Cluster,
    i: usize,
    keys: usize,
) -> Result<BTreeMap<String, (Vec<u8>, i32)>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let cfg = cluster
            .config_for(i)
            .connect_timeout(Duration::from_secs(3));
        let c = match Client::connect(cfg).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let read = async {
            c.sync("/verify/k").await?;
            let mut values = BTreeMap::new();
            for k in 0..keys {
                let key = k.to_string();
                let (data, stat) = c.get_data(&key_path(&key)).await?;
                values.insert(key, (data, stat.version));
            }
            Ok::<_, coord_client::Error>(values)
        };
        let result = tokio::time::timeout(Duration::from_secs(10), read).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
        match result {
            Ok(Ok(values)) => return Ok(values),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer within 10 s".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "server n{}: could not read the keys: {last}",
        i + 1
    ))
}

/// Heals every fault and waits for a stable ensemble.
async fn heal(cluster: &mut Cluster) -> Result<(), String> {
    tokio::task::block_in_place(|| cluster.heal_all()).map_err(|e| format!("heal: {e}"))?;
    cluster.try_wait_stable(STABLE_BOUND).await.map(|_| ())
}

/// How long draining the recipe queue may take: the claims of consumers whose sessions
/// were not closed go with their expiry.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// Heals, waits for a stable and converged ensemble, and reads every server's final state.
async fn finals(cluster: &mut Cluster, keys: usize) -> Result<Vec<ServerFinal>, String> {
    let crashed: Vec<String> = cluster
        .reap_exited()
        .into_iter()
        .map(|(i, status)| format!("n{} exited on its own ({status})", i + 1))
        .collect();
    if !crashed.is_empty() {
        return Err(crashed.join("; "));
    }
    heal(cluster).await?;
    cluster.try_wait_converged(STABLE_BOUND).await?;
    let mut values = Vec::new();
    for i in 0..cluster.len() {
        values.push(read_values(cluster, i, keys).await?);
    }
    // The reading sessions were txns too: converge again before taking digests.
    cluster.try_wait_converged(STABLE_BOUND).await?;
    let mut out = Vec::new();
    for (i, values) in values.into_iter().enumerate() {
        let status = cluster
            .status(i)
            .await
            .ok_or_else(|| format!("server n{} did not report its status", i + 1))?;
        out.push(ServerFinal {
            id: status.id,
            digest: status.digest,
            zxid: status.zxid,
            values,
        });
    }
    Ok(out)
}

/// The session timeout the servers granted (from the history), else the one asked for.
fn negotiated_timeout(history: &History, asked: Duration) -> u64 {
    history
        .entries
        .iter()
        .find_map(|e| match &e.kind {
            EntryKind::Notice(Notice::SessionStarted { timeout_ms, .. }) => Some(*timeout_ms),
            _ => None,
        })
        .unwrap_or(u64::try_from(asked.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the checkers on a blocking thread; a panic inside them is reported, not propagated.
async fn check(
    history: History,
    finals: Vec<ServerFinal>,
    params: Params,
) -> Result<Vec<Report>, String> {
    let joined = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| coord_check::check_all(&history, &finals, &params))
    })
    .await;
    match joined {
        Ok(Ok(reports)) => Ok(reports),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(format!("the checkers panicked: {msg}"))
        }
        Err(e) => Err(format!("the checkers' thread failed: {e}")),
    }
}

/// Runs one verification. `Err` only when the run could not start (no ensemble, no tree);
/// every failure after that is in the result.
pub async fn run(cfg: &RunConfig) -> Result<RunResult, String> {
    let t0 = Instant::now();
    let partitions = cfg.faults.contains(&FaultKind::Partition);
    let mut cluster = tokio::task::block_in_place(|| {
        Cluster::builder(&cfg.coordd)
            .voters(cfg.nodes)
            .netns(partitions)
            .fault_hooks(true)
            .start()
    })
    .map_err(|e| format!("start the ensemble: {e}"))?;
    if let Err(e) = cluster.try_wait_stable(STABLE_BOUND).await {
        return Err(format!(
            "the ensemble never became stable: {e}\n{}",
            cluster.logs()
        ));
    }
    setup_tree(&cluster, cfg.keys).await?;

    let rec = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let client_cfg = cluster
        .client_config()
        .session_timeout(cfg.session_timeout)
        .connect_timeout(Duration::from_secs(3));
    let env = Arc::new(Env {
        cfg: client_cfg,
        rec: rec.clone(),
        stop: stop.clone(),
        keys: cfg.keys,
        op_timeout: cfg.op_timeout,
        lock_timeout: cfg.op_timeout * 3,
        seed: cfg.seed,
        cache: Default::default(),
    });
    let mut tasks = Vec::new();
    let mut process = 0u32;
    for _ in 0..cfg.workers {
        let role = RegisterRole {
            watch_key: process
                .is_multiple_of(3)
                .then_some(process as usize % cfg.keys),
            closes_sessions: process % 4 == 1,
            cached: process % 3 == 2,
        };
        tasks.push(tokio::spawn(workers::register_worker(
            env.clone(),
            process,
            role,
        )));
        process += 1;
    }
    for _ in 0..cfg.lock_workers {
        tasks.push(tokio::spawn(workers::lock_worker(
            env.clone(),
            process,
            LOCK_NAME.to_string(),
        )));
        process += 1;
    }
    for _ in 0..cfg.recipe_workers {
        let e = env.clone();
        tasks.push(tokio::spawn(recipe_workers::recipe_lock_worker(e, process)));
        tasks.push(tokio::spawn(recipe_workers::election_worker(
            env.clone(),
            process + 1,
        )));
        let e = env.clone();
        tasks.push(tokio::spawn(recipe_workers::queue_producer(e, process + 2)));
        let e = env.clone();
        tasks.push(tokio::spawn(recipe_workers::queue_consumer(e, process + 3)));
        process += 4;
    }
    for group in 0..cfg.recipe_workers.div_ceil(2) {
        let e = env.clone();
        tasks.push(tokio::spawn(recipe_workers::txn_group(e, process, group)));
        process += 1 + recipe_workers::PARTICIPANTS.len() as u32;
    }
    tasks.push(tokio::spawn(workers::observer(env.clone(), process)));
    let setup = t0.elapsed();

    // A quiet start, so the history begins with a healthy ensemble.
    let t1 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut schedule = Schedule::new(cfg.seed, cfg.nodes, &cfg.faults, cfg.session_timeout);
    let ncfg = NemesisConfig {
        until: t1 + cfg.duration,
        recovery_bound: RECOVERY_BOUND,
        quiet: cfg.session_timeout
            + Duration::from_millis(coord_server::config::Config::default().cache_lease_ms)
            + Duration::from_secs(1),
    };
    let mut faults = Vec::new();
    let mut leaderless = Leaderless::default();
    let rec_clock = rec.clone();
    let nemesis_error = nemesis::run(
        &mut cluster,
        &mut schedule,
        &ncfg,
        move || rec_clock.now_ns(),
        &mut faults,
        &mut leaderless,
    )
    .await
    .err();
    if let Some(e) = &nemesis_error {
        tracing::error!("nemesis stopped: {e}\n{}", cluster.logs());
    }
    let faults_time = t1.elapsed();

    // Stop the processes: each finishes its operation (bounded) and ends its session.
    let t2 = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let bound = cfg.op_timeout * 4 + Duration::from_secs(15);
    let deadline = tokio::time::Instant::now() + bound;
    for t in &mut tasks {
        if tokio::time::timeout_at(deadline, &mut *t).await.is_err() {
            t.abort();
        }
    }
    let cut_short = rec.close_open("the process was stopped at the end of the run");
    let drain_error = if cfg.recipe_workers > 0 {
        // A fresh stop flag: the drainer runs after every other process stopped.
        let drain_env = Arc::new(Env {
            cfg: env.cfg.clone(),
            rec: rec.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            keys: env.keys,
            op_timeout: env.op_timeout,
            lock_timeout: env.lock_timeout,
            seed: env.seed,
            cache: env.cache.clone(),
        });
        let drained = match heal(&mut cluster).await {
            Ok(()) => recipe_workers::drain(drain_env, process + 1, DRAIN_BOUND).await,
            Err(e) => Err(e),
        };
        match drained {
            Ok(n) => {
                tracing::info!("the recipe queue was drained ({n} items taken)");
                None
            }
            Err(e) => Some(e),
        }
    } else {
        None
    };
    let finals_result = finals(&mut cluster, cfg.keys).await;
    let (finals, end_error) = match finals_result {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(format!("{e}\n{}", cluster.logs()))),
    };
    let kept_dir = cfg.keep_dir.then(|| cluster.keep_dir());
    tokio::task::block_in_place(|| drop(cluster));
    let end = t2.elapsed();

    let history = rec.history();
    let params = Params {
        session_timeout_ms: negotiated_timeout(&history, cfg.session_timeout),
        election_bound_ms: u64::try_from(election_bound(&leaderless).as_millis())
            .unwrap_or(u64::MAX),
    };
    let t3 = Instant::now();
    let (reports, check_error) = if cfg.check && end_error.is_none() {
        match check(history.clone(), finals.clone(), params.clone()).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        }
    } else if cfg.check {
        (None, Some("not checked: the end phase failed".into()))
    } else {
        (None, None)
    };
    Ok(RunResult {
        history,
        faults,
        nemesis_error,
        end_error,
        drain_error,
        finals,
        params,
        leaderless,
        reports,
        check_error,
        kept_dir,
        timings: Timings {
            setup,
            faults: faults_time,
            end,
            check: t3.elapsed(),
        },
        cut_short,
        cache: *env.cache.lock(),
    })
}
