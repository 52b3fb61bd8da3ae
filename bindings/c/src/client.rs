//! The client handle: connect and close, the callback thread, the plumbing that runs calls
//! (`Inner::run` for blocking ones, `Inner::spawn` for async ones, `Inner::arm` for
//! watches), session events, and `coord_server_status`.

use crate::ffi::*;
use crate::multi::{coord_op_result, op_result};
use crate::ops::{COORD_READ_CACHED, COORD_READ_LINEARIZABLE};
use ::coord_client as cc;
use cc::{EventType, ReadMode};
use crossbeam_channel::{Receiver, Sender};
use parking::Mutex;
use std::ffi::{CString, c_char, c_int, c_void};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// std's mutex, poison ignored: a panic was already turned into `COORD_EPANIC`, and the
/// guarded values (an `Option` taken once) stay consistent.
mod parking {
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Mutex<T> {
            Mutex(std::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }
}

/// What happened to a session (Chubby's names), passed to the session callback.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum coord_session_event {
    /// The session was established (always the first event).
    COORD_SESSION_CONNECTED = 1,
    /// The connection was lost; the session may still live. Stop trusting held locks.
    COORD_SESSION_JEOPARDY = 2,
    /// The session was resumed within its lifetime: what it held is still its own.
    COORD_SESSION_SAFE = 3,
    /// The session is gone (ephemerals deleted); every later call fails.
    COORD_SESSION_EXPIRED = 4,
    /// The client was closed (the last event of a closed client).
    COORD_SESSION_CLOSED = 5,
    /// A server refused the session's credentials.
    COORD_SESSION_AUTH_FAILED = 6,
    /// The ensemble's leader changed since the session last connected.
    COORD_SESSION_LEADER_FAILED_OVER = 7,
}

/// What a watch reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum coord_event_type {
    /// The watch will never fire: the session expired or the client was closed.
    COORD_EVENT_LOST = -1,
    /// The node was created.
    COORD_EVENT_CREATED = 1,
    /// The node was deleted.
    COORD_EVENT_DELETED = 2,
    /// The node's data changed.
    COORD_EVENT_CHANGED = 3,
    /// A child was created or deleted.
    COORD_EVENT_CHILD = 4,
    /// A data watch was removed.
    COORD_EVENT_DATA_WATCH_REMOVED = 5,
    /// A child watch was removed.
    COORD_EVENT_CHILD_WATCH_REMOVED = 6,
    /// A persistent watch was removed.
    COORD_EVENT_PERSISTENT_WATCH_REMOVED = 7,
}

/// Called on the callback thread with each session event.
pub type coord_session_cb = Option<extern "C" fn(event: coord_session_event, ctx: *mut c_void)>;
/// Called once on the callback thread when a one-shot watch fires (or is lost); `path` is
/// borrowed for the call only.
pub type coord_watch_cb =
    Option<extern "C" fn(event: coord_event_type, path: *const c_char, ctx: *mut c_void)>;
type WatchFn = extern "C" fn(event: coord_event_type, path: *const c_char, ctx: *mut c_void);
/// Called once on the callback thread when an async call completes; `result` (and everything
/// it points to) is borrowed for the call only, NULL when `rc` is not `COORD_OK`.
pub type coord_completion =
    Option<extern "C" fn(rc: coord_rc, result: *const coord_result, ctx: *mut c_void)>;
type CompletionFn = extern "C" fn(rc: coord_rc, result: *const coord_result, ctx: *mut c_void);

