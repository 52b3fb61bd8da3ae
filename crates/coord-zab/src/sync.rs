//! Sync, leader side: bring each learner's log to the leader's history with DIFF, TRUNC or
//! SNAP followed by the missing txns and NEWLEADER; count NEWLEADER acks; once a quorum
//! (us included, after our `currentEpoch` is durable) acked, the epoch is established.
//!
//! Choosing the sync. Histories obey: two logs holding the same zxid agree on every txn up
//! to it (one leader per epoch, FIFO), and a log holding `(e, n)` holds `(e, 1..n)`. So a
//! common point with a learner whose last zxid is `z` is `z` itself if we hold it, the
//! largest zxid of `z`'s epoch we hold below `z`, or the learner's last delivered zxid
//! (committed, hence in our history) if we still hold it in memory. DIFF from `z`; TRUNC to
//! the best common point, then the txns after it; SNAP when there is none in memory.
//! Observers get committed txns only, and only once the epoch is established.

use coord_proto::Zxid;

use crate::discovery::{Stage, leader};
use crate::log::TxnLog;
use crate::{Action, Zab, ZabMessage};

/// How to bring a learner to our history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPlan {
    /// The learner's log is a prefix of ours: send the txns after `from`.
    Diff { from: Zxid },
    /// The learner holds txns after `to` that are not ours: drop them, send ours after it.
    Trunc { to: Zxid },
    /// No common point in memory: snapshot, then the txns after it.
    Snap,
}

/// Picks the sync for a learner whose last zxid is `last` and last delivered zxid is
/// `delivered`, syncing it up to `upto` (our history's end, or our commit point for
/// observers).
pub(crate) fn plan(log: &TxnLog, last: Zxid, delivered: Zxid, upto: Zxid) -> SyncPlan {
    if last <= upto && log.contains(last) {
        return SyncPlan::Diff { from: last };
    }
    let in_epoch = log.last_in_epoch_at_most(last, upto);
    let via_delivered =
        (delivered <= last && delivered <= upto && log.contains(delivered)).then_some(delivered);
    match in_epoch.max(via_delivered) {
        Some(to) => SyncPlan::Trunc { to },
        None => SyncPlan::Snap,
    }
}

impl Zab {
    /// Starts syncing `id` if it acked the epoch and may be synced now.
    pub(crate) fn maybe_start_sync(&mut self, _now: u64, id: u64) {
        let upto_committed = self.committed;
        let upto_log = self.log.last();
        let ld = leader!(self);
        let established = ld.established;
        let Some(h) = ld.handlers.get_mut(&id) else {
            return;
        };
        let Stage::EpochAcked {
            last_zxid,
            last_committed,
        } = h.stage
        else {
            return;
        };
        if h.observer && !established {
            return; // observers never see txns that might not commit
        }
        let upto = if h.observer {
            upto_committed.min(upto_log)
        } else {
            upto_log
        };
        match plan(&self.log, last_zxid, last_committed, upto) {
            SyncPlan::Diff { from } => {
                self.send(id, ZabMessage::Diff { from });
                self.send_sync_txns(id, from, upto);
            }
            SyncPlan::Trunc { to } => {
                self.send(id, ZabMessage::Trunc { to });
                self.send_sync_txns(id, to, upto);
            }
            SyncPlan::Snap => {
                h.stage = Stage::AwaitSnapshot;
                self.actions
                    .push_back(Action::TakeSnapshot { for_peer: id });
            }
        }
    }

    /// Sends our txns in `(after, upto]` and NEWLEADER; the learner is now forwarded to.
    fn send_sync_txns(&mut self, id: u64, after: Zxid, upto: Zxid) {
        let msgs: Vec<ZabMessage> = self
            .log
            .range(after, upto)
            .map(|(zxid, txn)| ZabMessage::SyncTxn {
                zxid: *zxid,
                txn: txn.clone(),
            })
            .collect();
        for m in msgs {
            self.send(id, m);
        }
        let committed = self.committed.min(upto);
        let ld = leader!(self);
        let epoch = ld.new_epoch;
        if let Some(h) = ld.handlers.get_mut(&id) {
            h.stage = Stage::Syncing;
        }
        self.send(
            id,
            ZabMessage::NewLeader {
                epoch,
                zxid: upto,
                committed,
            },
        );
    }

