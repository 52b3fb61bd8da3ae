//! The replica: the actor that drives the ZAB core (`coord_zab::Zab`) for one server of an
//! ensemble. It makes no protocol decision: every input becomes a `handle_*` call, then every
//! action is executed in order (send on a peer link, persist through the disk writer, apply a
//! commit in the Store, take a snapshot, react to a role change), and the single timer is
//! re-armed from `poll_timeout`.
//!
//! ```text
//!   PeerNet ──PeerEvent──►            ┌─ Send ───────────► PeerNet (per-peer FIFO link)
//!   PersistWorker ─Persisted──► Zab ──┼─ Persist ────────► PersistWorker (one fsync per batch)
//!   Store ──Propose(txn)──►           ├─ Commit ─────────► Store (apply, answer the waiter)
//!                                     ├─ TakeSnapshot ───► Store ─► handle_snapshot
//!                                     └─ RoleChanged ────► Store, SessionManager, status
//! ```
//!
//! Peer frames are `[tag][body]`: tag 0 carries a `ZabMessage`; tag 1 an [`AppMessage`]
//! (writes forwarded by followers to the leader, the leader's refusals, session liveness).
//! Followers forward client writes to the leader over the same FIFO link that carries the
//! leader's proposals, and match the commits to their waiting requests by (session, xid).

use crate::cache::{CacheRegistry, Invalidation, Touched};
use crate::conn::RoleInfo;
use crate::peer::{PeerEvent, PeerNet, SendTo};
use crate::persist::{DiskOp, PersistWorker};
use crate::proposer::Propose;
use crate::sessions::{Clock, SessionManager, SessionTable, SetExpiring};
use crate::store::{
    CacheAcked, CacheInvalidate, CacheRelease, Committed, DropAllSessions, InstallSnapshot,
    NewTerm, ReadBarrier, ReadIndexDone, Rejected, SetEpoch, SetLeading, SetServing, Store,
    TakeSnapshot,
};
use actix::prelude::*;
use coord_proto::ErrorCode;
use coord_tree::Txn;
use coord_zab::{Action, PersistToken, Role, Status, StorageOp, Zab, ZabMessage};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

const TAG_ZAB: u8 = 0;
const TAG_APP: u8 = 1;

pub use crate::app_msg::AppMessage;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() + 1) as u32;
    let mut f = Vec::with_capacity(body.len() + 5);
    f.extend_from_slice(&len.to_le_bytes());
    f.push(tag);
    f.extend_from_slice(body);
    f
}

/// The disk writer finished every persist request up to this token.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persisted(pub u64);

/// The disk writer failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DiskFailed(pub String);

#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

#[derive(Message)]
#[rtype(result = "()")]
struct CacheWake;

/// Wiring set after start (the actors are created in a cycle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wire {
    /// The Store.
    pub store: Addr<Store>,
    /// The SessionManager.
    pub sessions: Addr<SessionManager>,
    /// The disk writer.
    pub disk: Arc<PersistWorker>,
}

/// Drives one server's ZAB state machine.
pub struct Replica {
    /// Free space of the data directory (the leader refuses writes below the reserve).
    disk_space: crate::disk_space::DiskGuard,
    zab: Zab,
    clock: Clock,
    peers: Addr<PeerNet>,
    store: Option<Addr<Store>>,
    session_mgr: Option<Addr<SessionManager>>,
    disk: Option<Arc<PersistWorker>>,
    table: SessionTable,
    role: Rc<RefCell<RoleInfo>>,
    /// The status when we last served clients (established), to notice any change.
    serving: Option<(Role, u32, Option<u64>)>,
    timer: Option<SpawnHandle>,
    last_touch_report: u64,
    tick: Duration,
    /// Linearizable-read requests registered with the ZAB core (leader): core id → who
    /// asked (this server's Store round, or a learner and its id).
    reads: HashMap<u64, ReadOrigin>,
    next_read: u64,
    /// Read rounds of this server's Store forwarded to the leader (learner).
    remote_reads: BTreeSet<u64>,
    /// The other servers of the ensemble (observers included).
    others: Vec<u64>,
    /// Leader: which sessions cache which nodes, pending invalidations.
    cache: CacheRegistry,
    /// Leader: what the txns proposed and not yet committed may change in a cache.
    proposed: BTreeMap<u64, Touched>,
    cache_timer: Option<(u64, SpawnHandle)>,
}

