//! coord-log's on-disk parsing: the fuzz input becomes segment and snapshot files in a
//! fresh directory (on /dev/shm: fsync is cheap there), then `FileLog::open` + `recover`.
//! Must return Ok or Err, never panic, never allocate by an untrusted length (run with
//! `-malloc_limit_mb`); a log that opened must reopen clean (the repair is complete) and
//! recover the same records.
//!
//! Input layout:
//! ```text
//!   flags u8 | base_sel u8 | len1 u16 LE | len2 u16 LE | snap_sel u8 | bytes...
//!   flags: 1 = segment 1 gets a valid header (else its bytes are the whole file)
//!          2 = rewrite the CRC of every whole record in the segment bodies
//!          4 = a second segment (the next len2 bytes), base after segment 1's
//!          8 = a snapshot file holding the remaining bytes
//!         16 = the snapshot gets a valid header (else the bytes are the whole file)
//!         32 = leave a snap.*.tmp file (open must remove it)
//!         64 = after open: append a record, sync, and check it is recovered on reopen
//!        128 = tiny segments (segment_bytes 64), so that append rolls
//!   segment 1 = first len1 bytes, segment 2 = next len2 bytes (if flag 4), snapshot = rest
//! ```
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use coord_fuzz::{fix_record_crcs, segment_header, segment_name, snapshot_file, snapshot_name};
use coord_log::{FileLog, LogOptions, LogStorage, recover};
use libfuzzer_sys::fuzz_target;

const BASES: [u64; 8] = [1, 2, 0x1_0000_0001, 0x1_0000_0000, 0, u64::MAX, u64::MAX - 1, 0xdead_beef];

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        root.join(format!("coord-fuzz-log-{}", std::process::id()))
    })
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

fn segment(header: bool, fix_crcs: bool, base: u64, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    if fix_crcs {
        fix_record_crcs(&mut body);
    }
    if !header {
        return body;
    }
    let mut out = segment_header(base).to_vec();
    out.extend_from_slice(&body);
    out
}

fn check_recovered(log: &FileLog) -> Option<coord_log::Recovered> {
    let rec = recover(log).ok()?;
    let floor = rec.snapshot.as_ref().map_or(0, |(z, _)| *z);
    let mut prev = floor;
    for (zxid, _) in &rec.records {
        assert!(*zxid > prev, "recovered zxids not increasing past the snapshot: {zxid:#x} after {prev:#x}");
        prev = *zxid;
    }
    assert!(prev <= log.last_zxid() || rec.records.is_empty());
    Some(rec)
}

fuzz_target!(|data: &[u8]| {
    let Some((pre, mut rest)) = data.split_first_chunk::<7>() else { return };
    let flags = pre[0];
    let base1 = BASES[(pre[1] & 7) as usize];
    let base2 = base1.wrapping_add(1 + u64::from(pre[1] >> 3));
    let len1 = u16::from_le_bytes([pre[2], pre[3]]) as usize;
    let len2 = u16::from_le_bytes([pre[4], pre[5]]) as usize;
    let snap_zxid = base1.wrapping_sub(1).wrapping_add(u64::from(pre[6] % 8));

    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("scratch dir");

    let fix = flags & 2 != 0;
    let seg1 = take(&mut rest, len1);
    std::fs::write(dir.join(segment_name(base1)), segment(flags & 1 != 0, fix, base1, seg1)).unwrap();
    if flags & 4 != 0 {
        let seg2 = take(&mut rest, len2);
        std::fs::write(dir.join(segment_name(base2)), segment(true, fix, base2, seg2)).unwrap();
    }
    if flags & 8 != 0 {
        let file = if flags & 16 != 0 { snapshot_file(snap_zxid, rest) } else { rest.to_vec() };
        std::fs::write(dir.join(snapshot_name(snap_zxid)), file).unwrap();
    }
    if flags & 32 != 0 {
        std::fs::write(dir.join(format!("{}.tmp", snapshot_name(snap_zxid.wrapping_add(1)))), b"partial").unwrap();
    }

    let opts = LogOptions { segment_bytes: if flags & 128 != 0 { 64 } else { 64 << 20 }, max_record: 1024 };
    let Ok((mut log, _report)) = FileLog::open(dir, opts.clone()) else { return };
    let first = check_recovered(&log);

    let mut appended = None;
    if flags & 64 != 0 && log.last_zxid() < u64::MAX {
        let zxid = log.last_zxid() + 1;
        if log.append(zxid, b"appended after recovery").is_ok() && log.sync().is_ok() {
            appended = Some(zxid);
        }
    }
    drop(log);

    // The first open repaired everything it was going to: a second open must succeed with
    // nothing left to cut and recover the same records (plus the one appended).
    let (log, report) = match FileLog::open(dir, opts) {
        Ok(x) => x,
        Err(e) => panic!("log opened once but not twice: {e}"),
    };
    assert!(report.torn_tail.is_none(), "second open cut a tail again: {:?}", report.torn_tail);
    assert!(report.repaired_headers.is_empty(), "second open repaired headers again");
    let second = check_recovered(&log);
    if let (Some(a), Some(b)) = (&first, &second) {
        assert_eq!(a.snapshot, b.snapshot);
        let mut expect = a.records.clone();
        let snap = a.snapshot.as_ref().map_or(0, |(z, _)| *z);
        if let Some(z) = appended.filter(|z| *z > snap) {
            expect.push((z, b"appended after recovery".to_vec()));
        }
        assert_eq!(b.records, expect, "records differ after reopen");
    }
    if let Some(z) = appended {
        assert_eq!(log.last_zxid(), z);
    }
});
