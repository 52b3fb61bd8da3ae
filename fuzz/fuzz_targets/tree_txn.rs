//! Txn log records as read back from disk or received from a leader: `Txn::decode`, then
//! apply of whatever decodes, twice, to a fresh tree (after a `CreateSession`) and to a
//! populated tree (a node of every kind, ACLs of every scheme), with watches registered.
//! Hostile paths, ACLs, versions, TTLs and session ids must never panic; after every apply
//! the digest must match a recomputation and the tree must restore from its own snapshot.
#![no_main]

use coord_fuzz::{check_tree, create_session, populated_tree, sample_watches};
use coord_proto::Zxid;
use coord_tree::{DataTree, Txn};
use libfuzzer_sys::fuzz_target;

fn apply_twice(mut tree: DataTree, txn: &Txn) {
    let mut watches = sample_watches();
    for _ in 0..2 {
        let zxid = Zxid(tree.last_applied().0 + 1);
        let outcome = tree.apply(zxid, txn);
        let _ = watches.trigger(zxid, &outcome.changes);
        watches.check_invariants();
        check_tree(&tree);
        let _ = tree.reap_candidates(txn.time_ms);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(txn) = Txn::decode(data) else { return };
    assert_eq!(Txn::decode(&txn.encode()).expect("a decoded txn re-encodes"), txn);

    let mut fresh = DataTree::new();
    fresh.apply(Zxid(1), &create_session());
    apply_twice(fresh, &txn);
    apply_twice(populated_tree(), &txn);
});
