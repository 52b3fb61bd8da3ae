//! A deterministic simulator of a ZAB ensemble (VOPR / raft-rs `Network` style).
//!
//! N servers, each a `Zab` core + a `DataTree` state machine + a [`disk::Disk`]; a virtual
//! clock; one seeded ChaCha RNG drives every choice (delays, cuts, partitions, crashes,
//! restarts, fsync latency, client txns). A connection between two servers is a FIFO stream
//! that delivers in order or breaks; when it breaks, what was in flight is lost and both
//! sides are told. Invariant checkers (`invariants/`) run after every step; a failure
//! returns an error naming the seed, and the same seed replays the same run.
#![allow(dead_code)]

pub mod disk;
pub mod invariants;
mod net;
mod run;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};

use coord_tree::{DataTree, Txn};
use coord_zab::{Action, Role, Status, Zab, ZabConfig, ZabMessage, Zxid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use disk::Disk;
use invariants::{Invariants, acknowledged_durable, committed_prefix, one_leader_per_epoch};

/// Knobs of one simulated ensemble.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub voters: usize,
    pub observers: usize,
    pub max_diff: usize,
    pub delay_max_ms: u64,
    pub persist_max_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            voters: 3,
            observers: 0,
            max_diff: 40,
            delay_max_ms: 15,
            persist_max_ms: 8,
        }
    }
}

pub struct Node {
    pub id: u64,
    pub zab: Option<Zab>,
    pub tree: DataTree,
    pub disk: Disk,
    pub incarnation: u64,
    /// `tree` holds `inv.global[..pos]`.
    pub pos: usize,
    pub voter: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    up: bool,
    generation: u64,
    /// Delivery time of the last message queued in each direction (low id → high, back).
    tail: [u64; 2],
}

#[derive(Debug)]
pub(crate) enum Event {
    Deliver {
        from: u64,
        to: u64,
        generation: u64,
        msg: ZabMessage,
    },
    PersistDone {
        node: u64,
        incarnation: u64,
        token: coord_zab::PersistToken,
    },
    Reconnect(u64, u64),
    Restart(u64),
    Chaos,
    Clients,
}

type DropFilter = Box<dyn FnMut(u64, u64, &ZabMessage) -> bool>;

