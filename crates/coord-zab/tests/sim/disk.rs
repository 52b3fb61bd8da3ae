//! A disk model: what a server has fsynced vs what is still pending. A Persist action is
//! pending until its completion event; a crash keeps a random prefix of the pending ops
//! (writes reach the platter in order) and drops the rest.

use std::collections::VecDeque;

use coord_zab::{PersistToken, Persisted, StorageOp, Zxid};

#[derive(Debug, Default, Clone)]
pub struct Disk {
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    pub snapshot: Option<(Zxid, Vec<u8>)>,
    /// Strictly increasing zxids, all after the snapshot's.
    pub log: Vec<(Zxid, Vec<u8>)>,
    pub pending: VecDeque<(PersistToken, Vec<StorageOp>)>,
    /// Completion time of the last scheduled Persist (completions are FIFO).
    pub last_done_at: u64,
    /// While stalled, no Persist completes (a stuck fsync).
    pub stalled: bool,
}

impl Disk {
    pub fn snapshot_zxid(&self) -> Zxid {
        self.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.0)
    }

    pub fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(self.snapshot_zxid(), |r| r.0)
    }

    /// True if `zxid` is a point of the durable history (advertising it is allowed).
    pub fn holds(&self, zxid: Zxid) -> bool {
        zxid == Zxid::ZERO
            || zxid == self.snapshot_zxid()
            || self.log.binary_search_by(|r| r.0.cmp(&zxid)).is_ok()
    }

    /// True if the durable state includes txn `zxid` (logged, or inside the snapshot).
    pub fn covers(&self, zxid: Zxid) -> bool {
        zxid <= self.snapshot_zxid() || self.log.binary_search_by(|r| r.0.cmp(&zxid)).is_ok()
    }

    /// Applies one op durably. Returns true if the op may have removed data.
    fn apply(&mut self, op: StorageOp) -> Result<bool, String> {
        match op {
            StorageOp::Append(zxid, txn) => {
                if zxid <= self.last_zxid() {
                    return Err(format!("append {zxid} after {} on disk", self.last_zxid()));
                }
                self.log.push((zxid, txn));
                Ok(false)
            }
            StorageOp::TruncateAfter(zxid) => {
                if zxid < self.snapshot_zxid() {
                    return Err(format!(
                        "truncate to {zxid} below the snapshot at {}",
                        self.snapshot_zxid()
                    ));
                }
                self.log.retain(|r| r.0 <= zxid);
                Ok(true)
            }
            StorageOp::InstallSnapshot(zxid, bytes) => {
                self.snapshot = Some((zxid, bytes));
                self.log.clear();
                Ok(true)
            }
            StorageOp::AcceptedEpoch(e) => {
                self.accepted_epoch = e;
                Ok(false)
            }
            StorageOp::CurrentEpoch(e) => {
                self.current_epoch = e;
                Ok(false)
            }
        }
    }

    /// Makes every pending action up to `token` durable.
    pub fn complete_through(&mut self, token: PersistToken) -> Result<bool, String> {
        let mut lossy = false;
        while self.pending.front().is_some_and(|p| p.0 <= token) {
            let (_, ops) = self.pending.pop_front().expect("checked just above");
            for op in ops {
                lossy |= self.apply(op)?;
            }
        }
        Ok(lossy)
    }

    pub fn pending_ops(&self) -> usize {
        self.pending.iter().map(|p| p.1.len()).sum()
    }

    /// Power loss: the first `keep` pending ops made it, the rest did not.
    pub fn crash(&mut self, keep: usize) -> Result<(), String> {
        let mut left = keep;
        let pending = std::mem::take(&mut self.pending);
        'outer: for (_, ops) in pending {
            for op in ops {
                if left == 0 {
                    break 'outer;
                }
                left -= 1;
                self.apply(op)?;
            }
        }
        self.stalled = false;
        self.last_done_at = 0;
        Ok(())
    }

    /// What a restarting server reads back.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_logged: self.last_zxid(),
            last_committed_hint: self.snapshot_zxid(),
            tail: self.log.clone(),
        }
    }
}
