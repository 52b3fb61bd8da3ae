//! The peer transport over real QUIC on loopback: mutual TLS under the cluster CA, one FIFO
//! link per pair, reconnect after a loss, and refusal of nodes without a CA-signed
//! certificate naming their id.

use actix::prelude::*;
use coord_server::peer::{PeerEvent, PeerNet, PeerNetConfig, SendTo, Shutdown};
use coord_server::tls;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Log {
    events: Vec<(u64, String)>,
}

struct Collector {
    me: u64,
    log: Arc<parking_lot::Mutex<Log>>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<PeerEvent> for Collector {
    type Result = ();
    fn handle(&mut self, e: PeerEvent, _: &mut Self::Context) {
        let entry = match e {
            PeerEvent::Connected(p) => (p, "up".to_string()),
            PeerEvent::Disconnected(p) => (p, "down".to_string()),
            PeerEvent::Frame { from, body } => (from, String::from_utf8_lossy(&body).to_string()),
        };
        let _ = self.me;
        self.log.lock().events.push(entry);
    }
}

fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn files(dir: &Path, ca_dir: &Path, id: u64, cert_id: u64) -> tls::TlsFiles {
    let (ca_cert, ca_key) = tls::ensure_ca(ca_dir).unwrap();
    let cert = dir.join(format!("n{id}.pem"));
    let key = dir.join(format!("n{id}.key"));
    tls::issue_server_cert(&ca_key, cert_id, &[], &cert, &key).unwrap();
    tls::TlsFiles { ca_cert, cert, key }
}

fn start_node(
    id: u64,
    addr: SocketAddr,
    peers: HashMap<u64, SocketAddr>,
    files: &tls::TlsFiles,
    log: Arc<parking_lot::Mutex<Log>>,
) -> (Addr<PeerNet>, quinn::Endpoint) {
    let (server, client) = tls::peer_configs(files).unwrap();
    // The port may still be held for a moment by a node that just shut down.
    let mut tries = 0;
    let endpoint = loop {
        match quinn::Endpoint::server(server.clone(), addr) {
            Ok(e) => break e,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    };
    let sink = Collector { me: id, log }.start().recipient();
    let config = PeerNetConfig {
        id,
        peers,
        outbox_frames: 1024,
        max_frame: 1 << 20,
    };
    (
        PeerNet::new(config, endpoint.clone(), client, sink, Default::default()).start(),
        endpoint,
    )
}

fn frame(text: &str) -> Vec<u8> {
    let mut f = (text.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(text.as_bytes());
    f
}

async fn wait_for(log: &Arc<parking_lot::Mutex<Log>>, what: &str, f: impl Fn(&Log) -> bool) {
    for _ in 0..500 {
        if f(&log.lock()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}: {:?}", log.lock().events);
}

#[test]
fn three_nodes_link_up_exchange_fifo_frames_and_relink() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let addrs: HashMap<u64, SocketAddr> = (1..=3).map(|i| (i, free_addr())).collect();
    actix_rt::System::new().block_on(async move {
        let logs: HashMap<u64, Arc<parking_lot::Mutex<Log>>> =
            (1..=3).map(|i| (i, Arc::default())).collect();
        let mut nodes = HashMap::new();
        for id in 1..=3u64 {
            let peers = addrs
                .iter()
                .filter(|(p, _)| **p != id)
                .map(|(p, a)| (*p, *a))
                .collect();
            let f = files(tmp.path(), &ca, id, id);
            nodes.insert(id, start_node(id, addrs[&id], peers, &f, logs[&id].clone()));
        }
        for id in 1..=3u64 {
            let log = logs[&id].clone();
            wait_for(&log, "links up", |l| {
                l.events.iter().filter(|(_, e)| e == "up").count() == 2
            })
            .await;
        }
        // 500 frames from each node to each other node arrive complete and in order.
        for from in 1..=3u64 {
            for to in 1..=3u64 {
                if from != to {
                    for i in 0..500 {
                        nodes[&from].0.do_send(SendTo {
                            to,
                            frame: frame(&format!("{from}->{to}:{i}")),
                        });
                    }
                }
            }
        }
        for to in 1..=3u64 {
            let log = logs[&to].clone();
            wait_for(&log, "all frames", |l| {
                l.events.iter().filter(|(_, e)| e.contains("->")).count() == 1000
            })
            .await;
            let l = log.lock();
            for from in (1..=3u64).filter(|f| *f != to) {
                let got: Vec<&String> = l
                    .events
                    .iter()
                    .filter(|(p, e)| *p == from && e.contains("->"))
                    .map(|(_, e)| e)
                    .collect();
                let want: Vec<String> = (0..500).map(|i| format!("{from}->{to}:{i}")).collect();
                assert_eq!(got.len(), 500);
                assert!(
                    got.iter().zip(&want).all(|(a, b)| *a == b),
                    "frames from {from} to {to} out of order"
                );
            }
        }
        // Node 3 goes away: the others see the link drop; it comes back and they relink.
        let (n3, ep3) = nodes.remove(&3).unwrap();
        n3.do_send(Shutdown);
        ep3.wait_idle().await;
        drop(ep3);
        for id in 1..=2u64 {
            let log = logs[&id].clone();
            wait_for(&log, "link to 3 down", |l| {
                l.events.iter().any(|(p, e)| *p == 3 && e == "down")
            })
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let peers = addrs
            .iter()
            .filter(|(p, _)| **p != 3)
            .map(|(p, a)| (*p, *a))
            .collect();
        let f = files(tmp.path(), &ca, 3, 3);
        let log3: Arc<parking_lot::Mutex<Log>> = Arc::default();
        let _n3 = start_node(3, addrs[&3], peers, &f, log3.clone());
        wait_for(&log3, "node 3 relinked", |l| {
            l.events.iter().filter(|(_, e)| e == "up").count() == 2
        })
        .await;
        // A frame sent while the sender has no link is dropped by design: wait until node 1
        // has its new link to 3 too (its second "up" for 3), not only node 3's side.
        wait_for(&logs[&1], "node 1 relinked to 3", |l| {
            l.events
                .iter()
                .filter(|(p, e)| *p == 3 && e == "up")
                .count()
                >= 2
        })
        .await;
        nodes[&1].0.do_send(SendTo {
            to: 3,
            frame: frame("again"),
        });
        wait_for(&log3, "frame after relink", |l| {
            l.events.iter().any(|(p, e)| *p == 1 && e == "again")
        })
        .await;
        System::current().stop();
    });
}

#[test]
fn nodes_without_a_proper_certificate_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let other_ca = tmp.path().join("other-ca");
    let a1 = free_addr();
    actix_rt::System::new().block_on(async move {
        let log1: Arc<parking_lot::Mutex<Log>> = Arc::default();
        let f1 = files(tmp.path(), &ca, 1, 1);
        // Node 1 accepts links from id 0 (a lower id) in principle.
        let _n1 = start_node(1, a1, HashMap::from([(0, free_addr())]), &f1, log1.clone());
        // An impostor with a certificate from another CA.
        let foreign_dir = tmp.path().join("foreign");
        std::fs::create_dir_all(&foreign_dir).unwrap();
        let f_foreign = files(&foreign_dir, &other_ca, 0, 0);
        let _bad = start_node(
            0,
            free_addr(),
            HashMap::from([(1, a1)]),
            &f_foreign,
            Arc::default(),
        );
        // A member of the right CA whose certificate names server 5, claiming to be 0.
        let liar_dir = tmp.path().join("liar");
        std::fs::create_dir_all(&liar_dir).unwrap();
        let f_liar = files(&liar_dir, &ca, 0, 5);
        let _liar = start_node(
            0,
            free_addr(),
            HashMap::from([(1, a1)]),
            &f_liar,
            Arc::default(),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            log1.lock().events.is_empty(),
            "node 1 accepted a link: {:?}",
            log1.lock().events
        );
        System::current().stop();
    });
}
