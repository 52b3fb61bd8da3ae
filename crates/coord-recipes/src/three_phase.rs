//! Three-phase commit (Skeen): can-commit / pre-commit / do-commit, with the timeout rules
//! and the termination protocol that let the participants decide without a live
//! coordinator.
//!
//! ```text
//!   /app/txns/<id>                data: the participants' names, one per line
//!   ├── phase                     the coordinator's state: can-commit → pre-commit → do-commit,
//!   │                             or can-commit → abort (versioned sets, forward only)
//!   ├── state/<participant>       that participant's own state (versioned sets, forward only):
//!   │                             initial → uncertain → prepared → committed, or → aborted
//!   ├── pre-commit/<participant>  the pre-commit message to one participant
//!   ├── recovery                  ephemeral, created once: the elected recovery coordinator
//!   └── decision                  commit / abort: created once, in the multi that ends `phase`
//! ```
//!
//! Every message of the protocol is a replicated write, made before the writer acts on it,
//! so a restarted coordinator or participant reads its state back and carries on:
//!
//! | message     | write                                                                  |
//! |-------------|------------------------------------------------------------------------|
//! | can-commit  | [`Coordinator::begin`]: `phase` = can-commit, every state `initial`    |
//! | vote        | the participant's state `initial` → `uncertain` (yes) / `aborted` (no) |
//! | pre-commit  | `pre-commit/<p>`; the first ones in one multi that moves `phase` to    |
//! |             | pre-commit and checks every state's version (every vote is yes)        |
//! | ack         | the participant's state `uncertain` → `prepared`                       |
//! | do-commit / | one multi: `phase` → do-commit / abort at the version it was read at,  |
//! | abort       | and the create of `decision`                                           |
//!
//! **Timeout rules** (Skeen's):
//!
//! | who         | waiting in                    | on timeout                                |
//! |-------------|-------------------------------|-------------------------------------------|
//! | coordinator | can-commit (for the votes)    | abort                                     |
//! | coordinator | pre-commit (for the acks)     | commit (a silent participant learns it on |
//! |             |                               | recovery)                                 |
//! | participant | initial (has not voted)       | abort                                     |
//! | participant | uncertain (voted yes)         | termination protocol                      |
//! | participant | prepared (acked a pre-commit) | termination protocol                      |
//!
//! **Termination protocol.** A participant whose timeout ran out tries to create `recovery`
//! (ephemeral): whoever creates it is the recovery coordinator, the others keep waiting and
//! take over when its session ends (which deletes the node). The recovery coordinator reads
//! one linearizable view of the transaction (a single `multi_read` through a
//! [`ReadMode::Linearizable`] handle: phase, decision, every state, the pre-commit messages)
//! and applies, in order:
//!
//! 1. decided → that decision; (any committed → commit: a participant commits only after
//!    the decision exists, so this is rule 1);
//! 2. any aborted, or any still initial → abort;
//! 3. any prepared, or `phase` = pre-commit → move everyone to prepared (a pre-commit message
//!    to each uncertain participant, then at most one timeout for their acks), then commit;
//! 4. all uncertain → abort.
//!
//! The coordinator counts as a site whose state is durable: `phase` = pre-commit is the
//! coordinator in Skeen's prepared state, so rule 3 applies even if it died before any
//! participant acked. Classic 3PC applies the rules to the *live* sites; here every
//! participant's state is in the tree, crashed or not, so the rules see all of them. The
//! participant states the rules never meet together (a prepared and an aborted one, say)
//! are reported as `DataInconsistency` rather than decided on.
//!
//! **Guarantee.** Every participant that decides, decides the same, and nothing commits if
//! any participant aborted: the decision is one create-once node, written in the same multi
//! as `phase`'s last step and conditioned on `phase`'s version; an abort is only written
//! from can-commit and a commit only from pre-commit, and `phase` reaches pre-commit only in
//! a multi that saw every participant's state at a version holding a yes vote. A participant
//! records `committed` / `aborted` only after reading the decision; `prepared` exists only
//! after a pre-commit, after which abort cannot be written.
//!
//! **Where 3PC's non-blocking claim fails.** Skeen's proof assumes crash failures only,
//! reliable failure detection and bounded message delays. Under a network partition it
//! breaks: with the coordinator gone, side A = {prepared, prepared} elects a recovery
//! coordinator, which finds a prepared site and commits; side B = {uncertain, uncertain}
//! cannot tell "the coordinator died before any pre-commit" from "A is prepared but
//! unreachable", elects its own, finds all uncertain and aborts. Both sides "decided without
//! the coordinator" and disagree. Here the sides do not hold the states; Coord's replicated
//! tree does: a recovery coordinator's view is one linearizable read, so a side that reaches
//! the ensemble's quorum sees A's prepared states and commits; a side cut off from the
//! quorum can neither read nor write, and waits. Even a stale view cannot split the
//! outcome: the decision is a create-once node behind `phase`'s version, so a second
//! decision fails and its writer reads the first. That closes the partition hole at the
//! price 3PC tried to avoid, blocking, but only while a minority side is cut off from the
//! ensemble's quorum, the same bound Coord's own consensus (ZAB) puts on every write.
//! (Two-phase commit, [`crate::txn`], gets the same from the create-once decision: its
//! coordinator's decision is a replicated write, so its death does not block anyone.)
//!
//! **Disconnect, expiry, leader fail-over.** See [`Coordinator`] and [`Participant`]. In
//! short: every call retries through a reconnect and a ZAB leader fail-over, a write whose
//! reply was lost is recognised on the re-read (versions and create-once nodes make every
//! write safe to retry), and everything but `recovery` is persistent, so a new session
//! after an expiry carries on where the old one stopped.

