//! Applying committed txns: [`DataTree::apply`].
//!
//! Every write op is "check everything, then mutate": a failing op changes nothing. A multi
//! applies its ops in order (later ops see earlier ones' effects) and records an undo entry
//! for each mutation; if an op fails, the entries are replayed in reverse through the same
//! mutation primitives, which restores every node, index and the digest exactly.
//!
//! Check order follows ZooKeeper 3.8's `PrepRequestProcessor`, so clients see the same error
//! code ZooKeeper would give for a request that is wrong in several ways.

use coord_proto::path::{parent, validate_path};
use coord_proto::{
    Acl, CreateMode, DEFAULT_LOCK_DELAY_MS, ErrorCode, EventType, Id, MAX_LOCK_DELAY_MS, MultiOp,
    MultiResult, ReplyBody, Response, Sequencer, Stat, Zxid, perms,
};

use crate::acl::{check_acl, fixup_acl};
use crate::node::{Node, NodeKind, StatCore};
use crate::tree::{DataTree, Session};
use crate::txn::{Txn, TxnBody};

/// Largest TTL accepted, as ZooKeeper's `EphemeralType.TTL` (40 bits of milliseconds).
pub const MAX_TTL_MS: i64 = 0x00ff_ffff_ffff;

/// One change to the tree, produced by apply, consumed by the [`crate::WatchManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `NodeCreated`, `NodeDeleted`, `NodeDataChanged` or `NodeChildrenChanged`.
    pub event_type: EventType,
    /// The node it happened to.
    pub path: String,
}

impl Change {
    fn new(event_type: EventType, path: &str) -> Change {
        Change {
            event_type,
            path: path.to_string(),
        }
    }
}

/// The result of applying one txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The reply for the issuing session.
    pub reply: ReplyBody,
    /// The changes, in order (empty when the txn failed).
    pub changes: Vec<Change>,
}

/// Inverse of one mutation, for rolling back a failed multi.
pub(crate) enum Undo {
    /// A node was created: remove it.
    Remove(String),
    /// A node was deleted: put it back.
    Insert(String, Node),
    /// A node's Stat changed: restore it.
    Stat(String, StatCore),
    /// A node's data changed: restore it.
    Data(String, Box<[u8]>),
}

/// What an op needs to know about its txn.
pub(crate) struct Ctx<'a> {
    pub zxid: u64,
    pub time_ms: i64,
    pub session_id: u64,
    pub auth: &'a [Id],
}

/// Mutations and changes recorded while applying.
#[derive(Default)]
pub(crate) struct Log {
    pub undo: Vec<Undo>,
    pub changes: Vec<Change>,
}

fn valid(path: &str) -> Result<(), ErrorCode> {
    validate_path(path).map_err(|_| ErrorCode::InvalidPath)
}

