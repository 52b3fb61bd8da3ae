//! Shared helpers for Coord's fuzz targets and the seed generator (`examples/make_seeds.rs`).
//!
//! Everything here goes through the crates' public APIs. The only format knowledge of our
//! own is coord-log's documented on-disk layout (segment and snapshot headers), used to put
//! valid headers and CRCs in front of fuzz bytes so the fuzzer gets past magic and checksums.

use coord_proto::{Acl, CreateMode, Id, MultiOp, Zxid, perms};
use coord_tree::{DataTree, Txn, TxnBody, WatchKind, WatchManager};

/// The session every seed txn is issued by: `CreateSession` applied at zxid 1 gets id 1.
pub const SESSION: u64 = 1;

/// The identities of [`SESSION`]: a digest id (so `auth` ACLs expand) and an ip id.
pub fn session_auth() -> Vec<Id> {
    vec![
        Id::new("digest", coord_tree::digest_id("alice:secret").expect("literal has a ':'")),
        Id::new("ip", "10.1.2.3"),
    ]
}

/// A txn issued by [`SESSION`] at a fixed time.
pub fn txn(body: TxnBody) -> Txn {
    Txn { session_id: SESSION, xid: 1, time_ms: 1_700_000_000_000, auth: session_auth(), origin: 0, body }
}

/// The `CreateSession` txn that registers [`SESSION`] when applied at zxid 1.
pub fn create_session() -> Txn {
    Txn {
        session_id: 0,
        xid: 0,
        time_ms: 1_700_000_000_000,
        auth: Vec::new(),
        origin: 0,
        body: TxnBody::CreateSession { timeout_ms: 10_000, password: b"0123456789abcdef".to_vec() },
    }
}

fn create(path: &str, data: &[u8], acl: Vec<Acl>, mode: CreateMode, ttl_ms: i64) -> TxnBody {
    TxnBody::Create { path: path.into(), data: data.to_vec(), acl, mode, ttl_ms }
}

/// ACLs of every scheme the tree knows, plus `auth` (expanded at apply).
pub fn sample_acls() -> Vec<Vec<Acl>> {
    vec![
        Acl::open_unsafe(),
        Acl::read_unsafe(),
        Acl::creator_all(),
        vec![
            Acl { perms: perms::ALL, id: session_auth()[0].clone() },
            Acl { perms: perms::READ, id: Id::new("world", "anyone") },
        ],
        vec![Acl { perms: perms::READ | perms::WRITE, id: Id::new("ip", "10.0.0.0/8") }],
        vec![Acl { perms: perms::ALL, id: Id::new("x509", "CN=client") }],
    ]
}

/// The txns (from zxid 2 on, after [`create_session`]) that build [`populated_tree`]: a
/// node of every kind and an ACL of every scheme, so fuzzed deletes, sets, reaps and
/// session closes find something to act on.
pub fn populate_txns() -> Vec<Txn> {
    let acls = sample_acls();
    vec![
        txn(create("/a", b"a", acls[0].clone(), CreateMode::Persistent, 0)),
        txn(create("/a/b", b"hello", acls[0].clone(), CreateMode::Persistent, 0)),
        txn(create("/a/b/c", b"", acls[1].clone(), CreateMode::Persistent, 0)),
        txn(create("/eph", b"e", acls[0].clone(), CreateMode::Ephemeral, 0)),
        txn(create("/a/q-", b"", acls[0].clone(), CreateMode::EphemeralSequential, 0)),
        txn(create("/c", b"", acls[0].clone(), CreateMode::Container, 0)),
        txn(create("/c/x", b"", acls[0].clone(), CreateMode::Persistent, 0)),
        txn(create("/ttl", b"t", acls[0].clone(), CreateMode::PersistentWithTtl, 1_000)),
        txn(create("/secret", b"s", acls[3].clone(), CreateMode::Persistent, 0)),
        txn(create("/net", b"n", acls[4].clone(), CreateMode::Persistent, 0)),
        txn(create("/mine", b"m", acls[2].clone(), CreateMode::Persistent, 0)),
        txn(create("/cert", b"", acls[5].clone(), CreateMode::Persistent, 0)),
    ]
}

