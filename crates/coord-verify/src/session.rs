//! One process's current session: a real [`Client`], the frames it saw in arrival order, and a
//! monitor that records the session's state changes.
//!
//! ```text
//!   session task (coord-client) ── on_frame ──┬─ reply observer:  Seen::Reply(zxid)
//!                                             └─ default watcher: Seen::Event(event)
//!                                                      │  one inbox, arrival order
//!   process: invoke ─ call ─ reply ─ under the inbox lock: events before the last reply,
//!            Complete(zxid of the last reply), events after it → history
//!   monitor: Disconnected; on expiry, under the inbox lock: remaining events, SessionEnded
//! ```
//!
//! Invariants:
//! - one operation at a time per session, so when an operation's last call returns, the last
//!   `Reply` in the inbox is that call's reply;
//! - the inbox is emptied into the history only while its lock is held, and everything
//!   recorded from it (events, the completion placed among them, `SessionEnded`) is recorded
//!   under that lock, so the history keeps the order in which the client received them;
//! - an operation abandoned on timeout leaves its reply to arrive later, where it would be
//!   taken for the next operation's: such a session is marked desynchronised and must be
//!   ended ([`Session::desynced`]), never used again;
//! - every `SessionStarted` gets exactly one `SessionEnded` for the same session, after every
//!   event of that session: `expired` from the monitor, `closed`/`abandoned` from
//!   [`Session::end`].

use crate::outcome;
use crate::record::Recorder;
use coord_check::history::{Notice, OkResult, Op, Outcome, ProcessId};
use coord_client::{Client, ClientConfig, Error, EventType, SessionState, WatchedEvent};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The prefix of register paths; key `k` is `/verify/k/<k>`.
pub const KEY_PREFIX: &str = "/verify/k/";

/// How long ending a session may take before it is left to expire on its own.
const END_BOUND: Duration = Duration::from_secs(5);

/// Something the session task handed over, in arrival order.
#[derive(Debug)]
enum Seen {
    Reply(u64),
    Event(WatchedEvent),
}

/// Where one session's replies and events wait to be recorded, and who records them.
struct Inbox {
    seen: Mutex<VecDeque<Seen>>,
    rec: Arc<Recorder>,
    process: ProcessId,
    session: u64,
    /// Set once `SessionEnded` is recorded (by whoever came first).
    ended: AtomicBool,
    /// The zxid of the last reply taken from `seen`: where a read answered from the client
    /// cache (no reply) falls.
    last_reply: AtomicU64,
}

impl Inbox {
    /// Records a data change of a register as a `WatchEvent`, and the server giving up a
    /// register's persistent watch as `WatchLost`; other events (lock nodes) are not part of
    /// the history.
    fn record_event(&self, e: &WatchedEvent) {
        let Some(key) = e.path.strip_prefix(KEY_PREFIX) else {
            return;
        };
        let notice = match e.event_type {
            EventType::NodeDataChanged => Notice::WatchEvent {
                key: key.to_string(),
                zxid: e.zxid,
            },
            // The server could not replay what the watch missed and gave it up (a removal the
            // runner asked for would carry zxid 0; it never asks).
            EventType::PersistentWatchRemoved if e.zxid != 0 => Notice::WatchLost {
                key: key.to_string(),
                zxid: e.zxid,
            },
            _ => return,
        };
        self.rec.notice(self.process, self.session, notice);
    }

    /// Records every event waiting (no call may be outstanding).
    fn flush(&self) {
        let mut q = self.seen.lock();
        for item in q.drain(..) {
            match item {
                Seen::Event(e) => self.record_event(&e),
                Seen::Reply(z) => self.last_reply.store(z, Ordering::Relaxed),
            }
        }
    }