/// How to connect. Zero-initialise it (`coord_options o = {0};`) and set what you need.
#[repr(C)]
#[derive(Debug)]
pub struct coord_options {
    /// The cluster CA (PEM file); NULL: the `COORD_CA` environment variable.
    pub ca_path: *const c_char,
    /// Requested session timeout in ms; 0: 10000.
    pub session_timeout_ms: u32,
    /// Bound on connecting in ms; 0: 5000.
    pub connect_timeout_ms: u32,
    /// Accept read-only servers.
    pub read_only: bool,
    /// Serve reads from the session's cache (Chubby's): `coord_exists`, `coord_get` and
    /// `coord_children` (and their async forms) with `read_flags` 0 read as with
    /// `COORD_READ_CACHED`. Never staler than a linearizable read; see `coord_cache_stats`.
    /// A read-only server refuses cached reads that miss (`COORD_ENOTREADONLY`).
    pub cache: bool,
    /// Session-event callback (NULL: none), called on the callback thread.
    pub session_cb: coord_session_cb,
    /// Passed to `session_cb`.
    pub session_ctx: *mut c_void,
    /// This client's certificate (PEM file), for servers that ask for one (`[tls]
    /// client_auth`; make one with `coordd cert client`): its subject (`CN=NAME`) is then
    /// the session's `x509` identity. NULL: the `COORD_CERT` environment variable, if set.
    pub cert_path: *const c_char,
    /// The certificate's private key (PEM file); NULL: `COORD_KEY`. Give both or neither.
    pub key_path: *const c_char,
}

/// The result of an async call, borrowed for the duration of its completion callback (copy
/// out what you keep). NULL when `rc` is not `COORD_OK`, except for `coord_amulti`, whose
/// per-op `results` are given also when an op failed.
#[repr(C)]
#[derive(Debug)]
pub struct coord_result {
    /// The created path (`coord_acreate`), else NULL.
    pub path: *const c_char,
    /// The node's data (`coord_aget`), else NULL.
    pub data: *const u8,
    /// Length of `data`.
    pub data_len: usize,
    /// The children (`coord_achildren`), else NULL.
    pub children: *const *const c_char,
    /// How many children.
    pub children_count: usize,
    /// The ACL (`coord_aget_acl`), else NULL.
    pub acl: *const coord_acl,
    /// How many ACL entries.
    pub acl_count: usize,
    /// One result per op (`coord_amulti`), else NULL; their paths are borrowed too.
    pub results: *const coord_op_result,
    /// How many op results.
    pub results_count: usize,
    /// Whether the sequencer names a held lock (`coord_acheck_sequencer`).
    pub valid: bool,
    /// Whether `stat` is filled (create, exists, get, set, children, get/set ACL).
    pub has_stat: bool,
    /// The node's Stat.
    pub stat: coord_stat,
}

/// An opaque client (one session). Create with `coord_connect`, end with `coord_close`.
/// Every function may be called on one handle from many threads at once.
pub struct coord_client {
    pub(crate) inner: Arc<Inner>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A caller's `void *ctx`: the library never reads it, only hands it back on the callback
/// thread, so sending it across threads is the caller's documented contract.
#[derive(Clone, Copy)]
pub(crate) struct Ctx(pub(crate) *mut c_void);
// SAFETY: see the type's doc; the pointer is never dereferenced by the library.
unsafe impl Send for Ctx {}

pub(crate) struct Inner {
    pub(crate) client: cc::Client,
    handle: tokio::runtime::Handle,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    closed: AtomicBool,
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    events: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// Runs a call to completion on the runtime, from the calling (C) thread.
    pub(crate) fn run<F: Future>(&self, f: F) -> Result<F::Output, coord_rc> {
        if self.closed.load(Ordering::Acquire) {
            return Err(coord_rc::COORD_EAPIERROR);
        }
        Ok(self.handle.block_on(f))
    }

    fn sender(&self) -> Result<Sender<Job>, coord_rc> {
        self.jobs.lock().clone().ok_or(coord_rc::COORD_EAPIERROR)
    }

    pub(crate) fn reader(&self, flags: c_int) -> Result<cc::Client, coord_rc> {
        match flags {
            0 => Ok(self.client.clone()),
            COORD_READ_LINEARIZABLE => Ok(self.client.with_read_mode(ReadMode::Linearizable)),
            COORD_READ_CACHED => Ok(self.client.with_read_mode(ReadMode::Cached)),
            _ => Err(coord_rc::COORD_EBADARGUMENTS),
        }
    }

