//! [`DataTree`]: the znode map, its secondary indexes, and the read operations.
//!
//! ```text
//!   nodes: path -> Node ──children (names)──> nodes
//!   ephemerals: session -> {paths}     reapable: {container and TTL paths}
//!   sessions: id -> (timeout, password)
//!   digest = Σ node_hash(node)
//! ```
//!
//! Invariants (checked by the crate's tests after random txn sequences):
//! - `/` exists; every other node's parent exists, is not ephemeral, and lists the node's
//!   basename in `children`; `children` lists nothing else;
//! - `ephemerals[s]` is exactly the set of paths of nodes owned by session `s`, and every
//!   owner is in `sessions`;
//! - `reapable` is exactly the set of container and TTL paths;
//! - `digest` is the wrapping sum of [`node_hash`] over all nodes.
//!
//! The maps keyed by path are `HashMap`s used only for lookups: nothing observable (replies,
//! snapshots, digests) depends on their iteration order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use coord_proto::path::{basename, parent};
use coord_proto::{Acl, ErrorCode, Id, ReadOp, ReadResult, Stat, Zxid, perms};

use crate::acl::{AclInterner, check_acl};
use crate::digest::node_hash;
use crate::node::{Node, NodeCore, NodeKind, StatCore};

/// A live session, as replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub timeout_ms: u32,
    pub password: Box<[u8]>,
    /// The server the session's requests must come through (see `TxnBody::MoveSession`),
    /// or 0 when not known (created by a txn without an origin): then any server may.
    pub owner: u64,
}

/// The replicated znode tree.
///
/// Call order: build with [`DataTree::new`] or [`DataTree::from_snapshot`], then
/// [`DataTree::apply`] each committed txn in strictly increasing zxid order; reads may be
/// interleaved freely. Every replica that applies the same txns holds the same tree and the
/// same [`DataTree::digest`].
#[derive(Debug, Clone)]
pub struct DataTree {
    /// A node is 16 bytes here (its core is behind an `Arc`), so the table's empty slots
    /// cost little and a doubling leaves little to the allocator.
    pub(crate) nodes: HashMap<Box<str>, Node>,
    pub(crate) acls: AclInterner,
    pub(crate) sessions: BTreeMap<u64, Session>,
    pub(crate) ephemerals: BTreeMap<u64, BTreeSet<Box<str>>>,
    pub(crate) reapable: BTreeSet<Box<str>>,
    pub(crate) last_applied: Zxid,
    pub(crate) digest: u64,
    /// Lock-delays (Chubby): path of a lock node whose owner expired -> the txn time (ms)
    /// until which that path cannot be created. Entries are dropped once a txn's time has
    /// passed them, so the map holds only recent expiries. Replicated (snapshotted), not in
    /// the digest.
    pub(crate) lock_delays: BTreeMap<Box<str>, i64>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding only `/`, with ACL `world:anyone` ALL and an all-zero Stat.
    pub fn new() -> DataTree {
        let mut tree = DataTree::empty();
        let acl = tree.acls.intern(&Acl::open_unsafe());
        let root = Node::new(NodeCore {
            data: Box::default(),
            acl,
            stat: StatCore::default(),
            kind: NodeKind::Persistent,
        });
        tree.digest = node_hash("/", &root);
        tree.nodes.insert("/".into(), root);
        tree
    }

    /// A tree with no nodes at all (only as a start for snapshot restore).
    pub(crate) fn empty() -> DataTree {
        DataTree {
            nodes: HashMap::new(),
            acls: AclInterner::default(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            reapable: BTreeSet::new(),
            last_applied: Zxid::ZERO,
            digest: 0,
            lock_delays: BTreeMap::new(),
        }
    }

    /// The zxid of the last txn applied (or of the snapshot restored).
    pub fn last_applied(&self) -> Zxid {
        self.last_applied
    }

    /// The tree's digest, maintained incrementally: the wrapping sum of a fixed 64-bit hash
    /// of every node (path, data, full Stat, ACL, kind). Independent of the order nodes were
    /// created in; equal on two replicas iff they hold the same nodes (with overwhelming
    /// probability). Sessions are not part of it.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest recomputed from scratch, in O(nodes); equals [`DataTree::digest`] unless
    /// there is a bug. For consistency checks and tests.
    pub fn recompute_digest(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0u64, |acc, (p, n)| acc.wrapping_add(node_hash(p, n)))
    }

