//! Fast leader election (ZooKeeper's FastLeaderElection).
//!
//! A LOOKING voter proposes itself with `(currentEpoch, last persisted zxid, id)`, adopts
//! any better vote it hears in its round, and decides once a quorum of voters agrees with
//! its vote (at once if every voter does, else after a short finalize wait in case a better
//! vote is still on its way). A server that is FOLLOWING or LEADING answers a LOOKING one
//! with the vote it elected; a LOOKING server follows a leader that a quorum reports and
//! that itself reports LEADING. Observers never vote; they only find the leader.
//!
//! Election never starts while a Persist is pending, so the advertised zxid is the durable
//! end of the log (a pending TRUNC could otherwise make it a zxid no longer on disk).

use std::collections::BTreeMap;

use crate::discovery::Leader;
use crate::learner::Learner;
use crate::{PeerState, State, Vote, Zab, ZabMessage};

/// LOOKING state.
#[derive(Debug, Default)]
pub(crate) struct Election {
    /// False until the pending writes drained and the first notification went out.
    pub(crate) started: bool,
    /// Our current vote.
    pub(crate) vote: Option<Vote>,
    /// Votes of LOOKING voters in our round (ours included).
    pub(crate) recv: BTreeMap<u64, Vote>,
    /// Votes of FOLLOWING/LEADING voters, any round.
    pub(crate) out_of_election: BTreeMap<u64, (Vote, PeerState)>,
    /// When to resend our notification.
    pub(crate) resend_at: u64,
    /// When to decide if the quorum still holds.
    pub(crate) finalize_at: Option<u64>,
    /// `FollowerInfo` that arrived while we were still electing (peers that decided for us
    /// before we did): (attempt, acceptedEpoch, last zxid) by sender, handled if we lead.
    pub(crate) early_infos: BTreeMap<u64, (u64, u32, crate::Zxid)>,
}

