//! The replica's disk: the txn log plus the two epoch files ZAB keeps (`acceptedEpoch`,
//! `currentEpoch`), driven by a writer thread that executes persist requests in order and
//! fsyncs once per batch (group commit with completion tokens).
//!
//! ```text
//!  submit(token, ops) ─► channel ─► writer: take one, drain what is queued,
//!                                   execute every op in order, sync once,
//!                                   on_done(highest token)   (cumulative)
//! ```
//!
//! Invariants:
//! - completion is cumulative and in order: `on_done(t)` means every request up to `t`
//!   is durable (log records fsynced, epoch files written with fsync + rename + dir fsync);
//! - an epoch file is replaced atomically, so a crash leaves the old or the new value;
//! - after any failure the writer stops and reports it; nothing after it is reported durable.

use coord_log::{LogError, LogStorage};
use crossbeam_channel::{Receiver, Sender};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// One durable operation (mirrors the ZAB core's storage ops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Append a record.
    Append(u64, Vec<u8>),
    /// Drop every record after this zxid.
    TruncateAfter(u64),
    /// Store a snapshot of the state at this zxid and drop log records after it.
    InstallSnapshot(u64, Vec<u8>),
    /// Write `acceptedEpoch`.
    AcceptedEpoch(u32),
    /// Write `currentEpoch`.
    CurrentEpoch(u32),
}

/// The two epoch files in a data directory.
#[derive(Debug, Clone)]
pub struct EpochFiles {
    dir: PathBuf,
}

impl EpochFiles {
    /// Epoch files under `dir`.
    pub fn new(dir: &Path) -> EpochFiles {
        EpochFiles {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self, name: &str) -> Result<u32, LogError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|_| LogError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!("not an epoch: {:?}", s.trim()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn write(&self, name: &str, epoch: u32) -> Result<(), LogError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(format!("{epoch}\n").as_bytes())
            .map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.dir, e))
    }

    /// `acceptedEpoch` (0 if never written).
    pub fn accepted(&self) -> Result<u32, LogError> {
        self.read("acceptedEpoch")
    }
    /// `currentEpoch` (0 if never written).
    pub fn current(&self) -> Result<u32, LogError> {
        self.read("currentEpoch")
    }
}

fn io(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        context: path.display().to_string(),
        source,
    }
}

/// Executes ops on a log and the epoch files (no sync of appends; see [`sync`](Self::sync)).
pub struct Disk {
    log: Box<dyn LogStorage>,
    epochs: EpochFiles,
    /// Test-only slow-disk hook (see [`FAULT_HOOKS_ENV`]).
    fsync_delay_file: Option<PathBuf>,
    /// Test-only failing-disk hook (see [`FSYNC_EIO_FILE`]).
    fsync_eio_file: Option<PathBuf>,
}

/// When this environment variable is `1` at startup, every fsync batch first sleeps for the
/// number of milliseconds written in `<data_dir>/fault-fsync-delay-ms` (no file: no delay).
/// The verifier's nemesis uses it to make one server's disk slow; production never sets it.
pub const FAULT_HOOKS_ENV: &str = "COORD_FAULT_HOOKS";

/// The file the slow-disk hook reads, under the data directory.
pub const FSYNC_DELAY_FILE: &str = "fault-fsync-delay-ms";

/// With [`FAULT_HOOKS_ENV`] set, while this file exists under the data directory every
/// fsync fails with EIO (a disk that lost a write), which must stop the server.
pub const FSYNC_EIO_FILE: &str = "fault-fsync-eio";

impl Disk {
    /// A disk over `log` with epoch files in `epoch_dir`.
    pub fn new(log: Box<dyn LogStorage>, epoch_dir: &Path) -> Disk {
        let hooks = std::env::var(FAULT_HOOKS_ENV).is_ok_and(|v| v == "1");
        Disk {
            log,
            epochs: EpochFiles::new(epoch_dir),
            fsync_delay_file: hooks.then(|| epoch_dir.join(FSYNC_DELAY_FILE)),
            fsync_eio_file: hooks.then(|| epoch_dir.join(FSYNC_EIO_FILE)),
        }
    }

