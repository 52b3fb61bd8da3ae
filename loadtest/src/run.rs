//! The three modes: a timed load run, sequential create latency, and populate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::stats::{OpKind, Percentiles, Stats, Summary};
use crate::target::{Conn, OpError};
use crate::{Plan, plot};

/// Parent of every node the load generator touches.
const ROOT: &str = "/loadtest";
/// Sessions opened at once while connecting.
const CONNECT_PARALLELISM: usize = 32;
/// Requests outstanding while creating keys with one session.
const SETUP_PIPELINE: usize = 64;
/// How long tasks may take to finish their last request after the window closes.
const DRAIN_GRACE: Duration = Duration::from_secs(15);
/// Pause after a failed request, so a dead server does not turn the loop into a spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(5);

/// Runs the mode the flags ask for.
pub async fn run(plan: Plan) -> Result<(), String> {
    if let Some(n) = plan.args.populate {
        populate(&plan, n).await
    } else if plan.args.create_latency {
        create_latency(&plan).await
    } else if let Some(pid) = plan.args.failover_kill {
        failover(&plan, pid).await
    } else {
        load(&plan).await
    }
}

async fn connect_all(plan: &Plan, n: u32) -> Result<Vec<Conn>, String> {
    let started = Instant::now();
    let target = plan.args.target;
    let transport = Conn::transport(target, &plan.servers, &plan.ca_pem)?
        .filter(|_| !plan.args.connection_per_session);
    let conns: Vec<Result<Conn, String>> = futures::stream::iter(0..n)
        .map(|_| Conn::connect(target, &plan.servers, &plan.ca_pem, transport.as_ref()))
        .buffer_unordered(CONNECT_PARALLELISM)
        .collect()
        .await;
    let mut conns = conns.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mode = match plan.args.read_mode {
        crate::ReadModeArg::Linearizable => {
            Some((coord_client::ReadMode::Linearizable, "linearizable"))
        }
        crate::ReadModeArg::Cached => Some((coord_client::ReadMode::Cached, "cached")),
        _ => None,
    };
    if let Some((mode, name)) = mode {
        for c in &mut conns {
            match c {
                Conn::Coord(client) => *client = client.with_read_mode(mode),
                Conn::Zk(_) => {
                    return Err(format!(
                        "--read-mode {name} is for Coord; use sync for ZooKeeper"
                    ));
                }
            }
        }
    }
    eprintln!(
        "coord-loadtest: {n} {target} session(s) to {} in {:.2?}",
        plan.servers,
        started.elapsed()
    );
    Ok(conns)
}

async fn close_all(conns: Vec<Conn>) {
    futures::stream::iter(conns)
        .for_each_concurrent(CONNECT_PARALLELISM, Conn::close)
        .await;
}

/// Creates `path` unless it exists.
async fn ensure(conn: &Conn, path: &str) -> Result<(), String> {
    match conn.create(path, b"").await {
        Ok(()) | Err(OpError::NodeExists) => Ok(()),
        Err(e) => Err(format!("create {path}: {e}")),
    }
}

fn key_path(i: u32) -> String {
    format!("{ROOT}/k{i}")
}

/// Creates (or overwrites) every key with a value of the run's size.
async fn setup_keys(conn: &Conn, keys: u32, value: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    ensure(conn, ROOT).await?;
    let results: Vec<Result<(), String>> = futures::stream::iter(0..keys)
        .map(|i| async move {
            let path = key_path(i);
            conn.upsert(&path, value)
                .await
                .map_err(|e| format!("set up {path}: {e}"))
        })
        .buffer_unordered(SETUP_PIPELINE)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    eprintln!(
        "coord-loadtest: {keys} keys of {} B ready in {:.2?}",
        value.len(),
        started.elapsed()
    );
    Ok(())
}

