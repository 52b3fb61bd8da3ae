//! Distributed queues: a FIFO / priority [`Queue`] whose take is atomic, and a
//! [`LockingQueue`] whose items are taken under an ephemeral claim and gone only once acked.
//!
//! ```text
//!   /jobs
//!   ├── item-p000-0000000012        persistent-sequential items; name order = take order
//!   ├── item-p005-0000000013        (priority first, lower = sooner, then sequence)
//!   └── claim-item-p000-0000000012  LockingQueue: an ephemeral claim of a taken item
//! ```

use crate::lock::sequencer_of;
use crate::util::{
    RETRY_PAUSE, alive, check_dir, child, deadline, delete_quietly, ensure_path, retry, unique_id,
    wait_watch,
};
use coord_client::{Acl, Client, CreateMode, CreateOptions, Error, ErrorCode, LockMode, MultiOp};
use std::time::Duration;
use tokio::time::Instant;

const ITEM: &str = "item-";
const CLAIM: &str = "claim-";
const RECEIPT: &str = "receipt-";

fn item_prefix(dir: &str, priority: u8) -> String {
    child(dir, &format!("{ITEM}p{priority:03}-"))
}

/// Items of a listing, in take order (the names sort by priority, then sequence).
fn items(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(ITEM))
        .cloned()
        .collect();
    v.sort();
    v
}

async fn put(client: &Client, dir: &str, data: &[u8], priority: u8) -> Result<String, Error> {
    ensure_path(client, dir).await?;
    // A put whose reply was lost may or may not have happened; it is not retried, so an
    // item is never put twice (the caller gets `ConnectionLoss` and decides).
    client
        .create(
            &item_prefix(dir, priority),
            data,
            CreateOptions::sequential(),
        )
        .await
}

fn ephemeral_op(path: &str, data: &[u8]) -> MultiOp {
    MultiOp::Create {
        path: path.to_string(),
        data: data.to_vec(),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Ephemeral,
        ttl_ms: 0,
    }
}

/// A FIFO queue (a priority queue with [`Queue::put_priority`]).
///
/// **Guarantee.** Every item is taken at most once: a take deletes the item in the same
/// multi that creates this taker's ephemeral receipt, so when the reply is lost to a
/// disconnect the taker learns from the receipt whether the take happened. Items come out in
/// priority order (0 first), then in the order they were put.
///
/// **Disconnect (jeopardy).** `take` retries through the reconnect; `put` returns
/// `ConnectionLoss` (the item may or may not have been put) rather than risk a duplicate.
/// **Session expiry.** Calls fail with `SessionExpired`; items are persistent and stay.
/// A taker that dies after its take returned loses the item: use [`LockingQueue`] when an
/// item must survive its consumer. **Leader fail-over:** as a disconnect.
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    path: String,
}

impl Queue {
    /// A queue at `path` (created on first use).
    pub fn new(client: Client, path: &str) -> Result<Queue, Error> {
        check_dir(path)?;
        Ok(Queue {
            client,
            path: path.to_string(),
        })
    }

    /// Appends an item (priority 0); returns its node's path.
    pub async fn put(&self, data: &[u8]) -> Result<String, Error> {
        put(&self.client, &self.path, data, 0).await
    }

    /// Appends an item with `priority` (0 is taken first).
    pub async fn put_priority(&self, data: &[u8], priority: u8) -> Result<String, Error> {
        put(&self.client, &self.path, data, priority).await
    }

    /// Items waiting.
    pub async fn len(&self) -> Result<usize, Error> {
        ensure_path(&self.client, &self.path).await?;
        let (names, _) = retry(&self.client, || self.client.get_children(&self.path)).await?;
        Ok(items(&names).len())
    }

