//! A local ensemble of real `coordd run` processes, each with its own config, data directory
//! and log; servers can be SIGKILLed, paused, slowed down and restarted, and (in network
//! namespaces) partitioned.
//!
//! Invariants:
//! - `servers[i].child` is `Some` exactly while server `i`'s process is running (or paused);
//! - `paused` holds the servers stopped with SIGSTOP and not yet continued;
//! - on drop every process is continued and killed, and the namespaces are deleted.

use crate::Error;
use crate::netns::{Netns, Partition};
use crate::sweep::{DIR_PREFIX, OWNER_FILE, PID_FILE, sweep_stale_dirs};
use coord_client::{Client, ClientConfig};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The slow-disk hook of `coordd` (see `coord_server::persist::FAULT_HOOKS_ENV`).
pub const FAULT_HOOKS_ENV: &str = "COORD_FAULT_HOOKS";
/// The file in a server's data directory holding the fsync delay in ms.
pub const FSYNC_DELAY_FILE: &str = "fault-fsync-delay-ms";

/// One server of a [`Cluster`].
pub struct Server {
    /// Its id (1-based; server `i` has id `i + 1`).
    pub id: u64,
    /// Where clients reach it.
    pub client: SocketAddr,
    /// Its directory: `coord.toml`, `coordd.log`, and `data/`.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// The data directory named in its config.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    coordd: PathBuf,
    voters: usize,
    observers: usize,
    extra: String,
    netns: bool,
    fault_hooks: bool,
}

impl ClusterBuilder {
    /// Voting servers (default 3).
    pub fn voters(mut self, n: usize) -> Self {
        self.voters = n;
        self
    }

    /// Observers after the voters (default 0).
    pub fn observers(mut self, n: usize) -> Self {
        self.observers = n;
        self
    }

    /// TOML lines added to every server's config (after `tick_ms = 500`, before `[tls]`).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra = toml.to_string();
        self
    }

    /// Runs every server in its own network namespace (needs root and iproute2).
    pub fn netns(mut self, on: bool) -> Self {
        self.netns = on;
        self
    }

    /// Starts servers with the slow-disk hook enabled ([`Cluster::set_fsync_delay`]).
    pub fn fault_hooks(mut self, on: bool) -> Self {
        self.fault_hooks = on;
        self
    }

    /// Writes the configs and spawns every server; does not wait for a leader.
    pub fn start(self) -> Result<Cluster, Error> {
        Cluster::start_with(self)
    }
}

/// A running local ensemble; see the module doc.
pub struct Cluster {
    /// The servers, in id order.
    pub servers: Vec<Server>,
    /// The directory holding every server's directory and the CA under `tls/`.
    pub dir: PathBuf,
    /// When set, server `i` runs inside namespace `netns.name(i)`.
    pub netns: Option<Netns>,
    coordd: PathBuf,
    fault_hooks: bool,
    paused: BTreeSet<usize>,
    /// Voting servers (the first `voters` ids); the rest are observers.
    pub(crate) voters: usize,
    tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("servers", &self.servers_list())
            .field("netns", &self.netns)
            .finish()
    }
}

fn free_port_pair() -> Result<(u16, u16), Error> {
    let bind = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| Error::Io("bind an ephemeral port".into(), e))
    };
    let port = |s: &std::net::UdpSocket| {
        s.local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::Io("local address".into(), e))
    };
    // Both sockets are bound before either is released, so the two ports differ.
    let (a, b) = (bind()?, bind()?);
    Ok((port(&a)?, port(&b)?))
}

impl Cluster {
    /// A builder for an ensemble of `coordd` at `coordd` (tests pass
    /// `env!("CARGO_BIN_EXE_coordd")`).
    pub fn builder(coordd: impl Into<PathBuf>) -> ClusterBuilder {
        ClusterBuilder {
            coordd: coordd.into(),
            voters: 3,
            observers: 0,
            extra: String::new(),
            netns: false,
            fault_hooks: false,
        }
    }