    /// Runs `f` on the runtime and hands its outcome to `cb` on the callback thread; if the
    /// task is dropped unfinished (client closed) `cb` still runs, with `COORD_EAPIERROR`.
    pub(crate) fn spawn<F>(&self, cb: CompletionFn, ctx: *mut c_void, f: F) -> CResult
    where
        F: Future<Output = Result<Done, cc::Error>> + Send + 'static,
    {
        self.spawn_outcome(cb, ctx, async move { f.await.map_err(|e| (rc(e), None)) })
    }

    /// `spawn` for a future that reports its own [`Outcome`] (multi: results on failure).
    pub(crate) fn spawn_outcome<F>(&self, cb: CompletionFn, ctx: *mut c_void, f: F) -> CResult
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(coord_rc::COORD_EAPIERROR);
        }
        let mut pending = Pending {
            cb,
            ctx: Ctx(ctx),
            tx: self.sender()?,
            done: false,
        };
        self.handle.spawn(async move {
            let outcome = f.await;
            pending.finish(outcome);
        });
        Ok(())
    }

    /// Waits for `w` on the runtime and calls `cb` once on the callback thread.
    pub(crate) fn arm(&self, w: cc::Watch, cb: WatchFn, ctx: *mut c_void) -> CResult {
        let mut g = WatchGuard {
            cb,
            ctx: Ctx(ctx),
            tx: self.sender()?,
            done: false,
        };
        self.handle.spawn(async move {
            match w.await {
                Ok(ev) => g.fire(event_type(ev.event_type), ev.path),
                Err(_) => g.fire(coord_event_type::COORD_EVENT_LOST, String::new()),
            }
        });
        Ok(())
    }

    /// Ends the session, the runtime and the callback thread (in that order, so every
    /// pending callback still runs).
    fn shutdown(&self) -> coord_rc {
        if self.closed.swap(true, Ordering::AcqRel) {
            return coord_rc::COORD_OK;
        }
        let closed = self.handle.block_on(self.client.close());
        if let Some(events) = self.events.lock().take() {
            // The forwarder ends after delivering Closed; bounded in case it never comes.
            let _ = self
                .handle
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), events).await });
        }
        if let Some(rt) = self.rt.lock().take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        drop(self.jobs.lock().take());
        if let Some(t) = self.thread.lock().take() {
            // From a callback, the thread is this one: it ends after this callback returns.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        match closed {
            Ok(()) => coord_rc::COORD_OK,
            Err(e) => rc(e),
        }
    }
}

/// What an async call produced, owned until its callback has run.
#[derive(Default)]
pub(crate) struct Done {
    pub(crate) path: Option<CString>,
    pub(crate) data: Vec<u8>,
    pub(crate) children: Vec<CString>,
    pub(crate) acl: Vec<cc::Acl>,
    pub(crate) results: Vec<cc::MultiResult>,
    pub(crate) valid: bool,
    pub(crate) stat: Option<cc::Stat>,
}

/// How an async call ended: its result, or a code and (multi only) a result anyway.
pub(crate) type Outcome = Result<Done, (coord_rc, Option<Done>)>;

/// A string for a callback; an interior NUL (impossible in znode paths) gives "".
pub(crate) fn cstr(s: String) -> CString {
    CString::new(s).unwrap_or_default()
}

fn nul_if_empty<T>(v: &[T]) -> *const T {
    if v.is_empty() {
        std::ptr::null()
    } else {
        v.as_ptr()
    }
}

