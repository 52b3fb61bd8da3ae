//! The session driver: one task per [`crate::Client`] that owns the connection, the
//! outstanding requests, the watch table and the reconnect logic.
//!
//! ```text
//!   Client handles --Command--> driver --bytes--> writer task --write_all--> QUIC stream
//!                                  ^                                            |
//!                                  +---- ServerFrame ---- reader task <---------+
//! ```
//!
//! States (Chubby's names in brackets):
//!
//! ```text
//!   Connecting --connected--> Connected [safe] --lost--> Disconnected [jeopardy]
//!                                ^  |                       |  |
//!                                |  +--close--> Closed      |  +--Refused(SessionExpired) or
//!                                +-------reconnected--------+     no server within timeout--> Expired
//! ```
//!
//! Invariants: `pending` holds the requests sent on the current connection in xid order, and
//! replies arrive in that order (FIFO per session), so a reply always matches the front; a
//! watch is registered when the reply that created it is processed, before any later frame,
//! so an event that follows the reply finds it.

use crate::config::ClientConfig;
use crate::connector::{Connector, Incoming, Link, frame_name, reader, writer};
use crate::error::Error;
use crate::session::{
    Command, INITIAL_BACKOFF, MAX_BACKOFF, MIN_TIMEOUT, SessionState, Shared, WatchSink,
    attempt_limit, jitter, requested_timeout_ms, shuffled,
};
use crate::transport::ConnRef;
use crate::watches::{OneShotKind, WatchManager};
use coord_proto::frame::HEADER_LEN;
use coord_proto::{
    AddWatchMode, CLIENT_PROTOCOL_VERSION, ClientFrame, ConnectRequest, ErrorCode, ReplyBody,
    Request, Response, ServerFrame, WatcherKind, frame,
};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Replies waited for after CloseSession; past this the connection is closed anyway.
/// Bound on one reconnect handshake: a live server answers a QUIC handshake in a round trip
/// or two; a dead one never does, and must not hold up the move to another server.
const RECONNECT_ATTEMPT: Duration = Duration::from_millis(500);
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Extra work when a reply succeeds.
enum After {
    Nothing,
    Watch {
        path: String,
        on: WatchOn,
        sink: WatchSink,
    },
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    RemoveWatches {
        path: String,
        kind: WatcherKind,
    },
}

enum WatchOn {
    Exists,
    Data,
    Children,
    Add(AddWatchMode),
}

impl After {
    fn of(request: &Request, watch: Option<WatchSink>) -> After {
        let watch_on = |path: &String, on, sink| After::Watch {
            path: path.clone(),
            on,
            sink,
        };
        match (request, watch) {
            (Request::Exists { path, .. }, Some(sink)) => watch_on(path, WatchOn::Exists, sink),
            (Request::GetData { path, .. }, Some(sink)) => watch_on(path, WatchOn::Data, sink),
            (Request::GetChildren { path, .. }, Some(sink)) => {
                watch_on(path, WatchOn::Children, sink)
            }
            (Request::AddWatch { path, mode }, Some(sink)) => {
                watch_on(path, WatchOn::Add(*mode), sink)
            }
            (Request::AddAuth { scheme, auth }, _) => After::Auth {
                scheme: scheme.clone(),
                auth: auth.clone(),
            },
            (Request::RemoveWatches { path, kind }, _) => After::RemoveWatches {
                path: path.clone(),
                kind: *kind,
            },
            _ => After::Nothing,
        }
    }
}

