//! Durability: SIGKILL the server at many points while clients write, restart it, and find
//! every acknowledged write. Kill points come from a seeded RNG (printed, replayable with
//! COORD_CRASH_SEED), so they land inside fsyncs, snapshot writes, segment rolls and purges.

mod common;
use common::*;
use coord_client::{Client, CreateOptions};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Ledger {
    /// Created paths whose create was acknowledged, with their data.
    created: BTreeMap<String, Vec<u8>>,
    /// Per writer: highest acknowledged counter value, highest attempted.
    counters: BTreeMap<String, (u64, u64)>,
}

async fn writer(client: Client, name: String, ledger: Arc<parking_lot::Mutex<Ledger>>, start: u64) {
    let counter = format!("/c/{name}");
    let mut seq = start;
    loop {
        seq += 1;
        let path = format!("/k/{name}-{seq:08}");
        let data = format!("{name}:{seq}").into_bytes();
        match client
            .create(&path, &data, CreateOptions::persistent())
            .await
        {
            Ok(p) => {
                assert_eq!(p, path);
                ledger.lock().created.insert(path, data);
            }
            // Made durable before the last kill but never acknowledged: fine, move on.
            Err(e) if e.code() == coord_proto::ErrorCode::NodeExists => {}
            Err(_) => return,
        }
        ledger.lock().counters.entry(counter.clone()).or_default().1 = seq;
        match client
            .set_data(&counter, seq.to_string().as_bytes(), None)
            .await
        {
            Ok(_) => ledger.lock().counters.entry(counter.clone()).or_default().0 = seq,
            Err(_) => return,
        }
    }
}

#[test]
fn sigkill_at_many_points_loses_no_acknowledged_write() {
    let seed: u64 = std::env::var("COORD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC0_0D);
    let rounds: usize = std::env::var("COORD_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    println!("crash test seed {seed} rounds {rounds} (replay with COORD_CRASH_SEED={seed})");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Small snapshot interval and segments: kills land in snapshot writes, rolls and purges too.
    let mut server =
        Coordd::start("snapshot_every_txns = 300\nsnapshots_keep = 2\nlog_segment_bytes = 32768");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(parking_lot::Mutex::new(Ledger::default()));
    rt.block_on(async {
        let c = server.client().await;
        c.create("/k", b"", CreateOptions::persistent())
            .await
            .unwrap();
        c.create("/c", b"", CreateOptions::persistent())
            .await
            .unwrap();
        for w in 0..6 {
            c.create(&format!("/c/w{w}"), b"0", CreateOptions::persistent())
                .await
                .unwrap();
        }
        c.close().await.unwrap();
    });
    let mut total_acked = 0;
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.random_range(30..400));
        let before: std::collections::BTreeSet<String> =
            ledger.lock().created.keys().cloned().collect();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..6 {
                let client = Client::connect(
                    server
                        .client_config()
                        .session_timeout(Duration::from_secs(2)),
                )
                .await
                .unwrap();
                let start = ledger
                    .lock()
                    .counters
                    .get(&format!("/c/w{w}"))
                    .map_or(0, |c| c.1);
                tasks.push(tokio::spawn(writer(
                    client,
                    format!("w{w}"),
                    ledger.clone(),
                    start,
                )));
            }
            tokio::time::sleep(kill_after).await;
            server.kill();
            // Only acknowledged ops are in the ledger, so stopping the writers here is safe.
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        server.restart();
        let snapshot = {
            let l = ledger.lock();
            (l.created.clone(), l.counters.clone())
        };
        total_acked = snapshot.0.len();
        rt.block_on(async {
            let c = server.client().await;
            let (children, _) = c.get_children("/k").await.unwrap();
            let present: std::collections::BTreeSet<String> = children.into_iter().map(|n| format!("/k/{n}")).collect();
            for (path, data) in &snapshot.0 {
                assert!(present.contains(path), "round {round} (seed {seed}): acknowledged {path} lost");
                // Data of this round's writes (earlier rounds' were checked already).
                if !before.contains(path) {
                    assert_eq!(&c.get_data(path).await.unwrap().0, data, "round {round}: wrong data at {path}");
                }
            }
            for (path, (acked, attempted)) in &snapshot.1 {
                let (data, _) = c.get_data(path).await.unwrap();
                let v: u64 = String::from_utf8(data).unwrap().parse().unwrap();
                assert!(
                    v >= *acked && v <= *attempted,
                    "round {round} (seed {seed}): {path} = {v}, acknowledged {acked}, attempted {attempted}"
                );
            }
            c.close().await.unwrap();
        });
        println!(
            "round {round}: killed after {kill_after:?}, {} new acknowledged creates, all present",
            total_acked - before.len()
        );
    }
    assert!(
        total_acked > rounds,
        "too few writes were acknowledged for the test to mean anything"
    );
    let log = std::fs::read_to_string(server.dir.join("coordd.log")).unwrap_or_default();
    println!(
        "{total_acked} acknowledged creates survived {rounds} SIGKILLs; torn tails cut: {}; snapshots: {}",
        log.matches("torn_tail: Some").count(),
        log.matches("snapshot saved").count()
    );
}