fn check_version(expected: i32, actual: i32) -> Result<(), ErrorCode> {
    if expected == coord_proto::ANY_VERSION || expected == actual {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

impl DataTree {
    /// Applies a committed txn at `zxid`.
    ///
    /// Deterministic: the same tree and the same `(zxid, txn)` give the same outcome and the
    /// same resulting tree on every replica. Errors go into the reply; a failed txn changes
    /// nothing but still advances [`DataTree::last_applied`].
    ///
    /// # Panics
    /// If `zxid <= last_applied()`: txns must be applied once each, in zxid order (a caller
    /// bug, never input).
    pub fn apply(&mut self, zxid: Zxid, txn: &Txn) -> ApplyOutcome {
        assert!(
            zxid > self.last_applied,
            "txn applied out of order: zxid {zxid} <= last applied {}",
            self.last_applied
        );
        let outcome = self.apply_body(zxid, txn);
        self.last_applied = zxid;
        outcome
    }

    fn apply_body(&mut self, zxid: Zxid, txn: &Txn) -> ApplyOutcome {
        let cx = Ctx {
            zxid: zxid.0,
            time_ms: txn.time_ms,
            session_id: txn.session_id,
            auth: &txn.auth,
        };
        let needs_session = matches!(
            txn.body,
            TxnBody::Create { .. }
                | TxnBody::Delete { .. }
                | TxnBody::SetData { .. }
                | TxnBody::SetAcl { .. }
                | TxnBody::Multi { .. }
        );
        if needs_session || matches!(txn.body, TxnBody::CloseSession | TxnBody::MoveSession) {
            match self.sessions.get(&txn.session_id) {
                None if needs_session => return fail(ErrorCode::SessionExpired),
                // A request through a server that no longer owns the session: its client
                // resumed elsewhere, and this is the old connection speaking.
                Some(s)
                    if txn.origin != 0
                        && s.owner != 0
                        && s.owner != txn.origin
                        && !matches!(txn.body, TxnBody::MoveSession) =>
                {
                    return fail(ErrorCode::SessionMoved);
                }
                _ => {}
            }
        }
        // Lock-delays that ran out by this txn's time are forgotten (deterministic: every
        // replica applies the same txns with the same times).
        if !self.lock_delays.is_empty() {
            self.lock_delays.retain(|_, until| *until > txn.time_ms);
        }
        let mut log = Log::default();
        let result = match &txn.body {
            TxnBody::CreateSession {
                timeout_ms,
                password,
            } => {
                self.sessions.entry(zxid.0).or_insert_with(|| Session {
                    timeout_ms: *timeout_ms,
                    password: password.as_slice().into(),
                    owner: txn.origin,
                });
                Ok(Response::Empty)
            }
            TxnBody::MoveSession => match self.sessions.get_mut(&txn.session_id) {
                Some(s) => {
                    s.owner = txn.origin;
                    Ok(Response::Empty)
                }
                None => Err(ErrorCode::SessionExpired),
            },
            TxnBody::CloseSession => {
                self.close_session(&cx, false, &mut log);
                Ok(Response::Empty)
            }
            TxnBody::ExpireSession => {
                self.close_session(&cx, true, &mut log);
                Ok(Response::Empty)
            }
            TxnBody::Create {
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => self
                .op_create(&cx, path, data, acl, *mode, *ttl_ms, &mut log)
                .map(|(path, stat)| Response::Create { path, stat }),
            TxnBody::Delete { path, version } => self
                .op_delete(&cx, path, *version, &mut log)
                .map(|()| Response::Empty),
            TxnBody::SetData {
                path,
                data,
                version,
            } => self
                .op_set_data(&cx, path, data, *version, &mut log)
                .map(|stat| Response::Stat { stat }),
            TxnBody::SetAcl { path, acl, version } => self
                .op_set_acl(&cx, path, acl, *version)
                .map(|stat| Response::Stat { stat }),
            TxnBody::Multi { ops } => return self.apply_multi(&cx, ops),
            TxnBody::ReapNode { path, czxid } => self
                .op_reap(&cx, path, *czxid, &mut log)
                .map(|()| Response::Empty),
            TxnBody::Noop => Ok(Response::Empty),
        };
        match result {
            Ok(response) => ApplyOutcome {
                reply: ReplyBody::Ok(response),
                changes: log.changes,
            },
            Err(code) => {
                // Single ops check before mutating; nothing to roll back.
                debug_assert!(log.undo.is_empty() && log.changes.is_empty());
                fail(code)
            }
        }
    }

    fn apply_multi(&mut self, cx: &Ctx<'_>, ops: &[MultiOp]) -> ApplyOutcome {
        let mut log = Log::default();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                MultiOp::Create {
                    path,
                    data,
                    acl,
                    mode,
                    ttl_ms,
                } => self
                    .op_create(cx, path, data, acl, *mode, *ttl_ms, &mut log)
                    .map(|(path, stat)| MultiResult::Create { path, stat }),
                MultiOp::Delete { path, version } => self
                    .op_delete(cx, path, *version, &mut log)
                    .map(|()| MultiResult::Delete),
                MultiOp::SetData {
                    path,
                    data,
                    version,
                } => self
                    .op_set_data(cx, path, data, *version, &mut log)
                    .map(|stat| MultiResult::SetData { stat }),
                MultiOp::Check { path, version } => self
                    .op_check(cx, path, *version)
                    .map(|()| MultiResult::Check),
                MultiOp::CheckSequencer { sequencer } => {
                    let s = Sequencer::decode(sequencer).map_err(|_| ErrorCode::BadArguments);
                    s.and_then(|s| {
                        if self.sequencer_valid(&s) {
                            Ok(MultiResult::Check)
                        } else {
                            Err(ErrorCode::StaleSequencer)
                        }
                    })
                }
            };
            match r {
                Ok(result) => results.push(result),
                Err(code) => {
                    self.rollback(log.undo);
                    let mut results = vec![
                        MultiResult::Error {
                            code: ErrorCode::Ok
                        };
                        i
                    ];
                    results.push(MultiResult::Error { code });
                    results.resize(
                        ops.len(),
                        MultiResult::Error {
                            code: ErrorCode::RuntimeInconsistency,
                        },
                    );
                    return ApplyOutcome {
                        reply: ReplyBody::MultiErr { code, results },
                        changes: Vec::new(),
                    };
                }
            }
        }
        ApplyOutcome {
            reply: ReplyBody::Ok(Response::Multi { results }),
            changes: log.changes,
        }
    }

    /// Replays `undo` backwards through the mutation primitives.
    pub(crate) fn rollback(&mut self, undo: Vec<Undo>) {
        for entry in undo.into_iter().rev() {
            match entry {
                Undo::Remove(path) => {
                    let removed = self.remove_node(&path);
                    debug_assert!(removed.is_some(), "rollback: {path} vanished");
                }
                Undo::Insert(path, node) => self.insert_node(&path, node),
                Undo::Stat(path, stat) => {
                    self.modify(&path, |n| n.stat = stat);
                }
                Undo::Data(path, data) => {
                    self.replace_data(&path, data);
                }
            }
        }
    }

    /// Sets the Stat of `path` through `f`, recording the old one.
    fn update_stat(&mut self, path: &str, log: &mut Log, f: impl FnOnce(&mut StatCore)) {
        let mut old = None;
        self.modify(path, |n| {
            old = Some(n.stat);
            f(&mut n.stat);
        });
        if let Some(old) = old {
            log.undo.push(Undo::Stat(path.to_string(), old));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn op_create(
        &mut self,
        cx: &Ctx<'_>,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
        log: &mut Log,
    ) -> Result<(String, Stat), ErrorCode> {
        if mode.is_ttl() && !(1..=MAX_TTL_MS).contains(&ttl_ms) {
            return Err(ErrorCode::BadArguments);
        }
        let lock_delay_ms = match mode {
            CreateMode::EphemeralLock if ttl_ms == 0 => DEFAULT_LOCK_DELAY_MS as u32,
            CreateMode::EphemeralLock if (1..=MAX_LOCK_DELAY_MS).contains(&ttl_ms) => ttl_ms as u32,
            CreateMode::EphemeralLock => return Err(ErrorCode::BadArguments),
            _ => 0,
        };
        // For a sequential node the prefix plus a suffix must be valid ("/a/" is a fine
        // prefix); the parent is the same for every suffix.
        let candidate = if mode.is_sequential() {
            format!("{path}0000000000")
        } else {
            path.to_string()
        };
        valid(&candidate)?;
        let acl = fixup_acl(acl, cx.auth)?;
        let parent_path = parent(&candidate).to_string();
        let parent_node = self.node(&parent_path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent_node.acl, perms::CREATE, cx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        let path = if mode.is_sequential() {
            let name = format!("{path}{:010}", parent_node.stat.cversion);
            valid(&name)?;
            name
        } else {
            candidate
        };
        if self.node(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent_node.kind, NodeKind::Ephemeral { .. }) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        if self
            .lock_delays
            .get(path.as_str())
            .is_some_and(|until| *until > cx.time_ms)
        {
            return Err(ErrorCode::LockDelay);
        }
        let kind = match mode {
            CreateMode::Persistent | CreateMode::PersistentSequential => NodeKind::Persistent,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential | CreateMode::EphemeralLock => {
                NodeKind::Ephemeral {
                    owner: cx.session_id,
                    lock_delay_ms,
                }
            }
            CreateMode::Container => NodeKind::Container,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl => {
                NodeKind::Ttl { ttl_ms }
            }
        };
        let node = self.new_node(
            data.into(),
            &acl,
            StatCore::created(cx.zxid, cx.time_ms),
            kind,
        );
        let stat = node.stat();
        self.update_stat(&parent_path, log, |s| {
            s.cversion = s.cversion.wrapping_add(1);
            s.pzxid = cx.zxid;
        });
        self.insert_node(&path, node);
        log.undo.push(Undo::Remove(path.clone()));
        log.changes.push(Change::new(EventType::NodeCreated, &path));
        log.changes
            .push(Change::new(EventType::NodeChildrenChanged, &parent_path));
        Ok((path, stat))
    }

    fn op_delete(
        &mut self,
        cx: &Ctx<'_>,
        path: &str,
        version: i32,
        log: &mut Log,
    ) -> Result<(), ErrorCode> {
        valid(path)?;
        if path == "/" {
            return Err(ErrorCode::BadArguments);
        }
        let parent_node = self.node(parent(path)).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent_node.acl, perms::DELETE, cx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        check_version(version, node.stat.version)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.delete_unchecked(cx.zxid, path, log);
        Ok(())
    }

    /// Deletes the existing, childless node at `path` and bumps its parent.
    pub(crate) fn delete_unchecked(&mut self, zxid: u64, path: &str, log: &mut Log) {
        let parent_path = parent(path);
        let node = self
            .remove_node(path)
            .expect("delete_unchecked: caller checked the node exists");
        log.undo.push(Undo::Insert(path.to_string(), node));
        self.update_stat(parent_path, log, |s| {
            s.cversion = s.cversion.wrapping_add(1);
            s.pzxid = zxid;
        });
        log.changes.push(Change::new(EventType::NodeDeleted, path));
        log.changes
            .push(Change::new(EventType::NodeChildrenChanged, parent_path));
    }

    fn op_set_data(
        &mut self,
        cx: &Ctx<'_>,
        path: &str,
        data: &[u8],
        version: i32,
        log: &mut Log,
    ) -> Result<Stat, ErrorCode> {
        valid(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::WRITE, cx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(version, node.stat.version)?;
        let old = self.replace_data(path, data.into());
        log.undo.push(Undo::Data(path.to_string(), old));
        self.update_stat(path, log, |s| {
            s.version = s.version.wrapping_add(1);
            s.mzxid = cx.zxid;
            s.mtime = cx.time_ms;
        });
        log.changes
            .push(Change::new(EventType::NodeDataChanged, path));
        Ok(self.node(path).map(Node::stat).unwrap_or_default())
    }

    fn op_set_acl(
        &mut self,
        cx: &Ctx<'_>,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Stat, ErrorCode> {
        valid(path)?;
        let acl = fixup_acl(acl, cx.auth)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::ADMIN, cx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(version, node.stat.aversion)?;
        self.replace_acl(path, &acl);
        self.modify(path, |n| n.stat.aversion = n.stat.aversion.wrapping_add(1));
        Ok(self.node(path).map(Node::stat).unwrap_or_default())
    }

    fn op_check(&mut self, cx: &Ctx<'_>, path: &str, version: i32) -> Result<(), ErrorCode> {
        valid(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::READ, cx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(version, node.stat.version)
    }

    /// Whether `s` names a held lock: its node exists with its czxid, owned by its session.
    pub fn sequencer_valid(&self, s: &Sequencer) -> bool {
        self.node(&s.path).is_some_and(|n| {
            n.stat.czxid == s.czxid
                && n.core().ephemeral_owner() == s.session_id
                && s.session_id != 0
        })
    }

    fn close_session(&mut self, cx: &Ctx<'_>, expired: bool, log: &mut Log) {
        if self.sessions.remove(&cx.session_id).is_none() {
            return;
        }
        // Sorted order (BTreeSet); ephemerals never have children, so each delete is valid.
        let paths: Vec<Box<str>> = self
            .ephemerals
            .get(&cx.session_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for path in paths {
            if expired
                && let Some(NodeKind::Ephemeral { lock_delay_ms, .. }) =
                    self.node(&path).map(|n| n.kind)
                && lock_delay_ms != 0
            {
                let until = cx.time_ms.saturating_add(i64::from(lock_delay_ms));
                self.lock_delays.insert(path.clone(), until);
            }
            self.delete_unchecked(cx.zxid, &path, log);
        }
        debug_assert!(!self.ephemerals.contains_key(&cx.session_id));
    }
}

fn fail(code: ErrorCode) -> ApplyOutcome {
    ApplyOutcome {
        reply: ReplyBody::Err(code),
        changes: Vec::new(),
    }
}
