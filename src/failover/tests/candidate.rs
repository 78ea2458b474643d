//! Candidate choice: Sentinel's `sentinelSelectSlave` (reference/sentinel-surface.md §5.3).

use super::*;
use crate::failover::candidate::{choose, info_limit_ms, known_replicas, Exclusion, NoCandidate};

/// The master has been down this long in most tests.
const DOWN_MS: u64 = 2_000;

fn pick(m: &MasterRecord, reports: &[NodeReport]) -> Result<Addr, NoCandidate> {
    choose(m, &ins(reports), FRESH, PING, DOWN_MS)
}

/// Why the only replica, 7001, observed as `o` by one node, is excluded (None: it is chosen).
fn exclusion_of(o: Observation, master_down_ms: u64) -> Option<Exclusion> {
    let m = master(&[7001]);
    let reports = vec![report(1, vec![down(MASTER), o])];
    match choose(&m, &ins(&reports), FRESH, PING, master_down_ms) {
        Ok(a) => {
            assert_eq!(a, addr(7001));
            None
        }
        Err(mut n) => {
            assert_eq!(n.reasons.len(), 1);
            n.reasons.pop().map(|(a, e)| {
                assert_eq!(a, addr(7001));
                e
            })
        }
    }
}

/// Sentinel: "A replica is excluded if any of these hold", one row per rule and its boundary.
#[test]
fn exclusion_table() {
    let r = || as_replica(7001, MASTER, 100);
    let link_limit = DOWN_MS + 10 * 1_000;
    let info_down = 5 * PING + 1_000;
    let cases: Vec<(&str, Observation, u64, Option<Exclusion>)> = vec![
        ("healthy replica qualifies", r(), DOWN_MS, None),
        (
            "it is S_DOWN",
            Observation { sdown: true, ..r() },
            DOWN_MS,
            Some(Exclusion::Sdown),
        ),
        (
            "last PING reply older than 5×ping period",
            Observation {
                reply_age_ms: 5 * PING + 1,
                ..r()
            },
            DOWN_MS,
            Some(Exclusion::StaleReply {
                age_ms: 5 * PING + 1,
                limit_ms: 5 * PING,
            }),
        ),
        (
            "PING reply at exactly 5×ping period",
            Observation {
                reply_age_ms: 5 * PING,
                ..r()
            },
            DOWN_MS,
            None,
        ),
        (
            "no INFO",
            Observation {
                info_age_ms: None,
                ..r()
            },
            DOWN_MS,
            Some(Exclusion::NoInfo),
        ),
        (
            "INFO without a role",
            Observation { role: None, ..r() },
            DOWN_MS,
            Some(Exclusion::NoInfo),
        ),
        (
            "INFO older than 5×ping (+1 normal period) while the master is down",
            Observation {
                info_age_ms: Some(info_down + 1),
                ..r()
            },
            DOWN_MS,
            Some(Exclusion::StaleInfo {
                age_ms: info_down + 1,
                limit_ms: info_down,
            }),
        ),
        (
            "INFO at the master-down bound",
            Observation {
                info_age_ms: Some(info_down),
                ..r()
            },
            DOWN_MS,
            None,
        ),
        (
            "INFO older than 3×info period, master up (forced)",
            Observation {
                info_age_ms: Some(3_001),
                ..r()
            },
            0,
            Some(Exclusion::StaleInfo {
                age_ms: 3_001,
                limit_ms: 3_000,
            }),
        ),
        (
            "INFO at 3×info period, master up",
            Observation {
                info_age_ms: Some(3_000),
                ..r()
            },
            0,
            None,
        ),
        (
            "role master",
            as_master(7001, &[], "x", 100),
            DOWN_MS,
            Some(Exclusion::NotReplica),
        ),
        (
            "replica-priority 0 (never promoted)",
            with_replica(r(), |_, _, p, _| *p = 0),
            DOWN_MS,
            Some(Exclusion::PriorityZero),
        ),
        (
            "master_link_down_time > master down + 10×down-after",
            with_replica(r(), |up, d, _, _| {
                *up = false;
                *d = link_limit + 1
            }),
            DOWN_MS,
            Some(Exclusion::LinkDownTooLong {
                down_ms: link_limit + 1,
                limit_ms: link_limit,
            }),
        ),
        (
            "link down exactly at the bound",
            with_replica(r(), |up, d, _, _| {
                *up = false;
                *d = link_limit
            }),
            DOWN_MS,
            None,
        ),
    ];
    for (rule, o, master_down_ms, want) in cases {
        assert_eq!(exclusion_of(o, master_down_ms), want, "{rule}");
    }
}

