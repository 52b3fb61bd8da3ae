//! A read-write lock: many readers or one writer, in request order (writers not starved).
//!
//! ```text
//!   /app/rw
//!   ├── <id>-read-0000000001    ephemeral-sequential; a reader holds once no write node
//!   ├── <id>-write-0000000002   precedes it (it watches the last earlier write node);
//!   └── <id>-read-0000000003    a writer holds once it is first (it watches its predecessor)
//! ```

use crate::lock::sequencer_of;
use crate::util::{
    alive, check_dir, child, create_unique, deadline, delete_quietly, ensure_path, expired,
    name_of, retry, sorted_by_sequence, unique_id, wait_watch,
};
use coord_client::{Client, CreateOptions, Error, ErrorCode, LockMode};
use std::time::Duration;

const READ: &str = "-read-";
const WRITE: &str = "-write-";

/// A read-write lock at a path.
///
/// **Guarantee.** While the ensemble has a quorum, either any number of read holds or one
/// write hold exist, never both. Requests are served in order: a reader waits only for
/// writers that asked before it, so a stream of readers cannot starve a writer. Each
/// [`RwHold`] has a sequencer (`Shared` for reads, `Exclusive` for writes) naming its node.
/// Not reentrant: each acquire is a new hold.
///
/// **Disconnect (jeopardy):** a hold may be lost while disconnected; fence with its
/// sequencer. A queue-node create whose reply was lost is found by its unique prefix.
/// **Session expiry:** the session's holds vanish and waiters behind them proceed (no
/// lock-delay here: fence writes with the sequencer). **Leader fail-over:** calls retry;
/// holds and places in the queue survive.
#[derive(Clone, Debug)]
pub struct RwLock {
    client: Client,
    path: String,
}

/// One hold of an [`RwLock`]; give it back with [`RwLock::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RwHold {
    /// The hold's node.
    pub path: String,
    /// `Shared` for a read hold, `Exclusive` for a write hold.
    pub mode: LockMode,
    /// The hold's sequencer.
    pub sequencer: Vec<u8>,
}

impl RwLock {
    /// A read-write lock at `path` (created on first use).
    pub fn new(client: Client, path: &str) -> Result<RwLock, Error> {
        check_dir(path)?;
        Ok(RwLock {
            client,
            path: path.to_string(),
        })
    }

    /// Takes a read hold, waiting at most `timeout`; `Ok(None)` (nothing left) if not in time.
    pub async fn read(&self, timeout: Option<Duration>) -> Result<Option<RwHold>, Error> {
        self.acquire(LockMode::Shared, timeout).await
    }

    /// Takes the write hold, waiting at most `timeout`; `Ok(None)` if not in time.
    pub async fn write(&self, timeout: Option<Duration>) -> Result<Option<RwHold>, Error> {
        self.acquire(LockMode::Exclusive, timeout).await
    }

    /// Gives a hold back (one already gone with an expired session is fine).
    pub async fn release(&self, hold: &RwHold) -> Result<(), Error> {
        delete_quietly(&self.client, &hold.path).await
    }

    async fn acquire(
        &self,
        mode: LockMode,
        timeout: Option<Duration>,
    ) -> Result<Option<RwHold>, Error> {
        let client = &self.client;
        let deadline = deadline(timeout);
        ensure_path(client, &self.path).await?;
        let marker = if mode == LockMode::Shared {
            READ
        } else {
            WRITE
        };
        let prefix = format!("{}{marker}", unique_id());
        let (node, stat) = create_unique(
            client,
            &self.path,
            &prefix,
            b"",
            CreateOptions::ephemeral_sequential(),
        )
        .await?;
        let me = name_of(&node).to_string();
        let outcome: Result<bool, Error> = async {
            loop {
                let (names, _) = retry(client, || client.get_children(&self.path)).await?;
                let queue = sorted_by_sequence(names, "-");
                let Some(pos) = queue.iter().position(|(_, n)| *n == me) else {
                    return Err(Error::with_message(
                        if alive(client) {
                            ErrorCode::NoNode
                        } else {
                            ErrorCode::SessionExpired
                        },
                        format!("{node}: the lock node is gone"),
                    ));
                };
                let blocker = match mode {
                    // The last writer that asked before us.
                    LockMode::Shared => queue[..pos].iter().rev().find(|(_, n)| n.contains(WRITE)),
                    LockMode::Exclusive => pos.checked_sub(1).map(|p| &queue[p]),
                };
                let Some((_, blocker)) = blocker else {
                    return Ok(true);
                };
                if expired(deadline) {
                    return Ok(false);
                }
                let path = child(&self.path, blocker);
                let (stat, watch) = retry(client, || client.exists_w(&path)).await?;
                if stat.is_some() && !wait_watch(watch, deadline).await? {
                    return Ok(false);
                }
            }
        }
        .await;
        match outcome {
            Ok(true) => Ok(Some(RwHold {
                sequencer: sequencer_of(&node, mode, &stat),
                path: node,
                mode,
            })),
            Ok(false) => {
                delete_quietly(client, &node).await?;
                Ok(None)
            }
            Err(e) => {
                if alive(client) {
                    let _ = delete_quietly(client, &node).await;
                }
                Err(e)
            }
        }
    }
}
