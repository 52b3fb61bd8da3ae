//! `coordd`: the Coord server.
//!
//! ```text
//! coordd run --config FILE [--id N] [--client-addr ADDR] [--data-dir DIR]
//! coordd dev [--nodes 1] [--dir DIR] [--port PORT]
//! coordd ca init --dir DIR
//! coordd cert issue --ca DIR --id N --name HOST [--name ADDR ...] --out DIR
//! coordd cert client --ca DIR --name NAME [--out DIR]
//! ```

use clap::{Parser, Subcommand};
use coord_server::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "coordd",
    version,
    about = "Coord: a replicated coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one server from a TOML config file; flags override single fields.
    Run {
        /// The config file (defaults apply to every field it leaves out).
        #[arg(long)]
        config: Option<PathBuf>,
        /// This server's id.
        #[arg(long)]
        id: Option<u64>,
        /// Address clients connect to.
        #[arg(long)]
        client_addr: Option<std::net::SocketAddr>,
        /// Data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Start a local Coord on 127.0.0.1 with the embedded default config. Prints
    /// `export COORD_SERVERS=...` and `export COORD_CA=...` first, for `eval`.
    Dev {
        /// Number of voting servers (1 runs a single server without replication).
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Number of observers added to the ensemble.
        #[arg(long, default_value_t = 0)]
        observers: u32,
        /// Where data, config and TLS material live; data survives a restart with the same DIR.
        #[arg(long, default_value = "coord-dev")]
        dir: PathBuf,
        /// Client port of the first node.
        #[arg(long, default_value_t = 7181)]
        port: u16,
    },
    /// The cluster certificate authority every server and client certificate chains to.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Certificates signed by the cluster CA: one per server, and for clients.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the cluster CA (`ca.pem`, `ca.key`) in DIR; an existing one is kept.
    Init {
        /// Where the CA lives; keep `ca.key` on the machine that issues certificates.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Issue server N's certificate (peer and client use) into OUT: `server.pem`,
    /// `server.key` and a copy of `ca.pem`.
    Issue {
        /// The CA directory (`coordd ca init`).
        #[arg(long)]
        ca: PathBuf,
        /// The server's id in the ensemble.
        #[arg(long)]
        id: u64,
        /// Host names and IP addresses clients and peers use to reach it (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Directory to write to (created; the key is written mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a client certificate `CN=NAME` into OUT: `NAME.pem`, `NAME.key`. With
    /// `[tls] client_auth`, its session's identity is `x509:CN=NAME`.
    Client {
        /// The CA directory (`coordd ca init`).
        #[arg(long)]
        ca: PathBuf,
        /// The client's name (its certificate's common name).
        #[arg(long)]
        name: String,
        /// Directory to write to (created).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// `coordd ca ...` and `coordd cert ...`: prints what was written and what to do next.
fn certificates(ca: Option<CaCommand>, cert: Option<CertCommand>) -> Result<(), String> {
    use coord_server::tls;
    let mkdir = |d: &std::path::Path| {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))
    };
    let ca_key = |dir: &std::path::Path| -> Result<PathBuf, String> {
        let key = dir.join("ca.key");
        if !key.is_file() || !dir.join("ca.pem").is_file() {
            return Err(format!(
                "{}: no CA there (ca.pem and ca.key); create one with `coordd ca init --dir {}`",
                dir.display(),
                dir.display()
            ));
        }
        Ok(key)
    };
    match (ca, cert) {
        (Some(CaCommand::Init { dir }), _) => {
            let existed = dir.join("ca.pem").is_file() && dir.join("ca.key").is_file();
            let (cert, key) = tls::ensure_ca(&dir).map_err(|e| e.to_string())?;
            let verb = if existed {
                "kept the existing"
            } else {
                "created the"
            };
            println!(
                "{verb} cluster CA: {} (key {})",
                cert.display(),
                key.display()
            );
            println!(
                "next, for each server: coordd cert issue --ca {} --id N --name HOST --out DIR",
                dir.display()
            );
        }
        (_, Some(CertCommand::Issue { ca, id, names, out })) => {
            if id == 0 {
                return Err("--id must be positive (the server's id in the ensemble)".into());
            }
            let key = ca_key(&ca)?;
            mkdir(&out)?;
            let (cert_path, key_path) = (out.join("server.pem"), out.join("server.key"));
            tls::issue_server_cert(&key, id, &names, &cert_path, &key_path)
                .map_err(|e| e.to_string())?;
            std::fs::copy(ca.join("ca.pem"), out.join("ca.pem"))
                .map_err(|e| format!("{}: {e}", out.join("ca.pem").display()))?;
            println!(
                "issued server {id}'s certificate for {} into {}",
                names.join(", "),
                out.display()
            );
            println!("in that server's config:");
            println!("[tls]");
            for (k, f) in [
                ("ca_cert", "ca.pem"),
                ("cert", "server.pem"),
                ("key", "server.key"),
            ] {
                println!("{k} = \"{}\"", out.join(f).display());
            }
        }
        (_, Some(CertCommand::Client { ca, name, out })) => {
            if name.is_empty() || name.contains(['/', '\\', '\0']) {
                return Err(format!("--name {name:?}: a non-empty name without / or \\"));
            }
            let key = ca_key(&ca)?;
            mkdir(&out)?;
            let (cert_path, key_path) = (
                out.join(format!("{name}.pem")),
                out.join(format!("{name}.key")),
            );
            tls::issue_client_cert(&key, &name, &cert_path, &key_path)
                .map_err(|e| e.to_string())?;
            println!("issued client certificate CN={name}");
            println!("export COORD_CERT={}", cert_path.display());
            println!("export COORD_KEY={}", key_path.display());
        }
        (None, None) => {}
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,quinn=warn,quinn_proto=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Writes `DIR/n<i>/coord.toml` for every server of a local ensemble (one shared CA under
/// `DIR/tls`), and returns the config paths and the client addresses.
fn dev_configs(
    dir: &std::path::Path,
    port: u16,
    nodes: u32,
    observers: u32,
) -> Result<Vec<(PathBuf, Config)>, String> {
    let total = nodes + observers;
    if nodes == 0 || total > 64 {
        return Err(format!(
            "--nodes {nodes} --observers {observers}: need 1..=64 servers and at least one voter"
        ));
    }
    if nodes == 1 && observers > 0 {
        return Err("observers need an ensemble: use --nodes 3 or more".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (ca_cert, ca_key) =
        coord_server::tls::ensure_ca(&dir.join("tls")).map_err(|e| e.to_string())?;
    let local = |p: u32| std::net::SocketAddr::from(([127, 0, 0, 1], port + p as u16));
    let members: Vec<coord_server::config::Member> = if total == 1 {
        Vec::new()
    } else {
        (1..=total)
            .map(|i| coord_server::config::Member {
                id: i as u64,
                client_addr: local(i - 1),
                peer_addr: local(100 + i - 1),
                observer: i > nodes,
            })
            .collect()
    };
    let mut out = Vec::new();
    for i in 1..=total {
        let node_dir = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let mut config = Config {
            id: i as u64,
            client_addr: local(i - 1),
            data_dir: node_dir.join("data"),
            members: members.clone(),
            ..Config::default()
        };
        config.tls.ca_cert = Some(ca_cert.clone());
        config.tls.ca_key = Some(ca_key.clone());
        let text = toml::to_string(&config).map_err(|e| e.to_string())?;
        let path = node_dir.join("coord.toml");
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        out.push((path, config));
    }
    Ok(out)
}

/// Runs every server as its own `coordd run` process (so one can be killed and restarted by
/// hand), writes each one's pid to `n<i>/pid`, and stops them all on SIGINT or SIGTERM.
fn dev(dir: &std::path::Path, port: u16, nodes: u32, observers: u32) -> ExitCode {
    let configs = match dev_configs(dir, port, nodes, observers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coordd: dev: {e}");
            return ExitCode::from(2);
        }
    };
    let servers: Vec<String> = configs
        .iter()
        .map(|(_, c)| c.client_addr.to_string())
        .collect();
    let ca = configs[0].1.tls.ca_cert.clone().unwrap_or_default();
    println!("export COORD_SERVERS={}", servers.join(","));
    println!("export COORD_CA={}", ca.display());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("coordd: dev: cannot find my own binary: {e}");
            return ExitCode::from(1);
        }
    };
    let mut children = Vec::new();
    for (path, config) in &configs {
        let node_dir = path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let log = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node_dir.join("coordd.log"))
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("coordd: dev: {}: {e}", node_dir.display());
                return ExitCode::from(1);
            }
        };
        match std::process::Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
        {
            Ok(child) => {
                let _ = std::fs::write(node_dir.join("pid"), format!("{}\n", child.id()));
                eprintln!(
                    "coordd dev: server {} (pid {}) clients {} log {} ; restart by hand: {} run --config {}",
                    config.id,
                    child.id(),
                    config.client_addr,
                    node_dir.join("coordd.log").display(),
                    exe.display(),
                    path.display()
                );
                children.push(child);
            }
            Err(e) => {
                eprintln!("coordd: dev: cannot start server {}: {e}", config.id);
                for mut c in children {
                    let _ = c.kill();
                }
                return ExitCode::from(1);
            }
        }
    }
    // Wait for SIGINT/SIGTERM, then stop every server we started.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let flag = stop.clone();
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { signal_hook_flag(sig, flag) };
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for c in &children {
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
    }
    for mut c in children {
        let _ = c.wait();
    }
    ExitCode::SUCCESS
}

static STOP_FLAG: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

extern "C" fn on_stop_signal(_: libc::c_int) {
    if let Some(f) = STOP_FLAG.get() {
        f.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Installs a handler that sets `flag` on `sig`.
unsafe fn signal_hook_flag(
    sig: libc::c_int,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> libc::sighandler_t {
    let _ = STOP_FLAG.set(flag);
    // SAFETY: installing a handler that only touches an atomic.
    unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) }
}

/// mimalloc rather than glibc's malloc: buffers made on one thread (QUIC, the log writer) and
/// freed on another made glibc's arenas spend a tenth of a follower's CPU in
/// `_int_malloc`/`malloc_consolidate` under write load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Command::Run {
            config,
            id,
            client_addr,
            data_dir,
        } => {
            let mut c = match config {
                Some(path) => match Config::from_file(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("coordd: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => Config::default(),
            };
            if let Some(id) = id {
                c.id = id;
            }
            if let Some(a) = client_addr {
                c.client_addr = a;
            }
            if let Some(d) = data_dir {
                c.data_dir = d;
            }
            if let Err(e) = c.validate() {
                eprintln!("coordd: {e}");
                return ExitCode::from(2);
            }
            c
        }
        Command::Dev {
            nodes,
            observers,
            dir,
            port,
        } => {
            return dev(&dir, port, nodes, observers);
        }
        Command::Ca { command } => {
            return match certificates(Some(command), None) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("coordd: ca: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Cert { command } => {
            return match certificates(None, Some(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("coordd: cert: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    init_logging();
    match coord_server::node::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("coordd: {e}");
            ExitCode::from(1)
        }
    }
}
