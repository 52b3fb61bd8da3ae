//! The search for a linearization of one register's operations: Wing & Gong's algorithm as
//! Lowe refined it ("just-in-time linearization"), with Porcupine's cache of configurations
//! already explored.
//!
//! Call and return events sit in one doubly linked list in real-time order. The calls ahead
//! of the first remaining return are the candidates: any of them may take effect next. Taking
//! one lifts its two events out of the list (dancing links: putting them back on backtrack is
//! O(1)); a return reached while its operation is still in the list is a dead end. A
//! configuration is (the set of lifted operations, register state, unobserved writes used);
//! the set is kept as a 128-bit Zobrist fingerprint updated in O(1), and a configuration
//! seen once is never explored again.
//!
//! Two reductions keep the search near linear on real histories:
//!
//! - An enabled candidate that leaves the state unchanged (a read that matches, a BadVersion
//!   failure whose version differs) is taken alone, with no alternative: anything possible
//!   without taking it now stays possible after it, since no pending operation has to
//!   precede it (all of them are still open at its call) and it changes nothing.
//! - Unknown writes whose data nobody read are not operations of the search: each may take
//!   effect at any time after its call or never, and only bumps the version, so they are
//!   interchangeable. A "fill" step bumps the version when one is available: an unobserved
//!   conditional write expecting the current version (which can only ever apply at that
//!   version), or else one of the unobserved unconditional writes invoked so far, counted.
//!   A fill to a version some operation must make is never tried: that operation could
//!   then never take effect, as versions only grow.
//!
//! Every operation that writes knows the version it makes (it was acknowledged, or someone
//! read its data), so at each version usually one of them is enabled and the search rarely
//! branches; it backtracks far only over histories that are not linearizable.
//!
//! The fingerprint makes a false "seen before" possible in principle (two different sets
//! with equal 128-bit fingerprints among the configurations of one key, odds below 2^-80
//! for 2^24 configurations); it can only turn a pass into a failure, never hide one.

use crate::fasthash::{FastMap, FastSet};
use std::hash::{Hash, Hasher};

/// A register's state: its data (interned; see [`UNOBSERVED`]) and version. The default is
/// the state every register starts in: empty data (interned as 0) at version 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct State {
    pub(super) value: u32,
    pub(super) version: i32,
}

/// The data of an unknown write nobody read: no read can return it.
pub(super) const UNOBSERVED: u32 = u32::MAX;

/// What an operation does to the register, and what it demands of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A read that returned this state.
    Observe(State),
    /// A conditional write refused with BadVersion: the version differed from `expected`.
    Refuse { expected: i32 },
    /// A write that took effect: sets `value` and makes version `new_version`, which must be
    /// one above the version before; that must also equal `expected`, when given.
    Set {
        value: u32,
        expected: Option<i32>,
        new_version: i32,
    },
}

impl Kind {
    /// The state after this operation takes effect in `s`, if it can.
    pub(super) fn step(self, s: State) -> Option<State> {
        match self {
            Kind::Observe(seen) => (seen == s).then_some(s),
            Kind::Refuse { expected } => (s.version != expected).then_some(s),
            Kind::Set {
                value,
                expected,
                new_version,
            } => {
                if expected.is_some_and(|e| e != s.version) {
                    return None;
                }
                let version = s.version.checked_add(1)?;
                if new_version != version {
                    return None;
                }
                Some(State { value, version })
            }
        }
    }

    fn keeps_state(self) -> bool {
        matches!(self, Kind::Observe(_) | Kind::Refuse { .. })
    }
}

/// An operation of the search with its call and return positions; `call < ret`, and
/// positions order events as they happened.
#[derive(Clone, Debug)]
pub(super) struct RegOp {
    pub(super) call: u64,
    pub(super) ret: u64,
    pub(super) kind: Kind,
}

/// One register's operations.
#[derive(Debug, Default)]
pub(super) struct Problem {
    pub(super) ops: Vec<RegOp>,
    /// Call positions of unknown unconditional writes nobody read, sorted.
    pub(super) unobserved_writes: Vec<u64>,
    /// Unknown conditional writes nobody read: expected version → earliest call position.
    pub(super) unobserved_cas: FastMap<i32, u64>,
}

impl Problem {
    /// The versions some operation must make (`Set::new_version`).
    fn made_versions(&self) -> FastSet<i32> {
        let made = self.ops.iter().filter_map(|op| match op.kind {
            Kind::Set { new_version, .. } => Some(new_version),
            _ => None,
        });
        made.collect()
    }
}

/// How the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    Linearizable,
    NotLinearizable,
    BudgetExceeded,
}

/// The deepest configuration the search reached: where a failure shows.
#[derive(Clone, Debug, Default)]
pub(super) struct Frontier {
    /// Operations linearized.
    pub(super) linearized: usize,
    /// The register then.
    pub(super) state: State,
    /// The operation whose return bounded the candidates (it had to be linearized next).
    pub(super) blocking: Option<usize>,
    /// Operations invoked before that return and not yet linearized.
    pub(super) pending: Vec<usize>,
    /// The last operations linearized, latest first.
    pub(super) recent: Vec<usize>,
}

