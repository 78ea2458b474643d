//! `decide`: start, promote, switch, repoint, end, abort (DESIGN "Failover", invariants 1 and 3).

use super::*;
use crate::failover::candidate::Exclusion;
use crate::failover::decide::{decide, DecideInput, Step};
use crate::topology::{FailoverOutcome, FailoverRecord, FailoverState};

pub(super) const NOW: u64 = 1_000_000;
/// The candidate / new master in failover tests.
pub(super) const NEW: u16 = 7001;

pub(super) fn run(
    m: &MasterRecord,
    reports: &[NodeReport],
    now_ms: u64,
    paused: bool,
    forced: bool,
) -> Step {
    let reports = ins(reports);
    decide(&DecideInput {
        name: NAME,
        master: m,
        reports: &reports,
        voters: &voters(),
        fresh_ms: FRESH,
        ping_interval_ms: PING,
        now_ms,
        master_down_ms: 2_000,
        paused,
        forced,
    })
}

pub(super) fn step(m: &MasterRecord, reports: &[NodeReport]) -> Step {
    run(m, reports, NOW, false, false)
}

/// Two of three nodes see the master down (quorum 2), all see both replicas healthy.
fn master_down() -> Vec<NodeReport> {
    let reps = || vec![as_replica(7001, MASTER, 10), as_replica(7002, MASTER, 20)];
    let with = |o: Observation| {
        let mut v = vec![o];
        v.extend(reps());
        v
    };
    // Replicas lost the link too, so nothing vetoes the failover.
    let cut = |mut v: Vec<Observation>| {
        v = v
            .into_iter()
            .map(|o| {
                with_replica(o, |up, d, _, _| {
                    *up = false;
                    *d = 1_500
                })
            })
            .collect();
        v
    };
    vec![
        report(1, cut(with(down(MASTER)))),
        report(2, cut(with(down(MASTER)))),
        report(3, cut(with(seen(MASTER)))),
    ]
}

fn start(candidate: u16, reason: &str) -> Step {
    Step::Start {
        candidate: addr(candidate),
        reason: reason.to_owned(),
    }
}

