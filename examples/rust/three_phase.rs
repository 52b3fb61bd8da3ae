//! Three-phase commit across three participant processes (this program run as children),
//! where the coordinator dies and the participants finish without it.
//!
//! Transaction one: every participant votes yes, the coordinator sends pre-commit to `p0`
//! only and then "crashes" (stops; this process never calls do-commit). The participants'
//! timeouts run out, they elect a recovery coordinator among themselves, it finds a
//! prepared participant and commits. Transaction two: `p1` votes no, so it aborts whatever
//! the coordinator does.
//!
//! ```sh
//! eval "$(coordd dev | head -2)"
//! cargo run -p coord-examples --example three_phase
//! ```

use coord_client::{Client, ClientConfig};
use coord_recipes::{Decision, ThreePhaseCoordinator, ThreePhaseParticipant};
use std::time::Duration;
use tokio::process::Command;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const DIR: &str = "/examples/three-phase";
const NAMES: [&str; 3] = ["p0", "p1", "p2"];
/// How long a participant waits for the next message before it terminates without the
/// coordinator.
const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => coordinator().await,
        Some("participant") => {
            let (Some(txn), Some(name), Some(vote)) = (args.get(2), args.get(3), args.get(4))
            else {
                return Err("usage: three_phase participant TXN NAME yes|no".into());
            };
            participant(txn, name, vote == "yes").await
        }
        Some(other) => Err(format!("unknown mode {other:?}").into()),
    }
}

async fn coordinator() -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let coord = ThreePhaseCoordinator::new(client.clone(), DIR)?;
    let exe = std::env::current_exe()?;
    for (txn, no_voter) in [("txn-commit", None), ("txn-abort", Some("p1"))] {
        // A fresh id per run, so the example can run again on the same ensemble.
        let id = format!("{txn}-{}", std::process::id());
        println!("coordinator: can-commit {id} to {NAMES:?}");
        coord.begin(&id, &NAMES).await?;
        let mut children = Vec::new();
        for name in NAMES {
            let vote = if Some(name) == no_voter { "no" } else { "yes" };
            children.push(
                Command::new(&exe)
                    .args(["participant", &id, name, vote])
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        match coord.can_commit(&id, Duration::from_secs(10)).await? {
            Some(decision) => println!("coordinator: decided {decision:?} in can-commit"),
            None => {
                println!("coordinator: every vote is yes; pre-commit to p0, then crash");
                coord.pre_commit(&id, &["p0"]).await?;
            }
        }
        for mut c in children {
            let status = c.wait().await?;
            if !status.success() {
                return Err(format!("a participant of {id} failed: {status}").into());
            }
        }
        println!(
            "coordinator: the decision of {id} is {:?}",
            coord.decision(&id).await?
        );
    }
    client.close().await?;
    Ok(())
}

async fn participant(txn: &str, name: &str, yes: bool) -> Res<()> {
    let client = Client::connect(ClientConfig::from_env()?).await?;
    let p = ThreePhaseParticipant::new(client.clone(), DIR, name)?;
    if !p.wait_begun(txn, Duration::from_secs(10)).await? {
        return Err(format!("{txn} never began").into());
    }
    p.vote(txn, yes).await?;
    println!("{name}: voted {}", if yes { "yes" } else { "no" });
    match p.outcome(txn, TIMEOUT).await? {
        Decision::Commit => println!("{name}: committing {txn}"),
        Decision::Abort => println!("{name}: aborting {txn}"),
    }
    client.close().await?;
    Ok(())
}
