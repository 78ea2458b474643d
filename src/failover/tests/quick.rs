//! `choose` against a dumb reference over random inputs (as etcd's quorum/quick_test.go checks
//! `CommittedIndex`): a plain filter and a sort by a key tuple.

use std::cmp::Reverse;

use super::*;
use crate::failover::candidate::{choose, Exclusion};
use crate::failover::decide::{decide, DecideInput, Step};
use crate::topology::{FailoverOutcome, FailoverRecord, FailoverState};

const CASES: u64 = 5_000;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Marsaglia's xorshift64: enough randomness for input generation, no crate needed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Few distinct values, so ties and boundaries come up often.
const PORTS: [u16; 6] = [MASTER, 7001, 7002, 7003, 7004, 7005];
const RUN_IDS: [&str; 7] = ["", "abc", "ABC", "abd", "Abd", "b", "B"];

fn random_observation(rng: &mut XorShift, port: u16) -> Observation {
    let role = match rng.below(10) {
        0 => None,
        1 | 2 => Some(ReportedRole::Master {
            replicas: (0..rng.below(3))
                .map(|_| ReplicaLink {
                    addr: addr(rng.pick(&PORTS)),
                    state: "online".to_owned(),
                    offset: 0,
                })
                .collect(),
        }),
        _ => Some(ReportedRole::Replica {
            master: addr(rng.pick(&[MASTER, MASTER, 7001])),
            link_up: rng.chance(50),
            link_down_ms: rng.pick(&[0, 1_000, 11_999, 12_000, 12_001, 3_000_000]),
            priority: rng.pick(&[0, 1, 2, 100]),
            offset: rng.pick(&[0, 1, 2, 3]),
            last_io_ms: rng.pick(&[None, Some(0), Some(1_000)]),
        }),
    };
    Observation {
        addr: addr(port),
        sdown: rng.chance(15),
        reply_age_ms: rng.pick(&[0, 10, 250, 499, 500, 501, 5_000]),
        info_age_ms: rng.pick(&[
            None,
            Some(0),
            Some(100),
            Some(1_500),
            Some(1_501),
            Some(3_000),
            Some(3_001),
        ]),
        role,
        run_id: rng.pick(&RUN_IDS).to_owned(),
        replid: rng.pick(&["", "L", "P", "Z"]).to_owned(),
        repl_offset: rng.pick(&[0, 1_000, 2_000]),
        replid2: rng.pick(&["", "L", "P"]).to_owned(),
        second_repl_offset: rng.pick(&[None, Some(1), Some(1_001)]),
        role_age_ms: 0,
        reboot: false,
        link_up: true,
    }
}

fn random_master(rng: &mut XorShift) -> MasterRecord {
    let ports: Vec<u16> = PORTS.iter().copied().filter(|_| rng.chance(50)).collect();
    let mut m = master(&ports);
    m.down_after_ms = rng.pick(&[100, 1_000]);
    m.quorum = rng.pick(&[1, 2, 3]);
    m.parallel_syncs = rng.pick(&[1, 2]);
    m.replid = rng.pick(&[None, Some("L".to_owned())]);
    m
}

/// Up to four reports; `distinct` gives each its own node id.
fn random_reports(rng: &mut XorShift, distinct: bool) -> (Vec<NodeReport>, Vec<u64>) {
    let n = rng.below(5);
    let reports = (0..n)
        .map(|i| {
            let node = if distinct {
                i as u64 + 1
            } else {
                rng.pick(&[1, 2, 3])
            };
            let mut obs = Vec::new();
            for p in PORTS {
                if rng.chance(70) {
                    obs.push(random_observation(rng, p));
                }
            }
            let r = report(node, obs);
            if rng.chance(15) {
                NodeReport { tilt: true, ..r }
            } else {
                r
            }
        })
        .collect();
    let ages = (0..n)
        .map(|_| rng.pick(&[0, 50, FRESH, FRESH + 1, 1_000]))
        .collect();
    (reports, ages)
}

