//! Sessions, ephemeral nodes, and container / TTL reaping.

use coord_proto::{CreateMode, ErrorCode, EventType, ReplyBody, Response};
use coord_tree::TxnBody;

use crate::common::*;

fn reap(path: &str, czxid: u64) -> TxnBody {
    TxnBody::ReapNode {
        path: path.into(),
        czxid,
    }
}

#[test]
fn sessions_are_registered_at_their_zxid() {
    let mut h = Harness::new();
    let s2 = h.new_session();
    assert_eq!(s2, 2);
    assert_eq!(
        h.tree.sessions().collect::<Vec<_>>(),
        vec![(1, 5000), (2, 5000)]
    );
    assert_eq!(h.tree.session_password(2), Some(&b"pw"[..]));
    assert!(h.tree.has_session(2));
    assert!(!h.tree.has_session(3));
    assert_eq!(h.tree.session_password(3), None);
}

#[test]
fn ephemerals_belong_to_their_session_and_die_with_it() {
    let mut h = Harness::new();
    let other = h.new_session();
    h.mk("/app");
    h.mk("/app/b");
    for p in ["/z", "/app/b/e2", "/app/e1"] {
        h.ok(create_mode(p, b"", CreateMode::Ephemeral, 0));
    }
    h.txn(
        other,
        create_mode("/app/theirs", b"", CreateMode::Ephemeral, 0),
    );
    assert_eq!(h.tree.stat("/app/e1").unwrap().ephemeral_owner, S);
    assert_eq!(h.tree.stat("/app/theirs").unwrap().ephemeral_owner, other);
    assert_eq!(h.tree.stat("/app").unwrap().ephemeral_owner, 0);
    assert_eq!(
        h.tree.get_ephemerals(S, "/"),
        vec!["/app/b/e2", "/app/e1", "/z"]
    );
    assert_eq!(
        h.tree.get_ephemerals(S, "/app"),
        vec!["/app/b/e2", "/app/e1"]
    );
    assert_eq!(h.tree.get_ephemerals(S, "/app/b/"), vec!["/app/b/e2"]);
    assert_eq!(h.tree.get_ephemerals(S, "/q"), Vec::<String>::new());
    assert_eq!(h.tree.get_ephemerals(99, "/"), Vec::<String>::new());
    let zxid = h.next;
    let out = h.txn(S, TxnBody::CloseSession);
    assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
    use EventType::*;
    assert_eq!(
        out.changes,
        vec![
            ch(NodeDeleted, "/app/b/e2"),
            ch(NodeChildrenChanged, "/app/b"),
            ch(NodeDeleted, "/app/e1"),
            ch(NodeChildrenChanged, "/app"),
            ch(NodeDeleted, "/z"),
            ch(NodeChildrenChanged, "/"),
        ]
    );
    assert!(!h.tree.has_session(S));
    assert_eq!(h.tree.get_ephemerals(S, "/"), Vec::<String>::new());
    assert!(h.tree.stat("/app/theirs").is_some());
    assert_eq!(h.tree.stat("/app").unwrap().pzxid, zxid);
    // The closed session can no longer write.
    assert_eq!(
        h.run(create("/late", b"")).reply,
        ReplyBody::Err(ErrorCode::SessionExpired)
    );
    h.tree.check_invariants();
}

#[test]
fn container_is_reaped_once_emptied() {
    let mut h = Harness::new();
    let czxid = h.next;
    h.ok(create_mode("/c", b"", CreateMode::Container, 0));
    assert!(
        h.tree.reap_candidates(i64::MAX).is_empty(),
        "never had a child"
    );
    assert_eq!(h.err(reap("/c", czxid)), ErrorCode::BadArguments);
    h.mk("/c/x");
    assert!(h.tree.reap_candidates(i64::MAX).is_empty(), "has a child");
    assert_eq!(h.err(reap("/c", czxid)), ErrorCode::NotEmpty);
    h.ok(delete("/c/x", -1));
    assert_eq!(h.tree.reap_candidates(0), vec![("/c".to_string(), czxid)]);
    assert_eq!(
        h.err(reap("/c", czxid + 100)),
        ErrorCode::NoNode,
        "other incarnation"
    );
    assert_eq!(h.err(reap("/nope", czxid)), ErrorCode::NoNode);
    assert_eq!(h.err(reap("nope", czxid)), ErrorCode::InvalidPath);
    let out = h.txn(0, reap("/c", czxid));
    assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
    assert_eq!(
        out.changes,
        vec![
            ch(EventType::NodeDeleted, "/c"),
            ch(EventType::NodeChildrenChanged, "/")
        ]
    );
    assert_eq!(h.tree.stat("/c"), None);
    assert!(h.tree.reap_candidates(i64::MAX).is_empty());
    // A persistent node is never reaped.
    let p = h.mk("/p");
    assert_eq!(h.err(reap("/p", p.czxid)), ErrorCode::BadArguments);
}

