//! Snapshots read back from disk or received from a leader (SNAP): `DataTree::from_snapshot`.
//!
//! Input: one mode byte, then the snapshot. With `SNAPSHOT_FIX_CRC` set in the mode byte the
//! target rewrites the snapshot's CRC first, so mutations get past the checksum to the
//! archive, structure and digest checks. Must never panic; a snapshot that restores must
//! re-snapshot to a tree with the same digest and take further txns without panicking.
#![no_main]

use coord_fuzz::{SNAPSHOT_FIX_CRC, check_tree, fix_tree_snapshot_crc, txn};
use coord_proto::{Acl, CreateMode, Zxid};
use coord_tree::{DataTree, TxnBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, snap)) = data.split_first() else { return };
    let mut bytes = snap.to_vec();
    if mode & SNAPSHOT_FIX_CRC != 0 {
        fix_tree_snapshot_crc(&mut bytes);
    }
    let Ok(mut tree) = DataTree::from_snapshot(&bytes) else { return };
    check_tree(&tree);

    // A restored tree must be as usable as one built by apply: close every session (deletes
    // its ephemerals), create under the root, reap whatever is reapable.
    let sessions: Vec<u64> = tree.sessions().map(|(id, _)| id).collect();
    let next = |tree: &DataTree| tree.last_applied().0.checked_add(1).map(Zxid);
    for sid in sessions {
        let Some(zxid) = next(&tree) else { return };
        let mut close = txn(TxnBody::CloseSession);
        close.session_id = sid;
        tree.apply(zxid, &close);
        check_tree(&tree);
    }
    for (path, czxid) in tree.reap_candidates(i64::MAX) {
        let Some(zxid) = next(&tree) else { return };
        let mut reap = txn(TxnBody::ReapNode { path, czxid });
        reap.session_id = 0;
        reap.time_ms = i64::MAX;
        tree.apply(zxid, &reap);
        check_tree(&tree);
    }
    let Some(zxid) = next(&tree) else { return };
    tree.apply(zxid, &coord_fuzz::create_session());
    let Some(zxid2) = next(&tree) else { return };
    let mut create = txn(TxnBody::Create {
        path: "/fuzz-".into(),
        data: b"x".to_vec(),
        acl: Acl::open_unsafe(),
        mode: CreateMode::EphemeralSequential,
        ttl_ms: 0,
    });
    create.session_id = zxid.0;
    tree.apply(zxid2, &create);
    check_tree(&tree);
});
