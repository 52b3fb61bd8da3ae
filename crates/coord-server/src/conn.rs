//! Client connections: QUIC accept loop, one reader and one coalescing writer per session
//! stream. This code only moves bytes: every decision is the Store's.
//!
//! ```text
//!  Endpoint.accept -> Connection.accept_bi -> stream:
//!     reader: handshake, then frames -> ClientRequest (one permit each)  -> Store
//!     writer: Outbox -> encode every queued frame into one buffer -> one write_all
//! ```
//! A malformed or oversized frame closes that stream only (after a `Closing` frame saying
//! why); the server keeps serving everyone else.

use crate::config::Config;
use crate::outbox::{OutboxReceiver, Recv, outbox};
use crate::sessions::{Clock, SessionTable};
use crate::store::{
    Attach, AttachReadOnly, CacheAcked, ClientRequest, CreateSession, Detach, Outbox,
    PendingConnect, Store,
};
use actix::Addr;
use coord_proto::io::{FrameIoError, read_frame};
use coord_proto::*;
use rkyv::util::AlignedVec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, oneshot};

/// How long a session handshake waits for an electing server to serve again.
const HOLD_WHILE_ELECTING: std::time::Duration = std::time::Duration::from_millis(400);

/// What connection tasks share (all on the server's arbiter thread).
pub struct ConnContext {
    /// Configuration.
    pub config: Arc<Config>,
    /// The Store.
    pub store: Addr<Store>,
    /// Session liveness.
    pub table: SessionTable,
    /// Server clock.
    pub clock: Clock,
    /// Last applied zxid.
    pub applied: Arc<AtomicU64>,
    /// Sessions open per client IP.
    pub per_ip: RefCell<HashMap<IpAddr, usize>>,
    /// QUIC connections per client IP, handshakes included.
    pub conns_per_ip: RefCell<HashMap<IpAddr, usize>>,
    /// Handshakes in progress.
    pub handshaking: std::cell::Cell<usize>,
    /// Source of connection ids.
    pub next_conn: RefCell<u64>,
    /// Role, epoch and leader, as the replication layer last reported them.
    pub role: Rc<RefCell<RoleInfo>>,
    /// Client connections whose other end may watch this process (see `liveness`).
    pub watchable: crate::liveness::Tokens,
}

impl ConnContext {
    /// A context with no connection, session or handshake counted yet.
    pub fn new(
        config: Arc<Config>,
        store: Addr<Store>,
        table: SessionTable,
        clock: Clock,
        applied: Arc<AtomicU64>,
        role: Rc<RefCell<RoleInfo>>,
        watchable: crate::liveness::Tokens,
    ) -> ConnContext {
        ConnContext {
            config,
            store,
            table,
            clock,
            applied,
            per_ip: RefCell::default(),
            conns_per_ip: RefCell::default(),
            handshaking: std::cell::Cell::new(0),
            next_conn: RefCell::new(0),
            role,
            watchable,
        }
    }
}

/// What `coord status` reports about replication.
#[derive(Debug, Clone, Default)]
pub struct RoleInfo {
    /// `leader`, `follower`, `observer` or `looking`.
    pub role: String,
    /// Current epoch.
    pub epoch: u32,
    /// The leader, if known.
    pub leader: Option<u64>,
    /// Followers in sync (leader only).
    pub synced_followers: Vec<u64>,
    /// Whether this server serves clients (an established leader, or synced with one).
    pub established: bool,
    /// Notified whenever the fields above change (a held handshake waits on it).
    pub changed: Rc<tokio::sync::Notify>,
}

async fn answer_status(tx: &Outbox, ctx: &ConnContext) {
    let (digest, zxid, nodes) = ctx
        .store
        .send(crate::store::DigestQuery)
        .await
        .unwrap_or((0, 0, 0));
    let role = ctx.role.borrow().clone();
    tx.send(ServerFrame::Status(ServerStatus {
        id: ctx.config.id,
        role: role.role,
        epoch: role.epoch,
        zxid,
        leader: role.leader,
        synced_followers: role.synced_followers,
        digest,
        nodes: nodes as u64,
        sessions: ctx.table.len() as u64,
    }));
}

/// Opens the client listener on `udp` and starts accepting sessions; returns the endpoint
/// (close it to stop). Shared by the single-server and the ensemble start.
pub fn listen(
    udp: std::net::UdpSocket,
    server_config: quinn::ServerConfig,
    ctx: ConnContext,
) -> std::io::Result<quinn::Endpoint> {
    let endpoint = quinn::Endpoint::new(
        crate::tls::endpoint_config(),
        Some(server_config),
        udp,
        Arc::new(quinn::TokioRuntime),
    )?;
    actix_rt::spawn(serve(endpoint.clone(), Rc::new(ctx)));
    Ok(endpoint)
}

