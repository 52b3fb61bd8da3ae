//! ZAB 1.0 (ZooKeeper Atomic Broadcast) as a sans-IO state machine.
//!
//! No IO, no clock, no thread: inputs are `handle_*(now_ms, ..)` calls, outputs are drained
//! with [`Zab::poll_action`] (messages, durable writes, committed txns, snapshots to take,
//! role changes) and [`Zab::poll_timeout`]. Randomness comes from [`ZabConfig::seed`].
//!
//! ```text
//!           ┌──────────── LOOKING ─────────────┐  fast leader election: Notification
//!           │ votes (epoch, last zxid, id),    │  {vote, round, state}; a quorum agreeing
//!           │ FOLLOWING/LEADING answer with    │  on a vote (or on a running leader) decides
//!           │ the leader they follow           │
//!           └───────┬───────────────┬──────────┘
//!        elected    │               │  voted for another
//!                   v               v
//!   LEADING  ── discovery ──  FollowerInfo{acceptedEpoch, last zxid}  ◄── FOLLOWING/OBSERVING
//!    (quorum of infos)        LeaderInfo{new epoch = max + 1}         ──►  persist acceptedEpoch
//!    (quorum of acks)         AckEpoch{currentEpoch, last zxid}       ◄──
//!            ── sync ──       DIFF | TRUNC{to} | SNAP{zxid, bytes}, SyncTxn*, NEWLEADER ──►
//!                             persist txns, then currentEpoch, then   ◄── AckNewLeader
//!    (quorum of NEWLEADER acks: established; the recovered history commits)
//!                             UPTODATE{committed}                     ──►
//!            ── broadcast ──  Proposal{zxid = epoch<<32 | n}          ──►  persist, then
//!                             Ack{zxid} (cumulative)                  ◄──
//!    (quorum of acks)         Commit{zxid} (followers), Inform (observers) ──►  deliver
//!            ── liveness ──   Ping / PingAck every tick; no quorum within syncLimit:
//!                             leader steps down; no leader: learner returns to LOOKING
//!            ── reads ──      ReadPing{round} / ReadPingAck{round}: a quorum confirms the
//!                             leader after a linearizable read was registered (read_index)
//! ```
//!
//! Invariants kept (each checked by the simulator in `tests/` after every step):
//! 1. A txn delivered by a leader (acknowledged to a client) is durable on a quorum and
//!    survives any minority of crashes, restarts and partitions.
//! 2. Every server delivers the same txns in the same zxid order; each epoch's txns in
//!    counter order starting at 1.
//! 3. A txn only proposed by a leader that never reached a quorum is discarded everywhere
//!    once another epoch is established (TRUNC), also on that leader when it returns.
//! 4. A learner acks NEWLEADER only after everything received in sync is on disk; it writes
//!    `currentEpoch` only after the txns it covers are on disk; it never advertises (votes,
//!    FollowerInfo, AckEpoch, Ack) a zxid it has not persisted.
//! 5. At most one leader is established per epoch (a server accepts an epoch once, strictly
//!    above its `acceptedEpoch`); a leader that loses its quorum steps down.
//!
//! The simulator, the scenario tests and the handler tests live in `tests/`.
#![warn(missing_docs)]

mod broadcast;
mod discovery;
mod election;
mod learner;
mod log;
// rkyv's derive emits undocumented helper types for enum variants with fields; every item
// written in the module is documented.
#[allow(missing_docs)]
mod messages;
mod read_index;
mod sync;
mod types;

use std::collections::{BTreeSet, VecDeque};

pub use coord_proto::Zxid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use messages::{PeerState, Vote, ZabMessage};
pub use types::{
    Action, NotLeader, PersistToken, Persisted, Role, Status, StorageOp, ZabConfig, ZabError,
};

use discovery::Leader;
use election::Election;
use learner::Learner;
use log::TxnLog;

/// The protocol state of the current role.
#[derive(Debug)]
enum State {
    Looking(Election),
    Following(Learner),
    Leading(Leader),
}