    pub(crate) fn leader_on_snapshot(
        &mut self,
        _now: u64,
        for_peer: u64,
        zxid: Zxid,
        bytes: Vec<u8>,
    ) {
        let committed = self.committed;
        let upto_log = self.log.last();
        let usable = zxid <= committed && self.log.contains(zxid);
        let ld = leader!(self);
        let Some(h) = ld.handlers.get_mut(&for_peer) else {
            return;
        };
        if h.stage != Stage::AwaitSnapshot {
            return;
        }
        if !usable {
            // The app's state is older than the history we still hold (or newer than what
            // we know committed): ask again rather than leave a gap.
            self.actions.push_back(Action::TakeSnapshot { for_peer });
            return;
        }
        let upto = if h.observer { committed } else { upto_log };
        self.send(for_peer, ZabMessage::Snap { zxid, bytes });
        self.send_sync_txns(for_peer, zxid, upto);
    }

    pub(crate) fn leader_on_ack_new_leader(&mut self, now: u64, from: u64, epoch: u32, zxid: Zxid) {
        let committed = self.committed;
        let ld = leader!(self);
        let established = ld.established;
        let Some(h) = ld.handlers.get_mut(&from) else {
            return;
        };
        if h.stage != Stage::Syncing || epoch != ld.new_epoch {
            return;
        }
        h.stage = Stage::Synced;
        if !h.observer {
            h.acked_up_to = h.acked_up_to.max(zxid);
        }
        if established {
            self.send(from, ZabMessage::UpToDate { committed });
            self.leader_update_commit();
        } else {
            self.leader_check_established(now);
        }
    }

    /// Establishes the epoch once a quorum of voters (us included) acked NEWLEADER.
    pub(crate) fn leader_check_established(&mut self, now: u64) {
        let quorum = self.cfg.quorum();
        let ld = leader!(self);
        if ld.established || !ld.current_epoch_durable {
            return;
        }
        let acked = 1 + ld
            .handlers
            .values()
            .filter(|h| !h.observer && h.stage == Stage::Synced)
            .count();
        if acked < quorum {
            return;
        }
        ld.established = true;
        ld.counter = 0;
        // Commits the history recovered from earlier epochs (every NEWLEADER ack covers it).
        self.leader_update_commit();
        let committed = self.committed;
        let ld = leader!(self);
        let synced: Vec<u64> = ld.synced_ids();
        let observers: Vec<u64> = ld
            .handlers
            .iter()
            .filter(|(_, h)| h.observer)
            .map(|(id, _)| *id)
            .collect();
        for id in synced {
            self.send(id, ZabMessage::UpToDate { committed });
        }
        for id in observers {
            self.maybe_start_sync(now, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(base: Zxid, zxids: &[Zxid]) -> TxnLog {
        TxnLog {
            base,
            records: zxids.iter().map(|z| (*z, vec![])).collect(),
        }
    }

    #[test]
    fn plans() {
        let z = Zxid::new;
        let l = log(Zxid::ZERO, &[z(1, 1), z(1, 2), z(1, 3), z(3, 1)]);
        let end = l.last();
        // A prefix: DIFF.
        assert_eq!(
            plan(&l, z(1, 2), z(1, 1), end),
            SyncPlan::Diff { from: z(1, 2) }
        );
        assert_eq!(
            plan(&l, Zxid::ZERO, Zxid::ZERO, end),
            SyncPlan::Diff { from: Zxid::ZERO }
        );
        // An uncommitted tail of epoch 1 we lack: TRUNC to our last of epoch 1.
        assert_eq!(
            plan(&l, z(1, 5), z(1, 1), end),
            SyncPlan::Trunc { to: z(1, 3) }
        );
        // A tail of an epoch we hold nothing of: TRUNC to what it delivered.
        assert_eq!(
            plan(&l, z(2, 4), z(1, 2), end),
            SyncPlan::Trunc { to: z(1, 2) }
        );
        // Ahead in our own last epoch (an old leader's tail).
        assert_eq!(
            plan(&l, z(3, 2), z(1, 3), end),
            SyncPlan::Trunc { to: z(3, 1) }
        );
        // Observers: only up to the commit point.
        assert_eq!(
            plan(&l, z(1, 3), z(1, 3), z(1, 2)),
            SyncPlan::Trunc { to: z(1, 2) }
        );
        // Nothing in memory in common: SNAP.
        let trimmed = log(z(1, 3), &[z(3, 1)]);
        assert_eq!(plan(&trimmed, z(1, 1), z(1, 1), z(3, 1)), SyncPlan::Snap);
        assert_eq!(plan(&trimmed, z(2, 1), z(1, 1), z(3, 1)), SyncPlan::Snap);
    }
}
