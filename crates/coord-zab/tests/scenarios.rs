//! Scenario tests: each reproduces one situation of the protocol by steering the simulator
//! (crashes, partitions, dropped messages, stalled disks) with the invariant checkers on,
//! then heals and checks convergence. `COORD_SIM_TRACE=1` prints the trace of a failure.

mod sim;

use coord_zab::{Role, ZabMessage, Zxid};
use sim::{Sim, SimConfig, SimResult};

fn check(sim: &Sim, test: &str, r: SimResult) {
    if let Err(e) = r {
        panic!("{}", sim.failure(&format!("scenarios {test}"), &e));
    }
}

/// Boots an ensemble and waits until it has an established leader and is quiescent.
fn boot(seed: u64, cfg: SimConfig) -> Sim {
    let mut sim = Sim::new(seed, cfg);
    let r = sim.run_until(30_000, |s| s.quiescent());
    check(&sim, "boot", r);
    sim
}

/// Proposes `n` txns at the leader and waits until everyone delivered them.
fn commit(sim: &mut Sim, n: usize) -> SimResult<Vec<Zxid>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let l = sim.leader().ok_or("no leader")?;
        out.extend(sim.propose(l)?);
        sim.run_for(3)?;
    }
    sim.run_until(30_000, |s| s.quiescent())?;
    Ok(out)
}

fn followers(sim: &Sim, leader: u64) -> Vec<u64> {
    sim.voters
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect()
}

fn nowhere(sim: &Sim, zxid: Zxid) -> SimResult {
    for n in &sim.nodes {
        if n.disk.log.iter().any(|r| r.0 == zxid) {
            return Err(format!("{zxid} still on server {}'s disk", n.id));
        }
    }
    if sim.inv.position_after(zxid).is_some() {
        return Err(format!("{zxid} was delivered"));
    }
    Ok(())
}

#[test]
fn leader_crash_after_quorum_ack_before_commit() {
    let mut sim = boot(11, SimConfig::default());
    let r = (|| {
        commit(&mut sim, 3)?;
        let l = sim.leader().ok_or("no leader")?;
        let z = sim.propose(l)?.ok_or("not accepted")?;
        // The leader delivers z the moment a quorum acked; its COMMITs are still in flight.
        sim.run_until(5_000, |s| s.node(l).tree.last_applied() >= z)?;
        for f in followers(&sim, l) {
            assert!(
                sim.node(f).tree.last_applied() < z,
                "no COMMIT reached {f} yet"
            );
        }
        sim.crash(l, Some(0))?;
        sim.run_until(30_000, |s| s.quiescent())?;
        for f in followers(&sim, l) {
            assert!(sim.node(f).tree.last_applied() >= z, "{z} survived on {f}");
        }
        sim.settle()
    })();
    check(&sim, "leader_crash_after_quorum_ack_before_commit", r);
}

#[test]
fn leader_crash_after_proposing_to_no_one_discards_the_txn_everywhere() {
    let mut sim = boot(12, SimConfig::default());
    sim.record_sent = true;
    let r = (|| {
        commit(&mut sim, 3)?;
        let l = sim.leader().ok_or("no leader")?;
        sim.drop_filter = Some(Box::new(move |from, _, m| {
            from == l && matches!(m, ZabMessage::Proposal { .. })
        }));
        let z = sim.propose(l)?.ok_or("not accepted")?;
        // On the old leader's disk, and nowhere else.
        sim.run_until(5_000, |s| s.node(l).disk.covers(z))?;
        sim.crash(l, Some(0))?;
        sim.drop_filter = None;
        sim.run_until(30_000, |s| s.quiescent())?;
        commit(&mut sim, 5)?;
        sim.restart(l)?;
        sim.run_until(30_000, |s| s.quiescent())?;
        assert!(
            sim.sent
                .iter()
                .any(|(_, _, to, k)| *to == l && *k == "Trunc"),
            "the returning leader was TRUNCed"
        );
        nowhere(&sim, z)?;
        sim.settle()
    })();
    check(&sim, "leader_crash_after_proposing_to_no_one", r);
}

