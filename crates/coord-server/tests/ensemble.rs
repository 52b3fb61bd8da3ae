//! Multi-process fault tests of a replicated ensemble on loopback: SIGKILL of the leader under
//! write load, SIGSTOP/SIGCONT of the leader, a follower that missed many txns, the whole
//! ensemble restarting, and observers. After each, every server's tree digest is equal and
//! every acknowledged write is present.

mod common;
use coord_client::{Client, CreateOptions};
use coord_testkit::{Cluster, runtime as rt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Acked = Arc<parking_lot::Mutex<BTreeMap<String, Vec<u8>>>>;

/// Creates nodes until stopped, recording every acknowledged create.
async fn writer(
    client: Client,
    name: String,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut n = 0;
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let path = format!("/w/{name}-{i:06}");
        let data = format!("{name}:{i}").into_bytes();
        match client
            .create(&path, &data, CreateOptions::persistent())
            .await
        {
            Ok(_) => {
                acked.lock().insert(path, data);
                n += 1;
            }
            Err(e) if e.code() == coord_proto::ErrorCode::NodeExists => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    n
}

async fn verify(cluster: &Cluster, acked: &Acked) {
    let (_, digest) = cluster.wait_converged().await;
    let acked = acked.lock().clone();
    // Every server holds every acknowledged write.
    for i in 0..cluster.servers.len() {
        if !cluster.is_running(i) {
            continue;
        }
        let c = Client::connect(cluster.config_for(i)).await.unwrap();
        let (children, _) = c.get_children("/w").await.unwrap();
        let present: std::collections::BTreeSet<String> =
            children.into_iter().map(|n| format!("/w/{n}")).collect();
        for path in acked.keys() {
            assert!(
                present.contains(path),
                "server {} lost acknowledged {path}",
                i + 1
            );
        }
        c.close().await.unwrap();
    }
    assert_ne!(digest, 0);
}

#[test]
fn leader_sigkill_under_write_load_loses_nothing() {
    let mut cluster = common::cluster(3, 0, "");
    let rt = rt();
    let acked: Acked = Arc::default();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let c = cluster.client().await;
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4 {
            let client = cluster.client().await;
            tasks.push(tokio::spawn(writer(
                client,
                format!("w{w}"),
                acked.clone(),
                stop.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let before = acked.lock().len();
        cluster.kill(leader);
        let new_leader = cluster.wait_stable().await;
        assert_ne!(new_leader, leader);
        // Writes carry on under the new leader.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().len() < before + 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "no writes after failover\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster.restart(leader).expect("restart");
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        cluster.wait_stable().await;
        verify(&cluster, &acked).await;
    });
}

#[test]
fn paused_leader_is_replaced_and_does_not_lead_when_it_wakes() {
    let cluster = common::cluster(3, 0, "");
    let rt = rt();
    let acked: Acked = Arc::default();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let c = cluster.client().await;
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        cluster.signal(leader, libc::SIGSTOP);
        // The others elect a new leader and accept writes.
        let mut others = cluster
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(i, _)| i);
        let probe = others.next().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = cluster.status(probe).await;
            if s.as_ref().is_some_and(|s| {
                s.leader.is_some() && s.leader != Some(leader as u64 + 1) && s.role != "looking"
            }) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no new leader while the old one is paused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let w = Client::connect(cluster.config_for(probe)).await.unwrap();
        for i in 0..20 {
            let p = format!("/w/during-pause-{i}");
            w.create(&p, b"x", CreateOptions::persistent())
                .await
                .unwrap();
            acked.lock().insert(p, b"x".to_vec());
        }
        cluster.signal(leader, libc::SIGCONT);
        let new_leader = cluster.wait_stable().await;
        assert_ne!(
            new_leader, leader,
            "the woken old leader must not lead the newer epoch"
        );
        // The old leader, now a follower, serves the writes made while it slept.
        let old = Client::connect(cluster.config_for(leader)).await.unwrap();
        old.sync("/").await.unwrap();
        assert_eq!(old.get_data("/w/during-pause-19").await.unwrap().0, b"x");
        verify(&cluster, &acked).await;
    });
}

#[test]
fn a_follower_that_missed_many_txns_catches_up_by_snapshot() {
    // A small DIFF window: the returning follower is too far behind and gets a SNAP.
    let mut cluster = common::cluster(3, 0, "[zab]\nmax_diff = 50");
    let rt = rt();
    let acked: Acked = Arc::default();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let follower = (leader + 1) % 3;
        let c = cluster.client().await;
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        cluster.kill(follower);
        let w = cluster.client().await;
        let mut tasks = Vec::new();
        for i in 0..600 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let p = format!("/w/missed-{i:04}");
                w.create(&p, b"m", CreateOptions::persistent())
                    .await
                    .map(|_| p)
            }));
        }
        for t in tasks {
            let p = t.await.unwrap().unwrap();
            acked.lock().insert(p, b"m".to_vec());
        }
        cluster.restart(follower).expect("restart");
        cluster.wait_stable().await;
        verify(&cluster, &acked).await;
        let log = std::fs::read_to_string(cluster.data_dir(follower).join("coordd.log")).unwrap();
        assert!(
            log.contains("installed the leader's snapshot"),
            "expected a SNAP sync:\n{}",
            cluster.logs()
        );
    });
}

