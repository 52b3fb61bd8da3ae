//! ACL schemes and permissions through a real server: world, digest, ip, auth, super.

mod common;
use common::*;
use coord_client::{CreateOptions, digest_id};
use coord_proto::*;

fn acl(perms: u32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

#[test]
fn digest_acl_guards_every_op() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let alice = server.client().await;
        alice.add_auth("digest", b"alice:secret").await.unwrap();
        let bob = server.client().await;
        bob.add_auth("digest", b"bob:pw").await.unwrap();
        let anon = server.client().await;

        let only_alice = vec![acl(perms::ALL, "digest", &digest_id("alice", "secret"))];
        alice
            .create(
                "/a",
                b"x",
                CreateOptions::persistent().with_acl(only_alice.clone()),
            )
            .await
            .unwrap();
        for c in [&bob, &anon] {
            assert_eq!(
                c.get_data("/a").await.unwrap_err().code(),
                ErrorCode::NoAuth
            );
            assert_eq!(
                c.set_data("/a", b"y", None).await.unwrap_err().code(),
                ErrorCode::NoAuth
            );
            assert_eq!(
                c.get_children("/a").await.unwrap_err().code(),
                ErrorCode::NoAuth
            );
            assert_eq!(
                c.create("/a/c", b"", CreateOptions::persistent())
                    .await
                    .unwrap_err()
                    .code(),
                ErrorCode::NoAuth
            );
            assert_eq!(
                c.set_acl("/a", &Acl::open_unsafe(), None)
                    .await
                    .unwrap_err()
                    .code(),
                ErrorCode::NoAuth
            );
            // exists needs no permission (as ZooKeeper).
            assert!(c.exists("/a").await.unwrap().is_some());
        }
        alice
            .create("/a/c", b"", CreateOptions::persistent())
            .await
            .unwrap();
        assert_eq!(
            bob.delete("/a/c", None).await.unwrap_err().code(),
            ErrorCode::NoAuth
        );
        assert_eq!(alice.get_data("/a").await.unwrap().0, b"x");
        let (got, stat) = alice.get_acl("/a").await.unwrap();
        assert_eq!(got, only_alice);
        assert_eq!(stat.aversion, 0);

        // Read for everyone, the rest for alice; aversion is checked.
        let mixed = vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", &digest_id("alice", "secret")),
        ];
        assert_eq!(
            alice
                .set_acl("/a", &mixed, Some(3))
                .await
                .unwrap_err()
                .code(),
            ErrorCode::BadVersion
        );
        assert_eq!(
            alice.set_acl("/a", &mixed, Some(0)).await.unwrap().aversion,
            1
        );
        assert_eq!(anon.get_data("/a").await.unwrap().0, b"x");
        assert_eq!(
            anon.set_data("/a", b"z", None).await.unwrap_err().code(),
            ErrorCode::NoAuth
        );
    });
}

#[test]
fn auth_scheme_expands_to_the_creators_identities() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let anon = server.client().await;
        assert_eq!(
            anon.create(
                "/x",
                b"",
                CreateOptions::persistent().with_acl(Acl::creator_all())
            )
            .await
            .unwrap_err()
            .code(),
            ErrorCode::InvalidAcl
        );
        let carol = server.client().await;
        carol.add_auth("digest", b"carol:pw").await.unwrap();
        carol
            .create(
                "/c",
                b"",
                CreateOptions::persistent().with_acl(Acl::creator_all()),
            )
            .await
            .unwrap();
        let (got, _) = carol.get_acl("/c").await.unwrap();
        assert_eq!(
            got,
            vec![acl(perms::ALL, "digest", &digest_id("carol", "pw"))]
        );
        assert_eq!(
            anon.get_data("/c").await.unwrap_err().code(),
            ErrorCode::NoAuth
        );
        assert_eq!(
            anon.create(
                "/bad",
                b"",
                CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "nope", "x")])
            )
            .await
            .unwrap_err()
            .code(),
            ErrorCode::InvalidAcl
        );
        assert_eq!(
            anon.add_auth("kerberos", b"x").await.unwrap_err().code(),
            ErrorCode::AuthFailed
        );
    });
}

#[test]
fn ip_acl_matches_the_client_address() {
    let server = Coordd::start("");
    runtime().block_on(async {
        let c = server.client().await;
        c.create(
            "/lo",
            b"1",
            CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "ip", "127.0.0.0/8")]),
        )
        .await
        .unwrap();
        assert_eq!(c.get_data("/lo").await.unwrap().0, b"1");
        c.create(
            "/far",
            b"2",
            CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "ip", "10.0.0.0/8")]),
        )
        .await
        .unwrap();
        assert_eq!(
            c.get_data("/far").await.unwrap_err().code(),
            ErrorCode::NoAuth
        );
    });
}

#[test]
fn super_user_bypasses_acls() {
    let server = Coordd::start(&format!(
        "super_digest = \"{}\"",
        digest_id("super", "test")
    ));
    runtime().block_on(async {
        let owner = server.client().await;
        owner.add_auth("digest", b"dave:pw").await.unwrap();
        owner
            .create(
                "/locked",
                b"s",
                CreateOptions::persistent().with_acl(vec![acl(
                    perms::ALL,
                    "digest",
                    &digest_id("dave", "pw"),
                )]),
            )
            .await
            .unwrap();
        let admin = server.client().await;
        assert_eq!(
            admin.get_data("/locked").await.unwrap_err().code(),
            ErrorCode::NoAuth
        );
        admin.add_auth("digest", b"super:test").await.unwrap();
        assert_eq!(admin.get_data("/locked").await.unwrap().0, b"s");
        admin
            .set_acl("/locked", &Acl::open_unsafe(), None)
            .await
            .unwrap();
        admin.delete("/locked", None).await.unwrap();
    });
}