#[test]
fn follower_with_uncommitted_old_epoch_tail_rejoins_and_truncates() {
    let mut sim = boot(13, SimConfig::default());
    sim.record_sent = true;
    let r = (|| {
        commit(&mut sim, 3)?;
        let l = sim.leader().ok_or("no leader")?;
        let [f1, f2] = followers(&sim, l)[..] else {
            return Err("3 voters".into());
        };
        // f1 logs the proposal but its ACK is lost; f2 never sees it; the leader's own
        // fsync is stuck, so the proposal dies with it.
        sim.drop_filter = Some(Box::new(move |from, to, m| {
            (from == f1 && to == l && matches!(m, ZabMessage::Ack { .. }))
                || (from == l && to == f2 && matches!(m, ZabMessage::Proposal { .. }))
        }));
        sim.node_mut(l).disk.stalled = true;
        let z = sim.propose(l)?.ok_or("not accepted")?;
        sim.run_until(5_000, |s| s.node(f1).disk.covers(z))?;
        sim.crash(l, Some(0))?;
        sim.crash(f1, Some(0))?;
        sim.drop_filter = None;
        sim.restart(l)?;
        sim.run_until(30_000, |s| s.quiescent())?;
        commit(&mut sim, 5)?;
        assert!(sim.node(f1).disk.covers(z), "f1 still holds the old tail");
        sim.restart(f1)?;
        sim.run_until(30_000, |s| s.quiescent())?;
        assert!(
            sim.sent
                .iter()
                .any(|(_, _, to, k)| *to == f1 && *k == "Trunc"),
            "f1 was TRUNCed"
        );
        nowhere(&sim, z)?;
        sim.settle()
    })();
    check(&sim, "follower_with_uncommitted_old_epoch_tail_rejoins", r);
}

fn far_behind_follower_snap(seed: u64, crash_before_durable: bool) {
    let cfg = SimConfig {
        max_diff: 4,
        ..SimConfig::default()
    };
    let mut sim = boot(seed, cfg);
    sim.record_sent = true;
    let r = (|| {
        let l = sim.leader().ok_or("no leader")?;
        let f = followers(&sim, l)[0];
        sim.crash(f, Some(0))?;
        for _ in 0..3 {
            commit(&mut sim, 10)?;
        }
        sim.restart(f)?;
        let installing = |s: &Sim| {
            let d = &s.node(f).disk;
            d.snapshot.is_some()
                || d.pending.iter().any(|p| {
                    p.1.iter()
                        .any(|op| matches!(op, coord_zab::StorageOp::InstallSnapshot(..)))
                })
        };
        if crash_before_durable {
            sim.run_until(10_000, installing)?;
        } else {
            sim.run_until(10_000, |s| s.node(f).disk.snapshot.is_some())?;
        }
        assert!(
            sim.sent
                .iter()
                .any(|(_, _, to, k)| *to == f && *k == "Snap")
        );
        sim.crash(f, Some(0))?;
        sim.restart(f)?;
        sim.run_until(30_000, |s| s.quiescent())?;
        commit(&mut sim, 3)?;
        sim.settle()
    })();
    check(
        &sim,
        "far_behind_follower_takes_snap_and_crashes_right_after",
        r,
    );
}

#[test]
fn far_behind_follower_takes_snap_and_crashes_right_after() {
    far_behind_follower_snap(14, true);
    far_behind_follower_snap(15, false);
}

#[test]
fn whole_ensemble_restarts() {
    for seed in 16..24 {
        let mut sim = boot(seed, SimConfig::default());
        let r = (|| {
            commit(&mut sim, 10)?;
            let l = sim.leader().ok_or("no leader")?;
            for _ in 0..5 {
                sim.propose(l)?;
            }
            let ms = sim.rng_range(0, 30);
            sim.run_for(ms)?;
            for id in sim.ids() {
                sim.crash(id, None)?;
            }
            for id in sim.ids() {
                sim.restart(id)?;
            }
            sim.run_until(30_000, |s| s.quiescent())?;
            commit(&mut sim, 3)?;
            sim.settle()
        })();
        check(&sim, "whole_ensemble_restarts", r);
    }
}

