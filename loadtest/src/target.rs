//! One session with the system under test, whichever it is: the same four operations over
//! Coord's client (QUIC, rkyv frames) and over `zookeeper-client` (TCP, jute), so both are
//! driven by the same loop and measured by the same clock.

use std::time::Duration;

/// Which system is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Coord, through `coord-client`.
    Coord,
    /// Apache ZooKeeper, through the `zookeeper-client` crate.
    Zk,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Coord => "coord",
            Target::Zk => "zk",
        })
    }
}

/// Session timeout requested from either system (both negotiate it into their bounds).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on establishing one session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an operation failed, as far as the load loop cares.
#[derive(Debug)]
pub enum OpError {
    /// The node already exists (expected when keys are re-created on a second run).
    NodeExists,
    /// Anything else; the text names the error for the summary.
    Other(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::NodeExists => f.write_str("NodeExists"),
            OpError::Other(s) => f.write_str(s),
        }
    }
}

/// One session. Cloning shares the session (requests are pipelined on it).
#[derive(Clone)]
pub enum Conn {
    /// A Coord session (one QUIC connection).
    Coord(coord_client::Client),
    /// A ZooKeeper session (one TCP connection).
    Zk(zookeeper_client::Client),
}

impl Conn {
    fn coord_config(servers: &str, ca: &[u8]) -> Result<coord_client::ClientConfig, String> {
        Ok(
            coord_client::ClientConfig::with_ca_pem(servers, ca.to_vec())
                .map_err(|e| format!("coord config: {e}"))?
                .session_timeout(SESSION_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT),
        )
    }

    /// Connections that Coord sessions can share (one per server); `None` for ZooKeeper,
    /// whose sessions each have their own TCP connection.
    pub fn transport(
        target: Target,
        servers: &str,
        ca: &[u8],
    ) -> Result<Option<coord_client::Transport>, String> {
        match target {
            Target::Coord => coord_client::Transport::new(&Conn::coord_config(servers, ca)?)
                .map(Some)
                .map_err(|e| format!("coord transport: {e}")),
            Target::Zk => Ok(None),
        }
    }

    /// Opens one session to `servers` (comma-separated `host:port`). `ca` is the Coord
    /// cluster CA (PEM bytes, read once by the caller); ZooKeeper ignores it, and `shared`,
    /// the connections Coord sessions share (each session has its own without it).
    pub async fn connect(
        target: Target,
        servers: &str,
        ca: &[u8],
        shared: Option<&coord_client::Transport>,
    ) -> Result<Conn, String> {
        match target {
            Target::Coord => {
                let mut cfg = Conn::coord_config(servers, ca)?;
                if let Some(t) = shared {
                    cfg = cfg.transport(t.clone());
                }
                coord_client::Client::connect(cfg)
                    .await
                    .map(Conn::Coord)
                    .map_err(|e| format!("coord connect to {servers}: {e}"))
            }
            Target::Zk => {
                let connect = zookeeper_client::Client::connector()
                    .with_session_timeout(SESSION_TIMEOUT)
                    .with_connection_timeout(CONNECT_TIMEOUT)
                    .with_fail_eagerly()
                    .connect(servers);
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(c)) => Ok(Conn::Zk(c)),
                    Ok(Err(e)) => Err(format!("zk connect to {servers}: {e}")),
                    Err(_) => Err(format!("zk connect to {servers}: timed out")),
                }
            }
        }
    }

    /// Reads a node (after a `sync` of it with `sync_first`); returns its data length.
    pub async fn get(&self, path: &str, sync_first: bool) -> Result<usize, OpError> {
        if sync_first {
            match self {
                Conn::Coord(c) => c.sync(path).await.map_err(coord_err)?,
                Conn::Zk(c) => c.sync(path).await.map_err(zk_err)?,
            }
        }
        match self {
            Conn::Coord(c) => c
                .get_data(path)
                .await
                .map(|(d, _)| d.len())
                .map_err(coord_err),
            Conn::Zk(c) => c.get_data(path).await.map(|(d, _)| d.len()).map_err(zk_err),
        }
    }

    /// Replaces a node's data (any version).
    pub async fn set(&self, path: &str, data: &[u8]) -> Result<(), OpError> {
        match self {
            Conn::Coord(c) => c
                .set_data(path, data, None)
                .await
                .map(drop)
                .map_err(coord_err),
            Conn::Zk(c) => c.set_data(path, data, None).await.map(drop).map_err(zk_err),
        }
    }

    /// Creates a persistent, world-open node.
    pub async fn create(&self, path: &str, data: &[u8]) -> Result<(), OpError> {
        match self {
            Conn::Coord(c) => c
                .create(path, data, coord_client::CreateOptions::persistent())
                .await
                .map(drop)
                .map_err(coord_err),
            Conn::Zk(c) => {
                let opts = zookeeper_client::CreateMode::Persistent
                    .with_acls(zookeeper_client::Acls::anyone_all());
                c.create(path, data, &opts).await.map(drop).map_err(zk_err)
            }
        }
    }

    /// Creates a node, or sets its data if it already exists.
    pub async fn upsert(&self, path: &str, data: &[u8]) -> Result<(), OpError> {
        match self.create(path, data).await {
            Err(OpError::NodeExists) => self.set(path, data).await,
            other => other,
        }
    }

    /// Ends the session (best effort).
    pub async fn close(self) {
        match self {
            Conn::Coord(c) => {
                let _ = c.close().await;
            }
            // Dropping the last clone closes a zookeeper-client session.
            Conn::Zk(c) => drop(c),
        }
    }
}

fn coord_err(e: coord_client::Error) -> OpError {
    if e.code() == coord_client::ErrorCode::NodeExists {
        OpError::NodeExists
    } else {
        OpError::Other(format!("{:?}", e.code()))
    }
}

fn zk_err(e: zookeeper_client::Error) -> OpError {
    match e {
        zookeeper_client::Error::NodeExists => OpError::NodeExists,
        other => OpError::Other(format!("{other}")),
    }
}