pub use crate::txn::Decision;
use crate::util::{
    RETRY_PAUSE, alive, bad, check_dir, child, delete_quietly, ensure_path, retry, transient,
};
use coord_client::{
    Client, CreateOptions, Error, ErrorCode, MultiOp, ReadMode, ReadOp, ReadResult, Watch,
};
use std::time::Duration;
use tokio::time::Instant;

/// A participant's state in the protocol (Skeen's q, w, p, c, a), as its
/// `state/<participant>` node holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// q: the transaction began; this participant has not voted.
    Initial,
    /// w: voted yes, no pre-commit yet; cannot decide alone.
    Uncertain,
    /// p: acked a pre-commit; the transaction can now only commit.
    Prepared,
    /// c: committed (after reading the decision).
    Committed,
    /// a: aborted (voted no, or read the abort decision).
    Aborted,
}

impl State {
    fn bytes(self) -> &'static [u8] {
        match self {
            State::Initial => b"initial",
            State::Uncertain => b"uncertain",
            State::Prepared => b"prepared",
            State::Committed => b"committed",
            State::Aborted => b"aborted",
        }
    }

    fn parse(path: &str, data: &[u8]) -> Result<State, Error> {
        Ok(match data {
            b"initial" => State::Initial,
            b"uncertain" => State::Uncertain,
            b"prepared" => State::Prepared,
            b"committed" => State::Committed,
            b"aborted" => State::Aborted,
            other => return Err(corrupt(path, other)),
        })
    }

    /// The states a participant may move to this one from: the protocol's state machine
    /// (q → w → p → c, q → a, w → c / a when the decision came before the pre-commit).
    fn sources(self) -> &'static [State] {
        match self {
            State::Initial => &[],
            State::Uncertain => &[State::Initial],
            State::Prepared => &[State::Uncertain],
            State::Committed => &[State::Uncertain, State::Prepared],
            State::Aborted => &[State::Initial, State::Uncertain],
        }
    }
}

/// The coordinator's state, as `phase` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    CanCommit,
    PreCommit,
    DoCommit,
    Abort,
}

impl Phase {
    fn bytes(self) -> &'static [u8] {
        match self {
            Phase::CanCommit => b"can-commit",
            Phase::PreCommit => b"pre-commit",
            Phase::DoCommit => b"do-commit",
            Phase::Abort => b"abort",
        }
    }

    fn parse(path: &str, data: &[u8]) -> Result<Phase, Error> {
        Ok(match data {
            b"can-commit" => Phase::CanCommit,
            b"pre-commit" => Phase::PreCommit,
            b"do-commit" => Phase::DoCommit,
            b"abort" => Phase::Abort,
            other => return Err(corrupt(path, other)),
        })
    }
}

fn decision_bytes(d: Decision) -> &'static [u8] {
    match d {
        Decision::Commit => b"commit",
        Decision::Abort => b"abort",
    }
}

fn parse_decision(path: &str, data: &[u8]) -> Result<Decision, Error> {
    match data {
        b"commit" => Ok(Decision::Commit),
        b"abort" => Ok(Decision::Abort),
        other => Err(corrupt(path, other)),
    }
}

fn corrupt(path: &str, data: &[u8]) -> Error {
    inconsistent(format!(
        "{path} holds {:?}, which three-phase commit never writes",
        String::from_utf8_lossy(data)
    ))
}

fn inconsistent(message: impl Into<String>) -> Error {
    Error::with_message(ErrorCode::DataInconsistency, message)
}

fn check_name(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == ".." {
        return Err(bad(format!(
            "{id:?} is not a transaction or participant name"
        )));
    }
    Ok(())
}

const PHASE: &str = "phase";
const STATE: &str = "state";
const PRE_COMMIT: &str = "pre-commit";
const RECOVERY: &str = "recovery";
const DECISION: &str = "decision";

/// One consistent reading of a transaction (a single linearizable `multi_read`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    phase: Phase,
    phase_version: i32,
    decision: Option<Decision>,
    /// `states[i]` is `participants[i]`'s state and its node's version.
    states: Vec<(State, i32)>,
    /// `pre_committed[i]`: `participants[i]` was sent a pre-commit.
    pre_committed: Vec<bool>,
    /// The session owning `recovery`, if a recovery coordinator is elected.
    recovery: Option<u64>,
}

impl View {
    fn any(&self, s: State) -> bool {
        self.states.iter().any(|(st, _)| *st == s)
    }

