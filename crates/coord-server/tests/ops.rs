//! Every op and node kind through a real server over QUIC.

mod common;
use common::*;
use coord_client::{CreateOptions, Error};
use coord_proto::*;
use std::time::Duration;

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

#[test]
fn create_get_set_delete_with_versions() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        let (path, stat) = c
            .create2("/a", b"one", CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(path, "/a");
        assert_eq!(stat.version, 0);
        assert_eq!(stat.data_length, 3);
        assert_eq!(stat.czxid, stat.mzxid);
        let (data, s) = c.get_data("/a").await.unwrap();
        assert_eq!(data, b"one");
        assert_eq!(s, stat);

        let s2 = c.set_data("/a", b"two", Some(0)).await.unwrap();
        assert_eq!(s2.version, 1);
        assert!(s2.mzxid > stat.mzxid);
        assert_eq!(
            code(c.set_data("/a", b"x", Some(0)).await),
            ErrorCode::BadVersion
        );
        assert_eq!(c.set_data("/a", b"three", None).await.unwrap().version, 2);

        assert_eq!(
            code(c.create("/a", b"", CreateOptions::persistent()).await),
            ErrorCode::NodeExists
        );
        assert_eq!(
            code(c.create("/x/y", b"", CreateOptions::persistent()).await),
            ErrorCode::NoNode
        );
        c.create("/a/b", b"", CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(code(c.delete("/a", None).await), ErrorCode::NotEmpty);
        assert_eq!(code(c.delete("/a/b", Some(5)).await), ErrorCode::BadVersion);
        c.delete("/a/b", Some(0)).await.unwrap();
        c.delete("/a", Some(2)).await.unwrap();
        assert_eq!(c.exists("/a").await.unwrap(), None);
        assert_eq!(code(c.get_data("/a").await), ErrorCode::NoNode);
        assert_eq!(code(c.delete("/a", None).await), ErrorCode::NoNode);
        c.close().await.unwrap();
    });
}

#[test]
fn children_stat_and_counts() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/p", b"", CreateOptions::persistent())
            .await
            .unwrap();
        for name in ["c", "a", "b"] {
            c.create(&format!("/p/{name}"), b"", CreateOptions::persistent())
                .await
                .unwrap();
        }
        c.create("/p/a/deep", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let (children, stat) = c.get_children("/p").await.unwrap();
        assert_eq!(children, vec!["a", "b", "c"]);
        assert_eq!(stat.num_children, 3);
        assert_eq!(stat.cversion, 3);
        assert_eq!(c.get_all_children_number("/p").await.unwrap(), 4);
        c.delete("/p/c", None).await.unwrap();
        let s = c.exists("/p").await.unwrap().unwrap();
        assert_eq!((s.num_children, s.cversion), (2, 4));
        assert!(s.pzxid > s.czxid);
        c.sync("/p").await.unwrap();
    });
}

#[test]
fn sequential_nodes_take_the_parents_counter() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/q", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let a = c
            .create("/q/item-", b"", CreateOptions::sequential())
            .await
            .unwrap();
        let b = c
            .create("/q/item-", b"", CreateOptions::ephemeral_sequential())
            .await
            .unwrap();
        c.create("/q/plain", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let d = c
            .create("/q/item-", b"", CreateOptions::sequential())
            .await
            .unwrap();
        assert_eq!(a, "/q/item-0000000000");
        assert_eq!(b, "/q/item-0000000001");
        assert_eq!(d, "/q/item-0000000003");
    });
}

#[test]
fn ephemerals_belong_to_their_session() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let owner = server.client().await;
        let other = server.client().await;
        owner
            .create("/e", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        let stat = other.exists("/e").await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, owner.session_id());
        assert_eq!(
            code(
                owner
                    .create("/e/child", b"", CreateOptions::persistent())
                    .await
            ),
            ErrorCode::NoChildrenForEphemerals
        );
        owner
            .create("/e2", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        assert_eq!(owner.get_ephemerals("/").await.unwrap(), vec!["/e", "/e2"]);
        assert!(other.get_ephemerals("/").await.unwrap().is_empty());
        owner.close().await.unwrap();
        assert_eq!(other.exists("/e").await.unwrap(), None);
        assert_eq!(other.exists("/e2").await.unwrap(), None);
    });
}

