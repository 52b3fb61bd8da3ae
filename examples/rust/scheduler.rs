//! A scheduler: two scheduler sessions campaign for leadership; the leader hands out jobs
//! through a locking queue to three workers, which ack each job once done. Halfway the
//! leader resigns and the other scheduler takes over and hands out the rest.
//!
//! ```sh
//! eval "$(coordd dev | head -2)"
//! cargo run -p coord-examples --example scheduler
//! ```

use coord_client::{Client, ClientConfig, Error};
use coord_recipes::{Election, LockingQueue};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const ELECTION: &str = "/examples/scheduler/leader";
const JOBS: &str = "/examples/scheduler/jobs";
const BATCH: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ClientConfig::from_env()?;
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..3 {
        let queue = LockingQueue::new(Client::connect(cfg.clone()).await?, JOBS)?;
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < 2 * BATCH {
                if let Some(job) = queue.take(Some(Duration::from_millis(500))).await? {
                    println!("worker {w}: running {}", String::from_utf8_lossy(&job.data));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    queue.ack(&job).await?;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok::<(), Error>(())
        }));
    }
    let mut schedulers = Vec::new();
    for name in ["scheduler-1", "scheduler-2"] {
        let client = Client::connect(cfg.clone()).await?;
        schedulers.push(tokio::spawn(async move {
            let election = Election::new(client.clone(), ELECTION, name.as_bytes())?;
            let queue = LockingQueue::new(client.clone(), JOBS)?;
            println!("{name}: campaigning");
            election.campaign(None).await?;
            let term = election.term().unwrap_or_default();
            println!("{name}: leader (term {term}); handing out {BATCH} jobs");
            for i in 0..BATCH {
                queue.put(format!("job {i} of {name}").as_bytes()).await?;
            }
            // Wait for the batch to be done, then step down for the other scheduler.
            while !queue.is_empty().await? {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            println!("{name}: batch done; resigning");
            election.resign().await?;
            client.close().await?;
            Ok::<(), Error>(())
        }));
    }
    for s in schedulers {
        s.await??;
    }
    for w in workers {
        w.await??;
    }
    println!(
        "done: {} jobs run, each acked once",
        done.load(Ordering::SeqCst)
    );
    Ok(())
}