    fn all(&self, f: impl Fn(State) -> bool) -> bool {
        self.states.iter().all(|(st, _)| f(*st))
    }
}

/// What the termination protocol does on a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Decided(Decision),
    Abort,
    /// Move everyone to prepared, then commit.
    Commit,
}

/// Skeen's termination rules over every participant's state (see the module doc).
fn termination_rule(view: &View) -> Result<Rule, Error> {
    if let Some(d) = view.decision {
        return Ok(Rule::Decided(d));
    }
    if view.any(State::Committed) {
        return Err(inconsistent("a participant committed before any decision"));
    }
    let pre_committed = view.phase == Phase::PreCommit;
    if view.any(State::Aborted) || view.any(State::Initial) {
        // Pre-commit needs every vote yes, so it cannot coexist with these.
        if pre_committed || view.any(State::Prepared) {
            return Err(inconsistent(
                "a participant is prepared or pre-committed while another did not vote yes",
            ));
        }
        return Ok(Rule::Abort);
    }
    if pre_committed {
        return Ok(Rule::Commit);
    }
    if view.any(State::Prepared) {
        return Err(inconsistent(
            "a participant is prepared before any pre-commit",
        ));
    }
    Ok(Rule::Abort)
}

/// Checks a `phase` / `decision` pair: they are written in one multi.
fn check_decided(phase: Phase, decision: Option<Decision>) -> Result<(), Error> {
    let ok = matches!(
        (phase, decision),
        (Phase::CanCommit | Phase::PreCommit, None)
            | (Phase::DoCommit, Some(Decision::Commit))
            | (Phase::Abort, Some(Decision::Abort))
    );
    if ok {
        Ok(())
    } else {
        Err(inconsistent(format!(
            "phase {phase:?} does not match decision {decision:?}"
        )))
    }
}

/// Waits for any of `watches` to fire, or until `deadline`. `Ok(true)`: one fired.
async fn wait_any(watches: Vec<Watch>, deadline: Option<Instant>) -> Result<bool, Error> {
    if watches.is_empty() {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending::<()>().await,
        }
        return Ok(false);
    }
    let any = futures::future::select_all(watches);
    match deadline {
        None => any.await.0.map(|_| true),
        Some(d) => match tokio::time::timeout_at(d, any).await {
            Ok((r, _, _)) => r.map(|_| true),
            Err(_) => Ok(false),
        },
    }
}

/// An open transaction: its path and participants, and the calls every role makes on it.
struct Txn {
    /// Writes and watches.
    client: Client,
    /// Reads: every decision is taken on a linearizable view.
    reads: Client,
    path: String,
    participants: Vec<String>,
}

impl Txn {
    /// Reads the participant list of `dir/id` (`NoNode` if it has not begun).
    async fn open(client: &Client, dir: &str, id: &str) -> Result<Txn, Error> {
        check_name(id)?;
        let reads = client.with_read_mode(ReadMode::Linearizable);
        let path = child(dir, id);
        let (list, _) = retry(&reads, || reads.get_data(&path)).await?;
        let text = std::str::from_utf8(&list).map_err(|_| corrupt(&path, &list))?;
        let participants: Vec<String> = text.split('\n').map(str::to_string).collect();
        if participants.iter().any(|p| check_name(p).is_err()) {
            return Err(corrupt(&path, &list));
        }
        Ok(Txn {
            client: client.clone(),
            reads,
            path,
            participants,
        })
    }

    fn at(&self, name: &str) -> String {
        child(&self.path, name)
    }

    fn state_path(&self, i: usize) -> String {
        child(&self.at(STATE), &self.participants[i])
    }

    fn pre_commit_path(&self, i: usize) -> String {
        child(&self.at(PRE_COMMIT), &self.participants[i])
    }

    fn index(&self, name: &str) -> Result<usize, Error> {
        self.participants
            .iter()
            .position(|p| p == name)
            .ok_or_else(|| {
                Error::with_message(
                    ErrorCode::NoNode,
                    format!("{name:?} is not a participant of {}", self.path),
                )
            })
    }

