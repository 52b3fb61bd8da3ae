//! Random txn sequences: two replicas (one snapshotted and restored midway) stay identical,
//! and the incremental digest always equals a from-scratch recomputation.

use coord_proto::{Acl, CreateMode, Id, MultiOp, Zxid, perms};
use coord_tree::{DataTree, Txn, TxnBody, digest_id};
use proptest::prelude::*;

use crate::common::*;

const PATHS: [&str; 8] = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/z", "/c", "/a/"];
const MODES: [CreateMode; 7] = [
    CreateMode::Persistent,
    CreateMode::PersistentSequential,
    CreateMode::Ephemeral,
    CreateMode::EphemeralSequential,
    CreateMode::Container,
    CreateMode::PersistentWithTtl,
    CreateMode::PersistentSequentialWithTtl,
];

#[derive(Debug, Clone)]
enum Op {
    Create {
        path: u8,
        mode: u8,
        data: u8,
        acl: u8,
    },
    Delete {
        path: u8,
        any: bool,
    },
    SetData {
        path: u8,
        data: u8,
        any: bool,
    },
    SetAcl {
        path: u8,
        acl: u8,
    },
    Check {
        path: u8,
        any: bool,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Single { session: u8, auth: u8, op: Op },
    Multi { session: u8, auth: u8, ops: Vec<Op> },
    NewSession,
    Close { session: u8 },
    Reap { path: u8 },
    Tick { ms: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(path, mode, data, acl)| Op::Create { path, mode, data, acl }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(path, any)| Op::Delete { path, any }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(path, data, any)| Op::SetData { path, data, any }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(path, acl)| Op::SetAcl { path, acl }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(path, any)| Op::Check { path, any }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>(), op()).prop_map(|(session, auth, op)| Step::Single { session, auth, op }),
        2 => (any::<u8>(), any::<u8>(), prop::collection::vec(op(), 0..4))
            .prop_map(|(session, auth, ops)| Step::Multi { session, auth, ops }),
        1 => Just(Step::NewSession),
        1 => any::<u8>().prop_map(|session| Step::Close { session }),
        1 => any::<u8>().prop_map(|path| Step::Reap { path }),
        1 => any::<u16>().prop_map(|ms| Step::Tick { ms }),
    ]
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[i as usize % items.len()]
}

fn acl_choice(i: u8) -> Vec<Acl> {
    match i % 5 {
        0 => Acl::open_unsafe(),
        1 => Acl::read_unsafe(),
        2 => Acl::creator_all(),
        3 => vec![
            acl(perms::ALL, "ip", "10.0.0.0/8"),
            acl(perms::READ, "world", "anyone"),
        ],
        _ => vec![acl(
            perms::CREATE | perms::DELETE | perms::READ,
            "world",
            "anyone",
        )],
    }
}

fn auth_choice(i: u8) -> Vec<Id> {
    match i % 4 {
        0 => vec![],
        1 => vec![Id::new("digest", digest_id("u:p").unwrap().as_str())],
        2 => vec![Id::new("ip", "10.1.1.1")],
        _ => superuser(),
    }
}

fn multi_op(op: &Op) -> MultiOp {
    let version = |any: bool| if any { -1 } else { 0 };
    match *op {
        Op::Create {
            path,
            mode,
            data,
            acl,
        } => MultiOp::Create {
            path: pick(&PATHS, path).into(),
            data: vec![data; (data % 4) as usize],
            acl: acl_choice(acl),
            mode: pick(&MODES, mode),
            ttl_ms: if data % 7 == 0 {
                0
            } else {
                i64::from(data) * 10
            },
        },
        Op::Delete { path, any } => MultiOp::Delete {
            path: pick(&PATHS, path).into(),
            version: version(any),
        },
        Op::SetData { path, data, any } => MultiOp::SetData {
            path: pick(&PATHS, path).into(),
            data: vec![data],
            version: version(any),
        },
        Op::Check { path, any } => MultiOp::Check {
            path: pick(&PATHS, path).into(),
            version: version(any),
        },
        // SetAcl is not a multi op: inside a multi it checks its path instead.
        Op::SetAcl { path, .. } => MultiOp::Check {
            path: pick(&PATHS, path).into(),
            version: -1,
        },
    }
}

