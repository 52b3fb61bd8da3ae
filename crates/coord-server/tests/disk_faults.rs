//! Disk faults through real servers: an fsync failing with EIO stops the server (it is never
//! retried as if it had worked) and loses no acknowledged write; a nearly full disk refuses
//! writes with `DiskFull` while reads, deletes and session closes go on, and writes resume
//! once space is back; a corrupt newest snapshot falls back to an older one plus the log.

mod common;
use common::*;
use coord_client::{Client, CreateOptions};
use coord_proto::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn an_fsync_failing_with_eio_stops_the_server_and_loses_no_acknowledged_write() {
    let mut cluster = coord_testkit::Cluster::builder(env!("CARGO_BIN_EXE_coordd"))
        .voters(3)
        .fault_hooks(true)
        .start()
        .expect("start the ensemble");
    let rt = runtime();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let c = cluster.client().await;
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let acked: Arc<parking_lot::Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (c, acked, stop) = (cluster.client().await, acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let p = format!("/w/e-{i:06}");
                    if c.create(&p, b"e", CreateOptions::persistent())
                        .await
                        .is_ok()
                    {
                        acked.lock().insert(p, b"e".to_vec());
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The leader's disk starts failing every fsync.
        let hook = cluster
            .data_dir(leader)
            .join("data")
            .join(coord_server::persist::FSYNC_EIO_FILE);
        std::fs::write(&hook, b"").unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some((_, st)) = cluster
                .reap_exited()
                .into_iter()
                .find(|(i, _)| *i == leader)
            {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the leader kept running on a failing disk:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(70), "a storage fault stops with 70");
        let log = std::fs::read_to_string(cluster.data_dir(leader).join("coordd.log")).unwrap();
        assert!(log.contains("disk failed; stopping"), "{log}");
        // The others elect a new leader and writes go on.
        let before = acked.lock().len();
        let new_leader = cluster.wait_stable().await;
        assert_ne!(new_leader, leader);
        let t1 = Instant::now();
        while acked.lock().len() < before + 20 {
            assert!(
                t1.elapsed() < Duration::from_secs(20),
                "no writes after the failure"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        // Disk replaced: the server comes back and catches up; nothing acknowledged is lost.
        std::fs::remove_file(&hook).unwrap();
        cluster.restart(leader).expect("restart");
        cluster.wait_stable().await;
        let (_, digest) = cluster.wait_converged().await;
        assert_ne!(digest, 0);
        let acked = acked.lock().clone();
        for i in 0..3 {
            let c = Client::connect(cluster.config_for(i)).await.unwrap();
            c.sync("/").await.unwrap();
            let (children, _) = c.get_children("/w").await.unwrap();
            let present: std::collections::BTreeSet<String> =
                children.into_iter().map(|n| format!("/w/{n}")).collect();
            for p in acked.keys() {
                assert!(
                    present.contains(p),
                    "server {} lost acknowledged {p}",
                    i + 1
                );
            }
        }
    });
}

/// Mounts a tmpfs of `mib` MiB at `dir` for the test's life.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount a tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_nearly_full_disk_refuses_writes_keeps_reads_and_resumes_when_space_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fs = Tmpfs::mount(&data, 64);
    // The reserve is 16 MiB; a 36 MiB file leaves ~28 MiB, ~12 MiB above it.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![7u8; 36 << 20]).unwrap();
    let mut server = Coordd::start_in(
        tmp.path(),
        "min_free_disk_bytes = 16777216\nlog_segment_bytes = 1048576\nsnapshot_every_txns = 1000000",
    );
    runtime().block_on(async {
        let c = server.client().await;
        c.create("/keep", b"k", CreateOptions::persistent())
            .await
            .unwrap();
        let value = vec![1u8; 512 * 1024];
        let mut written = 0;
        let full = loop {
            match c
                .create(
                    &format!("/big-{written:04}"),
                    &value,
                    CreateOptions::persistent(),
                )
                .await
            {
                Ok(_) => written += 1,
                Err(e) => break e,
            }
            assert!(written < 200, "the disk never filled");
        };
        assert_eq!(full.code(), ErrorCode::DiskFull, "{full}");
        assert!(written > 5, "writes went in before the reserve: {written}");
        eprintln!("{written} writes of 512 KiB before DiskFull");
        // Reads, deletes and new sessions go on; the server is still up.
        assert_eq!(c.get_data("/keep").await.unwrap().0, b"k");
        assert_eq!(
            c.set_data("/keep", b"x", None).await.unwrap_err().code(),
            ErrorCode::DiskFull
        );
        c.delete("/big-0000", None).await.unwrap();
        let other = server.client().await;
        assert_eq!(other.get_data("/keep").await.unwrap().0, b"k");
        other.close().await.unwrap();
        // Space is back: writes resume by themselves.
        std::fs::remove_file(&filler).unwrap();
        let t0 = Instant::now();
        loop {
            match c.set_data("/keep", b"y", None).await {
                Ok(_) => break,
                Err(e) => assert_eq!(e.code(), ErrorCode::DiskFull, "{e}"),
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "writes never resumed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(c.get_data("/keep").await.unwrap().0, b"y");
    });
    assert!(server.log_tail().contains("refusing writes (DiskFull)"));
    server.kill();
    drop(fs);
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_an_older_one_and_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Coordd::start_in(tmp.path(), "snapshot_every_txns = 10\nsnapshots_keep = 3");
    let log_dir = tmp.path().join("data").join("log");
    let snaps = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy().starts_with("snap.")
                        && !n.to_string_lossy().ends_with(".tmp")
                })
            })
            .collect();
        v.sort();
        v
    };
    runtime().block_on(async {
        let c = server.client().await;
        for i in 0..45 {
            c.create(
                &format!("/n{i:03}"),
                format!("{i}").as_bytes(),
                CreateOptions::persistent(),
            )
            .await
            .unwrap();
        }
        // Snapshots are written on a thread of their own: poll for them (at most 200 times).
        for _ in 0..200 {
            if snaps().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(snaps().len() >= 2, "no snapshots");
    });
    server.kill();
    let newest = snaps().pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    server.restart();
    runtime().block_on(async {
        let c = server.client().await;
        for i in 0..45 {
            assert_eq!(
                c.get_data(&format!("/n{i:03}")).await.unwrap().0,
                format!("{i}").as_bytes(),
                "/n{i:03} after the fallback"
            );
        }
    });
}
