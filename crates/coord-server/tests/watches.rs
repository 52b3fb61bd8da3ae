//! Every watch kind through a real server: one-shot data/exists/child, persistent,
//! persistent-recursive, removal, and re-registration across a reconnect — with the changes
//! a persistent watch missed while disconnected replayed exactly once, or its removal
//! notified when the server can no longer replay them.

mod common;
use common::*;
use coord_client::{Client, ClientConfig, CreateOptions, SessionState};
use coord_proto::*;
use coord_server::store::REPLAY_WINDOW_CHANGES;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("watch event did not arrive")
}

#[test]
fn one_shot_watches_fire_once() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let watcher = server.client().await;
        let writer = server.client().await;

        let (stat, created) = watcher.exists_w("/w").await.unwrap();
        assert!(stat.is_none());
        writer
            .create("/w", b"1", CreateOptions::persistent())
            .await
            .unwrap();
        let e = within(created).await.unwrap();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, "/w")
        );

        let (_, _, changed) = watcher.get_data_w("/w").await.unwrap();
        let (_, _, children) = watcher.get_children_w("/w").await.unwrap();
        writer.set_data("/w", b"2", None).await.unwrap();
        let e = within(changed).await.unwrap();
        assert_eq!(e.event_type, EventType::NodeDataChanged);
        writer
            .create("/w/c", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let e = within(children).await.unwrap();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, "/w")
        );

        // Fired watches are gone: a second change produces nothing for them, and a fresh
        // watch sees the delete.
        writer.set_data("/w", b"3", None).await.unwrap();
        let (_, _, deleted) = watcher.get_data_w("/w/c").await.unwrap();
        writer.delete("/w/c", None).await.unwrap();
        let e = within(deleted).await.unwrap();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/w/c")
        );
    });
}

#[test]
fn event_arrives_before_the_reply_that_reflects_it() {
    let server = Coordd::start("");
    runtime().block_on(async {
        // Raw frames, so the order on the wire is what is checked.
        let mut raw = RawSession::open(&server).await;
        raw.connect(2000).await;
        let create = Request::Create {
            path: "/order".into(),
            data: b"0".to_vec(),
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        };
        assert!(matches!(raw.request(1, create).await, ReplyBody::Ok(_)));
        assert!(matches!(
            raw.request(
                2,
                Request::GetData {
                    path: "/order".into(),
                    watch: true
                }
            )
            .await,
            ReplyBody::Ok(_)
        ));
        raw.send(&ClientFrame::Request {
            xid: 3,
            request: Request::SetData {
                path: "/order".into(),
                data: b"1".to_vec(),
                version: -1,
            },
        })
        .await;
        match raw.next().await {
            Some(ServerFrame::Event(e)) => assert_eq!(
                (e.event_type, e.path.as_str()),
                (EventType::NodeDataChanged, "/order")
            ),
            other => panic!("expected the event first, got {other:?}"),
        }
        assert!(matches!(
            raw.next().await,
            Some(ServerFrame::Reply {
                xid: 3,
                body: ReplyBody::Ok(_),
                ..
            })
        ));
    });
}

#[test]
fn persistent_and_recursive_watches() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let watcher = server.client().await;
        let writer = server.client().await;
        writer
            .create("/r", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let mut exact = watcher
            .add_watch("/r", AddWatchMode::Persistent)
            .await
            .unwrap();
        let mut deep = watcher
            .add_watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();

        writer
            .create("/r/a", b"", CreateOptions::persistent())
            .await
            .unwrap();
        writer
            .create("/r/a/b", b"", CreateOptions::persistent())
            .await
            .unwrap();
        writer.set_data("/r/a/b", b"x", None).await.unwrap();
        writer.set_data("/r", b"y", None).await.unwrap();
        writer.delete("/r/a/b", None).await.unwrap();

        let mut got = Vec::new();
        for _ in 0..5 {
            let e = within(deep.next()).await.unwrap();
            got.push((e.event_type, e.path));
        }
        assert_eq!(
            got,
            vec![
                (EventType::NodeCreated, "/r/a".to_string()),
                (EventType::NodeCreated, "/r/a/b".to_string()),
                (EventType::NodeDataChanged, "/r/a/b".to_string()),
                (EventType::NodeDataChanged, "/r".to_string()),
                (EventType::NodeDeleted, "/r/a/b".to_string()),
            ]
        );
        let mut got = Vec::new();
        for _ in 0..2 {
            let e = within(exact.next()).await.unwrap();
            got.push((e.event_type, e.path));
        }
        assert_eq!(
            got,
            vec![
                (EventType::NodeChildrenChanged, "/r".to_string()),
                (EventType::NodeDataChanged, "/r".to_string())
            ]
        );

        watcher
            .remove_watches("/r", WatcherKind::Any)
            .await
            .unwrap();
        assert_eq!(
            watcher
                .remove_watches("/r", WatcherKind::Any)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::NoWatcher
        );
        // Both streams end after their removal event.
        let mut ends = 0;
        for s in [&mut exact, &mut deep] {
            while let Some(e) = within(s.next()).await {
                assert_eq!(e.event_type, EventType::PersistentWatchRemoved);
            }
            ends += 1;
        }
        assert_eq!(ends, 2);
    });
}

