//! Three sessions take turns holding one exclusive lock; each prints its fencing token's
//! generation while it holds the lock.
//!
//! ```sh
//! eval "$(coordd dev | head -2)"   # or paste the two export lines
//! cargo run -p coord-examples --example lock
//! ```

use coord_client::{Client, ClientConfig, Sequencer};
use coord_recipes::Lock;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ClientConfig::from_env()?;
    let mut workers = Vec::new();
    for name in ["alice", "bob", "carol"] {
        // One session per worker: the lock excludes sessions (and handles), not tasks.
        let client = Client::connect(cfg.clone()).await?;
        workers.push(tokio::spawn(async move {
            let lock = Lock::new(client.clone(), "/examples/lock")?;
            println!("{name}: waiting for /examples/lock");
            lock.acquire(None).await?;
            let seq = Sequencer::decode(&lock.sequencer().unwrap_or_default()).map_err(|e| {
                coord_client::Error::with_message(
                    coord_client::ErrorCode::BadArguments,
                    e.to_string(),
                )
            })?;
            println!(
                "{name}: holding it (generation {}, session 0x{:x}); working for 500 ms",
                seq.czxid, seq.session_id
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            lock.release().await?;
            println!("{name}: released");
            client.close().await?;
            Ok::<(), coord_client::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    println!("done: each worker held the lock alone, in queue order");
    Ok(())
}
