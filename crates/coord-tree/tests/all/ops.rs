//! Single-op txns: success effects, every error path, reads.

use coord_proto::{
    Acl, CreateMode, ErrorCode, EventType, ReadOp, ReadResult, ReplyBody, Response, Stat, Zxid,
};
use coord_tree::{DataTree, MAX_TTL_MS, Txn, TxnBody};

use crate::common::*;

#[test]
fn new_tree_is_just_the_root() {
    let t = DataTree::new();
    assert_eq!(t.stat("/"), Some(Stat::default()));
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.last_applied(), Zxid(0));
    assert_eq!(t.get_acl("/", &[]).unwrap().0, Acl::open_unsafe());
    assert_eq!(t.digest(), t.recompute_digest());
    assert_eq!(t.sessions().count(), 0);
}

#[test]
fn create_sets_stat_parent_and_changes() {
    let mut h = Harness::new();
    h.time = 4242;
    let out = h.run(create("/a", b"hello"));
    let stat = Stat {
        czxid: 2,
        mzxid: 2,
        pzxid: 2,
        ctime: 4242,
        mtime: 4242,
        data_length: 5,
        ..Stat::default()
    };
    assert_eq!(
        out.reply,
        ReplyBody::Ok(Response::Create {
            path: "/a".into(),
            stat
        })
    );
    assert_eq!(
        out.changes,
        vec![
            ch(EventType::NodeCreated, "/a"),
            ch(EventType::NodeChildrenChanged, "/")
        ]
    );
    assert_eq!(h.tree.stat("/a"), Some(stat));
    let root = h.tree.stat("/").unwrap();
    assert_eq!(
        (root.cversion, root.pzxid, root.num_children, root.mzxid),
        (1, 2, 1, 0)
    );
    assert_eq!(
        h.tree.get_data("/a", &[]).unwrap(),
        (b"hello".to_vec(), stat)
    );
    assert_eq!(h.tree.last_applied(), Zxid(2));
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
    // Nested create under a persistent node.
    h.mk("/a/b");
    assert_eq!(h.tree.stat("/a").unwrap().num_children, 1);
    assert_eq!(h.tree.node_count(), 3);
}

#[test]
fn create_errors() {
    let mut h = Harness::new();
    h.mk("/a");
    for bad in ["a", "/a/", "/a//b", "/a/./b", "", "/a\u{0}b"] {
        assert_eq!(h.err(create(bad, b"")), ErrorCode::InvalidPath, "{bad:?}");
    }
    assert_eq!(h.err(create("/x/y", b"")), ErrorCode::NoNode);
    assert_eq!(h.err(create("/a", b"")), ErrorCode::NodeExists);
    assert_eq!(h.err(create("/", b"")), ErrorCode::NodeExists);
    h.ok(create_mode("/e", b"", CreateMode::Ephemeral, 0));
    assert_eq!(
        h.err(create("/e/c", b"")),
        ErrorCode::NoChildrenForEphemerals
    );
    for ttl in [0, -5, MAX_TTL_MS + 1] {
        assert_eq!(
            h.err(create_mode("/t", b"", CreateMode::PersistentWithTtl, ttl)),
            ErrorCode::BadArguments
        );
        assert_eq!(
            h.err(create_mode(
                "/t",
                b"",
                CreateMode::PersistentSequentialWithTtl,
                ttl
            )),
            ErrorCode::BadArguments
        );
    }
    assert_eq!(h.err(create_acl("/z", vec![])), ErrorCode::InvalidAcl);
    // Precedence as ZooKeeper: bad ACL before a missing parent; existing before ephemeral parent.
    assert_eq!(h.err(create_acl("/x/y", vec![])), ErrorCode::InvalidAcl);
    // Non-TTL modes ignore the ttl.
    h.ok(create_mode("/p", b"", CreateMode::Persistent, -1));
}

