//! Test harness: real `coordd` processes on loopback, real QUIC, real fsynced logs.
#![allow(dead_code)]

use coord_client::{Client, ClientConfig};
use coord_proto::io::read_frame;
use coord_proto::*;
use rkyv::util::AlignedVec;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `coordd run` process with its own data directory and port.
pub struct Coordd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    _tmp: Option<tempfile::TempDir>,
}

pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("local addr").port()
}

impl Coordd {
    /// Starts a server in a fresh temporary directory with `extra` TOML lines appended.
    pub fn start(extra: &str) -> Coordd {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Coordd::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server in `dir` (reusing its data if any).
    pub fn start_in(dir: &Path, extra: &str) -> Coordd {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let tick = if extra.contains("tick_ms") {
            ""
        } else {
            "tick_ms = 100\n"
        };
        let config = format!(
            "id = 1\nclient_addr = \"{addr}\"\ndata_dir = \"{}\"\n{tick}{extra}\n",
            dir.join("data").display()
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("coord.toml"), config).unwrap();
        let mut s = Coordd {
            child: None,
            dir: dir.to_path_buf(),
            addr,
            _tmp: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("coordd.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coordd"))
            .arg("run")
            .arg("--config")
            .arg(self.dir.join("coord.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn coordd");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the CA exists and a QUIC handshake + session succeeds.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("coordd exited early with {status}: {}", self.log_tail());
            }
            if self.ca_path().exists() {
                let cfg = self
                    .ready_config()
                    .connect_timeout(Duration::from_millis(500));
                // On a thread of its own, so tests may start servers from async code too.
                let ok = std::thread::spawn(move || {
                    runtime().block_on(async {
                        match Client::connect(cfg).await {
                            Ok(c) => {
                                let _ = c.close().await;
                                true
                            }
                            Err(_) => false,
                        }
                    })
                })
                .join()
                .unwrap_or(false);
                if ok {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "coordd did not become ready: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("coordd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("data").join("tls").join("ca.pem")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(&self.addr.to_string(), self.ca_path()).expect("client config")
    }

    /// The client config readiness is checked with: with a certificate of its own
    /// (`CN=harness`) when the server requires client certificates.
    fn ready_config(&self) -> ClientConfig {
        let cfg = self.client_config();
        let toml = std::fs::read_to_string(self.dir.join("coord.toml")).unwrap_or_default();
        if !toml.contains("client_auth = \"required\"") {
            return cfg;
        }
        let (cert, key) = (self.dir.join("harness.pem"), self.dir.join("harness.key"));
        if !cert.exists() {
            coord_server::tls::issue_client_cert(
                &self.ca_path().with_file_name("ca.key"),
                "harness",
                &cert,
                &key,
            )
            .expect("issue the harness's client certificate");
        }
        cfg.client_cert(&cert, &key).expect("harness certificate")
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.client_config().session_timeout(Duration::from_secs(2)))
            .await
            .expect("connect")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Coordd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A quinn client configuration speaking Coord's client protocol (ALPN `coord/1`, TLS 1.3)
/// and trusting only the CA in `ca`: for tests that handle connections by hand.
pub fn quic_client_config(ca: &Path) -> quinn::ClientConfig {
    let pem = std::fs::read(ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"coord/1".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// A raw protocol session: frames written by hand, for bad-input and expiry tests.
pub struct RawSession {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    buf: AlignedVec<16>,
    _endpoint: quinn::Endpoint,
}

impl RawSession {
    pub async fn open(server: &Coordd) -> RawSession {
        RawSession::open_at(server.addr, &server.ca_path()).await
    }

    pub async fn open_at(addr: SocketAddr, ca: &Path) -> RawSession {
        RawSession::try_open_at(addr, ca)
            .await
            .expect("QUIC connection")
    }

    /// Like [`RawSession::open_at`], returning why the connection failed.
    pub async fn try_open_at(
        addr: SocketAddr,
        ca: &Path,
    ) -> Result<RawSession, quinn::ConnectionError> {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quic_client_config(ca));
        let conn = endpoint.connect(addr, "127.0.0.1").unwrap().await?;
        let (send, recv) = conn.open_bi().await?;
        Ok(RawSession {
            conn,
            send,
            recv,
            buf: AlignedVec::new(),
            _endpoint: endpoint,
        })
    }

    /// A second session stream on this one's connection (as a shared client transport
    /// opens), with the same endpoint kept alive.
    pub async fn another_stream(&self) -> (quinn::SendStream, quinn::RecvStream) {
        self.conn.open_bi().await.expect("a stream")
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let bytes = frame::encode(frame).unwrap();
        self.send_bytes(&bytes).await;
    }

    /// The next frame, or None at end of stream or on timeout.
    pub async fn next(&mut self) -> Option<ServerFrame> {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(&mut self.recv, &mut self.buf, 1 << 24),
        )
        .await;
        match r {
            Ok(Ok(true)) => Some(frame::decode_aligned(&self.buf).expect("server frames validate")),
            _ => None,
        }
    }

    /// Handshake for a new session with `timeout_ms`; returns the response.
    pub async fn connect(&mut self, timeout_ms: u32) -> ConnectResponse {
        self.send(&ClientFrame::Connect(ConnectRequest {
            protocol_version: CLIENT_PROTOCOL_VERSION,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            password: vec![],
            read_only: false,
        }))
        .await;
        match self.next().await {
            Some(ServerFrame::Connected(r)) => r,
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    pub async fn request(&mut self, xid: u64, request: Request) -> ReplyBody {
        self.send(&ClientFrame::Request { xid, request }).await;
        loop {
            match self.next().await {
                Some(ServerFrame::Reply { xid: x, body, .. }) if x == xid => return body,
                Some(ServerFrame::Event(_)) => continue,
                other => panic!("expected reply {xid}, got {other:?}"),
            }
        }
    }
}

/// The handshake frame for a new session (`session_id` 0) or a resumed one.
pub fn connect_frame(session_id: u64, password: Vec<u8>, timeout_ms: u32) -> ClientFrame {
    ClientFrame::Connect(ConnectRequest {
        protocol_version: CLIENT_PROTOCOL_VERSION,
        last_zxid_seen: 0,
        timeout_ms,
        session_id,
        password,
        read_only: false,
    })
}

pub fn eventually<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An ensemble of this build's `coordd` on loopback: `voters` voting servers, then
/// `observers`, with `extra` TOML lines in every config.
pub fn cluster(voters: usize, observers: usize, extra: &str) -> coord_testkit::Cluster {
    coord_testkit::Cluster::builder(env!("CARGO_BIN_EXE_coordd"))
        .voters(voters)
        .observers(observers)
        .extra(extra)
        .start()
        .expect("start the ensemble")
}

/// Like [`cluster`], each server in its own network namespace (needs root and iproute2).
pub fn cluster_in_netns(voters: usize, extra: &str) -> coord_testkit::Cluster {
    coord_testkit::Cluster::builder(env!("CARGO_BIN_EXE_coordd"))
        .voters(voters)
        .extra(extra)
        .netns(true)
        .start()
        .expect("start the ensemble in network namespaces")
}
