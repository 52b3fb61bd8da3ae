//! Broadcast, leader side: assign `zxid = epoch << 32 | counter`, log and send PROPOSAL to
//! every forwarded follower (pipelined), count cumulative ACKs (ours only once our own
//! Persist finished), and COMMIT in zxid order once a quorum holds a prefix; observers get
//! INFORM with the txn.

use coord_proto::Zxid;

use crate::discovery::leader;
use crate::{NotLeader, State, StorageOp, Zab, ZabMessage};

impl Zab {
    pub(crate) fn leader_propose(&mut self, now: u64, txn: Vec<u8>) -> Result<Zxid, NotLeader> {
        let leader = match &self.state {
            State::Leading(ld) if ld.established => None,
            State::Leading(_) => Some(self.cfg.id),
            State::Following(l) => Some(l.leader),
            State::Looking(_) => None,
        };
        let State::Leading(ld) = &mut self.state else {
            return Err(NotLeader { leader });
        };
        if !ld.established {
            return Err(NotLeader { leader });
        }
        let Some(counter) = ld.counter.checked_add(1) else {
            // The counter space of this epoch is used up: a new epoch must start.
            self.enter_looking(now, "zxid counter exhausted");
            return Err(NotLeader { leader: None });
        };
        ld.counter = counter;
        let zxid = Zxid::new(ld.new_epoch, counter);
        let to: Vec<u64> = ld
            .handlers
            .iter()
            .filter(|(_, h)| !h.observer && h.forwarding())
            .map(|(id, _)| *id)
            .collect();
        self.log.append(zxid, txn.clone());
        self.persist(vec![StorageOp::Append(zxid, txn.clone())]);
        for id in to {
            self.send(
                id,
                ZabMessage::Proposal {
                    zxid,
                    txn: txn.clone(),
                },
            );
        }
        Ok(zxid)
    }

    pub(crate) fn leader_on_ack(&mut self, from: u64, zxid: Zxid) {
        let end = self.log.last();
        let ld = leader!(self);
        let Some(h) = ld.handlers.get_mut(&from) else {
            return;
        };
        if h.observer || h.stage != crate::discovery::Stage::Synced {
            return;
        }
        h.acked_up_to = h.acked_up_to.max(zxid.min(end));
        self.leader_update_commit();
    }

    /// Advances the commit point to the largest zxid a quorum of NEWLEADER-acked voters
    /// (us included once our `currentEpoch` is durable) holds on disk.
    pub(crate) fn leader_update_commit(&mut self) {
        let quorum = self.cfg.quorum();
        let own = self.last_logged;
        let ld = leader!(self);
        if !ld.established {
            return;
        }
        let mut acks: Vec<Zxid> = ld
            .handlers
            .values()
            .filter(|h| !h.observer && h.stage == crate::discovery::Stage::Synced)
            .map(|h| h.acked_up_to)
            .collect();
        if ld.current_epoch_durable {
            acks.push(own);
        }
        if acks.len() < quorum {
            return;
        }
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let point = acks[quorum - 1];
        if point <= self.committed {
            return;
        }
        let old = self.committed;
        self.committed = point;
        let mut followers = Vec::new();
        let mut observers = Vec::new();
        for (id, h) in &ld.handlers {
            if h.forwarding() {
                if h.observer {
                    observers.push(*id);
                } else {
                    followers.push(*id);
                }
            }
        }
        for id in followers {
            self.send(id, ZabMessage::Commit { zxid: point });
        }
        if !observers.is_empty() {
            let informs: Vec<ZabMessage> = self
                .log
                .range(old, point)
                .map(|(zxid, txn)| ZabMessage::Inform {
                    zxid: *zxid,
                    txn: txn.clone(),
                })
                .collect();
            for id in observers {
                for m in &informs {
                    self.send(id, m.clone());
                }
            }
        }
        self.deliver();
    }
}