/// Who is waiting for a linearizable-read confirmation.
#[derive(Debug, Clone, Copy)]
enum ReadOrigin {
    /// This server's Store, round `0`.
    Local(u64),
    /// A learner (`0`) and its request id (`1`).
    Remote(u64, u64),
}

impl Replica {
    /// Keeps `reserve` bytes free on `dir`'s filesystem: below it, as leader, this replica
    /// refuses writes that would grow the data (`DiskFull`).
    pub fn disk_reserve(mut self, dir: &std::path::Path, reserve: u64) -> Self {
        self.disk_space = crate::disk_space::DiskGuard::new(dir, reserve);
        self
    }

    /// A replica around `zab`.
    pub fn new(
        zab: Zab,
        clock: Clock,
        peers: Addr<PeerNet>,
        table: SessionTable,
        role: Rc<RefCell<RoleInfo>>,
        tick: Duration,
        others: Vec<u64>,
    ) -> Self {
        Replica {
            disk_space: crate::disk_space::DiskGuard::new(std::path::Path::new("."), 0),
            zab,
            clock,
            peers,
            store: None,
            session_mgr: None,
            disk: None,
            table,
            role,
            serving: None,
            timer: None,
            last_touch_report: 0,
            tick,
            reads: HashMap::new(),
            next_read: 0,
            remote_reads: BTreeSet::new(),
            others,
            cache: CacheRegistry::default(),
            proposed: BTreeMap::new(),
            cache_timer: None,
        }
    }

    /// Before any server learns that the txns up to `upto` committed: the invalidations
    /// they need, to every server (ahead of the Commit on each FIFO peer link) and to this
    /// server's Store (ahead of the `Committed`).
    fn invalidate_upto(&mut self, upto: u64) {
        if self
            .proposed
            .first_key_value()
            .is_none_or(|(z, _)| *z > upto)
        {
            return;
        }
        let later = self.proposed.split_off(&(upto + 1));
        let now = self.clock.now_ms();
        for (zxid, touched) in std::mem::replace(&mut self.proposed, later) {
            if let Some(inv) = self.cache.invalidate(now, zxid, &touched) {
                self.broadcast_invalidation(inv);
            }
        }
    }

    fn broadcast_invalidation(&self, inv: Invalidation) {
        let msg = AppMessage::CacheInvalidate {
            zxid: inv.zxid,
            lease_ms: inv.lease_ms,
            targets: inv.targets.clone(),
        };
        for &peer in &self.others {
            self.send_app(peer, &msg);
        }
        if let Some(store) = &self.store {
            store.do_send(CacheInvalidate(inv));
        }
    }

    fn broadcast_release(&self, zxid: u64) {
        for &peer in &self.others {
            self.send_app(peer, &AppMessage::CacheRelease { zxid });
        }
        if let Some(store) = &self.store {
            store.do_send(CacheRelease(zxid));
        }
    }

    fn cache_acked(&mut self, session: u64, zxid: u64) {
        if self.cache.acked(session, zxid) {
            self.broadcast_release(zxid);
        }
    }

    fn register_cache(&mut self, entries: Vec<(u64, String, u32)>) {
        let now = self.clock.now_ms();
        for (session, path, lease) in entries {
            self.cache.register(now, session, &path, lease);
        }
    }

