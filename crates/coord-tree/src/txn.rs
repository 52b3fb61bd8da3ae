//! Replicated transactions: what the leader proposes and every replica applies.
//!
//! A [`Txn`] is fully decided by the leader (time, session, caller identities, sequential
//! names are resolved at apply from replicated state), so applying the same txn at the same
//! zxid to the same tree gives the same result everywhere. Its encoding is an rkyv archive;
//! [`Txn::decode`] validates it (bytecheck) before reading anything.

use coord_proto::{Acl, CreateMode, Id, MultiOp};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::TreeError;

/// A replicated transaction.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
pub struct Txn {
    /// The session that issued it (0 for server-issued txns such as [`TxnBody::ReapNode`]).
    pub session_id: u64,
    /// The issuing request's id within its session (0 for server-issued txns). With
    /// `session_id` it lets the server holding the session find the request waiting for this
    /// txn when it commits, on whichever server the write was proposed.
    pub xid: u64,
    /// The leader's clock when it proposed the txn, ms since the Unix epoch.
    pub time_ms: i64,
    /// The issuing session's identities, used for ACL checks and `auth` ACL expansion.
    pub auth: Vec<Id>,
    /// What to do.
    pub body: TxnBody,
    /// The server that received the request (its id), or 0 when not known (server-issued
    /// txns and txns written before this field existed). A session's txns apply only if
    /// they came through the server that owns the session (see [`TxnBody::MoveSession`]);
    /// otherwise they fail with `SessionMoved`.
    pub origin: u64,
}

/// The txn layout before `origin` existed (read from old logs, never written).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
struct TxnV1 {
    session_id: u64,
    xid: u64,
    time_ms: i64,
    auth: Vec<Id>,
    body: TxnBody,
}

/// The four bytes that begin every txn encoded by this build, before its archive. An
/// archive written before the prefix existed is decoded as [`TxnV1`].
const TXN_V2_MAGIC: [u8; 4] = *b"CTX2";

/// The operation of a [`Txn`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(attr(allow(missing_docs)))]
pub enum TxnBody {
    /// Registers a session; its id is the zxid this txn is applied at.
    CreateSession {
        /// Negotiated session timeout.
        timeout_ms: u32,
        /// The password a client presents to resume the session.
        password: Vec<u8>,
    },
    /// Closes `session_id`: deletes its ephemerals in sorted path order, then forgets it.
    CloseSession,
    /// Creates a node.
    Create {
        /// Path (the prefix, for sequential modes).
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// Requested ACL (validated and `auth`-expanded at apply).
        acl: Vec<Acl>,
        /// Node kind.
        mode: CreateMode,
        /// TTL for TTL modes (must be > 0); ignored otherwise.
        ttl_ms: i64,
    },
    /// Deletes a node.
    Delete {
        /// Path.
        path: String,
        /// Expected version or -1.
        version: i32,
    },
    /// Replaces a node's data.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version or -1.
        version: i32,
    },
    /// Replaces a node's ACL.
    SetAcl {
        /// Path.
        path: String,
        /// Requested ACL.
        acl: Vec<Acl>,
        /// Expected ACL version or -1.
        version: i32,
    },
    /// Applies ops atomically, in order.
    Multi {
        /// The ops.
        ops: Vec<MultiOp>,
    },
    /// Server-issued cleanup of an empty container or an expired TTL node; re-checked at
    /// apply against `time_ms`; no ACL check; `session_id` 0.
    ReapNode {
        /// Path.
        path: String,
        /// The czxid the node had when proposed (a recreated node is not reaped).
        czxid: u64,
    },
    /// Does nothing (advances the zxid).
    Noop,
    /// The leader expired session `session_id`: like `CloseSession`, and every lock node it
    /// owned starts its lock-delay at `time_ms` (a clean close releases locks at once).
    ExpireSession,
    /// Session `session_id` resumed on server `origin`, which owns it from now on: its txns
    /// through any other server fail with `SessionMoved`, and every other server drops the
    /// session's old connection when it applies this (ZooKeeper's session-moved semantics,
    /// across servers).
    MoveSession,
}

impl Txn {
    /// Encodes the txn as an rkyv archive.
    ///
    /// # Panics
    /// Only if the archive would exceed rkyv's 2 GiB relative-pointer range, which the
    /// server's frame limit (about 1 MiB per request) rules out.
    pub fn encode(&self) -> Vec<u8> {
        let archive = rkyv::to_bytes::<rancor::Error>(self)
            .expect("a Txn is bounded by the request frame limit, far below rkyv's 2 GiB");
        let mut out = Vec::with_capacity(TXN_V2_MAGIC.len() + archive.len());
        out.extend_from_slice(&TXN_V2_MAGIC);
        out.extend_from_slice(&archive);
        out
    }

    /// Decodes and validates a txn made by [`Txn::encode`], or by a build before `origin`
    /// existed (its `origin` is then 0). Any malformed input is an error, never a panic;
    /// the bytes may sit at any alignment.
    pub fn decode(bytes: &[u8]) -> Result<Txn, TreeError> {
        if let Some(rest) = bytes.strip_prefix(&TXN_V2_MAGIC) {
            let mut aligned = AlignedVec::<16>::with_capacity(rest.len());
            aligned.extend_from_slice(rest);
            if let Ok(txn) = rkyv::from_bytes::<Txn, rancor::Error>(&aligned) {
                return Ok(txn);
            }
            // Not a v2 archive after all: an old archive that happens to begin with the
            // magic is still decoded as one below.
        }
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let old = rkyv::from_bytes::<TxnV1, rancor::Error>(&aligned)
            .map_err(|e| TreeError::TxnDecode(e.to_string()))?;
        Ok(Txn {
            session_id: old.session_id,
            xid: old.xid,
            time_ms: old.time_ms,
            auth: old.auth,
            body: old.body,
            origin: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(origin: u64) -> Txn {
        Txn {
            session_id: 7,
            xid: 9,
            time_ms: 1234,
            auth: vec![Id::new("ip", "127.0.0.1")],
            body: TxnBody::SetData {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: -1,
            },
            origin,
        }
    }

    #[test]
    fn txns_round_trip_with_their_origin() {
        let t = sample(3);
        let bytes = t.encode();
        assert!(bytes.starts_with(&TXN_V2_MAGIC));
        assert_eq!(Txn::decode(&bytes).unwrap(), t);
        // At an odd offset too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(Txn::decode(&shifted[1..]).unwrap(), t);
    }

    #[test]
    fn txns_written_before_origin_existed_still_decode() {
        let t = sample(0);
        let old = TxnV1 {
            session_id: t.session_id,
            xid: t.xid,
            time_ms: t.time_ms,
            auth: t.auth.clone(),
            body: t.body.clone(),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&old).unwrap();
        assert!(!bytes.starts_with(&TXN_V2_MAGIC));
        assert_eq!(Txn::decode(&bytes).unwrap(), t);
    }

    #[test]
    fn garbage_after_the_magic_is_an_error() {
        for len in 0..64 {
            let mut bytes = TXN_V2_MAGIC.to_vec();
            bytes.extend((0..len).map(|i| (i * 37 + 11) as u8));
            assert!(Txn::decode(&bytes).is_err(), "{len} garbage bytes decoded");
        }
        let mut truncated = sample(1).encode();
        truncated.truncate(truncated.len() - 3);
        assert!(Txn::decode(&truncated).is_err());
    }
}