/// Calls `cb` with `d` laid out as a `coord_result` that lives for the call.
fn deliver(cb: CompletionFn, code: coord_rc, d: Option<Done>, ctx: Ctx) {
    let Some(d) = d else {
        cb(code, std::ptr::null(), ctx.0);
        return;
    };
    let kids: Vec<*const c_char> = d.children.iter().map(|c| c.as_ptr()).collect();
    let acl_strings: Vec<(CString, CString)> = d
        .acl
        .iter()
        .map(|a| (cstr(a.id.scheme.clone()), cstr(a.id.id.clone())))
        .collect();
    let acl: Vec<coord_acl> = d
        .acl
        .iter()
        .zip(&acl_strings)
        .map(|(a, (scheme, id))| coord_acl {
            perms: a.perms,
            scheme: scheme.as_ptr(),
            id: id.as_ptr(),
        })
        .collect();
    let results: Vec<coord_op_result> = d.results.iter().cloned().map(op_result).collect();
    let r = coord_result {
        path: d.path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        data: nul_if_empty(&d.data),
        data_len: d.data.len(),
        children: nul_if_empty(&kids),
        children_count: kids.len(),
        acl: nul_if_empty(&acl),
        acl_count: acl.len(),
        results: nul_if_empty(&results),
        results_count: results.len(),
        valid: d.valid,
        has_stat: d.stat.is_some(),
        stat: d.stat.map(coord_stat::from).unwrap_or_default(),
    };
    cb(code, &r, ctx.0);
    for res in results {
        // SAFETY: each path is NULL or an `into_cstring` from `op_result`, freed once here.
        unsafe { crate::ffi::coord_string_free(res.path) };
    }
}

struct Pending {
    cb: CompletionFn,
    ctx: Ctx,
    tx: Sender<Job>,
    done: bool,
}

impl Pending {
    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        let (cb, ctx) = (self.cb, self.ctx);
        let _ = self.tx.send(Box::new(move || match outcome {
            Ok(d) => deliver(cb, coord_rc::COORD_OK, Some(d), ctx),
            Err((code, d)) => deliver(cb, code, d, ctx),
        }));
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Err((coord_rc::COORD_EAPIERROR, None)));
        }
    }
}

struct WatchGuard {
    cb: WatchFn,
    ctx: Ctx,
    tx: Sender<Job>,
    done: bool,
}

impl WatchGuard {
    fn fire(&mut self, ev: coord_event_type, path: String) {
        self.done = true;
        let (cb, ctx) = (self.cb, self.ctx);
        let path = cstr(path);
        let _ = self.tx.send(Box::new(move || {
            let ctx = ctx;
            cb(ev, path.as_ptr(), ctx.0)
        }));
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if !self.done {
            self.fire(coord_event_type::COORD_EVENT_LOST, String::new());
        }
    }
}

fn event_type(t: EventType) -> coord_event_type {
    use coord_event_type::*;
    match t {
        EventType::NodeCreated => COORD_EVENT_CREATED,
        EventType::NodeDeleted => COORD_EVENT_DELETED,
        EventType::NodeDataChanged => COORD_EVENT_CHANGED,
        EventType::NodeChildrenChanged => COORD_EVENT_CHILD,
        EventType::DataWatchRemoved => COORD_EVENT_DATA_WATCH_REMOVED,
        EventType::ChildWatchRemoved => COORD_EVENT_CHILD_WATCH_REMOVED,
        EventType::PersistentWatchRemoved => COORD_EVENT_PERSISTENT_WATCH_REMOVED,
    }
}

fn session_event(e: cc::SessionEvent) -> coord_session_event {
    use coord_session_event::*;
    match e {
        cc::SessionEvent::Connected => COORD_SESSION_CONNECTED,
        cc::SessionEvent::Jeopardy => COORD_SESSION_JEOPARDY,
        cc::SessionEvent::Safe => COORD_SESSION_SAFE,
        cc::SessionEvent::Expired => COORD_SESSION_EXPIRED,
        cc::SessionEvent::Closed => COORD_SESSION_CLOSED,
        cc::SessionEvent::AuthFailed => COORD_SESSION_AUTH_FAILED,
        cc::SessionEvent::LeaderFailedOver => COORD_SESSION_LEADER_FAILED_OVER,
    }
}

