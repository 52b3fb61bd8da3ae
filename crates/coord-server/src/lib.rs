//! The Coord server: actix actors wired to quinn (QUIC) and to the durable log.
//!
//! ```text
//!  clients ==QUIC==> conn (one task pair per session stream: reader, coalescing writer)
//!                      |  ClientRequest / CreateSession / Attach / Detach
//!                      v
//!                    Store  (znode tree, watches, per-session FIFO queues, reads)
//!                      |  Propose(txn)               ^ Committed(zxid, txn)
//!                      v                             |
//!                    Proposer (zxid = epoch<<32 | counter) --submit--> GroupCommit (log thread,
//!                      ^                                                one fsync per batch)
//!                      +----------------- Durable(up_to) -----------------+
//!  SessionManager: scans liveness every tick; an expired session becomes a CloseSession txn.
//! ```
//!
//! This is the leader's path of a one-node ensemble: a txn is applied and answered only once it
//! is in the fsynced log, and commits reach the Store in zxid order. Replication adds peers to the
//! Proposer's quorum without rewiring the path.
//!
//! Invariants:
//! - a reply that reflects a write leaves only after the write's record is durable;
//! - the Store applies txns in strictly increasing zxid order;
//! - each session's replies leave in request order, and a watch event is queued on a session's
//!   stream before any reply that reflects its change (one outbox per session).
#![warn(missing_docs)]

// rkyv's derive emits undocumented helper structs for enum variants with fields.
#[allow(missing_docs)]
pub mod app_msg;
pub mod cache;
pub mod config;
pub mod conn;
pub mod disk_space;
pub mod ensemble;
pub mod liveness;
pub mod node;
pub mod outbox;
pub mod peer;
pub mod persist;
pub mod proposer;
pub mod replica;
pub mod sessions;
pub mod store;
pub mod tls;

/// Milliseconds since the Unix epoch (the leader's clock for ctime/mtime and TTLs).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
