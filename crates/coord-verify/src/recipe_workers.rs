//! The recipe workers: `coord-recipes`' own [`Lock`], [`Election`], [`LockingQueue`] and
//! two-phase commit ([`Coordinator`], [`Participant`]) driven under the nemesis, each call
//! recorded as one operation of the history (checked by `coord-check`'s recipe-locks,
//! election, queue and 2pc checkers).
//!
//! ```text
//!   /verify/recipes/lock/rl0        Lock          RecipeLock … FencedWrite* … RecipeUnlock
//!   /verify/recipes/election/e0     Election      Campaign … FencedWrite* … Resign / close
//!   /verify/recipes/fenced/<name>   the register a holder's fenced writes set
//!   /verify/recipes/queue/q0        LockingQueue  QueuePut | QueueTake … QueueAck / Release
//!   /verify/recipes/txn/<id>        2PC           TxnBegin, TxnVote ×3, TxnDecide, TxnLearn ×3
//! ```
//!
//! A holder acts (fenced writes) only while its session is connected; at the first
//! disconnect it stops and releases, as the recipes' docs ask (jeopardy). To test fencing it
//! also tries its sequencer once more where it must be refused: after its release, and, if
//! its session did not survive, from its next session. A process "dies" by closing its
//! session without releasing (a holder, a leader, a consumer holding a claim): the next
//! holder, leader or consumer must take over. Every step is bounded, like the other
//! workers, and every loop stops when the run stops.

use crate::session::Session;
use crate::workers::{Env, end_reason, open_session, pause};
use coord_check::history::{Notice, OkResult, Op, ProcessId};
use coord_client::{Client, Error, ErrorCode, MultiOp, MultiResult, Sequencer, SessionState, Stat};
use coord_recipes::{Coordinator, Decision, Election, Lock, LockingQueue, Participant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where the recipes live.
pub const RECIPES_DIR: &str = "/verify/recipes";
/// The recipe lock every recipe lock worker contends for.
pub const RECIPE_LOCK: &str = "rl0";
/// The election every candidate campaigns in.
pub const ELECTION: &str = "e0";
/// The queue producers fill and consumers empty.
pub const QUEUE: &str = "q0";
/// Where the 2PC transactions live.
pub const TXN_DIR: &str = "/verify/recipes/txn";
/// The participants of every transaction.
pub const PARTICIPANTS: [&str; 3] = ["a", "b", "c"];

/// The lock's directory.
pub fn lock_dir(name: &str) -> String {
    format!("{RECIPES_DIR}/lock/{name}")
}

/// The election's directory.
pub fn election_dir(name: &str) -> String {
    format!("{RECIPES_DIR}/election/{name}")
}

/// The queue's directory.
pub fn queue_dir(name: &str) -> String {
    format!("{RECIPES_DIR}/queue/{name}")
}

/// The register a holder of lock or election `name` writes with its sequencer.
pub fn fenced_path(name: &str) -> String {
    format!("{RECIPES_DIR}/fenced/{name}")
}

/// The persistent nodes the recipe workers need before they start, parents first.
pub fn setup_paths() -> Vec<String> {
    vec![
        RECIPES_DIR.to_string(),
        format!("{RECIPES_DIR}/lock"),
        lock_dir(RECIPE_LOCK),
        format!("{RECIPES_DIR}/election"),
        election_dir(ELECTION),
        format!("{RECIPES_DIR}/queue"),
        queue_dir(QUEUE),
        TXN_DIR.to_string(),
        format!("{RECIPES_DIR}/fenced"),
        fenced_path(RECIPE_LOCK),
        fenced_path(ELECTION),
    ]
}

fn ms(rng: &mut ChaCha8Rng, range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rng.random_range(range))
}

