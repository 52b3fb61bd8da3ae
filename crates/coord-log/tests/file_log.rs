//! FileLog on real files: torn tails, corruption, rolling, purge, locking.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use coord_log::format::{BadRecord, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use coord_log::{FileLog, LogError, LogOptions, LogStorage, recover_dir};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Records the largest single allocation, to show a length field never sizes one.
struct MaxAlloc;
static MAX_ALLOC: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only observes sizes.
unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        MAX_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: MaxAlloc = MaxAlloc;

fn payload(z: u64) -> Vec<u8> {
    vec![(z % 251) as u8; (z % 13) as usize * 3]
}

fn write_log(dir: &Path, opts: &LogOptions, zxids: impl IntoIterator<Item = u64>) {
    let (mut log, _) = FileLog::open(dir, opts.clone()).expect("open");
    for z in zxids {
        log.append(z, &payload(z)).expect("append");
    }
    log.sync().expect("sync");
}

fn zxids_in(log: &FileLog) -> Vec<u64> {
    log.read_after(log.horizon())
        .expect("read")
        .into_iter()
        .map(|(z, _)| z)
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log."))
        })
        .collect();
    v.sort();
    v
}

/// Byte offsets where each record of a segment starts, plus the file end.
fn record_bounds(bytes: &[u8]) -> Vec<usize> {
    let mut bounds = vec![SEGMENT_HEADER_LEN];
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        pos += RECORD_HEADER_LEN + len;
        bounds.push(pos);
    }
    bounds
}

/// A copy of every file of `src` in a fresh temp dir.
fn copy_dir(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().expect("tempdir");
    for e in fs::read_dir(src).expect("list") {
        let e = e.expect("entry");
        fs::copy(e.path(), dst.path().join(e.file_name())).expect("copy");
    }
    dst
}

fn torn_tail_at_every_offset(opts: LogOptions) {
    let src = tempfile::tempdir().expect("tempdir");
    let n = 40u64;
    write_log(src.path(), &opts, 1..=n);
    let last_seg = segments(src.path()).pop().expect("a segment");
    let bytes = fs::read(&last_seg).expect("read");
    let bounds = record_bounds(&bytes);
    let in_last = (bounds.len() - 1) as u64; // records in the final segment
    let first_in_last = n - in_last + 1;
    let start = bounds[bounds.len().saturating_sub(5)];
    for cut in start..bytes.len() {
        let dir = copy_dir(src.path());
        let seg = dir.path().join(last_seg.file_name().expect("name"));
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(cut as u64))
            .expect("cut");
        let (mut log, report) = FileLog::open(dir.path(), opts.clone()).expect("open torn log");
        let complete = bounds.iter().filter(|b| **b <= cut).count() as u64 - 1;
        let survivors = first_in_last - 1 + complete;
        assert_eq!(
            zxids_in(&log),
            (1..=survivors).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        let on_boundary = bounds.contains(&cut);
        assert_eq!(
            report.torn_tail.is_some(),
            !on_boundary,
            "cut at {cut}: report"
        );
        if let Some(t) = &report.torn_tail {
            assert_eq!(t.records_kept, complete, "cut at {cut}");
            assert_eq!(t.bytes_cut + t.valid_bytes, cut as u64, "cut at {cut}");
        }
        assert_eq!(
            fs::metadata(&seg).expect("stat").len(),
            bounds[complete as usize] as u64
        );
        // Appending continues right after the last surviving record.
        log.append(survivors + 1, b"after the cut")
            .expect("append after cut");
        log.sync().expect("sync");
        drop(log);
        let (log, report) = FileLog::open(dir.path(), opts.clone()).expect("reopen");
        assert_eq!(report.torn_tail, None);
        let got = log.read_after(survivors).expect("read");
        assert_eq!(
            got,
            vec![(survivors + 1, b"after the cut".to_vec())],
            "cut at {cut}"
        );
        assert_eq!(zxids_in(&log).len() as u64, survivors + 1);
    }
}