fn progress_bar(plan: &Plan, total_s: f64) -> ProgressBar {
    let target = if plan.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total_s.ceil() as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} s  {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Ticks the bar once a second with the last second's throughput until `end`.
fn spawn_ticker(bar: ProgressBar, done: Arc<AtomicU64>, start: Instant, warmup: f64) {
    tokio::spawn(async move {
        let mut last = 0u64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = done.load(Ordering::Relaxed);
            let elapsed = start.elapsed().as_secs_f64();
            let phase = if elapsed < warmup {
                "warm-up"
            } else {
                "measuring"
            };
            bar.set_position(elapsed as u64);
            bar.set_message(format!("{phase}: {} ops/s", now - last));
            last = now;
            if bar.is_finished() {
                break;
            }
        }
    });
}

async fn load(plan: &Plan) -> Result<(), String> {
    let a = &plan.args;
    let read_pct = a.workload.read_pct(a.read_pct);
    let conns = connect_all(plan, a.sessions).await?;
    let value = vec![b'v'; a.value_size as usize];
    if !a.no_setup {
        setup_keys(&conns[0], a.keys, &value).await?;
    }
    let keys: Arc<[String]> = (0..a.keys).map(key_path).collect();
    let warmup = Duration::from_secs_f64(a.warmup);
    let duration = Duration::from_secs_f64(a.duration);
    let stats = Arc::new(Stats::new(warmup, duration));
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(plan, a.warmup + a.duration);
    spawn_ticker(bar.clone(), done.clone(), stats.start(), a.warmup);

    let mut tasks = tokio::task::JoinSet::new();
    for (s, conn) in conns.iter().enumerate() {
        for k in 0..a.inflight {
            let seed = ((s as u64) << 20) ^ u64::from(k) ^ 0x10ad_7e57;
            tasks.spawn(worker(
                conn.clone(),
                stats.clone(),
                keys.clone(),
                Reads {
                    pct: read_pct,
                    sync_first: a.read_mode == crate::ReadModeArg::Sync,
                },
                value.clone(),
                seed,
                done.clone(),
            ));
        }
    }
    drain(&mut tasks, stats.end()).await;
    bar.finish_and_clear();
    close_all(conns).await;

    let stats = Arc::into_inner(stats).ok_or("a load task outlived the run")?;
    let (summary, timeline) = stats.finish(duration);
    let title = format!(
        "{} {} ({}% reads) {}x{} {} B",
        a.target,
        a.workload.name(),
        read_pct,
        a.sessions,
        a.inflight,
        a.value_size
    );
    if let Some(path) = &a.plot {
        plot::write_svg(path, &title, &timeline, a.warmup)?;
        eprintln!("coord-loadtest: plot written to {}", path.display());
    }
    report(
        plan,
        "load",
        a.workload.name(),
        a.sessions,
        a.inflight,
        read_pct,
        &summary,
    )
}

