//! Failover entries: started, switched, ended, aborted.

use super::*;

// DESIGN invariants 1, 3, 4, 7 and Sentinel §2.3's captured stream: a whole failover, event by event.
#[test]
fn failover_happy_path() {
    let mut log = Log::monitored();
    let grant_old = log.state.lease_of(1).map(|g| g.id);
    assert_eq!(grant_old, Some(4));

    let start_index = log.index;
    let events = log.ok(&started(1, 6391, Some(2)));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            ("+new-epoch", "1"),
            ("+try-failover", "master mymaster 127.0.0.1 6390"),
            ("+elected-leader", "master mymaster 127.0.0.1 6390"),
            (
                "+failover-state-select-slave",
                "master mymaster 127.0.0.1 6390"
            ),
            (
                "+selected-slave",
                "slave 127.0.0.1:6391 127.0.0.1 6391 @ mymaster 127.0.0.1 6390"
            ),
            (
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:6391 127.0.0.1 6391 @ mymaster 127.0.0.1 6390"
            ),
            (
                "+failover-state-wait-promotion",
                "slave 127.0.0.1:6391 127.0.0.1 6391 @ mymaster 127.0.0.1 6390"
            ),
        ]
    );
    assert!(events.iter().all(|e| e.epoch == 1));
    let m = log.mymaster();
    assert_eq!((m.epoch, m.config_epoch, m.addr.port), (1, 0, 6390));
    let f = m.failover.as_ref().unwrap();
    assert_eq!(
        (f.epoch, f.state, f.candidate_holder, f.started_at_ms),
        (1, FailoverState::Started, Some(2), 1_000)
    );
    assert_eq!(f.state.to_string(), "started");
    // Invariant 4: the old grant is revoked, the candidate's host holds a grant whose id is the index.
    assert!(!log.state.is_current_grant(4));
    assert_eq!(log.state.lease_of(1), None);
    assert_eq!(
        log.state.lease_of(2),
        Some(&LeaseGrant {
            id: start_index,
            holder: 2
        })
    );

    let events = log.ok(&switched(1));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+promoted-slave",
                "slave 127.0.0.1:6391 127.0.0.1 6391 @ mymaster 127.0.0.1 6390"
            ),
            (
                "+failover-state-reconf-slaves",
                "master mymaster 127.0.0.1 6390"
            ),
            ("+switch-master", "mymaster 127.0.0.1 6390 127.0.0.1 6391"),
            (
                "+slave",
                "slave 127.0.0.1:6390 127.0.0.1 6390 @ mymaster 127.0.0.1 6391"
            ),
            (
                "+slave",
                "slave 127.0.0.1:6392 127.0.0.1 6392 @ mymaster 127.0.0.1 6391"
            ),
        ]
    );
    let m = log.mymaster();
    assert_eq!(
        (m.addr.port, m.config_epoch, m.replid.as_deref(), m.holder),
        (6391, 1, Some("replid1"), Some(2))
    );
    let f = m.failover.as_ref().unwrap();
    assert_eq!(
        (f.state, f.promoted_at_ms),
        (FailoverState::Promoted, Some(2_000))
    );
    assert_eq!(f.state.to_string(), "promoted");
    // The old master is a replica with nothing learnt yet; the new master is no longer one.
    assert_eq!(
        m.replica(&addr(6390)),
        Some(&ReplicaRecord {
            addr: addr(6390),
            run_id: String::new(),
            replid: String::new()
        })
    );
    assert!(m.replica(&addr(6391)).is_none());

    let events = log.ok(&ended(1));
    assert_eq!(
        kinds_and_payloads(&events),
        [("+failover-end", "master mymaster 127.0.0.1 6391")]
    );
    let m = log.mymaster();
    assert_eq!(m.failover, None);
    assert_eq!(
        m.last_failover(),
        Some(&FailoverOutcome {
            epoch: 1,
            started_at_ms: 1_000,
            finished_at_ms: 3_000,
            aborted: None,
            reason: "odown".to_owned(),
            from: Addr::new("127.0.0.1", 6390),
            to: Addr::new("127.0.0.1", 6391),
        })
    );
}

