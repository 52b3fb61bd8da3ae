//! The read-write lock against a real 3-server ensemble: readers share, writers exclude
//! everyone (checked on what every session recorded, through a leader SIGKILL), and a
//! waiting writer is not overtaken by later readers.

mod common;

use common::{cluster, session};
use coord_client::LockMode;
use coord_recipes::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_writers_exclude_and_are_not_starved() {
    let (mut cluster, leader) = cluster().await;
    let c1 = session(&cluster).await;
    let c2 = session(&cluster).await;
    let c3 = session(&cluster).await;
    let (l1, l2, l3) = (
        RwLock::new(c1.clone(), "/rw/a").unwrap(),
        RwLock::new(c2.clone(), "/rw/a").unwrap(),
        RwLock::new(c3.clone(), "/rw/a").unwrap(),
    );
    let r1 = l1.read(None).await.unwrap().unwrap();
    assert_eq!(r1.mode, LockMode::Shared);
    let r2 = l2
        .read(Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        l3.write(Some(Duration::from_millis(200)))
            .await
            .unwrap()
            .is_none()
    );
    l2.release(&r2).await.unwrap();
    // A writer queues behind r1; a reader asking after it must wait for it.
    let l3b = l3.clone();
    let writer = tokio::spawn(async move { l3b.write(Some(Duration::from_secs(10))).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        l2.read(Some(Duration::from_millis(300)))
            .await
            .unwrap()
            .is_none(),
        "a later reader overtook a waiting writer"
    );
    assert!(c1.check_sequencer(&r1.sequencer).await.unwrap());
    l1.release(&r1).await.unwrap();
    let w = writer.await.unwrap().unwrap().unwrap();
    assert_eq!(w.mode, LockMode::Exclusive);
    assert!(!c1.check_sequencer(&r1.sequencer).await.unwrap());
    l3.release(&w).await.unwrap();

    // Mixed load: never a writer with anyone else.
    let readers = Arc::new(AtomicIsize::new(0));
    let writers = Arc::new(AtomicIsize::new(0));
    let holds = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let lock = RwLock::new(session(&cluster).await, "/rw/b").unwrap();
        let (readers, writers, holds) = (readers.clone(), writers.clone(), holds.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                let write = (i + round) % 3 == 0;
                let hold = if write {
                    lock.write(Some(Duration::from_secs(30))).await
                } else {
                    lock.read(Some(Duration::from_secs(30))).await
                }
                .unwrap()
                .unwrap();
                if write {
                    assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                    assert_eq!(readers.load(Ordering::SeqCst), 0, "a writer with readers");
                } else {
                    readers.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(writers.load(Ordering::SeqCst), 0, "a reader with a writer");
                }
                holds.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
                if write {
                    writers.fetch_sub(1, Ordering::SeqCst);
                } else {
                    readers.fetch_sub(1, Ordering::SeqCst);
                }
                lock.release(&hold).await.unwrap();
            }
        }));
    }
    common::wait_for("some holds", Duration::from_secs(20), || async {
        (holds.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    cluster.kill(leader);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(holds.load(Ordering::SeqCst), 20);
}
