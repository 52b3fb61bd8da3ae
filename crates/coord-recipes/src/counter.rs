//! A shared counter: a decimal number in one node, changed by compare-and-set on its version.

use crate::util::{bad, check_dir, ensure_path, retry};
use coord_client::{Client, Error, ErrorCode};

/// A shared 64-bit counter at a path (created holding 0 on first use).
///
/// **Guarantee.** Every successful [`Counter::add`] is applied exactly once and returns the
/// value it produced; concurrent adds never lose an update (each writes with the version it
/// read, and retries on `BadVersion`). **Disconnect:** an add whose write reply was lost
/// returns `ConnectionLoss` (it may or may not have been applied; it is not retried, so it
/// is never applied twice). **Session expiry / leader fail-over:** the value is persistent;
/// calls fail with `SessionExpired` / are retried where safe.
#[derive(Clone, Debug)]
pub struct Counter {
    client: Client,
    path: String,
}

fn parse(data: &[u8]) -> Result<i64, Error> {
    if data.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad("the counter node does not hold a decimal number"))
}

impl Counter {
    /// A counter at `path`.
    pub fn new(client: Client, path: &str) -> Result<Counter, Error> {
        check_dir(path)?;
        Ok(Counter {
            client,
            path: path.to_string(),
        })
    }

    /// The current value.
    pub async fn get(&self) -> Result<i64, Error> {
        ensure_path(&self.client, &self.path).await?;
        let (d, _) = retry(&self.client, || self.client.get_data(&self.path)).await?;
        parse(&d)
    }

    /// Adds `delta`; returns the new value. `BadArguments` on overflow.
    pub async fn add(&self, delta: i64) -> Result<i64, Error> {
        let client = &self.client;
        ensure_path(client, &self.path).await?;
        loop {
            let (d, stat) = retry(client, || client.get_data(&self.path)).await?;
            let next = parse(&d)?
                .checked_add(delta)
                .ok_or_else(|| bad("counter overflow"))?;
            match client
                .set_data(&self.path, next.to_string().as_bytes(), Some(stat.version))
                .await
            {
                Ok(_) => return Ok(next),
                Err(e) if e.code() == ErrorCode::BadVersion => {}
                // Not retried: the write may have been applied (see the type's doc).
                Err(e) => return Err(e),
            }
        }
    }
}