/// The dumb version: every rule written out plainly, then one sort by a key tuple.
fn reference(
    m: &MasterRecord,
    reports: &[ReportIn],
    ping: u64,
    down_ms: u64,
) -> Result<Addr, Vec<(Addr, Exclusion)>> {
    let counted: Vec<&ReportIn> = reports
        .iter()
        .filter(|r| r.age_ms <= FRESH && !r.report.tilt)
        .collect();
    let obs_of = |r: &ReportIn, a: &Addr| {
        r.report
            .masters
            .get(NAME)
            .and_then(|l| l.iter().find(|o| &o.addr == a).cloned())
    };
    let mut addrs: Vec<Addr> = m.replicas.iter().map(|r| r.addr.clone()).collect();
    for r in &counted {
        if let Some(Observation {
            role: Some(ReportedRole::Master { replicas }),
            ..
        }) = obs_of(r, &m.addr)
        {
            addrs.extend(replicas.iter().map(|l| l.addr.clone()));
        }
    }
    addrs.sort();
    addrs.dedup();
    addrs.retain(|a| *a != m.addr);
    let mut ok = Vec::new();
    let mut excluded = Vec::new();
    for a in addrs {
        let mut seen: Vec<(u64, u64, u64, Observation)> = counted
            .iter()
            .filter_map(|r| {
                obs_of(r, &a).map(|o| (r.age_ms + o.reply_age_ms, r.age_ms, r.node_id, o))
            })
            .collect();
        seen.sort_by_key(|s| (s.0, s.1, s.2));
        let Some((_, _, _, o)) = seen.into_iter().next() else {
            excluded.push((a, Exclusion::NoObservation));
            continue;
        };
        let info_limit = if down_ms > 0 {
            5 * ping + 1_000
        } else {
            3 * ping.max(1_000)
        };
        let link_limit = down_ms + 10 * m.down_after_ms;
        let why = if o.sdown {
            Some(Exclusion::Sdown)
        } else if o.reply_age_ms > 5 * ping {
            Some(Exclusion::StaleReply {
                age_ms: o.reply_age_ms,
                limit_ms: 5 * ping,
            })
        } else if o.info_age_ms.is_none() || o.role.is_none() {
            Some(Exclusion::NoInfo)
        } else if let Some(age_ms) = o.info_age_ms.filter(|age| *age > info_limit) {
            Some(Exclusion::StaleInfo {
                age_ms,
                limit_ms: info_limit,
            })
        } else {
            match &o.role {
                Some(ReportedRole::Replica { priority: 0, .. }) => Some(Exclusion::PriorityZero),
                Some(ReportedRole::Replica { link_down_ms, .. }) if *link_down_ms > link_limit => {
                    Some(Exclusion::LinkDownTooLong {
                        down_ms: *link_down_ms,
                        limit_ms: link_limit,
                    })
                }
                Some(ReportedRole::Replica {
                    priority, offset, ..
                }) => {
                    ok.push((*priority, *offset, o.run_id.clone(), a.clone()));
                    None
                }
                _ => Some(Exclusion::NotReplica),
            }
        };
        if let Some(why) = why {
            excluded.push((a, why));
        }
    }
    ok.sort_by_key(|(priority, offset, run, a)| {
        (
            *priority,
            Reverse(*offset),
            run.is_empty(),
            run.to_ascii_lowercase(),
            a.clone(),
        )
    });
    ok.into_iter().next().map(|(_, _, _, a)| a).ok_or(excluded)
}

/// `choose` agrees with the dumb reference on 5,000 random inputs, including why nothing qualified.
#[test]
fn choose_matches_a_dumb_sort() {
    let mut rng = XorShift(SEED);
    let (mut chosen, mut contested) = (0, 0);
    for case in 0..CASES {
        let m = random_master(&mut rng);
        let (reports, ages) = random_reports(&mut rng, false);
        let ins = aged(&reports, &ages);
        let ping = rng.pick(&[50, 100, 1_000]);
        let down_ms = rng.pick(&[0, 1_000, 2_000]);
        let got = choose(&m, &ins, FRESH, ping, down_ms).map_err(|n| n.reasons);
        let want = reference(&m, &ins, ping, down_ms);
        assert_eq!(
            got, want,
            "case {case} (seed {SEED:#x}): {m:?} {reports:?} {ages:?} ping {ping} down {down_ms}"
        );
        chosen += usize::from(got.is_ok());
        let eligible = |r: &Result<Addr, Vec<(Addr, Exclusion)>>| r.is_ok();
        contested += usize::from(eligible(&want) && m.replicas.len() >= 2);
    }
    // The generator must exercise both outcomes, not just one.
    assert!(chosen > 500 && chosen < 4_500, "chosen {chosen} of {CASES}");
    assert!(contested > 300, "contested {contested}");
}