/// Handshakes in progress past which a client must first prove its address (a QUIC Retry,
/// stateless for the server), so spoofed Initials cost it nothing.
const RETRY_ABOVE_HANDSHAKES: usize = 256;

/// Handshakes in progress past which new ones are dropped unanswered.
const MAX_HANDSHAKES: usize = 4096;

/// Application close code of a connection that did nothing within the handshake timeout.
const CLOSE_IDLE: u32 = 2;

/// Counts one connection of `ip` (handshake included) while it lives.
struct ConnSlot {
    ctx: Rc<ConnContext>,
    ip: IpAddr,
}

impl ConnSlot {
    fn new(ctx: &Rc<ConnContext>, ip: IpAddr) -> ConnSlot {
        *ctx.conns_per_ip.borrow_mut().entry(ip).or_insert(0) += 1;
        ConnSlot {
            ctx: ctx.clone(),
            ip,
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut m = self.ctx.conns_per_ip.borrow_mut();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Counts one handshake in progress while it lives.
struct Handshaking(Rc<ConnContext>);

impl Handshaking {
    fn new(ctx: &Rc<ConnContext>) -> Handshaking {
        ctx.handshaking.set(ctx.handshaking.get() + 1);
        Handshaking(ctx.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.set(self.0.handshaking.get() - 1);
    }
}

/// Accepts connections until the endpoint closes. Before any TLS work: a client address past
/// `max_connections_per_ip` (or `max_sessions_per_ip`) is refused, a client that has not
/// proven its address while many handshakes are in progress gets a Retry, and past
/// [`MAX_HANDSHAKES`] an Initial is dropped. A handshake has `handshake_timeout_ms` to
/// finish.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Rc<ConnContext>) {
    let timeout = std::time::Duration::from_millis(ctx.config.handshake_timeout_ms);
    let mut refused: u64 = 0;
    while let Some(incoming) = endpoint.accept().await {
        let ip = incoming.remote_address().ip();
        let conns = ctx.conns_per_ip.borrow().get(&ip).copied().unwrap_or(0);
        let sessions = ctx.per_ip.borrow().get(&ip).copied().unwrap_or(0);
        let (max_conns, max_sessions) = (
            ctx.config.max_connections_per_ip,
            ctx.config.max_sessions_per_ip,
        );
        if (max_conns > 0 && conns >= max_conns) || (max_sessions > 0 && sessions >= max_sessions) {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%ip, conns, sessions, refused, "refusing connections past the per-address limits");
            }
            incoming.refuse();
            continue;
        }
        let handshaking = ctx.handshaking.get();
        if handshaking >= MAX_HANDSHAKES {
            incoming.ignore();
            continue;
        }
        if handshaking >= RETRY_ABOVE_HANDSHAKES
            && !incoming.remote_address_validated()
            && incoming.may_retry()
        {
            let _ = incoming.retry();
            continue;
        }
        let slot = ConnSlot::new(&ctx, ip);
        let pending = Handshaking::new(&ctx);
        let ctx = ctx.clone();
        actix_rt::spawn(async move {
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => return tracing::debug!(error = %e, "handshake failed"),
            };
            // Dropping an unfinished handshake closes it.
            let done = tokio::time::timeout(timeout, connecting).await;
            drop(pending);
            match done {
                Ok(Ok(conn)) => handle_connection(conn, ctx, timeout).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                Err(_) => tracing::debug!(%ip, "handshake timed out"),
            }
            drop(slot);
        });
    }
}

