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

/// The most recently modified `Cargo.toml` or `.rs` file of the crate at `dir` (its
/// manifest, `src/`, and `build.rs`), with its time.
fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut consider = |p: PathBuf| {
        if let Some(t) = modified(&p)
            && newest.as_ref().is_none_or(|(n, _)| t > *n)
        {
            newest = Some((t, p));
        }
    };
    consider(dir.join("Cargo.toml"));
    consider(dir.join("build.rs"));
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                consider(p);
            }
        }
    }
    newest
}

/// The `coordd` to run: `$COORDD`, else the one cargo built next to `coord-verify`
/// (`target/<profile>/coordd`; `cargo nextest run --workspace` and `cargo build` build it).
///
/// # Panics
/// With instructions, when there is none, or when it is older than a source file of the
/// crates it is built from (a stale server would be tested).
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
    // Stale means older than the server's sources (the crates coordd is built from). Build
    // artifacts do not tell: the same library is built once per feature set (a `-p` build,
    // a workspace build), and the newest of them need not be the one coordd was linked with.
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest_source = [
        "coord-server",
        "coord-zab",
        "coord-tree",
        "coord-log",
        "coord-proto",
    ]
    .iter()
    .filter_map(|c| newest_file(&crates.join(c)))
    .max();
    if let Some((source_time, source)) = newest_source {
        assert!(
            bin_time >= source_time,
            "{} is older than {} (stale): {build}",
            coordd.display(),
            source.display()
        );
    }
    coordd
}
