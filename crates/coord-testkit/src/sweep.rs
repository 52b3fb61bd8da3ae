//! Cleaning up after owners that died without dropping their cluster (SIGKILL).

/// Temporary cluster directories are `<tmp>/coord-cluster-*`.
pub(crate) const DIR_PREFIX: &str = "coord-cluster-";
/// The pid of the process that owns a cluster directory (absent once kept).
pub(crate) const OWNER_FILE: &str = "owner.pid";
/// In each server's directory: the pid of its latest `coordd`.
pub(crate) const PID_FILE: &str = "coordd.pid";

/// Whether `pid` runs (a zombie, killed but not yet reaped, does not).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !matches!(
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next()),
        None | Some('Z') | Some('X')
    )
}

/// Cleans up after clusters whose owner died without dropping them (SIGKILL): kills their
/// servers — only a pid recorded in the directory whose command line names that directory,
/// so a reused pid is left alone — and deletes the directory.
pub fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_cluster = entry.file_name().to_string_lossy().starts_with(DIR_PREFIX);
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let Some(owner) = owner.filter(|_| is_cluster) else {
            continue;
        };
        if pid_alive(owner) {
            continue;
        }
        let servers = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for server in servers {
            let pid = std::fs::read_to_string(server.path().join(PID_FILE))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let Some(pid) = pid else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let needle = server.path().to_string_lossy().into_owned();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                // SAFETY: kill(2) on a coordd of a dead owner, identified by its command
                // line naming this cluster's directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
