//! The exclusive lock: a fair queue of waiters, a lock-delay holder node, and a sequencer
//! for fencing.
//!
//! ```text
//!   /app/lock                      persistent (created on first use)
//!   ├── 3f9c…e1-lock-0000000007    ephemeral-sequential: one per waiting or holding attempt
//!   ├── 8a02…4c-lock-0000000008    (watches only …0007: no herd)
//!   └── holder                     EphemeralLock (lock-delay), data "<queue node>\n<data>",
//!                                  created by the head of the queue; its czxid is the hold's
//!                                  generation, its owner the holding session
//! ```

use crate::util::{
    LOCK_DELAY_POLL, RETRY_PAUSE, alive, bad, check_dir, child, create_unique, deadline,
    delete_quietly, ensure_path, expired, find_prefixed, name_of, retry, sleep_until_at_most,
    sorted_by_sequence, spawn_cleanup, unique_id, wait_watch,
};
use coord_client::{
    Client, CreateOptions, Error, ErrorCode, LockMode, MultiOp, MultiResult, Sequencer,
    SessionState, Stat,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The name of the holder node inside a lock's directory.
pub const HOLDER: &str = "holder";
/// The marker in the names of a lock's queue nodes (`<unique id>-lock-<sequence>`).
const MARKER: &str = "-lock-";
/// The lock-delay used unless [`LockOptions::lock_delay`] says otherwise (Chubby's 1 s...
/// long enough for an expired holder to notice, short enough not to stall the next one).
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(1);

/// How a [`Lock`] is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// How long the lock stays unavailable after a holder's session *expired* without
    /// releasing it (Chubby's lock-delay), so a holder that lost its session (a paused
    /// process, a partition) has time to notice before the next holder starts. At most 60 s.
    /// A clean release or session close frees the lock at once.
    pub lock_delay: Duration,
    /// What the holder node says about the holder besides its queue node (a host name, an
    /// address: whatever lets others know who holds it). Readable with [`Lock::holder`].
    pub data: Vec<u8>,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            lock_delay: DEFAULT_LOCK_DELAY,
            data: Vec::new(),
        }
    }
}

/// What a [`Lock`] handle knows about its hold right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockStatus {
    /// This handle does not hold the lock.
    NotHeld,
    /// Held, and the session is connected: the holder node exists and is ours.
    Held,
    /// Held, but the connection is lost (Chubby's jeopardy): the session may already have
    /// expired on the servers and another process may hold the lock. Stop acting on the lock
    /// (or act only with the sequencer checked) until the status is `Held` again.
    Jeopardy,
    /// The session expired or was closed while holding: the lock is lost. [`Lock::release`]
    /// clears the hold and reports it.
    Lost,
}

/// Who holds a lock, as its holder node says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's [`LockOptions::data`].
    pub data: Vec<u8>,
    /// The holding session.
    pub session_id: u64,
    /// The hold's generation (the holder node's czxid): grows from each holder to the next.
    pub czxid: u64,
    /// The hold's sequencer (see [`Lock::sequencer`]).
    pub sequencer: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Hold {
    queue_node: String,
    czxid: u64,
    session_id: u64,
    sequencer: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    /// How many `acquire`s this handle has not released yet; `hold` is `Some` exactly while
    /// it is positive.
    count: usize,
    hold: Option<Hold>,
}

struct Inner {
    client: Client,
    /// Starts the name of every queue node of this handle, so that a node a dropped
    /// connection delivered late (a "ghost" of an earlier attempt) is recognised and removed.
    id: String,
    path: String,
    holder_path: String,
    opts: LockOptions,
    /// One acquire attempt per handle at a time: a second acquire of the same handle waits
    /// for the first and then re-enters instead of queueing a second node.
    acquiring: tokio::sync::Mutex<()>,
    state: parking_lot::Mutex<State>,
}

