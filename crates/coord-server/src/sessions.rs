//! Session liveness and expiry.
//!
//! Liveness is volatile and local: each session has a [`Liveness`] cell that the connection
//! reader touches on every frame. The [`SessionManager`] actor scans the table once per tick and
//! asks the Store to expire sessions silent for longer than their timeout; expiry itself is a
//! replicated CloseSession txn. After a restart every session in the tree gets a fresh timeout
//! (time spent down does not expire anyone, as with a new ZAB leader).

use crate::store::{Expire, Store};
use actix::prelude::*;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic millisecond clock shared by the server's tasks.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// Starts the clock.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }
    /// Milliseconds since start.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// When a session was last heard from.
#[derive(Debug)]
pub struct Liveness {
    /// The session's negotiated timeout.
    pub timeout_ms: u32,
    last_heard_ms: AtomicU64,
    expiring: AtomicBool,
}

impl Liveness {
    /// A session heard from at `now_ms`.
    pub fn new(timeout_ms: u32, now_ms: u64) -> Liveness {
        Liveness {
            timeout_ms,
            last_heard_ms: AtomicU64::new(now_ms),
            expiring: AtomicBool::new(false),
        }
    }
    /// Records a frame from the session.
    pub fn touch(&self, now_ms: u64) {
        self.last_heard_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
    /// Whether the session has been silent longer than its timeout at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heard_ms.load(Ordering::Relaxed)) > self.timeout_ms as u64
    }
}

/// Every live session's liveness, shared by the Store (insert/remove), connections (touch)
/// and the SessionManager (scan).
#[derive(Debug, Default, Clone)]
pub struct SessionTable {
    inner: Arc<RwLock<HashMap<u64, Arc<Liveness>>>>,
}

impl SessionTable {
    /// Registers a session.
    pub fn insert(&self, id: u64, liveness: Arc<Liveness>) {
        self.inner.write().insert(id, liveness);
    }
    /// Forgets a session.
    pub fn remove(&self, id: u64) {
        self.inner.write().remove(&id);
    }
    /// A session's liveness cell.
    pub fn get(&self, id: u64) -> Option<Arc<Liveness>> {
        self.inner.read().get(&id).cloned()
    }
    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }
    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Gives every session a fresh timeout from `now_ms` (a new leader: time spent electing
    /// expires no one).
    pub fn touch_all(&self, now_ms: u64) {
        for l in self.inner.read().values() {
            l.last_heard_ms.store(now_ms, Ordering::Relaxed);
            l.expiring.store(false, Ordering::Relaxed);
        }
    }

    /// Sessions heard from after `since_ms` (a follower reports them to its leader).
    pub fn heard_since(&self, since_ms: u64) -> Vec<u64> {
        self.inner
            .read()
            .iter()
            .filter(|(_, l)| l.last_heard_ms.load(Ordering::Relaxed) > since_ms)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Sessions silent past their timeout that are not already being expired; marks them.
    pub fn take_expired(&self, now_ms: u64) -> Vec<u64> {
        let table = self.inner.read();
        let mut out: Vec<u64> = table
            .iter()
            .filter(|(_, l)| l.is_expired(now_ms) && !l.expiring.swap(true, Ordering::Relaxed))
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }
}

/// Scans session liveness every tick and hands expired sessions to the Store.
pub struct SessionManager {
    /// Only the leader expires sessions; followers report liveness to it.
    expiring: bool,
    table: SessionTable,
    clock: Clock,
    tick: Duration,
    store: Addr<Store>,
    /// How long the Store accepts no session after this server starts serving (the client
    /// cache lease): fresh timeouts count from its end, so no session expires for want of a
    /// chance to resume.
    grace_ms: u64,
}

impl SessionManager {
    /// A manager scanning `table` every `tick`; timeouts restart `grace_ms` after it starts
    /// expiring.
    pub fn new(
        table: SessionTable,
        clock: Clock,
        tick: Duration,
        store: Addr<Store>,
        grace_ms: u64,
    ) -> Self {
        SessionManager {
            expiring: true,
            table,
            clock,
            tick,
            store,
            grace_ms,
        }
    }

    /// Starts expiring (a single server) or not (an ensemble's server, until it leads).
    pub fn expiring(mut self, on: bool) -> Self {
        self.expiring = on;
        self
    }
}

impl Actor for SessionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.expiring {
            self.table.touch_all(self.clock.now_ms() + self.grace_ms);
        }
        ctx.run_interval(self.tick, |this, _| {
            if !this.expiring {
                return;
            }
            for id in this.table.take_expired(this.clock.now_ms()) {
                tracing::info!(session = format_args!("0x{id:x}"), "session expired");
                this.store.do_send(Expire { session_id: id });
            }
        });
    }
}

/// Turn expiry on (this server leads; every session gets a fresh timeout, counted from the
/// end of the window in which no session can attach) or off.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetExpiring(pub bool);

impl Handler<SetExpiring> for SessionManager {
    type Result = ();
    fn handle(&mut self, msg: SetExpiring, _: &mut Self::Context) {
        if msg.0 && !self.expiring {
            self.table.touch_all(self.clock.now_ms() + self.grace_ms);
        }
        self.expiring = msg.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_the_last_touch() {
        let table = SessionTable::default();
        table.insert(1, Arc::new(Liveness::new(1000, 0)));
        table.insert(2, Arc::new(Liveness::new(5000, 0)));
        assert!(table.take_expired(1000).is_empty());
        table.get(1).unwrap().touch(900);
        assert!(table.take_expired(1800).is_empty());
        assert_eq!(table.take_expired(1901), vec![1]);
        // Already handed over: not again.
        assert!(table.take_expired(3000).is_empty());
        assert_eq!(table.take_expired(5001), vec![2]);
    }
}
