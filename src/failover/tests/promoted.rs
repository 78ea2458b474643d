//! `decide` after MasterSwitched: repoint, fold in, end (DESIGN "Failover" 4).

use super::decide::{failing_over, run, step, NEW, NOW};
use super::*;
use crate::failover::decide::Step;
use crate::topology::FailoverState;

/// After MasterSwitched: `addr` is NEW, the old master is a replica in the log, lineage "L".
fn switched(replicas: &[u16], parallel_syncs: u32, promoted_ago: u64) -> MasterRecord {
    let mut m = failing_over(
        FailoverState::Promoted,
        NOW - promoted_ago - 1,
        Some(NOW - promoted_ago),
    );
    m.addr = addr(NEW);
    m.replid = Some("L".to_owned());
    m.config_epoch = 3;
    m.parallel_syncs = parallel_syncs;
    m.replicas = master(replicas).replicas;
    m
}

/// The new master as the nodes see it: promoted from "P" at offset 900.
fn new_master() -> Observation {
    Observation {
        replid2: "P".to_owned(),
        second_repl_offset: Some(901),
        ..as_master(NEW, &[], "L", 1_000)
    }
}

/// A replica still following the dead old master, on its lineage "P".
fn stale(port: u16) -> Observation {
    Observation {
        replid: "P".to_owned(),
        ..with_replica(as_replica(port, MASTER, 880), |up, _, _, _| *up = false)
    }
}

fn syncing(port: u16) -> Observation {
    with_replica(as_replica(port, NEW, 0), |up, _, _, _| *up = false)
}

fn repoint(ports: &[u16]) -> Step {
    Step::Repoint {
        replicas: ports.iter().map(|p| addr(*p)).collect(),
        to: addr(NEW),
    }
}

/// DESIGN "Failover" 4: "Repoint the other replicas (parallel-syncs at a time …); commit
/// FailoverEnded"; ends at failover-timeout after the switch like Sentinel's reconfiguration.
#[test]
fn promoted_table() {
    let one = |obs: Vec<Observation>| {
        let mut v = vec![new_master()];
        v.extend(obs);
        vec![report(1, v)]
    };
    // (rule, log replicas, parallel-syncs, ms since the switch, observations, step)
    type Row = (&'static str, Vec<u16>, u32, u64, Vec<NodeReport>, Step);
    let cases: Vec<Row> = vec![
        (
            "repoint one at a time (parallel-syncs 1)",
            vec![7002, 7003, 7004],
            1,
            0,
            one(vec![stale(7002), stale(7003), stale(7004)]),
            repoint(&[7002]),
        ),
        (
            "repoint parallel-syncs at a time",
            vec![7002, 7003, 7004],
            2,
            0,
            one(vec![stale(7002), stale(7003), stale(7004)]),
            repoint(&[7002, 7003]),
        ),
        (
            "a syncing replica counts as in flight",
            vec![7002, 7003, 7004],
            2,
            0,
            one(vec![syncing(7002), stale(7003), stale(7004)]),
            repoint(&[7003]),
        ),
        (
            "no budget left: wait",
            vec![7002, 7003],
            1,
            0,
            one(vec![syncing(7002), stale(7003)]),
            Step::None,
        ),
        (
            "every reachable replica linked → End",
            vec![7002, 7003],
            1,
            0,
            one(vec![as_replica(7002, NEW, 1), as_replica(7003, NEW, 1)]),
            Step::End,
        ),
        (
            "unreachable replicas are not waited for",
            vec![MASTER, 7002, 7003],
            1,
            0,
            one(vec![down(MASTER), as_replica(7002, NEW, 1)]),
            Step::End,
        ),
        (
            "no replicas at all → End",
            vec![],
            1,
            0,
            one(vec![]),
            Step::End,
        ),
        (
            "last sync still running: wait",
            vec![7002],
            1,
            0,
            one(vec![syncing(7002)]),
            Step::None,
        ),
        (
            "reachable but role unknown: wait",
            vec![7002],
            1,
            0,
            one(vec![Observation {
                info_age_ms: None,
                ..seen(7002)
            }]),
            Step::None,
        ),
        (
            "failover-timeout after the switch → End with work left",
            vec![7002],
            1,
            10_001,
            one(vec![stale(7002)]),
            Step::End,
        ),
        (
            "at failover-timeout exactly: keep going",
            vec![7002],
            1,
            10_000,
            one(vec![stale(7002)]),
            repoint(&[7002]),
        ),
        (
            "repoint before fold-in",
            vec![MASTER, 7002],
            1,
            0,
            one(vec![
                Observation {
                    replid: "P".to_owned(),
                    ..as_master(MASTER, &[], "P", 950)
                },
                stale(7002),
            ]),
            repoint(&[7002]),
        ),
        (
            "old master back, predecessor lineage → FoldIn",
            vec![MASTER, 7002],
            1,
            0,
            one(vec![
                Observation {
                    replid: "P".to_owned(),
                    ..as_master(MASTER, &[], "P", 950)
                },
                as_replica(7002, NEW, 1),
            ]),
            Step::FoldIn {
                addr: addr(MASTER),
                to: addr(NEW),
            },
        ),
        (
            "fold-in waits for a free sync slot",
            vec![MASTER, 7002],
            1,
            0,
            one(vec![as_master(MASTER, &[], "P", 950), syncing(7002)]),
            Step::None,
        ),
    ];
    for (rule, log, parallel, ago, reports, want) in cases {
        let m = switched(&log, parallel, ago);
        assert_eq!(step(&m, &reports), want, "{rule}");
    }
}

/// The new master itself, listed as a replica by a stale log, is never repointed.
#[test]
fn new_master_is_never_repointed() {
    let m = switched(&[NEW, 7002], 1, 0);
    let reports = vec![report(1, vec![new_master(), as_replica(7002, NEW, 1)])];
    assert_eq!(step(&m, &reports), Step::End);
}

/// DESIGN "Failover" 4: "fold the old master back in when it returns" — also after FailoverEnded.
#[test]
fn idle_folds_in_a_returning_old_master() {
    let mut m = switched(&[MASTER, 7002], 1, 0);
    m.failover = None;
    let back = Observation {
        replid: "P".to_owned(),
        ..as_master(MASTER, &[], "P", 950)
    };
    let reports = vec![report(
        1,
        vec![new_master(), back.clone(), as_replica(7002, NEW, 1)],
    )];
    assert_eq!(
        step(&m, &reports),
        Step::FoldIn {
            addr: addr(MASTER),
            to: addr(NEW)
        }
    );
    // Paused: nothing.
    assert_eq!(run(&m, &reports, NOW, true, false), Step::None);
    // Not while the log's master is not seen healthy as master.
    let reports = vec![report(1, vec![as_replica(NEW, 7002, 1), back.clone()])];
    assert_eq!(step(&m, &reports), Step::None);
    let reports = vec![report(1, vec![back])];
    assert_eq!(step(&m, &reports), Step::None);
}
