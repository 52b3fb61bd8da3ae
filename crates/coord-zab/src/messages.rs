//! Peer messages, one enum for every phase, archived with rkyv so the server can put them in
//! frames. Txn payloads are opaque bytes: the leader's bytes reach the followers' logs
//! unchanged.

use coord_proto::Zxid;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::ZabError;

/// A vote of fast leader election: who should lead, and the history that server claims.
///
/// Votes are ordered by `(peer_epoch, zxid, leader)`; the greatest wins.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
pub struct Vote {
    /// The proposed leader's server id.
    pub leader: u64,
    /// The proposed leader's last logged (persisted) zxid.
    pub zxid: Zxid,
    /// The proposed leader's `currentEpoch`.
    pub peer_epoch: u32,
}

impl Vote {
    /// True if `self` is a better leader than `other`: higher `(peer_epoch, zxid, leader)`.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// The state a server reports in its election notifications.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
pub enum PeerState {
    /// Electing.
    Looking,
    /// Following an elected leader.
    Following,
    /// Leading.
    Leading,
    /// Observing an elected leader (never votes).
    Observing,
}

/// Every message two ZAB peers exchange. Each connection between two peers is a FIFO
/// stream; when it breaks, both sides are told (`handle_disconnected`) and start over.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
pub enum ZabMessage {
    /// Election: the sender's current vote, its logical clock and its state. A server that
    /// is FOLLOWING/LEADING answers a LOOKING one with the vote it elected, so late joiners
    /// find the leader.
    Notification {
        /// The sender's vote.
        vote: Vote,
        /// The sender's logical clock (election round).
        round: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// Discovery, learner → leader: the learner's `acceptedEpoch` and last logged zxid.
    FollowerInfo {
        /// Random per attempt; echoed in `LeaderInfo` so stale replies are recognised.
        attempt: u64,
        /// The learner's `acceptedEpoch`.
        accepted_epoch: u32,
        /// The learner's last persisted zxid.
        last_zxid: Zxid,
        /// True for an observer (the leader trusts its own configuration, though).
        observer: bool,
    },
    /// Discovery, leader → learner: the proposed new epoch.
    LeaderInfo {
        /// The `attempt` of the `FollowerInfo` this answers.
        attempt: u64,
        /// The new epoch: max of a quorum's `acceptedEpoch` + 1.
        new_epoch: u32,
    },
    /// Discovery, learner → leader: the new epoch is durably accepted.
    AckEpoch {
        /// The learner's `currentEpoch`.
        current_epoch: u32,
        /// The learner's last persisted zxid.
        last_zxid: Zxid,
        /// The last zxid the learner delivered (known committed, in its history).
        last_committed: Zxid,
    },
    /// Sync: the learner's log is a prefix of the leader's; txns follow.
    Diff {
        /// The learner's last zxid the diff starts after.
        from: Zxid,
    },
    /// Sync: drop every logged txn after `to` (an uncommitted tail the leader lacks);
    /// txns after `to` follow.
    Trunc {
        /// The last zxid to keep.
        to: Zxid,
    },
    /// Sync: replace state and log with this snapshot; txns after `zxid` follow.
    Snap {
        /// The zxid the snapshot reflects.
        zxid: Zxid,
        /// The state machine's snapshot bytes.
        bytes: Vec<u8>,
    },
    /// Sync: one txn of the leader's history.
    SyncTxn {
        /// Its zxid.
        zxid: Zxid,
        /// Its bytes.
        txn: Vec<u8>,
    },
    /// Sync ends: the learner now holds the leader's history up to `zxid`.
    NewLeader {
        /// The new epoch (the learner's `currentEpoch` once it acks).
        epoch: u32,
        /// The last zxid of the synced history.
        zxid: Zxid,
        /// The leader's commit point at sync time (capped at `zxid`).
        committed: Zxid,
    },
    /// Learner → leader: everything received in sync is on disk, and so is `currentEpoch`.
    AckNewLeader {
        /// The epoch acknowledged.
        epoch: u32,
        /// The zxid from `NewLeader`.
        zxid: Zxid,
    },
    /// Leader → learner: a quorum acked NEWLEADER; the epoch is established.
    UpToDate {
        /// The leader's commit point.
        committed: Zxid,
    },
    /// Broadcast: a new txn.
    Proposal {
        /// `epoch << 32 | counter`.
        zxid: Zxid,
        /// The txn bytes.
        txn: Vec<u8>,
    },
    /// Follower → leader: every txn up to `zxid` is on disk (cumulative).
    Ack {
        /// The follower's last persisted zxid.
        zxid: Zxid,
    },
    /// Leader → follower: every txn up to `zxid` is committed (cumulative).
    Commit {
        /// The commit point.
        zxid: Zxid,
    },
    /// Leader → observer: a committed txn.
    Inform {
        /// Its zxid.
        zxid: Zxid,
        /// Its bytes.
        txn: Vec<u8>,
    },
    /// Leader → learner heartbeat.
    Ping,
    /// Learner → leader heartbeat answer.
    PingAck,
    /// Leader → follower: confirm you still follow me (a linearizable-read round).
    ReadPing {
        /// The leader's read round.
        round: u64,
    },
    /// Follower → leader: I still follow you (answer to `ReadPing`).
    ReadPingAck {
        /// The round answered.
        round: u64,
    },
}

impl ZabMessage {
    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            ZabMessage::Notification { .. } => "Notification",
            ZabMessage::FollowerInfo { .. } => "FollowerInfo",
            ZabMessage::LeaderInfo { .. } => "LeaderInfo",
            ZabMessage::AckEpoch { .. } => "AckEpoch",
            ZabMessage::Diff { .. } => "Diff",
            ZabMessage::Trunc { .. } => "Trunc",
            ZabMessage::Snap { .. } => "Snap",
            ZabMessage::SyncTxn { .. } => "SyncTxn",
            ZabMessage::NewLeader { .. } => "NewLeader",
            ZabMessage::AckNewLeader { .. } => "AckNewLeader",
            ZabMessage::UpToDate { .. } => "UpToDate",
            ZabMessage::Proposal { .. } => "Proposal",
            ZabMessage::Ack { .. } => "Ack",
            ZabMessage::Commit { .. } => "Commit",
            ZabMessage::Inform { .. } => "Inform",
            ZabMessage::Ping => "Ping",
            ZabMessage::PingAck => "PingAck",
            ZabMessage::ReadPing { .. } => "ReadPing",
            ZabMessage::ReadPingAck { .. } => "ReadPingAck",
        }
    }

