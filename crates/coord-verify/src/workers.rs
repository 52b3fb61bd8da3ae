//! The processes of a run: register workers (reads, writes, compare-and-set, multi), lock
//! workers (the ephemeral-sequential recipe), and one observer of the ephemerals.
//!
//! Each process does one operation at a time on one session; when the session ends it records
//! that and opens a new one, until the run stops. Every loop checks the stop flag between
//! steps, and every step is bounded (operation timeout, connect timeout, close bound), so a
//! process stops within one operation of being asked to.

use crate::session::{KEY_PREFIX, Session};
use coord_check::history::{Notice, OkResult, Op, ProcessId};
use coord_client::{
    AddWatchMode, Client, ClientConfig, CreateOptions, Error, ErrorCode, MultiOp, MultiResult,
    SessionState, Stat,
};
use futures::FutureExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where every session's ephemeral lives: `/verify/eph/<name>`.
pub const EPH_DIR: &str = "/verify/eph";
/// Where locks live: `/verify/lock/<lock>/n-<sequence>`.
pub const LOCK_DIR: &str = "/verify/lock";

/// What every process of a run shares.
pub struct Env {
    /// Client config naming every server (session timeout and connect timeout set).
    pub cfg: ClientConfig,
    /// The history.
    pub rec: Arc<crate::record::Recorder>,
    /// Set when the run is over.
    pub stop: Arc<AtomicBool>,
    /// Register keys are `0..keys`.
    pub keys: usize,
    /// Bound on one operation; past it the outcome is unknown and the session is abandoned.
    pub op_timeout: Duration,
    /// Bound on acquiring a lock.
    pub lock_timeout: Duration,
    /// The run's seed; each process seeds its own RNG from it and its id.
    pub seed: u64,
    /// Client-cache counts of the cached readers' ended sessions.
    pub cache: Arc<CacheTotals>,
}

/// Client-cache counts summed over the cached readers' ended sessions (see
/// [`RegisterRole::cached`]).
pub type CacheTotals = parking_lot::Mutex<coord_client::CacheStats>;

fn add_cache_stats(totals: &CacheTotals, s: coord_client::CacheStats) {
    let mut t = totals.lock();
    t.hits += s.hits;
    t.misses += s.misses;
    t.invalidations += s.invalidations;
}

impl Env {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn rng(&self, process: ProcessId) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed ^ (u64::from(process) + 1).wrapping_mul(0x9e37_79b9))
    }
}

/// The path of register `key`.
pub fn key_path(key: &str) -> String {
    format!("{KEY_PREFIX}{key}")
}

/// Sleeps `d`, waking early when the run stops.
pub(crate) async fn pause(env: &Env, d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() && !env.stopped() {
        let s = left.min(step);
        tokio::time::sleep(s).await;
        left -= s;
    }
}

/// Opens a session, retrying until one is accepted or the run stops.
pub(crate) async fn open_session(
    env: &Env,
    process: ProcessId,
    rng: &mut ChaCha8Rng,
) -> Option<Session> {
    while !env.stopped() {
        match Session::open(env.cfg.clone(), process, env.rec.clone(), env.op_timeout).await {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::debug!("process {process}: no session: {e}");
                pause(env, Duration::from_millis(rng.random_range(100..400))).await;
            }
        }
    }
    None
}

/// The session's one ephemeral node (`CreateEphemeral`).
async fn create_ephemeral(s: &mut Session, name: String) {
    let path = format!("{EPH_DIR}/{name}");
    s.run_op(
        Op::CreateEphemeral { name },
        move |c: Client| async move { c.create2(&path, b"", CreateOptions::ephemeral()).await },
        |(_, stat): &(String, Stat)| OkResult::Created { czxid: stat.czxid },
    )
    .await;
}

/// Why a session was ended by its process.
pub(crate) fn end_reason(s: &Session) -> &'static str {
    if s.desynced() { "abandoned" } else { "closed" }
}