// DESIGN invariant 1: MasterSwitched only for the epoch in progress; FailoverStarted refused while
// one is in progress, for a used epoch, or for the current master. Every refusal changes nothing.
#[test]
fn failover_refusals() {
    let mut log = Log::monitored();
    let no_failover = Refusal::NoFailoverInProgress {
        name: "mymaster".to_owned(),
    };
    let table = [
        (started_of("nosuch", 1, 6391, None), Refusal::NoSuchMaster),
        (
            Command::MasterSwitched {
                name: "nosuch".to_owned(),
                epoch: 1,
                replid: String::new(),
                at_ms: 0,
            },
            Refusal::NoSuchMaster,
        ),
        (
            Command::FailoverEnded {
                name: "nosuch".to_owned(),
                epoch: 1,
                at_ms: 0,
            },
            Refusal::NoSuchMaster,
        ),
        (
            Command::FailoverAborted {
                name: "nosuch".to_owned(),
                epoch: 1,
                reason: String::new(),
                at_ms: 0,
            },
            Refusal::NoSuchMaster,
        ),
        (
            started(0, 6391, None),
            Refusal::StaleEpoch {
                epoch: 0,
                current: 0,
            },
        ),
        (
            started(1, 6390, None),
            Refusal::CandidateIsMaster {
                candidate: "127.0.0.1:6390".to_owned(),
            },
        ),
        (switched(1), no_failover.clone()),
        (ended(1), no_failover.clone()),
        (aborted(1, "x"), no_failover),
    ];
    for (cmd, refusal) in table {
        log.refused(&cmd, refusal);
    }

    log.ok(&started(2, 6391, Some(2)));
    let table = [
        // Never two promotions for one epoch: the same epoch cannot start again.
        (started(2, 6392, None), Refusal::FailoverInProgress),
        (started(3, 6392, None), Refusal::FailoverInProgress),
        (
            switched(1),
            Refusal::EpochMismatch {
                epoch: 1,
                in_progress: 2,
            },
        ),
        (
            switched(3),
            Refusal::EpochMismatch {
                epoch: 3,
                in_progress: 2,
            },
        ),
        (ended(2), Refusal::NotPromoted { epoch: 2 }),
        (
            aborted(3, "x"),
            Refusal::EpochMismatch {
                epoch: 3,
                in_progress: 2,
            },
        ),
    ];
    for (cmd, refusal) in table {
        log.refused(&cmd, refusal);
    }

    log.ok(&switched(2));
    let table = [
        (switched(2), Refusal::AlreadyPromoted { epoch: 2 }),
        (
            aborted(2, "slave-timeout"),
            Refusal::CannotAbortPromoted { epoch: 2 },
        ),
        (
            ended(1),
            Refusal::EpochMismatch {
                epoch: 1,
                in_progress: 2,
            },
        ),
        (started(3, 6392, None), Refusal::FailoverInProgress),
    ];
    for (cmd, refusal) in table {
        log.refused(&cmd, refusal);
    }
    log.ok(&ended(2));
    // DESIGN invariant 1: epochs never go back, even after the failover ended.
    log.refused(
        &started(2, 6390, None),
        Refusal::StaleEpoch {
            epoch: 2,
            current: 2,
        },
    );
    log.refused(
        &started(1, 6390, None),
        Refusal::StaleEpoch {
            epoch: 1,
            current: 2,
        },
    );
    log.ok(&started(3, 6390, None));
}

// DESIGN invariant 3: candidate unreachable → abort, then epoch + 1 with another candidate; the
// aborted epoch stays taken (Sentinel §2.2 abort channels, payload %@ of the master).
#[test]
fn abort_then_next_epoch() {
    let mut log = Log::monitored();
    log.ok(&started(1, 6391, Some(2)));
    let events = log.ok(&aborted(1, "slave-timeout"));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "-failover-abort-slave-timeout",
            "master mymaster 127.0.0.1 6390"
        )]
    );
    let m = log.mymaster();
    assert_eq!(
        (m.epoch, m.config_epoch, m.addr.port, m.failover.as_ref()),
        (1, 0, 6390, None)
    );
    assert_eq!(
        m.last_failover().and_then(|o| o.aborted.as_deref()),
        Some("slave-timeout")
    );
    // The candidate host's grant stays (it may cover other masters); the old holder needs a new one.
    assert!(log.state.lease_of(2).is_some());
    assert_eq!(log.state.lease_of(1), None);

    log.refused(
        &started(1, 6392, None),
        Refusal::StaleEpoch {
            epoch: 1,
            current: 1,
        },
    );
    let events = log.ok(&started(2, 6392, None));
    assert_eq!(events[0].payload(), "2");
    let events = log.ok(&aborted(2, "candidate unreachable"));
    assert_eq!(
        kinds_and_payloads(&events),
        [("-failover-abort", "master mymaster 127.0.0.1 6390")]
    );
}

