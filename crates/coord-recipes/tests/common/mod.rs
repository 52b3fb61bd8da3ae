//! What every recipe test needs: a real 3-server ensemble, sessions on it, and waiting.
#![allow(dead_code)] // each test file uses its own part of this module

use coord_client::{Client, ClientConfig};
use coord_testkit::Cluster;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `coordd` binary: `$COORDD`, else `target/<profile>/coordd` next to this test's
/// `deps/` directory. A missing binary fails the test (it is never skipped).
pub fn coordd() -> PathBuf {
    if let Ok(p) = std::env::var("COORDD") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("coordd");
    assert!(
        path.is_file(),
        "no coordd at {}: build it first with `cargo build -p coord-server --bin coordd` \
         (or set COORDD)",
        path.display()
    );
    path
}

/// A started 3-voter ensemble with a stable leader, and that leader's index.
pub async fn cluster() -> (Cluster, usize) {
    let cluster = Cluster::builder(coordd())
        .voters(3)
        .start()
        .expect("start the ensemble");
    let leader = cluster.wait_stable().await;
    (cluster, leader)
}

/// A session on any server with a 4 s timeout.
pub async fn session(cluster: &Cluster) -> Client {
    connect(
        cluster
            .client_config()
            .session_timeout(Duration::from_secs(4)),
    )
    .await
}

/// A session with `cfg`, retried for up to 20 s (servers may be electing).
pub async fn connect(cfg: ClientConfig) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(cfg.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no session: {e}"),
        }
    }
}

/// A config naming only the servers in `which` (by index).
pub fn config_of(cluster: &Cluster, which: &[usize]) -> ClientConfig {
    let list: Vec<String> = which
        .iter()
        .map(|i| cluster.servers[*i].client.to_string())
        .collect();
    ClientConfig::new(&list.join(","), cluster.ca()).expect("the cluster CA is readable")
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retries `f` while it fails with `ConnectionLoss` (a test's own calls during a fail-over).
pub async fn retry<T, F, Fut>(mut f: F) -> Result<T, coord_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, coord_client::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Err(e) if e.is_connection_loss() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r => return r,
        }
    }
}
