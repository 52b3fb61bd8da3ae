//! A session stream's outbox: frames the Store queued and the writer task has not written.
//!
//! The count of queued frames is shared, so the Store can see a client that stopped reading
//! (its QUIC flow-control window is full and events pile up here) and cut it off with
//! [`Outbox::abort`] instead of letting one client grow the server's memory without bound.

use coord_proto::ServerFrame;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

/// The sending side, held by the Store (and briefly by the connection during the handshake).
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<ServerFrame>,
    queued: Arc<AtomicUsize>,
    abort: Arc<Notify>,
}

/// What [`OutboxReceiver::recv_many`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// This many frames.
    Frames(usize),
    /// The Store closed the outbox: finish the stream.
    Closed,
    /// The Store aborted the stream: reset it.
    Aborted,
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<ServerFrame>,
    queued: Arc<AtomicUsize>,
    abort: Arc<Notify>,
}

/// A new outbox pair.
pub fn outbox() -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let abort = Arc::new(Notify::new());
    (
        Outbox {
            tx,
            queued: queued.clone(),
            abort: abort.clone(),
        },
        OutboxReceiver { rx, queued, abort },
    )
}

impl Outbox {
    /// Queues a frame; false if the writer is gone.
    pub fn send(&self, frame: ServerFrame) -> bool {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(frame).is_ok()
    }
    /// Frames queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
    /// Tells the writer to reset the stream now, dropping whatever is queued.
    pub fn abort(&self) {
        self.abort.notify_one();
    }
}

impl OutboxReceiver {
    /// Waits for frames and moves up to `limit` of them into `buf`.
    pub async fn recv_many(&mut self, buf: &mut Vec<ServerFrame>, limit: usize) -> Recv {
        tokio::select! {
            n = self.rx.recv_many(buf, limit) => if n == 0 { Recv::Closed } else { Recv::Frames(n) },
            _ = self.abort.notified() => Recv::Aborted,
        }
    }
    /// Resolves when the Store aborts the stream.
    pub async fn aborted(&self) {
        self.abort.notified().await
    }
    /// Records that `n` frames were written.
    pub fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }
}
