//! The TCP liveness sockets under attack: a stranger holding 10,000 idle TCP connections to
//! every port of every server (client and peer) changes nobody's view of who is alive.
//! Writes go on without a failure, new clients connect without a jeopardy, a follower
//! restarted during the attack rejoins without an election, and once the attack ends a real
//! death is still seen through the liveness socket.

mod common;
use coord_client::{Client, CreateOptions, SessionEvent};
use coord_testkit::runtime as rt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PER_PORT: usize = 10_000;

/// Every client and peer address of the ensemble, from server 1's config.
fn all_ports(cluster: &coord_testkit::Cluster) -> Vec<SocketAddr> {
    let config = std::fs::read_to_string(cluster.data_dir(0).join("coord.toml")).unwrap();
    config
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            matches!(key.trim(), "client_addr" | "peer_addr")
                .then(|| value.trim().trim_matches('"').parse().ok())?
        })
        .collect::<std::collections::BTreeSet<SocketAddr>>()
        .into_iter()
        .collect()
}

/// One stranger process per port (a process may open only so many files).
struct Squatter {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Squatter {
    fn start(addr: SocketAddr, count: usize) -> Squatter {
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(include_str!("support/squat.py"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(count.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run python3 (the squatter)");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        Squatter { child, out }
    }

    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.out.read_line(&mut l).expect("squatter output");
        l.trim().to_string()
    }

    /// Ends the attack; returns (connections made, connections open at the end).
    fn stop(mut self) -> (usize, usize) {
        use std::io::Write;
        let _ = self.child.stdin.take().unwrap().write_all(b"stop\n");
        let l = self.line();
        let _ = self.child.wait();
        let mut it = l.split_whitespace().skip(1).map(|n| n.parse().unwrap_or(0));
        assert!(l.starts_with("done"), "squatter ended with {l:?}");
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(cluster: &coord_testkit::Cluster, i: usize) -> String {
    std::fs::read_to_string(cluster.data_dir(i).join("coordd.log")).unwrap_or_default()
}

#[test]
fn ten_thousand_idle_tcp_connections_per_port_change_nobodys_view() {
    let mut cluster = common::cluster(3, 0, "");
    let rt = rt();
    rt.block_on(async {
        let leader = cluster.wait_stable().await;
        let epoch = cluster.status(leader).await.expect("leader answers").epoch;
        let follower = (leader + 1) % 3;
        let c = Client::connect(cluster.config_for(leader)).await.unwrap();
        c.create("/w", b"", CreateOptions::persistent())
            .await
            .unwrap();
        let marks: Vec<usize> = (0..3).map(|i| log_of(&cluster, i).len()).collect();

        // Writes through the leader, all the time.
        let stop_writes = Arc::new(AtomicBool::new(false));
        let (written, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let writer = {
            let (c, stop, written, failed) = (
                c.clone(),
                stop_writes.clone(),
                written.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match c
                        .create(&format!("/w/a-{i:06}"), b"a", CreateOptions::persistent())
                        .await
                    {
                        Ok(_) => written.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("write failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        };

        // The attack: PER_PORT idle connections to each of the 6 ports.
        let ports = all_ports(&cluster);
        assert_eq!(
            ports.len(),
            6,
            "client and peer port of 3 servers: {ports:?}"
        );
        let t0 = Instant::now();
        let mut squatters: Vec<Squatter> = ports
            .iter()
            .map(|a| Squatter::start(*a, PER_PORT))
            .collect();
        for (sq, addr) in squatters.iter_mut().zip(&ports) {
            let l = tokio::task::block_in_place(|| sq.line());
            assert!(l.starts_with("ready"), "squatter on {addr}: {l:?}");
        }
        eprintln!(
            "attack: {} connections made to each of {} ports in {:?}",
            PER_PORT,
            ports.len(),
            t0.elapsed()
        );

        // New clients, on every server, during the attack: no jeopardy, every write done.
        let mut clients = Vec::new();
        for i in 0..6 {
            let cl = Client::connect(cluster.config_for(i % 3)).await.unwrap();
            clients.push((cl.session_events(), cl));
        }
        for round in 0..20 {
            for (n, (_, cl)) in clients.iter().enumerate() {
                cl.create(
                    &format!("/w/new-{n}-{round:03}"),
                    b"n",
                    CreateOptions::persistent(),
                )
                .await
                .unwrap_or_else(|e| panic!("client {n} write {round}: {e}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        for (n, (events, _)) in clients.iter_mut().enumerate() {
            while let Some(e) = events.try_recv() {
                assert!(
                    matches!(e, SessionEvent::Connected),
                    "client {n} saw {e:?} during the attack"
                );
            }
        }
        // A follower restarted during the attack rejoins, and nobody re-elects.
        cluster.kill(follower);
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.restart(follower).expect("restart");
        cluster.wait_stable().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut made, mut held) = (0, 0);
        for sq in squatters {
            let (m, h) = tokio::task::block_in_place(|| sq.stop());
            made += m;
            held += h;
        }
        eprintln!("attack: {made} connections made in all, {held} open at the end");

        for i in 0..3 {
            let st = cluster.status(i).await.expect("every server answers");
            assert_eq!(st.epoch, epoch, "server {} left epoch {epoch}", i + 1);
        }
        assert_eq!(
            cluster.wait_stable().await,
            leader,
            "the leader kept its place"
        );
        for (i, mark) in marks.iter().enumerate() {
            let log = log_of(&cluster, i);
            let tail = log.get(*mark..).unwrap_or("");
            if i != follower {
                assert!(
                    !tail.contains("LOOKING"),
                    "server {} re-elected:\n{tail}",
                    i + 1
                );
            }
            // Only the restarted follower really died.
            let deaths = tail.matches("peer process died").count();
            let expected = usize::from(i != follower);
            assert!(
                deaths <= expected,
                "server {} saw {deaths} peer deaths:\n{tail}",
                i + 1
            );
        }
        stop_writes.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        assert_eq!(
            failed.load(Ordering::Relaxed),
            0,
            "writes failed during the attack"
        );
        assert!(written.load(Ordering::Relaxed) > 100, "writes went on");

        // The attack is over: a real death is still seen at once through liveness.
        let mark = log_of(&cluster, leader).len();
        let t0 = Instant::now();
        cluster.kill(follower);
        while !log_of(&cluster, leader)[mark..].contains("peer process died") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the leader never saw the follower's death through liveness:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "a real death was seen through liveness {:?} after the SIGKILL",
            t0.elapsed()
        );
    });
}