/// What a register worker does besides operations.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterRole {
    /// Keep a persistent watch on this key in every session.
    pub watch_key: Option<usize>,
    /// Sometimes close the session on purpose.
    pub closes_sessions: bool,
    /// Read through the client cache (`ReadMode::Cached`) where the others read locally or
    /// linearizably; checked as linearizable reads.
    pub cached: bool,
}

/// Reads, writes, compare-and-sets and multi compare-and-sets on random keys until the run
/// stops. Values are `p<process>-<n>`, unique across the run.
pub async fn register_worker(env: Arc<Env>, process: ProcessId, role: RegisterRole) {
    let mut rng = env.rng(process);
    let mut versions = vec![0i32; env.keys];
    let mut written = 0u64;
    let mut sessions = 0u32;
    'sessions: while let Some(mut s) = open_session(&env, process, &mut rng).await {
        sessions += 1;
        create_ephemeral(&mut s, format!("p{process}-s{sessions}")).await;
        let mut watch = None;
        if let Some(k) = role.watch_key
            && s.usable()
        {
            let key = k.to_string();
            let path = key_path(&key);
            let added = s
                .run_quiet(
                    move |c: Client| async move {
                        c.add_watch(&path, AddWatchMode::Persistent).await
                    },
                    false,
                    |_, zxid| Some(Notice::WatchAdded { key, zxid }),
                )
                .await;
            watch = added.ok();
        }
        while !env.stopped() && s.usable() {
            // The events are recorded from the session's queue; the stream only has to be
            // kept (it holds the registration across reconnects) and emptied.
            if let Some(w) = watch.as_mut() {
                while let Some(Some(_)) = w.recv().now_or_never() {}
            }
            let k = rng.random_range(0..env.keys);
            let key = k.to_string();
            let path = key_path(&key);
            match rng.random_range(0..100) {
                0..20 | 28..35 if role.cached => {
                    // Twice in a row: the first read mostly misses (the keys are written all
                    // the time), the second is mostly served from the cache.
                    for _ in 0..2 {
                        if let Some(v) = read(&mut s, Read::Cached, &key, &path).await {
                            versions[k] = v;
                        }
                    }
                }
                reads @ 0..35 => {
                    let how = match reads {
                        0..20 => Read::Local,
                        20..28 => Read::SyncGet,
                        // Coord's linearizable read mode (a ReadIndex fence, no write).
                        _ => Read::Linearizable,
                    };
                    if let Some(v) = read(&mut s, how, &key, &path).await {
                        versions[k] = v;
                    }
                }
                35..55 => {
                    written += 1;
                    let value = format!("p{process}-{written}").into_bytes();
                    let op = Op::Write {
                        key,
                        value: value.clone(),
                    };
                    let got = s
                        .run_op(
                            op,
                            move |c: Client| async move { c.set_data(&path, &value, None).await },
                            written_result,
                        )
                        .await;
                    if let Some(stat) = got {
                        versions[k] = stat.version;
                    }
                }
                55..85 => {
                    written += 1;
                    let value = format!("p{process}-{written}").into_bytes();
                    let expected = versions[k];
                    let op = Op::Cas {
                        key,
                        expected_version: expected,
                        value: value.clone(),
                    };
                    let got = s
                        .run_op(
                            op,
                            move |c: Client| async move {
                                c.set_data(&path, &value, Some(expected)).await
                            },
                            written_result,
                        )
                        .await;
                    if let Some(stat) = got {
                        versions[k] = stat.version;
                    }
                }
                _ => {
                    written += 1;
                    let value = format!("p{process}-{written}").into_bytes();
                    let expected = versions[k];
                    let op = Op::MultiCas {
                        key,
                        expected_version: expected,
                        value: value.clone(),
                    };
                    let got = s
                        .run_op(
                            op,
                            move |c: Client| async move { multi_cas(&c, path, expected, value).await },
                            written_result,
                        )
                        .await;
                    if let Some(stat) = got {
                        versions[k] = stat.version;
                    }
                }
            }
            if role.closes_sessions && rng.random_ratio(1, 150) {
                add_cache_stats(&env.cache, s.cache_stats());
                s.end("closed").await;
                continue 'sessions;
            }
            pause(&env, Duration::from_millis(rng.random_range(0..20))).await;
        }
        add_cache_stats(&env.cache, s.cache_stats());
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

/// How a register worker reads a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// From the connected server's tree.
    Local,
    /// `sync`, then the read (ZooKeeper's way to a linearizable read).
    SyncGet,
    /// `ReadMode::Linearizable`.
    Linearizable,
    /// `ReadMode::Cached`: a hit has no reply (see [`Session::run_cached_read`]).
    Cached,
}

