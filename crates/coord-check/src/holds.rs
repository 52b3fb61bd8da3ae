//! Hold intervals: what the lock-like checkers (locks, recipe-locks, election, the queue's
//! claims) share.
//!
//! An acquire completing Ok at entry `a` for process `p` on session `s` starts a hold of a
//! name (a lock, an election, a queue item); it ends at the first of: `p`'s release invoke
//! for that name, a `Disconnected`, `Closing` or `SessionEnded` notice for `s`, or `p`
//! recording an entry under another session. A hold with no end lasts to the end of the
//! history. Entry indices order events (the history is in real-time order), so two holds
//! overlap iff one starts before the other ends.
//!
//! Ending a hold at the holder's first sign of trouble (a disconnect) is what makes the
//! intervals sound under the uncertainty of expiry: from its disconnect on, a holder cannot
//! know whether its session still lives, so it must act as if it had lost the hold
//! (Curator's SUSPENDED, Chubby's jeopardy); until then its session was provably alive
//! (it was connected), so its ephemeral nodes existed and nobody else could hold.

use crate::Violation;
use crate::fasthash::FastMap;
use crate::history::{EntryKind, Notice, OkResult, Op, ProcessId};
use crate::ops::Paired;
use std::collections::BTreeMap;

/// One hold of a name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold<'h> {
    /// The lock, election or item held.
    pub(crate) name: &'h str,
    /// (process, session).
    pub(crate) holder: (ProcessId, u64),
    /// Its fence (lock generation, term, claim czxid).
    pub(crate) fence: u64,
    /// The acquire's `Complete` entry.
    pub(crate) start: usize,
    /// The entry that ended it; `None`: held to the end of the history.
    pub(crate) end: Option<usize>,
    /// The acquire (index into `Paired::ops`).
    pub(crate) op: usize,
}

impl Hold<'_> {
    /// Whether it ended before entry `index`.
    pub(crate) fn ends_before(&self, index: usize) -> bool {
        self.end.is_some_and(|end| end < index)
    }

    /// Whether it covers entry `index` (started before it, not ended before it).
    pub(crate) fn covers(&self, index: usize) -> bool {
        self.start < index && self.end.is_none_or(|end| end > index)
    }

    /// The entries that show it: the acquire's invoke and complete, and its end.
    pub(crate) fn entries(&self, paired: &Paired<'_>) -> Vec<usize> {
        paired.ops[self.op].entries().chain(self.end).collect()
    }
}

/// What ends a process's holds: the first such entry after a given index.
#[derive(Default)]
struct Enders<'h> {
    /// Per (process, name): entries invoking its release.
    releases: FastMap<(ProcessId, &'h str), Vec<usize>>,
    /// Per session: `Disconnected` / `Closing` / `SessionEnded` entries.
    session_ends: FastMap<u64, Vec<usize>>,
    /// Per (process, session): entries after which the process used another session.
    switches: FastMap<(ProcessId, u64), Vec<usize>>,
}

fn first_after(list: Option<&Vec<usize>>, index: usize) -> Option<usize> {
    let list = list?;
    list.get(list.partition_point(|&e| e <= index)).copied()
}

