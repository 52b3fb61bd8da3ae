//! RecentChanges and SetWatches' replay: a reconnecting session's persistent watches get
//! every change they missed, exactly as `trigger` would have sent it, or a removal notice
//! when the window no longer reaches back.

use coord_proto::{Acl, CreateMode, EventType, MultiOp, WatchedEvent, Zxid};
use coord_tree::{RecentChanges, ReplayGap, TxnBody, WatchKind, WatchManager};

use crate::common::*;
use EventType::*;

fn ev(event_type: EventType, path: &str, zxid: u64) -> WatchedEvent {
    WatchedEvent {
        event_type,
        path: path.into(),
        zxid,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|p| p.to_string()).collect()
}

/// A tree, its window, and the watch manager of a server that stayed up: every txn is
/// applied, recorded and triggered, as the Store does.
struct Server {
    h: Harness,
    recent: RecentChanges,
    live: WatchManager,
}

impl Server {
    fn new(capacity: usize) -> Server {
        let h = Harness::new();
        let recent = RecentChanges::new(capacity, h.tree.last_applied());
        Server {
            h,
            recent,
            live: WatchManager::new(),
        }
    }

    /// Applies a txn; returns its zxid and the live events of session `sid`.
    fn step(&mut self, body: TxnBody, sid: u64) -> (u64, Vec<WatchedEvent>) {
        let zxid = self.h.next;
        let out = self.h.run(body);
        self.recent.record(Zxid(zxid), &out.changes);
        let events = self
            .live
            .trigger(Zxid(zxid), &out.changes)
            .into_iter()
            .filter(|(s, _)| *s == sid)
            .map(|(_, e)| e)
            .collect();
        (zxid, events)
    }

    fn set_watches(
        &self,
        w: &mut WatchManager,
        rel: u64,
        one_shot: [&[&str]; 3],
        persistent: &[&str],
        recursive: &[&str],
    ) -> Vec<WatchedEvent> {
        let events = w.set_watches(
            9,
            Zxid(rel),
            &self.h.tree,
            &self.recent,
            &s(one_shot[0]),
            &s(one_shot[1]),
            &s(one_shot[2]),
            &s(persistent),
            &s(recursive),
        );
        w.check_invariants();
        events
    }
}

fn mset(path: &str) -> MultiOp {
    MultiOp::SetData {
        path: path.into(),
        data: b"m".to_vec(),
        version: -1,
    }
}

fn mcreate(path: &str) -> MultiOp {
    MultiOp::Create {
        path: path.into(),
        data: vec![],
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
    }
}

#[test]
fn window_keeps_whole_txns_and_moves_its_floor() {
    let mut r = RecentChanges::new(3, Zxid(10));
    assert_eq!((r.floor(), r.last(), r.len()), (Zxid(10), Zxid(10), 0));
    r.record(Zxid(11), &[ch(NodeDataChanged, "/a")]);
    r.record(Zxid(12), &[]);
    r.record(
        Zxid(13),
        &[ch(NodeCreated, "/b"), ch(NodeChildrenChanged, "/")],
    );
    assert_eq!((r.floor(), r.last(), r.len()), (Zxid(10), Zxid(13), 3));
    // One more change: the oldest txn (11) goes.
    r.record(Zxid(14), &[ch(NodeDataChanged, "/a")]);
    assert_eq!((r.floor(), r.len()), (Zxid(11), 3));
    // A txn of two more: 13 goes whole, not half of it.
    r.record(
        Zxid(15),
        &[ch(NodeDataChanged, "/a"), ch(NodeDataChanged, "/b")],
    );
    assert_eq!((r.floor(), r.len()), (Zxid(13), 3));
    let all = |r: &RecentChanges, after| r.replay(Zxid(after), &s(&["/a", "/b"]), &[]);
    assert_eq!(all(&r, 12), Err(ReplayGap { floor: Zxid(13) }));
    assert_eq!(
        all(&r, 13),
        Ok(vec![
            ev(NodeDataChanged, "/a", 14),
            ev(NodeDataChanged, "/a", 15),
            ev(NodeDataChanged, "/b", 15)
        ])
    );
    assert_eq!(all(&r, 15), Ok(vec![]));
    assert_eq!(all(&r, 99), Ok(vec![]), "after the last txn: nothing");
    // No watches, nothing missed, whatever the zxid.
    assert_eq!(r.replay(Zxid(0), &[], &[]), Ok(vec![]));
    // A txn bigger than the whole window leaves nothing a replay could vouch for.
    let big: Vec<_> = (0..4).map(|_| ch(NodeDataChanged, "/a")).collect();
    r.record(Zxid(16), &big);
    assert_eq!((r.floor(), r.len(), r.last()), (Zxid(16), 0, Zxid(16)));
    assert_eq!(all(&r, 16), Ok(vec![]));
    let mut none = RecentChanges::new(0, Zxid(0));
    none.record(Zxid(1), &[ch(NodeCreated, "/a")]);
    assert_eq!(none.floor(), Zxid(1));
    assert!(none.is_empty());
}

