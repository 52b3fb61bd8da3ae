//! Chubby's session states and events, against real `coordd` processes over QUIC: the
//! events and their order, leader fail-over, the grace period, calls in jeopardy (reads
//! re-sent, writes failed, unsent calls timed out), and no false expiry on a resume at a
//! follower that has not applied the session yet.
//!
//! Needs `target/<profile>/coordd` (`cargo build -p coord-server --bin coordd`) or `$COORDD`.

use coord_client::{
    Client, ClientConfig, CreateOptions, Error, ErrorCode, EventType, ReadMode, SessionEvent,
    SessionEvents, SessionState,
};
use coord_testkit::Cluster;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `coordd` binary: `$COORDD`, else `target/<profile>/coordd` next to this test's
/// `deps/` directory. A missing binary fails the test (it is never skipped).
fn coordd() -> PathBuf {
    if let Ok(p) = std::env::var("COORDD") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("coordd");
    assert!(
        path.is_file(),
        "no coordd at {}: build it first with `cargo build -p coord-server --bin coordd` \
         (or set COORDD)",
        path.display()
    );
    path
}

fn start(voters: usize, fault_hooks: bool) -> Cluster {
    Cluster::builder(coordd())
        .voters(voters)
        .fault_hooks(fault_hooks)
        .start()
        .expect("start the ensemble")
}

/// A config naming only the servers in `which` (by index).
fn config_of(cluster: &Cluster, which: &[usize]) -> ClientConfig {
    let list: Vec<String> = which
        .iter()
        .map(|i| cluster.servers[*i].client.to_string())
        .collect();
    ClientConfig::new(&list.join(","), cluster.ca()).expect("the cluster CA is readable")
}

/// A session with `cfg`, retried for up to 20 s (servers may be electing).
async fn connect(cfg: ClientConfig) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(cfg.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no session: {e}"),
        }
    }
}

/// Retries `f` while it fails the way a call may during a fail-over.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::ConnectionLoss | ErrorCode::NotServing | ErrorCode::OperationTimeout
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r => return r,
        }
    }
}

/// The next session event, failing the test after `within`.
async fn next(events: &mut SessionEvents, within: Duration, seen: &[SessionEvent]) -> SessionEvent {
    match tokio::time::timeout(within, events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the subscription ended; events so far: {seen:?}"),
        Err(_) => panic!("no session event within {within:?}; events so far: {seen:?}"),
    }
}

/// Takes events until `want`, returning all of them (`want` last).
async fn until(
    events: &mut SessionEvents,
    want: SessionEvent,
    within: Duration,
    seen: &mut Vec<SessionEvent>,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = next(events, left, seen).await;
        seen.push(e);
        if e == want {
            return;
        }
        assert!(
            !e.is_final(),
            "the session ended while waiting for {want:?}: {seen:?}"
        );
    }
}

