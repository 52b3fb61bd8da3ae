//! The recipe handles (`coord_recipes`) for Python: each method spawns the recipe's future
//! and returns a `Pending`, as the client's operations do.

use super::*;

fn status_name(s: LockStatus) -> &'static str {
    match s {
        LockStatus::NotHeld => "NOT_HELD",
        LockStatus::Held => "HELD",
        LockStatus::Jeopardy => "JEOPARDY",
        LockStatus::Lost => "LOST",
    }
}

fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout.map(|t| duration("timeout", t)).transpose()
}

/// `coord_recipes::Lock` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeLock {
    pub(crate) lock: Lock,
}

#[pymethods]
impl NativeLock {
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let l = self.lock.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bool(l.acquire(t).await?)) })
    }
    fn release(&self) -> PyResult<Pending> {
        let l = self.lock.clone();
        spawn(async move {
            l.release().await?;
            Ok(Value::None)
        })
    }
    #[getter]
    fn status(&self) -> &'static str {
        status_name(self.lock.status())
    }
    #[getter]
    fn is_held(&self) -> bool {
        self.lock.is_held()
    }
    #[getter]
    fn sequencer(&self, py: Python<'_>) -> Py<PyAny> {
        match self.lock.sequencer() {
            Some(s) => PyBytes::new(py, &s).into_any().unbind(),
            None => py.None(),
        }
    }
    #[getter]
    fn generation(&self) -> Option<u64> {
        self.lock.generation()
    }
    fn holder(&self) -> PyResult<Pending> {
        let l = self.lock.clone();
        spawn(async move { Ok(Value::Holder(l.holder().await?)) })
    }
}

/// `coord_recipes::Election` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeElection {
    pub(crate) election: Election,
}

#[pymethods]
impl NativeElection {
    #[pyo3(signature = (timeout=None))]
    fn campaign(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let e = self.election.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bool(e.campaign(t).await?)) })
    }
    fn resign(&self) -> PyResult<Pending> {
        let e = self.election.clone();
        spawn(async move {
            e.resign().await?;
            Ok(Value::None)
        })
    }
    #[getter]
    fn is_leader(&self) -> bool {
        self.election.is_leader()
    }
    #[getter]
    fn status(&self) -> &'static str {
        status_name(self.election.status())
    }
    #[getter]
    fn sequencer(&self, py: Python<'_>) -> Py<PyAny> {
        match self.election.sequencer() {
            Some(s) => PyBytes::new(py, &s).into_any().unbind(),
            None => py.None(),
        }
    }
    #[getter]
    fn term(&self) -> Option<u64> {
        self.election.term()
    }
    fn leader(&self) -> PyResult<Pending> {
        let e = self.election.clone();
        spawn(async move { Ok(Value::Leader(e.leader().await?)) })
    }
}

/// `coord_recipes::Queue` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeQueue {
    pub(crate) queue: Queue,
}

#[pymethods]
impl NativeQueue {
    #[pyo3(signature = (data, priority=None))]
    fn put(&self, data: Vec<u8>, priority: Option<u8>) -> PyResult<Pending> {
        let q = self.queue.clone();
        spawn(async move {
            Ok(Value::Str(match priority {
                Some(p) => q.put_priority(&data, p).await?,
                None => q.put(&data).await?,
            }))
        })
    }
    fn len(&self) -> PyResult<Pending> {
        let q = self.queue.clone();
        spawn(async move { Ok(Value::Int(q.len().await? as u64)) })
    }
    #[pyo3(signature = (timeout=None))]
    fn take(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let q = self.queue.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bytes(q.take(t).await?)) })
    }
}

/// `coord_recipes::LockingQueue` for Python; a taken item is `(name, data, claim)`.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeLockingQueue {
    pub(crate) queue: LockingQueue,
}