/// DESIGN "Failover" 1: "ODOWN → choose the candidate as Sentinel does … → commit FailoverStarted".
#[test]
fn idle_table() {
    let healthy = || {
        vec![report(
            1,
            vec![
                as_master(MASTER, &[7001, 7002], "L", 50),
                as_replica(7001, MASTER, 50),
                as_replica(7002, MASTER, 50),
            ],
        )]
    };
    // The last attempt started `ago` ms before NOW; `aborted` says whether it finished.
    let last = |ago: u64, aborted: bool| {
        let mut m = master(&[7001, 7002]);
        m.history = vec![FailoverOutcome {
            epoch: 1,
            started_at_ms: NOW - ago,
            finished_at_ms: NOW - ago + 10,
            aborted: aborted.then(|| "slave-timeout".to_owned()),
            reason: "odown".to_owned(),
            from: addr(7000),
            to: addr(7001),
        }];
        m
    };
    let timeout = master(&[]).failover_timeout_ms;
    // (rule, master, reports, paused, forced, step)
    type Row = (
        &'static str,
        MasterRecord,
        Vec<NodeReport>,
        bool,
        bool,
        Step,
    );
    let cases: Vec<Row> = vec![
        (
            "ODOWN starts a failover to the best replica (higher offset)",
            master(&[7001, 7002]),
            master_down(),
            false,
            false,
            start(7002, "odown"),
        ),
        (
            "healthy master: nothing to do",
            master(&[7001, 7002]),
            healthy(),
            false,
            false,
            Step::None,
        ),
        (
            "paused: no failover starts",
            master(&[7001, 7002]),
            master_down(),
            true,
            false,
            Step::None,
        ),
        (
            "paused beats forced",
            master(&[7001, 7002]),
            healthy(),
            true,
            true,
            Step::None,
        ),
        (
            "operator failover skips ODOWN",
            master(&[7001, 7002]),
            healthy(),
            false,
            true,
            start(7001, "forced"),
        ),
        (
            "a completed failover lets the next one start at once (Sentinel resets its timer)",
            last(1_000, false),
            master_down(),
            false,
            false,
            start(7002, "odown"),
        ),
        (
            "an aborted attempt delays the next automatic one by 2 x failover-timeout",
            last(2 * timeout - 1, true),
            master_down(),
            false,
            false,
            Step::None,
        ),
        (
            "the delay counts from the aborted attempt's start, not its end",
            last(2 * timeout, true),
            master_down(),
            false,
            false,
            start(7002, "odown"),
        ),
        (
            "min-failover-interval blocks an automatic failover after a completed one",
            {
                let mut m = last(1_000, false);
                m.min_failover_interval_ms = 1_001;
                m
            },
            master_down(),
            false,
            false,
            Step::None,
        ),
        (
            "min-failover-interval ends",
            {
                let mut m = last(1_000, false);
                m.min_failover_interval_ms = 1_000;
                m
            },
            master_down(),
            false,
            false,
            start(7002, "odown"),
        ),
        (
            "a forced failover is not held back by min-failover-interval",
            {
                let mut m = last(1, false);
                m.min_failover_interval_ms = 600_000;
                m
            },
            master_down(),
            false,
            true,
            start(7002, "forced"),
        ),
        (
            "reset-failover-delay: the cleared attempt delays nothing",
            {
                let mut m = last(1, true);
                m.retry_cleared_epoch = 1;
                m
            },
            master_down(),
            false,
            false,
            start(7002, "odown"),
        ),
        (
            "a forced failover is not held back by an aborted attempt",
            last(1, true),
            master_down(),
            false,
            true,
            start(7002, "forced"),
        ),
        (
            "an unreachable master below quorum is left alone",
            master(&[7001, 7002]),
            master_down()[1..].to_vec(),
            false,
            false,
            Step::None,
        ),
    ];
    for (rule, m, reports, paused, forced, want) in cases {
        assert_eq!(run(&m, &reports, NOW, paused, forced), want, "{rule}");
    }
}

/// DESIGN "Detection": "Positive evidence vetoes a failover": ODOWN with every replica linked.
#[test]
fn vetoed_odown_starts_nothing() {
    let m = master(&[7001]);
    let reports: Vec<NodeReport> = (1..=3)
        .map(|n| report(n, vec![down(MASTER), as_replica(7001, MASTER, 1)]))
        .collect();
    assert_eq!(step(&m, &reports), Step::None);
    // The operator can still force it.
    assert_eq!(run(&m, &reports, NOW, false, true), start(7001, "forced"));
}

/// Sentinel's `-failover-abort-no-good-slave`, before any epoch is spent.
#[test]
fn odown_without_candidate_reports_why() {
    let m = master(&[7001, 7003]);
    let reports = vec![
        report(1, vec![down(MASTER), down(7001)]),
        report(2, vec![down(MASTER)]),
    ];
    assert_eq!(
        step(&m, &reports),
        Step::NoCandidate {
            reasons: vec![
                (addr(7001), Exclusion::Sdown),
                (addr(7003), Exclusion::NoObservation)
            ]
        }
    );
}

pub(super) fn failing_over(
    state: FailoverState,
    started_at_ms: u64,
    promoted_at_ms: Option<u64>,
) -> MasterRecord {
    let mut m = master(&[7001, 7002]);
    m.epoch = 3;
    m.failover = Some(FailoverRecord {
        epoch: 3,
        candidate: addr(NEW),
        candidate_holder: Some(2),
        state,
        reason: "odown".to_owned(),
        from: addr(7000),
        started_at_ms,
        promoted_at_ms,
        revoked: None,
    });
    m
}

