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
use std::sync::atomic::AtomicU64;
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
    /// resume it ("jeopardy"). Calls made now wait for the reconnect.
    Disconnected,
    /// The session is gone: its ephemeral nodes are deleted and its watches dropped. Every
    /// call fails with `SessionExpired`; make a new client.
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
}

impl Shared {
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
        last_zxid: AtomicU64::new(0),
        default_watcher: Mutex::new(None),
        reply_observer: Mutex::new(None),
    });
    let (tx, cmds) = mpsc::unbounded_channel();
    let driver = Driver::new(cfg, connector, shared.clone(), cmds);
    // Publish Connected before returning so the caller never observes Connecting.
    shared.state.send_replace(SessionState::Connected);
    tokio::spawn(driver.run(link));
    (shared, tx)
}
