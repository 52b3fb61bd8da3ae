//! Two-phase commit across three participant processes (this program run as children).
//! The coordinator (this process) begins a transaction, the participants vote, the
//! coordinator decides. Participant `p2` crashes right after voting yes; restarted, it
//! learns the decision from the tree. A second transaction, where `p1` votes no, aborts.
//!
//! ```sh
//! eval "$(coordd dev | head -2)"
//! cargo run -p coord-examples --example two_phase
//! ```

use coord_client::{Client, ClientConfig};
use coord_recipes::{Coordinator, Decision, Participant};
use std::time::Duration;
use tokio::process::Command;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const DIR: &str = "/examples/two-phase";

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => coordinator().await,
        Some("participant") => {
            let (Some(txn), Some(name), Some(mode)) = (args.get(2), args.get(3), args.get(4))
            else {
                return Err("usage: two_phase participant TXN NAME yes|no|crash|recover".into());
            };
            participant(txn, name, mode).await
        }
        Some(other) => Err(format!("unknown mode {other:?}").into()),
    }
}

async fn run(txn: &str, roles: &[(&str, &str)]) -> Res<Vec<tokio::process::Child>> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for (name, mode) in roles {
        children.push(
            Command::new(&exe)
                .args(["participant", txn, name, mode])
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    Ok(children)
}

async fn coordinator() -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let coord = Coordinator::new(client, DIR)?;
    let names = ["p0", "p1", "p2"];
    for (txn, roles) in [
        (
            "txn-commit",
            [("p0", "yes"), ("p1", "yes"), ("p2", "crash")],
        ),
        ("txn-abort", [("p0", "yes"), ("p1", "no"), ("p2", "yes")]),
    ] {
        // A fresh id per run, so the example can run again on the same ensemble.
        let id = format!("{txn}-{}", std::process::id());
        println!("coordinator: begin {id} with {names:?}");
        coord.begin(&id, &names).await?;
        let children = run(&id, &roles).await?;
        let decision = coord.decide(&id, Duration::from_secs(10)).await?;
        println!("coordinator: decided {decision:?}");
        for mut c in children {
            c.wait().await?;
        }
        if roles.iter().any(|(_, m)| *m == "crash") {
            println!("coordinator: restarting p2, which crashed after voting");
            for mut c in run(&id, &[("p2", "recover")]).await? {
                c.wait().await?;
            }
        }
    }
    Ok(())
}

async fn participant(txn: &str, name: &str, mode: &str) -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let p = Participant::new(client.clone(), DIR, name)?;
    if mode == "recover" {
        let d = p.decision(txn, Some(Duration::from_secs(10))).await?;
        println!("{name}: recovered; the decision of {txn} is {d:?}");
        return Ok(());
    }
    if !p.wait_begun(txn, Duration::from_secs(10)).await? {
        return Err(format!("{txn} never began").into());
    }
    let yes = mode != "no";
    p.vote(txn, yes).await?;
    println!("{name}: voted {}", if yes { "yes" } else { "no" });
    if mode == "crash" {
        println!("{name}: crashing before the decision");
        std::process::exit(3);
    }
    match p.decision(txn, Some(Duration::from_secs(10))).await? {
        Some(Decision::Commit) => println!("{name}: committing {txn}"),
        Some(Decision::Abort) => println!("{name}: aborting {txn}"),
        None => println!("{name}: no decision yet (waiting on Coord's quorum)"),
    }
    client.close().await?;
    Ok(())
}