/// `multi([CheckSequencer(sequencer), set_data(path, data)])`: the set's new Stat.
async fn fenced_set(
    c: Client,
    path: String,
    sequencer: Vec<u8>,
    data: Vec<u8>,
) -> Result<Stat, Error> {
    let ops = vec![
        MultiOp::CheckSequencer { sequencer },
        MultiOp::SetData {
            path,
            data,
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

/// One fenced write of `name`'s register with the sequencer of the hold `fence`.
async fn fenced_write(s: &mut Session, name: &str, fence: u64, sequencer: Vec<u8>, data: String) {
    let op = Op::FencedWrite {
        lock: name.to_string(),
        fence,
    };
    let path = fenced_path(name);
    s.run_op(
        op,
        move |c: Client| fenced_set(c, path, sequencer, data.into_bytes()),
        |stat: &Stat| OkResult::Written {
            version: stat.version,
            zxid: stat.mzxid,
        },
    )
    .await;
}

/// Whether the session has stayed connected since `disconnects` was read.
fn still_connected(s: &Session, disconnects: u64) -> bool {
    s.disconnects() == disconnects && s.client.state() == SessionState::Connected
}

/// Holds a lock or leadership for `hold`, writing `name`'s register with `sequencer` every
/// 20–80 ms while connected. Whether it stayed connected throughout.
async fn act_while_held(
    env: &Env,
    s: &mut Session,
    rng: &mut ChaCha8Rng,
    name: &str,
    (fence, sequencer): (u64, &[u8]),
    hold: Duration,
    written: &mut u64,
) -> bool {
    let process = s.process();
    let held_from = s.disconnects();
    let deadline = Instant::now() + hold;
    while Instant::now() < deadline && !env.stopped() {
        if !still_connected(s, held_from) {
            return false;
        }
        *written += 1;
        let data = format!("p{process}-{written}");
        fenced_write(s, name, fence, sequencer.to_vec(), data).await;
        if !s.usable() {
            return false;
        }
        tokio::time::sleep(ms(rng, 20..80)).await;
    }
    still_connected(s, held_from)
}

/// A recipe whose holder does fenced writes while it holds: [`Lock`] or [`Election`].
#[derive(Clone)]
enum Holder {
    Lock(Lock),
    Election(Election),
}

impl Holder {
    /// Acquires (campaigns) for up to `wait`: the fence (generation or term) and the
    /// sequencer when it holds.
    async fn take(&self, wait: Duration) -> Result<Option<(u64, Vec<u8>)>, Error> {
        Ok(match self {
            Holder::Lock(l) => l
                .acquire(Some(wait))
                .await?
                .then(|| l.generation().zip(l.sequencer()))
                .flatten(),
            Holder::Election(e) => e
                .campaign(Some(wait))
                .await?
                .then(|| e.term().zip(e.sequencer()))
                .flatten(),
        })
    }

    /// Releases (resigns).
    async fn give_up(&self) -> Result<(), Error> {
        match self {
            Holder::Lock(l) => l.release().await,
            Holder::Election(e) => e.resign().await,
        }
    }
}

/// How one kind of holder worker behaves: what it records and how long it holds, how often
/// it dies holding, and whether it tests its sequencer after the release.
struct HolderRole {
    /// The recipe instance (`rl0`, `e0`): the name in the history and the fenced register.
    name: &'static str,
    /// Makes the recipe for a new session.
    make: fn(Client, &str, ProcessId) -> Result<Holder, Error>,
    /// Its directory.
    dir: String,
    take_op: fn(String) -> Op,
    taken: fn(u64) -> OkResult,
    not_taken: &'static str,
    release_op: fn(String) -> Op,
    /// How long it holds (ms).
    hold_ms: std::ops::Range<u64>,
    /// One holder in this many dies holding (closes its session).
    dies_one_in: u32,
    /// The pause after a release (ms).
    pause_ms: std::ops::Range<u64>,
    /// Tries its sequencer once more where it must be refused: after one release in three,
    /// and from its next session when its session did not survive the hold.
    refused_after: bool,
}

/// Takes the role's recipe, does fenced writes while holding and releases; now and then
/// closes its session while holding instead. Until the run stops.
async fn holder_worker(env: Arc<Env>, process: ProcessId, role: HolderRole) {
    let mut rng = env.rng(process);
    let mut written = 0u64;
    // A hold lost in jeopardy whose session did not survive: tried again from the next one.
    let mut stale: Option<(u64, Vec<u8>)> = None;
    'sessions: while let Some(mut s) = open_session(&env, process, &mut rng).await {
        if let Some((fence, seq)) = stale.take() {
            written += 1;
            let data = format!("p{process}-{written}");
            fenced_write(&mut s, role.name, fence, seq, data).await;
        }
        let holder = match (role.make)(s.client.clone(), &role.dir, process) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("process {process}: no {} at {}: {e}", role.name, role.dir);
                s.end("closed").await;
                return;
            }
        };
        let mut reason = "closed";
        while !env.stopped() && s.usable() {
            let h = holder.clone();
            let wait = env.op_timeout * 2;
            let (taken, not_taken) = (role.taken, role.not_taken);
            let (got, _) = s
                .run_op_judged(
                    env.lock_timeout,
                    (role.take_op)(role.name.to_string()),
                    move |_: Client| async move { h.take(wait).await },
                    |held: &Option<(u64, Vec<u8>)>| match held {
                        Some((fence, _)) => Ok(taken(*fence)),
                        None => Err(not_taken.to_string()),
                    },
                )
                .await;
            let Some(got) = got else {
                reason = end_reason(&s);
                break;
            };
            let Some((fence, seq)) = got else {
                pause(&env, ms(&mut rng, 0..200)).await;
                continue;
            };
            let hold = ms(&mut rng, role.hold_ms.clone());
            let held = act_while_held(
                &env,
                &mut s,
                &mut rng,
                role.name,
                (fence, &seq),
                hold,
                &mut written,
            )
            .await;
            if held && rng.random_ratio(1, role.dies_one_in) {
                // Dies holding: the close frees it for the next waiter or candidate.
                s.end("closed").await;
                continue 'sessions;
            }
            let h = holder.clone();
            let released = s
                .run_op(
                    (role.release_op)(role.name.to_string()),
                    move |_: Client| async move { h.give_up().await },
                    |_| OkResult::Released,
                )
                .await;
            if role.refused_after && released.is_some() && rng.random_ratio(1, 3) {
                written += 1;
                let data = format!("p{process}-{written}");
                fenced_write(&mut s, role.name, fence, seq.clone(), data).await;
            }
            if !s.usable() {
                if role.refused_after && !held {
                    stale = Some((fence, seq));
                }
                reason = end_reason(&s);
                break;
            }
            pause(&env, ms(&mut rng, role.pause_ms.clone())).await;
        }
        s.end(reason).await;
    }
}

