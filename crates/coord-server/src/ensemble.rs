//! Starting one server of an ensemble: recover the applied state (the newest snapshot only:
//! logged txns are delivered again by ZAB once they are known committed), read the epochs,
//! start the disk writer, the peer transport, the replica and the client-facing actors.
//!
//! ```text
//!  FileLog::open -> snapshot -> tree;  records after it -> Persisted.tail (not applied)
//!  acceptedEpoch, currentEpoch -> Persisted -> Zab -> Replica
//!  PersistWorker (disk) <- Replica -> PeerNet (peer_addr, mutual TLS) ; Store, SessionManager
//!  client listener (refuses sessions until the replica is established)
//! ```

use crate::config::Config;
use crate::conn::{ConnContext, RoleInfo, listen};
use crate::liveness::Tokens;
use crate::node::{LogHandle, NodeError, bind_udp, shutdown_signal};
use crate::peer::{PeerNet, PeerNetConfig};
use crate::persist::{Disk, EpochFiles, PersistEvent, PersistWorker};
use crate::replica::{DiskFailed, Persisted, Replica, Wire};
use crate::sessions::{Clock, Liveness, SessionManager, SessionTable};
use crate::store::{SetLeading, Store, StoreParts};
use crate::tls;
use actix::prelude::*;
use coord_log::{LogOptions, LogStorage};
use coord_proto::Zxid;
use coord_tree::DataTree;
use coord_zab::{Persisted as ZabPersisted, Zab, ZabConfig};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Runs this server of the ensemble until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), NodeError> {
    let config = Arc::new(config);
    let me = config
        .me()
        .cloned()
        .ok_or_else(|| NodeError::Recovery("this server is not a member".into()))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::DataDir(config.data_dir.display().to_string(), e))?;
    let tls_files = tls::ensure_material(&config)?;
    let opts = LogOptions {
        segment_bytes: config.log_segment_bytes,
        ..LogOptions::default()
    };
    let (log, report, recovered) = coord_log::recover_dir(&config.log_dir(), opts)?;
    tracing::info!(?report, "log opened");
    let (tree, snap_zxid) = match &recovered.snapshot {
        Some((zxid, bytes)) => (
            DataTree::from_snapshot(bytes)
                .map_err(|e| NodeError::Recovery(format!("snapshot 0x{zxid:x}: {e}")))?,
            *zxid,
        ),
        None => (DataTree::new(), 0),
    };
    // Records after the snapshot are applied again through the Store once ZAB delivers
    // them, and recorded then; the window up to the snapshot comes from beside it.
    let recent =
        crate::store::load_window(&config.data_dir, Zxid(snap_zxid), config.replay_window());
    let epochs = EpochFiles::new(&config.data_dir);
    let persisted = ZabPersisted {
        accepted_epoch: epochs.accepted()?,
        current_epoch: epochs.current()?,
        last_logged: Zxid(log.last_zxid().max(snap_zxid)),
        last_committed_hint: Zxid(snap_zxid),
        tail: recovered
            .records
            .into_iter()
            .map(|(z, r)| (Zxid(z), r))
            .collect(),
    };
    tracing::info!(
        id = config.id,
        accepted_epoch = persisted.accepted_epoch,
        current_epoch = persisted.current_epoch,
        last_logged = %persisted.last_logged,
        snapshot = format_args!("0x{snap_zxid:x}"),
        "recovered"
    );
    let voters: Vec<u64> = config
        .members
        .iter()
        .filter(|m| !m.observer)
        .map(|m| m.id)
        .collect();
    let observers: Vec<u64> = config
        .members
        .iter()
        .filter(|m| m.observer)
        .map(|m| m.id)
        .collect();
    let mut zab_config = ZabConfig::new(
        config.id,
        voters,
        observers,
        config.id ^ crate::wall_ms() as u64,
    );
    zab_config.tick_ms = config.zab.tick_ms;
    zab_config.init_limit_ticks = config.zab.init_limit_ticks;
    zab_config.sync_limit_ticks = config.zab.sync_limit_ticks;
    zab_config.election_timeout_ms = config.zab.election_timeout_ms;
    zab_config.max_diff = config.zab.max_diff;
    let (peer_server, peer_client) = tls::peer_configs(&tls_files)?;
    let client_udp = bind_udp(config.client_addr)?;
    let peer_udp = bind_udp(me.peer_addr)?;
    let liveness_addrs = [client_udp.local_addr(), peer_udp.local_addr()];
    let client_server =
        tls::client_server_config(&tls_files, tls::MAX_SESSIONS_PER_CONNECTION, &config.tls)?;
    let peers: HashMap<u64, std::net::SocketAddr> = config
        .members
        .iter()
        .filter(|m| m.id != config.id)
        .map(|m| (m.id, m.peer_addr))
        .collect();

    let system = actix_rt::System::new();
    system.block_on(async move {
        // TCP beside both QUIC ports, so peers and clients see a crash of this process at
        // once (see `liveness`).
        let (client_watchable, peer_watchable) = (Tokens::default(), Tokens::default());
        let _liveness: Vec<_> = liveness_addrs
            .into_iter()
            .zip([client_watchable.clone(), peer_watchable.clone()])
            .filter_map(|(addr, tokens)| crate::liveness::listen(addr.ok()?, tokens))
            .collect();
        let clock = Clock::new();
        let table = SessionTable::default();
        for (id, timeout) in tree.sessions() {
            table.insert(id, Arc::new(Liveness::new(timeout, clock.now_ms())));
        }
        let role = Rc::new(RefCell::new(RoleInfo { role: "looking".into(), ..RoleInfo::default() }));
        let zab = Zab::new(zab_config, persisted, clock.now_ms());

        let runtime = Arc::new(quinn::TokioRuntime);
        let peer_endpoint =
            quinn::Endpoint::new(crate::tls::endpoint_config(), Some(peer_server), peer_udp, runtime.clone())
                .map_err(|e| NodeError::Bind(me.peer_addr, e))?;
        // PeerNet needs the replica as its sink and the replica needs PeerNet: create the
        // replica's context first.
        let replica_ctx = Context::<Replica>::new();
        let replica_addr = replica_ctx.address();
        let peer_net = PeerNet::new(
            PeerNetConfig { id: config.id, peers, outbox_frames: 100_000, max_frame: 256 << 20 },
            peer_endpoint.clone(),
            peer_client,
            replica_addr.clone().recipient(),
            peer_watchable,
        )
        .start();
        let replica = Replica::new(
            zab,
            clock,
            peer_net,
            table.clone(),
            role.clone(),
            Duration::from_millis(config.zab.tick_ms),
            config.members.iter().map(|m| m.id).filter(|id| *id != config.id).collect(),
        )
        .disk_reserve(&config.data_dir, config.min_free_disk_bytes);
        let replica = replica_ctx.run(replica);

        let sink = replica.clone();
        let disk = Disk::new(Box::new(log), &config.data_dir);
        let worker = PersistWorker::spawn(
            disk,
            Box::new(move |event| match event {
                PersistEvent::Done(token) => sink.do_send(Persisted(token)),
                PersistEvent::Failed(e) => sink.do_send(DiskFailed(e.to_string())),
            }),
        )
        .map_err(|e| NodeError::DataDir("disk writer thread".into(), e))?;
        let worker = Arc::new(worker);
        let applied = Arc::new(AtomicU64::new(0));
        let store = Store::new(StoreParts {
            tree,
            recent,
            config: config.clone(),
            table: table.clone(),
            clock,
            proposer: replica.clone().recipient(),
            log: LogHandle::Replica(worker.clone()),
            applied: applied.clone(),
            read_barrier: Some(replica.clone().recipient()),
            cache_acks: Some(replica.clone().recipient()),
        })
        .start();
        store.do_send(SetLeading(false));
        let sessions =
            SessionManager::new(
            table.clone(),
            clock,
            Duration::from_millis(config.tick_ms),
            store.clone(),
            config.cache_lease_ms,
        )
        .expiring(false)
        .start();
        replica.do_send(Wire { store: store.clone(), sessions, disk: worker });

        let ctx = ConnContext::new(
            config.clone(),
            store,
            table,
            clock,
            applied,
            role,
            client_watchable,
        );
        let endpoint =
            listen(client_udp, client_server, ctx).map_err(|e| NodeError::Bind(config.client_addr, e))?;
        tracing::info!(id = config.id, client = %config.client_addr, peer = %me.peer_addr, "coordd serving (ensemble)");
        shutdown_signal().await;
        tracing::info!("shutting down");
        endpoint.close(0u32.into(), b"server shutting down");
        peer_endpoint.close(0u32.into(), b"server shutting down");
        Ok(())
    })
}