/// A follower killed with SIGKILL and started again is synced by the established leader
/// without an election: the epoch stays, no server goes LOOKING, and a client of the leader
/// never sees a write fail while the follower returns.
#[test]
fn a_restarted_follower_rejoins_without_an_election() {
    let mut cluster = common::cluster(3, 0, "");
    let rt = rt();
    let acked: Acked = Arc::default();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let epoch = cluster.status(leader).await.expect("leader answers").epoch;
        let follower = (leader + 1) % 3;
        let c = Client::connect(cluster.config_for(leader)).await.unwrap();
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let log_len = |i: usize| {
            std::fs::read_to_string(cluster.data_dir(i).join("coordd.log"))
                .map(|l| l.len())
                .unwrap_or(0)
        };
        let marks: Vec<usize> = (0..3).map(log_len).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = {
            let (c, acked, stop, failures) =
                (c.clone(), acked.clone(), stop.clone(), failures.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let path = format!("/w/rejoin-{i:06}");
                    match c.create(&path, b"r", CreateOptions::persistent()).await {
                        Ok(_) => {
                            acked.lock().insert(path, b"r".to_vec());
                        }
                        Err(e) => {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            eprintln!("write {path} failed: {e}");
                        }
                    }
                }
            })
        };
        for round in 0..3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.kill(follower);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = acked.lock().len();
            cluster.restart(follower).expect("restart");
            cluster.wait_stable().await;
            let during = acked.lock().len() - before;
            eprintln!("round {round}: {during} writes completed while the follower rejoined");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        task.await.unwrap();
        for i in 0..3 {
            let st = cluster.status(i).await.expect("every server answers");
            assert_eq!(
                st.epoch,
                epoch,
                "server {} left epoch {epoch}: {st:?}\n{}",
                i + 1,
                cluster.logs()
            );
        }
        let new_leader = cluster.wait_stable().await;
        assert_eq!(new_leader, leader, "the leader kept its place");
        for (i, mark) in marks.iter().enumerate() {
            if i == follower {
                continue;
            }
            let log = std::fs::read_to_string(cluster.data_dir(i).join("coordd.log")).unwrap();
            assert!(
                !log[*mark..].contains("LOOKING"),
                "server {} went LOOKING while the follower returned:\n{}",
                i + 1,
                &log[*mark..]
            );
        }
        assert_eq!(
            failures.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a write failed while the follower returned"
        );
        assert!(acked.lock().len() > 50, "writes went on");
        verify(&cluster, &acked).await;
    });
}

