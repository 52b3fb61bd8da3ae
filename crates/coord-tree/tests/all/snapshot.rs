//! Snapshot round trips, refusal of damaged snapshots, and digest behaviour.

use coord_proto::{Acl, CreateMode, MultiOp, Response, Zxid, perms};
use coord_tree::{DataTree, TreeError, Txn, TxnBody, digest_id};

use crate::common::*;

/// A tree with every kind of node, several ACLs and two sessions.
pub fn varied() -> Harness {
    let mut h = Harness::new();
    let s2 = h.new_session();
    h.auth = vec![coord_proto::Id::new(
        "digest",
        digest_id("u:p").unwrap().as_str(),
    )];
    h.ok(create("/app", b"config"));
    h.ok(create_acl("/app/private", Acl::creator_all()));
    h.ok(create_acl("/app/ro", Acl::read_unsafe()));
    h.ok(create_mode(
        "/app/q-",
        b"1",
        CreateMode::PersistentSequential,
        0,
    ));
    h.ok(create_mode(
        "/app/q-",
        b"2",
        CreateMode::EphemeralSequential,
        0,
    ));
    h.txn(
        s2,
        create_mode("/app/theirs", b"", CreateMode::Ephemeral, 0),
    );
    h.ok(create_mode("/c", b"", CreateMode::Container, 0));
    h.mk("/c/x");
    h.ok(delete("/c/x", -1));
    h.ok(create_mode(
        "/t",
        b"ttl",
        CreateMode::PersistentWithTtl,
        500,
    ));
    h.ok(set_data("/app", &[7u8; 3000], -1));
    h.auth = superuser();
    h.ok(set_acl(
        "/app/ro",
        vec![acl(perms::READ | perms::ADMIN, "ip", "10.0.0.0/8")],
        -1,
    ));
    h.auth = vec![];
    h
}

#[test]
fn round_trip_restores_everything() {
    let h = varied();
    let bytes = h.tree.snapshot();
    let back = DataTree::from_snapshot(&bytes).unwrap();
    assert_eq!(back.digest(), h.tree.digest());
    assert_eq!(back.recompute_digest(), back.digest());
    assert_eq!(back.last_applied(), h.tree.last_applied());
    assert_eq!(dump(&back), dump(&h.tree));
    assert_eq!(
        back.sessions().collect::<Vec<_>>(),
        h.tree.sessions().collect::<Vec<_>>()
    );
    for (id, _) in h.tree.sessions() {
        assert_eq!(back.session_password(id), h.tree.session_password(id));
        assert_eq!(back.get_ephemerals(id, "/"), h.tree.get_ephemerals(id, "/"));
    }
    assert_eq!(
        back.reap_candidates(i64::MAX),
        h.tree.reap_candidates(i64::MAX)
    );
    assert_eq!(back.reap_candidates(i64::MAX).len(), 2);
    back.check_invariants();
    // Deterministic: the restored tree writes the same bytes.
    assert_eq!(back.snapshot(), bytes);
    // And both evolve identically.
    let mut a = h;
    let mut b = Harness {
        tree: back,
        next: a.next,
        time: a.time,
        auth: vec![],
        origin: 0,
    };
    for x in [&mut a, &mut b] {
        x.ok(set_data("/app", b"v2", -1));
        x.txn(S, TxnBody::CloseSession);
    }
    assert_eq!(a.tree.digest(), b.tree.digest());
    assert_eq!(dump(&a.tree), dump(&b.tree));
}

#[test]
fn empty_tree_round_trips() {
    let t = DataTree::new();
    let back = DataTree::from_snapshot(&t.snapshot()).unwrap();
    assert_eq!(back.digest(), t.digest());
    assert_eq!(back.node_count(), 1);
}

#[test]
fn damaged_snapshots_are_refused() {
    let bytes = varied().tree.snapshot();
    for cut in 0..bytes.len() {
        assert!(
            DataTree::from_snapshot(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(DataTree::from_snapshot(&extended).is_err());
    for i in 0..bytes.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            assert!(
                DataTree::from_snapshot(&b).is_err(),
                "byte {i} ^ {mask:#x} accepted"
            );
        }
    }
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(
        DataTree::from_snapshot(&b),
        Err(TreeError::SnapshotMagic)
    ));
    let mut b = bytes.clone();
    b[4] = 9;
    assert!(matches!(
        DataTree::from_snapshot(&b),
        Err(TreeError::SnapshotVersion(9))
    ));
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(
        DataTree::from_snapshot(&b),
        Err(TreeError::SnapshotChecksum { .. })
    ));
    // Random garbage, with and without a valid preamble.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..300 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        assert!(DataTree::from_snapshot(&junk).is_err());
        let mut framed = bytes[..8].to_vec();
        framed.extend_from_slice(&crc32c_of(&junk).to_le_bytes());
        framed.extend_from_slice(&junk);
        assert!(
            DataTree::from_snapshot(&framed).is_err(),
            "valid preamble + junk of {len}"
        );
    }
}

