//! [`WatchManager`]: one server's watches, and the events the tree's changes fire.
//!
//! Volatile and per server (never replicated): after a reconnect the client re-registers
//! with [`WatchManager::set_watches`], which replays from [`RecentChanges`] what the session's
//! persistent watches missed meanwhile, so a live session sees every change it watches, in
//! zxid order, across reconnects (or is told it cannot).
//!
//! Firing rules (ZooKeeper 3.8):
//!
//! | change                | Data | Exist | Child | Persistent (exact path) | Recursive (path or ancestor) |
//! |-----------------------|------|-------|-------|-------------------------|------------------------------|
//! | `NodeCreated`         |  ✓   |   ✓   |       |            ✓            |              ✓               |
//! | `NodeDataChanged`     |  ✓   |   ✓   |       |            ✓            |              ✓               |
//! | `NodeDeleted`         |  ✓   |   ✓   |   ✓   |            ✓            |              ✓               |
//! | `NodeChildrenChanged` |      |       |   ✓   |            ✓            |                              |
//!
//! Invariants: Data, Exist and Child watches are one-shot (removed when they fire);
//! persistent ones stay until removed. A session gets at most one event per change, and the
//! events of one change come out sorted by session id. `by_session` mirrors `by_path`
//! exactly, and `count` is the number of (session, path, kind) registrations.

use std::collections::{BTreeSet, HashMap, HashSet};

use coord_proto::path::parent;
use coord_proto::{ErrorCode, EventType, WatchedEvent, WatcherKind, Zxid};

use crate::apply::Change;
use crate::recent::RecentChanges;
use crate::tree::DataTree;

/// The kind of a registered watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// One-shot watch on an existing node's data (`get_data`, `exists` on an existing node).
    Data,
    /// One-shot watch for a missing node's creation (`exists` on a missing node).
    Exist,
    /// One-shot watch on a node's children list (`get_children`).
    Child,
    /// Every change of the node and its children list, until removed.
    Persistent,
    /// Creates, deletes and data changes at or below the node, until removed.
    PersistentRecursive,
}

const ALL_KINDS: [WatchKind; 5] = [
    WatchKind::Data,
    WatchKind::Exist,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::PersistentRecursive,
];

/// The sessions watching one path, by kind.
#[derive(Debug, Default)]
struct PathWatches {
    sets: [BTreeSet<u64>; 5],
}

impl PathWatches {
    fn set(&mut self, kind: WatchKind) -> &mut BTreeSet<u64> {
        &mut self.sets[kind as usize]
    }

    fn get(&self, kind: WatchKind) -> &BTreeSet<u64> {
        &self.sets[kind as usize]
    }

    fn is_empty(&self) -> bool {
        self.sets.iter().all(BTreeSet::is_empty)
    }
}

/// One server's watch registrations. See the module docs for the firing rules.
#[derive(Debug, Default)]
pub struct WatchManager {
    /// Lookup only; outputs are ordered by change, then by session id.
    by_path: HashMap<String, PathWatches>,
    /// Lookup only; each session's set is ordered.
    by_session: HashMap<u64, BTreeSet<(String, WatchKind)>>,
    /// Number of recursive registrations: when 0, ancestors are not visited.
    recursive: usize,
    count: usize,
}

impl WatchManager {
    /// No watches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a watch (idempotent: a second identical registration is one watch).
    pub fn add(&mut self, session_id: u64, path: &str, kind: WatchKind) {
        if self
            .by_path
            .entry(path.to_string())
            .or_default()
            .set(kind)
            .insert(session_id)
        {
            self.by_session
                .entry(session_id)
                .or_default()
                .insert((path.to_string(), kind));
            self.count += 1;
            if kind == WatchKind::PersistentRecursive {
                self.recursive += 1;
            }
        }
    }

    /// Removes one registration; whether it existed.
    fn unregister(&mut self, session_id: u64, path: &str, kind: WatchKind) -> bool {
        let Some(pw) = self.by_path.get_mut(path) else {
            return false;
        };
        if !pw.set(kind).remove(&session_id) {
            return false;
        }
        if pw.is_empty() {
            self.by_path.remove(path);
        }
        self.forget(session_id, path, kind);
        true
    }

    /// Drops a registration from the session index and the counters.
    fn forget(&mut self, session_id: u64, path: &str, kind: WatchKind) {
        if let Some(set) = self.by_session.get_mut(&session_id) {
            set.remove(&(path.to_string(), kind));
            if set.is_empty() {
                self.by_session.remove(&session_id);
            }
        }
        self.count -= 1;
        if kind == WatchKind::PersistentRecursive {
            self.recursive -= 1;
        }
    }

