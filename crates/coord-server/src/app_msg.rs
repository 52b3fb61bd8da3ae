//! Server-to-server messages outside ZAB itself, carried on the peer links.

use coord_proto::ErrorCode;
use rkyv::{Archive, Deserialize, Serialize};

/// Server-to-server messages outside ZAB itself.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum AppMessage {
    /// Follower → leader: propose this txn (encoded `Txn`).
    Forward {
        /// The txn bytes.
        txn: Vec<u8>,
    },
    /// Leader → follower: this forwarded txn was not proposed.
    Refused {
        /// The txn bytes as forwarded.
        txn: Vec<u8>,
        /// Why.
        code: ErrorCode,
    },
    /// Follower → leader: these sessions were heard from (their timeouts restart).
    Touch {
        /// Session ids.
        sessions: Vec<u64>,
    },
    /// Follower/observer → leader: confirm a commit zxid for linearizable reads (ReadIndex).
    ReadIndex {
        /// The asker's id for this request.
        id: u64,
    },
    /// Leader → follower/observer: the answer to `ReadIndex`: the confirmed zxid, or none
    /// when the leader could not confirm that it still leads.
    ReadIndexReply {
        /// The asker's id.
        id: u64,
        /// The zxid to apply before serving the reads.
        zxid: Option<u64>,
    },
}
