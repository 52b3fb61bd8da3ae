//! The client library end to end against a real coordd: CRUD, watches, pipelining, the
//! blocking facade.

mod common;

use coord_client::{
    AddWatchMode, Client, CreateOptions, ErrorCode, EventType, MultiOp, SessionState,
};
use std::time::Duration;

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/live-{name}-{nanos}")
}

#[tokio::test]
async fn crud_watches_and_pipelining() {
    let server = common::Coordd::start("");
    let cfg = server.client_config();
    let c = Client::connect(cfg.clone()).await.unwrap();
    assert_eq!(c.state(), SessionState::Connected);
    assert_ne!(c.session_id(), 0);
    let root = unique("crud");
    assert_eq!(
        c.create(&root, b"v0", CreateOptions::default())
            .await
            .unwrap(),
        root
    );
    assert_eq!(
        c.create(&root, b"", CreateOptions::default())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NodeExists
    );
    let (data, stat, watch) = c.get_data_w(&root).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));
    let stat = c.set_data(&root, b"v1", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    let ev = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, root.as_str())
    );
    assert_eq!(
        c.set_data(&root, b"v2", Some(0)).await.unwrap_err().code(),
        ErrorCode::BadVersion
    );

    // Many requests in flight from many tasks share the connection; replies match.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let p = format!("{root}/n{i:03}");
        tasks.push(tokio::spawn(async move {
            c.create(&p, p.as_bytes(), CreateOptions::default()).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), format!("{root}/n{i:03}"));
    }
    let (children, stat) = c.get_children(&root).await.unwrap();
    assert_eq!((children.len(), stat.num_children), (200, 200));

    // Child watch, sequential and ephemeral nodes.
    let (_, _, cw) = c.get_children_w(&root).await.unwrap();
    let seq = c
        .create(
            &format!("{root}/s-"),
            b"",
            CreateOptions::ephemeral_sequential(),
        )
        .await
        .unwrap();
    assert!(
        seq.starts_with(&format!("{root}/s-")) && seq.len() == root.len() + 3 + 10,
        "{seq}"
    );
    let ev = tokio::time::timeout(Duration::from_secs(5), cw)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, EventType::NodeChildrenChanged);

    // Persistent recursive watch.
    let mut pw = c
        .add_watch(&root, AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    c.set_data(&format!("{root}/n000"), b"x", None)
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), pw.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.event_type, ev.path),
        (EventType::NodeDataChanged, format!("{root}/n000"))
    );

    // Multi failure carries per-op results.
    let err = c
        .multi(vec![
            MultiOp::Check {
                path: root.clone(),
                version: 1,
            },
            MultiOp::Delete {
                path: format!("{root}/missing"),
                version: -1,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoNode);
    assert_eq!(err.results().len(), 2);

    // Client-side path validation, no round trip.
    assert_eq!(
        c.get_data("no-slash").await.unwrap_err().code(),
        ErrorCode::InvalidPath
    );

    // Ephemerals die with the session; later calls fail clearly.
    let other = Client::connect(cfg).await.unwrap();
    c.close().await.unwrap();
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(c.exists("/").await.unwrap_err().code(), ErrorCode::ApiError);
    assert_eq!(other.exists(&seq).await.unwrap(), None);
    other.close().await.unwrap();
}

#[test]
fn blocking_facade() {
    let server = common::Coordd::start("");
    let cfg = server.client_config();
    let c = coord_client::blocking::Client::connect(cfg).unwrap();
    let p = unique("blocking");
    c.create(&p, b"a", CreateOptions::default()).unwrap();
    let (_, mut w) = c.exists_w(&p).unwrap();
    assert_eq!(
        w.wait(Duration::from_millis(50)).unwrap_err().code(),
        ErrorCode::OperationTimeout
    );
    c.delete(&p, None).unwrap();
    assert_eq!(
        w.wait(Duration::from_secs(5)).unwrap().event_type,
        EventType::NodeDeleted
    );
    c.close().unwrap();
}
