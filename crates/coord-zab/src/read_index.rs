//! Linearizable reads without a log write (Raft thesis §6.4, "ReadIndex"), leader side.
//!
//! ```text
//!   read_index(id)  ─► waiting += (id, committed)        (the commit point *now*)
//!   no round in flight ─► round r: ReadPing{r} to every synced follower
//!   ReadPingAck{r} from a quorum (the leader counts itself)
//!                   ─► ReadIndexReady{id, zxid} for every read of round r; next round
//!   this server stops leading ─► ReadIndexFailed{id} for every read not yet ready
//! ```
//!
//! Why it is safe: an established ZAB leader has committed the whole history it recovered
//! before it serves, so its commit point when a read is registered covers every write any
//! leader acknowledged before. A quorum answering a `ReadPing` sent *after* the read was
//! registered proves no later epoch had been established at that moment (a follower that
//! acked a newer epoch no longer answers this leader, and any newer leader needs a quorum,
//! which intersects ours). So a server that applies up to the returned zxid and then serves
//! the read returns state at least as new as every write acknowledged before the read
//! began. Reads registered while a round is in flight wait for the next round (whose ping
//! leaves after them): many reads share one confirmation. Cost: one leader → quorum round
//! trip, no disk write.

use std::collections::BTreeSet;

use coord_proto::Zxid;

use crate::{Action, NotLeader, State, Zab, ZabMessage};

/// A registered read: its id and the leader's commit point when it was registered.
type Read = (u64, Zxid);

/// The round in flight: its number, the followers that answered, the reads it confirms.
type Round = (u64, BTreeSet<u64>, Vec<Read>);

/// Reads waiting for a confirmation round.
#[derive(Debug, Default)]
pub(crate) struct ReadIndex {
    next_round: u64,
    /// The round whose `ReadPing` is out: its number, the followers that answered, and the
    /// reads it confirms (id, commit point when registered).
    in_flight: Option<Round>,
    /// Reads registered while a round was in flight.
    waiting: Vec<Read>,
}

impl ReadIndex {
    fn is_empty(&self) -> bool {
        self.in_flight.is_none() && self.waiting.is_empty()
    }
}

impl Zab {
    /// Registers a linearizable read `id` (leader only, once established): the answer comes
    /// out as [`Action::ReadIndexReady`] or [`Action::ReadIndexFailed`], exactly once.
    pub fn read_index(&mut self, _now_ms: u64, id: u64) -> Result<(), NotLeader> {
        if !matches!(&self.state, State::Leading(ld) if ld.established) {
            return Err(NotLeader {
                leader: self.status().leader,
            });
        }
        self.reads.waiting.push((id, self.committed));
        if self.reads.in_flight.is_none() {
            self.start_read_round();
        }
        self.finish();
        Ok(())
    }

    fn start_read_round(&mut self) {
        let reads = std::mem::take(&mut self.reads.waiting);
        if reads.is_empty() {
            return;
        }
        self.reads.next_round += 1;
        let round = self.reads.next_round;
        self.reads.in_flight = Some((round, BTreeSet::new(), reads));
        let followers: Vec<u64> = match &self.state {
            State::Leading(ld) => ld
                .handlers
                .iter()
                .filter(|(_, h)| !h.observer && h.stage == crate::discovery::Stage::Synced)
                .map(|(id, _)| *id)
                .collect(),
            _ => Vec::new(),
        };
        for id in followers {
            self.send(id, ZabMessage::ReadPing { round });
        }
        self.maybe_confirm_reads();
    }

    pub(crate) fn leader_on_read_ack(&mut self, from: u64, round: u64) {
        if !self.cfg.is_voter(from) {
            return;
        }
        if let Some((r, acks, _)) = &mut self.reads.in_flight
            && *r == round
        {
            acks.insert(from);
            self.maybe_confirm_reads();
        }
    }

    /// Releases the round in flight once a quorum (the leader included) confirmed it.
    fn maybe_confirm_reads(&mut self) {
        let quorum = self.cfg.quorum();
        let confirmed = matches!(
            &self.reads.in_flight,
            Some((_, acks, _)) if 1 + acks.len() >= quorum
        );
        if !confirmed {
            return;
        }
        if let Some((_, _, reads)) = self.reads.in_flight.take() {
            for (id, zxid) in reads {
                self.actions.push_back(Action::ReadIndexReady { id, zxid });
            }
        }
        self.start_read_round();
    }

    /// Fails every read once this server no longer leads an established epoch.
    pub(crate) fn fail_reads_unless_leading(&mut self) {
        if self.reads.is_empty() || matches!(&self.state, State::Leading(ld) if ld.established) {
            return;
        }
        let mut ids: Vec<u64> = std::mem::take(&mut self.reads.waiting)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if let Some((_, _, reads)) = self.reads.in_flight.take() {
            ids.extend(reads.into_iter().map(|(id, _)| id));
        }
        ids.sort_unstable();
        for id in ids {
            self.actions.push_back(Action::ReadIndexFailed { id });
        }
    }
}
