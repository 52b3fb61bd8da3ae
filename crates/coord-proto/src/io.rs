//! Async frame IO over tokio streams (quinn's `RecvStream`/`SendStream` implement them).
//! Enabled with the `tokio-io` feature; shared by server and client so both read frames the
//! same way: header first, limit checked, then the body into an aligned buffer.

use crate::frame::{FrameError, HEADER_LEN, body_len};
use rkyv::util::AlignedVec;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads one frame body into `buf` (cleared first). `Ok(false)` on a clean end of stream
/// before a header; a stream that ends inside a frame is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut AlignedVec<16>,
    limit: usize,
) -> Result<bool, FrameIoError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(FrameError::Truncated {
                need: HEADER_LEN,
                have: got,
            }
            .into());
        }
        got += n;
    }
    let len = body_len(header, limit)?;
    buf.clear();
    // Grow with what arrives: a peer that announces a large frame and stalls costs only what
    // it sent (plus this first chunk), not the announced length.
    buf.reserve(len.min(64 * 1024));
    // Read in chunks so a peer that announces a large frame and stalls costs us only what it sent.
    let mut chunk = [0u8; 16 * 1024];
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(chunk.len());
        let n = r.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                need: len,
                have: len - remaining,
            }
            .into());
        }
        buf.extend_from_slice(&chunk[..n]);
        remaining -= n;
    }
    Ok(true)
}

/// How a [`liveness_watch`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The connection was up and then closed: the process behind the address is gone.
    Died,
    /// No connection could be made within the timeout (no listener, or unreachable).
    Unreachable,
}

/// Crash detection beside QUIC: connects to the TCP liveness listener a Coord server keeps
/// at the port of each QUIC endpoint, and returns when that idle connection closes (the
/// kernel closes it the moment the server process dies), or at once with
/// [`WatchEnd::Unreachable`] if it cannot connect within `connect_timeout`. Nothing is ever
/// sent either way. See `coord_server::liveness`.
pub async fn liveness_watch(
    addr: std::net::SocketAddr,
    connect_timeout: std::time::Duration,
) -> WatchEnd {
    let connect = tokio::net::TcpStream::connect(addr);
    let mut stream = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        _ => return WatchEnd::Unreachable,
    };
    let mut sink = [0u8; 64];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    WatchEnd::Died
}
