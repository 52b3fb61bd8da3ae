//! Coord's Rust client: an async (tokio) API over QUIC, and a [`blocking`] facade.
//!
//! ```text
//!   Client (Clone) ─┐
//!   Client (Clone) ─┼─ commands ─> session task ─> one QUIC connection, one stream
//!   blocking::Client┘                 │  pipelined requests, FIFO replies, events
//!                                     └─ watch table, heartbeats, reconnect
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use coord_client::{Client, ClientConfig, CreateOptions};
//! let client = Client::connect(ClientConfig::from_env()?).await?;
//! client.create("/app", b"v1", CreateOptions::default()).await?;
//! let (data, _stat, watch) = client.get_data_w("/app").await?;
//! assert_eq!(data, b"v1");
//! client.set_data("/app", b"v2", None).await?;
//! let event = watch.await?; // NodeDataChanged /app
//! # let _ = event; Ok(()) }
//! ```
//!
//! Guarantees kept by the client:
//! - requests of one client complete in the order they were made (one stream, FIFO replies);
//! - a watch is registered before any later frame is read, so its event is never missed;
//! - after a reconnect the client never accepts a server behind the last zxid it saw, and
//!   re-registers its watches (`SetWatches`) and credentials before any other request;
//! - a persistent watch sees every change it matches once, in zxid order, across reconnects
//!   (the server replays what was missed, the client drops what it already had), or ends
//!   with a `PersistentWatchRemoved` event when the server can no longer replay;
//! - when the connection drops (Chubby's jeopardy), reads in flight are re-sent after the
//!   resume; writes and other calls in flight fail with `ConnectionLoss` (they may or may not
//!   have been applied); calls made meanwhile wait for the new connection, and fail with
//!   `OperationTimeout` (certainly not applied) if still unsent after
//!   [`ClientConfig::request_timeout`];
//! - the session is declared expired only when a server says so, or when the grace period
//!   ([`ClientConfig::grace_period`], 45 s by default) after the local view of the session
//!   timeout has run out; session events ([`Client::session_events`]) tell `Jeopardy`,
//!   `Safe`, `Expired`, `LeaderFailedOver` (once per leader change, after the watches were
//!   re-registered), ...;
//! - [`ReadMode::Linearizable`] reads see every write acknowledged before they were sent, on
//!   any server; [`ReadMode::Cached`] reads (Chubby's cache, [`ClientConfig::cache`]) are
//!   never staler than that, and most cost no round trip; sequencers ([`Sequencer`], [`Client::check_sequencer`],
//!   `MultiOp::CheckSequencer`) fence a lock holder's writes;
//! - nothing the server sends can make the client panic: a malformed frame drops the
//!   connection and the client reconnects.
#![warn(missing_docs)]

pub mod blocking;
mod cache;
mod client;
pub mod config;
mod conn;
mod connector;
mod error;
mod options;
mod session;
mod tls;
mod transport;
mod watches;

pub use cache::CacheStats;
pub use client::{Client, PersistentWatch, ReadMode, SessionEvents, Watch};
pub use config::ClientConfig;
pub use coord_proto::{
    Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, LockMode, MultiOp, MultiResult,
    ReadOp, ReadResult, Sequencer, SequencerError, ServerStatus, Stat, WatchedEvent, WatcherKind,
    perms,
};
pub use error::Error;
pub use options::{CreateOptions, digest_id};
pub use session::{SessionEvent, SessionState};
pub use tls::ALPN;
pub use transport::Transport;

/// Asks one server for its status ([`coord_proto::ServerStatus`]: role, epoch, zxid, leader,
/// followers in sync, tree digest) without opening a session, so it answers while the
/// ensemble has no quorum. Gives up after `cfg.connect_timeout`.
pub async fn server_status(
    cfg: &ClientConfig,
    server: &str,
) -> Result<coord_proto::ServerStatus, Error> {
    let connector = connector::Connector::new(cfg)?;
    let result = tokio::time::timeout(cfg.connect_timeout, connector.status(server)).await;
    connector.drain().await;
    match result {
        Ok(r) => r,
        Err(_) => Err(Error::with_message(
            coord_proto::ErrorCode::ConnectionLoss,
            format!("{server}: no answer within {:?}", cfg.connect_timeout),
        )),
    }
}