#[test]
fn torn_tail_at_every_byte_offset_single_segment() {
    torn_tail_at_every_offset(LogOptions::default());
}

#[test]
fn torn_tail_at_every_byte_offset_of_the_last_of_many_segments() {
    let opts = LogOptions {
        segment_bytes: 200,
        ..LogOptions::default()
    };
    torn_tail_at_every_offset(opts);
}

#[test]
fn random_byte_flips_in_the_tail_cut_at_the_last_good_record() {
    let src = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions::default();
    write_log(src.path(), &opts, 1..=30);
    let seg = segments(src.path()).pop().expect("segment");
    let bytes = fs::read(&seg).expect("read");
    let bounds = record_bounds(&bytes);
    let mut rng = StdRng::seed_from_u64(0xC00D);
    for _ in 0..150 {
        let at = rng.random_range(bounds[24]..bytes.len());
        let mask: u8 = rng.random_range(1..=255);
        let dir = copy_dir(src.path());
        let path = dir.path().join(seg.file_name().expect("name"));
        let mut damaged = bytes.clone();
        damaged[at] ^= mask;
        fs::write(&path, &damaged).expect("write");
        let (log, report) = FileLog::open(dir.path(), opts.clone()).expect("open");
        let hit = bounds.iter().rposition(|b| *b <= at).expect("bound") as u64; // records before it
        assert_eq!(
            zxids_in(&log),
            (1..=hit).collect::<Vec<_>>(),
            "flip {mask:#x} at {at}"
        );
        let torn = report.torn_tail.expect("reported");
        assert_eq!(
            torn.valid_bytes, bounds[hit as usize] as u64,
            "flip at {at}"
        );
    }
}

fn damage(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = fs::read(path).expect("read");
    data[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).expect("write");
}

#[test]
fn corruption_in_a_non_final_segment_is_refused_and_nothing_is_cut() {
    let opts = LogOptions {
        segment_bytes: 200,
        ..LogOptions::default()
    };
    let src = tempfile::tempdir().expect("tempdir");
    write_log(src.path(), &opts, 1..=60);
    let segs = segments(src.path());
    assert!(segs.len() >= 3, "{} segments", segs.len());
    for (what, at, patch) in [
        ("flipped payload byte", 60usize, &[0xAAu8][..]),
        ("length 0xFFFFFFFF", SEGMENT_HEADER_LEN, &[0xFF; 4][..]),
        ("bad magic", 0, &b"XX"[..]),
    ] {
        let dir = copy_dir(src.path());
        let victim = dir.path().join(segs[1].file_name().expect("name"));
        damage(&victim, at, patch);
        let before: Vec<u64> = segments(dir.path())
            .iter()
            .map(|p| fs::metadata(p).expect("stat").len())
            .collect();
        let err = FileLog::open(dir.path(), opts.clone()).expect_err(what);
        assert!(
            matches!(err, LogError::Corrupt { ref path, .. } if *path == victim),
            "{what}: {err}"
        );
        let after: Vec<u64> = segments(dir.path())
            .iter()
            .map(|p| fs::metadata(p).expect("stat").len())
            .collect();
        assert_eq!(before, after, "{what}: refusal leaves every file as it was");
    }
    // A non-final segment cut short is corruption too, not a torn tail.
    let dir = copy_dir(src.path());
    let victim = dir.path().join(segs[0].file_name().expect("name"));
    let len = fs::metadata(&victim).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&victim)
        .and_then(|f| f.set_len(len - 3))
        .expect("cut");
    assert!(matches!(
        FileLog::open(dir.path(), opts),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn huge_length_field_is_a_torn_tail_not_an_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions::default();
    write_log(dir.path(), &opts, 1..=10);
    let seg = segments(dir.path()).pop().expect("segment");
    let mut data = fs::read(&seg).expect("read");
    let bounds = record_bounds(&data);
    data[bounds[7]..bounds[7] + 4].copy_from_slice(&[0xFF; 4]);
    fs::write(&seg, &data).expect("write");
    MAX_ALLOC.store(0, Ordering::Relaxed);
    let (log, report) = FileLog::open(dir.path(), opts).expect("open");
    assert_eq!(zxids_in(&log), (1..=7).collect::<Vec<_>>());
    let torn = report.torn_tail.expect("reported");
    assert_eq!(torn.reason, BadRecord::TooLong { len: u32::MAX });
    // Other tests in this binary allocate concurrently, but none near this size.
    assert!(
        MAX_ALLOC.load(Ordering::Relaxed) < 64 << 20,
        "no allocation sized by the field"
    );
}

#[test]
fn zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), &LogOptions::default(), 1..=5);
    let seg = segments(dir.path()).pop().expect("segment");
    let mut data = fs::read(&seg).expect("read");
    let len = data.len();
    data.resize(len + 4096, 0);
    fs::write(&seg, &data).expect("write");
    let (log, report) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
    assert_eq!(zxids_in(&log), vec![1, 2, 3, 4, 5]);
    assert_eq!(report.torn_tail.expect("reported").bytes_cut, 4096);
}