// Sentinel §2.2 catalogue: only its own abort reasons get their own channel.
#[test]
fn abort_channels() {
    let table = [
        ("not-elected", "-failover-abort-not-elected"),
        ("no-good-slave", "-failover-abort-no-good-slave"),
        ("slave-timeout", "-failover-abort-slave-timeout"),
        ("operator", "-failover-abort"),
        ("", "-failover-abort"),
    ];
    for (reason, kind) in table {
        assert_eq!(event::Step::Abort(event::Abort::of(reason)).channel(), kind);
    }
}

// DESIGN invariant 1 over many steps: whatever sequence is applied, epoch never decreases and
// config_epoch never passes epoch.
#[test]
fn epochs_only_increase() {
    let mut log = Log::monitored();
    let steps = [
        started(1, 6391, Some(2)),
        switched(1),
        started(5, 6392, None),
        ended(1),
        started(2, 6392, None),
        started(5, 6392, None),
        aborted(2, "no-good-slave"),
        switched(2),
        started(2, 6390, None),
        started(6, 6390, None),
        switched(6),
        ended(6),
        started(6, 6391, None),
    ];
    let mut last = 0;
    for cmd in steps {
        log.apply(&cmd);
        let m = log.mymaster();
        assert!(m.epoch >= last, "{cmd:?} moved epoch back");
        assert!(m.config_epoch <= m.epoch);
        last = m.epoch;
    }
    assert_eq!(
        (
            log.mymaster().epoch,
            log.mymaster().config_epoch,
            log.mymaster().addr.port
        ),
        (6, 6, 6390)
    );
}

// DESIGN invariant 7: an instance ahead of the log is recorded once and waits for an operator;
// `resolve` keeps either the log's master (the other instance may be overwritten) or the
// conflicting instance (requested as the new master under a new epoch).
#[test]
fn conflict_and_resolve() {
    let mut log = Log::monitored();
    let conflict = |port| Command::ConflictDetected {
        name: "mymaster".into(),
        addr: addr(port),
        detail: "offset 900 > 100".into(),
    };
    let resolve = |port| Command::Resolve {
        name: "mymaster".into(),
        keep: addr(port),
        at_ms: 5_000,
    };
    log.refused(&resolve(6390), Refusal::NoConflict);
    let events = log.ok(&conflict(6392));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "+topology-conflict",
            "master mymaster 127.0.0.1 6390 127.0.0.1 6392 offset 900 > 100"
        )]
    );
    // The same conflict again changes nothing and says nothing.
    assert!(log.ok(&conflict(6392)).is_empty());
    log.refused(
        &resolve(6399),
        Refusal::BadKeep {
            master: "127.0.0.1:6390".into(),
            conflict: "127.0.0.1:6392".into(),
        },
    );

    // Keep the log's master: the conflicting instance may now be overwritten.
    let events = log.ok(&resolve(6390));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "-topology-conflict",
            "master mymaster 127.0.0.1 6390 keep 127.0.0.1:6390"
        )]
    );
    let m = log.mymaster();
    assert_eq!(
        (m.conflict.clone(), m.overwrite_ok.clone()),
        (None, vec![addr(6392)])
    );

    // Keep the conflicting instance: the log is asked to adopt it; the old master may be overwritten.
    log.ok(&conflict(6392));
    log.ok(&resolve(6392));
    let m = log.mymaster();
    assert_eq!(
        m.request.as_ref().map(|r| r.kind.clone()),
        Some(RequestKind::Adopt { addr: addr(6392) })
    );
    assert!(m.overwrite_ok.contains(&addr(6390)));
}

