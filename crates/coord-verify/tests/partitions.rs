//! Partitions by blackhole routes in network namespaces (coord-testkit): only server-to-server
//! traffic is cut, QUIC shrugs off the send errors, and healing restores the links. Needs root
//! and iproute2.

mod common;
use coord_client::{Client, CreateOptions};
use coord_testkit::{Cluster, Partition};
use std::time::{Duration, Instant};

/// Writes through any server until one succeeds or `bound` passes.
async fn write_somewhere(cluster: &Cluster, path: &str, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        let cfg = cluster
            .client_config()
            .connect_timeout(Duration::from_secs(2));
        if let Ok(c) = Client::connect(cfg).await {
            let ok = tokio::time::timeout(
                Duration::from_secs(3),
                c.create(path, b"x", CreateOptions::persistent()),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            let _ = c.close().await;
            if ok {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[test]
fn route_partitions_cut_servers_apart_and_healing_restores_them() {
    let mut cluster = Cluster::builder(common::coordd())
        .voters(3)
        .netns(true)
        .start()
        .expect("start the ensemble in namespaces");
    let rt = coord_testkit::runtime();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let old_epoch = cluster.status(leader).await.expect("status").epoch;

        // The leader cut off from both followers: they elect a new leader, and the old one,
        // which clients still reach, stops leading.
        cluster
            .partition(&Partition::isolate(3, leader))
            .expect("partition");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut new_leader = None;
            for i in (0..3).filter(|i| *i != leader) {
                if let Some(s) = cluster.status(i).await
                    && s.role == "leader"
                    && s.epoch > old_epoch
                {
                    new_leader = Some(i);
                }
            }
            let old = cluster.status(leader).await;
            if new_leader.is_some() && old.is_some_and(|s| s.role != "leader") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader behind the partition\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            write_somewhere(&cluster, "/during-isolation", Duration::from_secs(20)).await,
            "the majority took no write\n{}",
            cluster.logs()
        );
        cluster.heal_all().expect("heal");
        cluster.wait_stable().await;
        cluster.wait_converged().await;

        // A bridge: the middle server sees both sides, which cannot see each other; it keeps a
        // quorum with either, so writes go on.
        let leader = cluster.wait_stable().await;
        let (a, b, c) = (leader, (leader + 1) % 3, (leader + 2) % 3);
        cluster
            .partition(&Partition::bridge(vec![a], b, vec![c]))
            .expect("partition");
        assert!(
            write_somewhere(&cluster, "/across-the-bridge", Duration::from_secs(20)).await,
            "no write with a bridge\n{}",
            cluster.logs()
        );
        cluster.heal_all().expect("heal");
        cluster.wait_stable().await;
        cluster.wait_converged().await;
        let check = cluster.client().await;
        for p in ["/during-isolation", "/across-the-bridge"] {
            assert!(check.exists(p).await.expect("exists").is_some(), "{p} lost");
        }
    });
    // The blackholed sends failed locally (EINVAL), were logged, and no server died of it.
    let logs = cluster.logs_tail(100_000);
    assert!(
        logs.contains("sendmsg error"),
        "no send was blackholed?\n{logs}"
    );
    for i in 0..3 {
        assert_ne!(cluster.process_state(i), "exited", "server {} died", i + 1);
    }
}