    /// Whether no item waits.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Takes the first item, waiting at most `timeout` for one (`None`: forever); `Ok(None)`
    /// when none came in time.
    pub async fn take(&self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>, Error> {
        let client = &self.client;
        let deadline = deadline(timeout);
        ensure_path(client, &self.path).await?;
        loop {
            let (names, _, watch) = retry(client, || client.get_children_w(&self.path)).await?;
            for name in items(&names) {
                let path = child(&self.path, &name);
                let data = match retry(client, || client.get_data(&path)).await {
                    Ok((d, _)) => d,
                    Err(e) if e.code() == ErrorCode::NoNode => continue,
                    Err(e) => return Err(e),
                };
                if self.take_item(&path).await? {
                    return Ok(Some(data));
                }
            }
            if !wait_watch(watch, deadline).await? {
                return Ok(None);
            }
        }
    }

    /// Deletes `path` with a receipt; whether this call took it.
    async fn take_item(&self, path: &str) -> Result<bool, Error> {
        let client = &self.client;
        let receipt = child(&self.path, &format!("{RECEIPT}{}", unique_id()));
        let ops = vec![
            MultiOp::Delete {
                path: path.to_string(),
                version: -1,
            },
            ephemeral_op(&receipt, b""),
        ];
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => break,
                Err(e) if e.code() == ErrorCode::NoNode => return Ok(false),
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    let _ = retry(client, || client.sync(&self.path)).await;
                    if retry(client, || client.exists(&receipt)).await?.is_some() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        delete_quietly(client, &receipt).await?;
        Ok(true)
    }
}

/// An item taken from a [`LockingQueue`], to [`LockingQueue::ack`] once processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenItem {
    /// The item's node name.
    pub name: String,
    /// The item's data.
    pub data: Vec<u8>,
    /// The claim's sequencer: the claim node, its czxid and this session (mode Shared).
    pub claim: Vec<u8>,
}

/// A queue whose items are taken under a lease (Curator's locking queue).
///
/// **Guarantee.** Each item is acked exactly once. `take` claims an item with an ephemeral
/// claim node (created in a multi that checks the item exists, so only one consumer holds a
/// claim at a time); `ack` deletes the item and the claim in one multi guarded by the
/// claim's sequencer, so only the claim's holder can ack it. A consumer that dies (its
/// session expires) between take and ack loses its claim with its session, and the item can
/// be taken again: an item is processed at least once and acked exactly once.
///
/// **Disconnect (jeopardy).** Calls retry through the reconnect; a claim whose reply was
/// lost is recognised by its unique data. A consumer in jeopardy may have lost its claim:
/// its `ack` then fails with `StaleSequencer`. **Session expiry:** claims vanish, items
/// stay. **Leader fail-over:** as a disconnect.
#[derive(Clone, Debug)]
pub struct LockingQueue {
    client: Client,
    path: String,
}

impl LockingQueue {
    /// A locking queue at `path` (created on first use).
    pub fn new(client: Client, path: &str) -> Result<LockingQueue, Error> {
        check_dir(path)?;
        Ok(LockingQueue {
            client,
            path: path.to_string(),
        })
    }

    /// Appends an item; returns its node's path (see [`Queue::put`] about lost replies).
    pub async fn put(&self, data: &[u8]) -> Result<String, Error> {
        put(&self.client, &self.path, data, 0).await
    }

    /// Appends an item with `priority` (0 is taken first).
    pub async fn put_priority(&self, data: &[u8], priority: u8) -> Result<String, Error> {
        put(&self.client, &self.path, data, priority).await
    }

    /// Items not acked yet (claimed or not).
    pub async fn len(&self) -> Result<usize, Error> {
        ensure_path(&self.client, &self.path).await?;
        let (names, _) = retry(&self.client, || self.client.get_children(&self.path)).await?;
        Ok(items(&names).len())
    }

