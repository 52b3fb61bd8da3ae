//! The session driver: one task per [`crate::Client`] that owns the connection, the
//! outstanding requests, the watch table and the reconnect logic.
//!
//! ```text
//!   Client handles --Command--> driver --bytes--> writer task --write_all--> QUIC stream
//!                                  ^                                            |
//!                                  +---- ServerFrame ---- reader task <---------+
//! ```
//!
//! States, and the [`SessionEvent`]s published with them (Chubby's names):
//!
//! ```text
//!   Connecting --connected--> Connected --lost: Jeopardy--> Disconnected
//!                              ^  |                           |  |
//!                              |  +--close: Closed--> Closed  |  +--a server says SessionExpired,
//!                              +---------resumed: Safe--------+     or AuthFailed for the password,
//!                                                                  or the session timeout plus the
//!                                                                  grace period passed: Expired
//! ```
//!
//! What happens to calls when the connection drops (the session is in jeopardy):
//! - a read in flight (exists, get_data, get_children, get_acl, get_ephemerals,
//!   get_all_children_number, multi_read, check_sequencer, sync, and the `ReadIndex` fence of
//!   a linearizable read) is sent again, in its original order, once the session is
//!   resumed: reads change nothing, so sending one twice is harmless; its watch, if any, is
//!   registered by the reply it finally gets;
//! - every other call in flight (writes, `add_watch`, `remove_watches`, `add_auth`) fails
//!   with `ConnectionLoss`: it may or may not have been applied, and only the application
//!   knows whether doing it again is safe;
//! - a call made while disconnected waits and is sent after the resume;
//! - a call still unsent [`crate::ClientConfig::request_timeout`] after it was made (a
//!   re-sent read counts from its first sending) fails with `OperationTimeout`; it was never
//!   applied. If the session ends first, it fails with `SessionExpired` (or as closed).
//!
//! The session is given up only when a server says it expired (or refuses its password), or
//! when no server accepted it for its timeout plus [`crate::ClientConfig::grace_period`],
//! counted from the last frame received (Chubby's grace period: a leader fail-over can take
//! longer than a session timeout, and the new leader gives every session a fresh one).
//!
//! Invariants: `pending` holds the requests sent on the current connection in xid order, and
//! replies arrive in that order (FIFO per session), so a reply always matches the front; a
//! watch is registered when the reply that created it is processed, before any later frame,
//! so an event that follows the reply finds it; `backlog` holds calls in the order they were
//! made, and is sent, in that order, before any call made later.

