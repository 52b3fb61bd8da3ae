//! The async client: a cheap, cloneable handle to one session.

use crate::config::ClientConfig;
use crate::error::Error;
use crate::options::{CreateOptions, check_op, check_path};
use crate::session::{self, Command, SessionState, Shared, WatchSink};
use coord_proto::{
    ANY_VERSION, Acl, AddWatchMode, ErrorCode, MultiOp, MultiResult, ReadOp, ReadResult, Request,
    Response, Stat, WatchedEvent, WatcherKind,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The requests a [`ReadMode::Linearizable`] handle fences.
fn is_read(request: &Request) -> bool {
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
    )
}

fn version(v: Option<i32>) -> i32 {
    v.unwrap_or(ANY_VERSION)
}

/// A one-shot watch: resolves with the event that fired it, or with an error once the session
/// expires (`SessionExpired`) or the client is closed (`ApiError`). Removing it with
/// [`Client::remove_watches`] resolves it with a `*WatchRemoved` event.
pub struct Watch {
    rx: oneshot::Receiver<Result<WatchedEvent, Error>>,
    shared: Arc<Shared>,
}

impl Future for Watch {
    type Output = Result<WatchedEvent, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.shared.ended_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A persistent (or persistent-recursive) watch: a stream of events that ends after its
/// `PersistentWatchRemoved` event, or when the session expires or the client is closed.
///
/// While the session lives it yields every change it matches after the `add_watch` reply,
/// once each and in zxid order, reconnects included: the server the session reconnects to
/// replays what was missed meanwhile, and the client drops what it had already received.
///
/// A server keeps only the last 10,000 or so changes for that replay. When the session was
/// away longer than that covers, the server cannot replay and does not re-register the watch:
/// the stream yields `PersistentWatchRemoved` with a nonzero zxid (the server's last applied
/// zxid; the removal notice of [`Client::remove_watches`] has zxid 0) and ends. Changes may
/// have been missed: add the watch again, then re-read the state it covers (in that order,
/// so that no change falls between the read and the new watch).
pub struct PersistentWatch {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl PersistentWatch {
    /// The next event, or `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }
}

impl futures::Stream for PersistentWatch {
    type Item = WatchedEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

struct Inner {
    cmds: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

/// A subscription to a session's events (see [`Client::session_events`]).
#[derive(Debug)]
pub struct SessionEvents {
    rx: mpsc::UnboundedReceiver<crate::SessionEvent>,
}

impl SessionEvents {
    /// The next event; `None` once the session ended and every event was taken.
    pub async fn recv(&mut self) -> Option<crate::SessionEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<crate::SessionEvent> {
        self.rx.try_recv().ok()
    }
}

/// A session with a Coord ensemble. Cloning is cheap; every clone shares the one connection,
/// and requests from all of them are pipelined on it. Dropping the last clone closes the
/// session (as [`Client::close`] does).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    read_mode: ReadMode,
}

/// How a client's reads are served (see [`Client::with_read_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadMode {
    /// From the connected server's tree, as ZooKeeper does: never older than what this
    /// session has seen, but possibly behind writes other sessions had acknowledged.
    #[default]
    Local,
    /// Linearizable: every read sees every write acknowledged (to any session) before the
    /// read was sent. Each read is preceded by a [`Request::ReadIndex`] fence: the server
    /// answers once it has applied a commit zxid the leader confirmed with a quorum after the
    /// fence arrived; reads waiting together share one confirmation. Costs one round trip
    /// from the connected server to the leader and from the leader to a quorum, no disk write.
    Linearizable,
    /// From this session's cache (Chubby's), with no round trip while an entry's lease lasts;
    /// never staler than a [`ReadMode::Linearizable`] read. `exists`, `get_data` and
    /// `get_children` without a watch are cached: a miss is a `CacheFence` (a linearizable
    /// fence that registers the node with the leader for a lease, a third of the session
    /// timeout at most) and the read, pipelined. The leader makes every server wait, before
    /// applying a write to a cached node, until this session dropped the entry or its lease
    /// ran out. Other reads, and reads with a watch, are linearizable. The cache is dropped on
    /// `Jeopardy` and `LeaderFailedOver`; a read-only connection refuses it (`NotReadOnly`).
    Cached,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format_args!("0x{:x}", self.session_id()))
            .field("state", &self.state())
            .finish()
    }
}

