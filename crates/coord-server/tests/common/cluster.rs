//! A local ensemble of real `coordd run` processes on loopback, each with its own config,
//! data directory and log; servers can be SIGKILLed, paused and restarted.

use coord_client::{Client, ClientConfig, ServerStatus};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub id: u64,
    pub client: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub servers: Vec<Server>,
    pub dir: PathBuf,
    /// When set, server i runs inside network namespace `netns.names[i]`.
    pub netns: Option<Netns>,
    _tmp: tempfile::TempDir,
}

/// Network namespaces of the project's own test hosts: one per server, joined by a bridge in
/// the root namespace (which holds 10.231.S.254); server i is 10.231.S.(i+1). Partition a
/// server by taking its link down; everything is deleted on drop.
pub struct Netns {
    pub names: Vec<String>,
    bridge: String,
    links: Vec<String>,
    pub subnet: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn create(n: usize) -> Netns {
        let tag = std::process::id() % 100_000;
        let subnet = (std::process::id() % 200 + 20) as u8;
        let bridge = format!("czb{tag}");
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("10.231.{subnet}.254/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        let mut names = Vec::new();
        let mut links = Vec::new();
        for i in 1..=n {
            let ns = format!("cz{tag}n{i}");
            let link = format!("czv{tag}n{i}");
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &link, "master", &bridge, "up"]);
            ip(&[
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                &format!("10.231.{subnet}.{i}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", "eth0", "up"]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            names.push(ns);
            links.push(link);
        }
        Netns {
            names,
            bridge,
            links,
            subnet,
        }
    }

    pub fn host(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    /// Cuts server i off from everyone (its link to the bridge goes down).
    pub fn isolate(&self, i: usize) {
        ip(&["link", "set", &self.links[i], "down"]);
    }

    /// Reconnects server i.
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.links[i], "up"]);
    }

    /// Runs `f` on a thread that has entered server i's namespace (to reach it while it is
    /// cut off from the root namespace).
    pub fn run_inside<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", self.names[i]);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}");
            f()
        })
        .join()
        .expect("thread inside the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn free_port_pair() -> (u16, u16) {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

impl Cluster {
    /// `voters` voting servers and `observers` observers; `extra` TOML lines for every config.
    pub fn start(voters: usize, observers: usize, extra: &str) -> Cluster {
        Cluster::start_with(voters, observers, extra, None)
    }

    /// Like [`Cluster::start`], each server in its own network namespace.
    pub fn start_in_netns(voters: usize, extra: &str) -> Cluster {
        let netns = Netns::create(voters);
        Cluster::start_with(voters, 0, extra, Some(netns))
    }

    fn start_with(voters: usize, observers: usize, extra: &str, netns: Option<Netns>) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (ca, ca_key) = coord_server::tls::ensure_ca(&dir.join("tls")).unwrap();
        let total = voters + observers;
        let ports: Vec<(u16, u16)> = match &netns {
            Some(_) => (0..total).map(|_| (7181, 7281)).collect(),
            None => (0..total).map(|_| free_port_pair()).collect(),
        };
        let host = |i: usize| {
            netns
                .as_ref()
                .map_or("127.0.0.1".to_string(), |n| n.host(i))
        };
        let mut members = String::new();
        for (i, (c, p)) in ports.iter().enumerate() {
            members.push_str(&format!(
                "[[members]]\nid = {}\nclient_addr = \"{}:{c}\"\npeer_addr = \"{}:{p}\"\nobserver = {}\n",
                i + 1,
                host(i),
                host(i),
                i >= voters
            ));
        }
        let mut servers = Vec::new();
        for (i, (c, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let sdir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&sdir).unwrap();
            let config = format!(
                "id = {id}\nclient_addr = \"{}:{c}\"\ndata_dir = \"{}\"\ntick_ms = 500\n{extra}\n[tls]\nca_cert = \"{}\"\nca_key = \"{}\"\n{members}",
                host(i),
                sdir.join("data").display(),
                ca.display(),
                ca_key.display()
            );
            std::fs::write(sdir.join("coord.toml"), config).unwrap();
            servers.push(Server {
                id,
                client: format!("{}:{c}", host(i)).parse().unwrap(),
                dir: sdir,
                child: None,
            });
        }
        let mut cluster = Cluster {
            servers,
            dir,
            netns,
            _tmp: tmp,
        };
        for i in 0..total {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.servers[i].dir.join("coordd.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.names[i], env!("CARGO_BIN_EXE_coordd")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_coordd")),
        };
        let s = &mut self.servers[i];
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(s.dir.join("coord.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn coordd");
        s.child = Some(child);
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }

    pub fn servers_list(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(&self.servers_list(), self.ca()).unwrap()
    }

    pub fn config_for(&self, i: usize) -> ClientConfig {
        ClientConfig::new(&self.servers[i].client.to_string(), self.ca()).unwrap()
    }

    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(self.client_config().session_timeout(Duration::from_secs(4)))
                .await
            {
                Ok(c) => return c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no server accepted a session: {e}\n{}",
                        self.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    pub async fn status(&self, i: usize) -> Option<ServerStatus> {
        let cfg = self
            .config_for(i)
            .connect_timeout(Duration::from_millis(300));
        coord_client::server_status(&cfg, &self.servers[i].client.to_string())
            .await
            .ok()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].child.is_some()
    }

    /// Waits until every running server is established under one leader in one epoch;
    /// returns the leader's index.
    pub async fn wait_stable(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let mut statuses = Vec::new();
            for i in 0..self.servers.len() {
                if self.is_running(i) {
                    statuses.push((i, self.status(i).await));
                }
            }
            let leaders: Vec<usize> = statuses
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == "leader"))
                .map(|(i, _)| *i)
                .collect();
            if leaders.len() == 1 {
                let l = leaders[0];
                let lead = statuses
                    .iter()
                    .find(|(i, _)| *i == l)
                    .and_then(|(_, s)| s.clone())
                    .unwrap();
                if statuses.iter().all(|(_, s)| {
                    s.as_ref().is_some_and(|s| {
                        s.epoch == lead.epoch
                            && s.leader == Some(lead.id)
                            && matches!(s.role.as_str(), "leader" | "follower" | "observer")
                    })
                }) {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "ensemble never stabilised: {statuses:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running server has applied the same zxid, and returns the digests.
    pub async fn wait_converged(&self) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let mut seen = Vec::new();
            for i in 0..self.servers.len() {
                if self.is_running(i) {
                    seen.push(self.status(i).await.map(|s| (s.zxid, s.digest)));
                }
            }
            if seen.iter().all(|s| s.is_some()) {
                let first = seen[0].unwrap();
                if seen.iter().all(|s| *s == Some(first)) {
                    return first;
                }
            }
            assert!(
                Instant::now() < deadline,
                "servers never converged: {seen:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    pub fn signal(&self, i: usize, sig: i32) {
        if let Some(c) = &self.servers[i].child {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            let text = std::fs::read_to_string(s.dir.join("coordd.log")).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- server {} ---\n{}\n",
                s.id,
                lines[lines.len().saturating_sub(15)..].join("\n")
            ));
        }
        out
    }

    pub fn data_dir(&self, i: usize) -> &Path {
        &self.servers[i].dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.signal(i, libc::SIGCONT);
            self.kill(i);
        }
    }
}

/// A two-worker runtime for the multi-process tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
