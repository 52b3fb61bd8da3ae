//! The simulated network: one FIFO connection per pair of servers, cuts, partitions.

use coord_zab::ZabMessage;
use rand::Rng;

use super::invariants::advertised_persisted;
use super::{Event, Sim, SimResult, key};

impl Sim {
    // ---- network --------------------------------------------------------------------

    pub fn connect(&mut self, a: u64, b: u64) -> SimResult {
        let k = key(a, b);
        if !self.alive(a) || !self.alive(b) || self.blocked.contains(&k) || self.conns[&k].up {
            return Ok(());
        }
        let now = self.now;
        let c = self
            .conns
            .get_mut(&k)
            .expect("every pair has a connection slot");
        c.up = true;
        c.generation += 1;
        c.tail = [now, now];
        self.log(|| format!("connect {a}-{b}"));
        for (x, y) in [(a, b), (b, a)] {
            if let Some(z) = self.node_mut(x).zab.as_mut() {
                z.handle_connected(now, y);
            }
            self.drain(x)?;
        }
        Ok(())
    }

    /// Breaks the connection; in-flight messages are lost; a reconnect is scheduled.
    pub fn cut(&mut self, a: u64, b: u64) -> SimResult {
        let k = key(a, b);
        let c = self
            .conns
            .get_mut(&k)
            .expect("every pair has a connection slot");
        if !c.up {
            return Ok(());
        }
        c.up = false;
        c.generation += 1;
        let now = self.now;
        self.log(|| format!("cut {a}-{b}"));
        for (x, y) in [(a, b), (b, a)] {
            if let Some(z) = self.node_mut(x).zab.as_mut() {
                z.handle_disconnected(now, y);
            }
            self.drain(x)?;
        }
        let at = now + self.rng.random_range(20..300);
        self.schedule(at, Event::Reconnect(a, b));
        Ok(())
    }

    /// Blocks every pair across the two sides (and cuts them).
    pub fn partition(&mut self, side: &[u64]) -> SimResult {
        self.log(|| format!("partition {side:?}"));
        for a in self.ids() {
            for b in self.ids() {
                if a < b && side.contains(&a) != side.contains(&b) {
                    self.blocked.insert((a, b));
                    self.cut(a, b)?;
                }
            }
        }
        Ok(())
    }

    /// Lifts every partition and reconnects.
    pub fn heal(&mut self) -> SimResult {
        self.log(|| "heal".into());
        self.blocked.clear();
        for a in self.ids() {
            for b in self.ids() {
                if a < b {
                    self.connect(a, b)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn send(&mut self, from: u64, to: u64, msg: ZabMessage) -> SimResult {
        advertised_persisted::on_send(from, &self.node(from).disk, &msg)?;
        if let Some(f) = &mut self.drop_filter
            && f(from, to, &msg)
        {
            return Ok(());
        }
        *self.counts.entry(msg.kind()).or_default() += 1;
        if self.record_sent {
            self.sent.push((self.now, from, to, msg.kind()));
        }
        let k = key(from, to);
        let Some(c) = self.conns.get(&k).copied() else {
            return Ok(());
        };
        if !c.up {
            return Ok(());
        }
        let dir = usize::from(from > to);
        let at = (self.now + self.rng.random_range(1..=self.cfg.delay_max_ms)).max(c.tail[dir]);
        self.conns.get_mut(&k).expect("looked up above").tail[dir] = at;
        self.schedule(
            at,
            Event::Deliver {
                from,
                to,
                generation: c.generation,
                msg,
            },
        );
        Ok(())
    }
}
