//! Coord's durable storage: the txn log and snapshots.
//!
//! The log stores opaque records (a txn's bytes exactly as the leader encoded them, never
//! re-encoded) keyed by zxid (`epoch << 32 | counter`, strictly increasing), and opaque
//! snapshot blobs. It knows nothing about the tree. Two backends implement [`LogStorage`]
//! and pass the same [`conformance`] suite:
//!
//! - [`FileLog`]: segmented append-only files with a CRC per record, `fdatasync` per
//!   [`LogStorage::sync`], atomic snapshots, torn-tail repair on open.
//! - [`MemLog`]: an in-memory disk model for the deterministic simulator; [`MemLog::crash`]
//!   keeps only what was made durable.
//!
//! [`GroupCommit`] runs any backend on a writer thread: one fsync per batch of whatever was
//! queued while the previous fsync ran.
//!
//! # Directory layout ([`FileLog`])
//!
//! ```text
//! <dir>/
//!   LOCK                      advisory lock: one FileLog per directory
//!   log.0000000000000001      segment; the name is its base: every record has zxid >= base
//!   log.0000000100000a3f      next segment: base = last zxid of the previous one + 1
//!   snap.0000000100000a00     snapshot of the state at zxid 0x100000a00
//!   snap.0000000100000a00.tmp snapshot being written (removed on open)
//!
//! segment  := header record*
//! header   := "COORDLOG" | version u32 | base u64 | crc32c(previous 20 bytes) u32 | 0u64
//! record   := len u32 | crc32c(zxid_le ++ payload) u32 | zxid u64 | payload[len]
//! snapshot := "COORDSNP" | version u32 | crc u32 | zxid u64 | len u64 | 0u64 | payload[len]
//!             (crc = crc32c over the 24 bytes from zxid on ++ payload)
//! ```
//!
//! All integers are little endian; `version` is [`FORMAT_VERSION`].
//!
//! # Invariants
//!
//! - zxids strictly increase across the whole log: within a segment, and from one segment
//!   to the next (`segment[i]` holds zxids in `[base_i, base_{i+1})`).
//! - A segment is only rolled after it has been written and `fdatasync`ed in full, so every
//!   non-final segment is complete: a bad record there is corruption ([`LogError::Corrupt`]),
//!   never a torn write. Only the final segment can have a torn tail; on open everything
//!   from its first bad record on (short header, length over `max_record`, short payload,
//!   bad CRC, zxid not increasing) is cut, the file fsynced, and the cut reported in
//!   [`RecoveryReport`] and with a `tracing::warn!`.
//! - The first segment's base minus one is the *horizon*: every record with zxid > horizon
//!   is present. Purging raises it; reading or truncating below it is
//!   [`LogError::Compacted`] rather than a silent hole (a leader then sends SNAP, not DIFF).
//! - A snapshot file is complete or absent: written to `*.tmp`, fsynced, renamed, and the
//!   directory fsynced. A snapshot failing its CRC is skipped for an older one.
//! - Nothing read from disk is trusted: no panic and no allocation sized by a length field.

#![warn(missing_docs)]

pub mod conformance;
mod error;
mod file;
pub mod format;
mod group;
mod mem;
mod snapfile;

pub use error::LogError;
pub use file::{FileLog, RecoveryReport, TornTail};
pub use format::FORMAT_VERSION;
pub use group::{BatchLimits, Durable, GroupCommit, GroupCommitStats, LogEvent};
pub use mem::MemLog;

