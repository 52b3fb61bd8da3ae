//! Client-cache invalidation (Chubby's cache), the sans-IO part: which sessions cache which
//! nodes, which writes must wait for invalidations, and when those end. The leader's replica
//! (or a single server's Store) owns one [`CacheRegistry`]; every Store gates its applies
//! with a [`ApplyGate`].
//!
//! ```text
//!   CacheFence{path} ─► register(session, path, lease)   atomically with the ReadIndex
//!                                                         commit point (same actor turn)
//!   write W committed ─► invalidate(W, touched(W)) ─► CacheInvalidate{W, targets} to every
//!                        server, before the ZAB Commit on the same FIFO link
//!   every server: Invalidate{W} to its caching sessions; applies nothing from W on
//!   client: drops the entries, InvalidateAck{W} ─► leader: acked(session, W)
//!   all acked, or the lease ran out ─► CacheRelease{W} ─► every server applies W and on
//! ```
//!
//! Why a cached read is never staler than a read from the server: a write W that any
//! session saw (its reply, a read, a watch) had been applied by some server; no server
//! applies W while an invalidation of W is pending; the invalidation ends only when every
//! session registered for a node W changes has dropped it, or when that registration's lease
//! ran out, and the client's lease (counted from before it sent the fence, minus a margin)
//! ends first. A registration made before W committed is in the registry when W commits;
//! one made after reads a commit point that includes W. A new leader knows no registration:
//! each server accepts no session for one lease after it starts serving under a new leader,
//! so every lease a former leader granted has run out before anyone can see a write the new
//! leader commits.

use coord_tree::TxnBody;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bounds of `cache_lease_ms` when caching is on.
pub const LEASE_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=10_000;

/// The lease a session of `timeout_ms` gets: `configured`, at most a third of its timeout
/// (its heartbeats and a reconnect fit in a timeout; the lease never outlives them).
pub fn lease_for(configured_ms: u64, timeout_ms: u32) -> u32 {
    configured_ms.min(timeout_ms as u64 / 3) as u32
}

/// The nodes whose cached reads a txn can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// Nothing cached can change (session bookkeeping, no-ops).
    Nothing,
    /// These nodes (data, Stat or children).
    Paths(Vec<String>),
    /// Unknown nodes (a session ended: its ephemerals go): every cached node.
    Everything,
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn with_parent(out: &mut Vec<String>, path: &str) {
    out.push(path.to_string());
    if let Some(p) = parent(path) {
        out.push(p.to_string());
    }
}

/// What `body` may change. A sequential create's name is known only at apply, so its
/// parent's children are what a cache holds of it; a create or delete changes the node and
/// its parent's children and cversion.
pub fn touched(body: &TxnBody) -> Touched {
    use coord_proto::MultiOp;
    let mut out = Vec::new();
    match body {
        TxnBody::Create { path, .. } | TxnBody::Delete { path, .. } => with_parent(&mut out, path),
        TxnBody::ReapNode { path, .. } => with_parent(&mut out, path),
        TxnBody::SetData { path, .. } | TxnBody::SetAcl { path, .. } => out.push(path.clone()),
        TxnBody::Multi { ops } => {
            for op in ops {
                match op {
                    MultiOp::Create { path, .. } | MultiOp::Delete { path, .. } => {
                        with_parent(&mut out, path)
                    }
                    MultiOp::SetData { path, .. } => out.push(path.clone()),
                    MultiOp::Check { .. } | MultiOp::CheckSequencer { .. } => {}
                }
            }
        }
        TxnBody::CloseSession | TxnBody::ExpireSession => return Touched::Everything,
        _ => return Touched::Nothing,
    }
    if out.is_empty() {
        Touched::Nothing
    } else {
        out.sort_unstable();
        out.dedup();
        Touched::Paths(out)
    }
}

/// One invalidation to broadcast: every server gates its applies at `zxid` and tells its
/// sessions among `targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The write's zxid.
    pub zxid: u64,
    /// How long from now the last lease it waits for runs (a server that never hears the
    /// release applies on after this).
    pub lease_ms: u32,
    /// Sessions and the nodes they drop (empty: every node).
    pub targets: Vec<(u64, Vec<String>)>,
}

#[derive(Debug)]
struct Pending {
    waiting: HashSet<u64>,
    deadline_ms: u64,
}

