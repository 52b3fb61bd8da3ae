//! The Store actor: owns the znode tree and the watch table, keeps each session's requests in
//! FIFO order, answers reads from the local tree, and applies committed txns.
//!
//! Per-session order (as ZooKeeper's CommitProcessor): a session's queue holds its requests
//! from the first write still waiting for commit onwards; reads behind a pending write wait for
//! it, so a session always reads its own writes, and replies leave in request order.

use crate::config::Config;
use crate::node::LogHandle;
use crate::proposer::{ConnectReply, Propose};
use crate::sessions::{Clock, Liveness, SessionTable};
use crate::wall_ms;
use actix::prelude::*;
use coord_proto::{
    AddWatchMode, CLIENT_PROTOCOL_VERSION, ConnectResponse, ErrorCode, Id, MultiOp, ReplyBody,
    Request, Response, ServerFrame, Zxid, validate_path,
};
use coord_tree::{DataTree, RecentChanges, Txn, TxnBody, WatchKind, WatchManager, digest_id};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Semaphore;

pub use crate::outbox::Outbox;

/// The xid of txns the server issues itself (expiry, cleanup, session creation): no client
/// request waits for them by xid.
pub const INTERNAL_XID: u64 = u64::MAX;

/// Default number of changes kept for replay to reconnecting persistent watches
/// ([`RecentChanges`]; the setting is `replay_window_changes`).
pub const REPLAY_WINDOW_CHANGES: usize = crate::config::DEFAULT_REPLAY_WINDOW_CHANGES;

/// The file beside the snapshots that holds the replay window as of the newest snapshot.
pub const REPLAY_WINDOW_FILE: &str = "replay-window";

/// The replay window saved with the snapshot at `at`, if there is one for exactly that zxid
/// and it is intact; otherwise an empty window at `at` (what a server had before windows were
/// saved). Either way it holds at most `capacity` changes.
pub fn load_window(data_dir: &std::path::Path, at: Zxid, capacity: usize) -> RecentChanges {
    let path = data_dir.join(REPLAY_WINDOW_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => match RecentChanges::decode(&bytes, capacity) {
            Ok(w) if w.last() == at => {
                tracing::info!(changes = w.len(), floor = %w.floor(), "replay window restored");
                return w;
            }
            Ok(w) => {
                tracing::info!(saved_at = %w.last(), snapshot = %at, "replay window is not of this snapshot; starting empty")
            }
            Err(e) => tracing::warn!(error = %e, "replay window unreadable; starting empty"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "replay window unreadable; starting empty")
        }
    }
    RecentChanges::new(capacity, at)
}

/// Saves `window` (taken when the tree was at a snapshot's zxid) atomically: a temporary
/// file, fsync, rename, fsync of the directory. A failure only costs replays after a restart.
fn save_window(data_dir: &std::path::Path, window: &RecentChanges) {
    use std::io::Write;
    let path = data_dir.join(REPLAY_WINDOW_FILE);
    let tmp = data_dir.join(format!("{REPLAY_WINDOW_FILE}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&window.encode())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the replay window");
    }
}

/// A connection waiting for a new session to be created.
pub struct PendingConnect {
    /// The session stream's outbox.
    pub outbox: Outbox,
    /// Request permits of the stream (one returned per reply).
    pub permits: Arc<Semaphore>,
    /// The connection's id.
    pub conn_id: u64,
    /// The client's address (its `ip` identity).
    pub ip: IpAddr,
    /// The subject of the client certificate of its connection, if one was presented
    /// (its `x509` identity).
    pub x509: Option<String>,
    /// Negotiated timeout.
    pub timeout_ms: u32,
    /// Password of the new session.
    pub password: Vec<u8>,
    /// Answered with (session id, timeout) once the session is committed.
    pub reply: ConnectReply,
}

/// The identities a session gets from its connection: `ip` always, `x509` with a client
/// certificate.
fn connection_auth(ip: IpAddr, x509: Option<String>) -> Vec<Id> {
    let mut auth = vec![Id::new("ip", ip.to_string())];
    auth.extend(x509.map(|subject| Id::new("x509", subject)));
    auth
}

/// Create a session for a new connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CreateSession(pub PendingConnect);

/// Attach an existing session to a new connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    /// The session.
    pub session_id: u64,
    /// Its password.
    pub password: Vec<u8>,
    /// The new stream's outbox.
    pub outbox: Outbox,
    /// The new stream's permits.
    pub permits: Arc<Semaphore>,
    /// The connection's id.
    pub conn_id: u64,
    /// The client's address.
    pub ip: IpAddr,
    /// The subject of the client certificate of its connection, if one was presented
    /// (its `x509` identity).
    pub x509: Option<String>,
    /// Answered with (session id, timeout) or why not.
    pub reply: ConnectReply,
}

/// Bit 63 marks a session created by a server in read-only mode: local to that server,
/// never replicated (a zxid never gets there: its epoch would be 2^31). A client moving to a
/// read-write server starts a new session instead of resuming it.
pub const READ_ONLY_SESSION_BIT: u64 = 1 << 63;

/// Attach a session read-only (the server has no quorum and is in read-only mode): a new
/// local session when `session_id` is 0, else a known session, without moving it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachReadOnly {
    /// The session, or 0 for a new local one.
    pub session_id: u64,
    /// Its password.
    pub password: Vec<u8>,
    /// Negotiated timeout for a new local session.
    pub timeout_ms: u32,
    /// The new stream's outbox.
    pub outbox: Outbox,
    /// The new stream's permits.
    pub permits: Arc<Semaphore>,
    /// The connection's id.
    pub conn_id: u64,
    /// The client's address.
    pub ip: IpAddr,
    /// The subject of the client certificate of its connection, if one was presented
    /// (its `x509` identity).
    pub x509: Option<String>,
    /// Answered with (session id, timeout) or why not.
    pub reply: ConnectReply,
}

/// Whether this server serves read-write (an established leader, or synced with one).
/// Becoming so ends every read-only session (its client reconnects read-write).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServing(pub bool);

/// A session's stream ended (or misbehaved).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// The session.
    pub session_id: u64,
    /// The connection it was on.
    pub conn_id: u64,
    /// A reason to send to the client before closing, if any.
    pub reason: Option<(ErrorCode, String)>,
}

/// A request from an attached session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientRequest {
    /// The session.
    pub session_id: u64,
    /// The connection it arrived on.
    pub conn_id: u64,
    /// Request id.
    pub xid: u64,
    /// The request.
    pub request: Request,
}

/// A txn is durable and may be applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    /// Its zxid.
    pub zxid: Zxid,
    /// The txn.
    pub txn: Txn,
}

/// A proposal was refused (the log failed or the server is not serving).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rejected {
    /// The txn that will not be committed.
    pub txn: Txn,
    /// Why.
    pub code: ErrorCode,
}

