//! Queues against a real 3-server ensemble: priority order, every item taken once by
//! concurrent takers through a leader SIGKILL, and a locking queue whose dead consumer's
//! item is taken again and every item acked exactly once.

mod common;

use common::{cluster, config_of, connect, session, wait_for};
use coord_client::ErrorCode;
use coord_recipes::{LockingQueue, Queue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_item_taken_once_in_order_through_a_leader_kill() {
    let (mut cluster, leader) = cluster().await;
    let c = session(&cluster).await;
    let q = Queue::new(c.clone(), "/q/prio").unwrap();
    q.put_priority(b"low", 9).await.unwrap();
    q.put_priority(b"high", 0).await.unwrap();
    q.put_priority(b"mid-1", 5).await.unwrap();
    q.put_priority(b"mid-2", 5).await.unwrap();
    let mut order = Vec::new();
    while let Some(item) = q.take(Some(Duration::ZERO)).await.unwrap() {
        order.push(String::from_utf8(item).unwrap());
    }
    assert_eq!(order, ["high", "mid-1", "mid-2", "low"]);
    assert!(q.is_empty().await.unwrap());

    const ITEMS: usize = 40;
    let q = Queue::new(c.clone(), "/q/fifo").unwrap();
    for i in 0..ITEMS {
        q.put(format!("{i}").as_bytes()).await.unwrap();
    }
    let taken = Arc::new(parking_lot::Mutex::new(Vec::<(usize, usize)>::new()));
    let mut takers = Vec::new();
    for t in 0..3 {
        let q = Queue::new(session(&cluster).await, "/q/fifo").unwrap();
        let taken = taken.clone();
        takers.push(tokio::spawn(async move {
            while let Some(item) = q.take(Some(Duration::from_secs(3))).await.unwrap() {
                let n: usize = String::from_utf8(item).unwrap().parse().unwrap();
                taken.lock().push((t, n));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    wait_for("some takes", Duration::from_secs(20), || async {
        (taken.lock().len() >= 5).then_some(())
    })
    .await;
    cluster.kill(leader);
    for t in takers {
        t.await.unwrap();
    }
    let mut count = BTreeMap::new();
    for (_, n) in taken.lock().iter() {
        *count.entry(*n).or_insert(0) += 1;
    }
    assert_eq!(count.len(), ITEMS, "items lost: {count:?}");
    assert!(count.values().all(|c| *c == 1), "taken twice: {count:?}");
    assert_eq!(
        Queue::new(c.clone(), "q").unwrap_err().code(),
        ErrorCode::InvalidPath
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_item_is_taken_again_and_each_is_acked_once() {
    let (mut cluster, leader) = cluster().await;
    let follower = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let producer = session(&cluster).await;
    let q = LockingQueue::new(producer.clone(), "/q/locking").unwrap();
    const ITEMS: usize = 20;
    for i in 0..ITEMS {
        q.put(format!("{i}").as_bytes()).await.unwrap();
    }
    // A consumer that takes an item and then dies (its only server stops answering).
    let doomed = connect(
        config_of(&cluster, &[follower])
            .session_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(1)),
    )
    .await;
    let dq = LockingQueue::new(doomed.clone(), "/q/locking").unwrap();
    let orphan = dq
        .take(Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(orphan.data, b"0");
    cluster.pause(follower);

    let acked = Arc::new(parking_lot::Mutex::new(Vec::<usize>::new()));
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let client = connect(config_of(&cluster, &others)).await;
        let q = LockingQueue::new(client, "/q/locking").unwrap();
        let acked = acked.clone();
        consumers.push(tokio::spawn(async move {
            loop {
                match q.take(Some(Duration::from_millis(500))).await.unwrap() {
                    Some(item) => {
                        let n: usize = String::from_utf8(item.data.clone())
                            .unwrap()
                            .parse()
                            .unwrap();
                        q.ack(&item).await.unwrap();
                        acked.lock().push(n);
                    }
                    // Stop once everything, the orphan included, is acked.
                    None if q.is_empty().await.unwrap() => return,
                    None => {}
                }
            }
        }));
    }
    for c in consumers {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("consumers finished")
            .unwrap();
    }
    let mut acked = acked.lock().clone();
    acked.sort();
    assert_eq!(
        acked,
        (0..ITEMS).collect::<Vec<_>>(),
        "each item acked exactly once"
    );

    // The dead consumer's late ack is refused.
    cluster.resume(follower);
    let late = dq.ack(&orphan).await.unwrap_err();
    assert!(
        matches!(
            late.code(),
            ErrorCode::SessionExpired | ErrorCode::StaleSequencer
        ),
        "{late}"
    );
    assert!(q.is_empty().await.unwrap());
}
