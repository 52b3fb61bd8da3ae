//! Fencing with sequencers: a toy storage service (this process) accepts a write only if
//! the writer's sequencer still names a held lock (`Client::check_sequencer`). Two writer
//! processes (this program run as children) take the lock in turn; the first one loses its
//! session while it thinks it still holds the lock, and its late write is refused.
//!
//! ```sh
//! eval "$(coordd dev | head -2)"
//! cargo run -p coord-examples --example fenced_writer
//! ```
//!
//! Protocol between storage and writers, one line each way: the writer prints
//! `WRITE <sequencer hex> <value>`, the storage answers `accepted` or `refused` on its stdin.

use coord_client::{Client, ClientConfig};
use coord_recipes::Lock;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const LOCK: &str = "/examples/fenced-lock";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => storage().await,
        Some("writer") => writer(args.get(2).map(String::as_str).unwrap_or("w")).await,
        Some(other) => {
            Err(format!("unknown mode {other:?} (no argument, or `writer NAME`)").into())
        }
    }
}

struct Writer {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

fn spawn_writer(name: &str) -> Res<Writer> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["writer", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    Ok(Writer {
        child,
        stdin,
        lines: BufReader::new(stdout).lines(),
    })
}

/// Serves one writer until it prints `line_wanted` (or exits); checks every WRITE.
async fn serve(client: &Client, w: &mut Writer, store: &mut Vec<String>, until: &str) -> Res<()> {
    while let Some(line) = w.lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("WRITE ") {
            let (seq, value) = rest.split_once(' ').ok_or("bad WRITE line")?;
            let seq = unhex(seq).ok_or("bad sequencer hex")?;
            let verdict = match client.check_sequencer(&seq).await {
                Ok(true) => {
                    store.push(value.to_string());
                    "accepted"
                }
                Ok(false) => "refused",
                Err(e) => {
                    println!("storage: bad sequencer: {e}");
                    "refused"
                }
            };
            println!("storage: write {value:?} {verdict} (store now {store:?})");
            w.stdin.write_all(format!("{verdict}\n").as_bytes()).await?;
        } else {
            println!("{line}");
            if line.ends_with(until) {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn storage() -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let mut store = Vec::new();
    let mut a = spawn_writer("writer-a")?;
    serve(&client, &mut a, &mut store, "waiting to write again").await?;
    let mut b = spawn_writer("writer-b")?;
    serve(&client, &mut b, &mut store, "done").await?;
    b.child.wait().await?;
    // Now let the stale writer try.
    a.stdin.write_all(b"go\n").await?;
    serve(&client, &mut a, &mut store, "done").await?;
    a.child.wait().await?;
    println!("storage: final contents {store:?}");
    if store.iter().any(|v| v == "a2") {
        return Err("the stale write was accepted".into());
    }
    Ok(())
}

async fn writer(name: &str) -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let lock = Lock::new(client.clone(), LOCK)?;
    println!("{name}: waiting for {LOCK}");
    lock.acquire(None).await?;
    let seq = lock.sequencer().ok_or("held but no sequencer")?;
    println!("{name}: holding it (generation {:?})", lock.generation());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    if name == "writer-a" {
        println!(
            "{name}: storage says {}",
            write(&mut stdin, &seq, "a1").await?
        );
        // As if the process had been paused past its session timeout: the session ends and
        // the lock passes on, but this writer still has its old sequencer.
        client.close().await?;
        println!("{name}: lost its session (still has its old sequencer); waiting to write again");
        stdin.next_line().await?;
        println!(
            "{name}: storage says {}",
            write(&mut stdin, &seq, "a2").await?
        );
    } else {
        println!(
            "{name}: storage says {}",
            write(&mut stdin, &seq, "b1").await?
        );
        lock.release().await?;
        client.close().await?;
    }
    println!("{name}: done");
    Ok(())
}

/// Asks the storage (our parent) to write `value` under `seq`; returns its verdict.
async fn write(
    stdin: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    seq: &[u8],
    value: &str,
) -> Res<String> {
    println!("WRITE {} {value}", hex(seq));
    Ok(stdin.next_line().await?.unwrap_or_default())
}