/// The result of [`search`].
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) found: Found,
    pub(super) steps: u64,
    pub(super) frontier: Frontier,
}

const PENDING_KEPT: usize = 16;
const RECENT_KEPT: usize = 4;

/// Searches for a linearization of `problem`, giving up after about `budget` steps.
pub(super) fn search(problem: &Problem, budget: u64) -> Outcome {
    Search::new(problem, budget).run()
}

#[derive(Clone, Copy, Debug)]
enum Choice {
    Op(u32),
    Fill { consumes: bool },
}

/// A configuration on the current path and the choices left in it.
struct Frame {
    state: State,
    used: u32,
    fingerprint: u128,
    /// Its choices are `choices[first..]` while it is the top frame.
    first: usize,
    next: usize,
    taken: Option<Choice>,
}

#[derive(PartialEq, Eq)]
struct Config {
    fingerprint: u128,
    state: State,
    used: u32,
}

impl Hash for Config {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.fingerprint as u64);
        h.write_u64((self.fingerprint >> 64) as u64);
        h.write_u64(u64::from(self.state.value) << 32 | u64::from(self.state.version as u32));
        h.write_u64(u64::from(self.used));
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn zobrist(op: u32) -> u128 {
    let op = u64::from(op);
    u128::from(splitmix64(2 * op)) << 64 | u128::from(splitmix64(2 * op + 1))
}

struct Search<'p> {
    problem: &'p Problem,
    budget: u64,
    steps: u64,
    /// Event node `n` (1-based; 0 is the list's head sentinel) is `ev_op[n]`'s call or return.
    ev_op: Vec<u32>,
    ev_is_call: Vec<bool>,
    ev_pos: Vec<u64>,
    next: Vec<u32>,
    prev: Vec<u32>,
    call_node: Vec<u32>,
    ret_node: Vec<u32>,
    state: State,
    used: u32,
    fingerprint: u128,
    depth: usize,
    frames: Vec<Frame>,
    choices: Vec<Choice>,
    candidates: Vec<u32>,
    seen: FastSet<Config>,
    made_versions: FastSet<i32>,
    best: Frontier,
}