    /// Whether every item was acked.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Claims the first unclaimed item, waiting at most `timeout` (`None`: forever).
    pub async fn take(&self, timeout: Option<Duration>) -> Result<Option<TakenItem>, Error> {
        let client = &self.client;
        let deadline: Option<Instant> = deadline(timeout);
        ensure_path(client, &self.path).await?;
        loop {
            let (names, _, watch) = retry(client, || client.get_children_w(&self.path)).await?;
            for name in items(&names) {
                let claimed = format!("{CLAIM}{name}");
                if names.contains(&claimed) {
                    continue;
                }
                if let Some(taken) = self.claim(&name).await? {
                    return Ok(Some(taken));
                }
            }
            if !wait_watch(watch, deadline).await? {
                return Ok(None);
            }
        }
    }

    async fn claim(&self, name: &str) -> Result<Option<TakenItem>, Error> {
        let client = &self.client;
        let item = child(&self.path, name);
        let claim = child(&self.path, &format!("{CLAIM}{name}"));
        let token = unique_id();
        let ops = vec![
            MultiOp::Check {
                path: item.clone(),
                version: -1,
            },
            ephemeral_op(&claim, token.as_bytes()),
        ];
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => break,
                Err(e) if matches!(e.code(), ErrorCode::NoNode | ErrorCode::NodeExists) => {
                    return Ok(None);
                }
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    match retry(client, || client.get_data(&claim)).await {
                        Ok((d, _)) if d == token.as_bytes() => break,
                        Ok(_) => return Ok(None),
                        Err(e) if e.code() == ErrorCode::NoNode => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let (_, claim_stat) = retry(client, || client.get_data(&claim)).await?;
        match retry(client, || client.get_data(&item)).await {
            Ok((data, _)) => Ok(Some(TakenItem {
                name: name.to_string(),
                data,
                claim: sequencer_of(&claim, LockMode::Shared, &claim_stat),
            })),
            Err(e) if e.code() == ErrorCode::NoNode => {
                delete_quietly(client, &claim).await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes a taken item and its claim in one multi, only while the claim is still ours
    /// (`StaleSequencer` otherwise: the session lost the claim and the item may be taken
    /// by another consumer). A retried ack whose first try was applied is `Ok`.
    pub async fn ack(&self, item: &TakenItem) -> Result<(), Error> {
        let ops = vec![
            MultiOp::CheckSequencer {
                sequencer: item.claim.clone(),
            },
            MultiOp::Delete {
                path: child(&self.path, &format!("{CLAIM}{}", item.name)),
                version: -1,
            },
            MultiOp::Delete {
                path: child(&self.path, &item.name),
                version: -1,
            },
        ];
        self.guarded(ops).await
    }

    /// Gives a taken item back unprocessed: deletes our claim, so another consumer may take it.
    pub async fn release(&self, item: &TakenItem) -> Result<(), Error> {
        let ops = vec![
            MultiOp::CheckSequencer {
                sequencer: item.claim.clone(),
            },
            MultiOp::Delete {
                path: child(&self.path, &format!("{CLAIM}{}", item.name)),
                version: -1,
            },
        ];
        self.guarded(ops).await
    }

    async fn guarded(&self, ops: Vec<MultiOp>) -> Result<(), Error> {
        let client = &self.client;
        let mut retried = false;
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                // The first try was applied; its reply was lost.
                Err(e) if retried && e.code() == ErrorCode::StaleSequencer => {
                    let claim = coord_client::Sequencer::decode(match &ops[0] {
                        MultiOp::CheckSequencer { sequencer } => sequencer,
                        _ => return Err(e),
                    })
                    .map_err(|_| e.clone())?;
                    // Our claim is gone, and nothing but our own ack or release deletes a
                    // live session's claim: the first try was applied. A claim at that path
                    // of another generation or session is another consumer's, taken after
                    // ours went (a release lets the item be claimed again at once).
                    return match retry(client, || client.exists(&claim.path)).await? {
                        None => Ok(()),
                        Some(stat)
                            if stat.czxid != claim.czxid
                                || stat.ephemeral_owner != claim.session_id =>
                        {
                            Ok(())
                        }
                        Some(_) => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }
}
