//! The storage conformance suite: properties every [`LogStorage`] backend must have.
//!
//! Each property is a function taking a [`Backend`] (the factory: create an empty log,
//! restart one after a crash, damage a snapshot); [`run_all`] runs them all. Failures
//! panic with a message naming the property, so the suite runs inside `#[test]`s:
//!
//! ```ignore
//! #[test]
//! fn file_log_conforms() { coord_log::conformance::run_all(&mut FileBackend::default()) }
//! ```

use crate::{LogError, LogStorage, recover};

/// How the suite makes and restarts logs of one backend.
pub trait Backend {
    /// The backend under test.
    type Log: LogStorage;
    /// A new, empty log.
    fn create(&mut self) -> Self::Log;
    /// Restarts `log` as after power loss: only its durable state remains.
    fn reopen(&mut self, log: Self::Log) -> Self::Log;
    /// Damages the stored snapshot at `zxid` so that its checksum fails.
    fn corrupt_snapshot(&mut self, log: &mut Self::Log, zxid: u64);
}

/// Zxid of `counter` in `epoch`.
pub fn zxid(epoch: u32, counter: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(counter)
}

/// Deterministic payload for a zxid, of varying length (some empty).
pub fn payload(zxid: u64) -> Vec<u8> {
    let n = (zxid % 7) as usize;
    format!("txn-{zxid:x};").repeat(n).into_bytes()
}

fn append_all<L: LogStorage>(log: &mut L, zxids: &[u64]) {
    for &z in zxids {
        log.append(z, &payload(z))
            .unwrap_or_else(|e| panic!("append {z:#x}: {e}"));
    }
}

fn expect_records<L: LogStorage>(log: &L, after: u64, zxids: &[u64], what: &str) {
    let got = log
        .read_after(after)
        .unwrap_or_else(|e| panic!("{what}: read_after({after:#x}): {e}"));
    let want: Vec<(u64, Vec<u8>)> = zxids.iter().map(|&z| (z, payload(z))).collect();
    let got_z: Vec<u64> = got.iter().map(|(z, _)| *z).collect();
    assert_eq!(got_z, zxids, "{what}: zxids after {after:#x}");
    assert!(got == want, "{what}: payloads after {after:#x} differ");
}

fn range(epoch: u32, from: u32, to: u32) -> Vec<u64> {
    (from..=to).map(|c| zxid(epoch, c)).collect()
}

/// An empty log: nothing to read, no snapshot, zero zxids.
pub fn empty_log<B: Backend>(b: &mut B) {
    let mut log = b.create();
    assert_eq!(log.last_zxid(), 0, "empty: last_zxid");
    assert_eq!(log.last_synced_zxid(), 0, "empty: last_synced_zxid");
    assert_eq!(log.horizon(), 0, "empty: horizon");
    expect_records(&log, 0, &[], "empty");
    assert!(
        matches!(log.latest_snapshot(), Ok(None)),
        "empty: no snapshot"
    );
    log.sync().expect("empty: sync");
    let log = b.reopen(log);
    assert_eq!(log.last_zxid(), 0, "empty reopened: last_zxid");
}

/// Appends are read back in order, across an epoch change; read_after returns suffixes.
pub fn append_and_read_after<B: Backend>(b: &mut B) {
    let mut log = b.create();
    let mut zxids = range(1, 1, 20);
    zxids.extend(range(2, 1, 20));
    append_all(&mut log, &zxids);
    assert_eq!(log.last_zxid(), zxid(2, 20), "last_zxid after appends");
    // A backend may sync early (the file log does when it rolls a segment), never late.
    assert!(
        log.last_synced_zxid() <= log.last_zxid(),
        "synced at most what was appended"
    );
    expect_records(&log, 0, &zxids, "unsynced read");
    log.sync().expect("sync");
    assert_eq!(
        log.last_synced_zxid(),
        zxid(2, 20),
        "last_synced_zxid after sync"
    );
    expect_records(&log, zxid(1, 10), &zxids[10..], "read_after mid epoch 1");
    expect_records(&log, zxid(1, 20), &zxids[20..], "read_after end of epoch 1");
    expect_records(
        &log,
        zxid(1, 500),
        &zxids[20..],
        "read_after a zxid not in the log",
    );
    expect_records(&log, zxid(2, 20), &[], "read_after last");
    let log = b.reopen(log);
    expect_records(&log, 0, &zxids, "reopened");
    assert_eq!(log.last_zxid(), zxid(2, 20), "reopened: last_zxid");
}