#[test]
fn remove_one_shot_watch_resolves_it() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/rm", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let (_, _, w) = c.get_data_w("/rm").await.unwrap();
        c.remove_watches("/rm", WatcherKind::Data).await.unwrap();
        let e = within(w).await.unwrap();
        assert_eq!(e.event_type, EventType::DataWatchRemoved);
        assert_eq!(
            c.remove_watches("/rm", WatcherKind::Children)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::NoWatcher
        );
    });
}

#[test]
fn watches_survive_a_server_restart_and_fire_for_missed_changes() {
    let mut server = Coordd::start("");
    let rt = runtime();
    let (watcher, w) = rt.block_on(async {
        let watcher = coord_client::Client::connect(
            server
                .client_config()
                .session_timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        watcher
            .create("/sw", b"0", CreateOptions::persistent())
            .await
            .unwrap();
        let (_, _, w) = watcher.get_data_w("/sw").await.unwrap();
        (watcher, w)
    });
    server.restart();
    rt.block_on(async {
        // Another client changes the node; the watcher reconnects with SetWatches.
        let writer = server.client().await;
        writer.set_data("/sw", b"1", None).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(15), w)
            .await
            .expect("watch after restart")
            .unwrap();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, "/sw")
        );
        assert_eq!(watcher.get_data("/sw").await.unwrap().0, b"1");
    });
}

/// A UDP relay between clients and one server whose client-to-server direction can be cut:
/// while cut, the clients' packets are dropped and the server's still reach them.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let main = tokio::spawn({
            let (cut, tasks) = (cut.clone(), tasks.clone());
            async move {
                // One upstream socket per client address, each relaying the server's answers.
                let mut ups: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    if cut.load(Ordering::Relaxed) {
                        continue;
                    }
                    let up = match ups.entry(from) {
                        Entry::Occupied(e) => e.get().clone(),
                        Entry::Vacant(e) => {
                            let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                            up.connect(server).await.unwrap();
                            let (up2, front) = (up.clone(), front.clone());
                            tasks.lock().unwrap().push(tokio::spawn(async move {
                                let mut buf = vec![0u8; 65_536];
                                while let Ok(n) = up2.recv(&mut buf).await {
                                    let _ = front.send_to(&buf[..n], from).await;
                                }
                            }));
                            e.insert(up).clone()
                        }
                    };
                    let _ = up.send(&buf[..n]).await;
                }
            }
        });
        tasks.lock().unwrap().push(main);
        Relay { addr, cut, tasks }
    }

    fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

type Seen = (EventType, String, u64);

fn seen(e: WatchedEvent) -> Seen {
    (e.event_type, e.path, e.zxid)
}

/// A watcher session reaching the server through `relay`, recording every event its default
/// watcher gets.
async fn watcher_via(relay: &Relay, server: &Coordd) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let cfg = ClientConfig::new(&relay.addr.to_string(), server.ca_path())
        .unwrap()
        .session_timeout(Duration::from_secs(10));
    let c = Client::connect(cfg).await.unwrap();
    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
    c.set_default_watcher({
        let log = log.clone();
        move |e| log.lock().unwrap().push(seen(e))
    });
    (c, log)
}

/// Takes `watcher` off the server without ending its session: its packets stop reaching the
/// server, and a raw connection resumes the session, so the server drops the watcher's stream
/// (and with it the session's watches) and tells it so (`SessionMoved`). The watcher keeps
/// trying to reconnect until the relay is restored. Returns the raw connection, which holds
/// the session meanwhile.
async fn take_away(relay: &Relay, server: &Coordd, watcher: &Client) -> RawSession {
    let mut states = watcher.state_events();
    relay.cut(true);
    let mut thief = RawSession::open(server).await;
    thief
        .send(&connect_frame(
            watcher.session_id(),
            watcher.session_password(),
            10_000,
        ))
        .await;
    assert!(matches!(
        thief.next().await,
        Some(ServerFrame::Connected(_))
    ));
    within(states.wait_for(|s| *s == SessionState::Disconnected))
        .await
        .unwrap();
    thief
}

