//! What the client handles and the session driver share: the session state, the commands a
//! handle sends, and the first connect of a session.

use crate::config::ClientConfig;
use crate::conn::Driver;
use crate::connector::{Connector, Link};
use crate::error::Error;
use crate::watches::{OneShotSender, StreamSender};
use coord_proto::{
    CLIENT_PROTOCOL_VERSION, ConnectRequest, ErrorCode, Request, Response, WatchedEvent,
};
use parking_lot::Mutex;
use rand::Rng;
use rand::seq::SliceRandom;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The state of a client's session, as Chubby names the phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// The first connection is being made.
    Connecting,
    /// Connected to a server; the session is live ("safe").
    Connected,
    /// The connection was lost; the session may still be alive and the client is trying to
    /// resume it ("jeopardy"), for the session timeout and then the grace period
    /// ([`crate::ClientConfig::grace_period`]). Calls made now wait for the reconnect, each
    /// for at most [`crate::ClientConfig::request_timeout`]; reads that were in flight are
    /// sent again after it, other calls in flight failed with `ConnectionLoss`.
    Disconnected,
    /// The session is gone (a server said so, refused its password, or the grace period
    /// ended with no server accepting it): its ephemeral nodes are deleted and its watches
    /// dropped. Every call fails with `SessionExpired`; make a new client.
    Expired,
    /// The user closed the client.
    Closed,
}

impl SessionState {
    /// Whether the session may still be used (connected or reconnecting).
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            SessionState::Connecting | SessionState::Connected | SessionState::Disconnected
        )
    }
}

/// What happens to a session, as Chubby names the events.
///
/// Every subscription of [`crate::Client::session_events`] starts with
/// [`SessionEvent::Connected`], then receives each later event once, in order. After the
/// last event of a session ([`SessionEvent::Expired`] or [`SessionEvent::Closed`]) the
/// subscription ends; one made after that receives `Connected`, the last event, and ends.
///
/// A session's events follow this grammar:
///
/// ```text
///   Connected ( Jeopardy Safe | LeaderFailedOver | AuthFailed )* [ Jeopardy ] [ AuthFailed ] ( Expired | Closed )
/// ```
///
/// `LeaderFailedOver` follows the `Safe` of the resume on which it was noticed, or comes
/// between two replies when the connection survived the fail-over. Each event is mirrored in
/// [`crate::Client::state`]: `Jeopardy` is published with the state `Disconnected`, `Safe`
/// with `Connected`, `Expired` with `Expired` and `Closed` with `Closed`, the state first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// The session was established: the first event of every subscription, since a
    /// [`crate::Client`] exists only once its session does.
    Connected,
    /// The connection was lost; the session may still be alive and the client is trying to
    /// resume it, through its timeout and then the grace period
    /// ([`crate::ClientConfig::grace_period`]). Calls made now wait for the resume, each
    /// for at most [`crate::ClientConfig::request_timeout`].
    Jeopardy,
    /// The session was resumed after a [`SessionEvent::Jeopardy`]: a server accepted it, so
    /// what the application held (ephemerals, locks) is still its own.
    Safe,
    /// The session is gone: a server said `SessionExpired`, the grace period ran out without
    /// any server accepting the session, or (after [`SessionEvent::AuthFailed`]) a server
    /// refused the session's password. Its ephemerals are (or will be) deleted.
    Expired,
    /// The user closed the client (or dropped its last handle).
    Closed,
    /// A server refused the session's credentials: an `add_auth` answered `AuthFailed`
    /// (the session goes on without that identity; the call fails too), or a resume was
    /// refused for a wrong password (the session can never be resumed: `Expired` follows).
    AuthFailed,
    /// The ensemble's leader changed since this session last heard from it (Chubby's
    /// "master fail-over"): a server answered with an epoch above every epoch the session
    /// had seen. Delivered once per change noticed (two quick changes may be noticed as
    /// one), after the one-shot watches were re-registered on the new connection (its
    /// `SetWatches` answered), so a watch event that the change caused precedes it.
    LeaderFailedOver,
}

impl SessionEvent {
    /// Whether this is the last event of a session.
    pub fn is_final(self) -> bool {
        matches!(self, SessionEvent::Expired | SessionEvent::Closed)
    }
}

/// Subscribers of a session's events.
#[derive(Default)]
pub(crate) struct Listeners {
    subs: Vec<mpsc::UnboundedSender<SessionEvent>>,
    /// The final event, once emitted: later subscribers get it at once.
    ended: Option<SessionEvent>,
}