pub struct Sim {
    pub seed: u64,
    pub now: u64,
    pub rng: ChaCha8Rng,
    pub cfg: SimConfig,
    pub nodes: Vec<Node>,
    pub voters: Vec<u64>,
    pub observers: Vec<u64>,
    conns: BTreeMap<(u64, u64), Conn>,
    blocked: BTreeSet<(u64, u64)>,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    pub inv: Invariants,
    /// Inject faults (cuts, partitions, crashes) while true.
    pub chaos: bool,
    /// Propose txns at established leaders while true.
    pub clients: bool,
    /// Scenario hook: a message for which this returns true is silently lost.
    pub drop_filter: Option<DropFilter>,
    /// Every message sent: (time, from, to, kind).
    pub sent: Vec<(u64, u64, u64, &'static str)>,
    pub record_sent: bool,
    /// How many messages of each kind were sent, and how many crashes happened.
    pub counts: BTreeMap<&'static str, u64>,
    pub steps: u64,
    disks_lost_data: bool,
    pub trace: Option<Vec<String>>,
    /// Linearizable reads registered and not yet answered: (server, read id) -> the highest
    /// zxid delivered anywhere when it was registered (the answer must reach it).
    pub reads: BTreeMap<(u64, u64), Zxid>,
    next_read: u64,
    /// The highest zxid delivered by any server so far (every delivered txn is committed and
    /// may have been acknowledged to a client).
    delivered_max: Zxid,
    /// Linearizable reads confirmed / failed so far.
    pub reads_ready: u64,
    pub reads_failed: u64,
}

pub type SimResult<T = ()> = Result<T, String>;

pub(crate) fn key(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl Sim {
    pub fn new(seed: u64, cfg: SimConfig) -> Sim {
        let n = (cfg.voters + cfg.observers) as u64;
        let voters: Vec<u64> = (1..=cfg.voters as u64).collect();
        let observers: Vec<u64> = (cfg.voters as u64 + 1..=n).collect();
        let mut sim = Sim {
            seed,
            now: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            inv: Invariants::new(voters.len() / 2 + 1),
            voters,
            observers,
            conns: BTreeMap::new(),
            blocked: BTreeSet::new(),
            events: BTreeMap::new(),
            seq: 0,
            chaos: false,
            clients: false,
            drop_filter: None,
            sent: Vec::new(),
            record_sent: false,
            counts: BTreeMap::new(),
            steps: 0,
            disks_lost_data: false,
            trace: std::env::var_os("COORD_SIM_TRACE").map(|_| Vec::new()),
            reads: BTreeMap::new(),
            next_read: 0,
            delivered_max: Zxid(0),
            reads_ready: 0,
            reads_failed: 0,
            cfg,
        };
        for id in 1..=n {
            sim.nodes.push(Node {
                id,
                zab: None,
                tree: DataTree::new(),
                disk: Disk::default(),
                incarnation: 0,
                pos: 0,
                voter: id <= sim.voters.len() as u64,
            });
            for other in id + 1..=n {
                sim.conns.insert(
                    (id, other),
                    Conn {
                        up: false,
                        generation: 0,
                        tail: [0, 0],
                    },
                );
            }
        }
        for id in 1..=n {
            sim.restart(id).expect("a fresh server starts");
        }
        sim
    }

    /// A value from the seeded RNG in `[lo, hi)`.
    pub fn rng_range(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..hi)
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn status(&self, id: u64) -> Option<Status> {
        self.node(id).zab.as_ref().map(|z| z.status())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub(crate) fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{:>7} {}", self.now, line()));
        }
    }

    pub(crate) fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn zab_config(&self, id: u64) -> ZabConfig {
        ZabConfig {
            id,
            voters: self.voters.clone(),
            observers: self.observers.clone(),
            tick_ms: 50,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            election_timeout_ms: 100,
            max_diff: self.cfg.max_diff,
            seed: self.seed,
        }
    }

    // ---- servers --------------------------------------------------------------------

    /// Starts (or restarts) `id` from its durable disk and connects it to reachable peers.
    pub fn restart(&mut self, id: u64) -> SimResult {
        if self.node(id).zab.is_some() {
            return Ok(());
        }
        let cfg = self.zab_config(id);
        let now = self.now;
        let node = self.node_mut(id);
        node.tree = match &node.disk.snapshot {
            Some((_, bytes)) => DataTree::from_snapshot(bytes).map_err(|e| e.to_string())?,
            None => DataTree::new(),
        };
        let snap = node.disk.snapshot_zxid();
        node.zab = Some(Zab::new(cfg, node.disk.persisted(), now));
        let pos = committed_prefix::on_resume(&self.inv, id, snap)?;
        self.node_mut(id).pos = pos;
        self.log(|| format!("restart {id}"));
        self.drain(id)?;
        for other in self.ids() {
            if other != id {
                self.connect(id, other)?;
            }
        }
        Ok(())
    }

    /// Power loss at `id`: volatile state gone, `keep` pending disk ops (random if `None`)
    /// survive, connections break.
    pub fn crash(&mut self, id: u64, keep: Option<usize>) -> SimResult {
        if self.node(id).zab.is_none() {
            return Ok(());
        }
        let pending = self.node(id).disk.pending_ops();
        let keep = keep.unwrap_or_else(|| self.rng.random_range(0..=pending));
        self.log(|| format!("crash {id} keeping {keep}/{pending} pending ops"));
        *self.counts.entry("crash").or_default() += 1;
        // Reads registered at a crashed server are never answered (its clients see the
        // connection break).
        self.reads.retain(|(at, _), _| *at != id);
        let node = self.node_mut(id);
        node.zab = None;
        node.incarnation += 1;
        node.disk.crash(keep)?;
        self.disks_lost_data = true;
        for other in self.ids() {
            if other != id {
                self.cut(id, other)?;
            }
        }
        Ok(())
    }

    pub(crate) fn alive(&self, id: u64) -> bool {
        self.node(id).zab.is_some()
    }

    // ---- actions --------------------------------------------------------------------

    /// Executes every action `id` has queued.
    pub(crate) fn drain(&mut self, id: u64) -> SimResult {
        loop {
            let Some(action) = self.node_mut(id).zab.as_mut().and_then(|z| z.poll_action()) else {
                return Ok(());
            };
            match action {
                Action::Send { to, msg } => self.send(id, to, msg)?,
                Action::Persist { token, ops } => {
                    for op in &ops {
                        if let coord_zab::StorageOp::InstallSnapshot(zxid, bytes) = op {
                            let tree = DataTree::from_snapshot(bytes).map_err(|e| e.to_string())?;
                            let pos = committed_prefix::on_resume(&self.inv, id, *zxid)?;
                            let node = self.node_mut(id);
                            node.tree = tree;
                            node.pos = pos;
                        }
                    }
                    let delay = self.rng.random_range(0..=self.cfg.persist_max_ms);
                    let now = self.now;
                    let node = self.node_mut(id);
                    node.disk.pending.push_back((token, ops));
                    let at = (now + delay).max(node.disk.last_done_at);
                    node.disk.last_done_at = at;
                    let incarnation = node.incarnation;
                    self.schedule(
                        at,
                        Event::PersistDone {
                            node: id,
                            incarnation,
                            token,
                        },
                    );
                }
                Action::Commit { zxid, txn } => self.apply(id, zxid, &txn)?,
                Action::TakeSnapshot { for_peer } => {
                    let now = self.now;
                    let node = self.node_mut(id);
                    let (zxid, bytes) = (node.tree.last_applied(), node.tree.snapshot());
                    if let Some(z) = node.zab.as_mut() {
                        z.handle_snapshot(now, for_peer, zxid, bytes);
                    }
                }
                Action::RoleChanged(status) => {
                    self.log(|| format!("node {id} {status:?}"));
                    one_leader_per_epoch::on_status(&mut self.inv, id, &status)?;
                }
                Action::ReadIndexReady { id: read, zxid } => {
                    // Linearizable reads: the confirmed index covers every txn delivered
                    // anywhere (hence possibly acknowledged) before the read was registered.
                    let Some(needed) = self.reads.remove(&(id, read)) else {
                        return Err(format!("server {id} answered read {read} twice or unasked"));
                    };
                    if zxid < needed {
                        return Err(format!(
                            "server {id} confirmed read {read} at {zxid}, but {needed} was \
                             committed before the read was registered (stale read)"
                        ));
                    }
                    self.reads_ready += 1;
                    self.log(|| format!("node {id} read {read} ready at {zxid}"));
                }
                Action::ReadIndexFailed { id: read } => {
                    if self.reads.remove(&(id, read)).is_none() {
                        return Err(format!("server {id} failed read {read} twice or unasked"));
                    }
                    self.reads_failed += 1;
                }
            }
        }
    }

    fn apply(&mut self, id: u64, zxid: Zxid, bytes: &[u8]) -> SimResult {
        let node = &mut self.nodes[(id - 1) as usize];
        committed_prefix::on_deliver(&mut self.inv, id, &mut node.pos, zxid, bytes)?;
        let txn = Txn::decode(bytes).map_err(|e| format!("server {id}: {e}"))?;
        if zxid <= node.tree.last_applied() {
            return Err(format!(
                "server {id} delivered {zxid} after applying {}",
                node.tree.last_applied()
            ));
        }
        node.tree.apply(zxid, &txn);
        self.delivered_max = self.delivered_max.max(zxid);
        // A leader's delivery is what clients are told; any delivery means committed, so a
        // quorum must hold it either way (this also catches a leader that counts its own
        // ACK before its fsync and lets a follower deliver).
        let disks = self.nodes.iter().filter(|n| n.voter).map(|n| &n.disk);
        acknowledged_durable::on_acknowledge(&mut self.inv, disks, zxid)?;
        Ok(())
    }

    // ---- the clock ------------------------------------------------------------------

    /// Runs the earliest event or timer, then the invariant checks.
    pub fn step(&mut self) -> SimResult {
        self.steps += 1;
        let next_event = self.events.keys().next().copied();
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|n| {
                n.zab
                    .as_ref()
                    .and_then(|z| z.poll_timeout())
                    .map(|t| (t, n.id))
            })
            .min();
        match (next_event, next_timer) {
            (Some((te, _)), Some((tt, id))) if tt <= te => self.fire_timer(tt, id)?,
            (None, Some((tt, id))) => self.fire_timer(tt, id)?,
            (Some(k), _) => {
                let ev = self.events.remove(&k).expect("key taken from the map");
                self.now = self.now.max(k.0);
                self.handle_event(ev)?;
            }
            (None, None) => self.now += 10,
        }
        if std::mem::take(&mut self.disks_lost_data) {
            let disks = self.nodes.iter().filter(|n| n.voter).map(|n| &n.disk);
            acknowledged_durable::check_all(&self.inv, disks)?;
        }
        Ok(())
    }

