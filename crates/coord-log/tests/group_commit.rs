//! GroupCommit: batching under concurrent load, ordering of events and commands, and
//! fatal handling of a failed fsync.

use std::sync::{Arc, Mutex};
use std::thread;

use coord_log::{
    Durable, FileLog, GroupCommit, LogError, LogEvent, LogOptions, LogStorage, MemLog,
};
use crossbeam_channel::{Receiver, unbounded};

fn events() -> (Box<dyn FnMut(LogEvent) + Send>, Receiver<LogEvent>) {
    let (tx, rx) = unbounded();
    (
        Box::new(move |e| tx.send(e).expect("test receiver alive")),
        rx,
    )
}

fn record(z: u64) -> Vec<u8> {
    format!("txn {z:#x} ")
        .repeat((z % 5) as usize + 1)
        .into_bytes()
}

#[test]
fn concurrent_submitters_get_ordered_batched_durability() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2500;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 256 << 10,
        ..LogOptions::default()
    };
    let (log, _) = FileLog::open(dir.path(), opts.clone()).expect("open");
    let (on_event, rx) = events();
    let gc = Arc::new(GroupCommit::spawn(Box::new(log), on_event).expect("spawn"));
    // Like a leader's proposer: zxids are assigned and submitted under one lock, so the
    // channel sees them in order; the threads still contend on submit.
    let next = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (gc, next) = (gc.clone(), next.clone());
            thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let mut n = next.lock().expect("lock");
                    *n += 1;
                    gc.submit(*n, record(*n)).expect("submit");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let gc = Arc::into_inner(gc).expect("workers are done");
    let total = THREADS * PER_THREAD;
    let mut up_to = 0;
    let mut records = 0;
    let mut batches = 0;
    while up_to < total {
        let e = rx.recv().expect("writer alive");
        let LogEvent::Durable(Durable {
            up_to_zxid,
            records: n,
            ..
        }) = e
        else {
            panic!("unexpected event {e:?}");
        };
        assert!(up_to_zxid > up_to, "durable events in zxid order");
        assert_eq!(
            up_to_zxid - up_to,
            n as u64,
            "a batch covers exactly its records"
        );
        up_to = up_to_zxid;
        records += n as u64;
        batches += 1;
    }
    let stats = gc.stats();
    let storage = gc.shutdown().expect("shutdown");
    assert_eq!(storage.last_synced_zxid(), total);
    drop(storage);
    assert!(
        rx.try_iter().next().is_none(),
        "nothing after the last batch"
    );
    assert_eq!((up_to, records), (total, total));
    assert_eq!(stats.records, total);
    assert_eq!(stats.batches, batches);
    assert_eq!(stats.syncs, stats.batches, "one fsync per batch");
    assert!(stats.batches < total, "batching happened: {stats:?}");
    eprintln!("{total} records in {} batches: {stats:?}", stats.batches);

    let (log, report) = FileLog::open(dir.path(), opts).expect("reopen");
    assert_eq!(report.records, total);
    let got = log.read_after(0).expect("read");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (z, r))| *z == i as u64 + 1 && *r == record(*z))
    );
}

#[test]
fn commands_run_in_submission_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
    let (on_event, rx) = events();
    let gc = GroupCommit::spawn(Box::new(log), on_event).expect("spawn");
    for z in 1..=10 {
        gc.submit(z, record(z)).expect("submit");
    }
    gc.save_snapshot(4, b"state 4".to_vec()).expect("snapshot");
    gc.truncate_after(6).expect("truncate");
    for z in 7..=9 {
        gc.submit(z, b"new epoch".to_vec()).expect("submit");
    }
    gc.save_snapshot(8, b"state 8".to_vec()).expect("snapshot");
    gc.purge(1).expect("purge");
    let storage = gc.shutdown().expect("shutdown");

    let mut seen = Vec::new();
    for e in rx.try_iter() {
        seen.push(match e {
            LogEvent::Durable(d) => format!("durable {}", d.up_to_zxid),
            LogEvent::Truncated { zxid } => format!("truncated {zxid}"),
            LogEvent::SnapshotSaved { zxid } => format!("snapshot {zxid}"),
            LogEvent::Purged { keep } => format!("purged {keep}"),
            LogEvent::Error(e) => panic!("error {e}"),
        });
    }
    // Appends before a command are all durable (possibly in several batches) before it runs.
    seen.dedup_by(|b, a| {
        a.starts_with("durable") && b.starts_with("durable") && {
            *a = b.clone();
            true
        }
    });
    assert_eq!(
        seen,
        [
            "durable 10",
            "snapshot 4",
            "truncated 6",
            "durable 9",
            "snapshot 8",
            "purged 1"
        ]
    );
    let got = storage.read_after(6).expect("read");
    assert_eq!(
        got,
        (7..=9)
            .map(|z| (z, b"new epoch".to_vec()))
            .collect::<Vec<_>>()
    );
    assert_eq!(storage.snapshot_zxids().expect("list"), vec![8]);
}

#[test]
fn failed_fsync_is_fatal_and_never_reported_durable() {
    let mut mem = MemLog::new();
    mem.append(1, b"synced before").expect("append");
    mem.sync().expect("sync");
    mem.fail_next_syncs(1);
    let (on_event, rx) = events();
    let gc = GroupCommit::spawn(Box::new(mem), on_event).expect("spawn");
    gc.submit(2, b"lost".to_vec()).expect("submit");
    let first = rx.recv().expect("an event");
    assert!(
        matches!(first, LogEvent::Error(LogError::Io { .. })),
        "{first:?}"
    );
    // The writer has stopped: submissions are refused, nothing is reported durable.
    assert!(matches!(gc.submit(3, b"x".to_vec()), Err(LogError::Closed)));
    assert!(matches!(gc.shutdown(), Err(LogError::Closed)));
    assert!(rx.try_iter().next().is_none(), "no event after the error");
}

#[test]
fn out_of_order_submission_stops_the_writer() {
    let (on_event, rx) = events();
    let gc = GroupCommit::spawn(Box::new(MemLog::new()), on_event).expect("spawn");
    gc.submit(5, b"a".to_vec()).expect("submit");
    let _ = rx.recv().expect("durable 5");
    gc.submit(3, b"b".to_vec()).expect("submit");
    let e = rx.recv().expect("error");
    assert!(
        matches!(
            e,
            LogEvent::Error(LogError::OutOfOrder { zxid: 3, last: 5 })
        ),
        "{e:?}"
    );
    assert!(gc.shutdown().is_err());
}

#[test]
fn dropping_the_handle_syncs_and_joins() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
        let gc = GroupCommit::spawn(Box::new(log), Box::new(|_| {})).expect("spawn");
        for z in 1..=100 {
            gc.submit(z, record(z)).expect("submit");
        }
    }
    let (log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("reopen");
    assert_eq!(log.last_zxid(), 100);
}
