//! The `coord` binary against a real server (run in-process on its own thread, over real
//! QUIC on loopback).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Server {
    servers: String,
    ca: PathBuf,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = coord_server::config::Config {
            client_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            data_dir: dir.join("data"),
            tick_ms: 100,
            ..Default::default()
        };
        config.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into());
        let ca = dir.join("data/tls/ca.pem");
        std::thread::spawn(move || coord_server::node::run(config));
        let servers = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let server = Server { servers, ca };
        loop {
            if server.ca.exists() && coord(&server, &["exists", "/"]).status.success() {
                return server;
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

fn coord(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coord"))
        .env("COORD_SERVERS", &server.servers)
        .env("COORD_CA", &server.ca)
        .args(args)
        .output()
        .expect("run coord")
}

fn ok(args: &[&str]) -> String {
    let out = coord(server(), args);
    assert!(
        out.status.success(),
        "coord {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> (i32, String) {
    let out = coord(server(), args);
    assert!(!out.status.success(), "coord {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one clear line expected, got {err:?}"
    );
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn create_get_set_stat_ls_delete() {
    assert_eq!(ok(&["create", "/cli", "hello"]).trim(), "/cli");
    assert_eq!(ok(&["get", "/cli"]), "hello");
    ok(&["set", "/cli", "world"]);
    assert_eq!(ok(&["get", "/cli"]), "world");
    let stat = ok(&["stat", "/cli"]);
    assert!(
        stat.lines().any(|l| l.replace(' ', "") == "version=1"),
        "{stat}"
    );
    assert!(stat.contains("czxid = 0x"), "{stat}");
    let (code, err) = fails(&["set", "-v", "0", "/cli", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("BadVersion"), "{err}");
    ok(&["create", "/cli/a"]);
    ok(&["create", "/cli/a/deep"]);
    ok(&["create", "/cli/b"]);
    assert_eq!(ok(&["ls", "/cli"]), "a\nb\n");
    let all = ok(&["ls", "-R", "/cli"]);
    for p in ["/cli/a", "/cli/a/deep", "/cli/b"] {
        assert!(all.lines().any(|l| l == p), "{p} missing from {all}");
    }
    let seq = ok(&["create", "-s", "/cli/s-"]);
    assert_eq!(seq.trim(), "/cli/s-0000000002");
    ok(&["sync", "/cli"]);
    let (_, err) = fails(&["delete", "/cli/a"]);
    assert!(err.contains("NotEmpty"), "{err}");
    ok(&["delete", "/cli/a/deep"]);
    ok(&["delete", "-v", "0", "/cli/a"]);
    let (code, err) = fails(&["get", "/cli/a"]);
    assert_eq!(code, 1);
    assert!(err.contains("NoNode"), "{err}");
    assert!(err.starts_with("coord: "), "{err}");
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let (code, err) = fails(&["get", "no-slash"]);
    assert_eq!(code, 1);
    assert!(err.contains("InvalidPath"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_coord"))
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_coord"))
        .env_remove("COORD_SERVERS")
        .env_remove("COORD_CA")
        .args(["get", "/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // An unreachable server is an error too, not a hang.
    let out = Command::new(env!("CARGO_BIN_EXE_coord"))
        .args(["--servers", "127.0.0.1:1", "--ca"])
        .arg(&server().ca)
        .args(["get", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn acls_with_digest_auth() {
    ok(&["create", "/secret", "s"]);
    let id = ok(&["digest", "bob:pw"]);
    let id = id.trim();
    ok(&["setacl", "/secret", &format!("digest:{id}:crwda")]);
    let (_, err) = fails(&["get", "/secret"]);
    assert!(err.contains("NoAuth"), "{err}");
    assert_eq!(ok(&["--auth", "digest:bob:pw", "get", "/secret"]), "s");
    let acl = ok(&["--auth", "digest:bob:pw", "getacl", "/secret"]);
    assert_eq!(acl.trim(), format!("digest:{id}:crwda"));
    assert_eq!(ok(&["addauth", "digest", "bob:pw"]).trim(), "ok");
    // The super user from the server config reads anything.
    assert_eq!(ok(&["--auth", "digest:super:test", "get", "/secret"]), "s");
}

#[test]
fn watch_prints_events_until_interrupted() {
    ok(&["create", "/watched"]);
    let s = server();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coord"))
        .env("COORD_SERVERS", &s.servers)
        .env("COORD_CA", &s.ca)
        .args(["watch", "-R", "/watched"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // The watch is registered asynchronously: keep changing until an event shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let line = loop {
        ok(&["create", &format!("/watched/c{i}")]);
        i += 1;
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "no event printed");
    };
    assert!(line.starts_with("NodeCreated /watched/c"), "{line}");
    ok(&["set", "/watched", "x"]);
    let next = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("data change event");
        if !l.starts_with("NodeCreated") {
            break l;
        }
    };
    assert_eq!(next, "NodeDataChanged /watched");
    unsafe { libc_kill(child.id() as i32, 15) };
    // SIGTERM ends the watch promptly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "coord watch ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn status_reports_role_epoch_zxid_and_down_servers() {
    let s = server();
    ok(&["create", "/status-probe"]);
    let out = Command::new(env!("CARGO_BIN_EXE_coord"))
        .args(["--servers", &format!("{},127.0.0.1:1", s.servers), "--ca"])
        .arg(&s.ca)
        .args(["--timeout", "500", "status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with('[') && text.trim_end().ends_with(']'),
        "{text}"
    );
    assert!(text.contains("\"role\":\"leader\""), "{text}");
    assert!(text.contains("\"id\":1"), "{text}");
    assert!(text.contains("\"role\":\"down\""), "{text}");
    assert!(text.contains("\"zxid\":\"0x"), "{text}");
    let table = ok(&["status"]);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("leader")),
        "{table}"
    );
}
