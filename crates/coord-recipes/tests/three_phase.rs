//! Three-phase commit against a real 3-server ensemble: all-yes commits with 3 and 5
//! participants, a no or a silent participant aborts, the participants terminate without
//! a coordinator that crashed before or after pre-committing some of them, a participant
//! that crashed after voting yes learns the decision on restart, a ZAB leader SIGKILL mid
//! protocol, and many contending transactions with crashing coordinators, checked on what
//! each participant recorded.

mod common;

use common::{cluster, retry, session};
use coord_client::{Client, CreateOptions, Error, ErrorCode};
use coord_recipes::three_phase::{Coordinator, Decision, Participant, State};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const DIR: &str = "/3pc";
/// The participants' timeout where the test wants them to terminate the protocol.
const SHORT: Duration = Duration::from_millis(800);
/// Long enough that nobody times out while the ensemble is healthy.
const LONG: Duration = Duration::from_secs(20);

async fn participants(cluster: &coord_testkit::Cluster, names: &[&str]) -> Vec<Participant> {
    let mut out = Vec::new();
    for n in names {
        out.push(Participant::new(session(cluster).await, DIR, n).unwrap());
    }
    out
}

/// A participant that waits for `id`, votes, and follows it to its decision.
fn voter(p: Participant, id: &str, yes: bool, timeout: Duration) -> JoinHandle<Decision> {
    let id = id.to_string();
    tokio::spawn(async move {
        assert!(p.wait_begun(&id, LONG).await.unwrap(), "{id} never began");
        p.vote(&id, yes).await.unwrap();
        p.outcome(&id, timeout).await.unwrap()
    })
}

/// Each participant follows `id` (already voted) to its decision.
fn follow(ps: &[Participant], id: &str, timeout: Duration) -> Vec<JoinHandle<Decision>> {
    ps.iter()
        .map(|p| {
            let (p, id) = (p.clone(), id.to_string());
            tokio::spawn(async move { p.outcome(&id, timeout).await.unwrap() })
        })
        .collect()
}

async fn all_end_with(handles: Vec<JoinHandle<Decision>>, want: Decision, what: &str) {
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), want, "{what}: participant {i}");
    }
}

/// The error code of a call that must fail.
fn code<T>(r: Result<T, Error>) -> ErrorCode {
    r.map(|_| ()).unwrap_err().code()
}