/// Takes `/verify/recipes/lock/rl0` with [`Lock`], does fenced writes while holding, and
/// releases; now and then closes its session while holding instead, or tries its sequencer
/// after the release (it must be refused). Until the run stops.
pub async fn recipe_lock_worker(env: Arc<Env>, process: ProcessId) {
    let role = HolderRole {
        name: RECIPE_LOCK,
        make: |c, dir, _| Lock::new(c, dir).map(Holder::Lock),
        dir: lock_dir(RECIPE_LOCK),
        take_op: |lock| Op::RecipeLock { lock },
        taken: |fence| OkResult::Locked { fence },
        not_taken: "NotAcquired",
        release_op: |lock| Op::RecipeUnlock { lock },
        hold_ms: 50..400,
        dies_one_in: 20,
        pause_ms: 0..150,
        refused_after: true,
    };
    holder_worker(env, process, role).await;
}

/// Campaigns in `/verify/recipes/election/e0` with [`Election`]; while leading, does fenced
/// writes with the leader's sequencer, then resigns, or now and then closes its session
/// while leading (the next candidate takes over). Until the run stops.
pub async fn election_worker(env: Arc<Env>, process: ProcessId) {
    let role = HolderRole {
        name: ELECTION,
        make: |c, dir, process| {
            Election::new(c, dir, format!("p{process}").as_bytes()).map(Holder::Election)
        },
        dir: election_dir(ELECTION),
        take_op: |election| Op::Campaign { election },
        taken: |term| OkResult::Leading { term },
        not_taken: "NotElected",
        release_op: |election| Op::Resign { election },
        hold_ms: 100..600,
        dies_one_in: 8,
        pause_ms: 0..300,
        refused_after: false,
    };
    holder_worker(env, process, role).await;
}

