//! The nemesis schedule is a pure function of its seed, covers every enabled kind early, and
//! resolves to sensible server sets; outcome classification separates "not applied" from
//! "maybe applied".

use coord_check::history::Outcome;
use coord_client::{Error, ErrorCode};
use coord_verify::nemesis::{Action, Fault, FaultKind, Pick, Round, Schedule, Split};
use coord_verify::outcome;
use std::collections::BTreeSet;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

fn rounds(seed: u64, nodes: usize, kinds: &[FaultKind], n: usize) -> Vec<Round> {
    Schedule::new(seed, nodes, kinds, TIMEOUT).take(n).collect()
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    for nodes in [3, 5] {
        let a = rounds(42, nodes, &FaultKind::ALL, 200);
        let b = rounds(42, nodes, &FaultKind::ALL, 200);
        assert_eq!(a, b);
        let c = rounds(43, nodes, &FaultKind::ALL, 200);
        assert_ne!(a, c, "another seed, another schedule");
    }
}

#[test]
fn every_enabled_kind_comes_within_one_cycle() {
    for seed in 0..50 {
        let kinds = FaultKind::ALL;
        let first: BTreeSet<FaultKind> = rounds(seed, 3, &kinds, kinds.len())
            .iter()
            .map(|r| r.fault.kind())
            .collect();
        assert_eq!(first.len(), kinds.len(), "seed {seed}");
        let some = [FaultKind::Pause, FaultKind::RestartAll];
        assert!(
            rounds(seed, 5, &some, 40)
                .iter()
                .all(|r| some.contains(&r.fault.kind()))
        );
    }
    assert!(rounds(1, 3, &[], 10).is_empty());
}

#[test]
fn rounds_respect_their_bounds() {
    for nodes in [3usize, 5] {
        let minority = (nodes - 1) / 2;
        let mut leader_picked = 0;
        let mut picks = 0;
        for r in rounds(7, nodes, &FaultKind::ALL, 500) {
            match &r.fault {
                Fault::Kill { targets }
                | Fault::Pause { targets }
                | Fault::SlowDisk { targets, .. } => {
                    assert!(!targets.is_empty() && targets.len() <= minority, "{r:?}");
                    let distinct: BTreeSet<String> =
                        targets.iter().map(|t| format!("{t:?}")).collect();
                    assert_eq!(distinct.len(), targets.len(), "{r:?}");
                    picks += 1;
                    leader_picked += usize::from(targets.contains(&Pick::Leader));
                }
                Fault::Partition(_) | Fault::RestartAll { .. } => {}
            }
            match &r.fault {
                Fault::Pause { .. } => assert!(r.hold > TIMEOUT, "pauses outlast the session"),
                Fault::SlowDisk { delay_ms, .. } => assert!((200..=1000).contains(delay_ms)),
                Fault::RestartAll { down_ms } => assert!((200..=1500).contains(down_ms)),
                _ => assert!(r.hold >= Duration::from_secs(2) && r.hold <= Duration::from_secs(8)),
            }
        }
        // The leader is a target about half the time.
        assert!(leader_picked * 3 > picks && leader_picked * 3 < picks * 2);
    }
}

#[test]
fn faults_resolve_against_the_current_leader() {
    let kill = Fault::Kill {
        targets: vec![Pick::Leader, Pick::Other(1)],
    };
    let (action, what) = kill.resolve(2, 5);
    assert_eq!(action, Action::Kill(vec![2, 1]));
    assert!(what.contains("leader n3"), "{what}");

    let (action, _) = Fault::Partition(Split::IsolateLeader).resolve(0, 3);
    let Action::Partition(p) = action else {
        panic!("a partition")
    };
    assert!(!p.connected(0, 1) && !p.connected(0, 2) && p.connected(1, 2));

    let split = Split::MajorityMinority {
        order: vec![4, 1, 0, 3, 2],
        minority: 2,
    };
    let (action, what) = Fault::Partition(split).resolve(1, 5);
    let Action::Partition(p) = action else {
        panic!("a partition")
    };
    assert_eq!(p.blocked.len(), 6);
    assert!(p.connected(1, 4) && !p.connected(1, 0) && p.connected(0, 2));
    assert!(what.contains("in the minority"), "{what}");

    let (action, _) = Fault::Partition(Split::Bridge {
        order: vec![2, 0, 1],
    })
    .resolve(0, 3);
    let Action::Partition(p) = action else {
        panic!("a partition")
    };
    assert!(!p.connected(2, 1) && p.connected(2, 0) && p.connected(0, 1));
}

#[test]
fn fault_lists_parse() {
    assert_eq!(FaultKind::parse_list("all").unwrap(), FaultKind::ALL);
    assert!(FaultKind::parse_list("none").unwrap().is_empty());
    assert_eq!(
        FaultKind::parse_list("slow-disk,kill,kill").unwrap(),
        [FaultKind::SlowDisk, FaultKind::Kill]
    );
    assert!(FaultKind::parse_list("kill,flood").is_err());
}

#[test]
fn outcomes_separate_refusals_from_maybes() {
    let fail = |code| match outcome::of_error(&Error::new(code)) {
        Outcome::Fail { error } => Some(error),
        _ => None,
    };
    // The checkers match the code's name.
    assert_eq!(fail(ErrorCode::BadVersion).as_deref(), Some("BadVersion"));
    for code in [
        ErrorCode::NoNode,
        ErrorCode::NodeExists,
        ErrorCode::NotServing,
        ErrorCode::Throttled,
    ] {
        assert!(fail(code).is_some(), "{code:?} proves nothing was applied");
    }
    for code in [
        ErrorCode::ConnectionLoss,
        ErrorCode::SessionExpired,
        ErrorCode::OperationTimeout,
        ErrorCode::SystemError,
        ErrorCode::MarshallingError,
        ErrorCode::SessionMoved,
    ] {
        let o = outcome::of_error(&Error::with_message(code, "lost"));
        assert!(
            matches!(&o, Outcome::Unknown { error } if error.contains("lost")),
            "{code:?} may have been applied: {o:?}"
        );
    }
    assert!(matches!(
        outcome::timed_out(4000),
        Outcome::Unknown { error } if error.contains("4000 ms")
    ));
}
