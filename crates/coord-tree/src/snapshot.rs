//! Snapshots of the replicated tree: [`DataTree::snapshot`] and [`DataTree::from_snapshot`].
//!
//! ```text
//!   "CTSN" | version u32 LE | crc32c u32 LE (of everything after it) | section*
//!   section = len u32 LE | rkyv archive
//!   sections: Header { last_applied, digest, node_count, acls, sessions },
//!             then Vec<SnapNode> chunks until node_count nodes,
//!             then (version 2) one Vec<SnapLockDelay> section,
//!             then (version 3) one Vec<SnapOwner> section (sessions with a known owning
//!             server, in id order), then nothing.
//! ```
//!
//! Nodes are written in path order (a parent before its children) with their ACL as an
//! index into the header's ACL table, so two replicas with the same tree write the same
//! bytes. Chunking keeps every archive far below rkyv's 2 GiB relative-pointer range however
//! large the tree is. Restore trusts nothing: checksum, archive validation, structural
//! checks (paths, parents, ephemeral owners), then the digest is recomputed and compared.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coord_proto::path::{basename, parent, validate_path};
use coord_proto::{Acl, Zxid};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::TreeError;
use crate::node::{Node, NodeCore, NodeKind, StatCore};
use crate::tree::{DataTree, Session};

/// Format version written by this build (the second header field, after the magic).
pub const SNAPSHOT_VERSION: u32 = 3;
/// The oldest format version this build still reads (1: no lock-delay section; 2: no
/// session-owner section, so every session's owner is unknown).
pub const OLDEST_SNAPSHOT_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"CTSN";
const PREAMBLE: usize = 12;
/// A node chunk is closed after this many nodes...
const CHUNK_NODES: usize = 4096;
/// ...or this many data bytes.
const CHUNK_BYTES: usize = 64 << 20;

#[derive(Archive, Serialize, Deserialize)]
struct Header {
    last_applied: u64,
    digest: u64,
    node_count: u64,
    acls: Vec<Vec<Acl>>,
    sessions: Vec<SnapSession>,
}

#[derive(Archive, Serialize, Deserialize)]
struct SnapSession {
    id: u64,
    timeout_ms: u32,
    password: Vec<u8>,
}

#[derive(Archive, Serialize, Deserialize)]
enum SnapKind {
    Persistent,
    Ephemeral(u64),
    Container,
    Ttl(i64),
    /// A lock node: owner, lock-delay in ms (nonzero). Version 2 on.
    Lock(u64, u32),
}

/// A running lock-delay: `path` cannot be created by a txn with time before `until_ms`.
#[derive(Archive, Serialize, Deserialize)]
struct SnapLockDelay {
    path: String,
    until_ms: i64,
}

/// The server that owns a session (version 3 on).
#[derive(Archive, Serialize, Deserialize)]
struct SnapOwner {
    id: u64,
    owner: u64,
}

#[derive(Archive, Serialize, Deserialize)]
struct SnapNode {
    path: String,
    data: Vec<u8>,
    acl: u32,
    czxid: u64,
    mzxid: u64,
    pzxid: u64,
    ctime: i64,
    mtime: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    kind: SnapKind,
}

fn push_section<T>(out: &mut Vec<u8>, value: &T)
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rancor::Error,
            >,
        >,
{
    // Sections are bounded by CHUNK_NODES/CHUNK_BYTES plus one node's data, and the header
    // by the ACL and session tables: all far below 2 GiB.
    let body =
        rkyv::to_bytes::<rancor::Error>(value).expect("snapshot section within rkyv's 2 GiB range");
    let len = u32::try_from(body.len()).expect("snapshot section under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
}

/// Splits one section off `rest`.
fn take_section<'a>(rest: &mut &'a [u8], total: usize) -> Result<&'a [u8], TreeError> {
    let at = total - rest.len();
    let Some((len, tail)) = rest.split_first_chunk::<4>() else {
        return Err(TreeError::SnapshotTruncated {
            need: at + 4,
            have: total,
        });
    };
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return Err(TreeError::SnapshotTruncated {
            need: at + 4 + len,
            have: total,
        });
    }
    let (body, tail) = tail.split_at(len);
    *rest = tail;
    Ok(body)
}