/// Over random states and reports: the step depends on the set of reports, not their order, and
/// never breaks the shape DESIGN requires (no Redis step before its commit; never more than
/// parallel-syncs repoints; the master is never a candidate nor repointed).
#[test]
fn decide_is_order_free_and_well_formed() {
    let mut rng = XorShift(SEED ^ 0xABCD);
    for case in 0..CASES {
        let mut m = random_master(&mut rng);
        let state = rng.pick(&[
            None,
            Some(FailoverState::Started),
            Some(FailoverState::Promoted),
        ]);
        m.failover = state.map(|state| FailoverRecord {
            epoch: 1,
            candidate: addr(7001),
            candidate_holder: None,
            state,
            reason: "odown".to_owned(),
            from: addr(7000),
            started_at_ms: 100_000,
            promoted_at_ms: Some(100_000),
            revoked: None,
        });
        if state == Some(FailoverState::Promoted) {
            m.addr = addr(7001);
        }
        m.history = rng
            .pick(&[
                None,
                Some(FailoverOutcome {
                    epoch: 0,
                    started_at_ms: 0,
                    finished_at_ms: 95_000,
                    aborted: None,
                    reason: "odown".to_owned(),
                    from: addr(7000),
                    to: addr(7001),
                }),
            ])
            .into_iter()
            .collect();
        let (reports, ages) = random_reports(&mut rng, true);
        let now_ms = rng.pick(&[100_000, 110_000, 110_001]);
        let (paused, forced) = (rng.chance(20), rng.chance(20));
        let step_for = |order: &[usize]| {
            let ins: Vec<ReportIn> = order
                .iter()
                .map(|i| ReportIn {
                    node_id: reports[*i].node_id,
                    age_ms: ages[*i],
                    report: &reports[*i],
                })
                .collect();
            decide(&DecideInput {
                name: NAME,
                master: &m,
                reports: &ins,
                voters: &voters(),
                fresh_ms: FRESH,
                ping_interval_ms: 100,
                now_ms,
                master_down_ms: 2_000,
                paused,
                forced,
            })
        };
        let forward: Vec<usize> = (0..reports.len()).collect();
        let step = step_for(&forward);
        let backward: Vec<usize> = forward.iter().rev().copied().collect();
        assert_eq!(
            step,
            step_for(&backward),
            "case {case}: report order changed the step"
        );
        let ok = match (&step, state) {
            (Step::None, _) => true,
            (Step::Start { candidate, .. }, None) => *candidate != m.addr,
            (Step::NoCandidate { .. }, None) => true,
            (
                Step::Promote { candidate } | Step::Switched { candidate, .. },
                Some(FailoverState::Started),
            ) => *candidate == addr(7001),
            (Step::Abort { .. }, Some(FailoverState::Started)) => true,
            (Step::End, Some(FailoverState::Promoted)) => true,
            (Step::Repoint { replicas, to }, None | Some(FailoverState::Promoted)) => {
                *to == m.addr
                    && !replicas.is_empty()
                    && replicas.len() <= m.parallel_syncs as usize
                    && !replicas.contains(&m.addr)
            }
            (Step::FoldIn { addr: a, to }, None | Some(FailoverState::Promoted)) => {
                *a != m.addr && *to == m.addr
            }
            (Step::Conflict { addr: a, .. }, None | Some(FailoverState::Promoted)) => *a != m.addr,
            _ => false,
        };
        assert!(ok, "case {case}: {step:?} in state {state:?}");
    }
}
