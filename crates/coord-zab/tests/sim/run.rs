//! Driving a run: chaos and load on, then settle and check convergence.

use coord_zab::{Role, Zxid};

use super::{Event, Sim, SimResult};

impl Sim {
    // ---- runs -----------------------------------------------------------------------

    /// Starts fault injection and client load.
    pub fn start_chaos(&mut self) {
        self.chaos = true;
        self.clients = true;
        let now = self.now;
        self.schedule(now + 100, Event::Chaos);
        self.schedule(now + 50, Event::Clients);
    }

    pub fn run_steps(&mut self, n: u64) -> SimResult {
        for _ in 0..n {
            self.step()?;
        }
        Ok(())
    }

    /// Steps until `pred` holds, at most `max_ms` of virtual time.
    pub fn run_until(&mut self, max_ms: u64, mut pred: impl FnMut(&Sim) -> bool) -> SimResult {
        let deadline = self.now + max_ms;
        while !pred(self) {
            if self.now > deadline {
                return Err(format!(
                    "condition not reached within {max_ms} ms (t={})",
                    self.now
                ));
            }
            self.step()?;
        }
        Ok(())
    }

    /// Runs virtual time forward by `ms`.
    pub fn run_for(&mut self, ms: u64) -> SimResult {
        let until = self.now + ms;
        while self.now < until {
            self.step()?;
        }
        Ok(())
    }

    /// The established leader, if exactly one live server is one.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| {
                self.status(*id)
                    .is_some_and(|s| s.role == Role::Leading && s.established)
            })
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// True when every live server follows one established leader, delivered everything
    /// it logged, and no write is pending.
    pub fn quiescent(&self) -> bool {
        let Some(l) = self.leader() else { return false };
        let ls = self.status(l).expect("the leader is alive");
        self.nodes.iter().all(|n| {
            let Some(z) = &n.zab else { return true };
            let s = z.status();
            n.disk.pending.is_empty()
                && s.last_committed == ls.last_logged
                && s.last_logged == ls.last_logged
                && (n.id == l || (s.leader == Some(l) && s.established))
        })
    }

    /// Stops faults and load, heals, restarts everyone, runs until quiescent, and checks
    /// convergence: equal digests and every acknowledged txn delivered everywhere.
    pub fn settle(&mut self) -> SimResult {
        self.chaos = false;
        self.clients = false;
        self.drop_filter = None;
        for n in &mut self.nodes {
            n.disk.stalled = false;
        }
        self.heal()?;
        for id in self.ids() {
            self.restart(id)?;
        }
        self.run_until(120_000, |s| s.quiescent())
            .map_err(|e| format!("no convergence after healing: {e}"))?;
        self.check_converged()
    }

    pub fn check_converged(&self) -> SimResult {
        let reference = &self.nodes[0];
        for n in &self.nodes {
            if n.tree.digest() != reference.tree.digest() || n.pos != self.inv.global.len() {
                return Err(format!(
                    "diverged: server {} digest {:x} at {} vs server {} digest {:x} at {}",
                    n.id,
                    n.tree.digest(),
                    n.tree.last_applied(),
                    reference.id,
                    reference.tree.digest(),
                    reference.tree.last_applied()
                ));
            }
        }
        let last = self.inv.global.last().map_or(Zxid::ZERO, |g| g.0);
        for z in &self.inv.acknowledged {
            if self.inv.position_after(*z).is_none() || *z > last {
                return Err(format!("acknowledged {z} missing after convergence"));
            }
        }
        Ok(())
    }

    /// The failure message: the error, the seed, how to replay, and the trace tail.
    pub fn failure(&self, test: &str, err: &str) -> String {
        let mut s = format!(
            "seed={} failed at t={} after {} steps: {err}\nreplay: COORD_SIM_SEED={} cargo test -p coord-zab --test {test}",
            self.seed, self.now, self.steps, self.seed
        );
        for n in &self.nodes {
            match &n.zab {
                Some(z) => s.push_str(&format!(
                    "\n  server {}: {:?} (last LOOKING: {}), disk last {} pending {}",
                    n.id,
                    z.status(),
                    z.last_looking_reason(),
                    n.disk.last_zxid(),
                    n.disk.pending.len()
                )),
                None => s.push_str(&format!("\n  server {}: down", n.id)),
            }
        }
        if let Some(t) = &self.trace {
            for line in t
                .iter()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                s.push('\n');
                s.push_str(line);
            }
        } else {
            s.push_str(" (set COORD_SIM_TRACE=1 for a trace)");
        }
        s
    }
}