/// A Persist action not yet reported durable, and what it makes durable.
#[derive(Debug)]
struct PendingWrite {
    token: u64,
    last_after: Zxid,
    accepted_epoch: Option<u32>,
    current_epoch: Option<u32>,
}

/// One ZAB server (voter or observer).
///
/// # Call order
///
/// The app (an actor) owns one `Zab` and, for every input, calls the matching `handle_*`
/// (or [`Zab::propose`]) with the current time, then drains [`Zab::poll_action`] until it
/// returns `None`, executing each action in order:
/// - `Send`: write to the connection to that peer (drop it if there is none);
/// - `Persist`: apply the ops durably in order, and once fsynced call
///   [`Zab::handle_persisted`] with its token (completions must be reported in token
///   order; a later token implies the earlier ones);
/// - `Commit`: apply to the state machine; `TakeSnapshot`: later call
///   [`Zab::handle_snapshot`]; `RoleChanged`: refresh sessions, fail pending writes,
///   redirect clients.
///
/// Then it re-arms its single timer at [`Zab::poll_timeout`] and calls
/// [`Zab::handle_timeout`] when it fires. Connection events go to
/// [`Zab::handle_connected`] / [`Zab::handle_disconnected`]; a connection is a FIFO stream,
/// and a broken one must be reported before any message of a new one is handed in.
#[derive(Debug)]
pub struct Zab {
    cfg: ZabConfig,
    rng: ChaCha8Rng,
    /// Durable `acceptedEpoch`.
    accepted_epoch: u32,
    /// `acceptedEpoch` including a pending write: an epoch is accepted at most once.
    promised_epoch: u32,
    /// Durable `currentEpoch`.
    current_epoch: u32,
    /// History in memory; its end may run ahead of `last_logged` by pending appends.
    log: TxnLog,
    /// The last zxid on disk (the end of the history after every completed Persist).
    last_logged: Zxid,
    /// Known commit point; may run ahead of the history, delivery stops at `last_logged`.
    committed: Zxid,
    /// Last zxid handed out in `Action::Commit` (or the snapshot the app holds).
    delivered: Zxid,
    next_token: u64,
    persisted: u64,
    pending: VecDeque<PendingWrite>,
    actions: VecDeque<Action>,
    connected: BTreeSet<u64>,
    /// Election logical clock.
    round: u64,
    state: State,
    next_tick: u64,
    reported: Option<(Role, u32, Option<u64>, bool)>,
    last_reason: &'static str,
    /// Linearizable reads waiting for a leadership confirmation (leader only).
    reads: read_index::ReadIndex,
}