#[test]
fn ttl_node_expires_after_its_ttl_since_last_change() {
    let mut h = Harness::new();
    h.time = 1000;
    let czxid = h.next;
    h.ok(create_mode("/t", b"", CreateMode::PersistentWithTtl, 100));
    assert!(
        h.tree.reap_candidates(1100).is_empty(),
        "exactly ttl is not expired"
    );
    assert_eq!(
        h.tree.reap_candidates(1101),
        vec![("/t".to_string(), czxid)]
    );
    h.time = 1050;
    h.ok(set_data("/t", b"touch", -1));
    assert!(h.tree.reap_candidates(1101).is_empty(), "mtime moved");
    assert_eq!(h.tree.reap_candidates(1151).len(), 1);
    h.mk("/t/child");
    assert!(h.tree.reap_candidates(i64::MAX).is_empty(), "has a child");
    h.ok(delete("/t/child", -1));
    // Re-checked at apply against the txn's time.
    h.time = 1150;
    assert_eq!(h.err(reap("/t", czxid)), ErrorCode::BadArguments);
    h.time = 1151;
    let out = h.txn(0, reap("/t", czxid));
    assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
    assert_eq!(h.tree.stat("/t"), None);
    // Sequential TTL nodes and extreme clocks do not overflow.
    h.ok(create_mode(
        "/s",
        b"",
        CreateMode::PersistentSequentialWithTtl,
        1,
    ));
    assert!(h.tree.reap_candidates(i64::MIN).is_empty());
    assert_eq!(h.tree.reap_candidates(i64::MAX).len(), 1);
    h.tree.check_invariants();
}

#[test]
fn reap_candidates_are_sorted_and_skip_other_kinds() {
    let mut h = Harness::new();
    for p in ["/b", "/a", "/c"] {
        h.ok(create_mode(p, b"", CreateMode::PersistentWithTtl, 1));
    }
    h.mk("/plain");
    h.ok(create_mode("/eph", b"", CreateMode::Ephemeral, 0));
    let paths: Vec<String> = h
        .tree
        .reap_candidates(i64::MAX)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(paths, vec!["/a", "/b", "/c"]);
}

/// Applies `body` for session `S` as if it came through server `origin`.
fn through(h: &mut Harness, origin: u64, body: TxnBody) -> ReplyBody {
    h.origin = origin;
    let reply = h.run(body).reply;
    h.origin = 0;
    reply
}

#[test]
fn a_session_belongs_to_the_server_it_was_created_or_last_resumed_on() {
    let mut h = Harness::new();
    h.origin = 1;
    let s = h.new_session();
    h.origin = 0;
    assert_eq!(h.tree.session_owner(s), Some(1));
    // The harness's own session predates origins: any server may act for it.
    assert_eq!(h.tree.session_owner(S), Some(0));
    assert!(matches!(
        through(&mut h, 3, create("/any", b"")),
        ReplyBody::Ok(_)
    ));

    let body = |p: &str| create(p, b"");
    let via = |h: &mut Harness, origin: u64, b: TxnBody| {
        h.origin = origin;
        let r = h.txn(s, b).reply;
        h.origin = 0;
        r
    };
    assert!(matches!(via(&mut h, 1, body("/a")), ReplyBody::Ok(_)));
    // Resumed on server 2: its old connection on server 1 no longer writes.
    assert_eq!(
        via(&mut h, 2, TxnBody::MoveSession),
        ReplyBody::Ok(Response::Empty)
    );
    assert_eq!(h.tree.session_owner(s), Some(2));
    let digest = h.tree.digest();
    assert_eq!(
        via(&mut h, 1, body("/b")),
        ReplyBody::Err(ErrorCode::SessionMoved)
    );
    assert_eq!(
        via(&mut h, 1, TxnBody::CloseSession),
        ReplyBody::Err(ErrorCode::SessionMoved)
    );
    assert_eq!(h.tree.digest(), digest, "a refused txn changed the tree");
    assert!(h.tree.has_session(s));
    assert!(matches!(via(&mut h, 2, body("/b")), ReplyBody::Ok(_)));
    // A txn with no known origin (written by an older build) is not refused.
    assert!(matches!(via(&mut h, 0, body("/c")), ReplyBody::Ok(_)));
    // Back to server 1, which owns it again.
    assert_eq!(
        via(&mut h, 1, TxnBody::MoveSession),
        ReplyBody::Ok(Response::Empty)
    );
    assert_eq!(
        via(&mut h, 2, body("/d")),
        ReplyBody::Err(ErrorCode::SessionMoved)
    );
    // The leader's expiry comes from whichever server leads.
    assert_eq!(
        via(&mut h, 3, TxnBody::ExpireSession),
        ReplyBody::Ok(Response::Empty)
    );
    assert!(!h.tree.has_session(s));
    assert_eq!(
        via(&mut h, 1, TxnBody::MoveSession),
        ReplyBody::Err(ErrorCode::SessionExpired)
    );
}

#[test]
fn session_owners_survive_a_snapshot() {
    let mut h = Harness::new();
    h.origin = 1;
    let s = h.new_session();
    h.origin = 2;
    assert_eq!(
        h.txn(s, TxnBody::MoveSession).reply,
        ReplyBody::Ok(Response::Empty)
    );
    h.origin = 0;
    let restored = coord_tree::DataTree::from_snapshot(&h.tree.snapshot()).unwrap();
    assert_eq!(restored.session_owner(s), Some(2));
    assert_eq!(restored.session_owner(S), Some(0));
    h.tree = restored;
    h.origin = 1;
    assert_eq!(
        h.txn(s, create("/x", b"")).reply,
        ReplyBody::Err(ErrorCode::SessionMoved)
    );
}