/// The holds of a well-formed history, per name, each list sorted by start. `acquired`
/// says which successful operations start a hold of which name with which fence;
/// `released` which invocations release a name.
pub(crate) fn collect<'h>(
    paired: &Paired<'h>,
    acquired: impl Fn(&'h Op, &'h OkResult) -> Option<(&'h str, u64)>,
    released: impl Fn(&'h Op) -> Option<&'h str>,
) -> BTreeMap<&'h str, Vec<Hold<'h>>> {
    let history = paired.history;
    let mut enders = Enders::default();
    let mut current: FastMap<ProcessId, u64> = FastMap::default();
    for (i, entry) in history.entries.iter().enumerate() {
        if entry.session != 0 {
            let previous = current.insert(entry.process, entry.session);
            if let Some(old) = previous.filter(|&old| old != entry.session) {
                let who = (entry.process, old);
                enders.switches.entry(who).or_default().push(i);
            }
        }
        match &entry.kind {
            EntryKind::Invoke { op, .. } => {
                if let Some(name) = released(op) {
                    let who = (entry.process, name);
                    enders.releases.entry(who).or_default().push(i);
                }
            }
            EntryKind::Notice(
                Notice::Disconnected { session }
                | Notice::Closing { session }
                | Notice::SessionEnded { session, .. },
            ) => enders.session_ends.entry(*session).or_default().push(i),
            _ => {}
        }
    }

    let mut holds: BTreeMap<&'h str, Vec<Hold<'h>>> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        let (Some((result, _)), Some(start)) = (op.ok(), op.complete) else {
            continue;
        };
        let Some((name, fence)) = acquired(op.op, result) else {
            continue;
        };
        let end = [
            first_after(enders.releases.get(&(op.process, name)), start),
            first_after(enders.session_ends.get(&op.session), start),
            first_after(enders.switches.get(&(op.process, op.session)), start),
        ]
        .into_iter()
        .flatten()
        .min();
        holds.entry(name).or_default().push(Hold {
            name,
            holder: (op.process, op.session),
            fence,
            start,
            end,
            op: i,
        });
    }
    for list in holds.values_mut() {
        list.sort_by_key(|h| h.start);
    }
    holds
}

/// How a checker names what is held and its fence in its reasons.
pub(crate) struct Words {
    /// "lock", "election", "claim of item".
    pub(crate) what: &'static str,
    /// "fence", "term", "claim".
    pub(crate) fence: &'static str,
    /// "acquired it", "became leader", "claimed it".
    pub(crate) took: &'static str,
    /// "still held it", "still led", "still held its claim".
    pub(crate) holding: &'static str,
}

fn violation(paired: &Paired<'_>, what: String, pair: [&Hold<'_>; 2]) -> Violation {
    Violation {
        what,
        entries: pair.iter().flat_map(|h| h.entries(paired)).collect(),
    }
}

/// Mutual exclusion: holds of one name (sorted by start) by different (process, session)
/// never overlap. Each hold is compared with the one reaching furthest among those before.
pub(crate) fn exclusion(paired: &Paired<'_>, list: &[Hold<'_>], words: &Words) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut furthest: Option<Hold<'_>> = None;
    for hold in list {
        if let Some(f) = &furthest
            && f.holder != hold.holder
            && !f.ends_before(hold.start)
        {
            let what = format!(
                "{} {}: p{} ({} {:#x}) {} while p{} ({} {:#x}) {}",
                words.what,
                hold.name,
                hold.holder.0,
                words.fence,
                hold.fence,
                words.took,
                f.holder.0,
                words.fence,
                f.fence,
                words.holding
            );
            out.push(violation(paired, what, [f, hold]));
        }
        let reaches_further = |f: &Hold<'_>| match (f.end, hold.end) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => b > a,
        };
        if furthest.as_ref().is_none_or(reaches_further) {
            furthest = Some(*hold);
        }
    }
    out
}

/// Fencing: if hold A ended before hold B began, fence(A) < fence(B); equal fences only
/// for the same (process, session) (a re-acquire through the same node). Each hold is
/// compared with the highest fence among the holds that ended before it began.
pub(crate) fn fences_grow(paired: &Paired<'_>, list: &[Hold<'_>], words: &Words) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut by_end: Vec<Hold<'_>> = list.iter().filter(|h| h.end.is_some()).copied().collect();
    by_end.sort_by_key(|h| h.end);
    let mut ended = by_end.iter().peekable();
    let mut highest: Option<Hold<'_>> = None;
    for hold in list {
        while let Some(h) = ended.next_if(|h| h.ends_before(hold.start)) {
            if highest.is_none_or(|best| best.fence < h.fence) {
                highest = Some(*h);
            }
        }
        let Some(before) = &highest else {
            continue;
        };
        let reused = before.fence == hold.fence && before.holder == hold.holder;
        if before.fence >= hold.fence && !reused {
            let what = format!(
                "{} {}: {} {:#x} of p{} is not above {} {:#x} of p{}, whose hold ended before",
                words.what,
                hold.name,
                words.fence,
                hold.fence,
                hold.holder.0,
                words.fence,
                before.fence,
                before.holder.0
            );
            out.push(violation(paired, what, [before, hold]));
        }
    }
    out
}

