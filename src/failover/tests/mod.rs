//! Table tests for the failover decisions; each cites the DESIGN.md sentence or the Sentinel rule
//! (reference/sentinel-surface.md §5.3) it checks. `quick` checks `choose` against a dumb sort.

mod candidate;
mod decide;
mod delta;
mod exec;
mod holders;
mod lineage;
mod next;
mod odown;
mod promoted;
mod quick;

use super::odown::ReportIn;
use crate::monitor::{NodeReport, Observation, ReplicaLink, ReportedRole};
use crate::topology::{Addr, MasterRecord, ReplicaRecord};

const NAME: &str = "mymaster";
const MASTER: u16 = 6379;
/// Freshness bound used by most tests.
const FRESH: u64 = 300;
const PING: u64 = 100;

fn addr(port: u16) -> Addr {
    Addr::new("10.0.0.1", port)
}

/// Master at MASTER with quorum 2, down-after 1000 ms and the given replicas in the log.
fn master(replicas: &[u16]) -> MasterRecord {
    let mut m = MasterRecord::new(NAME, addr(MASTER), 2, 1_000);
    m.failover_timeout_ms = 10_000;
    m.replicas = replicas
        .iter()
        .map(|p| ReplicaRecord {
            addr: addr(*p),
            run_id: String::new(),
            replid: String::new(),
        })
        .collect();
    m.replicas.sort_by(|a, b| a.addr.cmp(&b.addr));
    m
}

/// A reachable instance with fresh INFO but no role yet.
fn seen(port: u16) -> Observation {
    Observation {
        addr: addr(port),
        sdown: false,
        reply_age_ms: 10,
        info_age_ms: Some(50),
        role: None,
        run_id: format!("run{port}"),
        replid: String::new(),
        repl_offset: 0,
        replid2: String::new(),
        second_repl_offset: None,
        role_age_ms: 0,
        reboot: false,
        link_up: true,
    }
}

/// An instance that reports role master with the given replicas.
fn as_master(port: u16, replicas: &[u16], replid: &str, offset: u64) -> Observation {
    Observation {
        role: Some(ReportedRole::Master {
            replicas: replicas
                .iter()
                .map(|p| ReplicaLink {
                    addr: addr(*p),
                    state: "online".to_owned(),
                    offset,
                })
                .collect(),
        }),
        replid: replid.to_owned(),
        repl_offset: offset,
        ..seen(port)
    }
}

/// A healthy replica of `of`: link up, I/O just now, priority 100.
fn as_replica(port: u16, of: u16, offset: u64) -> Observation {
    Observation {
        role: Some(ReportedRole::Replica {
            master: addr(of),
            link_up: true,
            link_down_ms: 0,
            priority: 100,
            offset,
            last_io_ms: Some(0),
        }),
        repl_offset: offset,
        ..seen(port)
    }
}

/// Changes a replica observation's role fields in place.
fn with_replica(
    mut o: Observation,
    f: impl FnOnce(&mut bool, &mut u64, &mut u32, &mut Option<u64>),
) -> Observation {
    if let Some(ReportedRole::Replica {
        link_up,
        link_down_ms,
        priority,
        last_io_ms,
        ..
    }) = &mut o.role
    {
        f(link_up, link_down_ms, priority, last_io_ms);
    }
    o
}

/// SDOWN: no valid reply for longer than down-after.
fn down(port: u16) -> Observation {
    Observation {
        sdown: true,
        reply_age_ms: 5_000,
        info_age_ms: Some(5_000),
        ..seen(port)
    }
}

/// The voters of the tests' cluster: every node id the tests use.
fn voters() -> std::collections::BTreeSet<u64> {
    (1..=3).collect()
}

fn report(node: u64, obs: Vec<Observation>) -> NodeReport {
    let mut r = NodeReport {
        node_id: node,
        tilt: false,
        ..NodeReport::default()
    };
    r.masters.insert(NAME.to_owned(), obs);
    r
}

fn tilted(node: u64, obs: Vec<Observation>) -> NodeReport {
    NodeReport {
        tilt: true,
        ..report(node, obs)
    }
}

/// Every report just received.
fn ins(reports: &[NodeReport]) -> Vec<ReportIn<'_>> {
    aged(reports, &vec![0; reports.len()])
}

fn aged<'a>(reports: &'a [NodeReport], ages: &[u64]) -> Vec<ReportIn<'a>> {
    reports
        .iter()
        .zip(ages)
        .map(|(r, age)| ReportIn {
            node_id: r.node_id,
            age_ms: *age,
            report: r,
        })
        .collect()
}
