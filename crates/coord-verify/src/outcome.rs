//! How a failed call is classified: definitely not applied (`Fail`) or maybe applied
//! (`Unknown`).
//!
//! `Fail` only for answers the server gives *instead of* applying the request (a precondition
//! failed, or it refused before proposing: `NotServing`, `Throttled`). Everything that can
//! happen after the request reached the leader (the connection dropping, the session expiring,
//! a server-side error, a reply of the wrong shape, our own timeout) is `Unknown`. A checker
//! that finds the effect of a `Fail` has found a server that lied about it.

use coord_check::history::Outcome;
use coord_client::{Error, ErrorCode};

/// Whether an error code proves the request was not applied.
pub fn is_definite(code: ErrorCode) -> bool {
    use ErrorCode::*;
    match code {
        // Preconditions checked against the tree (ZooKeeper's semantics: no txn is made).
        BadVersion
        | NoNode
        | NodeExists
        | NotEmpty
        | NoChildrenForEphemerals
        | NoAuth
        | InvalidAcl
        | NoWatcher
        | LockDelay
        | StaleSequencer => true,
        // Refused before anything was proposed, or rejected by the client before sending.
        BadArguments | InvalidPath | TooLarge | NotServing | Throttled | NotReadOnly | DiskFull
        | VersionMismatch | AuthFailed | Unimplemented | InvalidCallback => true,
        // May have been applied: the reply was lost or the server's state is unknown.
        Ok | SystemError | RuntimeInconsistency | DataInconsistency | ConnectionLoss
        | MarshallingError | OperationTimeout | UnknownSession | ApiError | SessionExpired
        | SessionMoved | RequestTimeout => false,
    }
}

/// The outcome of a call that returned `err`: `Fail` carries the code's name (`"BadVersion"`,
/// as the checkers expect), `Unknown` the whole message.
pub fn of_error(err: &Error) -> Outcome {
    if is_definite(err.code()) {
        Outcome::Fail {
            error: format!("{:?}", err.code()),
        }
    } else {
        Outcome::Unknown {
            error: err.to_string(),
        }
    }
}

/// The outcome of a call abandoned after `ms` without an answer.
pub fn timed_out(ms: u128) -> Outcome {
    Outcome::Unknown {
        error: format!("no answer within {ms} ms"),
    }
}