#[test]
fn set_watches_replays_missed_persistent_events_in_zxid_order() {
    let mut srv = Server::new(100);
    srv.h.mk("/k"); // 2
    srv.h.mk("/r"); // 3
    srv.h.mk("/r/a"); // 4
    let rel = srv.h.next - 1;
    let z1 = srv.step(set_data("/k", b"1", -1), 9).0;
    let z2 = srv.step(create("/r/a/b", b""), 9).0;
    let z3 = srv.step(create("/k/c", b""), 9).0;
    let z4 = srv.step(set_data("/other", b"", -1), 9).0; // fails: no change
    let z5 = srv.step(
        TxnBody::Multi {
            ops: vec![mset("/k"), mset("/r/a"), mcreate("/rr"), mset("/k")],
        },
        9,
    );
    let z5 = z5.0;
    let z6 = srv.step(delete("/r/a/b", -1), 9).0;
    let mut w = WatchManager::new();
    let events = srv.set_watches(&mut w, rel, [&[], &[], &[]], &["/k"], &["/r"]);
    assert_eq!(
        events,
        vec![
            ev(NodeDataChanged, "/k", z1),
            ev(NodeCreated, "/r/a/b", z2),
            ev(NodeChildrenChanged, "/k", z3),
            ev(NodeDataChanged, "/k", z5),
            ev(NodeDataChanged, "/r/a", z5),
            ev(NodeDataChanged, "/k", z5),
            ev(NodeDeleted, "/r/a/b", z6),
        ],
        "z4 changed nothing; /rr is no descendant of /r; children changes of /r/a are not recursive events"
    );
    assert!(w.has_watch(9, "/k", WatchKind::Persistent));
    assert!(w.has_watch(9, "/r", WatchKind::PersistentRecursive));
    // From a later zxid, only what came after it.
    let mut w = WatchManager::new();
    assert_eq!(
        srv.set_watches(&mut w, z5, [&[], &[], &[]], &["/k"], &["/r"]),
        vec![ev(NodeDeleted, "/r/a/b", z6)]
    );
    let _ = z4;
}

/// The replay is what `trigger` sent a session that never disconnected, event for event —
/// one event per change per session, however many of its watches match.
#[test]
fn replay_equals_what_a_connected_session_received() {
    let mut srv = Server::new(1000);
    srv.h.mk("/a");
    let persistent = ["/a", "/a/b", "/", "/x"];
    let recursive = ["/a", "/a/b/c", "/y"];
    for p in persistent {
        srv.live.add(9, p, WatchKind::Persistent);
    }
    for p in recursive {
        srv.live.add(9, p, WatchKind::PersistentRecursive);
    }
    let rel = srv.h.next - 1;
    let mut sent = Vec::new();
    let bodies = vec![
        create("/a/b", b""),
        create("/a/b/c", b"1"),
        set_data("/a/b/c", b"2", -1),
        TxnBody::Multi {
            ops: vec![
                mcreate("/a/b/c/d"),
                mcreate("/x"),
                mset("/a"),
                mcreate("/y"),
                mcreate("/y/z"),
            ],
        },
        delete("/a/b/c/d", -1),
        set_data("/", b"root", -1),
        create("/zz", b""),
        delete("/y/z", -1),
        delete("/x", -1),
    ];
    for body in bodies {
        sent.extend(srv.step(body, 9).1);
    }
    assert!(
        sent.len() > 12,
        "the scenario exercises the rules: {sent:?}"
    );
    let mut w = WatchManager::new();
    let replayed = srv.set_watches(&mut w, rel, [&[], &[], &[]], &persistent, &recursive);
    assert_eq!(replayed, sent);
}

#[test]
fn a_window_that_no_longer_reaches_back_removes_persistent_watches() {
    let mut srv = Server::new(2);
    srv.h.mk("/k"); // 2
    srv.h.mk("/d"); // 3
    let rel = srv.h.next - 1;
    srv.step(set_data("/k", b"1", -1), 9); // 4, evicted below
    srv.step(set_data("/k", b"2", -1), 9); // 5
    srv.step(set_data("/d", b"3", -1), 9); // 6
    assert_eq!(srv.recent.floor(), Zxid(4));
    let last = srv.h.next - 1;
    let mut w = WatchManager::new();
    let events = srv.set_watches(
        &mut w,
        rel,
        [&["/d"], &["/unborn"], &[]],
        &["/k", "/r"],
        &["/r"],
    );
    assert_eq!(
        events,
        vec![
            // One notice per path (/r has both kinds), the tree's last zxid, never 0.
            ev(PersistentWatchRemoved, "/k", last),
            ev(PersistentWatchRemoved, "/r", last),
            // One-shot watches as ever.
            ev(NodeDataChanged, "/d", 6),
        ]
    );
    assert!(!w.has_watch(9, "/k", WatchKind::Persistent));
    assert!(!w.has_watch(9, "/r", WatchKind::Persistent));
    assert!(!w.has_watch(9, "/r", WatchKind::PersistentRecursive));
    assert!(w.has_watch(9, "/unborn", WatchKind::Exist));
    assert_eq!(w.watch_count(), 1);
    // From the floor on, the window replays again.
    let mut w = WatchManager::new();
    assert_eq!(
        srv.set_watches(&mut w, 4, [&[], &[], &[]], &["/k"], &[]),
        vec![ev(NodeDataChanged, "/k", 5)]
    );
}