// Sentinel's retry rule from the log's history: completed → no delay; aborted → 2 x
// failover-timeout from the attempt's start (FailoverStarted's at_ms is 1 000 in these entries).
#[test]
fn retry_delay_table() {
    let delay = |entries: &[Command]| {
        let mut log = Log::monitored();
        for e in entries {
            log.ok(e);
        }
        crate::topology::failover::retry_delay(log.mymaster())
    };
    let two_timeouts = 2 * crate::topology::master::DEFAULT_FAILOVER_TIMEOUT_MS;
    assert_eq!(delay(&[]), None, "never failed over");
    assert_eq!(
        delay(&[started(1, 6391, None), switched(1), ended(1)]),
        None,
        "a completed failover lets the next one start at once"
    );
    let d = delay(&[started(1, 6391, None), aborted(1, "slave-timeout")]);
    assert_eq!(
        d.as_ref().map(|d| (d.until_ms, d.epoch, d.cause.as_str())),
        Some((1_000 + two_timeouts, 1, "aborted (slave-timeout)")),
        "an aborted attempt delays the next by 2 x failover-timeout from its start"
    );
    assert_eq!(
        delay(&[
            started(1, 6391, None),
            aborted(1, "slave-timeout"),
            started(2, 6391, None),
            switched(2),
            ended(2),
        ]),
        None,
        "only the last attempt counts: a success after an abort clears the delay"
    );
    assert_eq!(
        delay(&[
            set(&[("failover-timeout", "5000")]),
            started(1, 6391, None),
            aborted(1, "slave-timeout"),
        ])
        .map(|d| d.until_ms),
        Some(11_000),
        "the master's failover-timeout is used"
    );
}

// raftinel's min-failover-interval (from the last failover's start, whatever its outcome) and
// `reset-failover-delay` (clears the delay of the attempts so far, not of later ones).
#[test]
fn min_interval_and_reset_table() {
    let until = |entries: &[Command]| {
        let mut log = Log::monitored();
        for e in entries {
            log.ok(e);
        }
        crate::topology::failover::retry_delay(log.mymaster()).map(|d| (d.until_ms, d.cause))
    };
    let reset = || Command::ResetFailoverDelay {
        name: "mymaster".to_owned(),
    };
    let interval = set(&[("min-failover-interval", "600000")]);
    let completed = [started(1, 6391, None), switched(1), ended(1)];
    let aborted_1 = [started(1, 6391, None), aborted(1, "slave-timeout")];
    assert_eq!(
        until(&[&[interval.clone()][..], &completed].concat()),
        Some((601_000, "min-failover-interval".to_owned())),
        "a completed failover blocks for min-failover-interval from its start"
    );
    assert_eq!(
        until(&[&[interval.clone()][..], &aborted_1].concat()),
        Some((601_000, "min-failover-interval".to_owned())),
        "the longer of the two waits holds (600 s > 2 x 180 s)"
    );
    assert_eq!(
        until(&[&[set(&[("min-failover-interval", "1000")])][..], &aborted_1].concat()),
        Some((361_000, "aborted (slave-timeout)".to_owned())),
        "the longer of the two waits holds (2 x 180 s > 1 s)"
    );
    assert_eq!(
        until(&[&aborted_1[..], &[reset()]].concat()),
        None,
        "reset-failover-delay clears the delay of the attempts so far"
    );
    assert_eq!(
        until(&[&[interval.clone()][..], &completed, &[reset()]].concat()),
        None,
        "and the min-failover-interval wait"
    );
    assert_eq!(
        until(
            &[
                &aborted_1[..],
                &[reset(), started(2, 6391, None), aborted(2, "slave-timeout")],
            ]
            .concat()
        )
        .map(|(u, _)| u),
        Some(361_000),
        "a later aborted attempt delays again"
    );
    let mut log = Log::monitored();
    log.refused(
        &Command::ResetFailoverDelay {
            name: "nope".to_owned(),
        },
        Refusal::NoSuchMaster,
    );
}

