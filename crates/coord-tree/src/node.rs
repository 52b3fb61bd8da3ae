//! The in-memory znode and its compact metadata.
//!
//! Invariants:
//! - `Node::data_hash == digest::data_hash(path, &node.data)` for the path the node is stored
//!   under (kept by [`crate::DataTree`]'s mutation helpers, which are the only writers);
//! - `Stat::num_children` and `Stat::data_length` are never stored: they are derived from
//!   `children.len()` and `data.len()`, so they cannot disagree with the node;
//! - `Stat::ephemeral_owner` is derived from [`NodeKind::Ephemeral`] (0 for every other kind),
//!   so an ephemeral node always has exactly one owner and no other node has one.

use crate::acl::AclRef;
use std::collections::BTreeSet;

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
    /// Deleted when session `owner` closes; never has children.
    Ephemeral { owner: u64 },
    /// Reaped once it had a child (`cversion > 0`) and has none left.
    Container,
    /// Reaped when childless and unmodified for more than `ttl_ms`.
    Ttl { ttl_ms: i64 },
}

/// The names of a node's children, sorted. Most nodes are leaves, so the set is boxed and
/// absent while empty: a leaf pays 8 bytes for it instead of 24.
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

/// One znode.
///
/// Memory: the path is the key of the tree's map and is not repeated here; the children are
/// kept by name in a `BTreeSet` (no allocation while empty, names come out sorted); the ACL is
/// an interned [`AclRef`] shared with every node that has an equal ACL (see
/// [`crate::acl::AclInterner`] for why this rather than ZooKeeper's id table).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub data: Box<[u8]>,
    pub acl: AclRef,
    pub children: Children,
    pub stat: StatCore,
    pub kind: NodeKind,
    /// Hash of (path, data), cached so a metadata change does not rehash the data.
    pub data_hash: u64,
}

impl Node {
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

    /// The owning session of an ephemeral node, else 0.
    pub fn ephemeral_owner(&self) -> u64 {
        match self.kind {
            NodeKind::Ephemeral { owner } => owner,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_overhead_stays_small() {
        // 16 data + 16 ACL + 24 children + 64 stat + 16 kind + 8 hash: a million nodes cost
        // about 144 MB of node structs before paths and data. Guard against regressions.
        assert!(
            std::mem::size_of::<Node>() <= 144,
            "Node is {} bytes",
            std::mem::size_of::<Node>()
        );
    }
}
