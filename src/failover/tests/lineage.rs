//! Invariant 7: "Never fold newer data into older … if the instance is *ahead* of the log (a stale
//! or restored log, a manual change), it emits +topology-conflict and waits for an operator."

use super::*;
use crate::failover::decide::{decide, DecideInput, Step};
use crate::topology::{FailoverRecord, FailoverState};

const NEW: u16 = 7001;
const X: u16 = 7002;
const NOW: u64 = 1_000_000;

/// The log after MasterSwitched to NEW with lineage "L" (NEW was promoted from "P" at offset
/// 900, so its replid2 is "P" and second_repl_offset 901); X is the only other replica.
fn log(replicas: &[u16]) -> MasterRecord {
    let mut m = master(replicas);
    m.addr = addr(NEW);
    m.replid = Some("L".to_owned());
    m.epoch = 3;
    m.config_epoch = 3;
    m.failover = Some(FailoverRecord {
        epoch: 3,
        candidate: addr(NEW),
        candidate_holder: None,
        state: FailoverState::Promoted,
        reason: "odown".to_owned(),
        from: addr(7000),
        started_at_ms: NOW,
        promoted_at_ms: Some(NOW),
        revoked: None,
    });
    m
}

fn new_master(replid2: &str) -> Observation {
    Observation {
        replid2: replid2.to_owned(),
        second_repl_offset: Some(901),
        ..as_master(NEW, &[], "L", 1_000)
    }
}

fn claims(replid: &str, offset: u64, replid2: &str, second: Option<u64>) -> Observation {
    Observation {
        replid2: replid2.to_owned(),
        second_repl_offset: second,
        ..as_master(X, &[], replid, offset)
    }
}

fn follows(of: u16, replid: &str, offset: u64, replid2: &str, second: Option<u64>) -> Observation {
    Observation {
        replid: replid.to_owned(),
        replid2: replid2.to_owned(),
        second_repl_offset: second,
        ..as_replica(X, of, offset)
    }
}

fn judge(m: &MasterRecord, obs: Vec<Observation>) -> Step {
    let reports = vec![report(1, obs)];
    let reports = ins(&reports);
    decide(&DecideInput {
        name: NAME,
        master: m,
        reports: &reports,
        voters: &voters(),
        fresh_ms: FRESH,
        ping_interval_ms: PING,
        now_ms: NOW,
        master_down_ms: 0,
        paused: false,
        forced: false,
    })
}

fn fold() -> Step {
    Step::FoldIn {
        addr: addr(X),
        to: addr(NEW),
    }
}

fn is_conflict(s: &Step) -> bool {
    matches!(s, Step::Conflict { addr: a, .. } if *a == addr(X))
}

/// What a row expects: a conflict about X, or exactly this step.
enum Want {
    Conflict,
    Step(Step),
}

/// X observed as `x` next to the new master (whose replid2 is `replid2`).
fn check(rule: &str, x: Observation, replid2: &str, want: Want) {
    let step = judge(&log(&[X]), vec![new_master(replid2), x]);
    match want {
        Want::Conflict => assert!(is_conflict(&step), "{rule}: {step:?}"),
        Want::Step(want) => assert_eq!(step, want, "{rule}"),
    }
}