// Group commit (issue 13): a batch applies each command as if it had the entry to itself, a
// refusal inside it stays that command's, and a batch holding a command that needs its own entry
// (a lease grant's id is the index) is refused whole.
#[test]
fn a_batch_applies_each_command_on_its_own() {
    let mut log = Log::monitored();
    let alone = {
        let mut other = Log::monitored();
        other.ok(&started(1, 6391, Some(2)))
    };
    let batch = Command::Batch(vec![started(1, 6391, Some(2)), started(1, 6392, None)]);
    let applied = log.apply(&batch);
    let Ok(Outcome::Batch(results)) = applied.result else {
        panic!("{:?}", applied.result)
    };
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], Ok(Outcome::Done));
    assert_eq!(results[1], Err(Refusal::FailoverInProgress));
    assert_eq!(applied.events, alone);
    assert_eq!(
        log.mymaster().failover.as_ref().unwrap().candidate.port,
        6391
    );

    for bad in [
        Command::Batch(vec![switched(1), Command::LeaseGranted { holder: 3 }]),
        Command::Batch(vec![Command::Batch(vec![switched(1)])]),
        Command::Batch(vec![switched(1); command::MAX_BATCH + 1]),
    ] {
        log.refused(&bad, Refusal::NotBatchable);
    }
    assert!(log.ok(&Command::Batch(vec![switched(1), ended(1)])).len() > 1);
    assert!(log.mymaster().failover.is_none());
}

fn odown(port: u16, down: bool) -> Command {
    Command::Odown {
        name: "mymaster".into(),
        addr: addr(port),
        down,
        votes: 3,
        quorum: 2,
        at_ms: 500,
    }
}

fn reconf(epoch: u64, port: u16, stage: Reconf) -> Command {
    Command::ReplicaReconf {
        name: "mymaster".into(),
        epoch,
        replica: addr(port),
        stage,
    }
}

// Issue 14: the leader's ODOWN verdict is in the log, so every node shows it and publishes
// Sentinel's +odown / -odown; a repeat says nothing, a switch clears it without -odown (as
// Sentinel: the old master is a replica now), and a verdict on a replaced master is refused.
#[test]
fn odown_verdicts_in_the_log() {
    let mut log = Log::monitored();
    let events = log.ok(&odown(6390, true));
    assert_eq!(
        kinds_and_payloads(&events),
        [("+odown", "master mymaster 127.0.0.1 6390 #quorum 3/2")]
    );
    assert_eq!(
        log.mymaster().odown,
        Some(Odown {
            since_ms: 500,
            votes: 3,
            quorum: 2
        })
    );
    assert!(log.ok(&odown(6390, true)).is_empty(), "a repeat");
    let events = log.ok(&odown(6390, false));
    assert_eq!(
        kinds_and_payloads(&events),
        [("-odown", "master mymaster 127.0.0.1 6390")]
    );
    assert!(log.ok(&odown(6390, false)).is_empty());
    log.ok(&odown(6390, true));
    log.ok(&started(1, 6391, None));
    log.ok(&switched(1));
    assert_eq!(log.mymaster().odown, None);
    log.refused(
        &odown(6390, false),
        Refusal::NotTheMaster {
            addr: "127.0.0.1:6390".into(),
        },
    );
}

// Issue 14: each replica's progress toward the new master is in the log (every node's flags and
// +slave-reconf-*), only forward, only for a promoted failover's replicas, and gone at the end.
#[test]
fn replica_reconf_in_the_log() {
    let mut log = Log::monitored();
    log.ok(&started(1, 6391, None));
    log.refused(
        &reconf(1, 6392, Reconf::Sent),
        Refusal::NotPromoted { epoch: 1 },
    );
    log.ok(&switched(1));
    let events = log.ok(&reconf(1, 6392, Reconf::Sent));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "+slave-reconf-sent",
            "slave 127.0.0.1:6392 127.0.0.1 6392 @ mymaster 127.0.0.1 6391"
        )]
    );
    let events = log.ok(&reconf(1, 6392, Reconf::Done));
    assert_eq!(events[0].channel(), "+slave-reconf-done");
    assert!(
        log.ok(&reconf(1, 6392, Reconf::Inprog)).is_empty(),
        "never back"
    );
    assert_eq!(log.mymaster().reconf.get(&addr(6392)), Some(&Reconf::Done));
    log.refused(
        &reconf(1, 6399, Reconf::Sent),
        Refusal::NotAReplica {
            addr: "127.0.0.1:6399".into(),
        },
    );
    log.refused(
        &reconf(2, 6392, Reconf::Sent),
        Refusal::EpochMismatch {
            epoch: 2,
            in_progress: 1,
        },
    );
    log.ok(&ended(1));
    assert!(log.mymaster().reconf.is_empty());
    log.refused(
        &reconf(1, 6392, Reconf::Done),
        Refusal::NoFailoverInProgress {
            name: "mymaster".into(),
        },
    );
}
