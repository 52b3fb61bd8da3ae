//! A counting semaphore: at most N leases held at once, granted in request order.
//!
//! ```text
//!   /app/sem
//!   ├── <id>-lease-0000000004   ephemeral-sequential; the first N in sequence order hold
//!   └── <id>-lease-0000000005   a lease, the rest wait (watching the lease list)
//! ```

use crate::lock::sequencer_of;
use crate::util::{
    alive, bad, check_dir, create_unique, deadline, delete_quietly, ensure_path, name_of, retry,
    sorted_by_sequence, unique_id, wait_watch,
};
use coord_client::{Client, CreateOptions, Error, ErrorCode, LockMode};
use std::time::Duration;

const MARKER: &str = "-lease-";

/// A semaphore with `leases` leases at a path (every user must agree on the number).
///
/// **Guarantee.** At most `leases` sessions hold a lease at once, granted in the order they
/// were asked for (fair). Each [`Lease`] has a sequencer (mode `Shared`) for fencing.
/// **Disconnect (jeopardy):** a lease may be lost while disconnected; check
/// [`Lease::is_valid`] or fence with its sequencer. **Session expiry:** the lease's node
/// vanishes and the next waiter gets it. **Leader fail-over:** calls retry; leases survive.
/// Waiters watch the lease list, so a release wakes every waiter of this semaphore (fine
/// for the small numbers of waiters semaphores usually have).
#[derive(Clone, Debug)]
pub struct Semaphore {
    client: Client,
    path: String,
    leases: usize,
}

/// One lease of a [`Semaphore`]; give it back with [`Semaphore::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's node.
    pub path: String,
    /// Its sequencer (the node, its czxid, this session; mode `Shared`).
    pub sequencer: Vec<u8>,
}

impl Lease {
    /// Whether the lease is still held (asks the ensemble, linearizably).
    pub async fn is_valid(&self, client: &Client) -> Result<bool, Error> {
        client.check_sequencer(&self.sequencer).await
    }
}

impl Semaphore {
    /// A semaphore at `path` with `leases` (at least 1) leases.
    pub fn new(client: Client, path: &str, leases: usize) -> Result<Semaphore, Error> {
        check_dir(path)?;
        if leases == 0 {
            return Err(bad("a semaphore needs at least one lease"));
        }
        Ok(Semaphore {
            client,
            path: path.to_string(),
            leases,
        })
    }

    /// Takes a lease, waiting at most `timeout` (`None`: forever); `Ok(None)` (nothing left
    /// behind) when none was free in time.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<Option<Lease>, Error> {
        let client = &self.client;
        let deadline = deadline(timeout);
        ensure_path(client, &self.path).await?;
        let prefix = format!("{}{MARKER}", unique_id());
        let (node, stat) = create_unique(
            client,
            &self.path,
            &prefix,
            b"",
            CreateOptions::ephemeral_sequential(),
        )
        .await?;
        let me = name_of(&node).to_string();
        loop {
            let step = async {
                let (names, _, watch) = retry(client, || client.get_children_w(&self.path)).await?;
                let queue = sorted_by_sequence(names, MARKER);
                match queue.iter().position(|(_, n)| *n == me) {
                    Some(pos) if pos < self.leases => Ok::<_, Error>(None),
                    Some(_) => Ok(Some(watch)),
                    None => Err(Error::with_message(
                        if alive(client) {
                            ErrorCode::NoNode
                        } else {
                            ErrorCode::SessionExpired
                        },
                        format!("{node}: the lease node is gone"),
                    )),
                }
            };
            match step.await {
                Ok(None) => {
                    return Ok(Some(Lease {
                        sequencer: sequencer_of(&node, LockMode::Shared, &stat),
                        path: node,
                    }));
                }
                Ok(Some(watch)) => match wait_watch(watch, deadline).await {
                    Ok(true) => {}
                    Ok(false) => {
                        delete_quietly(client, &node).await?;
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    if alive(client) {
                        let _ = delete_quietly(client, &node).await;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Gives a lease back (a lease already gone, with an expired session, is fine).
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        delete_quietly(&self.client, &lease.path).await
    }
}
