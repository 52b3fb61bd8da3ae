//! Data-model types shared by client, server and tree: zxids, Stat, ACLs, create modes, watch
//! events and error codes (named as ZooKeeper names them).

use rkyv::{Archive, Deserialize, Serialize};

/// A transaction id: `epoch << 32 | counter`. Totally orders every committed change.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before any change.
    pub const ZERO: Zxid = Zxid(0);
    /// Builds a zxid from an epoch and a counter within it.
    pub fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid(((epoch as u64) << 32) | counter as u64)
    }
    /// The leader epoch that issued this zxid.
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// The position within the epoch.
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for Zxid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// Version value meaning "any version" in delete, set_data, set_acl and check.
pub const ANY_VERSION: i32 = -1;

/// The metadata of a znode, field for field as ZooKeeper's `Stat`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct Stat {
    /// zxid of the change that created this node.
    pub czxid: u64,
    /// zxid of the change that last modified this node's data.
    pub mzxid: u64,
    /// zxid of the change that last modified this node's children.
    pub pzxid: u64,
    /// Creation time, milliseconds since the Unix epoch (the leader's clock).
    pub ctime: i64,
    /// Last data modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// Number of changes to the data.
    pub version: i32,
    /// Number of changes to the children.
    pub cversion: i32,
    /// Number of changes to the ACL.
    pub aversion: i32,
    /// Session id of the owner if ephemeral, else 0.
    pub ephemeral_owner: u64,
    /// Length of the data in bytes.
    pub data_length: u32,
    /// Number of children.
    pub num_children: u32,
}

/// Permission bits of an ACL entry (ZooKeeper's values).
pub mod perms {
    /// May read data and list children.
    pub const READ: u32 = 1;
    /// May set data.
    pub const WRITE: u32 = 2;
    /// May create children.
    pub const CREATE: u32 = 4;
    /// May delete children.
    pub const DELETE: u32 = 8;
    /// May set the ACL.
    pub const ADMIN: u32 = 16;
    /// Every permission.
    pub const ALL: u32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// An identity: an authentication scheme and an id within it (`digest`, `user:hash`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct Id {
    /// `world`, `auth`, `digest`, `ip`, `x509` or `super`.
    pub scheme: String,
    /// The id within the scheme (`anyone`, `user:base64(sha1(user:pass))`, `10.0.0.0/8`).
    pub id: String,
}

impl Id {
    /// Builds an identity.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
}

/// One ACL entry: who (an [`Id`]) may do what ([`perms`] bits).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct Acl {
    /// Bitmask of [`perms`].
    pub perms: u32,
    /// The identity granted these permissions.
    pub id: Id,
}

impl Acl {
    /// `world:anyone` with every permission (ZooKeeper's `OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("world", "anyone"),
        }]
    }
    /// `world:anyone` may read (ZooKeeper's `READ_ACL_UNSAFE`).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        }]
    }
    /// Every permission to the creator's authenticated ids (ZooKeeper's `CREATOR_ALL_ACL`).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("auth", ""),
        }]
    }
}

/// How a node is created.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Persistent, with a 10-digit sequence suffix from the parent's counter.
    PersistentSequential,
    /// Deleted when its session ends; may not have children.
    Ephemeral,
    /// Ephemeral with a sequence suffix.
    EphemeralSequential,
    /// Removed by the server once it had children and the last one is gone.
    Container,
    /// Persistent, removed when unmodified for its TTL and childless.
    PersistentWithTtl,
    /// Persistent sequential with a TTL.
    PersistentSequentialWithTtl,
    /// An ephemeral node that is a lock (Chubby's lock-delay): when its owner session expires
    /// (not a clean delete or close), its path cannot be created again for the lock-delay,
    /// given in the create's `ttl_ms` (0 = [`DEFAULT_LOCK_DELAY_MS`], at most
    /// [`MAX_LOCK_DELAY_MS`]). No sequence suffix, no children.
    EphemeralLock,
}

