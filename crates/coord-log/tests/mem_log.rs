//! MemLog as the simulator's disk: a crash keeps exactly the durable state.

use coord_log::{LogError, LogStorage, MemLog, recover};

fn zxids(log: &MemLog) -> Vec<u64> {
    log.read_after(log.horizon())
        .expect("read")
        .into_iter()
        .map(|(z, _)| z)
        .collect()
}

#[test]
fn crash_drops_unsynced_records_only() {
    let mut log = MemLog::new();
    for z in 1..=5 {
        log.append(z, b"synced").expect("append");
    }
    log.sync().expect("sync");
    for z in 6..=9 {
        log.append(z, b"volatile").expect("append");
    }
    assert_eq!((log.last_zxid(), log.last_synced_zxid()), (9, 5));
    assert_eq!(log.durable_records(), 5);
    log.crash();
    assert_eq!(zxids(&log), vec![1, 2, 3, 4, 5]);
    assert_eq!((log.last_zxid(), log.last_synced_zxid()), (5, 5));
    // The crashed node appends again from its durable state.
    log.append(6, b"after restart").expect("append");
    log.sync().expect("sync");
    log.crash();
    assert_eq!(zxids(&log), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn durable_operations_survive_a_crash_but_later_appends_do_not() {
    let mut log = MemLog::new();
    for z in 1..=10 {
        log.append(z, b"r").expect("append");
    }
    log.sync().expect("sync");
    log.save_snapshot(4, b"state 4").expect("snapshot");
    log.truncate_after(7).expect("truncate");
    log.append(8, b"unsynced after truncate").expect("append");
    log.crash();
    assert_eq!(zxids(&log), (1..=7).collect::<Vec<_>>());
    let r = recover(&log).expect("recover");
    assert_eq!(r.snapshot, Some((4, b"state 4".to_vec())));
    assert_eq!(
        r.records.iter().map(|(z, _)| *z).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
}

#[test]
fn failed_sync_poisons_until_the_crash() {
    let mut log = MemLog::new();
    log.append(1, b"a").expect("append");
    log.sync().expect("sync");
    log.append(2, b"b").expect("append");
    log.fail_next_syncs(1);
    assert!(matches!(log.sync(), Err(LogError::Io { .. })));
    assert!(matches!(log.append(3, b"c"), Err(LogError::Failed)));
    assert!(matches!(log.sync(), Err(LogError::Failed)));
    log.crash();
    assert_eq!(
        zxids(&log),
        vec![1],
        "the record whose fsync failed is not durable"
    );
    log.append(2, b"b again").expect("usable after restart");
}

#[test]
fn compaction_moves_the_horizon_and_refuses_reads_below_it() {
    let mut log = MemLog::new();
    for z in 1..=20 {
        log.append(z, b"r").expect("append");
    }
    log.sync().expect("sync");
    log.save_snapshot(12, b"state 12").expect("snapshot");
    log.compact(15).expect("compact");
    assert_eq!(log.horizon(), 12);
    assert!(matches!(
        log.read_after(3),
        Err(LogError::Compacted {
            requested: 3,
            horizon: 12
        })
    ));
    assert_eq!(zxids(&log), (13..=20).collect::<Vec<_>>());
    log.crash();
    assert_eq!(log.horizon(), 12);
    assert_eq!(log.last_zxid(), 20);
}
