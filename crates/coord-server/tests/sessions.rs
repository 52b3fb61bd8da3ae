//! Sessions: negotiation, expiry (ephemerals deleted, watches fired), explicit close, resume
//! on a new connection and across a server restart, session moved.

mod common;
use common::*;
use coord_client::{Client, CreateOptions, SessionState};
use coord_proto::*;
use std::time::{Duration, Instant};

#[test]
fn timeout_is_negotiated_into_the_servers_bounds() {
    // tick 100 ms: bounds are 200 ms .. 2 s.
    let server = Coordd::start("");
    runtime().block_on(async {
        let mut raw = RawSession::open(&server).await;
        assert_eq!(raw.connect(10).await.timeout_ms, 200);
        let mut raw = RawSession::open(&server).await;
        assert_eq!(raw.connect(1_000_000).await.timeout_ms, 2000);
        let mut raw = RawSession::open(&server).await;
        assert_eq!(raw.connect(1500).await.timeout_ms, 1500);
    });
}

#[test]
fn a_silent_session_expires_and_its_ephemerals_go() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let observer = server.client().await;
        let mut raw = RawSession::open(&server).await;
        let resp = raw.connect(400).await;
        let created = raw
            .request(
                1,
                Request::Create {
                    path: "/eph".into(),
                    data: vec![],
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Ephemeral,
                    ttl_ms: 0,
                },
            )
            .await;
        assert!(
            matches!(created, ReplyBody::Ok(Response::Create { .. })),
            "{created:?}"
        );
        let (_, _, deleted) = observer.get_data_w("/eph").await.unwrap();
        // The raw session now stays silent (no pings): it must expire after ~400 ms.
        let start = Instant::now();
        let e = tokio::time::timeout(Duration::from_secs(10), deleted)
            .await
            .expect("expiry")
            .unwrap();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/eph")
        );
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "expired too early: {:?}",
            start.elapsed()
        );
        assert_eq!(observer.exists("/eph").await.unwrap(), None);
        // The server tells the expired session and closes its stream.
        let mut saw_closing = false;
        while let Some(f) = raw.next().await {
            if let ServerFrame::Closing { code, .. } = f {
                assert_eq!(code, ErrorCode::SessionExpired);
                saw_closing = true;
            }
        }
        assert!(saw_closing);
        // Resuming it is refused.
        let mut again = RawSession::open(&server).await;
        again
            .send(&connect_frame(resp.session_id, resp.password, 400))
            .await;
        assert!(matches!(
            again.next().await,
            Some(ServerFrame::Refused {
                code: ErrorCode::SessionExpired,
                ..
            })
        ));
    });
}

#[test]
fn a_pinging_session_outlives_its_timeout() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = Client::connect(
            server
                .client_config()
                .session_timeout(Duration::from_millis(400)),
        )
        .await
        .unwrap();
        c.create("/alive", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let other = server.client().await;
        assert!(other.exists("/alive").await.unwrap().is_some());
        assert_eq!(c.state(), SessionState::Connected);
    });
}

#[test]
fn a_session_resumes_on_a_new_connection_and_the_old_one_is_told_it_moved() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let mut first = RawSession::open(&server).await;
        let resp = first.connect(2000).await;
        let r = first
            .request(
                1,
                Request::Create {
                    path: "/mine".into(),
                    data: vec![],
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Ephemeral,
                    ttl_ms: 0,
                },
            )
            .await;
        assert!(matches!(r, ReplyBody::Ok(_)));
        let mut second = RawSession::open(&server).await;
        second
            .send(&connect_frame(resp.session_id, b"wrong".to_vec(), 2000))
            .await;
        assert!(matches!(
            second.next().await,
            Some(ServerFrame::Refused {
                code: ErrorCode::AuthFailed,
                ..
            })
        ));
        let mut second = RawSession::open(&server).await;
        second
            .send(&connect_frame(resp.session_id, resp.password.clone(), 2000))
            .await;
        let Some(ServerFrame::Connected(r2)) = second.next().await else {
            panic!("resume refused")
        };
        assert_eq!(r2.session_id, resp.session_id);
        assert!(matches!(
            first.next().await,
            Some(ServerFrame::Closing {
                code: ErrorCode::SessionMoved,
                ..
            })
        ));
        let r = second
            .request(2, Request::GetEphemerals { prefix: "/".into() })
            .await;
        assert_eq!(
            r,
            ReplyBody::Ok(Response::Paths {
                paths: vec!["/mine".into()]
            })
        );
    });
}

#[test]
fn sessions_and_ephemerals_survive_a_server_restart() {
    let mut server = Coordd::start("");
    let rt = runtime();
    let c = rt.block_on(async {
        let c = Client::connect(
            server
                .client_config()
                .session_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        c.create("/kept", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        c
    });
    let id = c.session_id();
    server.restart();
    rt.block_on(async {
        // The client reconnects within its timeout and resumes the same session.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.get_ephemerals("/").await {
                Ok(paths) => {
                    assert_eq!(paths, vec!["/kept"]);
                    break;
                }
                Err(e) => {
                    assert!(e.is_connection_loss(), "{e}");
                    assert!(Instant::now() < deadline, "no reconnect");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        assert_eq!(c.session_id(), id);
        let other = server.client().await;
        assert_eq!(
            other
                .exists("/kept")
                .await
                .unwrap()
                .unwrap()
                .ephemeral_owner,
            id
        );
    });
}

#[test]
fn a_session_left_behind_by_a_restart_expires_after_a_fresh_timeout() {
    let mut server = Coordd::start("");
    let rt = runtime();
    rt.block_on(async {
        let mut raw = RawSession::open(&server).await;
        raw.connect(1000).await;
        let r = raw
            .request(
                1,
                Request::Create {
                    path: "/orphan".into(),
                    data: vec![],
                    acl: Acl::open_unsafe(),
                    mode: CreateMode::Ephemeral,
                    ttl_ms: 0,
                },
            )
            .await;
        assert!(matches!(r, ReplyBody::Ok(_)));
    });
    server.restart();
    rt.block_on(async {
        let c = server.client().await;
        assert!(
            c.exists("/orphan").await.unwrap().is_some(),
            "time spent down must not expire anyone"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.exists("/orphan").await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "orphaned session never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