    fn fire_timer(&mut self, at: u64, id: u64) -> SimResult {
        self.now = self.now.max(at);
        let now = self.now;
        if let Some(z) = self.node_mut(id).zab.as_mut() {
            z.handle_timeout(now);
        }
        self.drain(id)
    }

    fn handle_event(&mut self, ev: Event) -> SimResult {
        let now = self.now;
        match ev {
            Event::Deliver {
                from,
                to,
                generation,
                msg,
            } => {
                let c = self.conns[&key(from, to)];
                if !c.up || c.generation != generation {
                    return Ok(());
                }
                // Through the wire format, as the server does.
                let msg = ZabMessage::decode(&msg.encode()).map_err(|e| e.to_string())?;
                if let Some(z) = self.node_mut(to).zab.as_mut() {
                    z.handle_message(now, from, msg);
                }
                self.drain(to)
            }
            Event::PersistDone {
                node,
                incarnation,
                token,
            } => {
                let n = self.node_mut(node);
                if n.incarnation != incarnation || n.zab.is_none() {
                    return Ok(());
                }
                if n.disk.stalled {
                    self.schedule(
                        now + 10,
                        Event::PersistDone {
                            node,
                            incarnation,
                            token,
                        },
                    );
                    return Ok(());
                }
                let lossy = n.disk.complete_through(token)?;
                self.disks_lost_data |= lossy;
                if let Some(z) = self.node_mut(node).zab.as_mut() {
                    z.handle_persisted(now, token);
                }
                self.drain(node)
            }
            Event::Reconnect(a, b) => self.connect(a, b),
            Event::Restart(id) => self.restart(id),
            Event::Chaos => {
                if self.chaos {
                    self.inject_fault()?;
                    let at = now + self.rng.random_range(30..400);
                    self.schedule(at, Event::Chaos);
                }
                Ok(())
            }
            Event::Clients => {
                if self.clients {
                    for id in self.ids() {
                        let leading = self.status(id).is_some_and(|s| s.role == Role::Leading);
                        if self
                            .status(id)
                            .is_some_and(|s| s.role == Role::Leading && s.established)
                        {
                            let n = self.rng.random_range(1..=3);
                            for _ in 0..n {
                                self.propose(id)?;
                            }
                        }
                        // Every server that believes it leads (a deposed one in a partition
                        // too) is asked for linearizable reads now and then.
                        if leading && self.rng.random_range(0..3) == 0 {
                            self.register_read(id)?;
                        }
                    }
                    let at = now + self.rng.random_range(5..80);
                    self.schedule(at, Event::Clients);
                }
                Ok(())
            }
        }
    }