/// The lock-delay of an [`CreateMode::EphemeralLock`] node created with `ttl_ms` 0.
pub const DEFAULT_LOCK_DELAY_MS: i64 = 1_000;
/// The longest lock-delay a create may ask for (Chubby's bound: one minute).
pub const MAX_LOCK_DELAY_MS: i64 = 60_000;

impl CreateMode {
    /// Whether the node is tied to its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential | CreateMode::EphemeralLock
        )
    }
    /// Whether the node is a lock node (lock-delay after its owner's expiry).
    pub fn is_lock(self) -> bool {
        matches!(self, CreateMode::EphemeralLock)
    }
    /// Whether the name gets a sequence suffix.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }
    /// Whether the node is a container.
    pub fn is_container(self) -> bool {
        matches!(self, CreateMode::Container)
    }
    /// Whether the node carries a TTL.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
    /// Builds a mode from the CLI-style flags.
    pub fn from_flags(
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: bool,
    ) -> Option<CreateMode> {
        Some(match (ephemeral, sequential, container, ttl) {
            (false, false, false, false) => CreateMode::Persistent,
            (false, true, false, false) => CreateMode::PersistentSequential,
            (true, false, false, false) => CreateMode::Ephemeral,
            (true, true, false, false) => CreateMode::EphemeralSequential,
            (false, false, true, false) => CreateMode::Container,
            (false, false, false, true) => CreateMode::PersistentWithTtl,
            (false, true, false, true) => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }
}

/// What happened to a watched node.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum EventType {
    /// The node was created.
    NodeCreated,
    /// The node was deleted.
    NodeDeleted,
    /// The node's data changed.
    NodeDataChanged,
    /// A child was created or deleted.
    NodeChildrenChanged,
    /// A data/exists watch was removed by `remove_watches`.
    DataWatchRemoved,
    /// A child watch was removed by `remove_watches`.
    ChildWatchRemoved,
    /// A persistent watch was removed by `remove_watches`.
    PersistentWatchRemoved,
}

/// A watch notification as it travels to the client.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub struct WatchedEvent {
    /// What happened.
    pub event_type: EventType,
    /// The node it happened to.
    pub path: String,
    /// The zxid of the change (0 for watch removals).
    pub zxid: u64,
}

/// Which one-shot watches a `remove_watches` call targets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum WatcherKind {
    /// Child watches.
    Children,
    /// Data and exists watches.
    Data,
    /// Every watch on the path, persistent ones included.
    Any,
}

/// The kind of a watch added with `add_watch`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum AddWatchMode {
    /// Fires for every change of the node and its children list; stays until removed.
    Persistent,
    /// Fires for every create, delete and data change at or below the node; stays until removed.
    PersistentRecursive,
}

/// Error codes, named and numbered as ZooKeeper's `KeeperException.Code`, plus Coord's own.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), attr(allow(missing_docs)))]
pub enum ErrorCode {
    /// Success (used in multi results for ops before the failing one).
    Ok,
    /// An unexpected server-side failure.
    SystemError,
    /// A multi op that was not applied because another op of the same multi failed.
    RuntimeInconsistency,
    /// Replicas disagree (a bug).
    DataInconsistency,
    /// The connection to the server was lost before a reply.
    ConnectionLoss,
    /// A frame could not be encoded or decoded.
    MarshallingError,
    /// The operation is not implemented.
    Unimplemented,
    /// The operation timed out.
    OperationTimeout,
    /// Invalid arguments.
    BadArguments,
    /// The session id is unknown.
    UnknownSession,
    /// API misuse.
    ApiError,
    /// The node does not exist.
    NoNode,
    /// Not authorized.
    NoAuth,
    /// The expected version does not match.
    BadVersion,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals,
    /// The node already exists.
    NodeExists,
    /// The node has children.
    NotEmpty,
    /// The session has expired.
    SessionExpired,
    /// Invalid callback.
    InvalidCallback,
    /// Invalid ACL.
    InvalidAcl,
    /// Authentication failed.
    AuthFailed,
    /// The session moved to another server.
    SessionMoved,
    /// A write was sent to a read-only server.
    NotReadOnly,
    /// No watch matched `remove_watches`.
    NoWatcher,
    /// The request timed out.
    RequestTimeout,
    /// The server is throttling this client.
    Throttled,
    /// The path is malformed (Coord).
    InvalidPath,
    /// A value or request is over a configured limit (Coord).
    TooLarge,
    /// The client's protocol version is not supported (Coord).
    VersionMismatch,
    /// The server is not serving (no quorum, shutting down, or behind the client) (Coord).
    NotServing,
    /// A lock node's path is held back by its lock-delay: its owner session expired without
    /// releasing it, and the delay has not run out (Coord, after Chubby).
    LockDelay,
    /// A sequencer no longer names a held lock: the node is gone, was re-created (another
    /// czxid), or belongs to another session (Coord, after Chubby).
    StaleSequencer,
    /// The server's disk has less free space than its `min_free_disk_bytes`: writes that
    /// would grow the data are refused until space is back; reads, deletes and session
    /// closes go on (Coord).
    DiskFull,
}

