//! What the leader does next for one master, as data: an operator's request (resolve, switchover)
//! first, else what `decide` says, else replicas the reports found that the log lacks. Pure: the
//! runner gathers the inputs and executes the step.

use std::collections::{BTreeMap, BTreeSet};

use super::candidate::choose;
use super::decide::{decide, DecideInput, Step};
use super::odown::ReportIn;
use crate::monitor::ReportedRole;
use crate::topology::{Addr, MasterRecord, ReplicaRecord, RequestKind};

/// Everything `next_step` reads.
pub struct Inputs<'a> {
    pub master: &'a MasterRecord,
    pub reports: &'a [ReportIn<'a>],
    /// The current voters: only their SDOWNs make ODOWN.
    pub voters: &'a BTreeSet<u64>,
    pub fresh_ms: u64,
    pub ping_interval_ms: u64,
    /// Wall clock in ms.
    pub now_ms: u64,
    /// How long the master has been down at the leader; 0 when it is up.
    pub master_down_ms: u64,
}

/// The next step for `input.master`.
pub fn next_step(input: &Inputs) -> Step {
    let master = input.master;
    // An operator's request lapses after failover-timeout rather than firing much later.
    let request = master
        .request
        .as_ref()
        .filter(|r| {
            master.failover.is_none()
                && input.now_ms.saturating_sub(r.at_ms) <= master.failover_timeout_ms
        })
        .map(|r| &r.kind);
    if let (Some(RequestKind::Adopt { addr }), false) = (request, master.paused) {
        return Step::Adopt { addr: addr.clone() };
    }
    if let (Some(RequestKind::Switchover { to }), false) = (request, master.paused) {
        let target = match to {
            Some(to) => Ok(to.clone()),
            None => choose(
                master,
                input.reports,
                input.fresh_ms,
                input.ping_interval_ms,
                0,
            ),
        };
        return match target {
            Ok(target) => Step::Switchover { target },
            Err(e) => Step::NoCandidate { reasons: e.reasons },
        };
    }
    let step = decide(&DecideInput {
        name: &master.name,
        master,
        reports: input.reports,
        voters: input.voters,
        fresh_ms: input.fresh_ms,
        ping_interval_ms: input.ping_interval_ms,
        now_ms: input.now_ms,
        master_down_ms: input.master_down_ms,
        paused: master.paused,
        forced: request == Some(&RequestKind::Forced),
    });
    // Paused: keep observing, never act on Redis (a failover in progress waits too).
    if step != Step::None && !master.paused {
        return step;
    }
    match discovered(master, input.reports, input.fresh_ms) {
        Some(replicas) => Step::Discovered { replicas },
        None => Step::None,
    }
}

/// Replicas the master lists in fresh reports that the log does not know yet (the log keeps the
/// ones it knows, so an old master that is down stays known and is folded in when it returns).
fn discovered(
    master: &MasterRecord,
    reports: &[ReportIn],
    fresh: u64,
) -> Option<Vec<ReplicaRecord>> {
    if master.failover.is_some() {
        return None;
    }
    let fresh_reports: Vec<&ReportIn> = reports
        .iter()
        .filter(|r| r.age_ms <= fresh && !r.report.tilt)
        .collect();
    let mut known: BTreeMap<Addr, ReplicaRecord> = master
        .replicas
        .iter()
        .map(|r| (r.addr.clone(), r.clone()))
        .collect();
    let mut changed = false;
    for r in &fresh_reports {
        let Some(o) = r.report.observation(&master.name, &master.addr) else {
            continue;
        };
        let Some(ReportedRole::Master { replicas }) = &o.role else {
            continue;
        };
        for link in replicas {
            let seen = fresh_reports
                .iter()
                .filter_map(|r| r.report.observation(&master.name, &link.addr))
                .min_by_key(|o| o.reply_age_ms);
            let record = ReplicaRecord {
                addr: link.addr.clone(),
                run_id: seen.map(|o| o.run_id.clone()).unwrap_or_default(),
                replid: seen.map(|o| o.replid.clone()).unwrap_or_default(),
            };
            if link.addr != master.addr
                && known.get(&link.addr) != Some(&record)
                && !record.run_id.is_empty()
            {
                known.insert(link.addr.clone(), record);
                changed = true;
            }
        }
    }
    changed.then(|| known.into_values().collect())
}