/// The leader's table of cached nodes and pending invalidations.
#[derive(Debug, Default)]
pub struct CacheRegistry {
    /// Node → session → when its lease runs out (ms, leader clock).
    by_path: HashMap<String, HashMap<u64, u64>>,
    /// Invalidations waiting for acks, by zxid.
    pending: BTreeMap<u64, Pending>,
}

impl CacheRegistry {
    /// `session` caches `path` until `now_ms + lease_ms`.
    pub fn register(&mut self, now_ms: u64, session: u64, path: &str, lease_ms: u32) {
        if lease_ms == 0 {
            return;
        }
        let until = now_ms + lease_ms as u64;
        let e = self
            .by_path
            .entry(path.to_string())
            .or_default()
            .entry(session)
            .or_insert(until);
        *e = (*e).max(until);
    }

    /// Whether nothing is registered or pending.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty() && self.pending.is_empty()
    }

    /// Write `zxid` commits now: the invalidation to broadcast, if a live registration
    /// caches a node it touches. The registrations it covers are gone (their clients drop
    /// the entries; a new read registers again).
    pub fn invalidate(
        &mut self,
        now_ms: u64,
        zxid: u64,
        touched: &Touched,
    ) -> Option<Invalidation> {
        let mut per_session: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut everything = HashSet::new();
        let mut deadline = now_ms;
        let mut take = |path: &str, sessions: HashMap<u64, u64>, all: bool| {
            for (session, until) in sessions {
                if until <= now_ms {
                    continue;
                }
                deadline = deadline.max(until);
                if all {
                    everything.insert(session);
                } else {
                    per_session
                        .entry(session)
                        .or_default()
                        .push(path.to_string());
                }
            }
        };
        match touched {
            Touched::Nothing => return None,
            Touched::Paths(paths) => {
                for p in paths {
                    if let Some(sessions) = self.by_path.remove(p.as_str()) {
                        take(p, sessions, false);
                    }
                }
            }
            Touched::Everything => {
                for (p, sessions) in std::mem::take(&mut self.by_path) {
                    take(&p, sessions, true);
                }
            }
        }
        let mut targets: Vec<(u64, Vec<String>)> = per_session
            .into_iter()
            .filter(|(s, _)| !everything.contains(s))
            .collect();
        targets.extend(everything.into_iter().map(|s| (s, Vec::new())));
        if targets.is_empty() {
            return None;
        }
        targets.sort_unstable();
        self.pending.insert(
            zxid,
            Pending {
                waiting: targets.iter().map(|(s, _)| *s).collect(),
                deadline_ms: deadline,
            },
        );
        Some(Invalidation {
            zxid,
            lease_ms: (deadline - now_ms) as u32,
            targets,
        })
    }

    /// `session` dropped what invalidation `zxid` named; true when that was the last ack.
    pub fn acked(&mut self, session: u64, zxid: u64) -> bool {
        let Some(p) = self.pending.get_mut(&zxid) else {
            return false;
        };
        p.waiting.remove(&session);
        if p.waiting.is_empty() {
            self.pending.remove(&zxid);
            true
        } else {
            false
        }
    }

    /// The invalidations whose leases ran out (released now), and registrations past theirs
    /// forgotten.
    pub fn expire(&mut self, now_ms: u64) -> Vec<u64> {
        let done: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(z, _)| *z)
            .collect();
        for z in &done {
            self.pending.remove(z);
        }
        self.by_path.retain(|_, sessions| {
            sessions.retain(|_, until| *until > now_ms);
            !sessions.is_empty()
        });
        done
    }

    /// When the next pending invalidation runs out (registrations past their lease are
    /// swept by [`CacheRegistry::expire`] once a tick).
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.deadline_ms).min()
    }

    /// This server stops leading: forget everything; the pending invalidations are released
    /// (returned), as the servers would after their own deadlines anyway.
    pub fn clear(&mut self) -> Vec<u64> {
        self.by_path.clear();
        std::mem::take(&mut self.pending).into_keys().collect()
    }
}

/// A Store's gate on applying commits: closed at the lowest pending invalidation's zxid, and
/// for one lease after the server starts serving under a new leader (no session is attached
/// then).
#[derive(Debug, Default)]
pub struct ApplyGate {
    /// Pending invalidations: zxid → when this server applies on without the release.
    holds: BTreeMap<u64, u64>,
}

