//! Multi: ops in order, later ops see earlier ones, all or nothing.

use coord_proto::{
    Acl, CreateMode, ErrorCode, EventType, MultiOp, MultiResult, ReplyBody, Response, Stat,
};
use coord_tree::TxnBody;

use crate::common::*;

fn mcreate(path: &str, mode: CreateMode) -> MultiOp {
    MultiOp::Create {
        path: path.into(),
        data: b"d".to_vec(),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms: 0,
    }
}

#[test]
fn success_applies_in_order_with_all_changes() {
    let mut h = Harness::new();
    let zxid = h.next;
    let ops = vec![
        mcreate("/a", CreateMode::Persistent),
        mcreate("/a/b", CreateMode::Persistent),
        MultiOp::SetData {
            path: "/a".into(),
            data: b"new".to_vec(),
            version: 0,
        },
        MultiOp::Check {
            path: "/a".into(),
            version: 1,
        },
        mcreate("/a/s-", CreateMode::PersistentSequential),
        MultiOp::Delete {
            path: "/a/b".into(),
            version: -1,
        },
    ];
    let out = h.run(TxnBody::Multi { ops });
    let created = |data_length| Stat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        ctime: 1000,
        mtime: 1000,
        data_length,
        ..Stat::default()
    };
    let a_after_set = Stat {
        version: 1,
        data_length: 3,
        cversion: 1,
        num_children: 1,
        ..created(3)
    };
    assert_eq!(
        out.reply,
        ReplyBody::Ok(Response::Multi {
            results: vec![
                MultiResult::Create {
                    path: "/a".into(),
                    stat: created(1)
                },
                MultiResult::Create {
                    path: "/a/b".into(),
                    stat: created(1)
                },
                MultiResult::SetData { stat: a_after_set },
                MultiResult::Check,
                MultiResult::Create {
                    path: "/a/s-0000000001".into(),
                    stat: created(1)
                },
                MultiResult::Delete,
            ]
        })
    );
    use EventType::*;
    assert_eq!(
        out.changes,
        vec![
            ch(NodeCreated, "/a"),
            ch(NodeChildrenChanged, "/"),
            ch(NodeCreated, "/a/b"),
            ch(NodeChildrenChanged, "/a"),
            ch(NodeDataChanged, "/a"),
            ch(NodeCreated, "/a/s-0000000001"),
            ch(NodeChildrenChanged, "/a"),
            ch(NodeDeleted, "/a/b"),
            ch(NodeChildrenChanged, "/a"),
        ]
    );
    let a = h.tree.stat("/a").unwrap();
    assert_eq!((a.cversion, a.num_children, a.version), (3, 1, 1));
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
}

#[test]
fn empty_multi_succeeds() {
    let mut h = Harness::new();
    assert_eq!(
        h.ok(TxnBody::Multi { ops: vec![] }),
        Response::Multi { results: vec![] }
    );
}