impl<'p> Search<'p> {
    fn new(problem: &'p Problem, budget: u64) -> Search<'p> {
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(problem.ops.len() * 2);
        for (i, op) in problem.ops.iter().enumerate() {
            events.push((op.call, true, i as u32));
            events.push((op.ret, false, i as u32));
        }
        // Positions of calls are distinct; only returns may share one, in any order.
        events.sort_unstable_by_key(|&(pos, is_call, op)| (pos, is_call, op));
        let n = events.len();
        let mut ev_op = vec![0; n + 1];
        let mut ev_is_call = vec![false; n + 1];
        let mut ev_pos = vec![0; n + 1];
        let mut call_node = vec![0; problem.ops.len()];
        let mut ret_node = vec![0; problem.ops.len()];
        for (k, &(pos, is_call, op)) in events.iter().enumerate() {
            let node = k as u32 + 1;
            ev_op[k + 1] = op;
            ev_is_call[k + 1] = is_call;
            ev_pos[k + 1] = pos;
            if is_call {
                call_node[op as usize] = node;
            } else {
                ret_node[op as usize] = node;
            }
        }
        let next = (0..=n as u32).map(|k| (k + 1) % (n as u32 + 1)).collect();
        let prev = (0..=n as u32)
            .map(|k| (k + n as u32) % (n as u32 + 1))
            .collect();
        Search {
            problem,
            budget,
            steps: 0,
            ev_op,
            ev_is_call,
            ev_pos,
            next,
            prev,
            call_node,
            ret_node,
            state: State::default(),
            used: 0,
            fingerprint: 0,
            depth: 0,
            frames: Vec::new(),
            choices: Vec::new(),
            candidates: Vec::new(),
            seen: FastSet::default(),
            made_versions: problem.made_versions(),
            best: Frontier::default(),
        }
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        self.prev[n as usize] = node;
    }

    fn lift(&mut self, op: u32) {
        self.unlink(self.call_node[op as usize]);
        self.unlink(self.ret_node[op as usize]);
        self.fingerprint ^= zobrist(op);
        self.depth += 1;
    }

    /// Undoes [`Self::lift`]; lifts are undone in reverse order, as dancing links require.
    fn unlift(&mut self, op: u32) {
        self.relink(self.ret_node[op as usize]);
        self.relink(self.call_node[op as usize]);
        self.fingerprint ^= zobrist(op);
        self.depth -= 1;
    }

    fn done(&self) -> bool {
        self.next[0] == 0
    }

    fn config(&self) -> Config {
        Config {
            fingerprint: self.fingerprint,
            state: self.state,
            used: self.used,
        }
    }

    fn run(mut self) -> Outcome {
        self.seen.insert(self.config());
        if self.done() {
            return self.finish(Found::Linearizable);
        }
        self.enter();
        loop {
            if self.steps > self.budget {
                return self.finish(Found::BudgetExceeded);
            }
            self.steps += 1;
            // Back at the top frame's configuration: undo the choice taken from it, if any.
            let Some(top) = self.frames.len().checked_sub(1) else {
                return self.finish(Found::NotLinearizable);
            };
            let frame = &mut self.frames[top];
            let undo = frame.taken.take();
            let (state, used, fingerprint) = (frame.state, frame.used, frame.fingerprint);
            let (first, next) = (frame.first, frame.next);
            if let Some(Choice::Op(op)) = undo {
                self.unlift(op);
            }
            self.state = state;
            self.used = used;
            debug_assert_eq!(self.fingerprint, fingerprint, "unlift restores the set");
            if next == self.choices.len() {
                self.choices.truncate(first);
                self.frames.pop();
                continue;
            }
            let choice = self.choices[next];
            self.frames[top].next += 1;
            let Some((after, used_after)) = self.apply(choice) else {
                continue;
            };
            let fingerprint = match choice {
                Choice::Op(op) => fingerprint ^ zobrist(op),
                Choice::Fill { .. } => fingerprint,
            };
            let config = Config {
                fingerprint,
                state: after,
                used: used_after,
            };
            if !self.seen.insert(config) {
                continue;
            }
            self.frames[top].taken = Some(choice);
            if let Choice::Op(op) = choice {
                self.lift(op);
            }
            self.state = after;
            self.used = used_after;
            if self.done() {
                return self.finish(Found::Linearizable);
            }
            self.enter();
        }
    }

    /// The state and count of used unobserved writes after `choice`, if it is enabled.
    fn apply(&self, choice: Choice) -> Option<(State, u32)> {
        match choice {
            Choice::Op(op) => {
                let after = self.problem.ops[op as usize].kind.step(self.state)?;
                Some((after, self.used))
            }
            Choice::Fill { consumes } => {
                let version = self.state.version.checked_add(1)?;
                let after = State {
                    value: UNOBSERVED,
                    version,
                };
                Some((after, self.used + u32::from(consumes)))
            }
        }
    }

    /// Pushes the frame of the current configuration with its choices.
    fn enter(&mut self) {
        self.candidates.clear();
        let mut node = self.next[0];
        while node != 0 && self.ev_is_call[node as usize] {
            self.candidates.push(self.ev_op[node as usize]);
            node = self.next[node as usize];
        }
        self.steps += self.candidates.len() as u64;
        // Not done, so some operation is still in the list and its return ends the scan.
        let cut = self.ev_pos[node as usize];
        let blocking = self.ev_op[node as usize];
        if self.depth > self.best.linearized || self.best.blocking.is_none() {
            self.record_frontier(blocking);
        }
        let first = self.choices.len();
        let ops = &self.problem.ops;
        let forced = self.candidates.iter().copied().find(|&op| {
            let kind = ops[op as usize].kind;
            kind.keeps_state() && kind.step(self.state).is_some()
        });
        if let Some(op) = forced {
            self.choices.push(Choice::Op(op));
        } else {
            // Only writes remain: usually just the one making the next version.
            let enabled = |op: &&u32| ops[**op as usize].kind.step(self.state).is_some();
            let sets = self.candidates.iter().filter(enabled);
            self.choices.extend(sets.map(|&op| Choice::Op(op)));
            if let Some(fill) = self.fill(cut) {
                self.choices.push(fill);
            }
        }
        self.frames.push(Frame {
            state: self.state,
            used: self.used,
            fingerprint: self.fingerprint,
            first,
            next: first,
            taken: None,
        });
    }

    /// The fill step available before the event at position `cut`, preferring one that
    /// spends nothing: an unobserved conditional write can only ever apply at one version.
    fn fill(&self, cut: u64) -> Option<Choice> {
        let version = self.state.version.checked_add(1)?;
        if self.made_versions.contains(&version) {
            return None;
        }
        let cas = self.problem.unobserved_cas.get(&self.state.version);
        if cas.is_some_and(|&call| call < cut) {
            return Some(Choice::Fill { consumes: false });
        }
        let invoked = self
            .problem
            .unobserved_writes
            .partition_point(|&call| call < cut);
        (invoked > self.used as usize).then_some(Choice::Fill { consumes: true })
    }

    fn record_frontier(&mut self, blocking: u32) {
        let recent = self
            .frames
            .iter()
            .rev()
            .filter_map(|f| match f.taken {
                Some(Choice::Op(op)) => Some(op as usize),
                _ => None,
            })
            .take(RECENT_KEPT);
        self.best.recent.clear();
        self.best.recent.extend(recent);
        self.best.pending.clear();
        let pending = self.candidates.iter().take(PENDING_KEPT);
        self.best.pending.extend(pending.map(|&op| op as usize));
        self.best.linearized = self.depth;
        self.best.state = self.state;
        self.best.blocking = Some(blocking as usize);
    }

    fn finish(self, found: Found) -> Outcome {
        Outcome {
            found,
            steps: self.steps,
            frontier: self.best,
        }
    }
}
