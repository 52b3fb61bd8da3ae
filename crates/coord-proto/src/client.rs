//! The client protocol: one QUIC connection per client, one bidirectional stream per session.
//!
//! ```text
//!  client                                   server
//!    | ClientFrame::Connect(ConnectRequest)  ->|   first frame: versioned handshake
//!    |<- ServerFrame::Connected | ::Refused    |
//!    | ClientFrame::Request{xid, Request}    ->|   pipelined, id-tagged
//!    |<- ServerFrame::Event(WatchedEvent)     |   an event precedes any reply that reflects it
//!    |<- ServerFrame::Reply{xid, zxid, body}  |   replies in request order (FIFO per session)
//! ```

use crate::types::*;
use rkyv::{Archive, Deserialize, Serialize};

/// The first frame of a client connection.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct ConnectRequest {
    /// Must equal [`crate::CLIENT_PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The highest zxid this client has seen; a server behind it refuses the connection.
    pub last_zxid_seen: u64,
    /// Requested session timeout; the server negotiates it into its bounds.
    pub timeout_ms: u32,
    /// 0 for a new session, else the session to resume.
    pub session_id: u64,
    /// The password returned when the session was created (empty for a new session).
    pub password: Vec<u8>,
    /// The client accepts a read-only server (ZooKeeper's `canBeReadOnly`): a server cut off
    /// from the quorum may then serve its reads, and answers writes with `NotReadOnly`.
    pub read_only: bool,
}

/// The server's answer to a successful [`ConnectRequest`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct ConnectResponse {
    /// The protocol version the server speaks.
    pub protocol_version: u32,
    /// The negotiated session timeout.
    pub timeout_ms: u32,
    /// The session id (new or resumed).
    pub session_id: u64,
    /// The password to resume this session on another connection.
    pub password: Vec<u8>,
    /// The server's last committed zxid when the session attached.
    pub last_zxid: u64,
    /// The id of the server that answered.
    pub server_id: u64,
    /// The epoch of the leader this server follows (a new epoch means the leader failed
    /// over since the client last connected).
    pub epoch: u32,
    /// The server is cut off from the quorum and serves reads only.
    pub read_only: bool,
}

/// One op of an atomic `multi`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum MultiOp {
    /// Create a node.
    Create {
        /// Path (the prefix, for sequential nodes).
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// ACL of the new node.
        acl: Vec<Acl>,
        /// Node kind.
        mode: CreateMode,
        /// TTL in ms for TTL modes, else 0.
        ttl_ms: i64,
    },
    /// Delete a node.
    Delete {
        /// Path.
        path: String,
        /// Expected version or [`ANY_VERSION`].
        version: i32,
    },
    /// Set a node's data.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version or [`ANY_VERSION`].
        version: i32,
    },
    /// Fail the multi unless the node has this version.
    Check {
        /// Path.
        path: String,
        /// Expected version or [`ANY_VERSION`].
        version: i32,
    },
    /// Fail the multi with `StaleSequencer` unless the sequencer (see
    /// [`crate::Sequencer`]) still names a held lock when the multi is applied, so the
    /// writes happen only while the caller holds the lock; `BadArguments` when the bytes are
    /// not a sequencer.
    CheckSequencer {
        /// The encoded sequencer.
        sequencer: Vec<u8>,
    },
}

impl MultiOp {
    /// The path the op targets.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { path, .. }
            | MultiOp::Delete { path, .. }
            | MultiOp::SetData { path, .. }
            | MultiOp::Check { path, .. } => path,
            // The path is inside the opaque bytes; "/" passes the path checks, and the apply
            // decodes and validates the sequencer itself.
            MultiOp::CheckSequencer { .. } => "/",
        }
    }
}

/// One op of a `multi_read`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ReadOp {
    /// Read data and Stat.
    GetData {
        /// Path.
        path: String,
    },
    /// List children.
    GetChildren {
        /// Path.
        path: String,
    },
}

