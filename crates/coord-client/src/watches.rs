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
//! Invariant: a one-shot sender is in at most one map and leaves it when it fires; a stream
//! sender stays until its watch is removed, the session ends, or its receiver is dropped.

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
type Streams = HashMap<String, Vec<StreamSender>>;

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
        map.entry(path.to_string()).or_default().push(tx);
    }

    /// Delivers `event` to every matching registration; returns how many received it.
    pub(crate) fn dispatch(&mut self, event: &WatchedEvent) -> usize {
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
                for map in [&mut self.persistent, &mut self.recursive] {
                    for tx in map.remove(path).unwrap_or_default() {
                        delivered += usize::from(tx.send(event.clone()).is_ok());
                    }
                }
                return delivered;
            }
        }
        if matches!(
            event.event_type,
            EventType::DataWatchRemoved | EventType::ChildWatchRemoved
        ) {
            return delivered;
        }
        delivered += send_stream(&mut self.persistent, path, event);
        if event.event_type != EventType::NodeChildrenChanged {
            let mut at = path;
            loop {
                delivered += send_stream(&mut self.recursive, at, event);
                if at == "/" {
                    break;
                }
                at = parent(at);
            }
        }
        delivered
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
                .is_some_and(|v| v.iter().any(|t| !t.is_closed()))
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
    /// `None` when there is nothing to re-register. Registrations whose receiver was dropped
    /// are forgotten here.
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
            m.retain(|_, v| {
                v.retain(|t| !t.is_closed());
                !v.is_empty()
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

fn send_stream(map: &mut Streams, path: &str, event: &WatchedEvent) -> usize {
    let Some(txs) = map.get_mut(path) else {
        return 0;
    };
    txs.retain(|tx| tx.send(event.clone()).is_ok());
    let n = txs.len();
    if txs.is_empty() {
        map.remove(path);
    }
    n
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
        assert_eq!(m.dispatch(&ev(EventType::NodeDataChanged, "/a")), 3);
        assert_eq!(
            d.try_recv().unwrap().unwrap().event_type,
            EventType::NodeDataChanged
        );
        assert!(d2.try_recv().is_ok());
        assert!(e.try_recv().is_ok());
        assert!(c.try_recv().is_err());
        assert!(other.try_recv().is_err());
        // One-shot: a second change reaches nobody.
        assert_eq!(m.dispatch(&ev(EventType::NodeDataChanged, "/a")), 0);
    }

    #[test]
    fn delete_fires_everything_on_the_path() {
        let mut m = WatchManager::default();
        let mut d = one(&mut m, OneShotKind::Data, "/a");
        let mut c = one(&mut m, OneShotKind::Child, "/a");
        assert_eq!(m.dispatch(&ev(EventType::NodeDeleted, "/a")), 2);
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
        assert_eq!(m.dispatch(&ev(EventType::NodeChildrenChanged, "/a")), 2);
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
            assert_eq!(m.dispatch(&ev(EventType::NodeCreated, "/a/b/c")), 2);
        }
        assert_eq!(root.try_recv().unwrap().path, "/a/b/c");
        assert!(root.try_recv().is_ok());
        assert!(a.try_recv().is_ok());
        assert!(ab.try_recv().is_err());
        assert!(ax.try_recv().is_err(), "/ab is not an ancestor of /a/b/c");
        assert_eq!(m.dispatch(&ev(EventType::NodeDataChanged, "/a/b")), 3);
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
}
