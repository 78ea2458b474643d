//! Lease holders, grants and VIP readiness as the leader derives them from the reports (DESIGN
//! "Co-location", invariant 4, issue 5 §1).

use super::*;
use crate::failover::holders::{config_vip_entry, holder_of, next_lease_entry, next_vip_entry};
use crate::topology::{Command, TopologyState, Vip};

/// `node`'s report: it sees the master, and runs `local` (run ids) on its host.
fn colocated(node: u64, local: &[u16]) -> NodeReport {
    let mut r = report(node, vec![seen(MASTER), seen(6380)]);
    r.local.run_ids = local.iter().map(|p| format!("run{p}")).collect();
    r
}

fn state(m: MasterRecord) -> TopologyState {
    let mut s = TopologyState::default();
    s.masters.insert(NAME.to_owned(), m.into());
    s
}

fn fresh(_: u64) -> u64 {
    FRESH
}

// DESIGN "Co-location": by run id, never by address; stale reports do not count.
#[test]
fn the_holder_is_the_node_running_the_masters_run_id() {
    let reports = [colocated(1, &[6380]), colocated(2, &[MASTER])];
    assert_eq!(
        holder_of(NAME, &addr(MASTER), &ins(&reports), FRESH),
        Some(2)
    );
    assert_eq!(holder_of(NAME, &addr(6380), &ins(&reports), FRESH), Some(1));
    assert_eq!(holder_of(NAME, &addr(6399), &ins(&reports), FRESH), None);
    let stale = aged(&reports, &[0, FRESH + 1]);
    assert_eq!(holder_of(NAME, &addr(MASTER), &stale, FRESH), None);
}

// Invariant 4: the holder is assigned first, then granted; a started failover gets neither.
#[test]
fn lease_entries_assign_then_grant_never_during_a_failover() {
    let reports = [colocated(1, &[MASTER]), colocated(2, &[6380])];
    let mut s = state(master(&[6380]));
    assert_eq!(
        next_lease_entry(&s, &ins(&reports), fresh),
        Some(Command::HolderAssigned {
            name: NAME.to_owned(),
            holder: Some(1)
        })
    );
    std::sync::Arc::make_mut(s.masters.get_mut(NAME).unwrap()).holder = Some(1);
    assert_eq!(
        next_lease_entry(&s, &ins(&reports), fresh),
        Some(Command::LeaseGranted { holder: 1 })
    );
    s.leases
        .insert(1, crate::topology::LeaseGrant { id: 9, holder: 1 });
    assert_eq!(next_lease_entry(&s, &ins(&reports), fresh), None);
}

// Issue 5 §1: a node that cannot carry the VIP is recorded, and cleared once it can; silent
// nodes keep what the log says.
#[test]
fn vip_readiness_follows_fresh_reports() {
    let mut m = master(&[6380]);
    m.vip = Some(Vip {
        ip: std::net::Ipv4Addr::new(10, 77, 0, 200),
        prefix: 24,
    });
    let mut s = state(m);
    let mut two = colocated(2, &[6380]);
    two.local
        .vip_problems
        .insert(NAME.to_owned(), "raftinel lacks CAP_NET_ADMIN".to_owned());
    let reports = [colocated(1, &[MASTER]), two];
    let entry = next_vip_entry(&s, &ins(&reports), fresh);
    assert_eq!(
        entry,
        Some(Command::VipReadiness {
            name: NAME.to_owned(),
            node: 2,
            problem: Some("raftinel lacks CAP_NET_ADMIN".to_owned())
        })
    );
    std::sync::Arc::make_mut(s.masters.get_mut(NAME).unwrap())
        .vip_problems
        .insert(2, "raftinel lacks CAP_NET_ADMIN".to_owned());
    assert_eq!(next_vip_entry(&s, &ins(&reports), fresh), None);
    // Node 2 silent: nothing changes.
    assert_eq!(
        next_vip_entry(&s, &aged(&reports, &[0, FRESH + 1]), fresh),
        None
    );
    // Node 2 fixed: cleared.
    let fixed = [colocated(1, &[MASTER]), colocated(2, &[6380])];
    assert_eq!(
        next_vip_entry(&s, &ins(&fixed), fresh),
        Some(Command::VipReadiness {
            name: NAME.to_owned(),
            node: 2,
            problem: None
        })
    );
    // No VIP: nothing to say.
    std::sync::Arc::make_mut(s.masters.get_mut(NAME).unwrap()).vip = None;
    assert_eq!(next_vip_entry(&s, &ins(&reports), fresh), None);
}

// `[masters.NAME] vip` fills a gap in the log and never overrides it.
#[test]
fn the_configs_vip_only_fills_a_gap() {
    let vip = |last: u8| Vip {
        ip: std::net::Ipv4Addr::new(10, 77, 0, last),
        prefix: 24,
    };
    let config = [(NAME.to_owned(), vip(200))].into_iter().collect();
    let mut s = state(master(&[]));
    assert_eq!(
        config_vip_entry(&s, &config),
        Some(Command::Set {
            name: NAME.to_owned(),
            options: vec![("vip".to_owned(), "10.77.0.200/24".to_owned())]
        })
    );
    std::sync::Arc::make_mut(s.masters.get_mut(NAME).unwrap()).vip = Some(vip(201));
    assert_eq!(config_vip_entry(&s, &config), None);
    // Not monitored: nothing.
    assert_eq!(config_vip_entry(&TopologyState::default(), &config), None);
}