#[test]
fn containers_and_ttl_nodes_are_reaped() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/box", b"", CreateOptions::container())
            .await
            .unwrap();
        c.create("/box/x", b"", CreateOptions::persistent())
            .await
            .unwrap();
        c.create("/ttl", b"", CreateOptions::ttl(Duration::from_millis(300)))
            .await
            .unwrap();
        c.create("/keep", b"", CreateOptions::persistent())
            .await
            .unwrap();
        // A container with a child and a fresh TTL node stay.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(c.exists("/box").await.unwrap().is_some());
        assert!(c.exists("/ttl").await.unwrap().is_some());
        c.delete("/box/x", None).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.exists("/box").await.unwrap().is_some() || c.exists("/ttl").await.unwrap().is_some()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "container and ttl node were not reaped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(c.exists("/keep").await.unwrap().is_some());
        assert_eq!(
            code(
                c.create(
                    "/bad",
                    b"",
                    CreateOptions::persistent().with_mode(CreateMode::PersistentWithTtl)
                )
                .await
            ),
            ErrorCode::BadArguments
        );
    });
}

#[test]
fn multi_is_all_or_nothing() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/m", b"v0", CreateOptions::persistent())
            .await
            .unwrap();
        let ok = c
            .multi(vec![
                MultiOp::Check {
                    path: "/m".into(),
                    version: 0,
                },
                MultiOp::Create {
                    path: "/m/a".into(),
                    data: b"a".to_vec(),
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                },
                MultiOp::SetData {
                    path: "/m".into(),
                    data: b"v1".to_vec(),
                    version: 0,
                },
            ])
            .await
            .unwrap();
        assert!(matches!(ok[0], MultiResult::Check));
        assert!(matches!(&ok[1], MultiResult::Create { path, .. } if path == "/m/a"));
        assert!(matches!(ok[2], MultiResult::SetData { stat } if stat.version == 1));

        let err = c
            .multi(vec![
                MultiOp::Create {
                    path: "/m/b".into(),
                    data: vec![],
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                },
                MultiOp::Delete {
                    path: "/m/a".into(),
                    version: 7,
                },
                MultiOp::SetData {
                    path: "/m".into(),
                    data: b"v2".to_vec(),
                    version: -1,
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadVersion);
        assert_eq!(
            err.results(),
            &[
                MultiResult::Error {
                    code: ErrorCode::Ok
                },
                MultiResult::Error {
                    code: ErrorCode::BadVersion
                },
                MultiResult::Error {
                    code: ErrorCode::RuntimeInconsistency
                },
            ]
        );
        assert_eq!(c.exists("/m/b").await.unwrap(), None);
        assert_eq!(c.get_data("/m").await.unwrap().0, b"v1");

        let reads = c
            .multi_read(vec![
                ReadOp::GetData { path: "/m".into() },
                ReadOp::GetChildren { path: "/m".into() },
                ReadOp::GetData {
                    path: "/nope".into(),
                },
            ])
            .await
            .unwrap();
        assert!(matches!(&reads[0], ReadResult::Data { data, .. } if data == b"v1"));
        assert!(matches!(&reads[1], ReadResult::Children { children } if children == &["a"]));
        assert!(matches!(
            reads[2],
            ReadResult::Error {
                code: ErrorCode::NoNode
            }
        ));
    });
}

#[test]
fn bad_paths_and_oversized_data_are_refused_and_nothing_changes() {
    let server = Coordd::start("max_data_bytes = 1000\nmax_frame_bytes = 65536");
    runtime().block_on(async {
        let c = server.client().await;
        for p in ["", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\u{0}b"] {
            assert_eq!(
                code(c.create(p, b"", CreateOptions::persistent()).await),
                ErrorCode::InvalidPath,
                "{p:?}"
            );
        }
        assert_eq!(
            code(
                c.create("/big", &vec![7u8; 1001], CreateOptions::persistent())
                    .await
            ),
            ErrorCode::TooLarge
        );
        c.create("/ok", &vec![7u8; 1000], CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(
            code(c.set_data("/ok", &vec![1u8; 1001], None).await),
            ErrorCode::TooLarge
        );
        assert_eq!(c.get_data("/ok").await.unwrap().0, vec![7u8; 1000]);
        assert_eq!(c.exists("/big").await.unwrap(), None);
    });
}

#[test]
fn session_order_reads_see_own_pipelined_writes() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/n", b"0", CreateOptions::persistent())
            .await
            .unwrap();
        // Pipeline writes and reads on one session without awaiting in between.
        let mut futs = Vec::new();
        for i in 1..=200u32 {
            let c1 = c.clone();
            let c2 = c.clone();
            futs.push(tokio::spawn(async move {
                let stat = c1
                    .set_data("/n", i.to_string().as_bytes(), None)
                    .await
                    .unwrap();
                let (data, s) = c2.get_data("/n").await.unwrap();
                assert!(s.version >= stat.version, "read went back in time");
                (stat.version, String::from_utf8(data).unwrap())
            }));
        }
        for f in futs {
            f.await.unwrap();
        }
        let (data, stat) = c.get_data("/n").await.unwrap();
        assert_eq!(stat.version, 200);
        assert!(!data.is_empty());
    });
}
