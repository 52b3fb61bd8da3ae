//! Helpers every recipe shares: path checks, unique prefixes, sequence numbers, retries
//! through connection loss, and deadlines.

use coord_client::{Client, CreateOptions, Error, ErrorCode, Stat, Watch};
use std::time::Duration;
use tokio::time::Instant;

/// Pause between retries of a call that failed with `ConnectionLoss`. Calls made while the
/// client reconnects wait for the new connection, so this only keeps a flapping link from
/// turning a retry loop into a spin.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How often a waiter refused with `LockDelay` tries again (the server does not say how
/// much of the delay is left).
pub(crate) const LOCK_DELAY_POLL: Duration = Duration::from_millis(100);

/// `BadArguments` with a message.
pub(crate) fn bad(message: impl Into<String>) -> Error {
    Error::with_message(ErrorCode::BadArguments, message)
}

/// Checks that `path` can be the directory of a recipe: absolute, not the root, no empty,
/// `.` or `..` segment, no NUL. The client checks again on every call; this only gives a
/// clear error at construction time instead of at the first call.
pub(crate) fn check_dir(path: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Err(Error::with_message(
            ErrorCode::InvalidPath,
            format!("{path:?}: {why}"),
        ))
    };
    if !path.starts_with('/') {
        return invalid("a recipe path must start with '/'");
    }
    if path == "/" {
        return invalid("a recipe needs its own node, not the root");
    }
    if path.ends_with('/') {
        return invalid("a path must not end with '/'");
    }
    if path.contains('\0') {
        return invalid("a path must not contain NUL");
    }
    if path[1..]
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return invalid("empty, '.' or '..' path segment");
    }
    Ok(())
}

/// A 128-bit random hex string: the per-attempt prefix that lets a create whose reply was
/// lost be found again by its name.
pub(crate) fn unique_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The sequence number of a sequential node's name (the digits after the last `-`).
pub(crate) fn sequence(name: &str) -> Option<u64> {
    let (_, digits) = name.rsplit_once('-')?;
    if digits.len() < 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `dir/name`.
pub(crate) fn child(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

/// The last segment of a path.
pub(crate) fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// Whether the session can still be used; a recipe stops retrying once it cannot.
pub(crate) fn alive(client: &Client) -> bool {
    client.state().is_alive()
}

/// Whether a call failed in a way a retry may fix: the connection dropped
/// (`ConnectionLoss`: it may or may not have been applied) or the server was not serving
/// (`NotServing`: electing, or behind this session). Both are handled as a lost reply.
pub(crate) fn transient(e: &Error) -> bool {
    e.is_connection_loss() || e.code() == ErrorCode::NotServing
}

/// Runs `f` again while it fails with `ConnectionLoss` and the session lives. Only for
/// calls that are safe to repeat (reads, or writes whose second try recognises the first).
pub(crate) async fn retry<T, F, Fut>(client: &Client, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match f().await {
            Err(e) if transient(&e) && alive(client) => {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            r => return r,
        }
    }
}

/// Creates `path` and any missing ancestors as persistent nodes; existing ones are fine.
pub(crate) async fn ensure_path(client: &Client, path: &str) -> Result<(), Error> {
    if retry(client, || client.exists(path)).await?.is_some() {
        return Ok(());
    }
    let mut at = String::new();
    for segment in path[1..].split('/') {
        at.push('/');
        at.push_str(segment);
        let r = retry(client, || {
            client.create(&at, b"", CreateOptions::persistent())
        })
        .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates a sequential node `dir/<prefix>NNNNNNNNNN` and returns its path and Stat. A
/// create whose reply was lost to a connection drop is found again by its unique `prefix`
/// (it is either there, exactly once, or not at all), so nothing is leaked or doubled.
pub(crate) async fn create_unique(
    client: &Client,
    dir: &str,
    prefix: &str,
    data: &[u8],
    opts: CreateOptions,
) -> Result<(String, Stat), Error> {
    let full = child(dir, prefix);
    loop {
        match client.create2(&full, data, opts.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) if transient(&e) && alive(client) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                if let Some(found) = find_prefixed(client, dir, prefix).await? {
                    return Ok(found);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The node of `dir` whose name starts with `prefix`, with its Stat, if there is one.
pub(crate) async fn find_prefixed(
    client: &Client,
    dir: &str,
    prefix: &str,
) -> Result<Option<(String, Stat)>, Error> {
    let (names, _) = retry(client, || client.get_children(dir)).await?;
    for name in names.iter().filter(|n| n.starts_with(prefix)) {
        let path = child(dir, name);
        if let Some(stat) = retry(client, || client.exists(&path)).await? {
            return Ok(Some((path, stat)));
        }
    }
    Ok(None)
}

/// Deletes `path`, retrying through connection loss; a node already gone (perhaps by the
/// first try whose reply was lost) counts as deleted.
pub(crate) async fn delete_quietly(client: &Client, path: &str) -> Result<(), Error> {
    match retry(client, || client.delete(path, None)).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == ErrorCode::NoNode => Ok(()),
        Err(e) => Err(e),
    }
}

/// The instant `timeout` from now; `None` waits forever.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Whether `deadline` has passed.
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Waits for `watch` to fire, or until `deadline`. `Ok(true)`: it fired; `Ok(false)`: the
/// deadline passed first; `Err`: the session ended.
pub(crate) async fn wait_watch(watch: Watch, deadline: Option<Instant>) -> Result<bool, Error> {
    match deadline {
        None => watch.await.map(|_| true),
        Some(d) => match tokio::time::timeout_at(d, watch).await {
            Ok(r) => r.map(|_| true),
            Err(_) => Ok(false),
        },
    }
}

/// Sleeps `pause`, or until `deadline` if that is sooner.
pub(crate) async fn sleep_until_at_most(pause: Duration, deadline: Option<Instant>) {
    let wake = Instant::now() + pause;
    let wake = deadline.map_or(wake, |d| d.min(wake));
    tokio::time::sleep_until(wake).await;
}

/// Children of `dir` that carry `marker` in their name and a sequence suffix, sorted by
/// sequence number (the order the server assigned).
pub(crate) fn sorted_by_sequence(names: Vec<String>, marker: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = names
        .into_iter()
        .filter(|n| n.contains(marker))
        .filter_map(|n| sequence(&n).map(|s| (s, n)))
        .collect();
    out.sort();
    out
}

/// Spawns the best-effort cleanup of a cancelled recipe call (a future dropped mid-acquire).
/// Without a runtime there is nothing to spawn on; what was left is ephemeral and goes with
/// the session.
pub(crate) fn spawn_cleanup(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_and_paths() {
        assert_eq!(sequence("abc-lock-0000000042"), Some(42));
        assert_eq!(sequence("holder"), None);
        assert_eq!(sequence("x-12"), None);
        assert!(check_dir("/a/b").is_ok());
        for bad in ["", "a", "/", "/a/", "/a//b", "/a/./b", "/a/../b"] {
            assert_eq!(
                check_dir(bad).unwrap_err().code(),
                ErrorCode::InvalidPath,
                "{bad:?}"
            );
        }
        assert_eq!(
            sorted_by_sequence(
                vec![
                    "b-lock-0000000002".into(),
                    "holder".into(),
                    "a-lock-0000000001".into(),
                    "c-read-0000000000".into()
                ],
                "-lock-"
            ),
            vec![
                (1, "a-lock-0000000001".to_string()),
                (2, "b-lock-0000000002".to_string())
            ]
        );
        assert_eq!(name_of("/a/b"), "b");
        assert_ne!(unique_id(), unique_id());
    }
}