impl Zab {
    /// A server recovering `persisted`; it starts LOOKING.
    pub fn new(config: ZabConfig, persisted: Persisted, now_ms: u64) -> Zab {
        let mut log = TxnLog {
            base: persisted.last_committed_hint,
            records: VecDeque::new(),
        };
        let mut tail = persisted.tail.into_iter().peekable();
        // The first tail record at or before the hint becomes the base: the history is
        // known contiguously only from a point we hold.
        if let Some((first, _)) = tail.peek()
            && *first <= persisted.last_committed_hint
        {
            log.base = *first;
            tail.next();
        }
        for (zxid, txn) in tail {
            if zxid > log.last() {
                log.append(zxid, txn);
            }
        }
        // The durable end is the end of what the app handed back (`tail` reaches
        // `last_logged` by the documented requirement).
        let last_logged = log.last();
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ config.id.rotate_left(17));
        let next_tick = now_ms + config.tick_ms;
        let mut zab = Zab {
            rng,
            accepted_epoch: persisted.accepted_epoch,
            promised_epoch: persisted.accepted_epoch,
            current_epoch: persisted.current_epoch,
            log,
            last_logged,
            committed: persisted.last_committed_hint,
            delivered: persisted.last_committed_hint,
            next_token: 1,
            persisted: 0,
            pending: VecDeque::new(),
            actions: VecDeque::new(),
            connected: BTreeSet::new(),
            round: 0,
            state: State::Looking(Election::default()),
            next_tick,
            reported: None,
            last_reason: "start",
            reads: read_index::ReadIndex::default(),
            cfg: config,
        };
        zab.enter_looking(now_ms, "start");
        zab.finish();
        zab
    }

    /// A message from `from` arrived on its connection. Unexpected messages are ignored or
    /// end the current attempt (back to LOOKING); none panics.
    pub fn handle_message(&mut self, now_ms: u64, from: u64, msg: ZabMessage) {
        if from != self.cfg.id && self.cfg.is_member(from) {
            match msg {
                ZabMessage::Notification { vote, round, state } => {
                    self.on_notification(now_ms, from, vote, round, state)
                }
                ZabMessage::FollowerInfo {
                    attempt,
                    accepted_epoch,
                    last_zxid,
                    ..
                } => match &mut self.state {
                    State::Looking(e) => {
                        e.early_infos
                            .insert(from, (attempt, accepted_epoch, last_zxid));
                    }
                    _ => self.on_follower_info(now_ms, from, attempt, accepted_epoch, last_zxid),
                },
                msg => match self.state {
                    State::Leading(_) => self.leader_on_message(now_ms, from, msg),
                    State::Following(_) => self.learner_on_message(now_ms, from, msg),
                    State::Looking(_) => {}
                },
            }
        }
        self.finish();
    }

    /// A connection to `peer` is up.
    pub fn handle_connected(&mut self, now_ms: u64, peer: u64) {
        if self.cfg.is_member(peer) && peer != self.cfg.id {
            self.connected.insert(peer);
            match &self.state {
                State::Looking(_) => self.send_notification(peer),
                State::Following(_) => self.learner_on_connected(now_ms, peer),
                State::Leading(_) => {}
            }
        }
        self.finish();
    }

    /// The connection to `peer` broke; whatever was in flight on it is lost.
    pub fn handle_disconnected(&mut self, now_ms: u64, peer: u64) {
        self.connected.remove(&peer);
        match &mut self.state {
            State::Following(l) if l.leader == peer => {
                self.enter_looking(now_ms, "connection to the leader broke")
            }
            State::Leading(_) => self.leader_on_disconnected(now_ms, peer),
            _ => {}
        }
        self.finish();
    }

    /// The timer armed from [`Zab::poll_timeout`] fired (early or late calls are fine).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if now_ms >= self.next_tick {
            self.next_tick = now_ms + self.cfg.tick_ms;
            match self.state {
                State::Leading(_) => self.leader_tick(now_ms),
                State::Following(_) => self.learner_tick(now_ms),
                State::Looking(_) => {}
            }
        }
        if let State::Looking(_) = self.state {
            self.election_timeout(now_ms);
        }
        self.finish();
    }

    /// Every Persist up to and including `token` is durable.
    pub fn handle_persisted(&mut self, now_ms: u64, token: PersistToken) {
        if token.0 <= self.persisted || token.0 >= self.next_token {
            return;
        }
        self.persisted = token.0;
        while let Some(w) = self.pending.front() {
            if w.token > token.0 {
                break;
            }
            self.last_logged = w.last_after;
            if let Some(e) = w.accepted_epoch {
                self.accepted_epoch = e;
            }
            if let Some(e) = w.current_epoch {
                self.current_epoch = e;
            }
            self.pending.pop_front();
        }
        match self.state {
            State::Looking(_) => self.maybe_start_election(now_ms),
            State::Following(_) => self.learner_on_persisted(now_ms),
            State::Leading(_) => self.leader_on_persisted(now_ms),
        }
        self.deliver();
        self.finish();
    }

    /// The snapshot asked for by `Action::TakeSnapshot { for_peer }`: the applied state at
    /// `zxid`.
    pub fn handle_snapshot(&mut self, now_ms: u64, for_peer: u64, zxid: Zxid, bytes: Vec<u8>) {
        if let State::Leading(_) = self.state {
            self.leader_on_snapshot(now_ms, for_peer, zxid, bytes);
        }
        self.finish();
    }

    /// Proposes a txn (leader only, once established). Returns its zxid; the txn is
    /// acknowledged when `Action::Commit` for it comes out.
    pub fn propose(&mut self, now_ms: u64, txn: Vec<u8>) -> Result<Zxid, NotLeader> {
        let r = self.leader_propose(now_ms, txn);
        self.finish();
        r
    }

    /// The next action to execute, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Absolute time (ms) at which [`Zab::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = self.next_tick;
        if let State::Looking(e) = &self.state {
            if e.started {
                t = t.min(e.resend_at);
            }
            if let Some(f) = e.finalize_at {
                t = t.min(f);
            }
        }
        Some(t)
    }

    /// Current protocol state.
    pub fn status(&self) -> Status {
        let (role, leader, established, synced) = match &self.state {
            State::Looking(_) => (Role::Looking, None, false, vec![]),
            State::Following(l) => (
                if l.observer {
                    Role::Observing
                } else {
                    Role::Following
                },
                Some(l.leader),
                l.uptodate,
                vec![],
            ),
            State::Leading(ld) => (
                Role::Leading,
                Some(self.cfg.id),
                ld.established,
                ld.synced_ids(),
            ),
        };
        Status {
            role,
            epoch: self.current_epoch,
            leader,
            established,
            last_logged: self.last_logged,
            last_committed: self.delivered,
            synced_followers: synced,
        }
    }

    /// Why this server last entered LOOKING (for logs).
    pub fn last_looking_reason(&self) -> &'static str {
        self.last_reason
    }

    /// The configuration.
    pub fn config(&self) -> &ZabConfig {
        &self.cfg
    }

    // ---- shared helpers -------------------------------------------------------------

    fn send(&mut self, to: u64, msg: ZabMessage) {
        if to != self.cfg.id && self.connected.contains(&to) {
            self.actions.push_back(Action::Send { to, msg });
        }
    }

    /// Emits a Persist of `ops`; the in-memory history must already reflect them.
    fn persist(&mut self, ops: Vec<StorageOp>) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let mut w = PendingWrite {
            token,
            last_after: self.log.last(),
            accepted_epoch: None,
            current_epoch: None,
        };
        for op in &ops {
            match op {
                StorageOp::AcceptedEpoch(e) => w.accepted_epoch = Some(*e),
                StorageOp::CurrentEpoch(e) => w.current_epoch = Some(*e),
                _ => {}
            }
        }
        self.pending.push_back(w);
        self.actions.push_back(Action::Persist {
            token: PersistToken(token),
            ops,
        });
        token
    }

    /// The token of the last Persist emitted (0 if none): waiting for it waits for all.
    fn last_token(&self) -> u64 {
        self.next_token - 1
    }

    /// Hands out committed, persisted txns in order.
    fn deliver(&mut self) {
        let upto = self.committed.min(self.last_logged);
        while self.delivered < upto {
            match self.log.next_after(self.delivered) {
                Some((zxid, txn)) if *zxid <= upto => {
                    let zxid = *zxid;
                    self.actions.push_back(Action::Commit {
                        zxid,
                        txn: txn.clone(),
                    });
                    self.delivered = zxid;
                }
                _ => break,
            }
        }
        self.log.trim(self.delivered, self.cfg.max_diff);
    }

    fn random_election_delay(&mut self) -> u64 {
        let t = self.cfg.election_timeout_ms.max(1);
        self.rng.random_range(t..2 * t)
    }

    /// Emits `RoleChanged` when the role, epoch, leader or establishment changed.
    fn finish(&mut self) {
        self.fail_reads_unless_leading();
        let s = self.status();
        let key = (s.role, s.epoch, s.leader, s.established);
        if self.reported != Some(key) {
            self.reported = Some(key);
            self.actions.push_back(Action::RoleChanged(s));
        }
    }
}
