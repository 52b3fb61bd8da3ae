//! Inputs and outputs of [`crate::Zab`]: configuration, recovered state, actions, status.

use coord_proto::Zxid;

use crate::ZabMessage;

/// Static configuration of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZabConfig {
    /// This server's id (unique in the ensemble, non-zero).
    pub id: u64,
    /// Ids of the voting servers (this one included if it votes).
    pub voters: Vec<u64>,
    /// Ids of the observers: they learn committed txns and never vote.
    pub observers: Vec<u64>,
    /// Heartbeat period in ms; limits below are counted in ticks.
    pub tick_ms: u64,
    /// Ticks a new leader may take to get a quorum through discovery and sync, and a
    /// learner to get synced, before giving up.
    pub init_limit_ticks: u64,
    /// Ticks without hearing a quorum (leader) or the leader (learner) before stepping down.
    pub sync_limit_ticks: u64,
    /// Base election resend timeout; each attempt waits a seeded random value in
    /// `[t, 2t)`.
    pub election_timeout_ms: u64,
    /// Committed txns kept in memory for DIFF; a learner further behind gets a SNAP.
    pub max_diff: usize,
    /// Seed of the RNG (election jitter, attempt ids). No other randomness is used.
    pub seed: u64,
}

impl ZabConfig {
    /// A configuration with ZooKeeper-like defaults (tick 100 ms, initLimit 10,
    /// syncLimit 5, election timeout 200 ms, 500 txns kept for DIFF).
    pub fn new(id: u64, voters: Vec<u64>, observers: Vec<u64>, seed: u64) -> ZabConfig {
        ZabConfig {
            id,
            voters,
            observers,
            tick_ms: 100,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            election_timeout_ms: 200,
            max_diff: 500,
            seed,
        }
    }

    /// Votes needed: a strict majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// True if `id` votes.
    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    /// True if `id` is a voter or an observer.
    pub fn is_member(&self, id: u64) -> bool {
        self.is_voter(id) || self.observers.contains(&id)
    }
}

/// What a server recovered from its disk at start.
///
/// Requirement: `tail` holds every logged record after `last_committed_hint` (it may hold
/// older ones too, which only serve DIFF), in zxid order, ending at `last_logged`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// The last epoch this server accepted in discovery (`acceptedEpoch`).
    pub accepted_epoch: u32,
    /// The epoch of the last leader this server synced with (`currentEpoch`).
    pub current_epoch: u32,
    /// The last zxid on disk (log or snapshot).
    pub last_logged: Zxid,
    /// The zxid the app's state machine already reflects (its snapshot); delivery resumes
    /// after it. May be zero.
    pub last_committed_hint: Zxid,
    /// Logged records (see the requirement above).
    pub tail: Vec<(Zxid, Vec<u8>)>,
}

/// Identifies a [`Action::Persist`]; completion is cumulative: `handle_persisted(t)` says
/// every Persist up to and including `t` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub u64);

/// One durable storage operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Append a txn to the log (zxid greater than every logged one).
    Append(Zxid, Vec<u8>),
    /// Drop every logged txn after this zxid.
    TruncateAfter(Zxid),
    /// Replace state and log with this snapshot of the state machine at this zxid. The app
    /// also replaces its in-memory state machine when it executes this op; delivery
    /// resumes after the snapshot's zxid.
    InstallSnapshot(Zxid, Vec<u8>),
    /// Write `acceptedEpoch`.
    AcceptedEpoch(u32),
    /// Write `currentEpoch`.
    CurrentEpoch(u32),
}

/// What the app must do, drained with [`crate::Zab::poll_action`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send on the connection to `to` (drop it if there is none).
    Send {
        /// Destination server id.
        to: u64,
        /// The message.
        msg: ZabMessage,
    },
    /// Durable storage ops, in order; the app calls `handle_persisted(token)` once ALL
    /// effects of this action (and of every earlier Persist) are fsynced. The core sends
    /// nothing that depends on them before that.
    Persist {
        /// Completion token.
        token: PersistToken,
        /// The ops, to apply in order.
        ops: Vec<StorageOp>,
    },
    /// Apply a committed txn to the state machine. In zxid order, exactly once per
    /// (re)start; after an `InstallSnapshot`, delivery resumes after the snapshot zxid.
    Commit {
        /// Its zxid.
        zxid: Zxid,
        /// Its bytes, as the leader proposed them.
        txn: Vec<u8>,
    },
    /// The leader needs a snapshot of the applied state to SNAP-sync `for_peer`; answer
    /// with `handle_snapshot`.
    TakeSnapshot {
        /// The learner to sync.
        for_peer: u64,
    },
    /// Role, epoch, leader or establishment changed.
    RoleChanged(Status),
    /// A read registered with [`crate::Zab::read_index`] may be served once the app has
    /// applied up to `zxid`: the leader's commit point when the read was registered, and a
    /// quorum confirmed afterwards that this server still leads.
    ReadIndexReady {
        /// The id given to `read_index`.
        id: u64,
        /// Serve the read after applying up to here.
        zxid: Zxid,
    },
    /// A registered read cannot be confirmed: this server stopped leading first.
    ReadIndexFailed {
        /// The id given to `read_index`.
        id: u64,
    },
}

/// A server's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Electing a leader.
    Looking,
    /// Following a leader.
    Following,
    /// Leading (see [`Status::established`]).
    Leading,
    /// Observing a leader.
    Observing,
}

/// A snapshot of the server's protocol state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Current role.
    pub role: Role,
    /// `currentEpoch`.
    pub epoch: u32,
    /// The leader followed (or this server when leading).
    pub leader: Option<u64>,
    /// True when leading an epoch a quorum acknowledged (writes accepted), or when a learner
    /// is synced with its leader (UPTODATE received).
    pub established: bool,
    /// The last persisted zxid.
    pub last_logged: Zxid,
    /// The last zxid delivered to the state machine.
    pub last_committed: Zxid,
    /// Leader only: learners that acknowledged NEWLEADER.
    pub synced_followers: Vec<u64>,
}

/// Returned by [`crate::Zab::propose`] when this server cannot accept writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the established leader (leader: {leader:?})")]
pub struct NotLeader {
    /// The leader to redirect to, if known.
    pub leader: Option<u64>,
}

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZabError {
    /// Bytes from a peer are not a valid archive of a [`ZabMessage`].
    #[error("peer message failed validation: {0}")]
    Decode(String),
}