fn decode_section<T>(body: &[u8]) -> Result<T, TreeError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<T, rancor::Error>(&aligned)
        .map_err(|e| TreeError::SnapshotDecode(e.to_string()))
}

fn inconsistent(msg: String) -> TreeError {
    TreeError::SnapshotInconsistent(msg)
}

/// The tree frozen at one zxid (see [`DataTree::snapshot_view`]); `Send`, so it can be
/// serialized away from the thread that applies txns.
pub struct SnapshotView {
    last_applied: u64,
    digest: u64,
    sessions: Vec<SnapSession>,
    nodes: Vec<(Box<str>, Arc<NodeCore>)>,
    lock_delays: Vec<SnapLockDelay>,
    owners: Vec<SnapOwner>,
}

impl SnapshotView {
    /// The zxid of the last txn the view includes.
    pub fn last_applied(&self) -> Zxid {
        Zxid(self.last_applied)
    }

    /// Number of nodes in the view.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The snapshot bytes (format above), exactly as [`DataTree::snapshot`] gives them.
    pub fn serialize(mut self) -> Vec<u8> {
        self.nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // ACL ids in order of first use along sorted paths; the pointer map is lookup-only.
        let mut acl_ids: HashMap<*const Vec<Acl>, u32> = HashMap::new();
        let mut acls: Vec<Vec<Acl>> = Vec::new();
        for (_, n) in &self.nodes {
            acl_ids.entry(Arc::as_ptr(&n.acl)).or_insert_with(|| {
                acls.push(n.acl.to_vec());
                (acls.len() - 1) as u32
            });
        }
        let header = Header {
            last_applied: self.last_applied,
            digest: self.digest,
            node_count: self.nodes.len() as u64,
            acls,
            sessions: std::mem::take(&mut self.sessions),
        };
        // One buffer, sized once (an archived node is its path and data plus ~100 bytes of
        // fields and relative pointers): no doubling, no second copy for the preamble.
        let estimate = self
            .nodes
            .iter()
            .map(|(p, n)| p.len() + n.data.len() + 128)
            .sum::<usize>()
            + 64 * 1024;
        let mut out = Vec::with_capacity(PREAMBLE + estimate);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // the body's CRC, filled in below
        let body = &mut out;
        push_section(body, &header);
        let mut chunk: Vec<SnapNode> = Vec::new();
        let mut chunk_bytes = 0;
        for (path, n) in &self.nodes {
            let s = &n.stat;
            chunk_bytes += n.data.len() + path.len();
            chunk.push(SnapNode {
                path: path.to_string(),
                data: n.data.to_vec(),
                acl: acl_ids[&Arc::as_ptr(&n.acl)],
                czxid: s.czxid,
                mzxid: s.mzxid,
                pzxid: s.pzxid,
                ctime: s.ctime,
                mtime: s.mtime,
                version: s.version,
                cversion: s.cversion,
                aversion: s.aversion,
                kind: match n.kind {
                    NodeKind::Persistent => SnapKind::Persistent,
                    NodeKind::Ephemeral {
                        owner,
                        lock_delay_ms: 0,
                    } => SnapKind::Ephemeral(owner),
                    NodeKind::Ephemeral {
                        owner,
                        lock_delay_ms,
                    } => SnapKind::Lock(owner, lock_delay_ms),
                    NodeKind::Container => SnapKind::Container,
                    NodeKind::Ttl { ttl_ms } => SnapKind::Ttl(ttl_ms),
                },
            });
            if chunk.len() >= CHUNK_NODES || chunk_bytes >= CHUNK_BYTES {
                push_section(body, &chunk);
                chunk.clear();
                chunk_bytes = 0;
            }
        }
        if !chunk.is_empty() {
            push_section(body, &chunk);
        }
        push_section(body, &self.lock_delays);
        push_section(body, &self.owners);
        let crc = crc32c::crc32c(&out[PREAMBLE..]);
        out[8..PREAMBLE].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

impl DataTree {
    /// Serializes the whole replicated state (format above): last applied zxid, digest,
    /// every node with data, Stat, ACL and kind, and every session with its timeout and
    /// password. Deterministic: equal trees give equal bytes. Same as
    /// `self.snapshot_view().serialize()`.
    pub fn snapshot(&self) -> Vec<u8> {
        self.view().serialize()
    }

    /// A frozen view of the tree as it is now, for [`SnapshotView::serialize`] on another
    /// thread while the tree keeps applying txns. Costs one reference count and one copy of
    /// the path per node (nodes are copy-on-write: a node changed later is copied then).
    pub fn snapshot_view(&mut self) -> SnapshotView {
        // A node removed while an earlier view still held its core could not release its
        // ACL then; drop such entries now.
        self.acls.prune();
        self.view()
    }

    fn view(&self) -> SnapshotView {
        SnapshotView {
            last_applied: self.last_applied.0,
            digest: self.digest,
            sessions: self
                .sessions
                .iter()
                .map(|(id, s)| SnapSession {
                    id: *id,
                    timeout_ms: s.timeout_ms,
                    password: s.password.to_vec(),
                })
                .collect(),
            nodes: self
                .nodes
                .iter()
                .map(|(path, node)| (path.clone(), node.core().clone()))
                .collect(),
            lock_delays: self
                .lock_delays
                .iter()
                .map(|(path, until)| SnapLockDelay {
                    path: path.to_string(),
                    until_ms: *until,
                })
                .collect(),
            owners: self
                .sessions
                .iter()
                .filter(|(_, s)| s.owner != 0)
                .map(|(id, s)| SnapOwner {
                    id: *id,
                    owner: s.owner,
                })
                .collect(),
        }
    }

    /// Restores a tree from [`DataTree::snapshot`] bytes. Refuses (never panics on) bad
    /// magic, unknown version, checksum mismatch, truncation, archives that fail validation,
    /// structurally impossible trees, and a digest that differs from the stored one.
    pub fn from_snapshot(bytes: &[u8]) -> Result<DataTree, TreeError> {
        let Some((preamble, body)) = bytes.split_first_chunk::<PREAMBLE>() else {
            return Err(TreeError::SnapshotTruncated {
                need: PREAMBLE,
                have: bytes.len(),
            });
        };
        if &preamble[..4] != MAGIC {
            return Err(TreeError::SnapshotMagic);
        }
        let version = u32::from_le_bytes([preamble[4], preamble[5], preamble[6], preamble[7]]);
        if !(OLDEST_SNAPSHOT_VERSION..=SNAPSHOT_VERSION).contains(&version) {
            return Err(TreeError::SnapshotVersion(version));
        }
        let stored = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(TreeError::SnapshotChecksum { stored, computed });
        }
        let mut rest = body;
        let header: Header = decode_section(take_section(&mut rest, body.len())?)?;

        let mut tree = DataTree::empty();
        tree.last_applied = Zxid(header.last_applied);
        for s in header.sessions {
            let session = Session {
                timeout_ms: s.timeout_ms,
                password: s.password.into(),
                owner: 0,
            };
            if tree.sessions.insert(s.id, session).is_some() {
                return Err(inconsistent(format!("session {:#x} listed twice", s.id)));
            }
        }
        if header.acls.iter().any(Vec::is_empty) {
            return Err(inconsistent("empty ACL in the ACL table".into()));
        }

        let mut read = 0u64;
        while read < header.node_count {
            let chunk: Vec<SnapNode> = decode_section(take_section(&mut rest, body.len())?)?;
            if chunk.is_empty() {
                return Err(inconsistent("empty node section".into()));
            }
            read += chunk.len() as u64;
            if read > header.node_count {
                return Err(inconsistent(format!(
                    "more nodes than the {} announced",
                    header.node_count
                )));
            }
            for n in chunk {
                tree.restore_node(n, &header.acls)?;
            }
        }
        if version >= 2 && !rest.is_empty() {
            let delays: Vec<SnapLockDelay> = decode_section(take_section(&mut rest, body.len())?)?;
            for d in delays {
                validate_path(&d.path).map_err(|e| inconsistent(e.to_string()))?;
                if tree
                    .lock_delays
                    .insert(d.path.as_str().into(), d.until_ms)
                    .is_some()
                {
                    return Err(inconsistent(format!(
                        "lock-delay of {} listed twice",
                        d.path
                    )));
                }
            }
        }
        if version >= 3 && !rest.is_empty() {
            let owners: Vec<SnapOwner> = decode_section(take_section(&mut rest, body.len())?)?;
            let mut last = None;
            for o in owners {
                if last.is_some_and(|l| l >= o.id) || o.owner == 0 {
                    return Err(inconsistent(format!(
                        "session owner entry {:#x} out of order, repeated or zero",
                        o.id
                    )));
                }
                last = Some(o.id);
                let Some(session) = tree.sessions.get_mut(&o.id) else {
                    return Err(inconsistent(format!(
                        "owner of session {:#x}, which is not live",
                        o.id
                    )));
                };
                session.owner = o.owner;
            }
        }
        if !rest.is_empty() {
            return Err(inconsistent(format!("{} trailing bytes", rest.len())));
        }
        tree.link_children()?;
        let computed = tree.recompute_digest();
        if computed != header.digest {
            return Err(TreeError::DigestMismatch {
                stored: header.digest,
                computed,
            });
        }
        tree.digest = computed;
        Ok(tree)
    }

    /// Adds a snapshot node to the maps and indexes (children are linked afterwards).
    fn restore_node(&mut self, n: SnapNode, acls: &[Vec<Acl>]) -> Result<(), TreeError> {
        validate_path(&n.path).map_err(|e| inconsistent(e.to_string()))?;
        let acl = acls
            .get(n.acl as usize)
            .ok_or_else(|| inconsistent(format!("{}: ACL index {} out of range", n.path, n.acl)))?;
        let kind = match n.kind {
            SnapKind::Persistent => NodeKind::Persistent,
            SnapKind::Ephemeral(owner) | SnapKind::Lock(owner, _) => {
                let lock_delay_ms = match n.kind {
                    SnapKind::Lock(_, 0) => {
                        return Err(inconsistent(format!(
                            "{}: lock node without a delay",
                            n.path
                        )));
                    }
                    SnapKind::Lock(_, d) => d,
                    _ => 0,
                };
                if !self.sessions.contains_key(&owner) {
                    return Err(inconsistent(format!(
                        "{}: owner session {owner:#x} unknown",
                        n.path
                    )));
                }
                self.ephemerals
                    .entry(owner)
                    .or_default()
                    .insert(n.path.as_str().into());
                NodeKind::Ephemeral {
                    owner,
                    lock_delay_ms,
                }
            }
            SnapKind::Container => NodeKind::Container,
            SnapKind::Ttl(ttl_ms) => NodeKind::Ttl { ttl_ms },
        };
        if n.path == "/" && kind != NodeKind::Persistent {
            return Err(inconsistent("the root is not persistent".into()));
        }
        if matches!(kind, NodeKind::Container | NodeKind::Ttl { .. }) {
            self.reapable.insert(n.path.as_str().into());
        }
        let path = n.path.into_boxed_str();
        if self.nodes.contains_key(&path) {
            return Err(inconsistent(format!("{path} listed twice")));
        }
        let node = Node::new(NodeCore {
            data: n.data.into(),
            acl: self.acls.intern(acl),
            stat: StatCore {
                czxid: n.czxid,
                mzxid: n.mzxid,
                pzxid: n.pzxid,
                ctime: n.ctime,
                mtime: n.mtime,
                version: n.version,
                cversion: n.cversion,
                aversion: n.aversion,
            },
            kind,
        });
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Fills every node's `children` from the paths, checking each parent.
    fn link_children(&mut self) -> Result<(), TreeError> {
        if !self.nodes.contains_key("/") {
            return Err(inconsistent("no root node".into()));
        }
        // Sorted, so the first orphan reported does not depend on hash order.
        let mut links: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for path in self.nodes.keys().filter(|p| &***p != "/") {
            links.entry(parent(path)).or_default().push(basename(path));
        }
        let mut resolved: Vec<(Box<str>, Vec<Box<str>>)> = Vec::with_capacity(links.len());
        for (parent_path, names) in links {
            match self.nodes.get(parent_path) {
                None => {
                    return Err(inconsistent(format!(
                        "{parent_path} missing, but has children"
                    )));
                }
                Some(p) if matches!(p.kind, NodeKind::Ephemeral { .. }) => {
                    return Err(inconsistent(format!(
                        "ephemeral {parent_path} has children"
                    )));
                }
                Some(_) => resolved.push((
                    parent_path.into(),
                    names.into_iter().map(Into::into).collect(),
                )),
            }
        }
        for (parent_path, names) in resolved {
            if let Some(p) = self.nodes.get_mut(&parent_path) {
                p.children.extend(names);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, kind: SnapKind, acl: u32) -> SnapNode {
        SnapNode {
            path: path.into(),
            data: vec![],
            acl,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            kind,
        }
    }

    /// A well-framed snapshot (valid checksum) of arbitrary content.
    fn frame(
        digest: u64,
        node_count: u64,
        sessions: Vec<u64>,
        chunks: Vec<Vec<SnapNode>>,
    ) -> Vec<u8> {
        let header = Header {
            last_applied: 9,
            digest,
            node_count,
            acls: vec![Acl::open_unsafe()],
            sessions: sessions
                .into_iter()
                .map(|id| SnapSession {
                    id,
                    timeout_ms: 1,
                    password: vec![],
                })
                .collect(),
        };
        let mut body = Vec::new();
        push_section(&mut body, &header);
        for c in &chunks {
            push_section(&mut body, c);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// `snapshot` with lock-delay sections appended (checksum redone).
    fn with_lock_delays(snapshot: Vec<u8>, sections: &[Vec<SnapLockDelay>]) -> Vec<u8> {
        let mut body = snapshot[PREAMBLE..].to_vec();
        for s in sections {
            push_section(&mut body, s);
        }
        let mut out = snapshot[..8].to_vec();
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// `snapshot` with an owner section appended (checksum redone).
    fn with_owners(snapshot: Vec<u8>, owners: Vec<SnapOwner>) -> Vec<u8> {
        let mut body = snapshot[PREAMBLE..].to_vec();
        push_section(&mut body, &owners);
        let mut out = snapshot[..8].to_vec();
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn root() -> SnapNode {
        node("/", SnapKind::Persistent, 0)
    }

    #[test]
    fn well_framed_content_is_still_checked() {
        let good = DataTree::new().digest();
        let ok = DataTree::from_snapshot(&frame(good, 1, vec![], vec![vec![root()]])).unwrap();
        assert_eq!(ok.last_applied(), Zxid(9));
        assert_eq!(ok.digest(), good);

        let digest_off = frame(good ^ 1, 1, vec![], vec![vec![root()]]);
        assert!(matches!(
            DataTree::from_snapshot(&digest_off),
            Err(TreeError::DigestMismatch { .. })
        ));

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "no root",
                frame(
                    0,
                    1,
                    vec![],
                    vec![vec![node("/a", SnapKind::Persistent, 0)]],
                ),
            ),
            (
                "orphan",
                frame(
                    0,
                    2,
                    vec![],
                    vec![vec![root(), node("/a/b", SnapKind::Persistent, 0)]],
                ),
            ),
            (
                "duplicate",
                frame(0, 2, vec![], vec![vec![root()], vec![root()]]),
            ),
            (
                "bad path",
                frame(
                    0,
                    2,
                    vec![],
                    vec![vec![root(), node("/a/", SnapKind::Persistent, 0)]],
                ),
            ),
            (
                "acl index",
                frame(
                    0,
                    2,
                    vec![],
                    vec![vec![root(), node("/a", SnapKind::Persistent, 1)]],
                ),
            ),
            (
                "unknown owner",
                frame(
                    0,
                    2,
                    vec![],
                    vec![vec![root(), node("/e", SnapKind::Ephemeral(5), 0)]],
                ),
            ),
            (
                "child of ephemeral",
                frame(
                    0,
                    3,
                    vec![5],
                    vec![vec![
                        root(),
                        node("/e", SnapKind::Ephemeral(5), 0),
                        node("/e/c", SnapKind::Persistent, 0),
                    ]],
                ),
            ),
            (
                "ephemeral root",
                frame(
                    0,
                    1,
                    vec![5],
                    vec![vec![node("/", SnapKind::Ephemeral(5), 0)]],
                ),
            ),
            (
                "duplicate session",
                frame(0, 1, vec![5, 5], vec![vec![root()]]),
            ),
            (
                "more nodes than announced",
                frame(
                    0,
                    1,
                    vec![],
                    vec![vec![root(), node("/a", SnapKind::Persistent, 0)]],
                ),
            ),
            ("empty chunk", frame(0, 1, vec![], vec![vec![]])),
            (
                "trailing section",
                with_lock_delays(
                    frame(good, 1, vec![], vec![vec![root()]]),
                    &[vec![], vec![], vec![]],
                ),
            ),
            (
                "owner of a session that is not live",
                with_owners(
                    with_lock_delays(frame(good, 1, vec![], vec![vec![root()]]), &[vec![]]),
                    vec![SnapOwner { id: 4, owner: 2 }],
                ),
            ),
            (
                "owner entries out of order",
                with_owners(
                    with_lock_delays(frame(0, 1, vec![4, 5], vec![vec![root()]]), &[vec![]]),
                    vec![SnapOwner { id: 5, owner: 2 }, SnapOwner { id: 4, owner: 2 }],
                ),
            ),
            (
                "invalid lock-delay path",
                with_lock_delays(
                    frame(good, 1, vec![], vec![vec![root()]]),
                    &[vec![SnapLockDelay {
                        path: "nope".into(),
                        until_ms: 1,
                    }]],
                ),
            ),
            (
                "lock-delay listed twice",
                with_lock_delays(
                    frame(good, 1, vec![], vec![vec![root()]]),
                    &[vec![
                        SnapLockDelay {
                            path: "/a".into(),
                            until_ms: 1,
                        },
                        SnapLockDelay {
                            path: "/a".into(),
                            until_ms: 2,
                        },
                    ]],
                ),
            ),
            (
                "lock node without a delay",
                frame(
                    0,
                    2,
                    vec![5],
                    vec![vec![root(), node("/l", SnapKind::Lock(5, 0), 0)]],
                ),
            ),
        ];
        for (what, bytes) in cases {
            match DataTree::from_snapshot(&bytes) {
                Err(TreeError::SnapshotInconsistent(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        let missing_chunk = frame(good, 2, vec![], vec![vec![root()]]);
        assert!(matches!(
            DataTree::from_snapshot(&missing_chunk),
            Err(TreeError::SnapshotTruncated { .. })
        ));
    }

    #[test]
    fn large_trees_are_chunked() {
        let mut t = DataTree::new();
        let root_acl = t.acls.intern(&Acl::open_unsafe());
        for i in 0..(CHUNK_NODES + 10) {
            let path = format!("/n{i}");
            let node = t.new_node(
                vec![1].into(),
                &root_acl,
                StatCore::created(1, 0),
                NodeKind::Persistent,
            );
            t.insert_node(&path, node);
        }
        let bytes = t.snapshot();
        let back = DataTree::from_snapshot(&bytes).unwrap();
        assert_eq!(back.node_count(), CHUNK_NODES + 11);
        assert_eq!(back.digest(), t.digest());
    }

    #[test]
    fn a_view_keeps_the_tree_as_it_was_while_the_tree_moves_on() {
        let mut t = DataTree::new();
        let acl = t.acls.intern(&Acl::open_unsafe());
        for i in 0..50 {
            let node = t.new_node(
                vec![i as u8].into(),
                &acl,
                StatCore::created(1, 0),
                NodeKind::Persistent,
            );
            t.insert_node(&format!("/n{i}"), node);
        }
        let before = t.snapshot();
        let view = t.snapshot_view();
        // Change, remove and add nodes after the view was taken.
        t.replace_data("/n3", vec![9, 9].into());
        t.modify("/n4", |n| n.stat.version = 7);
        t.remove_node("/n5");
        let node = t.new_node(
            vec![1].into(),
            &acl,
            StatCore::created(2, 0),
            NodeKind::Persistent,
        );
        t.insert_node("/new", node);
        let after = t.snapshot();
        assert_ne!(before, after);
        assert_eq!(view.node_count(), 51);
        // Serialized on another thread, as the server does.
        let from_view = std::thread::spawn(move || view.serialize()).join().unwrap();
        assert_eq!(
            from_view, before,
            "the view must be the tree at the moment it was taken"
        );
        assert_eq!(
            DataTree::from_snapshot(&after).unwrap().digest(),
            t.digest()
        );
    }
}
