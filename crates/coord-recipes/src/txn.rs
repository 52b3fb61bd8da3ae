//! Two-phase commit over the tree: a coordinator and participants agree on commit or abort
//! for one transaction.
//!
//! ```text
//!   /app/txns/<id>              data: the participants' names, one per line
//!   ├── votes/<participant>     "yes" / "no" (persistent: a vote survives its voter)
//!   └── decision                "commit" / "abort": created once, never changed
//! ```
//!
//! With Coord the decision is itself a replicated write: `decision` is created at most once
//! (a second create fails with `NodeExists`), so whoever writes it first decides, and it
//! survives any crash of the coordinator. Classic 2PC blocks when the coordinator dies after
//! the votes: the participants that voted yes cannot decide alone. Here they do not wait
//! for the coordinator: after their own timeout any participant may write `abort`
//! ([`Participant::abort_if_undecided`]); if the coordinator's `commit` got there first, the
//! create fails and everyone reads `commit`. 2PC's blocking thus reduces to waiting for
//! Coord's quorum, which the ensemble's replication already bounds.
//!
//! Three-phase commit (can-commit / pre-commit / do-commit) exists to let participants
//! decide by timeouts without a live coordinator; its non-blocking claim holds only with
//! crash failures, reliable failure detection and bounded delays, and fails under
//! partitions (two sides can time out into different decisions). It is provided in
//! [`crate::three_phase`], with Skeen's timeout rules and termination protocol; there the
//! termination protocol reads one linearizable view and decides with the same kind of
//! create-once decision node, which is what rules the partition case out. With Coord, 2PC
//! needs no extra phase for that: what 3PC's pre-commit buys (a dead coordinator does not
//! block) the create-once decision and the ensemble's quorum already give.

use crate::util::{
    RETRY_PAUSE, alive, bad, check_dir, child, deadline, ensure_path, retry, wait_watch,
};
use coord_client::{Client, CreateOptions, Error, ErrorCode};
use std::time::Duration;

/// The outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Every participant voted yes before the timeout.
    Commit,
    /// Someone voted no, or not everyone voted in time.
    Abort,
}

impl Decision {
    fn bytes(self) -> &'static [u8] {
        match self {
            Decision::Commit => b"commit",
            Decision::Abort => b"abort",
        }
    }

    fn parse(data: &[u8]) -> Result<Decision, Error> {
        match data {
            b"commit" => Ok(Decision::Commit),
            b"abort" => Ok(Decision::Abort),
            other => Err(Error::with_message(
                ErrorCode::BadArguments,
                format!(
                    "decision node holds {:?}, not commit/abort",
                    String::from_utf8_lossy(other)
                ),
            )),
        }
    }
}

fn check_txn(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == ".." {
        return Err(bad(format!(
            "{id:?} is not a transaction or participant name"
        )));
    }
    Ok(())
}

/// Writes `decision` unless one exists; returns the one that holds.
async fn decide_once(client: &Client, txn: &str, decision: Decision) -> Result<Decision, Error> {
    let path = child(txn, "decision");
    match retry(client, || {
        client.create(&path, decision.bytes(), CreateOptions::persistent())
    })
    .await
    {
        Ok(_) => Ok(decision),
        // Someone decided first, or our own create's reply was lost: the node is the truth.
        Err(e) if e.code() == ErrorCode::NodeExists => {
            let (d, _) = retry(client, || client.get_data(&path)).await?;
            Decision::parse(&d)
        }
        Err(e) => Err(e),
    }
}

/// The decision of `txn`, waiting at most `timeout`; `None` if undecided by then.
async fn await_decision(
    client: &Client,
    txn: &str,
    timeout: Option<Duration>,
) -> Result<Option<Decision>, Error> {
    let path = child(txn, "decision");
    let deadline = deadline(timeout);
    loop {
        match retry(client, || client.get_data(&path)).await {
            Ok((d, _)) => return Decision::parse(&d).map(Some),
            Err(e) if e.code() == ErrorCode::NoNode => {}
            Err(e) => return Err(e),
        }
        let (stat, watch) = retry(client, || client.exists_w(&path)).await?;
        if stat.is_none() && !wait_watch(watch, deadline).await? {
            return Ok(None);
        }
    }
}

/// The coordinator of two-phase commits under a directory.
///
/// **Guarantee.** It writes `commit` only if every listed participant voted yes, and the
/// decision, once written, is the only one (create-once). **Disconnect / leader fail-over:**
/// calls retry through the reconnect; a lost create reply is resolved by reading the node.
/// **Session expiry:** calls fail with `SessionExpired`; everything written is persistent,
/// so a new coordinator session can [`Coordinator::decide`] again and reach the same outcome.
#[derive(Clone, Debug)]
pub struct Coordinator {
    client: Client,
    dir: String,
}

impl Coordinator {
    /// A coordinator of transactions under `dir`.
    pub fn new(client: Client, dir: &str) -> Result<Coordinator, Error> {
        check_dir(dir)?;
        Ok(Coordinator {
            client,
            dir: dir.to_string(),
        })
    }

