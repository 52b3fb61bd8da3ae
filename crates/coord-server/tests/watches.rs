//! Every watch kind through a real server: one-shot data/exists/child, persistent,
//! persistent-recursive, removal, and re-registration across a reconnect.

mod common;
use common::*;
use coord_client::CreateOptions;
use coord_proto::*;
use futures::StreamExt;
use std::time::Duration;

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
