//! Server-to-server transport: one QUIC connection per pair of servers, mutual TLS under the
//! cluster CA, and one FIFO stream carrying length-prefixed frames each way.
//!
//! ```text
//!   lower id ──dial──> higher id        (the dialer redials with backoff after a loss)
//!   dialer: open_bi, send Hello{magic, my id}; acceptor: check the cert names that id,
//!   answer Hello{magic, its id}; then frames both ways on that one stream.
//!
//!   SendTo(peer) -> Link outbox (bounded, per peer) -> writer task: coalesce, write_all
//!   reader task -> PeerEvent::Frame{from} -> the ZAB driver
//! ```
//!
//! Each peer has its own bounded outbox and writer task, so a slow or dead peer never stalls
//! the others. A full outbox closes that link rather than dropping one frame silently: the
//! protocol above sees `Disconnected` and resynchronises, so a link never has holes.

use crate::tls;
use actix::prelude::*;
use coord_proto::io::read_frame;
use rkyv::util::AlignedVec;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

const HELLO_MAGIC: [u8; 4] = *b"CPR1";

/// What the transport tells the protocol driver.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum PeerEvent {
    /// A link to this peer is up (a fresh FIFO stream).
    Connected(u64),
    /// The link to this peer broke; frames in flight on it are lost.
    Disconnected(u64),
    /// A frame body (length prefix removed) from a peer.
    Frame {
        /// The sender.
        from: u64,
        /// The body, aligned for validated rkyv access.
        body: AlignedVec<16>,
    },
}

/// Send an encoded frame (with its length prefix) to a peer. Dropped if there is no link.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendTo {
    /// The peer.
    pub to: u64,
    /// The frame bytes.
    pub frame: Vec<u8>,
}

/// Close the link to a peer (the protocol gave up on it); the dialer redials.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseLink(pub u64);

#[derive(Message)]
#[rtype(result = "()")]
struct LinkUp {
    peer: u64,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

#[derive(Message)]
#[rtype(result = "()")]
struct LinkDown {
    peer: u64,
    generation: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Dial(u64);

struct Link {
    generation: u64,
    conn: quinn::Connection,
    outbox: mpsc::Sender<Vec<u8>>,
}

/// Settings of the peer transport.
#[derive(Clone, Debug)]
pub struct PeerNetConfig {
    /// This server's id.
    pub id: u64,
    /// Peer address of every other member.
    pub peers: HashMap<u64, SocketAddr>,
    /// Frames queued per peer before the link is closed.
    pub outbox_frames: usize,
    /// Largest frame accepted from a peer.
    pub max_frame: usize,
}

/// The peer transport actor.
pub struct PeerNet {
    config: PeerNetConfig,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    sink: Recipient<PeerEvent>,
    links: HashMap<u64, Link>,
    generation: u64,
    /// Peer links whose other end may watch this process (see `liveness`).
    watchable: crate::liveness::Tokens,
}

impl PeerNet {
    /// A transport over `endpoint` (bound to this server's peer address, with the peer
    /// server config) that dials with `client` and reports to `sink`.
    pub fn new(
        config: PeerNetConfig,
        endpoint: quinn::Endpoint,
        client: quinn::ClientConfig,
        sink: Recipient<PeerEvent>,
        watchable: crate::liveness::Tokens,
    ) -> Self {
        PeerNet {
            config,
            endpoint,
            client,
            sink,
            links: HashMap::new(),
            generation: 0,
            watchable,
        }
    }

    /// Watches `peer`'s liveness socket for as long as the link over `conn` lives: when the
    /// watch the peer admitted closes, its process is gone, and the link is dropped now
    /// rather than at a timeout. A watch the peer does not admit (it has not seen this link
    /// yet, or a stranger crowds its listener) is tried again, and is never a death.
    fn watch_peer(
        &self,
        ctx: &mut Context<Self>,
        peer: u64,
        generation: u64,
        conn: &quinn::Connection,
    ) {
        let (Some(token), Some(&addr)) =
            (crate::liveness::token(conn), self.config.peers.get(&peer))
        else {
            return;
        };
        let (me, conn) = (ctx.address(), conn.clone());
        actix_rt::spawn(async move {
            loop {
                let end = tokio::select! {
                    end = crate::liveness::watch(addr, token, Duration::from_secs(1)) => end,
                    _ = conn.closed() => return,
                };
                if end == crate::liveness::WatchEnd::Died {
                    me.do_send(PeerDied { peer, generation });
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = conn.closed() => return,
                }
            }
        });
    }

