//! The learner (follower or observer) through every phase: FollowerInfo → LeaderInfo
//! (persist `acceptedEpoch`, then AckEpoch) → DIFF/TRUNC/SNAP + SyncTxn* (each persisted)
//! → NEWLEADER (once all of that is durable, persist `currentEpoch`, then AckNewLeader) →
//! UPTODATE; then Proposal (persist, then cumulative Ack) and Commit, or Inform for
//! observers. Anything out of order ends the attempt: back to LOOKING.

use coord_proto::Zxid;

use crate::{State, StorageOp, Vote, Zab, ZabMessage};

/// Learner progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LearnerStage {
    /// FollowerInfo sent (resent every tick).
    AwaitLeaderInfo,
    /// `acceptedEpoch` being written.
    PersistingEpoch { token: u64 },
    /// AckEpoch sent; waiting for DIFF/TRUNC/SNAP.
    AwaitSync,
    /// Receiving sync txns.
    Syncing,
    /// NEWLEADER received.
    NewLeader {
        /// The sync's last zxid.
        zxid: Zxid,
        /// Written once every sync write is durable.
        current_epoch_token: Option<u64>,
        /// AckNewLeader sent.
        acked: bool,
    },
}

/// FOLLOWING / OBSERVING state.
#[derive(Debug)]
pub(crate) struct Learner {
    pub(crate) leader: u64,
    /// The vote we decided on (answered to LOOKING servers).
    pub(crate) vote: Vote,
    pub(crate) observer: bool,
    pub(crate) attempt: u64,
    pub(crate) started_at: u64,
    pub(crate) last_heard: u64,
    pub(crate) stage: LearnerStage,
    pub(crate) new_epoch: u32,
    /// UPTODATE received.
    pub(crate) uptodate: bool,
    pub(crate) last_ack_sent: Zxid,
}

impl Learner {
    pub(crate) fn new(vote: Vote, observer: bool, attempt: u64, now: u64) -> Learner {
        Learner {
            leader: vote.leader,
            vote,
            observer,
            attempt,
            started_at: now,
            last_heard: now,
            stage: LearnerStage::AwaitLeaderInfo,
            new_epoch: 0,
            uptodate: false,
            last_ack_sent: Zxid::ZERO,
        }
    }
}

macro_rules! learner {
    ($self:ident) => {
        match &mut $self.state {
            State::Following(l) => l,
            _ => return,
        }
    };
}

impl Zab {
    pub(crate) fn send_follower_info(&mut self) {
        // Our promise, durable or still being written: the leader must know every epoch we
        // may have acked, to not count a second AckEpoch for the same epoch.
        let accepted_epoch = self.promised_epoch;
        let last_zxid = self.last_logged;
        let l = learner!(self);
        if l.stage != LearnerStage::AwaitLeaderInfo {
            return;
        }
        let msg = ZabMessage::FollowerInfo {
            attempt: l.attempt,
            accepted_epoch,
            last_zxid,
            observer: l.observer,
        };
        let to = l.leader;
        self.send(to, msg);
    }

    pub(crate) fn learner_on_connected(&mut self, _now: u64, peer: u64) {
        if matches!(&self.state, State::Following(l) if l.leader == peer) {
            self.send_follower_info();
        }
    }

    pub(crate) fn learner_tick(&mut self, now: u64) {
        let tick = self.cfg.tick_ms;
        let (init, sync) = (
            self.cfg.init_limit_ticks * tick,
            self.cfg.sync_limit_ticks * tick,
        );
        let l = learner!(self);
        let limit = if l.uptodate { sync } else { init };
        if now.saturating_sub(l.last_heard) > limit {
            self.enter_looking(now, "learner did not hear from the leader in time");
            return;
        }
        if !l.uptodate && now.saturating_sub(l.started_at) > init {
            self.enter_looking(now, "learner was not synced within initLimit");
            return;
        }
        self.send_follower_info();
    }