/// The leader-change bookkeeping of one session, kept apart from IO so it can be tested
/// alone. Inputs: [`Failover::connected`] for each accepted connection,
/// [`Failover::reply`] for each reply's zxid, [`Failover::rewatched`] once the connection's
/// `SetWatches` is answered (or at once when there was nothing to re-register),
/// [`Failover::lost`] when the connection drops. `reply` and `rewatched` return whether to
/// emit [`SessionEvent::LeaderFailedOver`] now.
///
/// Invariants: `max_epoch` never decreases; an event is owed (`pending`) only for an epoch
/// above every one seen before it, and is paid at most once, on a connection whose watches
/// are re-registered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Failover {
    /// The highest epoch seen: `ConnectResponse.epoch`, the high 32 bits of
    /// `ConnectResponse.last_zxid` and of every reply zxid (a lower bound of the epoch of
    /// the server that sent it). `None` before the first connection.
    max_epoch: Option<u32>,
    /// A higher epoch was seen and its event not yet delivered.
    pending: bool,
    /// The current connection's one-shot watches are registered on its server.
    rewatched: bool,
}

/// The epoch part of a zxid (`epoch << 32 | counter`).
pub(crate) fn epoch_of(zxid: u64) -> u32 {
    (zxid >> 32) as u32
}

impl Failover {
    /// A server accepted the session with this handshake answer. The first one sets the
    /// baseline; a later one with a higher epoch owes an event.
    pub(crate) fn connected(&mut self, epoch: u32, last_zxid: u64) {
        self.rewatched = false;
        let epoch = epoch.max(epoch_of(last_zxid));
        match self.max_epoch {
            None => self.max_epoch = Some(epoch),
            Some(_) => self.raise(epoch),
        }
    }

    /// A reply with `zxid` arrived on the current connection.
    pub(crate) fn reply(&mut self, zxid: u64) -> bool {
        self.raise(epoch_of(zxid));
        self.take()
    }

    /// The current connection's watches are re-registered.
    pub(crate) fn rewatched(&mut self) -> bool {
        self.rewatched = true;
        self.take()
    }

    /// The current connection dropped: an owed event waits for the next one's watches.
    pub(crate) fn lost(&mut self) {
        self.rewatched = false;
    }

    /// The highest epoch seen (0 before the first connection).
    pub(crate) fn max_epoch(&self) -> u32 {
        self.max_epoch.unwrap_or(0)
    }

    fn raise(&mut self, epoch: u32) {
        if self.max_epoch.is_some_and(|m| epoch > m) {
            self.max_epoch = Some(epoch);
            self.pending = true;
        }
    }

    fn take(&mut self) -> bool {
        let now = self.pending && self.rewatched;
        if now {
            self.pending = false;
        }
        now
    }
}

/// A user callback receiving every watch event of a client.
pub(crate) type Callback = Arc<dyn Fn(WatchedEvent) + Send + Sync>;

/// A user callback receiving the zxid of every reply to a call (see
/// [`crate::Client::set_reply_observer`]).
pub(crate) type ReplyObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// Where a watch created by a call delivers its events.
pub(crate) enum WatchSink {
    /// A one-shot watch (`exists_w`, `get_data_w`, `get_children_w`).
    OneShot(OneShotSender),
    /// A persistent watch (`add_watch`).
    Stream(StreamSender),
}

