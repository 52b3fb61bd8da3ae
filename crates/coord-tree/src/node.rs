//! The in-memory znode and its compact metadata.
//!
//! Invariants:
//! - `Stat::num_children` and `Stat::data_length` are never stored: they are derived from
//!   `children.len()` and `data.len()`, so they cannot disagree with the node;
//! - `Stat::ephemeral_owner` is derived from [`NodeKind::Ephemeral`] (0 for every other kind),
//!   so an ephemeral node always has exactly one owner and no other node has one.

use crate::acl::AclRef;
use std::collections::BTreeSet;
use std::sync::Arc;

use coord_proto::Stat;

/// The stored part of a [`Stat`] (everything that is not derived from the node's contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StatCore {
    pub czxid: u64,
    pub mzxid: u64,
    pub pzxid: u64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
}

impl StatCore {
    /// The metadata of a node created at `zxid`, `time_ms`.
    pub fn created(zxid: u64, time_ms: i64) -> StatCore {
        StatCore {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
        }
    }
}

/// What kind of node this is; decides who may remove it besides an explicit delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// Lives until deleted.
    Persistent,
    /// Deleted when session `owner` closes; never has children. A lock node
    /// (`CreateMode::EphemeralLock`) has a nonzero `lock_delay_ms`: when its owner expires,
    /// its path stays unavailable for that long (see `DataTree::lock_delays`).
    Ephemeral { owner: u64, lock_delay_ms: u32 },
    /// Reaped once it had a child (`cversion > 0`) and has none left.
    Container,
    /// Reaped when childless and unmodified for more than `ttl_ms`.
    Ttl { ttl_ms: i64 },
}

/// The names of a node's children, sorted. Most nodes are leaves, so the set is boxed and
/// absent while empty: a leaf pays 8 bytes for it instead of 24.
// The box is the point: 8 bytes in every node instead of a 24-byte BTreeSet header.
#[allow(clippy::box_collection)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Children(Option<Box<BTreeSet<Box<str>>>>);

impl Children {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(name))
    }

    pub fn insert(&mut self, name: Box<str>) -> bool {
        self.0.get_or_insert_with(Box::default).insert(name)
    }

    /// Removes `name`; the set is freed when it empties.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = self.0.as_mut() else {
            return false;
        };
        let removed = set.remove(name);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = &Box<str>> {
        self.0.iter().flat_map(|s| s.iter())
    }
}

impl Extend<Box<str>> for Children {
    fn extend<I: IntoIterator<Item = Box<str>>>(&mut self, names: I) {
        for name in names {
            self.insert(name);
        }
    }
}

/// What a znode holds besides its children: shared (copy-on-write) between the tree and the
/// snapshot views taken from it, so a snapshot costs the tree one reference count per node
/// and its serialization runs on another thread while the tree moves on.
#[derive(Debug, Clone)]
pub(crate) struct NodeCore {
    pub data: Box<[u8]>,
    pub acl: AclRef,
    pub stat: StatCore,
    pub kind: NodeKind,
}

impl NodeCore {
    /// The owning session of an ephemeral node, else 0.
    pub fn ephemeral_owner(&self) -> u64 {
        match self.kind {
            NodeKind::Ephemeral { owner, .. } => owner,
            _ => 0,
        }
    }
}

/// One znode.
///
/// Memory: the path is the key of the tree's map and is not repeated here; the children are
/// kept by name in a `BTreeSet` (no allocation while empty, names come out sorted); the ACL is
/// an interned [`AclRef`] shared with every node that has an equal ACL (see
/// [`crate::acl::AclInterner`] for why this rather than ZooKeeper's id table). Reading a
/// field goes through `Deref` to the core; writing one through `DerefMut`, which copies the
/// core first if a snapshot view still holds it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    core: Arc<NodeCore>,
    pub children: Children,
}

impl std::ops::Deref for Node {
    type Target = NodeCore;
    fn deref(&self) -> &NodeCore {
        &self.core
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut NodeCore {
        Arc::make_mut(&mut self.core)
    }
}

impl Node {
    /// A childless node.
    pub fn new(core: NodeCore) -> Node {
        Node {
            core: Arc::new(core),
            children: Children::default(),
        }
    }

    /// The shared core (for snapshot views).
    pub fn core(&self) -> &Arc<NodeCore> {
        &self.core
    }

    /// The full ZooKeeper `Stat` of this node.
    pub fn stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: self.ephemeral_owner(),
            // Data is capped far below 4 GiB by the server's frame limit; saturate rather
            // than wrap if a caller ever bypasses it.
            data_length: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
            num_children: u32::try_from(self.children.len()).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_overhead_stays_small() {
        // In the table: the core pointer and the (boxed, optional) children set. The core:
        // 16 data + 8 ACL + 56 stat + 16 kind, plus the Arc's two counts (a 112-byte
        // allocation). Guard against regressions.
        assert_eq!(std::mem::size_of::<Node>(), 16);
        assert!(
            std::mem::size_of::<NodeCore>() <= 96,
            "NodeCore is {} bytes",
            std::mem::size_of::<NodeCore>()
        );
    }
}
