//! The QUIC side of a client: UDP endpoints and connections to servers, private to one
//! session or shared by many.
//!
//! Every session runs on its own QUIC stream, so many sessions can share one connection to a
//! server: their requests then travel together in the same datagrams, with one set of ACKs
//! and keep-alives, which is what lets a process with hundreds of sessions stay cheap (on
//! loopback a datagram costs far more than the frames in it).
//!
//! ```text
//!   Transport ── endpoint (one UDP socket per address family)
//!       └── server "a:7181" ── Connection ─┬─ stream: session 1
//!                                          ├─ stream: session 2
//!                                          └─ stream: status query
//! ```
//!
//! A connection lives while some session holds it ([`ConnRef`]) and is closed when the last
//! one lets go. A connection that failed is never handed out again: the next session to need
//! that server dials a new one, and sessions that want the same server at the same moment
//! wait for that one handshake instead of dialling their own.

use crate::config::{ClientConfig, split_host_port};
use crate::error::Error;
use crate::tls;
use coord_proto::ErrorCode;
use coord_proto::io::{LIVENESS_LABEL, LIVENESS_TOKEN_LEN, WatchEnd, liveness_watch};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Connections to the servers of an ensemble, shared by the sessions given this transport.
///
/// By default every [`crate::Client`] makes its own. Give many sessions of one process the
/// same transport (with [`ClientConfig::transport`]) and the sessions bound for the same
/// server share one QUIC connection:
///
/// ```no_run
/// # async fn demo() -> Result<(), coord_client::Error> {
/// use coord_client::{Client, ClientConfig, Transport};
/// let cfg = ClientConfig::from_env()?;
/// let transport = Transport::new(&cfg)?;
/// let cfg = cfg.transport(transport);
/// let a = Client::connect(cfg.clone()).await?;
/// let b = Client::connect(cfg).await?; // its own session, on a's connection if same server
/// # let _ = (a, b); Ok(()) }
/// ```
///
/// The TLS trust (the CA) and the idle timeout are those of the configuration the transport
/// was made from. A transport belongs to the tokio runtime it is first used on.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    quic: quinn::ClientConfig,
    /// Whether connections are handed to more than one session.
    shared: bool,
    /// One endpoint per address family, made on first use.
    endpoints: Mutex<[Option<quinn::Endpoint>; 2]>,
    /// The connection to each server (as configured, `host:port`), when shared.
    conns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Weak<ConnHold>>>>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("shared", &self.inner.shared)
            .field("servers", &self.inner.conns.lock().len())
            .finish()
    }
}

/// A QUIC connection; closed when the last session holding it lets go.
pub(crate) struct ConnHold {
    pub(crate) conn: quinn::Connection,
    /// Closes `conn` as soon as the server's liveness socket closes (see [`Transport::dial`]).
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for ConnHold {
    fn drop(&mut self) {
        self.watcher.abort();
        self.conn.close(0u32.into(), b"");
    }
}

/// How long a server's liveness socket may take to accept (it is only a speed-up).
const LIVENESS_CONNECT: Duration = Duration::from_secs(1);

/// A session's hold on a connection.
pub(crate) type ConnRef = Arc<ConnHold>;

/// The QUIC idle timeout of a client: a server that answers nothing (not even QUIC
/// keep-alives, every 250 ms) for 1 s is taken for dead, so a client on a crashed leader moves
/// on quickly; shorter sessions get a shorter one.
fn idle_timeout(cfg: &ClientConfig) -> Duration {
    Duration::from_secs(1).min(cfg.session_timeout.max(Duration::from_millis(500)))
}

impl Transport {
    /// A transport whose connections are shared by every session given it.
    pub fn new(cfg: &ClientConfig) -> Result<Transport, Error> {
        Transport::make(cfg, true)
    }

    /// A transport for one session: a new connection for every connect.
    pub(crate) fn private(cfg: &ClientConfig) -> Result<Transport, Error> {
        Transport::make(cfg, false)
    }

