//! Server configuration: a TOML file, with defaults embedded so `coordd dev` needs none, and
//! command-line flags that override single fields.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("bad config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("bad config: {0}")]
    Invalid(String),
}

/// One Coord server's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This server's id within the ensemble (1..=255).
    pub id: u64,
    /// Address clients connect to (UDP, QUIC).
    pub client_addr: SocketAddr,
    /// Directory of the log, snapshots, epoch file and TLS material.
    pub data_dir: PathBuf,
    /// The basic time unit in ms: session timeouts are negotiated into
    /// [`min_session_timeout_ms`, `max_session_timeout_ms`], 2 and 20 ticks by default.
    pub tick_ms: u64,
    /// Smallest session timeout granted (0 = 2 ticks).
    pub min_session_timeout_ms: u64,
    /// Largest session timeout granted (0 = 20 ticks).
    pub max_session_timeout_ms: u64,
    /// Largest znode data accepted, in bytes.
    pub max_data_bytes: usize,
    /// Largest frame accepted from a client, in bytes.
    pub max_frame_bytes: usize,
    /// Requests a session may have outstanding before the server stops reading its stream.
    pub max_outstanding_per_session: usize,
    /// Sessions one client IP may hold open at once (0 = unlimited).
    pub max_sessions_per_ip: usize,
    /// QUIC connections one client address may hold, handshakes included; past it a new
    /// one is refused before any TLS work. 0: unlimited.
    pub max_connections_per_ip: usize,
    /// How long a client connection may take to complete its QUIC/TLS handshake, and then
    /// to open its first stream and send its first frame, before it is dropped.
    pub handshake_timeout_ms: u64,
    /// Read-only mode (ZooKeeper's `readonlymode.enabled`): while this server has no quorum,
    /// sessions that asked for it (`read_only` in their handshake) are served reads from its
    /// tree, marked read-only; writes, `sync` and linearizable reads get `NotReadOnly`.
    /// When the server rejoins a quorum it closes those sessions so they reconnect
    /// read-write. Off by default: a read-only session may read state older than writes
    /// the majority side acknowledged.
    pub read_only_mode: bool,
    /// The client-cache lease in ms (Chubby's cache; clients opt in with
    /// `ClientConfig::cache`): how long a session may serve a node's reads from its own cache
    /// after a `CacheFence`, at most a third of its session timeout. A write to a cached node
    /// is applied by no server until every caching session dropped it or its lease ran out,
    /// and a server accepts no session for one lease after it starts serving under a new
    /// leader (leases a former leader granted run out first). 0 turns caching off (no
    /// lease granted, no wait); otherwise 100..=10000. Every server of an ensemble must use
    /// the same value.
    pub cache_lease_ms: u64,
    /// Frames (mostly watch events) queued for a client that is not reading before its stream
    /// is reset; the session survives and may resume on a new connection.
    pub max_queued_frames_per_session: usize,
    /// Changes a server keeps to replay to a reconnecting session's persistent watches
    /// (each ~32 bytes plus its path). A session away for more changes than this gets
    /// `PersistentWatchRemoved` instead. The window is saved beside every snapshot and
    /// refilled from it and the log at start-up, so a restart does not empty it. Capped at
    /// `max_queued_frames_per_session`, since a replay is queued at once
    /// ([`Config::replay_window`]); 0 keeps none.
    pub replay_window_changes: usize,
    /// Free bytes kept on the data directory's filesystem: below it, writes that would grow
    /// the data are refused with `DiskFull` (reads, deletes and session closes go on) until
    /// space is back. 0: no reserve (a full disk then stops the server at its next write).
    pub min_free_disk_bytes: u64,
    /// Take a snapshot after this many txns.
    pub snapshot_every_txns: u64,
    /// Snapshots (and the logs they need) kept when purging.
    pub snapshots_keep: usize,
    /// Log segment size before rolling, in bytes.
    pub log_segment_bytes: u64,
    /// `user:base64(sha1(user:password))` of the super user, if any.
    pub super_digest: Option<String>,
    /// TLS material; generated under `data_dir/tls` on first start when unset.
    pub tls: TlsConfig,
    /// The ensemble, this server included; empty for a single server.
    pub members: Vec<Member>,
    /// ZAB timing.
    pub zab: ZabTuning,
}

/// One server of the ensemble.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its id (unique, non-zero).
    pub id: u64,
    /// Where clients reach it.
    pub client_addr: SocketAddr,
    /// Where the other servers reach it (UDP, QUIC with mutual TLS).
    pub peer_addr: SocketAddr,
    /// An observer learns committed txns and serves reads, but never votes.
    #[serde(default)]
    pub observer: bool,
}

