//! The nemesis: seeded rounds of faults against the ensemble (planned by [`crate::schedule`]).
//!
//! ```text
//!   round:  resolve against the leader ─ apply ─ hold ─ heal everything
//!           ─ wait for a stable ensemble ─ quiet (session timeout + cache lease + 1 s)
//!   all along: every server's status sampled, stretches without a leader measured
//! ```

use crate::schedule::server;
pub use crate::schedule::{Action, Fault, FaultKind, Pick, Round, Schedule, Split};
use coord_testkit::Cluster;
use std::time::{Duration, Instant};

/// What happened in one round, for the summary.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// The kind.
    pub kind: FaultKind,
    /// What was done, to which servers.
    pub what: String,
    /// When the fault began and when it was healed (ns since the run began).
    pub start_ns: u64,
    /// See `start_ns`.
    pub healed_ns: u64,
    /// How long the ensemble took to be stable after healing, or why it never was.
    pub recovery: Result<Duration, String>,
}

/// Runs blocking cluster work without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Applies `action` to the cluster.
fn apply(cluster: &mut Cluster, action: &Action) -> Result<(), String> {
    match action {
        Action::Kill(t) => {
            for &i in t {
                cluster.kill(i);
            }
            Ok(())
        }
        Action::Pause(t) => {
            for &i in t {
                cluster.pause(i);
            }
            Ok(())
        }
        Action::Partition(p) => cluster.partition(p).map_err(|e| e.to_string()),
        Action::SlowDisk(t, ms) => t
            .iter()
            .try_for_each(|&i| cluster.set_fsync_delay(i, *ms))
            .map_err(|e| e.to_string()),
        Action::RestartAll(_) => {
            for i in 0..cluster.len() {
                cluster.kill(i);
            }
            Ok(())
        }
    }
}

/// The nemesis loop's knobs.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// When to stop starting rounds.
    pub until: Instant,
    /// Bound on the ensemble becoming stable after a heal.
    pub recovery_bound: Duration,
    /// Pause after each recovery, still watched. At least the session timeout plus the
    /// servers' client-cache lease (a new leader's fresh timeouts start a lease after it
    /// serves), plus a margin, so a session that ends in one round's disruption has expired
    /// before the next fault: the time a dead session's ephemerals may linger then spans one
    /// disruption.
    pub quiet: Duration,
}

/// Stretches of time without a leader that can commit (a leader whose synced followers make
/// a quorum), as sampled by the nemesis every few hundred ms from the first round on.
#[derive(Debug, Clone, Default)]
pub struct Leaderless {
    since: Option<Instant>,
    /// The longest stretch seen.
    pub longest: Duration,
    /// How many stretches there were.
    pub stretches: u32,
}

impl Leaderless {
    fn observe(&mut self, has_leader: bool) {
        let now = Instant::now();
        match (has_leader, self.since) {
            (false, None) => {
                self.since = Some(now);
                self.stretches += 1;
            }
            (true, Some(since)) => {
                self.longest = self.longest.max(now - since);
                self.since = None;
            }
            _ => {}
        }
    }

    /// Ends an open stretch at the end of the nemesis phase.
    fn finish(&mut self) {
        if let Some(since) = self.since.take() {
            self.longest = self.longest.max(since.elapsed());
        }
    }
}

/// The servers' statuses, noted in `track`.
async fn sample(
    cluster: &Cluster,
    track: &mut Leaderless,
) -> Vec<(usize, Option<coord_client::ServerStatus>)> {
    let statuses = cluster.statuses().await;
    track.observe(cluster.has_quorum_leader(&statuses));
    statuses
}

/// Waits `d`, sampling the ensemble.
async fn watch_for(cluster: &Cluster, d: Duration, track: &mut Leaderless) {
    let end = Instant::now() + d;
    loop {
        sample(cluster, track).await;
        let now = Instant::now();
        if now >= end {
            return;
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(250))).await;
    }
}

/// Waits (at most `bound`) for every server to be established under one leader; returns it.
async fn recover(
    cluster: &Cluster,
    bound: Duration,
    track: &mut Leaderless,
) -> Result<usize, String> {
    let end = Instant::now() + bound;
    loop {
        let statuses = sample(cluster, track).await;
        if let Some(l) = Cluster::stable_leader(&statuses) {
            return Ok(l);
        }
        if Instant::now() >= end {
            return Err(format!(
                "the ensemble did not recover: no stable leader within {} s: {}",
                bound.as_secs(),
                cluster.describe(&statuses)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs rounds from `schedule` until `cfg.until`, appending to `log` and sampling leaderless
/// stretches into `track`. Returns `Err` if a fault could not be applied or healed, a server
/// exited on its own, or the ensemble did not recover within the bound (the round is in
/// `log` with its error); the caller stops the run then.
pub async fn run(
    cluster: &mut Cluster,
    schedule: &mut Schedule,
    cfg: &NemesisConfig,
    now_ns: impl Fn() -> u64,
    log: &mut Vec<FaultRecord>,
    track: &mut Leaderless,
) -> Result<(), String> {
    let result = rounds(cluster, schedule, cfg, now_ns, log, track).await;
    track.finish();
    result
}

async fn rounds(
    cluster: &mut Cluster,
    schedule: &mut Schedule,
    cfg: &NemesisConfig,
    now_ns: impl Fn() -> u64,
    log: &mut Vec<FaultRecord>,
    track: &mut Leaderless,
) -> Result<(), String> {
    let mut leader = recover(cluster, cfg.recovery_bound, track)
        .await
        .map_err(|e| format!("before the first fault: {e}"))?;
    while Instant::now() < cfg.until {
        let Some(round) = schedule.next() else {
            // No faults enabled: just let the workers run.
            watch_for(
                cluster,
                cfg.until.saturating_duration_since(Instant::now()),
                track,
            )
            .await;
            break;
        };
        let (action, what) = round.fault.resolve(leader, cluster.len());
        tracing::info!("nemesis: {what}, hold {} ms", round.hold.as_millis());
        let start_ns = now_ns();
        let applied = blocking(|| apply(cluster, &action));
        if let Err(e) = &applied {
            tracing::error!("nemesis: {what}: {e}");
        }
        if applied.is_ok() {
            let hold = match action {
                Action::RestartAll(down) => Duration::from_millis(down),
                _ => round.hold,
            };
            watch_for(cluster, hold, track).await;
        }
        // A server that died on its own is a finding, not a fault to heal silently. (Servers
        // this round killed are not running, so they are not reaped here.)
        let crashed: Vec<String> = blocking(|| cluster.reap_exited())
            .into_iter()
            .map(|(i, status)| format!("{} exited on its own ({status})", server(i)))
            .collect();
        let healed = blocking(|| cluster.heal_all()).map_err(|e| e.to_string());
        let healed_ns = now_ns();
        let healed_at = Instant::now();
        let recovery = match (applied, healed) {
            _ if !crashed.is_empty() => Err(crashed.join("; ")),
            (Err(e), _) => Err(format!("could not apply: {e}")),
            (_, Err(e)) => Err(format!("could not heal: {e}")),
            (Ok(()), Ok(())) => recover(cluster, cfg.recovery_bound, track).await.map(|l| {
                leader = l;
                healed_at.elapsed()
            }),
        };
        let failed = recovery.as_ref().err().cloned();
        log.push(FaultRecord {
            kind: round.fault.kind(),
            what,
            start_ns,
            healed_ns,
            recovery,
        });
        if let Some(e) = failed {
            return Err(e);
        }
        watch_for(cluster, cfg.quiet, track).await;
    }
    Ok(())
}
