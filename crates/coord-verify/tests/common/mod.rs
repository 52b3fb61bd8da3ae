//! Finding the `coordd` the tests run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `coord-verify` binary under test.
pub fn verify_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coord-verify"))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The `coordd` to run: `$COORDD`, else the one cargo built next to `coord-verify`
/// (`target/<profile>/coordd`; `cargo nextest run --workspace` and `cargo build` build it).
///
/// # Panics
/// With instructions, when there is none, or when it is older than the `coord-server` library
/// this test was built with (a stale server would be tested).
pub fn coordd() -> PathBuf {
    if let Some(p) = std::env::var_os("COORDD") {
        return PathBuf::from(p);
    }
    let dir = verify_bin()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let coordd = dir.join("coordd");
    let build = "build it first: cargo build -p coord-server --bin coordd (same profile), \
                 or run the whole workspace (cargo nextest run --workspace), or set COORDD";
    let Some(bin_time) = modified(&coordd) else {
        panic!("no coordd at {}: {build}", coordd.display());
    };
    let newest_lib = std::fs::read_dir(dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("libcoord_server-") && n.ends_with(".rlib")
        })
        .filter_map(|e| modified(&e.path()))
        .max();
    if let Some(lib_time) = newest_lib {
        assert!(
            bin_time >= lib_time,
            "{} is older than the coord-server library built for this test (stale): {build}",
            coordd.display()
        );
    }
    coordd
}