/// Invariant 3: "A new leader resumes from the log: candidate reports master → commit
/// MasterSwitched; candidate reports replica → repeat the promotion …; candidate unreachable →
/// abort". Abort waits for failover-timeout (Sentinel's wait_promotion).
#[test]
fn started_table() {
    let timeout = 10_000;
    let promoted = || Observation {
        replid2: "P".to_owned(),
        ..as_master(NEW, &[], "NEWID", 900)
    };
    let switched = Step::Switched {
        candidate: addr(NEW),
        replid: "NEWID".to_owned(),
    };
    let promote = Step::Promote {
        candidate: addr(NEW),
    };
    let abort = Step::Abort {
        reason: "slave-timeout".to_owned(),
    };
    // (rule, candidate observations per node, ms since the start, step)
    let cases: Vec<(&str, Vec<NodeReport>, u64, Step)> = vec![
        (
            "candidate reports master → Switched",
            vec![report(1, vec![promoted()])],
            0,
            switched.clone(),
        ),
        (
            "Switched even past the timeout (never abort a promotion that happened)",
            vec![report(1, vec![promoted()])],
            timeout + 1,
            switched.clone(),
        ),
        (
            "one node's fresh INFO is enough",
            vec![
                report(1, vec![as_replica(NEW, MASTER, 9)]),
                report(
                    2,
                    vec![Observation {
                        info_age_ms: Some(1),
                        ..promoted()
                    }],
                ),
            ],
            0,
            switched,
        ),
        (
            "the freshest INFO decides: demoted again → promote again",
            vec![
                report(
                    1,
                    vec![Observation {
                        info_age_ms: Some(900),
                        ..promoted()
                    }],
                ),
                report(2, vec![as_replica(NEW, MASTER, 9)]),
            ],
            0,
            promote.clone(),
        ),
        (
            "master without a replid is not recorded; promotion repeats",
            vec![report(1, vec![as_master(NEW, &[], "", 900)])],
            0,
            promote.clone(),
        ),
        (
            "candidate still a replica → Promote",
            vec![report(1, vec![as_replica(NEW, MASTER, 9)])],
            0,
            promote.clone(),
        ),
        (
            "reachable candidate is promoted again past the timeout",
            vec![report(1, vec![as_replica(NEW, MASTER, 9)])],
            timeout + 1,
            promote.clone(),
        ),
        (
            "reachable without INFO → Promote",
            vec![report(
                1,
                vec![Observation {
                    info_age_ms: None,
                    ..seen(NEW)
                }],
            )],
            0,
            promote,
        ),
        (
            "unreachable candidate: wait for failover-timeout",
            vec![report(1, vec![down(NEW)])],
            timeout,
            Step::None,
        ),
        (
            "unreachable candidate past failover-timeout → abort",
            vec![report(1, vec![down(NEW)])],
            timeout + 1,
            abort.clone(),
        ),
        (
            "unobserved candidate counts as unreachable",
            vec![report(1, vec![])],
            timeout + 1,
            abort.clone(),
        ),
        (
            "a TILTed report of the promotion is not read",
            vec![tilted(1, vec![promoted()])],
            timeout + 1,
            abort,
        ),
    ];
    for (rule, reports, elapsed, want) in cases {
        let m = failing_over(FailoverState::Started, NOW - elapsed, None);
        assert_eq!(step(&m, &reports), want, "{rule}");
    }
}

/// A failover in progress runs to its end while paused: stopping between the revocation and the
/// promotion would leave no writable master.
#[test]
fn pause_does_not_stop_a_failover_in_progress() {
    let m = failing_over(FailoverState::Started, NOW, None);
    let reports = vec![report(1, vec![as_replica(NEW, MASTER, 9)])];
    assert_eq!(
        run(&m, &reports, NOW, true, false),
        Step::Promote {
            candidate: addr(NEW)
        }
    );
}

/// Deterministic: the same input gives the same step, whatever order the reports come in.
#[test]
fn report_order_does_not_matter() {
    let mut reports = master_down();
    let m = master(&[7001, 7002]);
    let first = step(&m, &reports);
    reports.reverse();
    assert_eq!(step(&m, &reports), first);
    reports.swap(0, 1);
    assert_eq!(step(&m, &reports), first);
}