    /// Encodes the message as an rkyv archive (the body of a peer frame).
    ///
    /// # Panics
    /// Only if the archive would exceed rkyv's 2 GiB relative-pointer range; snapshots and
    /// txns are bounded far below that by the server's frame limit.
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("peer messages are bounded by the frame limit, far below rkyv's 2 GiB")
            .into_vec()
    }

    /// Decodes and validates (bytecheck) an archive made by [`ZabMessage::encode`]. Any
    /// malformed input is an error, never a panic; the bytes may sit at any alignment.
    pub fn decode(bytes: &[u8]) -> Result<ZabMessage, ZabError> {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<ZabMessage, rancor::Error>(&aligned)
            .map_err(|e| ZabError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let msgs = [
            ZabMessage::Proposal {
                zxid: Zxid::new(3, 7),
                txn: vec![1, 2, 3],
            },
            ZabMessage::Notification {
                vote: Vote {
                    leader: 2,
                    zxid: Zxid(9),
                    peer_epoch: 1,
                },
                round: 4,
                state: PeerState::Looking,
            },
            ZabMessage::Ping,
        ];
        for m in msgs {
            assert_eq!(ZabMessage::decode(&m.encode()).unwrap(), m);
        }
        assert!(ZabMessage::decode(&[0xff; 3]).is_err());
        assert!(ZabMessage::decode(&[]).is_err());
    }

    #[test]
    fn vote_order_is_epoch_then_zxid_then_id() {
        let v = |leader, zxid, peer_epoch| Vote {
            leader,
            zxid: Zxid(zxid),
            peer_epoch,
        };
        assert!(v(1, 0, 2).beats(&v(3, 100, 1)));
        assert!(v(1, 5, 1).beats(&v(3, 4, 1)));
        assert!(v(3, 5, 1).beats(&v(1, 5, 1)));
        assert!(!v(1, 5, 1).beats(&v(1, 5, 1)));
    }
}