/// A distributed exclusive lock (ZooKeeper's lock recipe with Chubby's lock-delay and
/// sequencers).
///
/// **Guarantee.** While the ensemble has a quorum, at most one session holds the lock: only
/// the head of the queue creates the `holder` node, and it exists at most once. A hold ends
/// with [`Lock::release`], with the session's close, or with its expiry; after an expiry
/// the lock cannot be taken again for the lock-delay. Waiters are served in the order they
/// queued (fair), and each watches only its predecessor, so a release wakes one waiter.
///
/// **Reentrant** per handle: `acquire` on a handle (or a clone of it) that holds the lock
/// just counts, and the lock is released after as many `release`s. The clones of one handle
/// share one hold, so two tasks of one process exclude each other only through separate
/// handles ([`Lock::new`] twice).
///
/// **Disconnect (jeopardy).** Calls wait for the client to reconnect and are retried; a
/// queue-node create whose reply was lost is found again by its unique prefix, never
/// leaked or doubled. A holder must treat the lock as possibly lost while
/// [`Lock::status`] is `Jeopardy` (until the session is `Safe` again) and should pass the
/// [`Lock::sequencer`] to anything it writes, so a write made by a holder that lost the lock
/// is refused (`MultiOp::CheckSequencer`, `Client::check_sequencer`).
///
/// **Session expiry.** The session's queue node and holder node vanish; the lock is lost
/// (`Lost`), the next waiter gets it once the lock-delay has passed, and a pending
/// `acquire` fails with `SessionExpired`.
///
/// **Leader fail-over** (of the Coord ensemble). The session survives (a new leader gives
/// every session a fresh timeout), calls in flight fail with `ConnectionLoss` and are
/// retried by the recipe, watches are re-registered by the client: a hold or a place in the
/// queue is kept.
///
/// Dropping an `acquire` future cancels it: its queue node is deleted in the background.
/// Dropping a held `Lock` does not release it (the hold lasts until release or the end of
/// the session).
#[derive(Clone)]
pub struct Lock {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("path", &self.inner.path)
            .field("status", &self.status())
            .finish()
    }
}

/// Removes a cancelled attempt's nodes (found by the attempt's unique prefix, so even a
/// create whose reply never came) unless disarmed.
struct Cleanup {
    client: Client,
    dir: String,
    prefix: String,
    holder_path: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, dir, prefix, holder) = (
            self.client.clone(),
            std::mem::take(&mut self.dir),
            std::mem::take(&mut self.prefix),
            std::mem::take(&mut self.holder_path),
        );
        spawn_cleanup(async move {
            if let Ok(Some((node, _))) = find_prefixed(&client, &dir, &prefix).await {
                let _ = abandon(&client, &holder, &node).await;
            }
        });
    }
}