use crate::config::ClientConfig;
use crate::connector::{Connector, Incoming, Link, frame_name, reader, writer};
use crate::error::Error;
use crate::session::{
    Command, Failover, INITIAL_BACKOFF, MAX_BACKOFF, MIN_TIMEOUT, SessionEvent, SessionState,
    Shared, WatchSink, attempt_limit, jitter, requested_timeout_ms, shuffled,
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
/// While connected read-only, how often the other servers are asked whether one has a
/// quorum again.
const READ_ONLY_PROBE: Duration = Duration::from_secs(2);
/// Bit 63 of a session id marks a session local to a read-only server (never replicated).
const READ_ONLY_SESSION_BIT: u64 = 1 << 63;

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
    /// A request of the driver's own (ping, auth replay); failures are logged.
    Internal(&'static str),
    /// The `SetWatches` that re-registers the watches on a new connection.
    Rewatch,
    /// The CloseSession of a user close.
    Close,
}

struct Pending {
    xid: u64,
    waiter: Waiter,
    /// For a read: the request and when it was made, to send it again after a resume.
    resend: Option<(Request, Instant)>,
}

/// A call waiting for a connection, in the order calls were made.
struct Queued {
    request: Request,
    after: After,
    reply: oneshot::Sender<Result<Response, Error>>,
    /// When the session task first took it: its request timeout counts from here.
    since: Instant,
}

impl Queued {
    fn of(
        cmd_request: Request,
        watch: Option<WatchSink>,
        reply: oneshot::Sender<Result<Response, Error>>,
    ) -> Queued {
        let after = After::of(&cmd_request, watch);
        Queued {
            request: cmd_request,
            after,
            reply,
            since: Instant::now(),
        }
    }
}

/// Whether sending `request` again cannot change anything: it reads, fences or syncs.
pub(crate) fn is_idempotent(request: &Request) -> bool {
    matches!(
        request,
        Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetChildren { .. }
            | Request::GetAcl { .. }
            | Request::GetEphemerals { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::MultiRead { .. }
            | Request::CheckSequencer { .. }
            | Request::ReadIndex
            | Request::CacheFence { .. }
            | Request::Sync { .. }
    )
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
    /// Calls made while disconnected, and reads in flight when the connection dropped, sent
    /// after the reconnect (oldest first).
    backlog: VecDeque<Queued>,
    /// Leader fail-over detection.
    failover: Failover,
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
            failover: Failover::default(),
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
                    self.failover.lost();
                    self.shared.state.send_replace(SessionState::Disconnected);
                    self.shared.emit(SessionEvent::Jeopardy);
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
        self.failover.connected(response.epoch, response.last_zxid);
        self.shared
            .read_only
            .store(response.read_only, Ordering::Relaxed);
        let (frames_tx, frames) = mpsc::channel(1024);
        let (out, out_rx) = mpsc::unbounded_channel();
        let mut tasks = vec![
            tokio::spawn(reader(recv, frames_tx.clone(), self.cfg.max_frame)),
            tokio::spawn(writer(send, out_rx, frames_tx)),
        ];
        // Connected read-only: look for a server with a quorum, and move there when found.
        let (rw_tx, mut rw_found) = oneshot::channel::<String>();
        let mut probing = response.read_only;
        if probing {
            let others: Vec<String> = self
                .cfg
                .servers
                .iter()
                .filter(|s| **s != server)
                .cloned()
                .collect();
            tasks.push(tokio::spawn(probe_read_write(
                self.connector.clone(),
                others,
                rw_tx,
            )));
        } else {
            drop(rw_tx);
        }
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
            "session 0x{:x} connected to {server} (server id {}, timeout {} ms, epoch {}, highest seen {})",
            response.session_id,
            response.server_id,
            self.timeout.as_millis(),
            response.epoch,
            self.failover.max_epoch()
        );

        // Re-register watches first, then credentials, then what was queued meanwhile.
        let rewatch = self
            .watches
            .set_watches(self.shared.last_zxid.load(Ordering::Relaxed));
        let rewatching = rewatch.is_some();
        if let Some(req) = rewatch {
            self.enqueue(&mut live, req, Waiter::Rewatch, None);
        }
        for (scheme, auth) in self.auth.clone() {
            self.enqueue(
                &mut live,
                Request::AddAuth { scheme, auth },
                Waiter::Internal("add auth"),
                None,
            );
        }
        let now = Instant::now();
        while let Some(q) = self.backlog.pop_front() {
            if now >= q.since + self.cfg.request_timeout {
                let _ = q.reply.send(Err(timed_out(self.cfg.request_timeout)));
            } else if self.close_deadline.is_some() {
                let _ = q.reply.send(Err(Error::closed()));
            } else {
                self.send_call(&mut live, q);
            }
        }
        live.flush();
        // Notify only on a change: the first connection was published as Connected already,
        // and a watcher of `state_events` must be able to take every notification that
        // shows Connected as a disconnect and resume it did not see in between.
        let resumed = self.shared.state.send_if_modified(|state| {
            let changed = *state != SessionState::Connected;
            *state = SessionState::Connected;
            changed
        });
        if resumed {
            self.shared.emit(SessionEvent::Safe);
        }
        if !rewatching && self.failover.rewatched() {
            self.shared.emit(SessionEvent::LeaderFailedOver);
        }

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
                found = &mut rw_found, if probing => {
                    probing = false;
                    if let Ok(rw) = found {
                        break End::Lost(Error::with_message(
                            ErrorCode::ConnectionLoss,
                            format!("leaving read-only {server}: {rw} has a quorum"),
                        ));
                    }
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
                        self.enqueue(&mut live, Request::Ping, Waiter::Internal("ping"), None);
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
        // Reads are sent again after the resume, before what was queued meanwhile (they were
        // made earlier); everything else fails now.
        let lost = matches!(end, End::Lost(_));
        let mut again = Vec::new();
        for p in live.pending.drain(..) {
            match (p.waiter, p.resend) {
                (Waiter::Call { after, reply }, Some((request, since))) if lost => {
                    again.push(Queued {
                        request,
                        after,
                        reply,
                        since,
                    });
                }
                (waiter, _) => fail(waiter, &err),
            }
        }
        for q in again.into_iter().rev() {
            self.backlog.push_front(q);
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
                let failed_over = self.failover.reply(zxid);
                let refused = matches!(body, ReplyBody::Err(ErrorCode::AuthFailed));
                match p.waiter {
                    Waiter::Call { after, reply } => {
                        if refused && matches!(after, After::Auth { .. }) {
                            self.shared.emit(SessionEvent::AuthFailed);
                        }
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
                            if refused && what == "add auth" {
                                self.shared.emit(SessionEvent::AuthFailed);
                            }
                        }
                    },
                    Waiter::Rewatch => {
                        if let ReplyBody::Err(code) | ReplyBody::MultiErr { code, .. } = body {
                            tracing::warn!(
                                "session 0x{:x}: set watches failed: {code}",
                                self.session_id()
                            );
                        }
                        // `failed_over` is false here (the watches were not back yet when
                        // the reply's zxid was taken); the owed event is paid now.
                        let owed = self.failover.rewatched();
                        if failed_over || owed {
                            self.shared.emit(SessionEvent::LeaderFailedOver);
                        }
                        return None;
                    }
                    Waiter::Close => return Some(End::Closed),
                }
                if failed_over {
                    self.shared.emit(SessionEvent::LeaderFailedOver);
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
            ServerFrame::Invalidate { zxid, paths } => {
                // Dropped, then acknowledged at once: the write waits on every server for
                // this ack, not behind this session's requests.
                self.shared.cache.invalidate(&paths);
                let ack = ClientFrame::InvalidateAck { zxid };
                match frame::encode(&ack) {
                    Ok(bytes) => {
                        live.batch.extend_from_slice(&bytes);
                        live.flush();
                    }
                    Err(e) => tracing::error!("cannot encode an invalidation ack: {e}"),
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
            } => self.send_call(live, Queued::of(request, watch, reply)),
            Command::Close { reply } => self.begin_close(live, Some(reply)),
        }
    }

    /// Sends a user call, keeping a copy of a read to send again if the connection drops.
    fn send_call(&mut self, live: &mut Live, q: Queued) {
        let resend = is_idempotent(&q.request).then(|| (q.request.clone(), q.since));
        let waiter = Waiter::Call {
            after: q.after,
            reply: q.reply,
        };
        self.enqueue(live, q.request, waiter, resend);
    }

    fn begin_close(&mut self, live: &mut Live, reply: Option<oneshot::Sender<Result<(), Error>>>) {
        self.close_replies.extend(reply);
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Instant::now() + CLOSE_WAIT);
            self.enqueue(live, Request::CloseSession, Waiter::Close, None);
        }
    }

    /// Encodes a request into the outgoing batch and records who waits for its reply.
    fn enqueue(
        &mut self,
        live: &mut Live,
        request: Request,
        waiter: Waiter,
        resend: Option<(Request, Instant)>,
    ) {
        let xid = self.next_xid;
        self.next_xid += 1;
        match frame::encode(&ClientFrame::Request { xid, request }) {
            Ok(bytes) if bytes.len() <= self.cfg.max_frame + HEADER_LEN => {
                live.batch.extend_from_slice(&bytes);
                live.pending.push_back(Pending {
                    xid,
                    waiter,
                    resend,
                });
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

    /// Tries the servers until the session resumes, expires, or the user closes: for the
    /// session timeout and then the grace period, both counted from the last frame received.
    async fn reconnect(&mut self) -> Result<Link, End> {
        let deadline = self.last_recv + self.timeout + self.cfg.grace_period;
        let mut backoff = INITIAL_BACKOFF;
        let grace = self.cfg.grace_period;
        let expired = || {
            End::Expired(Error::with_message(
                ErrorCode::SessionExpired,
                format!(
                    "no server accepted the session within its timeout and the grace period of {} ms",
                    grace.as_millis()
                ),
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
            // A session local to a read-only server cannot be resumed anywhere else: ask for
            // a new one (its watches are registered again on it).
            let sid = self.shared.session_id.load(Ordering::Relaxed);
            let local = sid & READ_ONLY_SESSION_BIT != 0;
            let request = ConnectRequest {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                last_zxid_seen: self.shared.last_zxid.load(Ordering::Relaxed),
                timeout_ms: requested_timeout_ms(&self.cfg),
                session_id: if local { 0 } else { sid },
                password: if local {
                    Vec::new()
                } else {
                    self.shared.password.lock().clone()
                },
                read_only: self.cfg.read_only,
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
                    matches!(code, ErrorCode::SessionExpired | ErrorCode::AuthFailed)
                }),
            );
            let result = wait_serving(
                &mut self.cmds,
                &mut self.backlog,
                &mut self.close_replies,
                self.cfg.request_timeout,
                round,
            )
            .await?;
            match result {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(e)) if e.code() == ErrorCode::SessionExpired => {
                    return Err(End::Expired(e));
                }
                Ok(Err(e)) if e.code() == ErrorCode::AuthFailed => {
                    // Every server holds the same password: none will ever resume it.
                    self.shared.emit(SessionEvent::AuthFailed);
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
                self.cfg.request_timeout,
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
        self.shared.emit(match state {
            SessionState::Closed => SessionEvent::Closed,
            _ => SessionEvent::Expired,
        });
        self.watches.fail_all(&err);
        self.cmds.close();
        for q in self.backlog.drain(..) {
            let _ = q.reply.send(Err(err.clone()));
        }
        while let Ok(cmd) = self.cmds.try_recv() {
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

/// Asks `servers`, every [`READ_ONLY_PROBE`], whether one of them serves with a quorum;
/// sends the first that does and ends (or ends when the driver stops listening).
async fn probe_read_write(
    connector: Connector,
    servers: Vec<String>,
    found: oneshot::Sender<String>,
) {
    if servers.is_empty() {
        return;
    }
    loop {
        tokio::time::sleep(jitter(READ_ONLY_PROBE)).await;
        for server in &servers {
            if found.is_closed() {
                return;
            }
            let status = tokio::time::timeout(RECONNECT_ATTEMPT, connector.status(server)).await;
            if let Ok(Ok(s)) = status
                && s.leader.is_some()
                && matches!(s.role.as_str(), "leader" | "follower" | "observer")
            {
                let _ = found.send(server.clone());
                return;
            }
        }
    }
}

/// Awaits `fut` while queueing the calls that arrive meanwhile and failing those that waited
/// longer than `request_timeout`; a close (or every handle dropped) ends the wait with
/// `End::Closed`.
async fn wait_serving<F: Future>(
    cmds: &mut mpsc::UnboundedReceiver<Command>,
    backlog: &mut VecDeque<Queued>,
    close_replies: &mut Vec<oneshot::Sender<Result<(), Error>>>,
    request_timeout: Duration,
    fut: F,
) -> Result<F::Output, End> {
    tokio::pin!(fut);
    loop {
        let now = Instant::now();
        expire_backlog(backlog, now, request_timeout);
        // `backlog` is in the order calls were made, so the front times out first.
        let next_timeout = backlog.front().map(|q| q.since + request_timeout);
        tokio::select! {
            out = &mut fut => return Ok(out),
            cmd = cmds.recv() => match cmd {
                Some(Command::Close { reply }) => {
                    close_replies.push(reply);
                    return Err(End::Closed);
                }
                Some(Command::Call { request, watch, reply }) => {
                    backlog.push_back(Queued::of(request, watch, reply));
                }
                None => return Err(End::Closed),
            },
            () = sleep_until_opt(next_timeout) => {}
        }
    }
}

/// Fails, with `OperationTimeout`, the queued calls made `request_timeout` or more before
/// `now`; keeps the others in order.
fn expire_backlog(backlog: &mut VecDeque<Queued>, now: Instant, request_timeout: Duration) {
    if !backlog.iter().any(|q| now >= q.since + request_timeout) {
        return;
    }
    let err = timed_out(request_timeout);
    let mut keep = VecDeque::with_capacity(backlog.len());
    for q in backlog.drain(..) {
        if now >= q.since + request_timeout {
            let _ = q.reply.send(Err(err.clone()));
        } else {
            keep.push_back(q);
        }
    }
    *backlog = keep;
}

/// The error of a call that found no connection within its request timeout.
fn timed_out(request_timeout: Duration) -> Error {
    Error::with_message(
        ErrorCode::OperationTimeout,
        format!(
            "not sent: the session was not resumed within the request timeout of {} ms",
            request_timeout.as_millis()
        ),
    )
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn fail(waiter: Waiter, err: &Error) {
    match waiter {
        Waiter::Call { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Waiter::Internal(what) => tracing::debug!("{what} not answered: {err}"),
        Waiter::Rewatch => tracing::debug!("set watches not answered: {err}"),
        Waiter::Close => {}
    }
}

fn marshalling(message: String) -> Error {
    Error::with_message(ErrorCode::MarshallingError, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(since: Instant) -> (Queued, oneshot::Receiver<Result<Response, Error>>) {
        let (reply, rx) = oneshot::channel();
        let q = Queued {
            request: Request::Ping,
            after: After::Nothing,
            reply,
            since,
        };
        (q, rx)
    }

    #[test]
    fn reads_fences_and_syncs_are_resent_writes_are_not() {
        let path = || "/a".to_string();
        for r in [
            Request::Exists {
                path: path(),
                watch: true,
            },
            Request::GetData {
                path: path(),
                watch: false,
            },
            Request::GetChildren {
                path: path(),
                watch: false,
            },
            Request::GetAcl { path: path() },
            Request::ReadIndex,
            Request::Sync { path: path() },
        ] {
            assert!(is_idempotent(&r), "{r:?}");
        }
        for r in [
            Request::Delete {
                path: path(),
                version: -1,
            },
            Request::SetData {
                path: path(),
                data: vec![],
                version: -1,
            },
            Request::Multi { ops: vec![] },
            Request::AddAuth {
                scheme: "digest".into(),
                auth: vec![],
            },
            Request::RemoveWatches {
                path: path(),
                kind: WatcherKind::Any,
            },
            Request::CloseSession,
        ] {
            assert!(!is_idempotent(&r), "{r:?}");
        }
    }

    #[tokio::test]
    async fn calls_past_their_request_timeout_fail_and_the_rest_keep_their_order() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut backlog = VecDeque::new();
        let (old, mut old_rx) = queued(t0);
        let (mid, mut mid_rx) = queued(t0 + Duration::from_secs(3));
        let (new, mut new_rx) = queued(t0 + Duration::from_secs(6));
        backlog.extend([old, mid, new]);
        expire_backlog(&mut backlog, t0 + Duration::from_secs(9), timeout);
        assert_eq!(backlog.len(), 3, "nothing is due yet");
        expire_backlog(&mut backlog, t0 + Duration::from_secs(13), timeout);
        let e = old_rx.try_recv().unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationTimeout);
        assert!(e.to_string().contains("not sent"), "{e}");
        let e = mid_rx.try_recv().unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationTimeout);
        assert!(new_rx.try_recv().is_err(), "still waiting");
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].since, t0 + Duration::from_secs(6));
    }
}
