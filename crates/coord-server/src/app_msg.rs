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
        /// Client-cache registrations riding on this read: (session, path, lease ms),
        /// registered together with the commit point the read is confirmed at.
        cache: Vec<(u64, String, u32)>,
    },
    /// Leader → follower/observer: the answer to `ReadIndex`: the confirmed zxid, or none
    /// when the leader could not confirm that it still leads.
    ReadIndexReply {
        /// The asker's id.
        id: u64,
        /// The zxid to apply before serving the reads.
        zxid: Option<u64>,
    },
    /// Leader → every server, before the ZAB Commit of `zxid`: apply nothing from `zxid` on
    /// until [`AppMessage::CacheRelease`] (or `lease_ms` from now), and tell these sessions
    /// to drop these nodes (empty: every node).
    CacheInvalidate {
        /// The write's zxid.
        zxid: u64,
        /// The longest lease left among the registrations it waits for.
        lease_ms: u32,
        /// (session, paths).
        targets: Vec<(u64, Vec<String>)>,
    },
    /// Leader → every server: invalidation `zxid` ended.
    CacheRelease {
        /// The write's zxid.
        zxid: u64,
    },
    /// Follower/observer → leader: `session` dropped what invalidation `zxid` named.
    CacheAck {
        /// The session.
        session: u64,
        /// The invalidation's zxid.
        zxid: u64,
    },
}
