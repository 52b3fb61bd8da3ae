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
        self.evict();
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

/// Why a saved window was not loaded ([`RecentChanges::decode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay window file: {0}")]
pub struct WindowDecodeError(String);

const WINDOW_MAGIC: &[u8; 4] = b"CRCW";
const WINDOW_VERSION: u32 = 1;
const WINDOW_PREAMBLE: usize = 12;

fn event_code(t: EventType) -> u8 {
    match t {
        EventType::NodeCreated => 1,
        EventType::NodeDeleted => 2,
        EventType::NodeDataChanged => 3,
        EventType::NodeChildrenChanged => 4,
        EventType::DataWatchRemoved => 5,
        EventType::ChildWatchRemoved => 6,
        EventType::PersistentWatchRemoved => 7,
    }
}

fn event_of(code: u8) -> Option<EventType> {
    Some(match code {
        1 => EventType::NodeCreated,
        2 => EventType::NodeDeleted,
        3 => EventType::NodeDataChanged,
        4 => EventType::NodeChildrenChanged,
        _ => return None,
    })
}

impl RecentChanges {
    /// Resizes the window: past `capacity` changes, whole txns are evicted from the front.
    pub fn with_capacity(mut self, capacity: usize) -> RecentChanges {
        self.capacity = capacity;
        self.evict();
        self
    }

    fn evict(&mut self) {
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

    /// The window as bytes, to be saved beside a snapshot at [`RecentChanges::last`], so a
    /// restarted server can replay what happened before its snapshot:
    /// `"CRCW" | version u32 | crc32c u32 (of the rest) | floor u64 | last u64 | count u32 |
    /// (zxid u64 | event u8 | path length u32 | path)*`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let paths: usize = self.entries.iter().map(|e| e.path.len()).sum();
        let mut out = Vec::with_capacity(WINDOW_PREAMBLE + 20 + self.entries.len() * 13 + paths);
        out.extend_from_slice(WINDOW_MAGIC);
        out.extend_from_slice(&WINDOW_VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.floor.0.to_le_bytes());
        out.extend_from_slice(&self.last.0.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.zxid.0.to_le_bytes());
            out.push(event_code(e.event_type));
            out.extend_from_slice(&(e.path.len() as u32).to_le_bytes());
            out.extend_from_slice(e.path.as_bytes());
        }
        let crc = crc32c::crc32c(&out[WINDOW_PREAMBLE..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// A window from [`RecentChanges::encode`]'s bytes, holding at most `capacity` changes.
    /// Anything malformed (bad magic, version or checksum, a zxid out of order or outside
    /// `(floor, last]`, an event that is not a tree change, a path that is not UTF-8, bytes
    /// left over) is an error: the caller then starts with an empty window, as before.
    pub fn decode(bytes: &[u8], capacity: usize) -> Result<RecentChanges, WindowDecodeError> {
        let bad = |what: &str| WindowDecodeError(what.to_string());
        if bytes.len() < WINDOW_PREAMBLE || &bytes[..4] != WINDOW_MAGIC {
            return Err(bad("not a replay window"));
        }
        let u32_at = |b: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let u64_at = |b: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        if u32_at(bytes, 4) != Some(WINDOW_VERSION) {
            return Err(bad("unknown version"));
        }
        let body = &bytes[WINDOW_PREAMBLE..];
        if u32_at(bytes, 8) != Some(crc32c::crc32c(body)) {
            return Err(bad("checksum mismatch"));
        }
        let (Some(floor), Some(last), Some(count)) =
            (u64_at(body, 0), u64_at(body, 8), u32_at(body, 16))
        else {
            return Err(bad("truncated header"));
        };
        if floor > last {
            return Err(bad("floor above last"));
        }
        let mut at = 20;
        let mut entries = VecDeque::new();
        let mut prev = floor;
        for _ in 0..count {
            let (Some(zxid), Some(&code), Some(len)) =
                (u64_at(body, at), body.get(at + 8), u32_at(body, at + 9))
            else {
                return Err(bad("truncated entry"));
            };
            at += 13;
            let path = body
                .get(at..at + len as usize)
                .ok_or_else(|| bad("truncated path"))?;
            at += len as usize;
            let path = std::str::from_utf8(path).map_err(|_| bad("path is not UTF-8"))?;
            let event_type = event_of(code).ok_or_else(|| bad("not a tree change"))?;
            if zxid <= floor || zxid > last || zxid < prev {
                return Err(bad("zxid out of order"));
            }
            prev = zxid;
            entries.push_back(Recent {
                zxid: Zxid(zxid),
                event_type,
                path: path.into(),
            });
        }
        if at != body.len() {
            return Err(bad("bytes after the last entry"));
        }
        Ok(RecentChanges {
            entries,
            floor: Zxid(floor),
            last: Zxid(last),
            capacity,
        }
        .with_capacity(capacity))
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
