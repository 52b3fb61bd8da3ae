//! Discovery, leader side: collect a quorum of `FollowerInfo`, pick the new epoch (max
//! `acceptedEpoch` + 1), persist it, send `LeaderInfo`, collect a quorum of `AckEpoch`
//! (stepping down if a member of that quorum has a later history), then persist
//! `currentEpoch` and start syncing each learner. Also the leader's heartbeats and
//! step-down checks.

use std::collections::BTreeMap;

use coord_proto::Zxid;

use crate::{StorageOp, Vote, Zab, ZabMessage};

/// Where one learner is in the leader's eyes (ZooKeeper's LearnerHandler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `FollowerInfo` received; the epoch is not decided or not yet durable.
    Info,
    /// `LeaderInfo` sent.
    AwaitAckEpoch,
    /// `AckEpoch` received; waiting for the epoch quorum (or, for an observer, for the
    /// leader to be established).
    EpochAcked {
        /// The learner's last zxid.
        last_zxid: Zxid,
        /// The learner's last delivered zxid.
        last_committed: Zxid,
    },
    /// `TakeSnapshot` asked of the app for this learner.
    AwaitSnapshot,
    /// Sync sent up to NEWLEADER; proposals (or informs) are forwarded.
    Syncing,
    /// NEWLEADER acknowledged.
    Synced,
}

/// The leader's state for one learner.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    pub(crate) attempt: u64,
    pub(crate) observer: bool,
    pub(crate) accepted_epoch: u32,
    pub(crate) stage: Stage,
    /// Everything up to this zxid is on the learner's disk (followers only).
    pub(crate) acked_up_to: Zxid,
    pub(crate) last_heard: u64,
}

impl Handler {
    /// Receives proposals/commits (followers) or informs (observers).
    pub(crate) fn forwarding(&self) -> bool {
        matches!(self.stage, Stage::Syncing | Stage::Synced)
    }
}

/// LEADING state.
#[derive(Debug)]
pub(crate) struct Leader {
    /// The vote we were elected with (answered to LOOKING servers).
    pub(crate) vote: Vote,
    pub(crate) started_at: u64,
    /// The new epoch, 0 until decided.
    pub(crate) new_epoch: u32,
    pub(crate) epoch_token: u64,
    /// Our own `acceptedEpoch = new_epoch` is durable (our own epoch ack).
    pub(crate) epoch_durable: bool,
    /// A quorum acked the epoch; the history to sync is fixed.
    pub(crate) epoch_quorum: bool,
    pub(crate) current_epoch_token: Option<u64>,
    /// Our own `currentEpoch = new_epoch` is durable (our own NEWLEADER ack).
    pub(crate) current_epoch_durable: bool,
    /// A quorum acked NEWLEADER: writes accepted, the recovered history committed.
    pub(crate) established: bool,
    /// Counter of the last zxid proposed in `new_epoch`.
    pub(crate) counter: u32,
    pub(crate) handlers: BTreeMap<u64, Handler>,
}

impl Leader {
    pub(crate) fn new(vote: Vote, now: u64) -> Leader {
        Leader {
            vote,
            started_at: now,
            new_epoch: 0,
            epoch_token: 0,
            epoch_durable: false,
            epoch_quorum: false,
            current_epoch_token: None,
            current_epoch_durable: false,
            established: false,
            counter: 0,
            handlers: BTreeMap::new(),
        }
    }

    pub(crate) fn synced_ids(&self) -> Vec<u64> {
        self.handlers
            .iter()
            .filter(|(_, h)| h.stage == Stage::Synced)
            .map(|(id, _)| *id)
            .collect()
    }
}

macro_rules! leader {
    ($self:ident) => {
        match &mut $self.state {
            $crate::State::Leading(ld) => ld,
            _ => return,
        }
    };
}
pub(crate) use leader;

impl Zab {
    pub(crate) fn on_follower_info(
        &mut self,
        now: u64,
        from: u64,
        attempt: u64,
        accepted_epoch: u32,
        _last_zxid: Zxid,
    ) {
        let observer = !self.cfg.is_voter(from);
        let ld = leader!(self);
        if ld.handlers.get(&from).is_some_and(|h| h.attempt == attempt) {
            return; // a resend of the attempt we already serve
        }
        if ld.new_epoch != 0 && !observer && accepted_epoch > ld.new_epoch {
            // That voter promised a later epoch and can never ack ours; without it the
            // ensemble may lack a quorum. Re-elect: the next epoch will be above its promise.
            self.enter_looking(now, "a voter accepted an epoch later than ours");
            return;
        }
        // A voter that already accepted exactly our epoch (it acked us before it restarted,
        // or it promised a rival that never formed this epoch) is synced like any other, but
        // its AckEpoch does not count towards the epoch quorum: only first promises do
        // (ZooKeeper's `-1` epoch ack). That is how a follower rejoins an established leader
        // without an election.
        ld.handlers.insert(
            from,
            Handler {
                attempt,
                observer,
                accepted_epoch,
                stage: Stage::Info,
                acked_up_to: Zxid::ZERO,
                last_heard: now,
            },
        );
        if ld.epoch_durable {
            self.send_leader_info(from);
        } else {
            self.leader_check_info_quorum(now);
        }
    }