/// Puts unique items `p<process>-<n>` on `/verify/recipes/queue/q0`. A put whose reply was
/// lost is not retried (the recipe's rule: never twice).
pub async fn queue_producer(env: Arc<Env>, process: ProcessId) {
    let mut rng = env.rng(process);
    let dir = queue_dir(QUEUE);
    let mut n = 0u64;
    while let Some(mut s) = open_session(&env, process, &mut rng).await {
        let queue = match LockingQueue::new(s.client.clone(), &dir) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("process {process}: no queue at {dir}: {e}");
                s.end("closed").await;
                return;
            }
        };
        while !env.stopped() && s.usable() {
            n += 1;
            let item = format!("p{process}-{n}");
            let q = queue.clone();
            let data = item.clone();
            s.run_op(
                Op::QueuePut {
                    queue: QUEUE.to_string(),
                    item,
                },
                move |_: Client| async move { q.put(data.as_bytes()).await },
                |path: &String| OkResult::Put {
                    name: path.rsplit('/').next().unwrap_or_default().to_string(),
                },
            )
            .await;
            pause(&env, ms(&mut rng, 80..250)).await;
        }
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

/// One take: `Taken` (the claim's generation from its sequencer) or `Empty`.
fn taken_result(t: &Option<coord_recipes::TakenItem>) -> OkResult {
    match t {
        Some(t) => OkResult::Taken {
            item: String::from_utf8_lossy(&t.data).into_owned(),
            name: t.name.clone(),
            claim: Sequencer::decode(&t.claim).map_or(0, |s| s.czxid),
        },
        None => OkResult::Empty,
    }
}

/// Takes an item (waiting up to `wait`) and, if one came, acks it; with `careless`, now and
/// then gives it back or dies holding its claim (closes the session) instead. Returns
/// whether an item came, and whether the session must be ended.
async fn take_one(
    s: &mut Session,
    queue: &LockingQueue,
    rng: &mut ChaCha8Rng,
    wait: Duration,
    careless: bool,
) -> (bool, bool) {
    let q = queue.clone();
    let got = s
        .run_op(
            Op::QueueTake {
                queue: QUEUE.to_string(),
            },
            move |_: Client| async move { q.take(Some(wait)).await },
            taken_result,
        )
        .await;
    let Some(Some(item)) = got else {
        return (false, !s.usable());
    };
    let data = String::from_utf8_lossy(&item.data).into_owned();
    if careless {
        tokio::time::sleep(ms(rng, 0..30)).await;
        match rng.random_range(0..100) {
            0..6 => {
                let q = queue.clone();
                s.run_op(
                    Op::QueueRelease {
                        queue: QUEUE.to_string(),
                        item: data,
                    },
                    move |_: Client| async move { q.release(&item).await },
                    |_| OkResult::Released,
                )
                .await;
                return (true, !s.usable());
            }
            6..10 => return (true, true),
            _ => {}
        }
    }
    let q = queue.clone();
    s.run_op(
        Op::QueueAck {
            queue: QUEUE.to_string(),
            item: data,
        },
        move |_: Client| async move { q.ack(&item).await },
        |_| OkResult::Acked,
    )
    .await;
    (true, !s.usable())
}

/// Takes items from `/verify/recipes/queue/q0` under a claim and acks them; now and then
/// gives one back, or dies holding its claim (the item must be delivered again).
pub async fn queue_consumer(env: Arc<Env>, process: ProcessId) {
    let mut rng = env.rng(process);
    let dir = queue_dir(QUEUE);
    while let Some(mut s) = open_session(&env, process, &mut rng).await {
        let queue = match LockingQueue::new(s.client.clone(), &dir) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("process {process}: no queue at {dir}: {e}");
                s.end("closed").await;
                return;
            }
        };
        while !env.stopped() && s.usable() {
            let (_, end) = take_one(&mut s, &queue, &mut rng, Duration::from_secs(1), true).await;
            if end {
                break;
            }
            pause(&env, ms(&mut rng, 0..50)).await;
        }
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

