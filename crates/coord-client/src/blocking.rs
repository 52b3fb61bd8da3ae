//! The synchronous facade: the same API as [`crate::Client`], each call blocking the calling
//! thread. The client owns a small tokio runtime (one worker thread) that runs its session.
//!
//! Do not call these methods from inside an async task (they block and would panic there);
//! use the async [`crate::Client`] instead.

use crate::client;
use crate::config::ClientConfig;
use crate::error::Error;
use crate::options::CreateOptions;
use crate::session::SessionState;
use coord_proto::{
    Acl, AddWatchMode, ErrorCode, MultiOp, MultiResult, ReadOp, ReadResult, Stat, WatchedEvent,
    WatcherKind,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Owns the runtime; never blocks when dropped (a runtime dropped inside another runtime's
/// task would panic, so it is shut down in the background).
struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.0 {
            Some(rt) => rt.block_on(f),
            // Only `Drop` takes the runtime out, and nothing runs after it.
            None => unreachable!("runtime used after drop"),
        }
    }

    /// Like `block_on` with a time limit. The timer is made inside the runtime: outside of it,
    /// tokio's timer constructor panics.
    fn block_on_timeout<F: Future>(
        &self,
        timeout: Duration,
        f: F,
    ) -> Result<F::Output, tokio::time::error::Elapsed> {
        self.block_on(async move { tokio::time::timeout(timeout, f).await })
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct Session {
    client: client::Client,
    rt: Arc<Rt>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // End the session cleanly while the runtime still runs, unless we are inside an
        // async context where blocking is not allowed.
        if self.client.state().is_alive() && tokio::runtime::Handle::try_current().is_err() {
            let _ = self
                .rt
                .block_on_timeout(Duration::from_secs(2), self.client.close());
        }
    }
}

/// A blocking subscription to a session's events.
pub struct SessionEvents {
    inner: client::SessionEvents,
    rt: Arc<Rt>,
}

impl SessionEvents {
    /// The next event, waiting at most `timeout`; `None` when none came in time or the
    /// session ended and every event was taken.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<crate::SessionEvent> {
        let inner = &mut self.inner;
        self.rt
            .block_on_timeout(timeout, inner.recv())
            .ok()
            .flatten()
    }
    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<crate::SessionEvent> {
        self.inner.try_recv()
    }
}

/// A blocking one-shot watch.
pub struct Watch {
    inner: Option<client::Watch>,
    rt: Arc<Rt>,
}

impl Watch {
    /// Waits up to `timeout` for the event. `OperationTimeout` if it did not come (the watch
    /// stays armed: call again); `SessionExpired` / `ApiError` if the session ended.
    pub fn wait(&mut self, timeout: Duration) -> Result<WatchedEvent, Error> {
        let Some(watch) = self.inner.as_mut() else {
            return Err(Error::with_message(
                ErrorCode::ApiError,
                "the watch has already fired",
            ));
        };
        match self.rt.block_on_timeout(timeout, watch) {
            Ok(result) => {
                self.inner = None;
                result
            }
            Err(_) => Err(Error::with_message(
                ErrorCode::OperationTimeout,
                "no event yet",
            )),
        }
    }

    /// Waits for the event with no time limit.
    pub fn wait_forever(mut self) -> Result<WatchedEvent, Error> {
        match self.inner.take() {
            Some(watch) => self.rt.block_on(watch),
            None => Err(Error::with_message(
                ErrorCode::ApiError,
                "the watch has already fired",
            )),
        }
    }
}

/// A blocking persistent watch; also an iterator of its events.
pub struct PersistentWatch {
    inner: client::PersistentWatch,
    rt: Arc<Rt>,
}

impl PersistentWatch {
    /// The next event, or `None` once the watch has ended.
    pub fn recv(&mut self) -> Option<WatchedEvent> {
        self.rt.block_on(self.inner.recv())
    }

    /// The next event within `timeout`: `Ok(None)` once the watch has ended,
    /// `OperationTimeout` if no event came in time.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<WatchedEvent>, Error> {
        self.rt
            .block_on_timeout(timeout, self.inner.recv())
            .map_err(|_| Error::with_message(ErrorCode::OperationTimeout, "no event yet"))
    }
}

impl Iterator for PersistentWatch {
    type Item = WatchedEvent;
    fn next(&mut self) -> Option<WatchedEvent> {
        self.recv()
    }
}

/// A blocking session handle; cheap to clone. Dropping the last clone closes the session.
#[derive(Clone)]
pub struct Client {
    s: Arc<Session>,
    /// The async handle calls go through (the session's, with this handle's read mode).
    client: client::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.client.fmt(f)
    }
}

