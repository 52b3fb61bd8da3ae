//! Network partitions with real network namespaces (ip netns + veth + a bridge): each server
//! is its own host; a server is cut off by taking its link down, and healed. After healing,
//! every server's digest is equal and every acknowledged write is present. Needs root and
//! iproute2 (CI installs it).

mod common;
use coord_client::{Client, CreateOptions};
use coord_testkit::runtime as rt;
use std::time::{Duration, Instant};

#[test]
fn an_isolated_leader_steps_down_and_rejoins_after_the_majority_moved_on() {
    let cluster = common::cluster_in_netns(3, "");
    let rt = rt();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let c = cluster.client().await;
        c.create("/p", b"before", CreateOptions::persistent())
            .await
            .unwrap();
        let netns = cluster.netns.as_ref().unwrap();
        netns.isolate(leader).expect("ip link");
        // The majority elects a new leader and takes writes.
        let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut acked = Vec::new();
        while acked.len() < 20 {
            assert!(
                Instant::now() < deadline,
                "the majority never took writes\n{}",
                cluster.logs()
            );
            let mut cfg = cluster.config_for(majority[0]);
            cfg.servers
                .push(cluster.servers[majority[1]].client.to_string());
            let Ok(w) = Client::connect(cfg.connect_timeout(Duration::from_secs(2))).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            for i in acked.len()..20 {
                let p = format!("/p/majority-{i}");
                match w.create(&p, b"m", CreateOptions::persistent()).await {
                    Ok(_) => acked.push(p),
                    Err(_) => break,
                }
            }
        }
        // The isolated old leader, seen from inside its namespace, no longer leads.
        let server = cluster.servers[leader].client.to_string();
        let ca = cluster.ca();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (server, ca) = (server.clone(), ca.clone());
            let role = netns
                .run_inside(leader, move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let cfg = coord_client::ClientConfig::new(&server, &ca)
                            .unwrap()
                            .connect_timeout(Duration::from_secs(1));
                        coord_client::server_status(&cfg, &server)
                            .await
                            .map(|s| s.role)
                    })
                })
                .expect("enter the isolated server's namespace");
            match role {
                Ok(r) if r != "leader" => break,
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "the isolated leader still claims to lead\n{}",
                        cluster.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        netns.heal(leader).expect("ip link");
        let new_leader = cluster.wait_stable().await;
        assert_ne!(new_leader, leader);
        cluster.wait_converged().await;
        let old = Client::connect(cluster.config_for(leader)).await.unwrap();
        old.sync("/").await.unwrap();
        for p in &acked {
            assert!(
                old.exists(p).await.unwrap().is_some(),
                "{p} missing on the healed old leader"
            );
        }
        assert_eq!(old.get_data("/p").await.unwrap().0, b"before");
    });
}

#[test]
fn a_cut_off_follower_catches_up_after_healing() {
    let cluster = common::cluster_in_netns(3, "");
    let rt = rt();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let follower = (leader + 1) % 3;
        let netns = cluster.netns.as_ref().unwrap();
        netns.isolate(follower).expect("ip link");
        let mut cfg = cluster.config_for(leader);
        cfg.servers
            .push(cluster.servers[(leader + 2) % 3].client.to_string());
        let w = Client::connect(cfg).await.unwrap();
        w.create("/q", b"", CreateOptions::persistent())
            .await
            .unwrap();
        for i in 0..200 {
            w.create(&format!("/q/{i}"), b"x", CreateOptions::persistent())
                .await
                .unwrap();
        }
        netns.heal(follower).expect("ip link");
        cluster.wait_stable().await;
        cluster.wait_converged().await;
        let f = Client::connect(cluster.config_for(follower)).await.unwrap();
        assert_eq!(f.get_all_children_number("/q").await.unwrap(), 200);
    });
}