/// The holder node's data: the queue node's name, a newline, the user's data.
fn holder_data(queue_name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(queue_name.len() + 1 + data.len());
    out.extend_from_slice(queue_name.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// Splits holder data into the queue node's name and the user's data.
pub(crate) fn split_holder_data(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The sequencer of the hold a node with `stat` at `path` stands for.
pub(crate) fn sequencer_of(path: &str, mode: LockMode, stat: &Stat) -> Vec<u8> {
    Sequencer {
        path: path.to_string(),
        mode,
        czxid: stat.czxid,
        session_id: stat.ephemeral_owner,
    }
    .encode()
}

impl Lock {
    /// A lock at `path` (its directory; created on first use) with default options.
    pub fn new(client: Client, path: &str) -> Result<Lock, Error> {
        Lock::with_options(client, path, LockOptions::default())
    }

    /// A lock at `path` with `opts`; `BadArguments` for a lock-delay over 60 s.
    pub fn with_options(client: Client, path: &str, opts: LockOptions) -> Result<Lock, Error> {
        check_dir(path)?;
        if opts.lock_delay > Duration::from_secs(60) {
            return Err(bad("a lock-delay is at most 60 s"));
        }
        Ok(Lock {
            inner: Arc::new(Inner {
                client,
                id: unique_id(),
                holder_path: child(path, HOLDER),
                path: path.to_string(),
                opts,
                acquiring: tokio::sync::Mutex::new(()),
                state: parking_lot::Mutex::new(State::default()),
            }),
        })
    }

    /// The lock's directory.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The client (session) this lock uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Takes the lock, waiting at most `timeout` (`None`: as long as it takes). `Ok(true)`:
    /// held (or re-entered); `Ok(false)`: not within the timeout (nothing is left behind).
    /// Errors: `SessionExpired` (the session ended while waiting), or what the server
    /// refused (`NoAuth` on the lock's directory, ...).
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = deadline(timeout);
        if self.reenter() {
            return Ok(true);
        }
        let _attempt = match deadline {
            None => self.inner.acquiring.lock().await,
            Some(d) => match tokio::time::timeout_at(d, self.inner.acquiring.lock()).await {
                Ok(g) => g,
                Err(_) => return Ok(false),
            },
        };
        if self.reenter() {
            return Ok(true);
        }
        let client = &self.inner.client;
        ensure_path(client, &self.inner.path).await?;
        let prefix = format!("{}{:08x}{MARKER}", self.inner.id, rand::random::<u32>());
        // Covers the window before the create's reply: a cancelled acquire whose create did
        // go through leaves a node that only its prefix names.
        let mut cleanup = Cleanup {
            client: client.clone(),
            dir: self.inner.path.clone(),
            prefix: prefix.clone(),
            holder_path: self.inner.holder_path.clone(),
            armed: true,
        };
        let created = create_unique(
            client,
            &self.inner.path,
            &prefix,
            b"",
            CreateOptions::ephemeral_sequential(),
        )
        .await;
        let node = match created {
            Ok((node, _)) => node,
            Err(e) => {
                // A failed create left no node (a lost reply was looked for already).
                cleanup.armed = false;
                return Err(e);
            }
        };
        let outcome = self.wait_for_turn(&node, deadline).await;
        cleanup.armed = false;
        match outcome {
            Ok(Some(hold)) => {
                let mut st = self.inner.state.lock();
                st.count = 1;
                st.hold = Some(hold);
                Ok(true)
            }
            Ok(None) => {
                delete_quietly(client, &node).await?;
                Ok(false)
            }
            Err(e) => {
                if alive(client) {
                    let _ = abandon(client, &self.inner.holder_path, &node).await;
                }
                Err(e)
            }
        }
    }

    /// Takes the lock only if that needs no waiting (no one holds it or queues before us,
    /// and no lock-delay runs). Reentrant like [`Lock::acquire`].
    pub async fn try_acquire(&self) -> Result<bool, Error> {
        self.acquire(Some(Duration::ZERO)).await
    }

    /// Releases one `acquire`; the last one deletes the holder and queue nodes in one multi
    /// (guarded by the hold's sequencer, so it can never delete another holder's node).
    /// `BadArguments` if this handle does not hold the lock. If the hold had been lost (the
    /// session expired: `SessionExpired`; the holder node was removed: `StaleSequencer`) the
    /// hold is cleared and the error says so: the critical section may have overlapped
    /// another holder's.
    pub async fn release(&self) -> Result<(), Error> {
        let hold = {
            let mut st = self.inner.state.lock();
            if st.count == 0 {
                return Err(bad(format!(
                    "release of {}: this handle does not hold the lock",
                    self.inner.path
                )));
            }
            st.count -= 1;
            if st.count > 0 {
                return Ok(());
            }
            st.hold.take()
        };
        let Some(hold) = hold else {
            return Ok(());
        };
        self.release_hold(&hold).await
    }

    /// Releases the lock whatever the reentry count (see [`Lock::release`]); `Ok` if this
    /// handle did not hold it.
    pub async fn release_all(&self) -> Result<(), Error> {
        let hold = {
            let mut st = self.inner.state.lock();
            st.count = 0;
            st.hold.take()
        };
        match hold {
            Some(hold) => self.release_hold(&hold).await,
            None => Ok(()),
        }
    }

    async fn release_hold(&self, hold: &Hold) -> Result<(), Error> {
        let client = &self.inner.client;
        let ops = vec![
            MultiOp::CheckSequencer {
                sequencer: hold.sequencer.clone(),
            },
            MultiOp::Delete {
                path: self.inner.holder_path.clone(),
                version: -1,
            },
            MultiOp::Delete {
                path: hold.queue_node.clone(),
                version: -1,
            },
        ];
        let mut retried = false;
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if matches!(e.code(), ErrorCode::StaleSequencer | ErrorCode::NoNode) => {
                    // Our queue node may remain (the holder was removed from outside).
                    let _ = delete_quietly(client, &hold.queue_node).await;
                    if retried {
                        // The first try was applied and its reply lost, or the hold had been
                        // lost before: either way nothing of ours holds the lock now.
                        return Ok(());
                    }
                    return Err(Error::with_message(
                        ErrorCode::StaleSequencer,
                        format!(
                            "{}: the lock had been lost before its release",
                            self.inner.path
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// What this handle knows about its hold (see [`LockStatus`]).
    pub fn status(&self) -> LockStatus {
        if self.inner.state.lock().hold.is_none() {
            return LockStatus::NotHeld;
        }
        match self.inner.client.state() {
            SessionState::Connected | SessionState::Connecting => LockStatus::Held,
            SessionState::Disconnected => LockStatus::Jeopardy,
            SessionState::Expired | SessionState::Closed => LockStatus::Lost,
        }
    }

    /// Whether [`Lock::status`] is `Held`.
    pub fn is_held(&self) -> bool {
        self.status() == LockStatus::Held
    }

    /// How many acquires of this handle are not released.
    pub fn hold_count(&self) -> usize {
        self.inner.state.lock().count
    }

    /// The hold's sequencer while this handle holds the lock: [`Sequencer`] bytes naming the
    /// holder node, its czxid (the generation) and the holding session, mode `Exclusive`.
    /// Hand it to a service that checks it (`Client::check_sequencer`, or
    /// `MultiOp::CheckSequencer` in a multi) before acting for the holder.
    pub fn sequencer(&self) -> Option<Vec<u8>> {
        self.inner
            .state
            .lock()
            .hold
            .as_ref()
            .map(|h| h.sequencer.clone())
    }

    /// The hold's generation (the holder node's czxid) while held.
    pub fn generation(&self) -> Option<u64> {
        self.inner.state.lock().hold.as_ref().map(|h| h.czxid)
    }

    /// The holding session while held (this client's session id).
    pub fn holder_session(&self) -> Option<u64> {
        self.inner.state.lock().hold.as_ref().map(|h| h.session_id)
    }

    /// Who holds the lock now, from the holder node (any session's hold), or `None`.
    pub async fn holder(&self) -> Result<Option<LockHolder>, Error> {
        read_holder(&self.inner.client, &self.inner.holder_path).await
    }

    fn reenter(&self) -> bool {
        let mut st = self.inner.state.lock();
        if st.count > 0 {
            st.count += 1;
            true
        } else {
            false
        }
    }

    /// Waits until `node` heads the queue and takes the holder node; `None` at the deadline.
    async fn wait_for_turn(
        &self,
        node: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Hold>, Error> {
        let client = &self.inner.client;
        let me = name_of(node);
        loop {
            let (names, _) = retry(client, || client.get_children(&self.inner.path)).await?;
            let queue = sorted_by_sequence(names, MARKER);
            // Ghosts of this handle's earlier attempts would block the queue: remove them.
            let ghosts: Vec<&String> = queue
                .iter()
                .map(|(_, n)| n)
                .filter(|n| n.starts_with(&self.inner.id) && n.as_str() != me)
                .collect();
            if !ghosts.is_empty() {
                for g in ghosts {
                    delete_quietly(client, &child(&self.inner.path, g)).await?;
                }
                continue;
            }
            let Some(pos) = queue.iter().position(|(_, n)| n == me) else {
                return Err(Error::with_message(
                    if alive(client) {
                        ErrorCode::NoNode
                    } else {
                        ErrorCode::SessionExpired
                    },
                    format!("{node}: the queue node is gone (session ended or removed by hand)"),
                ));
            };
            if pos == 0 {
                return self.take_holder(node, deadline).await;
            }
            if expired(deadline) {
                return Ok(None);
            }
            let predecessor = child(&self.inner.path, &queue[pos - 1].1);
            let (stat, watch) = retry(client, || client.exists_w(&predecessor)).await?;
            if stat.is_some() && !wait_watch(watch, deadline).await? {
                return Ok(None);
            }
        }
    }

    /// Creates the holder node as the head of the queue, through lock-delay and lost replies.
    async fn take_holder(
        &self,
        node: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Hold>, Error> {
        let client = &self.inner.client;
        let data = holder_data(name_of(node), &self.inner.opts.data);
        let opts = CreateOptions::lock(self.inner.opts.lock_delay);
        let hold = |stat: &Stat| Hold {
            queue_node: node.to_string(),
            czxid: stat.czxid,
            session_id: stat.ephemeral_owner,
            sequencer: sequencer_of(&self.inner.holder_path, LockMode::Exclusive, stat),
        };
        loop {
            // Conditional on our queue node: a create that a dropped connection delivers late
            // (after this attempt ended and deleted its queue node) then fails instead of
            // leaving a holder nobody releases.
            let ops = vec![
                MultiOp::Check {
                    path: node.to_string(),
                    version: -1,
                },
                opts.to_op(&self.inner.holder_path, &data)?,
            ];
            match client.multi(ops).await {
                Ok(results) => {
                    let Some(MultiResult::Create { stat, .. }) = results.get(1) else {
                        return Err(Error::with_message(
                            ErrorCode::MarshallingError,
                            "a lock multi's reply lacks the create result",
                        ));
                    };
                    return Ok(Some(hold(stat)));
                }
                Err(e) if e.code() == ErrorCode::NoNode => {
                    return Err(Error::with_message(
                        if alive(client) {
                            ErrorCode::NoNode
                        } else {
                            ErrorCode::SessionExpired
                        },
                        format!(
                            "{node}: the queue node is gone (session ended or removed by hand)"
                        ),
                    ));
                }
                Err(e) if e.code() == ErrorCode::LockDelay => {
                    // The previous holder's session expired holding the lock.
                    if expired(deadline) {
                        return Ok(None);
                    }
                    sleep_until_at_most(LOCK_DELAY_POLL, deadline).await;
                }
                Err(e)
                    if e.code() == ErrorCode::NodeExists
                        || (crate::util::transient(&e) && alive(client)) =>
                {
                    if crate::util::transient(&e) {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    match retry(client, || client.get_data(&self.inner.holder_path)).await {
                        // Our own create, whose reply was lost.
                        Ok((d, stat))
                            if stat.ephemeral_owner == client.session_id() && d == data =>
                        {
                            return Ok(Some(hold(&stat)));
                        }
                        Ok(_) => {
                            // Held outside the queue's order (its queue node was removed by
                            // hand): wait for it to go.
                            let (stat, watch) =
                                retry(client, || client.exists_w(&self.inner.holder_path)).await?;
                            if stat.is_some() && !wait_watch(watch, deadline).await? {
                                return Ok(None);
                            }
                        }
                        Err(e) if e.code() == ErrorCode::NoNode => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Removes what a failed attempt left: its queue node, and the holder if it is ours.
async fn abandon(client: &Client, holder_path: &str, node: &str) -> Result<(), Error> {
    let me = name_of(node).as_bytes();
    if let Ok((d, stat)) = client.get_data(holder_path).await
        && stat.ephemeral_owner == client.session_id()
        && split_holder_data(&d).0 == me
    {
        delete_quietly(client, holder_path).await?;
    }
    delete_quietly(client, node).await
}

/// Reads a holder node (of a lock or an election).
pub(crate) async fn read_holder(
    client: &Client,
    holder_path: &str,
) -> Result<Option<LockHolder>, Error> {
    match retry(client, || client.get_data(holder_path)).await {
        Ok((d, stat)) => Ok(Some(holder_from(holder_path, &d, &stat))),
        Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
        Err(e) => Err(e),
    }
}

/// The holder a holder node's data and Stat describe.
pub(crate) fn holder_from(holder_path: &str, data: &[u8], stat: &Stat) -> LockHolder {
    LockHolder {
        data: split_holder_data(data).1.to_vec(),
        session_id: stat.ephemeral_owner,
        czxid: stat.czxid,
        sequencer: sequencer_of(holder_path, LockMode::Exclusive, stat),
    }
}
