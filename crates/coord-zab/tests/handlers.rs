//! Handler tests: drive one core through a transition and assert the exact actions it
//! emits, in order (openraft engine-test style).

use coord_zab::{
    Action, NotLeader, PeerState, PersistToken, Persisted, Role, StorageOp, Vote, Zab, ZabConfig,
    ZabMessage, Zxid,
};

fn drain(z: &mut Zab) -> Vec<Action> {
    std::iter::from_fn(|| z.poll_action()).collect()
}

/// Drops `RoleChanged` (asserted separately through `status()`).
fn protocol(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::RoleChanged(_)))
        .collect()
}

fn send(to: u64, msg: ZabMessage) -> Action {
    Action::Send { to, msg }
}

fn persist(token: u64, ops: Vec<StorageOp>) -> Action {
    Action::Persist {
        token: PersistToken(token),
        ops,
    }
}

#[test]
fn follower_persists_before_every_ack() {
    let cfg = ZabConfig::new(2, vec![1, 2, 3], vec![], 7);
    let mut z = Zab::new(cfg, Persisted::default(), 0);
    drain(&mut z);
    let me = Vote {
        leader: 2,
        zxid: Zxid::ZERO,
        peer_epoch: 0,
    };
    z.handle_connected(1, 1);
    let looking = ZabMessage::Notification {
        vote: me,
        round: 1,
        state: PeerState::Looking,
    };
    assert_eq!(drain(&mut z), vec![send(1, looking)]);

    // Server 1 leads and 3 follows it: we follow 1 and send FollowerInfo.
    let theirs = Vote {
        leader: 1,
        zxid: Zxid::ZERO,
        peer_epoch: 0,
    };
    let state = |state| ZabMessage::Notification {
        vote: theirs,
        round: 1,
        state,
    };
    z.handle_message(2, 1, state(PeerState::Leading));
    assert_eq!(protocol(drain(&mut z)), vec![]);
    z.handle_message(3, 3, state(PeerState::Following));
    let actions = protocol(drain(&mut z));
    let [
        Action::Send {
            to: 1,
            msg:
                ZabMessage::FollowerInfo {
                    attempt,
                    accepted_epoch: 0,
                    last_zxid: Zxid::ZERO,
                    observer: false,
                },
        },
    ] = actions[..]
    else {
        panic!("expected FollowerInfo to 1, got {actions:?}");
    };
    assert_eq!(z.status().role, Role::Following);

    // LeaderInfo: acceptedEpoch is written before AckEpoch leaves.
    z.handle_message(
        4,
        1,
        ZabMessage::LeaderInfo {
            attempt,
            new_epoch: 1,
        },
    );
    assert_eq!(
        drain(&mut z),
        vec![persist(1, vec![StorageOp::AcceptedEpoch(1)])]
    );
    z.handle_persisted(5, PersistToken(1));
    let ack_epoch = ZabMessage::AckEpoch {
        current_epoch: 0,
        last_zxid: Zxid::ZERO,
        last_committed: Zxid::ZERO,
    };
    assert_eq!(drain(&mut z), vec![send(1, ack_epoch)]);

    // Sync: a txn, then NEWLEADER. currentEpoch waits for the txn; the ack for both.
    let t1 = Zxid::new(0, 1);
    z.handle_message(6, 1, ZabMessage::Diff { from: Zxid::ZERO });
    z.handle_message(
        6,
        1,
        ZabMessage::SyncTxn {
            zxid: t1,
            txn: b"a".to_vec(),
        },
    );
    let new_leader = ZabMessage::NewLeader {
        epoch: 1,
        zxid: t1,
        committed: Zxid::ZERO,
    };
    z.handle_message(6, 1, new_leader);
    assert_eq!(
        drain(&mut z),
        vec![persist(2, vec![StorageOp::Append(t1, b"a".to_vec())])]
    );
    z.handle_persisted(7, PersistToken(2));
    assert_eq!(
        drain(&mut z),
        vec![persist(3, vec![StorageOp::CurrentEpoch(1)])]
    );
    z.handle_persisted(8, PersistToken(3));
    let ack_nl = ZabMessage::AckNewLeader { epoch: 1, zxid: t1 };
    // (RoleChanged too: currentEpoch is now 1.)
    assert_eq!(protocol(drain(&mut z)), vec![send(1, ack_nl)]);
    assert_eq!(z.status().epoch, 1);

    // UPTODATE commits the synced txn.
    z.handle_message(9, 1, ZabMessage::UpToDate { committed: t1 });
    let actions = protocol(drain(&mut z));
    assert_eq!(
        actions,
        vec![Action::Commit {
            zxid: t1,
            txn: b"a".to_vec()
        }]
    );
    assert!(z.status().established);

    // Broadcast: Proposal → Persist; only after handle_persisted → Ack; Commit → deliver.
    let p = Zxid::new(1, 1);
    z.handle_message(
        10,
        1,
        ZabMessage::Proposal {
            zxid: p,
            txn: b"b".to_vec(),
        },
    );
    assert_eq!(
        drain(&mut z),
        vec![persist(4, vec![StorageOp::Append(p, b"b".to_vec())])]
    );
    z.handle_message(11, 1, ZabMessage::Commit { zxid: p });
    assert_eq!(
        drain(&mut z),
        vec![],
        "nothing is delivered before it is on disk"
    );
    z.handle_persisted(12, PersistToken(4));
    assert_eq!(
        drain(&mut z),
        vec![
            send(1, ZabMessage::Ack { zxid: p }),
            Action::Commit {
                zxid: p,
                txn: b"b".to_vec()
            },
        ]
    );
}