/// What a client handle asks of the driver.
pub(crate) enum Command {
    /// Send `request`; answer on `reply`; with `watch`, register it if the reply succeeds.
    Call {
        request: Request,
        watch: Option<WatchSink>,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    /// End the session (CloseSession), then the connection.
    Close {
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// State the driver publishes to the handles.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<SessionState>,
    pub(crate) session_id: AtomicU64,
    pub(crate) password: Mutex<Vec<u8>>,
    pub(crate) timeout_ms: AtomicU64,
    /// The highest zxid seen in any reply; sent on reconnect so no server behind it serves us.
    pub(crate) last_zxid: AtomicU64,
    pub(crate) default_watcher: Mutex<Option<Callback>>,
    pub(crate) reply_observer: Mutex<Option<ReplyObserver>>,
    /// Subscribers of session events; closed ones are dropped on the next event.
    pub(crate) listeners: Mutex<Listeners>,
    /// Whether the current connection is to a server in read-only mode.
    pub(crate) read_only: AtomicBool,
    /// The client cache of [`crate::ReadMode::Cached`] reads.
    pub(crate) cache: crate::cache::Cache,
}

impl Shared {
    /// Hands `event` to every subscriber; after a final event the subscriptions end.
    pub(crate) fn emit(&self, event: SessionEvent) {
        if matches!(
            event,
            SessionEvent::Jeopardy
                | SessionEvent::LeaderFailedOver
                | SessionEvent::Expired
                | SessionEvent::Closed
        ) {
            // Chubby: the cache does not outlive a doubt about the session or its leader.
            self.cache.clear();
        }
        let mut l = self.listeners.lock();
        if l.ended.is_some() {
            // Nothing follows the final event (a bug if it happened; harmless to drop).
            debug_assert!(false, "{event:?} after {:?}", l.ended);
            return;
        }
        l.subs.retain(|s| s.send(event).is_ok());
        if event.is_final() {
            l.ended = Some(event);
            l.subs.clear();
        }
    }

    /// A new subscriber of session events: it first gets `Connected` (the session was
    /// established before any handle existed), then every later event.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<SessionEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Sends on a channel whose receiver is in hand cannot fail.
        let _ = tx.send(SessionEvent::Connected);
        let mut l = self.listeners.lock();
        match l.ended {
            Some(last) => {
                let _ = tx.send(last);
            }
            None => l.subs.push(tx),
        }
        rx
    }

    /// The error a call gets when the driver is gone or the session is over.
    pub(crate) fn ended_error(&self) -> Error {
        match *self.state.borrow() {
            SessionState::Expired => Error::expired(),
            SessionState::Closed => Error::closed(),
            _ => Error::with_message(ErrorCode::ConnectionLoss, "the client's session task ended"),
        }
    }
}

/// Smallest negotiated timeout honoured, so a bogus answer cannot make the client spin.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(300);
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between rounds over the server list: short, because a server that refused
/// with NotServing is usually electing and serves again within a few hundred ms.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Connects a new session, then hands it to a spawned driver task.
pub(crate) async fn connect(
    cfg: ClientConfig,
) -> Result<(Arc<Shared>, mpsc::UnboundedSender<Command>), Error> {
    cfg.validate()?;
    let connector = Connector::new(&cfg)?;
    let deadline = Instant::now() + cfg.connect_timeout;
    let request = ConnectRequest {
        protocol_version: CLIENT_PROTOCOL_VERSION,
        last_zxid_seen: 0,
        timeout_ms: requested_timeout_ms(&cfg),
        session_id: 0,
        password: Vec::new(),
        read_only: cfg.read_only,
    };
    let mut last_err = Error::with_message(ErrorCode::ConnectionLoss, "connect timed out");
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let limit = attempt_limit(&cfg).min(deadline - now);
        let order = shuffled(&cfg.servers);
        let round = connector.race(&order, &request, limit, is_fatal);
        match tokio::time::timeout(deadline - now, round).await {
            Ok(Ok(link)) => {
                let (shared, tx) = spawn_driver(cfg, connector, link);
                return Ok((shared, tx));
            }
            Ok(Err(e)) if is_fatal(e.code()) => return Err(e),
            Ok(Err(e)) => last_err = e,
            Err(_) => break,
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(jitter(backoff).min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Err(last_err.context("cannot connect to any server"))
}

/// Refusals no other server or retry would change.
fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::VersionMismatch | ErrorCode::AuthFailed | ErrorCode::BadArguments
    )
}

pub(crate) fn requested_timeout_ms(cfg: &ClientConfig) -> u32 {
    u32::try_from(cfg.session_timeout.as_millis()).unwrap_or(u32::MAX)
}

/// Bound on one connection attempt: the connect timeout shared among the servers (as
/// ZooKeeper does), so one dead server cannot use it all, but at least a second.
pub(crate) fn attempt_limit(cfg: &ClientConfig) -> Duration {
    let n = u32::try_from(cfg.servers.len().max(1)).unwrap_or(u32::MAX);
    (cfg.connect_timeout / n)
        .max(Duration::from_secs(1))
        .min(cfg.connect_timeout)
}

pub(crate) fn shuffled(servers: &[String]) -> Vec<String> {
    let mut v = servers.to_vec();
    v.shuffle(&mut rand::rng());
    v
}

pub(crate) fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::rng().random_range(0..=ms / 2))
}