#[test]
fn partitioned_old_leader_returns_after_new_leader_committed_writes() {
    let mut sim = boot(25, SimConfig::default());
    sim.record_sent = true;
    let r = (|| {
        commit(&mut sim, 3)?;
        let old = sim.leader().ok_or("no leader")?;
        sim.partition(&[old])?;
        let stale = sim.propose(old)?.ok_or("not accepted")?;
        sim.run_until(30_000, |s| {
            s.ids().into_iter().any(|id| {
                id != old
                    && s.status(id)
                        .is_some_and(|st| st.role == Role::Leading && st.established)
            })
        })?;
        let new = sim
            .ids()
            .into_iter()
            .find(|id| *id != old && sim.status(*id).is_some_and(|s| s.role == Role::Leading))
            .ok_or("new leader")?;
        for _ in 0..5 {
            sim.propose(new)?;
            sim.run_for(5)?;
        }
        sim.run_for(1_000)?;
        assert_ne!(
            sim.status(old).map(|s| s.role),
            Some(Role::Leading),
            "old leader stepped down"
        );
        sim.heal()?;
        sim.run_until(30_000, |s| s.quiescent())?;
        nowhere(&sim, stale)?;
        sim.settle()
    })();
    check(
        &sim,
        "partitioned_old_leader_returns_after_new_leader_committed_writes",
        r,
    );
}

#[test]
fn observer_receives_commits_and_never_votes() {
    let cfg = SimConfig {
        observers: 1,
        ..SimConfig::default()
    };
    let mut sim = boot(26, cfg);
    sim.record_sent = true;
    let r = (|| {
        commit(&mut sim, 10)?;
        let obs = sim.observers[0];
        assert_eq!(sim.status(obs).map(|s| s.role), Some(Role::Observing));
        assert_eq!(
            sim.node(obs).pos,
            sim.inv.global.len(),
            "observer delivered every commit"
        );
        assert!(
            sim.sent
                .iter()
                .any(|(_, _, to, k)| *to == obs && *k == "Inform")
        );
        assert!(
            !sim.sent
                .iter()
                .any(|(_, from, _, k)| *from == obs && (*k == "Ack" || *k == "Notification")),
            "the observer never acks proposals nor answers elections"
        );
        // Two voters down: the observer cannot make a quorum.
        let l = sim.leader().ok_or("no leader")?;
        for f in followers(&sim, l) {
            sim.crash(f, Some(0))?;
        }
        sim.run_for(3_000)?;
        assert!(
            sim.leader().is_none(),
            "no leader without a quorum of voters"
        );
        sim.settle()
    })();
    check(&sim, "observer_receives_commits_and_never_votes", r);
}

#[test]
fn five_node_ensemble_survives_two_crashes() {
    let cfg = SimConfig {
        voters: 5,
        ..SimConfig::default()
    };
    let mut sim = boot(27, cfg);
    let r = (|| {
        commit(&mut sim, 5)?;
        let l = sim.leader().ok_or("no leader")?;
        let f = followers(&sim, l)[0];
        sim.crash(l, None)?;
        sim.crash(f, None)?;
        sim.run_until(30_000, |s| s.quiescent())?;
        let before = sim.inv.acknowledged.len();
        commit(&mut sim, 10)?;
        assert!(
            sim.inv.acknowledged.len() >= before + 10,
            "three of five still commit"
        );
        sim.settle()
    })();
    check(&sim, "five_node_ensemble_survives_two_crashes", r);
}

