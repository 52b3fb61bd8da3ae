//! The durable log: how throughput grows with records per fsync.
//!
//! - `log/file_append_sync/N`: one iteration = `FileLog::append` of N records of 100 B, then
//!   one `sync` (write + fdatasync). Throughput is records/s; N = 1 is the cost of a lone
//!   durable write, N = 512 what group commit buys under load.
//! - `log/group_commit/N`: the same through [`GroupCommit`]'s writer thread with
//!   `BatchLimits::max_records = N`: N records are submitted back to back and the iteration
//!   ends when the last one is reported durable. The records per fsync actually reached are
//!   printed to stderr (the writer may start a batch before all N are queued).
//!
//! The log lives in a temporary directory (`TMPDIR`, default /tmp): results are only as
//! meaningful as that filesystem's fsync.

use coord_log::{BatchLimits, FileLog, GroupCommit, LogEvent, LogOptions, LogStorage};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};

const RECORD_LEN: usize = 100;
const BATCHES: [usize; 4] = [1, 8, 64, 512];

fn file_append_sync(c: &mut Criterion) {
    let record = vec![0x5a; RECORD_LEN];
    let mut g = c.benchmark_group("log/file_append_sync");
    g.sample_size(20);
    for n in BATCHES {
        let dir = tempfile::tempdir().expect("temp dir for the log");
        let (mut log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open log");
        let mut zxid = 0u64;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(n.to_string(), |b| {
            b.iter(|| {
                for _ in 0..n {
                    zxid += 1;
                    log.append(zxid, &record).expect("append");
                }
                log.sync().expect("sync");
            })
        });
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("log/group_commit");
    g.sample_size(20);
    for n in BATCHES {
        let dir = tempfile::tempdir().expect("temp dir for the log");
        let (log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open log");
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let gc = GroupCommit::spawn_with_limits(
            Box::new(log),
            BatchLimits {
                max_records: n,
                ..BatchLimits::default()
            },
            Box::new(move |event| match event {
                LogEvent::Durable(d) => {
                    let _ = tx.send(d.up_to_zxid);
                }
                LogEvent::Error(e) => panic!("log writer failed: {e}"),
                _ => {}
            }),
        )
        .expect("spawn group commit");
        let mut zxid = 0u64;
        let before = gc.stats();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(n.to_string(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..n {
                        zxid += 1;
                        gc.submit(zxid, vec![0x5a; RECORD_LEN]).expect("submit");
                    }
                    while rx.recv().expect("writer alive") < zxid {}
                    total += start.elapsed();
                }
                total
            })
        });
        let after = gc.stats();
        let syncs = after.syncs - before.syncs;
        let records = after.records - before.records;
        if syncs > 0 {
            eprintln!(
                "log/group_commit/{n}: {records} records in {syncs} fsyncs = {:.1} records per fsync",
                records as f64 / syncs as f64
            );
        }
        gc.shutdown().expect("clean shutdown");
    }
    g.finish();
}

criterion_group!(benches, file_append_sync, group_commit);
criterion_main!(benches);