    async fn view(&self) -> Result<View, Error> {
        let mut ops = vec![
            ReadOp::GetData {
                path: self.at(PHASE),
            },
            ReadOp::GetData {
                path: self.at(DECISION),
            },
            ReadOp::GetChildren {
                path: self.at(PRE_COMMIT),
            },
            ReadOp::GetData {
                path: self.at(RECOVERY),
            },
        ];
        for i in 0..self.participants.len() {
            ops.push(ReadOp::GetData {
                path: self.state_path(i),
            });
        }
        let results = retry(&self.reads, || self.reads.multi_read(ops.clone())).await?;
        if results.len() != ops.len() {
            return Err(inconsistent(format!(
                "multi_read of {} gave {} results for {} reads",
                self.path,
                results.len(),
                ops.len()
            )));
        }
        let mut results = results.into_iter();
        let mut next = |path: String, missing_ok: bool| match results.next() {
            Some(ReadResult::Data { data, stat }) => Ok(Some((data, stat))),
            Some(ReadResult::Error { code }) if missing_ok && code == ErrorCode::NoNode => Ok(None),
            Some(ReadResult::Error { code }) => Err(Error::with_message(code, path)),
            _ => Err(inconsistent(format!("unexpected read result for {path}"))),
        };
        let phase_path = self.at(PHASE);
        let (data, stat) = next(phase_path.clone(), false)?
            .ok_or_else(|| inconsistent(format!("{phase_path} is missing")))?;
        let phase = Phase::parse(&phase_path, &data)?;
        let decision_path = self.at(DECISION);
        let decision = match next(decision_path.clone(), true)? {
            Some((d, _)) => Some(parse_decision(&decision_path, &d)?),
            None => None,
        };
        check_decided(phase, decision)?;
        let pre_commit_path = self.at(PRE_COMMIT);
        let sent = match results.next() {
            Some(ReadResult::Children { children }) => children,
            Some(ReadResult::Error { code }) => {
                return Err(Error::with_message(code, pre_commit_path));
            }
            _ => {
                return Err(inconsistent(format!(
                    "no children read of {pre_commit_path}"
                )));
            }
        };
        let recovery = match results.next() {
            Some(ReadResult::Data { stat, .. }) => Some(stat.ephemeral_owner),
            Some(ReadResult::Error {
                code: ErrorCode::NoNode,
            }) => None,
            Some(ReadResult::Error { code }) => {
                return Err(Error::with_message(code, self.at(RECOVERY)));
            }
            _ => return Err(inconsistent("no read of the recovery node")),
        };
        let mut states = Vec::with_capacity(self.participants.len());
        for i in 0..self.participants.len() {
            let path = self.state_path(i);
            let mut next = |path: String| match results.next() {
                Some(ReadResult::Data { data, stat }) => Ok((data, stat)),
                Some(ReadResult::Error { code }) => Err(Error::with_message(code, path)),
                _ => Err(inconsistent(format!("unexpected read result for {path}"))),
            };
            let (data, stat) = next(path.clone())?;
            states.push((State::parse(&path, &data)?, stat.version));
        }
        let pre_committed = self.participants.iter().map(|p| sent.contains(p)).collect();
        Ok(View {
            phase,
            phase_version: stat.version,
            decision,
            states,
            pre_committed,
            recovery,
        })
    }

    /// One-shot watches on `paths`, registered before the view they wait to change is read.
    async fn watch(&self, paths: &[String]) -> Result<Vec<Watch>, Error> {
        let c = &self.client;
        let calls = paths
            .iter()
            .map(|p| async move { retry(c, || c.exists_w(p)).await.map(|(_, w)| w) });
        futures::future::try_join_all(calls).await
    }

    /// Watches on the decision and every state node.
    async fn watch_states(&self) -> Result<Vec<Watch>, Error> {
        let mut paths = vec![self.at(DECISION)];
        paths.extend((0..self.participants.len()).map(|i| self.state_path(i)));
        self.watch(&paths).await
    }