/// Whatever events are already queued.
fn queued(events: &mut SessionEvents) -> Vec<SessionEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_start_with_connected_report_refused_credentials_and_end_with_closed() {
    let cluster = start(1, false);
    let c = connect(cluster.client_config()).await;
    let mut events = c.session_events();
    assert_eq!(events.try_recv(), Some(SessionEvent::Connected));
    assert_eq!(events.try_recv(), None, "nothing else happened yet");

    // A server refuses credentials of an unknown scheme: the call fails and AuthFailed is
    // published; the session goes on.
    let e = c.add_auth("no-such-scheme", b"x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthFailed, "{e}");
    assert_eq!(
        next(&mut events, Duration::from_secs(5), &[]).await,
        SessionEvent::AuthFailed
    );
    assert_eq!(c.state(), SessionState::Connected);
    c.create("/still-usable", b"", CreateOptions::persistent())
        .await
        .unwrap();
    c.add_auth("digest", b"bob:secret").await.unwrap();

    c.close().await.unwrap();
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(
        next(&mut events, Duration::from_secs(5), &[]).await,
        SessionEvent::Closed
    );
    assert_eq!(
        events.recv().await,
        None,
        "the subscription ends after Closed"
    );
    let mut late = c.session_events();
    assert_eq!(late.recv().await, Some(SessionEvent::Connected));
    assert_eq!(late.recv().await, Some(SessionEvent::Closed));
    assert_eq!(late.recv().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_is_delivered_once_after_the_watches_are_back() {
    let mut cluster = start(3, false);
    let leader = cluster.wait_stable().await;
    let cfg = cluster
        .client_config()
        .session_timeout(Duration::from_secs(4));
    let c = connect(cfg.clone()).await;
    let other_servers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    c.create("/w", b"0", CreateOptions::persistent())
        .await
        .unwrap();
    c.create("/x", b"0", CreateOptions::persistent())
        .await
        .unwrap();
    let (_, _, watch) = c.get_data_w("/w").await.unwrap();
    let mut events = c.session_events();
    let mut seen = vec![next(&mut events, Duration::from_secs(1), &[]).await];
    assert_eq!(seen, [SessionEvent::Connected]);
    c.set_data("/x", b"0", None).await.unwrap();
    assert_eq!(
        queued(&mut events),
        [],
        "no fail-over before the leader dies"
    );

    let old_epoch = coord_client::server_status(&cfg, &cluster.servers[leader].client.to_string())
        .await
        .expect("the leader answers")
        .epoch;
    cluster.kill(leader);
    // A write in the new epoch: its reply (or the resume's handshake) shows the new epoch.
    retry(|| c.set_data("/x", b"1", None)).await.unwrap();
    until(
        &mut events,
        SessionEvent::LeaderFailedOver,
        Duration::from_secs(20),
        &mut seen,
    )
    .await;
    let new_epoch =
        coord_client::server_status(&cfg, &cluster.servers[other_servers[0]].client.to_string())
            .await
            .expect("a follower answers")
            .epoch;
    assert!(new_epoch > old_epoch, "{old_epoch} -> {new_epoch}");

    // The one-shot watch survived the fail-over: a change made through another session
    // fires it.
    let other = connect(config_of(&cluster, &other_servers)).await;
    retry(|| other.set_data("/w", b"1", None)).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the watch fires")
        .expect("with an event");
    assert_eq!(event.event_type, EventType::NodeDataChanged);
    assert_eq!(event.path, "/w");

    // More traffic in the same epoch: no second LeaderFailedOver.
    for i in 0..5 {
        let data = format!("{i}");
        retry(|| c.set_data("/x", data.as_bytes(), None))
            .await
            .unwrap();
        retry(|| c.get_data("/x")).await.unwrap();
    }
    seen.extend(queued(&mut events));
    let failovers = seen
        .iter()
        .filter(|e| **e == SessionEvent::LeaderFailedOver)
        .count();
    assert_eq!(failovers, 1, "{seen:?}");
    assert!(!seen.contains(&SessionEvent::Expired), "{seen:?}");
    let jeopardies = seen
        .iter()
        .filter(|e| **e == SessionEvent::Jeopardy)
        .count();
    let safes = seen.iter().filter(|e| **e == SessionEvent::Safe).count();
    assert_eq!(jeopardies, safes, "every jeopardy ended safe: {seen:?}");
    assert_eq!(c.state(), SessionState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_rides_out_an_outage_longer_than_the_session_timeout() {
    let mut cluster = start(3, false);
    cluster.wait_stable().await;
    let timeout = Duration::from_secs(2);
    let c = connect(
        cluster
            .client_config()
            .session_timeout(timeout)
            .grace_period(Duration::from_secs(40))
            .request_timeout(Duration::from_secs(40)),
    )
    .await;
    assert_eq!(c.session_timeout(), timeout);
    c.create("/e", b"mine", CreateOptions::ephemeral())
        .await
        .unwrap();
    let mut events = c.session_events();
    let mut seen = Vec::new();
    until(
        &mut events,
        SessionEvent::Connected,
        Duration::from_secs(1),
        &mut seen,
    )
    .await;

    for i in 0..3 {
        cluster.kill(i);
    }
    until(
        &mut events,
        SessionEvent::Jeopardy,
        Duration::from_secs(10),
        &mut seen,
    )
    .await;
    assert_eq!(c.state(), SessionState::Disconnected);
    // A call made in jeopardy waits for the resume.
    let reader = c.clone();
    let read = tokio::spawn(async move { reader.get_data("/e").await });
    // Past the session timeout the client is still trying (before the grace period it
    // would have given up here).
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    assert_eq!(c.state(), SessionState::Disconnected, "{seen:?}");
    assert!(!read.is_finished(), "the read waits for the resume");

    for i in 0..3 {
        cluster.start_server(i).unwrap();
    }
    until(
        &mut events,
        SessionEvent::Safe,
        Duration::from_secs(35),
        &mut seen,
    )
    .await;
    let (data, stat) = read.await.unwrap().expect("the waiting read is answered");
    assert_eq!(data, b"mine");
    assert_eq!(
        stat.ephemeral_owner,
        c.session_id(),
        "the ephemeral is still ours"
    );
    assert_eq!(c.state(), SessionState::Connected);
    assert!(!seen.contains(&SessionEvent::Expired), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_ends_in_expiry_and_unsent_calls_time_out() {
    let mut cluster = start(1, false);
    let grace = Duration::from_secs(2);
    let c = connect(
        cluster
            .client_config()
            .session_timeout(Duration::from_secs(1))
            .grace_period(grace)
            .request_timeout(Duration::from_millis(500)),
    )
    .await;
    let mut events = c.session_events();
    let mut seen = Vec::new();
    until(
        &mut events,
        SessionEvent::Connected,
        Duration::from_secs(1),
        &mut seen,
    )
    .await;

    cluster.kill(0);
    until(
        &mut events,
        SessionEvent::Jeopardy,
        Duration::from_secs(10),
        &mut seen,
    )
    .await;
    let jeopardy_at = Instant::now();
    // Not sent within its request timeout: OperationTimeout, and the session goes on trying.
    let e = c.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationTimeout, "{e}");
    let e = c
        .create("/never", b"", CreateOptions::persistent())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationTimeout, "{e}");
    assert_eq!(c.state(), SessionState::Disconnected);

    until(
        &mut events,
        SessionEvent::Expired,
        Duration::from_secs(15),
        &mut seen,
    )
    .await;
    assert!(
        jeopardy_at.elapsed() >= grace,
        "expired {:?} after the jeopardy, before the grace period of {grace:?} ended",
        jeopardy_at.elapsed()
    );
    assert_eq!(
        seen,
        [
            SessionEvent::Connected,
            SessionEvent::Jeopardy,
            SessionEvent::Expired
        ]
    );
    assert_eq!(c.state(), SessionState::Expired);
    assert_eq!(
        events.recv().await,
        None,
        "the subscription ends after Expired"
    );
    let e = c.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_flight_are_resent_after_the_resume_and_writes_fail() {
    let mut cluster = start(1, false);
    let c = connect(
        cluster
            .client_config()
            .session_timeout(Duration::from_secs(6)),
    )
    .await;
    c.create("/r", b"v", CreateOptions::persistent())
        .await
        .unwrap();
    let mut events = c.session_events();
    let mut seen = Vec::new();
    until(
        &mut events,
        SessionEvent::Connected,
        Duration::from_secs(1),
        &mut seen,
    )
    .await;

    // With the server stopped, these are sent and never answered on this connection.
    cluster.pause(0);
    let spawn_read = |mode: ReadMode| {
        let c = c.with_read_mode(mode);
        tokio::spawn(async move { c.get_data("/r").await })
    };
    let local = spawn_read(ReadMode::Local);
    let writer = c.clone();
    let write = tokio::spawn(async move { writer.set_data("/r", b"w", None).await });
    let exists = {
        let c = c.clone();
        tokio::spawn(async move { c.exists("/r").await })
    };
    let linearizable = spawn_read(ReadMode::Linearizable);

    until(
        &mut events,
        SessionEvent::Jeopardy,
        Duration::from_secs(15),
        &mut seen,
    )
    .await;
    cluster.resume(0);
    until(
        &mut events,
        SessionEvent::Safe,
        Duration::from_secs(15),
        &mut seen,
    )
    .await;

    let e = write.await.unwrap().unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::ConnectionLoss,
        "a write in flight may or may not be applied: {e}"
    );
    for read in [local, linearizable] {
        let (data, _) = read.await.unwrap().expect("a read in flight is re-sent");
        assert!(data == b"v" || data == b"w", "{data:?}");
    }
    assert!(exists.await.unwrap().expect("re-sent").is_some());
    assert_eq!(
        seen,
        [
            SessionEvent::Connected,
            SessionEvent::Jeopardy,
            SessionEvent::Safe
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_a_follower_that_has_not_applied_the_session_is_not_an_expiry() {
    let mut cluster = start(3, true);
    let leader = cluster.wait_stable().await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (fast, lagging) = (followers[0], followers[1]);
    cluster.set_fsync_delay(lagging, 300).unwrap();
    // Stopped while the session is created, so it lands on the fast follower and the
    // lagging one has not applied its CreateSession when the session comes to it.
    cluster.pause(lagging);
    let c = connect(
        config_of(&cluster, &[fast, lagging])
            .session_timeout(Duration::from_secs(6))
            .grace_period(Duration::from_secs(30)),
    )
    .await;
    let path = c
        .create("/held", b"", CreateOptions::ephemeral())
        .await
        .unwrap();
    let mut events = c.session_events();
    let mut seen = Vec::new();
    until(
        &mut events,
        SessionEvent::Connected,
        Duration::from_secs(1),
        &mut seen,
    )
    .await;

    cluster.kill(fast);
    until(
        &mut events,
        SessionEvent::Jeopardy,
        Duration::from_secs(15),
        &mut seen,
    )
    .await;
    // Only the lagging follower is left in the session's list; it comes back behind.
    cluster.resume(lagging);
    until(
        &mut events,
        SessionEvent::Safe,
        Duration::from_secs(30),
        &mut seen,
    )
    .await;
    assert_eq!(c.state(), SessionState::Connected);

    let stat = retry(|| c.exists(&path))
        .await
        .unwrap()
        .expect("the ephemeral survived the resume");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    let other = connect(config_of(&cluster, &[leader, lagging])).await;
    let other = other.with_read_mode(ReadMode::Linearizable);
    let stat = retry(|| other.exists(&path))
        .await
        .unwrap()
        .expect("the ephemeral is there for everyone");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    seen.extend(queued(&mut events));
    assert!(!seen.contains(&SessionEvent::Expired), "{seen:?}");
}
