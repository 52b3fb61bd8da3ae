//! A Jepsen-style verifier for Coord: it runs a real ensemble (one `coordd` process per
//! server, in network namespaces when partitions are wanted), drives many concurrent client
//! sessions through the real client while a seeded nemesis breaks the ensemble, records
//! everything the clients saw, and hands the history to the checkers of `coord-check`.
//!
//! ```text
//!   coord-verify ─┬─ nemesis (seeded rounds) ──kill/pause/partition/slow disk/restart──┐
//!                 ├─ register workers ─┐                                               v
//!                 ├─ lock workers ─────┼─ coord-client sessions ──QUIC──> coordd × N (coord-testkit)
//!                 ├─ recipe workers ───┤  (coord-recipes: Lock, Election, LockingQueue, 2PC)
//!                 ├─ observer ─────────┘        │ replies (zxid), events, state changes
//!                 │                             v
//!                 └─ Recorder ── History ── check_all ── Reports ── summary, exit code
//! ```
//!
//! Invariants the recording keeps (the checkers rely on them):
//! - one operation at a time per process, one session at a time per process;
//! - every `Invoke` gets a `Complete`: `Ok` (with the zxid of the reply that answered it),
//!   `Fail` (the server proved it was not applied) or `Unknown` (anything else);
//! - a watch event is recorded before the completion of an operation exactly when the client
//!   received it before that operation's reply (see [`session`]);
//! - every `SessionStarted` gets one `SessionEnded`.
#![warn(missing_docs)]

pub mod nemesis;
pub mod outcome;
pub mod recipe_workers;
pub mod record;
pub mod run;
pub mod schedule;
pub mod session;
pub mod summary;
pub mod workers;
