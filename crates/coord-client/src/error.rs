//! The one error type of the client: a ZooKeeper-style [`ErrorCode`], a human message, and for
//! a failed `multi` the per-op results.

use coord_proto::{ErrorCode, MultiResult};

/// A failed call. `code()` says what kind of failure it is (as ZooKeeper's
/// `KeeperException.Code`); `Display` is one clear line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    results: Vec<MultiResult>,
}

impl Error {
    /// An error with a code and no further detail.
    pub fn new(code: ErrorCode) -> Error {
        Error {
            code,
            message: String::new(),
            results: Vec::new(),
        }
    }

    /// An error with a code and a message saying what went wrong.
    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            results: Vec::new(),
        }
    }

    /// A failed `multi`: the code of the failing op and one result per op.
    pub fn multi(code: ErrorCode, results: Vec<MultiResult>) -> Error {
        Error {
            code,
            message: String::new(),
            results,
        }
    }

    /// What kind of failure this is.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Detail beyond the code (may be empty).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a failed `multi`, a result per op (`Error{Ok}` before the failing op, the failing
    /// op's code, `Error{RuntimeInconsistency}` after it); empty otherwise.
    pub fn results(&self) -> &[MultiResult] {
        &self.results
    }

    /// Whether the call may have failed only because the connection dropped: the request may
    /// or may not have been applied, and the session may still be alive.
    pub fn is_connection_loss(&self) -> bool {
        self.code == ErrorCode::ConnectionLoss
    }

    /// The error every call returns after the user closed the client.
    pub(crate) fn closed() -> Error {
        Error::with_message(ErrorCode::ApiError, "the client is closed")
    }

    /// The error every call returns after the session expired.
    pub(crate) fn expired() -> Error {
        Error::new(ErrorCode::SessionExpired)
    }

    /// A reply of the wrong shape for its request (a server bug, never a panic).
    pub(crate) fn unexpected_reply(what: &str) -> Error {
        Error::with_message(
            ErrorCode::MarshallingError,
            format!("unexpected reply to {what}"),
        )
    }

    /// Adds context in front of the message.
    pub(crate) fn context(mut self, ctx: impl std::fmt::Display) -> Error {
        self.message = if self.message.is_empty() {
            ctx.to_string()
        } else {
            format!("{ctx}: {}", self.message)
        };
        self
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        Error::new(code)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.results.is_empty() {
            let failed = self.results.iter().position(
                |r| matches!(r, MultiResult::Error { code } if *code != ErrorCode::Ok && *code != ErrorCode::RuntimeInconsistency),
            );
            if let Some(i) = failed {
                write!(f, " (op {i} of {})", self.results.len())?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        assert_eq!(
            Error::new(ErrorCode::NoNode).to_string(),
            "NoNode (no such node)"
        );
        let e = Error::with_message(ErrorCode::ConnectionLoss, "no server reachable")
            .context("connect");
        assert_eq!(
            e.to_string(),
            "ConnectionLoss (connection lost): connect: no server reachable"
        );
        let m = Error::multi(
            ErrorCode::BadVersion,
            vec![
                MultiResult::Error {
                    code: ErrorCode::Ok,
                },
                MultiResult::Error {
                    code: ErrorCode::BadVersion,
                },
                MultiResult::Error {
                    code: ErrorCode::RuntimeInconsistency,
                },
            ],
        );
        assert_eq!(m.to_string(), "BadVersion (version mismatch) (op 1 of 3)");
        assert_eq!(m.results().len(), 3);
        assert!(!m.to_string().contains('\n'));
    }
}