#[test]
fn failure_changes_nothing_and_reports_per_op() {
    let mut h = Harness::new();
    h.mk("/p");
    h.mk("/p/old");
    h.ok(set_data("/p", b"keep", -1));
    h.ok(create_mode("/e", b"", CreateMode::Ephemeral, 0));
    h.ok(create_mode("/c", b"", CreateMode::Container, 0));
    let ops = vec![
        mcreate("/p/new", CreateMode::Persistent),
        mcreate("/p/new/deep", CreateMode::Persistent),
        mcreate("/p/seq-", CreateMode::EphemeralSequential),
        mcreate("/c/x", CreateMode::Persistent),
        MultiOp::Delete {
            path: "/p/old".into(),
            version: 0,
        },
        MultiOp::Delete {
            path: "/e".into(),
            version: -1,
        },
        MultiOp::SetData {
            path: "/p".into(),
            data: b"lost".to_vec(),
            version: -1,
        },
        MultiOp::Check {
            path: "/p".into(),
            version: 7,
        },
        MultiOp::SetData {
            path: "/p".into(),
            data: b"never".to_vec(),
            version: -1,
        },
        MultiOp::Delete {
            path: "/nope".into(),
            version: -1,
        },
    ];
    let before = dump(&h.tree);
    let ephemerals = h.tree.get_ephemerals(S, "/");
    let candidates = h.tree.reap_candidates(i64::MAX);
    let out = h.run(TxnBody::Multi { ops });
    let mut results = vec![
        MultiResult::Error {
            code: ErrorCode::Ok
        };
        7
    ];
    results.push(MultiResult::Error {
        code: ErrorCode::BadVersion,
    });
    results.extend(vec![
        MultiResult::Error {
            code: ErrorCode::RuntimeInconsistency
        };
        2
    ]);
    assert_eq!(
        out.reply,
        ReplyBody::MultiErr {
            code: ErrorCode::BadVersion,
            results
        }
    );
    assert!(out.changes.is_empty());
    assert_eq!(dump(&h.tree), before);
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
    assert_eq!(h.tree.get_ephemerals(S, "/"), ephemerals);
    assert_eq!(h.tree.reap_candidates(i64::MAX), candidates);
    // The rolled-back sequential create did not consume a sequence number.
    match h.ok(create_mode(
        "/p/seq-",
        b"",
        CreateMode::PersistentSequential,
        0,
    )) {
        Response::Create { path, .. } => assert_eq!(path, "/p/seq-0000000001"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_op_kind_can_fail_the_multi() {
    let mut h = Harness::new();
    h.mk("/a");
    h.mk("/a/b");
    let cases = [
        (mcreate("/a", CreateMode::Persistent), ErrorCode::NodeExists),
        (mcreate("/x/y", CreateMode::Persistent), ErrorCode::NoNode),
        (
            mcreate("bad", CreateMode::Persistent),
            ErrorCode::InvalidPath,
        ),
        (
            MultiOp::Delete {
                path: "/a".into(),
                version: -1,
            },
            ErrorCode::NotEmpty,
        ),
        (
            MultiOp::Delete {
                path: "/a/b".into(),
                version: 3,
            },
            ErrorCode::BadVersion,
        ),
        (
            MultiOp::SetData {
                path: "/zz".into(),
                data: vec![],
                version: -1,
            },
            ErrorCode::NoNode,
        ),
        (
            MultiOp::SetData {
                path: "/a".into(),
                data: vec![],
                version: 9,
            },
            ErrorCode::BadVersion,
        ),
        (
            MultiOp::Check {
                path: "/zz".into(),
                version: -1,
            },
            ErrorCode::NoNode,
        ),
        (
            MultiOp::Check {
                path: "/a".into(),
                version: 5,
            },
            ErrorCode::BadVersion,
        ),
    ];
    for (op, code) in cases {
        let before = h.tree.digest();
        let out = h.run(TxnBody::Multi {
            ops: vec![
                MultiOp::SetData {
                    path: "/a".into(),
                    data: b"x".to_vec(),
                    version: -1,
                },
                op,
            ],
        });
        assert_eq!(
            out.reply,
            ReplyBody::MultiErr {
                code,
                results: vec![
                    MultiResult::Error {
                        code: ErrorCode::Ok
                    },
                    MultiResult::Error { code }
                ]
            }
        );
        assert_eq!(h.tree.digest(), before);
        assert_eq!(h.tree.stat("/a").unwrap().version, 0);
    }
}

#[test]
fn first_op_failing_marks_the_rest_inconsistent() {
    let mut h = Harness::new();
    let out = h.run(TxnBody::Multi {
        ops: vec![
            MultiOp::Check {
                path: "/zz".into(),
                version: -1,
            },
            mcreate("/a", CreateMode::Persistent),
        ],
    });
    assert_eq!(
        out.reply,
        ReplyBody::MultiErr {
            code: ErrorCode::NoNode,
            results: vec![
                MultiResult::Error {
                    code: ErrorCode::NoNode
                },
                MultiResult::Error {
                    code: ErrorCode::RuntimeInconsistency
                }
            ]
        }
    );
    assert_eq!(h.tree.stat("/a"), None);
}
