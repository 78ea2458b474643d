//! ODOWN and the veto (DESIGN "Detection").

use super::*;
use crate::failover::odown::{odown, OdownVerdict};

fn verdict(m: &MasterRecord, reports: &[NodeReport], ages: &[u64]) -> OdownVerdict {
    odown(NAME, m, &aged(reports, ages), &voters(), FRESH)
}

/// Invariant 11: "ODOWN, promises and 'dead' count current voters only". Reports from ids that
/// are not voters (made up, removed, or learners) never make a master ODOWN.
#[test]
fn only_voters_count_toward_odown() {
    let m = master(&[]);
    let reports: Vec<NodeReport> = [1, 7, 8]
        .iter()
        .map(|id| report(*id, vec![down(MASTER)]))
        .collect();
    let members = std::collections::BTreeSet::from([1, 2, 3]);
    let v = odown(NAME, &m, &aged(&reports, &[0, 0, 0]), &members, FRESH);
    assert_eq!((v.sdown_votes, v.odown), (1, false));
    let all = std::collections::BTreeSet::from([1, 7, 8]);
    let with_voters = odown(NAME, &m, &aged(&reports, &[0, 0, 0]), &all, FRESH);
    assert_eq!((with_voters.sdown_votes, with_voters.odown), (3, true));
}

/// Three nodes; `down[i]` says whether node i+1 reports the master SDOWN.
fn nodes(down_flags: &[bool], extra: &[Observation]) -> Vec<NodeReport> {
    down_flags
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut obs = vec![if *d { down(MASTER) } else { seen(MASTER) }];
            obs.extend(extra.iter().cloned());
            report(i as u64 + 1, obs)
        })
        .collect()
}

/// "ODOWN when ≥ quorum nodes report SDOWN": a table over votes, quorum and report ages.
#[test]
fn odown_counts_fresh_sdown_votes_against_quorum() {
    // (rule, sdown flags, ages, quorum, votes, fresh reports, odown)
    type Row = (
        &'static str,
        &'static [bool],
        &'static [u64],
        u32,
        u32,
        u32,
        bool,
    );
    let cases: &[Row] = &[
        (
            "quorum reached",
            &[true, true, false],
            &[0, 0, 0],
            2,
            2,
            3,
            true,
        ),
        (
            "one short of quorum",
            &[true, false, false],
            &[0, 0, 0],
            2,
            1,
            3,
            false,
        ),
        ("all down", &[true, true, true], &[0, 0, 0], 3, 3, 3, true),
        (
            "quorum 1 is raised to the voters' majority",
            &[true, false, false],
            &[0, 0, 0],
            1,
            1,
            3,
            false,
        ),
        (
            "fresh bound inclusive",
            &[true, true, false],
            &[0, FRESH, 0],
            2,
            2,
            3,
            true,
        ),
        (
            "counts SDOWN only from a fresh report",
            &[true, true, false],
            &[0, FRESH + 1, 0],
            2,
            1,
            2,
            false,
        ),
        (
            "stale reports count neither way",
            &[true, true, false],
            &[0, 9_999, 9_999],
            2,
            1,
            1,
            false,
        ),
        (
            "no votes, quorum 0 is not ODOWN",
            &[false, false, false],
            &[0, 0, 0],
            0,
            0,
            3,
            false,
        ),
    ];
    for (rule, flags, ages, quorum, votes, fresh, is_odown) in cases {
        let mut m = master(&[]);
        m.quorum = *quorum;
        let v = verdict(&m, &nodes(flags, &[]), ages);
        assert_eq!(v.sdown_votes, *votes, "{rule}");
        assert_eq!(v.fresh_reports, *fresh, "{rule}");
        // Three voters: the effective quorum is in [2, 3].
        assert_eq!(v.quorum, (*quorum).clamp(2, 3), "{rule}");
        assert_eq!(v.odown, *is_odown, "{rule}");
        assert_eq!(v.vetoed, None, "{rule}");
    }
}