/// Castagnoli CRC (bitwise), to forge a valid checksum over junk.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn digest_is_independent_of_construction_order() {
    let build = |names: [&str; 3]| {
        let mut h = Harness::new();
        let ops = names
            .iter()
            .map(|n| MultiOp::Create {
                path: n.to_string(),
                data: n.as_bytes().to_vec(),
                acl: Acl::open_unsafe(),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
            })
            .collect();
        assert!(matches!(
            h.ok(TxnBody::Multi { ops }),
            Response::Multi { .. }
        ));
        h
    };
    let a = build(["/x", "/y", "/z"]);
    let b = build(["/z", "/x", "/y"]);
    assert_eq!(dump(&a.tree), dump(&b.tree));
    assert_eq!(a.tree.digest(), b.tree.digest());
    // The same txns on two trees give the same digest; a restored tree too.
    let restored = DataTree::from_snapshot(&a.tree.snapshot()).unwrap();
    assert_eq!(restored.digest(), b.tree.digest());
}

#[test]
fn digest_changes_with_any_content() {
    let mut h = varied();
    let mut seen = vec![h.tree.digest()];
    let mut step = |h: &mut Harness, body: TxnBody| {
        h.ok(body);
        let d = h.tree.digest();
        assert_eq!(d, h.tree.recompute_digest());
        assert!(!seen.contains(&d), "digest repeated after a change");
        seen.push(d);
    };
    // Same bytes again: only the version, mzxid and mtime differ.
    step(&mut h, set_data("/app", &[7u8; 3000], -1));
    step(&mut h, set_acl("/c", Acl::read_unsafe(), -1));
    step(&mut h, create("/new", b""));
    step(&mut h, delete("/new", -1));
    // A failed txn and a noop change nothing.
    let d = h.tree.digest();
    h.err(delete("/app", -1));
    h.ok(TxnBody::Noop);
    assert_eq!(h.tree.digest(), d);
}

#[test]
fn txn_round_trip_and_garbage() {
    let txns = [
        Txn {
            origin: 0,
            session_id: 1,
            xid: 0,
            time_ms: -5,
            auth: vec![],
            body: TxnBody::Noop,
        },
        Txn {
            origin: 0,
            session_id: u64::MAX,
            xid: 0,
            time_ms: 99,
            auth: vec![coord_proto::Id::new("digest", "u:h")],
            body: TxnBody::Multi {
                ops: vec![
                    MultiOp::Create {
                        path: "/a".into(),
                        data: vec![1, 2, 3],
                        acl: Acl::creator_all(),
                        mode: CreateMode::PersistentSequentialWithTtl,
                        ttl_ms: 10,
                    },
                    MultiOp::Check {
                        path: "/b".into(),
                        version: -1,
                    },
                ],
            },
        },
        Txn {
            origin: 0,
            session_id: 0,
            xid: 0,
            time_ms: 0,
            auth: vec![],
            body: TxnBody::ReapNode {
                path: "/c".into(),
                czxid: 7,
            },
        },
        Txn {
            origin: 0,
            session_id: 0,
            xid: 0,
            time_ms: 0,
            auth: vec![],
            body: TxnBody::CreateSession {
                timeout_ms: 3,
                password: vec![9; 16],
            },
        },
    ];
    for t in &txns {
        let bytes = t.encode();
        assert_eq!(&Txn::decode(&bytes).unwrap(), t);
        // Unaligned input decodes too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(&Txn::decode(&shifted[1..]).unwrap(), t);
        for cut in 0..bytes.len() {
            let _ = Txn::decode(&bytes[..cut]);
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            let _ = Txn::decode(&b);
        }
    }
    assert!(matches!(Txn::decode(&[]), Err(TreeError::TxnDecode(_))));
    assert!(Txn::decode(&[0xff; 64]).is_err());
    let _ = Zxid(0);
}