/// Timing of the replication protocol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ZabTuning {
    /// Heartbeat period in ms.
    pub tick_ms: u64,
    /// Ticks a new leader (or a syncing learner) may take to get through discovery and sync.
    pub init_limit_ticks: u64,
    /// Ticks without hearing a quorum (leader) or the leader (learner) before stepping down.
    pub sync_limit_ticks: u64,
    /// Base election resend timeout in ms.
    pub election_timeout_ms: u64,
    /// Committed txns a leader keeps in memory for DIFF sync; a learner further behind
    /// gets a snapshot.
    pub max_diff: usize,
}

impl Default for ZabTuning {
    fn default() -> Self {
        ZabTuning {
            tick_ms: 100,
            init_limit_ticks: 20,
            sync_limit_ticks: 5,
            election_timeout_ms: 50,
            max_diff: 10_000,
        }
    }
}

/// Paths of the PEM files for TLS.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Cluster CA certificate (clients verify the server against it).
    pub ca_cert: Option<PathBuf>,
    /// Cluster CA key (used to sign this server's certificate when generating one).
    pub ca_key: Option<PathBuf>,
    /// This server's certificate, signed by the CA.
    pub cert: Option<PathBuf>,
    /// This server's private key.
    pub key: Option<PathBuf>,
    /// Extra DNS names or IPs for the generated server certificate.
    pub names: Vec<String>,
    /// Client certificates: `"none"` (not asked for; the default), `"optional"` (asked for;
    /// a client without one still connects) or `"required"` (a client without a valid one
    /// fails its TLS handshake). A verified certificate's subject (RFC 2253, as ZooKeeper's
    /// `X509AuthenticationProvider`: `CN=alice,O=Acme`) is the session's `x509` identity.
    pub client_auth: ClientAuth,
    /// The CA client certificates must chain to (default: `ca_cert`, the cluster CA).
    pub client_ca: Option<PathBuf>,
}

/// Whether the client listener asks for client certificates ([`TlsConfig::client_auth`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; a client may connect without one.
    Optional,
    /// A client must present one that chains to the client CA.
    Required,
}

