//! Client configuration: which servers, which CA to trust, which timeouts.

use crate::error::Error;
use coord_proto::ErrorCode;
use std::path::Path;
use std::time::Duration;

/// Environment variable with the comma-separated `host:port` list of servers.
pub const ENV_SERVERS: &str = "COORD_SERVERS";
/// Environment variable with the path of the cluster CA certificate (PEM).
pub const ENV_CA: &str = "COORD_CA";
/// Environment variable with the path of this client's certificate (PEM), for servers that
/// ask for one (`[tls] client_auth`); read with [`ENV_KEY`].
pub const ENV_CERT: &str = "COORD_CERT";
/// Environment variable with the path of this client's private key (PEM).
pub const ENV_KEY: &str = "COORD_KEY";

/// Default requested session timeout (the server negotiates it into its bounds).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on establishing one connection (QUIC + TLS + handshake frame).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest frame the client accepts or sends (16 MiB: large children lists fit).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Chubby's default grace period.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(45);

/// The longest grace period accepted: past an hour a dead ensemble would hold calls for
/// longer than any caller waits.
pub const MAX_GRACE_PERIOD: Duration = Duration::from_secs(3600);
/// Default bound on how long a call waits for a connection while the session is in
/// jeopardy (see [`ClientConfig::request_timeout`]): long enough to ride out a leader
/// election or a server restart (seconds), short enough that a caller learns within the
/// default session timeout that the ensemble is out of reach, rather than only when the
/// 45 s grace period ends.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach and talk to an ensemble.
#[derive(Clone)]
pub struct ClientConfig {
    /// `host:port` of every server (`[v6]:port` for IPv6 literals); tried shuffled.
    pub servers: Vec<String>,
    /// The cluster CA certificate(s), PEM: the only roots trusted for server certificates.
    pub ca_pem: Vec<u8>,
    /// Requested session timeout; the negotiated one is [`crate::Client::session_timeout`].
    pub session_timeout: Duration,
    /// Bound on the whole initial connect, and on each connection attempt after that.
    pub connect_timeout: Duration,
    /// Largest frame accepted from the server or sent to it, in bytes.
    pub max_frame: usize,
    /// Connections shared with other sessions; `None`: this session's own.
    pub transport: Option<crate::Transport>,
    /// Accept a read-only server (one cut off from the quorum, in read-only mode, that
    /// serves reads only; ZooKeeper's `canBeReadOnly`); off by default. While connected
    /// read-only ([`crate::Client::is_read_only`]) the client asks the other servers every
    /// two seconds whether one has a quorum, and moves there when one does. A session first
    /// created by a read-only server is local to it: the move starts a new session (a new
    /// [`crate::Client::session_id`]; watches are registered again on it).
    pub read_only: bool,
    /// Serve reads from a client cache (Chubby's): handles of [`crate::Client::connect`]
    /// read in [`crate::ReadMode::Cached`]. Off by default.
    pub cache: bool,
    /// How long after its local view of the session timeout the client keeps trying to
    /// resume a disconnected session before it declares it expired (Chubby's grace period;
    /// default 45 s). A server saying `SessionExpired` ends it at once.
    pub grace_period: Duration,
    /// How long a call may wait, without being sent, for the session to be resumed (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]). It counts from the moment the session task took the
    /// call: a call made during jeopardy, or a read re-sent after the connection dropped,
    /// that is still unsent this long after it was made fails with `OperationTimeout` (it
    /// was certainly not applied). A call sent on a live connection is bounded by that
    /// connection's liveness instead (no reply, not even to pings, for 2/3 of the session
    /// timeout drops it).
    pub request_timeout: Duration,
    /// This client's certificate chain and private key (PEM), presented when a server asks
    /// (`[tls] client_auth = "optional"` or `"required"`); the certificate's subject becomes
    /// the session's `x509` identity for ACLs. `None`: no certificate.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("servers", &self.servers)
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame", &self.max_frame)
            .field("transport", &self.transport)
            .field("read_only", &self.read_only)
            .field("cache", &self.cache)
            .field("grace_period", &self.grace_period)
            .field("request_timeout", &self.request_timeout)
            .field("client_cert", &self.client_cert.is_some())
            .finish()
    }
}