/// Reads `key` as `how` says; every kind but `Local` is checked as a linearizable read.
/// The version read, on success.
async fn read(s: &mut Session, how: Read, key: &str, path: &str) -> Option<i32> {
    let op = Op::Read {
        key: key.to_string(),
        sync: how != Read::Local,
    };
    let path = path.to_string();
    let call = move |c: Client| async move {
        match how {
            Read::Local => c.get_data(&path).await,
            Read::SyncGet => {
                c.sync(&path).await?;
                c.get_data(&path).await
            }
            Read::Linearizable => {
                c.with_read_mode(coord_client::ReadMode::Linearizable)
                    .get_data(&path)
                    .await
            }
            Read::Cached => {
                c.with_read_mode(coord_client::ReadMode::Cached)
                    .get_data(&path)
                    .await
            }
        }
    };
    let got = if how == Read::Cached {
        s.run_cached_read(op, call, read_result).await
    } else {
        s.run_op(op, call, read_result).await
    };
    got.map(|(_, stat)| stat.version)
}

fn read_result((data, stat): &(Vec<u8>, Stat)) -> OkResult {
    OkResult::Read {
        value: data.clone(),
        version: stat.version,
        mzxid: stat.mzxid,
    }
}

fn written_result(stat: &Stat) -> OkResult {
    OkResult::Written {
        version: stat.version,
        zxid: stat.mzxid,
    }
}

/// `multi([check(path, expected), set_data(path, value, any)])`; the set's new Stat.
async fn multi_cas(c: &Client, path: String, expected: i32, value: Vec<u8>) -> Result<Stat, Error> {
    let ops = vec![
        MultiOp::Check {
            path: path.clone(),
            version: expected,
        },
        MultiOp::SetData {
            path,
            data: value,
            version: -1,
        },
    ];
    match c.multi(ops).await?.as_slice() {
        [MultiResult::Check, MultiResult::SetData { stat }] => Ok(*stat),
        other => Err(Error::with_message(
            ErrorCode::MarshallingError,
            format!("multi results of the wrong shape: {other:?}"),
        )),
    }
}

/// The sequence number of a sequential node name (`n-0000000012` → 12).
pub fn sequence_of(name: &str) -> Option<u64> {
    name.rsplit('-').next()?.parse().ok()
}

/// Acquires `lock` by the ephemeral-sequential recipe: create `n-` sequential, and hold once
/// it is the lowest; otherwise wait for the next lower node to go. Gives up (connection loss)
/// if the session disconnects while waiting. Returns the node's path and czxid.
async fn acquire(c: Client, lock: String) -> Result<(String, u64), Error> {
    let dir = format!("{LOCK_DIR}/{lock}");
    let (path, stat) = c
        .create2(
            &format!("{dir}/n-"),
            b"",
            CreateOptions::ephemeral_sequential(),
        )
        .await?;
    let me = path.rsplit('/').next().unwrap_or_default().to_string();
    let mut states = c.state_events();
    loop {
        let (mut children, _) = c.get_children(&dir).await?;
        children.sort_by_key(|n| sequence_of(n).unwrap_or(u64::MAX));
        let Some(pos) = children.iter().position(|n| *n == me) else {
            return Err(Error::with_message(
                ErrorCode::NoNode,
                format!("own lock node {path} is gone"),
            ));
        };
        if pos == 0 {
            return Ok((path, stat.czxid));
        }
        let pred = format!("{dir}/{}", children[pos - 1]);
        let (exists, watch) = c.exists_w(&pred).await?;
        if exists.is_none() {
            continue;
        }
        tokio::select! {
            fired = watch => { fired?; }
            _ = states.wait_for(|s| *s != SessionState::Connected) => {
                return Err(Error::with_message(
                    ErrorCode::ConnectionLoss,
                    "disconnected while waiting for the lock",
                ));
            }
        }
    }
}

