//! WatchManager firing rules, removal and SetWatches.

use coord_proto::{ErrorCode, EventType, WatchedEvent, WatcherKind, Zxid};
use coord_tree::{Change, RecentChanges, WatchKind, WatchManager};

use crate::common::*;
use EventType::*;

fn ev(event_type: EventType, path: &str, zxid: u64) -> WatchedEvent {
    WatchedEvent {
        event_type,
        path: path.into(),
        zxid,
    }
}

fn fire(w: &mut WatchManager, zxid: u64, changes: &[Change]) -> Vec<(u64, WatchedEvent)> {
    let out = w.trigger(Zxid(zxid), changes);
    w.check_invariants();
    out
}

#[test]
fn one_shot_watches_fire_per_table_and_are_removed() {
    let mut w = WatchManager::new();
    w.add(1, "/a", WatchKind::Data);
    w.add(2, "/a", WatchKind::Exist);
    w.add(3, "/a", WatchKind::Child);
    assert_eq!(w.watch_count(), 3);
    // Children changes fire child watches only.
    assert_eq!(
        fire(&mut w, 5, &[ch(NodeChildrenChanged, "/a")]),
        vec![(3, ev(NodeChildrenChanged, "/a", 5))]
    );
    assert_eq!(w.watch_count(), 2);
    // Data changes fire data and exist watches.
    assert_eq!(
        fire(&mut w, 6, &[ch(NodeDataChanged, "/a")]),
        vec![
            (1, ev(NodeDataChanged, "/a", 6)),
            (2, ev(NodeDataChanged, "/a", 6))
        ]
    );
    assert_eq!(w.watch_count(), 0);
    assert!(
        fire(&mut w, 7, &[ch(NodeDataChanged, "/a")]).is_empty(),
        "one-shot"
    );

    w.add(1, "/b", WatchKind::Exist);
    w.add(2, "/b", WatchKind::Data);
    w.add(3, "/b", WatchKind::Child);
    assert_eq!(
        fire(&mut w, 8, &[ch(NodeCreated, "/b")]),
        vec![(1, ev(NodeCreated, "/b", 8)), (2, ev(NodeCreated, "/b", 8))]
    );
    w.add(1, "/b", WatchKind::Data);
    w.add(2, "/b", WatchKind::Exist);
    assert_eq!(
        fire(&mut w, 9, &[ch(NodeDeleted, "/b")]),
        vec![
            (1, ev(NodeDeleted, "/b", 9)),
            (2, ev(NodeDeleted, "/b", 9)),
            (3, ev(NodeDeleted, "/b", 9))
        ]
    );
    assert_eq!(w.watch_count(), 0);
}

#[test]
fn persistent_watch_sees_every_change_of_its_path_only() {
    let mut w = WatchManager::new();
    w.add(4, "/p", WatchKind::Persistent);
    for (i, t) in [
        NodeCreated,
        NodeDataChanged,
        NodeChildrenChanged,
        NodeDeleted,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            fire(&mut w, i as u64, &[ch(t, "/p")]),
            vec![(4, ev(t, "/p", i as u64))]
        );
    }
    assert!(
        fire(
            &mut w,
            9,
            &[ch(NodeCreated, "/p/c"), ch(NodeDataChanged, "/q")]
        )
        .is_empty()
    );
    assert_eq!(w.watch_count(), 1, "never removed by firing");
}

#[test]
fn recursive_watch_sees_subtree_but_not_children_changed() {
    let mut w = WatchManager::new();
    w.add(4, "/r", WatchKind::PersistentRecursive);
    let changes = [
        ch(NodeCreated, "/r/a/b"),
        ch(NodeChildrenChanged, "/r/a"),
        ch(NodeDataChanged, "/r"),
        ch(NodeChildrenChanged, "/r"),
        ch(NodeDeleted, "/r/a/b"),
        ch(NodeCreated, "/rr"),
        ch(NodeCreated, "/x/r"),
    ];
    assert_eq!(
        fire(&mut w, 3, &changes),
        vec![
            (4, ev(NodeCreated, "/r/a/b", 3)),
            (4, ev(NodeDataChanged, "/r", 3)),
            (4, ev(NodeDeleted, "/r/a/b", 3))
        ]
    );
    // A recursive watch on the root sees everything but children changes.
    w.add(5, "/", WatchKind::PersistentRecursive);
    assert_eq!(
        fire(&mut w, 4, &[ch(NodeCreated, "/x/y")]),
        vec![(5, ev(NodeCreated, "/x/y", 4))]
    );
    assert_eq!(
        fire(&mut w, 5, &[ch(NodeDataChanged, "/")]),
        vec![(5, ev(NodeDataChanged, "/", 5))]
    );
    assert_eq!(w.watch_count(), 2);
}