#[pymethods]
impl NativeLockingQueue {
    #[pyo3(signature = (data, priority=None))]
    fn put(&self, data: Vec<u8>, priority: Option<u8>) -> PyResult<Pending> {
        let q = self.queue.clone();
        spawn(async move {
            Ok(Value::Str(match priority {
                Some(p) => q.put_priority(&data, p).await?,
                None => q.put(&data).await?,
            }))
        })
    }
    fn len(&self) -> PyResult<Pending> {
        let q = self.queue.clone();
        spawn(async move { Ok(Value::Int(q.len().await? as u64)) })
    }
    #[pyo3(signature = (timeout=None))]
    fn take(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let q = self.queue.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Taken(q.take(t).await?)) })
    }
    fn ack(&self, name: String, data: Vec<u8>, claim: Vec<u8>) -> PyResult<Pending> {
        let q = self.queue.clone();
        let item = TakenItem { name, data, claim };
        spawn(async move {
            q.ack(&item).await?;
            Ok(Value::None)
        })
    }
    fn release(&self, name: String, data: Vec<u8>, claim: Vec<u8>) -> PyResult<Pending> {
        let q = self.queue.clone();
        let item = TakenItem { name, data, claim };
        spawn(async move {
            q.release(&item).await?;
            Ok(Value::None)
        })
    }
}

/// `coord_recipes::Barrier` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeBarrier {
    pub(crate) barrier: Barrier,
}

#[pymethods]
impl NativeBarrier {
    fn create(&self) -> PyResult<Pending> {
        let b = self.barrier.clone();
        spawn(async move {
            b.set().await?;
            Ok(Value::None)
        })
    }
    fn remove(&self) -> PyResult<Pending> {
        let b = self.barrier.clone();
        spawn(async move {
            b.remove().await?;
            Ok(Value::None)
        })
    }
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let b = self.barrier.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bool(b.wait(t).await?)) })
    }
}

/// `coord_recipes::DoubleBarrier` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeDoubleBarrier {
    pub(crate) barrier: Arc<DoubleBarrier>,
}

#[pymethods]
impl NativeDoubleBarrier {
    #[pyo3(signature = (timeout=None))]
    fn enter(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let b = self.barrier.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bool(b.enter(t).await?)) })
    }
    #[pyo3(signature = (timeout=None))]
    fn leave(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let b = self.barrier.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Bool(b.leave(t).await?)) })
    }
}

/// `coord_recipes::Counter` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeCounter {
    pub(crate) counter: Counter,
}

#[pymethods]
impl NativeCounter {
    fn get(&self) -> PyResult<Pending> {
        let c = self.counter.clone();
        spawn(async move { Ok(Value::I64(c.get().await?)) })
    }
    fn add(&self, delta: i64) -> PyResult<Pending> {
        let c = self.counter.clone();
        spawn(async move { Ok(Value::I64(c.add(delta).await?)) })
    }
}

/// `coord_recipes::Semaphore` for Python; a lease is `(path, sequencer)`.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeSemaphore {
    pub(crate) semaphore: Semaphore,
}

#[pymethods]
impl NativeSemaphore {
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, timeout: Option<f64>) -> PyResult<Pending> {
        let s = self.semaphore.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Lease(s.acquire(t).await?)) })
    }
    fn release(&self, path: String, sequencer: Vec<u8>) -> PyResult<Pending> {
        let s = self.semaphore.clone();
        let lease = Lease { path, sequencer };
        spawn(async move {
            s.release(&lease).await?;
            Ok(Value::None)
        })
    }
}

/// `coord_recipes::Coordinator` for Python; decisions are "commit" / "abort".
#[pyclass(module = "coord._native")]
pub(crate) struct NativeCoordinator {
    pub(crate) c: Coordinator,
}

#[pymethods]
impl NativeCoordinator {
    fn begin(&self, id: String, participants: Vec<String>) -> PyResult<Pending> {
        let c = self.c.clone();
        spawn(async move {
            let names: Vec<&str> = participants.iter().map(String::as_str).collect();
            c.begin(&id, &names).await?;
            Ok(Value::None)
        })
    }
    fn decide(&self, id: String, timeout: f64) -> PyResult<Pending> {
        let c = self.c.clone();
        let t = duration("timeout", timeout)?;
        spawn(async move { Ok(Value::Decision(Some(c.decide(&id, t).await?))) })
    }
    fn decision(&self, id: String) -> PyResult<Pending> {
        let c = self.c.clone();
        spawn(async move { Ok(Value::Decision(c.decision(&id).await?)) })
    }
}

