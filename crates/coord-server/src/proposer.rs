//! The Proposer: assigns zxids, sends each txn's bytes to the log, and once they are durable on
//! a quorum (here: this node's fsync) hands the txn to the Store as committed.

use crate::node::LogHandle;
use crate::store::{Committed, Store};
use actix::prelude::*;
use coord_proto::{ConnectResponse, ErrorCode, Zxid};
use coord_tree::Txn;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// Propose a txn.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Propose {
    /// The txn; the Store finds who waits for it from its session and xid.
    pub txn: Txn,
}

/// The log made every record up to this zxid durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Durable {
    /// Highest durable zxid.
    pub up_to: u64,
}

/// The log failed: nothing after the last durable record may be acknowledged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LogFailed {
    /// What failed.
    pub message: String,
}

/// Sets the Store that receives commits (the actors are created in a cycle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStore(pub Addr<Store>);

/// Assigns zxids and tracks txns until they are durable.
pub struct Proposer {
    epoch: u32,
    counter: u32,
    log: LogHandle,
    /// Txns sent to the log and not yet durable, in zxid order.
    inflight: VecDeque<(Zxid, Txn)>,
    store: Option<Addr<Store>>,
    failed: bool,
}

impl Proposer {
    /// A proposer for `epoch`, starting its counter at 0.
    pub fn new(epoch: u32, log: LogHandle) -> Self {
        Proposer {
            epoch,
            counter: 0,
            log,
            inflight: VecDeque::new(),
            store: None,
            failed: false,
        }
    }
}

impl Actor for Proposer {
    type Context = Context<Self>;
}

impl Handler<SetStore> for Proposer {
    type Result = ();
    fn handle(&mut self, msg: SetStore, _: &mut Self::Context) {
        self.store = Some(msg.0);
    }
}

impl Handler<Propose> for Proposer {
    type Result = ();
    fn handle(&mut self, msg: Propose, _: &mut Self::Context) {
        if self.failed || self.counter == u32::MAX {
            // The log is broken (or this epoch is exhausted): refuse rather than acknowledge
            // something that may not be durable. The store answers the client.
            if let Some(store) = &self.store {
                store.do_send(crate::store::Rejected {
                    txn: msg.txn,
                    code: ErrorCode::NotServing,
                });
            }
            return;
        }
        self.counter += 1;
        let zxid = Zxid::new(self.epoch, self.counter);
        if let Err(e) = self.log.submit(zxid.0, msg.txn.encode()) {
            tracing::error!(error = %e, "log writer stopped; stopping the server");
            std::process::exit(70);
        }
        self.inflight.push_back((zxid, msg.txn));
    }
}

impl Handler<Durable> for Proposer {
    type Result = ();
    fn handle(&mut self, msg: Durable, _: &mut Self::Context) {
        let Some(store) = &self.store else { return };
        while self.inflight.front().is_some_and(|(z, _)| z.0 <= msg.up_to) {
            let (zxid, txn) = self.inflight.pop_front().expect("front checked just above");
            store.do_send(Committed { zxid, txn });
        }
    }
}

impl Handler<LogFailed> for Proposer {
    type Result = ();
    fn handle(&mut self, msg: LogFailed, _: &mut Self::Context) {
        // TigerBeetle's rule: a storage fault we cannot reason about stops the server rather
        // than letting it acknowledge writes that may be lost.
        tracing::error!(error = %msg.message, "log failed; stopping the server");
        self.failed = true;
        std::process::exit(70);
    }
}

/// Helper for connection tasks: the response to a session created at `zxid`.
pub fn connect_response(
    zxid: Zxid,
    timeout_ms: u32,
    password: Vec<u8>,
    server_id: u64,
) -> ConnectResponse {
    ConnectResponse {
        protocol_version: coord_proto::CLIENT_PROTOCOL_VERSION,
        timeout_ms,
        session_id: zxid.0,
        password,
        last_zxid: zxid.0,
        server_id,
        epoch: (zxid.0 >> 32) as u32,
        read_only: false,
    }
}

/// A oneshot answer channel for session creation and attachment.
pub type ConnectReply = oneshot::Sender<Result<(u64, u32), ErrorCode>>;