/// Fenced writes against the holds of their names: `FencedWrite{name, fence}` operations
/// (the write's set carries the hold's sequencer) judged by three rules:
///
/// - accepted at zxid `W` although a hold of the name with a higher fence `F'` (its holder
///   node created at zxid `F'`) began before (`fence < F' < W`): the server let a stale
///   holder write after the next holder's node existed, so after the writer's node was gone;
/// - accepted although invoked after the release of its hold completed Ok (the holder node
///   was deleted then);
/// - refused (`StaleSequencer`) although invoked and completed within the writer's own hold
///   of that fence (connected all along, not released: its node existed).
///
/// `released(op)` names the releases. Returns the number of fenced writes and the
/// violations.
pub(crate) fn fenced_writes(
    paired: &Paired<'_>,
    holds: &BTreeMap<&str, Vec<Hold<'_>>>,
    released: impl Fn(&Op) -> Option<&str>,
) -> (u64, Vec<Violation>) {
    // The Ok completion of the release each hold ended with, if it ended with one.
    let mut by_invoke: FastMap<usize, usize> = FastMap::default();
    for (i, op) in paired.ops.iter().enumerate() {
        if released(op.op).is_some() {
            by_invoke.insert(op.invoke, i);
        }
    }
    let release_done = |h: &Hold<'_>| -> Option<usize> {
        let op = &paired.ops[*by_invoke.get(&h.end?)?];
        (op.process == h.holder.0 && released(op.op) == Some(h.name) && op.ok().is_some())
            .then_some(op.complete)
            .flatten()
    };
    let mut checked = 0;
    let mut out = Vec::new();
    for op in &paired.ops {
        let Op::FencedWrite { lock, fence } = op.op else {
            continue;
        };
        let Some(list) = holds.get(lock.as_str()) else {
            continue;
        };
        checked += 1;
        let own = list.iter().find(|h| h.fence == *fence);
        match op.outcome {
            Some(crate::history::Outcome::Ok {
                result: OkResult::Written { zxid: w, .. },
                ..
            }) => {
                if let Some(later) = list.iter().find(|h| *fence < h.fence && h.fence < *w) {
                    let mut entries: Vec<usize> = op.entries().collect();
                    entries.extend(later.entries(paired));
                    out.push(Violation {
                        what: format!(
                            "{lock}: p{}'s write fenced with {fence:#x} was accepted at {w:#x}, \
                             after p{} took over with {:#x}",
                            op.process, later.holder.0, later.fence
                        ),
                        entries,
                    });
                }
                if let Some(h) = own
                    && let Some(done) = release_done(h)
                    && done < op.invoke
                {
                    let mut entries: Vec<usize> = op.entries().collect();
                    entries.extend(h.entries(paired));
                    entries.push(done);
                    out.push(Violation {
                        what: format!(
                            "{lock}: p{}'s write fenced with {fence:#x} was accepted after that \
                             hold's release had completed",
                            op.process
                        ),
                        entries,
                    });
                }
            }
            Some(crate::history::Outcome::Fail { error }) if error == "StaleSequencer" => {
                if let (Some(h), Some(complete)) = (own, op.complete)
                    && h.holder == (op.process, op.session)
                    && h.covers(op.invoke)
                    && h.covers(complete)
                {
                    let mut entries: Vec<usize> = op.entries().collect();
                    entries.extend(h.entries(paired));
                    out.push(Violation {
                        what: format!(
                            "{lock}: p{}'s write fenced with {fence:#x} was refused while its \
                             session held that hold, connected all along",
                            op.process
                        ),
                        entries,
                    });
                }
            }
            _ => {}
        }
    }
    (checked, out)
}
