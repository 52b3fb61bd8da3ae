//! [`FileLog`]: segmented append-only files, the real backend.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::format::{self, BadRecord, HeaderError, RecordScan, SEGMENT_HEADER_LEN, Step};
use crate::snapfile::{self, remove_file, sync_dir};
use crate::{LogError, LogOptions, LogStorage};

/// Appends buffered beyond this many bytes are written to the file (not synced) early, so an
/// unsynced burst does not grow memory without bound.
const WRITE_THROUGH_BYTES: usize = 1 << 20;

/// What [`FileLog::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in the log after repair.
    pub segments: usize,
    /// Valid records kept, over all segments.
    pub records: u64,
    /// Highest zxid in the log (the horizon if it holds no record).
    pub last_zxid: u64,
    /// Every record with zxid > horizon is present (first segment's base - 1).
    pub horizon: u64,
    /// The torn tail cut from the final segment, if any.
    pub torn_tail: Option<TornTail>,
    /// Final segments whose header was torn while being created (no record could have been
    /// acknowledged in them) and were rewritten empty.
    pub repaired_headers: Vec<PathBuf>,
    /// Leftover `snap.*.tmp` files of interrupted snapshot writes, removed.
    pub removed_temp_files: Vec<PathBuf>,
}

/// A torn or corrupt tail cut from the final segment on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment that was cut.
    pub segment: PathBuf,
    /// Valid records kept in that segment.
    pub records_kept: u64,
    /// File length after the cut (end of the last valid record, or of the header).
    pub valid_bytes: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Why the first removed record was refused.
    pub reason: BadRecord,
}

/// One segment file. Invariant: its records have zxids in `[base, next segment's base)`.
#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    /// Highest zxid in it (written or still buffered), if any.
    last: Option<u64>,
}

/// The file backend. See the crate docs for the layout and the invariants.
///
/// Dropping a `FileLog` discards appended records that were never synced (as a crash
/// would); call [`LogStorage::sync`] before a clean shutdown.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    opts: LogOptions,
    /// Held for the lifetime of the log; the OS releases the lock when it is closed.
    _lock: File,
    /// Sorted by base, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    /// The active segment, opened in append mode.
    active: File,
    /// Bytes written to the active file, header included.
    active_len: u64,
    /// Encoded records appended but not yet written to the active file.
    pending: Vec<u8>,
    last_zxid: u64,
    last_synced: u64,
    /// Set when a write or fsync failed: what is on disk is unknown until reopened.
    failed: bool,
}

fn ctx(what: &str, path: &Path) -> String {
    format!("{what} {}", path.display())
}

fn header_error(path: &Path, e: HeaderError) -> LogError {
    match e {
        HeaderError::Version(version) => LogError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
            supported: format::FORMAT_VERSION,
        },
        other => LogError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: other.to_string(),
        },
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| LogError::io(ctx("open", path), e))
}

/// Creates `path` holding just a segment header, durably (file and directory).
fn create_segment(dir: &Path, path: &Path, base: u64) -> Result<File, LogError> {
    let write = || -> io::Result<File> {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        f.set_len(0)?;
        f.write_all(&format::encode_segment_header(base))?;
        f.sync_all()?;
        Ok(f)
    };
    let f = write().map_err(|e| LogError::io(ctx("create segment", path), e))?;
    sync_dir(dir)?;
    Ok(f)
}

fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LogError::io(ctx("open", &path), e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(LogError::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(LogError::io(ctx("lock", &path), e)),
    }
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir`, validates every segment, cuts a torn
    /// tail off the final one and reports what it found. Refuses ([`LogError::Corrupt`]) a
    /// bad record in a non-final segment or a damaged header in front of records.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(FileLog, RecoveryReport), LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(ctx("create directory", dir), e))?;
        let lock = lock_dir(dir)?;
        let mut report = RecoveryReport::default();
        let mut bases = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| LogError::io(ctx("list", dir), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io(ctx("list", dir), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = format::parse_name(name, "log.") {
                bases.push(base);
            } else if name.starts_with("snap.") && name.ends_with(".tmp") {
                remove_file(&entry.path())?;
                report.removed_temp_files.push(entry.path());
            }
        }
        if !report.removed_temp_files.is_empty() {
            sync_dir(dir)?;
        }
        bases.sort_unstable();
        if bases.is_empty() {
            // A fresh directory. Snapshots without segments mean the log files were lost:
            // start above the newest snapshot so nothing claims records it does not have.
            let base = snapfile::list(dir)?
                .last()
                .map_or(1, |z| z.saturating_add(1));
            if base > 1 {
                tracing::warn!(dir = %dir.display(), base, "no log segments beside snapshots");
            }
            create_segment(dir, &dir.join(format::segment_name(base)), base)?;
            bases.push(base);
        }

        let mut segments = Vec::with_capacity(bases.len());
        let mut active_len = SEGMENT_HEADER_LEN as u64;
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(format::segment_name(base));
            let next_base = bases.get(i + 1).copied();
            let (last, kept, len) =
                scan_segment(dir, &path, base, next_base, opts.max_record, &mut report)?;
            report.records += kept;
            active_len = len;
            segments.push(Segment { base, path, last });
        }
        let active_path = &segments[segments.len() - 1].path; // never empty: see above
        let active = open_append(active_path)?;
        // Records a crashed predecessor wrote but never synced are in the file now: make
        // them durable before counting them as such.
        active
            .sync_data()
            .map_err(|e| LogError::io(ctx("fdatasync", active_path), e))?;
        let horizon = segments[0].base.saturating_sub(1);
        // Appends must land at or above the active segment's base, even when it is empty.
        let active_floor = segments[segments.len() - 1].base.saturating_sub(1);
        let last_zxid = segments
            .iter()
            .rev()
            .find_map(|s| s.last)
            .unwrap_or(horizon)
            .max(active_floor);
        report.segments = segments.len();
        report.last_zxid = last_zxid;
        report.horizon = horizon;
        let log = FileLog {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock,
            segments,
            active,
            active_len,
            pending: Vec::new(),
            last_zxid,
            last_synced: last_zxid,
            failed: false,
        };
        Ok((log, report))
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn check(&self) -> Result<(), LogError> {
        if self.failed {
            Err(LogError::Failed)
        } else {
            Ok(())
        }
    }

    /// Runs a step that does IO; any failure leaves the disk state unknown.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        self.check()?;
        let r = f(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.active_path();
        self.active
            .write_all(&self.pending)
            .map_err(|e| LogError::io(ctx("write", &path), e))?;
        self.active_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    fn sync_inner(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.last_synced < self.last_zxid {
            let path = self.active_path();
            self.active
                .sync_data()
                .map_err(|e| LogError::io(ctx("fdatasync", &path), e))?;
            self.last_synced = self.last_zxid;
        }
        Ok(())
    }

    /// Completes the active segment durably, then starts the next one at `last_zxid + 1`.
    fn roll(&mut self) -> Result<(), LogError> {
        self.sync_inner()?;
        let base = self.last_zxid + 1;
        let path = self.dir.join(format::segment_name(base));
        self.active = create_segment(&self.dir, &path, base)?;
        self.active_len = SEGMENT_HEADER_LEN as u64;
        self.segments.push(Segment {
            base,
            path,
            last: None,
        });
        Ok(())
    }

    fn truncate_inner(&mut self, zxid: u64) -> Result<(), LogError> {
        self.write_pending()?;
        // Later segments go first, newest first, so a crash part-way leaves a log that is
        // a prefix of the old one. Segment 0 stays (possibly empty): it carries the horizon.
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[self.segments.len() - 1].base > zxid {
            if let Some(seg) = self.segments.pop() {
                remove_file(&seg.path)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        let (base, path) = match self.segments.last() {
            Some(s) => (s.base, s.path.clone()),
            None => return Ok(()), // unreachable: segment 0 is never removed
        };
        let buf = fs::read(&path).map_err(|e| LogError::io(ctx("read", &path), e))?;
        let mut scan = RecordScan::new(&buf, SEGMENT_HEADER_LEN, base.saturating_sub(1), u32::MAX);
        let mut cut = SEGMENT_HEADER_LEN;
        let mut last = None;
        while let Step::Record { zxid: z, end, .. } = scan.step() {
            if z > zxid {
                break;
            }
            cut = end;
            last = Some(z);
        }
        let file = OpenOptions::new().write(true).open(&path);
        file.and_then(|f| {
            f.set_len(cut as u64)?;
            f.sync_all()
        })
        .map_err(|e| LogError::io(ctx("truncate", &path), e))?;
        self.active = open_append(&path)?;
        self.active_len = cut as u64;
        let horizon = self.horizon();
        let n = self.segments.len();
        self.segments[n - 1].last = last;
        self.last_zxid = self
            .segments
            .iter()
            .rev()
            .find_map(|s| s.last)
            .unwrap_or(horizon);
        self.last_synced = self.last_zxid;
        Ok(())
    }

    fn read_segment(
        &self,
        seg: &Segment,
        out: &mut Vec<(u64, Vec<u8>)>,
        after: u64,
    ) -> Result<(), LogError> {
        let is_active = std::ptr::eq(seg, &self.segments[self.segments.len() - 1]);
        let mut buf = fs::read(&seg.path).map_err(|e| LogError::io(ctx("read", &seg.path), e))?;
        if is_active {
            buf.truncate(self.active_len as usize);
        }
        let mut scan = RecordScan::new(
            &buf,
            SEGMENT_HEADER_LEN,
            seg.base.saturating_sub(1),
            self.opts.max_record,
        );
        loop {
            match scan.step() {
                Step::Record { zxid, payload, .. } if zxid > after => {
                    out.push((zxid, payload.to_vec()))
                }
                Step::Record { .. } => {}
                Step::End => break,
                Step::Bad { offset, reason } => {
                    return Err(LogError::Corrupt {
                        path: seg.path.clone(),
                        offset: offset as u64,
                        reason: format!("{reason} (changed under a running log)"),
                    });
                }
            }
        }
        if is_active {
            let mut scan = RecordScan::new(&self.pending, 0, 0, u32::MAX);
            while let Step::Record { zxid, payload, .. } = scan.step() {
                if zxid > after {
                    out.push((zxid, payload.to_vec()));
                }
            }
        }
        Ok(())
    }
}

/// Validates one segment on open. Returns (last zxid, records kept, file length after repair).
fn scan_segment(
    dir: &Path,
    path: &Path,
    base: u64,
    next_base: Option<u64>,
    max_record: u32,
    report: &mut RecoveryReport,
) -> Result<(Option<u64>, u64, u64), LogError> {
    let is_final = next_base.is_none();
    let buf = fs::read(path).map_err(|e| LogError::io(ctx("read", path), e))?;
    if let Err(e) = format::decode_segment_header(&buf, base) {
        // The header is fsynced before any record is written, so a final segment no longer
        // than a header never held an acknowledged record: its creation was torn.
        if is_final && buf.len() <= SEGMENT_HEADER_LEN && !matches!(e, HeaderError::Version(_)) {
            tracing::warn!(segment = %path.display(), error = %e, "rewriting torn segment header");
            create_segment(dir, path, base)?;
            report.repaired_headers.push(path.to_path_buf());
            return Ok((None, 0, SEGMENT_HEADER_LEN as u64));
        }
        return Err(header_error(path, e));
    }
    let mut scan = RecordScan::new(&buf, SEGMENT_HEADER_LEN, base.saturating_sub(1), max_record);
    let (mut last, mut kept, mut end) = (None, 0u64, SEGMENT_HEADER_LEN);
    loop {
        match scan.step() {
            Step::Record { zxid, end: e, .. } => {
                if let Some(next) = next_base.filter(|n| zxid >= *n) {
                    return Err(LogError::Corrupt {
                        path: path.to_path_buf(),
                        offset: end as u64,
                        reason: format!("zxid {zxid:#x} not below next segment base {next:#x}"),
                    });
                }
                last = Some(zxid);
                kept += 1;
                end = e;
            }
            Step::End => return Ok((last, kept, buf.len() as u64)),
            Step::Bad { offset, reason } if is_final => {
                let bytes_cut = (buf.len() - offset) as u64;
                tracing::warn!(
                    segment = %path.display(), records_kept = kept, valid_bytes = offset,
                    bytes_cut, %reason, "cutting torn tail of the log"
                );
                let file = OpenOptions::new().write(true).open(path);
                file.and_then(|f| {
                    f.set_len(offset as u64)?;
                    f.sync_all()
                })
                .map_err(|e| LogError::io(ctx("truncate torn tail of", path), e))?;
                report.torn_tail = Some(TornTail {
                    segment: path.to_path_buf(),
                    records_kept: kept,
                    valid_bytes: offset as u64,
                    bytes_cut,
                    reason,
                });
                return Ok((last, kept, offset as u64));
            }
            Step::Bad { offset, reason } => {
                return Err(LogError::Corrupt {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    reason: format!("{reason} in a non-final segment"),
                });
            }
        }
    }
}

impl LogStorage for FileLog {
    fn append(&mut self, zxid: u64, record: &[u8]) -> Result<(), LogError> {
        self.check()?;
        if zxid <= self.last_zxid {
            return Err(LogError::OutOfOrder {
                zxid,
                last: self.last_zxid,
            });
        }
        if record.len() > self.opts.max_record as usize {
            return Err(LogError::RecordTooLarge {
                len: record.len(),
                max: self.opts.max_record,
            });
        }
        let active_has_records = self.segments.last().is_some_and(|s| s.last.is_some());
        let size = self.active_len + self.pending.len() as u64;
        if active_has_records && size >= self.opts.segment_bytes {
            self.guarded(|log| log.roll())?;
        }
        format::encode_record(&mut self.pending, zxid, record);
        if let Some(seg) = self.segments.last_mut() {
            seg.last = Some(zxid);
        }
        self.last_zxid = zxid;
        if self.pending.len() >= WRITE_THROUGH_BYTES {
            self.guarded(|log| log.write_pending())?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.guarded(|log| log.sync_inner())
    }

    fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    fn last_synced_zxid(&self) -> u64 {
        self.last_synced
    }

    fn read_after(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        self.check()?;
        let horizon = self.horizon();
        if after < horizon {
            return Err(LogError::Compacted {
                requested: after,
                horizon,
            });
        }
        let mut out = Vec::new();
        for seg in &self.segments {
            if seg.last.is_some_and(|last| last > after) {
                self.read_segment(seg, &mut out, after)?;
            }
        }
        Ok(out)
    }

    fn truncate_after(&mut self, zxid: u64) -> Result<(), LogError> {
        self.check()?;
        let horizon = self.horizon();
        if zxid < horizon {
            return Err(LogError::Compacted {
                requested: zxid,
                horizon,
            });
        }
        // Snapshots first: a crash in between must not leave a snapshot holding txns the
        // log no longer has; the untruncated log without them is just the pre-TRUNC state.
        snapfile::remove_after(&self.dir, zxid)?;
        if zxid < self.last_zxid {
            self.guarded(|log| log.truncate_inner(zxid))
        } else {
            self.guarded(|log| log.sync_inner())
        }
    }

    fn save_snapshot(&mut self, zxid: u64, bytes: &[u8]) -> Result<(), LogError> {
        self.check()?;
        snapfile::save(&self.dir, zxid, bytes)
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        snapfile::latest(&self.dir)
    }

    fn snapshot_zxids(&self) -> Result<Vec<u64>, LogError> {
        snapfile::list(&self.dir)
    }

    fn purge(&mut self, keep: usize) -> Result<(), LogError> {
        self.guarded(|log| {
            let Some(oldest_kept) = snapfile::purge(&log.dir, keep)? else {
                return Ok(());
            };
            // Segment i holds zxids below segment i+1's base: all covered when that base - 1
            // <= oldest_kept. Oldest first, so a crash part-way leaves a valid suffix.
            let mut covered = 0;
            while covered + 1 < log.segments.len()
                && log.segments[covered + 1].base.saturating_sub(1) <= oldest_kept
            {
                covered += 1;
            }
            for seg in &log.segments[..covered] {
                remove_file(&seg.path)?;
            }
            if covered > 0 {
                sync_dir(&log.dir)?;
                log.segments.drain(..covered);
            }
            Ok(())
        })
    }

    fn horizon(&self) -> u64 {
        self.segments
            .first()
            .map_or(0, |s| s.base.saturating_sub(1))
    }
}
