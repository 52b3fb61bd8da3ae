//! The history recorder shared by every process of a run.
//!
//! Invariant: entries are appended under one lock, and each entry's time is read while the lock
//! is held, so the history's order is real-time order and times never decrease.

use coord_check::history::{Entry, EntryKind, History, Notice, Op, Outcome, ProcessId};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::Instant;

/// Appends entries to the run's history.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    next_op: u64,
    /// Operations invoked and not yet completed: op id → (process, session).
    open: BTreeMap<u64, (ProcessId, u64)>,
    /// Sessions started and not yet ended: session → process.
    sessions: BTreeMap<u64, ProcessId>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Nanoseconds since the run began.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, inner: &mut Inner, process: ProcessId, session: u64, kind: EntryKind) {
        let time_ns = self.now_ns();
        inner.entries.push(Entry {
            time_ns,
            process,
            session,
            kind,
        });
    }

    /// Records an invocation; returns its op id.
    pub fn invoke(&self, process: ProcessId, session: u64, op: Op) -> u64 {
        let mut inner = self.inner.lock();
        let op_id = inner.next_op;
        inner.next_op += 1;
        inner.open.insert(op_id, (process, session));
        self.push(
            &mut inner,
            process,
            session,
            EntryKind::Invoke { op_id, op },
        );
        op_id
    }

    /// Records how operation `op_id` ended.
    pub fn complete(&self, process: ProcessId, session: u64, op_id: u64, outcome: Outcome) {
        let mut inner = self.inner.lock();
        inner.open.remove(&op_id);
        self.push(
            &mut inner,
            process,
            session,
            EntryKind::Complete { op_id, outcome },
        );
    }

    /// Records something a session saw on its own.
    pub fn notice(&self, process: ProcessId, session: u64, notice: Notice) {
        let mut inner = self.inner.lock();
        match &notice {
            Notice::SessionStarted { session, .. } => {
                inner.sessions.insert(*session, process);
            }
            Notice::SessionEnded { session, .. } => {
                inner.sessions.remove(session);
            }
            _ => {}
        }
        self.push(&mut inner, process, session, EntryKind::Notice(notice));
    }

    /// Records a notice that happened at `time_ns` (earlier than now), in its place in time
    /// order, so times still never decrease.
    pub fn notice_at(&self, time_ns: u64, process: ProcessId, session: u64, notice: Notice) {
        let mut inner = self.inner.lock();
        let at = inner.entries.partition_point(|e| e.time_ns <= time_ns);
        inner.entries.insert(
            at,
            Entry {
                time_ns,
                process,
                session,
                kind: EntryKind::Notice(notice),
            },
        );
    }

    /// Completes every operation still open as `Unknown`, and ends every session still open
    /// (their processes were stopped before they finished), so every invocation has a
    /// completion and every session an end. Returns how many operations were open.
    pub fn close_open(&self, why: &str) -> usize {
        let mut inner = self.inner.lock();
        let open = std::mem::take(&mut inner.open);
        for (op_id, (process, session)) in &open {
            let outcome = Outcome::Unknown {
                error: why.to_string(),
            };
            self.push(
                &mut inner,
                *process,
                *session,
                EntryKind::Complete {
                    op_id: *op_id,
                    outcome,
                },
            );
        }
        let sessions = std::mem::take(&mut inner.sessions);
        for (session, process) in sessions {
            let notice = Notice::SessionEnded {
                session,
                reason: why.to_string(),
            };
            self.push(&mut inner, process, session, EntryKind::Notice(notice));
        }
        open.len()
    }

    /// How many entries there are so far.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        History {
            entries: self.inner.lock().entries.clone(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_recording_order_and_open_ops_and_sessions_are_closed() {
        let r = Recorder::new();
        r.notice(
            2,
            8,
            Notice::SessionStarted {
                session: 8,
                timeout_ms: 3000,
            },
        );
        let a = r.invoke(
            1,
            7,
            Op::Read {
                key: "0".into(),
                sync: false,
            },
        );
        let b = r.invoke(
            2,
            8,
            Op::Read {
                key: "1".into(),
                sync: true,
            },
        );
        r.complete(
            1,
            7,
            a,
            Outcome::Fail {
                error: "NoNode".into(),
            },
        );
        assert_eq!(r.close_open("run ended"), 1);
        let h = r.history();
        assert_eq!(h.entries.len(), 6);
        assert!(h.entries.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        assert!(matches!(
            &h.entries[4].kind,
            EntryKind::Complete { op_id, outcome: Outcome::Unknown { .. } } if *op_id == b
        ));
        assert_eq!(h.entries[4].session, 8);
        assert!(matches!(
            &h.entries[5].kind,
            EntryKind::Notice(Notice::SessionEnded { session: 8, reason }) if reason == "run ended"
        ));
        assert_eq!(r.close_open("again"), 0);
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn an_earlier_notice_goes_in_its_place() {
        let r = Recorder::new();
        let t = r.now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        r.notice(1, 5, Notice::Disconnected { session: 5 });
        r.notice_at(
            t,
            2,
            6,
            Notice::EphemeralsSeen {
                names: vec![],
                zxid: 9,
            },
        );
        let h = r.history();
        assert!(matches!(
            h.entries[0].kind,
            EntryKind::Notice(Notice::EphemeralsSeen { zxid: 9, .. })
        ));
        assert!(h.entries.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    }
}