impl Client {
    /// Connects a new session to one of `cfg.servers`, trying them in random order until one
    /// accepts or `cfg.connect_timeout` has passed.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, Error> {
        let read_mode = if cfg.cache {
            ReadMode::Cached
        } else {
            ReadMode::Local
        };
        let (shared, cmds) = session::connect(cfg).await?;
        Ok(Client {
            inner: Arc::new(Inner { cmds, shared }),
            read_mode,
        })
    }

    /// This session's cache counts (reads served from it, misses, invalidations).
    pub fn cache_stats(&self) -> crate::CacheStats {
        self.inner.shared.cache.stats()
    }

    /// A handle to the same session whose reads (exists, get_data, get_children, get_acl,
    /// get_ephemerals, get_all_children_number, multi_read) are served in `mode`. Cheap; the
    /// original handle keeps its own mode.
    pub fn with_read_mode(&self, mode: ReadMode) -> Client {
        Client {
            inner: self.inner.clone(),
            read_mode: mode,
        }
    }

    /// The read mode of this handle.
    pub fn read_mode(&self) -> ReadMode {
        self.read_mode
    }

    /// Whether `sequencer` (from a lock recipe, see [`coord_proto::Sequencer`]) still names a
    /// held lock: its node exists with the sequencer's czxid and is owned by the sequencer's
    /// session. The answer is linearizable whatever this handle's read mode. `BadArguments`
    /// when the bytes are not a sequencer (truncated, garbled, unknown version).
    pub async fn check_sequencer(&self, sequencer: &[u8]) -> Result<bool, Error> {
        crate::options::check_sequencer(sequencer)?;
        let request = Request::CheckSequencer {
            sequencer: sequencer.to_vec(),
        };
        match self
            .with_read_mode(ReadMode::Linearizable)
            .call(request, None)
            .await?
        {
            Response::Sequencer { valid } => Ok(valid),
            _ => Err(Error::unexpected_reply("check_sequencer")),
        }
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.inner.shared.session_id.load(Ordering::Relaxed)
    }

    /// The session password (resumes the session on another connection).
    pub fn session_password(&self) -> Vec<u8> {
        self.inner.shared.password.lock().clone()
    }

    /// The session timeout the server negotiated.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.shared.timeout_ms.load(Ordering::Relaxed))
    }

    /// Whether the session is connected to a server in read-only mode (one cut off from
    /// the quorum; see [`crate::ClientConfig::read_only`]): reads are served from that
    /// server's tree, which may be behind the majority; writes, `sync` and linearizable
    /// reads fail with `NotReadOnly`. The client moves to a read-write server as soon as it
    /// finds one.
    pub fn is_read_only(&self) -> bool {
        self.inner.shared.read_only.load(Ordering::Relaxed)
    }

    /// The current session state.
    pub fn state(&self) -> SessionState {
        *self.inner.shared.state.borrow()
    }

    /// A receiver of every state change (`changed().await`, then `borrow()`).
    pub fn state_events(&self) -> watch::Receiver<SessionState> {
        self.inner.shared.state.subscribe()
    }

    /// A new subscription to this session's events ([`crate::SessionEvent`]: jeopardy, safe,
    /// expired, leader failed over, ...), each delivered once, in order, from the moment of
    /// subscribing.
    pub fn session_events(&self) -> SessionEvents {
        SessionEvents {
            rx: self.inner.shared.subscribe(),
        }
    }

    /// The highest zxid this session has seen: the server's last zxid when the session was
    /// created, then any reply's.
    pub fn last_zxid(&self) -> u64 {
        self.inner.shared.last_zxid.load(Ordering::Relaxed)
    }

    /// Calls `f` with every watch event this client receives, in order, from the session
    /// task (keep it short; it must not block). Replaces any previous callback. An event
    /// the server replays after a reconnect that this client had already received is not
    /// passed again.
    pub fn set_default_watcher(&self, f: impl Fn(WatchedEvent) + Send + Sync + 'static) {
        *self.inner.shared.default_watcher.lock() = Some(Arc::new(f));
    }

    /// Calls `f` with the zxid of every reply to a call of this client (successful or not),
    /// from the session task, in the order frames arrive and interleaved in that order with
    /// the calls of [`Client::set_default_watcher`]; for a history recorder that needs each
    /// reply's zxid and where events fell between replies. Internal requests (pings, watch
    /// re-registration) are not reported. Keep `f` short; it must not block. Replaces any
    /// previous observer.
    pub fn set_reply_observer(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        *self.inner.shared.reply_observer.lock() = Some(Arc::new(f));
    }

    async fn call(&self, request: Request, watch: Option<WatchSink>) -> Result<Response, Error> {
        let shared = &self.inner.shared;
        if !shared.state.borrow().is_alive() {
            return Err(shared.ended_error());
        }
        if self.read_mode == ReadMode::Cached
            && let Some((kind, path)) = crate::cache::key(&request)
        {
            let path = path.to_string();
            return self.cached_call(kind, path, request).await;
        }
        // A linearizable read is a fence and the read, pipelined: the session's FIFO order
        // holds the read until the fence is answered, so it costs no extra round trip.
        let fence = if self.read_mode != ReadMode::Local && is_read(&request) {
            Some(self.send(Request::ReadIndex, None)?)
        } else {
            None
        };
        let rx = self.send(request, watch)?;
        if let Some(fence) = fence {
            fence.await.map_err(|_| shared.ended_error())??;
        }
        rx.await.map_err(|_| shared.ended_error())?
    }

    /// A cacheable read in [`ReadMode::Cached`]: from the cache, or a `CacheFence` and the
    /// read, pipelined, whose answer is cached for the lease the fence granted.
    async fn cached_call(
        &self,
        kind: crate::cache::Kind,
        path: String,
        request: Request,
    ) -> Result<Response, Error> {
        let shared = &self.inner.shared;
        let cache = &shared.cache;
        if let Some(hit) = cache.get(kind, &path, tokio::time::Instant::now()) {
            return Ok(hit);
        }
        // Registered before the fence leaves: an invalidation that overtakes the answer
        // spoils it.
        let ticket = cache.begin(&path);
        let sent = tokio::time::Instant::now();
        let fence = self.send(Request::CacheFence { path }, None)?;
        let rx = self.send(request, None)?;
        let lease = fence.await.map_err(|_| shared.ended_error())??;
        let response = rx.await.map_err(|_| shared.ended_error())??;
        if let Response::CacheLease { lease_ms } = lease
            && lease_ms > 0
        {
            cache.finish(
                ticket,
                kind,
                &response,
                sent + crate::cache::usable(lease_ms),
            );
        }
        Ok(response)
    }

    fn send(
        &self,
        request: Request,
        watch: Option<WatchSink>,
    ) -> Result<oneshot::Receiver<Result<Response, Error>>, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmds
            .send(Command::Call {
                request,
                watch,
                reply,
            })
            .map_err(|_| self.inner.shared.ended_error())?;
        Ok(rx)
    }

    fn watch(&self) -> (WatchSink, Watch) {
        let (tx, rx) = oneshot::channel();
        (
            WatchSink::OneShot(tx),
            Watch {
                rx,
                shared: self.inner.shared.clone(),
            },
        )
    }

    /// Creates a node; returns its path (with the sequence suffix for sequential nodes).
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        opts: CreateOptions,
    ) -> Result<String, Error> {
        Ok(self.create2(path, data, opts).await?.0)
    }

    /// Creates a node; returns its path and Stat.
    pub async fn create2(
        &self,
        path: &str,
        data: &[u8],
        opts: CreateOptions,
    ) -> Result<(String, Stat), Error> {
        let (mode, ttl_ms) = opts.resolve()?;
        check_path(path, mode.is_sequential())?;
        let request = Request::Create {
            path: path.to_string(),
            data: data.to_vec(),
            acl: opts.acl,
            mode,
            ttl_ms,
        };
        match self.call(request, None).await? {
            Response::Create { path, stat } => Ok((path, stat)),
            _ => Err(Error::unexpected_reply("create")),
        }
    }

    /// Deletes a node if its version is `version` (any version with `None`).
    pub async fn delete(&self, path: &str, version_: Option<i32>) -> Result<(), Error> {
        check_path(path, false)?;
        let request = Request::Delete {
            path: path.to_string(),
            version: version(version_),
        };
        match self.call(request, None).await? {
            Response::Empty => Ok(()),
            _ => Err(Error::unexpected_reply("delete")),
        }
    }

    /// The Stat of a node, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::Exists {
                    path: path.to_string(),
                    watch: false,
                },
                None,
            )
            .await?
        {
            Response::Exists { stat } => Ok(stat),
            _ => Err(Error::unexpected_reply("exists")),
        }
    }

    /// Like [`Client::exists`], leaving a watch that fires when the node is created, changed
    /// or deleted.
    pub async fn exists_w(&self, path: &str) -> Result<(Option<Stat>, Watch), Error> {
        check_path(path, false)?;
        let (sink, watch) = self.watch();
        match self
            .call(
                Request::Exists {
                    path: path.to_string(),
                    watch: true,
                },
                Some(sink),
            )
            .await?
        {
            Response::Exists { stat } => Ok((stat, watch)),
            _ => Err(Error::unexpected_reply("exists")),
        }
    }

    /// A node's data and Stat.
    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::GetData {
                    path: path.to_string(),
                    watch: false,
                },
                None,
            )
            .await?
        {
            Response::Data { data, stat } => Ok((data, stat)),
            _ => Err(Error::unexpected_reply("get_data")),
        }
    }

    /// Like [`Client::get_data`], leaving a watch that fires when the data changes or the node
    /// is deleted.
    pub async fn get_data_w(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), Error> {
        check_path(path, false)?;
        let (sink, watch) = self.watch();
        match self
            .call(
                Request::GetData {
                    path: path.to_string(),
                    watch: true,
                },
                Some(sink),
            )
            .await?
        {
            Response::Data { data, stat } => Ok((data, stat, watch)),
            _ => Err(Error::unexpected_reply("get_data")),
        }
    }

    /// Replaces a node's data if its version is `version` (any with `None`); returns the new
    /// Stat.
    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version_: Option<i32>,
    ) -> Result<Stat, Error> {
        check_path(path, false)?;
        let request = Request::SetData {
            path: path.to_string(),
            data: data.to_vec(),
            version: version(version_),
        };
        match self.call(request, None).await? {
            Response::Stat { stat } => Ok(stat),
            _ => Err(Error::unexpected_reply("set_data")),
        }
    }

    /// The names of a node's children (sorted) and the node's Stat.
    pub async fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::GetChildren {
                    path: path.to_string(),
                    watch: false,
                },
                None,
            )
            .await?
        {
            Response::Children { children, stat } => Ok((children, stat)),
            _ => Err(Error::unexpected_reply("get_children")),
        }
    }

    /// Like [`Client::get_children`], leaving a watch that fires when a child is created or
    /// deleted, or the node is deleted.
    pub async fn get_children_w(&self, path: &str) -> Result<(Vec<String>, Stat, Watch), Error> {
        check_path(path, false)?;
        let (sink, watch) = self.watch();
        match self
            .call(
                Request::GetChildren {
                    path: path.to_string(),
                    watch: true,
                },
                Some(sink),
            )
            .await?
        {
            Response::Children { children, stat } => Ok((children, stat, watch)),
            _ => Err(Error::unexpected_reply("get_children")),
        }
    }

    /// A node's ACL and Stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::GetAcl {
                    path: path.to_string(),
                },
                None,
            )
            .await?
        {
            Response::Acl { acl, stat } => Ok((acl, stat)),
            _ => Err(Error::unexpected_reply("get_acl")),
        }
    }

    /// Replaces a node's ACL if its ACL version is `version` (any with `None`).
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version_: Option<i32>,
    ) -> Result<Stat, Error> {
        check_path(path, false)?;
        let request = Request::SetAcl {
            path: path.to_string(),
            acl: acl.to_vec(),
            version: version(version_),
        };
        match self.call(request, None).await? {
            Response::Stat { stat } => Ok(stat),
            _ => Err(Error::unexpected_reply("set_acl")),
        }
    }

    /// Paths of this session's ephemeral nodes under `prefix` ("/" for all).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        check_path(prefix, false)?;
        match self
            .call(
                Request::GetEphemerals {
                    prefix: prefix.to_string(),
                },
                None,
            )
            .await?
        {
            Response::Paths { paths } => Ok(paths),
            _ => Err(Error::unexpected_reply("get_ephemerals")),
        }
    }

    /// The number of descendants of a node.
    pub async fn get_all_children_number(&self, path: &str) -> Result<u64, Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::GetAllChildrenNumber {
                    path: path.to_string(),
                },
                None,
            )
            .await?
        {
            Response::Count { count } => Ok(count),
            _ => Err(Error::unexpected_reply("get_all_children_number")),
        }
    }

    /// Waits until the connected server has applied everything committed before the call;
    /// a read after it sees the latest state.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::Sync {
                    path: path.to_string(),
                },
                None,
            )
            .await?
        {
            Response::Sync { .. } => Ok(()),
            _ => Err(Error::unexpected_reply("sync")),
        }
    }

    /// Applies `ops` atomically. On failure the error's code is the failing op's and
    /// [`Error::results`] has a result per op.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, Error> {
        for op in &ops {
            check_op(op)?;
        }
        match self.call(Request::Multi { ops }, None).await? {
            Response::Multi { results } => Ok(results),
            _ => Err(Error::unexpected_reply("multi")),
        }
    }

    /// Several reads at one point in time; each result is data, children or an error.
    pub async fn multi_read(&self, ops: Vec<ReadOp>) -> Result<Vec<ReadResult>, Error> {
        for op in &ops {
            match op {
                ReadOp::GetData { path } | ReadOp::GetChildren { path } => check_path(path, false)?,
            }
        }
        match self.call(Request::MultiRead { ops }, None).await? {
            Response::MultiRead { results } => Ok(results),
            _ => Err(Error::unexpected_reply("multi_read")),
        }
    }

    /// Adds a persistent or persistent-recursive watch on `path`; it stays until removed
    /// with [`Client::remove_watches`] (`WatcherKind::Any`) and survives reconnects without
    /// a gap, or ends with a `PersistentWatchRemoved` event when the server cannot replay
    /// what a reconnect missed (see [`PersistentWatch`]).
    pub async fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> Result<PersistentWatch, Error> {
        check_path(path, false)?;
        let (tx, rx) = mpsc::unbounded_channel();
        match self
            .call(
                Request::AddWatch {
                    path: path.to_string(),
                    mode,
                },
                Some(WatchSink::Stream(tx)),
            )
            .await?
        {
            Response::Empty => Ok(PersistentWatch { rx }),
            _ => Err(Error::unexpected_reply("add_watch")),
        }
    }

    /// Removes this session's watches of `kind` on `path`; local waiters receive a
    /// `*WatchRemoved` event. `NoWatcher` if the server held none.
    pub async fn remove_watches(&self, path: &str, kind: WatcherKind) -> Result<(), Error> {
        check_path(path, false)?;
        match self
            .call(
                Request::RemoveWatches {
                    path: path.to_string(),
                    kind,
                },
                None,
            )
            .await?
        {
            Response::Empty => Ok(()),
            _ => Err(Error::unexpected_reply("remove_watches")),
        }
    }

    /// Adds an identity to the session (`digest`, `user:password`); remembered and re-sent
    /// after every reconnect.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        if scheme.is_empty() {
            return Err(Error::with_message(
                ErrorCode::BadArguments,
                "empty auth scheme",
            ));
        }
        match self
            .call(
                Request::AddAuth {
                    scheme: scheme.to_string(),
                    auth: auth.to_vec(),
                },
                None,
            )
            .await?
        {
            Response::Empty => Ok(()),
            _ => Err(Error::unexpected_reply("add_auth")),
        }
    }

    /// Ends the session (its ephemeral nodes are deleted) and the connection. Every later
    /// call fails with `ApiError` ("the client is closed"); closing twice is fine.
    pub async fn close(&self) -> Result<(), Error> {
        if !self.state().is_alive() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        if self.inner.cmds.send(Command::Close { reply }).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}