/// Expire a session (from the SessionManager).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Expire {
    /// The session.
    pub session_id: u64,
}

/// Replace the tree with a leader's snapshot (ZAB SNAP sync).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstallSnapshot {
    /// The snapshot's zxid.
    pub zxid: Zxid,
    /// `DataTree::snapshot` bytes.
    pub bytes: Vec<u8>,
}

/// Take a snapshot of the applied tree: (zxid, bytes), serialized off the actor thread;
/// `None` if it could not be made (the learner is then served at its next attempt).
#[derive(Message)]
#[rtype(result = "Option<(Zxid, Vec<u8>)>")]
pub struct TakeSnapshot;

/// Close every client session stream on this server (it lost or changed its leader, as a
/// ZooKeeper server does): clients reconnect, to this server or another.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropAllSessions {
    /// Told to each client.
    pub message: String,
}

/// Whether this server leads (only the leader proposes container/TTL cleanup).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetLeading(pub bool);

/// Store → replica: confirm, through the leader, a commit zxid for the linearizable-read
/// fences of round `round` (answered with [`ReadIndexDone`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadBarrier {
    /// The Store's round id.
    pub round: u64,
    /// Client-cache registrations of the round's `CacheFence`s: (session, path, lease ms).
    pub cache: Vec<(u64, String, u32)>,
}

/// Replica → Store: an invalidation from the leader (see [`crate::cache`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CacheInvalidate(pub crate::cache::Invalidation);

/// Replica → Store: invalidation `0` ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CacheRelease(pub u64);

/// A session dropped what invalidation `zxid` named (connection → Store → leader).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CacheAcked {
    /// The session.
    pub session: u64,
    /// The invalidation's zxid.
    pub zxid: u64,
}

/// Replica → Store: this server's leader or role changed (or it stopped serving): pending
/// invalidations of the former leader end, and no session is accepted for one cache lease.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NewTerm;

#[derive(Message)]
#[rtype(result = "()")]
struct GateWake;

/// Replica → Store: the answer to [`ReadBarrier`]: the zxid to apply before the round's
/// fences are answered, or why there is none.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadIndexDone {
    /// The round.
    pub round: u64,
    /// The confirmed zxid, or the error for every fence of the round.
    pub result: Result<Zxid, ErrorCode>,
}

/// The epoch of the leader this server follows (for `ConnectResponse::epoch`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetEpoch(pub u32);

/// Ask for the tree digest and size (tests, status).
#[derive(Message)]
#[rtype(result = "(u64, u64, usize)")]
pub struct DigestQuery;

enum Queued {
    /// A write waiting for its commit (`done` holds its answer once it committed, until the
    /// entries before it are answered).
    Write {
        xid: u64,
        /// For `sync`: the path to echo once the no-op write committed.
        sync: Option<String>,
        done: Option<ReplyBody>,
    },
    /// A read to run when it reaches the front.
    Read { xid: u64, request: Request },
    /// An answer computed early (a refused write) to send when it reaches the front.
    Done { xid: u64, body: ReplyBody },
    /// A linearizable-read fence (`Request::ReadIndex`) waiting for its confirmed zxid to be
    /// applied (`done` set then); later requests of the session wait behind it.
    Fence {
        xid: u64,
        done: Option<ReplyBody>,
        /// For a `CacheFence`: the lease to answer with.
        lease: Option<u32>,
    },
}

struct LocalSession {
    conn_id: u64,
    outbox: Outbox,
    permits: Arc<Semaphore>,
    /// Identities for ACL checks: the client's ip, then digests added with add_auth.
    auth: Vec<Id>,
    queue: VecDeque<Queued>,
    /// Attached in read-only mode: reads only.
    read_only: bool,
}

impl LocalSession {
    fn send(&self, frame: ServerFrame) {
        // A closed outbox means the stream is gone; the reader detaches the session.
        self.outbox.send(frame);
    }
}

/// Everything the Store needs at start.
pub struct StoreParts {
    /// The recovered tree.
    pub tree: DataTree,
    /// The configuration.
    pub config: Arc<Config>,
    /// Liveness of every session.
    pub table: SessionTable,
    /// The server clock.
    pub clock: Clock,
    /// Where txns go to be committed: the local proposer or the ZAB replica.
    pub proposer: Recipient<Propose>,
    /// The log, for snapshots.
    pub log: LogHandle,
    /// The replay window as recovered (see [`load_window`]), up to the tree's last zxid.
    pub recent: RecentChanges,
    /// Last applied zxid, published for connection tasks.
    pub applied: Arc<AtomicU64>,
    /// Where linearizable-read rounds are confirmed (the ZAB replica); `None` for a single
    /// server, where every acknowledged write has been applied before its reply, so a fence
    /// is answered at once.
    pub read_barrier: Option<Recipient<ReadBarrier>>,
    /// Where client-cache acks go (the ZAB replica, on to the leader); `None` for a single
    /// server, whose Store keeps the cache registry itself.
    pub cache_acks: Option<Recipient<CacheAcked>>,
}

/// Linearizable-read fences, batched into rounds: one round in flight at the replica at a
/// time; fences arriving meanwhile form the next round (so each is confirmed by a round that
/// began after it arrived).
#[derive(Default)]
struct Fences {
    next_round: u64,
    /// Fences not yet in a round.
    waiting: Vec<(u64, u64)>,
    /// Cache registrations of the waiting fences.
    cache: Vec<(u64, String, u32)>,
    /// The round asked of the replica and its fences (session, xid).
    in_flight: Option<(u64, Vec<(u64, u64)>)>,
    /// Confirmed rounds waiting for the tree to apply up to their zxid.
    confirmed: Vec<(Zxid, Vec<(u64, u64)>)>,
}

/// The znode store actor.
pub struct Store {
    tree: DataTree,
    watches: WatchManager,
    /// The changes of the last applied txns (up to [`REPLAY_WINDOW_CHANGES`]), for
    /// `SetWatches`; it starts empty at the tree's last applied zxid, so it never claims
    /// changes it did not see (recovery, snapshot installs).
    recent: RecentChanges,
    sessions: HashMap<u64, LocalSession>,
    table: SessionTable,
    clock: Clock,
    proposer: Recipient<Propose>,
    log: LogHandle,
    /// Connections waiting for their CreateSession txn, by the new session's password.
    pending_connects: HashMap<Vec<u8>, PendingConnect>,
    /// Connections resuming a session owned by another server, waiting for the
    /// MoveSession txn that makes this server its owner, by session id.
    pending_moves: HashMap<u64, Attach>,
    /// Whether this server serves read-write (see [`SetServing`]).
    serving: bool,
    /// The counter of local read-only session ids.
    next_read_only: u64,
    config: Arc<Config>,
    applied: Arc<AtomicU64>,
    since_snapshot: u64,
    /// Set while a snapshot is being serialized on its own thread (one at a time).
    snapshotting: Arc<AtomicBool>,
    /// Sessions with a CloseSession txn in flight.
    closing: HashSet<u64>,
    /// Nodes with a ReapNode txn in flight.
    reaping: HashSet<String>,
    /// Whether this server leads (reaps).
    leading: bool,
    read_barrier: Option<Recipient<ReadBarrier>>,
    fences: Fences,
    /// The epoch of the leader this server follows.
    epoch: u32,
    cache_acks: Option<Recipient<CacheAcked>>,
    /// A single server's client-cache registry (an ensemble's is the leader replica's).
    registry: crate::cache::CacheRegistry,
    /// Closed while an invalidation is pending (see [`crate::cache`]).
    gate: crate::cache::ApplyGate,
    /// Commits waiting at the gate, in zxid order.
    gated: VecDeque<(Zxid, Txn)>,
    gate_timer: Option<(u64, SpawnHandle)>,
    /// No session is attached before this (ms): leases of a former leader run out first.
    no_sessions_until: u64,
    /// Free space of the data directory (writes refused below the reserve).
    disk: crate::disk_space::DiskGuard,
}

