//! Invariant checkers, one module each, run by the simulator after every step (each on the
//! events that can break it: a delivery, a role change, a message sent, a disk losing data).

pub mod acknowledged_durable;
pub mod advertised_persisted;
pub mod committed_prefix;
pub mod one_leader_per_epoch;
pub mod primary_order;

use std::collections::BTreeMap;

use coord_zab::Zxid;

/// What the checkers remember across steps.
#[derive(Debug, Default)]
pub struct Invariants {
    /// The longest delivered sequence: `(zxid, hash of the txn bytes)`. Every server's
    /// delivered sequence must be a prefix of it.
    pub global: Vec<(Zxid, u64)>,
    /// Epoch → the server established as its leader.
    pub leaders: BTreeMap<u32, u64>,
    /// Txns a leader delivered (acknowledged to a client), in order.
    pub acknowledged: Vec<Zxid>,
    /// Votes needed.
    pub quorum: usize,
}

impl Invariants {
    pub fn new(quorum: usize) -> Invariants {
        Invariants {
            quorum,
            ..Invariants::default()
        }
    }

    /// Index in `global` right after `zxid` (0 for zero); `None` if `zxid` was never
    /// delivered anywhere.
    pub fn position_after(&self, zxid: Zxid) -> Option<usize> {
        if zxid == Zxid::ZERO {
            return Some(0);
        }
        self.global
            .binary_search_by(|g| g.0.cmp(&zxid))
            .ok()
            .map(|i| i + 1)
    }
}

pub fn txn_hash(bytes: &[u8]) -> u64 {
    // FNV-1a: deterministic and good enough to tell two txns apart.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