    fn make(cfg: &ClientConfig, shared: bool) -> Result<Transport, Error> {
        Ok(Transport {
            inner: Arc::new(Inner {
                quic: tls::quic_client_config(
                    &cfg.ca_pem,
                    cfg.client_cert.as_ref(),
                    idle_timeout(cfg),
                )?,
                shared,
                endpoints: Mutex::new([None, None]),
                conns: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether connections are shared.
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.shared
    }

    fn endpoint(&self, addr: SocketAddr) -> Result<quinn::Endpoint, Error> {
        let mut eps = self.inner.endpoints.lock();
        let slot = &mut eps[usize::from(addr.is_ipv6())];
        if let Some(ep) = slot {
            return Ok(ep.clone());
        }
        let ep = tls::bind_endpoint(addr).map_err(|e| {
            Error::with_message(
                ErrorCode::ConnectionLoss,
                format!("cannot bind a UDP socket: {e}"),
            )
        })?;
        *slot = Some(ep.clone());
        Ok(ep)
    }

    /// A live connection to `server`: the shared one if it is still up, else a new one.
    pub(crate) async fn connect(&self, server: &str) -> Result<ConnRef, Error> {
        if !self.inner.shared {
            return self.dial(server).await;
        }
        let slot = self
            .inner
            .conns
            .lock()
            .entry(server.to_string())
            .or_default()
            .clone();
        // Held across the handshake: sessions that want this server meanwhile wait for it.
        let mut current = slot.lock().await;
        if let Some(hold) = current.upgrade()
            && hold.conn.close_reason().is_none()
        {
            return Ok(hold);
        }
        let hold = self.dial(server).await?;
        *current = Arc::downgrade(&hold);
        Ok(hold)
    }

    /// Resolves `server` and completes a QUIC/TLS handshake with it.
    async fn dial(&self, server: &str) -> Result<ConnRef, Error> {
        let loss = |what: &str, e: &dyn std::fmt::Display| {
            Error::with_message(ErrorCode::ConnectionLoss, format!("{server}: {what}: {e}"))
        };
        let (host, port) = split_host_port(server)?;
        tls::server_name(host)?;
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| loss("cannot resolve", &e))?
            .next()
            .ok_or_else(|| loss("cannot resolve", &"no address"))?;
        let endpoint = self.endpoint(addr)?;
        let conn = endpoint
            .connect_with(self.inner.quic.clone(), addr, host)
            .map_err(|e| loss("cannot connect", &e))?
            .await
            .map_err(|e| loss("QUIC/TLS handshake failed", &e))?;
        // A Coord server listens on TCP at the same port; that idle connection closes the
        // moment the server process dies, which over UDP would otherwise take the idle
        // timeout to notice. Drop the QUIC connection then, so every session on it moves on.
        // The watch proves itself with a token both ends export from this connection's TLS
        // secrets; only a watch the server admitted can report a death (a refused one, say
        // while a stranger crowds the listener, means nothing and costs only the speed-up).
        let watched = conn.clone();
        let mut token = [0u8; LIVENESS_TOKEN_LEN];
        let exported = conn
            .export_keying_material(&mut token, LIVENESS_LABEL, b"")
            .is_ok();
        let watcher = tokio::spawn(async move {
            if !exported {
                return;
            }
            // A watch sent before the server has taken this connection in is refused: try
            // again for as long as the connection lives (no listener at all: give up).
            loop {
                match liveness_watch(addr, token, LIVENESS_CONNECT).await {
                    WatchEnd::Died => {
                        tracing::debug!(%addr, "server process died (liveness socket closed)");
                        watched.close(0u32.into(), b"server died");
                        return;
                    }
                    WatchEnd::Unreachable => return,
                    WatchEnd::Refused => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = watched.closed() => return,
                }
            }
        });
        Ok(Arc::new(ConnHold { conn, watcher }))
    }

    /// Lets the close frames of closed connections leave, briefly (private transports only:
    /// a shared one has other sessions' connections open).
    pub(crate) async fn drain(&self) {
        if self.inner.shared {
            return;
        }
        let eps: Vec<quinn::Endpoint> = self
            .inner
            .endpoints
            .lock()
            .iter()
            .flatten()
            .cloned()
            .collect();
        for ep in eps {
            let _ = tokio::time::timeout(Duration::from_millis(100), ep.wait_idle()).await;
        }
    }
}