/// A client request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum Request {
    /// Create a node; replies [`Response::Create`].
    Create {
        /// Path (the prefix, for sequential nodes).
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// ACL of the new node.
        acl: Vec<Acl>,
        /// Node kind.
        mode: CreateMode,
        /// TTL in ms for TTL modes, else 0.
        ttl_ms: i64,
    },
    /// Delete a node; replies [`Response::Empty`].
    Delete {
        /// Path.
        path: String,
        /// Expected version or [`ANY_VERSION`].
        version: i32,
    },
    /// Stat of a node or none; replies [`Response::Exists`]. With `watch`, a data watch on an
    /// existing node or a creation watch on a missing one.
    Exists {
        /// Path.
        path: String,
        /// Leave a one-shot watch.
        watch: bool,
    },
    /// Data and Stat; replies [`Response::Data`].
    GetData {
        /// Path.
        path: String,
        /// Leave a one-shot data watch.
        watch: bool,
    },
    /// Replace the data; replies [`Response::Stat`].
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version or [`ANY_VERSION`].
        version: i32,
    },
    /// Children names (sorted) and the node's Stat; replies [`Response::Children`].
    GetChildren {
        /// Path.
        path: String,
        /// Leave a one-shot child watch.
        watch: bool,
    },
    /// ACL and Stat; replies [`Response::Acl`].
    GetAcl {
        /// Path.
        path: String,
    },
    /// Replace the ACL; replies [`Response::Stat`].
    SetAcl {
        /// Path.
        path: String,
        /// New ACL.
        acl: Vec<Acl>,
        /// Expected aversion or [`ANY_VERSION`].
        version: i32,
    },
    /// Paths of this session's ephemeral nodes under a prefix; replies [`Response::Paths`].
    GetEphemerals {
        /// Path prefix ("/" for all).
        prefix: String,
    },
    /// Number of descendants of a node; replies [`Response::Count`].
    GetAllChildrenNumber {
        /// Path.
        path: String,
    },
    /// Wait until this server has applied everything committed before the call; replies
    /// [`Response::Sync`].
    Sync {
        /// Path (echoed back).
        path: String,
    },
    /// Atomic writes; replies [`Response::Multi`] or an error with per-op results.
    Multi {
        /// The ops, applied all or nothing.
        ops: Vec<MultiOp>,
    },
    /// Several reads at one point in time; replies [`Response::MultiRead`].
    MultiRead {
        /// The reads.
        ops: Vec<ReadOp>,
    },
    /// Add a persistent or persistent-recursive watch; replies [`Response::Empty`].
    AddWatch {
        /// Path.
        path: String,
        /// The kind.
        mode: AddWatchMode,
    },
    /// Remove this session's watches on a path; replies [`Response::Empty`] or `NoWatcher`.
    RemoveWatches {
        /// Path.
        path: String,
        /// Which watches.
        kind: WatcherKind,
    },
    /// Re-register watches after a reconnect; any change after `relative_zxid` fires at once.
    SetWatches {
        /// The highest zxid the client had seen.
        relative_zxid: u64,
        /// Paths with data watches.
        data: Vec<String>,
        /// Paths with exists (creation) watches.
        exist: Vec<String>,
        /// Paths with child watches.
        child: Vec<String>,
        /// Paths with persistent watches.
        persistent: Vec<String>,
        /// Paths with persistent-recursive watches.
        persistent_recursive: Vec<String>,
    },
    /// Add an identity to the session (`digest`, `user:password`); replies [`Response::Empty`].
    AddAuth {
        /// The scheme.
        scheme: String,
        /// The credentials.
        auth: Vec<u8>,
    },
    /// Heartbeat; replies [`Response::Pong`].
    Ping,
    /// End the session, deleting its ephemerals; replies [`Response::Empty`].
    CloseSession,
    /// A linearizable read fence (Raft's ReadIndex): the server answers only once it has
    /// applied a commit zxid that the leader confirmed, with a quorum, after the fence reached
    /// it; since a session's requests complete in order, the reads sent after the fence see
    /// every write acknowledged before the fence was sent. Replies [`Response::Empty`], with
    /// the confirmed zxid as the reply's zxid. Fences waiting together share one confirmation.
    ReadIndex,
    /// Whether a sequencer still names a held lock (the node exists with the sequencer's czxid
    /// and is owned by its session); replies [`Response::Sequencer`], or `BadArguments` when
    /// the bytes are not a sequencer. Sent after a [`Request::ReadIndex`] for a linearizable
    /// answer.
    CheckSequencer {
        /// The encoded sequencer.
        sequencer: Vec<u8>,
    },
    /// A [`Request::ReadIndex`] fence that also registers `path` in the session's client
    /// cache (Chubby's cache): until the lease in the reply runs out, a write that changes
    /// the node's data, Stat or children is applied by no server before this session has
    /// acknowledged the [`ServerFrame::Invalidate`] for it (or the lease ran out). Replies
    /// [`Response::CacheLease`] once the fence is passed; a lease of 0 means "do not cache"
    /// (caching is off on the server).
    CacheFence {
        /// The node whose reads the client is about to cache.
        path: String,
    },
}

impl Request {
    /// Whether the request changes the replicated state (goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Multi { .. }
                | Request::CloseSession
        )
    }
}

/// Result of one op of a multi.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum MultiResult {
    /// The node was created at this path.
    Create {
        /// The created path.
        path: String,
        /// Its Stat.
        stat: Stat,
    },
    /// The node was deleted.
    Delete,
    /// The data was set.
    SetData {
        /// The new Stat.
        stat: Stat,
    },
    /// The check passed.
    Check,
    /// The op failed or was not applied (`Ok` for ops before the one that failed,
    /// `RuntimeInconsistency` for those after).
    Error {
        /// Why.
        code: ErrorCode,
    },
}

