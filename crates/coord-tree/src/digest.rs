//! The tree digest: an order-independent 64-bit fingerprint of every node.
//!
//! `digest = Σ node_hash(node)` (wrapping), over every node including the root. A node's hash
//! covers its path, data, full [`coord_proto::Stat`], ACL and kind. The hash function is
//! FNV-1a-64 followed by a fixed 64-bit finalizer (from SplitMix64): fixed constants, no
//! per-process seed, so two replicas (or two runs) agree bit for bit.
//!
//! Invariant (kept by [`crate::DataTree`]): `tree.digest() == recompute(tree)` after every
//! apply; every mutation subtracts the node's old hash and adds its new one.

use crate::node::{Node, NodeKind};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a-64.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Length-prefixed, so adjacent fields can never be confused.
    fn field(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.bytes(bytes);
    }
}

/// SplitMix64's finalizer: spreads FNV's weak high bits so the wrapping sum stays uniform.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a node's path and data.
fn data_hash(path: &str, data: &[u8]) -> u64 {
    let mut h = Fnv(FNV_OFFSET);
    h.field(path.as_bytes());
    h.field(data);
    h.0
}

/// The contribution of the node at `path` to the tree digest.
pub(crate) fn node_hash(path: &str, node: &Node) -> u64 {
    let mut h = Fnv(data_hash(path, &node.data));
    let s = node.stat();
    for v in [
        s.czxid,
        s.mzxid,
        s.pzxid,
        s.ctime as u64,
        s.mtime as u64,
        s.ephemeral_owner,
    ] {
        h.u64(v);
    }
    for v in [
        s.version as u32,
        s.cversion as u32,
        s.aversion as u32,
        s.data_length,
        s.num_children,
    ] {
        h.u64(u64::from(v));
    }
    h.u64(node.acl.len() as u64);
    for entry in node.acl.iter() {
        h.u64(u64::from(entry.perms));
        h.field(entry.id.scheme.as_bytes());
        h.field(entry.id.id.as_bytes());
    }
    match node.kind {
        NodeKind::Persistent => h.u64(0),
        NodeKind::Ephemeral { owner } => {
            h.u64(1);
            h.u64(owner);
        }
        NodeKind::Container => h.u64(2),
        NodeKind::Ttl { ttl_ms } => {
            h.u64(3);
            h.u64(ttl_ms as u64);
        }
    }
    mix(h.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Published FNV-1a-64 test vectors.
        let mut h = Fnv(FNV_OFFSET);
        h.bytes(b"");
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv(FNV_OFFSET);
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv(FNV_OFFSET);
        h.bytes(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn path_and_data_are_not_confusable() {
        assert_ne!(data_hash("/ab", b"c"), data_hash("/a", b"bc"));
    }
}