    /// Ends the attempt because the leader sent something the protocol does not allow.
    fn learner_violation(&mut self, now: u64, reason: &'static str) {
        self.enter_looking(now, reason);
    }

    pub(crate) fn learner_on_message(&mut self, now: u64, from: u64, msg: ZabMessage) {
        let promised = self.promised_epoch;
        let l = learner!(self);
        if from != l.leader {
            return;
        }
        l.last_heard = now;
        let stage = l.stage;
        let observer = l.observer;
        match msg {
            ZabMessage::Ping => self.send(from, ZabMessage::PingAck),
            // Only a follower is in the quorum that confirms leadership; an observer's
            // answer would prove nothing.
            ZabMessage::ReadPing { round } if !observer => {
                self.send(from, ZabMessage::ReadPingAck { round })
            }
            ZabMessage::LeaderInfo { attempt, new_epoch } => {
                if stage != LearnerStage::AwaitLeaderInfo || attempt != l.attempt {
                    return; // an answer to an older attempt
                }
                // A voter promises an epoch once: that is what makes one leader per epoch.
                // An epoch equal to our promise is followed without a new promise; our
                // FollowerInfo told the leader so, and it does not count this AckEpoch
                // towards its epoch quorum. An earlier epoch is refused. Observers are in no
                // quorum; they may follow any leader.
                let ok = new_epoch >= promised || observer;
                if !ok {
                    self.learner_violation(now, "leader proposed an epoch below our promise");
                    return;
                }
                l.new_epoch = new_epoch;
                if new_epoch > promised {
                    self.promised_epoch = new_epoch;
                    let token = self.persist(vec![StorageOp::AcceptedEpoch(new_epoch)]);
                    learner!(self).stage = LearnerStage::PersistingEpoch { token };
                } else {
                    learner!(self).stage = LearnerStage::PersistingEpoch { token: 0 };
                }
                self.learner_on_persisted(now);
            }
            ZabMessage::Diff { from: start } => {
                if stage != LearnerStage::AwaitSync || start != self.log.last() {
                    return self.learner_violation(now, "DIFF does not start at our last zxid");
                }
                l.stage = LearnerStage::Syncing;
            }
            ZabMessage::Trunc { to } => {
                if stage != LearnerStage::AwaitSync || to < self.delivered || to > self.log.last() {
                    return self.learner_violation(now, "TRUNC below what we delivered");
                }
                l.stage = LearnerStage::Syncing;
                self.log.truncate_after(to);
                self.committed = self.committed.min(to);
                self.persist(vec![StorageOp::TruncateAfter(to)]);
            }
            ZabMessage::Snap { zxid, bytes } => {
                if stage != LearnerStage::AwaitSync {
                    return self.learner_violation(now, "SNAP outside of sync");
                }
                l.stage = LearnerStage::Syncing;
                self.log.reset(zxid);
                self.delivered = zxid;
                self.committed = zxid;
                self.persist(vec![StorageOp::InstallSnapshot(zxid, bytes)]);
            }
            ZabMessage::SyncTxn { zxid, txn } => {
                if stage != LearnerStage::Syncing || zxid <= self.log.last() {
                    return self.learner_violation(now, "sync txn out of order");
                }
                self.log.append(zxid, txn.clone());
                self.persist(vec![StorageOp::Append(zxid, txn)]);
            }
            ZabMessage::NewLeader {
                epoch,
                zxid,
                committed,
            } => {
                if stage != LearnerStage::Syncing || epoch != l.new_epoch || zxid != self.log.last()
                {
                    return self.learner_violation(now, "NEWLEADER does not match the sync");
                }
                l.stage = LearnerStage::NewLeader {
                    zxid,
                    current_epoch_token: None,
                    acked: false,
                };
                self.committed = self.committed.max(committed.min(zxid));
                self.learner_on_persisted(now);
            }
            ZabMessage::Proposal { zxid, txn } => {
                let LearnerStage::NewLeader { .. } = stage else {
                    return self.learner_violation(now, "proposal before NEWLEADER");
                };
                let last = self.log.last();
                let next = if last.epoch() == l.new_epoch {
                    last.counter().checked_add(1)
                } else {
                    Some(1)
                };
                if observer || zxid.epoch() != l.new_epoch || Some(zxid.counter()) != next {
                    return self.learner_violation(now, "proposal out of order");
                }
                self.log.append(zxid, txn.clone());
                self.persist(vec![StorageOp::Append(zxid, txn)]);
            }
            ZabMessage::Commit { zxid } => {
                let LearnerStage::NewLeader { .. } = stage else {
                    return self.learner_violation(now, "commit before NEWLEADER");
                };
                self.committed = self.committed.max(zxid.min(self.log.last()));
                self.deliver();
            }
            ZabMessage::Inform { zxid, txn } => {
                let LearnerStage::NewLeader { .. } = stage else {
                    return self.learner_violation(now, "inform before NEWLEADER");
                };
                if !observer || zxid <= self.log.last() {
                    return self.learner_violation(now, "inform out of order");
                }
                self.log.append(zxid, txn.clone());
                self.committed = zxid;
                self.persist(vec![StorageOp::Append(zxid, txn)]);
            }
            ZabMessage::UpToDate { committed } => {
                let LearnerStage::NewLeader { acked: true, .. } = stage else {
                    return self.learner_violation(now, "UPTODATE before our NEWLEADER ack");
                };
                l.uptodate = true;
                self.committed = self.committed.max(committed.min(self.log.last()));
                self.deliver();
            }
            // Election traffic is handled elsewhere; leader-bound messages are not ours.
            _ => {}
        }
    }

