//! Chubby's guarantees through real `coordd` ensembles: linearizable reads (ReadIndex) on
//! every server and across a deposed leader's pause, sequencers that fence writes, and
//! lock-delay after an expiry (but not after a clean release); and session ownership across
//! servers (a resumed session moves, its old connection is told `SessionMoved`).

mod common;
use common::RawSession;
use coord_client::{Client, CreateOptions, ErrorCode, LockMode, MultiOp, ReadMode, Sequencer};
use coord_proto::{ReplyBody, Request, Response};
use coord_testkit::runtime as rt;
use std::time::{Duration, Instant};

/// A linearizable reader on every server sees a write the moment another session's write
/// was acknowledged, whichever server either is connected to.
#[test]
fn linearizable_reads_see_every_acknowledged_write_on_every_server() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for i in 0..3 {
            writers.push(Client::connect(cluster.config_for(i)).await.unwrap());
            let r = Client::connect(cluster.config_for(i)).await.unwrap();
            readers.push(r.with_read_mode(ReadMode::Linearizable));
        }
        writers[0]
            .create("/k", b"0", CreateOptions::persistent())
            .await
            .unwrap();
        for n in 1..=60u32 {
            let w = &writers[n as usize % 3];
            let value = n.to_string().into_bytes();
            w.set_data("/k", &value, None).await.unwrap();
            for (i, r) in readers.iter().enumerate() {
                let (data, stat) = r.get_data("/k").await.unwrap();
                assert_eq!(
                    data,
                    value,
                    "a linearizable read on server {} missed write {n}",
                    i + 1
                );
                assert_eq!(stat.version, n as i32);
            }
        }
        // The other read kinds are fenced too.
        for r in &readers {
            assert!(r.exists("/k").await.unwrap().is_some());
            assert!(
                r.get_children("/")
                    .await
                    .unwrap()
                    .0
                    .contains(&"k".to_string())
            );
        }
    });
}

