//! [`RecentChanges`]: the changes of the last applied txns, kept so that a session that
//! reconnects is sent every change its persistent watches missed while it was away.
//!
//! ```text
//!   apply(zxid) ──changes──> record ──> [ (floor, last] : every change, in apply order ]
//!                                                  │ evicts whole txns from the front
//!   SetWatches(relative_zxid) ──> replay ──> events for changes > relative_zxid, or a gap
//!                                            when relative_zxid < floor
//! ```
//!
//! Invariants: `entries` holds every change of every txn with zxid in `(floor, last]`, in
//! apply order (zxid order, then change order within a txn), and nothing else; eviction drops
//! whole txns, so a txn's changes are either all kept or all gone, and `floor` is the zxid of
//! the newest txn that may have changes the window no longer holds. `floor <= last`.

use std::collections::{HashSet, VecDeque};

use coord_proto::path::parent;
use coord_proto::{EventType, WatchedEvent, Zxid};

use crate::apply::Change;

/// One retained change: a zxid, an event type and a boxed path (32 bytes plus the path).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recent {
    zxid: Zxid,
    event_type: EventType,
    path: Box<str>,
}

/// The window of recent changes one server keeps for replay. See the module docs.
#[derive(Debug, Clone)]
pub struct RecentChanges {
    /// Every change of the txns in `(floor, last]`, in apply order.
    entries: VecDeque<Recent>,
    /// Changes of txns at or below this zxid may be missing.
    floor: Zxid,
    /// The last txn recorded (or the zxid the window started at).
    last: Zxid,
    /// Most changes kept; whole txns are evicted past it.
    capacity: usize,
}

/// A replay is impossible: the window no longer reaches back to the zxid asked for, so some
/// changes after it may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayGap {
    /// The oldest zxid the window can replay from (`relative_zxid >= floor` replays).
    pub floor: Zxid,
}

impl RecentChanges {
    /// An empty window over a tree whose last applied txn is `applied`: it knows nothing of
    /// the changes up to `applied`, and keeps at most `capacity` changes of later txns.
    pub fn new(capacity: usize, applied: Zxid) -> RecentChanges {
        RecentChanges {
            entries: VecDeque::new(),
            floor: applied,
            last: applied,
            capacity,
        }
    }

    /// Records the changes of the txn applied at `zxid` (a txn without changes is recorded
    /// too: it only moves `last`). Txns must come in increasing zxid order; one that does not
    /// is a caller bug, and the window then forgets everything (so it replays nothing it
    /// cannot vouch for) rather than keep an out-of-order history.
    pub fn record(&mut self, zxid: Zxid, changes: &[Change]) {
        debug_assert!(
            zxid > self.last,
            "txn {zxid} recorded after {}: apply order broken",
            self.last
        );
        if zxid <= self.last {
            self.entries.clear();
            self.floor = self.last;
            return;
        }
        self.last = zxid;
        self.entries.extend(changes.iter().map(|c| Recent {
            zxid,
            event_type: c.event_type,
            path: c.path.as_str().into(),
        }));
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            while self.entries.front().is_some_and(|e| e.zxid == oldest.zxid) {
                self.entries.pop_front();
            }
            self.floor = oldest.zxid;
        }
    }

    /// The oldest zxid a replay can start after: `replay(after)` works iff `after >= floor`.
    pub fn floor(&self) -> Zxid {
        self.floor
    }

    /// The last txn recorded.
    pub fn last(&self) -> Zxid {
        self.last
    }

    /// Number of changes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no change is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The events a session with persistent watches on `persistent` (exact paths) and
    /// persistent-recursive watches on `recursive` (path or ancestor) would have received
    /// for the changes after `after`: one event per matching change, in zxid order, then
    /// change order — what [`crate::WatchManager::trigger`] sends for the same changes.
    ///
    /// With no watches there is nothing to miss, and the result is empty. Otherwise, when the
    /// window does not reach back to `after` (`after < floor`), some of those changes may be
    /// gone: [`ReplayGap`].
    pub fn replay(
        &self,
        after: Zxid,
        persistent: &[String],
        recursive: &[String],
    ) -> Result<Vec<WatchedEvent>, ReplayGap> {
        if persistent.is_empty() && recursive.is_empty() {
            return Ok(Vec::new());
        }
        if after < self.floor {
            return Err(ReplayGap { floor: self.floor });
        }
        let exact: HashSet<&str> = persistent.iter().map(String::as_str).collect();
        let deep: HashSet<&str> = recursive.iter().map(String::as_str).collect();
        let start = self.entries.partition_point(|e| e.zxid <= after);
        let matches = |e: &Recent| {
            let path = &*e.path;
            if !is_tree_change(e.event_type) {
                return false;
            }
            if exact.contains(path) {
                return true;
            }
            if deep.is_empty() || !fires_recursive(e.event_type) {
                return false;
            }
            let mut at = path;
            loop {
                if deep.contains(at) {
                    return true;
                }
                if at == "/" || at.is_empty() {
                    return false;
                }
                at = parent(at);
            }
        };
        Ok(self
            .entries
            .range(start..)
            .filter(|e| matches(e))
            .map(|e| WatchedEvent {
                event_type: e.event_type,
                path: e.path.to_string(),
                zxid: e.zxid.0,
            })
            .collect())
    }
}

/// Whether an event type is a change of the tree (removal notices are not; persistent watches
/// fire for every tree change).
fn is_tree_change(event_type: EventType) -> bool {
    fires_recursive(event_type) || event_type == EventType::NodeChildrenChanged
}

/// Whether a change of this type fires persistent-recursive watches (every tree change but
/// `NodeChildrenChanged`; see the table in `watch.rs`).
fn fires_recursive(event_type: EventType) -> bool {
    matches!(
        event_type,
        EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
    )
}