impl Store {
    /// A store over a recovered tree.
    pub fn new(parts: StoreParts) -> Store {
        parts
            .applied
            .store(parts.tree.last_applied().0, Ordering::Release);
        let no_sessions_until = parts.clock.now_ms() + parts.config.cache_lease_ms;
        Store {
            recent: parts.recent,
            disk: crate::disk_space::DiskGuard::new(
                &parts.config.data_dir,
                parts.config.min_free_disk_bytes,
            ),
            tree: parts.tree,
            watches: WatchManager::new(),
            sessions: HashMap::new(),
            table: parts.table,
            clock: parts.clock,
            proposer: parts.proposer,
            log: parts.log,
            config: parts.config,
            applied: parts.applied,
            since_snapshot: 0,
            snapshotting: Arc::new(AtomicBool::new(false)),
            closing: HashSet::new(),
            reaping: HashSet::new(),
            leading: true,
            pending_connects: HashMap::new(),
            pending_moves: HashMap::new(),
            serving: false,
            next_read_only: 0,
            read_barrier: parts.read_barrier,
            fences: Fences::default(),
            epoch: 0,
            cache_acks: parts.cache_acks,
            registry: Default::default(),
            gate: Default::default(),
            gated: VecDeque::new(),
            gate_timer: None,
            // A restarted server knows no lease it granted before.
            no_sessions_until,
        }
    }

    /// Refuses sessions until the leases a former leader (or this server before a restart)
    /// may have granted have run out.
    fn sessions_blocked(&self) -> bool {
        self.clock.now_ms() < self.no_sessions_until
    }

    /// Tells this server's sessions named by `inv` to drop their entries, and closes the gate
    /// at its zxid until the release (or its lease from now).
    fn on_invalidation(&mut self, inv: crate::cache::Invalidation) {
        for (sid, paths) in inv.targets {
            if let Some(s) = self.sessions.get(&sid) {
                s.send(ServerFrame::Invalidate {
                    zxid: inv.zxid,
                    paths,
                });
            }
        }
        self.gate
            .hold(inv.zxid, self.clock.now_ms() + inv.lease_ms as u64);
    }

    /// Applies the commits the gate lets through; arms a wake-up for the next deadline.
    fn apply_gated(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        while let Some((zxid, _)) = self.gated.front() {
            if !self.gate.open_for(now, zxid.0) {
                break;
            }
            if let Some((zxid, txn)) = self.gated.pop_front() {
                self.apply_committed(zxid, txn);
            }
        }
        self.arm_gate_timer(ctx);
    }

    fn arm_gate_timer(&mut self, ctx: &mut Context<Self>) {
        let next = [self.gate.next_deadline(), self.registry.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            return;
        };
        if self.gate_timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        if let Some((_, h)) = self.gate_timer.take() {
            ctx.cancel_future(h);
        }
        let wait = std::time::Duration::from_millis(at.saturating_sub(self.clock.now_ms()));
        self.gate_timer = Some((at, ctx.notify_later(GateWake, wait)));
    }

    fn propose(&self, session_id: u64, xid: u64, auth: Vec<Id>, body: TxnBody) {
        let txn = Txn {
            session_id,
            xid,
            time_ms: wall_ms(),
            auth,
            body,
            origin: self.config.id,
        };
        self.proposer.do_send(Propose { txn });
    }