    async fn read_decision(&self) -> Result<Option<Decision>, Error> {
        let path = self.at(DECISION);
        match retry(&self.reads, || self.reads.get_data(&path)).await {
            Ok((d, _)) => parse_decision(&path, &d).map(Some),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `d` from `view`: `phase` moves on at the version the view read and `decision`
    /// is created, in one multi. The decision that holds, or `None` when `phase` moved
    /// meanwhile without a decision (read the view again).
    async fn try_decide(&self, view: &View, d: Decision) -> Result<Option<Decision>, Error> {
        if let Some(held) = view.decision {
            return Ok(Some(held));
        }
        let (from, to) = match d {
            Decision::Commit => (Phase::PreCommit, Phase::DoCommit),
            Decision::Abort => (Phase::CanCommit, Phase::Abort),
        };
        if view.phase != from {
            return Err(inconsistent(format!(
                "{}: cannot {d:?} from phase {:?}",
                self.path, view.phase
            )));
        }
        let ops = vec![
            MultiOp::SetData {
                path: self.at(PHASE),
                data: to.bytes().to_vec(),
                version: view.phase_version,
            },
            CreateOptions::persistent().to_op(&self.at(DECISION), decision_bytes(d))?,
        ];
        loop {
            match self.client.multi(ops.clone()).await {
                Ok(_) => return Ok(Some(d)),
                // Applied or not: the retry fails with BadVersion if it was.
                Err(e) if transient(&e) && alive(&self.client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if matches!(e.code(), ErrorCode::BadVersion | ErrorCode::NodeExists) => {
                    return self.read_decision().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves participant `i` to `to` with a versioned set, from one of `to`'s sources only
    /// (`BadVersion` otherwise); a participant already in `to` stays.
    async fn advance(&self, i: usize, to: State, from: &[State]) -> Result<(), Error> {
        let path = self.state_path(i);
        loop {
            let (data, stat) = retry(&self.reads, || self.reads.get_data(&path)).await?;
            let now = State::parse(&path, &data)?;
            if now == to {
                return Ok(());
            }
            if !from.contains(&now) || !to.sources().contains(&now) {
                return Err(Error::with_message(
                    ErrorCode::BadVersion,
                    format!("{path} is {now:?}; it cannot become {to:?}"),
                ));
            }
            match self
                .client
                .set_data(&path, to.bytes(), Some(stat.version))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if transient(&e) && alive(&self.client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if e.code() == ErrorCode::BadVersion => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Records decision `d` in participant `i`'s state.
    async fn record(&self, i: usize, d: Decision) -> Result<Decision, Error> {
        match d {
            Decision::Commit => {
                self.advance(i, State::Committed, State::Committed.sources())
                    .await?
            }
            Decision::Abort => {
                self.advance(i, State::Aborted, State::Aborted.sources())
                    .await?
            }
        }
        Ok(d)
    }

    /// Sends pre-commit to participant `i` (a second send is the same message).
    async fn send_pre_commit(&self, i: usize) -> Result<(), Error> {
        let path = self.pre_commit_path(i);
        let c = &self.client;
        match retry(c, || c.create(&path, b"", CreateOptions::persistent())).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until every participant acked (prepared or beyond) or the transaction is
    /// decided, at most until `deadline`.
    async fn wait_acks(&self, deadline: Instant) -> Result<(), Error> {
        loop {
            let watches = self.watch_states().await?;
            let view = self.view().await?;
            if view.decision.is_some()
                || view.all(|s| matches!(s, State::Prepared | State::Committed))
            {
                return Ok(());
            }
            if !wait_any(watches, Some(deadline)).await? {
                return Ok(());
            }
        }
    }

    /// Becomes the recovery coordinator unless someone is; whether this session is.
    async fn elect(&self, name: &str) -> Result<bool, Error> {
        let path = self.at(RECOVERY);
        let c = &self.client;
        match retry(c, || {
            c.create(&path, name.as_bytes(), CreateOptions::ephemeral())
        })
        .await
        {
            Ok(_) => Ok(true),
            // Someone else's, or ours whose create reply was lost.
            Err(e) if e.code() == ErrorCode::NodeExists => {
                let stat = retry(&self.reads, || self.reads.exists(&path)).await?;
                Ok(stat.is_some_and(|s| s.ephemeral_owner == c.session_id()))
            }
            Err(e) => Err(e),
        }
    }

    /// The termination protocol, as the elected recovery coordinator; participant `me` is
    /// this one. Returns the decision.
    async fn recover(&self, me: usize, timeout: Duration) -> Result<Decision, Error> {
        loop {
            let view = self.view().await?;
            let decided = match termination_rule(&view)? {
                Rule::Decided(d) => Some(d),
                Rule::Abort => self.try_decide(&view, Decision::Abort).await?,
                Rule::Commit => {
                    // Move everyone to prepared, then commit; one that does not ack in time
                    // is treated as failed and learns the commit when it recovers.
                    for (i, (s, _)) in view.states.iter().enumerate() {
                        if *s == State::Uncertain && !view.pre_committed[i] {
                            self.send_pre_commit(i).await?;
                        }
                    }
                    self.advance(me, State::Prepared, &[State::Uncertain])
                        .await?;
                    self.wait_acks(Instant::now() + timeout).await?;
                    let view = self.view().await?;
                    self.try_decide(&view, Decision::Commit).await?
                }
            };
            if let Some(d) = decided {
                return Ok(d);
            }
        }
    }
}

/// The coordinator of three-phase commits under a directory.
///
/// [`Coordinator::decide`] runs the three phases; [`Coordinator::can_commit`],
/// [`Coordinator::pre_commit`] and [`Coordinator::do_commit`] run them one at a time (a
/// coordinator that stops between them is a coordinator that crashed there).
///
/// **Guarantee.** It pre-commits only when every participant voted yes (the pre-commit
/// multi checks each state's version) and commits only from pre-commit; the decision, once
/// written, is the only one. **Disconnect / leader fail-over:** calls retry through the
/// reconnect; a multi whose reply was lost is recognised by `phase`'s new version and the
/// existing decision, so nothing is written twice. Its timeouts keep running meanwhile: a
/// coordinator cut off past the participants' timeout finds they terminated without it.
/// **Session expiry:** calls fail with `SessionExpired`; nothing it wrote was ephemeral,
/// so the participants carry on without it, and a new session can call any phase again.
#[derive(Clone, Debug)]
pub struct Coordinator {
    client: Client,
    dir: String,
}

impl Coordinator {
    /// A coordinator of transactions under `dir`.
    pub fn new(client: Client, dir: &str) -> Result<Coordinator, Error> {
        check_dir(dir)?;
        Ok(Coordinator {
            client,
            dir: dir.to_string(),
        })
    }

    /// Starts transaction `id` among `participants` (can-commit: its node asks them to
    /// vote). `NodeExists` if `id` was used before; `BadArguments` for no participants, a
    /// bad name or a name listed twice.
    pub async fn begin(&self, id: &str, participants: &[&str]) -> Result<(), Error> {
        check_name(id)?;
        if participants.is_empty() {
            return Err(bad("a transaction needs participants"));
        }
        for (i, p) in participants.iter().enumerate() {
            check_name(p)?;
            if participants[..i].contains(p) {
                return Err(bad(format!("participant {p:?} is listed twice")));
            }
        }
        let client = &self.client;
        ensure_path(client, &self.dir).await?;
        let txn = child(&self.dir, id);
        let list = participants.join("\n");
        let persistent = CreateOptions::persistent();
        let mut ops = vec![
            persistent.to_op(&txn, list.as_bytes())?,
            persistent.to_op(&child(&txn, PHASE), Phase::CanCommit.bytes())?,
            persistent.to_op(&child(&txn, STATE), b"")?,
            persistent.to_op(&child(&txn, PRE_COMMIT), b"")?,
        ];
        for p in participants {
            let path = child(&child(&txn, STATE), p);
            ops.push(persistent.to_op(&path, State::Initial.bytes())?);
        }
        let mut retried = false;
        loop {
            match client.multi(ops.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if transient(&e) && alive(client) => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if retried && e.code() == ErrorCode::NodeExists => {
                    // Ours if it lists the same participants.
                    let (d, _) = retry(client, || client.get_data(&txn)).await?;
                    return if d == list.as_bytes() { Ok(()) } else { Err(e) };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Phase one: waits at most `timeout` for every vote. `None`: every participant voted
    /// yes (or the transaction is already pre-committed); go on with
    /// [`Coordinator::pre_commit`]. `Some(decision)`: it is decided, by this call (a no
    /// vote or the timeout aborts) or earlier.
    pub async fn can_commit(&self, id: &str, timeout: Duration) -> Result<Option<Decision>, Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let watches = txn.watch_states().await?;
            let view = txn.view().await?;
            if let Some(d) = view.decision {
                return Ok(Some(d));
            }
            if view.phase == Phase::PreCommit {
                return Ok(None);
            }
            if view.any(State::Aborted) {
                if let Some(d) = txn.try_decide(&view, Decision::Abort).await? {
                    return Ok(Some(d));
                }
                continue;
            }
            if view.all(|s| s == State::Uncertain) {
                return Ok(None);
            }
            if !wait_any(watches, Some(deadline)).await? {
                // Timeout in can-commit: abort.
                if let Some(d) = txn.try_decide(&view, Decision::Abort).await? {
                    return Ok(Some(d));
                }
            }
        }
    }

    /// Phase two: sends pre-commit to the participants `to` (all of them in
    /// [`Coordinator::decide`]; a subset is a coordinator that crashes mid-phase). The
    /// first send moves `phase` to pre-commit, checked against a view where every
    /// participant voted yes. `None`: sent; `Some(decision)`: already decided (the
    /// participants timed out and terminated first). `BadArguments` if a vote is missing
    /// or `to` names a non-participant.
    pub async fn pre_commit(&self, id: &str, to: &[&str]) -> Result<Option<Decision>, Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let to: Vec<usize> = to
            .iter()
            .map(|p| txn.index(p).map_err(|e| bad(e.message().to_string())))
            .collect::<Result<_, _>>()?;
        loop {
            let view = txn.view().await?;
            if let Some(d) = view.decision {
                return Ok(Some(d));
            }
            if view.phase == Phase::PreCommit {
                for &i in &to {
                    txn.send_pre_commit(i).await?;
                }
                return Ok(None);
            }
            if view.any(State::Aborted) {
                if let Some(d) = txn.try_decide(&view, Decision::Abort).await? {
                    return Ok(Some(d));
                }
                continue;
            }
            if !view.all(|s| s == State::Uncertain) {
                return Err(bad(format!(
                    "{}: pre-commit before every participant voted yes",
                    txn.path
                )));
            }
            let mut ops: Vec<MultiOp> = (0..txn.participants.len())
                .map(|i| MultiOp::Check {
                    path: txn.state_path(i),
                    version: view.states[i].1,
                })
                .collect();
            ops.push(MultiOp::SetData {
                path: txn.at(PHASE),
                data: Phase::PreCommit.bytes().to_vec(),
                version: view.phase_version,
            });
            for &i in &to {
                ops.push(CreateOptions::persistent().to_op(&txn.pre_commit_path(i), b"")?);
            }
            match self.client.multi(ops).await {
                Ok(_) => return Ok(None),
                // Applied or not, or raced: the next view tells.
                Err(e) if transient(&e) && alive(&self.client) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) if e.code() == ErrorCode::BadVersion => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Phase three: waits at most `timeout` for every participant's ack, then commits (a
    /// timeout in pre-commit commits too: every vote was yes). Returns the decision that
    /// holds. `BadArguments` before any pre-commit.
    pub async fn do_commit(&self, id: &str, timeout: Duration) -> Result<Decision, Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let view = txn.view().await?;
        if let Some(d) = view.decision {
            return Ok(d);
        }
        if view.phase != Phase::PreCommit {
            return Err(bad(format!("{}: do-commit before pre-commit", txn.path)));
        }
        txn.wait_acks(Instant::now() + timeout).await?;
        loop {
            let view = txn.view().await?;
            if let Some(d) = txn.try_decide(&view, Decision::Commit).await? {
                return Ok(d);
            }
        }
    }

    /// Runs the three phases of `id` (begun with [`Coordinator::begin`]), each waiting at
    /// most `timeout`; returns the decision that holds.
    pub async fn decide(&self, id: &str, timeout: Duration) -> Result<Decision, Error> {
        if let Some(d) = self.can_commit(id, timeout).await? {
            return Ok(d);
        }
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let all: Vec<&str> = txn.participants.iter().map(String::as_str).collect();
        if let Some(d) = self.pre_commit(id, &all).await? {
            return Ok(d);
        }
        self.do_commit(id, timeout).await
    }

    /// The decision of `id`, if written.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, Error> {
        Txn::open(&self.client, &self.dir, id)
            .await?
            .read_decision()
            .await
    }
}

/// A participant of three-phase commits under a directory.
///
/// A participant votes ([`Participant::vote`]), then [`Participant::outcome`] follows the
/// protocol to the decision: it acks a pre-commit, and on a timeout in uncertain or
/// prepared runs the termination protocol (electing a recovery coordinator among the
/// participants that timed out). A restarted participant (a new session with the same
/// name) calls [`Participant::outcome`] again: it reads its state back from the tree and
/// rejoins (from initial it aborts, as a participant that never voted; from uncertain or
/// prepared it waits and terminates; decided, it returns the decision).
///
/// **Guarantee.** Its state moves only forward, each step a versioned set written before
/// it acts; it commits or aborts only as the one decision says. **Disconnect / leader
/// fail-over:** calls retry; watches are re-registered by the client. Its timeout keeps
/// running while disconnected, so it may start the termination protocol once back, which is
/// safe (every write is conditioned on what it read). **Session expiry:** calls fail with
/// `SessionExpired`; if it was the recovery coordinator, its `recovery` node goes with the
/// session and another participant takes over; a new session carries on with
/// [`Participant::outcome`].
#[derive(Clone, Debug)]
pub struct Participant {
    client: Client,
    dir: String,
    name: String,
}

impl Participant {
    /// Participant `name` of transactions under `dir`.
    pub fn new(client: Client, dir: &str, name: &str) -> Result<Participant, Error> {
        check_dir(dir)?;
        check_name(name)?;
        Ok(Participant {
            client,
            dir: dir.to_string(),
            name: name.to_string(),
        })
    }

    /// Waits at most `timeout` for transaction `id` to begin (the can-commit request);
    /// whether it did. A participant that gives up here has written nothing; it is in
    /// initial if the transaction begins later, and [`Participant::outcome`] aborts it.
    pub async fn wait_begun(&self, id: &str, timeout: Duration) -> Result<bool, Error> {
        check_name(id)?;
        let client = &self.client;
        let pre_commit = child(&child(&self.dir, id), PRE_COMMIT);
        let deadline = Instant::now() + timeout;
        loop {
            let (stat, watch) = retry(client, || client.exists_w(&pre_commit)).await?;
            if stat.is_some() {
                return Ok(true);
            }
            if !wait_any(vec![watch], Some(deadline)).await? {
                return Ok(false);
            }
        }
    }

    /// Votes on `id`: yes moves this participant from initial to uncertain; no moves it to
    /// aborted and writes the abort decision (nothing can commit without this vote). A
    /// repeated vote is fine if it is the same; `BadVersion` if it differs or the
    /// participant moved on otherwise. `NoNode` if the transaction has not begun or does
    /// not list this participant.
    pub async fn vote(&self, id: &str, yes: bool) -> Result<(), Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let me = txn.index(&self.name)?;
        let to = if yes {
            State::Uncertain
        } else {
            State::Aborted
        };
        let view = txn.view().await?;
        let now = view.states[me].0;
        if yes && matches!(now, State::Prepared | State::Committed) {
            return Ok(());
        }
        txn.advance(me, to, &[State::Initial]).await?;
        if !yes {
            let view = txn.view().await?;
            txn.try_decide(&view, Decision::Abort).await?;
        }
        Ok(())
    }

    /// Follows `id` to its decision, as this participant's state requires: from initial
    /// (it never voted: q's timeout) it aborts; from uncertain it acks a pre-commit when one
    /// comes; in uncertain or prepared with nothing new for `timeout` it runs the
    /// termination protocol. Records the decision in its state and returns it. Waits as
    /// long as the protocol needs: without a quorum of the ensemble it cannot end (see the
    /// module doc).
    pub async fn outcome(&self, id: &str, timeout: Duration) -> Result<Decision, Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let me = txn.index(&self.name)?;
        let watched = [txn.at(DECISION), txn.pre_commit_path(me), txn.at(RECOVERY)];
        let mut deadline = Instant::now() + timeout;
        let mut timed_out = false;
        loop {
            let watches = txn.watch(&watched).await?;
            let view = txn.view().await?;
            if let Some(d) = view.decision {
                return txn.record(me, d).await;
            }
            match view.states[me].0 {
                // Never voted (q's timeout, or restarted in q), or aborted before writing
                // the decision: abort.
                State::Initial | State::Aborted => {
                    txn.advance(me, State::Aborted, &[State::Initial]).await?;
                    if let Some(d) = txn.try_decide(&view, Decision::Abort).await? {
                        return txn.record(me, d).await;
                    }
                    continue;
                }
                State::Committed => {
                    return Err(inconsistent(format!(
                        "{} committed without a decision",
                        txn.state_path(me)
                    )));
                }
                State::Uncertain if view.pre_committed[me] => {
                    // The ack; prepared has its own timeout.
                    txn.advance(me, State::Prepared, &[State::Uncertain])
                        .await?;
                    deadline = Instant::now() + timeout;
                    continue;
                }
                State::Uncertain | State::Prepared => {}
            }
            // Free, or held by this session (an earlier call that was cancelled).
            let free = view.recovery.is_none_or(|s| s == self.client.session_id());
            if timed_out && free {
                if txn.elect(&self.name).await? {
                    let d = txn.recover(me, timeout).await;
                    // Leave the role; should this fail, the node goes with the session.
                    let _ = delete_quietly(&self.client, &txn.at(RECOVERY)).await;
                    return txn.record(me, d?).await;
                }
                continue;
            }
            // Someone else recovering: wait for it (or its session's end) a timeout at a time.
            if !wait_any(watches, Some(deadline)).await? {
                timed_out = true;
                deadline = Instant::now() + timeout;
            }
        }
    }

    /// This participant's state in `id`.
    pub async fn state(&self, id: &str) -> Result<State, Error> {
        let txn = Txn::open(&self.client, &self.dir, id).await?;
        let me = txn.index(&self.name)?;
        Ok(txn.view().await?.states[me].0)
    }

    /// The decision of `id`, if written.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, Error> {
        Txn::open(&self.client, &self.dir, id)
            .await?
            .read_decision()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: Phase, decision: Option<Decision>, states: &[State]) -> View {
        View {
            phase,
            phase_version: 0,
            decision,
            states: states.iter().map(|s| (*s, 0)).collect(),
            pre_committed: vec![false; states.len()],
            recovery: None,
        }
    }

    #[test]
    fn termination_rules_follow_skeen() {
        use Phase::*;
        use State::*;
        let rule = |p, d, s: &[State]| termination_rule(&view(p, d, s));
        // Decided: that.
        assert_eq!(
            rule(DoCommit, Some(Decision::Commit), &[Uncertain, Prepared]).unwrap(),
            Rule::Decided(Decision::Commit)
        );
        // Any aborted or still initial: abort.
        assert_eq!(
            rule(CanCommit, None, &[Uncertain, Aborted]).unwrap(),
            Rule::Abort
        );
        assert_eq!(
            rule(CanCommit, None, &[Uncertain, Initial]).unwrap(),
            Rule::Abort
        );
        // Any prepared (the coordinator included): pre-commit everyone, commit.
        assert_eq!(
            rule(PreCommit, None, &[Uncertain, Prepared]).unwrap(),
            Rule::Commit
        );
        assert_eq!(
            rule(PreCommit, None, &[Uncertain, Uncertain]).unwrap(),
            Rule::Commit
        );
        // All uncertain, no pre-commit: abort.
        assert_eq!(
            rule(CanCommit, None, &[Uncertain, Uncertain, Uncertain]).unwrap(),
            Rule::Abort
        );
        // States the protocol never produces together are not decided on.
        for (p, s) in [
            (PreCommit, vec![Prepared, Aborted]),
            (PreCommit, vec![Uncertain, Initial]),
            (CanCommit, vec![Prepared, Uncertain]),
            (PreCommit, vec![Committed, Prepared]),
        ] {
            assert_eq!(
                rule(p, None, &s).unwrap_err().code(),
                ErrorCode::DataInconsistency,
                "{p:?} {s:?}"
            );
        }
    }

    #[test]
    fn encodings_and_the_state_machine() {
        for s in [
            State::Initial,
            State::Uncertain,
            State::Prepared,
            State::Committed,
            State::Aborted,
        ] {
            assert_eq!(State::parse("/x", s.bytes()).unwrap(), s);
            // Forward only: nothing leads back to initial, and no state follows itself.
            assert!(!s.sources().contains(&s));
            assert!(!State::Initial.sources().contains(&s));
        }
        // Prepared never aborts; committed and aborted are final.
        assert!(!State::Aborted.sources().contains(&State::Prepared));
        for to in [State::Uncertain, State::Prepared, State::Aborted] {
            assert!(!to.sources().contains(&State::Committed));
        }
        assert_eq!(
            State::parse("/x", b"garbage").unwrap_err().code(),
            ErrorCode::DataInconsistency
        );
        for p in [
            Phase::CanCommit,
            Phase::PreCommit,
            Phase::DoCommit,
            Phase::Abort,
        ] {
            assert_eq!(Phase::parse("/x", p.bytes()).unwrap(), p);
        }
        assert!(check_decided(Phase::DoCommit, Some(Decision::Abort)).is_err());
        assert!(check_decided(Phase::Abort, None).is_err());
        assert!(check_decided(Phase::CanCommit, Some(Decision::Abort)).is_err());
        assert!(check_name("a/b").is_err() && check_name("").is_err());
    }
}
