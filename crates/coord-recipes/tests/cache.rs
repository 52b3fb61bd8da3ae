//! The tree cache against a real 3-server ensemble: started while a writer is busy (so
//! changes race the initial read) and through a leader SIGKILL, it ends equal to the tree.

mod common;

use common::{cluster, retry, session};
use coord_client::CreateOptions;
use coord_recipes::{CacheEvent, TreeCache};
use std::collections::BTreeMap;
use std::time::Duration;

async fn read_tree(c: &coord_client::Client, root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        let (d, _) = retry(|| c.get_data(&p)).await.unwrap();
        let (names, _) = retry(|| c.get_children(&p)).await.unwrap();
        todo.extend(names.iter().map(|n| format!("{p}/{n}")));
        out.insert(p, d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_converges_to_the_tree_through_a_leader_kill() {
    let (mut cluster, leader) = cluster().await;
    let w = session(&cluster).await;
    w.create("/cfg", b"root", CreateOptions::persistent())
        .await
        .unwrap();
    for i in 0..5 {
        w.create(&format!("/cfg/k{i}"), b"0", CreateOptions::persistent())
            .await
            .unwrap();
    }
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            for round in 0..30 {
                let k = format!("/cfg/k{}", round % 5);
                let v = format!("{round}");
                retry(|| w.set_data(&k, v.as_bytes(), None)).await.unwrap();
                let n = format!("/cfg/new{round}");
                let _ = retry(|| w.create(&n, b"n", CreateOptions::persistent())).await;
                if round % 3 == 0 {
                    let _ = retry(|| w.delete(&n, None)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            retry(|| w.create("/cfg/done", b"", CreateOptions::persistent()))
                .await
                .unwrap();
        })
    };
    // Started while the writer runs: its first read races the changes.
    let mut cache = TreeCache::tree(session(&cluster).await, "/cfg")
        .await
        .unwrap();
    assert!(cache.get("/cfg").is_some());
    let mut node = TreeCache::node(session(&cluster).await, "/cfg/k0")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.kill(leader);
    let (mut added, mut removed) = (0, 0);
    while cache.get("/cfg/done").is_none() {
        match tokio::time::timeout(Duration::from_secs(20), cache.next())
            .await
            .expect("cache events")
            .unwrap()
        {
            CacheEvent::Added(..) => added += 1,
            CacheEvent::Removed(_) => removed += 1,
            CacheEvent::Changed(..) => {}
        }
    }
    writer.await.unwrap();
    assert!(added > 0 && removed > 0, "added {added} removed {removed}");
    let truth = read_tree(&w, "/cfg").await;
    let cached: BTreeMap<String, Vec<u8>> = cache
        .snapshot()
        .iter()
        .map(|(p, (d, _))| (p.clone(), d.clone()))
        .collect();
    assert_eq!(cached, truth);
    // The node cache ends with k0's last value.
    let want = truth["/cfg/k0"].clone();
    while node.get("/cfg/k0").map(|(d, _)| d) != Some(&want) {
        let ev = tokio::time::timeout(Duration::from_secs(10), node.next())
            .await
            .expect("node cache events")
            .unwrap();
        assert!(
            matches!(ev, CacheEvent::Changed(ref p, ..) if p == "/cfg/k0"),
            "{ev:?}"
        );
    }
    assert_eq!(node.snapshot().len(), 1, "a node cache holds one node");
}
