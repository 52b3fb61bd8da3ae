//! The nemesis's plan: which fault each round brings, as a pure function of the seed.
//!
//! ```text
//!   Schedule (seed) ──> Round { fault, hold } ──resolve(leader)──> Action on servers
//! ```
//!
//! The schedule is a pure function of (seed, nodes, enabled kinds, session timeout): targets
//! are named relative to the leader (`Pick::Leader`, the k-th other server) and partitions by
//! a permutation of the servers, so the same seed gives the same rounds; only which server is
//! the leader is decided at run time. Kinds come in shuffled cycles, so every enabled kind
//! appears within the first `kinds` rounds.

use coord_testkit::Partition;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL of servers (the leader half the time), restarted after the hold.
    Kill,
    /// SIGSTOP of servers for longer than the session timeout, then SIGCONT.
    Pause,
    /// Server-to-server partitions: majority/minority, isolated leader, bridge.
    Partition,
    /// A minority's fsyncs delayed by 200–1000 ms each.
    SlowDisk,
    /// SIGKILL of every server, then all restarted.
    RestartAll,
}

impl FaultKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::SlowDisk,
        FaultKind::RestartAll,
    ];

    /// The name used on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::RestartAll => "restart-all",
        }
    }

    /// Parses `kill,pause,…`, `all` or `none`.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        match s.trim() {
            "all" => return Ok(FaultKind::ALL.to_vec()),
            "none" | "" => return Ok(Vec::new()),
            _ => {}
        }
        let mut kinds = Vec::new();
        for word in s.split(',').map(str::trim) {
            let k = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown fault {word:?} (known: {}, all, none)",
                        FaultKind::ALL.map(FaultKind::name).join(", ")
                    )
                })?;
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        Ok(kinds)
    }
}

/// A server named relative to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The leader at the start of the round.
    Leader,
    /// The k-th of the other servers, in index order.
    Other(usize),
}

/// The shape of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// The first `minority` servers of `order` against the rest.
    MajorityMinority {
        /// A permutation of the servers.
        order: Vec<usize>,
        /// Size of the minority side.
        minority: usize,
    },
    /// The leader against everyone else.
    IsolateLeader,
    /// `order[..half]` and `order[half + 1..]` cannot see each other; `order[half]` (the
    /// bridge) sees both, with `half = (n - 1) / 2`.
    Bridge {
        /// A permutation of the servers.
        order: Vec<usize>,
    },
}

/// One fault as planned (before the leader is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL these, restart at heal.
    Kill {
        /// Distinct targets.
        targets: Vec<Pick>,
    },
    /// SIGSTOP these, SIGCONT at heal.
    Pause {
        /// Distinct targets.
        targets: Vec<Pick>,
    },
    /// Cut server-to-server links.
    Partition(Split),
    /// Delay every fsync batch of these by `delay_ms`.
    SlowDisk {
        /// Distinct targets.
        targets: Vec<Pick>,
        /// Delay per fsync batch.
        delay_ms: u64,
    },
    /// SIGKILL every server, restart all after `down_ms`.
    RestartAll {
        /// How long the ensemble stays down.
        down_ms: u64,
    },
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill { .. } => FaultKind::Kill,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Partition(_) => FaultKind::Partition,
            Fault::SlowDisk { .. } => FaultKind::SlowDisk,
            Fault::RestartAll { .. } => FaultKind::RestartAll,
        }
    }
}

/// One round: a fault held for `hold`, then healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// What to break.
    pub fault: Fault,
    /// How long to keep it broken (for `RestartAll`, 0: the down time is in the fault).
    pub hold: Duration,
}

/// The seeded, endless sequence of rounds.
pub struct Schedule {
    rng: ChaCha8Rng,
    kinds: Vec<FaultKind>,
    nodes: usize,
    session_timeout: Duration,
    cycle: Vec<FaultKind>,
}

impl Schedule {
    /// Rounds for an ensemble of `nodes` voters, drawing from `kinds`.
    pub fn new(seed: u64, nodes: usize, kinds: &[FaultKind], session_timeout: Duration) -> Self {
        Schedule {
            rng: ChaCha8Rng::seed_from_u64(seed),
            kinds: kinds.to_vec(),
            nodes: nodes.max(1),
            session_timeout,
            cycle: Vec::new(),
        }
    }

    fn minority_max(&self) -> usize {
        ((self.nodes - 1) / 2).max(1)
    }

    /// `m` distinct servers, the leader among them half the time.
    fn picks(&mut self, m: usize) -> Vec<Pick> {
        let mut picks = Vec::new();
        if self.rng.random_bool(0.5) {
            picks.push(Pick::Leader);
        }
        let mut others: Vec<usize> = (0..self.nodes - 1).collect();
        others.shuffle(&mut self.rng);
        picks.extend(others.into_iter().take(m - picks.len()).map(Pick::Other));
        picks
    }

    fn hold(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(2_000..=8_000))
    }

    fn order(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.nodes).collect();
        order.shuffle(&mut self.rng);
        order
    }
}

impl Iterator for Schedule {
    type Item = Round;

