//! Leader election against a real 3-server ensemble: one leader per term and never two at
//! once through a leader SIGKILL, an observer that sees terms only grow, and an expired
//! leader replaced and fenced off.

mod common;

use common::{cluster, config_of, connect, retry, session, wait_for};
use coord_recipes::{Election, LockStatus};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_per_term_through_a_leader_kill() {
    let (mut cluster, leader) = cluster().await;
    const CANDIDATES: usize = 4;
    const TERMS_EACH: usize = 2;
    let leading = Arc::new(AtomicUsize::new(0));
    let terms = Arc::new(parking_lot::Mutex::new(Vec::<(u64, usize)>::new()));

    let watcher = session(&cluster).await;
    let mut observer = Election::observer(watcher.clone(), "/election").unwrap();
    let first = observer.recv().await.unwrap();
    assert!(first.is_none(), "a leader before anyone campaigned");
    let observed = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < CANDIDATES * TERMS_EACH {
            match observer.recv().await {
                Ok(Some(l)) => seen.push((l.term, l.value)),
                Ok(None) => {}
                Err(e) => panic!("observer: {e}"),
            }
        }
        seen
    });

    let mut tasks = Vec::new();
    for me in 0..CANDIDATES {
        let client = session(&cluster).await;
        let (leading, terms) = (leading.clone(), terms.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("c{me}");
            let election = Election::new(client.clone(), "/election", name.as_bytes()).unwrap();
            for _ in 0..TERMS_EACH {
                assert!(
                    election
                        .campaign(Some(Duration::from_secs(30)))
                        .await
                        .unwrap()
                );
                assert_eq!(leading.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
                let term = election.term().unwrap();
                terms.lock().push((term, me));
                let current = retry(|| election.leader()).await.unwrap().unwrap();
                assert_eq!(current.term, term);
                assert_eq!(current.value, name.as_bytes());
                let seq = election.sequencer().unwrap();
                assert!(retry(|| client.check_sequencer(&seq)).await.unwrap());
                // Long enough for the observer to see each term.
                tokio::time::sleep(Duration::from_millis(300)).await;
                leading.fetch_sub(1, Ordering::SeqCst);
                election.resign().await.unwrap();
                assert!(!election.is_leader());
            }
        }));
    }
    wait_for("two terms", Duration::from_secs(20), || async {
        (terms.lock().len() >= 2).then_some(())
    })
    .await;
    cluster.kill(leader);
    for t in tasks {
        t.await.unwrap();
    }
    let terms = terms.lock().clone();
    assert_eq!(terms.len(), CANDIDATES * TERMS_EACH);
    let mut by_term = BTreeMap::new();
    for (term, who) in &terms {
        assert!(by_term.insert(*term, *who).is_none(), "term {term} twice");
    }
    for pair in terms.windows(2) {
        assert!(pair[0].0 < pair[1].0, "terms not increasing: {terms:?}");
    }
    let seen = tokio::time::timeout(Duration::from_secs(10), observed)
        .await
        .expect("the observer saw every term")
        .unwrap();
    for pair in seen.windows(2) {
        assert!(pair[0].0 < pair[1].0, "observer went back: {seen:?}");
    }
    for (term, value) in &seen {
        let who = by_term.get(term).expect("observed a term nobody led");
        assert_eq!(value, format!("c{who}").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_leader_is_replaced_and_fenced() {
    let (mut cluster, leader) = cluster().await;
    let follower = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let a = connect(
        config_of(&cluster, &[follower])
            .session_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(1)),
    )
    .await;
    let b = connect(config_of(&cluster, &others)).await;
    let ea = Election::new(a.clone(), "/el", b"a").unwrap();
    let eb = Election::new(b.clone(), "/el", b"b").unwrap();
    assert!(ea.campaign(Some(Duration::from_secs(10))).await.unwrap());
    assert!(!eb.campaign(Some(Duration::from_millis(200))).await.unwrap());
    let old = ea.sequencer().unwrap();
    let old_term = ea.term().unwrap();

    cluster.pause(follower);
    assert!(eb.campaign(Some(Duration::from_secs(15))).await.unwrap());
    assert!(eb.term().unwrap() > old_term);
    let now = eb.leader().await.unwrap().unwrap();
    assert_eq!(now.value, b"b");
    assert!(!b.check_sequencer(&old).await.unwrap());
    cluster.resume(follower);
    wait_for("a to learn it lost", Duration::from_secs(15), || async {
        (ea.status() == LockStatus::Lost).then_some(())
    })
    .await;
    assert!(!ea.is_leader());
    eb.resign().await.unwrap();
    assert!(eb.leader().await.unwrap().is_none());
}
