//! Free space on the data directory's filesystem, for refusing writes before the disk is
//! full (`min_free_disk_bytes`).
//!
//! A write that cannot be logged can never be acknowledged, and a log write that fails with
//! ENOSPC stops the server (a failed write or fsync is never retried as if it had worked).
//! So each server refuses, with `DiskFull`, the writes that would grow its data while its
//! free space is below the reserve: the reserve is then left for what must still be written
//! (the leader's proposals on a follower, deletes, session closes, snapshots), reads go on,
//! and writes resume by themselves once space is back. The leader refuses every such
//! write, forwarded ones included, while its own disk is low.

use coord_tree::TxnBody;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How often the free space is measured at most (a `statvfs` call).
pub const CHECK_EVERY_MS: u64 = 200;

/// Free bytes available to this process on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs writes into the struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether the data directory is below its reserve, measured at most every
/// [`CHECK_EVERY_MS`].
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    low: AtomicBool,
    checked_at: AtomicU64,
}

impl DiskGuard {
    /// A guard of `dir` keeping `reserve` bytes free (0: never low).
    pub fn new(dir: &Path, reserve: u64) -> DiskGuard {
        DiskGuard {
            dir: dir.to_path_buf(),
            reserve,
            low: AtomicBool::new(false),
            checked_at: AtomicU64::new(0),
        }
    }

    /// Whether free space is below the reserve (at `now_ms`, a monotonic clock).
    pub fn is_low(&self, now_ms: u64) -> bool {
        if self.reserve == 0 {
            return false;
        }
        let last = self.checked_at.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= CHECK_EVERY_MS || last == 0 {
            self.checked_at.store(now_ms.max(1), Ordering::Relaxed);
            // A filesystem that cannot be asked is not taken as full.
            let low = free_bytes(&self.dir).is_ok_and(|free| free < self.reserve);
            let was = self.low.swap(low, Ordering::Relaxed);
            if low != was {
                if low {
                    tracing::warn!(dir = %self.dir.display(), reserve = self.reserve, "free disk space below min_free_disk_bytes: refusing writes (DiskFull) until space is freed");
                } else {
                    tracing::info!(dir = %self.dir.display(), "free disk space back above min_free_disk_bytes: accepting writes");
                }
            }
        }
        self.low.load(Ordering::Relaxed)
    }
}

/// Whether a txn may still be proposed while the disk is low: what frees space or must not
/// be refused (session bookkeeping, deletes, syncs, cleanup).
pub fn allowed_when_low(body: &TxnBody) -> bool {
    matches!(
        body,
        TxnBody::CreateSession { .. }
            | TxnBody::CloseSession
            | TxnBody::ExpireSession
            | TxnBody::MoveSession
            | TxnBody::Delete { .. }
            | TxnBody::ReapNode { .. }
            | TxnBody::Noop
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_is_low_and_zero_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(DiskGuard::new(dir.path(), free.saturating_mul(2).max(1 << 40)).is_low(1));
        assert!(!DiskGuard::new(dir.path(), 1).is_low(1));
        assert!(!DiskGuard::new(dir.path(), 0).is_low(1));
        assert!(!allowed_when_low(&TxnBody::SetData {
            path: "/a".into(),
            data: vec![],
            version: -1
        }));
        assert!(allowed_when_low(&TxnBody::CloseSession));
    }
}