#[test]
fn sequential_names_use_parent_cversion() {
    let mut h = Harness::new();
    h.mk("/q");
    let name = |r: Response| match r {
        Response::Create { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        name(h.ok(create_mode(
            "/q/n-",
            b"",
            CreateMode::PersistentSequential,
            0
        ))),
        "/q/n-0000000000"
    );
    assert_eq!(
        name(h.ok(create_mode(
            "/q/n-",
            b"",
            CreateMode::EphemeralSequential,
            0
        ))),
        "/q/n-0000000001"
    );
    h.mk("/q/x");
    h.ok(delete("/q/x", -1));
    // Create and delete both bumped cversion (now 4).
    assert_eq!(
        name(h.ok(create_mode("/q/", b"", CreateMode::PersistentSequential, 0))),
        "/q/0000000004"
    );
    assert_eq!(
        name(h.ok(create_mode(
            "/q/t",
            b"",
            CreateMode::PersistentSequentialWithTtl,
            10
        ))),
        "/q/t0000000005"
    );
    assert_eq!(
        name(h.ok(create_mode("/s", b"", CreateMode::PersistentSequential, 0))),
        "/s0000000001"
    );
    assert_eq!(h.tree.stat("/q/n-0000000001").unwrap().ephemeral_owner, S);
    assert_eq!(
        h.err(create_mode(
            "/nope/s",
            b"",
            CreateMode::PersistentSequential,
            0
        )),
        ErrorCode::NoNode
    );
}

#[test]
fn delete_success_and_errors() {
    let mut h = Harness::new();
    h.mk("/a");
    h.mk("/a/b");
    h.ok(set_data("/a/b", b"x", -1));
    assert_eq!(h.err(delete("/a", -1)), ErrorCode::NotEmpty);
    assert_eq!(h.err(delete("/a/b", 0)), ErrorCode::BadVersion);
    assert_eq!(h.err(delete("/a/zz", -1)), ErrorCode::NoNode);
    assert_eq!(h.err(delete("/q/zz", -1)), ErrorCode::NoNode);
    assert_eq!(h.err(delete("/", -1)), ErrorCode::BadArguments);
    assert_eq!(h.err(delete("/a/", -1)), ErrorCode::InvalidPath);
    let zxid = h.next;
    let out = h.run(delete("/a/b", 1));
    assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
    assert_eq!(
        out.changes,
        vec![
            ch(EventType::NodeDeleted, "/a/b"),
            ch(EventType::NodeChildrenChanged, "/a")
        ]
    );
    assert_eq!(h.tree.stat("/a/b"), None);
    let a = h.tree.stat("/a").unwrap();
    assert_eq!((a.cversion, a.pzxid, a.num_children), (2, zxid, 0));
    h.ok(delete("/a", 0));
    assert_eq!(h.tree.node_count(), 1);
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
}

#[test]
fn set_data_success_and_errors() {
    let mut h = Harness::new();
    let created = h.mk("/a");
    h.time = 5000;
    let zxid = h.next;
    let out = h.run(set_data("/a", b"abc", 0));
    let stat = Stat {
        mzxid: zxid,
        mtime: 5000,
        version: 1,
        data_length: 3,
        ..created
    };
    assert_eq!(out.reply, ReplyBody::Ok(Response::Stat { stat }));
    assert_eq!(out.changes, vec![ch(EventType::NodeDataChanged, "/a")]);
    assert_eq!(h.tree.get_data("/a", &[]).unwrap(), (b"abc".to_vec(), stat));
    assert_eq!(h.err(set_data("/a", b"x", 0)), ErrorCode::BadVersion);
    assert_eq!(h.err(set_data("/b", b"x", -1)), ErrorCode::NoNode);
    assert_eq!(h.err(set_data("b", b"x", -1)), ErrorCode::InvalidPath);
    h.ok(set_data("/a", b"", -1));
    assert_eq!(h.tree.stat("/a").unwrap().version, 2);
    h.ok(set_data("/", b"root", -1));
    assert_eq!(h.tree.get_data("/", &[]).unwrap().0, b"root");
}

#[test]
fn set_acl_success_and_errors() {
    let mut h = Harness::new();
    let created = h.mk("/a");
    let new_acl = vec![acl(1, "world", "anyone"), acl(31, "ip", "10.0.0.0/8")];
    let out = h.run(set_acl("/a", new_acl.clone(), 0));
    let stat = Stat {
        aversion: 1,
        ..created
    };
    assert_eq!(out.reply, ReplyBody::Ok(Response::Stat { stat }));
    assert!(out.changes.is_empty(), "set_acl fires no watch");
    assert_eq!(h.tree.get_acl("/a", &[]).unwrap(), (new_acl, stat));
    // Only the 10/8 network may administer /a now.
    assert_eq!(
        h.err(set_acl("/a", Acl::open_unsafe(), -1)),
        ErrorCode::NoAuth
    );
    h.auth = vec![coord_proto::Id::new("ip", "10.0.0.1")];
    assert_eq!(
        h.err(set_acl("/a", Acl::open_unsafe(), 0)),
        ErrorCode::BadVersion
    );
    assert_eq!(
        h.err(set_acl("/b", Acl::open_unsafe(), -1)),
        ErrorCode::NoNode
    );
    assert_eq!(h.err(set_acl("/a", vec![], -1)), ErrorCode::InvalidAcl);
    assert_eq!(
        h.err(set_acl("/a", vec![acl(1, "world", "everyone")], -1)),
        ErrorCode::InvalidAcl
    );
    assert_eq!(
        h.err(set_acl("//", Acl::open_unsafe(), -1)),
        ErrorCode::InvalidPath
    );
}

#[test]
fn writes_need_a_live_session() {
    let mut h = Harness::new();
    h.mk("/a");
    let bodies = [
        create("/b", b""),
        delete("/a", -1),
        set_data("/a", b"", -1),
        set_acl("/a", Acl::open_unsafe(), -1),
        TxnBody::Multi { ops: vec![] },
    ];
    for body in bodies {
        let digest = h.tree.digest();
        let out = h.txn(77, body);
        assert_eq!(out.reply, ReplyBody::Err(ErrorCode::SessionExpired));
        assert_eq!(h.tree.digest(), digest);
    }
    // Noop and closing an unknown session succeed and change nothing.
    for body in [TxnBody::Noop, TxnBody::CloseSession] {
        let digest = h.tree.digest();
        let out = h.txn(77, body);
        assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
        assert!(out.changes.is_empty());
        assert_eq!(h.tree.digest(), digest);
    }
    assert_eq!(h.tree.last_applied(), Zxid(h.next - 1));
}

#[test]
#[should_panic(expected = "out of order")]
fn apply_out_of_order_is_a_caller_bug() {
    let mut t = DataTree::new();
    let noop = Txn {
        origin: 0,
        session_id: 0,
        xid: 0,
        time_ms: 0,
        auth: vec![],
        body: TxnBody::Noop,
    };
    t.apply(Zxid(5), &noop);
    t.apply(Zxid(5), &noop);
}

#[test]
fn reads() {
    let mut h = Harness::new();
    for p in ["/c", "/c/b", "/c/a", "/c/a/x", "/c/a/x/y", "/c/aa"] {
        h.mk(p);
    }
    h.ok(set_data("/c/a", b"A", -1));
    let (children, stat) = h.tree.get_children("/c", &[]).unwrap();
    assert_eq!(children, vec!["a", "aa", "b"]);
    assert_eq!(stat, h.tree.stat("/c").unwrap());
    assert_eq!(h.tree.get_children("/nope", &[]), Err(ErrorCode::NoNode));
    assert_eq!(h.tree.get_data("/nope", &[]), Err(ErrorCode::NoNode));
    assert_eq!(h.tree.get_acl("/nope", &[]), Err(ErrorCode::NoNode));
    assert_eq!(h.tree.stat("/nope"), None);
    assert_eq!(h.tree.all_children_number("/c", &[]), Ok(5));
    assert_eq!(h.tree.all_children_number("/c/a", &[]), Ok(2));
    assert_eq!(h.tree.all_children_number("/", &[]), Ok(6));
    assert_eq!(h.tree.all_children_number("/c/b", &[]), Ok(0));
    assert_eq!(
        h.tree.all_children_number("/z", &[]),
        Err(ErrorCode::NoNode)
    );
    let results = h.tree.multi_read(
        &[
            ReadOp::GetData {
                path: "/c/a".into(),
            },
            ReadOp::GetChildren {
                path: "/c/a".into(),
            },
            ReadOp::GetData { path: "/zz".into() },
            ReadOp::GetChildren { path: "/zz".into() },
        ],
        &[],
    );
    assert_eq!(
        results,
        vec![
            ReadResult::Data {
                data: b"A".to_vec(),
                stat: h.tree.stat("/c/a").unwrap()
            },
            ReadResult::Children {
                children: vec!["x".into()]
            },
            ReadResult::Error {
                code: ErrorCode::NoNode
            },
            ReadResult::Error {
                code: ErrorCode::NoNode
            },
        ]
    );
    assert_eq!(h.tree.node_count(), 7);
}