/// The callback thread: runs jobs in order until every sender is gone.
fn callback_loop(rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        // A panic here would be ours (C cannot unwind into Rust); keep the thread alive.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// The client behind a C handle; NULL is `COORD_EBADARGUMENTS`.
pub(crate) fn handle<'a>(c: *const coord_client) -> Result<&'a Inner, coord_rc> {
    // SAFETY: the header requires a handle from coord_connect that was not closed.
    unsafe { c.as_ref() }
        .map(|c| &*c.inner)
        .ok_or(coord_rc::COORD_EBADARGUMENTS)
}

pub(crate) fn out_ok<T>(p: *mut T) -> CResult {
    if p.is_null() {
        Err(coord_rc::COORD_EBADARGUMENTS)
    } else {
        Ok(())
    }
}

pub(crate) fn config(
    servers: *const c_char,
    ca: *const c_char,
) -> Result<cc::ClientConfig, coord_rc> {
    let env = |name: &str| std::env::var(name).map_err(|_| coord_rc::COORD_EBADARGUMENTS);
    let servers = match opt_str_arg(servers)? {
        Some(s) => s.to_string(),
        None => env("COORD_SERVERS")?,
    };
    let ca = match opt_str_arg(ca)? {
        Some(s) => s.to_string(),
        None => env("COORD_CA")?,
    };
    cc::ClientConfig::new(&servers, ca).map_err(rc)
}

/// Connects a session. `servers`: comma-separated `host:port` (NULL: `COORD_SERVERS`);
/// `opts` may be NULL (defaults, CA from `COORD_CA`). On success `*out` is a new handle the
/// caller owns and must pass to `coord_close` exactly once.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_connect(
    servers: *const c_char,
    opts: *const coord_options,
    out: *mut *mut coord_client,
) -> coord_rc {
    guard(|| {
        out_ok(out)?;
        put(out, std::ptr::null_mut());
        // SAFETY: NULL or a valid coord_options, per the header.
        let opts = unsafe { opts.as_ref() };
        let mut cfg = config(servers, opts.map_or(std::ptr::null(), |o| o.ca_path))?;
        if let Some(o) = opts {
            if o.session_timeout_ms > 0 {
                cfg = cfg.session_timeout(Duration::from_millis(o.session_timeout_ms.into()));
            }
            if o.connect_timeout_ms > 0 {
                cfg = cfg.connect_timeout(Duration::from_millis(o.connect_timeout_ms.into()));
            }
            cfg = cfg.read_only(o.read_only).cache(o.cache);
        }
        let named = |p: Option<*const c_char>, var: &str| -> Result<Option<String>, coord_rc> {
            match opt_str_arg(p.unwrap_or(std::ptr::null()))? {
                Some(s) => Ok(Some(s.to_string())),
                None => Ok(std::env::var(var).ok()),
            }
        };
        let cert = named(opts.map(|o| o.cert_path), "COORD_CERT")?;
        let key = named(opts.map(|o| o.key_path), "COORD_KEY")?;
        match (cert, key) {
            (Some(cert), Some(key)) => cfg = cfg.client_cert(cert, key).map_err(rc)?,
            (None, None) => {}
            _ => return Err(coord_rc::COORD_EBADARGUMENTS),
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("coord-runtime")
            .enable_all()
            .build()
            .map_err(|_| coord_rc::COORD_ESYSTEMERROR)?;
        let client = match rt.block_on(cc::Client::connect(cfg)) {
            Ok(c) => c,
            Err(e) => {
                rt.shutdown_timeout(Duration::from_secs(2));
                return Err(rc(e));
            }
        };
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("coord-callbacks".into())
            .spawn(move || callback_loop(rx))
            .map_err(|_| coord_rc::COORD_ESYSTEMERROR)?;
        let events = opts.and_then(|o| o.session_cb.map(|cb| (cb, Ctx(o.session_ctx))));
        let forwarder = events.map(|(cb, ctx)| {
            let mut sub = client.session_events();
            let tx = tx.clone();
            // A subscription starts with `Connected`, so the callback's first event is that.
            rt.spawn(async move {
                while let Some(ev) = sub.recv().await {
                    let end = ev.is_final();
                    let _ = tx.send(Box::new(move || {
                        let ctx = ctx;
                        cb(session_event(ev), ctx.0)
                    }));
                    if end {
                        break;
                    }
                }
            })
        });
        let inner = Inner {
            client,
            handle: rt.handle().clone(),
            rt: Mutex::new(Some(rt)),
            closed: AtomicBool::new(false),
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            events: Mutex::new(forwarder),
        };
        let boxed = Box::new(coord_client {
            inner: Arc::new(inner),
        });
        put(out, Box::into_raw(boxed));
        Ok(())
    })
}

/// Ends the session (its ephemeral nodes go), runs every pending callback (unfinished async
/// calls complete with `COORD_EAPIERROR`, armed watches fire `COORD_EVENT_LOST`, the session
/// callback gets `COORD_SESSION_CLOSED`), stops the library's threads and frees the handle.
/// Call it once, after every other call on the handle has returned; it may be called from a
/// callback. NULL is ignored.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_close(c: *mut coord_client) -> coord_rc {
    if c.is_null() {
        return coord_rc::COORD_OK;
    }
    guard(|| {
        // SAFETY: a handle from coord_connect, closed once (header contract).
        let c = unsafe { Box::from_raw(c) };
        match c.inner.shutdown() {
            coord_rc::COORD_OK => Ok(()),
            e => Err(e),
        }
    })
}