    fn dial_later(&self, ctx: &mut Context<Self>, peer: u64, after: Duration) {
        ctx.notify_later(Dial(peer), after);
    }
}

async fn write_hello(send: &mut quinn::SendStream, id: u64) -> Result<(), quinn::WriteError> {
    let mut hello = HELLO_MAGIC.to_vec();
    hello.extend_from_slice(&id.to_le_bytes());
    send.write_all(&hello).await
}

async fn read_hello(recv: &mut quinn::RecvStream) -> Option<u64> {
    let mut hello = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), recv.read_exact(&mut hello))
        .await
        .ok()?
        .ok()?;
    if hello[..4] != HELLO_MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(hello[4..].try_into().ok()?))
}

impl Actor for PeerNet {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Accept links from lower ids.
        let endpoint = self.endpoint.clone();
        let me = ctx.address();
        let id = self.config.id;
        let known: Vec<u64> = self.config.peers.keys().copied().collect();
        actix_rt::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let me = me.clone();
                let known = known.clone();
                actix_rt::spawn(async move {
                    // A peer completes its handshake in milliseconds; anyone else is dropped.
                    let Ok(Ok(conn)) =
                        tokio::time::timeout(Duration::from_secs(5), incoming.into_future()).await
                    else {
                        return;
                    };
                    let Ok(Ok((mut send, mut recv))) =
                        tokio::time::timeout(Duration::from_secs(5), conn.accept_bi()).await
                    else {
                        return;
                    };
                    let Some(peer) = read_hello(&mut recv).await else {
                        conn.close(1u32.into(), b"bad hello");
                        return;
                    };
                    if !known.contains(&peer)
                        || peer >= id
                        || !tls::cert_names_peer(conn.peer_identity(), peer)
                    {
                        tracing::warn!(peer, remote = %conn.remote_address(), "refusing a peer link: unknown id or certificate not for it");
                        conn.close(2u32.into(), b"not a member");
                        return;
                    }
                    if write_hello(&mut send, id).await.is_err() {
                        return;
                    }
                    me.do_send(LinkUp {
                        peer,
                        conn,
                        send,
                        recv,
                    });
                });
            }
        });
        // Dial higher ids.
        let mut higher: Vec<u64> = self
            .config
            .peers
            .keys()
            .copied()
            .filter(|p| *p > self.config.id)
            .collect();
        higher.sort_unstable();
        for peer in higher {
            ctx.notify(Dial(peer));
        }
    }
}

impl Handler<Dial> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: Dial, ctx: &mut Self::Context) {
        let peer = msg.0;
        if self.links.contains_key(&peer) {
            return;
        }
        let Some(addr) = self.config.peers.get(&peer).copied() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let client = self.client.clone();
        let id = self.config.id;
        let fut = async move {
            let connecting = endpoint
                .connect_with(client, addr, &tls::peer_name(peer))
                .map_err(|e| e.to_string())?;
            // Short: a peer that is down answers nothing, and a fresh attempt sends a fresh
            // Initial the moment it is back.
            let conn = tokio::time::timeout(Duration::from_millis(800), connecting)
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| e.to_string())?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_hello(&mut send, id)
                .await
                .map_err(|e| e.to_string())?;
            match read_hello(&mut recv).await {
                Some(p) if p == peer => Ok((conn, send, recv)),
                _ => Err("peer answered with the wrong id".to_string()),
            }
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |result, this, ctx| match result {
                    Ok((conn, send, recv)) => ctx.notify(LinkUp {
                        peer,
                        conn,
                        send,
                        recv,
                    }),
                    Err(e) => {
                        tracing::debug!(peer, error = %e, "dial failed");
                        this.dial_later(ctx, peer, Duration::from_millis(100));
                    }
                }),
        );
    }
}