/// A zxid not above the last one is refused and changes nothing.
pub fn out_of_order_is_refused<B: Backend>(b: &mut B) {
    let mut log = b.create();
    let e = log.append(0, b"zero");
    assert!(
        matches!(e, Err(LogError::OutOfOrder { zxid: 0, last: 0 })),
        "zxid 0: {e:?}"
    );
    append_all(&mut log, &[5, 7]);
    for z in [7, 6, 1] {
        let e = log.append(z, b"x");
        assert!(
            matches!(e, Err(LogError::OutOfOrder { last: 7, .. })),
            "zxid {z}: {e:?}"
        );
    }
    append_all(&mut log, &[8]);
    log.sync().expect("sync");
    expect_records(&log, 0, &[5, 7, 8], "after refusals");
    let mut log = b.reopen(log);
    let e = log.append(8, b"x");
    assert!(
        matches!(e, Err(LogError::OutOfOrder { last: 8, .. })),
        "after reopen: {e:?}"
    );
}

/// After `sync` returns, a crash keeps every synced record; unsynced ones may vanish, but
/// what survives is a prefix of what was appended.
pub fn sync_is_durable<B: Backend>(b: &mut B) {
    let mut log = b.create();
    let synced = range(1, 1, 50);
    append_all(&mut log, &synced);
    log.sync().expect("sync");
    append_all(&mut log, &range(1, 51, 60));
    let log = b.reopen(log);
    let got = log.read_after(0).expect("read after reopen");
    assert!(
        got.len() >= 50 && got.len() <= 60,
        "kept {} records",
        got.len()
    );
    let all = range(1, 1, 60);
    let got_z: Vec<u64> = got.iter().map(|(z, _)| *z).collect();
    assert_eq!(
        got_z,
        all[..got.len()],
        "survivors are a prefix of the appends"
    );
    assert_eq!(
        log.last_synced_zxid(),
        log.last_zxid(),
        "reopened log is all durable"
    );
}

/// `truncate_after` removes the suffix durably; new records (new payloads) follow it.
pub fn truncate_then_append<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 30));
    log.sync().expect("sync");
    log.truncate_after(zxid(1, 12)).expect("truncate");
    assert_eq!(log.last_zxid(), zxid(1, 12), "last_zxid after truncate");
    assert_eq!(log.last_synced_zxid(), zxid(1, 12), "truncate is durable");
    expect_records(&log, 0, &range(1, 1, 12), "after truncate");
    let mut log = b.reopen(log);
    expect_records(&log, 0, &range(1, 1, 12), "truncate survives a crash");
    // The new leader's epoch continues the log.
    let mut want = range(1, 1, 12);
    want.extend(range(2, 1, 5));
    append_all(&mut log, &range(2, 1, 5));
    log.sync().expect("sync");
    let mut log = b.reopen(log);
    expect_records(&log, 0, &want, "appends after truncate");
    // Truncating at or past the end only syncs; truncating to zero empties the log.
    append_all(&mut log, &[zxid(2, 6)]);
    log.truncate_after(zxid(9, 0)).expect("truncate past end");
    want.push(zxid(2, 6));
    let mut log = b.reopen(log);
    expect_records(
        &log,
        0,
        &want,
        "truncate past the end syncs pending records",
    );
    log.truncate_after(0).expect("truncate all");
    assert_eq!(log.last_zxid(), 0, "empty after truncate_after(0)");
    let mut log = b.reopen(log);
    expect_records(&log, 0, &[], "empty after reopen");
    append_all(&mut log, &[1, 2]);
    log.sync().expect("sync");
    expect_records(&b.reopen(log), 0, &[1, 2], "appends into an emptied log");
}