    /// `remove_watches`: removes the session's watches on `path` of the given kind.
    /// `Data` removes data and exist watches, `Children` child watches, `Any` every kind
    /// including persistent ones. Returns the events to deliver to that session
    /// (`DataWatchRemoved`, `ChildWatchRemoved`, `PersistentWatchRemoved`, in that order,
    /// zxid 0), or `NoWatcher` when nothing matched.
    pub fn remove(
        &mut self,
        session_id: u64,
        path: &str,
        kind: WatcherKind,
    ) -> Result<Vec<WatchedEvent>, ErrorCode> {
        let (data, child, persistent) = match kind {
            WatcherKind::Data => (true, false, false),
            WatcherKind::Children => (false, true, false),
            WatcherKind::Any => (true, true, true),
        };
        let mut events = Vec::new();
        let mut removed = |me: &mut Self, kinds: &[WatchKind], event_type: EventType| {
            let mut any = false;
            for k in kinds {
                any |= me.unregister(session_id, path, *k);
            }
            if any {
                events.push(WatchedEvent {
                    event_type,
                    path: path.to_string(),
                    zxid: 0,
                });
            }
        };
        if data {
            removed(
                self,
                &[WatchKind::Data, WatchKind::Exist],
                EventType::DataWatchRemoved,
            );
        }
        if child {
            removed(self, &[WatchKind::Child], EventType::ChildWatchRemoved);
        }
        if persistent {
            removed(
                self,
                &[WatchKind::Persistent, WatchKind::PersistentRecursive],
                EventType::PersistentWatchRemoved,
            );
        }
        if events.is_empty() {
            Err(ErrorCode::NoWatcher)
        } else {
            Ok(events)
        }
    }

    /// Forgets every watch of a session (closed, expired or disconnected from this server).
    pub fn remove_session(&mut self, session_id: u64) {
        let Some(set) = self.by_session.remove(&session_id) else {
            return;
        };
        for (path, kind) in set {
            if let Some(pw) = self.by_path.get_mut(&path) {
                pw.set(kind).remove(&session_id);
                if pw.is_empty() {
                    self.by_path.remove(&path);
                }
            }
            self.count -= 1;
            if kind == WatchKind::PersistentRecursive {
                self.recursive -= 1;
            }
        }
    }

