//! Builds histories for tests: one entry per call, each a millisecond after the previous.

use crate::ServerFinal;
use crate::history::{Entry, EntryKind, History, Notice, OkResult, Op, Outcome, ProcessId};
use std::collections::{BTreeMap, HashMap};

/// Appends entries in order; each process is on session `0x100 + process` unless changed.
pub(crate) struct Builder {
    entries: Vec<Entry>,
    time_ns: u64,
    next_id: u64,
    sessions: HashMap<ProcessId, u64>,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            entries: Vec::new(),
            time_ns: 0,
            next_id: 1,
            sessions: HashMap::new(),
        }
    }

    pub(crate) fn session(&self, p: ProcessId) -> u64 {
        self.sessions
            .get(&p)
            .copied()
            .unwrap_or(0x100 + u64::from(p))
    }

    pub(crate) fn set_session(&mut self, p: ProcessId, session: u64) {
        self.sessions.insert(p, session);
    }

    /// Lets `ms` milliseconds pass before the next entry.
    pub(crate) fn advance_ms(&mut self, ms: u64) {
        self.time_ns += ms * 1_000_000;
    }

    fn push(&mut self, p: ProcessId, kind: EntryKind) -> usize {
        self.time_ns += 1_000_000;
        let session = self.session(p);
        self.entries.push(Entry {
            time_ns: self.time_ns,
            process: p,
            session,
            kind,
        });
        self.entries.len() - 1
    }

    pub(crate) fn invoke(&mut self, p: ProcessId, op: Op) -> u64 {
        let id = self.next_id;
        self.invoke_with_id(p, id, op);
        id
    }

    pub(crate) fn invoke_with_id(&mut self, p: ProcessId, op_id: u64, op: Op) {
        self.next_id = self.next_id.max(op_id + 1);
        self.push(p, EntryKind::Invoke { op_id, op });
    }

    pub(crate) fn complete(&mut self, p: ProcessId, op_id: u64, outcome: Outcome) {
        self.push(p, EntryKind::Complete { op_id, outcome });
    }

    pub(crate) fn ok(&mut self, p: ProcessId, op_id: u64, result: OkResult, zxid: u64) {
        self.complete(p, op_id, Outcome::Ok { result, zxid });
    }

    /// A write acknowledged at `version`, with the write's zxid as the reply zxid.
    pub(crate) fn written(&mut self, p: ProcessId, op_id: u64, version: i32, zxid: u64) {
        self.ok(p, op_id, OkResult::Written { version, zxid }, zxid);
    }

    /// A read returning `value` at `version`, with mzxid and the reply zxid both `mzxid`.
    pub(crate) fn read_ok(&mut self, p: ProcessId, op_id: u64, value: &str, version: i32) {
        self.read_at(p, op_id, value, version, 0, 0);
    }

    pub(crate) fn read_at(
        &mut self,
        p: ProcessId,
        op_id: u64,
        value: &str,
        version: i32,
        mzxid: u64,
        reply: u64,
    ) {
        let result = OkResult::Read {
            value: value.as_bytes().to_vec(),
            version,
            mzxid,
        };
        self.ok(p, op_id, result, reply);
    }

    pub(crate) fn fail(&mut self, p: ProcessId, op_id: u64, error: &str) {
        let error = error.to_string();
        self.complete(p, op_id, Outcome::Fail { error });
    }

    pub(crate) fn unknown(&mut self, p: ProcessId, op_id: u64) {
        let error = "ConnectionLoss".to_string();
        self.complete(p, op_id, Outcome::Unknown { error });
    }

    pub(crate) fn notice(&mut self, p: ProcessId, notice: Notice) -> usize {
        self.push(p, EntryKind::Notice(notice))
    }

    pub(crate) fn finish(self) -> History {
        History {
            entries: self.entries,
        }
    }

    pub(crate) fn write(key: &str, value: &str) -> Op {
        Op::Write {
            key: key.to_string(),
            value: value.as_bytes().to_vec(),
        }
    }

    pub(crate) fn read(key: &str, sync: bool) -> Op {
        Op::Read {
            key: key.to_string(),
            sync,
        }
    }

    pub(crate) fn cas(key: &str, expected_version: i32, value: &str) -> Op {
        Op::Cas {
            key: key.to_string(),
            expected_version,
            value: value.as_bytes().to_vec(),
        }
    }

    pub(crate) fn multi_cas(key: &str, expected_version: i32, value: &str) -> Op {
        Op::MultiCas {
            key: key.to_string(),
            expected_version,
            value: value.as_bytes().to_vec(),
        }
    }
}

/// `n` servers that all hold `values` (key, data, version), with equal digests and zxids.
pub(crate) fn finals(n: u64, values: &[(&str, &str, i32)]) -> Vec<ServerFinal> {
    let values: BTreeMap<String, (Vec<u8>, i32)> = values
        .iter()
        .map(|(k, v, ver)| (k.to_string(), (v.as_bytes().to_vec(), *ver)))
        .collect();
    (1..=n)
        .map(|id| ServerFinal {
            id,
            digest: 0xd1,
            zxid: 0x10,
            values: values.clone(),
        })
        .collect()
}
