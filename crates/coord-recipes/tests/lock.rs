//! The exclusive lock against a real 3-server ensemble: mutual exclusion through a leader
//! SIGKILL, reentrancy, timeouts and cancellation that leave nothing behind, and an expired
//! holder that is fenced off and held back by the lock-delay.

mod common;

use common::{cluster, config_of, connect, retry, session, wait_for};
use coord_client::{CreateOptions, ErrorCode, MultiOp, Sequencer};
use coord_recipes::{Lock, LockOptions, LockStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a worker saw while it held the lock.
#[derive(Debug, Clone)]
struct Held {
    worker: usize,
    generation: u64,
    session: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_two_holders_through_a_leader_kill() {
    let (mut cluster, leader) = cluster().await;
    let setup = session(&cluster).await;
    setup
        .create("/shared", b"", CreateOptions::persistent())
        .await
        .unwrap();
    const WORKERS: usize = 5;
    const ROUNDS: usize = 4;
    let inside = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(parking_lot::Mutex::new(Vec::<Held>::new()));
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let client = session(&cluster).await;
        let (inside, log) = (inside.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(client.clone(), "/locks/a").unwrap();
            for _ in 0..ROUNDS {
                assert!(
                    lock.acquire(Some(Duration::from_secs(30))).await.unwrap(),
                    "worker {worker} never got the lock"
                );
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(now, 1, "two holders at once (worker {worker})");
                let seq = lock.sequencer().unwrap();
                let decoded = Sequencer::decode(&seq).unwrap();
                assert_eq!(decoded.session_id, client.session_id());
                log.lock().push(Held {
                    worker,
                    generation: lock.generation().unwrap(),
                    session: client.session_id(),
                });
                // A fenced write: applied only because the lock is held.
                retry(|| {
                    client.multi(vec![
                        MultiOp::CheckSequencer {
                            sequencer: seq.clone(),
                        },
                        MultiOp::SetData {
                            path: "/shared".into(),
                            data: decoded.czxid.to_le_bytes().to_vec(),
                            version: -1,
                        },
                    ])
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lock.release().await.unwrap();
                assert_eq!(lock.status(), LockStatus::NotHeld);
            }
        }));
    }
    // Kill the ensemble's leader while the workers contend.
    wait_for("a few holds", Duration::from_secs(20), || async {
        (log.lock().len() >= 3).then_some(())
    })
    .await;
    cluster.kill(leader);
    for t in tasks {
        t.await.unwrap();
    }
    let log = log.lock().clone();
    assert_eq!(log.len(), WORKERS * ROUNDS);
    // Each hold has its own generation, in the order the holds happened.
    for pair in log.windows(2) {
        assert!(
            pair[0].generation < pair[1].generation,
            "generations not increasing: {pair:?}"
        );
    }
    for w in 0..WORKERS {
        assert_eq!(log.iter().filter(|h| h.worker == w).count(), ROUNDS);
    }
    assert!(log.iter().all(|h| h.session != 0));
    // Nothing is left in the lock's directory.
    let (children, _) = retry(|| setup.get_children("/locks/a")).await.unwrap();
    assert!(children.is_empty(), "left behind: {children:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrant_try_acquire_timeout_and_cancel_leave_nothing() {
    let (cluster, _) = cluster().await;
    let a = session(&cluster).await;
    let b = session(&cluster).await;
    let la = Lock::new(a.clone(), "/locks/r").unwrap();
    let lb = Lock::new(b.clone(), "/locks/r").unwrap();

    assert!(la.try_acquire().await.unwrap());
    assert!(la.acquire(None).await.unwrap(), "re-entry");
    assert_eq!(la.hold_count(), 2);
    let holder = lb.holder().await.unwrap().expect("a holder");
    assert_eq!(holder.session_id, a.session_id());
    assert_eq!(Some(holder.czxid), la.generation());
    assert!(b.check_sequencer(&la.sequencer().unwrap()).await.unwrap());

    assert!(!lb.try_acquire().await.unwrap());
    assert!(
        !lb.acquire(Some(Duration::from_millis(300))).await.unwrap(),
        "b got a held lock"
    );
    // A cancelled acquire (future dropped) removes its queue node in the background.
    let cancelled = tokio::time::timeout(Duration::from_millis(300), lb.acquire(None)).await;
    assert!(cancelled.is_err());
    let only_a = || async {
        let (c, _) = a.get_children("/locks/r").await.unwrap();
        (c.len() == 2).then_some(c)
    };
    let left = wait_for("b's nodes to go", Duration::from_secs(10), only_a).await;
    assert!(left.contains(&"holder".to_string()), "{left:?}");

    la.release().await.unwrap();
    assert_eq!(la.status(), LockStatus::Held, "one acquire still open");
    assert!(!lb.try_acquire().await.unwrap());
    let old = la.sequencer().unwrap();
    la.release().await.unwrap();
    assert_eq!(la.status(), LockStatus::NotHeld);
    assert!(!b.check_sequencer(&old).await.unwrap(), "released = stale");
    assert!(lb.try_acquire().await.unwrap());
    assert!(lb.generation().unwrap() > Sequencer::decode(&old).unwrap().czxid);
    lb.release().await.unwrap();

    // Misuse gets a clear error.
    assert_eq!(
        la.release().await.unwrap_err().code(),
        ErrorCode::BadArguments
    );
    assert_eq!(
        Lock::new(a.clone(), "locks").unwrap_err().code(),
        ErrorCode::InvalidPath
    );
    assert_eq!(
        Lock::new(a.clone(), "/").unwrap_err().code(),
        ErrorCode::InvalidPath
    );
    let too_long = LockOptions {
        lock_delay: Duration::from_secs(61),
        ..LockOptions::default()
    };
    assert_eq!(
        Lock::with_options(a.clone(), "/locks/x", too_long)
            .unwrap_err()
            .code(),
        ErrorCode::BadArguments
    );
    assert_eq!(
        a.check_sequencer(b"not a sequencer")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::BadArguments
    );
    let (c, _) = a.get_children("/locks/r").await.unwrap();
    assert!(c.is_empty(), "left behind: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holder_is_fenced_and_lock_delay_holds_the_lock() {
    let (mut cluster, leader) = cluster().await;
    let follower = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    // The holder talks to one follower only: pausing that server cuts it off for good.
    let a = connect(
        config_of(&cluster, &[follower])
            .session_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(1)),
    )
    .await;
    let c = connect(config_of(&cluster, &others)).await;
    let opts = LockOptions {
        lock_delay: Duration::from_secs(3),
        data: b"a".to_vec(),
    };
    let la = Lock::with_options(a.clone(), "/locks/e", opts.clone()).unwrap();
    let lc = Lock::with_options(c.clone(), "/locks/e", opts).unwrap();
    assert!(la.acquire(Some(Duration::from_secs(10))).await.unwrap());
    let stale = la.sequencer().unwrap();
    let a_gen = la.generation().unwrap();
    let a_session = a.session_id();
    let mut events = a.session_events();

    cluster.pause(follower);
    // The servers expire a's session: its holder node vanishes...
    wait_for("a's holder to vanish", Duration::from_secs(15), || async {
        let h = retry(|| lc.holder()).await.unwrap();
        h.is_none().then_some(())
    })
    .await;
    // ...but the lock-delay keeps the lock from the next taker for a while.
    assert!(
        !lc.try_acquire().await.unwrap(),
        "taken during the lock-delay"
    );
    assert!(lc.acquire(Some(Duration::from_secs(15))).await.unwrap());
    assert!(lc.generation().unwrap() > a_gen);
    let holder = lc.holder().await.unwrap().unwrap();
    assert_eq!(holder.session_id, c.session_id());
    assert_ne!(holder.session_id, a_session);

    // The stale holder's fencing token is refused, the new one accepted.
    assert!(!c.check_sequencer(&stale).await.unwrap());
    assert!(c.check_sequencer(&lc.sequencer().unwrap()).await.unwrap());
    let fenced = c
        .multi(vec![
            MultiOp::CheckSequencer { sequencer: stale },
            MultiOp::Create {
                path: "/written-by-a".into(),
                data: vec![],
                acl: coord_client::Acl::open_unsafe(),
                mode: coord_client::CreateMode::Persistent,
                ttl_ms: 0,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(fenced.code(), ErrorCode::StaleSequencer);
    assert!(c.exists("/written-by-a").await.unwrap().is_none());

    // The old holder learns it: jeopardy first, then lost.
    cluster.resume(follower);
    wait_for("a's session to end", Duration::from_secs(15), || async {
        (la.status() == LockStatus::Lost).then_some(())
    })
    .await;
    let mut saw = Vec::new();
    while let Some(e) = events.try_recv() {
        saw.push(e);
    }
    assert!(
        saw.contains(&coord_client::SessionEvent::Jeopardy),
        "events: {saw:?}"
    );
    assert!(la.release().await.is_err(), "a lost hold is reported");
    assert_eq!(la.status(), LockStatus::NotHeld);
    lc.release().await.unwrap();
}