    /// With the lock held: records the events that came before the last reply, then
    /// `place(zxid of the last reply)`, then the events after it.
    fn settle<R>(&self, place: impl FnOnce(Option<u64>) -> R) -> R {
        let mut q = self.seen.lock();
        let mut zxid = None;
        if let Some(last) = q.iter().rposition(|s| matches!(s, Seen::Reply(_))) {
            for item in q.drain(..=last) {
                match item {
                    Seen::Reply(z) => zxid = Some(z),
                    Seen::Event(e) => self.record_event(&e),
                }
            }
        }
        if let Some(z) = zxid {
            self.last_reply.store(z, Ordering::Relaxed);
        }
        let placed = place(zxid);
        for item in q.drain(..) {
            if let Seen::Event(e) = item {
                self.record_event(&e);
            }
        }
        placed
    }

    /// Records the remaining events and then `SessionEnded`, unless it was recorded already.
    fn end(&self, reason: &str) {
        let mut q = self.seen.lock();
        for item in q.drain(..) {
            if let Seen::Event(e) = item {
                self.record_event(&e);
            }
        }
        if !self.ended.swap(true, Ordering::Relaxed) {
            self.rec.notice(
                self.process,
                self.session,
                Notice::SessionEnded {
                    session: self.session,
                    reason: reason.to_string(),
                },
            );
        }
    }
}

/// A live session of one process.
pub struct Session {
    /// The client (one session).
    pub client: Client,
    /// Its id.
    pub id: u64,
    inbox: Arc<Inbox>,
    /// Disconnections the monitor noticed.
    disconnects: Arc<AtomicU64>,
    monitor: Option<JoinHandle<()>>,
    desynced: bool,
    op_timeout: Duration,
}

impl Session {
    /// Opens a session and records `SessionStarted`. `Err` when no server accepted one within
    /// the config's connect timeout.
    pub async fn open(
        cfg: ClientConfig,
        process: ProcessId,
        rec: Arc<Recorder>,
        op_timeout: Duration,
    ) -> Result<Session, Error> {
        let client = Client::connect(cfg).await?;
        let id = client.session_id();
        let inbox = Arc::new(Inbox {
            seen: Mutex::new(VecDeque::new()),
            rec: rec.clone(),
            process,
            session: id,
            ended: AtomicBool::new(false),
            last_reply: AtomicU64::new(client.last_zxid()),
        });
        // Nothing was asked yet, so nothing can have arrived before these are in place.
        let i = inbox.clone();
        client.set_reply_observer(move |zxid| i.seen.lock().push_back(Seen::Reply(zxid)));
        let i = inbox.clone();
        client.set_default_watcher(move |event| i.seen.lock().push_back(Seen::Event(event)));
        rec.notice(
            process,
            id,
            Notice::SessionStarted {
                session: id,
                timeout_ms: u64::try_from(client.session_timeout().as_millis()).unwrap_or(0),
            },
        );
        let disconnects = Arc::new(AtomicU64::new(0));
        let monitor = tokio::spawn(monitor(
            client.state_events(),
            inbox.clone(),
            disconnects.clone(),
        ));
        Ok(Session {
            client,
            id,
            inbox,
            disconnects,
            monitor: Some(monitor),
            desynced: false,
            op_timeout,
        })
    }

    /// The session's client-cache counts.
    pub fn cache_stats(&self) -> coord_client::CacheStats {
        self.client.cache_stats()
    }

    /// Whether the session can still be used: alive, and not desynchronised by a timeout.
    pub fn usable(&self) -> bool {
        !self.desynced
            && self.client.state().is_alive()
            && !self.inbox.ended.load(Ordering::Relaxed)
    }

    /// Whether an operation was abandoned on this session (see the module doc).
    pub fn desynced(&self) -> bool {
        self.desynced
    }

    /// The process this session belongs to.
    pub fn process(&self) -> ProcessId {
        self.inbox.process
    }