/// Restores the relay and waits until the watcher has resumed its session.
async fn bring_back(relay: &Relay, watcher: &Client) {
    let mut states = watcher.state_events();
    relay.cut(false);
    tokio::time::timeout(
        Duration::from_secs(8),
        states.wait_for(|s| *s == SessionState::Connected),
    )
    .await
    .expect("the watcher reconnects")
    .unwrap();
}

async fn take(w: &mut coord_client::PersistentWatch, n: usize) -> Vec<Seen> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(seen(within(w.next()).await.expect("stream ended early")));
    }
    out
}

#[test]
fn persistent_watches_get_every_change_missed_while_disconnected_once_and_in_order() {
    use EventType::*;
    let server = Coordd::start("tick_ms = 500");
    runtime().block_on(async {
        let relay = Relay::start(server.addr).await;
        let (watcher, log) = watcher_via(&relay, &server).await;
        let writer = server.client().await;
        for p in ["/k", "/r", "/r/a"] {
            writer
                .create(p, b"", CreateOptions::persistent())
                .await
                .unwrap();
        }
        let mut exact = watcher
            .add_watch("/k", AddWatchMode::Persistent)
            .await
            .unwrap();
        let mut deep = watcher
            .add_watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let (mut want_k, mut want_r, mut want_all) = (Vec::new(), Vec::new(), Vec::new());
        let mut expect = |e: Seen| {
            if e.1.starts_with("/k") {
                want_k.push(e.clone());
            } else {
                want_r.push(e.clone());
            }
            want_all.push(e);
        };

        // Delivered live before the disconnect, after the watcher's last reply: the replay
        // sends it again, and the client must not deliver it twice.
        let z = writer.set_data("/k", b"0", None).await.unwrap().mzxid;
        assert_eq!(
            take(&mut exact, 1).await,
            vec![(NodeDataChanged, "/k".into(), z)]
        );
        expect((NodeDataChanged, "/k".into(), z));

        let _thief = take_away(&relay, &server, &watcher).await;
        // Changes while the watcher is away, some of them several in one txn.
        let z = writer.set_data("/k", b"1", None).await.unwrap().mzxid;
        expect((NodeDataChanged, "/k".into(), z));
        let (_, st) = writer
            .create2("/k/c", b"", CreateOptions::persistent())
            .await
            .unwrap();
        expect((NodeChildrenChanged, "/k".into(), st.czxid));
        let z = writer.set_data("/r/a", b"1", None).await.unwrap().mzxid;
        expect((NodeDataChanged, "/r/a".into(), z));
        let (_, st) = writer
            .create2("/r/b", b"", CreateOptions::persistent())
            .await
            .unwrap();
        expect((NodeCreated, "/r/b".into(), st.czxid));
        let set = |p: &str| MultiOp::SetData {
            path: p.into(),
            data: b"m".to_vec(),
            version: -1,
        };
        writer
            .multi(vec![set("/k"), set("/r/a"), set("/k")])
            .await
            .unwrap();
        let z = writer.last_zxid();
        expect((NodeDataChanged, "/k".into(), z));
        expect((NodeDataChanged, "/r/a".into(), z));
        expect((NodeDataChanged, "/k".into(), z));
        writer.delete("/r/a", None).await.unwrap();
        expect((NodeDeleted, "/r/a".into(), writer.last_zxid()));

        bring_back(&relay, &watcher).await;
        // Changes after the reconnect come after the replay.
        let z = writer.set_data("/k", b"2", None).await.unwrap().mzxid;
        expect((NodeDataChanged, "/k".into(), z));
        let z = writer.set_data("/r", b"2", None).await.unwrap().mzxid;
        expect((NodeDataChanged, "/r".into(), z));

        // The pre-disconnect event was taken above already.
        assert_eq!(take(&mut exact, want_k.len() - 1).await, want_k[1..]);
        assert_eq!(take(&mut deep, want_r.len()).await, want_r);
        // No copies trail behind.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(exact.next().now_or_never().is_none());
        assert!(deep.next().now_or_never().is_none());
        assert_eq!(*log.lock().unwrap(), want_all);
    });
}