    /// Cheap checks before a write enters the log (the tree checks everything again at apply).
    fn prepare(&self, request: Request) -> Result<TxnBody, ErrorCode> {
        let max = self.config.max_data_bytes;
        let check_path = |p: &str| validate_path(p).map_err(|_| ErrorCode::InvalidPath);
        let check_data = |d: &[u8]| {
            if d.len() > max {
                Err(ErrorCode::TooLarge)
            } else {
                Ok(())
            }
        };
        Ok(match request {
            Request::Create {
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => {
                check_path(&path)?;
                check_data(&data)?;
                TxnBody::Create {
                    path,
                    data,
                    acl,
                    mode,
                    ttl_ms,
                }
            }
            Request::Delete { path, version } => {
                check_path(&path)?;
                TxnBody::Delete { path, version }
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                check_path(&path)?;
                check_data(&data)?;
                TxnBody::SetData {
                    path,
                    data,
                    version,
                }
            }
            Request::SetAcl { path, acl, version } => {
                check_path(&path)?;
                TxnBody::SetAcl { path, acl, version }
            }
            Request::Multi { ops } => {
                // The whole multi is bounded by the frame limit; each value by max_data_bytes.
                for op in &ops {
                    check_path(op.path())?;
                    if let MultiOp::Create { data, .. } | MultiOp::SetData { data, .. } = op {
                        check_data(data)?;
                    }
                }
                TxnBody::Multi { ops }
            }
            Request::CloseSession => TxnBody::CloseSession,
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    /// Runs a read (or a session-local op) for `sid` and returns its answer.
    fn read(&mut self, sid: u64, request: Request) -> ReplyBody {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return ReplyBody::Err(ErrorCode::SessionExpired);
        };
        let auth = &session.auth;
        let invalid = |p: &str| validate_path(p).is_err();
        let result: Result<Response, ErrorCode> = match request {
            Request::Ping => Ok(Response::Pong),
            Request::Exists { path, watch } => {
                if invalid(&path) {
                    Err(ErrorCode::InvalidPath)
                } else {
                    let stat = self.tree.stat(&path);
                    if watch {
                        let kind = if stat.is_some() {
                            WatchKind::Data
                        } else {
                            WatchKind::Exist
                        };
                        self.watches.add(sid, &path, kind);
                    }
                    Ok(Response::Exists { stat })
                }
            }
            Request::GetData { path, watch } => match self.tree.get_data(&path, auth) {
                Ok((data, stat)) => {
                    if watch {
                        self.watches.add(sid, &path, WatchKind::Data);
                    }
                    Ok(Response::Data { data, stat })
                }
                Err(e) => Err(e),
            },
            Request::GetChildren { path, watch } => match self.tree.get_children(&path, auth) {
                Ok((children, stat)) => {
                    if watch {
                        self.watches.add(sid, &path, WatchKind::Child);
                    }
                    Ok(Response::Children { children, stat })
                }
                Err(e) => Err(e),
            },
            Request::GetAcl { path } => self
                .tree
                .get_acl(&path, auth)
                .map(|(acl, stat)| Response::Acl { acl, stat }),
            Request::GetEphemerals { prefix } => Ok(Response::Paths {
                paths: self.tree.get_ephemerals(sid, &prefix),
            }),
            Request::GetAllChildrenNumber { path } => self
                .tree
                .all_children_number(&path, auth)
                .map(|count| Response::Count { count }),
            Request::MultiRead { ops } => Ok(Response::MultiRead {
                results: self.tree.multi_read(&ops, auth),
            }),
            // No ACL: like `exists`, it tells only whether a hold is current.
            Request::CheckSequencer { sequencer } => {
                match coord_proto::Sequencer::decode(&sequencer) {
                    Ok(s) => Ok(Response::Sequencer {
                        valid: self.tree.sequencer_valid(&s),
                    }),
                    Err(_) => Err(ErrorCode::BadArguments),
                }
            }
            Request::AddWatch { path, mode } => {
                if invalid(&path) {
                    Err(ErrorCode::InvalidPath)
                } else {
                    let kind = match mode {
                        AddWatchMode::Persistent => WatchKind::Persistent,
                        AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
                    };
                    self.watches.add(sid, &path, kind);
                    Ok(Response::Empty)
                }
            }
            Request::RemoveWatches { path, kind } => match self.watches.remove(sid, &path, kind) {
                Ok(events) => {
                    for e in events {
                        session.send(ServerFrame::Event(e));
                    }
                    Ok(Response::Empty)
                }
                Err(e) => Err(e),
            },
            Request::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
            } => {
                // Missed persistent-watch events (or their removal notices) and fired one-shot
                // watches, queued before the reply.
                let fired = self.watches.set_watches(
                    sid,
                    Zxid(relative_zxid),
                    &self.tree,
                    &self.recent,
                    &data,
                    &exist,
                    &child,
                    &persistent,
                    &persistent_recursive,
                );
                for e in fired {
                    session.send(ServerFrame::Event(e));
                }
                Ok(Response::Empty)
            }
            Request::AddAuth { scheme, auth } => match scheme.as_str() {
                "digest" => match std::str::from_utf8(&auth).ok().map(digest_id) {
                    Some(Ok(id)) => {
                        if self.config.super_digest.as_deref() == Some(id.as_str()) {
                            session.auth.push(Id::new("super", ""));
                        }
                        let id = Id::new("digest", id);
                        if !session.auth.contains(&id) {
                            session.auth.push(id);
                        }
                        Ok(Response::Empty)
                    }
                    _ => Err(ErrorCode::AuthFailed),
                },
                _ => Err(ErrorCode::AuthFailed),
            },
            // Writes never reach here.
            _ => Err(ErrorCode::BadArguments),
        };
        match result {
            Ok(r) => ReplyBody::Ok(r),
            Err(e) => ReplyBody::Err(e),
        }
    }

    /// Whether a request on this server waits for `txn`: its session is attached here and
    /// the front of its queue is the write with the txn's xid.
    /// Whether `txn` is a write a local session waits for (on this connection).
    fn waits_for(&self, txn: &Txn) -> bool {
        txn.xid != INTERNAL_XID
            && self.sessions.get(&txn.session_id).is_some_and(|s| {
                s.queue
                    .iter()
                    .any(|q| matches!(q, Queued::Write { xid, done: None, .. } if *xid == txn.xid))
            })
    }

    fn send_reply(&self, sid: u64, xid: u64, body: ReplyBody) {
        if let Some(s) = self.sessions.get(&sid) {
            s.send(ServerFrame::Reply {
                xid,
                zxid: self.applied.load(Ordering::Relaxed),
                body,
            });
            s.permits.add_permits(1);
        }
    }

    /// Answers a session's queue from the front, in request order: finished writes and
    /// fences, early answers, and reads (run when they reach the front), until a write or
    /// fence still waiting.
    fn drain(&mut self, sid: u64) {
        loop {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            match s.queue.front() {
                None
                | Some(Queued::Write { done: None, .. })
                | Some(Queued::Fence { done: None, .. }) => return,
                Some(_) => {}
            }
            match s.queue.pop_front() {
                Some(Queued::Read { xid, request }) => {
                    let body = self.read(sid, request);
                    self.send_reply(sid, xid, body);
                }
                Some(
                    Queued::Done { xid, body }
                    | Queued::Write {
                        xid,
                        done: Some(body),
                        ..
                    }
                    | Queued::Fence {
                        xid,
                        done: Some(body),
                        ..
                    },
                ) => self.send_reply(sid, xid, body),
                _ => return,
            }
        }
    }

    /// A write of `sid` committed (or was refused): its answer goes out once everything the
    /// session asked before it was answered.
    fn complete_write(&mut self, sid: u64, xid: u64, body: ReplyBody) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        // A write from an earlier connection of this session is not in this queue: its client
        // already saw ConnectionLoss for it.
        let Some(entry) = s
            .queue
            .iter_mut()
            .find(|q| matches!(q, Queued::Write { xid: x, done: None, .. } if *x == xid))
        else {
            return;
        };
        if let Queued::Write { sync, done, .. } = entry {
            *done = Some(match (sync.take(), body) {
                // `sync` rides on a no-op write: once it committed here, everything committed
                // before it has been applied here too.
                (Some(path), ReplyBody::Ok(_)) => ReplyBody::Ok(Response::Sync { path }),
                (_, body) => body,
            });
        }
        self.drain(sid);
    }

    /// An answer known before anything ran (a refused request): sent now if the session's
    /// queue is empty, else queued behind what the session asked before.
    fn answer_early(&mut self, sid: u64, xid: u64, idle: bool, body: ReplyBody) {
        if idle {
            self.send_reply(sid, xid, body);
        } else if let Some(s) = self.sessions.get_mut(&sid) {
            s.queue.push_back(Queued::Done { xid, body });
        }
    }

    /// Queues a linearizable-read fence for `sid` and starts a round if none is in flight.
    fn fence(&mut self, sid: u64, xid: u64, cache: Option<(String, u32)>) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.queue.push_back(Queued::Fence {
            xid,
            done: None,
            lease: cache.as_ref().map(|(_, l)| *l),
        });
        self.fences.waiting.push((sid, xid));
        if let Some((path, lease)) = cache
            && lease > 0
        {
            self.fences.cache.push((sid, path, lease));
        }
        self.next_fence_round();
    }