    /// Decides the new epoch once a quorum of voters (us included) sent `FollowerInfo`.
    pub(crate) fn leader_check_info_quorum(&mut self, _now: u64) {
        let quorum = self.cfg.quorum();
        let promised = self.promised_epoch;
        let ld = leader!(self);
        if ld.new_epoch != 0 {
            return;
        }
        let voters = 1 + ld.handlers.values().filter(|h| !h.observer).count();
        if voters < quorum {
            return;
        }
        let max = ld
            .handlers
            .values()
            .map(|h| h.accepted_epoch)
            .fold(promised, u32::max);
        let Some(new_epoch) = max.checked_add(1) else {
            return; // epochs exhausted: never lead again rather than reuse one
        };
        ld.new_epoch = new_epoch;
        self.promised_epoch = new_epoch;
        let token = self.persist(vec![StorageOp::AcceptedEpoch(new_epoch)]);
        leader!(self).epoch_token = token;
    }

    fn send_leader_info(&mut self, to: u64) {
        let ld = leader!(self);
        let new_epoch = ld.new_epoch;
        let Some(h) = ld.handlers.get_mut(&to) else {
            return;
        };
        if h.stage != Stage::Info {
            return;
        }
        h.stage = Stage::AwaitAckEpoch;
        let attempt = h.attempt;
        self.send(to, ZabMessage::LeaderInfo { attempt, new_epoch });
    }

    pub(crate) fn leader_on_persisted(&mut self, now: u64) {
        let persisted = self.persisted;
        let ld = leader!(self);
        if ld.new_epoch != 0 && !ld.epoch_durable && persisted >= ld.epoch_token {
            ld.epoch_durable = true;
            let waiting: Vec<u64> = ld.handlers.keys().copied().collect();
            for id in waiting {
                self.send_leader_info(id);
            }
            self.leader_check_epoch_quorum(now);
        }
        let ld = leader!(self);
        if let Some(t) = ld.current_epoch_token
            && !ld.current_epoch_durable
            && persisted >= t
        {
            ld.current_epoch_durable = true;
            self.leader_check_established(now);
        }
        self.leader_update_commit();
    }

    fn leader_on_ack_epoch(
        &mut self,
        now: u64,
        from: u64,
        current_epoch: u32,
        last_zxid: Zxid,
        last_committed: Zxid,
    ) {
        let mine = (self.current_epoch, self.last_logged);
        let ld = leader!(self);
        let Some(h) = ld.handlers.get_mut(&from) else {
            return;
        };
        if h.stage != Stage::AwaitAckEpoch {
            return;
        }
        // Until the epoch quorum is formed, its members define the history we sync; one
        // with a later history means we must not lead it.
        if !ld.epoch_quorum && !h.observer && (current_epoch, last_zxid) > mine {
            self.enter_looking(now, "a follower's history is ahead of the leader's");
            return;
        }
        h.stage = Stage::EpochAcked {
            last_zxid,
            last_committed,
        };
        if ld.epoch_quorum {
            self.maybe_start_sync(now, from);
        } else {
            self.leader_check_epoch_quorum(now);
        }
    }

    fn leader_check_epoch_quorum(&mut self, now: u64) {
        let quorum = self.cfg.quorum();
        let ld = leader!(self);
        if ld.epoch_quorum || !ld.epoch_durable {
            return;
        }
        let new_epoch = ld.new_epoch;
        let acked = 1 + ld
            .handlers
            .values()
            .filter(|h| !h.observer && h.accepted_epoch < new_epoch)
            .filter(|h| matches!(h.stage, Stage::EpochAcked { .. }))
            .count();
        if acked < quorum {
            return;
        }
        ld.epoch_quorum = true;
        let epoch = ld.new_epoch;
        let ready: Vec<u64> = ld.handlers.keys().copied().collect();
        // Written after every earlier write (our whole history) by the FIFO of Persists.
        let token = self.persist(vec![StorageOp::CurrentEpoch(epoch)]);
        leader!(self).current_epoch_token = Some(token);
        for id in ready {
            self.maybe_start_sync(now, id);
        }
    }

    pub(crate) fn leader_on_message(&mut self, now: u64, from: u64, msg: ZabMessage) {
        let ld = leader!(self);
        let Some(h) = ld.handlers.get_mut(&from) else {
            return;
        };
        h.last_heard = now;
        match msg {
            ZabMessage::AckEpoch {
                current_epoch,
                last_zxid,
                last_committed,
            } => self.leader_on_ack_epoch(now, from, current_epoch, last_zxid, last_committed),
            ZabMessage::AckNewLeader { epoch, zxid } => {
                self.leader_on_ack_new_leader(now, from, epoch, zxid)
            }
            ZabMessage::Ack { zxid } => self.leader_on_ack(from, zxid),
            ZabMessage::ReadPingAck { round } => self.leader_on_read_ack(from, round),
            // Heartbeat answers only refresh `last_heard`; anything else from a learner is
            // not part of the protocol and is ignored.
            _ => {}
        }
    }

    pub(crate) fn leader_on_disconnected(&mut self, _now: u64, peer: u64) {
        let ld = leader!(self);
        ld.handlers.remove(&peer);
    }

    pub(crate) fn leader_tick(&mut self, now: u64) {
        let quorum = self.cfg.quorum();
        let init = self.cfg.init_limit_ticks * self.cfg.tick_ms;
        let sync = self.cfg.sync_limit_ticks * self.cfg.tick_ms;
        let ld = leader!(self);
        if !ld.established && now >= ld.started_at + init {
            self.enter_looking(now, "no quorum acknowledged NEWLEADER within initLimit");
            return;
        }
        if ld.established {
            let heard = 1 + ld
                .handlers
                .values()
                .filter(|h| !h.observer && h.stage == Stage::Synced)
                .filter(|h| now.saturating_sub(h.last_heard) <= sync)
                .count();
            if heard < quorum {
                self.enter_looking(now, "leader did not hear a quorum within syncLimit");
                return;
            }
        }
        let ids: Vec<u64> = ld.handlers.keys().copied().collect();
        for id in ids {
            self.send(id, ZabMessage::Ping);
        }
    }
}
