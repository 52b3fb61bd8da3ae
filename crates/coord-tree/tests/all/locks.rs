//! Lock nodes (Chubby's lock-delay) and sequencer checks, at the tree.

use coord_proto::{
    CreateMode, ErrorCode, LockMode, MultiOp, MultiResult, ReplyBody, Response, Sequencer, Stat,
};
use coord_tree::{DataTree, TxnBody};

use crate::common::*;

fn lock(path: &str, delay_ms: i64) -> TxnBody {
    create_mode(path, b"holder", CreateMode::EphemeralLock, delay_ms)
}

fn created(r: Response) -> Stat {
    match r {
        Response::Create { stat, .. } => stat,
        other => panic!("{other:?}"),
    }
}

fn create_in(h: &mut Harness, session: u64, body: TxnBody) -> ReplyBody {
    h.txn(session, body).reply
}

#[test]
fn a_lock_node_is_ephemeral_and_owned_by_its_session() {
    let mut h = Harness::new();
    h.mk("/l");
    let stat = created(h.ok(lock("/l/holder", 0)));
    assert_eq!(stat.ephemeral_owner, S);
    assert_eq!(
        h.err(create("/l/holder/child", b"")),
        ErrorCode::NoChildrenForEphemerals
    );
}

#[test]
fn expiry_holds_the_path_back_for_the_delay_and_then_releases_it() {
    let mut h = Harness::new();
    h.mk("/l");
    let holder = h.new_session();
    let other = h.new_session();
    created(match create_in(&mut h, holder, lock("/l/holder", 2_000)) {
        ReplyBody::Ok(r) => r,
        e => panic!("{e:?}"),
    });
    h.txn(holder, TxnBody::ExpireSession);
    assert!(
        h.tree.stat("/l/holder").is_none(),
        "expiry deletes the lock node"
    );
    // Within the delay, by anyone, in any mode: refused.
    h.time += 1_999;
    assert_eq!(
        create_in(&mut h, other, lock("/l/holder", 0)),
        ReplyBody::Err(ErrorCode::LockDelay)
    );
    assert_eq!(
        create_in(&mut h, other, create("/l/holder", b"")),
        ReplyBody::Err(ErrorCode::LockDelay)
    );
    // Other paths are not held back.
    assert!(matches!(
        create_in(&mut h, other, lock("/l/other", 0)),
        ReplyBody::Ok(_)
    ));
    // At the end of the delay: free.
    h.time += 1;
    assert!(matches!(
        create_in(&mut h, other, lock("/l/holder", 0)),
        ReplyBody::Ok(_)
    ));
}

#[test]
fn a_clean_delete_or_close_releases_at_once() {
    let mut h = Harness::new();
    h.mk("/l");
    let a = h.new_session();
    let b = h.new_session();
    assert!(matches!(
        create_in(&mut h, a, lock("/l/x", 5_000)),
        ReplyBody::Ok(_)
    ));
    assert!(matches!(
        h.txn(a, delete("/l/x", -1)).reply,
        ReplyBody::Ok(_)
    ));
    assert!(matches!(
        create_in(&mut h, b, lock("/l/x", 5_000)),
        ReplyBody::Ok(_)
    ));
    h.txn(b, TxnBody::CloseSession);
    assert!(matches!(
        create_in(&mut h, a, lock("/l/x", 5_000)),
        ReplyBody::Ok(_)
    ));
}

#[test]
fn plain_ephemerals_have_no_lock_delay() {
    let mut h = Harness::new();
    h.mk("/l");
    let a = h.new_session();
    assert!(matches!(
        create_in(
            &mut h,
            a,
            create_mode("/l/e", b"", CreateMode::Ephemeral, 0)
        ),
        ReplyBody::Ok(_)
    ));
    h.txn(a, TxnBody::ExpireSession);
    assert!(matches!(h.run(create("/l/e", b"")).reply, ReplyBody::Ok(_)));
}

#[test]
fn the_default_delay_is_one_second_and_the_bound_is_a_minute() {
    let mut h = Harness::new();
    h.mk("/l");
    assert_eq!(h.err(lock("/l/x", 60_001)), ErrorCode::BadArguments);
    assert_eq!(h.err(lock("/l/x", -1)), ErrorCode::BadArguments);
    let a = h.new_session();
    assert!(matches!(
        create_in(&mut h, a, lock("/l/x", 0)),
        ReplyBody::Ok(_)
    ));
    h.txn(a, TxnBody::ExpireSession);
    h.time += 999;
    assert_eq!(
        h.run(lock("/l/x", 0)).reply,
        ReplyBody::Err(ErrorCode::LockDelay)
    );
    h.time += 1;
    assert!(matches!(h.run(lock("/l/x", 0)).reply, ReplyBody::Ok(_)));
}

