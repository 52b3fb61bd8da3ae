//! Helpers: a tree with one session, txn builders, and a full dump for equality checks.

use std::collections::BTreeMap;

use coord_proto::{Acl, CreateMode, ErrorCode, EventType, Id, ReplyBody, Response, Stat, Zxid};
use coord_tree::{ApplyOutcome, Change, DataTree, Txn, TxnBody};

/// The session every harness starts with (created by the txn at zxid 1).
pub const S: u64 = 1;

/// The super user identity.
pub fn superuser() -> Vec<Id> {
    vec![Id::new("super", "")]
}

/// A tree plus a zxid counter, a clock and the identities sent with each txn.
pub struct Harness {
    pub tree: DataTree,
    pub next: u64,
    pub time: i64,
    pub auth: Vec<Id>,
    /// The server each txn claims to come through (0: unknown).
    pub origin: u64,
}

impl Harness {
    pub fn new() -> Harness {
        let mut h = Harness {
            tree: DataTree::new(),
            next: 1,
            time: 1000,
            auth: Vec::new(),
            origin: 0,
        };
        let id = h.new_session();
        assert_eq!(id, S);
        h
    }

    pub fn new_session(&mut self) -> u64 {
        let zxid = self.next;
        let out = self.txn(
            0,
            TxnBody::CreateSession {
                timeout_ms: 5000,
                password: b"pw".to_vec(),
            },
        );
        assert_eq!(out.reply, ReplyBody::Ok(Response::Empty));
        assert!(out.changes.is_empty());
        zxid
    }

    pub fn txn(&mut self, session: u64, body: TxnBody) -> ApplyOutcome {
        let zxid = Zxid(self.next);
        self.next += 1;
        let txn = Txn {
            origin: self.origin,
            session_id: session,
            xid: 0,
            time_ms: self.time,
            auth: self.auth.clone(),
            body,
        };
        self.tree.apply(zxid, &txn)
    }

    pub fn run(&mut self, body: TxnBody) -> ApplyOutcome {
        self.txn(S, body)
    }

    #[track_caller]
    pub fn ok(&mut self, body: TxnBody) -> Response {
        match self.run(body).reply {
            ReplyBody::Ok(r) => r,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    /// Applies a txn expected to fail, and checks it changed nothing but last_applied.
    #[track_caller]
    pub fn err(&mut self, body: TxnBody) -> ErrorCode {
        let before = dump(&self.tree);
        let digest = self.tree.digest();
        let out = self.run(body);
        assert!(out.changes.is_empty());
        assert_eq!(self.tree.digest(), digest, "failed txn changed the digest");
        assert_eq!(dump(&self.tree), before, "failed txn changed a node");
        assert_eq!(self.tree.last_applied(), Zxid(self.next - 1));
        match out.reply {
            ReplyBody::Err(code) => code,
            other => panic!("expected Err, got {other:?}"),
        }
    }

    pub fn mk(&mut self, path: &str) -> Stat {
        match self.ok(create(path, b"")) {
            Response::Create { stat, .. } => stat,
            other => panic!("{other:?}"),
        }
    }
}

pub fn create(path: &str, data: &[u8]) -> TxnBody {
    create_mode(path, data, CreateMode::Persistent, 0)
}

pub fn create_mode(path: &str, data: &[u8], mode: CreateMode, ttl_ms: i64) -> TxnBody {
    TxnBody::Create {
        path: path.into(),
        data: data.to_vec(),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms,
    }
}

pub fn create_acl(path: &str, acl: Vec<Acl>) -> TxnBody {
    TxnBody::Create {
        path: path.into(),
        data: vec![],
        acl,
        mode: CreateMode::Persistent,
        ttl_ms: 0,
    }
}

pub fn delete(path: &str, version: i32) -> TxnBody {
    TxnBody::Delete {
        path: path.into(),
        version,
    }
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> TxnBody {
    TxnBody::SetData {
        path: path.into(),
        data: data.to_vec(),
        version,
    }
}

pub fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> TxnBody {
    TxnBody::SetAcl {
        path: path.into(),
        acl,
        version,
    }
}

pub fn ch(event_type: EventType, path: &str) -> Change {
    Change {
        event_type,
        path: path.into(),
    }
}

pub fn acl(perms: u32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

/// Every node: path -> (data, Stat, ACL), walked from the root as the super user.
pub fn dump(tree: &DataTree) -> BTreeMap<String, (Vec<u8>, Stat, Vec<Acl>)> {
    let su = superuser();
    let mut out = BTreeMap::new();
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let (data, stat) = tree.get_data(&path, &su).expect("walked node exists");
        let (acl, _) = tree.get_acl(&path, &su).expect("walked node exists");
        let (children, _) = tree.get_children(&path, &su).expect("walked node exists");
        for c in children {
            stack.push(coord_proto::path::join(&path, &c));
        }
        out.insert(path, (data, stat, acl));
    }
    assert_eq!(out.len(), tree.node_count());
    out
}