#[test]
fn persistent_watches_end_with_a_removal_when_the_server_cannot_replay() {
    use EventType::*;
    let server = Coordd::start("tick_ms = 500");
    runtime().block_on(async {
        let relay = Relay::start(server.addr).await;
        let (watcher, log) = watcher_via(&relay, &server).await;
        let writer = server.client().await;
        for p in ["/k", "/r", "/d"] {
            writer
                .create(p, b"", CreateOptions::persistent())
                .await
                .unwrap();
        }
        let mut exact = watcher
            .add_watch("/k", AddWatchMode::Persistent)
            .await
            .unwrap();
        let mut deep = watcher
            .add_watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let (_, _, one_shot) = watcher.get_data_w("/d").await.unwrap();

        let _thief = take_away(&relay, &server, &watcher).await;
        // One txn with more changes than the server keeps: nothing before it can be replayed.
        let ops = (0..=REPLAY_WINDOW_CHANGES)
            .map(|_| MultiOp::SetData {
                path: "/k".into(),
                data: vec![],
                version: -1,
            })
            .collect();
        writer.multi(ops).await.unwrap();
        let big = writer.last_zxid();
        let z = writer.set_data("/d", b"1", None).await.unwrap().mzxid;
        bring_back(&relay, &watcher).await;

        // Each stream is told, with a nonzero zxid, and ends.
        for (w, path) in [(&mut exact, "/k"), (&mut deep, "/r")] {
            let e = within(w.next()).await.expect("a removal notice");
            assert_eq!(
                (e.event_type, e.path.as_str()),
                (PersistentWatchRemoved, path)
            );
            assert!(e.zxid >= big, "zxid {:#x} < {big:#x}", e.zxid);
            assert!(within(w.next()).await.is_none(), "the stream ends");
        }
        // One-shot watches fire as ever.
        let e = within(one_shot).await.unwrap();
        assert_eq!(seen(e), (NodeDataChanged, "/d".into(), z));
        assert!(
            log.lock()
                .unwrap()
                .iter()
                .filter(|e| e.0 == PersistentWatchRemoved)
                .count()
                == 2
        );
        // The application re-adds, then re-reads; the new watch works.
        let mut exact = watcher
            .add_watch("/k", AddWatchMode::Persistent)
            .await
            .unwrap();
        let (data, _) = watcher.get_data("/k").await.unwrap();
        assert!(data.is_empty());
        let z = writer.set_data("/k", b"after", None).await.unwrap().mzxid;
        assert_eq!(
            take(&mut exact, 1).await,
            vec![(NodeDataChanged, "/k".into(), z)]
        );
    });
}

/// The server is SIGKILLed and restarted while a session with persistent watches is away,
/// with snapshots taken after the session's last zxid: the restarted server refills its
/// replay window (the one saved with the snapshot, then the log replayed after it), so the
/// session gets every change it missed, in order, and no `PersistentWatchRemoved`.
#[test]
fn persistent_watches_are_replayed_by_a_restarted_server() {
    use EventType::*;
    let mut server = Coordd::start("tick_ms = 500\nsnapshot_every_txns = 4");
    runtime().block_on(async {
        let relay = Relay::start(server.addr).await;
        let (watcher, log) = watcher_via(&relay, &server).await;
        let writer = server.client().await;
        for p in ["/k", "/r"] {
            writer
                .create(p, b"", CreateOptions::persistent())
                .await
                .unwrap();
        }
        let mut exact = watcher
            .add_watch("/k", AddWatchMode::Persistent)
            .await
            .unwrap();
        let mut deep = watcher
            .add_watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let thief = take_away(&relay, &server, &watcher).await;
        let (mut want_k, mut want_r) = (Vec::new(), Vec::new());
        for i in 0..12 {
            let z = writer
                .set_data("/k", format!("{i}").as_bytes(), None)
                .await
                .unwrap()
                .mzxid;
            want_k.push((NodeDataChanged, "/k".to_string(), z));
            let (_, st) = writer
                .create2(&format!("/r/c{i}"), b"", CreateOptions::persistent())
                .await
                .unwrap();
            want_r.push((NodeCreated, format!("/r/c{i}"), st.czxid));
        }
        drop(thief);
        writer.close().await.unwrap();
        // Snapshots were taken after the watcher's last zxid (one every 4 txns).
        let snapshots = std::fs::read_dir(server.dir.join("data").join("log"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("snap"))
                    .count()
            })
            .unwrap_or(0);
        assert!(snapshots > 0, "snapshots taken:\n{}", server.log_tail());
        server.restart();
        bring_back(&relay, &watcher).await;
        assert_eq!(take(&mut exact, want_k.len()).await, want_k);
        assert_eq!(take(&mut deep, want_r.len()).await, want_r);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(exact.next().now_or_never().is_none());
        assert!(deep.next().now_or_never().is_none());
        assert!(
            !log.lock()
                .unwrap()
                .iter()
                .any(|e| e.0 == PersistentWatchRemoved),
            "a watch was removed: {:?}",
            log.lock().unwrap()
        );
        assert!(
            server.log_tail().contains("replay window restored"),
            "{}",
            server.log_tail()
        );
    });
}
