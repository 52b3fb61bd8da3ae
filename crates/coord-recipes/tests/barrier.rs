//! Barriers against a real 3-server ensemble: nobody passes a closed barrier, and double
//! barrier participants never pass `enter` before all N arrived nor `leave` before all left,
//! with a leader SIGKILL in the middle.

mod common;

use common::{cluster, session};
use coord_client::ErrorCode;
use coord_recipes::{Barrier, DoubleBarrier};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_never_pass_early() {
    let (mut cluster, leader) = cluster().await;
    let c = session(&cluster).await;
    let gate = Barrier::new(c.clone(), "/b/gate").unwrap();
    gate.set().await.unwrap();
    assert!(!gate.wait(Some(Duration::from_millis(200))).await.unwrap());

    const N: usize = 4;
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = session(&cluster).await;
        let (arrived, leaving) = (arrived.clone(), leaving.clone());
        tasks.push(tokio::spawn(async move {
            let gate = Barrier::new(client.clone(), "/b/gate").unwrap();
            assert!(gate.wait(Some(Duration::from_secs(20))).await.unwrap());
            let db = DoubleBarrier::new(client, "/b/round", N).unwrap();
            // Staggered arrivals: the early ones must wait for the late ones.
            tokio::time::sleep(Duration::from_millis(150 * i as u64)).await;
            arrived.fetch_add(1, Ordering::SeqCst);
            assert!(db.enter(Some(Duration::from_secs(20))).await.unwrap());
            assert_eq!(arrived.load(Ordering::SeqCst), N, "{i} entered early");
            tokio::time::sleep(Duration::from_millis(150 * (N - i) as u64)).await;
            leaving.fetch_add(1, Ordering::SeqCst);
            assert!(db.leave(Some(Duration::from_secs(20))).await.unwrap());
            assert_eq!(leaving.load(Ordering::SeqCst), N, "{i} left early");
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.remove().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.kill(leader);
    for t in tasks {
        t.await.unwrap();
    }
    // One participant alone times out and withdraws.
    let alone = DoubleBarrier::new(c.clone(), "/b/alone", 2).unwrap();
    assert!(!alone.enter(Some(Duration::from_millis(300))).await.unwrap());
    let (left, _) = common::retry(|| c.get_children("/b/alone")).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        DoubleBarrier::new(c.clone(), "/b/x", 0).unwrap_err().code(),
        ErrorCode::BadArguments
    );
}
