//! Establishing one connection: resolve, QUIC + TLS handshake, open the session stream, send
//! `Connect`, read `Connected` or `Refused`. Also the per-connection reader and writer tasks.

use crate::config::ClientConfig;
use crate::error::Error;
use crate::transport::{ConnRef, Transport};
use coord_proto::io::read_frame;
use coord_proto::{
    ClientFrame, ConnectRequest, ConnectResponse, ErrorCode, ServerFrame, ServerStatus, frame,
};
use futures::stream::{FuturesUnordered, StreamExt};
use rkyv::util::AlignedVec;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the reader task hands the session driver: a frame, or why the connection is unusable.
pub(crate) type Incoming = Result<ServerFrame, Error>;

/// An established session stream.
pub(crate) struct Link {
    /// The QUIC connection (let go when the link is dropped by the driver; closed when no
    /// other session holds it).
    pub(crate) conn: ConnRef,
    /// Client-to-server half of the session stream.
    pub(crate) send: quinn::SendStream,
    /// Server-to-client half of the session stream.
    pub(crate) recv: quinn::RecvStream,
    /// The server's handshake answer.
    pub(crate) response: ConnectResponse,
    /// The `host:port` it came from (for logs and errors).
    pub(crate) server: String,
}

/// Time between starting connection attempts to successive servers (see
/// [`Connector::race`]): a live server on a LAN answers a QUIC handshake in a few round
/// trips, so one silent for this long is probably down.
pub(crate) const STAGGER: Duration = Duration::from_millis(75);

/// Makes session streams to the servers of one client, over its [`Transport`].
#[derive(Clone)]
pub(crate) struct Connector {
    transport: Transport,
    max_frame: usize,
}

impl Connector {
    /// A connector for `cfg`: over `cfg.transport` when one is given, else over a transport of
    /// its own.
    pub(crate) fn new(cfg: &ClientConfig) -> Result<Connector, Error> {
        let transport = match &cfg.transport {
            Some(t) => t.clone(),
            None => Transport::private(cfg)?,
        };
        Ok(Connector {
            transport,
            max_frame: cfg.max_frame,
        })
    }

    /// Whether the connections are shared with other sessions.
    pub(crate) fn is_shared(&self) -> bool {
        self.transport.is_shared()
    }

    /// Connects to `server` and performs the session handshake. A `Refused` answer becomes an
    /// error with the server's code (`SessionExpired`, `NotServing`, `VersionMismatch`, ...);
    /// everything else that goes wrong is `ConnectionLoss` with the reason.
    pub(crate) async fn establish(
        &self,
        server: &str,
        request: ConnectRequest,
    ) -> Result<Link, Error> {
        let conn = self.transport.connect(server).await?;
        let result = self.handshake(&conn.conn, server, request).await;
        let (send, recv, response) = result?;
        Ok(Link {
            conn,
            send,
            recv,
            response,
            server: server.to_string(),
        })
    }

