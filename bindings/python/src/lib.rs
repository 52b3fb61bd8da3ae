//! `coord._native`: the Rust half of the Python package `coord`.
//!
//! ```text
//!  Python thread ── NativeClient.op(..) ──> Pending (the call's future, not started yet)
//!     Pending.wait()            runs the future on this thread without the GIL (tokio's
//!                               block_on; its I/O is driven by the runtime's threads),
//!                               checking signals every 100 ms
//!     Pending.add_done_callback(fn)   spawns it on the shared runtime; fn(ok, value) from a
//!                                     tokio thread (asyncio: loop.call_soon_threadsafe, so
//!                                     no thread per call)
//!  watch / session / log events ──> one channel ──> the callback thread ──> Python (GIL)
//! ```
//!
//! Invariants: a tokio thread never waits for the GIL while holding a lock a Python thread
//! may need (results are stored under a short lock, Python is called after it is released);
//! user callbacks run only on the one callback thread; the runtime and the callback thread
//! are made again in a forked child (a fork copies neither's threads).

use coord_client::{
    Acl, AddWatchMode, Client, ClientConfig, CreateMode, CreateOptions, Error, ErrorCode, Id,
    MultiOp, MultiResult, ReadMode, SessionEvent, Stat, WatchedEvent, WatcherKind,
};
use coord_recipes::{
    Barrier, Counter, DoubleBarrier, Election, Lease, Lock, LockOptions, LockStatus, LockingQueue,
    Queue, Semaphore, TakenItem,
};
use coord_recipes::{
    CacheEvent, Coordinator, Decision, Group, Participant, RwHold, RwLock, TreeCache,
};
use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::collections::BTreeMap;

/// A tree cache's nodes (path to data and Stat), shared by its task and its Python handle.
type Snapshot = Arc<Mutex<BTreeMap<String, (Vec<u8>, Stat)>>>;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

mod log;
mod recipes;

use recipes::*;

/// Work for the callback thread: runs with the GIL held.
type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// The process-wide runtime and callback channel, tagged with the pid that made them.
struct Globals {
    pid: u32,
    rt: Arc<tokio::runtime::Runtime>,
    jobs: crossbeam_channel::Sender<Job>,
}

static GLOBALS: Mutex<Option<Globals>> = Mutex::new(None);

