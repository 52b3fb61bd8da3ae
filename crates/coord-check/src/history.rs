//! The recorded history: every operation's invocation and completion, plus what sessions
//! observed on their own (watch events, session state changes), in the order the runner saw
//! them. Times are nanoseconds since the run started, from one monotonic clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A logical client: one session at a time, one operation at a time. When its session is lost
/// it opens a new one, so one process may span several sessions.
pub type ProcessId = u32;

/// What a process asked for. Keys name registers (`/verify/k/<key>`), created before the run
/// with empty data at version 0.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// get_data; with `sync` a linearizable read: a `sync` precedes it on the same session, or
    /// it is made in Coord's linearizable read mode (a ReadIndex fence).
    Read {
        /// The register.
        key: String,
        /// Whether a `sync` preceded the read.
        sync: bool,
    },
    /// Unconditional set_data (version -1). Values are unique across the run.
    Write {
        /// The register.
        key: String,
        /// The data written (unique across the run, never empty).
        value: Vec<u8>,
    },
    /// set_data with an expected version.
    Cas {
        /// The register.
        key: String,
        /// The version the register must have for the set to apply.
        expected_version: i32,
        /// The data written (unique across the run, never empty).
        value: Vec<u8>,
    },
    /// multi([check(key, expected_version), set_data(key, value, -1)]).
    MultiCas {
        /// The register.
        key: String,
        /// The version the `check` requires.
        expected_version: i32,
        /// The data written (unique across the run, never empty).
        value: Vec<u8>,
    },
    /// Create an ephemeral node for this session (`/verify/eph/<name>`).
    CreateEphemeral {
        /// The node's name under `/verify/eph/`.
        name: String,
    },
    /// Acquire an exclusive lock (ephemeral-sequential recipe under `/verify/lock/<lock>`).
    LockAcquire {
        /// The lock's name under `/verify/lock/`.
        lock: String,
    },
    /// Release a lock this process holds.
    LockRelease {
        /// The lock's name under `/verify/lock/`.
        lock: String,
    },
    /// Acquire a `coord_recipes::Lock` (Ok: [`OkResult::Locked`], the fence being the hold's
    /// generation, the czxid of its holder node; not acquired in time: `Fail`).
    RecipeLock {
        /// The lock's name.
        lock: String,
    },
    /// Release a `coord_recipes::Lock` this process holds (Ok: [`OkResult::Released`]).
    RecipeUnlock {
        /// The lock's name.
        lock: String,
    },
    /// `multi([CheckSequencer(sequencer of the hold), set_data(fenced register of lock)])` by
    /// a process that holds or held `lock` (a recipe lock or an election) with `fence`
    /// (Ok: [`OkResult::Written`] with the set's zxid; refused: `Fail("StaleSequencer")`).
    FencedWrite {
        /// The lock's or election's name.
        lock: String,
        /// The generation of the hold whose sequencer the write carries.
        fence: u64,
    },
    /// Campaign in a `coord_recipes::Election` (Ok: [`OkResult::Leading`]; not elected in
    /// time: `Fail`).
    Campaign {
        /// The election's name.
        election: String,
    },
    /// Resign the leadership of an election (Ok: [`OkResult::Released`]).
    Resign {
        /// The election's name.
        election: String,
    },
    /// Put an item on a `coord_recipes::LockingQueue` (Ok: [`OkResult::Put`]). Items are
    /// unique across the run.
    QueuePut {
        /// The queue's name.
        queue: String,
        /// The item's data (unique across the run).
        item: String,
    },
    /// Take (claim) the first unclaimed item (Ok: [`OkResult::Taken`], or
    /// [`OkResult::Empty`] when none came in time).
    QueueTake {
        /// The queue's name.
        queue: String,
    },
    /// Acknowledge (consume) an item this process took: deletes it with its claim
    /// (Ok: [`OkResult::Acked`]).
    QueueAck {
        /// The queue's name.
        queue: String,
        /// The item's data.
        item: String,
    },
    /// Give a taken item back unconsumed (Ok: [`OkResult::Released`]).
    QueueRelease {
        /// The queue's name.
        queue: String,
        /// The item's data.
        item: String,
    },
    /// A 2PC coordinator begins transaction `txn` among `participants` (Ok:
    /// [`OkResult::Begun`]).
    TxnBegin {
        /// The transaction's id (unique across the run).
        txn: String,
        /// The participants' names.
        participants: Vec<String>,
    },
    /// A participant votes on `txn` (Ok: [`OkResult::Voted`]).
    TxnVote {
        /// The transaction.
        txn: String,
        /// The voter's name.
        participant: String,
        /// Yes (ready to commit) or no.
        yes: bool,
    },
    /// The coordinator collects the votes and writes the decision (Ok:
    /// [`OkResult::Decided`], the decision that holds).
    TxnDecide {
        /// The transaction.
        txn: String,
    },
    /// A participant learns the decision, writing abort itself if none came in its time
    /// (Ok: [`OkResult::Decided`], the decision that holds).
    TxnLearn {
        /// The transaction.
        txn: String,
        /// The participant's name.
        participant: String,
    },
}

