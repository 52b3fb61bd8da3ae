//! Crash detection in milliseconds: a TCP "liveness" socket beside each QUIC port.
//!
//! QUIC runs over UDP, and a SIGKILLed process leaves nothing behind on UDP: its peers
//! learn of the death only when their timeouts fire (ZAB's sync limit, QUIC's idle timeout).
//! ZooKeeper, on TCP, learns it at once from the FIN/RST the kernel sends for the dead
//! process. Coord gets the same signal the same way: every server also listens on TCP at
//! the port number of each of its QUIC endpoints (peer and client), and whoever holds a QUIC
//! connection to it (a peer, a client) also holds one idle TCP connection to that port.
//! When it closes, the process behind it is gone (or restarting), and the QUIC connection
//! to it is dropped right away instead of after a timeout.
//!
//! Only a party of a live, authenticated QUIC connection gets a watch: it sends a token
//! that both ends export from that connection's TLS secrets ([`token`]); the server admits
//! it with one byte, one watch per QUIC connection, for as long as that connection lives.
//! Anything else is closed within [`PROOF_TIMEOUT`], and at most [`MAX_PENDING`] unproven
//! connections are open at once. A watcher reads a death only from a watch the server
//! admitted ([`coord_proto::io::liveness_watch`]), so a stranger holding thousands of TCP
//! connections can neither fill the listener nor make a server look dead. A server that is
//! paused or cut off by the network keeps its TCP connection open: those cases are still
//! found by the timeouts. Where the TCP port cannot be bound or reached, nothing is lost but
//! the speed-up.

use coord_proto::io::{LIVENESS_ADMITTED, LIVENESS_LABEL};
pub use coord_proto::io::{LIVENESS_TOKEN_LEN, WatchEnd, liveness_watch as watch};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Unproven connections a listener keeps at once; further ones are closed on accept.
pub const MAX_PENDING: usize = 256;

/// How long a new connection has to present its token.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(1);

/// A liveness token.
pub type Token = [u8; LIVENESS_TOKEN_LEN];

/// The token both ends of `conn` derive from its TLS secrets (`None` if the TLS session
/// cannot export one, which TLS 1.3 always can).
pub fn token(conn: &quinn::Connection) -> Option<Token> {
    let mut t = [0u8; LIVENESS_TOKEN_LEN];
    conn.export_keying_material(&mut t, LIVENESS_LABEL, b"")
        .ok()
        .map(|()| t)
}

struct Entry {
    conn: quinn::Connection,
    held: bool,
}

/// The QUIC connections of one endpoint whose other end may hold a watch on its port.
#[derive(Clone, Default)]
pub struct Tokens {
    inner: Arc<Mutex<HashMap<Token, Entry>>>,
}

impl Tokens {
    /// Lets the other end of `conn` watch this process for as long as `conn` lives.
    pub fn admit(&self, conn: &quinn::Connection) {
        let Some(t) = token(conn) else {
            return;
        };
        self.inner.lock().insert(
            t,
            Entry {
                conn: conn.clone(),
                held: false,
            },
        );
        let (inner, conn) = (self.inner.clone(), conn.clone());
        tokio::spawn(async move {
            conn.closed().await;
            inner.lock().remove(&t);
        });
    }

    /// The connection behind `t`, if it lives and no watch holds it yet (it is then held).
    fn claim(&self, t: &Token) -> Option<quinn::Connection> {
        let mut inner = self.inner.lock();
        let e = inner.get_mut(t).filter(|e| !e.held)?;
        e.held = true;
        Some(e.conn.clone())
    }

    fn release(&self, t: &Token) {
        if let Some(e) = self.inner.lock().get_mut(t) {
            e.held = false;
        }
    }
}

/// Binds the liveness listener at `addr` (the port of a QUIC endpoint) and serves it on the
/// current (local) runtime, admitting watches of the connections in `tokens`; aborting the
/// returned task closes every connection it holds. A failure to bind is logged, not fatal.
pub fn listen(addr: SocketAddr, tokens: Tokens) -> Option<tokio::task::JoinHandle<()>> {
    let bound = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std);
    match bound {
        Ok(listener) => Some(tokio::task::spawn_local(serve(listener, tokens))),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "no TCP liveness listener; a crash of this server will be noticed by timeouts only");
            None
        }
    }
}

async fn serve(listener: TcpListener, tokens: Tokens) {
    // Owned here, so that ending this task closes every connection.
    let mut tasks = JoinSet::new();
    let pending = Rc::new(Cell::new(0usize));
    loop {
        while tasks.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "liveness accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if pending.get() >= MAX_PENDING {
            continue; // dropping the stream closes it; its watcher reads Refused
        }
        let unproven = Pending::new(&pending);
        let tokens = tokens.clone();
        tasks.spawn_local(async move {
            let proof = tokio::time::timeout(PROOF_TIMEOUT, prove(stream, &tokens)).await;
            drop(unproven);
            if let Ok(Some((stream, t, conn))) = proof {
                hold(stream, t, conn, &tokens).await;
            }
        });
    }
}

/// Counts one unproven connection while it lives.
struct Pending(Rc<Cell<usize>>);

impl Pending {
    fn new(count: &Rc<Cell<usize>>) -> Pending {
        count.set(count.get() + 1);
        Pending(count.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Reads the token; admits the watch if it names a live, unwatched QUIC connection.
async fn prove(
    mut stream: TcpStream,
    tokens: &Tokens,
) -> Option<(TcpStream, Token, quinn::Connection)> {
    let mut t = [0u8; LIVENESS_TOKEN_LEN];
    stream.read_exact(&mut t).await.ok()?;
    let conn = tokens.claim(&t)?;
    if stream.write_all(&[LIVENESS_ADMITTED]).await.is_err() {
        tokens.release(&t);
        return None;
    }
    Some((stream, t, conn))
}

/// Holds an admitted watch until the watcher closes it or its QUIC connection ends.
async fn hold(mut stream: TcpStream, t: Token, conn: quinn::Connection, tokens: &Tokens) {
    let mut sink = [0u8; 64];
    tokio::select! {
        _ = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
        _ = conn.closed() => {}
    }
    tokens.release(&t);
}