/// Who waits for a reply.
enum Waiter {
    Call {
        after: After,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    /// A request of the driver's own (ping, watch or auth replay); failures are logged.
    Internal(&'static str),
    /// The CloseSession of a user close.
    Close,
}

struct Pending {
    xid: u64,
    waiter: Waiter,
}

/// Why a connection's service ended.
enum End {
    Lost(Error),
    Expired(Error),
    Closed,
}

/// One live connection.
struct Live {
    conn: ConnRef,
    out: mpsc::UnboundedSender<Vec<u8>>,
    frames: mpsc::Receiver<Incoming>,
    tasks: Vec<JoinHandle<()>>,
    /// Sent requests awaiting replies, in xid order.
    pending: VecDeque<Pending>,
    /// Frames encoded but not yet handed to the writer.
    batch: Vec<u8>,
    last_sent: Instant,
}

impl Live {
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            // A failed send means the writer is gone; it reported why through `frames`.
            let _ = self.out.send(std::mem::take(&mut self.batch));
            self.last_sent = Instant::now();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(crate) struct Driver {
    cfg: ClientConfig,
    connector: Connector,
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Command>,
    watches: WatchManager,
    /// Credentials added with `add_auth`, re-sent after every reconnect.
    auth: Vec<(String, Vec<u8>)>,
    next_xid: u64,
    /// Calls made while disconnected, sent after the reconnect.
    backlog: VecDeque<Command>,
    /// When the last frame arrived; the session deadline counts from here.
    last_recv: Instant,
    /// The negotiated session timeout.
    timeout: Duration,
    close_replies: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Set once a close began: no more calls are accepted.
    close_deadline: Option<Instant>,
    /// The server of the connection that was lost last: most likely down, so tried last.
    last_server: Option<String>,
}

impl Driver {
    pub(crate) fn new(
        cfg: ClientConfig,
        connector: Connector,
        shared: Arc<Shared>,
        cmds: mpsc::UnboundedReceiver<Command>,
    ) -> Driver {
        Driver {
            cfg,
            connector,
            shared,
            cmds,
            watches: WatchManager::default(),
            auth: Vec::new(),
            next_xid: 1,
            backlog: VecDeque::new(),
            last_recv: Instant::now(),
            timeout: MIN_TIMEOUT,
            close_replies: Vec::new(),
            close_deadline: None,
            last_server: None,
        }
    }

    pub(crate) async fn run(mut self, mut link: Link) {
        let end = loop {
            match self.serve(link).await {
                End::Lost(e) => {
                    tracing::info!("session 0x{:x}: connection lost: {e}", self.session_id());
                    self.shared.state.send_replace(SessionState::Disconnected);
                    match self.reconnect().await {
                        Ok(l) => link = l,
                        Err(end) => break end,
                    }
                }
                end => break end,
            }
        };
        self.finish(end).await;
    }

    fn session_id(&self) -> u64 {
        self.shared.session_id.load(Ordering::Relaxed)
    }

    /// Serves one connection until it is lost or the session ends.
    async fn serve(&mut self, link: Link) -> End {
        let Link {
            conn,
            send,
            recv,
            response,
            server,
        } = link;
        self.timeout = Duration::from_millis(response.timeout_ms as u64).max(MIN_TIMEOUT);
        self.shared
            .session_id
            .store(response.session_id, Ordering::Relaxed);
        *self.shared.password.lock() = response.password;
        self.shared
            .timeout_ms
            .store(self.timeout.as_millis() as u64, Ordering::Relaxed);
        self.last_recv = Instant::now();
        self.last_server = Some(server.clone());
        let (frames_tx, frames) = mpsc::channel(1024);
        let (out, out_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(reader(recv, frames_tx.clone(), self.cfg.max_frame)),
            tokio::spawn(writer(send, out_rx, frames_tx)),
        ];
        let mut live = Live {
            conn,
            out,
            frames,
            tasks,
            pending: VecDeque::new(),
            batch: Vec::new(),
            last_sent: Instant::now(),
        };
        tracing::info!(
            "session 0x{:x} connected to {server} (server id {}, timeout {} ms)",
            response.session_id,
            response.server_id,
            self.timeout.as_millis()
        );

        // Re-register watches first, then credentials, then what was queued meanwhile.
        if let Some(req) = self
            .watches
            .set_watches(self.shared.last_zxid.load(Ordering::Relaxed))
        {
            self.enqueue(&mut live, req, Waiter::Internal("set watches"));
        }
        for (scheme, auth) in self.auth.clone() {
            self.enqueue(
                &mut live,
                Request::AddAuth { scheme, auth },
                Waiter::Internal("add auth"),
            );
        }
        while let Some(cmd) = self.backlog.pop_front() {
            self.submit(&mut live, cmd);
        }
        live.flush();
        // Notify only on a change: the first connection was published as Connected already,
        // and a watcher of `state_events` must be able to take every notification that
        // shows Connected as a disconnect and resume it did not see in between.
        self.shared.state.send_if_modified(|state| {
            let changed = *state != SessionState::Connected;
            *state = SessionState::Connected;
            changed
        });

        let mut cmds = Vec::new();
        let end = loop {
            let ping_at = live.last_sent + self.timeout / 3;
            let dead_at = self.last_recv + self.timeout * 2 / 3;
            let wake = self
                .close_deadline
                .map_or(ping_at.min(dead_at), |d| d.min(ping_at).min(dead_at));
            tokio::select! {
                biased;
                item = live.frames.recv() => {
                    let frame = match item {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => break End::Lost(e),
                        None => break End::Lost(Error::with_message(ErrorCode::ConnectionLoss, "reader ended")),
                    };
                    self.last_recv = Instant::now();
                    if let Some(end) = self.on_frame(&mut live, frame) {
                        break end;
                    }
                }
                n = self.cmds.recv_many(&mut cmds, 512), if self.close_deadline.is_none() => {
                    if n == 0 {
                        // Every handle is gone: end the session rather than leave it to expire.
                        self.begin_close(&mut live, None);
                    }
                    for cmd in cmds.drain(..) {
                        self.submit(&mut live, cmd);
                    }
                    live.flush();
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if self.close_deadline.is_some_and(|d| now >= d) {
                        break End::Closed;
                    }
                    if now >= dead_at {
                        break End::Lost(Error::with_message(
                            ErrorCode::ConnectionLoss,
                            format!("nothing received from {server} for {} ms", (now - self.last_recv).as_millis()),
                        ));
                    }
                    if now >= ping_at {
                        self.enqueue(&mut live, Request::Ping, Waiter::Internal("ping"));
                        live.flush();
                    }
                }
            }
        };

        let err = match &end {
            End::Lost(e) if e.code() == ErrorCode::ConnectionLoss => e.clone(),
            End::Lost(e) => Error::with_message(ErrorCode::ConnectionLoss, e.to_string()),
            End::Expired(_) => Error::expired(),
            End::Closed => Error::closed(),
        };
        for p in live.pending.drain(..) {
            fail(p.waiter, &err);
        }
        if matches!(end, End::Closed) && !self.connector.is_shared() {
            // Let the server close first (it does after CloseSession), so nothing lingers.
            let _ = tokio::time::timeout(Duration::from_millis(50), live.conn.conn.closed()).await;
        }
        end
    }

    /// Handles one frame; `Some` ends the connection.
    fn on_frame(&mut self, live: &mut Live, frame: ServerFrame) -> Option<End> {
        match frame {
            ServerFrame::Reply { xid, zxid, body } => {
                let Some(p) = live.pending.pop_front() else {
                    return Some(End::Lost(marshalling(format!(
                        "reply to xid {xid} with no request outstanding"
                    ))));
                };
                if p.xid != xid {
                    let expected = p.xid;
                    live.pending.push_front(p);
                    return Some(End::Lost(marshalling(format!(
                        "reply to xid {xid}, expected {expected}"
                    ))));
                }
                self.shared.last_zxid.fetch_max(zxid, Ordering::Relaxed);
                match p.waiter {
                    Waiter::Call { after, reply } => {
                        let observer = self.shared.reply_observer.lock().clone();
                        if let Some(observe) = observer {
                            let call = std::panic::AssertUnwindSafe(|| observe(zxid));
                            if std::panic::catch_unwind(call).is_err() {
                                tracing::error!("the reply observer panicked");
                            }
                        }
                        let result = self.complete(after, body);
                        let _ = reply.send(result);
                    }
                    Waiter::Internal(what) => match body {
                        ReplyBody::Ok(_) => {}
                        ReplyBody::Err(code) | ReplyBody::MultiErr { code, .. } => {
                            tracing::warn!(
                                "session 0x{:x}: {what} failed: {code}",
                                self.session_id()
                            );
                        }
                    },
                    Waiter::Close => return Some(End::Closed),
                }
                None
            }
            ServerFrame::Event(event) => {
                if self.watches.dispatch(&event).duplicate {
                    // Replayed after a reconnect, and received before it: the streams that
                    // had it skipped it, and the default watcher saw it then.
                    return None;
                }
                let callback = self.shared.default_watcher.lock().clone();
                if let Some(cb) = callback {
                    let call = std::panic::AssertUnwindSafe(|| cb(event));
                    if std::panic::catch_unwind(call).is_err() {
                        tracing::error!("the default watcher panicked; event dropped");
                    }
                }
                None
            }
            ServerFrame::Closing { code, message } => {
                let err = Error::with_message(
                    code,
                    format!("server closed the session stream: {message}"),
                );
                Some(if self.close_deadline.is_some() {
                    End::Closed
                } else if code == ErrorCode::SessionExpired {
                    End::Expired(err)
                } else {
                    End::Lost(err)
                })
            }
            other => Some(End::Lost(marshalling(format!(
                "unexpected {} after the handshake",
                frame_name(&other)
            )))),
        }
    }

    /// Turns a reply body into the call's result, doing the call's extra work on success.
    fn complete(&mut self, after: After, body: ReplyBody) -> Result<Response, Error> {
        let response = match body {
            ReplyBody::Ok(r) => r,
            ReplyBody::Err(code) => return Err(Error::new(code)),
            ReplyBody::MultiErr { code, results } => return Err(Error::multi(code, results)),
        };
        match after {
            After::Nothing => {}
            After::Watch { path, on, sink } => match (on, &response, sink) {
                (WatchOn::Exists, Response::Exists { stat }, WatchSink::OneShot(tx)) => {
                    let kind = if stat.is_some() {
                        OneShotKind::Data
                    } else {
                        OneShotKind::Exist
                    };
                    self.watches.add_one_shot(kind, &path, tx);
                }
                (WatchOn::Data, Response::Data { .. }, WatchSink::OneShot(tx)) => {
                    self.watches.add_one_shot(OneShotKind::Data, &path, tx);
                }
                (WatchOn::Children, Response::Children { .. }, WatchSink::OneShot(tx)) => {
                    self.watches.add_one_shot(OneShotKind::Child, &path, tx);
                }
                (WatchOn::Add(mode), Response::Empty, WatchSink::Stream(tx)) => {
                    self.watches.add_stream(mode, &path, tx);
                }
                // A reply of the wrong shape: the caller gets an error for it; no watch.
                _ => {}
            },
            After::Auth { scheme, auth } => {
                if !self.auth.iter().any(|(s, a)| *s == scheme && *a == auth) {
                    self.auth.push((scheme, auth));
                }
            }
            After::RemoveWatches { path, kind } => self.watches.remove(&path, kind),
        }
        Ok(response)
    }

    fn submit(&mut self, live: &mut Live, cmd: Command) {
        match cmd {
            Command::Call { reply, .. } if self.close_deadline.is_some() => {
                let _ = reply.send(Err(Error::closed()));
            }
            Command::Call {
                request,
                watch,
                reply,
            } => {
                let after = After::of(&request, watch);
                self.enqueue(live, request, Waiter::Call { after, reply });
            }
            Command::Close { reply } => self.begin_close(live, Some(reply)),
        }
    }

    fn begin_close(&mut self, live: &mut Live, reply: Option<oneshot::Sender<Result<(), Error>>>) {
        self.close_replies.extend(reply);
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Instant::now() + CLOSE_WAIT);
            self.enqueue(live, Request::CloseSession, Waiter::Close);
        }
    }

    /// Encodes a request into the outgoing batch and records who waits for its reply.
    fn enqueue(&mut self, live: &mut Live, request: Request, waiter: Waiter) {
        let xid = self.next_xid;
        self.next_xid += 1;
        match frame::encode(&ClientFrame::Request { xid, request }) {
            Ok(bytes) if bytes.len() <= self.cfg.max_frame + HEADER_LEN => {
                live.batch.extend_from_slice(&bytes);
                live.pending.push_back(Pending { xid, waiter });
            }
            Ok(bytes) => fail(
                waiter,
                &Error::with_message(
                    ErrorCode::TooLarge,
                    format!(
                        "request of {} bytes is over the frame limit of {}",
                        bytes.len(),
                        self.cfg.max_frame
                    ),
                ),
            ),
            Err(e) => fail(
                waiter,
                &Error::with_message(ErrorCode::MarshallingError, e.to_string()),
            ),
        }
    }

    /// Tries the servers until the session resumes, expires, or the user closes.
    async fn reconnect(&mut self) -> Result<Link, End> {
        let deadline = self.last_recv + self.timeout;
        let mut backoff = INITIAL_BACKOFF;
        let expired = || {
            End::Expired(Error::with_message(
                ErrorCode::SessionExpired,
                "no server could be reached within the session timeout",
            ))
        };
        loop {
            let mut order = shuffled(&self.cfg.servers);
            if let Some(last) = &self.last_server
                && let Some(i) = order.iter().position(|s| s == last)
            {
                let s = order.remove(i);
                order.push(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(expired());
            }
            let request = ConnectRequest {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                last_zxid_seen: self.shared.last_zxid.load(Ordering::Relaxed),
                timeout_ms: requested_timeout_ms(&self.cfg),
                session_id: self.shared.session_id.load(Ordering::Relaxed),
                password: self.shared.password.lock().clone(),
            };
            // A dead server must not eat the session's remaining time: bound each attempt by
            // a quarter of the session timeout as well (loopback or LAN handshakes take
            // milliseconds), and the whole round by what is left of the session.
            let quarter = (self.timeout / 4).max(Duration::from_millis(250));
            let limit = attempt_limit(&self.cfg)
                .min(quarter)
                .min(RECONNECT_ATTEMPT)
                .min(deadline - now);
            let round = tokio::time::timeout(
                deadline - now,
                self.connector.race(&order, &request, limit, |code| {
                    code == ErrorCode::SessionExpired
                }),
            );
            let result = wait_serving(
                &mut self.cmds,
                &mut self.backlog,
                &mut self.close_replies,
                round,
            )
            .await?;
            match result {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(e)) if e.code() == ErrorCode::SessionExpired => {
                    return Err(End::Expired(e));
                }
                Ok(Err(e)) => tracing::debug!("reconnect: {e}"),
                Err(_) => return Err(expired()),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(expired());
            }
            let pause = tokio::time::sleep(jitter(backoff).min(deadline - now));
            wait_serving(
                &mut self.cmds,
                &mut self.backlog,
                &mut self.close_replies,
                pause,
            )
            .await?;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Ends the session for good: publishes the state, then fails everything still waiting.
    async fn finish(&mut self, end: End) {
        let (state, err) = match end {
            End::Closed => (SessionState::Closed, Error::closed()),
            End::Expired(e) => (
                SessionState::Expired,
                Error::with_message(ErrorCode::SessionExpired, e.message()),
            ),
            End::Lost(e) => (
                SessionState::Expired,
                Error::with_message(ErrorCode::SessionExpired, e.to_string()),
            ),
        };
        match state {
            SessionState::Closed => tracing::debug!("session 0x{:x} closed", self.session_id()),
            _ => tracing::warn!("session 0x{:x} expired: {err}", self.session_id()),
        }
        self.shared.state.send_replace(state);
        self.watches.fail_all(&err);
        self.cmds.close();
        let queued: Vec<Command> = self.backlog.drain(..).collect();
        let mut rest = Vec::new();
        while let Ok(cmd) = self.cmds.try_recv() {
            rest.push(cmd);
        }
        for cmd in queued.into_iter().chain(rest) {
            match cmd {
                Command::Call { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::Close { reply } => self.close_replies.push(reply),
            }
        }
        self.connector.drain().await;
        for reply in self.close_replies.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }
}

/// Awaits `fut` while queueing the calls that arrive meanwhile; a close (or every handle
/// dropped) ends the wait with `End::Closed`.
async fn wait_serving<F: Future>(
    cmds: &mut mpsc::UnboundedReceiver<Command>,
    backlog: &mut VecDeque<Command>,
    close_replies: &mut Vec<oneshot::Sender<Result<(), Error>>>,
    fut: F,
) -> Result<F::Output, End> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Ok(out),
            cmd = cmds.recv() => match cmd {
                Some(Command::Close { reply }) => {
                    close_replies.push(reply);
                    return Err(End::Closed);
                }
                Some(call) => backlog.push_back(call),
                None => return Err(End::Closed),
            },
        }
    }
}

fn fail(waiter: Waiter, err: &Error) {
    match waiter {
        Waiter::Call { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Waiter::Internal(what) => tracing::debug!("{what} not answered: {err}"),
        Waiter::Close => {}
    }
}

fn marshalling(message: String) -> Error {
    Error::with_message(ErrorCode::MarshallingError, message)
}
