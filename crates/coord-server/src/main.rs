//! `coordd`: the Coord server.
//!
//! ```text
//! coordd run --config FILE [--id N] [--client-addr ADDR] [--data-dir DIR]
//! coordd dev [--nodes 1] [--dir DIR] [--port PORT]
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
        /// Number of servers (1 until replication lands).
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// Where data, config and TLS material live; data survives a restart with the same DIR.
        #[arg(long, default_value = "coord-dev")]
        dir: PathBuf,
        /// Client port of the first node.
        #[arg(long, default_value_t = 7181)]
        port: u16,
    },
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

fn dev_config(dir: &std::path::Path, port: u16) -> Result<Config, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let node_dir = dir.join("n1");
    std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
    let (ca_cert, ca_key) =
        coord_server::tls::ensure_ca(&dir.join("tls")).map_err(|e| e.to_string())?;
    let mut config = Config {
        id: 1,
        client_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: node_dir.clone(),
        ..Config::default()
    };
    config.tls.ca_cert = Some(ca_cert);
    config.tls.ca_key = Some(ca_key);
    let text = toml::to_string(&config).map_err(|e| e.to_string())?;
    std::fs::write(node_dir.join("coord.toml"), text).map_err(|e| e.to_string())?;
    std::fs::write(node_dir.join("pid"), format!("{}\n", std::process::id()))
        .map_err(|e| e.to_string())?;
    Ok(config)
}

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
        Command::Dev { nodes, dir, port } => {
            if nodes != 1 {
                eprintln!(
                    "coordd: --nodes {nodes}: this build runs a single server (replication is not in it yet)"
                );
                return ExitCode::from(2);
            }
            match dev_config(&dir, port) {
                Ok(c) => {
                    let ca = c.tls.ca_cert.clone().unwrap_or_default();
                    println!("export COORD_SERVERS={}", c.client_addr);
                    println!("export COORD_CA={}", ca.display());
                    c
                }
                Err(e) => {
                    eprintln!("coordd: dev: {e}");
                    return ExitCode::from(1);
                }
            }
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
