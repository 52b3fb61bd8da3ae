//! The Coord znode tree: paths, Stat, ACL checks, txn apply, watch triggers and the digest.
//! Sans-IO and deterministic: no clock (time comes in [`Txn::time_ms`]), no randomness, no
//! runtime; nothing observable depends on hash-map iteration order.
//!
//! ```text
//!   committed (zxid, Txn) ──> DataTree::apply ──> ApplyOutcome { reply, changes }
//!                                  │                              │
//!                     reads, digest, snapshot          WatchManager::trigger ──> events
//! ```
//!
//! - [`DataTree`] is replicated: every server applies the same txns in zxid order and ends
//!   with the same tree and the same [`DataTree::digest`]. Its invariants are listed in
//!   `tree.rs`; [`DataTree::snapshot`] / [`DataTree::from_snapshot`] persist it.
//! - [`WatchManager`] is per server and volatile: it maps the [`Change`]s of each applied txn
//!   to watch events for that server's sessions.
//! - [`RecentChanges`] is per server and volatile: the changes of the last applied txns, from
//!   which a reconnecting session's persistent watches are sent what they missed.
//! - Semantics are ZooKeeper 3.8's (error codes and their precedence, sequential names,
//!   ephemeral/container/TTL nodes, ACL schemes, watch firing rules).
#![warn(missing_docs)]

mod acl;
mod apply;
mod digest;
mod node;
mod reap;
mod recent;
mod snapshot;
mod tree;
// rkyv's derive emits undocumented helper types for enum variants with fields; every item
// written in the module is documented.
#[allow(missing_docs)]
mod txn;
mod watch;

pub use acl::digest_id;
pub use apply::{ApplyOutcome, Change, MAX_TTL_MS};
pub use recent::{RecentChanges, ReplayGap, WindowDecodeError};
pub use snapshot::{SNAPSHOT_VERSION, SnapshotView};
pub use tree::DataTree;
pub use txn::{Txn, TxnBody};
pub use watch::{WatchKind, WatchManager};

/// Errors of this crate: malformed bytes from the log, a peer or the disk, and bad
/// credentials. Apply errors are not here: they are [`coord_proto::ErrorCode`]s in the reply.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Txn bytes are not a valid archive of a [`Txn`].
    #[error("txn failed validation: {0}")]
    TxnDecode(String),
    /// The snapshot is shorter than its header or than a length it announces.
    #[error("snapshot truncated: need {need} bytes, have {have}")]
    SnapshotTruncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The snapshot does not start with the snapshot magic.
    #[error("not a coord-tree snapshot (bad magic)")]
    SnapshotMagic,
    /// The snapshot's format version is not one this build reads.
    #[error("snapshot format version {0} is not supported (this build reads {SNAPSHOT_VERSION})")]
    SnapshotVersion(u32),
    /// The snapshot's checksum does not match its contents.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    SnapshotChecksum {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A section of the snapshot failed archive validation.
    #[error("snapshot failed validation: {0}")]
    SnapshotDecode(String),
    /// The snapshot decodes but describes an impossible tree (duplicate path, orphan node,
    /// child of an ephemeral, ephemeral of an unknown session, ...).
    #[error("snapshot is inconsistent: {0}")]
    SnapshotInconsistent(String),
    /// The digest recomputed from the restored nodes differs from the stored one.
    #[error("snapshot digest mismatch: stored {stored:#018x}, recomputed {computed:#018x}")]
    DigestMismatch {
        /// Digest stored in the snapshot.
        stored: u64,
        /// Digest of the restored nodes.
        computed: u64,
    },
    /// Credentials are not of the form `user:password`.
    #[error("credentials must be of the form user:password")]
    BadCredentials,
}