    fn arm_cache_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.cache.next_deadline() else {
            return;
        };
        if self.cache_timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        if let Some((_, h)) = self.cache_timer.take() {
            ctx.cancel_future(h);
        }
        let wait = Duration::from_millis(at.saturating_sub(self.clock.now_ms()));
        self.cache_timer = Some((at, ctx.notify_later(CacheWake, wait)));
    }

    fn send_app(&self, to: u64, msg: &AppMessage) {
        match rkyv::to_bytes::<rkyv::rancor::Error>(msg) {
            Ok(body) => self.peers.do_send(SendTo {
                to,
                frame: frame(TAG_APP, &body),
            }),
            Err(e) => tracing::error!(error = %e, "cannot encode a peer message"),
        }
    }

    /// Executes every pending action, then re-arms the timer. Until [`Wire`] arrives the
    /// actions wait inside the core.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.disk.is_none() {
            return;
        }
        while let Some(action) = self.zab.poll_action() {
            // Invalidations leave before the first news of their commit, to anyone.
            match &action {
                Action::Send {
                    msg: ZabMessage::Commit { zxid } | ZabMessage::Inform { zxid, .. },
                    ..
                }
                | Action::Commit { zxid, .. } => self.invalidate_upto(zxid.0),
                _ => {}
            }
            match action {
                Action::Send { to, msg } => {
                    self.peers.do_send(SendTo {
                        to,
                        frame: frame(TAG_ZAB, &msg.encode()),
                    });
                }
                Action::Persist { token, ops } => self.persist(token, ops),
                Action::Commit { zxid, txn } => match Txn::decode(&txn) {
                    Ok(txn) => {
                        if let Some(store) = &self.store {
                            store.do_send(Committed { zxid, txn });
                        }
                    }
                    Err(e) => {
                        // Committed bytes every replica logged: if they do not decode, this
                        // build cannot serve this ensemble's data correctly.
                        tracing::error!(%zxid, error = %e, "a committed txn does not decode; stopping");
                        std::process::exit(70);
                    }
                },
                Action::TakeSnapshot { for_peer } => {
                    if let Some(store) = self.store.clone() {
                        ctx.spawn(store.send(TakeSnapshot).into_actor(self).map(
                            move |r, this, ctx| {
                                if let Ok(Some((zxid, bytes))) = r {
                                    let now = this.clock.now_ms();
                                    this.zab.handle_snapshot(now, for_peer, zxid, bytes);
                                    this.drain(ctx);
                                }
                            },
                        ));
                    }
                }
                Action::RoleChanged(status) => self.role_changed(status),
                Action::ReadIndexReady { id, zxid } => self.read_answered(id, Some(zxid)),
                Action::ReadIndexFailed { id } => self.read_answered(id, None),
            }
        }
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        if let Some(at) = self.zab.poll_timeout() {
            let wait = Duration::from_millis(at.saturating_sub(self.clock.now_ms()));
            self.timer = Some(ctx.notify_later(Wake, wait));
        }
        self.arm_cache_timer(ctx);
    }

    /// Hands a ZAB read confirmation (or failure) to whoever asked.
    fn read_answered(&mut self, id: u64, zxid: Option<coord_zab::Zxid>) {
        match self.reads.remove(&id) {
            Some(ReadOrigin::Local(round)) => self.read_done(round, zxid),
            Some(ReadOrigin::Remote(peer, their)) => self.send_app(
                peer,
                &AppMessage::ReadIndexReply {
                    id: their,
                    zxid: zxid.map(|z| z.0),
                },
            ),
            None => tracing::warn!(id, "a read confirmation nobody asked for"),
        }
    }

    fn read_done(&self, round: u64, zxid: Option<coord_zab::Zxid>) {
        if let Some(store) = &self.store {
            store.do_send(ReadIndexDone {
                round,
                result: zxid.ok_or(ErrorCode::NotServing),
            });
        }
    }

    /// Registers a read with the core (leader); false if this server does not lead.
    fn register_read(&mut self, origin: ReadOrigin) -> bool {
        self.next_read += 1;
        let id = self.next_read;
        let now = self.clock.now_ms();
        if self.zab.read_index(now, id).is_ok() {
            self.reads.insert(id, origin);
            true
        } else {
            false
        }
    }

    fn persist(&mut self, token: PersistToken, ops: Vec<StorageOp>) {
        let ops: Vec<DiskOp> = ops
            .into_iter()
            .map(|op| match op {
                StorageOp::Append(z, bytes) => DiskOp::Append(z.0, bytes),
                StorageOp::TruncateAfter(z) => DiskOp::TruncateAfter(z.0),
                StorageOp::InstallSnapshot(z, bytes) => {
                    // The state machine moves to the snapshot now, before the commits that
                    // follow it; its durability is the disk writer's job.
                    if let Some(store) = &self.store {
                        store.do_send(InstallSnapshot {
                            zxid: z,
                            bytes: bytes.clone(),
                        });
                    }
                    DiskOp::InstallSnapshot(z.0, bytes)
                }
                StorageOp::AcceptedEpoch(e) => DiskOp::AcceptedEpoch(e),
                StorageOp::CurrentEpoch(e) => DiskOp::CurrentEpoch(e),
            })
            .collect();
        match &self.disk {
            Some(disk) if disk.submit(token.0, ops) => {}
            _ => {
                tracing::error!("the disk writer stopped; stopping the server");
                std::process::exit(70);
            }
        }
    }

    fn role_changed(&mut self, status: Status) {
        if status.role == Role::Looking {
            // Every election has a cause an operator can read (ZooKeeper logs none).
            let reason = self.zab.last_looking_reason();
            tracing::warn!(epoch = status.epoch, reason, "LOOKING");
        } else {
            tracing::info!(role = ?status.role, epoch = status.epoch, leader = ?status.leader, established = status.established, "role");
        }
        let key = (status.role, status.epoch, status.leader);
        let serve = status.established && status.role != Role::Looking;
        if self.serving.is_some() && (!serve || self.serving != Some(key)) {
            // As a ZooKeeper server does when it loses its leader: drop every client session
            // stream; the clients resume their sessions here or elsewhere.
            if let Some(store) = &self.store {
                store.do_send(DropAllSessions {
                    message: "server lost its leader".into(),
                });
            }
        }
        if self.serving != serve.then_some(key) {
            // Reads forwarded to a leader we no longer follow will not be answered by it.
            for round in std::mem::take(&mut self.remote_reads) {
                self.read_done(round, None);
            }
            // A new term: registrations and invalidations of the last one end (the Store
            // accepts no session for one lease, so leases granted in it run out first).
            self.cache.clear();
            self.proposed.clear();
            if let Some(store) = &self.store {
                store.do_send(NewTerm);
            }
        }
        self.serving = serve.then_some(key);
        let leading = serve && status.role == Role::Leading;
        if let Some(store) = &self.store {
            store.do_send(SetLeading(leading));
            store.do_send(SetEpoch(status.epoch));
            store.do_send(SetServing(serve));
        }
        if let Some(m) = &self.session_mgr {
            m.do_send(SetExpiring(leading));
        }
        let mut r = self.role.borrow_mut();
        r.role = match status.role {
            Role::Looking => "looking",
            Role::Following => "follower",
            Role::Leading => "leader",
            Role::Observing => "observer",
        }
        .to_string();
        r.epoch = status.epoch;
        r.leader = status.leader;
        r.synced_followers = status.synced_followers;
        r.established = serve;
        r.changed.notify_waiters();
    }

    fn propose_local(&mut self, txn: Txn) -> Result<(), ErrorCode> {
        let now = self.clock.now_ms();
        let mut txn = txn;
        // The leader's clock stamps ctime/mtime and TTLs.
        txn.time_ms = crate::wall_ms();
        // The leader's own disk decides for every write, forwarded ones included.
        if !crate::disk_space::allowed_when_low(&txn.body) && self.disk_space.is_low(now) {
            return Err(ErrorCode::DiskFull);
        }
        let touched = crate::cache::touched(&txn.body);
        let zxid = self
            .zab
            .propose(now, txn.encode())
            .map_err(|_| ErrorCode::NotServing)?;
        if touched != Touched::Nothing {
            self.proposed.insert(zxid.0, touched);
        }
        Ok(())
    }

    fn on_app(&mut self, from: u64, msg: AppMessage) {
        match msg {
            AppMessage::Forward { txn } => match Txn::decode(&txn) {
                Ok(t) => {
                    if let Err(code) = self.propose_local(t) {
                        self.send_app(from, &AppMessage::Refused { txn, code });
                    }
                }
                Err(e) => tracing::warn!(from, error = %e, "a forwarded txn does not decode"),
            },
            AppMessage::Refused { txn, code } => {
                if let (Ok(txn), Some(store)) = (Txn::decode(&txn), &self.store) {
                    store.do_send(Rejected { txn, code });
                }
            }
            AppMessage::ReadIndex { id, cache } => {
                if self.register_read(ReadOrigin::Remote(from, id)) {
                    self.register_cache(cache);
                } else {
                    self.send_app(from, &AppMessage::ReadIndexReply { id, zxid: None });
                }
            }
            AppMessage::CacheInvalidate {
                zxid,
                lease_ms,
                targets,
            } => {
                if let Some(store) = &self.store {
                    store.do_send(CacheInvalidate(Invalidation {
                        zxid,
                        lease_ms,
                        targets,
                    }));
                }
            }
            AppMessage::CacheRelease { zxid } => {
                if let Some(store) = &self.store {
                    store.do_send(CacheRelease(zxid));
                }
            }
            AppMessage::CacheAck { session, zxid } => self.cache_acked(session, zxid),
            AppMessage::ReadIndexReply { id, zxid } => {
                if self.remote_reads.remove(&id) {
                    self.read_done(id, zxid.map(coord_zab::Zxid));
                }
            }
            AppMessage::Touch { sessions } => {
                let now = self.clock.now_ms();
                for id in sessions {
                    if let Some(l) = self.table.get(id) {
                        l.touch(now);
                    }
                }
            }
        }
    }

    /// Followers report the sessions their clients kept alive since the last report; every
    /// server refreshes what `coord status` shows (followers in sync change without a role
    /// change).
    fn report_liveness(&mut self) {
        let now = self.clock.now_ms();
        for zxid in self.cache.expire(now) {
            self.broadcast_release(zxid);
        }
        let status = self.zab.status();
        self.role.borrow_mut().synced_followers = status.synced_followers.clone();
        if status.role == Role::Following
            && status.established
            && let Some(leader) = status.leader
        {
            let since = self.last_touch_report;
            self.last_touch_report = self.clock.now_ms();
            let sessions = self.table.heard_since(since);
            if !sessions.is_empty() {
                self.send_app(leader, &AppMessage::Touch { sessions });
            }
        }
    }
}

