//! `coord-loadtest`: one load generator for Coord and Apache ZooKeeper, so the two are
//! measured by the same client-side loop, clock and histograms on the same machine.
//!
//! ```text
//!   --sessions N  ──> N independent sessions (N Client::connect / N zk sessions)
//!   --inflight K  ──> K tasks per session sharing it, each: pick key, get|set, record, repeat
//!                     (K requests outstanding per session: pipelined on one connection)
//!   warm-up (not measured) ──> measured window (--duration) ──> stop by itself
//!   stdout: a table, then ONE LAST LINE of JSON (ops_per_sec, p50_ms, p99_ms, p999_ms, ...)
//! ```
//!
//! Modes: the default load run (`--workload write|read|mixed`), `--create-latency` (one
//! synchronous session creating nodes one after another) and `--populate N` (load N znodes,
//! for memory measurements). Only loopback servers are accepted: this is a benchmark of a
//! local ensemble, not a tool to point at someone else's.
#![warn(missing_docs)]

mod plot;
mod run;
mod stats;
mod target;

use std::io::IsTerminal;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use target::Target;

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadModeArg {
    /// From the connected server's tree (both targets' default).
    Local,
    /// Coord only: linearizable reads (a ReadIndex fence pipelined before each read).
    Linearizable,
    /// `sync` then the read: ZooKeeper's way to read after the latest writes (both targets).
    Sync,
    /// Coord only: through the client cache (Chubby's; never staler than a linearizable
    /// read): a hit costs no round trip while the lease lasts.
    Cached,
}

/// What the load tasks do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Only `set_data` on a random key.
    Write,
    /// Only `get_data` on a random key.
    Read,
    /// `get_data` with probability `--read-pct`, else `set_data`.
    Mixed,
}

impl Workload {
    /// The percentage of reads this workload issues.
    fn read_pct(self, mixed: u8) -> u8 {
        match self {
            Workload::Write => 0,
            Workload::Read => 100,
            Workload::Mixed => mixed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Mixed => "mixed",
        }
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("`{s}` must be between 0 and 86400 seconds"));
    }
    Ok(v)
}