fn spawn_driver(
    cfg: ClientConfig,
    connector: Connector,
    link: Link,
) -> (Arc<Shared>, mpsc::UnboundedSender<Command>) {
    let (state, _) = watch::channel(SessionState::Connecting);
    let shared = Arc::new(Shared {
        state,
        session_id: AtomicU64::new(link.response.session_id),
        password: Mutex::new(link.response.password.clone()),
        timeout_ms: AtomicU64::new(link.response.timeout_ms as u64),
        // The server's state when it accepted the session already holds the session's
        // CreateSession: a server behind it must refuse a resume as behind the client
        // (`NotServing`, the client tries another) rather than not know the session and
        // call it expired.
        last_zxid: AtomicU64::new(link.response.last_zxid),
        default_watcher: Mutex::new(None),
        reply_observer: Mutex::new(None),
        listeners: Mutex::new(Listeners::default()),
        read_only: AtomicBool::new(link.response.read_only),
        cache: Default::default(),
    });
    let (tx, cmds) = mpsc::unbounded_channel();
    let driver = Driver::new(cfg, connector, shared.clone(), cmds);
    // Publish Connected before returning so the caller never observes Connecting.
    shared.state.send_replace(SessionState::Connected);
    tokio::spawn(driver.run(link));
    (shared, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E5: u64 = 5 << 32;
    const E6: u64 = 6 << 32;

    #[test]
    fn first_connection_sets_the_baseline() {
        let mut f = Failover::default();
        f.connected(5, E5 + 3);
        assert!(!f.rewatched());
        assert!(!f.reply(E5 + 9));
        assert_eq!(f.max_epoch(), 5);
    }

    #[test]
    fn the_baseline_takes_the_higher_of_epoch_and_last_zxid() {
        let mut f = Failover::default();
        f.connected(4, E5 + 1);
        assert_eq!(f.max_epoch(), 5);
        f.lost();
        f.connected(5, E5 + 2);
        assert!(
            !f.rewatched(),
            "epoch 5 was seen through the first last_zxid"
        );
    }

    #[test]
    fn a_higher_epoch_on_resume_is_delivered_once_after_set_watches() {
        let mut f = Failover::default();
        f.connected(5, E5);
        f.lost();
        f.connected(6, E6 + 1);
        // The SetWatches reply (and any before it) come first: nothing yet.
        assert!(!f.reply(E6 + 1));
        assert!(f.rewatched(), "delivered once the watches are back");
        assert!(!f.reply(E6 + 2));
        assert!(!f.rewatched());
        f.lost();
        f.connected(6, E6 + 2);
        assert!(!f.rewatched(), "the same epoch again is no new fail-over");
    }

    #[test]
    fn a_connection_lost_before_set_watches_keeps_the_event_owed() {
        let mut f = Failover::default();
        f.connected(5, E5);
        f.lost();
        f.connected(6, E6);
        f.lost(); // before SetWatches was answered
        f.connected(6, E6);
        assert!(f.rewatched(), "still owed on the next connection");
        assert!(!f.rewatched());
    }

    #[test]
    fn a_new_epoch_in_a_reply_on_a_live_connection_is_delivered_at_once() {
        let mut f = Failover::default();
        f.connected(5, E5);
        assert!(!f.rewatched());
        assert!(f.reply(E6 + 1), "the connection survived the fail-over");
        assert!(!f.reply(E6 + 2));
        f.lost();
        f.connected(6, E6 + 2);
        assert!(!f.rewatched(), "already delivered for epoch 6");
    }

    #[test]
    fn two_changes_noticed_together_are_one_event_and_epochs_never_go_back() {
        let mut f = Failover::default();
        f.connected(5, E5);
        f.lost();
        f.connected(7, 7 << 32);
        assert!(f.rewatched());
        f.lost();
        f.connected(6, E6);
        assert!(!f.rewatched(), "a lower epoch is no fail-over");
        assert_eq!(f.max_epoch(), 7);
    }

    fn shared() -> Shared {
        let (state, _) = watch::channel(SessionState::Connected);
        Shared {
            state,
            session_id: AtomicU64::new(1),
            password: Mutex::new(Vec::new()),
            timeout_ms: AtomicU64::new(1000),
            last_zxid: AtomicU64::new(0),
            default_watcher: Mutex::new(None),
            reply_observer: Mutex::new(None),
            listeners: Mutex::new(Listeners::default()),
            read_only: AtomicBool::new(false),
            cache: Default::default(),
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SessionEvent>) -> (Vec<SessionEvent>, bool) {
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(e) => got.push(e),
                Err(mpsc::error::TryRecvError::Empty) => return (got, false),
                Err(mpsc::error::TryRecvError::Disconnected) => return (got, true),
            }
        }
    }

    #[test]
    fn subscriptions_start_with_connected_and_end_after_the_final_event() {
        use SessionEvent::*;
        let s = shared();
        let mut early = s.subscribe();
        s.emit(Jeopardy);
        let mut late = s.subscribe();
        s.emit(Safe);
        s.emit(Closed);
        let after = s.subscribe();
        assert_eq!(
            drain(&mut early),
            (vec![Connected, Jeopardy, Safe, Closed], true)
        );
        assert_eq!(drain(&mut late), (vec![Connected, Safe, Closed], true));
        let mut after = after;
        assert_eq!(drain(&mut after), (vec![Connected, Closed], true));
    }

    #[test]
    fn a_dropped_subscription_is_forgotten() {
        let s = shared();
        drop(s.subscribe());
        s.emit(SessionEvent::Jeopardy);
        assert!(s.listeners.lock().subs.is_empty());
    }
}
