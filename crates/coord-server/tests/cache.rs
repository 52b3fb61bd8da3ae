//! The client cache (Chubby's, `ReadMode::Cached`) through real `coordd` processes: cached
//! reads see every acknowledged write on every server, cost no round trip while their lease
//! lasts, and stay correct when the caching session's server is paused (the write waits for
//! the lease) and when the leader is paused and replaced (the new leader's servers accept no
//! session until the old leases ran out).

mod common;
use coord_client::{Client, CreateOptions, ReadMode};
use coord_testkit::runtime as rt;
use std::time::Duration;

/// Cached readers on every server and writers on every server: after each acknowledged
/// write, every cached reader sees it, on data, Stat, children and existence; and reads in
/// between are served from the caches.
#[test]
fn cached_reads_see_every_acknowledged_write_on_every_server() {
    let cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for i in 0..3 {
            writers.push(Client::connect(cluster.config_for(i)).await.unwrap());
            let r = Client::connect(cluster.config_for(i).cache(true))
                .await
                .unwrap();
            assert_eq!(r.read_mode(), ReadMode::Cached);
            readers.push(r);
        }
        writers[0]
            .create("/k", b"0", CreateOptions::persistent())
            .await
            .unwrap();
        for n in 1..=40u32 {
            let w = &writers[n as usize % 3];
            let value = n.to_string().into_bytes();
            w.set_data("/k", &value, None).await.unwrap();
            if n % 4 == 0 {
                w.create(&format!("/k/c{n}"), b"", CreateOptions::persistent())
                    .await
                    .unwrap();
            }
            for (i, r) in readers.iter().enumerate() {
                // Twice: a miss (or a hit that must be fresh), then very likely a hit.
                for _ in 0..2 {
                    let (data, stat) = r.get_data("/k").await.unwrap();
                    assert_eq!(
                        data,
                        value,
                        "a cached read on server {} missed write {n}",
                        i + 1
                    );
                    assert_eq!(stat.version, n as i32);
                    let children = r.get_children("/k").await.unwrap().0;
                    assert_eq!(children.len(), n as usize / 4, "children after write {n}");
                    let child = format!("/k/c{n}");
                    assert_eq!(r.exists(&child).await.unwrap().is_some(), n % 4 == 0);
                }
            }
            if n % 4 == 0 {
                writers[0].delete(&format!("/k/c{n}"), None).await.unwrap();
                for r in &readers {
                    assert!(r.exists(&format!("/k/c{n}")).await.unwrap().is_none());
                }
                writers[0]
                    .create(&format!("/k/c{n}"), b"", CreateOptions::persistent())
                    .await
                    .unwrap();
            }
        }
        for (i, r) in readers.iter().enumerate() {
            let s = r.cache_stats();
            assert!(
                s.hits > 0,
                "server {}: no read was served from the cache: {s:?}",
                i + 1
            );
            assert!(
                s.invalidations > 0,
                "server {}: no invalidation arrived: {s:?}",
                i + 1
            );
        }
    });
}

/// A single server keeps the registry itself: the same guarantee without an ensemble.
#[test]
fn a_single_server_invalidates_too() {
    let server = common::Coordd::start("");
    rt().block_on(async {
        let w = server.client().await;
        let r = Client::connect(server.client_config().cache(true))
            .await
            .unwrap();
        w.create("/s", b"0", CreateOptions::persistent())
            .await
            .unwrap();
        for n in 1..=30u32 {
            assert_eq!(
                r.get_data("/s").await.unwrap().0,
                (n - 1).to_string().into_bytes()
            );
            w.set_data("/s", n.to_string().as_bytes(), None)
                .await
                .unwrap();
            assert_eq!(
                r.get_data("/s").await.unwrap().0,
                n.to_string().into_bytes()
            );
        }
        assert!(r.cache_stats().invalidations >= 30);
    });
}