/// A one-shot watch that a replayed event fires on the client is consumed by that event:
/// its own notice would reach the client's persistent stream on the same path as a second
/// copy of the change.
#[test]
fn one_shot_watches_covered_by_the_replay_are_consumed_by_it() {
    let mut srv = Server::new(100);
    srv.h.mk("/k"); // 2
    srv.h.mk("/q"); // 3
    let rel = srv.h.next - 1;
    let z = srv.step(set_data("/k", b"1", -1), 9).0;
    let zq = srv.step(set_data("/q", b"1", -1), 9).0;
    let mut w = WatchManager::new();
    let events = srv.set_watches(
        &mut w,
        rel,
        // Data on /k and /q, exist on /born-later, child on /k.
        [&["/k", "/q"], &["/born"], &["/k"]],
        &["/k", "/born"],
        &[],
    );
    assert_eq!(
        events,
        vec![
            // The replay fires the data watch on /k on the client.
            ev(NodeDataChanged, "/k", z),
            // /q has no persistent watch: its one-shot fires as before.
            ev(NodeDataChanged, "/q", zq),
        ]
    );
    // The child watch on /k is not fired by a data change: registered as before.
    assert!(w.has_watch(9, "/k", WatchKind::Child));
    assert!(!w.has_watch(9, "/k", WatchKind::Data));
    assert!(w.has_watch(9, "/born", WatchKind::Exist));
    // Born and gone again within the window: the replayed create fires the exist watch.
    let mut srv = Server::new(100);
    let rel = srv.h.next - 1;
    let c = srv.step(create("/born", b""), 9).0;
    let d = srv.step(delete("/born", -1), 9).0;
    let mut w = WatchManager::new();
    let events = srv.set_watches(&mut w, rel, [&[], &["/born"], &[]], &["/born"], &[]);
    assert_eq!(
        events,
        vec![ev(NodeCreated, "/born", c), ev(NodeDeleted, "/born", d)]
    );
    assert!(!w.has_watch(9, "/born", WatchKind::Exist));
    assert!(w.has_watch(9, "/born", WatchKind::Persistent));
}

/// A window saved beside a snapshot and loaded by a restarted server replays exactly what
/// the original would; a smaller capacity keeps the newest whole txns; any damage is
/// refused, never half-read.
#[test]
fn a_saved_window_replays_what_the_original_did_and_damage_is_refused() {
    let mut r = RecentChanges::new(100, Zxid(10));
    r.record(Zxid(11), &[ch(NodeDataChanged, "/a")]);
    r.record(Zxid(12), &[]);
    r.record(
        Zxid(13),
        &[ch(NodeCreated, "/b/ü"), ch(NodeChildrenChanged, "/b")],
    );
    r.record(Zxid(14), &[ch(NodeDeleted, "/a")]);
    let bytes = r.encode();
    let back = RecentChanges::decode(&bytes, 100).expect("decodes");
    assert_eq!(
        (back.floor(), back.last(), back.len()),
        (r.floor(), r.last(), r.len())
    );
    for after in [10, 11, 12, 13, 14] {
        for (p, deep) in [
            (&["/a"][..], &[][..]),
            (&["/b"][..], &["/b"][..]),
            (&[][..], &["/"][..]),
        ] {
            assert_eq!(
                back.replay(Zxid(after), &s(p), &s(deep)),
                r.replay(Zxid(after), &s(p), &s(deep)),
                "after {after}, {p:?} {deep:?}"
            );
        }
    }
    // Loaded into a smaller window: whole txns from the front go.
    let small = RecentChanges::decode(&bytes, 2).unwrap();
    assert_eq!(
        (small.floor(), small.len(), small.last()),
        (Zxid(13), 1, Zxid(14))
    );
    let empty = RecentChanges::new(5, Zxid(7)).encode();
    let e = RecentChanges::decode(&empty, 5).unwrap();
    assert_eq!((e.floor(), e.last(), e.len()), (Zxid(7), Zxid(7), 0));
    // Every single flipped bit, every truncation, and trailing bytes are refused.
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(
                RecentChanges::decode(&b, 100).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
    for n in 0..bytes.len() {
        assert!(
            RecentChanges::decode(&bytes[..n], 100).is_err(),
            "cut at {n}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(RecentChanges::decode(&long, 100).is_err());
}