/// The INFO bound: 3 × max(1000, ping) for a live master, 5 × ping + 1000 while it is down.
#[test]
fn info_limit_values() {
    assert_eq!(info_limit_ms(100, 0), 3_000);
    assert_eq!(info_limit_ms(2_000, 0), 6_000);
    assert_eq!(info_limit_ms(100, 1), 1_500);
    assert_eq!(info_limit_ms(1_000, 30_000), 6_000);
    assert_eq!(info_limit_ms(u64::MAX, 1), u64::MAX);
}

/// Sentinel: "lower replica-priority first, then higher slave_repl_offset, then lexicographically
/// smaller run id (compared case-insensitively; a NULL run id sorts last)"; address last.
#[test]
fn ordering_table() {
    let rep = |port: u16, priority: u32, offset: u64, run: &str| Observation {
        run_id: run.to_owned(),
        ..with_replica(as_replica(port, MASTER, offset), |_, _, p, _| *p = priority)
    };
    let cases: Vec<(&str, Vec<Observation>, u16)> = vec![
        (
            "lower priority beats higher offset",
            vec![rep(7001, 100, 900, "a"), rep(7002, 10, 1, "b")],
            7002,
        ),
        (
            "higher offset at equal priority",
            vec![rep(7001, 100, 5, "a"), rep(7002, 100, 6, "b")],
            7002,
        ),
        (
            "smaller run id at equal offset",
            vec![rep(7001, 100, 5, "b"), rep(7002, 100, 5, "a")],
            7002,
        ),
        (
            "run ids compare case-insensitively",
            vec![rep(7001, 100, 5, "B"), rep(7002, 100, 5, "a")],
            7002,
        ),
        (
            "upper case is not smaller than lower",
            vec![rep(7001, 100, 5, "abd"), rep(7002, 100, 5, "ABC")],
            7002,
        ),
        (
            "empty run id sorts last",
            vec![rep(7001, 100, 5, ""), rep(7002, 100, 5, "zzz")],
            7002,
        ),
        (
            "address breaks a full tie",
            vec![rep(7002, 100, 5, "abc"), rep(7001, 100, 5, "ABC")],
            7001,
        ),
        (
            "both empty: address",
            vec![rep(7002, 1, 5, ""), rep(7001, 1, 5, "")],
            7001,
        ),
    ];
    for (rule, obs, want) in cases {
        let m = master(&[7001, 7002]);
        let mut all = vec![down(MASTER)];
        all.extend(obs);
        assert_eq!(pick(&m, &[report(1, all)]), Ok(addr(want)), "{rule}");
    }
}

/// Each replica is judged on its freshest observation across fresh reports.
#[test]
fn freshest_observation_decides() {
    let m = master(&[7001]);
    // Node 1 cannot reach 7001, node 2 can: the replica qualifies.
    let reports = vec![
        report(1, vec![down(MASTER), down(7001)]),
        report(2, vec![down(MASTER), as_replica(7001, MASTER, 1)]),
    ];
    assert_eq!(pick(&m, &reports), Ok(addr(7001)));
    // The reply that is freshest as of now at the leader counts the report's own age.
    let older = Observation {
        reply_age_ms: 10,
        ..as_replica(7001, MASTER, 1)
    };
    let newer = Observation {
        reply_age_ms: 40,
        sdown: true,
        ..as_replica(7001, MASTER, 1)
    };
    let reports = vec![report(1, vec![older]), report(2, vec![newer])];
    let got = choose(&m, &aged(&reports, &[100, 0]), FRESH, PING, DOWN_MS);
    assert_eq!(
        got,
        Err(NoCandidate {
            reasons: vec![(addr(7001), Exclusion::Sdown)]
        })
    );
    // TILTed and stale reports are not read.
    let reports = vec![
        tilted(1, vec![as_replica(7001, MASTER, 1)]),
        report(2, vec![as_replica(7001, MASTER, 1)]),
    ];
    let got = choose(&m, &aged(&reports, &[0, FRESH + 1]), FRESH, PING, DOWN_MS);
    assert_eq!(
        got,
        Err(NoCandidate {
            reasons: vec![(addr(7001), Exclusion::NoObservation)]
        })
    );
}