async fn handle_connection(
    conn: quinn::Connection,
    ctx: Rc<ConnContext>,
    first_stream_within: std::time::Duration,
) {
    let ip = conn.remote_address().ip();
    ctx.watchable.admit(&conn);
    // Verified by TLS against the client CA when the listener asks for certificates.
    let x509 = crate::tls::x509_subject(conn.peer_identity());
    let mut first = true;
    loop {
        let next = if first {
            first = false;
            match tokio::time::timeout(first_stream_within, conn.accept_bi()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(%ip, "no stream within the handshake timeout; closing");
                    conn.close(
                        CLOSE_IDLE.into(),
                        b"no request within the handshake timeout",
                    );
                    return;
                }
            }
        } else {
            conn.accept_bi().await
        };
        match next {
            Ok((send, recv)) => {
                let conn_id = {
                    let mut n = ctx.next_conn.borrow_mut();
                    *n += 1;
                    *n
                };
                actix_rt::spawn(handle_stream(
                    send,
                    recv,
                    ip,
                    x509.clone(),
                    conn_id,
                    ctx.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(%ip, error = %e, "connection closed");
                return;
            }
        }
    }
}

/// Drains the outbox: every frame queued at the moment is encoded into one buffer and written
/// with one call, so pipelined replies share datagrams. Ends when the outbox closes.
async fn writer(mut send: quinn::SendStream, mut rx: OutboxReceiver, done: oneshot::Sender<()>) {
    let mut batch = Vec::with_capacity(64);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut aborted = false;
    loop {
        let n = match rx.recv_many(&mut batch, 1024).await {
            Recv::Frames(n) => n,
            Recv::Closed => break,
            Recv::Aborted => {
                aborted = true;
                break;
            }
        };
        buf.clear();
        for frame in batch.drain(..) {
            match frame::encode(&frame) {
                Ok(bytes) => buf.extend_from_slice(&bytes),
                Err(e) => tracing::error!(error = %e, "cannot encode a reply"),
            }
        }
        let wrote = tokio::select! {
            r = send.write_all(&buf) => r.is_ok(),
            _ = rx.aborted() => { aborted = true; false }
        };
        rx.written(n);
        if !wrote {
            break;
        }
    }
    if aborted {
        let _ = send.reset(1u32.into());
    } else {
        let _ = send.finish();
    }
    let _ = done.send(());
}

struct IpSlot {
    ctx: Rc<ConnContext>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.ctx.per_ip.borrow_mut();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

fn refuse(tx: &Outbox, code: ErrorCode, message: impl Into<String>) {
    let _ = tx.send(ServerFrame::Refused {
        code,
        message: message.into(),
    });
}

async fn handle_stream(
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ip: IpAddr,
    x509: Option<String>,
    conn_id: u64,
    ctx: Rc<ConnContext>,
) {
    let (tx, rx) = outbox();
    let (done_tx, mut done_rx) = oneshot::channel();
    actix_rt::spawn(writer(send, rx, done_tx));
    let limit = ctx.config.max_frame_bytes;
    let mut buf = AlignedVec::<16>::new();

    // Handshake: the first frame within the handshake timeout.
    let within = std::time::Duration::from_millis(ctx.config.handshake_timeout_ms);
    let first = match tokio::time::timeout(within, read_frame(&mut recv, &mut buf, limit)).await {
        Ok(r) => r,
        Err(_) => {
            return refuse(
                &tx,
                ErrorCode::OperationTimeout,
                "no Connect frame within the handshake timeout",
            );
        }
    };
    let connect = match first {
        Ok(true) => match frame::decode_aligned::<ClientFrame>(&buf) {
            Ok(ClientFrame::Connect(c)) => c,
            Ok(ClientFrame::Status) => return answer_status(&tx, &ctx).await,
            Ok(_) => {
                return refuse(
                    &tx,
                    ErrorCode::MarshallingError,
                    "the first frame must be Connect",
                );
            }
            Err(e) => return refuse(&tx, ErrorCode::MarshallingError, e.to_string()),
        },
        Ok(false) => return,
        Err(e) => return refuse(&tx, ErrorCode::MarshallingError, e.to_string()),
    };
    if connect.protocol_version != CLIENT_PROTOCOL_VERSION {
        return refuse(
            &tx,
            ErrorCode::VersionMismatch,
            format!(
                "client protocol {} is not supported (server speaks {})",
                connect.protocol_version, CLIENT_PROTOCOL_VERSION
            ),
        );
    }
    // While electing (~100 ms after a leader crash) the handshake is held rather than
    // refused: a refused client backs off and polls, and would arrive well after the new
    // leader is ready. Bounded below the client's per-attempt limit (500 ms).
    // Past the hold, a server in read-only mode takes the sessions that asked for it.
    let hold_until = tokio::time::Instant::now() + HOLD_WHILE_ELECTING;
    let mut read_only = false;
    let changed = ctx.role.borrow().changed.clone();
    loop {
        // Armed before the check, so a change in between is not missed.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ctx.role.borrow().established {
            break;
        }
        let held = tokio::select! {
            _ = notified => true,
            _ = tokio::time::sleep_until(hold_until) => false,
        };
        if !held {
            if ctx.config.read_only_mode && connect.read_only {
                read_only = true;
                break;
            }
            return refuse(
                &tx,
                ErrorCode::NotServing,
                "this server has no established leader yet",
            );
        }
    }
    let applied = ctx.applied.load(Ordering::Acquire);
    if connect.last_zxid_seen > applied {
        return refuse(
            &tx,
            ErrorCode::NotServing,
            format!(
                "client has seen zxid 0x{:x}, this server only 0x{:x}",
                connect.last_zxid_seen, applied
            ),
        );
    }
    let max_per_ip = ctx.config.max_sessions_per_ip;
    {
        let mut m = ctx.per_ip.borrow_mut();
        let n = m.entry(ip).or_insert(0);
        if max_per_ip > 0 && *n >= max_per_ip {
            drop(m);
            return refuse(
                &tx,
                ErrorCode::Throttled,
                format!("too many sessions from {ip} (limit {max_per_ip})"),
            );
        }
        *n += 1;
    }
    let _slot = IpSlot {
        ctx: ctx.clone(),
        ip,
    };

    let permits = Arc::new(Semaphore::new(ctx.config.max_outstanding_per_session));
    let (reply_tx, reply_rx) = oneshot::channel();
    if read_only {
        ctx.store.do_send(AttachReadOnly {
            session_id: connect.session_id,
            password: connect.password,
            timeout_ms: ctx.config.negotiate_timeout(connect.timeout_ms),
            outbox: tx.clone(),
            permits: permits.clone(),
            conn_id,
            ip,
            x509: x509.clone(),
            reply: reply_tx,
        });
    } else if connect.session_id == 0 {
        let mut password = vec![0u8; 16];
        rand::fill(&mut password[..]);
        ctx.store.do_send(CreateSession(PendingConnect {
            outbox: tx.clone(),
            permits: permits.clone(),
            conn_id,
            ip,
            x509: x509.clone(),
            timeout_ms: ctx.config.negotiate_timeout(connect.timeout_ms),
            password,
            reply: reply_tx,
        }));
    } else {
        ctx.store.do_send(Attach {
            session_id: connect.session_id,
            password: connect.password,
            outbox: tx.clone(),
            permits: permits.clone(),
            conn_id,
            ip,
            x509: x509.clone(),
            reply: reply_tx,
        });
    }
    let session_id = match reply_rx.await {
        Ok(Ok((id, _timeout))) => id,
        Ok(Err(code)) => return refuse(&tx, code, code.describe()),
        Err(_) => return refuse(&tx, ErrorCode::NotServing, "server is shutting down"),
    };
    // From here on only the Store holds the outbox: when it drops the session the writer ends.
    drop(tx);
    let Some(liveness) = ctx.table.get(session_id) else {
        return;
    };
    tracing::debug!(session = format_args!("0x{session_id:x}"), %ip, "session attached");

    let reason = loop {
        let next = tokio::select! {
            r = read_frame(&mut recv, &mut buf, limit) => r,
            _ = &mut done_rx => break None,
        };
        match next {
            Ok(true) => {}
            Ok(false) => break None,
            Err(FrameIoError::Io(_)) => break None,
            Err(FrameIoError::Frame(e)) => {
                break Some((ErrorCode::MarshallingError, e.to_string()));
            }
        }
        liveness.touch(ctx.clock.now_ms());
        let (xid, request) = match frame::decode_aligned::<ClientFrame>(&buf) {
            Ok(ClientFrame::Request { xid, request }) => (xid, request),
            // Out of band: never behind the session's requests or their permits.
            Ok(ClientFrame::InvalidateAck { zxid }) => {
                ctx.store.do_send(CacheAcked {
                    session: session_id,
                    zxid,
                });
                continue;
            }
            Ok(ClientFrame::Connect(_) | ClientFrame::Status) => {
                break Some((
                    ErrorCode::MarshallingError,
                    "a handshake frame inside a session".into(),
                ));
            }
            Err(e) => break Some((ErrorCode::MarshallingError, e.to_string())),
        };
        // Backpressure: past the limit of outstanding requests, stop reading this stream.
        match permits.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => break None,
        }
        ctx.store.do_send(ClientRequest {
            session_id,
            conn_id,
            xid,
            request,
        });
    };
    if let Some((code, message)) = &reason {
        tracing::warn!(session = format_args!("0x{session_id:x}"), %ip, ?code, %message, "closing a misbehaving stream");
    }
    ctx.store.do_send(Detach {
        session_id,
        conn_id,
        reason,
    });
    let _ = recv.stop(0u32.into());
}