/// One row per rule of `decide::lineage`, for an instance claiming master.
#[test]
fn lineage_of_an_instance_claiming_master() {
    use Want::Conflict;
    let fold = || Want::Step(fold());
    let zeros = "0".repeat(40);
    check(
        "same replid as the log",
        claims("L", 5_000, "", None),
        "P",
        fold(),
    );
    // The deposed master: what it took after the switch is the loss DESIGN states.
    check(
        "new master's predecessor",
        claims("P", 2_000, "", None),
        "P",
        fold(),
    );
    check(
        "branched off the log, written to",
        claims("Q", 600, "L", Some(500)),
        "P",
        Conflict,
    );
    check(
        "branched off the log, no writes",
        claims("Q", 600, "L", Some(601)),
        "P",
        fold(),
    );
    check(
        "branched off the log, offset unknown",
        claims("Q", 600, "L", None),
        "P",
        Conflict,
    );
    check(
        "sibling with writes",
        claims("S", 900, "P", Some(850)),
        "P",
        Conflict,
    );
    check(
        "sibling without writes",
        claims("S", 850, "P", Some(851)),
        "P",
        fold(),
    );
    check(
        "unknown lineage, beyond",
        claims("Z", 1_001, "", None),
        "P",
        Conflict,
    );
    check(
        "unknown lineage, at the offset",
        claims("Z", 1_000, "", None),
        "P",
        fold(),
    );
    check(
        "no replid, beyond",
        claims("", 2_000, "", None),
        "P",
        Conflict,
    );
    check(
        "40 zeros mean none",
        claims("Z", 10, &zeros, Some(5)),
        "P",
        fold(),
    );
    // Without the new master's replid2 the deposed master is judged on offsets alone.
    check(
        "no replid2, predecessor beyond",
        claims("P", 1_001, "", None),
        "",
        Conflict,
    );
    check(
        "no replid2, predecessor behind",
        claims("P", 999, "", None),
        "",
        fold(),
    );
}

/// The same rules for a replica of another master, except the offset-only one.
#[test]
fn lineage_of_a_replica_of_another_master() {
    let repoint = || {
        Want::Step(Step::Repoint {
            replicas: vec![addr(X)],
            to: addr(NEW),
        })
    };
    let out_of_band = follows(7009, "Q", 600, "L", Some(500));
    check(
        "its master branched off the log",
        out_of_band,
        "P",
        Want::Conflict,
    );
    let deposed = follows(MASTER, "P", 880, "", None);
    check("replica of the deposed master", deposed, "P", repoint());
    // Priority can pick a candidate with a smaller offset than its peers.
    let unknown = follows(7009, "Z", 5_000, "", None);
    check(
        "unknown lineage: not judged on offsets",
        unknown,
        "P",
        repoint(),
    );
}

/// Without the new master's INFO only "same replid as the log" and "promoted out of the log's
/// lineage" can be decided; anything else waits.
#[test]
fn without_the_masters_info_only_the_log_decides() {
    let m = log(&[X]);
    assert_eq!(judge(&m, vec![claims("L", 5, "", None)]), fold());
    assert!(is_conflict(&judge(
        &m,
        vec![claims("Q", 600, "L", Some(500))]
    )));
    assert_eq!(judge(&m, vec![claims("P", 5, "", None)]), Step::None);
    assert_eq!(judge(&m, vec![claims("Z", 5, "", None)]), Step::None);
}

/// A conflict stops every other role change until an operator resolves it, and says why.
#[test]
fn conflict_comes_first_and_explains() {
    let m = log(&[X, 7003]);
    let stale = follows(MASTER, "P", 880, "", None);
    let stale = Observation {
        addr: addr(7003),
        ..stale
    };
    let step = judge(
        &m,
        vec![new_master("P"), claims("Z", 5_000, "", None), stale],
    );
    assert_eq!(
        step,
        Step::Conflict {
            addr: addr(X),
            detail: "unknown lineage Z at offset 5000 is beyond 10.0.0.1:7001 (L at offset 1000)"
                .to_owned()
        }
    );
    let step = judge(&m, vec![new_master("P"), claims("Q", 600, "L", Some(500))]);
    assert_eq!(
        step,
        Step::Conflict {
            addr: addr(X),
            detail: "replid Q branched from the log's lineage (L) and holds 101 bytes of its own \
                     (offset 600)"
                .to_owned()
        }
    );
}

/// After FailoverEnded the same check guards the idle state's fold-in.
#[test]
fn idle_state_checks_lineage_too() {
    let mut m = log(&[X]);
    m.failover = None;
    let step = judge(&m, vec![new_master("P"), claims("Z", 5_000, "", None)]);
    assert!(is_conflict(&step), "{step:?}");
    let step = judge(&m, vec![new_master("P"), claims("P", 5_000, "", None)]);
    assert_eq!(step, fold());
}
