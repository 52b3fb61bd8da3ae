//! [`GroupCommit`]: a writer thread that turns a queue of appends into one fsync per batch.
//!
//! ```text
//!  submit(zxid, rec) ──┐                     writer thread
//!  submit(zxid, rec) ──┼─► channel ─► take one, drain what is queued (≤ limits)
//!  truncate/snapshot ──┘               append all ─► sync() once ─► on_event(Durable{..})
//! ```
//!
//! Commands travel the same channel as appends, so they run in submission order: a batch
//! never spans a command; the appends queued before it are synced and reported first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::{LogError, LogStorage};

/// A batch that is now durable: every submitted record with zxid <= `up_to_zxid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Highest zxid made durable; monotone across events.
    pub up_to_zxid: u64,
    /// Records in this batch.
    pub records: usize,
    /// Payload bytes in this batch.
    pub bytes: usize,
}

/// What the writer thread reports, in the order it happened.
#[derive(Debug)]
pub enum LogEvent {
    /// A batch of appends is durable.
    Durable(Durable),
    /// `truncate_after(zxid)` is done and durable.
    Truncated {
        /// Records above it are gone.
        zxid: u64,
    },
    /// `save_snapshot(zxid, ..)` is done and durable.
    SnapshotSaved {
        /// The snapshot's zxid.
        zxid: u64,
    },
    /// `purge(keep)` is done.
    Purged {
        /// Snapshots kept.
        keep: usize,
    },
    /// An operation failed. The writer has stopped: nothing after it is reported durable
    /// and further submissions fail with [`LogError::Closed`]. Records of the failed batch
    /// were never reported durable (they may or may not be on disk).
    Error(LogError),
}

/// Counters of the writer thread (monotone), for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Batches made durable.
    pub batches: u64,
    /// Records made durable.
    pub records: u64,
    /// Payload bytes made durable.
    pub bytes: u64,
    /// Calls to `sync` for batches (one per batch).
    pub syncs: u64,
}

/// Batch size caps: the writer stops draining the queue at either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records per batch (default 4096).
    pub max_records: usize,
    /// Most payload bytes per batch (default 4 MiB); a single larger record is its own batch.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: 4096,
            max_bytes: 4 << 20,
        }
    }
}

enum Msg {
    Append { zxid: u64, record: Vec<u8> },
    Truncate(u64),
    Snapshot(u64, Vec<u8>),
    Purge(usize),
    Shutdown,
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
}

/// What the writer thread hands back when it exits.
type Exit = (Box<dyn LogStorage>, Result<(), LogError>);

/// Group-commit front of a [`LogStorage`], owning it on a dedicated writer thread.
///
/// Call order: [`spawn`](Self::spawn), then any mix of [`submit`](Self::submit) (zxids
/// strictly increasing in submission order; the caller serialises concurrent submitters)
/// and commands, then [`shutdown`](Self::shutdown). `on_event` runs on the writer thread,
/// once per batch or command, in order; it should hand off quickly.
pub struct GroupCommit {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Exit>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer thread with default [`BatchLimits`].
    pub fn spawn(
        storage: Box<dyn LogStorage>,
        on_event: Box<dyn FnMut(LogEvent) + Send>,
    ) -> Result<GroupCommit, LogError> {
        GroupCommit::spawn_with_limits(storage, BatchLimits::default(), on_event)
    }

