//! Crash detection in milliseconds: a TCP "liveness" socket beside each QUIC port.
//!
//! QUIC runs over UDP, and a SIGKILLed process leaves nothing behind on UDP: its peers
//! learn of the death only when their timeouts fire (ZAB's sync limit, QUIC's idle timeout).
//! ZooKeeper, on TCP, learns it at once from the FIN/RST the kernel sends for the dead
//! process. Coord gets the same signal the same way: every server also listens on TCP at
//! the port number of each of its QUIC endpoints (peer and client), and whoever talks to it
//! (a peer, a client) holds one idle TCP connection to that port. No byte ever crosses it;
//! when it closes, the process behind it is gone (or restarting), and the QUIC connection
//! to it is dropped right away instead of after a timeout.
//!
//! The signal is only ever taken from a connection this side dialled to an address it was
//! configured with, so a third party cannot fake a death without being on the path. A
//! server that is paused or cut off by the network keeps its TCP connection open: those
//! cases are still found by the timeouts, exactly as before. Where the TCP port cannot be
//! bound or reached, nothing is lost but the speed-up.

pub use coord_proto::io::{WatchEnd, liveness_watch as watch};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Connections a liveness listener holds at once; further ones are closed on accept.
pub const MAX_WATCHERS: usize = 4096;

/// Binds the liveness listener at `addr` (the port of a QUIC endpoint) and serves it on the
/// current (local) runtime; aborting the returned task closes every connection it holds. A
/// failure to bind is logged, not fatal.
pub fn listen(addr: SocketAddr) -> Option<tokio::task::JoinHandle<()>> {
    let bound = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std);
    match bound {
        Ok(listener) => Some(tokio::task::spawn_local(serve(listener))),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "no TCP liveness listener; a crash of this server will be noticed by timeouts only");
            None
        }
    }
}

async fn serve(listener: TcpListener) {
    // Owned here, so that ending this task closes every held connection.
    let mut held = JoinSet::new();
    loop {
        while held.try_join_next().is_some() {}
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "liveness accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if held.len() >= MAX_WATCHERS {
            continue; // dropping the stream closes it
        }
        held.spawn_local(async move {
            // Hold the connection until the other side closes it; discard anything sent.
            let mut sink = [0u8; 64];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_ends_when_the_listening_process_side_goes_away() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = probe.local_addr().unwrap();
            drop(probe);
            let server = listen(addr).expect("bind");
            let watcher = tokio::task::spawn_local(watch(addr, Duration::from_secs(1)));
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!watcher.is_finished(), "a live server keeps the watch open");
            // Stopping the listener task drops every held connection, as a process exit
            // closes its sockets.
            server.abort();
            let end = tokio::time::timeout(Duration::from_secs(5), watcher)
                .await
                .expect("the watch ends")
                .unwrap();
            assert_eq!(end, WatchEnd::Died);
            // Nothing listens any more.
            assert_eq!(
                watch(addr, Duration::from_millis(500)).await,
                WatchEnd::Unreachable
            );
        });
    }
}
