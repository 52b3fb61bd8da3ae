//! Snapshots of a 200k-znode tree of 100 B nodes (`COORD_BENCH_SNAPSHOT_NODES` to change):
//! `DataTree::snapshot` (serialize, checksum) and `DataTree::from_snapshot` (validate,
//! rebuild every index, recompute and compare the digest). Throughput is snapshot bytes/s.

use coord_benches::{BenchTree, env_count};
use coord_tree::DataTree;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const DATA_LEN: usize = 100;

fn snapshot(c: &mut Criterion) {
    let leaves = env_count("COORD_BENCH_SNAPSHOT_NODES", 200_000);
    let t = BenchTree::build(leaves, DATA_LEN);
    let bytes = t.tree.snapshot();
    eprintln!(
        "snapshot: {} znodes -> {} bytes ({:.1} B/znode)",
        t.tree.node_count(),
        bytes.len(),
        bytes.len() as f64 / t.tree.node_count() as f64
    );
    let mut g = c.benchmark_group(format!("snapshot/{}_nodes", t.tree.node_count()));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("serialize", |b| b.iter(|| black_box(&t.tree).snapshot()));
    g.bench_function("restore", |b| {
        b.iter(|| DataTree::from_snapshot(black_box(&bytes)).expect("own snapshot restores"))
    });
    g.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
