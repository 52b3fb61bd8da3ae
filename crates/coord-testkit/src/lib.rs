//! Local ensembles of real `coordd` processes for tests and the verifier (`coord-verify`).
//!
//! ```text
//!   Cluster ── spawns ──> coordd run (n1)   coordd run (n2)   coordd run (n3)
//!      │                  each: coord.toml, data/, coordd.log; one shared CA
//!      │  kill / restart / restart_all    SIGSTOP / SIGCONT    fsync delay file
//!      └── Netns (optional): one namespace per server on a bridge; Partition = blocked pairs
//! ```
//!
//! The `coordd` binary is a parameter: tests of `coord-server` pass
//! `env!("CARGO_BIN_EXE_coordd")`, the verifier finds it next to itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_testkit::Error> {
//! use coord_testkit::{Cluster, Partition};
//! let mut cluster = Cluster::builder("target/debug/coordd").voters(3).netns(true).start()?;
//! let leader = cluster.wait_stable().await;
//! cluster.partition(&Partition::isolate(3, leader))?;
//! cluster.heal_all()?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod cluster;
mod netns;
mod sweep;
mod wait;

pub use cluster::{Cluster, ClusterBuilder, FAULT_HOOKS_ENV, FSYNC_DELAY_FILE, Server};
pub use netns::{Netns, Partition, sweep_stale};
pub use sweep::sweep_stale_dirs;

/// Why setting up or changing an ensemble failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, process or socket operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A command (`ip …`) exited with an error.
    #[error("{command}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Setup(String),
}

/// A two-worker multi-threaded runtime for multi-process tests.
///
/// # Panics
/// If the OS refuses the runtime's threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