/// A small tree with [`SESSION`] live and a node of every kind; last applied zxid is
/// `1 + populate_txns().len()`.
pub fn populated_tree() -> DataTree {
    let mut tree = DataTree::new();
    tree.apply(Zxid(1), &create_session());
    for (i, t) in populate_txns().iter().enumerate() {
        tree.apply(Zxid(2 + i as u64), t);
    }
    tree
}

/// Watches of every kind by [`SESSION`] and a second session on the populated paths.
pub fn sample_watches() -> WatchManager {
    let mut w = WatchManager::new();
    for sid in [SESSION, 99] {
        w.add(sid, "/a/b", WatchKind::Data);
        w.add(sid, "/a", WatchKind::Child);
        w.add(sid, "/new", WatchKind::Exist);
        w.add(sid, "/c", WatchKind::Persistent);
        w.add(sid, "/", WatchKind::PersistentRecursive);
        w.add(sid, "/a", WatchKind::PersistentRecursive);
    }
    w
}

/// One txn of every [`TxnBody`] variant (and every [`CreateMode`]), aimed at the nodes of
/// [`populated_tree`].
pub fn sample_txns() -> Vec<(&'static str, Txn)> {
    let acls = sample_acls();
    let mut out = vec![
        ("create_session", create_session()),
        ("close_session", txn(TxnBody::CloseSession)),
        ("delete", txn(TxnBody::Delete { path: "/a/b/c".into(), version: 0 })),
        ("delete_any", txn(TxnBody::Delete { path: "/eph".into(), version: -1 })),
        ("set_data", txn(TxnBody::SetData { path: "/a/b".into(), data: b"world".to_vec(), version: 0 })),
        ("set_acl", txn(TxnBody::SetAcl { path: "/a".into(), acl: acls[2].clone(), version: -1 })),
        ("set_acl_ip", txn(TxnBody::SetAcl { path: "/net".into(), acl: acls[4].clone(), version: 0 })),
        ("reap_ttl", Txn { session_id: 0, xid: 0, time_ms: i64::MAX, auth: vec![], origin: 0, body: TxnBody::ReapNode { path: "/ttl".into(), czxid: 9 } }),
        ("reap_container", Txn { session_id: 0, xid: 0, time_ms: 1_700_000_000_000, auth: vec![], origin: 0, body: TxnBody::ReapNode { path: "/c".into(), czxid: 7 } }),
        ("noop", Txn { session_id: 0, xid: 0, time_ms: 0, auth: vec![], origin: 0, body: TxnBody::Noop }),
        (
            "multi_ok",
            txn(TxnBody::Multi {
                ops: vec![
                    MultiOp::Check { path: "/a".into(), version: 0 },
                    MultiOp::Create { path: "/a/m".into(), data: b"1".to_vec(), acl: acls[0].clone(), mode: CreateMode::Persistent, ttl_ms: 0 },
                    MultiOp::SetData { path: "/a/m".into(), data: b"2".to_vec(), version: 0 },
                    MultiOp::Delete { path: "/a/m".into(), version: 1 },
                ],
            }),
        ),
        (
            "multi_rollback",
            txn(TxnBody::Multi {
                ops: vec![
                    MultiOp::Create { path: "/z".into(), data: vec![], acl: acls[3].clone(), mode: CreateMode::Container, ttl_ms: 0 },
                    MultiOp::Delete { path: "/c/x".into(), version: -1 },
                    MultiOp::SetData { path: "/a/b".into(), data: b"x".to_vec(), version: -1 },
                    MultiOp::Check { path: "/missing".into(), version: -1 },
                ],
            }),
        ),
    ];
    let modes = [
        ("create_persistent", CreateMode::Persistent, 0),
        ("create_persistent_seq", CreateMode::PersistentSequential, 0),
        ("create_ephemeral", CreateMode::Ephemeral, 0),
        ("create_ephemeral_seq", CreateMode::EphemeralSequential, 0),
        ("create_container", CreateMode::Container, 0),
        ("create_ttl", CreateMode::PersistentWithTtl, 60_000),
        ("create_ttl_seq", CreateMode::PersistentSequentialWithTtl, 60_000),
    ];
    for (i, (name, mode, ttl)) in modes.into_iter().enumerate() {
        let acl = acls[i % acls.len()].clone();
        out.push((name, txn(create("/a/n", b"data", acl, mode, ttl))));
    }
    out
}