/// Result of one op of a multi_read.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ReadResult {
    /// Data and Stat.
    Data {
        /// Data.
        data: Vec<u8>,
        /// Stat.
        stat: Stat,
    },
    /// Children names.
    Children {
        /// Names, sorted.
        children: Vec<String>,
    },
    /// The read failed.
    Error {
        /// Why.
        code: ErrorCode,
    },
}

/// A successful reply.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum Response {
    /// No body.
    Empty,
    /// Heartbeat answer.
    Pong,
    /// A node was created.
    Create {
        /// The created path (with its sequence suffix).
        path: String,
        /// Its Stat.
        stat: Stat,
    },
    /// The Stat of a node, if it exists.
    Exists {
        /// Stat, or none when missing.
        stat: Option<Stat>,
    },
    /// Data and Stat.
    Data {
        /// Data.
        data: Vec<u8>,
        /// Stat.
        stat: Stat,
    },
    /// The Stat after a change.
    Stat {
        /// Stat.
        stat: Stat,
    },
    /// Children and the parent's Stat.
    Children {
        /// Names, sorted.
        children: Vec<String>,
        /// The parent's Stat.
        stat: Stat,
    },
    /// ACL and Stat.
    Acl {
        /// ACL.
        acl: Vec<Acl>,
        /// Stat.
        stat: Stat,
    },
    /// Paths.
    Paths {
        /// Paths, sorted.
        paths: Vec<String>,
    },
    /// A count.
    Count {
        /// The number.
        count: u64,
    },
    /// Sync finished.
    Sync {
        /// The path.
        path: String,
    },
    /// Results of a multi, one per op.
    Multi {
        /// Results.
        results: Vec<MultiResult>,
    },
    /// Results of a multi_read, one per op.
    MultiRead {
        /// Results.
        results: Vec<ReadResult>,
    },
    /// The answer to [`Request::CheckSequencer`].
    Sequencer {
        /// The sequencer names a lock that is held right now.
        valid: bool,
    },
    /// The answer to [`Request::CacheFence`]: how long, from when the client sent the fence,
    /// it may serve the node's reads from its cache (0: not at all).
    CacheLease {
        /// The lease in ms.
        lease_ms: u32,
    },
}

/// The body of a reply.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ReplyBody {
    /// Success.
    Ok(Response),
    /// Failure.
    Err(ErrorCode),
    /// A multi failed: the code of the failing op and a result per op.
    MultiErr {
        /// The code of the failing op.
        code: ErrorCode,
        /// A result per op.
        results: Vec<MultiResult>,
    },
}

/// What a server says about itself (`coord status`): answered without a session, so it works
/// while the ensemble has no quorum.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct ServerStatus {
    /// The server's id.
    pub id: u64,
    /// `leader`, `follower`, `observer` or `looking`.
    pub role: String,
    /// The current epoch.
    pub epoch: u32,
    /// The last applied zxid.
    pub zxid: u64,
    /// The leader this server follows (itself when leading), if any.
    pub leader: Option<u64>,
    /// On the leader: the followers in sync.
    pub synced_followers: Vec<u64>,
    /// Digest of the tree at `zxid` (equal on servers that applied the same txns).
    pub digest: u64,
    /// Znodes in the tree.
    pub nodes: u64,
    /// Sessions attached to this server.
    pub sessions: u64,
}

/// A frame from client to server.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ClientFrame {
    /// The handshake; must be the first frame of a stream.
    Connect(ConnectRequest),
    /// Instead of `Connect`: ask for the server's status; answered with
    /// [`ServerFrame::Status`], then the stream ends.
    Status,
    /// A request tagged with a client-chosen id echoed in its reply.
    Request {
        /// Request id.
        xid: u64,
        /// The request.
        request: Request,
    },
    /// The answer to [`ServerFrame::Invalidate`] `zxid`: the client dropped those entries.
    /// Sent as soon as the invalidation is read, never queued behind the session's requests.
    InvalidateAck {
        /// The invalidation's zxid.
        zxid: u64,
    },
}

/// A frame from server to client.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ServerFrame {
    /// Handshake accepted.
    Connected(ConnectResponse),
    /// Handshake refused; the server closes the stream after this.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Human explanation.
        message: String,
    },
    /// The reply to request `xid`.
    Reply {
        /// The request id.
        xid: u64,
        /// The server's last applied zxid when it answered.
        zxid: u64,
        /// The result.
        body: ReplyBody,
    },
    /// A watch fired.
    Event(WatchedEvent),
    /// The answer to [`ClientFrame::Status`].
    Status(ServerStatus),
    /// Drop these nodes from the client cache (every node when `paths` is empty), then
    /// answer [`ClientFrame::InvalidateAck`]: the write `zxid` is applied by no server until
    /// then (or until the lease of the cached entries ran out).
    Invalidate {
        /// The write's zxid.
        zxid: u64,
        /// The nodes it changes.
        paths: Vec<String>,
    },
    /// The server is closing the session stream (expired, moved, bad frame, shutdown).
    Closing {
        /// Why.
        code: ErrorCode,
        /// Human explanation.
        message: String,
    },
}
