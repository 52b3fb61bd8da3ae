//! Certificates for a real ensemble, made with `coordd ca init`, `coordd cert issue` and
//! `coordd cert client` exactly as an operator would: three servers, each with its own
//! certificate from one cluster CA and its own config, form an ensemble that requires client
//! certificates; a client with one writes and reads on every server. A member without a CA
//! configured, or with a certificate from another CA, does not get in.

mod common;
use coord_client::{Client, ClientConfig, CreateOptions};
use coord_proto::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn coordd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordd"))
        .args(args)
        .output()
        .expect("run coordd")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "coordd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn config(dir: &Path, id: u64, ports: &[(u16, u16)], host: &Path, extra: &str) -> PathBuf {
    let mut text = format!(
        "id = {id}\nclient_addr = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{extra}\n",
        ports[id as usize - 1].0,
        dir.join(format!("data{id}")).display()
    );
    if !host.as_os_str().is_empty() {
        text.push_str(&format!(
            "[tls]\nca_cert = \"{0}/ca.pem\"\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\nclient_auth = \"required\"\n",
            host.display()
        ));
    }
    for (i, (c, p)) in ports.iter().enumerate() {
        text.push_str(&format!(
            "[[members]]\nid = {}\nclient_addr = \"127.0.0.1:{c}\"\npeer_addr = \"127.0.0.1:{p}\"\n",
            i + 1
        ));
    }
    let path = dir.join(format!("coord{id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(path: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_coordd"))
        .arg("run")
        .arg("--config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn an_ensemble_from_coordd_made_certificates_requires_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = d.join("ca");
    let said = ok(coordd(&["ca", "init", "--dir", ca.to_str().unwrap()]));
    assert!(said.contains("created the cluster CA"), "{said}");
    assert_eq!(mode(&ca.join("ca.key")), 0o600, "the CA key is private");
    // Running it again keeps the CA (every certificate issued so far stays valid).
    let before = std::fs::read(ca.join("ca.pem")).unwrap();
    assert!(ok(coordd(&["ca", "init", "--dir", ca.to_str().unwrap()])).contains("kept"));
    assert_eq!(std::fs::read(ca.join("ca.pem")).unwrap(), before);

    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (common::free_udp_port(), common::free_udp_port()))
        .collect();
    let mut servers = Servers(Vec::new());
    for id in 1..=3u64 {
        let host = d.join(format!("host{id}"));
        let said = ok(coordd(&[
            "cert",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--id",
            &id.to_string(),
            "--name",
            "127.0.0.1",
            "--name",
            &format!("coord{id}.example"),
            "--out",
            host.to_str().unwrap(),
        ]));
        assert!(said.contains("[tls]"), "prints the config lines: {said}");
        assert_eq!(mode(&host.join("server.key")), 0o600);
        let path = config(d, id, &ports, &host, "");
        servers
            .0
            .push(start(&path, &d.join(format!("coordd{id}.log"))));
    }
    let clients = d.join("clients");
    let said = ok(coordd(&[
        "cert",
        "client",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "alice",
        "--out",
        clients.to_str().unwrap(),
    ]));
    assert!(said.contains("export COORD_CERT="), "{said}");
    assert_eq!(mode(&clients.join("alice.key")), 0o600);

    let all: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("127.0.0.1:{c}"))
        .collect();
    let cfg = |server: &str| {
        ClientConfig::new(server, ca.join("ca.pem"))
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .client_cert(clients.join("alice.pem"), clients.join("alice.key"))
            .unwrap()
    };
    let logs = || {
        (1..=3)
            .map(|i| std::fs::read_to_string(d.join(format!("coordd{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    common::runtime().block_on(async {
        // The ensemble forms: every peer trusts the others' certificates.
        let deadline = Instant::now() + Duration::from_secs(40);
        let c = loop {
            if let Ok(c) = Client::connect(cfg(&all.join(","))).await
                && c.create("/ok", b"", CreateOptions::persistent())
                    .await
                    .is_ok()
            {
                break c;
            }
            assert!(Instant::now() < deadline, "no ensemble:\n{}", logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        c.create(
            "/alice",
            b"a",
            CreateOptions::persistent().with_acl(vec![Acl {
                perms: perms::ALL,
                id: Id::new("x509", "CN=alice"),
            }]),
        )
        .await
        .unwrap();
        for server in &all {
            let c = Client::connect(cfg(server)).await.unwrap();
            c.sync("/").await.unwrap();
            assert_eq!(c.get_data("/alice").await.unwrap().0, b"a", "on {server}");
            // Without a certificate: no session.
            let bare = ClientConfig::new(server, ca.join("ca.pem"))
                .unwrap()
                .connect_timeout(Duration::from_secs(2));
            let err = Client::connect(bare).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::ConnectionLoss, "{err}");
        }
    });

    // A member config without a CA refuses to start, and says how to make one.
    let bare = config(d, 1, &ports, Path::new(""), "");
    let out = coordd(&["run", "--config", bare.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ca_cert") && err.contains("coordd ca init"),
        "stderr: {err}"
    );
    // Issuing from a directory that holds no CA is a clear error too.
    let out = coordd(&[
        "cert",
        "client",
        "--ca",
        d.join("nowhere").to_str().unwrap(),
        "--name",
        "bob",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("coordd ca init"));
}