impl ClientConfig {
    /// A configuration for `servers` (comma-separated `host:port`) trusting the CA in the PEM
    /// file `ca_pem_path`, with default timeouts.
    pub fn new(servers: &str, ca_pem_path: impl AsRef<Path>) -> Result<ClientConfig, Error> {
        let path = ca_pem_path.as_ref();
        let ca_pem = std::fs::read(path).map_err(|e| {
            Error::with_message(
                ErrorCode::BadArguments,
                format!("cannot read CA file {}: {e}", path.display()),
            )
        })?;
        ClientConfig::with_ca_pem(servers, ca_pem)
    }

    /// Like [`ClientConfig::new`], with the CA certificate(s) given as PEM bytes.
    pub fn with_ca_pem(servers: &str, ca_pem: Vec<u8>) -> Result<ClientConfig, Error> {
        let servers = parse_servers(servers)?;
        crate::tls::parse_ca(&ca_pem)?;
        Ok(ClientConfig {
            servers,
            ca_pem,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
            transport: None,
            read_only: false,
            cache: false,
            grace_period: DEFAULT_GRACE_PERIOD,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_cert: None,
        })
    }

    /// A configuration from `COORD_SERVERS` and `COORD_CA` (what `coordd dev` prints).
    pub fn from_env() -> Result<ClientConfig, Error> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::with_message(
                    ErrorCode::BadArguments,
                    format!("environment variable {name} is not set"),
                )
            })
        };
        let cfg = ClientConfig::new(&var(ENV_SERVERS)?, var(ENV_CA)?)?;
        match (std::env::var(ENV_CERT), std::env::var(ENV_KEY)) {
            (Ok(cert), Ok(key)) => cfg.client_cert(cert, key),
            (Err(_), Err(_)) => Ok(cfg),
            _ => Err(Error::with_message(
                ErrorCode::BadArguments,
                format!("set both {ENV_CERT} and {ENV_KEY}, or neither"),
            )),
        }
    }

    /// Presents the certificate in the PEM file `cert_path` (with the key in `key_path`) to
    /// servers that ask for one (see [`ClientConfig::client_cert`]).
    pub fn client_cert(
        self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<ClientConfig, Error> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| {
                Error::with_message(
                    ErrorCode::BadArguments,
                    format!("cannot read {what} {}: {e}", p.display()),
                )
            })
        };
        let cert = read(cert_path.as_ref(), "client certificate")?;
        let key = read(key_path.as_ref(), "client key")?;
        self.client_cert_pem(cert, key)
    }

    /// Like [`ClientConfig::client_cert`], with the certificate chain and key as PEM bytes.
    pub fn client_cert_pem(mut self, cert: Vec<u8>, key: Vec<u8>) -> Result<ClientConfig, Error> {
        crate::tls::parse_identity(&cert, &key)?;
        self.client_cert = Some((cert, key));
        Ok(self)
    }

    /// Sets the requested session timeout.
    pub fn session_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.session_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the frame size limit.
    pub fn max_frame(mut self, bytes: usize) -> ClientConfig {
        self.max_frame = bytes;
        self
    }

    /// Runs the session over `transport`, whose connections other sessions share
    /// (see [`crate::Transport`]).
    pub fn transport(mut self, transport: crate::Transport) -> ClientConfig {
        self.transport = Some(transport);
        self
    }

    /// Accept read-only servers (see [`ClientConfig::read_only`]).
    pub fn read_only(mut self, on: bool) -> ClientConfig {
        self.read_only = on;
        self
    }

    /// Read through the client cache by default (see [`ClientConfig::cache`]).
    pub fn cache(mut self, on: bool) -> ClientConfig {
        self.cache = on;
        self
    }

    /// Sets the grace period (see [`ClientConfig::grace_period`]).
    pub fn grace_period(mut self, grace: Duration) -> ClientConfig {
        self.grace_period = grace;
        self
    }

    /// Sets the request timeout (see [`ClientConfig::request_timeout`]).
    pub fn request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }

    /// Checks the fields a user may have set by hand.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::with_message(ErrorCode::BadArguments, m.to_string()));
        if self.servers.is_empty() {
            return bad("no servers configured");
        }
        for s in &self.servers {
            split_host_port(s)?;
        }
        if self.session_timeout < Duration::from_millis(100)
            || self.session_timeout.as_millis() > u32::MAX as u128
        {
            return bad("session timeout must be between 100 ms and u32::MAX ms");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect timeout must not be zero");
        }
        if self.request_timeout.is_zero() {
            return bad("request timeout must not be zero");
        }
        if self.max_frame < 1024 {
            return bad("max_frame must be at least 1024 bytes");
        }
        if self.grace_period > MAX_GRACE_PERIOD {
            return bad("grace period must be at most 3600 s");
        }
        Ok(())
    }
}