#[test]
fn lock_delays_survive_a_snapshot_and_ran_out_ones_are_forgotten() {
    let mut h = Harness::new();
    h.mk("/l");
    let a = h.new_session();
    let b = h.new_session();
    assert!(matches!(
        create_in(&mut h, a, lock("/l/x", 3_000)),
        ReplyBody::Ok(_)
    ));
    assert!(matches!(
        create_in(&mut h, b, lock("/l/y", 10)),
        ReplyBody::Ok(_)
    ));
    // A lock node alive at snapshot time comes back as a lock node.
    let restored = DataTree::from_snapshot(&h.tree.snapshot()).expect("restore");
    assert_eq!(restored.digest(), h.tree.digest());
    h.txn(a, TxnBody::ExpireSession);
    h.txn(b, TxnBody::ExpireSession);
    h.time += 100; // /l/y's delay has run out; the next txn forgets it
    h.mk("/m");
    let bytes = h.tree.snapshot();
    let mut back = DataTree::from_snapshot(&bytes).expect("restore");
    assert_eq!(back.snapshot(), bytes, "deterministic bytes");
    let mut h2 = Harness {
        tree: std::mem::replace(&mut back, DataTree::new()),
        next: h.next,
        time: h.time,
        auth: Vec::new(),
        origin: 0,
    };
    assert_eq!(
        h2.run(lock("/l/x", 0)).reply,
        ReplyBody::Err(ErrorCode::LockDelay)
    );
    assert!(matches!(h2.run(lock("/l/y", 0)).reply, ReplyBody::Ok(_)));
}

fn sequencer_of(path: &str, stat: &Stat) -> Vec<u8> {
    Sequencer {
        path: path.into(),
        mode: LockMode::Exclusive,
        czxid: stat.czxid,
        session_id: stat.ephemeral_owner,
    }
    .encode()
}

#[test]
fn a_sequencer_is_valid_exactly_while_its_hold_lasts() {
    let mut h = Harness::new();
    h.mk("/l");
    let a = h.new_session();
    let stat = match create_in(&mut h, a, lock("/l/holder", 0)) {
        ReplyBody::Ok(r) => created(r),
        e => panic!("{e:?}"),
    };
    let seq = sequencer_of("/l/holder", &stat);
    let check = |h: &mut Harness| {
        h.run(TxnBody::Multi {
            ops: vec![
                MultiOp::CheckSequencer {
                    sequencer: seq.clone(),
                },
                MultiOp::SetData {
                    path: "/l".into(),
                    data: b"fenced".to_vec(),
                    version: -1,
                },
            ],
        })
        .reply
    };
    let s = Sequencer::decode(&seq).unwrap();
    assert!(h.tree.sequencer_valid(&s));
    assert!(
        matches!(check(&mut h), ReplyBody::Ok(Response::Multi { ref results }) if results[0] == MultiResult::Check)
    );
    // Released and re-created by the same session: another generation, the old one is stale.
    assert!(matches!(
        h.txn(a, delete("/l/holder", -1)).reply,
        ReplyBody::Ok(_)
    ));
    assert!(!h.tree.sequencer_valid(&s));
    assert!(matches!(
        create_in(&mut h, a, lock("/l/holder", 0)),
        ReplyBody::Ok(_)
    ));
    assert!(!h.tree.sequencer_valid(&s));
    let before = dump(&h.tree);
    match check(&mut h) {
        ReplyBody::MultiErr { code, .. } => assert_eq!(code, ErrorCode::StaleSequencer),
        other => panic!("stale sequencer let the write through: {other:?}"),
    }
    assert_eq!(dump(&h.tree), before, "the fenced write did not happen");
}

#[test]
fn a_sequencer_naming_another_session_or_no_node_is_not_valid() {
    let mut h = Harness::new();
    h.mk("/l");
    let stat = created(h.ok(lock("/l/holder", 0)));
    let forged = Sequencer {
        path: "/l/holder".into(),
        mode: LockMode::Exclusive,
        czxid: stat.czxid,
        session_id: stat.ephemeral_owner + 1,
    };
    assert!(!h.tree.sequencer_valid(&forged));
    let persistent = h.mk("/l/p");
    let on_persistent = Sequencer {
        path: "/l/p".into(),
        mode: LockMode::Exclusive,
        czxid: persistent.czxid,
        session_id: 0,
    };
    assert!(
        !h.tree.sequencer_valid(&on_persistent),
        "a persistent node is no hold"
    );
    let garbage = MultiOp::CheckSequencer {
        sequencer: vec![1, 2, 3],
    };
    match h.run(TxnBody::Multi { ops: vec![garbage] }).reply {
        ReplyBody::MultiErr { code, .. } => assert_eq!(code, ErrorCode::BadArguments),
        other => panic!("{other:?}"),
    }
}