    /// Fires the watches matching the changes of one applied txn, in change order; within a
    /// change, one event per session, sorted by session id. One-shot watches that fire are
    /// removed.
    pub fn trigger(&mut self, zxid: Zxid, changes: &[Change]) -> Vec<(u64, WatchedEvent)> {
        let mut out = Vec::new();
        for change in changes {
            let (one_shot, recursive): (&[WatchKind], bool) = match change.event_type {
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    (&[WatchKind::Data, WatchKind::Exist], true)
                }
                EventType::NodeDeleted => {
                    (&[WatchKind::Data, WatchKind::Exist, WatchKind::Child], true)
                }
                EventType::NodeChildrenChanged => (&[WatchKind::Child], false),
                // Removal notices are not tree changes.
                _ => continue,
            };
            let path = change.path.as_str();
            let mut fired: BTreeSet<u64> = BTreeSet::new();
            if let Some(pw) = self.by_path.get_mut(path) {
                let mut taken = Vec::new();
                for kind in one_shot {
                    for sid in std::mem::take(pw.set(*kind)) {
                        taken.push((sid, *kind));
                        fired.insert(sid);
                    }
                }
                fired.extend(pw.get(WatchKind::Persistent));
                if recursive {
                    fired.extend(pw.get(WatchKind::PersistentRecursive));
                }
                if pw.is_empty() {
                    self.by_path.remove(path);
                }
                for (sid, kind) in taken {
                    self.forget(sid, path, kind);
                }
            }
            if recursive && self.recursive > 0 && path != "/" {
                let mut ancestor = path;
                loop {
                    ancestor = parent(ancestor);
                    if let Some(pw) = self.by_path.get(ancestor) {
                        fired.extend(pw.get(WatchKind::PersistentRecursive));
                    }
                    if ancestor == "/" {
                        break;
                    }
                }
            }
            out.extend(fired.into_iter().map(|sid| {
                (
                    sid,
                    WatchedEvent {
                        event_type: change.event_type,
                        path: change.path.clone(),
                        zxid: zxid.0,
                    },
                )
            }));
        }
        out
    }

    /// Re-registers a reconnecting session's watches (ZooKeeper's `SetWatches`) and returns
    /// the events to deliver at once, before the reply, in this order:
    ///
    /// 1. Persistent and recursive watches: every change after `relative_zxid` they match,
    ///    taken from `recent`, in zxid order — what [`WatchManager::trigger`] would have sent
    ///    had the session stayed connected. Then they are registered again.
    ///
    ///    When `recent` no longer reaches back to `relative_zxid`, they cannot be replayed and
    ///    are *not* registered: each of their paths gets one `PersistentWatchRemoved` event
    ///    whose zxid is the tree's last applied zxid (never 0, unlike the notices of
    ///    `remove_watches`). The client must add them again and re-read what they cover; a
    ///    removal it did not ask for is the only honest answer when changes may be lost.
    /// 2. One-shot watches, fired when their node changed after `relative_zxid`, else
    ///    registered:
    ///    - data: node missing → `NodeDeleted`; `mzxid > relative_zxid` → `NodeDataChanged`;
    ///    - exist: node present → `NodeCreated`;
    ///    - child: node missing → `NodeDeleted`; `pzxid > relative_zxid` → `NodeChildrenChanged`.
    ///
    ///    A one-shot watch that a replayed event of step 1 fires on the client (a create, data
    ///    change or delete of its path for data and exist watches; a delete or children change
    ///    for child watches) is consumed by that event: it is neither fired again nor
    ///    registered, so no persistent watch of the client sees the same change twice.
    ///
    /// An event's zxid is the change's own (mzxid, czxid, pzxid, or the replayed change's)
    /// when the tree knows it, and the tree's last applied zxid for a deletion.
    ///
    /// `relative_zxid` is the highest zxid of any reply the client received. A server queues
    /// a change's events before any reply whose zxid covers it (one outbox per session), so
    /// the client has every event of the changes up to it; it may also hold some events after
    /// it (those that came after its last reply), which the replay sends again and the client
    /// recognises by zxid.
    #[allow(clippy::too_many_arguments)]
    pub fn set_watches(
        &mut self,
        session_id: u64,
        relative_zxid: Zxid,
        tree: &DataTree,
        recent: &RecentChanges,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        persistent_recursive: &[String],
    ) -> Vec<WatchedEvent> {
        let rel = relative_zxid.0;
        let deleted = tree.last_applied().0;
        let (mut events, replayed) =
            match recent.replay(relative_zxid, persistent, persistent_recursive) {
                Ok(replay) => (replay, true),
                Err(gap) => {
                    let paths: BTreeSet<&str> = persistent
                        .iter()
                        .chain(persistent_recursive)
                        .map(String::as_str)
                        .collect();
                    let zxid = tree.last_applied().max(gap.floor).0;
                    let removed = paths
                        .into_iter()
                        .map(|path| WatchedEvent {
                            event_type: EventType::PersistentWatchRemoved,
                            path: path.to_string(),
                            zxid,
                        })
                        .collect();
                    (removed, false)
                }
            };
        let mut fired = Vec::new();
        {
            // Paths whose one-shot data/exist (resp. child) watches a replayed event fires on
            // the client (its dispatch rules, `coord-client` `watches.rs`).
            let mut covers_data: HashSet<&str> = HashSet::new();
            let mut covers_child: HashSet<&str> = HashSet::new();
            if replayed {
                for e in &events {
                    let path = e.path.as_str();
                    match e.event_type {
                        EventType::NodeCreated | EventType::NodeDataChanged => {
                            covers_data.insert(path);
                        }
                        EventType::NodeDeleted => {
                            covers_data.insert(path);
                            covers_child.insert(path);
                        }
                        EventType::NodeChildrenChanged => {
                            covers_child.insert(path);
                        }
                        _ => {}
                    }
                }
            }
            let mut fire = |event_type, path: &str, zxid| {
                fired.push(WatchedEvent {
                    event_type,
                    path: path.to_string(),
                    zxid,
                });
            };
            for path in data.iter().filter(|p| !covers_data.contains(p.as_str())) {
                match tree.stat(path) {
                    None => fire(EventType::NodeDeleted, path, deleted),
                    Some(s) if s.mzxid > rel => fire(EventType::NodeDataChanged, path, s.mzxid),
                    Some(_) => self.add(session_id, path, WatchKind::Data),
                }
            }
            for path in exist.iter().filter(|p| !covers_data.contains(p.as_str())) {
                match tree.stat(path) {
                    Some(s) => fire(EventType::NodeCreated, path, s.czxid),
                    None => self.add(session_id, path, WatchKind::Exist),
                }
            }
            for path in child.iter().filter(|p| !covers_child.contains(p.as_str())) {
                match tree.stat(path) {
                    None => fire(EventType::NodeDeleted, path, deleted),
                    Some(s) if s.pzxid > rel => fire(EventType::NodeChildrenChanged, path, s.pzxid),
                    Some(_) => self.add(session_id, path, WatchKind::Child),
                }
            }
        }
        events.extend(fired);
        if replayed {
            for path in persistent {
                self.add(session_id, path, WatchKind::Persistent);
            }
            for path in persistent_recursive {
                self.add(session_id, path, WatchKind::PersistentRecursive);
            }
        }
        events
    }

    /// Number of registrations: (session, path, kind) triples.
    pub fn watch_count(&self) -> usize {
        self.count
    }

    /// Whether `session_id` has a watch of `kind` on `path`.
    pub fn has_watch(&self, session_id: u64, path: &str, kind: WatchKind) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|pw| pw.get(kind).contains(&session_id))
    }

    /// Checks the mirror invariants (tests and debug builds).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut n = 0;
        let mut rec = 0;
        for (path, pw) in &self.by_path {
            assert!(!pw.is_empty(), "empty entry kept for {path}");
            for kind in ALL_KINDS {
                for sid in pw.get(kind) {
                    n += 1;
                    rec += usize::from(kind == WatchKind::PersistentRecursive);
                    assert!(self.by_session[sid].contains(&(path.clone(), kind)));
                }
            }
        }
        let mirrored: usize = self.by_session.values().map(BTreeSet::len).sum();
        assert_eq!((n, rec, mirrored), (self.count, self.recursive, self.count));
    }
}