/// `coord_recipes::Participant` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeParticipant {
    pub(crate) p: Participant,
}

#[pymethods]
impl NativeParticipant {
    fn wait_begun(&self, id: String, timeout: f64) -> PyResult<Pending> {
        let p = self.p.clone();
        let t = duration("timeout", timeout)?;
        spawn(async move { Ok(Value::Bool(p.wait_begun(&id, t).await?)) })
    }
    fn vote(&self, id: String, yes: bool) -> PyResult<Pending> {
        let p = self.p.clone();
        spawn(async move {
            p.vote(&id, yes).await?;
            Ok(Value::None)
        })
    }
    #[pyo3(signature = (id, timeout=None))]
    fn decision(&self, id: String, timeout: Option<f64>) -> PyResult<Pending> {
        let p = self.p.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move { Ok(Value::Decision(p.decision(&id, t).await?)) })
    }
    fn abort_if_undecided(&self, id: String) -> PyResult<Pending> {
        let p = self.p.clone();
        spawn(async move { Ok(Value::Decision(Some(p.abort_if_undecided(&id).await?))) })
    }
}

/// `coord_recipes::RwLock` for Python; a hold is `(path, sequencer)`.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeRwLock {
    pub(crate) lock: RwLock,
}

#[pymethods]
impl NativeRwLock {
    #[pyo3(signature = (write, timeout=None))]
    fn acquire(&self, write: bool, timeout: Option<f64>) -> PyResult<Pending> {
        let l = self.lock.clone();
        let t = timeout_arg(timeout)?;
        spawn(async move {
            Ok(Value::RwHold(if write {
                l.write(t).await?
            } else {
                l.read(t).await?
            }))
        })
    }
    fn release(&self, write: bool, path: String, sequencer: Vec<u8>) -> PyResult<Pending> {
        let l = self.lock.clone();
        let mode = if write {
            coord_client::LockMode::Exclusive
        } else {
            coord_client::LockMode::Shared
        };
        let hold = RwHold {
            path,
            mode,
            sequencer,
        };
        spawn(async move {
            l.release(&hold).await?;
            Ok(Value::None)
        })
    }
}

/// `coord_recipes::Group` for Python.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeGroup {
    pub(crate) group: Group,
}

#[pymethods]
impl NativeGroup {
    fn join(&self, name: String, data: Vec<u8>) -> PyResult<Pending> {
        let g = self.group.clone();
        spawn(async move {
            g.join(&name, &data).await?;
            Ok(Value::None)
        })
    }
    fn leave(&self, name: String) -> PyResult<Pending> {
        let g = self.group.clone();
        spawn(async move {
            g.leave(&name).await?;
            Ok(Value::None)
        })
    }
    fn members(&self) -> PyResult<Pending> {
        let g = self.group.clone();
        spawn(async move { Ok(Value::Members(g.members().await?)) })
    }
}

/// A running `coord_recipes::TreeCache`: a copy of its snapshot, updated by its task.
#[pyclass(module = "coord._native")]
pub(crate) struct NativeTreeCache {
    pub(crate) snapshot: Snapshot,
    pub(crate) task: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

#[pymethods]
impl NativeTreeCache {
    /// `(data, ZnodeStat)` of a cached node, or None.
    fn get(&self, py: Python<'_>, path: &str) -> PyResult<Py<PyAny>> {
        let entry = self.snapshot.lock().get(path).cloned();
        match entry {
            Some((d, s)) => Value::Data(d, s).into_py(py),
            None => Ok(py.None()),
        }
    }
    /// The cached paths, sorted.
    fn paths(&self) -> Vec<String> {
        self.snapshot.lock().keys().cloned().collect()
    }
    /// Stops updating.
    fn close(&self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}