    /// Starts transaction `id` among `participants` (phase one: its node asks them to
    /// vote). `NodeExists` if `id` was used before.
    pub async fn begin(&self, id: &str, participants: &[&str]) -> Result<(), Error> {
        check_txn(id)?;
        if participants.is_empty() {
            return Err(bad("a transaction needs participants"));
        }
        for p in participants {
            check_txn(p)?;
        }
        let client = &self.client;
        ensure_path(client, &self.dir).await?;
        let txn = child(&self.dir, id);
        let list = participants.join("\n");
        let ops = vec![
            CreateOptions::persistent().to_op(&txn, list.as_bytes())?,
            CreateOptions::persistent().to_op(&child(&txn, "votes"), b"")?,
        ];
        let mut retried = false;
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if retried && e.code() == ErrorCode::NodeExists => {
                    // Ours if it lists the same participants.
                    let (d, _) = retry(client, || client.get_data(&txn)).await?;
                    return if d == list.as_bytes() { Ok(()) } else { Err(e) };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Phase two: waits at most `timeout` for every vote, then writes the decision (commit
    /// only if all voted yes; a no or a missing vote aborts). Returns the decision that holds
    /// (someone else's, if a participant aborted first).
    pub async fn decide(&self, id: &str, timeout: Duration) -> Result<Decision, Error> {
        check_txn(id)?;
        let client = &self.client;
        let txn = child(&self.dir, id);
        let votes = child(&txn, "votes");
        let (list, _) = retry(client, || client.get_data(&txn)).await?;
        let participants: Vec<String> = String::from_utf8_lossy(&list)
            .lines()
            .map(str::to_string)
            .collect();
        let deadline = deadline(Some(timeout));
        let decision = loop {
            let (names, _, watch) = retry(client, || client.get_children_w(&votes)).await?;
            let mut all_yes = true;
            let mut missing = false;
            for p in &participants {
                if !names.contains(p) {
                    missing = true;
                    continue;
                }
                let vote = child(&votes, p);
                let (v, _) = retry(client, || client.get_data(&vote)).await?;
                all_yes &= v == b"yes";
            }
            if !all_yes {
                break Decision::Abort;
            }
            if !missing {
                break Decision::Commit;
            }
            if !wait_watch(watch, deadline).await? {
                break Decision::Abort;
            }
        };
        decide_once(client, &txn, decision).await
    }

    /// The decision of `id`, if written.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, Error> {
        check_txn(id)?;
        await_decision(&self.client, &child(&self.dir, id), Some(Duration::ZERO)).await
    }
}

/// A participant of two-phase commits under a directory.
///
/// **Guarantee.** Its vote is written once and persists; the decision it learns is the one
/// decision of the transaction. A participant that crashed after voting yes learns the
/// outcome on restart with [`Participant::decision`] (the decision node is persistent).
/// **Disconnect / leader fail-over:** calls retry. **Session expiry:** calls fail with
/// `SessionExpired`; a new session can carry on (votes and decisions are persistent).
#[derive(Clone, Debug)]
pub struct Participant {
    client: Client,
    dir: String,
    name: String,
}

impl Participant {
    /// Participant `name` of transactions under `dir`.
    pub fn new(client: Client, dir: &str, name: &str) -> Result<Participant, Error> {
        check_dir(dir)?;
        check_txn(name)?;
        Ok(Participant {
            client,
            dir: dir.to_string(),
            name: name.to_string(),
        })
    }

    /// Waits at most `timeout` for transaction `id` to begin; whether it did.
    pub async fn wait_begun(&self, id: &str, timeout: Duration) -> Result<bool, Error> {
        check_txn(id)?;
        let client = &self.client;
        let votes = child(&child(&self.dir, id), "votes");
        let deadline = deadline(Some(timeout));
        loop {
            let (stat, watch) = retry(client, || client.exists_w(&votes)).await?;
            if stat.is_some() {
                return Ok(true);
            }
            if !wait_watch(watch, deadline).await? {
                return Ok(false);
            }
        }
    }

    /// Votes on `id` (yes = ready to commit). A repeated vote is fine if it is the same;
    /// `NodeExists` if it differs. `NoNode` if the transaction has not begun.
    pub async fn vote(&self, id: &str, yes: bool) -> Result<(), Error> {
        check_txn(id)?;
        let client = &self.client;
        let path = child(&child(&child(&self.dir, id), "votes"), &self.name);
        let v: &[u8] = if yes { b"yes" } else { b"no" };
        match retry(client, || {
            client.create(&path, v, CreateOptions::persistent())
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => {
                let (d, _) = retry(client, || client.get_data(&path)).await?;
                if d == v { Ok(()) } else { Err(e) }
            }
            Err(e) => Err(e),
        }
    }

    /// The decision of `id`, waiting at most `timeout` (`None`: forever); `None` if still
    /// undecided then.
    pub async fn decision(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Decision>, Error> {
        check_txn(id)?;
        await_decision(&self.client, &child(&self.dir, id), timeout).await
    }

    /// Writes `abort` unless a decision exists (a participant's timeout on a silent
    /// coordinator); returns the decision that holds.
    pub async fn abort_if_undecided(&self, id: &str) -> Result<Decision, Error> {
        check_txn(id)?;
        decide_once(&self.client, &child(&self.dir, id), Decision::Abort).await
    }
}
