//! Two-phase commit against a real 3-server ensemble: all-yes commits through a leader
//! SIGKILL, a no or a missing vote aborts, a participant that "crashed" after voting yes
//! learns the decision from a new session, and a participant's abort racing the
//! coordinator's commit leaves everyone with one decision.

mod common;

use common::{cluster, session};
use coord_client::ErrorCode;
use coord_recipes::{Coordinator, Decision, Participant};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_ends_with_the_same_decision() {
    let (mut cluster, leader) = cluster().await;
    let coord = Coordinator::new(session(&cluster).await, "/txns").unwrap();
    let names = ["p0", "p1", "p2"];

    // All yes, the ensemble's leader killed between the votes and the decision.
    coord.begin("t1", &names).await.unwrap();
    let mut voters = Vec::new();
    for n in names {
        let p = Participant::new(session(&cluster).await, "/txns", n).unwrap();
        voters.push(tokio::spawn(async move {
            assert!(p.wait_begun("t1", Duration::from_secs(10)).await.unwrap());
            p.vote("t1", true).await.unwrap();
            p.decision("t1", Some(Duration::from_secs(20)))
                .await
                .unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(leader);
    assert_eq!(
        coord.decide("t1", Duration::from_secs(15)).await.unwrap(),
        Decision::Commit
    );
    for v in voters {
        assert_eq!(v.await.unwrap(), Some(Decision::Commit));
    }

    // One no: abort.
    coord.begin("t2", &names).await.unwrap();
    for (i, n) in names.iter().enumerate() {
        let p = Participant::new(session(&cluster).await, "/txns", n).unwrap();
        p.vote("t2", i != 1).await.unwrap();
    }
    assert_eq!(
        coord.decide("t2", Duration::from_secs(5)).await.unwrap(),
        Decision::Abort
    );

    // p2 never votes: the timeout aborts. p0 voted yes and "crashed" (its session closed);
    // on restart a new session reads the decision.
    coord.begin("t3", &names).await.unwrap();
    let crashed = session(&cluster).await;
    Participant::new(crashed.clone(), "/txns", "p0")
        .unwrap()
        .vote("t3", true)
        .await
        .unwrap();
    crashed.close().await.unwrap();
    let p1 = Participant::new(session(&cluster).await, "/txns", "p1").unwrap();
    p1.vote("t3", true).await.unwrap();
    assert_eq!(
        coord
            .decide("t3", Duration::from_millis(500))
            .await
            .unwrap(),
        Decision::Abort
    );
    let restarted = Participant::new(session(&cluster).await, "/txns", "p0").unwrap();
    assert_eq!(
        restarted
            .decision("t3", Some(Duration::ZERO))
            .await
            .unwrap(),
        Some(Decision::Abort)
    );
    // A vote cannot be changed.
    assert_eq!(
        restarted.vote("t3", false).await.unwrap_err().code(),
        ErrorCode::NodeExists
    );

    // A participant that gives up on the coordinator aborts; the coordinator, deciding
    // after all votes are in, finds the abort and reports it: one decision for all.
    coord.begin("t4", &names).await.unwrap();
    let ps: Vec<Participant> = {
        let mut v = Vec::new();
        for n in names {
            v.push(Participant::new(session(&cluster).await, "/txns", n).unwrap());
        }
        v
    };
    for p in &ps {
        p.vote("t4", true).await.unwrap();
    }
    assert_eq!(
        ps[2].abort_if_undecided("t4").await.unwrap(),
        Decision::Abort
    );
    assert_eq!(
        coord.decide("t4", Duration::from_secs(5)).await.unwrap(),
        Decision::Abort
    );
    for p in &ps {
        assert_eq!(
            p.decision("t4", Some(Duration::ZERO)).await.unwrap(),
            Some(Decision::Abort)
        );
    }
    // And once committed, a late abort finds the commit.
    coord.begin("t5", &names).await.unwrap();
    for p in &ps {
        p.vote("t5", true).await.unwrap();
    }
    assert_eq!(
        coord.decide("t5", Duration::from_secs(5)).await.unwrap(),
        Decision::Commit
    );
    assert_eq!(
        ps[0].abort_if_undecided("t5").await.unwrap(),
        Decision::Commit
    );

    // Bad input gets a clear error.
    assert_eq!(
        coord.begin("t1", &names).await.unwrap_err().code(),
        ErrorCode::NodeExists
    );
    assert_eq!(
        coord.begin("a/b", &names).await.unwrap_err().code(),
        ErrorCode::BadArguments
    );
    assert_eq!(
        coord.begin("t9", &[]).await.unwrap_err().code(),
        ErrorCode::BadArguments
    );
}