impl Client {
    /// Connects a new session (see [`crate::Client::connect`]).
    pub fn connect(cfg: ClientConfig) -> Result<Client, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("coord-client")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::with_message(
                    ErrorCode::SystemError,
                    format!("cannot start the client runtime: {e}"),
                )
            })?;
        let rt = Arc::new(Rt(Some(rt)));
        let client = rt.block_on(client::Client::connect(cfg))?;
        Ok(Client {
            client: client.clone(),
            s: Arc::new(Session { client, rt }),
        })
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.s.rt.block_on(f)
    }

    fn watch(&self, w: client::Watch) -> Watch {
        Watch {
            inner: Some(w),
            rt: self.s.rt.clone(),
        }
    }

    /// The async client this one wraps (its futures must run on this client's runtime, e.g.
    /// through [`Client::block_on`]).
    pub fn as_async(&self) -> &client::Client {
        &self.client
    }

    /// Runs a future on the client's runtime, blocking until it completes.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.run(f)
    }

    /// A handle to the same session whose reads are served in `mode` (see
    /// [`crate::Client::with_read_mode`]).
    pub fn with_read_mode(&self, mode: crate::ReadMode) -> Client {
        Client {
            s: self.s.clone(),
            client: self.client.with_read_mode(mode),
        }
    }

    /// See [`crate::Client::check_sequencer`].
    pub fn check_sequencer(&self, sequencer: &[u8]) -> Result<bool, Error> {
        self.run(self.client.check_sequencer(sequencer))
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.client.session_id()
    }
    /// The session password.
    pub fn session_password(&self) -> Vec<u8> {
        self.client.session_password()
    }
    /// The negotiated session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.client.session_timeout()
    }
    /// The current session state.
    pub fn state(&self) -> SessionState {
        self.client.state()
    }
    /// Blocks until the state differs from `current` or `timeout` passes; returns the state.
    pub fn wait_state_change(&self, current: SessionState, timeout: Duration) -> SessionState {
        let mut rx = self.client.state_events();
        let _ = self
            .s
            .rt
            .block_on_timeout(timeout, rx.wait_for(|s| *s != current));
        self.state()
    }
    /// A new subscription to the session's events (see [`crate::Client::session_events`]).
    pub fn session_events(&self) -> SessionEvents {
        SessionEvents {
            inner: self.client.session_events(),
            rt: self.s.rt.clone(),
        }
    }
    /// The highest zxid seen in any reply.
    pub fn last_zxid(&self) -> u64 {
        self.client.last_zxid()
    }
    /// Calls `f` with every watch event (from the client's runtime thread).
    pub fn set_default_watcher(&self, f: impl Fn(WatchedEvent) + Send + Sync + 'static) {
        self.client.set_default_watcher(f)
    }

    /// See [`crate::Client::create`].
    pub fn create(&self, path: &str, data: &[u8], opts: CreateOptions) -> Result<String, Error> {
        self.run(self.client.create(path, data, opts))
    }
    /// See [`crate::Client::create2`].
    pub fn create2(
        &self,
        path: &str,
        data: &[u8],
        opts: CreateOptions,
    ) -> Result<(String, Stat), Error> {
        self.run(self.client.create2(path, data, opts))
    }
    /// See [`crate::Client::delete`].
    pub fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        self.run(self.client.delete(path, version))
    }
    /// See [`crate::Client::exists`].
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        self.run(self.client.exists(path))
    }
    /// See [`crate::Client::exists_w`].
    pub fn exists_w(&self, path: &str) -> Result<(Option<Stat>, Watch), Error> {
        let (stat, w) = self.run(self.client.exists_w(path))?;
        Ok((stat, self.watch(w)))
    }
    /// See [`crate::Client::get_data`].
    pub fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        self.run(self.client.get_data(path))
    }
    /// See [`crate::Client::get_data_w`].
    pub fn get_data_w(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), Error> {
        let (data, stat, w) = self.run(self.client.get_data_w(path))?;
        Ok((data, stat, self.watch(w)))
    }
    /// See [`crate::Client::set_data`].
    pub fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, Error> {
        self.run(self.client.set_data(path, data, version))
    }
    /// See [`crate::Client::get_children`].
    pub fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        self.run(self.client.get_children(path))
    }
    /// See [`crate::Client::get_children_w`].
    pub fn get_children_w(&self, path: &str) -> Result<(Vec<String>, Stat, Watch), Error> {
        let (children, stat, w) = self.run(self.client.get_children_w(path))?;
        Ok((children, stat, self.watch(w)))
    }
    /// See [`crate::Client::get_acl`].
    pub fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        self.run(self.client.get_acl(path))
    }
    /// See [`crate::Client::set_acl`].
    pub fn set_acl(&self, path: &str, acl: &[Acl], version: Option<i32>) -> Result<Stat, Error> {
        self.run(self.client.set_acl(path, acl, version))
    }
    /// See [`crate::Client::get_ephemerals`].
    pub fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.run(self.client.get_ephemerals(prefix))
    }
    /// See [`crate::Client::get_all_children_number`].
    pub fn get_all_children_number(&self, path: &str) -> Result<u64, Error> {
        self.run(self.client.get_all_children_number(path))
    }
    /// See [`crate::Client::sync`].
    pub fn sync(&self, path: &str) -> Result<(), Error> {
        self.run(self.client.sync(path))
    }
    /// See [`crate::Client::multi`].
    pub fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, Error> {
        self.run(self.client.multi(ops))
    }
    /// See [`crate::Client::multi_read`].
    pub fn multi_read(&self, ops: Vec<ReadOp>) -> Result<Vec<ReadResult>, Error> {
        self.run(self.client.multi_read(ops))
    }
    /// See [`crate::Client::add_watch`].
    pub fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch, Error> {
        let inner = self.run(self.client.add_watch(path, mode))?;
        Ok(PersistentWatch {
            inner,
            rt: self.s.rt.clone(),
        })
    }
    /// See [`crate::Client::remove_watches`].
    pub fn remove_watches(&self, path: &str, kind: WatcherKind) -> Result<(), Error> {
        self.run(self.client.remove_watches(path, kind))
    }
    /// See [`crate::Client::add_auth`].
    pub fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        self.run(self.client.add_auth(scheme, auth))
    }
    /// See [`crate::Client::close`].
    pub fn close(&self) -> Result<(), Error> {
        self.run(self.client.close())
    }
}
