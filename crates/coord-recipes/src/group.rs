//! Group membership / service discovery: each member is an ephemeral node named after it,
//! holding its data (an address); a [`GroupView`] keeps a live list.
//!
//! ```text
//!   /services/api
//!   ├── host-a     ephemeral, data "10.0.0.1:80"
//!   └── host-b
//! ```

use crate::util::{RETRY_PAUSE, alive, bad, check_dir, child, ensure_path, retry};
use coord_client::{Client, CreateOptions, Error, ErrorCode, Watch};
use std::collections::BTreeMap;

/// A group of members at a path.
///
/// **Guarantee.** A member is listed exactly while its session lives and it has not left.
/// **Disconnect (jeopardy):** the member stays listed while its session may still live.
/// **Session expiry:** the member node vanishes; join again with a new session.
/// **Leader fail-over:** as a disconnect: membership survives.
#[derive(Clone, Debug)]
pub struct Group {
    client: Client,
    path: String,
}

fn check_member(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(bad(format!("{name:?} is not a member name")));
    }
    Ok(())
}

impl Group {
    /// The group at `path` (created on first use).
    pub fn new(client: Client, path: &str) -> Result<Group, Error> {
        check_dir(path)?;
        Ok(Group {
            client,
            path: path.to_string(),
        })
    }

    /// Joins as `name` with `data`. `NodeExists` if another session is `name` already; a
    /// join of this session repeated after a lost reply is fine.
    pub async fn join(&self, name: &str, data: &[u8]) -> Result<(), Error> {
        check_member(name)?;
        let client = &self.client;
        ensure_path(client, &self.path).await?;
        let path = child(&self.path, name);
        loop {
            match client.create(&path, data, CreateOptions::ephemeral()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NodeExists => {
                    let stat = retry(client, || client.exists(&path)).await?;
                    return match stat {
                        Some(s) if s.ephemeral_owner == client.session_id() => Ok(()),
                        _ => Err(e),
                    };
                }
                Err(e) if crate::util::transient(&e) && alive(client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Leaves (a member already gone is fine).
    pub async fn leave(&self, name: &str) -> Result<(), Error> {
        check_member(name)?;
        crate::util::delete_quietly(&self.client, &child(&self.path, name)).await
    }

    /// The members now, with their data.
    pub async fn members(&self) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        Ok(self.read(false).await?.0)
    }

    /// A live view of the members (see [`GroupView`]).
    pub fn view(&self) -> GroupView {
        GroupView {
            group: self.clone(),
            pending: None,
            last: None,
        }
    }

    async fn read(&self, watch: bool) -> Result<(BTreeMap<String, Vec<u8>>, Option<Watch>), Error> {
        let client = &self.client;
        ensure_path(client, &self.path).await?;
        let (names, w) = if watch {
            let (n, _, w) = retry(client, || client.get_children_w(&self.path)).await?;
            (n, Some(w))
        } else {
            (
                retry(client, || client.get_children(&self.path)).await?.0,
                None,
            )
        };
        let mut out = BTreeMap::new();
        for n in names {
            let p = child(&self.path, &n);
            match retry(client, || client.get_data(&p)).await {
                Ok((d, _)) => {
                    out.insert(n, d);
                }
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, w))
    }
}

/// A live list of a group's members: [`GroupView::recv`] returns the members now (first
/// call), then the list each time it changed (joins and leaves between two calls may be
/// merged). Fails with `SessionExpired` once the session is gone.
pub struct GroupView {
    group: Group,
    pending: Option<Watch>,
    last: Option<Vec<String>>,
}

impl std::fmt::Debug for GroupView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupView")
            .field("group", &self.group)
            .field("last", &self.last)
            .finish()
    }
}

impl GroupView {
    /// The members, now or after the next change of who is a member.
    pub async fn recv(&mut self) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        loop {
            if let Some(w) = self.pending.take() {
                w.await?;
            }
            let (members, watch) = self.group.read(true).await?;
            self.pending = watch;
            let names: Vec<String> = members.keys().cloned().collect();
            if self.last.as_ref() != Some(&names) {
                self.last = Some(names);
                return Ok(members);
            }
        }
    }
}