/// Waits for every task to stop after `end`; aborts stragglers after a grace period.
async fn drain(tasks: &mut tokio::task::JoinSet<()>, end: Instant) {
    let deadline = tokio::time::Instant::from_std(end + DRAIN_GRACE);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => {
                eprintln!(
                    "coord-loadtest: {} request(s) still outstanding {DRAIN_GRACE:?} after the end; aborting them",
                    tasks.len()
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// What share of a worker's ops are reads, and whether each read follows a `sync`.
#[derive(Clone, Copy)]
struct Reads {
    pct: u8,
    sync_first: bool,
}

async fn worker(
    conn: Conn,
    stats: Arc<Stats>,
    keys: Arc<[String]>,
    reads: Reads,
    value: Vec<u8>,
    seed: u64,
    done: Arc<AtomicU64>,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let end = stats.end();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let key = &keys[rng.random_range(0..keys.len())];
        let read_pct = reads.pct;
        let read = read_pct >= 100 || (read_pct > 0 && rng.random_ratio(u32::from(read_pct), 100));
        let (kind, result) = if read {
            (
                OpKind::Read,
                conn.get(key, reads.sync_first).await.map(drop),
            )
        } else {
            (OpKind::Write, conn.set(key, &value).await)
        };
        let t1 = Instant::now();
        match result {
            Ok(()) => {
                stats.ok(kind, t1 - t0, t1);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.error(&e.to_string(), t1);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Leader SIGKILL to the next successful write, as a client sees it: writes go back to back
/// on one session (a failed one is retried after a short pause) so the gap is measured to
/// within one write's latency.
async fn failover(plan: &Plan, pid: i32) -> Result<(), String> {
    let a = &plan.args;
    let mut conns = connect_all(plan, 1).await?;
    let conn = conns.pop().ok_or("no session")?;
    ensure(&conn, ROOT).await?;
    let path = format!("{ROOT}/failover");
    conn.upsert(&path, b"0")
        .await
        .map_err(|e| format!("setup {path}: {e}"))?;
    let warm_until = Instant::now() + Duration::from_secs_f64(a.warmup);
    let mut writes = 0u64;
    while Instant::now() < warm_until {
        conn.set(&path, b"w")
            .await
            .map_err(|e| format!("write before the kill: {e}"))?;
        writes += 1;
    }
    // SAFETY: kill(2) with a pid the caller named; no memory is touched.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    let killed = Instant::now();
    if rc != 0 {
        return Err(format!(
            "kill -9 {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let limit = killed + Duration::from_secs_f64(a.duration.max(1.0));
    let mut failures = 0u64;
    let gap = loop {
        match conn.set(&path, b"after").await {
            Ok(()) => break killed.elapsed(),
            Err(_) => {
                failures += 1;
                if Instant::now() > limit {
                    return Err(format!(
                        "no successful write within {:.1} s of the kill",
                        a.duration
                    ));
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    };
    conn.close().await;
    println!(
        "{}",
        serde_json::json!({
            "target": a.target,
            "mode": "failover",
            "killed_pid": pid,
            "writes_before_kill": writes,
            "failed_writes_after_kill": failures,
            "failover_gap_ms": gap.as_secs_f64() * 1000.0,
        })
    );
    Ok(())
}

async fn create_latency(plan: &Plan) -> Result<(), String> {
    let a = &plan.args;
    let mut conns = connect_all(plan, 1).await?;
    let conn = conns.pop().ok_or("no session")?;
    let dir = format!("{ROOT}/cl");
    ensure(&conn, ROOT).await?;
    ensure(&conn, &dir).await?;
    // A fresh prefix per run, so a second run creates rather than collides.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let value = vec![b'c'; a.value_size as usize];
    let warmup = Duration::from_secs_f64(a.warmup);
    let duration = Duration::from_secs_f64(a.duration);
    let stats = Stats::new(warmup, duration);
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(plan, a.warmup + a.duration);
    spawn_ticker(bar.clone(), done.clone(), stats.start(), a.warmup);
    let mut i = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= stats.end() {
            break;
        }
        let path = format!("{dir}/r{run_id}-{i:010}");
        i += 1;
        let result = conn.create(&path, &value).await;
        let t1 = Instant::now();
        match result {
            Ok(()) => {
                stats.ok(OpKind::Create, t1 - t0, t1);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.error(&e.to_string(), t1);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    bar.finish_and_clear();
    conn.close().await;
    let (summary, timeline) = stats.finish(duration);
    if let Some(path) = &a.plot {
        let title = format!("{} sequential create, {} B", a.target, a.value_size);
        plot::write_svg(path, &title, &timeline, a.warmup)?;
        eprintln!("coord-loadtest: plot written to {}", path.display());
    }
    report(plan, "create-latency", "create", 1, 1, 0, &summary)
}

async fn populate(plan: &Plan, n: u64) -> Result<(), String> {
    let a = &plan.args;
    let conns = connect_all(plan, a.sessions).await?;
    let dir = format!("{ROOT}/pop");
    ensure(&conns[0], ROOT).await?;
    ensure(&conns[0], &dir).await?;
    let value = Arc::new(vec![b'p'; a.value_size as usize]);
    let next = Arc::new(AtomicU64::new(0));
    let created = Arc::new(AtomicU64::new(0));
    let existed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(plan, n as f64);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for conn in &conns {
        for _ in 0..a.inflight {
            let (conn, dir, value) = (conn.clone(), dir.clone(), value.clone());
            let (next, created, existed, failed) = (
                next.clone(),
                created.clone(),
                existed.clone(),
                failed.clone(),
            );
            let bar = bar.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    match conn.create(&format!("{dir}/p{i:09}"), &value).await {
                        Ok(()) => created.fetch_add(1, Ordering::Relaxed),
                        Err(OpError::NodeExists) => existed.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    bar.inc(1);
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    close_all(conns).await;
    let (created, existed, failed) = (
        created.load(Ordering::Relaxed),
        existed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("target      {}", a.target);
    println!("populated   {n} znodes of {} B under {dir}", a.value_size);
    println!("created     {created}   existed {existed}   errors {failed}");
    println!(
        "elapsed     {elapsed:.2} s   ({:.0} creates/s)",
        created as f64 / elapsed.max(1e-9)
    );
    let line = json!({
        "mode": "populate",
        "target": a.target,
        "znodes": n,
        "value_size": a.value_size,
        "created": created,
        "existed": existed,
        "errors": failed,
        "sessions": a.sessions,
        "inflight": a.inflight,
        "elapsed_s": round3(elapsed),
        "ops_per_sec": round3(created as f64 / elapsed.max(1e-9)),
    });
    println!("{line}");
    if failed > 0 {
        return Err(format!("{failed} create(s) failed while populating"));
    }
    Ok(())
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn pct_json(p: &Percentiles) -> serde_json::Value {
    json!({
        "count": p.count,
        "mean_ms": round3(p.mean_ms),
        "p50_ms": round3(p.p50_ms),
        "p90_ms": round3(p.p90_ms),
        "p99_ms": round3(p.p99_ms),
        "p999_ms": round3(p.p999_ms),
        "max_ms": round3(p.max_ms),
    })
}

/// Prints the human table, then the JSON line (always the last line of stdout).
fn report(
    plan: &Plan,
    mode: &str,
    workload: &str,
    sessions: u32,
    inflight: u32,
    read_pct: u8,
    s: &Summary,
) -> Result<(), String> {
    let a = &plan.args;
    println!();
    println!(
        "target {}  mode {mode}  workload {workload} ({read_pct}% reads)  sessions {sessions} x inflight {inflight}",
        a.target
    );
    println!(
        "value {} B  keys {}  warm-up {} s  measured {} s  servers {}",
        a.value_size, a.keys, a.warmup, a.duration, plan.servers
    );
    println!(
        "throughput {:.0} ops/s   ({} ops, {} errors)",
        s.ops_per_sec, s.ops, s.errors
    );
    println!(
        "{:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "ms", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, p) in [("all", &s.all), ("reads", &s.reads), ("writes", &s.writes)] {
        if p.count > 0 {
            println!(
                "{:<8} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, p.count, p.mean_ms, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
            );
        }
    }
    for (what, n) in &s.errors_by_kind {
        println!("error    {n:>10}  {what}");
    }
    let line = json!({
        "mode": mode,
        "target": a.target,
        "workload": workload,
        "read_pct": read_pct,
        "sessions": sessions,
        "inflight": inflight,
        "value_size": a.value_size,
        "keys": a.keys,
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "ops": s.ops,
        "ops_per_sec": round3(s.ops_per_sec),
        "errors": s.errors,
        "mean_ms": round3(s.all.mean_ms),
        "p50_ms": round3(s.all.p50_ms),
        "p90_ms": round3(s.all.p90_ms),
        "p99_ms": round3(s.all.p99_ms),
        "p999_ms": round3(s.all.p999_ms),
        "max_ms": round3(s.all.max_ms),
        "reads": pct_json(&s.reads),
        "writes": pct_json(&s.writes),
        "errors_by_kind": s.errors_by_kind,
    });
    println!("{line}");
    if s.ops == 0 {
        return Err("no operation succeeded in the measured window".into());
    }
    Ok(())
}