/// After the run (faults healed, every worker stopped): takes and acks every item left,
/// waiting for the claims of dead consumers to go, until a `sync` + count finds the queue
/// empty, which it records as `QueueDrained`. Returns how many items it took; `Err` if
/// that took longer than `bound`. `env`'s stop flag must be clear.
pub async fn drain(env: Arc<Env>, process: ProcessId, bound: Duration) -> Result<u64, String> {
    let mut rng = env.rng(process);
    let deadline = Instant::now() + bound;
    let dir = queue_dir(QUEUE);
    let mut taken = 0u64;
    let mut last = String::from("no session");
    while Instant::now() < deadline {
        let Some(mut s) = open_session(&env, process, &mut rng).await else {
            break;
        };
        let queue = LockingQueue::new(s.client.clone(), &dir).map_err(|e| e.to_string())?;
        while Instant::now() < deadline && s.usable() {
            let (came, end) =
                take_one(&mut s, &queue, &mut rng, Duration::from_millis(500), false).await;
            if end {
                last = "the session ended".into();
                break;
            }
            if came {
                taken += 1;
                continue;
            }
            let q = queue.clone();
            let d = dir.clone();
            let left = s
                .run_quiet(
                    move |c: Client| async move {
                        c.sync(&d).await?;
                        q.len().await
                    },
                    false,
                    |left: &usize, zxid| {
                        (*left == 0).then(|| Notice::QueueDrained {
                            queue: QUEUE.to_string(),
                            zxid,
                        })
                    },
                )
                .await;
            match left {
                Ok(0) => {
                    s.end("closed").await;
                    return Ok(taken);
                }
                Ok(n) => last = format!("{n} items still claimed"),
                Err(e) => last = format!("{e:?}"),
            }
        }
        let reason = end_reason(&s);
        s.end(reason).await;
    }
    Err(format!(
        "the queue was not drained within {} s ({taken} items taken; {last})",
        bound.as_secs()
    ))
}

/// A 2PC group: a coordinator (process `first`) and the participants a, b, c (the next
/// three processes), each with its own session. The coordinator begins `g<group>-t<n>`,
/// tells the participants (in-process: which transaction to look at is not what is
/// tested), and decides; each participant votes (yes mostly, sometimes no, sometimes not at
/// all) and learns the decision, aborting on its own if none came in its time.
pub async fn txn_group(env: Arc<Env>, first: ProcessId, group: usize) {
    let (done_tx, done_rx) = mpsc::unbounded_channel::<String>();
    let mut tells = Vec::new();
    // A set, so that aborting this task (a run that stops it late) aborts the participants
    // too: nothing may record after the run closed the history.
    let mut participants = tokio::task::JoinSet::new();
    for (i, name) in PARTICIPANTS.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        tells.push(tx);
        let process = first + 1 + i as ProcessId;
        participants.spawn(participant(env.clone(), process, name, rx, done_tx.clone()));
    }
    drop(done_tx);
    coordinator(&env, first, group, tells, done_rx).await;
    participants.join_all().await;
}

async fn decide_op(s: &mut Session, coord: &Coordinator, id: &str, votes: Duration) -> bool {
    let c = coord.clone();
    let txn = id.to_string();
    let bound = s.op_timeout() + votes;
    s.run_op_within(
        bound,
        Op::TxnDecide {
            txn: id.to_string(),
        },
        move |_: Client| async move { c.decide(&txn, votes).await },
        |d: &Decision| OkResult::Decided {
            commit: *d == Decision::Commit,
        },
    )
    .await
    .is_some()
}

