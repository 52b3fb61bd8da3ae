//! The client cache of [`crate::ReadMode::Cached`] (Chubby's cache): data, Stat and children
//! of nodes this session read, each kept for the lease the server granted with the
//! `CacheFence` that preceded the read.
//!
//! An entry is served with no round trip until its lease ends, counted from before the fence
//! was sent, less a tenth for clock-rate drift. The server applies no write to a cached node
//! before this session dropped it (it answers every `Invalidate` frame at once) or the lease
//! ran out; see `coord_server::cache` for why that makes a cached read never staler than a
//! read from a server. A read is cached only if no invalidation of its node, and no
//! disconnect, happened while it was in flight. The whole cache is dropped on `Jeopardy`,
//! `LeaderFailedOver` and at the session's end.

use coord_proto::{Request, Response};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Which read of a node an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Exists = 0,
    Data = 1,
    Children = 2,
}

/// The cacheable reads: exists, get_data and get_children without a watch.
pub(crate) fn key(request: &Request) -> Option<(Kind, &str)> {
    match request {
        Request::Exists { path, watch: false } => Some((Kind::Exists, path)),
        Request::GetData { path, watch: false } => Some((Kind::Data, path)),
        Request::GetChildren { path, watch: false } => Some((Kind::Children, path)),
        _ => None,
    }
}

/// The part of a lease the client uses: 90%, for clock-rate drift between it and the leader.
pub(crate) fn usable(lease_ms: u32) -> Duration {
    Duration::from_millis(lease_ms as u64 * 9 / 10)
}

/// Entries past this count trigger a sweep of the expired ones.
const SWEEP_AT: usize = 4096;

/// A node's cached reads, one slot per [`Kind`]: the answer and when its lease ends.
type Slots = [Option<(Response, Instant)>; 3];

#[derive(Default)]
struct Inner {
    /// Looked up by `&str`: a hit allocates nothing.
    entries: HashMap<String, Slots>,
    /// Reads in flight: ticket → (node, invalidated meanwhile).
    in_flight: HashMap<u64, (String, bool)>,
    next_ticket: u64,
    sweep_at: usize,
    stats: CacheStats,
}

/// Hit and miss counts of a session's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Cacheable reads that went to the server.
    pub misses: u64,
    /// Invalidations received.
    pub invalidations: u64,
}

/// A session's cache.
#[derive(Default)]
pub(crate) struct Cache {
    inner: Mutex<Inner>,
}

/// A read in flight; dropping it without [`Cache::finish`] caches nothing.
pub(crate) struct Ticket<'a> {
    cache: &'a Cache,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.cache.inner.lock().in_flight.remove(&self.id);
    }
}

impl Cache {
    /// The cached answer, if its lease has not ended.
    pub(crate) fn get(&self, kind: Kind, path: &str, now: Instant) -> Option<Response> {
        let mut inner = self.inner.lock();
        let hit = match inner
            .entries
            .get(path)
            .and_then(|slots| slots[kind as usize].as_ref())
        {
            Some((r, until)) if now < *until => Some(r.clone()),
            _ => None,
        };
        if hit.is_some() {
            inner.stats.hits += 1;
        } else {
            inner.stats.misses += 1;
        }
        hit
    }

