//! What the leader does next for one master (`next::next_step`): an operator's request before
//! `decide`, a request that lapsed, a paused master, and replicas discovered from reports.

use super::*;
use crate::failover::decide::Step;
use crate::failover::next::{next_step, Inputs};
use crate::topology::{FailoverRequest, RequestKind};

fn step(m: &MasterRecord, reports: &[NodeReport], now_ms: u64) -> Step {
    let inputs = ins(reports);
    let voters = voters();
    next_step(&Inputs {
        master: m,
        reports: &inputs,
        voters: &voters,
        fresh_ms: FRESH,
        ping_interval_ms: PING,
        now_ms,
        master_down_ms: 0,
    })
}

fn healthy(node: u64) -> NodeReport {
    report(
        node,
        vec![
            as_master(MASTER, &[6380], "r", 10),
            as_replica(6380, MASTER, 10),
        ],
    )
}

fn requested(kind: RequestKind, at_ms: u64) -> MasterRecord {
    let mut m = master(&[6380]);
    m.replicas[0].run_id = "run6380".to_owned();
    m.request = Some(FailoverRequest { kind, at_ms });
    m
}

// An operator's switchover to a named instance comes before anything `decide` would do; it
// lapses after failover-timeout rather than firing much later.
#[test]
fn a_switchover_request_comes_first_and_lapses() {
    let to = RequestKind::Switchover {
        to: Some(addr(6380)),
    };
    let m = requested(to, 1_000);
    let reports = [healthy(1), healthy(2)];
    assert_eq!(
        step(&m, &reports, 2_000),
        Step::Switchover { target: addr(6380) }
    );
    assert_eq!(step(&m, &reports, 1_000 + 10_001), Step::None);
}

// A paused master takes no request and starts nothing, yet keeps learning replicas.
#[test]
fn a_paused_master_acts_on_nothing() {
    let mut m = requested(RequestKind::Adopt { addr: addr(6380) }, 1_000);
    m.paused = true;
    let reports = [healthy(1), healthy(2)];
    assert_eq!(step(&m, &reports, 2_000), Step::None);
    m.paused = false;
    assert_eq!(step(&m, &reports, 2_000), Step::Adopt { addr: addr(6380) });
}

// Replicas the master lists in fresh reports, with a run id, are added to the log's; the master
// itself and replicas already known the same way are not.
#[test]
fn replicas_found_in_reports_are_discovered() {
    let mut m = master(&[6380]);
    m.replicas[0].run_id = "run6380".to_owned();
    let listing = |node| {
        report(
            node,
            vec![
                as_master(MASTER, &[6380, 6381], "r", 10),
                as_replica(6380, MASTER, 10),
                as_replica(6381, MASTER, 10),
            ],
        )
    };
    match step(&m, &[listing(1), listing(2)], 2_000) {
        Step::Discovered { replicas } => {
            let found: Vec<(u16, String)> = replicas
                .iter()
                .map(|r| (r.addr.port, r.run_id.clone()))
                .collect();
            assert_eq!(
                found,
                [(6380, "run6380".to_owned()), (6381, "run6381".to_owned())]
            );
        }
        other => panic!("expected Discovered, got {other:?}"),
    }
    assert_eq!(step(&m, &[healthy(1), healthy(2)], 2_000), Step::None);
}