async fn coordinator(
    env: &Env,
    process: ProcessId,
    group: usize,
    tells: Vec<mpsc::UnboundedSender<String>>,
    mut done: mpsc::UnboundedReceiver<String>,
) {
    let mut rng = env.rng(process);
    let mut n = 0u64;
    // A transaction begun whose decision this coordinator did not get (its session ended).
    let mut pending: Option<String> = None;
    while let Some(mut s) = open_session(env, process, &mut rng).await {
        let coord = match Coordinator::new(s.client.clone(), TXN_DIR) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("process {process}: no coordinator at {TXN_DIR}: {e}");
                s.end("closed").await;
                return;
            }
        };
        if let Some(id) = pending.take() {
            // A new session of the coordinator decides again: the same outcome holds.
            let votes = ms(&mut rng, 200..800);
            decide_op(&mut s, &coord, &id, votes).await;
        }
        while !env.stopped() && s.usable() {
            n += 1;
            let id = format!("g{group}-t{n}");
            let c = coord.clone();
            let txn = id.clone();
            let bound = s.op_timeout();
            let (_, begun) = s
                .run_op_judged(
                    bound,
                    Op::TxnBegin {
                        txn: id.clone(),
                        participants: PARTICIPANTS.map(String::from).to_vec(),
                    },
                    move |_: Client| async move { c.begin(&txn, &PARTICIPANTS).await },
                    |_| Ok(OkResult::Begun),
                )
                .await;
            if !begun && s.usable() {
                // Refused: the transaction does not exist.
                continue;
            }
            for t in &tells {
                let _ = t.send(id.clone());
            }
            if s.usable() {
                let votes = ms(&mut rng, 800..2500);
                if !decide_op(&mut s, &coord, &id, votes).await && !s.usable() {
                    pending = Some(id.clone());
                }
            } else {
                pending = Some(id.clone());
            }
            // Wait for the participants to be done with it (bounded), so that one
            // transaction runs at a time.
            let deadline = Instant::now() + env.op_timeout * 3;
            let mut left = PARTICIPANTS.len();
            while left > 0 {
                match tokio::time::timeout_at(deadline, done.recv()).await {
                    Ok(Some(d)) if d == id => left -= 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            pause(env, ms(&mut rng, 0..100)).await;
        }
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

async fn participant(
    env: Arc<Env>,
    process: ProcessId,
    name: &'static str,
    mut told: mpsc::UnboundedReceiver<String>,
    done: mpsc::UnboundedSender<String>,
) {
    let mut rng = env.rng(process);
    let mut session: Option<Session> = None;
    loop {
        let id = tokio::select! {
            id = told.recv() => match id {
                Some(id) => id,
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if env.stopped() {
                    break;
                }
                continue;
            }
        };
        if let Some(s) = session.take_if(|s| !s.usable()) {
            let reason = end_reason(&s);
            s.end(reason).await;
        }
        if session.is_none() {
            session = open_session(&env, process, &mut rng).await;
        }
        if let Some(s) = session.as_mut() {
            take_part(&env, s, &mut rng, name, &id).await;
        }
        let _ = done.send(id);
        if env.stopped() {
            break;
        }
    }
    if let Some(s) = session {
        let reason = end_reason(&s);
        s.end(reason).await;
    }
}

/// One participant's part in transaction `id`: wait for it to begin, vote, learn.
async fn take_part(env: &Env, s: &mut Session, rng: &mut ChaCha8Rng, name: &str, id: &str) {
    let p = match Participant::new(s.client.clone(), TXN_DIR, name) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("participant {name}: {e}");
            return;
        }
    };
    let (q, txn) = (p.clone(), id.to_string());
    let begun = s
        .run_quiet(
            move |_: Client| async move { q.wait_begun(&txn, Duration::from_secs(3)).await },
            false,
            |_, _| None,
        )
        .await;
    if begun != Ok(true) {
        return;
    }
    let vote = match rng.random_range(0..100) {
        0..5 => None,
        5..20 => Some(false),
        _ => Some(true),
    };
    if let Some(yes) = vote {
        let (q, txn) = (p.clone(), id.to_string());
        s.run_op(
            Op::TxnVote {
                txn: id.to_string(),
                participant: name.to_string(),
                yes,
            },
            move |_: Client| async move { q.vote(&txn, yes).await },
            |_| OkResult::Voted,
        )
        .await;
        if !s.usable() {
            return;
        }
    }
    let patience = ms(rng, 500..3000);
    let (q, txn) = (p.clone(), id.to_string());
    s.run_op_within(
        env.op_timeout * 2,
        Op::TxnLearn {
            txn: id.to_string(),
            participant: name.to_string(),
        },
        move |_: Client| async move {
            match q.decision(&txn, Some(patience)).await? {
                Some(d) => Ok(d),
                None => q.abort_if_undecided(&txn).await,
            }
        },
        |d: &Decision| OkResult::Decided {
            commit: *d == Decision::Commit,
        },
    )
    .await;
}