#[test]
fn single_voter_leader_commits_only_after_its_own_persist() {
    let cfg = ZabConfig::new(1, vec![1], vec![], 1);
    let mut z = Zab::new(cfg, Persisted::default(), 0);
    assert_eq!(
        protocol(drain(&mut z)),
        vec![persist(1, vec![StorageOp::AcceptedEpoch(1)])]
    );
    assert_eq!(
        z.propose(1, b"x".to_vec()),
        Err(NotLeader { leader: Some(1) })
    );
    z.handle_persisted(2, PersistToken(1));
    assert_eq!(
        drain(&mut z),
        vec![persist(2, vec![StorageOp::CurrentEpoch(1)])]
    );
    z.handle_persisted(3, PersistToken(2));
    let actions = drain(&mut z);
    assert!(matches!(&actions[..], [Action::RoleChanged(s)] if s.established && s.epoch == 1));

    // The counter restarts at 1 in the new epoch.
    let zxid = z.propose(4, b"x".to_vec()).expect("established");
    assert_eq!(zxid, Zxid::new(1, 1));
    assert_eq!(
        drain(&mut z),
        vec![persist(3, vec![StorageOp::Append(zxid, b"x".to_vec())])]
    );
    z.handle_persisted(5, PersistToken(3));
    assert_eq!(
        drain(&mut z),
        vec![Action::Commit {
            zxid,
            txn: b"x".to_vec()
        }]
    );
}

#[test]
fn follower_refuses_an_epoch_below_its_promise_and_re_acks_its_own() {
    // Promised epoch 4 (say it acked leader 1 and restarted). Leader 1, re-proposing 4,
    // is followed without a second promise; a leader proposing 3 is refused.
    for (new_epoch, follows) in [(4, true), (3, false)] {
        let cfg = ZabConfig::new(2, vec![1, 2, 3], vec![], 3);
        let persisted = Persisted {
            accepted_epoch: 4,
            current_epoch: 3,
            ..Persisted::default()
        };
        let mut z = Zab::new(cfg, persisted, 0);
        z.handle_connected(0, 1);
        let vote = Vote {
            leader: 1,
            zxid: Zxid::ZERO,
            peer_epoch: 3,
        };
        for (from, state) in [(1, PeerState::Leading), (3, PeerState::Following)] {
            z.handle_message(
                1,
                from,
                ZabMessage::Notification {
                    vote,
                    round: 1,
                    state,
                },
            );
        }
        let (attempt, reported) = drain(&mut z)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    msg:
                        ZabMessage::FollowerInfo {
                            attempt,
                            accepted_epoch,
                            ..
                        },
                    ..
                } => Some((attempt, accepted_epoch)),
                _ => None,
            })
            .expect("FollowerInfo sent");
        assert_eq!(reported, 4, "the leader learns our promise");
        z.handle_message(2, 1, ZabMessage::LeaderInfo { attempt, new_epoch });
        let actions = drain(&mut z);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Persist { .. })),
            "an accepted epoch is never written again: {actions:?}"
        );
        let acked = actions.iter().any(|a| {
            matches!(
                a,
                Action::Send {
                    to: 1,
                    msg: ZabMessage::AckEpoch { .. }
                }
            )
        });
        assert_eq!(acked, follows, "epoch {new_epoch}: {actions:?}");
        let role = z.status().role;
        let expected = if follows {
            Role::Following
        } else {
            Role::Looking
        };
        assert_eq!(role, expected, "epoch {new_epoch}");
    }
}

#[test]
fn garbage_from_the_network_never_panics() {
    let cfg = ZabConfig::new(2, vec![1, 2, 3], vec![], 3);
    let mut z = Zab::new(cfg, Persisted::default(), 0);
    for msg in [
        ZabMessage::Trunc { to: Zxid(99) },
        ZabMessage::Commit {
            zxid: Zxid(u64::MAX),
        },
        ZabMessage::Ack { zxid: Zxid(5) },
        ZabMessage::AckNewLeader {
            epoch: 9,
            zxid: Zxid(1),
        },
        ZabMessage::FollowerInfo {
            attempt: 1,
            accepted_epoch: u32::MAX,
            last_zxid: Zxid(u64::MAX),
            observer: false,
        },
    ] {
        z.handle_message(1, 1, msg.clone());
        z.handle_message(1, 42, msg);
    }
    assert!(ZabMessage::decode(b"not an archive").is_err());
    drain(&mut z);
}