    /// The bound on one operation this session was opened with.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Disconnections seen so far.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// Runs `call` on a clone of the client, as a sequence of requests awaited one at a time,
    /// bounded by `timeout`; its value with the zxid of its last reply, or how it failed
    /// (a timeout desynchronises the session).
    async fn call<T, F, Fut>(&mut self, timeout: Duration, call: F) -> Result<T, Outcome>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        match tokio::time::timeout(timeout, call(self.client.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(outcome::of_error(&e)),
            Err(_) => {
                self.desynced = true;
                Err(outcome::timed_out(timeout.as_millis()))
            }
        }
    }

    /// Invokes `op`, runs `call` (see [`Session::run_op_within`]) with the op timeout.
    pub async fn run_op<T, F, Fut>(
        &mut self,
        op: Op,
        call: F,
        ok: impl FnOnce(&T) -> OkResult,
    ) -> Option<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_op_within(self.op_timeout, op, call, ok).await
    }

    /// Invokes `op`, runs `call` on a clone of the client (its requests awaited one at a
    /// time), and records the completion where the last reply fell among the events: `Ok`
    /// with `ok(value)` and that reply's zxid, or the classified failure. Returns the value
    /// on success.
    pub async fn run_op_within<T, F, Fut>(
        &mut self,
        timeout: Duration,
        op: Op,
        call: F,
        ok: impl FnOnce(&T) -> OkResult,
    ) -> Option<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_op_mode(timeout, op, call, ok, false).await
    }

    /// Like [`Session::run_op_within`], for a call whose success may still mean "not done":
    /// `judge(value)` gives the `Ok` result, or the error of a `Fail` (an acquire that timed
    /// out and left nothing behind). Returns the call's value whenever it succeeded, and
    /// whether the operation was recorded as `Ok`.
    pub async fn run_op_judged<T, F, Fut>(
        &mut self,
        timeout: Duration,
        op: Op,
        call: F,
        judge: impl FnOnce(&T) -> Result<OkResult, String>,
    ) -> (Option<T>, bool)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_op_inner(timeout, op, call, judge, false).await
    }

    /// Like [`Session::run_op`], for a read through the client cache: one answered from the
    /// cache has no reply, and falls at the session's last reply (the cache dropped every
    /// entry a later write changed before that reply arrived).
    pub async fn run_cached_read<T, F, Fut>(
        &mut self,
        op: Op,
        call: F,
        ok: impl FnOnce(&T) -> OkResult,
    ) -> Option<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_op_mode(self.op_timeout, op, call, ok, true).await
    }

    /// [`Session::run_op_within`], or with `cached` [`Session::run_cached_read`].
    async fn run_op_mode<T, F, Fut>(
        &mut self,
        timeout: Duration,
        op: Op,
        call: F,
        ok: impl FnOnce(&T) -> OkResult,
        cached: bool,
    ) -> Option<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let (value, ok_outcome) = self
            .run_op_inner(timeout, op, call, |v: &T| Ok(ok(v)), cached)
            .await;
        value.filter(|_| ok_outcome)
    }

    async fn run_op_inner<T, F, Fut>(
        &mut self,
        timeout: Duration,
        op: Op,
        call: F,
        judge: impl FnOnce(&T) -> Result<OkResult, String>,
        cached: bool,
    ) -> (Option<T>, bool)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.inbox.flush();
        let (rec, process, session) = (&self.inbox.rec, self.inbox.process, self.id);
        let op_id = rec.invoke(process, session, op);
        let result = self.call(timeout, call).await;
        let inbox = self.inbox.clone();
        inbox.settle(|zxid| {
            let zxid = zxid.or_else(|| cached.then(|| inbox.last_reply.load(Ordering::Relaxed)));
            let (outcome, value) = match (result, zxid) {
                (Ok(v), Some(zxid)) => (
                    match judge(&v) {
                        Ok(result) => Outcome::Ok { result, zxid },
                        Err(error) => Outcome::Fail { error },
                    },
                    Some(v),
                ),
                // A successful call always comes from a reply frame, which the observer saw.
                (Ok(_), None) => (
                    Outcome::Unknown {
                        error: "success without an observed reply (recorder bug)".into(),
                    },
                    None,
                ),
                (Err(o), _) => (o, None),
            };
            let ok = matches!(outcome, Outcome::Ok { .. });
            inbox.rec.complete(process, session, op_id, outcome);
            (value, ok)
        })
    }

    /// Runs `call` outside the operations of the history (setup, observations); on success
    /// records `notice(value, reply zxid)` (if any): where the reply fell among the events, or
    /// with `before_call`, at the time just before the call was sent (an observation's lower
    /// bound, as `EphemeralsSeen` requires).
    pub async fn run_quiet<T, F, Fut>(
        &mut self,
        call: F,
        before_call: bool,
        notice: impl FnOnce(&T, u64) -> Option<Notice>,
    ) -> Result<T, Outcome>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.inbox.flush();
        let sent_ns = self.inbox.rec.now_ns();
        let result = self.call(self.op_timeout, call).await;
        let (process, session) = (self.inbox.process, self.id);
        let inbox = self.inbox.clone();
        inbox.settle(|zxid| {
            let v = result?;
            let Some(zxid) = zxid else {
                return Err(Outcome::Unknown {
                    error: "success without an observed reply (recorder bug)".into(),
                });
            };
            if let Some(n) = notice(&v, zxid) {
                if before_call {
                    inbox.rec.notice_at(sent_ns, process, session, n);
                } else {
                    inbox.rec.notice(process, session, n);
                }
            }
            Ok(v)
        })
    }

    /// Records a notice on this session.
    pub fn notice(&self, notice: Notice) {
        self.inbox.rec.notice(self.inbox.process, self.id, notice);
    }

    /// Ends the session: records `Closing` (unless it is over already), closes it unless it
    /// expired (bounded), lets the monitor finish, and records the remaining events and then
    /// `SessionEnded` with `reason` (the monitor's `expired` if the session expired first).
    pub async fn end(mut self, reason: &str) {
        if self.client.state().is_alive() && !self.inbox.ended.load(Ordering::Relaxed) {
            // From here on the process acts on nothing the session holds.
            self.notice(Notice::Closing { session: self.id });
        }
        if self.client.state() != SessionState::Expired {
            let _ = tokio::time::timeout(END_BOUND, self.client.close()).await;
        }
        if let Some(m) = self.monitor.take() {
            let _ = tokio::time::timeout(END_BOUND, m).await;
        }
        self.inbox.end(reason);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            m.abort();
        }
    }
}

/// Records the session's state changes until it is over: `Disconnected` on every lost
/// connection (also one that was already resumed when the monitor looked), and on expiry the
/// remaining events and `SessionEnded` (expired). A close ends it silently: the closer records
/// the end.
async fn monitor(
    mut states: tokio::sync::watch::Receiver<SessionState>,
    inbox: Arc<Inbox>,
    disconnects: Arc<AtomicU64>,
) {
    let disconnected = || {
        disconnects.fetch_add(1, Ordering::Relaxed);
        if !inbox.ended.load(Ordering::Relaxed) {
            inbox.rec.notice(
                inbox.process,
                inbox.session,
                Notice::Disconnected {
                    session: inbox.session,
                },
            );
        }
    };
    loop {
        let state = *states.borrow_and_update();
        match state {
            SessionState::Disconnected => disconnected(),
            SessionState::Expired => {
                inbox.end("expired");
                return;
            }
            SessionState::Closed => return,
            SessionState::Connecting | SessionState::Connected => {}
        }
        // The client notifies only real changes, so a change seen as `Connected` again means
        // a disconnect and a resume both happened since the last look.
        if states.changed().await.is_err() {
            return;
        }
        if *states.borrow() == SessionState::Connected {
            disconnected();
        }
    }
}
