//! Establishing one connection: resolve, QUIC + TLS handshake, open the session stream, send
//! `Connect`, read `Connected` or `Refused`. Also the per-connection reader and writer tasks.

use crate::config::{ClientConfig, split_host_port};
use crate::error::Error;
use crate::tls;
use coord_proto::io::read_frame;
use coord_proto::{
    ClientFrame, ConnectRequest, ConnectResponse, ErrorCode, ServerFrame, ServerStatus, frame,
};
use rkyv::util::AlignedVec;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the reader task hands the session driver: a frame, or why the connection is unusable.
pub(crate) type Incoming = Result<ServerFrame, Error>;

/// An established session stream.
pub(crate) struct Link {
    /// The QUIC connection (closed when the link is dropped by the driver).
    pub(crate) conn: quinn::Connection,
    /// Client-to-server half of the session stream.
    pub(crate) send: quinn::SendStream,
    /// Server-to-client half of the session stream.
    pub(crate) recv: quinn::RecvStream,
    /// The server's handshake answer.
    pub(crate) response: ConnectResponse,
    /// The `host:port` it came from (for logs and errors).
    pub(crate) server: String,
}

/// Makes connections to the servers of one client; owns its UDP endpoints.
pub(crate) struct Connector {
    quic: quinn::ClientConfig,
    max_frame: usize,
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
}

impl Connector {
    /// A connector for `cfg`; QUIC keep-alives keep a healthy connection open, and a server
    /// silent past the idle timeout is given up on.
    pub(crate) fn new(cfg: &ClientConfig) -> Result<Connector, Error> {
        // A server that answers nothing (not even QUIC keep-alives, every 250 ms) for 1 s is
        // taken for dead, so a client on a crashed leader moves on quickly.
        let idle = Duration::from_secs(1).min(cfg.session_timeout.max(Duration::from_millis(500)));
        Ok(Connector {
            quic: tls::quic_client_config(&cfg.ca_pem, idle)?,
            max_frame: cfg.max_frame,
            v4: None,
            v6: None,
        })
    }

    fn endpoint(&mut self, addr: SocketAddr) -> Result<quinn::Endpoint, Error> {
        let slot = if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
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

    /// Resolves `server` and completes a QUIC/TLS handshake with it.
    async fn quic_connect(&mut self, server: &str) -> Result<quinn::Connection, Error> {
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
        endpoint
            .connect_with(self.quic.clone(), addr, host)
            .map_err(|e| loss("cannot connect", &e))?
            .await
            .map_err(|e| loss("QUIC/TLS handshake failed", &e))
    }

    /// Connects to `server` and performs the session handshake. A `Refused` answer becomes an
    /// error with the server's code (`SessionExpired`, `NotServing`, `VersionMismatch`, ...);
    /// everything else that goes wrong is `ConnectionLoss` with the reason.
    pub(crate) async fn establish(
        &mut self,
        server: &str,
        request: ConnectRequest,
    ) -> Result<Link, Error> {
        let conn = self.quic_connect(server).await?;
        let result = self.handshake(&conn, server, request).await;
        if result.is_err() {
            conn.close(0u32.into(), b"handshake failed");
        }
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
    pub(crate) async fn status(&mut self, server: &str) -> Result<ServerStatus, Error> {
        let loss = |what: &str, e: &dyn std::fmt::Display| {
            Error::with_message(ErrorCode::ConnectionLoss, format!("{server}: {what}: {e}"))
        };
        let conn = self.quic_connect(server).await?;
        let (mut send, mut recv) = conn
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
        conn.close(0u32.into(), b"");
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

    /// Lets the close frames of closed connections leave, briefly.
    pub(crate) async fn drain(&self) {
        for ep in [&self.v4, &self.v6].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_millis(100), ep.wait_idle()).await;
        }
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
