//! Tree ops on a large tree: `DataTree::apply` of Create and SetData txns, and the reads
//! `get_data` and `get_children`, on ~1M znodes of 100 B (`COORD_BENCH_TREE_NODES` to
//! change the size). The tree is built once for the group; its build time and the process
//! RSS after it are printed to stderr.
//!
//! `create` grows the tree by one node per iteration (new names under the buckets), which
//! keeps each measured op a real insert; a quick run adds a few hundred thousand nodes.

use coord_benches::{BenchTree, Xorshift, bucket_path, create_body, env_count, txn};
use coord_tree::{Txn, TxnBody};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;

const DATA_LEN: usize = 100;
const POOL: usize = 4096;

/// Resident set size of this process in MiB, from /proc (Linux; "?" elsewhere).
fn rss_mib() -> String {
    let kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
    kib.map_or_else(|| "?".to_string(), |k| (k / 1024).to_string())
}

fn tree_ops(c: &mut Criterion) {
    let leaves = env_count("COORD_BENCH_TREE_NODES", 1_000_000);
    let before = rss_mib();
    let start = Instant::now();
    let mut t = BenchTree::build(leaves, DATA_LEN);
    eprintln!(
        "tree: built {} znodes ({} buckets) of {DATA_LEN} B in {:.2?}; RSS {} MiB -> {} MiB",
        t.tree.node_count(),
        t.buckets,
        start.elapsed(),
        before,
        rss_mib()
    );

    let mut rng = Xorshift::new(0x5eed);
    let leaf_paths: Vec<String> = (0..POOL).map(|_| t.leaf(rng.below(leaves))).collect();
    let bucket_paths: Vec<String> = (0..POOL)
        .map(|_| bucket_path(rng.below(t.buckets)))
        .collect();
    let set_txns: Vec<Txn> = leaf_paths
        .iter()
        .map(|p| {
            txn(TxnBody::SetData {
                path: p.clone(),
                data: vec![b'y'; DATA_LEN],
                version: -1,
            })
        })
        .collect();

    let name = format!("tree/{}_nodes", t.tree.node_count());
    let mut g = c.benchmark_group(name);

    let mut i = 0usize;
    g.bench_function("get_data", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            t.tree
                .get_data(black_box(&leaf_paths[i]), &[])
                .expect("leaf exists")
        })
    });

    let mut i = 0usize;
    g.bench_function("get_children_1000", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            t.tree
                .get_children(black_box(&bucket_paths[i]), &[])
                .expect("bucket exists")
        })
    });

    let mut i = 0usize;
    g.bench_function("set_data_apply", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            let out = t.apply_txn(black_box(&set_txns[i]));
            debug_assert!(matches!(out.reply, coord_proto::ReplyBody::Ok(_)));
            out
        })
    });

    let mut n = 0usize;
    let buckets = t.buckets;
    let data = vec![b'z'; DATA_LEN];
    g.bench_function("create_apply", |b| {
        b.iter_batched(
            || {
                n += 1;
                txn(create_body(
                    &format!("{}/c{n:08}", bucket_path(n % buckets)),
                    &data,
                ))
            },
            |tx| {
                let out = t.apply_txn(&tx);
                debug_assert!(matches!(out.reply, coord_proto::ReplyBody::Ok(_)));
                (out, tx)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    eprintln!(
        "tree: {} znodes after the group; RSS {} MiB",
        t.tree.node_count(),
        rss_mib()
    );
}

criterion_group!(benches, tree_ops);
criterion_main!(benches);