/// Splits a comma-separated server list, refusing entries without a usable `host:port`.
pub fn parse_servers(list: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        split_host_port(entry)?;
        out.push(entry.to_string());
    }
    if out.is_empty() {
        return Err(Error::with_message(
            ErrorCode::BadArguments,
            format!("no servers in {list:?}"),
        ));
    }
    Ok(out)
}

/// Splits `host:port` or `[v6]:port` into the host (brackets removed) and the port.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), Error> {
    let bad = |why: &str| {
        Error::with_message(
            ErrorCode::BadArguments,
            format!("bad server address {addr:?}: {why}"),
        )
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad("expected [host]:port"))?;
        (host, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        if host.contains(':') {
            return Err(bad("IPv6 addresses must be written [addr]:port"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("port is not a number"))?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists() {
        assert_eq!(parse_servers("a:1, b:2,,").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(parse_servers("[::1]:2181").unwrap(), vec!["[::1]:2181"]);
        for bad in [
            "",
            " , ",
            "a",
            "a:",
            "a:x",
            ":1",
            "::1:2181",
            "[::1]",
            "[::1]2181",
            "a:0",
            "a:70000",
        ] {
            let e = parse_servers(bad).expect_err(bad);
            assert_eq!(e.code(), ErrorCode::BadArguments, "{bad}");
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:7000").unwrap(),
            ("127.0.0.1", 7000)
        );
        assert_eq!(split_host_port("[::1]:7000").unwrap(), ("::1", 7000));
        assert_eq!(
            split_host_port("node-1.example:7000").unwrap(),
            ("node-1.example", 7000)
        );
    }

    /// A config with every default, built by hand: `validate` checks what a user may set
    /// after `new`, not the CA.
    fn hand_built() -> ClientConfig {
        ClientConfig {
            servers: vec!["a:1".into()],
            ca_pem: Vec::new(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
            transport: None,
            read_only: false,
            cache: false,
            grace_period: DEFAULT_GRACE_PERIOD,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_cert: None,
        }
    }

    #[test]
    fn a_grace_period_past_its_bound_is_refused() {
        let cfg = hand_built().grace_period(MAX_GRACE_PERIOD);
        assert!(cfg.clone().grace_period(Duration::ZERO).validate().is_ok());
        assert!(cfg.clone().validate().is_ok());
        let e = cfg
            .grace_period(MAX_GRACE_PERIOD + Duration::from_millis(1))
            .validate()
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
        assert!(e.to_string().contains("grace period"), "{e}");
    }

    #[test]
    fn zero_request_timeout_is_refused() {
        let cfg = hand_built();
        assert_eq!(cfg.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(cfg.validate().is_ok());
        let e = cfg.request_timeout(Duration::ZERO).validate().unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
        assert!(e.to_string().contains("request timeout"), "{e}");
    }

    #[test]
    fn missing_ca_file_is_a_clear_error() {
        let e = ClientConfig::new("a:1", "/nonexistent/ca.pem").unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn ca_without_certificates_is_refused() {
        let e = ClientConfig::with_ca_pem("a:1", b"not a pem".to_vec()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadArguments);
    }
}