/// The runtime and the callback channel of this process, made on first use (and again after
/// a fork: the child inherits the parent's structures but none of its threads).
fn globals() -> PyResult<(Arc<tokio::runtime::Runtime>, crossbeam_channel::Sender<Job>)> {
    let mut g = GLOBALS.lock();
    let pid = std::process::id();
    if let Some(g) = g.as_ref().filter(|g| g.pid == pid) {
        return Ok((g.rt.clone(), g.jobs.clone()));
    }
    if let Some(old) = g.take() {
        // The parent's runtime has no threads here; dropping it could wait for them forever.
        std::mem::forget(old);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("coord-io")
        .enable_all()
        .build()
        .map_err(|e| PyErr::new::<pyo3::exceptions::PyRuntimeError, _>(e.to_string()))?;
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    std::thread::Builder::new()
        .name("coord-callbacks".into())
        .spawn(move || {
            for job in rx {
                attach_library(job);
            }
        })
        .map_err(|e| PyErr::new::<pyo3::exceptions::PyRuntimeError, _>(e.to_string()))?;
    let rt = Arc::new(rt);
    *g = Some(Globals {
        pid,
        rt: rt.clone(),
        jobs: tx.clone(),
    });
    Ok((rt, tx))
}

/// Set by `_shutdown` (an `atexit` hook of `coord`): from then on no library thread enters
/// Python. A thread that asks for the GIL once the interpreter is finalizing is ended by
/// CPython (pthread_exit through Rust frames: the process aborts), so they must stop first.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Library threads inside (or about to enter) Python; `_shutdown` waits for them.
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` with the GIL from a library thread (I/O or callback), unless the interpreter is
/// shutting down (then `f` is dropped and `None` returned).
fn attach_library<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    // Counted before the flag is read (both SeqCst): `_shutdown` either sees this thread in
    // `IN_PYTHON` or this thread sees the flag.
    IN_PYTHON.fetch_add(1, Ordering::SeqCst);
    let out = if SHUTDOWN.load(Ordering::SeqCst) {
        None
    } else {
        Python::try_attach(f)
    };
    IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    out
}

/// Stops library threads from entering Python and waits (the GIL released, at most 2 s) for
/// those inside to leave. Called at interpreter exit; calls finishing later are dropped.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    SHUTDOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Hands `job` to the callback thread (dropped if the process is shutting the thread down).
fn post(job: Job) {
    if let Ok((_, jobs)) = globals() {
        let _ = jobs.send(job);
    }
}

static FROM_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ZNODE_STAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static MAKE_ACL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DISPATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn import_attr(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<Py<PyAny>> {
    cell.get_or_try_init(py, || Ok(py.import(module)?.getattr(name)?.unbind()))
        .map(|f| f.clone_ref(py))
}

/// The Python exception (from `coord.exceptions`) for a client error.
fn to_exception(py: Python<'_>, e: &Error) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let f = import_attr(py, &FROM_CODE, "coord.exceptions", "_from_code")?;
        let exc = f.call1(
            py,
            (format!("{:?}", e.code()), e.code().zk_code(), e.to_string()),
        )?;
        Ok(PyErr::from_value(exc.into_bound(py)))
    };
    make().unwrap_or_else(|err| err)
}

fn stat_py(py: Python<'_>, s: &Stat) -> PyResult<Py<PyAny>> {
    let cls = import_attr(py, &ZNODE_STAT, "coord._types", "ZnodeStat")?;
    cls.call1(
        py,
        (
            s.czxid,
            s.mzxid,
            s.ctime,
            s.mtime,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children,
            s.pzxid,
        ),
    )
}

fn acls_py(py: Python<'_>, acl: &[Acl]) -> PyResult<Py<PyAny>> {
    let make = import_attr(py, &MAKE_ACL, "coord._types", "_make_acl")?;
    let items = acl
        .iter()
        .map(|a| make.call1(py, (a.perms, a.id.scheme.clone(), a.id.id.clone())))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any().unbind())
}

/// What a finished call hands back, converted to Python only when it is taken.
enum Value {
    None,
    Bool(bool),
    Str(String),
    Int(u64),
    Stat(Stat),
    OptStat(Option<Stat>),
    Data(Vec<u8>, Stat),
    Children(Vec<String>, Stat),
    Strings(Vec<String>),
    Acl(Vec<Acl>, Stat),
    Multi(Vec<MultiResult>),
    /// A failed multi: the error and one result per op.
    MultiFailed(Error),
    Bytes(Option<Vec<u8>>),
    I64(i64),
    RwHold(Option<RwHold>),
    Members(BTreeMap<String, Vec<u8>>),
    Decision(Option<Decision>),
    Lease(Option<Lease>),
    Taken(Option<TakenItem>),
    Leader(Option<coord_recipes::Leader>),
    Holder(Option<coord_recipes::LockHolder>),
}

fn multi_results_py(py: Python<'_>, results: &[MultiResult]) -> PyResult<Py<PyAny>> {
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        let v: Py<PyAny> = match r {
            MultiResult::Create { path, .. } => path.clone().into_pyobject(py)?.into_any().unbind(),
            MultiResult::Delete | MultiResult::Check => {
                true.into_pyobject(py)?.to_owned().into_any().unbind()
            }
            MultiResult::SetData { stat } => stat_py(py, stat)?,
            MultiResult::Error { code } => {
                let e = Error::new(*code);
                to_exception(py, &e).into_value(py).into_any()
            }
        };
        out.push(v);
    }
    Ok(PyList::new(py, out)?.into_any().unbind())
}

impl Value {
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let bytes = |d: &[u8]| PyBytes::new(py, d).into_any().unbind();
        Ok(match self {
            Value::None => py.None(),
            Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
            Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
            Value::Int(n) => n.into_pyobject(py)?.into_any().unbind(),
            Value::Stat(s) => stat_py(py, &s)?,
            Value::OptStat(s) => match s {
                Some(s) => stat_py(py, &s)?,
                None => py.None(),
            },
            Value::Data(d, s) => PyTuple::new(py, [bytes(&d), stat_py(py, &s)?])?
                .into_any()
                .unbind(),
            Value::Children(c, s) => {
                let list = PyList::new(py, c)?.into_any().unbind();
                PyTuple::new(py, [list, stat_py(py, &s)?])?
                    .into_any()
                    .unbind()
            }
            Value::Strings(v) => PyList::new(py, v)?.into_any().unbind(),
            Value::Acl(a, s) => PyTuple::new(py, [acls_py(py, &a)?, stat_py(py, &s)?])?
                .into_any()
                .unbind(),
            Value::Multi(r) => multi_results_py(py, &r)?,
            Value::MultiFailed(e) => {
                let exc = to_exception(py, &e).into_value(py);
                let results = multi_results_py(py, e.results())?;
                PyTuple::new(py, [exc.into_any(), results])?
                    .into_any()
                    .unbind()
            }
            Value::Decision(d) => match d {
                Some(Decision::Commit) => "commit".into_pyobject(py)?.into_any().unbind(),
                Some(Decision::Abort) => "abort".into_pyobject(py)?.into_any().unbind(),
                None => py.None(),
            },
            Value::RwHold(h) => match h {
                Some(h) => PyTuple::new(
                    py,
                    [
                        h.path.into_pyobject(py)?.into_any().unbind(),
                        bytes(&h.sequencer),
                    ],
                )?
                .into_any()
                .unbind(),
                None => py.None(),
            },
            Value::Members(m) => {
                let d = pyo3::types::PyDict::new(py);
                for (k, v) in m {
                    d.set_item(k, PyBytes::new(py, &v))?;
                }
                d.into_any().unbind()
            }
            Value::I64(n) => n.into_pyobject(py)?.into_any().unbind(),
            Value::Lease(l) => match l {
                Some(l) => PyTuple::new(
                    py,
                    [
                        l.path.into_pyobject(py)?.into_any().unbind(),
                        bytes(&l.sequencer),
                    ],
                )?
                .into_any()
                .unbind(),
                None => py.None(),
            },
            Value::Bytes(b) => match b {
                Some(b) => bytes(&b),
                None => py.None(),
            },
            Value::Taken(t) => match t {
                Some(t) => PyTuple::new(
                    py,
                    [
                        t.name.into_pyobject(py)?.into_any().unbind(),
                        bytes(&t.data),
                        bytes(&t.claim),
                    ],
                )?
                .into_any()
                .unbind(),
                None => py.None(),
            },
            Value::Leader(l) => match l {
                Some(l) => PyTuple::new(
                    py,
                    [
                        bytes(&l.value),
                        l.term.into_pyobject(py)?.into_any().unbind(),
                        l.session_id.into_pyobject(py)?.into_any().unbind(),
                        bytes(&l.sequencer),
                    ],
                )?
                .into_any()
                .unbind(),
                None => py.None(),
            },
            Value::Holder(h) => match h {
                Some(h) => PyTuple::new(
                    py,
                    [
                        bytes(&h.data),
                        h.session_id.into_pyobject(py)?.into_any().unbind(),
                        h.czxid.into_pyobject(py)?.into_any().unbind(),
                        bytes(&h.sequencer),
                    ],
                )?
                .into_any()
                .unbind(),
                None => py.None(),
            },
        })
    }
}

#[derive(Default)]
struct Slot {
    result: Option<Result<Value, Error>>,
    callback: Option<Py<PyAny>>,
    taken: bool,
}

/// A call's future, boxed until it is started.
type CallFuture = std::pin::Pin<Box<dyn Future<Output = Result<Value, Error>> + Send>>;

/// Where a call's future is.
enum Call {
    /// Made, not started: `wait()` runs it on the calling thread, `add_done_callback` on the
    /// runtime.
    NotStarted(CallFuture),
    /// Running as a runtime task (aborting it drops the future).
    Running(tokio::task::AbortHandle),
    /// Run to the end by `wait()`, or dropped by `cancel()`.
    Gone,
}

/// A call, made but not started. Take its result once, with `wait()` (blocking: the future
/// runs on the waiting thread, without the GIL, so a blocking call has no hand-off to an
/// I/O thread and back) or `add_done_callback(fn)` (the future runs on the runtime and
/// `fn(ok, value)` is called from an I/O thread, for asyncio); `cancel()` abandons it.
/// Dropping a recipe's future runs its clean-up (a waiting lock acquire deletes its queue
/// node), so an abandoned call does not go on unseen.
#[pyclass(module = "coord._native")]
struct Pending {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    call: Arc<Mutex<Call>>,
}

impl Pending {
    /// Another handle of the same call (for the `pending()` of a connect or status call).
    fn share(&self) -> Pending {
        Pending {
            slot: self.slot.clone(),
            call: self.call.clone(),
        }
    }

    /// Starts the call on the runtime, unless it was started (or run) already.
    fn start(&self) -> PyResult<()> {
        let mut call = self.call.lock();
        if !matches!(*call, Call::NotStarted(_)) {
            return Ok(());
        }
        let Call::NotStarted(fut) = std::mem::replace(&mut *call, Call::Gone) else {
            unreachable!("matched just above")
        };
        let (rt, _) = globals()?;
        let done = self.slot.clone();
        let task = rt.spawn(async move {
            let result = fut.await;
            let callback = {
                let mut s = done.0.lock();
                s.result = Some(result);
                done.1.notify_all();
                s.callback.take()
            };
            // Called after the lock is released: taking the GIL while holding it could
            // deadlock with a Python thread in `wait`.
            if let Some(cb) = callback {
                deliver(&done, cb);
            }
        });
        *call = Call::Running(task.abort_handle());
        Ok(())
    }

    /// Runs a not-started call to its end on this thread (the GIL released), checking for
    /// signals every 100 ms; an interrupted call is dropped.
    fn run_here(&self, py: Python<'_>, mut fut: CallFuture) -> PyResult<Py<PyAny>> {
        let (rt, _) = globals()?;
        self.slot.0.lock().taken = true;
        loop {
            let out = py.detach(|| {
                rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut fut).await })
            });
            match out {
                Ok(Ok(v)) => return v.into_py(py),
                Ok(Err(e)) => return Err(to_exception(py, &e)),
                Err(_) => {
                    if let Err(e) = py.check_signals() {
                        // A recipe's clean-up spawns on the runtime: drop it inside.
                        let _inside = rt.enter();
                        drop(fut);
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// How often a blocking call checks for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Makes a call of `fut`; it starts when its `Pending` is waited for or given a callback.
fn spawn<F>(fut: F) -> PyResult<Pending>
where
    F: Future<Output = Result<Value, Error>> + Send + 'static,
{
    Ok(Pending {
        slot: Arc::default(),
        call: Arc::new(Mutex::new(Call::NotStarted(Box::pin(fut)))),
    })
}

/// Calls `cb(ok, value)` with the stored result, logging (never raising) a failure.
fn deliver(slot: &Arc<(Mutex<Slot>, Condvar)>, cb: Py<PyAny>) {
    let result = {
        let mut s = slot.0.lock();
        s.taken = true;
        s.result.take()
    };
    let Some(result) = result else { return };
    attach_library(|py| {
        let args = match result {
            Ok(v) => v.into_py(py).map(|v| (true, v)),
            Err(e) => Ok((false, to_exception(py, &e).into_value(py).into_any())),
        };
        let args = args.unwrap_or_else(|e| (false, e.into_value(py).into_any()));
        if let Err(e) = cb.call1(py, args) {
            e.print(py);
        }
    });
}

#[pymethods]
impl Pending {
    /// Blocks until the call finishes (the GIL released, Ctrl-C raising KeyboardInterrupt),
    /// then returns its value or raises its error.
    fn wait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let not_started = {
            let mut call = self.call.lock();
            match std::mem::replace(&mut *call, Call::Gone) {
                Call::NotStarted(fut) => Some(fut),
                other => {
                    *call = other;
                    None
                }
            }
        };
        if let Some(fut) = not_started {
            return self.run_here(py, fut);
        }
        // Started on the runtime by `add_done_callback` (or by another handle of the call).
        loop {
            let result = py.detach(|| {
                let mut s = self.slot.0.lock();
                if s.result.is_none() && !s.taken {
                    self.slot.1.wait_for(&mut s, SIGNAL_CHECK);
                }
                if s.result.is_some() {
                    s.taken = true;
                }
                (s.result.take(), s.taken)
            });
            match result {
                (Some(Ok(v)), _) => return v.into_py(py),
                (Some(Err(e)), _) => return Err(to_exception(py, &e)),
                (None, true) => {
                    return Err(PyValueError::new_err(
                        "this call's result was already taken",
                    ));
                }
                (None, false) => {
                    if let Err(e) = py.check_signals() {
                        // An interrupted call is abandoned: left running, a lock acquire
                        // could take the lock for a program that gave up on it.
                        self.cancel()?;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Abandons the call: it is stopped (dropping a recipe's future runs its clean-up).
    /// True if it had not finished; its result is never delivered then. An op already sent
    /// may still have been applied by the servers.
    fn cancel(&self) -> PyResult<bool> {
        let mut call = self.call.lock();
        match std::mem::replace(&mut *call, Call::Gone) {
            Call::NotStarted(fut) => {
                let (rt, _) = globals()?;
                let _inside = rt.enter();
                drop(fut);
                Ok(true)
            }
            Call::Running(task) => {
                let running = !task.is_finished();
                task.abort();
                *call = Call::Running(task);
                Ok(running)
            }
            Call::Gone => Ok(false),
        }
    }

    /// Starts the call on the runtime and arranges for `fn(ok, value)` to be called once it
    /// finishes (at once if it has), from a library thread: `value` is the result, or the
    /// exception when `ok` is false.
    fn add_done_callback(&self, callback: Py<PyAny>) -> PyResult<()> {
        let ready = {
            let mut s = self.slot.0.lock();
            if s.taken || s.callback.is_some() {
                return Err(PyValueError::new_err(
                    "this call's result was already taken",
                ));
            }
            if s.result.is_none() {
                s.callback = Some(callback);
                None
            } else {
                Some(callback)
            }
        };
        match ready {
            Some(cb) => deliver(&self.slot, cb),
            None => self.start()?,
        }
        Ok(())
    }
}

fn bad_args(message: impl Into<String>) -> Error {
    Error::with_message(ErrorCode::BadArguments, message)
}

fn duration(name: &str, seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds, got {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// ACL entries as Python passes them: `(perms, scheme, id)`.
type AclArg = Vec<(u32, String, String)>;

fn acl_arg(acl: Option<AclArg>) -> Vec<Acl> {
    match acl {
        None => Acl::open_unsafe(),
        Some(v) => v
            .into_iter()
            .map(|(perms, scheme, id)| Acl {
                perms,
                id: Id::new(scheme, id),
            })
            .collect(),
    }
}

fn create_options(
    acl: Option<AclArg>,
    ephemeral: bool,
    sequence: bool,
    container: bool,
    ttl: Option<f64>,
    lock_delay: Option<f64>,
) -> PyResult<CreateOptions> {
    let mode = match (ephemeral, sequence, container) {
        (_, _, true) if ephemeral || sequence => {
            return Err(PyValueError::new_err(
                "a container node cannot be ephemeral or sequential",
            ));
        }
        (false, false, true) => CreateMode::Container,
        (true, true, _) => CreateMode::EphemeralSequential,
        (true, false, _) => CreateMode::Ephemeral,
        (false, true, _) => CreateMode::PersistentSequential,
        (false, false, false) => CreateMode::Persistent,
    };
    let mut opts = CreateOptions::default()
        .with_mode(mode)
        .with_acl(acl_arg(acl));
    if let Some(t) = ttl {
        opts = opts.with_ttl(duration("ttl", t)?);
    }
    if let Some(d) = lock_delay {
        if ephemeral || sequence || container || ttl.is_some() {
            return Err(PyValueError::new_err(
                "lock_delay makes a lock node: it cannot be combined with other modes",
            ));
        }
        opts = CreateOptions::lock(duration("lock_delay", d)?).with_acl(opts.acl);
    }
    Ok(opts)
}

/// One Python-side event callback: `dispatch(fn, kind, a, b, c)` in `coord._events`.
fn dispatch(callback: Arc<Py<PyAny>>, kind: &'static str, a: String, b: String, c: u64) {
    post(Box::new(move |py| {
        let run = || -> PyResult<()> {
            let d = import_attr(py, &DISPATCH, "coord._events", "dispatch")?;
            d.call1(py, (callback.clone_ref(py), kind, a, b, c))?;
            Ok(())
        };
        if let Err(e) = run() {
            // `dispatch` logs a callback's exception itself; this is a failure of the
            // dispatcher (an interpreter shutting down).
            e.print(py);
        }
    }));
}

fn event_parts(e: &WatchedEvent) -> (String, String, u64) {
    (format!("{:?}", e.event_type), e.path.clone(), e.zxid)
}

/// Forwards a one-shot watch's event (or its end) to `callback`.
fn forward_watch(rt: &tokio::runtime::Runtime, watch: coord_client::Watch, callback: Py<PyAny>) {
    let callback = Arc::new(callback);
    rt.spawn(async move {
        match watch.await {
            Ok(e) => {
                let (t, p, z) = event_parts(&e);
                dispatch(callback, "watch", t, p, z);
            }
            Err(e) => dispatch(
                callback,
                "watch_end",
                format!("{:?}", e.code()),
                e.to_string(),
                0,
            ),
        }
    });
}

/// A session of the `coord.Client` Python class.
#[pyclass(module = "coord._native")]
struct NativeClient {
    client: Client,
}

impl NativeClient {
    /// The handle a read (`exists`, `get`, `get_children`) goes through: the session's
    /// default handle, whose mode is `Cached` for a `cache=True` client (a read without a
    /// watch is then served from the cache; one with a watch is linearizable) and `Local`
    /// otherwise; `Linearizable` when asked, whatever the default (a linearizable read never
    /// comes from the cache).
    fn reader(&self, linearizable: bool) -> Client {
        if linearizable {
            self.client.with_read_mode(ReadMode::Linearizable)
        } else {
            self.client.clone()
        }
    }
}

/// Connects a session; returns a `Pending` resolving to a `NativeClient`. With `cache`, the
/// session's default handle reads in `ReadMode::Cached` (`ClientConfig::cache`).
#[pyfunction]
#[pyo3(signature = (servers, ca, session_timeout, connect_timeout, read_only, grace_period=None, cache=false, cert=None, key=None))]
#[allow(clippy::too_many_arguments)]
fn connect(
    servers: &str,
    ca: &str,
    session_timeout: f64,
    connect_timeout: f64,
    read_only: bool,
    grace_period: Option<f64>,
    cache: bool,
    cert: Option<&str>,
    key: Option<&str>,
) -> PyResult<PendingClient> {
    let built = ClientConfig::new(servers, ca).and_then(|c| match (cert, key) {
        (Some(cert), Some(key)) => c.client_cert(cert, key),
        _ => Ok(c),
    });
    let mut cfg = match built {
        Ok(c) => c,
        Err(e) => return Python::attach(|py| Err(to_exception(py, &e))),
    };
    cfg = cfg
        .session_timeout(duration("session_timeout", session_timeout)?)
        .connect_timeout(duration("timeout", connect_timeout)?)
        .read_only(read_only)
        .cache(cache);
    if let Some(g) = grace_period {
        cfg = cfg.grace_period(duration("grace_period", g)?);
    }
    let out: Arc<Mutex<Option<Client>>> = Arc::default();
    let put = out.clone();
    let pending = spawn(async move {
        let c = Client::connect(cfg).await?;
        *put.lock() = Some(c);
        Ok(Value::None)
    })?;
    Ok(PendingClient { pending, out })
}

/// A connect in flight: `wait()`/`add_done_callback` as `Pending`, then `client()`.
#[pyclass(module = "coord._native")]
struct PendingClient {
    pending: Pending,
    out: Arc<Mutex<Option<Client>>>,
}

#[pymethods]
impl PendingClient {
    /// The call in flight.
    fn pending(&self) -> Pending {
        self.pending.share()
    }
    /// The connected session, once the call succeeded.
    fn client(&self) -> PyResult<NativeClient> {
        match self.out.lock().take() {
            Some(client) => Ok(NativeClient { client }),
            None => Err(PyValueError::new_err("not connected")),
        }
    }
}

fn watcher_kind(kind: &str) -> PyResult<WatcherKind> {
    match kind {
        "data" => Ok(WatcherKind::Data),
        "children" => Ok(WatcherKind::Children),
        "any" => Ok(WatcherKind::Any),
        other => Err(PyValueError::new_err(format!(
            "watcher kind must be 'data', 'children' or 'any', got {other:?}"
        ))),
    }
}

#[pymethods]
impl NativeClient {
    /// The session id.
    #[getter]
    fn session_id(&self) -> u64 {
        self.client.session_id()
    }

    /// The negotiated session timeout in seconds.
    #[getter]
    fn session_timeout(&self) -> f64 {
        self.client.session_timeout().as_secs_f64()
    }

    /// The session state: CONNECTING, CONNECTED, DISCONNECTED, EXPIRED or CLOSED.
    #[getter]
    fn state(&self) -> &'static str {
        match self.client.state() {
            coord_client::SessionState::Connecting => "CONNECTING",
            coord_client::SessionState::Connected => "CONNECTED",
            coord_client::SessionState::Disconnected => "DISCONNECTED",
            coord_client::SessionState::Expired => "EXPIRED",
            coord_client::SessionState::Closed => "CLOSED",
        }
    }

    /// The highest zxid seen.
    #[getter]
    fn last_zxid(&self) -> u64 {
        self.client.last_zxid()
    }

    /// Whether plain reads go through the client cache (the client was made with `cache`).
    #[getter]
    fn cached(&self) -> bool {
        self.client.read_mode() == ReadMode::Cached
    }

    /// This session's cache counts `(hits, misses, invalidations)`: reads served from the
    /// cache, cacheable reads that went to the server, invalidations received. All zero for
    /// a session without the cache.
    fn cache_stats(&self) -> (u64, u64, u64) {
        let s = self.client.cache_stats();
        (s.hits, s.misses, s.invalidations)
    }

    #[pyo3(signature = (path, value, acl, ephemeral, sequence, container=false, ttl=None, lock_delay=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        path: String,
        value: Vec<u8>,
        acl: Option<AclArg>,
        ephemeral: bool,
        sequence: bool,
        container: bool,
        ttl: Option<f64>,
        lock_delay: Option<f64>,
    ) -> PyResult<Pending> {
        let opts = create_options(acl, ephemeral, sequence, container, ttl, lock_delay)?;
        let c = self.client.clone();
        spawn(async move { Ok(Value::Str(c.create(&path, &value, opts).await?)) })
    }

    fn delete(&self, path: String, version: i32) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move {
            c.delete(&path, Some(version)).await?;
            Ok(Value::None)
        })
    }

    #[pyo3(signature = (path, watch=None, linearizable=false))]
    fn exists(
        &self,
        path: String,
        watch: Option<Py<PyAny>>,
        linearizable: bool,
    ) -> PyResult<Pending> {
        let c = self.reader(linearizable);
        let (rt, _) = globals()?;
        spawn(async move {
            match watch {
                None => Ok(Value::OptStat(c.exists(&path).await?)),
                Some(cb) => {
                    let (stat, w) = c.exists_w(&path).await?;
                    forward_watch(&rt, w, cb);
                    Ok(Value::OptStat(stat))
                }
            }
        })
    }

    #[pyo3(signature = (path, watch=None, linearizable=false))]
    fn get(&self, path: String, watch: Option<Py<PyAny>>, linearizable: bool) -> PyResult<Pending> {
        let c = self.reader(linearizable);
        let (rt, _) = globals()?;
        spawn(async move {
            match watch {
                None => {
                    let (d, s) = c.get_data(&path).await?;
                    Ok(Value::Data(d, s))
                }
                Some(cb) => {
                    let (d, s, w) = c.get_data_w(&path).await?;
                    forward_watch(&rt, w, cb);
                    Ok(Value::Data(d, s))
                }
            }
        })
    }

    fn set(&self, path: String, value: Vec<u8>, version: i32) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move { Ok(Value::Stat(c.set_data(&path, &value, Some(version)).await?)) })
    }

    #[pyo3(signature = (path, watch=None, linearizable=false))]
    fn get_children(
        &self,
        path: String,
        watch: Option<Py<PyAny>>,
        linearizable: bool,
    ) -> PyResult<Pending> {
        let c = self.reader(linearizable);
        let (rt, _) = globals()?;
        spawn(async move {
            match watch {
                None => {
                    let (ch, s) = c.get_children(&path).await?;
                    Ok(Value::Children(ch, s))
                }
                Some(cb) => {
                    let (ch, s, w) = c.get_children_w(&path).await?;
                    forward_watch(&rt, w, cb);
                    Ok(Value::Children(ch, s))
                }
            }
        })
    }

    fn get_acls(&self, path: String) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move {
            let (a, s) = c.get_acl(&path).await?;
            Ok(Value::Acl(a, s))
        })
    }

    fn set_acls(&self, path: String, acl: AclArg, version: i32) -> PyResult<Pending> {
        let c = self.client.clone();
        let acl = acl_arg(Some(acl));
        spawn(async move { Ok(Value::Stat(c.set_acl(&path, &acl, Some(version)).await?)) })
    }

    fn add_auth(&self, scheme: String, credential: Vec<u8>) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move {
            c.add_auth(&scheme, &credential).await?;
            Ok(Value::None)
        })
    }

    fn sync(&self, path: String) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move {
            c.sync(&path).await?;
            Ok(Value::None)
        })
    }

    fn get_ephemerals(&self, prefix: String) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move { Ok(Value::Strings(c.get_ephemerals(&prefix).await?)) })
    }

    fn check_sequencer(&self, sequencer: Vec<u8>) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move { Ok(Value::Bool(c.check_sequencer(&sequencer).await?)) })
    }

    /// `ops`: tuples `("create", path, value, acl, ephemeral, sequence)`, `("delete", path,
    /// version)`, `("set", path, value, version)`, `("check", path, version)`,
    /// `("check_sequencer", bytes)`. Resolves to the results, or to `(exception, results)`
    /// when an op failed.
    fn multi(&self, ops: Vec<Bound<'_, PyTuple>>) -> PyResult<Pending> {
        let mut out = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let kind: String = op.get_item(0)?.extract()?;
            let op = match kind.as_str() {
                "create" => {
                    let (_, path, value, acl, eph, seq): (
                        String,
                        String,
                        Vec<u8>,
                        Option<AclArg>,
                        bool,
                        bool,
                    ) = op.extract()?;
                    let opts = create_options(acl, eph, seq, false, None, None)?;
                    match opts.to_op(&path, &value) {
                        Ok(op) => op,
                        Err(e) => return Err(to_exception(op.py(), &e)),
                    }
                }
                "delete" => {
                    let (_, path, version): (String, String, i32) = op.extract()?;
                    MultiOp::Delete { path, version }
                }
                "set" => {
                    let (_, path, data, version): (String, String, Vec<u8>, i32) = op.extract()?;
                    MultiOp::SetData {
                        path,
                        data,
                        version,
                    }
                }
                "check" => {
                    let (_, path, version): (String, String, i32) = op.extract()?;
                    MultiOp::Check { path, version }
                }
                "check_sequencer" => {
                    let (_, sequencer): (String, Vec<u8>) = op.extract()?;
                    MultiOp::CheckSequencer { sequencer }
                }
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "op {i}: unknown transaction op {other:?}"
                    )));
                }
            };
            out.push(op);
        }
        let c = self.client.clone();
        spawn(async move {
            match c.multi(out).await {
                Ok(r) => Ok(Value::Multi(r)),
                Err(e) if !e.results().is_empty() => Ok(Value::MultiFailed(e)),
                Err(e) => Err(e),
            }
        })
    }

    /// Adds a persistent (recursive) watch; `callback` gets every event.
    fn add_watch(&self, path: String, recursive: bool, callback: Py<PyAny>) -> PyResult<Pending> {
        let c = self.client.clone();
        let (rt, _) = globals()?;
        let mode = if recursive {
            AddWatchMode::PersistentRecursive
        } else {
            AddWatchMode::Persistent
        };
        let callback = Arc::new(callback);
        spawn(async move {
            let mut w = c.add_watch(&path, mode).await?;
            rt.spawn(async move {
                while let Some(e) = w.recv().await {
                    let (t, p, z) = event_parts(&e);
                    dispatch(callback.clone(), "watch", t, p, z);
                }
                dispatch(callback, "watch_end", "Ended".into(), path, 0);
            });
            Ok(Value::None)
        })
    }

    fn remove_watches(&self, path: String, kind: &str) -> PyResult<Pending> {
        let kind = watcher_kind(kind)?;
        let c = self.client.clone();
        spawn(async move {
            c.remove_watches(&path, kind).await?;
            Ok(Value::None)
        })
    }

    /// Calls `callback(state)` on the callback thread for every session event from now on.
    fn add_listener(&self, callback: Py<PyAny>) -> PyResult<()> {
        let (rt, _) = globals()?;
        let mut events = self.client.session_events();
        let callback = Arc::new(callback);
        rt.spawn(async move {
            while let Some(e) = events.recv().await {
                let name = match e {
                    SessionEvent::Connected => "CONNECTED",
                    SessionEvent::Jeopardy => "JEOPARDY",
                    SessionEvent::Safe => "SAFE",
                    SessionEvent::Expired => "EXPIRED",
                    SessionEvent::Closed => "CLOSED",
                    SessionEvent::AuthFailed => "AUTH_FAILED",
                    SessionEvent::LeaderFailedOver => "LEADER_FAILED_OVER",
                };
                dispatch(callback.clone(), "session", name.into(), String::new(), 0);
            }
        });
        Ok(())
    }

    fn close(&self) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move {
            c.close().await?;
            Ok(Value::None)
        })
    }

    /// A lock recipe handle (`coord_recipes::Lock`).
    #[pyo3(signature = (path, data, lock_delay))]
    fn lock(&self, path: String, data: Vec<u8>, lock_delay: f64) -> PyResult<NativeLock> {
        let opts = LockOptions {
            lock_delay: duration("lock_delay", lock_delay)?,
            data,
        };
        Lock::with_options(self.client.clone(), &path, opts)
            .map(|lock| NativeLock { lock })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// An election recipe handle (`coord_recipes::Election`).
    fn election(&self, path: String, value: Vec<u8>, lock_delay: f64) -> PyResult<NativeElection> {
        Election::with_lock_delay(
            self.client.clone(),
            &path,
            &value,
            duration("lock_delay", lock_delay)?,
        )
        .map(|election| NativeElection { election })
        .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A queue recipe handle (`coord_recipes::Queue`).
    fn queue(&self, path: String) -> PyResult<NativeQueue> {
        Queue::new(self.client.clone(), &path)
            .map(|queue| NativeQueue { queue })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A locking-queue recipe handle (`coord_recipes::LockingQueue`).
    fn locking_queue(&self, path: String) -> PyResult<NativeLockingQueue> {
        LockingQueue::new(self.client.clone(), &path)
            .map(|queue| NativeLockingQueue { queue })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A barrier recipe handle (`coord_recipes::Barrier`).
    fn barrier(&self, path: String) -> PyResult<NativeBarrier> {
        Barrier::new(self.client.clone(), &path)
            .map(|barrier| NativeBarrier { barrier })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A double-barrier recipe handle (`coord_recipes::DoubleBarrier`).
    fn double_barrier(&self, path: String, count: usize) -> PyResult<NativeDoubleBarrier> {
        DoubleBarrier::new(self.client.clone(), &path, count)
            .map(|b| NativeDoubleBarrier {
                barrier: Arc::new(b),
            })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A counter recipe handle (`coord_recipes::Counter`).
    fn counter(&self, path: String) -> PyResult<NativeCounter> {
        Counter::new(self.client.clone(), &path)
            .map(|counter| NativeCounter { counter })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A semaphore recipe handle (`coord_recipes::Semaphore`).
    fn semaphore(&self, path: String, leases: usize) -> PyResult<NativeSemaphore> {
        Semaphore::new(self.client.clone(), &path, leases)
            .map(|semaphore| NativeSemaphore { semaphore })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A two-phase-commit coordinator (`coord_recipes::Coordinator`).
    fn txn_coordinator(&self, dir: String) -> PyResult<NativeCoordinator> {
        Coordinator::new(self.client.clone(), &dir)
            .map(|c| NativeCoordinator { c })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A two-phase-commit participant (`coord_recipes::Participant`).
    fn txn_participant(&self, dir: String, name: String) -> PyResult<NativeParticipant> {
        Participant::new(self.client.clone(), &dir, &name)
            .map(|p| NativeParticipant { p })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A read-write lock recipe handle (`coord_recipes::RwLock`).
    fn rwlock(&self, path: String) -> PyResult<NativeRwLock> {
        RwLock::new(self.client.clone(), &path)
            .map(|lock| NativeRwLock { lock })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A group-membership recipe handle (`coord_recipes::Group`).
    fn group(&self, path: String) -> PyResult<NativeGroup> {
        Group::new(self.client.clone(), &path)
            .map(|group| NativeGroup { group })
            .map_err(|e| Python::attach(|py| to_exception(py, &e)))
    }

    /// A tree cache (`coord_recipes::TreeCache`) of `path` (its subtree with `recursive`);
    /// `callback(kind, path)` on the callback thread for every change applied after the
    /// first load ("NODE_ADDED", "NODE_UPDATED", "NODE_REMOVED"; "ERROR" with the message
    /// when the cache stopped). The Pending resolves once the first load is done.
    fn tree_cache(
        &self,
        path: String,
        recursive: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<(NativeTreeCache, Pending)> {
        let (rt, _) = globals()?;
        let snapshot: Snapshot = Arc::default();
        let task: Arc<Mutex<Option<tokio::task::AbortHandle>>> = Arc::default();
        let native = NativeTreeCache {
            snapshot: snapshot.clone(),
            task: task.clone(),
        };
        let c = self.client.clone();
        let callback = callback.map(Arc::new);
        let pending = spawn(async move {
            let mut cache = if recursive {
                TreeCache::tree(c, &path).await?
            } else {
                TreeCache::node(c, &path).await?
            };
            *snapshot.lock() = cache.snapshot().clone();
            let handle = rt.spawn(async move {
                loop {
                    let event = cache.next().await;
                    *snapshot.lock() = cache.snapshot().clone();
                    let (kind, p) = match event {
                        Ok(CacheEvent::Added(p, _, _)) => ("NODE_ADDED", p),
                        Ok(CacheEvent::Changed(p, _, _)) => ("NODE_UPDATED", p),
                        Ok(CacheEvent::Removed(p)) => ("NODE_REMOVED", p),
                        Err(e) => {
                            if let Some(cb) = &callback {
                                dispatch(cb.clone(), "cache", "ERROR".into(), e.to_string(), 0);
                            }
                            return;
                        }
                    };
                    if let Some(cb) = &callback {
                        dispatch(cb.clone(), "cache", kind.into(), p, 0);
                    }
                }
            });
            *task.lock() = Some(handle.abort_handle());
            Ok(Value::None)
        })?;
        Ok((native, pending))
    }

    /// Number of descendants of a node.
    fn get_all_children_number(&self, path: String) -> PyResult<Pending> {
        let c = self.client.clone();
        spawn(async move { Ok(Value::Int(c.get_all_children_number(&path).await?)) })
    }
}

/// The sequencer's fields `(path, mode, czxid, session_id)`; `BadArgumentsError` for bytes
/// that are not a sequencer.
#[pyfunction]
fn decode_sequencer(py: Python<'_>, data: Vec<u8>) -> PyResult<(String, &'static str, u64, u64)> {
    match coord_client::Sequencer::decode(&data) {
        Ok(s) => Ok((
            s.path,
            match s.mode {
                coord_client::LockMode::Exclusive => "exclusive",
                coord_client::LockMode::Shared => "shared",
            },
            s.czxid,
            s.session_id,
        )),
        Err(e) => Err(to_exception(py, &bad_args(e.to_string()))),
    }
}

/// The ZooKeeper `digest` id of `user` with `password` (for ACLs).
#[pyfunction]
fn digest_id(user: &str, password: &str) -> String {
    coord_client::digest_id(user, password)
}

/// A server's status `(id, role, epoch, zxid, leader)` without a session.
#[pyfunction]
fn server_status(servers: &str, ca: &str, server: String, timeout: f64) -> PyResult<PendingStatus> {
    let cfg = match ClientConfig::new(servers, ca) {
        Ok(c) => c.connect_timeout(duration("timeout", timeout)?),
        Err(e) => return Python::attach(|py| Err(to_exception(py, &e))),
    };
    let out: Arc<Mutex<Option<coord_client::ServerStatus>>> = Arc::default();
    let put = out.clone();
    let pending = spawn(async move {
        let s = coord_client::server_status(&cfg, &server).await?;
        *put.lock() = Some(s);
        Ok(Value::None)
    })?;
    Ok(PendingStatus { pending, out })
}

/// A status call in flight.
#[pyclass(module = "coord._native")]
struct PendingStatus {
    pending: Pending,
    out: Arc<Mutex<Option<coord_client::ServerStatus>>>,
}

#[pymethods]
impl PendingStatus {
    /// Blocks for the answer: `(id, role, epoch, zxid, leader)`.
    fn wait(&self, py: Python<'_>) -> PyResult<(u64, String, u32, u64, Option<u64>)> {
        self.pending.wait(py)?;
        self.status()
    }

    /// The call in flight (for asyncio: `add_done_callback`, then `status()`).
    fn pending(&self) -> Pending {
        self.pending.share()
    }

    /// The answer, once the call succeeded: `(id, role, epoch, zxid, leader)`.
    fn status(&self) -> PyResult<(u64, String, u32, u64, Option<u64>)> {
        match self.out.lock().take() {
            Some(s) => Ok((s.id, s.role, s.epoch, s.zxid, s.leader)),
            None => Err(PyValueError::new_err("no status")),
        }
    }
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<Pending>()?;
    m.add_class::<PendingClient>()?;
    m.add_class::<PendingStatus>()?;
    m.add_class::<NativeLock>()?;
    m.add_class::<NativeElection>()?;
    m.add_class::<NativeQueue>()?;
    m.add_class::<NativeRwLock>()?;
    m.add_class::<NativeGroup>()?;
    m.add_class::<NativeTreeCache>()?;
    m.add_class::<NativeCoordinator>()?;
    m.add_class::<NativeParticipant>()?;
    m.add_class::<NativeBarrier>()?;
    m.add_class::<NativeDoubleBarrier>()?;
    m.add_class::<NativeCounter>()?;
    m.add_class::<NativeSemaphore>()?;
    m.add_class::<NativeLockingQueue>()?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(decode_sequencer, m)?)?;
    m.add_function(wrap_pyfunction!(digest_id, m)?)?;
    m.add_function(wrap_pyfunction!(server_status, m)?)?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    log::install();
    Ok(())
}
