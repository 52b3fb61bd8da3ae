//! Client certificates and the x509 ACL scheme, end to end through a real server in each
//! `[tls] client_auth` mode: `none`, `optional`, `required`. A verified certificate's
//! subject (`CN=alice`) is the session's `x509` identity, `x509:CN=alice` ACLs guard nodes,
//! `auth` ACLs expand to it, and nobody can claim it with `add_auth`.

mod common;
use common::*;
use coord_client::{Client, ClientConfig, CreateOptions};
use coord_proto::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn acl(perms: u32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

/// Issues `name`'s certificate from the CA key next to `ca_cert`; returns (cert, key).
fn issue(ca_cert: &Path, name: &str, out: &Path) -> (PathBuf, PathBuf) {
    let ca_key = ca_cert.with_file_name("ca.key");
    let (cert, key) = (
        out.join(format!("{name}.pem")),
        out.join(format!("{name}.key")),
    );
    coord_server::tls::issue_client_cert(&ca_key, name, &cert, &key).expect("issue");
    (cert, key)
}

fn with_cert(server: &Coordd, cert: &(PathBuf, PathBuf)) -> ClientConfig {
    server
        .client_config()
        .connect_timeout(Duration::from_secs(3))
        .client_cert(&cert.0, &cert.1)
        .expect("client certificate")
}

async fn connect(cfg: ClientConfig) -> Result<Client, coord_client::Error> {
    Client::connect(cfg).await
}

/// alice's node: only `x509:CN=alice` may do anything.
async fn alices_node(alice: &Client) {
    alice
        .create(
            "/alice",
            b"a",
            CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "x509", "CN=alice")]),
        )
        .await
        .unwrap();
    assert_eq!(alice.get_data("/alice").await.unwrap().0, b"a");
    alice.set_data("/alice", b"b", None).await.unwrap();
    // An `auth` ACL expands to the creator's x509 identity.
    alice
        .create(
            "/alice-auth",
            b"",
            CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "auth", "")]),
        )
        .await
        .unwrap();
    let (got, _) = alice.get_acl("/alice-auth").await.unwrap();
    assert_eq!(got, vec![acl(perms::ALL, "x509", "CN=alice")]);
}

async fn denied(c: &Client, who: &str) {
    assert_eq!(
        c.get_data("/alice").await.unwrap_err().code(),
        ErrorCode::NoAuth,
        "{who} read alice's node"
    );
    assert_eq!(
        c.set_data("/alice", b"x", None).await.unwrap_err().code(),
        ErrorCode::NoAuth,
        "{who} wrote alice's node"
    );
}

#[test]
fn optional_client_certificates_give_x509_identities() {
    let server = Coordd::start("[tls]\nclient_auth = \"optional\"");
    let dir = tempfile::tempdir().unwrap();
    let alice = issue(&server.ca_path(), "alice", dir.path());
    let bob = issue(&server.ca_path(), "bob", dir.path());
    let stranger_ca = coord_server::tls::ensure_ca(&dir.path().join("other")).unwrap();
    let mallory = issue(&stranger_ca.0, "alice", &dir.path().join("other"));
    runtime().block_on(async {
        let a = connect(with_cert(&server, &alice)).await.unwrap();
        alices_node(&a).await;
        let b = connect(with_cert(&server, &bob)).await.unwrap();
        denied(&b, "bob").await;
        // No certificate: still connects (optional), as nobody in particular.
        let anon = server.client().await;
        denied(&anon, "a client without a certificate").await;
        // Nobody claims an x509 identity by add_auth.
        assert_eq!(
            anon.add_auth("x509", b"CN=alice").await.unwrap_err().code(),
            ErrorCode::AuthFailed
        );
        denied(&anon, "add_auth x509").await;
        // A certificate named alice from another CA fails the handshake.
        let err = connect(with_cert(&server, &mallory)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConnectionLoss, "{err}");
        // alice is still served.
        assert_eq!(a.get_data("/alice").await.unwrap().0, b"b");
    });
}

#[test]
fn required_client_certificates_refuse_clients_without_one() {
    let server = Coordd::start("[tls]\nclient_auth = \"required\"");
    let dir = tempfile::tempdir().unwrap();
    let alice = issue(&server.ca_path(), "alice", dir.path());
    let stranger_ca = coord_server::tls::ensure_ca(&dir.path().join("other")).unwrap();
    let mallory = issue(&stranger_ca.0, "alice", &dir.path().join("other"));
    runtime().block_on(async {
        let a = connect(with_cert(&server, &alice)).await.unwrap();
        alices_node(&a).await;
        let without = server
            .client_config()
            .connect_timeout(Duration::from_secs(3));
        let err = connect(without).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConnectionLoss, "{err}");
        assert!(
            err.to_string().contains("handshake"),
            "the error names the TLS handshake: {err}"
        );
        let err = connect(with_cert(&server, &mallory)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConnectionLoss, "{err}");
        // The server still serves alice after refusing the others.
        assert_eq!(a.get_data("/alice").await.unwrap().0, b"b");
    });
}

#[test]
fn without_client_auth_a_certificate_is_not_asked_for_and_gives_no_identity() {
    let server = Coordd::start("");
    let dir = tempfile::tempdir().unwrap();
    let alice = issue(&server.ca_path(), "alice", dir.path());
    runtime().block_on(async {
        let anon = server.client().await;
        anon.create(
            "/alice",
            b"a",
            CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "x509", "CN=alice")]),
        )
        .await
        .unwrap();
        // alice's client offers her certificate, but the server never asks for it.
        let a = connect(with_cert(&server, &alice)).await.unwrap();
        denied(&a, "alice without client_auth").await;
        // An `auth` ACL needs an identity that can authenticate: none here.
        assert_eq!(
            a.create(
                "/auth",
                b"",
                CreateOptions::persistent().with_acl(vec![acl(perms::ALL, "auth", "")]),
            )
            .await
            .unwrap_err()
            .code(),
            ErrorCode::InvalidAcl
        );
    });
}

#[test]
fn a_bad_client_auth_setting_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coord.toml");
    std::fs::write(&cfg, "[tls]\nclient_auth = \"sometimes\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordd"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client_auth"), "stderr: {err}");
}
