//! Asking the servers how they are: statuses, a stable leader, convergence.

use crate::cluster::Cluster;
use coord_client::{ClientConfig, ServerStatus};
use std::time::{Duration, Instant};

impl Cluster {
    /// Server `i`'s status, or `None` if it does not answer within 300 ms.
    pub async fn status(&self, i: usize) -> Option<ServerStatus> {
        let cfg = ClientConfig::new(&self.servers[i].client.to_string(), self.ca())
            .ok()?
            .connect_timeout(Duration::from_millis(300));
        coord_client::server_status(&cfg, &self.servers[i].client.to_string())
            .await
            .ok()
    }

    /// What the OS says about server `i`'s process: `running`, `sleeping`, `stopped` (paused),
    /// `exited` (a zombie not yet reaped: it died on its own), or `not running`.
    pub fn process_state(&self, i: usize) -> &'static str {
        let Some(pid) = self.pid(i) else {
            return "not running";
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) S ...": the state follows the last ')'.
        match stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
        {
            Some('R') => "running",
            Some('S') | Some('D') | Some('I') => "sleeping",
            Some('T') | Some('t') => "stopped",
            Some('Z') | Some('X') | None => "exited",
            Some(_) => "running",
        }
    }

    /// The status of every running server (asked all at once; `None`: no answer in 300 ms).
    pub async fn statuses(&self) -> Vec<(usize, Option<ServerStatus>)> {
        let running: Vec<usize> = (0..self.servers.len())
            .filter(|i| self.is_running(*i))
            .collect();
        let answers = futures::future::join_all(running.iter().map(|i| self.status(*i))).await;
        running.into_iter().zip(answers).collect()
    }

    /// Whether `statuses` show a leader with a quorum of voters (itself and its synced
    /// followers): the ensemble can commit.
    pub fn has_quorum_leader(&self, statuses: &[(usize, Option<ServerStatus>)]) -> bool {
        let quorum = self.voters / 2 + 1;
        statuses.iter().any(|(_, s)| {
            s.as_ref().is_some_and(|s| {
                s.role == "leader"
                    && 1 + s
                        .synced_followers
                        .iter()
                        .filter(|id| **id as usize <= self.voters)
                        .count()
                        >= quorum
            })
        })
    }

    /// The leader, if `statuses` show every listed server answering and established under
    /// it in its epoch.
    pub fn stable_leader(statuses: &[(usize, Option<ServerStatus>)]) -> Option<usize> {
        stable_leader(statuses)
    }

    /// One line per server: its role, epoch and leader, or why it did not answer.
    pub fn describe(&self, statuses: &[(usize, Option<ServerStatus>)]) -> String {
        let seen: Vec<String> = statuses
            .iter()
            .map(|(i, s)| match s {
                Some(s) => format!(
                    "{}: {} epoch {} leader {:?}",
                    i + 1,
                    s.role,
                    s.epoch,
                    s.leader
                ),
                None => format!("{}: no answer ({})", i + 1, self.process_state(*i)),
            })
            .collect();
        if seen.is_empty() {
            "no server running".into()
        } else {
            seen.join("; ")
        }
    }

    /// Waits until every running server is established under one leader in one epoch, or
    /// `timeout` passes; returns the leader's index.
    pub async fn try_wait_stable(&self, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses = self.statuses().await;
            if let Some(leader) = stable_leader(&statuses) {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no stable leader within {} s: {}",
                    timeout.as_secs(),
                    self.describe(&statuses)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Cluster::try_wait_stable`] with 40 s.
    ///
    /// # Panics
    /// If the ensemble does not stabilise (with the servers' logs).
    pub async fn wait_stable(&self) -> usize {
        match self.try_wait_stable(Duration::from_secs(40)).await {
            Ok(l) => l,
            Err(e) => panic!("ensemble never stabilised: {e}\n{}", self.logs()),
        }
    }

    /// Waits until every running server answers with the same (zxid, digest), or `timeout`
    /// passes; returns it.
    pub async fn try_wait_converged(&self, timeout: Duration) -> Result<(u64, u64), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for i in 0..self.servers.len() {
                if self.is_running(i) {
                    seen.push(self.status(i).await.map(|s| (s.zxid, s.digest)));
                }
            }
            if let Some(Some(first)) = seen.first()
                && seen.iter().all(|s| *s == Some(*first))
            {
                return Ok(*first);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "servers never converged within {} s: (zxid, digest) {seen:x?}",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Cluster::try_wait_converged`] with 40 s.
    ///
    /// # Panics
    /// If the servers do not converge (with the servers' logs).
    pub async fn wait_converged(&self) -> (u64, u64) {
        match self.try_wait_converged(Duration::from_secs(40)).await {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }
}

/// The leader if every listed server answered and all agree on it and its epoch.
fn stable_leader(statuses: &[(usize, Option<ServerStatus>)]) -> Option<usize> {
    let mut leaders = statuses
        .iter()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == "leader"));
    let (l, lead) = leaders.next()?;
    if leaders.next().is_some() {
        return None;
    }
    let lead = lead.as_ref()?;
    statuses
        .iter()
        .all(|(_, s)| {
            s.as_ref().is_some_and(|s| {
                s.epoch == lead.epoch
                    && s.leader == Some(lead.id)
                    && matches!(s.role.as_str(), "leader" | "follower" | "observer")
            })
        })
        .then_some(*l)
}