    fn start_with(b: ClusterBuilder) -> Result<Cluster, Error> {
        if b.voters == 0 {
            return Err(Error::Setup("an ensemble needs a voter".into()));
        }
        if !b.coordd.is_file() {
            return Err(Error::Setup(format!(
                "no coordd binary at {}",
                b.coordd.display()
            )));
        }
        let total = b.voters + b.observers;
        let netns = if b.netns {
            Some(Netns::create(total)?)
        } else {
            None
        };
        sweep_stale_dirs();
        let tmp = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::Io("create a temporary directory".into(), e))?;
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| Error::Io(format!("write {}", dir.join(OWNER_FILE).display()), e))?;
        let (ca, ca_key) = coord_server::tls::ensure_ca(&dir.join("tls"))
            .map_err(|e| Error::Setup(format!("create the cluster CA: {e}")))?;
        let ports: Vec<(u16, u16)> = match &netns {
            // Every server is alone in its namespace: fixed ports cannot collide.
            Some(_) => vec![(7181, 7281); total],
            None => (0..total)
                .map(|_| free_port_pair())
                .collect::<Result<_, _>>()?,
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
                i >= b.voters
            ));
        }
        let mut servers = Vec::new();
        for (i, (c, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let sdir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(sdir.join("data"))
                .map_err(|e| Error::Io(format!("create {}", sdir.display()), e))?;
            let config = format!(
                "id = {id}\nclient_addr = \"{}:{c}\"\ndata_dir = \"{}\"\ntick_ms = 500\n{}\n[tls]\nca_cert = \"{}\"\nca_key = \"{}\"\n{members}",
                host(i),
                sdir.join("data").display(),
                b.extra,
                ca.display(),
                ca_key.display()
            );
            let path = sdir.join("coord.toml");
            std::fs::write(&path, config)
                .map_err(|e| Error::Io(format!("write {}", path.display()), e))?;
            let client = format!("{}:{c}", host(i))
                .parse()
                .map_err(|e| Error::Setup(format!("client address of server {id}: {e}")))?;
            servers.push(Server {
                id,
                client,
                dir: sdir,
                child: None,
            });
        }
        let mut cluster = Cluster {
            servers,
            dir,
            netns,
            coordd: b.coordd,
            fault_hooks: b.fault_hooks,
            paused: BTreeSet::new(),
            voters: b.voters,
            tmp: Some(tmp),
        };
        for i in 0..total {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), Error> {
        let s = &self.servers[i];
        let log_path = s.dir.join("coordd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::Io(format!("open {}", log_path.display()), e))?;
        let mut cmd = match &self.netns {
            Some(n) => {
                // `ip netns exec` execs the program in place: the child's pid is coordd's.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n.name(i)]).arg(&self.coordd);
                c
            }
            None => Command::new(&self.coordd),
        };
        if self.fault_hooks {
            cmd.env(FAULT_HOOKS_ENV, "1");
        }
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(s.dir.join("coord.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Io(format!("spawn {}", self.coordd.display()), e))?;
        // For `sweep_stale_dirs`, should this process die without dropping the cluster.
        let _ = std::fs::write(s.dir.join(PID_FILE), child.id().to_string());
        self.servers[i].child = Some(child);
        self.paused.remove(&i);
        Ok(())
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The cluster CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }

    /// Every server's client address, comma-separated.
    pub fn servers_list(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client config naming every server.
    ///
    /// # Panics
    /// If the CA file is unreadable (the cluster's own directory is broken).
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(&self.servers_list(), self.ca()).expect("the cluster CA is readable")
    }

    /// A client config naming server `i` only.
    ///
    /// # Panics
    /// If the CA file is unreadable (the cluster's own directory is broken).
    pub fn config_for(&self, i: usize) -> ClientConfig {
        ClientConfig::new(&self.servers[i].client.to_string(), self.ca())
            .expect("the cluster CA is readable")
    }

    /// A session (4 s timeout) on any server, retried for up to 30 s.
    ///
    /// # Panics
    /// If no server accepts a session within 30 s (with the servers' logs).
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

    /// Whether server `i`'s process is running (paused counts as running).
    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].child.is_some()
    }

    /// Whether server `i` is stopped with SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.paused.contains(&i)
    }

    /// Server `i`'s pid while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(|c| c.id())
    }

    /// Servers whose process ended although nobody here killed it (a crash, or a signal from
    /// outside), with how it ended; they count as not running from now on, so
    /// [`Cluster::heal_all`] starts them again.
    pub fn reap_exited(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for (i, s) in self.servers.iter_mut().enumerate() {
            if let Some(c) = s.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                s.child = None;
                self.paused.remove(&i);
                out.push((i, status));
            }
        }
        out
    }

    /// SIGKILL: no shutdown code runs. Waits for the process to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused.remove(&i);
    }

    /// Kills server `i` (if running) and starts it again on the same port and data.
    pub fn restart(&mut self, i: usize) -> Result<(), Error> {
        self.kill(i);
        self.spawn(i)
    }

    /// Starts server `i` if it is not running.
    pub fn start_server(&mut self, i: usize) -> Result<(), Error> {
        if self.is_running(i) {
            return Ok(());
        }
        self.spawn(i)
    }

    /// Kills every server, then starts them all again.
    pub fn restart_all(&mut self) -> Result<(), Error> {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        for i in 0..self.servers.len() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Sends `sig` to server `i`'s process, if it runs.
    pub fn signal(&self, i: usize, sig: i32) {
        if let Some(c) = &self.servers[i].child {
            // SAFETY: kill(2) on the pid of a child this cluster spawned and has not reaped
            // (it is reaped only in `kill`, which also drops the handle), so the pid is ours.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Stops server `i` with SIGSTOP (its sockets stay open; nothing is answered).
    pub fn pause(&mut self, i: usize) {
        if self.is_running(i) {
            self.signal(i, libc::SIGSTOP);
            self.paused.insert(i);
        }
    }

    /// Continues server `i` after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.paused.remove(&i);
    }

    /// Makes server `i` sleep `ms` before each fsync batch (0 removes the delay). Needs
    /// [`ClusterBuilder::fault_hooks`].
    pub fn set_fsync_delay(&self, i: usize, ms: u64) -> Result<(), Error> {
        if !self.fault_hooks {
            return Err(Error::Setup(
                "the slow-disk hook needs a cluster built with fault_hooks(true)".into(),
            ));
        }
        let path = self.servers[i].data_dir().join(FSYNC_DELAY_FILE);
        if ms == 0 {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::Io(format!("remove {}", path.display()), e))
                }
                _ => Ok(()),
            };
        }
        // Written whole and renamed, so the server never reads a half-written number.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{ms}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Io(format!("write {}", path.display()), e))
    }

    /// Replaces the server-to-server partition (namespaces only).
    pub fn partition(&mut self, p: &Partition) -> Result<(), Error> {
        match &mut self.netns {
            Some(n) => n.partition(p),
            None => Err(Error::Setup(
                "partitions need a cluster in network namespaces".into(),
            )),
        }
    }

    /// Undoes every fault: partitions and cut links healed, paused servers continued, dead
    /// servers started, disk delays removed. Tries everything and returns the first error.
    pub fn heal_all(&mut self) -> Result<(), Error> {
        let mut first: Option<Error> = None;
        if let Some(n) = &mut self.netns
            && let Err(e) = n.heal_all()
        {
            first.get_or_insert(e);
        }
        for i in 0..self.servers.len() {
            if self.is_paused(i) {
                self.resume(i);
            }
            if !self.is_running(i)
                && let Err(e) = self.spawn(i)
            {
                first.get_or_insert(e);
            }
            if self.fault_hooks
                && let Err(e) = self.set_fsync_delay(i, 0)
            {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The last 15 lines of every server's log.
    pub fn logs(&self) -> String {
        self.logs_tail(15)
    }

    /// The last `n` lines of every server's log.
    pub fn logs_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for s in &self.servers {
            let bytes = std::fs::read(s.dir.join("coordd.log")).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- server {} ---\n{}\n",
                s.id,
                lines[lines.len().saturating_sub(n)..].join("\n")
            ));
        }
        out
    }

    /// Server `i`'s directory (`coord.toml`, `coordd.log`, `data/`).
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.servers[i].dir
    }

    /// Keeps the cluster's directory after drop (for a post-mortem); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.keep();
        }
        // A kept directory is never swept.
        let _ = std::fs::remove_file(self.dir.join(OWNER_FILE));
        self.dir.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.signal(i, libc::SIGCONT);
            self.kill(i);
        }
        // `netns` drops after this: the processes are gone before their namespaces.
    }
}
