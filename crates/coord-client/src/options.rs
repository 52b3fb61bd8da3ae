//! Options of `create`, client-side argument checks, and the digest id helper.

use crate::error::Error;
use coord_proto::{Acl, CreateMode, ErrorCode, MultiOp, validate_path};
use std::time::Duration;

/// How [`crate::Client::create`] makes a node: its ACL, its mode, and a TTL for TTL nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// ACL of the new node (default: `world:anyone` with every permission).
    pub acl: Vec<Acl>,
    /// Node kind (default: persistent).
    pub mode: CreateMode,
    /// Time to live: turns a persistent (sequential) node into a TTL node.
    pub ttl: Option<Duration>,
    /// The lock-delay of a [`CreateMode::EphemeralLock`] node (see [`CreateOptions::lock`]).
    pub lock_delay: Option<Duration>,
}

impl Default for CreateOptions {
    fn default() -> CreateOptions {
        CreateOptions {
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl: None,
            lock_delay: None,
        }
    }
}

impl CreateOptions {
    /// A persistent node.
    pub fn persistent() -> CreateOptions {
        CreateOptions::default()
    }
    /// A persistent node with a sequence suffix.
    pub fn sequential() -> CreateOptions {
        CreateOptions::default().with_mode(CreateMode::PersistentSequential)
    }
    /// A node deleted when the session ends.
    pub fn ephemeral() -> CreateOptions {
        CreateOptions::default().with_mode(CreateMode::Ephemeral)
    }
    /// An ephemeral node with a sequence suffix.
    pub fn ephemeral_sequential() -> CreateOptions {
        CreateOptions::default().with_mode(CreateMode::EphemeralSequential)
    }
    /// A lock node (Chubby's lock-delay): ephemeral, and when its owner session expires
    /// without deleting it, its path cannot be created again for `lock_delay` (refused with
    /// `LockDelay`), so a holder that lost its session has time to stop before another takes
    /// over. A clean delete or session close releases it at once. `lock_delay` is at most
    /// 60 s; zero means the default 1 s.
    pub fn lock(lock_delay: Duration) -> CreateOptions {
        CreateOptions {
            mode: CreateMode::EphemeralLock,
            ttl: None,
            lock_delay: Some(lock_delay),
            ..CreateOptions::default()
        }
    }
    /// A container node (removed by the server once its last child is gone).
    pub fn container() -> CreateOptions {
        CreateOptions::default().with_mode(CreateMode::Container)
    }
    /// A persistent node removed once unmodified and childless for `ttl`.
    pub fn ttl(ttl: Duration) -> CreateOptions {
        CreateOptions::default().with_ttl(ttl)
    }
    /// Sets the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> CreateOptions {
        self.acl = acl;
        self
    }
    /// Sets the mode.
    pub fn with_mode(mut self, mode: CreateMode) -> CreateOptions {
        self.mode = mode;
        self
    }
    /// Sets the TTL (persistent and persistent-sequential nodes only).
    pub fn with_ttl(mut self, ttl: Duration) -> CreateOptions {
        self.ttl = Some(ttl);
        self
    }

    /// The wire mode and TTL in ms, refusing combinations the server would refuse.
    pub fn resolve(&self) -> Result<(CreateMode, i64), Error> {
        let bad = |m: &str| Err(Error::with_message(ErrorCode::BadArguments, m.to_string()));
        if self.mode == CreateMode::EphemeralLock {
            if self.ttl.is_some() {
                return bad("a lock node has no TTL");
            }
            let delay = self.lock_delay.map(ttl_ms).unwrap_or(0);
            if delay > coord_proto::MAX_LOCK_DELAY_MS {
                return bad("a lock-delay is at most 60 s");
            }
            return Ok((CreateMode::EphemeralLock, delay));
        }
        if self.lock_delay.is_some() {
            return bad("a lock-delay applies only to lock nodes (CreateOptions::lock)");
        }
        match (self.mode, self.ttl) {
            (_, Some(ttl)) if ttl.is_zero() => bad("TTL must be positive"),
            (CreateMode::Persistent | CreateMode::PersistentWithTtl, Some(ttl)) => {
                Ok((CreateMode::PersistentWithTtl, ttl_ms(ttl)))
            }
            (
                CreateMode::PersistentSequential | CreateMode::PersistentSequentialWithTtl,
                Some(ttl),
            ) => Ok((CreateMode::PersistentSequentialWithTtl, ttl_ms(ttl))),
            (_, Some(_)) => bad("a TTL applies only to persistent and persistent-sequential nodes"),
            (mode, None) if mode.is_ttl() => bad("a TTL mode needs a TTL"),
            (mode, None) => Ok((mode, 0)),
        }
    }

    /// The `multi` op creating `path` with these options.
    pub fn to_op(&self, path: &str, data: &[u8]) -> Result<MultiOp, Error> {
        let (mode, ttl_ms) = self.resolve()?;
        Ok(MultiOp::Create {
            path: path.to_string(),
            data: data.to_vec(),
            acl: self.acl.clone(),
            mode,
            ttl_ms,
        })
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Checks a path before it goes on the wire (`InvalidPath`, no round trip). A sequential
/// create's path is a prefix and may end with `/`.
pub(crate) fn check_path(path: &str, sequential: bool) -> Result<(), Error> {
    let result = if sequential {
        validate_path(&format!("{path}0"))
    } else {
        validate_path(path)
    };
    result.map_err(|e| Error::with_message(ErrorCode::InvalidPath, e.to_string()))
}

pub(crate) fn check_op(op: &MultiOp) -> Result<(), Error> {
    match op {
        MultiOp::Create { path, mode, .. } => check_path(path, mode.is_sequential()),
        MultiOp::CheckSequencer { sequencer } => check_sequencer(sequencer),
        other => check_path(other.path(), false),
    }
}
/// Refuses bytes that are not a sequencer (`BadArguments`) before they go on the wire.
pub(crate) fn check_sequencer(bytes: &[u8]) -> Result<(), Error> {
    coord_proto::Sequencer::decode(bytes)
        .map(|_| ())
        .map_err(|e| Error::with_message(ErrorCode::BadArguments, e.to_string()))
}

/// The `digest` scheme id of `user` with `password`: `user:base64(sha1("user:password"))`,
/// as ZooKeeper computes it (for ACLs like `digest:bob:<hash>:crwda`).
pub fn digest_id(user: &str, password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_options_resolve() {
        assert_eq!(
            CreateOptions::default().resolve().unwrap(),
            (CreateMode::Persistent, 0)
        );
        assert_eq!(
            CreateOptions::ephemeral().resolve().unwrap(),
            (CreateMode::Ephemeral, 0)
        );
        assert_eq!(
            CreateOptions::ttl(Duration::from_secs(2))
                .resolve()
                .unwrap(),
            (CreateMode::PersistentWithTtl, 2000)
        );
        assert_eq!(
            CreateOptions::sequential()
                .with_ttl(Duration::from_millis(5))
                .resolve()
                .unwrap(),
            (CreateMode::PersistentSequentialWithTtl, 5)
        );
        for bad in [
            CreateOptions::ephemeral().with_ttl(Duration::from_secs(1)),
            CreateOptions::container().with_ttl(Duration::from_secs(1)),
            CreateOptions::default().with_mode(CreateMode::PersistentWithTtl),
            CreateOptions::ttl(Duration::ZERO),
        ] {
            assert_eq!(
                bad.resolve().unwrap_err().code(),
                ErrorCode::BadArguments,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_are_checked_client_side() {
        check_path("/a/b", false).unwrap();
        check_path("/queue/", true).unwrap();
        assert_eq!(
            check_path("/queue/", false).unwrap_err().code(),
            ErrorCode::InvalidPath
        );
        assert_eq!(
            check_path("a", false).unwrap_err().code(),
            ErrorCode::InvalidPath
        );
        assert_eq!(
            check_path("/a//b", true).unwrap_err().code(),
            ErrorCode::InvalidPath
        );
        let op = MultiOp::Delete {
            path: "/x/".into(),
            version: 0,
        };
        assert_eq!(check_op(&op).unwrap_err().code(), ErrorCode::InvalidPath);
    }

    #[test]
    fn digest_matches_zookeeper() {
        // ZooKeeper's DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }
}
