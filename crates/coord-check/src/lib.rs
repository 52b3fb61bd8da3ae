//! Histories of what clients saw while a nemesis broke the ensemble, and the checkers that
//! judge them against Coord's promises.

pub mod history;

use history::{Entry, History};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Timing bounds the checkers allow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    /// The negotiated session timeout of the run's sessions.
    pub session_timeout_ms: u64,
    /// How long electing a new leader may take (added to the timeout for ephemerals).
    pub election_bound_ms: u64,
}

/// What one server holds after the run, once everything is healed and converged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFinal {
    pub id: u64,
    /// The server's tree digest and last applied zxid (from its status).
    pub digest: u64,
    pub zxid: u64,
    /// Each register key's (data, version), read on this server after the run.
    pub values: BTreeMap<String, (Vec<u8>, i32)>,
}

/// A checker's judgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    Pass,
    /// `slice` is the smallest part of the history that shows the violation.
    Fail { reason: String, slice: Vec<Entry> },
}

/// One checker's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub checker: String,
    pub verdict: Verdict,
    /// How many items (operations, intervals, events…) it examined.
    pub checked: u64,
}

/// Runs every checker.
pub fn check_all(history: &History, finals: &[ServerFinal], params: &Params) -> Vec<Report> {
    let _ = (history, finals, params);
    unimplemented!("being written")
}
