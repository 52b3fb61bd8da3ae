//! Leader election: the leader is the holder of a [`Lock`] whose holder node carries the
//! leader's value; anyone can observe it.
//!
//! ```text
//!   /app/election
//!   ├── <id>-lock-0000000003   candidates, in campaign order (each watches its predecessor)
//!   ├── <id>-lock-0000000004
//!   └── holder                 the leader: data "<queue node>\n<value>", czxid = the term
//! ```

use crate::lock::{HOLDER, Lock, LockHolder, LockOptions, LockStatus, holder_from};
use crate::util::{RETRY_PAUSE, alive, check_dir, child, retry};
use coord_client::{Client, Error, ErrorCode, Watch};
use std::time::Duration;

/// The leader of an election, as its holder node says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The value the leader campaigned with (its address, its name).
    pub value: Vec<u8>,
    /// The term: the holder node's czxid. Every new leader has a larger term than every
    /// earlier one, and a term has one leader.
    pub term: u64,
    /// The leader's session.
    pub session_id: u64,
    /// The leader's sequencer (`Exclusive`): check it before obeying the leader.
    pub sequencer: Vec<u8>,
}

impl From<LockHolder> for Leader {
    fn from(h: LockHolder) -> Leader {
        Leader {
            value: h.data,
            term: h.czxid,
            session_id: h.session_id,
            sequencer: h.sequencer,
        }
    }
}

/// A candidate in a leader election at a path.
///
/// **Guarantee.** At most one leader at a time while the ensemble has a quorum, and one per
/// term (the term is the czxid of the leader's holder node, which grows). Candidates become
/// leader in the order they started campaigning; a candidate watches only the one before
/// it. The leader's session ending (close, or expiry followed by the lock-delay) or
/// [`Election::resign`] hands leadership to the next candidate.
///
/// **Disconnect (jeopardy).** A leader whose [`Election::status`] is `Jeopardy` may have
/// been replaced: it must stop leading (or lead only through writes fenced with its
/// [`Election::sequencer`]) until the status is `Held` again.
///
/// **Session expiry.** Leadership is lost (`Lost`); the next candidate takes over after the
/// lock-delay ([`LockOptions::lock_delay`]), which gives the expired leader time to notice
/// that its session is gone before a new leader acts. A pending campaign fails with
/// `SessionExpired`.
///
/// **Leader fail-over** (of the Coord ensemble). The session, its candidacy and its
/// leadership survive; calls are retried through the reconnect.
#[derive(Clone, Debug)]
pub struct Election {
    lock: Lock,
}

impl Election {
    /// A candidate at `path` (created on first use) campaigning with `value`.
    pub fn new(client: Client, path: &str, value: &[u8]) -> Result<Election, Error> {
        Election::with_lock_delay(client, path, value, crate::lock::DEFAULT_LOCK_DELAY)
    }

    /// Like [`Election::new`], with the lock-delay applied after a leader's session expired.
    pub fn with_lock_delay(
        client: Client,
        path: &str,
        value: &[u8],
        lock_delay: Duration,
    ) -> Result<Election, Error> {
        let opts = LockOptions {
            lock_delay,
            data: value.to_vec(),
        };
        Ok(Election {
            lock: Lock::with_options(client, path, opts)?,
        })
    }

    /// The election's path.
    pub fn path(&self) -> &str {
        self.lock.path()
    }

    /// Campaigns until this candidate leads (`Ok(true)`) or `timeout` passes (`Ok(false)`,
    /// the candidacy withdrawn); `None` waits as long as it takes. Dropping the future
    /// cancels the candidacy. Campaigning while leading returns `Ok(true)` at once.
    pub async fn campaign(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.lock.hold_count() > 0 {
            return Ok(true);
        }
        self.lock.acquire(timeout).await
    }

    /// Gives up leadership (or nothing, when not leading): the next candidate takes over at
    /// once. An error says leadership had been lost before (see [`Lock::release`]).
    pub async fn resign(&self) -> Result<(), Error> {
        self.lock.release_all().await
    }

    /// Whether this candidate leads and its session is connected.
    pub fn is_leader(&self) -> bool {
        self.lock.is_held()
    }

    /// What this candidate knows about its leadership (`Held` = leading, see [`LockStatus`]).
    pub fn status(&self) -> LockStatus {
        self.lock.status()
    }

    /// The leader's sequencer while this candidate leads.
    pub fn sequencer(&self) -> Option<Vec<u8>> {
        self.lock.sequencer()
    }

    /// The term this candidate leads in, while it leads.
    pub fn term(&self) -> Option<u64> {
        self.lock.generation()
    }

    /// The current leader, or `None`.
    pub async fn leader(&self) -> Result<Option<Leader>, Error> {
        Ok(self.lock.holder().await?.map(Leader::from))
    }

    /// An observer of this election's leader (see [`LeaderObserver`]).
    pub fn observe(&self) -> LeaderObserver {
        LeaderObserver {
            client: self.lock.client().clone(),
            holder_path: child(self.lock.path(), HOLDER),
            pending: None,
            last: None,
        }
    }

    /// An observer of the election at `path` for a session that does not campaign.
    pub fn observer(client: Client, path: &str) -> Result<LeaderObserver, Error> {
        check_dir(path)?;
        Ok(LeaderObserver {
            client,
            holder_path: child(path, HOLDER),
            pending: None,
            last: None,
        })
    }
}

/// Follows who leads an election: [`LeaderObserver::recv`] returns the current leader first,
/// then each change (a new term, or no leader), kept current by one-shot watches on the
/// holder node.
///
/// Changes that come and go between two looks may be merged (it reports the state, not
/// every transition), but no state it reports is older than one it reported before.
/// Through a disconnect it waits for the reconnect (the client re-registers its watch);
/// after the session expired `recv` fails with `SessionExpired`.
pub struct LeaderObserver {
    client: Client,
    holder_path: String,
    pending: Option<Watch>,
    /// The term last reported (`Some(None)`: "no leader" was).
    last: Option<Option<u64>>,
}

impl std::fmt::Debug for LeaderObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderObserver")
            .field("holder_path", &self.holder_path)
            .field("last", &self.last)
            .finish()
    }
}

impl LeaderObserver {
    /// The leader now (first call), or once it differs from what was last returned.
    pub async fn recv(&mut self) -> Result<Option<Leader>, Error> {
        loop {
            if let Some(w) = self.pending.take() {
                w.await?;
            }
            let (leader, watch) = self.look().await?;
            self.pending = Some(watch);
            let term = leader.as_ref().map(|l| l.term);
            if self.last != Some(term) {
                self.last = Some(term);
                return Ok(leader);
            }
        }
    }

    /// Reads the holder node and leaves a watch on it.
    async fn look(&self) -> Result<(Option<Leader>, Watch), Error> {
        let client = &self.client;
        loop {
            match client.get_data_w(&self.holder_path).await {
                Ok((data, stat, watch)) => {
                    let holder = holder_from(&self.holder_path, &data, &stat);
                    return Ok((Some(holder.into()), watch));
                }
                Err(e) if e.code() == ErrorCode::NoNode => {
                    let (stat, watch) =
                        retry(client, || client.exists_w(&self.holder_path)).await?;
                    if stat.is_none() {
                        return Ok((None, watch));
                    }
                }
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
