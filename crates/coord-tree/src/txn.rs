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
}

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
}

impl Txn {
    /// Encodes the txn as an rkyv archive.
    ///
    /// # Panics
    /// Only if the archive would exceed rkyv's 2 GiB relative-pointer range, which the
    /// server's frame limit (about 1 MiB per request) rules out.
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("a Txn is bounded by the request frame limit, far below rkyv's 2 GiB")
            .into_vec()
    }

    /// Decodes and validates an archive made by [`Txn::encode`]. Any malformed input is an
    /// error, never a panic; the bytes may sit at any alignment.
    pub fn decode(bytes: &[u8]) -> Result<Txn, TreeError> {
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<Txn, rancor::Error>(&aligned)
            .map_err(|e| TreeError::TxnDecode(e.to_string()))
    }
}