    fn next(&mut self) -> Option<Round> {
        if self.kinds.is_empty() {
            return None;
        }
        if self.cycle.is_empty() {
            self.cycle = self.kinds.clone();
            self.cycle.shuffle(&mut self.rng);
        }
        let kind = self.cycle.pop()?;
        let minority = self.minority_max();
        let round = match kind {
            FaultKind::Kill => {
                let m = self.rng.random_range(1..=minority);
                let targets = self.picks(m);
                Round {
                    fault: Fault::Kill { targets },
                    hold: self.hold(),
                }
            }
            FaultKind::Pause => {
                let m = self.rng.random_range(1..=minority);
                let targets = self.picks(m);
                let extra = self.rng.random_range(1_000..=4_000);
                Round {
                    fault: Fault::Pause { targets },
                    hold: self.session_timeout + Duration::from_millis(extra),
                }
            }
            FaultKind::Partition => {
                let split = match self.rng.random_range(0..3) {
                    0 => {
                        let order = self.order();
                        let minority = self.rng.random_range(1..=minority);
                        Split::MajorityMinority { order, minority }
                    }
                    1 => Split::IsolateLeader,
                    _ => Split::Bridge {
                        order: self.order(),
                    },
                };
                Round {
                    fault: Fault::Partition(split),
                    hold: self.hold(),
                }
            }
            FaultKind::SlowDisk => {
                let m = self.rng.random_range(1..=minority);
                let targets = self.picks(m);
                let delay_ms = self.rng.random_range(200..=1_000);
                Round {
                    fault: Fault::SlowDisk { targets, delay_ms },
                    hold: self.hold(),
                }
            }
            FaultKind::RestartAll => Round {
                fault: Fault::RestartAll {
                    down_ms: self.rng.random_range(200..=1_500),
                },
                hold: Duration::ZERO,
            },
        };
        Some(round)
    }
}

/// A fault with concrete servers (0-based indices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL these.
    Kill(Vec<usize>),
    /// SIGSTOP these.
    Pause(Vec<usize>),
    /// Install this partition.
    Partition(Partition),
    /// Delay these servers' fsyncs by this many ms.
    SlowDisk(Vec<usize>, u64),
    /// Kill all, wait this many ms, start all.
    RestartAll(u64),
}

pub(crate) fn server(i: usize) -> String {
    format!("n{}", i + 1)
}

fn servers(list: &[usize]) -> String {
    list.iter()
        .map(|i| server(*i))
        .collect::<Vec<_>>()
        .join(",")
}

impl Fault {
    /// The concrete action in an ensemble of `n` whose leader is `leader`, and a one-line
    /// description for the log.
    pub fn resolve(&self, leader: usize, n: usize) -> (Action, String) {
        let others: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
        let at = |p: &Pick| match p {
            Pick::Leader => leader,
            Pick::Other(k) => others[*k % others.len().max(1)],
        };
        let mark = |list: &[usize]| {
            if list.contains(&leader) {
                format!("{} (leader {})", servers(list), server(leader))
            } else {
                servers(list)
            }
        };
        match self {
            Fault::Kill { targets } => {
                let t: Vec<usize> = targets.iter().map(at).collect();
                let what = format!("kill {}", mark(&t));
                (Action::Kill(t), what)
            }
            Fault::Pause { targets } => {
                let t: Vec<usize> = targets.iter().map(at).collect();
                let what = format!("pause {}", mark(&t));
                (Action::Pause(t), what)
            }
            Fault::SlowDisk { targets, delay_ms } => {
                let t: Vec<usize> = targets.iter().map(at).collect();
                let what = format!("slow disk {} ({delay_ms} ms per fsync)", mark(&t));
                (Action::SlowDisk(t, *delay_ms), what)
            }
            Fault::RestartAll { down_ms } => (
                Action::RestartAll(*down_ms),
                format!("restart all (down {down_ms} ms)"),
            ),
            Fault::Partition(split) => {
                let side = |v: &[usize]| format!("{{{}}}", servers(v));
                match split {
                    Split::MajorityMinority { order, minority } => {
                        let (a, b) = order.split_at((*minority).min(order.len()));
                        let (mut a, mut b) = (a.to_vec(), b.to_vec());
                        a.sort_unstable();
                        b.sort_unstable();
                        let where_leader = if a.contains(&leader) {
                            "minority"
                        } else {
                            "majority"
                        };
                        let what = format!(
                            "partition {} | {} (leader {} in the {where_leader})",
                            side(&a),
                            side(&b),
                            server(leader)
                        );
                        (Action::Partition(Partition::split(&[a, b])), what)
                    }
                    Split::IsolateLeader => (
                        Action::Partition(Partition::isolate(n, leader)),
                        format!(
                            "partition: leader {} isolated from {}",
                            server(leader),
                            side(&others)
                        ),
                    ),
                    Split::Bridge { order } => {
                        let half = (order.len().saturating_sub(1)) / 2;
                        let mut a = order[..half].to_vec();
                        let bridge = order[half];
                        let mut b = order[half + 1..].to_vec();
                        a.sort_unstable();
                        b.sort_unstable();
                        let what = format!(
                            "partition: bridge {} between {} and {} (leader {})",
                            server(bridge),
                            side(&a),
                            side(&b),
                            server(leader)
                        );
                        (Action::Partition(Partition::bridge(a, bridge, b)), what)
                    }
                }
            }
        }
    }
}
