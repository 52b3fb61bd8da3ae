//! Read-only mode (ZooKeeper's `readonlymode.enabled`) through a real ensemble: a server cut
//! off from the quorum keeps serving reads to the sessions that asked for it, refuses what
//! needs the quorum with `NotReadOnly`, refuses sessions that did not ask, and when the
//! quorum returns its read-only clients move back to read-write on their own.

mod common;
use coord_client::{Client, CreateOptions, Error, ErrorCode, ReadMode};
use coord_testkit::runtime as rt;
use std::future::Future;
use std::time::{Duration, Instant};

const LOCAL_SESSION_BIT: u64 = 1 << 63;

/// Polls `check` until it holds, for at most `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

#[test]
fn a_server_cut_off_serves_reads_read_only_and_its_clients_move_back_when_the_quorum_returns() {
    let mut cluster = common::cluster(3, 0, "read_only_mode = true");
    let rt = rt();
    // Sessions on server 3, which the others will leave alone.
    let (ro, sid) = rt.block_on(async {
        cluster.wait_stable().await;
        let w = cluster.client().await;
        w.create("/k", b"before", CreateOptions::persistent())
            .await
            .unwrap();
        let ro = Client::connect(cluster.config_for(2).read_only(true))
            .await
            .unwrap();
        assert!(
            !ro.is_read_only(),
            "a server with a quorum serves read-write"
        );
        ro.create("/eph", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        assert_eq!(ro.get_data("/k").await.unwrap().0, b"before");
        let sid = ro.session_id();
        (ro, sid)
    });
    cluster.kill(0);
    cluster.kill(1);
    let fresh = rt.block_on(async {
        until(
            "the session to resume read-only",
            Duration::from_secs(30),
            || async { ro.is_read_only() && ro.get_data("/k").await.is_ok() },
        )
        .await;
        assert_eq!(
            ro.session_id(),
            sid,
            "the session itself resumed, read-only"
        );
        assert_eq!(ro.get_data("/k").await.unwrap().0, b"before");
        assert!(ro.exists("/eph").await.unwrap().is_some());
        assert_eq!(
            code(ro.set_data("/k", b"x", None).await),
            ErrorCode::NotReadOnly
        );
        assert_eq!(
            code(ro.create("/new", b"", CreateOptions::persistent()).await),
            ErrorCode::NotReadOnly
        );
        assert_eq!(code(ro.sync("/k").await), ErrorCode::NotReadOnly);
        assert_eq!(
            code(
                ro.with_read_mode(ReadMode::Linearizable)
                    .get_data("/k")
                    .await
            ),
            ErrorCode::NotReadOnly,
            "a linearizable read needs the quorum"
        );
        // A new session there is local to the server.
        let fresh = Client::connect(cluster.config_for(2).read_only(true))
            .await
            .unwrap();
        assert!(fresh.is_read_only());
        assert_ne!(fresh.session_id() & LOCAL_SESSION_BIT, 0);
        assert_eq!(fresh.get_data("/k").await.unwrap().0, b"before");
        // A session that did not ask for read-only is not served.
        let plain = Client::connect(
            cluster
                .config_for(2)
                .connect_timeout(Duration::from_secs(2)),
        )
        .await;
        assert!(
            plain.is_err(),
            "a read-write session was accepted without a quorum"
        );
        fresh
    });
    cluster.start_server(0).unwrap();
    cluster.start_server(1).unwrap();
    rt.block_on(async {
        until(
            "the session to move back read-write",
            Duration::from_secs(60),
            || async { !ro.is_read_only() && ro.set_data("/k", b"after", None).await.is_ok() },
        )
        .await;
        assert_eq!(ro.session_id(), sid, "the same session, read-write again");
        assert!(
            ro.exists("/eph").await.unwrap().is_some(),
            "its ephemeral survived the outage"
        );
        until(
            "the local session to be replaced",
            Duration::from_secs(60),
            || async {
                !fresh.is_read_only()
                    && fresh
                        .create("/fresh", b"", CreateOptions::persistent())
                        .await
                        .is_ok()
            },
        )
        .await;
        assert_eq!(
            fresh.session_id() & LOCAL_SESSION_BIT,
            0,
            "a replicated session replaced the local one"
        );
        assert_eq!(fresh.get_data("/k").await.unwrap().0, b"after");
    });
}

/// The read-only server stays cut off (a partition between servers; clients reach all)
/// while the others regain a quorum: only the client's own probing can move it, and it does.
#[test]
fn a_read_only_client_finds_the_quorum_while_its_server_stays_cut_off() {
    let mut cluster = common::cluster_in_netns(3, "read_only_mode = true");
    let rt = rt();
    rt.block_on(cluster.wait_stable());
    cluster
        .partition(&coord_testkit::Partition::isolate(3, 2))
        .expect("partition");
    cluster.kill(0);
    cluster.kill(1);
    let c = rt.block_on(async {
        // Only server 3 runs, without a quorum: the session is local to it.
        let cfg = cluster
            .client_config()
            .read_only(true)
            .connect_timeout(Duration::from_secs(20));
        let c = Client::connect(cfg).await.unwrap();
        assert!(c.is_read_only());
        assert_ne!(c.session_id() & LOCAL_SESSION_BIT, 0);
        assert!(c.exists("/").await.unwrap().is_some());
        c
    });
    cluster.start_server(0).unwrap();
    cluster.start_server(1).unwrap();
    rt.block_on(async {
        until(
            "the client to move to the quorum",
            Duration::from_secs(60),
            || async {
                !c.is_read_only()
                    && c.create("/moved", b"", CreateOptions::persistent())
                        .await
                        .is_ok()
            },
        )
        .await;
        assert_eq!(c.session_id() & LOCAL_SESSION_BIT, 0);
        let s3 = cluster
            .status(2)
            .await
            .expect("server 3 answers its status");
        assert_eq!(s3.role, "looking", "server 3 is still cut off");
    });
}