    fn next_fence_round(&mut self) {
        if self.fences.in_flight.is_some() || self.fences.waiting.is_empty() {
            return;
        }
        let fences = std::mem::take(&mut self.fences.waiting);
        let cache = std::mem::take(&mut self.fences.cache);
        match &self.read_barrier {
            Some(replica) => {
                self.fences.next_round += 1;
                let round = self.fences.next_round;
                self.fences.in_flight = Some((round, fences));
                replica.do_send(ReadBarrier { round, cache });
            }
            // A single server: every acknowledged write is applied already (a gated one was
            // not acknowledged); the registry is here.
            None => {
                let now = self.clock.now_ms();
                for (sid, path, lease) in cache {
                    self.registry.register(now, sid, &path, lease);
                }
                let applied = self.tree.last_applied();
                self.fences.confirmed.push((applied, fences));
                self.release_fences();
            }
        }
    }

    /// Answers the fences whose confirmed zxid has been applied.
    fn release_fences(&mut self) {
        if self.fences.confirmed.is_empty() {
            return;
        }
        let applied = self.tree.last_applied();
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.fences.confirmed)
            .into_iter()
            .partition(|(z, _)| *z <= applied);
        self.fences.confirmed = later;
        for (_, fences) in ready {
            for (sid, xid) in fences {
                self.complete_fence(sid, xid, ReplyBody::Ok(Response::Empty));
            }
        }
    }

    fn complete_fence(&mut self, sid: u64, xid: u64, body: ReplyBody) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        // A fence of an earlier connection of this session is not in this queue.
        if let Some(Queued::Fence { done, lease, .. }) = s
            .queue
            .iter_mut()
            .find(|q| matches!(q, Queued::Fence { xid: x, done: None, .. } if *x == xid))
        {
            *done = Some(match (body, lease) {
                (ReplyBody::Ok(_), Some(lease_ms)) => ReplyBody::Ok(Response::CacheLease {
                    lease_ms: *lease_ms,
                }),
                (body, _) => body,
            });
            self.drain(sid);
        }
    }

    fn drop_session(&mut self, sid: u64, reason: Option<(ErrorCode, String)>) {
        if let Some(s) = self.sessions.remove(&sid)
            && let Some((code, message)) = reason
        {
            s.send(ServerFrame::Closing { code, message });
        }
        self.watches.remove_session(sid);
        if sid & READ_ONLY_SESSION_BIT != 0 {
            // A local read-only session lives only while attached.
            self.table.remove(sid);
        }
    }

    fn maybe_snapshot(&mut self, zxid: Zxid) {
        self.since_snapshot += 1;
        if self.since_snapshot < self.config.snapshot_every_txns {
            return;
        }
        // One at a time: while the last one is still being written, this one waits for a
        // later txn.
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since_snapshot = 0;
        // Only the view is taken here (a reference count and a path copy per node, ~15 ms
        // for 200k nodes); sorting and serializing (~0.3 s for 200k) happen on a thread of
        // their own, so the actor keeps serving, heartbeating and applying meanwhile.
        let view = self.tree.snapshot_view();
        // The window as of this very zxid, saved once the snapshot is: a restart from this
        // snapshot can then replay what happened before it.
        let window = self.recent.clone();
        let (log, keep, busy, data_dir) = (
            self.log.clone(),
            self.config.snapshots_keep,
            self.snapshotting.clone(),
            self.config.data_dir.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("coord-snapshot".into())
            .spawn(move || {
                let nodes = view.node_count();
                let bytes = view.serialize();
                tracing::info!(zxid = %zxid, bytes = bytes.len(), nodes, "snapshot");
                log.save_snapshot(zxid.0, bytes);
                save_window(&data_dir, &window);
                log.purge(keep);
                busy.store(false, Ordering::Release);
                // The buffers were this thread's; hand their pages back to the OS now rather
                // than leave them to an exited thread's heap (coordd runs on mimalloc; with
                // another global allocator this is a no-op on an empty heap).
                // SAFETY: mi_collect has no preconditions; it only frees unused pages.
                unsafe { libmimalloc_sys::mi_collect(true) };
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread; snapshot skipped");
            self.snapshotting.store(false, Ordering::Release);
        }
    }

    fn reap(&mut self) {
        if !self.leading {
            return;
        }
        for (path, czxid) in self.tree.reap_candidates(wall_ms()) {
            if self.reaping.insert(path.clone()) {
                self.propose(
                    0,
                    INTERNAL_XID,
                    Vec::new(),
                    TxnBody::ReapNode { path, czxid },
                );
            }
        }
    }
}

impl Actor for Store {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let tick = std::time::Duration::from_millis(self.config.tick_ms);
        ctx.run_interval(tick, |this, ctx| {
            this.reap();
            let now = this.clock.now_ms();
            for zxid in this.registry.expire(now) {
                this.gate.release(zxid);
            }
            this.apply_gated(ctx);
            // mimalloc returns freed pages to the OS lazily, when the heap that owns them is
            // next used; this thread (the server's actors and connections) may go quiet right
            // after a burst, holding tens of MiB. Purge what is due once a tick.
            // SAFETY: mi_collect has no preconditions; it only frees unused pages.
            unsafe { libmimalloc_sys::mi_collect(false) };
        });
    }
}

impl Handler<CreateSession> for Store {
    type Result = ();
    fn handle(&mut self, msg: CreateSession, _: &mut Self::Context) {
        if self.sessions_blocked() {
            let _ = msg.0.reply.send(Err(ErrorCode::NotServing));
            return;
        }
        let body = TxnBody::CreateSession {
            timeout_ms: msg.0.timeout_ms,
            password: msg.0.password.clone(),
        };
        self.pending_connects.insert(msg.0.password.clone(), msg.0);
        self.propose(0, INTERNAL_XID, Vec::new(), body);
    }
}

impl Handler<Attach> for Store {
    type Result = ();
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) {
        let id = msg.session_id;
        let liveness = match self.check_attach(&msg) {
            Ok(liveness) => liveness,
            Err(code) => {
                let _ = msg.reply.send(Err(code));
                return;
            }
        };
        liveness.touch(self.clock.now_ms());
        if self.tree.session_owner(id) == Some(self.config.id) {
            self.finish_attach(msg);
            return;
        }
        // Owned by another server (or by none known): this server becomes the owner
        // through a replicated MoveSession before it answers, so every request of the
        // session's old connection ordered after it fails with SessionMoved, wherever it
        // arrives, and the old server drops that connection when it applies the move.
        if let Some(older) = self.pending_moves.insert(id, msg) {
            let _ = older.reply.send(Err(ErrorCode::SessionMoved));
        }
        self.propose(id, INTERNAL_XID, Vec::new(), TxnBody::MoveSession);
    }
}