/// The session id (0 for NULL).
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_session_id(c: *const coord_client) -> u64 {
    catch_unwind(AssertUnwindSafe(|| {
        handle(c).map(|i| i.client.session_id()).unwrap_or(0)
    }))
    .unwrap_or(0)
}

/// A session's cache counts (`coord_cache_stats`), since the session began.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct coord_cache_info {
    /// Reads served from the cache, with no round trip.
    pub hits: u64,
    /// Cacheable reads that went to the server (a fence and the read).
    pub misses: u64,
    /// Invalidations the servers sent this session (each before a write to a node it had
    /// cached was applied).
    pub invalidations: u64,
}

/// Fills `*out` with the session's cache counts (all 0 unless it read with the cache:
/// `coord_options.cache` or `COORD_READ_CACHED`). `COORD_EBADARGUMENTS` if `c` or `out` is
/// NULL.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_cache_stats(
    c: *const coord_client,
    out: *mut coord_cache_info,
) -> coord_rc {
    guard(|| {
        let h = handle(c)?;
        out_ok(out)?;
        let s = h.client.cache_stats();
        put(
            out,
            coord_cache_info {
                hits: s.hits,
                misses: s.misses,
                invalidations: s.invalidations,
            },
        );
        Ok(())
    })
}

/// One server's view of the ensemble (`coord_server_status`).
#[repr(C)]
#[derive(Debug)]
pub struct coord_server_info {
    /// The server's id.
    pub id: u64,
    /// `leader`, `follower`, `observer` or `looking`, NUL-terminated.
    pub role: [c_char; 16],
    /// The current epoch.
    pub epoch: u32,
    /// The last applied zxid.
    pub zxid: u64,
    /// The leader's id, 0 when none is known.
    pub leader: u64,
}

/// Asks the server at `server` (`host:port`) for its status without opening a session
/// (answers while the ensemble has no quorum); `ca_path` NULL: `COORD_CA`. Fills `*out`.
///
/// # Safety
/// Every pointer argument is NULL or valid as described above for the duration of the
/// call; a handle argument is NULL or one that was returned and not yet freed or closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn coord_server_status(
    server: *const c_char,
    ca_path: *const c_char,
    timeout_ms: u32,
    out: *mut coord_server_info,
) -> coord_rc {
    guard(|| {
        out_ok(out)?;
        let mut cfg = config(server, ca_path)?;
        let server = str_arg(server)?;
        if timeout_ms > 0 {
            cfg = cfg.connect_timeout(Duration::from_millis(timeout_ms.into()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| coord_rc::COORD_ESYSTEMERROR)?;
        let st = rt.block_on(cc::server_status(&cfg, server)).map_err(rc)?;
        let mut role = [0 as c_char; 16];
        for (dst, b) in role.iter_mut().zip(st.role.bytes().take(15)) {
            *dst = b as c_char;
        }
        put(
            out,
            coord_server_info {
                id: st.id,
                role,
                epoch: st.epoch,
                zxid: st.zxid,
                leader: st.leader.unwrap_or(0),
            },
        );
        Ok(())
    })
}
