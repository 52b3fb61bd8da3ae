//! Starting one node: recover the tree from the newest snapshot and the log, persist a new
//! epoch, start the log thread and the actors, then listen for clients.
//!
//! ```text
//!  FileLog::open (torn tail cut) -> snapshot -> replay records -> epoch := max(seen)+1 (fsync)
//!     -> GroupCommit thread -> Proposer, Store, SessionManager -> QUIC listener
//! ```

use crate::config::Config;
use crate::conn::{ConnContext, listen};
use crate::proposer::{Durable, LogFailed, Proposer, SetStore};
use crate::sessions::{Clock, Liveness, SessionManager, SessionTable};
use crate::store::{Store, StoreParts};
use crate::tls;
use actix::prelude::*;
use coord_log::{GroupCommit, LogEvent, LogOptions};
use coord_proto::Zxid;
use coord_tree::{DataTree, Txn};
use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be prepared.
    #[error("data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The log or a snapshot is unreadable.
    #[error("log: {0}")]
    Log(#[from] coord_log::LogError),
    /// A snapshot or record does not decode.
    #[error("recovery: {0}")]
    Recovery(String),
    /// TLS material could not be prepared.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// The client port could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The log as the Store sees it (for snapshots): the standalone group-commit writer, or the
/// replica's disk writer.
#[derive(Clone)]
pub enum LogHandle {
    /// Standalone: the group-commit writer thread.
    Group(Arc<GroupCommit>),
    /// Ensemble: the replica's persist worker.
    Replica(Arc<crate::persist::PersistWorker>),
}

impl LogHandle {
    /// Queues a record; its durability is reported to the Proposer. An error means the log
    /// writer has stopped: nothing more can be made durable. (Standalone only.)
    pub fn submit(&self, zxid: u64, record: Vec<u8>) -> Result<(), coord_log::LogError> {
        match self {
            LogHandle::Group(g) => g.submit(zxid, record),
            LogHandle::Replica(_) => Err(coord_log::LogError::Closed),
        }
    }
    /// Queues a snapshot of the state at `zxid` (a failure is reported as a log event).
    pub fn save_snapshot(&self, zxid: u64, bytes: Vec<u8>) {
        let queued = match self {
            LogHandle::Group(g) => g.save_snapshot(zxid, bytes).is_ok(),
            LogHandle::Replica(w) => w.save_snapshot(zxid, bytes),
        };
        if !queued {
            tracing::error!("cannot queue a snapshot: the log writer stopped");
        }
    }
    /// Queues a purge keeping the newest `keep` snapshots.
    pub fn purge(&self, keep: usize) {
        let queued = match self {
            LogHandle::Group(g) => g.purge(keep).is_ok(),
            LogHandle::Replica(w) => w.purge(keep),
        };
        if !queued {
            tracing::error!("cannot queue a purge: the log writer stopped");
        }
    }
}

/// The tree rebuilt from disk, and the log it came from.
pub struct RecoveredState {
    /// The tree at the last durable zxid.
    pub tree: DataTree,
    /// The opened log.
    pub log: coord_log::FileLog,
    /// Highest zxid found in the log.
    pub last_logged: Zxid,
    /// The replay window: the one saved with the snapshot, then every replayed change.
    pub recent: coord_tree::RecentChanges,
}

/// Opens the log in `dir`, loads the newest snapshot and replays the records after it.
pub fn recover(
    dir: &Path,
    opts: LogOptions,
    data_dir: &Path,
    window: usize,
) -> Result<RecoveredState, NodeError> {
    let (log, report, recovered) = coord_log::recover_dir(dir, opts)?;
    tracing::info!(?report, "log opened");
    let mut tree = match &recovered.snapshot {
        Some((zxid, bytes)) => {
            let tree = DataTree::from_snapshot(bytes)
                .map_err(|e| NodeError::Recovery(format!("snapshot 0x{zxid:x}: {e}")))?;
            tracing::info!(
                zxid = format_args!("0x{zxid:x}"),
                nodes = tree.node_count(),
                "snapshot loaded"
            );
            tree
        }
        None => DataTree::new(),
    };
    let mut last = tree.last_applied();
    let mut recent = crate::store::load_window(data_dir, last, window);
    for (zxid, bytes) in &recovered.records {
        let txn = Txn::decode(bytes)
            .map_err(|e| NodeError::Recovery(format!("record 0x{zxid:x}: {e}")))?;
        if Zxid(*zxid) <= tree.last_applied() {
            continue;
        }
        let outcome = tree.apply(Zxid(*zxid), &txn);
        recent.record(Zxid(*zxid), &outcome.changes);
        last = Zxid(*zxid);
    }
    tracing::info!(replayed = recovered.records.len(), last_zxid = %last, nodes = tree.node_count(), "tree recovered");
    Ok(RecoveredState {
        tree,
        log,
        last_logged: last,
        recent,
    })
}

/// Reads the last accepted epoch (0 if none).
pub fn read_epoch(path: &Path) -> Result<u32, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| NodeError::Recovery(format!("{}: not an epoch: {s:?}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(NodeError::DataDir(path.display().to_string(), e)),
    }
}

/// Durably records `epoch`: temp file, fsync, rename, fsync of the directory.
pub fn write_epoch(path: &Path, epoch: u32) -> Result<(), NodeError> {
    let err = |e| NodeError::DataDir(path.display().to_string(), e);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(format!("{epoch}\n").as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

pub(crate) fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, NodeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |e| NodeError::Bind(addr, e);
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // A larger receive buffer stops drops under load (measured on this machine).
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

/// Runs a node until SIGINT or SIGTERM. Blocks the calling thread. With `members` set it
/// joins the ensemble through ZAB; without, it is a single server.
pub fn run(config: Config) -> Result<(), NodeError> {
    if !config.members.is_empty() {
        return crate::ensemble::run(config);
    }
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::DataDir(config.data_dir.display().to_string(), e))?;
    let tls_files = tls::ensure_material(&config)?;
    let opts = LogOptions {
        segment_bytes: config.log_segment_bytes,
        ..LogOptions::default()
    };
    let recovered = recover(
        &config.log_dir(),
        opts,
        &config.data_dir,
        config.replay_window(),
    )?;
    let epoch = read_epoch(&config.epoch_file())?.max(recovered.last_logged.epoch()) + 1;
    write_epoch(&config.epoch_file(), epoch)?;
    let udp = bind_udp(config.client_addr)?;
    let liveness_addr = udp.local_addr();
    let server_config =
        tls::client_server_config(&tls_files, tls::MAX_SESSIONS_PER_CONNECTION, &config.tls)?;
    tracing::info!(id = config.id, epoch, addr = %config.client_addr, "coordd serving");

    let system = actix_rt::System::new();
    let result: Result<(), NodeError> = system.block_on(async move {
        // TCP beside the QUIC port, so clients see a crash of this process at once.
        let watchable = crate::liveness::Tokens::default();
        let _liveness = liveness_addr
            .ok()
            .and_then(|addr| crate::liveness::listen(addr, watchable.clone()));
        let clock = Clock::new();
        let table = SessionTable::default();
        // Every session found on disk gets a fresh timeout: time spent down expires no one.
        for (id, timeout) in recovered.tree.sessions() {
            table.insert(id, Arc::new(Liveness::new(timeout, clock.now_ms())));
        }
        let proposer_cell: Arc<parking_lot::Mutex<Option<Addr<Proposer>>>> = Arc::default();
        let sink = proposer_cell.clone();
        let group = GroupCommit::spawn(
            Box::new(recovered.log),
            Box::new(move |event| {
                if let Some(p) = sink.lock().as_ref() {
                    match event {
                        LogEvent::Durable(d) => p.do_send(Durable {
                            up_to: d.up_to_zxid,
                        }),
                        LogEvent::Error(e) => p.do_send(LogFailed {
                            message: e.to_string(),
                        }),
                        LogEvent::SnapshotSaved { zxid } => {
                            tracing::info!(zxid = format_args!("0x{zxid:x}"), "snapshot saved")
                        }
                        _ => {}
                    }
                }
            }),
        );
        let log = LogHandle::Group(Arc::new(group?));
        let proposer = Proposer::new(epoch, log.clone()).start();
        *proposer_cell.lock() = Some(proposer.clone());
        let applied = Arc::new(AtomicU64::new(0));
        let store = Store::new(StoreParts {
            tree: recovered.tree,
            recent: recovered.recent,
            config: config.clone(),
            table: table.clone(),
            clock,
            proposer: proposer.clone().recipient(),
            log: log.clone(),
            applied: applied.clone(),
            read_barrier: None,
            cache_acks: None,
        })
        .start();
        proposer.do_send(SetStore(store.clone()));
        SessionManager::new(
            table.clone(),
            clock,
            Duration::from_millis(config.tick_ms),
            store.clone(),
            config.cache_lease_ms,
        )
        .start();

        // One server: the leader of its own one-node ensemble.
        let role = Rc::new(RefCell::new(crate::conn::RoleInfo {
            role: "leader".into(),
            epoch,
            leader: Some(config.id),
            synced_followers: Vec::new(),
            established: true,
            changed: Rc::default(),
        }));
        let ctx = ConnContext::new(
            config.clone(),
            store,
            table,
            clock,
            applied,
            role,
            watchable,
        );
        let endpoint =
            listen(udp, server_config, ctx).map_err(|e| NodeError::Bind(config.client_addr, e))?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        endpoint.close(0u32.into(), b"server shutting down");
        Ok(())
    });
    result
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
