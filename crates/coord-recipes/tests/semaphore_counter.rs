//! Semaphore and counter against a real 3-server ensemble: never more than N lease
//! holders, an expired holder's lease passes on and its sequencer goes stale, and
//! concurrent counter adds lose nothing through a leader SIGKILL.

mod common;

use common::{cluster, config_of, connect, session, wait_for};
use coord_client::ErrorCode;
use coord_recipes::{Counter, Semaphore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_n_leases_and_an_expired_lease_passes_on() {
    let (mut cluster, leader) = cluster().await;
    const N: usize = 2;
    let holding = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let client = session(&cluster).await;
        let (holding, max_seen) = (holding.clone(), max_seen.clone());
        tasks.push(tokio::spawn(async move {
            let sem = Semaphore::new(client.clone(), "/sem/a", N).unwrap();
            for _ in 0..3 {
                let lease = sem
                    .acquire(Some(Duration::from_secs(30)))
                    .await
                    .unwrap()
                    .unwrap();
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                assert!(now <= N, "{now} holders");
                assert!(lease.is_valid(&client).await.unwrap());
                tokio::time::sleep(Duration::from_millis(60)).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                sem.release(&lease).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), N, "the leases were shared");

    // A holder whose session expires loses its lease to a waiter.
    let follower = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let doomed = connect(
        config_of(&cluster, &[follower])
            .session_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(1)),
    )
    .await;
    let c = connect(config_of(&cluster, &others)).await;
    let s1 = Semaphore::new(doomed, "/sem/b", 1).unwrap();
    let s2 = Semaphore::new(c.clone(), "/sem/b", 1).unwrap();
    let stale = s1.acquire(None).await.unwrap().unwrap();
    assert!(
        s2.acquire(Some(Duration::from_millis(200)))
            .await
            .unwrap()
            .is_none()
    );
    cluster.pause(follower);
    let fresh = s2
        .acquire(Some(Duration::from_secs(15)))
        .await
        .unwrap()
        .unwrap();
    assert!(!stale.is_valid(&c).await.unwrap());
    assert!(fresh.is_valid(&c).await.unwrap());
    cluster.resume(follower);
    s2.release(&fresh).await.unwrap();
    assert_eq!(
        Semaphore::new(c.clone(), "/sem/c", 0).unwrap_err().code(),
        ErrorCode::BadArguments
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_lose_nothing_through_a_leader_kill() {
    let (mut cluster, leader) = cluster().await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let counter = Counter::new(session(&cluster).await, "/counter").unwrap();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut applied = 0i64;
            let mut unknown = 0i64;
            for _ in 0..15 {
                match counter.add(1).await {
                    Ok(_) => applied += 1,
                    // Lost reply: may or may not have been applied.
                    Err(e) if e.is_connection_loss() => unknown += 1,
                    Err(e) => panic!("add: {e}"),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            (applied, unknown)
        }));
    }
    wait_for("some adds", Duration::from_secs(20), || async {
        (done.load(Ordering::SeqCst) >= 10).then_some(())
    })
    .await;
    cluster.kill(leader);
    let (mut applied, mut unknown) = (0, 0);
    for t in tasks {
        let (a, u) = t.await.unwrap();
        applied += a;
        unknown += u;
    }
    let c = Counter::new(session(&cluster).await, "/counter").unwrap();
    let value = common::retry(|| c.get()).await.unwrap();
    assert!(
        value >= applied && value <= applied + unknown,
        "value {value}, applied {applied}, unknown {unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_view_follows_joins_leaves_and_expiry() {
    let (mut cluster, leader) = cluster().await;
    let follower = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let watcher = connect(config_of(&cluster, &others)).await;
    let g = coord_recipes::Group::new(watcher.clone(), "/services/api").unwrap();
    let mut view = g.view();
    assert!(view.recv().await.unwrap().is_empty());
    let a = connect(config_of(&cluster, &others)).await;
    let doomed = connect(
        config_of(&cluster, &[follower])
            .session_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(1)),
    )
    .await;
    let ga = coord_recipes::Group::new(a.clone(), "/services/api").unwrap();
    let gd = coord_recipes::Group::new(doomed, "/services/api").unwrap();
    ga.join("a", b"10.0.0.1:80").await.unwrap();
    ga.join("a", b"10.0.0.1:80").await.unwrap();
    assert_eq!(
        gd.join("a", b"x").await.unwrap_err().code(),
        ErrorCode::NodeExists
    );
    gd.join("d", b"10.0.0.2:80").await.unwrap();
    let mut members = view.recv().await.unwrap();
    while members.len() < 2 {
        members = view.recv().await.unwrap();
    }
    assert_eq!(
        members.get("a").map(Vec::as_slice),
        Some(&b"10.0.0.1:80"[..])
    );
    // The member whose session expires drops out of the view.
    cluster.pause(follower);
    loop {
        let m = view.recv().await.unwrap();
        if !m.contains_key("d") {
            assert!(m.contains_key("a"));
            break;
        }
    }
    cluster.resume(follower);
    ga.leave("a").await.unwrap();
    assert!(view.recv().await.unwrap().is_empty());
    assert_eq!(
        ga.join("a/b", b"").await.unwrap_err().code(),
        ErrorCode::BadArguments
    );
}
