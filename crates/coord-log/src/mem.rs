//! [`MemLog`]: an in-memory disk model for the deterministic simulator.

use std::collections::BTreeMap;
use std::io;

use crate::{LogError, LogOptions, LogStorage};

/// A snapshot as "written to disk": the bytes and the checksum taken when saved, so that
/// [`MemLog::corrupt_snapshot`] can model bit rot the way a real file would show it.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    bytes: Vec<u8>,
    crc: u32,
}

impl StoredSnapshot {
    fn valid(&self) -> bool {
        crc32c::crc32c(&self.bytes) == self.crc
    }
}

/// In-memory [`LogStorage`] that keeps synced and unsynced records apart.
///
/// Disk model, matching the [`LogStorage`] contract that [`FileLog`](crate::FileLog) keeps:
/// `append` only buffers; `sync` makes every appended record durable; `truncate_after`,
/// `save_snapshot`, `purge` and `compact` are durable when they return (as their file
/// counterparts fsync before returning), so a crash can only fall before or after them.
/// [`crash`](MemLog::crash) then keeps exactly the durable state: records appended after the
/// last sync are lost, including those appended after a truncate. After an injected sync
/// failure the log refuses everything with [`LogError::Failed`] until `crash`, like a file
/// log after a failed fsync must be reopened.
#[derive(Debug, Clone)]
pub struct MemLog {
    /// Ascending by zxid; `records[..synced]` are durable, the rest are not.
    records: Vec<(u64, Vec<u8>)>,
    synced: usize,
    snapshots: BTreeMap<u64, StoredSnapshot>,
    /// Every record with zxid > horizon is in `records`.
    horizon: u64,
    max_record: u32,
    /// Number of upcoming `sync` calls that fail.
    failing_syncs: u32,
    failed: bool,
}

impl Default for MemLog {
    fn default() -> Self {
        MemLog::new()
    }
}

impl MemLog {
    /// An empty log with the default record limit.
    pub fn new() -> MemLog {
        MemLog {
            records: Vec::new(),
            synced: 0,
            snapshots: BTreeMap::new(),
            horizon: 0,
            max_record: LogOptions::default().max_record,
            failing_syncs: 0,
            failed: false,
        }
    }

    /// Power loss: drops every record not made durable by `sync` (or by a later durable
    /// operation) and clears an injected failure, as a restart would.
    pub fn crash(&mut self) {
        self.records.truncate(self.synced);
        self.failed = false;
        self.failing_syncs = 0;
    }

    /// Makes the next `n` calls to `sync` fail with an IO error (as an fsync can), after
    /// which the log refuses everything until [`crash`](MemLog::crash).
    pub fn fail_next_syncs(&mut self, n: u32) {
        self.failing_syncs = n;
    }

    /// Flips a byte of the stored snapshot at `zxid` (models bit rot); false if there is
    /// none or it is empty.
    pub fn corrupt_snapshot(&mut self, zxid: u64) -> bool {
        match self
            .snapshots
            .get_mut(&zxid)
            .and_then(|s| s.bytes.first_mut())
        {
            Some(b) => {
                *b ^= 0x5a;
                true
            }
            None => false,
        }
    }

    /// Number of records that would survive a crash now.
    pub fn durable_records(&self) -> usize {
        self.synced
    }

    fn check(&self) -> Result<(), LogError> {
        if self.failed {
            Err(LogError::Failed)
        } else {
            Ok(())
        }
    }

    /// Removes records with zxid <= `cut` (durably) and raises the horizon to `cut`.
    fn drop_through(&mut self, cut: u64) {
        let n = self.records.partition_point(|(z, _)| *z <= cut);
        self.records.drain(..n);
        self.synced = self.synced.saturating_sub(n);
        self.horizon = self.horizon.max(cut);
    }

    fn newest_valid_snapshot(&self) -> Option<u64> {
        self.snapshots
            .iter()
            .rev()
            .find(|(_, s)| s.valid())
            .map(|(z, _)| *z)
    }
}

impl LogStorage for MemLog {
    fn append(&mut self, zxid: u64, record: &[u8]) -> Result<(), LogError> {
        self.check()?;
        let last = self.last_zxid();
        if zxid <= last {
            return Err(LogError::OutOfOrder { zxid, last });
        }
        if record.len() > self.max_record as usize {
            return Err(LogError::RecordTooLarge {
                len: record.len(),
                max: self.max_record,
            });
        }
        self.records.push((zxid, record.to_vec()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.check()?;
        if self.failing_syncs > 0 {
            self.failing_syncs -= 1;
            self.failed = true;
            return Err(LogError::io(
                "fdatasync <memlog>",
                io::Error::other("injected fsync failure"),
            ));
        }
        self.synced = self.records.len();
        Ok(())
    }

    fn last_zxid(&self) -> u64 {
        self.records.last().map_or(self.horizon, |(z, _)| *z)
    }

    fn last_synced_zxid(&self) -> u64 {
        match self.synced {
            0 => self.horizon,
            n => self.records[n - 1].0,
        }
    }

    fn read_after(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        self.check()?;
        if after < self.horizon {
            return Err(LogError::Compacted {
                requested: after,
                horizon: self.horizon,
            });
        }
        let start = self.records.partition_point(|(z, _)| *z <= after);
        Ok(self.records[start..].to_vec())
    }

    fn truncate_after(&mut self, zxid: u64) -> Result<(), LogError> {
        self.check()?;
        if zxid < self.horizon {
            return Err(LogError::Compacted {
                requested: zxid,
                horizon: self.horizon,
            });
        }
        self.snapshots.retain(|z, _| *z <= zxid);
        let keep = self.records.partition_point(|(z, _)| *z <= zxid);
        self.records.truncate(keep);
        self.synced = keep;
        Ok(())
    }

    fn save_snapshot(&mut self, zxid: u64, bytes: &[u8]) -> Result<(), LogError> {
        self.check()?;
        let stored = StoredSnapshot {
            bytes: bytes.to_vec(),
            crc: crc32c::crc32c(bytes),
        };
        self.snapshots.insert(zxid, stored);
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        Ok(self
            .newest_valid_snapshot()
            .map(|z| (z, self.snapshots[&z].bytes.clone())))
    }

    fn snapshot_zxids(&self) -> Result<Vec<u64>, LogError> {
        Ok(self.snapshots.keys().copied().collect())
    }

    fn purge(&mut self, keep: usize) -> Result<(), LogError> {
        self.check()?;
        let kept: Vec<u64> = self
            .snapshots
            .iter()
            .rev()
            .filter(|(_, s)| s.valid())
            .map(|(z, _)| *z)
            .take(keep)
            .collect();
        self.snapshots.retain(|z, _| kept.contains(z));
        if let Some(&oldest_kept) = kept.last() {
            // Like the file backend, never drop the newest record: last_zxid stays put.
            let cut = oldest_kept.min(self.last_zxid());
            self.drop_through(cut);
        }
        Ok(())
    }

    fn horizon(&self) -> u64 {
        self.horizon
    }

    fn compact(&mut self, zxid: u64) -> Result<(), LogError> {
        self.check()?;
        if let Some(snap) = self.newest_valid_snapshot() {
            let cut = zxid.min(snap).min(self.last_zxid());
            self.drop_through(cut);
        }
        Ok(())
    }
}