impl Actor for Replica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let tick = self.tick;
        ctx.run_interval(tick, |this, _| this.report_liveness());
        self.drain(ctx);
    }
}

impl Handler<Wire> for Replica {
    type Result = ();
    fn handle(&mut self, msg: Wire, ctx: &mut Self::Context) {
        self.store = Some(msg.store);
        self.session_mgr = Some(msg.sessions);
        self.disk = Some(msg.disk);
        self.drain(ctx);
    }
}

impl Handler<Wake> for Replica {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.timer = None;
        let now = self.clock.now_ms();
        self.zab.handle_timeout(now);
        self.drain(ctx);
    }
}

impl Handler<PeerEvent> for Replica {
    type Result = ();
    fn handle(&mut self, msg: PeerEvent, ctx: &mut Self::Context) {
        let now = self.clock.now_ms();
        match msg {
            PeerEvent::Connected(p) => self.zab.handle_connected(now, p),
            PeerEvent::Disconnected(p) => self.zab.handle_disconnected(now, p),
            PeerEvent::Frame { from, body } => match body.split_first() {
                Some((&TAG_ZAB, rest)) => match ZabMessage::decode(rest) {
                    Ok(m) => self.zab.handle_message(now, from, m),
                    Err(e) => tracing::warn!(from, error = %e, "dropping an invalid peer message"),
                },
                Some((&TAG_APP, rest)) => match coord_proto::frame::decode::<AppMessage>(rest) {
                    Ok(m) => self.on_app(from, m),
                    Err(e) => tracing::warn!(from, error = %e, "dropping an invalid peer message"),
                },
                _ => tracing::warn!(from, "dropping a peer frame with an unknown tag"),
            },
        }
        self.drain(ctx);
    }
}