async fn states(ps: &[Participant], id: &str) -> Vec<State> {
    let mut out = Vec::new();
    for p in ps {
        out.push(p.state(id).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_yes_commits_and_a_no_or_a_silent_participant_aborts() {
    let (cluster, _) = cluster().await;
    let coord = Coordinator::new(session(&cluster).await, DIR).unwrap();
    let five = ["p0", "p1", "p2", "p3", "p4"];
    let ps = participants(&cluster, &five).await;

    // All yes, with 3 and with 5 participants: commit, and every state says committed.
    for (id, n) in [("yes-3", 3), ("yes-5", 5)] {
        coord.begin(id, &five[..n]).await.unwrap();
        let vs: Vec<_> = ps[..n]
            .iter()
            .map(|p| voter(p.clone(), id, true, LONG))
            .collect();
        assert_eq!(coord.decide(id, LONG).await.unwrap(), Decision::Commit);
        all_end_with(vs, Decision::Commit, id).await;
        assert_eq!(states(&ps[..n], id).await, vec![State::Committed; n]);
        assert_eq!(coord.decision(id).await.unwrap(), Some(Decision::Commit));
    }

    // One no among four: everyone aborts, the coordinator too.
    coord.begin("one-no", &five[..4]).await.unwrap();
    let vs: Vec<_> = ps[..4]
        .iter()
        .enumerate()
        .map(|(i, p)| voter(p.clone(), "one-no", i != 2, LONG))
        .collect();
    assert_eq!(coord.decide("one-no", LONG).await.unwrap(), Decision::Abort);
    all_end_with(vs, Decision::Abort, "one-no").await;
    assert_eq!(states(&ps[..4], "one-no").await, vec![State::Aborted; 4]);

    // p2 never votes: the coordinator's vote timeout aborts; p2, in initial, aborts too.
    coord.begin("silent", &five[..3]).await.unwrap();
    let vs: Vec<_> = ps[..2]
        .iter()
        .map(|p| voter(p.clone(), "silent", true, LONG))
        .collect();
    assert_eq!(
        coord
            .decide("silent", Duration::from_millis(600))
            .await
            .unwrap(),
        Decision::Abort
    );
    all_end_with(vs, Decision::Abort, "silent").await;
    assert_eq!(ps[2].state("silent").await.unwrap(), State::Initial);
    assert_eq!(
        ps[2].outcome("silent", LONG).await.unwrap(),
        Decision::Abort
    );
    assert_eq!(ps[2].state("silent").await.unwrap(), State::Aborted);
    // A vote cannot come after the participant aborted, nor change.
    assert_eq!(
        ps[2].vote("silent", true).await.unwrap_err().code(),
        ErrorCode::BadVersion
    );
    assert_eq!(
        ps[0].vote("yes-3", false).await.unwrap_err().code(),
        ErrorCode::BadVersion
    );
    ps[0].vote("yes-3", true).await.unwrap(); // the same vote again is fine

    // A participant that never votes, with the coordinator waiting in can-commit: its own
    // q timeout (outcome without a vote) aborts before the coordinator's timeout.
    coord.begin("q-timeout", &five[..2]).await.unwrap();
    ps[0].vote("q-timeout", true).await.unwrap();
    let c = coord.clone();
    let decide = tokio::spawn(async move { c.decide("q-timeout", LONG).await.unwrap() });
    assert_eq!(
        ps[1].outcome("q-timeout", LONG).await.unwrap(),
        Decision::Abort
    );
    assert_eq!(decide.await.unwrap(), Decision::Abort);
    assert_eq!(
        ps[0].outcome("q-timeout", LONG).await.unwrap(),
        Decision::Abort
    );

    // Bad input gets a clear error, never a panic.
    assert_eq!(
        code(coord.begin("yes-3", &five[..3]).await),
        ErrorCode::NodeExists
    );
    assert_eq!(
        code(coord.begin("a/b", &five).await),
        ErrorCode::BadArguments
    );
    assert_eq!(code(coord.begin("t", &[]).await), ErrorCode::BadArguments);
    assert_eq!(
        code(coord.begin("t", &["p0", "p0"]).await),
        ErrorCode::BadArguments
    );
    assert_eq!(
        code(coord.begin("t", &["p0", ""]).await),
        ErrorCode::BadArguments
    );
    assert_eq!(
        code(Participant::new(session(&cluster).await, DIR, "x/y")),
        ErrorCode::BadArguments
    );
    assert_eq!(
        code(Coordinator::new(session(&cluster).await, "3pc")),
        ErrorCode::InvalidPath
    );
    assert_eq!(
        code(ps[0].vote("never-begun", true).await),
        ErrorCode::NoNode
    );
    assert_eq!(code(ps[4].vote("yes-3", true).await), ErrorCode::NoNode);
    coord.begin("early", &five[..2]).await.unwrap();
    assert_eq!(
        code(coord.pre_commit("early", &["p0"]).await),
        ErrorCode::BadArguments
    );
    assert_eq!(
        code(coord.do_commit("early", LONG).await),
        ErrorCode::BadArguments
    );
    ps[0].vote("early", true).await.unwrap();
    ps[1].vote("early", true).await.unwrap();
    assert_eq!(
        code(coord.pre_commit("early", &["p9"]).await),
        ErrorCode::BadArguments
    );
    // A corrupt state node is reported, not decided on.
    let raw = session(&cluster).await;
    raw.set_data("/3pc/early/state/p1", b"maybe", None)
        .await
        .unwrap();
    assert_eq!(
        code(ps[1].state("early").await),
        ErrorCode::DataInconsistency
    );
    assert_eq!(
        code(ps[0].outcome("early", SHORT).await),
        ErrorCode::DataInconsistency
    );
    assert_eq!(
        code(coord.can_commit("early", SHORT).await),
        ErrorCode::DataInconsistency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_terminate_without_a_crashed_coordinator() {
    let (cluster, _) = cluster().await;
    let names = ["p0", "p1", "p2", "p3"];
    let ps = participants(&cluster, &names).await;

    // The coordinator crashes (its session closed) after pre-committing p0 only: p0 acks,
    // the others time out uncertain; the recovery coordinator finds p0 prepared, moves
    // everyone to prepared and commits.
    let crashed = session(&cluster).await;
    let coord = Coordinator::new(crashed.clone(), DIR).unwrap();
    coord.begin("after-pre", &names).await.unwrap();
    for p in &ps {
        p.vote("after-pre", true).await.unwrap();
    }
    assert_eq!(coord.can_commit("after-pre", LONG).await.unwrap(), None);
    assert_eq!(coord.pre_commit("after-pre", &["p0"]).await.unwrap(), None);
    crashed.close().await.unwrap();
    all_end_with(
        follow(&ps, "after-pre", SHORT),
        Decision::Commit,
        "after-pre",
    )
    .await;
    assert_eq!(states(&ps, "after-pre").await, vec![State::Committed; 4]);
    let observer = Coordinator::new(session(&cluster).await, DIR).unwrap();
    assert_eq!(
        observer.decision("after-pre").await.unwrap(),
        Some(Decision::Commit)
    );

    // The coordinator crashes (its client dropped) after collecting every yes, before any
    // pre-commit: all uncertain, so the termination protocol aborts. p3 crashed too after
    // voting; restarted (a new session with its name) it learns the abort.
    let doomed = session(&cluster).await;
    let coord = Coordinator::new(doomed.clone(), DIR).unwrap();
    coord.begin("before-pre", &names).await.unwrap();
    let p3_crashed = Participant::new(session(&cluster).await, DIR, "p3").unwrap();
    for p in ps[..3].iter().chain([&p3_crashed]) {
        p.vote("before-pre", true).await.unwrap();
    }
    assert_eq!(coord.can_commit("before-pre", LONG).await.unwrap(), None);
    drop(coord);
    doomed.close().await.unwrap();
    drop(p3_crashed);
    all_end_with(
        follow(&ps[..3], "before-pre", SHORT),
        Decision::Abort,
        "before-pre",
    )
    .await;
    let p3 = Participant::new(session(&cluster).await, DIR, "p3").unwrap();
    assert_eq!(p3.state("before-pre").await.unwrap(), State::Uncertain);
    assert_eq!(
        p3.outcome("before-pre", SHORT).await.unwrap(),
        Decision::Abort
    );

    // A live coordinator, a participant that crashes after voting yes: the coordinator
    // times out waiting for its ack and commits; restarted, it learns the commit.
    let coord = Coordinator::new(session(&cluster).await, DIR).unwrap();
    coord.begin("crash-p2", &names).await.unwrap();
    let p2_session = session(&cluster).await;
    Participant::new(p2_session.clone(), DIR, "p2")
        .unwrap()
        .vote("crash-p2", true)
        .await
        .unwrap();
    p2_session.close().await.unwrap();
    let others = [ps[0].clone(), ps[1].clone(), ps[3].clone()];
    let vs: Vec<_> = others
        .iter()
        .map(|p| voter(p.clone(), "crash-p2", true, LONG))
        .collect();
    assert_eq!(
        coord.decide("crash-p2", SHORT).await.unwrap(),
        Decision::Commit
    );
    all_end_with(vs, Decision::Commit, "crash-p2").await;
    let p2 = Participant::new(session(&cluster).await, DIR, "p2").unwrap();
    assert_eq!(p2.state("crash-p2").await.unwrap(), State::Uncertain);
    assert_eq!(
        p2.outcome("crash-p2", SHORT).await.unwrap(),
        Decision::Commit
    );
    assert_eq!(p2.state("crash-p2").await.unwrap(), State::Committed);

    // An elected recovery coordinator that hangs: the others wait for it, and take over
    // when its session ends (its ephemeral `recovery` node goes with it).
    let coord_session = session(&cluster).await;
    let coord = Coordinator::new(coord_session.clone(), DIR).unwrap();
    coord.begin("hung-recovery", &names[..3]).await.unwrap();
    for p in &ps[..3] {
        p.vote("hung-recovery", true).await.unwrap();
    }
    assert_eq!(coord.can_commit("hung-recovery", LONG).await.unwrap(), None);
    assert_eq!(
        coord.pre_commit("hung-recovery", &["p1"]).await.unwrap(),
        None
    );
    coord_session.close().await.unwrap();
    let hung = session(&cluster).await;
    hung.create(
        "/3pc/hung-recovery/recovery",
        b"p9",
        CreateOptions::ephemeral(),
    )
    .await
    .unwrap();
    let followers = follow(&ps[..3], "hung-recovery", SHORT);
    tokio::time::sleep(SHORT * 3).await;
    assert_eq!(
        ps[0].decision("hung-recovery").await.unwrap(),
        None,
        "nobody decides while the elected recovery coordinator lives"
    );
    hung.close().await.unwrap();
    all_end_with(followers, Decision::Commit, "hung-recovery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_mid_protocol_leaves_one_decision() {
    let (mut cluster, leader) = cluster().await;
    let names = ["p0", "p1", "p2"];
    let ps = participants(&cluster, &names).await;

    // The ensemble's leader SIGKILLed between can-commit and pre-commit; the coordinator
    // carries on through the fail-over and everyone commits.
    let coord = Coordinator::new(session(&cluster).await, DIR).unwrap();
    coord.begin("kill-1", &names).await.unwrap();
    let vs: Vec<_> = ps
        .iter()
        .map(|p| voter(p.clone(), "kill-1", true, LONG))
        .collect();
    assert_eq!(coord.can_commit("kill-1", LONG).await.unwrap(), None);
    cluster.kill(leader);
    assert_eq!(coord.pre_commit("kill-1", &names).await.unwrap(), None);
    assert_eq!(
        coord.do_commit("kill-1", LONG).await.unwrap(),
        Decision::Commit
    );
    all_end_with(vs, Decision::Commit, "kill-1").await;

    // Back to three servers; then the coordinator crashes after pre-committing p2 and the
    // new leader is SIGKILLed while the participants run the termination protocol.
    cluster.restart(leader).unwrap();
    let leader = cluster.wait_stable().await;
    let crashed = session(&cluster).await;
    let coord = Coordinator::new(crashed.clone(), DIR).unwrap();
    coord.begin("kill-2", &names).await.unwrap();
    for p in &ps {
        retry(|| p.vote("kill-2", true)).await.unwrap();
    }
    assert_eq!(coord.can_commit("kill-2", LONG).await.unwrap(), None);
    assert_eq!(coord.pre_commit("kill-2", &["p2"]).await.unwrap(), None);
    crashed.close().await.unwrap();
    let followers = follow(&ps, "kill-2", SHORT);
    tokio::time::sleep(SHORT).await;
    cluster.kill(leader);
    all_end_with(followers, Decision::Commit, "kill-2").await;
    for p in &ps {
        assert_eq!(retry(|| p.state("kill-2")).await.unwrap(), State::Committed);
    }
}

/// How a transaction of the contention test goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Healthy,
    /// Its first participant votes no.
    OneNo,
    /// The coordinator's task is aborted after a random delay, wherever it is.
    TaskAborted(u64),
    /// The coordinator pre-commits its first participant only, then its session closes.
    CrashAfterPreCommit,
    /// The coordinator collects the votes, then its session closes.
    CrashBeforePreCommit,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contending_transactions_end_with_one_decision_each() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (cluster, _) = cluster().await;
    let names = ["p0", "p1", "p2", "p3", "p4"];
    // One session per participant, shared by all its transactions.
    let ps = participants(&cluster, &names).await;
    let coordinators = session(&cluster).await;
    // What each participant recorded: (txn, participant) → decision.
    let recorded: Arc<Mutex<BTreeMap<(String, String), Decision>>> = Arc::default();
    let timeout = Duration::from_millis(1500);

    let mut txns = Vec::new();
    let mut work = Vec::new();
    for t in 0..14 {
        let id = format!("c{t}");
        let n = rng.random_range(3..=4);
        let mut members: Vec<usize> = (0..names.len()).collect();
        for i in 0..members.len() {
            let j = rng.random_range(i..members.len());
            members.swap(i, j);
        }
        members.truncate(n);
        let plan = match rng.random_range(0..5) {
            0 => Plan::OneNo,
            1 => Plan::TaskAborted(rng.random_range(0..300)),
            2 => Plan::CrashAfterPreCommit,
            3 => Plan::CrashBeforePreCommit,
            _ => Plan::Healthy,
        };
        let list: Vec<&str> = members.iter().map(|&i| names[i]).collect();
        let client = match plan {
            Plan::CrashAfterPreCommit | Plan::CrashBeforePreCommit => session(&cluster).await,
            _ => coordinators.clone(),
        };
        let coord = Coordinator::new(client.clone(), DIR).unwrap();
        coord.begin(&id, &list).await.unwrap();
        for (k, &i) in members.iter().enumerate() {
            let (p, id, rec) = (ps[i].clone(), id.clone(), recorded.clone());
            let yes = !(plan == Plan::OneNo && k == 0);
            work.push(tokio::spawn(async move {
                let d = voter(p, &id, yes, timeout).await.unwrap();
                rec.lock().unwrap().insert((id, names[i].to_string()), d);
            }));
        }
        let first = list[0].to_string();
        let cid = id.clone();
        let run = tokio::spawn(async move {
            match plan {
                Plan::Healthy | Plan::OneNo | Plan::TaskAborted(_) => {
                    coord.decide(&cid, timeout).await.unwrap();
                }
                Plan::CrashAfterPreCommit | Plan::CrashBeforePreCommit => {
                    if coord.can_commit(&cid, timeout).await.unwrap().is_none()
                        && plan == Plan::CrashAfterPreCommit
                    {
                        coord.pre_commit(&cid, &[first.as_str()]).await.unwrap();
                    }
                    client.close().await.unwrap();
                }
            }
        });
        if let Plan::TaskAborted(ms) = plan {
            let abort = run.abort_handle();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                abort.abort();
            });
        }
        txns.push((id, list.len(), plan, run));
    }
    for w in work {
        w.await.unwrap();
    }
    let recorded = recorded.lock().unwrap().clone();
    let raw: Client = session(&cluster).await;
    let mut tally = BTreeMap::<&str, usize>::new();
    for (id, n, plan, run) in txns {
        match run.await {
            Ok(()) => {}
            Err(e) if e.is_cancelled() => {}
            Err(e) => panic!("coordinator of {id}: {e}"),
        }
        let got: Vec<Decision> = recorded
            .iter()
            .filter(|((t, _), _)| *t == id)
            .map(|(_, d)| *d)
            .collect();
        assert_eq!(got.len(), n, "{id}: every participant recorded a decision");
        // One decision per transaction: nobody committed what another aborted.
        assert!(got.iter().all(|d| *d == got[0]), "{id} ({plan:?}): {got:?}");
        let (d, _) = raw.get_data(&format!("{DIR}/{id}/decision")).await.unwrap();
        let tree = if d == b"commit" {
            Decision::Commit
        } else {
            Decision::Abort
        };
        assert_eq!(
            got[0], tree,
            "{id}: the participants follow the decision node"
        );
        // Commit if and only if the coordinator got as far as a pre-commit.
        let (sent, _) = raw
            .get_children(&format!("{DIR}/{id}/pre-commit"))
            .await
            .unwrap();
        assert_eq!(
            got[0] == Decision::Commit,
            !sent.is_empty(),
            "{id} ({plan:?}): pre-commits sent {sent:?}"
        );
        match plan {
            Plan::OneNo | Plan::CrashBeforePreCommit => {
                assert_eq!(got[0], Decision::Abort, "{id} ({plan:?})")
            }
            Plan::CrashAfterPreCommit if !sent.is_empty() => {
                assert_eq!(got[0], Decision::Commit, "{id} ({plan:?})")
            }
            _ => {}
        }
        // Every participant's state node ends committed or aborted as recorded.
        for name in names {
            let path = format!("{DIR}/{id}/state/{name}");
            if let Ok((s, _)) = raw.get_data(&path).await {
                let want: &[u8] = match got[0] {
                    Decision::Commit => b"committed",
                    Decision::Abort => b"aborted",
                };
                assert_eq!(s, want, "{path}");
            }
        }
        println!("{id} {plan:?} among {n}: {:?}", got[0]);
        *tally
            .entry(match got[0] {
                Decision::Commit => "commit",
                Decision::Abort => "abort",
            })
            .or_default() += 1;
    }
    println!("decisions: {tally:?}");
}