/// Issue 11 item 4: the quorum ODOWN uses follows the current voters, whatever was configured
/// before a membership change.
#[test]
fn odown_uses_the_quorum_clamped_to_the_current_voters() {
    // (configured quorum, voters, SDOWN votes among them, effective quorum, odown)
    let cases: &[(u32, u64, usize, u32, bool)] = &[
        (4, 3, 3, 3, true), // shrunk below the quorum: still reachable with every voter
        (4, 3, 2, 3, false),
        (5, 4, 4, 4, true),
        (2, 5, 2, 3, false), // grown: two of five is not a majority
        (2, 5, 3, 3, true),
        (3, 5, 3, 3, true),
        (1, 1, 1, 1, true),
    ];
    for (configured, voters, votes, effective, is_odown) in cases {
        let mut m = master(&[]);
        m.quorum = *configured;
        let members: std::collections::BTreeSet<u64> = (1..=*voters).collect();
        // The first `votes` nodes see it down, the others see it up.
        let rs: Vec<NodeReport> = (1..=5u64)
            .map(|n| {
                let o = if n as usize <= *votes {
                    down(MASTER)
                } else {
                    seen(MASTER)
                };
                report(n, vec![o])
            })
            .collect();
        let v = odown(NAME, &m, &aged(&rs, &[0; 5]), &members, FRESH);
        let want = (u32::try_from(*votes).unwrap(), *effective, *is_odown);
        assert_eq!(
            (v.sdown_votes, v.quorum, v.odown),
            want,
            "{configured}/{voters}"
        );
    }
}

/// "A node whose own scheduling lags … ignores its observations": TILT is neither up nor down.
#[test]
fn tilt_report_counts_neither_up_nor_down() {
    let m = master(&[]);
    let reports = vec![
        report(1, vec![down(MASTER)]),
        tilted(2, vec![down(MASTER)]),
        report(3, vec![seen(MASTER)]),
    ];
    let v = verdict(&m, &reports, &[0, 0, 0]);
    assert_eq!((v.sdown_votes, v.fresh_reports, v.odown), (1, 2, false));
}

/// "A missing report is 'unknown', not 'up'": a report without the master is not an up vote,
/// and does not block ODOWN when the others reach quorum.
#[test]
fn missing_master_is_unknown_not_up() {
    let m = master(&[]);
    let reports = vec![
        report(1, vec![down(MASTER)]),
        report(2, vec![down(MASTER)]),
        report(3, vec![]),
    ];
    let v = verdict(&m, &reports, &[0, 0, 0]);
    assert_eq!((v.sdown_votes, v.fresh_reports, v.odown), (2, 2, true));
    // …nor is it a down vote.
    let v = verdict(&m, &reports[1..], &[0, 0]);
    assert_eq!((v.sdown_votes, v.fresh_reports, v.odown), (1, 1, false));
}

/// One node, one vote: a node's freshest report speaks for it.
#[test]
fn a_node_votes_once_from_its_freshest_report() {
    let m = master(&[]);
    let reports = vec![
        report(1, vec![down(MASTER)]),
        report(1, vec![down(MASTER)]),
        report(2, vec![seen(MASTER)]),
    ];
    let v = verdict(&m, &reports, &[0, 10, 0]);
    assert_eq!((v.sdown_votes, v.fresh_reports, v.odown), (1, 2, false));
    // The node's newer report says up: its older down vote is gone.
    let reports = vec![report(1, vec![down(MASTER)]), report(1, vec![seen(MASTER)])];
    let mut m1 = master(&[]);
    m1.quorum = 1;
    let v = verdict(&m1, &reports, &[50, 10]);
    assert_eq!((v.sdown_votes, v.odown), (0, false));
}

fn linked(port: u16) -> Observation {
    as_replica(port, MASTER, 100)
}