    /// The slow-disk hook: sleeps as long as the delay file says (bounded to 10 s).
    fn fault_delay(&self) {
        let Some(path) = &self.fsync_delay_file else {
            return;
        };
        let ms = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(10_000);
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// Executes one op. Appends are buffered until [`sync`](Self::sync); everything else is
    /// durable when it returns.
    pub fn execute(&mut self, op: DiskOp) -> Result<(), LogError> {
        match op {
            DiskOp::Append(zxid, record) => self.log.append(zxid, &record),
            DiskOp::TruncateAfter(zxid) => {
                if zxid < self.log.last_zxid() {
                    self.log.truncate_after(zxid)
                } else {
                    Ok(())
                }
            }
            DiskOp::InstallSnapshot(zxid, bytes) => {
                // Records after the snapshot belong to a history the leader replaced.
                if zxid < self.log.last_zxid() {
                    self.log.truncate_after(zxid)?;
                }
                self.log.save_snapshot(zxid, &bytes)
            }
            DiskOp::AcceptedEpoch(e) => {
                self.log.sync()?;
                self.epochs.write("acceptedEpoch", e)
            }
            DiskOp::CurrentEpoch(e) => {
                // Rule 4: the epoch is written only after the txns it covers are on disk.
                self.log.sync()?;
                self.epochs.write("currentEpoch", e)
            }
        }
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.fault_delay();
        if let Some(path) = &self.fsync_eio_file
            && path.exists()
        {
            return Err(LogError::Io {
                context: format!("fdatasync (fault hook {})", path.display()),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        self.log.sync()
    }

    /// The log, for reads.
    pub fn log(&self) -> &dyn LogStorage {
        self.log.as_ref()
    }
}

enum Cmd {
    Persist(u64, Vec<DiskOp>),
    /// The app's own snapshot of its applied state (not a ZAB op; no completion token).
    SaveSnapshot(u64, Vec<u8>),
    /// Keep the newest `n` snapshots and the log they need.
    Purge(usize),
    Stop,
}

/// What the writer reports.
#[derive(Debug)]
pub enum PersistEvent {
    /// Every request up to and including this token is durable.
    Done(u64),
    /// The disk failed; the writer stopped.
    Failed(LogError),
}

/// The writer thread.
pub struct PersistWorker {
    tx: Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

impl PersistWorker {
    /// Starts the writer over `disk`, reporting to `on_event` (called on the writer thread).
    pub fn spawn(
        mut disk: Disk,
        mut on_event: Box<dyn FnMut(PersistEvent) + Send>,
    ) -> std::io::Result<PersistWorker> {
        let (tx, rx): (Sender<Cmd>, Receiver<Cmd>) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("coord-persist".into())
            .spawn(move || {
                'outer: while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    let mut last = None;
                    let mut stop = false;
                    for cmd in batch {
                        match cmd {
                            Cmd::Persist(token, ops) => {
                                for op in ops {
                                    if let Err(e) = disk.execute(op) {
                                        on_event(PersistEvent::Failed(e));
                                        break 'outer;
                                    }
                                }
                                last = Some(token);
                            }
                            Cmd::SaveSnapshot(zxid, bytes) => {
                                if let Err(e) = disk.log.save_snapshot(zxid, &bytes) {
                                    on_event(PersistEvent::Failed(e));
                                    break 'outer;
                                }
                                tracing::info!(zxid = format_args!("0x{zxid:x}"), "snapshot saved");
                                drop(bytes);
                                // The buffer came from the snapshot thread, which has exited:
                                // its pages sit in an abandoned mimalloc heap until collected.
                                // SAFETY: mi_collect has no preconditions.
                                unsafe { libmimalloc_sys::mi_collect(true) };
                            }
                            Cmd::Purge(keep) => {
                                if let Err(e) = disk.log.purge(keep) {
                                    on_event(PersistEvent::Failed(e));
                                    break 'outer;
                                }
                            }
                            Cmd::Stop => stop = true,
                        }
                    }
                    if let Err(e) = disk.sync() {
                        on_event(PersistEvent::Failed(e));
                        break;
                    }
                    if let Some(t) = last {
                        on_event(PersistEvent::Done(t));
                    }
                    if stop {
                        break;
                    }
                }
            })?;
        Ok(PersistWorker {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues a snapshot of the app's state at `zxid`.
    pub fn save_snapshot(&self, zxid: u64, bytes: Vec<u8>) -> bool {
        self.tx.send(Cmd::SaveSnapshot(zxid, bytes)).is_ok()
    }

    /// Queues a purge keeping the newest `keep` snapshots.
    pub fn purge(&self, keep: usize) -> bool {
        self.tx.send(Cmd::Purge(keep)).is_ok()
    }

    /// Queues a request; false if the writer has stopped.
    pub fn submit(&self, token: u64, ops: Vec<DiskOp>) -> bool {
        self.tx.send(Cmd::Persist(token, ops)).is_ok()
    }
}

impl Drop for PersistWorker {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_log::{FileLog, LogOptions};
    use std::sync::{Arc, Mutex};

    fn open(dir: &Path) -> Disk {
        let (log, _) = FileLog::open(&dir.join("log"), LogOptions::default()).unwrap();
        Disk::new(Box::new(log), dir)
    }

    #[test]
    fn batches_complete_cumulatively_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let done = Arc::new(Mutex::new(Vec::new()));
        {
            let d = done.clone();
            let w = PersistWorker::spawn(
                open(tmp.path()),
                Box::new(move |e| d.lock().unwrap().push(format!("{e:?}"))),
            )
            .unwrap();
            assert!(w.submit(1, vec![DiskOp::AcceptedEpoch(1)]));
            for t in 2..200u64 {
                assert!(w.submit(t, vec![DiskOp::Append((1 << 32) | t, vec![t as u8; 10])]));
            }
            assert!(w.submit(200, vec![DiskOp::CurrentEpoch(1)]));
        }
        let events = done.lock().unwrap().clone();
        assert_eq!(events.last().map(String::as_str), Some("Done(200)"));
        let tokens: Vec<u64> = events
            .iter()
            .map(|e| e[5..e.len() - 1].parse().unwrap())
            .collect();
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
        let disk = open(tmp.path());
        assert_eq!(disk.epochs.accepted().unwrap(), 1);
        assert_eq!(disk.epochs.current().unwrap(), 1);
        assert_eq!(disk.log().read_after(0).unwrap().len(), 198);
    }

    #[test]
    fn truncate_and_install_snapshot_replace_a_divergent_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let mut disk = open(tmp.path());
        for c in 1..=10u64 {
            disk.execute(DiskOp::Append((1 << 32) | c, vec![1]))
                .unwrap();
        }
        disk.sync().unwrap();
        disk.execute(DiskOp::TruncateAfter((1 << 32) | 7)).unwrap();
        assert_eq!(disk.log().last_zxid(), (1 << 32) | 7);
        // A no-op when nothing lies beyond.
        disk.execute(DiskOp::TruncateAfter((1 << 32) | 9)).unwrap();
        disk.execute(DiskOp::InstallSnapshot((1 << 32) | 5, b"state".to_vec()))
            .unwrap();
        assert_eq!(disk.log().last_zxid(), (1 << 32) | 5);
        disk.execute(DiskOp::Append((2 << 32) | 1, vec![2]))
            .unwrap();
        disk.sync().unwrap();
        drop(disk);
        let disk = open(tmp.path());
        assert_eq!(
            disk.log().latest_snapshot().unwrap(),
            Some(((1 << 32) | 5, b"state".to_vec()))
        );
        assert_eq!(
            disk.log().read_after((1 << 32) | 5).unwrap(),
            vec![((2 << 32) | 1, vec![2])]
        );
    }

    #[test]
    fn a_corrupt_epoch_file_is_an_error_not_zero() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("currentEpoch"), "banana").unwrap();
        assert!(EpochFiles::new(tmp.path()).current().is_err());
        assert_eq!(EpochFiles::new(tmp.path()).accepted().unwrap(), 0);
    }
}
