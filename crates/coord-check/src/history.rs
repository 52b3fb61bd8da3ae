//! The recorded history: every operation's invocation and completion, plus what sessions
//! observed on their own (watch events, session state changes), in the order the runner saw
//! them. Times are nanoseconds since the run started, from one monotonic clock.

use serde::{Deserialize, Serialize};

/// A logical client: one session at a time, one operation at a time. When its session is lost
/// it opens a new one, so one process may span several sessions.
pub type ProcessId = u32;

/// What a process asked for. Keys name registers (`/verify/k/<key>`), created before the run
/// with empty data at version 0.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// get_data; with `sync` a `sync` precedes it on the same session (a linearizable read).
    Read { key: String, sync: bool },
    /// Unconditional set_data (version -1). Values are unique across the run.
    Write { key: String, value: Vec<u8> },
    /// set_data with an expected version.
    Cas {
        key: String,
        expected_version: i32,
        value: Vec<u8>,
    },
    /// multi([check(key, expected_version), set_data(key, value, -1)]).
    MultiCas {
        key: String,
        expected_version: i32,
        value: Vec<u8>,
    },
    /// Create an ephemeral node for this session (`/verify/eph/<name>`).
    CreateEphemeral { name: String },
    /// Acquire an exclusive lock (ephemeral-sequential recipe under `/verify/lock/<lock>`).
    LockAcquire { lock: String },
    /// Release a lock this process holds.
    LockRelease { lock: String },
}

/// A successful result.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum OkResult {
    /// Data and the version (Stat.version) and mzxid the read returned.
    Read {
        value: Vec<u8>,
        version: i32,
        mzxid: u64,
    },
    /// A write applied; its new version and zxid (Stat.mzxid).
    Written { version: i32, zxid: u64 },
    /// An ephemeral created (its czxid).
    Created { czxid: u64 },
    /// The lock is held; `fence` is the czxid of the lock node (a fencing token).
    Locked { fence: u64 },
    /// The lock was released.
    Released,
}

/// How an operation ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded; `zxid` is the zxid the reply reported (the server's view when it answered).
    Ok { result: OkResult, zxid: u64 },
    /// Definitely not applied (e.g. BadVersion, NoNode, a refused request).
    Fail { error: String },
    /// May or may not have been applied (timeout, connection loss, session expired mid-op).
    Unknown { error: String },
}

/// Something a session saw without asking.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new session began (after connect); `timeout_ms` as negotiated.
    SessionStarted { session: u64, timeout_ms: u64 },
    /// The session ended from the client's point of view: expired, closed, or given up.
    /// After this the process holds no locks and its ephemerals should vanish.
    SessionEnded { session: u64, reason: String },
    /// The connection dropped; a lock holder must assume it lost its locks (Curator's
    /// SUSPENDED), so the lock's interval ends here.
    Disconnected { session: u64 },
    /// A persistent watch on `key` was registered (reply zxid).
    WatchAdded { key: String, zxid: u64 },
    /// A watch event: data of `key` changed at `zxid`.
    WatchEvent { key: String, zxid: u64 },
    /// A periodic observation of the ephemerals that exist (by name), read through a
    /// linearizable read at reply zxid `zxid`.
    EphemeralsSeen { names: Vec<String>, zxid: u64 },
}

/// One line of the history.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Invoke { op_id: u64, op: Op },
    Complete { op_id: u64, outcome: Outcome },
    Notice(Notice),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds since the run began.
    pub time_ns: u64,
    pub process: ProcessId,
    /// The session in use (0 before the process has one).
    pub session: u64,
    pub kind: EntryKind,
}

/// A whole run's history, in recording order (which respects real time: an entry recorded
/// after another happened after it).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub entries: Vec<Entry>,
}