    /// Registers a linearizable read at `id`; it must be answered with an index covering
    /// everything delivered anywhere so far.
    pub fn register_read(&mut self, id: u64) -> SimResult {
        self.next_read += 1;
        let read = self.next_read;
        let now = self.now;
        let needed = self.delivered_max;
        let accepted = self
            .node_mut(id)
            .zab
            .as_mut()
            .is_some_and(|z| z.read_index(now, read).is_ok());
        if accepted {
            self.reads.insert((id, read), needed);
        }
        self.drain(id)
    }

    /// Proposes one random txn at `id`; returns its zxid if `id` accepted it.
    pub fn propose(&mut self, id: u64) -> SimResult<Option<Zxid>> {
        let txn = workload::random_txn(&mut self.rng, self.now).encode();
        let now = self.now;
        let r = self.node_mut(id).zab.as_mut().map(|z| z.propose(now, txn));
        self.drain(id)?;
        Ok(r.and_then(|r| r.ok()))
    }

    fn inject_fault(&mut self) -> SimResult {
        let ids = self.ids();
        let pick = |rng: &mut ChaCha8Rng| ids[rng.random_range(0..ids.len())];
        match self.rng.random_range(0..100) {
            0..35 => {
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a != b {
                    self.cut(a, b)?;
                }
            }
            35..43 => {
                let a = pick(&mut self.rng);
                self.partition(&[a])?;
            }
            43..48 => {
                let side: Vec<u64> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.random_bool(0.5))
                    .collect();
                self.partition(&side)?;
            }
            48..63 => self.heal()?,
            63..73 => {
                let a = pick(&mut self.rng);
                self.crash(a, None)?;
                let at = self.now + self.rng.random_range(100..3000);
                self.schedule(at, Event::Restart(a));
            }
            _ => {}
        }
        Ok(())
    }
}
