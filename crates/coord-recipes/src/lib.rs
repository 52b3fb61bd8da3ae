//! Coord recipes: distributed locks, leader election and friends on top of
//! [`coord_client`]'s async API, the way ZooKeeper's recipes, Curator and Chubby build them.
//!
//! ```text
//!   Lock / Election ── queue of ephemeral-sequential nodes, each watching its predecessor
//!         │            + a lock-delay `holder` node (EphemeralLock) = the hold, its czxid
//!         │              the generation, its Sequencer the fencing token
//!   RwLock ── read/write ephemeral-sequential nodes; readers wait for earlier writers only
//!   Semaphore ── ephemeral-sequential leases, the first N hold; Counter ── versioned CAS
//!   Barrier, DoubleBarrier ── a barrier node / N ephemeral participants and a `ready` node
//!   Queue, LockingQueue ── sequential items; atomic take with a receipt; ephemeral claims
//!   TreeCache ── a subtree or node kept current by a persistent(-recursive) watch
//!   Group ── ephemeral members and a live view
//!   Coordinator, Participant ── 2PC: persistent votes and a create-once decision node
//!   three_phase::{Coordinator, Participant} ── 3PC: can-commit / pre-commit / do-commit,
//!         per-participant versioned state nodes, a termination protocol run by an elected
//!         participant on one linearizable view, and the same create-once decision node
//! ```
//!
//! Every recipe takes a [`coord_client::Client`] by value (clone it: clones share one
//! session), is `Send + Sync`, and documents its guarantee and what happens on a disconnect
//! (Chubby's jeopardy: the session may or may not still live), on session expiry and on a
//! fail-over of the ensemble's leader. Rules they all keep:
//!
//! - A call that failed with `ConnectionLoss` is retried only when its retry is safe; a
//!   create whose reply was lost is found again by a unique per-attempt prefix in its name,
//!   so nothing is leaked or done twice.
//! - Waiting is done with watches on one node where the algorithm allows it (no herd).
//! - Errors are [`coord_client::Error`]s with the server's [`coord_client::ErrorCode`];
//!   bad arguments give `BadArguments` / `InvalidPath`, never a panic.
#![warn(missing_docs)]

pub mod barrier;
pub mod cache;
pub mod counter;
pub mod election;
pub mod group;
pub mod lock;
pub mod queue;
pub mod rwlock;
pub mod semaphore;
pub mod three_phase;
pub mod txn;
mod util;

pub use barrier::{Barrier, DoubleBarrier};
pub use cache::{CacheEvent, TreeCache};
pub use counter::Counter;
pub use election::{Election, Leader, LeaderObserver};
pub use group::{Group, GroupView};
pub use lock::{Lock, LockHolder, LockOptions, LockStatus};
pub use queue::{LockingQueue, Queue, TakenItem};
pub use rwlock::{RwHold, RwLock};
pub use semaphore::{Lease, Semaphore};
pub use three_phase::{
    Coordinator as ThreePhaseCoordinator, Participant as ThreePhaseParticipant,
    State as ThreePhaseState,
};
pub use txn::{Coordinator, Decision, Participant};
