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
    // Read straight into `buf`, growing it by at most 64 KiB beyond what has arrived: a peer
    // that announces a large frame and stalls costs only what it sent. Only the bytes about
    // to be read are zeroed first (a stack chunk would be zeroed in full for every frame).
    let mut remaining = len;
    while remaining > 0 {
        let start = buf.len();
        let want = remaining.min(64 * 1024);
        buf.resize(start + want, 0);
        let n = r.read(&mut buf[start..]).await?;
        buf.resize(start + n, 0); // shrinks: drops the part not filled
        if n == 0 {
            return Err(FrameError::Truncated {
                need: len,
                have: len - remaining,
            }
            .into());
        }
        remaining -= n;
    }
    Ok(true)
}

/// How a [`liveness_watch`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The server admitted the watch and then the connection closed: the process behind
    /// the address is gone.
    Died,
    /// No connection could be made within the timeout (no listener, or unreachable).
    Unreachable,
    /// A connection was made but the server did not admit it (unknown token, too many
    /// pending watches, or no answer in time). Says nothing about the server's health.
    Refused,
}

/// Length of a liveness token.
pub const LIVENESS_TOKEN_LEN: usize = 32;

/// TLS exporter label of liveness tokens: both ends of an authenticated QUIC connection
/// derive the same token from it (RFC 5705 / RFC 8446 §7.5), and nobody else can.
pub const LIVENESS_LABEL: &[u8] = b"EXPORTER-coord-liveness-v1";

/// The byte a liveness listener sends when it admits a watch.
pub const LIVENESS_ADMITTED: u8 = 0xC0;

/// Crash detection beside QUIC: connects to the TCP liveness listener a Coord server keeps
/// at the port of each QUIC endpoint, proves with `token` (exported from the QUIC
/// connection to that server) that it is a party of a live QUIC connection, and once the
/// server admitted it, returns when that idle connection closes (the kernel closes it the
/// moment the server process dies). It returns [`WatchEnd::Unreachable`] if it cannot
/// connect within `connect_timeout`, and [`WatchEnd::Refused`] if the server does not
/// admit it within that time: only an admitted watch can report a death, so a stranger
/// holding or refusing TCP connections cannot make anyone think a server died. See
/// `coord_server::liveness`.
pub async fn liveness_watch(
    addr: std::net::SocketAddr,
    token: [u8; LIVENESS_TOKEN_LEN],
    connect_timeout: std::time::Duration,
) -> WatchEnd {
    use tokio::io::AsyncWriteExt;
    let connect = tokio::net::TcpStream::connect(addr);
    let mut stream = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        _ => return WatchEnd::Unreachable,
    };
    let admitted = async {
        stream.write_all(&token).await?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await?;
        Ok::<bool, std::io::Error>(answer[0] == LIVENESS_ADMITTED)
    };
    match tokio::time::timeout(connect_timeout, admitted).await {
        Ok(Ok(true)) => {}
        _ => return WatchEnd::Refused,
    }
    let mut sink = [0u8; 64];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    WatchEnd::Died
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, frame};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Hands out at most `step` bytes per read, as a network stream may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Poll::Ready(Ok(()))
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_a_cut_one_is_an_error() {
        let a = frame::encode(&ClientFrame::Status).unwrap();
        let big = ClientFrame::Request {
            xid: 7,
            request: crate::Request::SetData {
                path: "/x".into(),
                data: vec![3; 200_000],
                version: -1,
            },
        };
        let b = frame::encode(&big).unwrap();
        let stream = [a.clone(), b.clone()].concat();
        for step in [1, 7, 4096, usize::MAX] {
            let mut r = Trickle {
                data: &stream,
                step,
            };
            let mut buf = AlignedVec::<16>::new();
            assert!(block_on(read_frame(&mut r, &mut buf, 1 << 20)).unwrap());
            assert_eq!(buf.as_slice(), &a[HEADER_LEN..]);
            assert!(block_on(read_frame(&mut r, &mut buf, 1 << 20)).unwrap());
            assert_eq!(buf.as_slice(), &b[HEADER_LEN..]);
            assert_eq!(frame::decode_aligned::<ClientFrame>(&buf).unwrap(), big);
            assert!(!block_on(read_frame(&mut r, &mut buf, 1 << 20)).unwrap());
        }
        let cut = &b[..b.len() - 1];
        let mut r = Trickle {
            data: cut,
            step: 1000,
        };
        let mut buf = AlignedVec::<16>::new();
        assert!(block_on(read_frame(&mut r, &mut buf, 1 << 20)).is_err());
        let mut r = Trickle {
            data: &b,
            step: 1000,
        };
        assert!(
            block_on(read_frame(&mut r, &mut buf, 1000)).is_err(),
            "over the limit"
        );
    }
}