    /// Starts the writer thread with the given batch caps.
    pub fn spawn_with_limits(
        storage: Box<dyn LogStorage>,
        limits: BatchLimits,
        on_event: Box<dyn FnMut(LogEvent) + Send>,
    ) -> Result<GroupCommit, LogError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            storage,
            rx,
            on_event,
            shared: shared.clone(),
            limits,
        };
        let handle = std::thread::Builder::new()
            .name("coord-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::io("spawn log writer thread", e))?;
        Ok(GroupCommit {
            tx,
            shared,
            handle: Some(handle),
        })
    }

    fn send(&self, msg: Msg) -> Result<(), LogError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        self.tx.send(msg).map_err(|_| LogError::Closed)
    }

    /// Queues a record (never blocks). Durable once an event reports `up_to_zxid >= zxid`.
    pub fn submit(&self, zxid: u64, record: Vec<u8>) -> Result<(), LogError> {
        self.send(Msg::Append { zxid, record })
    }

    /// Queues `truncate_after(zxid)`, run after everything submitted before it.
    pub fn truncate_after(&self, zxid: u64) -> Result<(), LogError> {
        self.send(Msg::Truncate(zxid))
    }

    /// Queues `save_snapshot(zxid, bytes)`. It runs on the writer thread, so appends
    /// submitted after it wait for it: produce `bytes` elsewhere, only the write runs here.
    pub fn save_snapshot(&self, zxid: u64, bytes: Vec<u8>) -> Result<(), LogError> {
        self.send(Msg::Snapshot(zxid, bytes))
    }

    /// Queues `purge(keep)`.
    pub fn purge(&self, keep: usize) -> Result<(), LogError> {
        self.send(Msg::Purge(keep))
    }

    /// Counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        let s = &self.shared;
        GroupCommitStats {
            batches: s.batches.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
        }
    }

    /// Processes everything queued, syncs, stops the writer and returns the storage.
    /// Fails if that final sync fails, or with [`LogError::Closed`] if an error had already
    /// stopped the writer (that error went to `on_event`).
    pub fn shutdown(mut self) -> Result<Box<dyn LogStorage>, LogError> {
        let (storage, result) = self.join();
        result.map(|()| storage)
    }

    fn join(&mut self) -> Exit {
        // A failed send means the writer already exited; joining still collects it.
        let _ = self.tx.send(Msg::Shutdown);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(exit)) => exit,
            // The writer (or `on_event`) panicked: keep panicking rather than hide it.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("join is called once: by shutdown or by drop"),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if self.handle.is_some() && !std::thread::panicking() {
            let _ = self.join();
        }
    }
}

struct Writer {
    storage: Box<dyn LogStorage>,
    rx: Receiver<Msg>,
    on_event: Box<dyn FnMut(LogEvent) + Send>,
    shared: Arc<Shared>,
    limits: BatchLimits,
}

impl Writer {
    fn run(mut self) -> Exit {
        let mut stash = None;
        let failure = loop {
            let msg = match stash.take() {
                Some(msg) => msg,
                None => match self.rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => Msg::Shutdown, // every sender is gone
                },
            };
            let result = match msg {
                Msg::Append { zxid, record } => self.batch(zxid, record, &mut stash),
                Msg::Truncate(zxid) => self
                    .storage
                    .truncate_after(zxid)
                    .map(|()| LogEvent::Truncated { zxid }),
                Msg::Snapshot(zxid, bytes) => self
                    .storage
                    .save_snapshot(zxid, &bytes)
                    .map(|()| LogEvent::SnapshotSaved { zxid }),
                Msg::Purge(keep) => self.storage.purge(keep).map(|()| LogEvent::Purged { keep }),
                Msg::Shutdown => break self.storage.sync(),
            };
            match result {
                Ok(event) => (self.on_event)(event),
                Err(error) => {
                    self.shared.stopped.store(true, Ordering::Release);
                    tracing::error!(%error, "log writer stopped");
                    (self.on_event)(LogEvent::Error(error));
                    break Err(LogError::Closed);
                }
            }
        };
        self.shared.stopped.store(true, Ordering::Release);
        (self.storage, failure)
    }

    /// Appends `first` and whatever else is queued (up to the limits), then syncs once.
    /// A queued command ends the batch and is left in `stash` to run next.
    fn batch(
        &mut self,
        zxid: u64,
        record: Vec<u8>,
        stash: &mut Option<Msg>,
    ) -> Result<LogEvent, LogError> {
        let (mut up_to, mut records, mut bytes) = (zxid, 1usize, record.len());
        self.storage.append(zxid, &record)?;
        while records < self.limits.max_records && bytes < self.limits.max_bytes {
            match self.rx.try_recv() {
                Ok(Msg::Append { zxid, record }) => {
                    self.storage.append(zxid, &record)?;
                    up_to = zxid;
                    records += 1;
                    bytes += record.len();
                }
                Ok(other) => {
                    *stash = Some(other);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.storage.sync()?;
        let s = &self.shared;
        s.syncs.fetch_add(1, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.records.fetch_add(records as u64, Ordering::Relaxed);
        s.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(LogEvent::Durable(Durable {
            up_to_zxid: up_to,
            records,
            bytes,
        }))
    }
}
