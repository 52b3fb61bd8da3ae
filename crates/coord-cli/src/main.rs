//! `coord`: the Coord command line, like zkCli or etcdctl. One command per run:
//!
//! ```text
//!   eval "$(coordd dev)"            # sets COORD_SERVERS and COORD_CA
//!   coord create /app hello
//!   coord get -w /app               # prints the data, then waits for the next change
//!   coord ls -R /
//! ```
//!
//! Errors print one line to stderr (`coord: get /x: NoNode (no such node)`); the exit status
//! is 2 for usage errors and 1 for anything else (`exists` exits 1 when the node is missing).
//! Logs are off unless `RUST_LOG` is set.

mod acl;

use clap::{Parser, Subcommand};
use coord_client::{
    AddWatchMode, Client, ClientConfig, CreateMode, CreateOptions, Error, ErrorCode, Stat,
    WatchedEvent,
};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "coord", version, about = "Coord command line client")]
struct Cli {
    /// Servers, comma-separated host:port.
    #[arg(long, env = "COORD_SERVERS", value_name = "HOSTS")]
    servers: Option<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "COORD_CA", value_name = "FILE")]
    ca: Option<String>,
    /// Session timeout in milliseconds (also bounds connecting).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout: u64,
    /// Credentials added before the command, as scheme:auth (e.g. digest:bob:secret); repeatable.
    #[arg(long = "auth", value_name = "SCHEME:AUTH")]
    auth: Vec<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a node; prints the created path.
    Create {
        /// Ephemeral: deleted when this command's session ends.
        #[arg(short = 'e')]
        ephemeral: bool,
        /// Sequential: append a 10-digit sequence number.
        #[arg(short = 's')]
        sequential: bool,
        /// Container: removed once its last child is gone.
        #[arg(short = 'c')]
        container: bool,
        /// Time to live in ms (persistent nodes).
        #[arg(long, value_name = "MS")]
        ttl: Option<u64>,
        /// ACL (comma-separated scheme:id:perms); default world:anyone:crwda.
        #[arg(long, value_name = "ACL")]
        acl: Option<String>,
        path: String,
        data: Option<String>,
    },
    /// Print a node's data (raw).
    Get {
        /// Then wait for the next change and print it.
        #[arg(short = 'w')]
        watch: bool,
        path: String,
    },
    /// Set a node's data.
    Set {
        /// Expected version.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        path: String,
        data: String,
    },
    /// Delete a node.
    Delete {
        /// Expected version.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        path: String,
    },
    /// List children, one per line.
    Ls {
        /// Then wait for the next change of the children and print it.
        #[arg(short = 'w')]
        watch: bool,
        /// Recursive: the node and every descendant, as full paths.
        #[arg(short = 'R')]
        recursive: bool,
        path: String,
    },
    /// Print a node's Stat.
    Stat { path: String },
    /// Print a node's ACL, one scheme:id:perms per line.
    Getacl { path: String },
    /// Replace a node's ACL (comma-separated scheme:id:perms, perms from crwda).
    Setacl {
        /// Expected ACL version.
        #[arg(short = 'v', allow_negative_numbers = true)]
        version: Option<i32>,
        path: String,
        acl: String,
    },
    /// Check credentials: connect, add them, print "ok".
    Addauth { scheme: String, auth: String },
    /// Print the events of a persistent watch until interrupted.
    Watch {
        /// Recursive: the node and every descendant.
        #[arg(short = 'R')]
        recursive: bool,
        path: String,
    },
    /// Wait until the server has applied everything committed.
    Sync { path: String },
    /// Print the Stat (exit 0) or "no node" (exit 1).
    Exists { path: String },
    /// Print each server's role, epoch, last zxid and (leader) followers in sync; a server
    /// that does not answer is `down`. Needs no session, so it works without a quorum.
    Status {
        /// One JSON array of objects instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the digest id of USER:PASS, for digest ACLs.
    Digest {
        #[arg(value_name = "USER:PASS")]
        user_pass: String,
    },
}

