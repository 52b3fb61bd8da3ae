//! Barriers: a [`Barrier`] node that holds everyone until it is removed, and a
//! [`DoubleBarrier`] that lets N participants start together and finish together.
//!
//! ```text
//!   /app/barrier                 Barrier: exists = closed; waiters watch it
//!   /app/round                   DoubleBarrier (N participants)
//!   ├── p-<unique id>            one ephemeral node per participant that entered
//!   └── ready                    created by whoever sees N participants: everyone enters
//! ```

use crate::util::{
    RETRY_PAUSE, alive, bad, check_dir, child, deadline, delete_quietly, ensure_path, retry,
    unique_id, wait_watch,
};
use coord_client::{Client, CreateOptions, Error, ErrorCode};
use std::time::Duration;

/// A barrier: while its node exists, [`Barrier::wait`] blocks.
///
/// **Guarantee.** No `wait` returns `true` while the node exists. **Disconnect:** waiting
/// continues through the reconnect (the client re-registers the watch). **Session expiry:**
/// `wait` fails with `SessionExpired`; the node is persistent and stays. **Leader
/// fail-over:** as a disconnect.
#[derive(Clone, Debug)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// A barrier at `path`.
    pub fn new(client: Client, path: &str) -> Result<Barrier, Error> {
        check_dir(path)?;
        Ok(Barrier {
            client,
            path: path.to_string(),
        })
    }

    /// Closes the barrier (creates its node and missing parents; already closed is fine).
    pub async fn set(&self) -> Result<(), Error> {
        ensure_path(&self.client, &self.path).await
    }

    /// Opens the barrier (deletes its node; already open is fine).
    pub async fn remove(&self) -> Result<(), Error> {
        delete_quietly(&self.client, &self.path).await
    }

    /// Waits until the barrier is open, at most `timeout` (`None`: forever): `Ok(true)` once
    /// open, `Ok(false)` if still closed at the deadline.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = deadline(timeout);
        loop {
            let (stat, watch) = retry(&self.client, || self.client.exists_w(&self.path)).await?;
            if stat.is_none() {
                return Ok(true);
            }
            if !wait_watch(watch, deadline).await? {
                return Ok(false);
            }
        }
    }
}

/// A double barrier for `count` participants (one handle per participant).
///
/// **Guarantee.** [`DoubleBarrier::enter`] returns `true` only after `count` participants
/// have entered; [`DoubleBarrier::leave`] returns `true` only after every participant that
/// entered has left. Each path is for one round; use a new path per round.
///
/// **Disconnect:** calls retry through the reconnect. **Session expiry:** the participant's
/// node vanishes (for `leave` it counts as having left; a later `enter` fails with
/// `SessionExpired`). **Leader fail-over:** as a disconnect.
#[derive(Debug)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    count: usize,
    me: String,
}

impl DoubleBarrier {
    /// A participant of the double barrier at `path` for `count` (at least 1) participants.
    pub fn new(client: Client, path: &str, count: usize) -> Result<DoubleBarrier, Error> {
        check_dir(path)?;
        if count == 0 {
            return Err(bad("a double barrier needs at least one participant"));
        }
        Ok(DoubleBarrier {
            me: child(path, &format!("p-{}", unique_id())),
            client,
            path: path.to_string(),
            count,
        })
    }

    /// Enters and waits until `count` participants have: `Ok(false)` (and this participant
    /// withdrawn) when that does not happen within `timeout`.
    pub async fn enter(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let client = &self.client;
        let deadline = deadline(timeout);
        let ready = child(&self.path, "ready");
        ensure_path(client, &self.path).await?;
        loop {
            match client
                .create(&self.me, b"", CreateOptions::ephemeral())
                .await
            {
                Ok(_) => break,
                // Our own create whose reply was lost (the name is ours alone).
                Err(e) if e.code() == ErrorCode::NodeExists => break,
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
        loop {
            let (stat, watch) = retry(client, || client.exists_w(&ready)).await?;
            if stat.is_some() {
                return Ok(true);
            }
            let (names, _) = retry(client, || client.get_children(&self.path)).await?;
            if names.iter().filter(|n| n.starts_with("p-")).count() >= self.count {
                let r = retry(client, || {
                    client.create(&ready, b"", CreateOptions::persistent())
                })
                .await;
                match r {
                    Ok(_) => return Ok(true),
                    Err(e) if e.code() == ErrorCode::NodeExists => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            if !wait_watch(watch, deadline).await? {
                delete_quietly(client, &self.me).await?;
                return Ok(false);
            }
        }
    }

    /// Leaves and waits until every participant has: `Ok(false)` when some are still in at
    /// the deadline (this one has left regardless).
    pub async fn leave(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let client = &self.client;
        let deadline = deadline(timeout);
        delete_quietly(client, &self.me).await?;
        loop {
            let (names, _, watch) = retry(client, || client.get_children_w(&self.path)).await?;
            if !names.iter().any(|n| n.starts_with("p-")) {
                return Ok(true);
            }
            if !wait_watch(watch, deadline).await? {
                return Ok(false);
            }
        }
    }
}