/// Default of [`Config::replay_window_changes`]: ~1 MB with 60-byte paths; at 10k writes/s
/// it covers one second of writes.
pub const DEFAULT_REPLAY_WINDOW_CHANGES: usize = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 1,
            client_addr: "127.0.0.1:7181".parse().expect("literal address"),
            data_dir: PathBuf::from("coord-data"),
            tick_ms: 500,
            min_session_timeout_ms: 0,
            max_session_timeout_ms: 0,
            max_data_bytes: 1024 * 1024,
            max_frame_bytes: coord_proto::frame::DEFAULT_MAX_FRAME,
            max_outstanding_per_session: 1000,
            max_sessions_per_ip: 100_000,
            max_connections_per_ip: 1024,
            handshake_timeout_ms: 5000,
            read_only_mode: false,
            cache_lease_ms: 1000,
            max_queued_frames_per_session: 100_000,
            replay_window_changes: DEFAULT_REPLAY_WINDOW_CHANGES,
            min_free_disk_bytes: 64 * 1024 * 1024,
            snapshot_every_txns: 100_000,
            snapshots_keep: 3,
            log_segment_bytes: 64 * 1024 * 1024,
            super_digest: None,
            tls: TlsConfig::default(),
            members: Vec::new(),
            zab: ZabTuning::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; missing fields take their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and relations between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_ms == 0 || self.tick_ms > 60_000 {
            return Err(ConfigError::Invalid(format!(
                "tick_ms {} must be in 1..=60000",
                self.tick_ms
            )));
        }
        if self.min_session_timeout() > self.max_session_timeout() {
            return Err(ConfigError::Invalid(format!(
                "min_session_timeout_ms {} exceeds max_session_timeout_ms {}",
                self.min_session_timeout(),
                self.max_session_timeout()
            )));
        }
        if self.max_frame_bytes < self.max_data_bytes + 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_frame_bytes {} must exceed max_data_bytes {} by at least 1024",
                self.max_frame_bytes, self.max_data_bytes
            )));
        }
        if self.max_outstanding_per_session == 0 {
            return Err(ConfigError::Invalid(
                "max_outstanding_per_session must be at least 1".into(),
            ));
        }
        if !self.members.is_empty() {
            let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.members.len() || ids.contains(&0) {
                return Err(ConfigError::Invalid(
                    "member ids must be unique and non-zero".into(),
                ));
            }
            if !ids.contains(&self.id) {
                return Err(ConfigError::Invalid(format!(
                    "id {} is not among the members",
                    self.id
                )));
            }
            if self.tls.ca_cert.is_none() {
                // Without one, every member would make a CA of its own and no two would
                // trust each other.
                return Err(ConfigError::Invalid(
                    "an ensemble member needs the cluster CA in [tls] ca_cert (with cert and key, or ca_key): run `coordd ca init --dir CA` once, then `coordd cert issue --ca CA --id N --name HOST --out DIR` for each server".into(),
                ));
            }
            if !self.members.iter().any(|m| !m.observer) {
                return Err(ConfigError::Invalid(
                    "the ensemble needs at least one voter".into(),
                ));
            }
            if self.zab.tick_ms == 0
                || self.zab.sync_limit_ticks == 0
                || self.zab.init_limit_ticks == 0
            {
                return Err(ConfigError::Invalid(
                    "zab.tick_ms and the zab limits must be positive".into(),
                ));
            }
        }
        if self.cache_lease_ms != 0 && !crate::cache::LEASE_RANGE_MS.contains(&self.cache_lease_ms)
        {
            return Err(ConfigError::Invalid(format!(
                "cache_lease_ms {} must be 0 (caching off) or in {}..={}",
                self.cache_lease_ms,
                crate::cache::LEASE_RANGE_MS.start(),
                crate::cache::LEASE_RANGE_MS.end()
            )));
        }
        if self.handshake_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "handshake_timeout_ms must be positive".into(),
            ));
        }
        if self.snapshots_keep == 0 {
            return Err(ConfigError::Invalid(
                "snapshots_keep must be at least 1".into(),
            ));
        }
        if let Some(d) = &self.super_digest
            && !d.contains(':')
        {
            return Err(ConfigError::Invalid(
                "super_digest must be user:base64(sha1(user:password))".into(),
            ));
        }
        Ok(())
    }

    /// Changes kept for replay: `replay_window_changes`, at most
    /// `max_queued_frames_per_session` (a replay is queued at once).
    pub fn replay_window(&self) -> usize {
        self.replay_window_changes
            .min(self.max_queued_frames_per_session)
    }

    /// Smallest negotiable session timeout in ms.
    pub fn min_session_timeout(&self) -> u64 {
        if self.min_session_timeout_ms == 0 {
            self.tick_ms * 2
        } else {
            self.min_session_timeout_ms
        }
    }

    /// Largest negotiable session timeout in ms.
    pub fn max_session_timeout(&self) -> u64 {
        if self.max_session_timeout_ms == 0 {
            self.tick_ms * 20
        } else {
            self.max_session_timeout_ms
        }
    }

    /// Clamps a requested session timeout into the server's bounds.
    pub fn negotiate_timeout(&self, requested_ms: u32) -> u32 {
        let t = (requested_ms as u64).clamp(self.min_session_timeout(), self.max_session_timeout());
        t.min(u32::MAX as u64) as u32
    }

    /// This server's entry in `members` (ensemble mode).
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.id)
    }

    /// Where the txn log and snapshots live.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// The file holding the last accepted epoch.
    pub fn epoch_file(&self) -> PathBuf {
        self.data_dir.join("epoch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(Config::from_toml(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn negotiates_into_bounds() {
        let c = Config {
            tick_ms: 100,
            ..Config::default()
        };
        assert_eq!(c.negotiate_timeout(1), 200);
        assert_eq!(c.negotiate_timeout(1500), 1500);
        assert_eq!(c.negotiate_timeout(1_000_000), 2000);
    }

    #[test]
    fn cache_lease_is_off_or_within_its_bounds() {
        for ok in [
            "cache_lease_ms = 0",
            "cache_lease_ms = 100",
            "cache_lease_ms = 10000",
        ] {
            Config::from_toml(ok, Path::new("x")).unwrap();
        }
        for bad in ["cache_lease_ms = 99", "cache_lease_ms = 10001"] {
            match Config::from_toml(bad, Path::new("x")) {
                Err(ConfigError::Invalid(m)) => assert!(m.contains("cache_lease_ms"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn replay_window_fits_the_session_queue() {
        let c = Config::from_toml("replay_window_changes = 0", Path::new("x")).unwrap();
        assert_eq!(c.replay_window(), 0);
        assert_eq!(Config::default().replay_window(), 10_000);
        let c = Config::from_toml(
            "replay_window_changes = 2000\nmax_queued_frames_per_session = 1000",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.replay_window(), 1000);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_values() {
        assert!(matches!(
            Config::from_toml("bogus = 1", Path::new("x")),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_toml("tick_ms = 0", Path::new("x")),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::from_toml("max_data_bytes = 10000000", Path::new("x")),
            Err(ConfigError::Invalid(_))
        ));
    }
}