/// A leader is paused (it runs nothing: no timer, no message), the others elect a new leader
/// and commit; the old leader resumes still believing it leads and is asked for a
/// linearizable read at once. It must not confirm it (its commit point is stale): the read
/// fails when it steps down. A read at the new leader is confirmed at an index covering the
/// new writes. (The simulator's read check fails the run on any stale confirmation.)
#[test]
fn paused_leader_resumes_and_cannot_confirm_a_linearizable_read() {
    let mut sim = boot(31, SimConfig::default());
    let r = (|| {
        commit(&mut sim, 3)?;
        let old = sim.leader().ok_or("no leader")?;
        let paused = sim
            .node_mut(old)
            .zab
            .take()
            .ok_or("old leader not running")?;
        sim.run_until(30_000, |s| s.leader().is_some_and(|l| l != old))?;
        let new = sim.leader().ok_or("new leader")?;
        let mut last = Zxid(0);
        for _ in 0..4 {
            last = last.max(sim.propose(new)?.ok_or("new leader refused a write")?);
            sim.run_for(5)?;
        }
        sim.run_until(30_000, |s| {
            s.ids()
                .into_iter()
                .filter(|id| *id != old)
                .all(|id| s.node(id).tree.last_applied() >= last)
        })?;
        sim.node_mut(old).zab = Some(paused);
        let (ready, failed) = (sim.reads_ready, sim.reads_failed);
        sim.register_read(old)?;
        sim.register_read(new)?;
        sim.run_until(30_000, |s| s.reads.is_empty())?;
        if sim.reads_failed != failed + 1 || sim.reads_ready != ready + 1 {
            return Err(format!(
                "expected the old leader's read to fail and the new one's to be confirmed: \
                 ready {} -> {}, failed {} -> {}",
                ready, sim.reads_ready, failed, sim.reads_failed
            ));
        }
        sim.run_until(30_000, |s| s.quiescent())?;
        sim.settle()
    })();
    check(
        &sim,
        "paused_leader_resumes_and_cannot_confirm_a_linearizable_read",
        r,
    );
}

/// A follower killed and started again rejoins the established leader: it is synced (DIFF)
/// without an election, the epoch stays, and writes keep committing while it returns.
/// ZooKeeper does the same; an earlier Coord re-elected because the follower's accepted
/// epoch equalled the leader's.
#[test]
fn restarted_follower_rejoins_without_an_election() {
    for seed in [31, 32, 33, 34] {
        let mut sim = boot(seed, SimConfig::default());
        sim.record_sent = true;
        let r = (|| {
            commit(&mut sim, 3)?;
            let l = sim.leader().ok_or("no leader")?;
            let epoch = sim.status(l).ok_or("leader up")?.epoch;
            let f = followers(&sim, l)[0];
            // Crash it with a write in flight, so its history is behind when it returns.
            sim.propose(l)?.ok_or("not accepted")?;
            sim.crash(f, None)?;
            commit(&mut sim, 3)?;
            sim.restart(f)?;
            let mut committed_while_rejoining = 0;
            let t0 = sim.now;
            while !sim
                .status(f)
                .is_some_and(|s| s.role == Role::Following && s.established)
            {
                if sim.now > t0 + 10_000 {
                    return Err(format!("follower {f} did not rejoin in 10 s"));
                }
                let before = sim.status(l).ok_or("leader up")?.last_committed;
                sim.propose(l)?
                    .ok_or("the leader refused a write while f rejoined")?;
                sim.run_for(5)?;
                let st = sim.status(l).ok_or("leader up")?;
                if st.role != Role::Leading || st.epoch != epoch || !st.established {
                    return Err(format!("the leader left epoch {epoch}: {st:?}"));
                }
                if st.last_committed > before {
                    committed_while_rejoining += 1;
                }
            }
            if committed_while_rejoining == 0 {
                return Err("no write committed while the follower rejoined".into());
            }
            let st = sim.status(f).ok_or("follower up")?;
            if st.epoch != epoch || st.leader != Some(l) {
                return Err(format!(
                    "follower rejoined into {st:?}, not epoch {epoch} of {l}"
                ));
            }
            if !sim
                .sent
                .iter()
                .any(|(_, from, to, k)| *from == l && *to == f && *k == "Diff")
            {
                return Err("the returning follower was not synced by DIFF".into());
            }
            commit(&mut sim, 3)?;
            let st = sim.status(l).ok_or("leader up")?;
            if st.epoch != epoch {
                return Err(format!("epoch changed to {}", st.epoch));
            }
            sim.settle()
        })();
        check(
            &sim,
            &format!("restarted_follower_rejoins (seed {seed})"),
            r,
        );
    }
}
