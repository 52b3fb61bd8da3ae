//! ACL schemes, `auth` expansion, the super user, and NoAuth for every op kind.

use coord_proto::{Acl, ErrorCode, Id, MultiOp, MultiResult, ReplyBody, perms};
use coord_tree::{TreeError, TxnBody, digest_id};

use crate::common::*;

#[test]
fn digest_id_matches_zookeeper() {
    assert_eq!(
        digest_id("super:test").unwrap(),
        "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    );
    // Only the first ':' splits user from password.
    assert!(digest_id("bob:pa:ss").unwrap().starts_with("bob:"));
    assert_ne!(
        digest_id("bob:pa:ss").unwrap(),
        digest_id("bob:pa").unwrap()
    );
    assert!(matches!(
        digest_id("nocolon"),
        Err(TreeError::BadCredentials)
    ));
}

/// A harness whose /n has `node_acl`, created by the super user.
fn with_node(node_acl: Vec<Acl>) -> Harness {
    let mut h = Harness::new();
    h.auth = superuser();
    h.ok(create_acl("/n", node_acl));
    h.auth = vec![];
    h
}

#[test]
fn world_scheme() {
    let mut h = with_node(vec![acl(perms::READ, "world", "anyone")]);
    assert!(h.tree.get_data("/n", &[]).is_ok());
    assert_eq!(h.err(set_data("/n", b"x", -1)), ErrorCode::NoAuth);
}

#[test]
fn digest_scheme() {
    let bob = digest_id("bob:secret").unwrap();
    let mut h = with_node(vec![acl(perms::ALL, "digest", &bob)]);
    let as_bob = [Id::new("digest", bob.as_str()), Id::new("ip", "1.2.3.4")];
    let as_eve = [Id::new("digest", digest_id("eve:secret").unwrap().as_str())];
    assert!(h.tree.get_data("/n", &as_bob).is_ok());
    assert_eq!(h.tree.get_data("/n", &as_eve), Err(ErrorCode::NoAuth));
    assert_eq!(h.tree.get_data("/n", &[]), Err(ErrorCode::NoAuth));
    // A matching id under another scheme does not count.
    assert_eq!(
        h.tree.get_data("/n", &[Id::new("x509", bob.as_str())]),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(h.err(set_data("/n", b"x", -1)), ErrorCode::NoAuth);
    h.auth = as_bob.to_vec();
    h.ok(set_data("/n", b"x", -1));
}

#[test]
fn ip_scheme_v4_and_v6() {
    let h = with_node(vec![
        acl(perms::READ, "ip", "10.0.0.0/8"),
        acl(perms::READ, "ip", "2001:db8::/32"),
    ]);
    let ip = |a: &str| [Id::new("ip", a)];
    assert!(h.tree.get_data("/n", &ip("10.200.3.4")).is_ok());
    assert_eq!(
        h.tree.get_data("/n", &ip("11.0.0.1")),
        Err(ErrorCode::NoAuth)
    );
    assert!(h.tree.get_data("/n", &ip("2001:db8:ffff::1")).is_ok());
    assert_eq!(
        h.tree.get_data("/n", &ip("2001:db9::1")),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.tree.get_data("/n", &ip("garbage")),
        Err(ErrorCode::NoAuth)
    );
    // An ip id under the digest scheme does not match an ip entry.
    assert_eq!(
        h.tree.get_data("/n", &[Id::new("digest", "10.0.0.1")]),
        Err(ErrorCode::NoAuth)
    );
    let exact = with_node(vec![acl(perms::READ, "ip", "192.168.1.7")]);
    assert!(exact.tree.get_data("/n", &ip("192.168.1.7")).is_ok());
    assert_eq!(
        exact.tree.get_data("/n", &ip("192.168.1.8")),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn x509_scheme() {
    let h = with_node(vec![acl(perms::READ, "x509", "CN=alice,O=coord")]);
    assert!(
        h.tree
            .get_data("/n", &[Id::new("x509", "CN=alice,O=coord")])
            .is_ok()
    );
    assert_eq!(
        h.tree.get_data("/n", &[Id::new("x509", "CN=bob,O=coord")]),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn invalid_acls() {
    let mut h = Harness::new();
    let bad = [
        vec![],
        vec![acl(perms::ALL + 1, "world", "anyone")],
        vec![acl(1, "world", "someone")],
        vec![acl(1, "digest", "nohash")],
        vec![acl(1, "ip", "300.1.1.1")],
        vec![acl(1, "ip", "10.0.0.0/40")],
        vec![acl(1, "x509", "")],
        vec![acl(1, "kerberos", "x")],
        vec![acl(1, "world", "anyone"), acl(1, "nope", "x")],
    ];
    for a in bad {
        assert_eq!(
            h.err(create_acl("/x", a.clone())),
            ErrorCode::InvalidAcl,
            "{a:?}"
        );
    }
}

#[test]
fn auth_scheme_expands_to_the_creators_ids() {
    let mut h = Harness::new();
    let bob = digest_id("bob:pw").unwrap();
    h.auth = vec![
        Id::new("ip", "1.2.3.4"),
        Id::new("digest", bob.as_str()),
        Id::new("x509", "CN=bob"),
    ];
    h.ok(create_acl("/n", Acl::creator_all()));
    let (got, _) = h.tree.get_acl("/n", &h.auth).unwrap();
    assert_eq!(
        got,
        vec![
            acl(perms::ALL, "digest", &bob),
            acl(perms::ALL, "x509", "CN=bob")
        ]
    );
    // Duplicates collapse.
    h.ok(create_acl(
        "/m",
        vec![acl(perms::ALL, "digest", &bob), acl(perms::ALL, "auth", "")],
    ));
    assert_eq!(h.tree.get_acl("/m", &h.auth).unwrap().0.len(), 2);
    // No authenticated identity (ip does not count): refused.
    h.auth = vec![Id::new("ip", "1.2.3.4")];
    assert_eq!(
        h.err(create_acl("/o", Acl::creator_all())),
        ErrorCode::InvalidAcl
    );
    assert_eq!(
        h.err(set_acl("/n", Acl::creator_all(), -1)),
        ErrorCode::InvalidAcl
    );
}

#[test]
fn super_bypasses_every_check() {
    let mut h = with_node(vec![acl(perms::READ, "digest", "nobody:x")]);
    h.auth = superuser();
    assert!(h.tree.get_data("/n", &h.auth).is_ok());
    assert!(h.tree.get_acl("/n", &h.auth).is_ok());
    h.ok(create("/n/c", b""));
    h.ok(set_data("/n/c", b"x", -1));
    h.ok(set_data("/n", b"x", -1));
    h.ok(delete("/n/c", -1));
    h.ok(set_acl("/n", Acl::read_unsafe(), -1));
    h.ok(delete("/n", -1));
    // Only ("super", "") is super.
    let h2 = with_node(vec![acl(perms::WRITE, "world", "anyone")]);
    assert_eq!(
        h2.tree.get_data("/n", &[Id::new("super", "x")]),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn no_auth_for_each_op_kind() {
    // /n grants everything but the perm under test; its child /n/c is open.
    for missing in [
        perms::READ,
        perms::WRITE,
        perms::CREATE,
        perms::DELETE,
        perms::ADMIN,
    ] {
        let mut h = with_node(vec![acl(perms::ALL & !missing, "world", "anyone")]);
        h.auth = superuser();
        h.ok(create("/n/c", b""));
        h.auth = vec![];
        let check = |h: &mut Harness, body: TxnBody, needs: u32| {
            let before = h.tree.digest();
            let out = h.run(body.clone());
            let denied = match &out.reply {
                ReplyBody::Err(code) => *code == ErrorCode::NoAuth,
                ReplyBody::MultiErr { code, .. } => *code == ErrorCode::NoAuth,
                ReplyBody::Ok(_) => false,
            };
            assert_eq!(
                denied,
                needs == missing,
                "missing {missing}: {body:?} gave {:?}",
                out.reply
            );
            if denied {
                assert_eq!(h.tree.digest(), before);
            }
        };
        check(&mut h, create("/n/d", b""), perms::CREATE);
        check(&mut h, set_data("/n", b"v", -1), perms::WRITE);
        check(
            &mut h,
            TxnBody::Multi {
                ops: vec![MultiOp::Check {
                    path: "/n".into(),
                    version: -1,
                }],
            },
            perms::READ,
        );
        check(&mut h, delete("/n/c", -1), perms::DELETE);
        check(
            &mut h,
            set_acl(
                "/n",
                vec![acl(perms::ALL & !missing, "world", "anyone")],
                -1,
            ),
            perms::ADMIN,
        );
        let read = h.tree.get_data("/n", &[]);
        assert_eq!(read.is_err(), missing == perms::READ);
        assert_eq!(
            h.tree.get_children("/n", &[]).is_err(),
            missing == perms::READ
        );
        assert_eq!(
            h.tree.all_children_number("/n", &[]).is_err(),
            missing == perms::READ
        );
        // get_acl needs READ or ADMIN: missing one of them is fine.
        assert!(h.tree.get_acl("/n", &[]).is_ok());
        // exists never checks.
        assert!(h.tree.stat("/n").is_some());
    }
    let h = with_node(vec![acl(perms::WRITE, "world", "anyone")]);
    assert_eq!(h.tree.get_acl("/n", &[]), Err(ErrorCode::NoAuth));
    let h = with_node(vec![acl(perms::ADMIN, "world", "anyone")]);
    assert!(h.tree.get_acl("/n", &[]).is_ok());
}

#[test]
fn delete_checks_parent_acl_before_the_node() {
    let mut h = with_node(vec![acl(perms::READ | perms::CREATE, "world", "anyone")]);
    // No DELETE on /n: NoAuth even though /n/missing does not exist (ZooKeeper's order).
    assert_eq!(h.err(delete("/n/missing", -1)), ErrorCode::NoAuth);
    let out = h.run(TxnBody::Multi {
        ops: vec![MultiOp::Delete {
            path: "/n/missing".into(),
            version: -1,
        }],
    });
    assert_eq!(
        out.reply,
        ReplyBody::MultiErr {
            code: ErrorCode::NoAuth,
            results: vec![MultiResult::Error {
                code: ErrorCode::NoAuth
            }]
        }
    );
}