    // ---- mutation primitives: the only code that changes `nodes`; each keeps every index
    // ---- and the digest in step.

    /// Runs `f` on the node at `path` and re-accounts its hash. Returns false if absent.
    pub(crate) fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> bool {
        let Some(node) = self.nodes.get_mut(path) else {
            return false;
        };
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        f(node);
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        true
    }

    /// Replaces the data of `path`. The caller updates the Stat.
    pub(crate) fn replace_data(&mut self, path: &str, data: Box<[u8]>) -> Box<[u8]> {
        let mut old = Box::default();
        self.modify(path, |n| {
            old = std::mem::replace(&mut n.data, data);
        });
        old
    }

    /// Replaces the ACL of `path` with the interned copy of `acl`.
    pub(crate) fn replace_acl(&mut self, path: &str, acl: &[Acl]) {
        let acl = self.acls.intern(acl);
        let mut old = None;
        self.modify(path, |n| old = Some(std::mem::replace(&mut n.acl, acl)));
        if let Some(old) = old {
            self.acls.release(&old);
        }
    }

    /// Inserts `node` at `path`, linking it under its existing parent. The node's
    pub(crate) fn insert_node(&mut self, path: &str, mut node: Node) {
        debug_assert!(
            !self.nodes.contains_key(path),
            "insert over existing {path}"
        );
        let name: Box<str> = basename(path).into();
        let linked = self.modify(parent(path), |p| {
            p.children.insert(name);
        });
        assert!(linked, "insert of {path} without its parent");
        let acl = self.acls.reintern(node.acl.clone());
        if !std::sync::Arc::ptr_eq(&acl, &node.acl) {
            node.acl = acl;
        }
        match node.kind {
            NodeKind::Ephemeral { owner, .. } => {
                self.ephemerals
                    .entry(owner)
                    .or_default()
                    .insert(path.into());
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reapable.insert(path.into());
            }
            NodeKind::Persistent => {}
        }
        self.digest = self.digest.wrapping_add(node_hash(path, &node));
        self.nodes.insert(path.into(), node);
    }

