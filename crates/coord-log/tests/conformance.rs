//! Both backends pass the same storage conformance suite.

use std::fs;
use std::path::PathBuf;

use coord_log::conformance::{self, Backend};
use coord_log::{FileLog, LogOptions, MemLog};
use tempfile::TempDir;

struct FileBackend {
    opts: LogOptions,
    dirs: Vec<TempDir>,
}

impl FileBackend {
    fn new(opts: LogOptions) -> Self {
        FileBackend {
            opts,
            dirs: Vec::new(),
        }
    }
}

impl Backend for FileBackend {
    type Log = FileLog;

    fn create(&mut self) -> FileLog {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, report) = FileLog::open(dir.path(), self.opts.clone()).expect("open empty");
        assert_eq!(report.records, 0);
        self.dirs.push(dir);
        log
    }

    fn reopen(&mut self, log: FileLog) -> FileLog {
        let dir: PathBuf = log.dir().to_path_buf();
        drop(log);
        let (log, report) = FileLog::open(&dir, self.opts.clone()).expect("reopen");
        assert_eq!(report.torn_tail, None, "a clean drop leaves no torn tail");
        log
    }

    fn corrupt_snapshot(&mut self, log: &mut FileLog, zxid: u64) {
        let path = log.dir().join(format!("snap.{zxid:016x}"));
        let mut bytes = fs::read(&path).expect("read snapshot");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, bytes).expect("write snapshot");
    }
}

struct MemBackend;

impl Backend for MemBackend {
    type Log = MemLog;

    fn create(&mut self) -> MemLog {
        MemLog::new()
    }

    fn reopen(&mut self, mut log: MemLog) -> MemLog {
        log.crash();
        log
    }

    fn corrupt_snapshot(&mut self, log: &mut MemLog, zxid: u64) {
        assert!(
            log.corrupt_snapshot(zxid),
            "snapshot {zxid:#x} exists and is not empty"
        );
    }
}

#[test]
fn file_log_conforms_with_default_options() {
    conformance::run_all(&mut FileBackend::new(LogOptions::default()));
}

#[test]
fn file_log_conforms_with_tiny_segments() {
    // Rolls every few records, so truncation, purge and reads all cross segment boundaries.
    let opts = LogOptions {
        segment_bytes: 300,
        ..LogOptions::default()
    };
    conformance::run_all(&mut FileBackend::new(opts));
}

#[test]
fn mem_log_conforms() {
    conformance::run_all(&mut MemBackend);
}
