//! Client-side watch bookkeeping, as ZooKeeper's `ClientWatchManager`: which local waiters
//! each server-side watch feeds, how an event fans out to them, and what to re-register after
//! a reconnect.
//!
//! ```text
//!   event type            one-shot registrations ended     persistent          recursive
//!   NodeCreated           data, exist                      path                path + ancestors
//!   NodeDataChanged       data, exist                      path                path + ancestors
//!   NodeDeleted           data, exist, child               path                path + ancestors
//!   NodeChildrenChanged   child                            path                -
//!   DataWatchRemoved      data, exist                      -                   -
//!   ChildWatchRemoved     child                            -                   -
//!   PersistentWatchRemoved -                               path (ends it)      path (ends it)
//! ```
//!
//! Exactly once across reconnects: after a reconnect the server replays, before the
//! `SetWatches` reply, every change after the last reply zxid the client saw that its
//! persistent watches match (or, when it no longer can, removes them with a
//! `PersistentWatchRemoved` event whose zxid is not 0). The client may already hold some of
//! those: events that came after its last reply, before the connection broke. Each
//! persistent registration therefore tracks the [`Position`] of the events it received —
//! (zxid, rank among its events of that zxid), the same on every server, since every server
//! applies the same txns and fires by the same rules — and drops an event whose position it
//! has already passed.
//!
//! Invariants: a one-shot sender is in at most one map and leaves it when it fires; a stream
//! sender stays until its watch is removed, the session ends, or its receiver is dropped; a
//! stream entry lives as long as the server-side watch it mirrors (until it is removed, or
//! pruned at the next `SetWatches` once no receiver is left); each subscriber receives events
//! in strictly increasing position.

use crate::error::Error;
use coord_proto::path::parent;
use coord_proto::{AddWatchMode, EventType, Request, WatchedEvent, WatcherKind};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Where a one-shot watch delivers its single event (or the error that ended it).
pub(crate) type OneShotSender = oneshot::Sender<Result<WatchedEvent, Error>>;
/// Where a persistent watch delivers its events.
pub(crate) type StreamSender = mpsc::UnboundedSender<WatchedEvent>;

/// The kind of a one-shot registration, decided from the reply that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneShotKind {
    /// `get_data` on a node, or `exists` on an existing node.
    Data,
    /// `exists` on a missing node (waits for its creation).
    Exist,
    /// `get_children`.
    Child,
}

type OneShots = HashMap<String, Vec<OneShotSender>>;
type Streams = HashMap<String, Stream>;

/// Where an event stands among the events of one persistent watch: its zxid, then its rank
/// among the watch's events of that zxid (a multi may change a watched path, or a watched
/// subtree, several times in one txn). Ordered as the server sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    zxid: u64,
    rank: u32,
}

/// One receiver of a persistent watch.
struct Subscriber {
    tx: StreamSender,
    /// The last event it was given (default: none yet; it was added after every event it
    /// must not see, and later events come in order).
    delivered: Position,
}

/// The client side of one server-side persistent (or recursive) watch of the session.
#[derive(Default)]
struct Stream {
    subs: Vec<Subscriber>,
    /// The last event received for this watch on the current connection.
    seen: Position,
    /// The furthest event ever received for it, on any connection.
    received: Position,
}

impl Stream {
    /// Takes the next event of this watch on the current connection: gives it to each
    /// subscriber that has not had it yet. Returns (subscribers given it, whether the watch
    /// had received it before).
    fn deliver(&mut self, event: &WatchedEvent) -> (usize, bool) {
        self.seen = if self.seen.zxid == event.zxid {
            Position {
                zxid: event.zxid,
                rank: self.seen.rank.saturating_add(1),
            }
        } else {
            Position {
                zxid: event.zxid,
                rank: 1,
            }
        };
        let seen = self.seen;
        let repeated = seen <= self.received;
        self.received = self.received.max(seen);
        let mut given = 0;
        self.subs.retain_mut(|sub| {
            if seen <= sub.delivered {
                return !sub.tx.is_closed();
            }
            sub.delivered = seen;
            let ok = sub.tx.send(event.clone()).is_ok();
            given += usize::from(ok);
            ok
        });
        (given, repeated)
    }
}