impl Handler<LinkUp> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: LinkUp, ctx: &mut Self::Context) {
        let LinkUp {
            peer,
            conn,
            mut send,
            mut recv,
        } = msg;
        if let Some(old) = self.links.remove(&peer) {
            old.conn.close(0u32.into(), b"replaced");
            self.sink.do_send(PeerEvent::Disconnected(peer));
        }
        self.generation += 1;
        let generation = self.generation;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(self.config.outbox_frames);
        let me = ctx.address();
        // Writer: coalesce whatever is queued into one write.
        actix_rt::spawn({
            let me = me.clone();
            async move {
                let mut batch = Vec::with_capacity(64);
                let mut buf = Vec::with_capacity(64 * 1024);
                while rx.recv_many(&mut batch, 1024).await > 0 {
                    buf.clear();
                    for f in batch.drain(..) {
                        buf.extend_from_slice(&f);
                    }
                    if send.write_all(&buf).await.is_err() {
                        break;
                    }
                }
                me.do_send(LinkDown { peer, generation });
            }
        });
        // Reader: frames to the protocol driver, in order.
        let sink = self.sink.clone();
        let max = self.config.max_frame;
        actix_rt::spawn(async move {
            let mut buf = AlignedVec::<16>::new();
            loop {
                match read_frame(&mut recv, &mut buf, max).await {
                    Ok(true) => {
                        let body = std::mem::replace(&mut buf, AlignedVec::new());
                        sink.do_send(PeerEvent::Frame { from: peer, body });
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(peer, error = %e, "peer link failed");
                        break;
                    }
                }
            }
            me.do_send(LinkDown { peer, generation });
        });
        tracing::info!(peer, remote = %conn.remote_address(), "peer link up");
        self.watchable.admit(&conn);
        self.watch_peer(ctx, peer, generation, &conn);
        self.links.insert(
            peer,
            Link {
                generation,
                conn,
                outbox: tx,
            },
        );
        self.sink.do_send(PeerEvent::Connected(peer));
    }
}

impl Handler<LinkDown> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: LinkDown, ctx: &mut Self::Context) {
        if self
            .links
            .get(&msg.peer)
            .is_some_and(|l| l.generation == msg.generation)
        {
            if let Some(link) = self.links.remove(&msg.peer) {
                link.conn.close(0u32.into(), b"link down");
            }
            tracing::info!(peer = msg.peer, "peer link down");
            self.sink.do_send(PeerEvent::Disconnected(msg.peer));
            if msg.peer > self.config.id {
                self.dial_later(ctx, msg.peer, Duration::from_millis(100));
            }
        }
    }
}

impl Handler<SendTo> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: SendTo, ctx: &mut Self::Context) {
        let Some(link) = self.links.get(&msg.to) else {
            return;
        };
        if link.outbox.try_send(msg.frame).is_err() {
            // Full (a slow peer) or closed: end the link rather than leave a hole in it.
            tracing::warn!(peer = msg.to, "peer outbox full; closing the link");
            let generation = link.generation;
            self.handle(
                LinkDown {
                    peer: msg.to,
                    generation,
                },
                ctx,
            );
        }
    }
}

/// The admitted liveness watch of a peer's link closed: its process died.
#[derive(Message)]
#[rtype(result = "()")]
struct PeerDied {
    peer: u64,
    generation: u64,
}

impl Handler<PeerDied> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: PeerDied, ctx: &mut Self::Context) {
        let PeerDied { peer, generation } = msg;
        if self
            .links
            .get(&peer)
            .is_some_and(|l| l.generation == generation)
        {
            tracing::info!(peer, "peer process died (liveness socket closed)");
            self.handle(LinkDown { peer, generation }, ctx);
        }
    }
}

impl Handler<CloseLink> for PeerNet {
    type Result = ();
    fn handle(&mut self, msg: CloseLink, ctx: &mut Self::Context) {
        if let Some(generation) = self.links.get(&msg.0).map(|l| l.generation) {
            self.handle(
                LinkDown {
                    peer: msg.0,
                    generation,
                },
                ctx,
            );
        }
    }
}

/// Close every link and the endpoint, and stop the transport.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for PeerNet {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        for (_, link) in self.links.drain() {
            link.conn.close(0u32.into(), b"shutdown");
        }
        self.endpoint.close(0u32.into(), b"shutdown");
        ctx.stop();
    }
}