impl Store {
    /// Whether session `msg.session_id` may be resumed with `msg.password` here.
    fn check_attach(&self, msg: &Attach) -> Result<Arc<Liveness>, ErrorCode> {
        let id = msg.session_id;
        let refuse = Err;
        if self.sessions_blocked() {
            return refuse(ErrorCode::NotServing);
        }
        // A session id is the zxid of its CreateSession txn: a server that has not applied
        // that far cannot know the session yet, and must not call it expired (the client
        // tries another server, or this one again once it caught up).
        if self.tree.last_applied().0 < id {
            return refuse(ErrorCode::NotServing);
        }
        if !self.tree.has_session(id) || self.closing.contains(&id) {
            return refuse(ErrorCode::SessionExpired);
        }
        if self.tree.session_password(id) != Some(msg.password.as_slice()) {
            return refuse(ErrorCode::AuthFailed);
        }
        match self.table.get(id) {
            Some(liveness) => Ok(liveness),
            None => refuse(ErrorCode::SessionExpired),
        }
    }

    /// Attaches a checked session to its new connection and answers `Connected`.
    fn finish_attach(&mut self, msg: Attach) {
        let id = msg.session_id;
        let liveness = match self.check_attach(&msg) {
            Ok(liveness) => liveness,
            Err(code) => {
                let _ = msg.reply.send(Err(code));
                return;
            }
        };
        if self.sessions.contains_key(&id) {
            self.drop_session(
                id,
                Some((
                    ErrorCode::SessionMoved,
                    "session resumed on another connection".into(),
                )),
            );
        }
        liveness.touch(self.clock.now_ms());
        let session = LocalSession {
            conn_id: msg.conn_id,
            outbox: msg.outbox,
            permits: msg.permits,
            auth: connection_auth(msg.ip, msg.x509),
            queue: VecDeque::new(),
            read_only: false,
        };
        session.send(ServerFrame::Connected(ConnectResponse {
            protocol_version: CLIENT_PROTOCOL_VERSION,
            timeout_ms: liveness.timeout_ms,
            session_id: id,
            password: msg.password,
            last_zxid: self.applied.load(Ordering::Relaxed),
            server_id: self.config.id,
            epoch: self
                .epoch
                .max((self.applied.load(Ordering::Relaxed) >> 32) as u32),
            read_only: false,
        }));
        self.sessions.insert(id, session);
        let _ = msg.reply.send(Ok((id, liveness.timeout_ms)));
    }

    /// A MoveSession txn of session `sid` through server `origin` was applied.
    fn session_moved(&mut self, sid: u64, origin: u64, ok: bool) {
        if origin == self.config.id {
            if let Some(msg) = self.pending_moves.remove(&sid) {
                if ok {
                    self.finish_attach(msg);
                } else {
                    let _ = msg.reply.send(Err(ErrorCode::SessionExpired));
                }
            }
        } else if ok && self.sessions.contains_key(&sid) {
            self.drop_session(
                sid,
                Some((
                    ErrorCode::SessionMoved,
                    format!("session resumed on server {origin}"),
                )),
            );
        }
    }
}

impl Handler<AttachReadOnly> for Store {
    type Result = ();
    fn handle(&mut self, msg: AttachReadOnly, _: &mut Self::Context) {
        if self.serving {
            // Back in a quorum since the handshake began: the client retries read-write.
            let _ = msg.reply.send(Err(ErrorCode::NotServing));
            return;
        }
        let now = self.clock.now_ms();
        let (id, password, liveness) = if msg.session_id == 0 {
            self.next_read_only += 1;
            let id = READ_ONLY_SESSION_BIT | self.next_read_only;
            let mut password = vec![0u8; 16];
            rand::fill(&mut password[..]);
            let liveness = Arc::new(Liveness::new(msg.timeout_ms, now));
            self.table.insert(id, liveness.clone());
            (id, password, liveness)
        } else {
            let id = msg.session_id;
            let known = if id & READ_ONLY_SESSION_BIT != 0 {
                // Another connection's local session (it lives only while attached).
                Err(ErrorCode::SessionExpired)
            } else if self.tree.last_applied().0 < id || !self.tree.has_session(id) {
                // Cut off from the quorum, this server cannot know a newer session, nor
                // whether one it does not hold has expired meanwhile: not its call.
                Err(ErrorCode::NotServing)
            } else if self.tree.session_password(id) != Some(msg.password.as_slice()) {
                Err(ErrorCode::AuthFailed)
            } else {
                self.table.get(id).ok_or(ErrorCode::NotServing)
            };
            match known {
                Ok(liveness) => (id, msg.password, liveness),
                Err(code) => {
                    let _ = msg.reply.send(Err(code));
                    return;
                }
            }
        };
        if self.sessions.contains_key(&id) {
            self.drop_session(
                id,
                Some((
                    ErrorCode::SessionMoved,
                    "session resumed on another connection".into(),
                )),
            );
        }
        liveness.touch(now);
        let session = LocalSession {
            conn_id: msg.conn_id,
            outbox: msg.outbox,
            permits: msg.permits,
            auth: connection_auth(msg.ip, msg.x509),
            queue: VecDeque::new(),
            read_only: true,
        };
        let applied = self.applied.load(Ordering::Relaxed);
        session.send(ServerFrame::Connected(ConnectResponse {
            protocol_version: CLIENT_PROTOCOL_VERSION,
            timeout_ms: liveness.timeout_ms,
            session_id: id,
            password,
            last_zxid: applied,
            server_id: self.config.id,
            epoch: self.epoch.max((applied >> 32) as u32),
            read_only: true,
        }));
        self.sessions.insert(id, session);
        tracing::info!(
            session = format_args!("0x{id:x}"),
            "session attached read-only"
        );
        let _ = msg.reply.send(Ok((id, liveness.timeout_ms)));
    }
}

impl Handler<SetServing> for Store {
    type Result = ();
    fn handle(&mut self, msg: SetServing, _: &mut Self::Context) {
        self.serving = msg.0;
        if msg.0 {
            let read_only: Vec<u64> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.read_only)
                .map(|(id, _)| *id)
                .collect();
            for id in read_only {
                self.drop_session(
                    id,
                    Some((
                        ErrorCode::ConnectionLoss,
                        "the server rejoined a quorum: reconnect read-write".into(),
                    )),
                );
            }
        }
    }
}

impl Handler<Detach> for Store {
    type Result = ();
    fn handle(&mut self, msg: Detach, _: &mut Self::Context) {
        if self
            .sessions
            .get(&msg.session_id)
            .is_some_and(|s| s.conn_id == msg.conn_id)
        {
            self.drop_session(msg.session_id, msg.reason);
        }
    }
}