#[test]
fn one_event_per_session_per_change_sorted_by_session() {
    let mut w = WatchManager::new();
    for s in [9, 3] {
        w.add(s, "/a/b", WatchKind::Data);
        w.add(s, "/a/b", WatchKind::Exist);
        w.add(s, "/a/b", WatchKind::Persistent);
        w.add(s, "/a/b", WatchKind::PersistentRecursive);
        w.add(s, "/a", WatchKind::PersistentRecursive);
        w.add(s, "/", WatchKind::PersistentRecursive);
    }
    w.add(3, "/a/b", WatchKind::Data); // idempotent
    assert_eq!(w.watch_count(), 12);
    assert_eq!(
        fire(
            &mut w,
            7,
            &[ch(NodeDataChanged, "/a/b"), ch(NodeDataChanged, "/a/b")]
        ),
        vec![
            (3, ev(NodeDataChanged, "/a/b", 7)),
            (9, ev(NodeDataChanged, "/a/b", 7)),
            (3, ev(NodeDataChanged, "/a/b", 7)),
            (9, ev(NodeDataChanged, "/a/b", 7)),
        ]
    );
    assert_eq!(
        w.watch_count(),
        8,
        "data and exist watches consumed, persistent kept"
    );
}

#[test]
fn remove_watches() {
    let mut w = WatchManager::new();
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Any),
        Err(ErrorCode::NoWatcher)
    );
    w.add(1, "/a", WatchKind::Data);
    w.add(1, "/a", WatchKind::Exist);
    w.add(1, "/a", WatchKind::Child);
    w.add(2, "/a", WatchKind::Child);
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Data),
        Ok(vec![ev(DataWatchRemoved, "/a", 0)])
    );
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Data),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.remove(1, "/b", WatcherKind::Children),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Children),
        Ok(vec![ev(ChildWatchRemoved, "/a", 0)])
    );
    assert_eq!(w.watch_count(), 1);
    w.check_invariants();
    // Persistent watches go only with Any.
    w.add(1, "/a", WatchKind::Persistent);
    w.add(1, "/a", WatchKind::PersistentRecursive);
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Data),
        Err(ErrorCode::NoWatcher)
    );
    w.add(1, "/a", WatchKind::Exist);
    w.add(1, "/a", WatchKind::Child);
    assert_eq!(
        w.remove(1, "/a", WatcherKind::Any),
        Ok(vec![
            ev(DataWatchRemoved, "/a", 0),
            ev(ChildWatchRemoved, "/a", 0),
            ev(PersistentWatchRemoved, "/a", 0)
        ])
    );
    assert_eq!(w.watch_count(), 1, "session 2's watch stays");
    assert!(w.has_watch(2, "/a", WatchKind::Child));
    // Removed recursive watches stop firing.
    assert!(fire(&mut w, 1, &[ch(NodeCreated, "/a/x")]).is_empty());
}

#[test]
fn remove_session_forgets_everything() {
    let mut w = WatchManager::new();
    w.add(1, "/a", WatchKind::Data);
    w.add(1, "/", WatchKind::PersistentRecursive);
    w.add(2, "/a", WatchKind::Data);
    w.remove_session(1);
    w.remove_session(42);
    assert_eq!(w.watch_count(), 1);
    w.check_invariants();
    assert_eq!(
        fire(&mut w, 3, &[ch(NodeDataChanged, "/a")]),
        vec![(2, ev(NodeDataChanged, "/a", 3))]
    );
}

#[test]
fn set_watches_fires_missed_changes_and_reregisters_the_rest() {
    let mut h = Harness::new();
    h.mk("/same"); // zxid 2
    h.mk("/changed"); // 3
    h.mk("/kids"); // 4
    h.mk("/quiet"); // 5
    let rel = Zxid(h.next - 1);
    // What the server's window holds of the changes since.
    let mut recent = RecentChanges::new(100, rel);
    for body in [
        set_data("/changed", b"x", -1), // 6
        create("/kids/k", b""),         // 7
        create("/born", b""),           // 8
    ] {
        let zxid = Zxid(h.next);
        let out = h.run(body);
        recent.record(zxid, &out.changes);
    }
    let s = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let mut w = WatchManager::new();
    let events = w.set_watches(
        9,
        rel,
        &h.tree,
        &recent,
        &s(&["/same", "/changed", "/gone"]),
        &s(&["/born", "/unborn"]),
        &s(&["/kids", "/quiet", "/gone2"]),
        &s(&["/p"]),
        &s(&["/r"]),
    );
    assert_eq!(
        events,
        vec![
            ev(NodeDataChanged, "/changed", 6),
            ev(NodeDeleted, "/gone", 8),
            ev(NodeCreated, "/born", 8),
            ev(NodeChildrenChanged, "/kids", 7),
            ev(NodeDeleted, "/gone2", 8),
        ]
    );
    assert_eq!(w.watch_count(), 5);
    for (path, kind) in [
        ("/same", WatchKind::Data),
        ("/unborn", WatchKind::Exist),
        ("/quiet", WatchKind::Child),
        ("/p", WatchKind::Persistent),
        ("/r", WatchKind::PersistentRecursive),
    ] {
        assert!(w.has_watch(9, path, kind), "{path} {kind:?}");
    }
    w.check_invariants();
}

#[test]
fn applied_changes_drive_triggers() {
    let mut h = Harness::new();
    let mut w = WatchManager::new();
    w.add(7, "/a", WatchKind::Exist);
    w.add(8, "/", WatchKind::Child);
    let zxid = h.next;
    let out = h.run(create("/a", b""));
    assert_eq!(
        w.trigger(Zxid(zxid), &out.changes),
        vec![
            (7, ev(NodeCreated, "/a", zxid)),
            (8, ev(NodeChildrenChanged, "/", zxid))
        ]
    );
}