impl ErrorCode {
    /// ZooKeeper's numeric code (Coord-only codes use -200 and below).
    pub fn zk_code(self) -> i32 {
        use ErrorCode::*;
        match self {
            Ok => 0,
            SystemError => -1,
            RuntimeInconsistency => -2,
            DataInconsistency => -3,
            ConnectionLoss => -4,
            MarshallingError => -5,
            Unimplemented => -6,
            OperationTimeout => -7,
            BadArguments => -8,
            UnknownSession => -12,
            ApiError => -100,
            NoNode => -101,
            NoAuth => -102,
            BadVersion => -103,
            NoChildrenForEphemerals => -108,
            NodeExists => -110,
            NotEmpty => -111,
            SessionExpired => -112,
            InvalidCallback => -113,
            InvalidAcl => -114,
            AuthFailed => -115,
            SessionMoved => -118,
            NotReadOnly => -119,
            NoWatcher => -121,
            RequestTimeout => -122,
            Throttled => -127,
            InvalidPath => -200,
            TooLarge => -201,
            VersionMismatch => -202,
            NotServing => -203,
            LockDelay => -204,
            StaleSequencer => -205,
            DiskFull => -206,
        }
    }

    /// A short human description.
    pub fn describe(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Ok => "ok",
            SystemError => "system error",
            RuntimeInconsistency => "not applied: another op of the multi failed",
            DataInconsistency => "data inconsistency",
            ConnectionLoss => "connection lost",
            MarshallingError => "malformed frame",
            Unimplemented => "not implemented",
            OperationTimeout => "operation timed out",
            BadArguments => "bad arguments",
            UnknownSession => "unknown session",
            ApiError => "API error",
            NoNode => "no such node",
            NoAuth => "not authorized",
            BadVersion => "version mismatch",
            NoChildrenForEphemerals => "ephemeral nodes may not have children",
            NodeExists => "node already exists",
            NotEmpty => "node has children",
            SessionExpired => "session expired",
            InvalidCallback => "invalid callback",
            InvalidAcl => "invalid ACL",
            AuthFailed => "authentication failed",
            SessionMoved => "session moved to another server",
            NotReadOnly => "server is read-only",
            NoWatcher => "no such watcher",
            RequestTimeout => "request timed out",
            Throttled => "throttled",
            InvalidPath => "invalid path",
            TooLarge => "over the configured limit",
            VersionMismatch => "unsupported protocol version",
            NotServing => "server is not serving",
            LockDelay => "the lock's previous holder expired; its lock-delay has not run out",
            StaleSequencer => "the sequencer no longer names a held lock",
            DiskFull => "the server's disk is nearly full; writes are refused until space is freed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self, self.describe())
    }
}

impl std::error::Error for ErrorCode {}