/// Why a run failed.
enum Failure {
    /// Bad arguments: exit 2.
    Usage(String),
    /// A failed operation: exit 1.
    Op(String, Error),
    /// A negative answer already printed (exists on a missing node): exit 1.
    Silent,
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn op(what: impl Into<String>) -> impl FnOnce(Error) -> Failure {
    let what = what.into();
    move |e| Failure::Op(what, e)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coord: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("coord: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Op(what, e)) => {
            eprintln!("coord: {what}: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Silent) => ExitCode::FAILURE,
    }
}

fn split_auth(s: &str) -> Result<(String, Vec<u8>), Failure> {
    match s.split_once(':') {
        Some((scheme, auth)) if !scheme.is_empty() => {
            Ok((scheme.to_string(), auth.as_bytes().to_vec()))
        }
        _ => Err(usage(format!(
            "bad --auth {s:?}: expected scheme:auth, e.g. digest:bob:secret"
        ))),
    }
}

async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let servers = cli
        .servers
        .as_deref()
        .ok_or_else(|| usage("no servers: pass --servers or set COORD_SERVERS"))?;
    let ca = cli
        .ca
        .as_deref()
        .ok_or_else(|| usage("no CA: pass --ca or set COORD_CA"))?;
    if cli.timeout == 0 {
        return Err(usage("--timeout must be positive"));
    }
    let timeout = Duration::from_millis(cli.timeout);
    let cfg = ClientConfig::new(servers, ca).map_err(|e| usage(e.message().to_string()))?;
    let cfg = cfg
        .session_timeout(timeout)
        .connect_timeout(timeout.min(coord_client::config::DEFAULT_CONNECT_TIMEOUT));
    let auth = cli
        .auth
        .iter()
        .map(|a| split_auth(a))
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::connect(cfg).await.map_err(op("connect"))?;
    for (scheme, bytes) in auth {
        client
            .add_auth(&scheme, &bytes)
            .await
            .map_err(op(format!("auth {scheme}")))?;
    }
    Ok(client)
}

async fn status(cli: &Cli, json: bool) -> Result<(), Failure> {
    let servers = cli
        .servers
        .as_deref()
        .ok_or_else(|| usage("no servers: pass --servers or set COORD_SERVERS"))?;
    let ca = cli
        .ca
        .as_deref()
        .ok_or_else(|| usage("no CA: pass --ca or set COORD_CA"))?;
    let cfg = ClientConfig::new(servers, ca)
        .map_err(|e| usage(e.message().to_string()))?
        .connect_timeout(Duration::from_millis(cli.timeout.clamp(1, 2000)));
    let mut rows = Vec::new();
    for server in &cfg.servers {
        let s = coord_client::server_status(&cfg, server).await.ok();
        rows.push((server.clone(), s));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let array: Vec<serde_json::Value> = rows
            .iter()
            .map(|(addr, s)| match s {
                Some(s) => serde_json::json!({
                    "id": s.id, "address": addr, "role": s.role, "epoch": s.epoch,
                    "zxid": format!("0x{:x}", s.zxid), "leader": s.leader,
                    "synced_followers": s.synced_followers, "digest": format!("{:016x}", s.digest),
                    "nodes": s.nodes, "sessions": s.sessions,
                }),
                None => serde_json::json!({
                    "id": null, "address": addr, "role": "down", "epoch": null, "zxid": null,
                }),
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(array));
    } else {
        let _ = writeln!(
            out,
            "{:<4} {:<22} {:<9} {:>6} {:<20} {:<16} followers",
            "id", "address", "role", "epoch", "zxid", "digest"
        );
        for (addr, s) in &rows {
            match s {
                Some(s) => {
                    let followers: Vec<String> =
                        s.synced_followers.iter().map(u64::to_string).collect();
                    let _ = writeln!(
                        out,
                        "{:<4} {:<22} {:<9} {:>6} {:<20} {:016x} {}",
                        s.id,
                        addr,
                        s.role,
                        s.epoch,
                        format!("0x{:x}", s.zxid),
                        s.digest,
                        followers.join(",")
                    );
                }
                None => {
                    let _ = writeln!(out, "{:<4} {:<22} {:<9}", "-", addr, "down");
                }
            }
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Cmd::Digest { user_pass } = &cli.cmd {
        let (user, pass) = user_pass
            .split_once(':')
            .ok_or_else(|| usage("digest: expected USER:PASS"))?;
        println!("{}", coord_client::digest_id(user, pass));
        return Ok(());
    }
    if let Cmd::Status { json } = &cli.cmd {
        return status(&cli, *json).await;
    }
    let client = connect(&cli).await?;
    let result = command(&client, cli.cmd).await;
    // The session ends with the command (ephemeral nodes go with it); a close failure after
    // a successful command is not worth failing the command for.
    let _ = client.close().await;
    result
}

async fn command(c: &Client, cmd: Cmd) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::Create {
            ephemeral,
            sequential,
            container,
            ttl,
            acl,
            path,
            data,
        } => {
            let mode = CreateMode::from_flags(ephemeral, sequential, container, ttl.is_some())
                .ok_or_else(|| usage("create: -e, -s, -c and --ttl combine only as -e, -s, -e -s, -c, --ttl, -s --ttl"))?;
            let mut opts = CreateOptions::default().with_mode(mode);
            if let Some(ms) = ttl {
                opts = opts.with_ttl(Duration::from_millis(ms));
            }
            if let Some(acl) = acl {
                opts = opts.with_acl(acl::parse_list(&acl).map_err(usage)?);
            }
            let data = data.unwrap_or_default();
            let created = c
                .create(&path, data.as_bytes(), opts)
                .await
                .map_err(op(format!("create {path}")))?;
            writeln!(out, "{created}").ok();
        }
        Cmd::Get { watch, path } => {
            let what = format!("get {path}");
            if watch {
                let (data, _, w) = c.get_data_w(&path).await.map_err(op(&what))?;
                out.write_all(&data).ok();
                if !data.is_empty() && !data.ends_with(b"\n") {
                    writeln!(out).ok();
                }
                out.flush().ok();
                let event = w.await.map_err(op(&what))?;
                print_event(&mut out, &event);
            } else {
                let (data, _) = c.get_data(&path).await.map_err(op(&what))?;
                out.write_all(&data).ok();
            }
        }
        Cmd::Set {
            version,
            path,
            data,
        } => {
            c.set_data(&path, data.as_bytes(), version)
                .await
                .map_err(op(format!("set {path}")))?;
        }
        Cmd::Delete { version, path } => {
            c.delete(&path, version)
                .await
                .map_err(op(format!("delete {path}")))?;
        }
        Cmd::Ls {
            watch,
            recursive,
            path,
        } => {
            let what = format!("ls {path}");
            if recursive {
                for p in list_recursive(c, &path).await.map_err(op(&what))? {
                    writeln!(out, "{p}").ok();
                }
            }
            if watch {
                let (children, _, w) = c.get_children_w(&path).await.map_err(op(&what))?;
                if !recursive {
                    for child in children {
                        writeln!(out, "{child}").ok();
                    }
                }
                out.flush().ok();
                let event = w.await.map_err(op(&what))?;
                print_event(&mut out, &event);
            } else if !recursive {
                let (children, _) = c.get_children(&path).await.map_err(op(&what))?;
                for child in children {
                    writeln!(out, "{child}").ok();
                }
            }
        }
        Cmd::Stat { path } => {
            let stat = c.exists(&path).await.map_err(op(format!("stat {path}")))?;
            let stat = stat.ok_or_else(|| {
                Failure::Op(format!("stat {path}"), Error::new(ErrorCode::NoNode))
            })?;
            print_stat(&mut out, &stat);
        }
        Cmd::Getacl { path } => {
            let (acl, _) = c
                .get_acl(&path)
                .await
                .map_err(op(format!("getacl {path}")))?;
            for entry in &acl {
                writeln!(out, "{}", acl::format_entry(entry)).ok();
            }
        }
        Cmd::Setacl { version, path, acl } => {
            let acl = acl::parse_list(&acl).map_err(usage)?;
            c.set_acl(&path, &acl, version)
                .await
                .map_err(op(format!("setacl {path}")))?;
        }
        Cmd::Addauth { scheme, auth } => {
            c.add_auth(&scheme, auth.as_bytes())
                .await
                .map_err(op(format!("addauth {scheme}")))?;
            writeln!(out, "ok").ok();
        }
        Cmd::Watch { recursive, path } => {
            let mode = if recursive {
                AddWatchMode::PersistentRecursive
            } else {
                AddWatchMode::Persistent
            };
            let mut w = c
                .add_watch(&path, mode)
                .await
                .map_err(op(format!("watch {path}")))?;
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(
                    |e| {
                        Failure::Op(
                            "watch".into(),
                            Error::with_message(ErrorCode::SystemError, e.to_string()),
                        )
                    },
                )?;
            drop(out);
            loop {
                tokio::select! {
                    event = w.recv() => match event {
                        Some(event) => {
                            let mut out = std::io::stdout().lock();
                            print_event(&mut out, &event);
                        }
                        None => {
                            let state = c.state();
                            return Err(Failure::Op(format!("watch {path}"), Error::with_message(
                                ErrorCode::ConnectionLoss, format!("the watch ended (session {state:?})"))));
                        }
                    },
                    _ = tokio::signal::ctrl_c() => break,
                    _ = term.recv() => break,
                }
            }
        }
        Cmd::Sync { path } => {
            c.sync(&path).await.map_err(op(format!("sync {path}")))?;
        }
        Cmd::Exists { path } => match c
            .exists(&path)
            .await
            .map_err(op(format!("exists {path}")))?
        {
            Some(stat) => print_stat(&mut out, &stat),
            None => {
                writeln!(out, "no node").ok();
                return Err(Failure::Silent);
            }
        },
        Cmd::Digest { .. } | Cmd::Status { .. } => {}
    }
    Ok(())
}

/// The node and all its descendants, depth first, children in name order.
async fn list_recursive(c: &Client, root: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        let children = match c.get_children(&p).await {
            Ok((children, _)) => children,
            // Deleted while we walked: skip it, unless it is the root.
            Err(e) if e.code() == ErrorCode::NoNode && p != root => continue,
            Err(e) => return Err(e),
        };
        for child in children.iter().rev() {
            stack.push(coord_proto::path::join(&p, child));
        }
        out.push(p);
    }
    Ok(out)
}

fn print_event(out: &mut impl Write, e: &WatchedEvent) {
    writeln!(out, "{:?} {}", e.event_type, e.path).ok();
    out.flush().ok();
}

fn print_stat(out: &mut impl Write, s: &Stat) {
    let lines = [
        ("czxid", format!("0x{:x}", s.czxid)),
        ("mzxid", format!("0x{:x}", s.mzxid)),
        ("pzxid", format!("0x{:x}", s.pzxid)),
        ("ctime", s.ctime.to_string()),
        ("mtime", s.mtime.to_string()),
        ("version", s.version.to_string()),
        ("cversion", s.cversion.to_string()),
        ("aversion", s.aversion.to_string()),
        ("ephemeral_owner", format!("0x{:x}", s.ephemeral_owner)),
        ("data_length", s.data_length.to_string()),
        ("num_children", s.num_children.to_string()),
    ];
    for (name, value) in lines {
        writeln!(out, "{name} = {value}").ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_commands() {
        let cli = Cli::try_parse_from([
            "coord",
            "--auth",
            "digest:bob:pw",
            "create",
            "-e",
            "-s",
            "/a/b-",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.auth, ["digest:bob:pw"]);
        assert!(
            matches!(cli.cmd, Cmd::Create { ephemeral: true, sequential: true, ref path, .. } if path == "/a/b-")
        );
        let cli = Cli::try_parse_from(["coord", "set", "-v", "-1", "/a", "d"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Set {
                version: Some(-1),
                ..
            }
        ));
        let cli = Cli::try_parse_from(["coord", "ls", "-R", "-w", "/"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Ls {
                watch: true,
                recursive: true,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["coord", "frobnicate"]).is_err());
    }

    #[test]
    fn auth_flag_splits_at_the_first_colon() {
        let (scheme, auth) = split_auth("digest:bob:pa:ss").ok().unwrap();
        assert_eq!(
            (scheme.as_str(), auth.as_slice()),
            ("digest", &b"bob:pa:ss"[..])
        );
        assert!(split_auth("digest").is_err());
        assert!(split_auth(":x").is_err());
    }

    #[test]
    fn stat_prints_every_field() {
        let mut buf = Vec::new();
        print_stat(
            &mut buf,
            &Stat {
                czxid: 0x100000002,
                ephemeral_owner: 0xab,
                num_children: 3,
                ..Stat::default()
            },
        );
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 11);
        assert!(text.contains("czxid = 0x100000002\n"));
        assert!(text.contains("ephemeral_owner = 0xab\n"));
        assert!(text.contains("num_children = 3\n"));
    }
}