impl Handler<Persisted> for Replica {
    type Result = ();
    fn handle(&mut self, msg: Persisted, ctx: &mut Self::Context) {
        let now = self.clock.now_ms();
        self.zab.handle_persisted(now, PersistToken(msg.0));
        self.drain(ctx);
    }
}

impl Handler<DiskFailed> for Replica {
    type Result = ();
    fn handle(&mut self, msg: DiskFailed, _: &mut Self::Context) {
        // Never retried: after a failed fsync the kernel may have dropped the dirty pages,
        // so a later fsync that succeeds proves nothing (PostgreSQL's fsyncgate).
        tracing::error!(error = %msg.0, "disk failed; stopping the server");
        std::process::exit(70);
    }
}

impl Handler<ReadBarrier> for Replica {
    type Result = ();
    fn handle(&mut self, msg: ReadBarrier, ctx: &mut Self::Context) {
        let status = self.zab.status();
        let round = msg.round;
        if !status.established {
            self.read_done(round, None);
        } else if status.role == Role::Leading {
            if self.register_read(ReadOrigin::Local(round)) {
                self.register_cache(msg.cache);
            } else {
                self.read_done(round, None);
            }
        } else if let Some(leader) = status.leader {
            self.remote_reads.insert(round);
            self.send_app(
                leader,
                &AppMessage::ReadIndex {
                    id: round,
                    cache: msg.cache,
                },
            );
        } else {
            self.read_done(round, None);
        }
        self.drain(ctx);
    }
}