/// Unsynced records below the truncation point become durable with it; records appended
/// after a truncate are lost by a crash until synced.
pub fn truncate_syncs_what_it_keeps<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 5));
    log.sync().expect("sync");
    append_all(&mut log, &range(1, 6, 10));
    log.truncate_after(zxid(1, 8)).expect("truncate");
    append_all(&mut log, &range(1, 9, 9));
    let log = b.reopen(log);
    let got: Vec<u64> = log
        .read_after(0)
        .expect("read")
        .iter()
        .map(|(z, _)| *z)
        .collect();
    assert!(
        got.starts_with(&range(1, 1, 8)),
        "truncate kept 1..=8 durably: {got:x?}"
    );
    assert!(
        got.len() <= 9,
        "nothing beyond the unsynced append: {got:x?}"
    );
}

/// Snapshots round-trip, the newest wins, and a snapshot at the same zxid is replaced.
pub fn snapshot_save_and_load<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 9));
    log.sync().expect("sync");
    log.save_snapshot(zxid(1, 5), b"state at 5")
        .expect("save 5");
    log.save_snapshot(zxid(1, 9), b"state at 9 (draft)")
        .expect("save 9");
    log.save_snapshot(zxid(1, 9), b"state at 9")
        .expect("replace 9");
    log.save_snapshot(zxid(1, 2), b"")
        .expect("save empty snapshot at 2");
    let want = Some((zxid(1, 9), b"state at 9".to_vec()));
    assert_eq!(
        log.latest_snapshot().expect("latest"),
        want,
        "newest snapshot"
    );
    let log = b.reopen(log);
    assert_eq!(
        log.latest_snapshot().expect("latest"),
        want,
        "snapshot survives a crash"
    );
    let zs = log.snapshot_zxids().expect("list");
    assert_eq!(
        zs,
        vec![zxid(1, 2), zxid(1, 5), zxid(1, 9)],
        "snapshot list"
    );
    let r = recover(&log).expect("recover");
    assert_eq!(r.snapshot, want, "recover: snapshot");
    assert!(r.records.is_empty(), "recover: nothing after the snapshot");
}

/// A newest snapshot that fails its checksum is skipped for the next older one.
pub fn corrupt_newest_snapshot_falls_back<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 9));
    log.sync().expect("sync");
    log.save_snapshot(zxid(1, 4), b"state at 4")
        .expect("save 4");
    log.save_snapshot(zxid(1, 8), b"state at 8")
        .expect("save 8");
    b.corrupt_snapshot(&mut log, zxid(1, 8));
    let want = Some((zxid(1, 4), b"state at 4".to_vec()));
    assert_eq!(
        log.latest_snapshot().expect("latest"),
        want,
        "falls back to 4"
    );
    let log = b.reopen(log);
    assert_eq!(
        log.latest_snapshot().expect("latest"),
        want,
        "falls back after reopen"
    );
    let r = recover(&log).expect("recover");
    assert_eq!(r.snapshot, want, "recover uses the older snapshot");
    let zs: Vec<u64> = r.records.iter().map(|(z, _)| *z).collect();
    assert_eq!(zs, range(1, 5, 9), "recover replays everything after it");
}

/// Truncation deletes snapshots above the cut: they hold txns the log no longer has.
pub fn truncate_removes_newer_snapshots<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 10));
    log.sync().expect("sync");
    log.save_snapshot(zxid(1, 3), b"3").expect("save 3");
    log.save_snapshot(zxid(1, 8), b"8").expect("save 8");
    log.truncate_after(zxid(1, 5)).expect("truncate");
    let log = b.reopen(log);
    assert_eq!(
        log.snapshot_zxids().expect("list"),
        vec![zxid(1, 3)],
        "snapshot 8 is gone"
    );
    let r = recover(&log).expect("recover");
    assert_eq!(
        r.snapshot,
        Some((zxid(1, 3), b"3".to_vec())),
        "recover: snapshot"
    );
    let zs: Vec<u64> = r.records.iter().map(|(z, _)| *z).collect();
    assert_eq!(zs, range(1, 4, 5), "recover: suffix");
}