#[test]
fn the_whole_ensemble_restarts_with_everything() {
    let mut cluster = common::cluster(3, 0, "snapshot_every_txns = 100");
    let rt = rt();
    let acked: Acked = Arc::default();
    rt.block_on(async {
        cluster.wait_stable().await;
        let c = cluster.client().await;
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let p = format!("/w/r-{i:04}");
                c.create(&p, b"r", CreateOptions::persistent())
                    .await
                    .map(|_| p)
            }));
        }
        for t in tasks {
            let p = t.await.unwrap().unwrap();
            acked.lock().insert(p, b"r".to_vec());
        }
        cluster.wait_converged().await;
        c.close().await.unwrap();
        for i in 0..3 {
            cluster.kill(i);
        }
        for i in 0..3 {
            cluster.restart(i).expect("restart");
        }
        cluster.wait_stable().await;
        let c = cluster.client().await;
        c.sync("/").await.unwrap();
        verify(&cluster, &acked).await;
    });
}

#[test]
fn observers_learn_every_commit_and_never_vote() {
    let mut cluster = common::cluster(3, 1, "");
    let rt = rt();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let s = cluster.status(3).await.unwrap();
        assert_eq!(s.role, "observer");
        let obs = Client::connect(cluster.config_for(3)).await.unwrap();
        obs.create("/via-observer", b"o", CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(obs.get_data("/via-observer").await.unwrap().0, b"o");
        // With two voters down, the observer does not make a quorum: no writes.
        let voters: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        cluster.kill(voters[0]);
        cluster.kill(leader);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let only = cluster.status(voters[1]).await.unwrap();
        assert_ne!(
            only.role, "leader",
            "one voter and an observer must not form a quorum"
        );
    });
}

#[test]
fn sessions_are_global_survive_failover_and_expire_through_the_leader() {
    let mut cluster = common::cluster(3, 0, "");
    let rt = rt();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let follower = (leader + 1) % 3;
        // A session on a follower with an ephemeral node.
        let cfg = cluster
            .config_for(follower)
            .session_timeout(Duration::from_secs(8));
        let mut cfg = cfg;
        cfg.servers = cluster.client_config().servers;
        cfg.servers.rotate_left(follower);
        let owner = Client::connect(cfg).await.unwrap();
        owner
            .create("/mine", b"", CreateOptions::ephemeral())
            .await
            .unwrap();
        let id = owner.session_id();
        // The leader dies: the session lives on (a new leader refreshes every timeout) and
        // the client carries on, on whichever server it reaches.
        cluster.kill(leader);
        cluster.wait_stable().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match owner.exists("/mine").await {
                Ok(Some(stat)) => {
                    assert_eq!(stat.ephemeral_owner, id);
                    break;
                }
                Ok(None) => panic!("the ephemeral vanished with the old leader"),
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "session never resumed: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert_eq!(owner.session_id(), id);
        // A session whose client goes silent (no pings) on a follower expires: the leader
        // decides, and its ephemeral goes on every server.
        let leader = cluster.wait_stable().await;
        let follower = (0..3)
            .find(|i| *i != leader && cluster.is_running(*i))
            .unwrap();
        let mut raw =
            common::RawSession::open_at(cluster.servers[follower].client, &cluster.ca()).await;
        let resp = raw.connect(800).await;
        let r = raw
            .request(
                1,
                coord_proto::Request::Create {
                    path: "/silent".into(),
                    data: vec![],
                    acl: coord_proto::Acl::open_unsafe(),
                    mode: coord_proto::CreateMode::Ephemeral,
                    ttl_ms: 0,
                },
            )
            .await;
        assert!(matches!(r, coord_proto::ReplyBody::Ok(_)), "{r:?}");
        let sid = resp.session_id;
        let watcher = cluster.client().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while watcher.exists("/silent").await.unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "session 0x{sid:x} never expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.restart(leader).expect("restart");
        cluster.wait_stable().await;
        cluster.wait_converged().await;
    });
}