impl ApplyGate {
    /// Invalidation `zxid` is pending until released, or until `deadline_ms` at the latest.
    pub fn hold(&mut self, zxid: u64, deadline_ms: u64) {
        let d = self.holds.entry(zxid).or_insert(deadline_ms);
        *d = (*d).max(deadline_ms);
    }

    /// Invalidation `zxid` ended.
    pub fn release(&mut self, zxid: u64) {
        self.holds.remove(&zxid);
    }

    /// Whether commit `zxid` may be applied now.
    pub fn open_for(&mut self, now_ms: u64, zxid: u64) -> bool {
        self.holds.retain(|_, d| *d > now_ms);
        self.holds.keys().next().is_none_or(|&h| zxid < h)
    }

    /// The next deadline to wake up at, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.holds.values().copied().min()
    }

    /// Forget every hold (the server changed leader: it serves no session for a lease).
    pub fn clear(&mut self) {
        self.holds.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Touched {
        Touched::Paths(p.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn touched_covers_the_node_and_its_parent() {
        let create = TxnBody::Create {
            path: "/a/b".into(),
            data: vec![],
            acl: vec![],
            mode: coord_proto::CreateMode::Persistent,
            ttl_ms: 0,
        };
        assert_eq!(touched(&create), paths(&["/a", "/a/b"]));
        let set = TxnBody::SetData {
            path: "/x".into(),
            data: vec![],
            version: -1,
        };
        assert_eq!(touched(&set), paths(&["/x"]));
        let del = TxnBody::Delete {
            path: "/x".into(),
            version: -1,
        };
        assert_eq!(touched(&del), paths(&["/", "/x"]));
        assert_eq!(touched(&TxnBody::CloseSession), Touched::Everything);
        assert_eq!(touched(&TxnBody::Noop), Touched::Nothing);
    }

    #[test]
    fn a_write_waits_for_every_caching_session_then_releases() {
        let mut r = CacheRegistry::default();
        r.register(0, 7, "/x", 1000);
        r.register(0, 8, "/x", 500);
        r.register(0, 9, "/y", 1000);
        assert!(r.invalidate(10, 5, &paths(&["/z"])).is_none());
        let inv = r.invalidate(10, 6, &paths(&["/x"])).unwrap();
        assert_eq!(
            inv.targets,
            vec![(7, vec!["/x".into()]), (8, vec!["/x".into()])]
        );
        assert_eq!(inv.lease_ms, 990);
        assert!(!r.acked(7, 6));
        assert!(!r.acked(9, 6), "a session not asked does not release it");
        assert!(r.acked(8, 6));
        // Those registrations are gone: the next write to /x waits for nobody.
        assert!(r.invalidate(20, 7, &paths(&["/x"])).is_none());
    }

    #[test]
    fn leases_run_out() {
        let mut r = CacheRegistry::default();
        r.register(0, 7, "/x", 100);
        r.register(0, 8, "/y", 300);
        // Past its lease, a registration holds no write back.
        assert!(r.invalidate(150, 1, &paths(&["/x"])).is_none());
        let inv = r.invalidate(150, 2, &Touched::Everything).unwrap();
        assert_eq!(inv.targets, vec![(8, vec![])]);
        assert_eq!(r.next_deadline(), Some(300));
        assert!(!r.is_empty());
        assert!(r.expire(299).is_empty());
        assert_eq!(r.expire(300), vec![2]);
        assert!(r.is_empty());
    }

    #[test]
    fn the_gate_closes_at_the_lowest_hold() {
        let mut g = ApplyGate::default();
        assert!(g.open_for(0, 5));
        g.hold(10, 100);
        assert!(g.open_for(0, 9));
        assert!(!g.open_for(0, 10));
        assert!(!g.open_for(0, 11));
        g.hold(12, 200);
        g.release(10);
        assert!(g.open_for(0, 11));
        assert!(!g.open_for(0, 12));
        assert!(g.open_for(200, 12), "past its deadline a hold is gone");
    }

    #[test]
    fn lease_is_a_third_of_the_timeout_at_most() {
        assert_eq!(lease_for(1000, 30_000), 1000);
        assert_eq!(lease_for(1000, 1500), 500);
    }
}