/// Load generator for Coord and Apache ZooKeeper (loopback targets only).
#[derive(Parser, Debug)]
#[command(name = "coord-loadtest", version)]
pub struct Args {
    /// System under test.
    #[arg(long, value_enum, default_value_t = Target::Coord)]
    pub target: Target,
    /// Comma-separated host:port list [default: $COORD_SERVERS for coord, 127.0.0.1:2181 for zk].
    #[arg(long)]
    pub servers: Option<String>,
    /// Coord cluster CA certificate (PEM); coord only.
    #[arg(long, env = "COORD_CA")]
    pub ca: Option<PathBuf>,
    /// Independent sessions (client connections).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sessions: u32,
    /// Requests outstanding per session (tasks sharing it).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub inflight: u32,
    /// Measured seconds.
    #[arg(long, default_value = "20", value_parser = seconds)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value = "3", value_parser = seconds)]
    pub warmup: f64,
    /// Operation mix.
    #[arg(long, value_enum, default_value_t = Workload::Mixed)]
    pub workload: Workload,
    /// Percentage of reads for `--workload mixed`.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_pct: u8,
    /// Bytes written by each set (and stored in each key).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub value_size: u32,
    /// Keys, /loadtest/k<i> for i in 0..M, created (or overwritten) before the run.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// Instead of the load: one synchronous session creating nodes one after another,
    /// reporting per-create latency.
    #[arg(long, conflicts_with = "populate")]
    pub create_latency: bool,
    /// Instead of the load: create N znodes of --value-size bytes under /loadtest/pop, as
    /// fast as --sessions x --inflight allow, then exit (for memory measurements).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub populate: Option<u64>,
    /// Instead of the load: measure the failover gap. One session sets /loadtest/failover
    /// back to back; after --warmup seconds the tool SIGKILLs this pid (the leader's, found by
    /// the caller) and reports the time from the kill to the next successful write.
    #[arg(long, value_name = "PID", conflicts_with_all = ["populate", "create_latency"])]
    pub failover_kill: Option<i32>,
    /// Write an SVG of throughput and latency per second to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Skip creating the keys (they exist from an earlier run).
    #[arg(long)]
    pub no_setup: bool,
    /// Coord only: give every session its own QUIC connection. By default the sessions of
    /// this process share one connection per server (coord-client's `Transport`), as an
    /// application running many sessions would.
    #[arg(long)]
    pub connection_per_session: bool,
    /// How reads are served: `local`, `linearizable` (Coord only) or `sync` (sync + get).
    #[arg(long, value_enum, default_value_t = ReadModeArg::Local)]
    pub read_mode: ReadModeArg,
    /// Client runtime worker threads [default: available CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

/// Everything resolved from the flags and the environment, ready to run.
pub struct Plan {
    /// The flags.
    pub args: Args,
    /// Server list.
    pub servers: String,
    /// Coord CA PEM bytes (empty for zk).
    pub ca_pem: Vec<u8>,
    /// Whether to draw a progress bar (stdout is a terminal).
    pub progress: bool,
}

fn resolve(args: Args) -> Result<Plan, String> {
    let servers = match (&args.servers, args.target) {
        (Some(s), _) => s.clone(),
        (None, Target::Coord) => std::env::var("COORD_SERVERS")
            .map_err(|_| "coord: pass --servers or set COORD_SERVERS".to_string())?,
        (None, Target::Zk) => "127.0.0.1:2181".to_string(),
    };
    check_loopback(&servers, args.target)?;
    let ca_pem = match args.target {
        Target::Coord => {
            let path = args
                .ca
                .as_ref()
                .ok_or("coord: pass --ca FILE or set COORD_CA")?;
            std::fs::read(path).map_err(|e| format!("--ca {}: {e}", path.display()))?
        }
        Target::Zk => Vec::new(),
    };
    if args.duration <= 0.0 && args.populate.is_none() {
        return Err("--duration must be more than 0 seconds".into());
    }
    Ok(Plan {
        servers,
        ca_pem,
        progress: std::io::stdout().is_terminal(),
        args,
    })
}

/// Refuses any server that is not on this machine's loopback interface.
fn check_loopback(servers: &str, target: Target) -> Result<(), String> {
    // A ZooKeeper connect string may end in a chroot: "h1:2181,h2:2181/app".
    let hosts = match target {
        Target::Zk => servers.split('/').next().unwrap_or(""),
        Target::Coord => servers,
    };
    let mut any = false;
    for entry in hosts.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        any = true;
        let addrs: Vec<_> = entry
            .to_socket_addrs()
            .map_err(|e| format!("server `{entry}`: {e} (expected host:port)"))?
            .collect();
        if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(format!(
                "server `{entry}` is not a loopback address: coord-loadtest only drives local servers"
            ));
        }
    }
    if !any {
        return Err("no servers given".into());
    }
    Ok(())
}

/// The same allocator as `coordd` (mimalloc); it serves the ZooKeeper client equally.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match resolve(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coord-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = plan.args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |t| t as usize,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coord-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run::run(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coord-loadtest: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_are_errors_not_panics() {
        for bad in [
            vec!["x", "--sessions", "0"],
            vec!["x", "--read-pct", "101"],
            vec!["x", "--duration", "-1"],
            vec!["x", "--duration", "abc"],
            vec!["x", "--target", "etcd"],
            vec!["x", "--workload", "scan"],
            vec!["x", "--populate", "10", "--create-latency"],
        ] {
            assert!(Args::try_parse_from(&bad).is_err(), "{bad:?}");
        }
        let ok = Args::try_parse_from(["x", "--target", "zk", "--workload", "read"]).unwrap();
        assert_eq!(ok.workload.read_pct(50), 100);
    }

    #[test]
    fn only_loopback_servers() {
        assert!(check_loopback("127.0.0.1:2181,127.0.0.1:2182/chroot", Target::Zk).is_ok());
        assert!(check_loopback("[::1]:7181", Target::Coord).is_ok());
        assert!(check_loopback("10.1.2.3:2181", Target::Zk).is_err());
        assert!(check_loopback("127.0.0.1", Target::Coord).is_err());
        assert!(check_loopback("", Target::Coord).is_err());
    }
}