impl Zab {
    fn self_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.last_logged,
            peer_epoch: self.current_epoch,
        }
    }

    /// Leaves the current role and starts electing.
    pub(crate) fn enter_looking(&mut self, now: u64, reason: &'static str) {
        self.last_reason = reason;
        self.state = State::Looking(Election::default());
        self.maybe_start_election(now);
    }

    /// Starts the round once no write is pending.
    pub(crate) fn maybe_start_election(&mut self, now: u64) {
        if !self.pending.is_empty() {
            return;
        }
        let vote = self.self_vote();
        let delay = self.random_election_delay();
        let voter = self.cfg.is_voter(self.cfg.id);
        let State::Looking(e) = &mut self.state else {
            return;
        };
        if e.started {
            return;
        }
        e.started = true;
        e.vote = Some(vote);
        e.recv.clear();
        if voter {
            e.recv.insert(self.cfg.id, vote);
        }
        e.resend_at = now + delay;
        // A peer can announce any round (we adopt higher ones): never overflow on it.
        self.round = self.round.saturating_add(1);
        self.broadcast_notification();
        // A one-voter ensemble decides alone.
        self.check_looking_quorum(now);
    }

    fn my_notification(&self) -> Option<ZabMessage> {
        let (vote, state) = match &self.state {
            State::Looking(e) => (e.vote?, PeerState::Looking),
            State::Following(l) if l.observer => (l.vote, PeerState::Observing),
            State::Following(l) => (l.vote, PeerState::Following),
            State::Leading(ld) => (ld.vote, PeerState::Leading),
        };
        Some(ZabMessage::Notification {
            vote,
            round: self.round,
            state,
        })
    }

    pub(crate) fn send_notification(&mut self, to: u64) {
        if let State::Looking(e) = &self.state
            && !e.started
        {
            return;
        }
        if let Some(msg) = self.my_notification() {
            self.send(to, msg);
        }
    }

    fn broadcast_notification(&mut self) {
        let Some(msg) = self.my_notification() else {
            return;
        };
        let peers: Vec<u64> = self
            .cfg
            .voters
            .iter()
            .chain(&self.cfg.observers)
            .copied()
            .collect();
        for p in peers {
            self.send(p, msg.clone());
        }
    }

    pub(crate) fn on_notification(
        &mut self,
        now: u64,
        from: u64,
        vote: Vote,
        round: u64,
        state: PeerState,
    ) {
        match self.state {
            State::Looking(_) => self.looking_on_notification(now, from, vote, round, state),
            // Late joiners learn who leads. Observers are not asked: their view never counts.
            State::Following(ref l) if !l.observer && state == PeerState::Looking => {
                self.send_notification(from)
            }
            State::Leading(_) if state == PeerState::Looking => self.send_notification(from),
            _ => {}
        }
    }

    fn looking_on_notification(
        &mut self,
        now: u64,
        from: u64,
        vote: Vote,
        round: u64,
        state: PeerState,
    ) {
        let me_voter = self.cfg.is_voter(self.cfg.id);
        if !self.cfg.is_voter(from) || !self.cfg.is_voter(vote.leader) {
            return;
        }
        let self_vote = self.self_vote();
        let quorum = self.cfg.quorum();
        let my_id = self.cfg.id;
        let State::Looking(e) = &mut self.state else {
            return;
        };
        if !e.started {
            return;
        }
        match state {
            PeerState::Looking => {
                if !me_voter {
                    return;
                }
                let mine = e.vote.unwrap_or(self_vote);
                let mut changed = false;
                if round > self.round {
                    self.round = round;
                    e.recv.clear();
                    e.vote = Some(if vote.beats(&self_vote) {
                        vote
                    } else {
                        self_vote
                    });
                    changed = true;
                } else if round < self.round {
                    self.send_notification(from);
                    return;
                } else if vote.beats(&mine) {
                    e.vote = Some(vote);
                    changed = true;
                }
                e.recv.insert(from, vote);
                let current = e.vote.unwrap_or(self_vote);
                e.recv.insert(my_id, current);
                if changed {
                    e.finalize_at = None;
                    self.broadcast_notification();
                }
                self.check_looking_quorum(now);
            }
            PeerState::Following | PeerState::Leading => {
                e.out_of_election.insert(from, (vote, state));
                let leader = vote.leader;
                let agreeing = e
                    .out_of_election
                    .values()
                    .filter(|(v, _)| v.leader == leader)
                    .count();
                let leader_leads = e
                    .out_of_election
                    .get(&leader)
                    .is_some_and(|(_, s)| *s == PeerState::Leading);
                if agreeing >= quorum && leader_leads && leader != my_id {
                    self.round = self.round.max(round);
                    self.decide(now, vote);
                }
            }
            PeerState::Observing => {}
        }
    }

    /// Decides at once if every voter we are connected to (ourselves included) agrees with
    /// our vote and they make a quorum; else arms the finalize wait once a quorum does.
    ///
    /// The finalize wait is there for a better vote still on its way; a voter we have no
    /// connection to cannot send one, so waiting for it only delays the election (it is what
    /// a crashed leader leaves behind). Safety does not rest on the wait: every voter that
    /// agrees adopted a vote at least as good as its own, so the leader's history contains
    /// whatever a quorum of voters logged.
    fn check_looking_quorum(&mut self, now: u64) {
        let quorum = self.cfg.quorum();
        let wait = self.cfg.tick_ms;
        let my_id = self.cfg.id;
        let State::Looking(e) = &mut self.state else {
            return;
        };
        let Some(vote) = e.vote else { return };
        let agreeing = e.recv.values().filter(|v| **v == vote).count();
        let reachable_agree = self
            .cfg
            .voters
            .iter()
            .filter(|&&v| v == my_id || self.connected.contains(&v))
            .all(|v| e.recv.get(v) == Some(&vote));
        if agreeing >= quorum && reachable_agree {
            self.decide(now, vote);
        } else if agreeing >= quorum && e.finalize_at.is_none() {
            e.finalize_at = Some(now + wait);
        }
    }

    /// Resend and finalize timers.
    pub(crate) fn election_timeout(&mut self, now: u64) {
        let quorum = self.cfg.quorum();
        let delay = self.random_election_delay();
        let State::Looking(e) = &mut self.state else {
            return;
        };
        if !e.started {
            return;
        }
        if let Some(f) = e.finalize_at
            && f <= now
        {
            e.finalize_at = None;
            if let Some(vote) = e.vote
                && e.recv.values().filter(|v| **v == vote).count() >= quorum
            {
                self.decide(now, vote);
                return;
            }
        }
        if e.resend_at <= now {
            e.resend_at = now + delay;
            self.broadcast_notification();
        }
    }

    fn decide(&mut self, now: u64, vote: Vote) {
        let early = match &mut self.state {
            State::Looking(e) => std::mem::take(&mut e.early_infos),
            _ => BTreeMap::new(),
        };
        if vote.leader == self.cfg.id {
            if self.cfg.is_voter(self.cfg.id) {
                self.state = State::Leading(Leader::new(vote, now));
                // Followers that decided before us sent their FollowerInfo already; serve
                // them now instead of at their next resend (a tick later).
                for (from, (attempt, accepted_epoch, last_zxid)) in early {
                    if matches!(self.state, State::Leading(_)) {
                        self.on_follower_info(now, from, attempt, accepted_epoch, last_zxid);
                    }
                }
                if matches!(self.state, State::Leading(_)) {
                    self.leader_check_info_quorum(now);
                }
            }
        } else {
            let attempt = rand::Rng::random::<u64>(&mut self.rng);
            let observer = !self.cfg.is_voter(self.cfg.id);
            self.state = State::Following(Learner::new(vote, observer, attempt, now));
            self.send_follower_info();
        }
    }
}