impl Handler<Propose> for Replica {
    type Result = ();
    fn handle(&mut self, msg: Propose, ctx: &mut Self::Context) {
        let status = self.zab.status();
        let refused = |store: &Option<Addr<Store>>, txn: Txn| {
            if let Some(store) = store {
                store.do_send(Rejected {
                    txn,
                    code: ErrorCode::NotServing,
                });
            }
        };
        if !status.established {
            refused(&self.store, msg.txn);
        } else if status.role == Role::Leading {
            if let Err(code) = self.propose_local(msg.txn.clone())
                && let Some(store) = &self.store
            {
                store.do_send(Rejected { txn: msg.txn, code });
            }
        } else if let Some(leader) = status.leader {
            self.send_app(
                leader,
                &AppMessage::Forward {
                    txn: msg.txn.encode(),
                },
            );
        } else {
            refused(&self.store, msg.txn);
        }
        self.drain(ctx);
    }
}

impl Handler<CacheWake> for Replica {
    type Result = ();
    fn handle(&mut self, _: CacheWake, ctx: &mut Self::Context) {
        self.cache_timer = None;
        let now = self.clock.now_ms();
        for zxid in self.cache.expire(now) {
            self.broadcast_release(zxid);
        }
        self.arm_cache_timer(ctx);
    }
}

impl Handler<CacheAcked> for Replica {
    type Result = ();
    fn handle(&mut self, msg: CacheAcked, ctx: &mut Self::Context) {
        let status = self.zab.status();
        if status.role == Role::Leading {
            self.cache_acked(msg.session, msg.zxid);
        } else if let Some(leader) = status.leader {
            self.send_app(
                leader,
                &AppMessage::CacheAck {
                    session: msg.session,
                    zxid: msg.zxid,
                },
            );
        }
        self.drain(ctx);
    }
}