impl Handler<ClientRequest> for Store {
    type Result = ();
    fn handle(&mut self, msg: ClientRequest, _: &mut Self::Context) {
        let sid = msg.session_id;
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        if s.conn_id != msg.conn_id {
            return;
        }
        let idle = s.queue.is_empty();
        if s.read_only
            && (msg.request.is_write()
                || matches!(
                    msg.request,
                    Request::ReadIndex | Request::Sync { .. } | Request::CacheFence { .. }
                ))
        {
            // Nothing that needs the quorum: no write, no sync, no linearizable read.
            if matches!(msg.request, Request::CloseSession) && sid & READ_ONLY_SESSION_BIT != 0 {
                self.send_reply(sid, msg.xid, ReplyBody::Ok(Response::Empty));
                self.drop_session(sid, None);
                return;
            }
            let body = ReplyBody::Err(ErrorCode::NotReadOnly);
            self.answer_early(sid, msg.xid, idle, body);
            return;
        }
        if let Request::ReadIndex = msg.request {
            self.fence(sid, msg.xid, None);
        } else if let Request::CacheFence { path } = msg.request {
            if validate_path(&path).is_err() {
                let body = ReplyBody::Err(ErrorCode::InvalidPath);
                self.answer_early(sid, msg.xid, idle, body);
                return;
            }
            let lease = match self.table.get(sid) {
                Some(l) if self.config.cache_lease_ms > 0 => {
                    crate::cache::lease_for(self.config.cache_lease_ms, l.timeout_ms)
                }
                _ => 0,
            };
            self.fence(sid, msg.xid, Some((path, lease)));
        } else if let Request::Sync { path } = msg.request {
            if validate_path(&path).is_err() {
                let body = ReplyBody::Err(ErrorCode::InvalidPath);
                self.answer_early(sid, msg.xid, idle, body);
                return;
            }
            let auth = s.auth.clone();
            self.propose(sid, msg.xid, auth, TxnBody::Noop);
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.queue.push_back(Queued::Write {
                    xid: msg.xid,
                    sync: Some(path),
                    done: None,
                });
            }
        } else if msg.request.is_write() {
            if matches!(msg.request, Request::CloseSession) {
                self.closing.insert(sid);
            }
            let auth = s.auth.clone();
            match self.prepare(msg.request) {
                Ok(body)
                    if !crate::disk_space::allowed_when_low(&body)
                        && self.disk.is_low(self.clock.now_ms()) =>
                {
                    self.answer_early(sid, msg.xid, idle, ReplyBody::Err(ErrorCode::DiskFull));
                }
                Ok(body) => {
                    self.propose(sid, msg.xid, auth, body);
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.queue.push_back(Queued::Write {
                            xid: msg.xid,
                            sync: None,
                            done: None,
                        });
                    }
                }
                Err(code) => {
                    self.answer_early(sid, msg.xid, idle, ReplyBody::Err(code));
                }
            }
        } else if idle {
            let body = self.read(sid, msg.request);
            self.send_reply(sid, msg.xid, body);
        } else if let Some(s) = self.sessions.get_mut(&sid) {
            s.queue.push_back(Queued::Read {
                xid: msg.xid,
                request: msg.request,
            });
        }
    }
}

impl Handler<Committed> for Store {
    type Result = ();
    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        let Committed { zxid, txn } = msg;
        if self.read_barrier.is_none() && !self.registry.is_empty() {
            // A single server is its own leader: it invalidates before it applies.
            let touched = crate::cache::touched(&txn.body);
            let now = self.clock.now_ms();
            if let Some(inv) = self.registry.invalidate(now, zxid.0, &touched) {
                self.on_invalidation(inv);
            }
        }
        self.gated.push_back((zxid, txn));
        self.apply_gated(ctx);
    }
}

impl Store {
    fn apply_committed(&mut self, zxid: Zxid, txn: Txn) {
        let outcome = self.tree.apply(zxid, &txn);
        self.applied.store(zxid.0, Ordering::Release);
        self.recent.record(zxid, &outcome.changes);
        let mut backlogged = Vec::new();
        for (sid, event) in self.watches.trigger(zxid, &outcome.changes) {
            if let Some(s) = self.sessions.get(&sid) {
                s.send(ServerFrame::Event(event));
                if s.outbox.queued() > self.config.max_queued_frames_per_session {
                    backlogged.push(sid);
                }
            }
        }
        backlogged.dedup();
        for sid in backlogged {
            // The client stopped reading: cut it off rather than buffer without bound. Its
            // session lives on and may resume on a new connection.
            if let Some(s) = self.sessions.get(&sid) {
                tracing::warn!(
                    session = format_args!("0x{sid:x}"),
                    queued = s.outbox.queued(),
                    "client not reading; resetting its stream"
                );
                s.outbox.abort();
            }
            self.drop_session(sid, None);
        }
        match &txn.body {
            TxnBody::CreateSession {
                timeout_ms,
                password,
            } => {
                let sid = zxid.0;
                self.table.insert(
                    sid,
                    Arc::new(Liveness::new(*timeout_ms, self.clock.now_ms())),
                );
                if let Some(pc) = self.pending_connects.remove(password) {
                    let session = LocalSession {
                        conn_id: pc.conn_id,
                        outbox: pc.outbox,
                        permits: pc.permits,
                        auth: connection_auth(pc.ip, pc.x509),
                        queue: VecDeque::new(),
                        read_only: false,
                    };
                    session.send(ServerFrame::Connected(crate::proposer::connect_response(
                        zxid,
                        *timeout_ms,
                        password.clone(),
                        self.config.id,
                    )));
                    self.sessions.insert(sid, session);
                    let _ = pc.reply.send(Ok((sid, *timeout_ms)));
                }
            }
            TxnBody::CloseSession | TxnBody::ExpireSession => {
                let sid = txn.session_id;
                self.table.remove(sid);
                self.closing.remove(&sid);
                if self.waits_for(&txn) {
                    self.complete_write(sid, txn.xid, outcome.reply);
                    self.drop_session(sid, None);
                } else {
                    self.drop_session(
                        sid,
                        Some((ErrorCode::SessionExpired, "session expired".into())),
                    );
                }
            }
            TxnBody::ReapNode { path, .. } => {
                self.reaping.remove(path);
            }
            TxnBody::MoveSession => {
                let ok = matches!(outcome.reply, ReplyBody::Ok(_));
                self.session_moved(txn.session_id, txn.origin, ok);
            }
            _ => {
                if self.waits_for(&txn) {
                    self.complete_write(txn.session_id, txn.xid, outcome.reply);
                }
            }
        }
        self.release_fences();
        self.maybe_snapshot(zxid);
    }
}

impl Handler<CacheInvalidate> for Store {
    type Result = ();
    fn handle(&mut self, msg: CacheInvalidate, ctx: &mut Self::Context) {
        self.on_invalidation(msg.0);
        self.arm_gate_timer(ctx);
    }
}