#[test]
fn torn_segment_creation_is_repaired_and_other_headers_are_refused() {
    let opts = LogOptions {
        segment_bytes: 200,
        ..LogOptions::default()
    };
    let src = tempfile::tempdir().expect("tempdir");
    write_log(src.path(), &opts, 1..=30);
    let segs = segments(src.path());
    let last = segs
        .last()
        .expect("segment")
        .file_name()
        .expect("name")
        .to_owned();
    // Write a new empty final segment whose header was torn after 10 bytes.
    let dir = copy_dir(src.path());
    let torn = dir.path().join("log.00000000000003e8");
    fs::write(&torn, b"COORDLOG\x01\x00").expect("write");
    let (mut log, report) = FileLog::open(dir.path(), opts.clone()).expect("open");
    assert_eq!(report.repaired_headers, vec![torn.clone()]);
    assert_eq!(zxids_in(&log), (1..=30).collect::<Vec<_>>());
    let e = log.append(31, b"x");
    assert!(
        matches!(e, Err(LogError::OutOfOrder { last: 999, .. })),
        "below the base: {e:?}"
    );
    log.append(1000, b"x")
        .expect("append at the base of the repaired segment");
    log.sync().expect("sync");
    // A damaged header in front of records is corruption, even in the final segment.
    let dir = copy_dir(src.path());
    damage(&dir.path().join(&last), 2, b"??");
    assert!(matches!(
        FileLog::open(dir.path(), opts.clone()),
        Err(LogError::Corrupt { .. })
    ));
    // A header from a future format is refused by version.
    let dir = copy_dir(src.path());
    damage(&dir.path().join(&last), 8, &2u32.to_le_bytes());
    let e = FileLog::open(dir.path(), opts);
    assert!(
        matches!(e, Err(LogError::UnsupportedVersion { version: 2, .. })),
        "{e:?}"
    );
}

#[test]
fn segments_roll_and_are_named_by_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 4096,
        ..LogOptions::default()
    };
    let (mut log, _) = FileLog::open(dir.path(), opts.clone()).expect("open");
    let zxids: Vec<u64> = (1..=3u64)
        .flat_map(|e| (1..=400u64).map(move |c| e << 32 | c))
        .collect();
    for chunk in zxids.chunks(37) {
        for &z in chunk {
            log.append(z, &[7u8; 90]).expect("append");
        }
        log.sync().expect("sync");
    }
    let segs = segments(dir.path());
    assert!(segs.len() > 10, "{} segments", segs.len());
    drop(log);
    let (mut log, report) = FileLog::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.segments, segs.len());
    assert_eq!(report.records, zxids.len() as u64);
    assert_eq!(zxids_in(&log), zxids);
    // Each segment's name is the previous segment's last zxid + 1; each stays near the limit.
    let mut prev_last = 0u64;
    for seg in &segs {
        let name = seg.file_name().and_then(|n| n.to_str()).expect("name");
        let base = u64::from_str_radix(&name[4..], 16).expect("hex");
        assert_eq!(base, prev_last + 1, "{name}");
        let bytes = fs::read(seg).expect("read");
        assert!(
            bytes.len() < 4096 + 37 * 106,
            "{name} is {} bytes",
            bytes.len()
        );
        let n = record_bounds(&bytes).len() as u64 - 1;
        let idx = zxids.iter().position(|z| *z >= base).expect("records");
        prev_last = zxids[idx + n as usize - 1];
    }
    log.append((4 << 32) | 1, b"next epoch").expect("append");
    log.sync().expect("sync");
    drop(log);
    let (log, _) = FileLog::open(dir.path(), opts).expect("reopen");
    assert_eq!(log.last_zxid(), (4 << 32) | 1);
}