/// Replicas come from the log and from the master's own INFO (Sentinel discovers replicas there),
/// without duplicates and never the master itself.
#[test]
fn replicas_from_log_and_master_info() {
    let m = master(&[7001, MASTER]);
    let reports = vec![
        report(1, vec![as_master(MASTER, &[7001, 7003], "r", 1)]),
        report(2, vec![as_master(MASTER, &[7002, 7001], "r", 1)]),
        tilted(3, vec![as_master(MASTER, &[7009], "r", 1)]),
    ];
    let known = known_replicas(NAME, &m, &ins(&reports), FRESH);
    assert_eq!(known, vec![addr(7001), addr(7002), addr(7003)]);
    // A replica known only from the master's INFO can be chosen.
    let reports = vec![report(
        1,
        vec![
            as_master(MASTER, &[7005], "r", 1),
            as_replica(7005, MASTER, 1),
        ],
    )];
    assert_eq!(pick(&master(&[]), &reports), Ok(addr(7005)));
}

/// No candidate: every known replica with its reason, by address; none known → empty.
#[test]
fn no_candidate_lists_every_reason() {
    let m = master(&[7003, 7001, 7002]);
    let reports = vec![report(
        1,
        vec![
            down(MASTER),
            down(7001),
            with_replica(as_replica(7002, MASTER, 1), |_, _, p, _| *p = 0),
        ],
    )];
    let err = pick(&m, &reports).unwrap_err();
    assert_eq!(
        err.reasons,
        vec![
            (addr(7001), Exclusion::Sdown),
            (addr(7002), Exclusion::PriorityZero),
            (addr(7003), Exclusion::NoObservation),
        ]
    );
    assert_eq!(
        err.to_string(),
        "10.0.0.1:7001: sdown, 10.0.0.1:7002: replica-priority 0, 10.0.0.1:7003: not observed"
    );
    let none = pick(&master(&[]), &[report(1, vec![down(MASTER)])]).unwrap_err();
    assert_eq!(
        (none.reasons.len(), none.to_string()),
        (0, "no known replicas".to_owned())
    );
}

// Right before FailoverStarted the leader reads priority and offset again (Sentinel's ranking on
// fresh INFO): the best of those that answered wins, one that now says priority 0 or did not
// answer is left out, and with no answer at all the reports' choice stands.
#[test]
fn rerank_on_offsets_read_now() {
    use crate::failover::candidate::{rerank, Eligible};
    use std::collections::HashMap;
    let e = |port: u16, run_id: &'static str| Eligible {
        addr: addr(port),
        priority: 100,
        offset: 10,
        run_id,
    };
    let ok = || vec![e(6380, "a"), e(6381, "b"), e(6382, "c")];
    let now: HashMap<Addr, (u32, u64)> = [
        (addr(6380), (100, 50)),
        (addr(6381), (100, 70)),
        (addr(6382), (0, 90)),
    ]
    .into_iter()
    .collect();
    assert_eq!(rerank(ok(), &now, addr(6380)), addr(6381));
    let lower_priority_wins: HashMap<Addr, (u32, u64)> =
        [(addr(6380), (10, 1)), (addr(6381), (100, 70))]
            .into_iter()
            .collect();
    assert_eq!(rerank(ok(), &lower_priority_wins, addr(6381)), addr(6380));
    assert_eq!(rerank(ok(), &HashMap::new(), addr(6382)), addr(6382));
}