    /// Sends what waited for durability: AckEpoch, the `currentEpoch` write, AckNewLeader,
    /// Acks.
    pub(crate) fn learner_on_persisted(&mut self, _now: u64) {
        let persisted = self.persisted;
        let all_written = self.last_token();
        let (current_epoch, last_logged, delivered) =
            (self.current_epoch, self.last_logged, self.delivered);
        let l = learner!(self);
        let leader = l.leader;
        match l.stage {
            LearnerStage::PersistingEpoch { token } if persisted >= token => {
                l.stage = LearnerStage::AwaitSync;
                self.send(
                    leader,
                    ZabMessage::AckEpoch {
                        current_epoch,
                        last_zxid: last_logged,
                        last_committed: delivered,
                    },
                );
            }
            LearnerStage::NewLeader {
                zxid,
                current_epoch_token: None,
                acked: false,
            } if persisted >= all_written => {
                // Every sync write is durable: now the epoch they belong to.
                let epoch = l.new_epoch;
                let token = self.persist(vec![StorageOp::CurrentEpoch(epoch)]);
                learner!(self).stage = LearnerStage::NewLeader {
                    zxid,
                    current_epoch_token: Some(token),
                    acked: false,
                };
            }
            LearnerStage::NewLeader {
                zxid,
                current_epoch_token: Some(token),
                acked: false,
            } if persisted >= token => {
                let epoch = l.new_epoch;
                l.stage = LearnerStage::NewLeader {
                    zxid,
                    current_epoch_token: Some(token),
                    acked: true,
                };
                l.last_ack_sent = zxid;
                self.send(leader, ZabMessage::AckNewLeader { epoch, zxid });
            }
            _ => {}
        }
        // Cumulative ack of proposals persisted after NEWLEADER.
        let last_logged = self.last_logged;
        let l = learner!(self);
        if let LearnerStage::NewLeader { acked: true, .. } = l.stage
            && !l.observer
            && last_logged > l.last_ack_sent
        {
            l.last_ack_sent = last_logged;
            self.send(leader, ZabMessage::Ack { zxid: last_logged });
        }
    }
}