/// "Positive evidence vetoes a failover: … every replica reports its master link up with recent
/// I/O. Replica link status is never *required*."
#[test]
fn veto_table() {
    let io = |ms: u64| {
        move |_: &mut bool, _: &mut u64, _: &mut u32, io: &mut Option<u64>| *io = Some(ms)
    };
    // (rule, replicas in the log, replica observations, vetoed?)
    let cases: Vec<(&str, Vec<u16>, Vec<Observation>, bool)> = vec![
        (
            "every replica linked with recent I/O",
            vec![7001, 7002],
            vec![linked(7001), linked(7002)],
            true,
        ),
        ("no replicas: never required", vec![], vec![], false),
        (
            "one replica not observed: missing data",
            vec![7001, 7002],
            vec![linked(7001)],
            false,
        ),
        (
            "one link down",
            vec![7001, 7002],
            vec![
                linked(7001),
                with_replica(linked(7002), |up, _, _, _| *up = false),
            ],
            false,
        ),
        (
            "I/O unknown (-1)",
            vec![7001],
            vec![with_replica(linked(7001), |_, _, _, io| *io = None)],
            false,
        ),
        (
            "I/O at down-after is not recent",
            vec![7001],
            vec![with_replica(linked(7001), io(1_000))],
            false,
        ),
        (
            "I/O just under down-after",
            vec![7001],
            vec![Observation {
                info_age_ms: Some(0),
                ..with_replica(linked(7001), io(999))
            }],
            true,
        ),
        (
            "I/O age includes the INFO's age",
            vec![7001],
            vec![Observation {
                info_age_ms: Some(600),
                ..with_replica(linked(7001), io(400))
            }],
            false,
        ),
        (
            "linked to another master",
            vec![7001],
            vec![as_replica(7001, 6380, 100)],
            false,
        ),
        (
            "replica claims master",
            vec![7001],
            vec![as_master(7001, &[], "x", 1)],
            false,
        ),
        ("no INFO yet", vec![7001], vec![seen(7001)], false),
    ];
    for (rule, log, obs, vetoed) in cases {
        let m = master(&log);
        let reports = nodes(&[true, true, true], &obs);
        let v = verdict(&m, &reports, &[0, 0, 0]);
        assert!(v.odown, "{rule}");
        assert_eq!(v.vetoed.is_some(), vetoed, "{rule}: {:?}", v.vetoed);
    }
}

/// The veto reads each replica's freshest INFO, from any node, and never a TILTed or stale one.
#[test]
fn veto_reads_the_freshest_info() {
    let m = master(&[7001]);
    let old_up = Observation {
        info_age_ms: Some(200),
        ..linked(7001)
    };
    let new_down = with_replica(linked(7001), |up, _, _, _| *up = false);
    let reports = vec![
        report(1, vec![down(MASTER), old_up.clone()]),
        report(2, vec![down(MASTER), new_down.clone()]),
    ];
    assert_eq!(verdict(&m, &reports, &[0, 0]).vetoed, None);
    let reports = vec![
        report(
            1,
            vec![
                down(MASTER),
                Observation {
                    info_age_ms: Some(200),
                    ..new_down
                },
            ],
        ),
        report(
            2,
            vec![
                down(MASTER),
                Observation {
                    info_age_ms: Some(20),
                    ..linked(7001)
                },
            ],
        ),
    ];
    let v = verdict(&m, &reports, &[0, 0]);
    assert!(v.vetoed.is_some_and(|s| s.contains("10.0.0.1:6379")));
    // The only evidence is in a TILTed report: no veto.
    let reports = vec![
        report(1, vec![down(MASTER)]),
        report(2, vec![down(MASTER)]),
        tilted(3, vec![linked(7001)]),
    ];
    assert_eq!(verdict(&m, &reports, &[0, 0, 0]).vetoed, None);
    // …or in a stale one.
    let reports = vec![
        report(1, vec![down(MASTER)]),
        report(2, vec![down(MASTER)]),
        report(3, vec![linked(7001)]),
    ];
    assert_eq!(verdict(&m, &reports, &[0, 0, FRESH + 1]).vetoed, None);
    assert!(verdict(&m, &reports, &[0, 0, 0]).vetoed.is_some());
}

/// The veto is about a failover: without ODOWN there is nothing to veto.
#[test]
fn no_veto_without_odown() {
    let m = master(&[7001]);
    let reports = nodes(&[true, false, false], &[linked(7001)]);
    let v = verdict(&m, &reports, &[0, 0, 0]);
    assert_eq!((v.odown, v.vetoed), (false, None));
}

// Issue 14: the log's ODOWN follows the verdict, down at once, up only once no quorum can say
// down any more (a new leader with few reports keeps it).
#[test]
fn the_logged_odown_changes_only_on_a_sure_verdict() {
    use crate::failover::odown::odown_change;
    let v = |sdown_votes, fresh_reports| OdownVerdict {
        sdown_votes,
        fresh_reports,
        quorum: 2,
        odown: sdown_votes >= 2,
        vetoed: None,
    };
    let table = [
        // (logged, votes down, fresh reports, change) with 3 voters, quorum 2
        (false, 2, 2, Some(true)),
        (false, 3, 3, Some(true)),
        (false, 1, 3, None),
        (true, 2, 3, None),
        (true, 1, 2, None),
        (true, 0, 1, None),
        (true, 1, 3, Some(false)),
        (true, 0, 2, Some(false)),
    ];
    for (logged, down, fresh, want) in table {
        assert_eq!(
            odown_change(logged, &v(down, fresh), 3),
            want,
            "{logged} {down}/{fresh}"
        );
    }
}