impl Handler<CacheRelease> for Store {
    type Result = ();
    fn handle(&mut self, msg: CacheRelease, ctx: &mut Self::Context) {
        self.gate.release(msg.0);
        self.apply_gated(ctx);
    }
}

impl Handler<CacheAcked> for Store {
    type Result = ();
    fn handle(&mut self, msg: CacheAcked, ctx: &mut Self::Context) {
        match &self.cache_acks {
            Some(leader) => leader.do_send(msg),
            None => {
                if self.registry.acked(msg.session, msg.zxid) {
                    self.gate.release(msg.zxid);
                    self.apply_gated(ctx);
                }
            }
        }
    }
}

impl Handler<GateWake> for Store {
    type Result = ();
    fn handle(&mut self, _: GateWake, ctx: &mut Self::Context) {
        self.gate_timer = None;
        let now = self.clock.now_ms();
        for zxid in self.registry.expire(now) {
            self.gate.release(zxid);
        }
        self.apply_gated(ctx);
    }
}

impl Handler<NewTerm> for Store {
    type Result = ();
    fn handle(&mut self, _: NewTerm, ctx: &mut Self::Context) {
        // The invalidations of the former leader end (this server stops serving its
        // sessions meanwhile); leases it granted end before any session is attached here.
        self.gate.clear();
        self.registry.clear();
        self.no_sessions_until = self.clock.now_ms() + self.config.cache_lease_ms;
        self.apply_gated(ctx);
    }
}

impl Handler<ReadIndexDone> for Store {
    type Result = ();
    fn handle(&mut self, msg: ReadIndexDone, _: &mut Self::Context) {
        let Some((round, fences)) = self.fences.in_flight.take() else {
            return;
        };
        if round != msg.round {
            // Not the round in flight (cannot happen: one at a time); keep waiting for it.
            self.fences.in_flight = Some((round, fences));
            return;
        }
        match msg.result {
            Ok(zxid) => {
                self.fences.confirmed.push((zxid, fences));
                self.release_fences();
            }
            Err(code) => {
                for (sid, xid) in fences {
                    self.complete_fence(sid, xid, ReplyBody::Err(code));
                }
            }
        }
        self.next_fence_round();
    }
}

impl Handler<SetEpoch> for Store {
    type Result = ();
    fn handle(&mut self, msg: SetEpoch, _: &mut Self::Context) {
        self.epoch = msg.0;
    }
}

impl Handler<Rejected> for Store {
    type Result = ();
    fn handle(&mut self, msg: Rejected, _: &mut Self::Context) {
        let txn = msg.txn;
        match &txn.body {
            TxnBody::CreateSession { password, .. } => {
                if let Some(pc) = self.pending_connects.remove(password) {
                    let _ = pc.reply.send(Err(msg.code));
                }
            }
            TxnBody::ReapNode { path, .. } => {
                self.reaping.remove(path);
            }
            TxnBody::MoveSession => {
                if let Some(pending) = self.pending_moves.remove(&txn.session_id) {
                    let _ = pending.reply.send(Err(msg.code));
                }
            }
            body => {
                if matches!(body, TxnBody::CloseSession | TxnBody::ExpireSession) {
                    self.closing.remove(&txn.session_id);
                }
                if self.waits_for(&txn) {
                    self.complete_write(txn.session_id, txn.xid, ReplyBody::Err(msg.code));
                }
            }
        }
    }
}

impl Handler<Expire> for Store {
    type Result = ();
    fn handle(&mut self, msg: Expire, _: &mut Self::Context) {
        let sid = msg.session_id;
        if self.tree.has_session(sid) && self.closing.insert(sid) {
            // Expiry, not a clean close: lock nodes of the session start their lock-delay.
            self.propose(sid, INTERNAL_XID, Vec::new(), TxnBody::ExpireSession);
        } else if !self.tree.has_session(sid) {
            self.table.remove(sid);
        }
    }
}

impl Handler<InstallSnapshot> for Store {
    type Result = ();
    fn handle(&mut self, msg: InstallSnapshot, _: &mut Self::Context) {
        match DataTree::from_snapshot(&msg.bytes) {
            Ok(tree) => {
                tracing::info!(zxid = %msg.zxid, nodes = tree.node_count(), "installed the leader's snapshot");
                let now = self.clock.now_ms();
                for (id, timeout) in tree.sessions() {
                    if self.table.get(id).is_none() {
                        self.table.insert(id, Arc::new(Liveness::new(timeout, now)));
                    }
                }
                for (id, _) in self.tree.sessions() {
                    if !tree.has_session(id) {
                        self.table.remove(id);
                    }
                }
                self.tree = tree;
                self.applied
                    .store(self.tree.last_applied().0, Ordering::Release);
                // The changes between the old tree and this one are unknown: replay nothing
                // from before it.
                self.recent =
                    RecentChanges::new(self.config.replay_window(), self.tree.last_applied());
            }
            Err(e) => {
                // A leader's snapshot that does not validate: serving on would mean serving
                // wrong data. Stop; a restart syncs again.
                tracing::error!(error = %e, "the leader's snapshot does not validate; stopping");
                std::process::exit(70);
            }
        }
    }
}

impl Handler<TakeSnapshot> for Store {
    type Result = ResponseFuture<Option<(Zxid, Vec<u8>)>>;
    fn handle(&mut self, _: TakeSnapshot, _: &mut Self::Context) -> Self::Result {
        // As for periodic snapshots: only the view is taken on this thread.
        let view = self.tree.snapshot_view();
        let zxid = view.last_applied();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("coord-snap-sync".into())
            .spawn(move || {
                let _ = tx.send(view.serialize());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread to serialize a snapshot for a learner");
        }
        Box::pin(async move { rx.await.ok().map(|bytes| (zxid, bytes)) })
    }
}

impl Handler<DropAllSessions> for Store {
    type Result = ();
    fn handle(&mut self, msg: DropAllSessions, _: &mut Self::Context) {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.drop_session(id, Some((ErrorCode::ConnectionLoss, msg.message.clone())));
        }
        for (_, pc) in self.pending_connects.drain() {
            let _ = pc.reply.send(Err(ErrorCode::NotServing));
        }
        for (_, pending) in self.pending_moves.drain() {
            let _ = pending.reply.send(Err(ErrorCode::NotServing));
        }
        self.closing.clear();
        self.reaping.clear();
    }
}

impl Handler<SetLeading> for Store {
    type Result = ();
    fn handle(&mut self, msg: SetLeading, _: &mut Self::Context) {
        self.leading = msg.0;
    }
}

impl Handler<DigestQuery> for Store {
    type Result = MessageResult<DigestQuery>;
    fn handle(&mut self, _: DigestQuery, _: &mut Self::Context) -> Self::Result {
        MessageResult((
            self.tree.digest(),
            self.tree.last_applied().0,
            self.tree.node_count(),
        ))
    }
}