/// A successful result.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum OkResult {
    /// Data and the version (Stat.version) and mzxid the read returned.
    Read {
        /// The register's data.
        value: Vec<u8>,
        /// Stat.version.
        version: i32,
        /// Stat.mzxid: the zxid of the write that produced `value` (0 for the initial data).
        mzxid: u64,
    },
    /// A write applied; its new version and zxid (Stat.mzxid).
    Written {
        /// The register's version after this write.
        version: i32,
        /// The write's own zxid.
        zxid: u64,
    },
    /// An ephemeral created (its czxid).
    Created {
        /// The zxid of the create.
        czxid: u64,
    },
    /// The lock is held; `fence` is the czxid of the lock node (a fencing token).
    Locked {
        /// The lock node's czxid.
        fence: u64,
    },
    /// The lock was released (also: leadership resigned, a queue item given back).
    Released,
    /// Leading an election in `term` (the czxid of the leader's holder node).
    Leading {
        /// The leader's term.
        term: u64,
    },
    /// An item was put as node `name`.
    Put {
        /// The item node's name.
        name: String,
    },
    /// An item was taken (claimed).
    Taken {
        /// The item's data.
        item: String,
        /// The item node's name.
        name: String,
        /// The czxid of the claim node: the claim's generation.
        claim: u64,
    },
    /// No item came within the take's timeout.
    Empty,
    /// The item was acknowledged (consumed: deleted with its claim).
    Acked,
    /// The transaction's node exists.
    Begun,
    /// The vote is written.
    Voted,
    /// The transaction's decision.
    Decided {
        /// Commit (true) or abort.
        commit: bool,
    },
}

/// How an operation ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded; `zxid` is the zxid the reply reported (the server's view when it answered).
    Ok {
        /// What the operation returned.
        result: OkResult,
        /// The reply's zxid.
        zxid: u64,
    },
    /// Definitely not applied (e.g. BadVersion, NoNode, a refused request).
    Fail {
        /// The error code's name; `"BadVersion"` is a real observation (see [`Op::Cas`]).
        error: String,
    },
    /// May or may not have been applied (timeout, connection loss, session expired mid-op).
    Unknown {
        /// Why the outcome is unknown.
        error: String,
    },
}

