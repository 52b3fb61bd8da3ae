//! Random client txns, as a leader would propose them (coord-tree's `Txn`).

use coord_proto::{Acl, CreateMode};
use coord_tree::{Txn, TxnBody};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub fn random_txn(rng: &mut ChaCha8Rng, now_ms: u64) -> Txn {
    let path = format!("/n{}", rng.random_range(0..16));
    let body = match rng.random_range(0..10) {
        0 => TxnBody::CreateSession {
            timeout_ms: 10_000,
            password: vec![7; 16],
        },
        1..5 => TxnBody::Create {
            path,
            data: vec![rng.random(); rng.random_range(0..8)],
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        },
        5..8 => TxnBody::SetData {
            path,
            data: vec![rng.random(); rng.random_range(0..8)],
            version: -1,
        },
        _ => TxnBody::Delete { path, version: -1 },
    };
    Txn {
        origin: 0,
        session_id: 0,
        xid: 0,
        time_ms: now_ms as i64,
        auth: vec![],
        body,
    }
}