/// What [`WatchManager::dispatch`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dispatched {
    /// How many local waiters and streams received it.
    pub(crate) receivers: usize,
    /// It repeats an event already received (replayed after a reconnect): the default
    /// watcher saw it then and must not see it again.
    pub(crate) duplicate: bool,
}

/// Every watch of one session, keyed by path.
#[derive(Default)]
pub(crate) struct WatchManager {
    data: OneShots,
    exist: OneShots,
    child: OneShots,
    persistent: Streams,
    recursive: Streams,
}

impl WatchManager {
    /// Registers a one-shot watch.
    pub(crate) fn add_one_shot(&mut self, kind: OneShotKind, path: &str, tx: OneShotSender) {
        let map = match kind {
            OneShotKind::Data => &mut self.data,
            OneShotKind::Exist => &mut self.exist,
            OneShotKind::Child => &mut self.child,
        };
        map.entry(path.to_string()).or_default().push(tx);
    }

    /// Registers a persistent (or persistent-recursive) watch.
    pub(crate) fn add_stream(&mut self, mode: AddWatchMode, path: &str, tx: StreamSender) {
        let map = match mode {
            AddWatchMode::Persistent => &mut self.persistent,
            AddWatchMode::PersistentRecursive => &mut self.recursive,
        };
        map.entry(path.to_string())
            .or_default()
            .subs
            .push(Subscriber {
                tx,
                delivered: Position::default(),
            });
    }

