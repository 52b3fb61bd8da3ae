//! The ZAB core alone: three `coord-zab` state machines in one thread, wired to each other
//! with in-memory queues; no network, no disk (a persist request completes at once), no
//! clock beyond a counter. What it measures is the protocol's own CPU per committed txn:
//! proposal, follower append and ACK, quorum count, cumulative COMMIT, delivery.
//!
//! - `zab/pipeline/N`: one iteration = the leader proposes N txns of 100 B back to back,
//!   then the three nodes exchange messages until every node has delivered all N.
//!   Throughput is txns committed (on all three) per second.
//!
//! Every delivered txn is counted on every node, so a bug that drops or duplicates a commit
//! makes the bench fail rather than report a figure.

use coord_zab::{Action, Persisted, Role, Zab, ZabConfig, ZabMessage};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::VecDeque;

const TXN_LEN: usize = 100;
const PIPELINE: [usize; 3] = [1, 64, 1024];
const IDS: [u64; 3] = [1, 2, 3];

/// Three nodes and the messages in flight between them.
struct Ensemble {
    nodes: Vec<Zab>,
    /// (from, to, message), in send order (each link is FIFO).
    wire: VecDeque<(u64, u64, ZabMessage)>,
    delivered: [u64; 3],
    now: u64,
}

impl Ensemble {
    fn new() -> Ensemble {
        let nodes = IDS
            .iter()
            .map(|&id| {
                Zab::new(
                    ZabConfig::new(id, IDS.to_vec(), vec![], id),
                    Persisted::default(),
                    0,
                )
            })
            .collect();
        let mut e = Ensemble {
            nodes,
            wire: VecDeque::new(),
            delivered: [0; 3],
            now: 0,
        };
        for (i, &id) in IDS.iter().enumerate() {
            for &peer in &IDS {
                if peer != id {
                    e.nodes[i].handle_connected(0, peer);
                }
            }
        }
        // Elect and establish a leader: advance the clock until one leads with a quorum.
        for _ in 0..10_000 {
            e.now += 10;
            for n in &mut e.nodes {
                n.handle_timeout(e.now);
            }
            e.run();
            if e.leader().is_some() {
                return e;
            }
        }
        panic!("no leader was established");
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            let s = n.status();
            s.role == Role::Leading && s.established
        })
    }

    /// Drains every node's actions and delivers every message until all are quiet.
    fn run(&mut self) {
        loop {
            let mut busy = false;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                while let Some(action) = node.poll_action() {
                    busy = true;
                    match action {
                        Action::Send { to, msg } => self.wire.push_back((IDS[i], to, msg)),
                        Action::Persist { token, .. } => node.handle_persisted(self.now, token),
                        Action::Commit { .. } => self.delivered[i] += 1,
                        Action::TakeSnapshot { .. } => {
                            panic!("an in-step ensemble never needs a snapshot")
                        }
                        Action::RoleChanged(_) => {}
                        Action::ReadIndexReady { .. } | Action::ReadIndexFailed { .. } => {
                            panic!("the pipeline bench registers no linearizable reads")
                        }
                    }
                }
            }
            while let Some((from, to, msg)) = self.wire.pop_front() {
                busy = true;
                let at = IDS.iter().position(|&id| id == to).expect("known peer");
                self.nodes[at].handle_message(self.now, from, msg);
            }
            if !busy {
                return;
            }
        }
    }
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("zab/pipeline");
    let txn = vec![0x5a; TXN_LEN];
    for n in PIPELINE {
        let mut e = Ensemble::new();
        let leader = e.leader().expect("established");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let before = e.delivered;
                for _ in 0..n {
                    e.nodes[leader]
                        .propose(e.now, txn.clone())
                        .expect("the leader accepts proposals");
                }
                e.run();
                for (i, d) in e.delivered.iter().enumerate() {
                    assert_eq!(d - before[i], n as u64, "node {} delivered", IDS[i]);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