/// A log backend: a durable, ordered map from zxid to opaque record, plus snapshots.
///
/// Call order: `append`* then `sync` to make them durable; `truncate_after`,
/// `save_snapshot` and `purge` are durable when they return (and may sync pending appends).
pub trait LogStorage: Send {
    /// Buffers a record; not durable until [`sync`](Self::sync). `zxid` must be greater than
    /// [`last_zxid`](Self::last_zxid) (else [`LogError::OutOfOrder`]).
    fn append(&mut self, zxid: u64, record: &[u8]) -> Result<(), LogError>;
    /// Makes every appended record durable (write + fdatasync). After `Ok`, a crash loses
    /// none of them.
    fn sync(&mut self) -> Result<(), LogError>;
    /// Highest appended zxid (0 if none; the horizon if every record was purged).
    fn last_zxid(&self) -> u64;
    /// Highest durable zxid.
    fn last_synced_zxid(&self) -> u64;
    /// Records with zxid > `after`, in order (for recovery and for a leader's DIFF),
    /// including appended but not yet synced ones. [`LogError::Compacted`] if
    /// `after < horizon()`, since records in between may be gone.
    fn read_after(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError>;
    /// Removes every record with zxid > `zxid`, durably (for a follower's TRUNC); remaining
    /// appended records become durable too. Snapshots newer than `zxid` are deleted, since
    /// they would contain the removed txns. [`LogError::Compacted`] if `zxid < horizon()`.
    fn truncate_after(&mut self, zxid: u64) -> Result<(), LogError>;
    /// Durably stores a snapshot of the state at `zxid` (atomic: temp file, fsync, rename,
    /// fsync dir). Replaces an existing snapshot at the same zxid.
    fn save_snapshot(&mut self, zxid: u64, bytes: &[u8]) -> Result<(), LogError>;
    /// Newest snapshot that passes its checksum (older ones are tried when the newest is
    /// corrupt), if any.
    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, LogError>;
    /// Zxids of every stored snapshot file, ascending, valid or not.
    fn snapshot_zxids(&self) -> Result<Vec<u64>, LogError>;
    /// Keeps the newest `keep` snapshots that pass their checksum and deletes every other
    /// snapshot, then deletes every log segment whose records are all <= the oldest kept
    /// snapshot's zxid (never the final segment). `keep == 0` deletes all snapshots and no
    /// records.
    fn purge(&mut self, keep: usize) -> Result<(), LogError>;
    /// Every record with zxid > horizon is present; records <= horizon may have been purged.
    fn horizon(&self) -> u64;
    /// Drops records with zxid <= `zxid` that are covered by a snapshot (optional
    /// compaction for backends without segments). The default, and [`FileLog`], do nothing:
    /// there whole segments go in [`purge`](Self::purge).
    fn compact(&mut self, zxid: u64) -> Result<(), LogError> {
        let _ = zxid;
        Ok(())
    }
}

impl<T: LogStorage + ?Sized> LogStorage for Box<T> {
    fn append(&mut self, zxid: u64, record: &[u8]) -> Result<(), LogError> {
        (**self).append(zxid, record)
    }
    fn sync(&mut self) -> Result<(), LogError> {
        (**self).sync()
    }
    fn last_zxid(&self) -> u64 {
        (**self).last_zxid()
    }
    fn last_synced_zxid(&self) -> u64 {
        (**self).last_synced_zxid()
    }
    fn read_after(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        (**self).read_after(after)
    }
    fn truncate_after(&mut self, zxid: u64) -> Result<(), LogError> {
        (**self).truncate_after(zxid)
    }
    fn save_snapshot(&mut self, zxid: u64, bytes: &[u8]) -> Result<(), LogError> {
        (**self).save_snapshot(zxid, bytes)
    }
    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        (**self).latest_snapshot()
    }
    fn snapshot_zxids(&self) -> Result<Vec<u64>, LogError> {
        (**self).snapshot_zxids()
    }
    fn purge(&mut self, keep: usize) -> Result<(), LogError> {
        (**self).purge(keep)
    }
    fn horizon(&self) -> u64 {
        (**self).horizon()
    }
    fn compact(&mut self, zxid: u64) -> Result<(), LogError> {
        (**self).compact(zxid)
    }
}

/// Tunables of [`FileLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment once the current one reaches this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Largest record accepted by `append`; a bigger length field on disk is corruption
    /// (default 8 MiB). Never lower it below records already written: on open, a longer
    /// record in the final segment would be cut as a torn tail, in another one refused.
    pub max_record: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            max_record: 8 << 20,
        }
    }
}

/// What a server replays on start: the newest valid snapshot and the records after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// `(zxid, bytes)` of the newest snapshot that passes its checksum.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Every record with zxid greater than the snapshot's (all records if none), in order.
    pub records: Vec<(u64, Vec<u8>)>,
}

/// Loads the newest valid snapshot and the records after it: apply the snapshot, then
/// replay `records` in order.
pub fn recover(log: &dyn LogStorage) -> Result<Recovered, LogError> {
    let snapshot = log.latest_snapshot()?;
    let after = snapshot.as_ref().map_or(0, |(zxid, _)| *zxid);
    let records = log.read_after(after)?;
    Ok(Recovered { snapshot, records })
}

/// Opens the [`FileLog`] in `dir` (repairing a torn tail) and [`recover`]s from it.
pub fn recover_dir(
    dir: &std::path::Path,
    opts: LogOptions,
) -> Result<(FileLog, RecoveryReport, Recovered), LogError> {
    let (log, report) = FileLog::open(dir, opts)?;
    let recovered = recover(&log)?;
    Ok((log, report, recovered))
}
