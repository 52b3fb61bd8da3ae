//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a log backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system IO call failed; `context` names the call and the file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path, e.g. `fdatasync /var/coord/log.0000000100000001`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `append` was called with a zxid not greater than the last appended one.
    #[error("zxid {zxid:#x} appended out of order: last zxid is {last:#x}")]
    OutOfOrder {
        /// The refused zxid.
        zxid: u64,
        /// The highest zxid already in the log.
        last: u64,
    },
    /// A record handed to `append` is longer than `LogOptions::max_record`.
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Length of the refused record.
        len: usize,
        /// The configured limit.
        max: u32,
    },
    /// Bytes on disk failed validation where they cannot be a torn tail (a bad record in a
    /// non-final segment, a damaged header in front of data); refusing to start is the only
    /// way not to drop acknowledged records silently.
    #[error("corrupt log file {}: {reason} at byte {offset}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad byte sequence.
        offset: u64,
        /// What failed (bad CRC, bad length, zxid not increasing, bad magic, ...).
        reason: String,
    },
    /// A segment or snapshot header carries a format version this build cannot read.
    #[error("{} has format version {version}, this build reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in its header.
        version: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// Records at or below `horizon` were purged or compacted away: the log cannot answer a
    /// read (or truncation) that starts below it; the caller must fall back to a snapshot.
    #[error("records up to zxid {horizon:#x} were purged; cannot serve from zxid {requested:#x}")]
    Compacted {
        /// The zxid the caller asked to read after (or truncate after).
        requested: u64,
        /// Every record with zxid > horizon is present; records <= horizon may be gone.
        horizon: u64,
    },
    /// Another process (or another `FileLog` in this one) holds the directory lock.
    #[error("log directory {} is locked by another instance", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; the instance refuses
    /// every further operation. Reopen it to recover from what is really durable.
    #[error("log is unusable after an earlier IO failure; reopen it to recover")]
    Failed,
    /// The group-commit writer has stopped (after `shutdown` or a fatal error).
    #[error("group-commit writer has stopped")]
    Closed,
}

impl LogError {
    /// Wraps an `io::Error` with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