#[test]
fn purge_deletes_covered_segments_and_raises_the_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 512,
        ..LogOptions::default()
    };
    let (mut log, _) = FileLog::open(dir.path(), opts.clone()).expect("open");
    for z in 1..=300u64 {
        log.append(z, &payload(z)).expect("append");
        if z % 100 == 0 {
            log.sync().expect("sync");
            log.save_snapshot(z, format!("state {z}").as_bytes())
                .expect("snapshot");
        }
    }
    let before = segments(dir.path()).len();
    log.purge(1).expect("purge");
    let after = segments(dir.path());
    assert!(after.len() < before, "{before} -> {}", after.len());
    let horizon = log.horizon();
    assert!(horizon > 250 && horizon <= 300, "horizon {horizon}");
    assert!(matches!(log.read_after(0), Err(LogError::Compacted { .. })));
    assert!(matches!(
        log.truncate_after(horizon - 1),
        Err(LogError::Compacted { .. })
    ));
    drop(log);
    let (mut log, report) = FileLog::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(report.horizon, horizon);
    log.append(301, b"more").expect("append");
    log.sync().expect("sync");
    drop(log);
    let (_, _, rec) = recover_dir(dir.path(), opts).expect("recover");
    assert_eq!(rec.snapshot, Some((300, b"state 300".to_vec())));
    assert_eq!(rec.records, vec![(301, b"more".to_vec())]);
}

#[test]
fn one_instance_per_directory_and_temp_snapshots_are_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
    let e = FileLog::open(dir.path(), LogOptions::default());
    assert!(matches!(e, Err(LogError::Locked { .. })), "{e:?}");
    drop(log);
    let tmp = dir.path().join("snap.0000000000000009.tmp");
    fs::write(&tmp, b"half a snapshot").expect("write");
    let (log, report) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
    assert_eq!(report.removed_temp_files, vec![tmp.clone()]);
    assert!(!tmp.exists());
    assert_eq!(log.latest_snapshot().expect("latest"), None);
}

#[test]
fn oversized_records_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        max_record: 100,
        ..LogOptions::default()
    };
    let (mut log, _) = FileLog::open(dir.path(), opts).expect("open");
    log.append(1, &[0; 100]).expect("at the limit");
    let e = log.append(2, &[0; 101]);
    assert!(
        matches!(e, Err(LogError::RecordTooLarge { len: 101, max: 100 })),
        "{e:?}"
    );
    log.append(2, b"ok").expect("the log is still usable");
}

#[test]
fn large_unsynced_bursts_are_written_through_but_durable_only_after_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = FileLog::open(dir.path(), LogOptions::default()).expect("open");
    for z in 1..=40u64 {
        log.append(z, &vec![z as u8; 64 << 10]).expect("append");
    }
    assert_eq!(log.last_synced_zxid(), 0);
    log.sync().expect("sync");
    assert_eq!(log.last_synced_zxid(), 40);
    let got = log.read_after(35).expect("read");
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![36, 37, 38, 39, 40]
    );
    assert!(
        got.iter()
            .all(|(z, p)| p.len() == 64 << 10 && p[0] == *z as u8)
    );
}
