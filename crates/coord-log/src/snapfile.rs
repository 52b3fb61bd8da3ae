//! Snapshot files and directory helpers shared by [`FileLog`](crate::FileLog).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::LogError;
use crate::format::{self, SNAPSHOT_HEADER_LEN};

/// fsync a directory so that a create, rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(format!("fsync directory {}", dir.display()), e))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_file(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(format!("remove {}", path.display()), e)),
    }
}

/// Durably writes `snap.<zxid>`: temp file, fsync, rename, fsync dir.
pub(crate) fn save(dir: &Path, zxid: u64, bytes: &[u8]) -> Result<(), LogError> {
    let name = format::snapshot_name(zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let header = format::encode_snapshot_header(zxid, bytes);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&header)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        // Best effort: a leftover temp file is also removed on the next open.
        let _ = fs::remove_file(&tmp);
        return Err(LogError::io(format!("write snapshot {}", tmp.display()), e));
    }
    fs::rename(&tmp, &path)
        .map_err(|e| LogError::io(format!("rename {} to {}", tmp.display(), path.display()), e))?;
    sync_dir(dir)
}

/// Zxids of the `snap.*` files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut zxids = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| LogError::io(format!("list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(format!("list {}", dir.display()), e))?;
        if let Some(zxid) = entry
            .file_name()
            .to_str()
            .and_then(|n| format::parse_name(n, "snap."))
        {
            zxids.push(zxid);
        }
    }
    zxids.sort_unstable();
    Ok(zxids)
}

/// Reads and validates one snapshot: `Ok(Err(reason))` if it is corrupt or vanished.
pub(crate) fn load(dir: &Path, zxid: u64) -> Result<Result<Vec<u8>, String>, LogError> {
    let path = dir.join(format::snapshot_name(zxid));
    let mut buf = match fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err("file vanished".into())),
        Err(e) => return Err(LogError::io(format!("read {}", path.display()), e)),
    };
    match format::decode_snapshot(&buf, zxid) {
        Ok(range) => {
            debug_assert_eq!(range.start, SNAPSHOT_HEADER_LEN);
            buf.drain(..range.start);
            Ok(Ok(buf))
        }
        Err(reason) => Ok(Err(reason)),
    }
}

/// Newest snapshot that validates; corrupt ones are skipped with a warning.
pub(crate) fn latest(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, LogError> {
    for zxid in list(dir)?.into_iter().rev() {
        match load(dir, zxid)? {
            Ok(bytes) => return Ok(Some((zxid, bytes))),
            Err(reason) => tracing::warn!(
                dir = %dir.display(), zxid = format_args!("{zxid:#x}"), %reason,
                "skipping corrupt snapshot, trying an older one"
            ),
        }
    }
    Ok(None)
}

/// Keeps the newest `keep` valid snapshots, deletes the rest; returns the oldest kept zxid.
pub(crate) fn purge(dir: &Path, keep: usize) -> Result<Option<u64>, LogError> {
    let mut kept = 0usize;
    let mut oldest_kept = None;
    for zxid in list(dir)?.into_iter().rev() {
        let valid = kept < keep && load(dir, zxid)?.is_ok();
        if valid {
            kept += 1;
            oldest_kept = Some(zxid);
        } else {
            remove_file(&dir.join(format::snapshot_name(zxid)))?;
        }
    }
    sync_dir(dir)?;
    Ok(oldest_kept)
}

/// Deletes snapshots with zxid > `zxid` (they contain truncated txns).
pub(crate) fn remove_after(dir: &Path, zxid: u64) -> Result<(), LogError> {
    let newer: Vec<u64> = list(dir)?.into_iter().filter(|z| *z > zxid).collect();
    for z in &newer {
        remove_file(&dir.join(format::snapshot_name(*z)))?;
    }
    if !newer.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}