/// Something a session saw without asking.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new session began (after connect); `timeout_ms` as negotiated.
    SessionStarted {
        /// The session id.
        session: u64,
        /// The negotiated session timeout.
        timeout_ms: u64,
    },
    /// The session ended from the client's point of view: expired, closed, or given up.
    /// After this the process holds no locks and its ephemerals should vanish.
    SessionEnded {
        /// The session id.
        session: u64,
        /// Why (expired, closed, given up).
        reason: String,
    },
    /// The connection dropped; a lock holder must assume it lost its locks (Curator's
    /// SUSPENDED), so the lock's interval ends here.
    Disconnected {
        /// The session id.
        session: u64,
    },
    /// A persistent watch on `key` was registered (reply zxid).
    WatchAdded {
        /// The watched register.
        key: String,
        /// The zxid of the `addWatch` reply.
        zxid: u64,
    },
    /// The server could not replay what the persistent watch on `key` missed while the
    /// session was away (its window of recent changes no longer reached back) and removed
    /// it (`PersistentWatchRemoved` with a nonzero zxid, here `zxid`). The watch promises
    /// nothing after the last event it delivered before this.
    WatchLost {
        /// The watched register.
        key: String,
        /// The server's zxid when it gave up the watch.
        zxid: u64,
    },
    /// A watch event: data of `key` changed at `zxid`.
    WatchEvent {
        /// The watched register.
        key: String,
        /// The zxid of the change.
        zxid: u64,
    },
    /// The process is about to close the session: from here on it acts on nothing the
    /// session holds (locks, leadership, claims), although the servers may keep them until
    /// the close is applied.
    Closing {
        /// The session id.
        session: u64,
    },
    /// After the run (faults healed, every other process stopped) the queue was drained:
    /// a `sync` + listing at reply zxid `zxid` found no item left.
    QueueDrained {
        /// The queue's name.
        queue: String,
        /// The reply zxid of the listing.
        zxid: u64,
    },
    /// A periodic observation of the ephemerals that exist (by name), read through a
    /// linearizable read at reply zxid `zxid`.
    ///
    /// The entry's `time_ns` must be taken before the observing read (its `sync`) is sent:
    /// the ephemerals checker treats it as a lower bound of the read's linearization point.
    EphemeralsSeen {
        /// The names of the ephemerals under `/verify/eph/` that exist.
        names: Vec<String>,
        /// The reply zxid of the read.
        zxid: u64,
    },
}

/// One line of the history.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// The process sent an operation.
    Invoke {
        /// Unique across the run.
        op_id: u64,
        /// What was asked.
        op: Op,
    },
    /// The operation `op_id`, invoked earlier by the same process, ended.
    Complete {
        /// The id of the matching [`EntryKind::Invoke`].
        op_id: u64,
        /// How it ended.
        outcome: Outcome,
    },
    /// Something the session observed on its own.
    Notice(Notice),
}

/// One recorded event of one process.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds since the run began.
    pub time_ns: u64,
    /// The process that recorded it.
    pub process: ProcessId,
    /// The session in use (0 before the process has one).
    pub session: u64,
    /// What happened.
    pub kind: EntryKind,
}

/// A whole run's history, in recording order (which respects real time: an entry recorded
/// after another happened after it).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every entry; times never decrease.
    pub entries: Vec<Entry>,
}

impl Op {
    /// The register this operation reads or writes, if it is a register operation.
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Read { key, .. }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::MultiCas { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl History {
    /// Renders entries one per line, for a failure report:
    ///
    /// ```text
    ///     1.250000s p3 s0x1c invoke #41 Write k1 := "v41"
    ///     1.251200s p3 s0x1c ok     #41 Written version 7 zxid 0x10000002a (reply 0x10000002a)
    /// ```
    pub fn render(entries: &[Entry]) -> String {
        let mut out = String::new();
        for entry in entries {
            out.push_str(&entry.to_string());
            out.push('\n');
        }
        out
    }
}

/// Shows register data as a quoted string when it is printable ASCII, else as hex; long data
/// is cut.
pub struct Data<'a>(pub &'a [u8]);

impl fmt::Display for Data<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 40;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        if shown.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            write!(f, "\"{}\"", String::from_utf8_lossy(shown))?;
        } else {
            f.write_str("0x")?;
            for b in shown {
                write!(f, "{b:02x}")?;
            }
        }
        if self.0.len() > SHOWN {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read { key, sync: true } => write!(f, "Read {key} (sync)"),
            Op::Read { key, sync: false } => write!(f, "Read {key}"),
            Op::Write { key, value } => write!(f, "Write {key} := {}", Data(value)),
            Op::Cas {
                key,
                expected_version,
                value,
            } => write!(
                f,
                "Cas {key} := {} if version {expected_version}",
                Data(value)
            ),
            Op::MultiCas {
                key,
                expected_version,
                value,
            } => write!(
                f,
                "MultiCas {key} := {} if version {expected_version}",
                Data(value)
            ),
            Op::CreateEphemeral { name } => write!(f, "CreateEphemeral {name}"),
            Op::LockAcquire { lock } => write!(f, "LockAcquire {lock}"),
            Op::LockRelease { lock } => write!(f, "LockRelease {lock}"),
            Op::RecipeLock { lock } => write!(f, "RecipeLock {lock}"),
            Op::RecipeUnlock { lock } => write!(f, "RecipeUnlock {lock}"),
            Op::FencedWrite { lock, fence } => write!(f, "FencedWrite {lock} fence {fence:#x}"),
            Op::Campaign { election } => write!(f, "Campaign {election}"),
            Op::Resign { election } => write!(f, "Resign {election}"),
            Op::QueuePut { queue, item } => write!(f, "QueuePut {queue} {item}"),
            Op::QueueTake { queue } => write!(f, "QueueTake {queue}"),
            Op::QueueAck { queue, item } => write!(f, "QueueAck {queue} {item}"),
            Op::QueueRelease { queue, item } => write!(f, "QueueRelease {queue} {item}"),
            Op::TxnBegin { txn, participants } => {
                write!(f, "TxnBegin {txn} [{}]", participants.join(", "))
            }
            Op::TxnVote {
                txn,
                participant,
                yes,
            } => write!(
                f,
                "TxnVote {txn} {participant} {}",
                if *yes { "yes" } else { "no" }
            ),
            Op::TxnDecide { txn } => write!(f, "TxnDecide {txn}"),
            Op::TxnLearn { txn, participant } => write!(f, "TxnLearn {txn} {participant}"),
        }
    }
}