/// Takes `lock`, holds it a short random time, releases it, until the run stops. The lock is
/// considered lost (and the session abandoned) as soon as the session disconnects while
/// holding it; any acquisition or release that does not succeed also ends the session, so no
/// stray lock node outlives it.
pub async fn lock_worker(env: Arc<Env>, process: ProcessId, lock: String) {
    let mut rng = env.rng(process);
    let mut sessions = 0u32;
    while let Some(mut s) = open_session(&env, process, &mut rng).await {
        sessions += 1;
        create_ephemeral(&mut s, format!("p{process}-s{sessions}")).await;
        let mut reason = "closed";
        while !env.stopped() && s.usable() {
            let l = lock.clone();
            let got = s
                .run_op_within(
                    env.lock_timeout,
                    Op::LockAcquire { lock: lock.clone() },
                    move |c: Client| acquire(c, l),
                    |(_, fence): &(String, u64)| OkResult::Locked { fence: *fence },
                )
                .await;
            let Some((node, _)) = got else {
                reason = "abandoned";
                break;
            };
            let held_from = s.disconnects();
            let hold = Duration::from_millis(rng.random_range(50..400));
            let deadline = tokio::time::Instant::now() + hold;
            let mut lost = false;
            while tokio::time::Instant::now() < deadline {
                if s.disconnects() != held_from || s.client.state() != SessionState::Connected {
                    lost = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if lost || s.disconnects() != held_from {
                // The monitor records the Disconnected notice that ends the lock's interval.
                reason = "abandoned";
                break;
            }
            let released = s
                .run_op(
                    Op::LockRelease { lock: lock.clone() },
                    move |c: Client| async move { c.delete(&node, None).await },
                    |_| OkResult::Released,
                )
                .await;
            if released.is_none() {
                reason = "abandoned";
                break;
            }
            pause(&env, Duration::from_millis(rng.random_range(0..200))).await;
        }
        s.end(reason).await;
    }
}

/// Every 300–600 ms: `sync` + `get_children(/verify/eph)` and an `EphemeralsSeen` notice at
/// the reply's zxid.
pub async fn observer(env: Arc<Env>, process: ProcessId) {
    let mut rng = env.rng(process);
    while let Some(mut s) = open_session(&env, process, &mut rng).await {
        while !env.stopped() && s.usable() {
            let _ = s
                .run_quiet(
                    |c: Client| async move {
                        c.sync(EPH_DIR).await?;
                        c.get_children(EPH_DIR).await
                    },
                    true,
                    |(names, _), zxid| {
                        Some(Notice::EphemeralsSeen {
                            names: names.clone(),
                            zxid,
                        })
                    },
                )
                .await;
            pause(&env, Duration::from_millis(rng.random_range(300..600))).await;
        }
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_lock_nodes() {
        assert_eq!(sequence_of("n-0000000012"), Some(12));
        assert_eq!(sequence_of("n-"), None);
        let mut v = vec!["n-0000000010", "n-0000000002", "n-0000000100"];
        v.sort_by_key(|n| sequence_of(n));
        assert_eq!(v, ["n-0000000002", "n-0000000010", "n-0000000100"]);
    }
}