/// Found by the `peer_message` fuzz target: a peer announcing round `u64::MAX` made the next
/// election round overflow. Hostile rounds are adopted without arithmetic panics.
#[test]
fn a_notification_with_the_largest_round_does_not_overflow() {
    let cfg = ZabConfig::new(1, vec![1, 2, 3], vec![], 7);
    let mut z = Zab::new(cfg, Persisted::default(), 0);
    drain(&mut z);
    for peer in [2, 3] {
        z.handle_connected(1, peer);
    }
    let vote = Vote {
        leader: 3,
        zxid: Zxid(u64::MAX),
        peer_epoch: u32::MAX,
    };
    z.handle_message(
        2,
        3,
        ZabMessage::Notification {
            vote,
            round: u64::MAX,
            state: PeerState::Looking,
        },
    );
    drain(&mut z);
    // Time passes: the core restarts its round and resends; nothing panics.
    for t in 0..50u64 {
        z.handle_timeout(1_000 + t * 1_000);
        z.handle_disconnected(1_000 + t * 1_000, 3);
        z.handle_connected(1_000 + t * 1_000, 3);
        drain(&mut z);
    }
    assert!(matches!(
        z.status().role,
        Role::Looking | Role::Following | Role::Leading
    ));
}

/// The leader side of the rule above: a voter whose FollowerInfo reports the leader's own
/// new epoch as its promise is synced, but its AckEpoch does not make the epoch quorum (it
/// may have promised that epoch to a rival leader).
#[test]
fn a_second_ack_of_an_epoch_does_not_count_towards_its_quorum() {
    let cfg = ZabConfig::new(3, vec![1, 2, 3], vec![], 11);
    let persisted = Persisted {
        accepted_epoch: 3,
        current_epoch: 3,
        ..Persisted::default()
    };
    let mut z = Zab::new(cfg, persisted, 0);
    z.handle_connected(0, 1);
    z.handle_connected(0, 2);
    let vote = Vote {
        leader: 3,
        zxid: Zxid::ZERO,
        peer_epoch: 3,
    };
    for from in [1, 2] {
        z.handle_message(
            1,
            from,
            ZabMessage::Notification {
                vote,
                round: 1,
                state: PeerState::Looking,
            },
        );
    }
    let mut now = 1;
    while z.status().role != Role::Leading {
        now += 10;
        assert!(now < 5_000, "server 3 leads");
        z.handle_timeout(now);
    }
    drain(&mut z);
    // Voter 1 reports promise 3: the new epoch is 4, written before LeaderInfo goes out.
    z.handle_message(now, 1, follower_info(1, 3));
    let token = drain(&mut z)
        .into_iter()
        .find_map(|a| match a {
            Action::Persist { token, ops } if ops == vec![StorageOp::AcceptedEpoch(4)] => {
                Some(token)
            }
            _ => None,
        })
        .expect("epoch 4 decided");
    z.handle_persisted(now, token);
    assert!(drain(&mut z).contains(&send(
        1,
        ZabMessage::LeaderInfo {
            attempt: 1,
            new_epoch: 4
        }
    )));
    // Voter 2 already promised 4 and acks it again: synced later, but no quorum yet.
    z.handle_message(now, 2, follower_info(1, 4));
    assert!(drain(&mut z).contains(&send(
        2,
        ZabMessage::LeaderInfo {
            attempt: 1,
            new_epoch: 4
        }
    )));
    z.handle_message(now, 2, ack_epoch());
    let after_second = drain(&mut z);
    assert!(
        !after_second
            .iter()
            .any(|a| matches!(a, Action::Persist { ops, .. } if ops.contains(&StorageOp::CurrentEpoch(4)))),
        "a re-ack formed the epoch quorum: {after_second:?}"
    );
    assert_eq!(z.status().role, Role::Leading);
    // Voter 1's first promise does.
    z.handle_message(now, 1, ack_epoch());
    assert!(
        drain(&mut z).iter().any(
            |a| matches!(a, Action::Persist { ops, .. } if ops == &vec![StorageOp::CurrentEpoch(4)])
        ),
        "the first promise completes the epoch quorum"
    );
}

fn follower_info(attempt: u64, accepted_epoch: u32) -> ZabMessage {
    ZabMessage::FollowerInfo {
        attempt,
        accepted_epoch,
        last_zxid: Zxid::ZERO,
        observer: false,
    }
}

fn ack_epoch() -> ZabMessage {
    ZabMessage::AckEpoch {
        current_epoch: 3,
        last_zxid: Zxid::ZERO,
        last_committed: Zxid::ZERO,
    }
}