/// The leader is paused (SIGSTOP), the others elect a new leader and acknowledge a write,
/// then the old leader resumes while a linearizable read through it is outstanding. The read
/// may fail (the old leader cannot confirm it leads) but it never returns the old value.
#[test]
fn a_paused_deposed_leader_serves_no_stale_linearizable_read() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        let leader = cluster.wait_stable().await;
        let w = cluster.client().await;
        w.create("/k", b"old", CreateOptions::persistent())
            .await
            .unwrap();
        // A reader that can only reach the old leader.
        let cfg = cluster
            .config_for(leader)
            .session_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5));
        let reader = Client::connect(cfg)
            .await
            .unwrap()
            .with_read_mode(ReadMode::Linearizable);
        assert_eq!(reader.get_data("/k").await.unwrap().0, b"old");
        cluster.signal(leader, libc::SIGSTOP);
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let nw = loop {
            let mut found = None;
            for &i in &others {
                if let Some(s) = cluster.status(i).await
                    && s.role == "leader"
                {
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                break i;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader while the old one sleeps"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let w2 = Client::connect(cluster.config_for(nw)).await.unwrap();
        w2.set_data("/k", b"new", None).await.unwrap();
        // The read is issued while the old leader still sleeps, and is answered (or not)
        // after it wakes.
        let pending = tokio::spawn({
            let reader = reader.clone();
            async move { reader.get_data("/k").await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.signal(leader, libc::SIGCONT);
        let mut outcomes = vec![pending.await.unwrap()];
        // Keep reading through the old leader until one read succeeds.
        let deadline = Instant::now() + Duration::from_secs(40);
        while !outcomes.last().unwrap().is_ok() {
            assert!(Instant::now() < deadline, "no read succeeded: {outcomes:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            outcomes.push(reader.get_data("/k").await);
        }
        for (data, _) in outcomes.iter().flatten() {
            assert_eq!(
                data.as_slice(),
                b"new",
                "a linearizable read returned state older than an acknowledged write"
            );
        }
    });
}

/// A raw-frame session on some server, retried while servers refuse (e.g. still electing).
async fn raw_session(cluster: &coord_testkit::Cluster, timeout_ms: u32) -> RawSession {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for server in &cluster.servers {
            let mut raw = RawSession::open_at(server.client, &cluster.ca()).await;
            raw.send(&common::connect_frame(0, vec![], timeout_ms))
                .await;
            match raw.next().await {
                Some(coord_proto::ServerFrame::Connected(_)) => return raw,
                other => assert!(
                    Instant::now() < deadline,
                    "no server took a raw session: {other:?}"
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sequencer(path: &str, stat: &coord_client::Stat) -> Vec<u8> {
    Sequencer {
        path: path.into(),
        mode: LockMode::Exclusive,
        czxid: stat.czxid,
        session_id: stat.ephemeral_owner,
    }
    .encode()
}

/// A holder's sequencer is valid on every server while it holds the lock; a multi carrying
/// it writes only then; a stale or garbled sequencer is refused.
#[test]
fn sequencers_fence_writes_on_every_server() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let holder = cluster.client().await;
        holder
            .create("/locks", b"", CreateOptions::persistent())
            .await
            .unwrap();
        holder
            .create("/data", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let (_, stat) = holder
            .create2("/locks/db", b"me", CreateOptions::lock(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, holder.session_id());
        let seq = sequencer("/locks/db", &stat);
        let fenced = |seq: Vec<u8>, v: &'static [u8]| {
            vec![
                MultiOp::CheckSequencer { sequencer: seq },
                MultiOp::SetData {
                    path: "/data".into(),
                    data: v.to_vec(),
                    version: -1,
                },
            ]
        };
        for i in 0..3 {
            let storage = Client::connect(cluster.config_for(i)).await.unwrap();
            assert!(
                storage.check_sequencer(&seq).await.unwrap(),
                "server {}",
                i + 1
            );
            storage
                .multi(fenced(seq.clone(), b"by holder"))
                .await
                .unwrap();
        }
        // Released and taken again (same session): a new generation; the old one is stale.
        holder.delete("/locks/db", None).await.unwrap();
        let (_, stat2) = holder
            .create2("/locks/db", b"me", CreateOptions::lock(Duration::ZERO))
            .await
            .unwrap();
        assert!(stat2.czxid > stat.czxid);
        for i in 0..3 {
            let storage = Client::connect(cluster.config_for(i)).await.unwrap();
            assert!(!storage.check_sequencer(&seq).await.unwrap());
            let e = storage
                .multi(fenced(seq.clone(), b"by a stale holder"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::StaleSequencer);
            assert!(
                storage
                    .check_sequencer(&sequencer("/locks/db", &stat2))
                    .await
                    .unwrap()
            );
        }
        assert_eq!(holder.get_data("/data").await.unwrap().0, b"by holder");
        // Garbled sequencers: refused by the client, and by the server when sent raw.
        let mut garbled = seq.clone();
        garbled.truncate(seq.len() - 1);
        let e = holder.check_sequencer(&garbled).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
        let mut raw = raw_session(&cluster, 4000).await;
        match raw
            .request(1, Request::CheckSequencer { sequencer: garbled })
            .await
        {
            ReplyBody::Err(code) => assert_eq!(code, ErrorCode::BadArguments),
            other => panic!("a garbled sequencer was answered {other:?}"),
        }
        match raw
            .request(2, Request::CheckSequencer { sequencer: seq })
            .await
        {
            ReplyBody::Ok(Response::Sequencer { valid }) => assert!(!valid),
            other => panic!("{other:?}"),
        }
    });
}

/// A lock node whose owner session expired cannot be created again for its lock-delay; one
/// released cleanly (delete, or closing the session) can be at once.
#[test]
fn lock_delay_holds_an_expired_holders_lock_but_not_a_released_one() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let other = cluster.client().await;
        other
            .create("/locks", b"", CreateOptions::persistent())
            .await
            .unwrap();
        // A holder that vanishes without closing: a raw session that stops sending.
        let mut raw = raw_session(&cluster, 2000).await;
        let delay_ms = 3000;
        match raw
            .request(
                1,
                Request::Create {
                    path: "/locks/a".into(),
                    data: vec![],
                    acl: coord_proto::Acl::open_unsafe(),
                    mode: coord_proto::CreateMode::EphemeralLock,
                    ttl_ms: delay_ms,
                },
            )
            .await
        {
            ReplyBody::Ok(Response::Create { .. }) => {}
            other => panic!("{other:?}"),
        }
        drop(raw);
        // Expiry deletes the node...
        let deadline = Instant::now() + Duration::from_secs(30);
        while other.exists("/locks/a").await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "the holder's session never expired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gone = Instant::now();
        // ...and the path stays held back for the delay, then frees.
        let e = other
            .create("/locks/a", b"", CreateOptions::lock(Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::LockDelay);
        loop {
            match other
                .create("/locks/a", b"", CreateOptions::lock(Duration::ZERO))
                .await
            {
                Ok(_) => break,
                Err(e) if e.code() == ErrorCode::LockDelay => {
                    assert!(
                        gone.elapsed() < Duration::from_secs(30),
                        "lock-delay never ended"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The delay counts from the expiry txn, which came at most a tick before the node was
        // seen gone: it cannot have ended much sooner than `delay_ms` after that.
        assert!(
            gone.elapsed() >= Duration::from_millis(delay_ms as u64 - 600),
            "lock-delay ended after {:?}",
            gone.elapsed()
        );
        // A clean release frees the path at once: delete, and session close.
        let a = cluster.client().await;
        a.create(
            "/locks/b",
            b"",
            CreateOptions::lock(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        a.delete("/locks/b", None).await.unwrap();
        other
            .create(
                "/locks/b",
                b"",
                CreateOptions::lock(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        let c = cluster.client().await;
        c.create(
            "/locks/c",
            b"",
            CreateOptions::lock(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        c.close().await.unwrap();
        other
            .create("/locks/c", b"", CreateOptions::lock(Duration::ZERO))
            .await
            .unwrap();
        // Out-of-bounds delays are refused before they reach the server.
        let e = other
            .create(
                "/locks/d",
                b"",
                CreateOptions::lock(Duration::from_secs(61)),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
    });
}

/// Resumes session `session_id` (0: a new one) on server `i`, retrying while it refuses
/// (e.g. still electing).
async fn resume_at(
    cluster: &coord_testkit::Cluster,
    i: usize,
    session_id: u64,
    password: &[u8],
) -> (RawSession, coord_proto::ConnectResponse) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut raw = RawSession::open_at(cluster.servers[i].client, &cluster.ca()).await;
        raw.send(&common::connect_frame(session_id, password.to_vec(), 4000))
            .await;
        match raw.next().await {
            Some(coord_proto::ServerFrame::Connected(r)) => return (raw, r),
            other => assert!(
                Instant::now() < deadline,
                "server {i} did not take session {session_id:#x}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn create(path: &str, mode: coord_proto::CreateMode) -> Request {
    Request::Create {
        path: path.into(),
        data: vec![],
        acl: coord_proto::Acl::open_unsafe(),
        mode,
        ttl_ms: 0,
    }
}

/// Session ownership is global (ZooKeeper's SessionMoved, across servers): a session
/// resumed on another server is owned there; its old connection, on the server it left, is
/// told `SessionMoved` and closed without sending anything, and the session (with its
/// ephemerals) lives on where it went.
#[test]
fn a_session_resumed_on_another_server_is_moved_and_its_old_connection_closed() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let (mut on0, resp) = resume_at(&cluster, 0, 0, &[]).await;
        let (sid, pw) = (resp.session_id, resp.password.clone());
        let r = on0
            .request(1, create("/owned", coord_proto::CreateMode::Ephemeral))
            .await;
        assert!(matches!(r, ReplyBody::Ok(_)), "{r:?}");

        let (mut on1, r1) = resume_at(&cluster, 1, sid, &pw).await;
        assert_eq!(r1.session_id, sid);
        assert_eq!(resp.server_id, cluster.servers[0].id);
        assert_eq!(r1.server_id, cluster.servers[1].id);
        match on0.next().await {
            Some(coord_proto::ServerFrame::Closing { code, .. }) => {
                assert_eq!(code, ErrorCode::SessionMoved)
            }
            other => panic!("the old connection on server 1 was not told: {other:?}"),
        }
        let r = on1
            .request(
                2,
                create("/after-move", coord_proto::CreateMode::Persistent),
            )
            .await;
        assert!(matches!(r, ReplyBody::Ok(_)), "{r:?}");

        // And on to server 3: server 2's connection is told in turn.
        let (mut on2, _) = resume_at(&cluster, 2, sid, &pw).await;
        match on1.next().await {
            Some(coord_proto::ServerFrame::Closing { code, .. }) => {
                assert_eq!(code, ErrorCode::SessionMoved)
            }
            other => panic!("the old connection on server 2 was not told: {other:?}"),
        }
        let r = on2
            .request(3, Request::GetEphemerals { prefix: "/".into() })
            .await;
        assert_eq!(
            r,
            ReplyBody::Ok(Response::Paths {
                paths: vec!["/owned".into()]
            }),
            "the session's ephemeral did not survive its moves"
        );
        // Resuming where it already is costs no move and keeps working.
        drop(on2);
        let (mut again, _) = resume_at(&cluster, 2, sid, &pw).await;
        let r = again
            .request(
                4,
                Request::Exists {
                    path: "/after-move".into(),
                    watch: false,
                },
            )
            .await;
        assert!(matches!(r, ReplyBody::Ok(_)), "{r:?}");
    });
}

/// Many callers share one session and mix linearizable reads with writes: every reply is
/// the caller's own (a fence confirmed while a write is ahead of it in the session's queue,
/// or a write committed while a fence is ahead of it, is answered in request order, not
/// dropped), and nothing stalls.
#[test]
fn linearizable_reads_and_writes_from_many_callers_on_one_session_get_their_own_replies() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        let leader = cluster.wait_stable().await;
        let follower = (leader + 1) % 3;
        let client = Client::connect(cluster.config_for(follower))
            .await
            .unwrap()
            .with_read_mode(ReadMode::Linearizable);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/mixed-{t}");
                c.create(&path, b"0", CreateOptions::persistent())
                    .await
                    .unwrap();
                for n in 1..=40i32 {
                    let value = format!("{t}:{n}").into_bytes();
                    let stat = c.set_data(&path, &value, Some(n - 1)).await.unwrap();
                    assert_eq!(stat.version, n, "task {t}: a set got another call's reply");
                    let (data, stat) = c.get_data(&path).await.unwrap();
                    assert_eq!(data, value, "task {t}: read {n} is not its own write");
                    assert_eq!(stat.version, n);
                }
            }));
        }
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(Duration::from_secs(90), all)
            .await
            .expect("calls stalled: a reply was dropped");
        for r in done {
            r.unwrap();
        }
    });
}
