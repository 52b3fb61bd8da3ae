//! Shared fixtures for Coord's criterion benchmarks (`benches/benches/*.rs`).
//!
//! ```text
//!   frames    encode / validate / decode of client, server and (feature `zab`) peer frames
//!   tree      create, get, set, get_children on a tree of ~1M znodes (built once per group)
//!   log       FileLog append + fdatasync at 1, 8, 64, 512 records per sync; GroupCommit
//!   snapshot  DataTree::snapshot / DataTree::from_snapshot of a 200k-znode tree
//! ```
//!
//! Run briefly with `cargo bench -p coord-benches -- --quick`. Tree sizes can be shrunk for
//! a smoke run with `COORD_BENCH_TREE_NODES` and `COORD_BENCH_SNAPSHOT_NODES`.
//!
//! Trees are laid out as `/b<bucket>/n<i>`: [`BUCKET_CHILDREN`] children per bucket, so
//! `get_children` on a bucket lists a realistic 1,000 names rather than a million.
#![warn(missing_docs)]

use coord_proto::{
    Acl, ClientFrame, CreateMode, ReplyBody, Request, Response, ServerFrame, Stat, Zxid,
};
use coord_tree::{ApplyOutcome, DataTree, Txn, TxnBody};

/// Children per bucket node in the benchmark trees.
pub const BUCKET_CHILDREN: usize = 1000;

/// The session every benchmark txn is issued by (created by the txn at zxid 1).
pub const SESSION: u64 = 1;

/// Reads a positive count from the environment, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Path of child `i` of bucket `b`.
pub fn node_path(b: usize, i: usize) -> String {
    format!("/b{b:04}/n{i:04}")
}

/// Path of bucket `b`.
pub fn bucket_path(b: usize) -> String {
    format!("/b{b:04}")
}

/// A [`DataTree`] plus the zxid counter and clock that feed it txns in order.
pub struct BenchTree {
    /// The tree.
    pub tree: DataTree,
    /// Zxid of the next txn; strictly increasing as `DataTree::apply` requires.
    next_zxid: u64,
    /// Buckets in the tree.
    pub buckets: usize,
    /// Leaf nodes (children of buckets).
    pub leaves: usize,
}

impl BenchTree {
    /// A tree holding `/`, one session and `leaves` nodes of `data_len` bytes spread over
    /// buckets of [`BUCKET_CHILDREN`].
    pub fn build(leaves: usize, data_len: usize) -> BenchTree {
        let mut t = BenchTree {
            tree: DataTree::new(),
            next_zxid: 1,
            buckets: leaves.div_ceil(BUCKET_CHILDREN).max(1),
            leaves,
        };
        let out = t.apply(TxnBody::CreateSession {
            timeout_ms: 30_000,
            password: b"bench".to_vec(),
        });
        assert!(matches!(out.reply, ReplyBody::Ok(_)), "session: {out:?}");
        let data = vec![b'x'; data_len];
        for b in 0..t.buckets {
            t.create(&bucket_path(b), &[]);
        }
        for i in 0..leaves {
            let path = node_path(i % t.buckets, i / t.buckets);
            t.create(&path, &data);
        }
        t
    }

    /// Applies `body` as the next txn of [`SESSION`].
    pub fn apply(&mut self, body: TxnBody) -> ApplyOutcome {
        let txn = Txn {
            session_id: SESSION,
            xid: 0,
            time_ms: 1_700_000_000_000,
            auth: Vec::new(),
            origin: 0,
            body,
        };
        self.apply_txn(&txn)
    }

    /// Applies a prebuilt txn at the next zxid.
    pub fn apply_txn(&mut self, txn: &Txn) -> ApplyOutcome {
        let zxid = Zxid(self.next_zxid);
        self.next_zxid += 1;
        self.tree.apply(zxid, txn)
    }

    /// Creates a persistent node; panics (a fixture bug) if it fails.
    pub fn create(&mut self, path: &str, data: &[u8]) {
        let out = self.apply(create_body(path, data));
        assert!(
            matches!(out.reply, ReplyBody::Ok(_)),
            "create {path}: {:?}",
            out.reply
        );
    }

    /// Path of the `k`-th leaf (any `k`, wrapped into range).
    pub fn leaf(&self, k: usize) -> String {
        let i = k % self.leaves.max(1);
        node_path(i % self.buckets, i / self.buckets)
    }
}

/// The txn body that creates a persistent, world-open node.
pub fn create_body(path: &str, data: &[u8]) -> TxnBody {
    TxnBody::Create {
        path: path.to_string(),
        data: data.to_vec(),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
    }
}

/// A txn of [`SESSION`] (for prebuilt pools applied by reference).
pub fn txn(body: TxnBody) -> Txn {
    Txn {
        session_id: SESSION,
        xid: 0,
        time_ms: 1_700_000_000_000,
        auth: Vec::new(),
        origin: 0,
        body,
    }
}

/// A cheap deterministic pseudo-random sequence (xorshift64*), so benches need no RNG crate
/// and every run touches the same keys.
pub struct Xorshift(u64);

impl Xorshift {
    /// A sequence from a non-zero seed.
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed | 1)
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A plausible Stat of a 100-byte node that has been written a few times.
pub fn sample_stat(data_len: u32) -> Stat {
    Stat {
        czxid: 0x1_0000_0042,
        mzxid: 0x1_0000_9f31,
        pzxid: 0x1_0000_0042,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_123_456,
        version: 17,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: data_len,
        num_children: 0,
    }
}

/// `ClientFrame::Request` carrying a `SetData` of `data_len` bytes.
pub fn set_data_request(data_len: usize) -> ClientFrame {
    ClientFrame::Request {
        xid: 123_456,
        request: Request::SetData {
            path: "/loadtest/k0042".into(),
            data: vec![0xab; data_len],
            version: -1,
        },
    }
}

/// `ServerFrame::Reply` carrying a `Data` response of `data_len` bytes.
pub fn data_reply(data_len: usize) -> ServerFrame {
    ServerFrame::Reply {
        xid: 123_456,
        zxid: 0x1_0000_9f31,
        body: ReplyBody::Ok(Response::Data {
            data: vec![0xcd; data_len],
            stat: sample_stat(data_len as u32),
        }),
    }
}

/// The encoded txn of a `SetData` of `data_len` bytes, as a leader would propose it.
pub fn set_data_txn_bytes(data_len: usize) -> Vec<u8> {
    txn(TxnBody::SetData {
        path: "/loadtest/k0042".into(),
        data: vec![0xef; data_len],
        version: -1,
    })
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tree_has_every_leaf() {
        let t = BenchTree::build(2500, 8);
        assert_eq!(t.buckets, 3);
        // "/", 3 buckets, 2500 leaves.
        assert_eq!(t.tree.node_count(), 1 + 3 + 2500);
        for k in [0, 1, 2499, 2500, 7777] {
            assert!(t.tree.stat(&t.leaf(k)).is_some(), "{}", t.leaf(k));
        }
    }

    #[test]
    fn sample_frames_round_trip() {
        let f = set_data_request(100);
        let bytes = coord_proto::encode(&f).unwrap();
        let back: ClientFrame = coord_proto::decode(&bytes[4..]).unwrap();
        assert_eq!(back, f);
        let r = data_reply(100);
        let bytes = coord_proto::encode(&r).unwrap();
        let back: ServerFrame = coord_proto::decode(&bytes[4..]).unwrap();
        assert_eq!(back, r);
        assert!(Txn::decode(&set_data_txn_bytes(100)).is_ok());
    }
}