/// Purge keeps the newest K valid snapshots and every record after the oldest kept one;
/// anything below the horizon is refused, never silently missing.
pub fn purge_keeps_snapshots_and_needed_records<B: Backend>(b: &mut B) {
    let mut log = b.create();
    for chunk in 0..6u32 {
        append_all(&mut log, &range(1, chunk * 40 + 1, chunk * 40 + 40));
        log.sync().expect("sync");
        log.save_snapshot(zxid(1, chunk * 40 + 40), format!("s{chunk}").as_bytes())
            .expect("save");
    }
    append_all(&mut log, &range(1, 241, 250));
    b.corrupt_snapshot(&mut log, zxid(1, 240));
    log.purge(2).expect("purge");
    let check = |log: &B::Log, what: &str| {
        let zs = log.snapshot_zxids().expect("list");
        assert_eq!(
            zs,
            vec![zxid(1, 160), zxid(1, 200)],
            "{what}: newest 2 valid snapshots kept"
        );
        let horizon = log.horizon();
        assert!(
            horizon <= zxid(1, 160),
            "{what}: horizon {horizon:#x} above oldest kept"
        );
        expect_records(log, zxid(1, 160), &range(1, 161, 250), what);
        if horizon > 0 {
            let e = log.read_after(horizon - 1);
            assert!(
                matches!(e, Err(LogError::Compacted { .. })),
                "{what}: below horizon: {e:?}"
            );
            let e = log.read_after(0);
            assert!(
                matches!(e, Err(LogError::Compacted { .. })),
                "{what}: read_after(0): {e:?}"
            );
        }
        assert_eq!(log.last_zxid(), zxid(1, 250), "{what}: last_zxid");
    };
    check(&log, "after purge");
    log.sync().expect("sync");
    let mut log = b.reopen(log);
    check(&log, "purge reopened");
    append_all(&mut log, &range(1, 251, 252));
    log.sync().expect("sync");
    let r = recover(&b.reopen(log)).expect("recover");
    assert_eq!(
        r.snapshot.map(|s| s.0),
        Some(zxid(1, 200)),
        "recover: newest valid snapshot"
    );
    let zs: Vec<u64> = r.records.iter().map(|(z, _)| *z).collect();
    assert_eq!(zs, range(1, 201, 252), "recover: records after it");
}

/// `compact` never drops a record not covered by a snapshot.
pub fn compact_keeps_uncovered_records<B: Backend>(b: &mut B) {
    let mut log = b.create();
    append_all(&mut log, &range(1, 1, 20));
    log.sync().expect("sync");
    log.compact(zxid(1, 15))
        .expect("compact without a snapshot");
    expect_records(
        &log,
        0,
        &range(1, 1, 20),
        "nothing compacted without a snapshot",
    );
    log.save_snapshot(zxid(1, 10), b"10").expect("save");
    log.compact(zxid(1, 15)).expect("compact");
    assert!(log.horizon() <= zxid(1, 10), "horizon at most the snapshot");
    let log = b.reopen(log);
    expect_records(
        &log,
        zxid(1, 10),
        &range(1, 11, 20),
        "records after the snapshot",
    );
    assert_eq!(log.last_zxid(), zxid(1, 20), "last_zxid kept");
}

/// Payloads of any size up to the limit round-trip byte for byte.
pub fn payload_sizes_round_trip<B: Backend>(b: &mut B) {
    let mut log = b.create();
    let sizes = [0usize, 1, 15, 16, 17, 4096, 200_000];
    for (i, &n) in sizes.iter().enumerate() {
        let bytes: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        log.append(i as u64 + 1, &bytes).expect("append");
    }
    log.sync().expect("sync");
    let log = b.reopen(log);
    let got = log.read_after(0).expect("read");
    assert_eq!(got.len(), sizes.len(), "record count");
    for (i, (z, bytes)) in got.iter().enumerate() {
        assert_eq!(*z, i as u64 + 1, "zxid");
        let want: Vec<u8> = (0..sizes[i]).map(|j| (j * 31 + i) as u8).collect();
        assert!(*bytes == want, "payload of {} bytes differs", sizes[i]);
    }
}

/// Runs every property against `b`.
pub fn run_all<B: Backend>(b: &mut B) {
    empty_log(b);
    append_and_read_after(b);
    out_of_order_is_refused(b);
    sync_is_durable(b);
    truncate_then_append(b);
    truncate_syncs_what_it_keeps(b);
    snapshot_save_and_load(b);
    corrupt_newest_snapshot_falls_back(b);
    truncate_removes_newer_snapshots(b);
    purge_keeps_snapshots_and_needed_records(b);
    compact_keeps_uncovered_records(b);
    payload_sizes_round_trip(b);
}
