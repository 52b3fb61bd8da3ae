//! Caches kept current by persistent watches: a [`TreeCache`] of a subtree
//! (persistent-recursive watch) or of one node ([`TreeCache::node`], persistent watch).
//!
//! Consistency: the watch is registered *before* the initial read, so no change falls
//! between the two; an event whose zxid the cache already reflects (its node's czxid or
//! mzxid is at least the event's zxid) is skipped, so nothing is applied twice, and a node
//! re-read on an event is never replaced by an older state.

use crate::util::{check_dir, child, retry};
use coord_client::{AddWatchMode, Client, Error, ErrorCode, EventType, PersistentWatch, Stat};
use std::collections::BTreeMap;

/// A change a cache applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// A node appeared, with its data and Stat.
    Added(String, Vec<u8>, Stat),
    /// A node's data changed.
    Changed(String, Vec<u8>, Stat),
    /// A node went away.
    Removed(String),
}

/// A local copy of a subtree (or one node), updated by [`TreeCache::next`].
///
/// **Guarantee.** After `next` returned an event, the cache equals the tree as of some
/// zxid at least as new as every event applied so far; in the absence of further changes it
/// converges to the tree exactly. **Disconnect / leader fail-over:** the client's persistent
/// watch replays what was missed across the reconnect. **Session expiry**, or a watch the
/// server could not replay: `next` fails (`SessionExpired`, or `ConnectionLoss` with a
/// message saying the watch was lost); build a new cache.
pub struct TreeCache {
    client: Client,
    root: String,
    recursive: bool,
    watch: PersistentWatch,
    nodes: BTreeMap<String, (Vec<u8>, Stat)>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeCache")
            .field("root", &self.root)
            .field("recursive", &self.recursive)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl TreeCache {
    /// A cache of `root` and everything below it.
    pub async fn tree(client: Client, root: &str) -> Result<TreeCache, Error> {
        TreeCache::start(client, root, true).await
    }

    /// A cache of the single node `path` (present or not).
    pub async fn node(client: Client, path: &str) -> Result<TreeCache, Error> {
        TreeCache::start(client, path, false).await
    }

    async fn start(client: Client, root: &str, recursive: bool) -> Result<TreeCache, Error> {
        check_dir(root)?;
        let mode = if recursive {
            AddWatchMode::PersistentRecursive
        } else {
            AddWatchMode::Persistent
        };
        // The watch first, then the read: a change between them is seen by the watch.
        let watch = retry(&client, || client.add_watch(root, mode)).await?;
        let mut cache = TreeCache {
            client,
            root: root.to_string(),
            recursive,
            watch,
            nodes: BTreeMap::new(),
        };
        let mut todo = vec![root.to_string()];
        while let Some(path) = todo.pop() {
            let Some((data, stat)) = cache.read(&path).await? else {
                continue;
            };
            if recursive && stat.num_children > 0 {
                let c = &cache.client;
                match retry(c, || c.get_children(&path)).await {
                    Ok((names, _)) => todo.extend(names.iter().map(|n| child(&path, n))),
                    Err(e) if e.code() == ErrorCode::NoNode => {}
                    Err(e) => return Err(e),
                }
            }
            cache.nodes.insert(path, (data, stat));
        }
        Ok(cache)
    }

    async fn read(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>, Error> {
        match retry(&self.client, || self.client.get_data(path)).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every cached node: path → (data, Stat).
    pub fn snapshot(&self) -> &BTreeMap<String, (Vec<u8>, Stat)> {
        &self.nodes
    }

    /// One cached node.
    pub fn get(&self, path: &str) -> Option<&(Vec<u8>, Stat)> {
        self.nodes.get(path)
    }

    /// Waits for the next change of the cached nodes, applies it and returns it.
    pub async fn next(&mut self) -> Result<CacheEvent, Error> {
        loop {
            let Some(ev) = self.watch.recv().await else {
                return Err(if self.client.state().is_alive() {
                    Error::with_message(ErrorCode::ConnectionLoss, "the cache's watch ended")
                } else {
                    Error::new(ErrorCode::SessionExpired)
                });
            };
            if !self.recursive && ev.path != self.root {
                continue;
            }
            match ev.event_type {
                EventType::PersistentWatchRemoved => {
                    return Err(Error::with_message(
                        ErrorCode::ConnectionLoss,
                        format!(
                            "{}: the cache's watch was lost; rebuild the cache",
                            self.root
                        ),
                    ));
                }
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    if let Some((_, have)) = self.nodes.get(&ev.path)
                        && have.czxid.max(have.mzxid) >= ev.zxid
                    {
                        continue;
                    }
                    match self.read(&ev.path).await? {
                        Some((data, stat)) => {
                            let old = self.nodes.insert(ev.path.clone(), (data.clone(), stat));
                            return Ok(match old {
                                Some((_, o)) if o.czxid == stat.czxid => {
                                    CacheEvent::Changed(ev.path, data, stat)
                                }
                                // New, or re-created since we looked: an addition.
                                _ => CacheEvent::Added(ev.path, data, stat),
                            });
                        }
                        // Gone again: its deletion event follows.
                        None => continue,
                    }
                }
                EventType::NodeDeleted => {
                    match self.nodes.get(&ev.path) {
                        // A newer incarnation was read already.
                        Some((_, have)) if have.czxid > ev.zxid => continue,
                        Some(_) => {
                            self.nodes.remove(&ev.path);
                            return Ok(CacheEvent::Removed(ev.path));
                        }
                        None => continue,
                    }
                }
                _ => continue,
            }
        }
    }
}