/// While an entry's lease lasts a cached read needs no server at all (every server is
/// paused and it still answers); once the lease has run out it goes to the server.
#[test]
fn a_cached_read_needs_no_server_until_its_lease_ends() {
    let mut cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        cluster.wait_stable().await;
        let w = cluster.client().await;
        w.create("/p", b"v", CreateOptions::persistent())
            .await
            .unwrap();
        let r = Client::connect(cluster.client_config().cache(true))
            .await
            .unwrap();
        assert_eq!(r.get_data("/p").await.unwrap().0, b"v");
        for i in 0..3 {
            cluster.pause(i);
        }
        // Well inside the 1 s lease (used for 900 ms from the fence's sending).
        let hit = tokio::time::timeout(Duration::from_millis(300), r.get_data("/p")).await;
        assert_eq!(
            hit.expect("a cached read waited for a server").unwrap().0,
            b"v"
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let miss = tokio::time::timeout(Duration::from_millis(500), r.get_data("/p")).await;
        assert!(
            miss.is_err(),
            "a read past its lease was answered with every server paused"
        );
        for i in 0..3 {
            cluster.resume(i);
        }
        assert_eq!(r.get_data("/p").await.unwrap().0, b"v");
    });
}

/// The caching session's server is paused, so neither the invalidation nor its ack can
/// pass: the write to the cached node completes only after the lease ran out, and the
/// caching session never reads the old value after the write was acknowledged.
#[test]
fn a_write_waits_for_the_lease_of_a_session_that_cannot_ack() {
    let mut cluster = common::cluster(3, 0, "");
    rt().block_on(async {
        let leader = cluster.wait_stable().await;
        let follower = (leader + 1) % 3;
        let other = (leader + 2) % 3;
        let w = Client::connect(cluster.config_for(other)).await.unwrap();
        w.create("/q", b"old", CreateOptions::persistent())
            .await
            .unwrap();
        let r = Client::connect(
            cluster
                .config_for(follower)
                .cache(true)
                .session_timeout(Duration::from_secs(6)),
        )
        .await
        .unwrap();
        assert_eq!(r.get_data("/q").await.unwrap().0, b"old");
        cluster.pause(follower);
        w.set_data("/q", b"new", None).await.unwrap();
        // Acknowledged: the old value must be gone from the cache (its lease ran out), so
        // the read waits for the paused server rather than answer from the cache.
        let read = tokio::time::timeout(Duration::from_millis(300), r.get_data("/q")).await;
        assert!(
            read.is_err(),
            "a cached read returned {read:?} after a newer write was acknowledged"
        );
        cluster.resume(follower);
        assert_eq!(r.get_data("/q").await.unwrap().0, b"new");
    });
}

/// The leader, which a caching session is connected to, is paused; the others elect a new
/// leader, which knows nothing of the old registrations. A write through the new leader is
/// acknowledged only once every lease the old one granted has run out (no session is
/// attached to a server of the new term before that), so the caching session reads it.
#[test]
fn leases_of_a_deposed_leader_run_out_before_the_new_one_acknowledges() {
    // A lease longer than an election, so that without the wait the new leader would
    // acknowledge the write while the old lease still lasts.
    let mut cluster = common::cluster(
        3,
        0,
        "cache_lease_ms = 4000\nmax_session_timeout_ms = 60000",
    );
    rt().block_on(async {
        let leader = cluster.wait_stable().await;
        let w = cluster.client().await;
        w.create("/f", b"old", CreateOptions::persistent())
            .await
            .unwrap();
        let w_cfg = cluster
            .config_for((leader + 1) % 3)
            .session_timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(15));
        let r = Client::connect(
            cluster
                .config_for(leader)
                .cache(true)
                .session_timeout(Duration::from_secs(40))
                .request_timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
        assert_eq!(r.get_data("/f").await.unwrap().0, b"old");
        cluster.pause(leader);
        // A fresh session: it can be attached only in the new term.
        let mut written = false;
        for _ in 0..50 {
            if let Ok(w2) = Client::connect(w_cfg.clone()).await
                && w2.set_data("/f", b"new", None).await.is_ok()
            {
                written = true;
                break;
            }
        }
        assert!(written, "no write was acknowledged by the new leader");
        let hit = tokio::time::timeout(Duration::from_millis(200), r.get_data("/f")).await;
        if let Ok(Ok((data, _))) = hit {
            assert_eq!(
                data, b"new",
                "a cached read returned the deposed leader's value"
            );
        }
        cluster.resume(leader);
        assert_eq!(r.get_data("/f").await.unwrap().0, b"new");
        drop(w);
    });
}

/// A lease outside its bounds is refused at start-up, with the field named.
#[test]
fn a_lease_out_of_bounds_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coordd.toml");
    std::fs::write(&cfg, "cache_lease_ms = 50\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordd"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cache_lease_ms 50"), "stderr: {err}");
}
