//! The client against a server paused with SIGSTOP: jeopardy, resume, expiry.

mod common;

use coord_client::{Client, CreateOptions, ErrorCode, EventType, SessionState};
use std::time::Duration;

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/pause-{name}-{nanos}")
}

#[tokio::test]
async fn server_pauses() {
    resumes_session_after_server_pause().await;
    expires_when_no_server_answers_within_the_timeout().await;
}

/// Stops the server (SIGSTOP) past 2/3 of the session timeout, then resumes it: the client
/// must notice (Disconnected), resume the same session (Connected), keep its ephemeral node
/// and re-arm its watch. Needs `COORD_TEST_SERVER_PID` (the coordd of `COORD_SERVERS`).
async fn resumes_session_after_server_pause() {
    // Session timeouts up to 10 s (tick 500 ms).
    let server = common::Coordd::start("tick_ms = 500");
    let cfg = server.client_config();
    let pid = server.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let c = Client::connect(cfg.session_timeout(Duration::from_secs(6)))
        .await
        .unwrap();
    let timeout = c.session_timeout();
    let p = unique("pause");
    c.create(&p, b"", CreateOptions::ephemeral()).await.unwrap();
    let (_, _, watch) = c.get_data_w(&p).await.unwrap();
    let mut states = c.state_events();
    let id = c.session_id();
    signal("-STOP");
    let t0 = std::time::Instant::now();
    let disconnected = tokio::time::timeout(
        timeout,
        states.wait_for(|s| *s == SessionState::Disconnected),
    )
    .await
    .map(|r| r.is_ok());
    let noticed = t0.elapsed();
    // A call made while disconnected waits for the reconnect.
    let pending = tokio::spawn({
        let c = c.clone();
        let p = p.clone();
        async move { c.exists(&p).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal("-CONT");
    assert!(
        disconnected.is_ok(),
        "not disconnected within the session timeout"
    );
    assert!(
        noticed <= timeout * 2 / 3 + Duration::from_millis(500),
        "noticed after {noticed:?}"
    );
    tokio::time::timeout(timeout, states.wait_for(|s| *s == SessionState::Connected))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.session_id(), id);
    assert!(
        pending.await.unwrap().unwrap().is_some(),
        "ephemeral survived the pause"
    );
    let other = Client::connect(server.client_config()).await.unwrap();
    other.set_data(&p, b"changed", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("watch re-armed")
        .unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    other.close().await.unwrap();
    c.close().await.unwrap();
}

/// With the server stopped past the whole session timeout and the client's grace period
/// after it, the client declares the session expired: watches end with `SessionExpired`,
/// and so does every later call.
async fn expires_when_no_server_answers_within_the_timeout() {
    let server = common::Coordd::start("");
    let cfg = server.client_config();
    let pid = server.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let grace = Duration::from_secs(1);
    let c = Client::connect(
        cfg.session_timeout(Duration::from_secs(2))
            .grace_period(grace),
    )
    .await
    .unwrap();
    let timeout = c.session_timeout();
    let (_, watch) = c.exists_w(&unique("expire")).await.unwrap();
    let mut states = c.state_events();
    signal("-STOP");
    let expired = tokio::time::timeout(
        timeout * 2 + grace,
        states.wait_for(|s| *s == SessionState::Expired),
    )
    .await;
    signal("-CONT");
    assert!(
        expired.is_ok(),
        "not expired within twice the session timeout ({timeout:?}) plus the grace period"
    );
    assert_eq!(watch.await.unwrap_err().code(), ErrorCode::SessionExpired);
    assert_eq!(
        c.exists("/").await.unwrap_err().code(),
        ErrorCode::SessionExpired
    );
    c.close().await.unwrap();
}