    /// Removes the childless node at `path` and unlinks it from its parent.
    pub(crate) fn remove_node(&mut self, path: &str) -> Option<Node> {
        let node = self.nodes.remove(path)?;
        debug_assert!(node.children.is_empty(), "remove of {path} with children");
        self.digest = self.digest.wrapping_sub(node_hash(path, &node));
        let name = basename(path);
        self.modify(parent(path), |p| {
            p.children.remove(name);
        });
        self.acls.release(&node.acl);
        match node.kind {
            NodeKind::Ephemeral { owner, .. } => {
                if let Some(set) = self.ephemerals.get_mut(&owner) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&owner);
                    }
                }
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reapable.remove(path);
            }
            NodeKind::Persistent => {}
        }
        Some(node)
    }

    /// A new node (not yet in the tree).
    pub(crate) fn new_node(
        &mut self,
        data: Box<[u8]>,
        acl: &[Acl],
        stat: StatCore,
        kind: NodeKind,
    ) -> Node {
        Node::new(NodeCore {
            data,
            acl: self.acls.intern(acl),
            stat,
            kind,
        })
    }

    // ---- reads

    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The node at `path` if the caller holds any of `perm` on it.
    fn readable(&self, path: &str, perm: u32, auth: &[Id]) -> Result<&Node, ErrorCode> {
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if check_acl(&node.acl, perm, auth) {
            Ok(node)
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// The Stat of `path`, if it exists. No ACL check (as ZooKeeper's `exists`).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|n| n.stat())
    }

    /// Data and Stat; needs READ.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Vec<u8>, Stat), ErrorCode> {
        let node = self.readable(path, perms::READ, auth)?;
        Ok((node.data.to_vec(), node.stat()))
    }

    /// Children names (sorted, byte order) and the node's Stat; needs READ.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), ErrorCode> {
        let node = self.readable(path, perms::READ, auth)?;
        Ok((
            node.children.iter().map(|c| c.to_string()).collect(),
            node.stat(),
        ))
    }

    /// ACL and Stat; needs READ or ADMIN (as ZooKeeper 3.8).
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let node = self.readable(path, perms::READ | perms::ADMIN, auth)?;
        Ok((node.acl.to_vec(), node.stat()))
    }

    /// Paths of `session_id`'s ephemeral nodes that start with `prefix`, sorted.
    pub fn get_ephemerals(&self, session_id: u64, prefix: &str) -> Vec<String> {
        let Some(set) = self.ephemerals.get(&session_id) else {
            return Vec::new();
        };
        set.range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|p| p.starts_with(prefix))
        .map(|p| p.to_string())
        .collect()
    }

    /// Number of descendants of `path` (not counting itself); needs READ on `path`.
    pub fn all_children_number(&self, path: &str, auth: &[Id]) -> Result<u64, ErrorCode> {
        let node = self.readable(path, perms::READ, auth)?;
        if path == "/" {
            return Ok(self.nodes.len() as u64 - 1);
        }
        let mut count = 0u64;
        let mut stack: Vec<(String, &Node)> = vec![(path.to_string(), node)];
        while let Some((p, n)) = stack.pop() {
            for name in n.children.iter() {
                let child = coord_proto::path::join(&p, name);
                if let Some(c) = self.nodes.get(child.as_str()) {
                    count += 1;
                    stack.push((child, c));
                }
            }
        }
        Ok(count)
    }

    /// Several reads at one point in time; one result per op.
    pub fn multi_read(&self, ops: &[ReadOp], auth: &[Id]) -> Vec<ReadResult> {
        ops.iter()
            .map(|op| match op {
                ReadOp::GetData { path } => match self.get_data(path, auth) {
                    Ok((data, stat)) => ReadResult::Data { data, stat },
                    Err(code) => ReadResult::Error { code },
                },
                ReadOp::GetChildren { path } => match self.get_children(path, auth) {
                    Ok((children, _)) => ReadResult::Children { children },
                    Err(code) => ReadResult::Error { code },
                },
            })
            .collect()
    }

    /// Number of nodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Live sessions as (session id, timeout ms), sorted by id.
    pub fn sessions(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.sessions.iter().map(|(id, s)| (*id, s.timeout_ms))
    }

    /// The password of a live session.
    pub fn session_password(&self, session_id: u64) -> Option<&[u8]> {
        self.sessions.get(&session_id).map(|s| &*s.password)
    }

    /// The server that owns a live session (0: not known, any server may act for it).
    pub fn session_owner(&self, session_id: u64) -> Option<u64> {
        self.sessions.get(&session_id).map(|s| s.owner)
    }

    /// Whether `session_id` is live.
    pub fn has_session(&self, session_id: u64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// Checks every invariant listed in the module docs; panics with context on a broken
    /// one. O(nodes); for tests and debugging.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        assert!(self.nodes.contains_key("/"), "root missing");
        let mut ephemerals: BTreeMap<u64, BTreeSet<Box<str>>> = BTreeMap::new();
        let mut reapable = BTreeSet::new();
        for (path, node) in &self.nodes {
            for name in node.children.iter() {
                let child = coord_proto::path::join(path, name);
                assert!(
                    self.nodes.contains_key(child.as_str()),
                    "{path} lists missing child {name}"
                );
            }
            if &**path != "/" {
                let p = self
                    .nodes
                    .get(parent(path))
                    .unwrap_or_else(|| panic!("{path} has no parent"));
                assert!(
                    p.children.contains(basename(path)),
                    "{path} not linked in its parent"
                );
                assert!(
                    !matches!(p.kind, NodeKind::Ephemeral { .. }),
                    "{path} under an ephemeral"
                );
            }
            match node.kind {
                NodeKind::Ephemeral { owner, .. } => {
                    assert!(
                        self.sessions.contains_key(&owner),
                        "{path} owned by dead session {owner}"
                    );
                    ephemerals.entry(owner).or_default().insert(path.clone());
                }
                NodeKind::Container | NodeKind::Ttl { .. } => {
                    reapable.insert(path.clone());
                }
                NodeKind::Persistent => {}
            }
        }
        assert_eq!(ephemerals, self.ephemerals, "ephemeral index out of step");
        assert_eq!(reapable, self.reapable, "reapable index out of step");
        assert_eq!(
            self.digest,
            self.recompute_digest(),
            "incremental digest out of step"
        );
    }
}