    async fn handshake(
        &self,
        conn: &quinn::Connection,
        server: &str,
        request: ConnectRequest,
    ) -> Result<(quinn::SendStream, quinn::RecvStream, ConnectResponse), Error> {
        let loss = |what: &str, e: &dyn std::fmt::Display| {
            Error::with_message(ErrorCode::ConnectionLoss, format!("{server}: {what}: {e}"))
        };
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| loss("cannot open the session stream", &e))?;
        let hello = frame::encode(&ClientFrame::Connect(request))
            .map_err(|e| Error::with_message(ErrorCode::MarshallingError, e.to_string()))?;
        send.write_all(&hello)
            .await
            .map_err(|e| loss("cannot send the handshake", &e))?;
        let mut buf = AlignedVec::<16>::new();
        match read_frame(&mut recv, &mut buf, self.max_frame).await {
            Ok(true) => {}
            Ok(false) => return Err(loss("handshake", &"the server closed the stream")),
            Err(e) => return Err(loss("handshake", &e)),
        }
        let answer: ServerFrame = frame::decode_aligned(&buf).map_err(|e| {
            Error::with_message(
                ErrorCode::MarshallingError,
                format!("{server}: handshake: {e}"),
            )
        })?;
        match answer {
            ServerFrame::Connected(response) => Ok((send, recv, response)),
            ServerFrame::Refused { code, message } => Err(Error::with_message(
                code,
                format!("{server} refused the session: {message}"),
            )),
            other => Err(Error::with_message(
                ErrorCode::MarshallingError,
                format!("{server}: handshake: unexpected {}", frame_name(&other)),
            )),
        }
    }

    /// Asks `server` for its status (no session: works while the ensemble has no quorum).
    pub(crate) async fn status(&self, server: &str) -> Result<ServerStatus, Error> {
        let loss = |what: &str, e: &dyn std::fmt::Display| {
            Error::with_message(ErrorCode::ConnectionLoss, format!("{server}: {what}: {e}"))
        };
        let conn = self.transport.connect(server).await?;
        let (mut send, mut recv) = conn
            .conn
            .open_bi()
            .await
            .map_err(|e| loss("cannot open a stream", &e))?;
        let ask = frame::encode(&ClientFrame::Status)
            .map_err(|e| Error::with_message(ErrorCode::MarshallingError, e.to_string()))?;
        send.write_all(&ask)
            .await
            .map_err(|e| loss("cannot send", &e))?;
        let mut buf = AlignedVec::<16>::new();
        let got = read_frame(&mut recv, &mut buf, self.max_frame).await;
        drop(conn);
        match got {
            Ok(true) => {}
            Ok(false) => return Err(loss("status", &"the server closed the stream")),
            Err(e) => return Err(loss("status", &e)),
        }
        match frame::decode_aligned::<ServerFrame>(&buf) {
            Ok(ServerFrame::Status(s)) => Ok(s),
            Ok(other) => Err(Error::with_message(
                ErrorCode::MarshallingError,
                format!("{server}: status: unexpected {}", frame_name(&other)),
            )),
            Err(e) => Err(Error::with_message(
                ErrorCode::MarshallingError,
                format!("{server}: status: {e}"),
            )),
        }
    }

    /// Connects to the first of `order` that accepts `request`. Attempts are staggered: the
    /// next server is tried [`STAGGER`] after the last attempt began (or at once when every
    /// running attempt has failed) while the earlier ones keep running, so a server that
    /// died silently costs one stagger instead of a whole attempt `limit`. The first success
    /// wins and the rest are dropped; an error for which `fatal` holds ends the race.
    pub(crate) async fn race(
        &self,
        order: &[String],
        request: &ConnectRequest,
        limit: Duration,
        fatal: impl Fn(ErrorCode) -> bool,
    ) -> Result<Link, Error> {
        let mut running = FuturesUnordered::new();
        let mut next = order.iter();
        let mut last_err = None;
        let mut stagger_at = tokio::time::Instant::now();
        loop {
            if running.is_empty() || tokio::time::Instant::now() >= stagger_at {
                if let Some(server) = next.next() {
                    let attempt =
                        tokio::time::timeout(limit, self.establish(server, request.clone()));
                    running.push(async move { (server, attempt.await) });
                    stagger_at = tokio::time::Instant::now() + STAGGER;
                } else if running.is_empty() {
                    return Err(last_err.unwrap_or_else(|| {
                        Error::with_message(ErrorCode::ConnectionLoss, "no server to try")
                    }));
                }
            }
            let more = next.len() > 0;
            tokio::select! {
                Some((server, result)) = running.next() => match result {
                    Ok(Ok(link)) => return Ok(link),
                    Ok(Err(e)) if fatal(e.code()) => return Err(e),
                    Ok(Err(e)) => {
                        tracing::debug!("connect: {e}");
                        last_err = Some(e);
                    }
                    Err(_) => {
                        tracing::debug!("connect: {server}: no answer within {} ms", limit.as_millis());
                        last_err = Some(Error::with_message(
                            ErrorCode::ConnectionLoss,
                            format!("{server}: no answer within {} ms", limit.as_millis()),
                        ));
                    }
                },
                _ = tokio::time::sleep_until(stagger_at), if more => {}
            }
        }
    }

    /// Lets the close frames of closed connections leave, briefly.
    pub(crate) async fn drain(&self) {
        self.transport.drain().await;
    }
}

/// A short name of a server frame, for errors.
pub(crate) fn frame_name(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Connected(_) => "Connected frame",
        ServerFrame::Refused { .. } => "Refused frame",
        ServerFrame::Reply { .. } => "Reply frame",
        ServerFrame::Event(_) => "Event frame",
        ServerFrame::Closing { .. } => "Closing frame",
        ServerFrame::Invalidate { .. } => "Invalidate frame",
        ServerFrame::Status(_) => "Status frame",
    }
}

/// Reads frames until the stream ends or fails; the last item sent is always an error.
pub(crate) async fn reader(mut recv: quinn::RecvStream, tx: mpsc::Sender<Incoming>, limit: usize) {
    let mut buf = AlignedVec::<16>::new();
    loop {
        let item = match read_frame(&mut recv, &mut buf, limit).await {
            Ok(true) => frame::decode_aligned::<ServerFrame>(&buf).map_err(|e| {
                Error::with_message(ErrorCode::MarshallingError, format!("malformed frame: {e}"))
            }),
            Ok(false) => Err(Error::with_message(
                ErrorCode::ConnectionLoss,
                "the server closed the session stream",
            )),
            Err(e) => Err(Error::with_message(
                ErrorCode::ConnectionLoss,
                format!("read failed: {e}"),
            )),
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}

/// Writes queued frames, coalescing everything queued at once into one `write_all` so that
/// pipelined requests share datagrams. A write failure is reported through `errors`.
pub(crate) async fn writer(
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    errors: mpsc::Sender<Incoming>,
) {
    let mut bufs = Vec::new();
    let mut batch = Vec::new();
    while rx.recv_many(&mut bufs, 4096).await > 0 {
        let result = if bufs.len() == 1 {
            send.write_all(&bufs[0]).await
        } else {
            batch.clear();
            for b in &bufs {
                batch.extend_from_slice(b);
            }
            send.write_all(&batch).await
        };
        bufs.clear();
        if let Err(e) = result {
            let _ = errors
                .send(Err(Error::with_message(
                    ErrorCode::ConnectionLoss,
                    format!("write failed: {e}"),
                )))
                .await;
            return;
        }
    }
    let _ = send.finish();
}