/// Checks what must hold after every apply, whatever the txn: the incremental digest equals
/// the recomputed one, and the state survives a snapshot round trip unchanged.
pub fn check_tree(tree: &DataTree) {
    assert_eq!(tree.digest(), tree.recompute_digest(), "incremental digest drifted");
    let snap = tree.snapshot();
    let back = match DataTree::from_snapshot(&snap) {
        Ok(back) => back,
        Err(e) => panic!("a tree reached by apply does not restore from its own snapshot: {e}"),
    };
    assert_eq!(back.digest(), tree.digest());
    assert_eq!(back.node_count(), tree.node_count());
    assert_eq!(back.last_applied(), tree.last_applied());
    assert!(back.sessions().eq(tree.sessions()), "sessions differ after restore");
    assert_eq!(back.snapshot(), snap, "snapshot of the restored tree differs");
}

/// Segment file name for `base` (crate docs: `log.` + 16 lowercase hex digits).
pub fn segment_name(base: u64) -> String {
    format!("log.{base:016x}")
}

/// Snapshot file name for `zxid`.
pub fn snapshot_name(zxid: u64) -> String {
    format!("snap.{zxid:016x}")
}

/// A valid segment header (crate docs):
/// `"COORDLOG" | version u32 | base u64 | crc32c(previous 20 bytes) u32 | 0u64`.
pub fn segment_header(base: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0..8].copy_from_slice(b"COORDLOG");
    h[8..12].copy_from_slice(&coord_log::FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A valid snapshot file (crate docs):
/// `"COORDSNP" | version u32 | crc u32 | zxid u64 | len u64 | 0u64 | payload[len]`, with
/// crc = crc32c over the 24 bytes from zxid on ++ payload.
pub fn snapshot_file(zxid: u64, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0..8].copy_from_slice(b"COORDSNP");
    h[8..12].copy_from_slice(&coord_log::FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&zxid.to_le_bytes());
    h[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[16..40]), payload);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(payload);
    h
}

/// Rewrites the CRC of every whole record in `body` (records as in the crate docs:
/// `len u32 | crc32c(zxid_le ++ payload) u32 | zxid u64 | payload[len]`), stopping at the
/// first record whose length runs past the end. Lets the fuzzer explore lengths, zxid
/// order and segment boundaries instead of dying on the first CRC.
pub fn fix_record_crcs(body: &mut [u8]) {
    let mut pos = 0usize;
    while body.len() - pos >= 16 {
        let len = u32::from_le_bytes(body[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if body.len() - pos - 16 < len {
            return;
        }
        let zxid = &body[pos + 8..pos + 16];
        let crc = crc32c::crc32c_append(crc32c::crc32c(zxid), &body[pos + 16..pos + 16 + len]);
        body[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos += 16 + len;
    }
}

/// Encodes a record (crate docs layout) for seed segments.
pub fn record(zxid: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
    fix_record_crcs(&mut out);
    out
}

/// The tree_snapshot target's first byte: with bit 0 set, the target rewrites the
/// snapshot's CRC (bytes 8..12) before restoring, so mutations reach the archive checks.
pub const SNAPSHOT_FIX_CRC: u8 = 1;

/// Rewrites a coord-tree snapshot's CRC: `"CTSN" | version u32 | crc32c(rest) u32 | rest`
/// (coord-tree `snapshot.rs` docs).
pub fn fix_tree_snapshot_crc(bytes: &mut [u8]) {
    if bytes.len() >= 12 {
        let crc = crc32c::crc32c(&bytes[12..]);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}