impl fmt::Display for OkResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OkResult::Read {
                value,
                version,
                mzxid,
            } => write!(f, "Read {} version {version} mzxid {mzxid:#x}", Data(value)),
            OkResult::Written { version, zxid } => {
                write!(f, "Written version {version} zxid {zxid:#x}")
            }
            OkResult::Created { czxid } => write!(f, "Created czxid {czxid:#x}"),
            OkResult::Locked { fence } => write!(f, "Locked fence {fence:#x}"),
            OkResult::Released => f.write_str("Released"),
            OkResult::Leading { term } => write!(f, "Leading term {term:#x}"),
            OkResult::Put { name } => write!(f, "Put as {name}"),
            OkResult::Taken { item, name, claim } => {
                write!(f, "Taken {item} ({name}, claim {claim:#x})")
            }
            OkResult::Empty => f.write_str("Empty"),
            OkResult::Acked => f.write_str("Acked"),
            OkResult::Begun => f.write_str("Begun"),
            OkResult::Voted => f.write_str("Voted"),
            OkResult::Decided { commit: true } => f.write_str("Decided commit"),
            OkResult::Decided { commit: false } => f.write_str("Decided abort"),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::SessionStarted {
                session,
                timeout_ms,
            } => write!(f, "SessionStarted {session:#x} timeout {timeout_ms}ms"),
            Notice::SessionEnded { session, reason } => {
                write!(f, "SessionEnded {session:#x} ({reason})")
            }
            Notice::Disconnected { session } => write!(f, "Disconnected {session:#x}"),
            Notice::Closing { session } => write!(f, "Closing {session:#x}"),
            Notice::QueueDrained { queue, zxid } => write!(f, "QueueDrained {queue} at {zxid:#x}"),
            Notice::WatchAdded { key, zxid } => write!(f, "WatchAdded {key} at {zxid:#x}"),
            Notice::WatchEvent { key, zxid } => write!(f, "WatchEvent {key} zxid {zxid:#x}"),
            Notice::WatchLost { key, zxid } => write!(f, "WatchLost {key} at {zxid:#x}"),
            Notice::EphemeralsSeen { names, zxid } => {
                write!(f, "EphemeralsSeen at {zxid:#x}: [{}]", names.join(", "))
            }
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.time_ns / 1_000_000_000;
        let micros = (self.time_ns % 1_000_000_000) / 1_000;
        write!(
            f,
            "{secs:>5}.{micros:06}s p{} s{:#x} ",
            self.process, self.session
        )?;
        match &self.kind {
            EntryKind::Invoke { op_id, op } => write!(f, "invoke #{op_id} {op}"),
            EntryKind::Complete { op_id, outcome } => match outcome {
                Outcome::Ok { result, zxid } => {
                    write!(f, "ok     #{op_id} {result} (reply {zxid:#x})")
                }
                Outcome::Fail { error } => write!(f, "fail   #{op_id} {error}"),
                Outcome::Unknown { error } => write!(f, "info   #{op_id} unknown: {error}"),
            },
            EntryKind::Notice(notice) => write!(f, "notice {notice}"),
        }
    }
}