    /// A read of `path` is about to be sent (call before sending its fence).
    pub(crate) fn begin(&self, path: &str) -> Ticket<'_> {
        let mut inner = self.inner.lock();
        inner.next_ticket += 1;
        let id = inner.next_ticket;
        inner.in_flight.insert(id, (path.to_string(), false));
        Ticket { cache: self, id }
    }

    /// The read of `ticket` answered `response` under a lease usable until `until`: cached
    /// unless its node was invalidated (or the cache dropped) while it was in flight.
    pub(crate) fn finish(
        &self,
        ticket: Ticket<'_>,
        kind: Kind,
        response: &Response,
        until: Instant,
    ) {
        let mut inner = self.inner.lock();
        let Some((path, invalidated)) = inner.in_flight.remove(&ticket.id) else {
            return;
        };
        if invalidated {
            return;
        }
        let cacheable = matches!(
            (kind, response),
            (Kind::Exists, Response::Exists { .. })
                | (Kind::Data, Response::Data { .. })
                | (Kind::Children, Response::Children { .. })
        );
        if !cacheable {
            return;
        }
        inner.entries.entry(path).or_default()[kind as usize] = Some((response.clone(), until));
        if inner.entries.len() >= inner.sweep_at.max(SWEEP_AT) {
            let now = Instant::now();
            inner.entries.retain(|_, slots| {
                for slot in slots.iter_mut() {
                    if slot.as_ref().is_some_and(|(_, u)| *u <= now) {
                        *slot = None;
                    }
                }
                slots.iter().any(Option::is_some)
            });
            inner.sweep_at = inner.entries.len() * 2;
        }
    }

    /// Drops `paths` (every node when empty), and spoils the reads of them in flight.
    pub(crate) fn invalidate(&self, paths: &[String]) {
        self.inner.lock().stats.invalidations += 1;
        if paths.is_empty() {
            self.clear();
            return;
        }
        let mut inner = self.inner.lock();
        for p in paths {
            inner.entries.remove(p.as_str());
        }
        for (path, invalidated) in inner.in_flight.values_mut() {
            if paths.contains(path) {
                *invalidated = true;
            }
        }
    }

    /// Drops everything, and spoils every read in flight.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.entries.clear();
        for (_, invalidated) in inner.in_flight.values_mut() {
            *invalidated = true;
        }
    }

    /// Entries held (expired ones not yet swept included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .entries
            .values()
            .flatten()
            .filter(|s| s.is_some())
            .count()
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.inner.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::Stat;

    fn data(v: &[u8]) -> Response {
        Response::Data {
            data: v.to_vec(),
            stat: Stat::default(),
        }
    }

    #[tokio::test]
    async fn an_entry_lives_for_its_lease() {
        let c = Cache::default();
        let t = c.begin("/a");
        let now = Instant::now();
        c.finish(t, Kind::Data, &data(b"1"), now + usable(1000));
        assert_eq!(c.get(Kind::Data, "/a", now), Some(data(b"1")));
        assert_eq!(
            c.get(Kind::Exists, "/a", now),
            None,
            "each read kind is its own entry"
        );
        assert_eq!(
            c.get(Kind::Data, "/a", now + Duration::from_millis(900)),
            None
        );
        assert_eq!(c.stats().hits, 1);
    }

    #[tokio::test]
    async fn invalidations_drop_entries_and_spoil_reads_in_flight() {
        let c = Cache::default();
        let until = Instant::now() + usable(1000);
        let t = c.begin("/a");
        c.finish(t, Kind::Data, &data(b"1"), until);
        let t = c.begin("/b");
        let u = c.begin("/c");
        c.invalidate(&["/a".into(), "/b".into()]);
        assert_eq!(c.get(Kind::Data, "/a", Instant::now()), None);
        c.finish(t, Kind::Data, &data(b"old"), until);
        assert_eq!(
            c.get(Kind::Data, "/b", Instant::now()),
            None,
            "invalidated in flight"
        );
        c.finish(u, Kind::Data, &data(b"c"), until);
        assert!(c.get(Kind::Data, "/c", Instant::now()).is_some());
        let t = c.begin("/d");
        c.clear();
        c.finish(t, Kind::Data, &data(b"d"), until);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn errors_and_watches_are_not_cached() {
        let watched = Request::GetData {
            path: "/a".into(),
            watch: true,
        };
        assert!(key(&watched).is_none());
        let c = Cache::default();
        let t = c.begin("/a");
        c.finish(
            t,
            Kind::Data,
            &Response::Empty,
            Instant::now() + usable(1000),
        );
        assert_eq!(c.len(), 0);
    }
}