fn single(op: &Op) -> TxnBody {
    if let Op::SetAcl { path, acl } = *op {
        return TxnBody::SetAcl {
            path: pick(&PATHS, path).into(),
            acl: acl_choice(acl),
            version: -1,
        };
    }
    match multi_op(op) {
        MultiOp::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
        } => TxnBody::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
        },
        MultiOp::Delete { path, version } => TxnBody::Delete { path, version },
        MultiOp::SetData {
            path,
            data,
            version,
        } => TxnBody::SetData {
            path,
            data,
            version,
        },
        check @ (MultiOp::Check { .. } | MultiOp::CheckSequencer { .. }) => {
            TxnBody::Multi { ops: vec![check] }
        }
    }
}

/// Turns a step into a txn, consulting replica `a` (as a leader would) for reap czxids.
fn to_txn(step: &Step, a: &DataTree, sessions: &[u64], time: &mut i64) -> Txn {
    let session = |i: u8| {
        if sessions.is_empty() {
            0
        } else {
            pick(sessions, i)
        }
    };
    let (session_id, auth, body) = match step {
        Step::Single {
            session: s,
            auth,
            op,
        } => (session(*s), auth_choice(*auth), single(op)),
        Step::Multi {
            session: s,
            auth,
            ops,
        } => (
            session(*s),
            auth_choice(*auth),
            TxnBody::Multi {
                ops: ops.iter().map(multi_op).collect(),
            },
        ),
        Step::NewSession => (
            0,
            vec![],
            TxnBody::CreateSession {
                timeout_ms: 1000,
                password: vec![1, 2],
            },
        ),
        Step::Close { session: s } => (session(*s), vec![], TxnBody::CloseSession),
        Step::Reap { path } => {
            let candidates = a.reap_candidates(*time);
            let (path, czxid) = if candidates.is_empty() {
                let p = pick(&PATHS, *path);
                (p.to_string(), a.stat(p).map_or(0, |s| s.czxid))
            } else {
                candidates[*path as usize % candidates.len()].clone()
            };
            (0, vec![], TxnBody::ReapNode { path, czxid })
        }
        Step::Tick { ms } => {
            *time += i64::from(*ms);
            (0, vec![], TxnBody::Noop)
        }
    };
    Txn {
        origin: 0,
        session_id,
        xid: 0,
        time_ms: *time,
        auth,
        body,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replicas_agree_across_snapshot_restore(steps in prop::collection::vec(step(), 1..80), cut in any::<prop::sample::Index>()) {
        // A prelude so most random ops land on a populated tree with live sessions.
        let create = |path: u8, mode: u8| Step::Single { session: 0, auth: 0, op: Op::Create { path, mode, data: 1, acl: 0 } };
        let mut all = vec![Step::NewSession, Step::NewSession, create(0, 0), create(1, 4), create(2, 0)];
        all.extend(steps);
        let steps = all;
        let cut = cut.index(steps.len());
        let mut a = DataTree::new();
        let mut b = DataTree::new();
        let mut sessions = Vec::new();
        let mut time = 1000i64;
        for (i, step) in steps.iter().enumerate() {
            if i == cut {
                b = DataTree::from_snapshot(&b.snapshot()).expect("own snapshot restores");
                prop_assert_eq!(b.digest(), a.digest());
            }
            let zxid = Zxid(i as u64 + 1);
            let txn = to_txn(step, &a, &sessions, &mut time);
            let bytes = txn.encode();
            prop_assert_eq!(&Txn::decode(&bytes).expect("own encoding decodes"), &txn);
            if matches!(txn.body, TxnBody::CreateSession { .. }) {
                sessions.push(zxid.0);
            }
            let out_a = a.apply(zxid, &txn);
            let out_b = b.apply(zxid, &txn);
            prop_assert_eq!(&out_a, &out_b);
            a.check_invariants();
            prop_assert_eq!(a.digest(), b.digest());
        }
        b.check_invariants();
        prop_assert_eq!(a.digest(), a.recompute_digest());
        prop_assert_eq!(b.digest(), b.recompute_digest());
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(a.snapshot(), b.snapshot());
    }
}
