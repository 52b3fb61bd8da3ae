//! `coordd dev`: prints the two export lines first, serves on the given port, and keeps its
//! data across a restart with the same --dir.

use coord_client::{Client, ClientConfig, CreateOptions};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path, port: u16, nodes: u32) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordd"))
        .args(["dev", "--dir"])
        .arg(dir)
        .args(["--port", &port.to_string(), "--nodes", &nodes.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let servers = first
        .strip_prefix("export COORD_SERVERS=")
        .expect("first line exports COORD_SERVERS")
        .to_string();
    let ca = second
        .strip_prefix("export COORD_CA=")
        .expect("second line exports COORD_CA")
        .to_string();
    (child, servers, ca)
}

async fn connect(servers: &str, ca: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cfg = ClientConfig::new(servers, ca)
            .unwrap()
            .connect_timeout(Duration::from_millis(500));
        match Client::connect(cfg).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "coordd dev never served: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// SIGTERM: the dev supervisor stops every server it started.
fn stop(mut child: Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
}

fn free_port() -> u16 {
    // A run of free ports: the first node's client port and the ones after it.
    loop {
        let p = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 60_000 && (1..103).all(|i| std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

#[test]
fn dev_prints_exports_and_keeps_data_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (child, servers, ca) = start(tmp.path(), port, 1);
    assert_eq!(servers, format!("127.0.0.1:{port}"));
    assert!(std::path::Path::new(&ca).is_absolute());
    rt.block_on(async {
        let c = connect(&servers, &ca).await;
        c.create("/dev", b"kept", CreateOptions::persistent())
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    assert!(tmp.path().join("n1/coord.toml").exists());
    assert!(tmp.path().join("n1/pid").exists());
    stop(child);

    let (child, servers2, ca2) = start(tmp.path(), port, 1);
    assert_eq!(
        (servers2.as_str(), ca2.as_str()),
        (servers.as_str(), ca.as_str())
    );
    rt.block_on(async {
        let c = connect(&servers, &ca).await;
        assert_eq!(c.get_data("/dev").await.unwrap().0, b"kept");
    });
    stop(child);
}

#[test]
fn dev_starts_a_three_node_ensemble_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordd"))
        .args(["dev", "--dir"])
        .arg(tmp.path())
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let servers = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("export COORD_SERVERS=")
        .unwrap()
        .to_string();
    let ca = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("export COORD_CA=")
        .unwrap()
        .to_string();
    assert_eq!(servers.split(',').count(), 3, "{servers}");
    for i in 1..=3 {
        assert!(tmp.path().join(format!("n{i}/coord.toml")).exists());
    }
    rt.block_on(async {
        let c = connect(&servers, &ca).await;
        c.create("/ensemble", b"3", CreateOptions::persistent())
            .await
            .unwrap();
        // Every server answers with the write (after a sync through the leader).
        for s in servers.split(',') {
            let c = connect(s, &ca).await;
            c.sync("/").await.unwrap();
            assert_eq!(c.get_data("/ensemble").await.unwrap().0, b"3");
        }
    });
    let pids: Vec<i32> = (1..=3)
        .map(|i| {
            std::fs::read_to_string(tmp.path().join(format!("n{i}/pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    stop(child);
    // The supervisor took its servers down with it.
    std::thread::sleep(Duration::from_millis(300));
    for pid in pids {
        assert!(
            unsafe { libc::kill(pid, 0) } != 0,
            "server pid {pid} still running"
        );
    }
}
