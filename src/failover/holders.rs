//! Which node's host runs which instance (DESIGN "Co-location"), and the log entries that keep
//! lease holders, grants and VIPs in step with it and with the config. Pure: the leader's runner
//! commits what it returns.

use super::odown::ReportIn;
use std::collections::BTreeMap;

use crate::topology::{Addr, Command, FailoverState, TopologyState, Vip};

/// The node whose host runs `addr`: the one whose report lists, among its local instances, the
/// run id that fresh reports observed at `addr`. Matching is by run id, never by IP.
pub fn holder_of(name: &str, addr: &Addr, reports: &[ReportIn], fresh_ms: u64) -> Option<u64> {
    let fresh = || reports.iter().filter(move |r| r.age_ms <= fresh_ms);
    let run_id = fresh()
        .filter_map(|r| r.report.observation(name, addr))
        .map(|o| o.run_id.as_str())
        .find(|id| !id.is_empty())?;
    fresh()
        .find(|r| r.report.local.run_ids.contains(run_id))
        .map(|r| r.node_id)
}

/// The next lease entry to commit, if any: a master whose co-located node changed gets it as
/// holder; a holder of a master that no failover is moving gets a grant when it has none.
/// Masters with a failover started are left alone: their old holder's grant was revoked on
/// purpose, and granting it again would let the old master take writes.
pub fn next_lease_entry(
    state: &TopologyState,
    reports: &[ReportIn],
    fresh_ms: impl Fn(u64) -> u64,
) -> Option<Command> {
    // A holder whose Redis is gone gave its revoked grant up: dead without waiting for expiry.
    for m in state.masters() {
        let Some(r) = m.failover.as_ref().and_then(|f| f.revoked) else {
            continue;
        };
        let released = reports
            .iter()
            .filter(|rep| rep.age_ms <= fresh_ms(m.down_after_ms))
            .any(|rep| {
                rep.node_id == r.grant.holder && rep.report.local.released.contains(&r.grant.id)
            });
        if released && !r.released {
            return Some(Command::LeaseReleased { id: r.grant.id });
        }
    }
    let settled = |m: &&crate::topology::MasterRecord| {
        m.failover
            .as_ref()
            .map_or(true, |f| f.state != FailoverState::Started)
    };
    for m in state.masters().filter(settled) {
        if m.failover.is_some() {
            continue;
        }
        if let Some(h) = holder_of(&m.name, &m.addr, reports, fresh_ms(m.down_after_ms)) {
            if m.holder != Some(h) {
                return Some(Command::HolderAssigned {
                    name: m.name.clone(),
                    holder: Some(h),
                });
            }
        }
    }
    let holder_without_grant = state
        .masters()
        .filter(settled)
        .filter_map(|m| m.holder)
        .find(|h| state.lease_of(*h).is_none());
    holder_without_grant.map(|holder| Command::LeaseGranted { holder })
}

/// The next VIP readiness entry, if any: a node whose fresh report says it cannot (or now can)
/// carry a master's VIP, where the log says otherwise. Silent nodes keep what the log says.
pub fn next_vip_entry(
    state: &TopologyState,
    reports: &[ReportIn],
    fresh_ms: impl Fn(u64) -> u64,
) -> Option<Command> {
    for m in state.masters().filter(|m| m.vip.is_some()) {
        let fresh = reports
            .iter()
            .filter(|r| r.age_ms <= fresh_ms(m.down_after_ms));
        for r in fresh {
            let reported = r.report.local.vip_problems.get(&m.name);
            if reported != m.vip_problems.get(&r.node_id) {
                return Some(Command::VipReadiness {
                    name: m.name.clone(),
                    node: r.node_id,
                    problem: reported.cloned(),
                });
            }
        }
    }
    None
}

/// A VIP the config names (`[masters.NAME] vip`) for a monitored master whose log has none. The
/// log wins when both name one, so a restart with an old config never moves a VIP.
pub fn config_vip_entry(state: &TopologyState, config: &BTreeMap<String, Vip>) -> Option<Command> {
    config.iter().find_map(|(name, vip)| {
        let m = state.master(name)?;
        m.vip.is_none().then(|| Command::Set {
            name: name.clone(),
            options: vec![("vip".to_owned(), vip.to_string())],
        })
    })
}