    /// Delivers `event` to every matching registration that has not had it yet. One-shot
    /// waiters always fire (the server consumed their watch); persistent streams skip what
    /// they already received on an earlier connection.
    pub(crate) fn dispatch(&mut self, event: &WatchedEvent) -> Dispatched {
        let path = event.path.as_str();
        let mut delivered = 0;
        let mut fire = |map: &mut OneShots| {
            for tx in map.remove(path).unwrap_or_default() {
                delivered += usize::from(tx.send(Ok(event.clone())).is_ok());
            }
        };
        match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                fire(&mut self.data);
                fire(&mut self.exist);
            }
            EventType::NodeDeleted => {
                fire(&mut self.data);
                fire(&mut self.exist);
                fire(&mut self.child);
            }
            EventType::NodeChildrenChanged => fire(&mut self.child),
            EventType::DataWatchRemoved => {
                fire(&mut self.data);
                fire(&mut self.exist);
            }
            EventType::ChildWatchRemoved => fire(&mut self.child),
            EventType::PersistentWatchRemoved => {
                // Asked for (zxid 0), or the server could not replay what the watch missed
                // across a reconnect (zxid of its last applied txn): either way the
                // server-side watch is gone, and so are the streams.
                for map in [&mut self.persistent, &mut self.recursive] {
                    for sub in map.remove(path).map(|s| s.subs).unwrap_or_default() {
                        delivered += usize::from(sub.tx.send(event.clone()).is_ok());
                    }
                }
            }
        }
        if !matches!(
            event.event_type,
            EventType::NodeCreated
                | EventType::NodeDataChanged
                | EventType::NodeDeleted
                | EventType::NodeChildrenChanged
        ) {
            return Dispatched {
                receivers: delivered,
                duplicate: false,
            };
        }
        // A repeat for any matching watch is a repeat of the whole event: when that watch
        // first received it, the default watcher was given it too (or had been before).
        let mut duplicate = false;
        let mut take = |stream: Option<&mut Stream>| {
            if let Some(stream) = stream {
                let (given, repeated) = stream.deliver(event);
                delivered += given;
                duplicate |= repeated;
            }
        };
        take(self.persistent.get_mut(path));
        if event.event_type != EventType::NodeChildrenChanged {
            let mut at = path;
            loop {
                take(self.recursive.get_mut(at));
                if at == "/" || at.is_empty() {
                    break;
                }
                at = parent(at);
            }
        }
        Dispatched {
            receivers: delivered,
            duplicate,
        }
    }

    /// Ends the registrations a successful `remove_watches(path, kind)` removed on the server,
    /// delivering the matching `*WatchRemoved` event to each (as ZooKeeper does).
    pub(crate) fn remove(&mut self, path: &str, kind: WatcherKind) {
        let event = |event_type| WatchedEvent {
            event_type,
            path: path.to_string(),
            zxid: 0,
        };
        if matches!(kind, WatcherKind::Data | WatcherKind::Any) {
            self.dispatch(&event(EventType::DataWatchRemoved));
        }
        if matches!(kind, WatcherKind::Children | WatcherKind::Any) {
            self.dispatch(&event(EventType::ChildWatchRemoved));
        }
        if kind == WatcherKind::Any {
            self.dispatch(&event(EventType::PersistentWatchRemoved));
        }
    }

    /// Whether the client holds a local watch of `kind` on `path` (a live receiver).
    #[cfg(test)]
    pub(crate) fn has(&self, path: &str, kind: WatcherKind) -> bool {
        let one = |m: &OneShots| {
            m.get(path)
                .is_some_and(|v| v.iter().any(|t| !t.is_closed()))
        };
        let stream = |m: &Streams| {
            m.get(path)
                .is_some_and(|s| s.subs.iter().any(|sub| !sub.tx.is_closed()))
        };
        match kind {
            WatcherKind::Data => one(&self.data) || one(&self.exist),
            WatcherKind::Children => one(&self.child),
            WatcherKind::Any => {
                one(&self.data)
                    || one(&self.exist)
                    || one(&self.child)
                    || stream(&self.persistent)
                    || stream(&self.recursive)
            }
        }
    }

    /// The `SetWatches` request that re-registers every live watch after a reconnect, or
    /// `None` when there is nothing to re-register; called once at the start of every
    /// connection, before any frame of it is dispatched. Registrations whose receiver was
    /// dropped are forgotten here.
    ///
    /// `relative_zxid` is the highest zxid of any reply received: every event of a change up
    /// to it has arrived (the server queues a change's events before any reply that reflects
    /// it), so the server replays what persistent watches matched after it.
    pub(crate) fn set_watches(&mut self, relative_zxid: u64) -> Option<Request> {
        fn live_one(m: &mut OneShots) -> Vec<String> {
            m.retain(|_, v| {
                v.retain(|t| !t.is_closed());
                !v.is_empty()
            });
            let mut paths: Vec<String> = m.keys().cloned().collect();
            paths.sort();
            paths
        }
        fn live_stream(m: &mut Streams) -> Vec<String> {
            m.retain(|_, s| {
                s.subs.retain(|sub| !sub.tx.is_closed());
                // A new connection: its events are counted afresh.
                s.seen = Position::default();
                !s.subs.is_empty()
            });
            let mut paths: Vec<String> = m.keys().cloned().collect();
            paths.sort();
            paths
        }
        let request = Request::SetWatches {
            relative_zxid,
            data: live_one(&mut self.data),
            exist: live_one(&mut self.exist),
            child: live_one(&mut self.child),
            persistent: live_stream(&mut self.persistent),
            persistent_recursive: live_stream(&mut self.recursive),
        };
        match &request {
            Request::SetWatches {
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
                ..
            } if data.is_empty()
                && exist.is_empty()
                && child.is_empty()
                && persistent.is_empty()
                && persistent_recursive.is_empty() =>
            {
                None
            }
            _ => Some(request),
        }
    }

    /// Ends every registration: one-shot waiters receive `err`, streams end.
    pub(crate) fn fail_all(&mut self, err: &Error) {
        for map in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, txs) in map.drain() {
                for tx in txs {
                    let _ = tx.send(Err(err.clone()));
                }
            }
        }
        self.persistent.clear();
        self.recursive.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::ErrorCode;

    fn ev(t: EventType, p: &str) -> WatchedEvent {
        WatchedEvent {
            event_type: t,
            path: p.into(),
            zxid: 9,
        }
    }

    fn one(
        m: &mut WatchManager,
        k: OneShotKind,
        p: &str,
    ) -> oneshot::Receiver<Result<WatchedEvent, Error>> {
        let (tx, rx) = oneshot::channel();
        m.add_one_shot(k, p, tx);
        rx
    }

    fn stream(
        m: &mut WatchManager,
        mode: AddWatchMode,
        p: &str,
    ) -> mpsc::UnboundedReceiver<WatchedEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        m.add_stream(mode, p, tx);
        rx
    }

    #[test]
    fn data_change_fires_data_and_exist_not_child() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/a");
        let mut d2 = one(&mut m, OneShotKind::Data, "/a");
        let mut e = one(&mut m, OneShotKind::Exist, "/a");
        let mut c = one(&mut m, OneShotKind::Child, "/a");
        let mut other = one(&mut m, OneShotKind::Data, "/b");
        assert_eq!(
            m.dispatch(&ev(EventType::NodeDataChanged, "/a")).receivers,
            3
        );
        assert_eq!(
            d.try_recv().unwrap().unwrap().event_type,
            EventType::NodeDataChanged
        );
        assert!(d2.try_recv().is_ok());
        assert!(e.try_recv().is_ok());
        assert!(c.try_recv().is_err());
        assert!(other.try_recv().is_err());
        // One-shot: a second change reaches nobody.
        assert_eq!(
            m.dispatch(&ev(EventType::NodeDataChanged, "/a")).receivers,
            0
        );
    }

    #[test]
    fn delete_fires_everything_on_the_path() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/a");
        let mut c = one(&mut m, OneShotKind::Child, "/a");
        assert_eq!(m.dispatch(&ev(EventType::NodeDeleted, "/a")).receivers, 2);
        assert!(d.try_recv().is_ok());
        assert!(c.try_recv().is_ok());
    }

    #[test]
    fn children_changed_fires_child_and_persistent_not_recursive() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/a");
        let mut c = one(&mut m, OneShotKind::Child, "/a");
        let mut p = stream(&mut m, AddWatchMode::Persistent, "/a");
        let mut r = stream(&mut m, AddWatchMode::PersistentRecursive, "/a");
        assert_eq!(
            m.dispatch(&ev(EventType::NodeChildrenChanged, "/a"))
                .receivers,
            2
        );
        assert!(d.try_recv().is_err());
        assert!(c.try_recv().is_ok());
        assert!(p.try_recv().is_ok());
        assert!(r.try_recv().is_err());
    }

    #[test]
    fn recursive_matches_descendants_persistent_only_the_path() {
        let mut m = WatchManager::default();
        let mut root = stream(&mut m, AddWatchMode::PersistentRecursive, "/");
        let mut a = stream(&mut m, AddWatchMode::PersistentRecursive, "/a");
        let mut ab = stream(&mut m, AddWatchMode::Persistent, "/a/b");
        let mut ax = stream(&mut m, AddWatchMode::PersistentRecursive, "/ab");
        for _ in 0..2 {
            assert_eq!(
                m.dispatch(&ev(EventType::NodeCreated, "/a/b/c")).receivers,
                2
            );
        }
        assert_eq!(root.try_recv().unwrap().path, "/a/b/c");
        assert!(root.try_recv().is_ok());
        assert!(a.try_recv().is_ok());
        assert!(ab.try_recv().is_err());
        assert!(ax.try_recv().is_err(), "/ab is not an ancestor of /a/b/c");
        assert_eq!(
            m.dispatch(&ev(EventType::NodeDataChanged, "/a/b"))
                .receivers,
            3
        );
        assert!(ab.try_recv().is_ok());
    }

    #[test]
    fn removal_events_end_matching_registrations() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/a");
        let mut c = one(&mut m, OneShotKind::Child, "/a");
        let mut p = stream(&mut m, AddWatchMode::Persistent, "/a");
        m.remove("/a", WatcherKind::Data);
        assert_eq!(
            d.try_recv().unwrap().unwrap().event_type,
            EventType::DataWatchRemoved
        );
        assert!(c.try_recv().is_err());
        assert!(m.has("/a", WatcherKind::Children));
        assert!(!m.has("/a", WatcherKind::Data));
        m.remove("/a", WatcherKind::Any);
        assert_eq!(
            c.try_recv().unwrap().unwrap().event_type,
            EventType::ChildWatchRemoved
        );
        assert_eq!(
            p.try_recv().unwrap().event_type,
            EventType::PersistentWatchRemoved
        );
        assert!(matches!(
            p.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert!(!m.has("/a", WatcherKind::Any));
    }

    #[test]
    fn set_watches_lists_live_registrations_only() {
        let mut m = WatchManager::default();
        assert!(m.set_watches(5).is_none());
        let _d = one(&mut m, OneShotKind::Data, "/d");
        let _e = one(&mut m, OneShotKind::Exist, "/e");
        drop(one(&mut m, OneShotKind::Child, "/dropped"));
        let _r = stream(&mut m, AddWatchMode::PersistentRecursive, "/r");
        let req = m.set_watches(5).unwrap();
        assert_eq!(
            req,
            Request::SetWatches {
                relative_zxid: 5,
                data: vec!["/d".into()],
                exist: vec!["/e".into()],
                child: vec![],
                persistent: vec![],
                persistent_recursive: vec!["/r".into()],
            }
        );
    }

    #[test]
    fn fail_all_errors_one_shots_and_ends_streams() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/d");
        let mut p = stream(&mut m, AddWatchMode::Persistent, "/p");
        m.fail_all(&Error::new(ErrorCode::SessionExpired));
        assert_eq!(
            d.try_recv().unwrap().unwrap_err().code(),
            ErrorCode::SessionExpired
        );
        assert!(matches!(
            p.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    fn at(t: EventType, p: &str, zxid: u64) -> WatchedEvent {
        WatchedEvent {
            event_type: t,
            path: p.into(),
            zxid,
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<WatchedEvent>) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push((e.path, e.zxid));
        }
        out
    }

    fn owned(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(p, z)| (p.to_string(), *z)).collect()
    }

    /// The server replays from the last reply zxid; what came after that reply before the
    /// connection broke comes again and is dropped, down to the part of one txn (a multi that
    /// changed the watched subtree twice) that had arrived.
    #[test]
    fn replayed_events_already_received_are_dropped() {
        use EventType::NodeDataChanged as Changed;
        let mut m = WatchManager::default();
        let mut k = stream(&mut m, AddWatchMode::Persistent, "/k");
        let mut r = stream(&mut m, AddWatchMode::PersistentRecursive, "/r");
        assert!(m.set_watches(0).is_some());
        // Connection 1, last reply at 2: /k at 3, then the first half of the multi at 5.
        for e in [at(Changed, "/k", 3), at(Changed, "/r/a", 5)] {
            assert!(!m.dispatch(&e).duplicate);
        }
        // Connection 2 replays everything after 2, then goes on live.
        assert!(m.set_watches(2).is_some());
        let replay = [
            at(Changed, "/k", 3),
            at(Changed, "/r/a", 5),
            at(Changed, "/r/b", 5),
            at(Changed, "/k", 7),
        ];
        let duplicates: Vec<bool> = replay.iter().map(|e| m.dispatch(e).duplicate).collect();
        assert_eq!(duplicates, [true, true, false, false]);
        assert_eq!(drain(&mut k), owned(&[("/k", 3), ("/k", 7)]));
        assert_eq!(drain(&mut r), owned(&[("/r/a", 5), ("/r/b", 5)]));
        // A third connection replaying the same again changes nothing.
        assert!(m.set_watches(2).is_some());
        assert!(replay.iter().all(|e| m.dispatch(e).duplicate));
        assert!(drain(&mut k).is_empty() && drain(&mut r).is_empty());
    }

    /// The new server had not applied 8 yet at `SetWatches`: 8 arrives again, live, after a
    /// stream added on the new connection, which must get it; the old stream and the default
    /// watcher had it already.
    #[test]
    fn a_stream_added_after_a_reconnect_gets_what_older_ones_had() {
        use EventType::NodeDataChanged as Changed;
        let mut m = WatchManager::default();
        let mut old = stream(&mut m, AddWatchMode::Persistent, "/k");
        m.set_watches(0);
        assert!(!m.dispatch(&at(Changed, "/k", 8)).duplicate);
        m.set_watches(5);
        let mut new = stream(&mut m, AddWatchMode::Persistent, "/k");
        assert_eq!(
            m.dispatch(&at(Changed, "/k", 8)),
            Dispatched {
                receivers: 1,
                duplicate: true
            }
        );
        assert_eq!(
            m.dispatch(&at(Changed, "/k", 9)),
            Dispatched {
                receivers: 2,
                duplicate: false
            }
        );
        assert_eq!(drain(&mut old), owned(&[("/k", 8), ("/k", 9)]));
        assert_eq!(drain(&mut new), owned(&[("/k", 8), ("/k", 9)]));
    }

    /// One-shot watches are never deduplicated: the server fired (and forgot) them.
    #[test]
    fn a_replayed_event_still_fires_one_shot_watches() {
        let mut m = WatchManager::default();
        let _p = stream(&mut m, AddWatchMode::Persistent, "/k");
        m.set_watches(0);
        m.dispatch(&at(EventType::NodeDataChanged, "/k", 8));
        m.set_watches(5);
        let mut d = one(&mut m, OneShotKind::Data, "/k");
        let out = m.dispatch(&at(EventType::NodeDataChanged, "/k", 8));
        assert!(out.duplicate);
        assert_eq!(out.receivers, 1);
        assert_eq!(d.try_recv().unwrap().unwrap().zxid, 8);
    }

    /// The gap notice (a removal the client did not ask for, zxid not 0) ends every stream on
    /// the path, and they are not re-registered after the next reconnect.
    #[test]
    fn a_gap_notice_ends_the_streams_of_its_path() {
        let mut m = WatchManager::default();
        let mut p = stream(&mut m, AddWatchMode::Persistent, "/k");
        let mut r = stream(&mut m, AddWatchMode::PersistentRecursive, "/k");
        let mut other = stream(&mut m, AddWatchMode::Persistent, "/o");
        let gap = at(EventType::PersistentWatchRemoved, "/k", 42);
        assert_eq!(
            m.dispatch(&gap),
            Dispatched {
                receivers: 2,
                duplicate: false
            }
        );
        for rx in [&mut p, &mut r] {
            assert_eq!(rx.try_recv().unwrap(), gap);
            assert!(matches!(
                rx.try_recv(),
                Err(mpsc::error::TryRecvError::Disconnected)
            ));
        }
        assert!(other.try_recv().is_err());
        let Some(Request::SetWatches {
            persistent,
            persistent_recursive,
            ..
        }) = m.set_watches(50)
        else {
            panic!("/o is still watched");
        };
        assert_eq!(persistent, vec!["/o".to_string()]);
        assert!(persistent_recursive.is_empty());
    }
}
