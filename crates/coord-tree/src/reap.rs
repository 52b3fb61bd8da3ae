//! Container and TTL node cleanup.
//!
//! The leader asks [`DataTree::reap_candidates`] which nodes look removable now, and proposes
//! a [`crate::TxnBody::ReapNode`] for each. Because time passes and other txns land between
//! proposal and commit, apply re-checks everything against the txn's own `time_ms` and the
//! node's `czxid` (a node deleted and recreated under the same path is not the one proposed).
//!
//! Only container and TTL paths are visited (the `reapable` index), never the whole tree.

use coord_proto::ErrorCode;
use coord_proto::path::validate_path;

use crate::apply::{Ctx, Log};
use crate::node::{Node, NodeKind};
use crate::tree::DataTree;

/// Whether `node` may be reaped at `now_ms`: a container that had children and has none
/// left, or a childless TTL node unmodified for more than its TTL.
fn reapable_at(node: &Node, now_ms: i64) -> bool {
    if !node.children.is_empty() {
        return false;
    }
    match node.kind {
        NodeKind::Container => node.stat.cversion > 0,
        NodeKind::Ttl { ttl_ms } => {
            i128::from(now_ms) - i128::from(node.stat.mtime) > i128::from(ttl_ms)
        }
        NodeKind::Persistent | NodeKind::Ephemeral { .. } => false,
    }
}

impl DataTree {
    /// Paths the server should propose `ReapNode` for at `now_ms`, with their czxid, sorted:
    /// containers with `cversion > 0` and no children; TTL nodes with no children and
    /// `now_ms - mtime > ttl_ms`. Visits only container and TTL nodes.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<(String, u64)> {
        self.reapable
            .iter()
            .filter_map(|path| {
                let node = self.node(path)?;
                reapable_at(node, now_ms).then(|| (path.to_string(), node.stat.czxid))
            })
            .collect()
    }

    /// Applies a `ReapNode`: `NoNode` if the node is gone or was recreated, `NotEmpty` if it
    /// has children, `BadArguments` if it is not (or no longer) reapable at `time_ms`.
    pub(crate) fn op_reap(
        &mut self,
        cx: &Ctx<'_>,
        path: &str,
        czxid: u64,
        log: &mut Log,
    ) -> Result<(), ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::InvalidPath)?;
        let node = self
            .node(path)
            .filter(|n| n.stat.czxid == czxid)
            .ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        if !reapable_at(node, cx.time_ms) {
            return Err(ErrorCode::BadArguments);
        }
        self.delete_unchecked(cx.zxid, path, log);
        Ok(())
    }
}
