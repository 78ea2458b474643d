//! ODOWN from the nodes' reports, the positive-evidence veto, and which observations count at all
//! (fresh, not in TILT). Pure: no I/O, no clock; every age comes in with the input.

use std::collections::{BTreeMap, BTreeSet};

use super::quorum::effective_quorum;
use crate::monitor::{NodeReport, Observation, ReportedRole};
use crate::topology::{Addr, MasterRecord};

/// One node's latest report as the leader holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportIn<'a> {
    pub node_id: u64,
    /// Time since the leader received it.
    pub age_ms: u64,
    pub report: &'a NodeReport,
}

impl ReportIn<'_> {
    /// Whether the report may be read at all: fresh, and its node not in TILT (DESIGN "Detection":
    /// a lagging node "ignores its observations"; a TILTed report counts as neither up nor down).
    pub fn counts(&self, fresh_ms: u64) -> bool {
        self.age_ms <= fresh_ms && !self.report.tilt
    }
}

/// What the leader concluded about one master from the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OdownVerdict {
    /// Distinct nodes whose fresh, non-TILT report says the master is SDOWN.
    pub sdown_votes: u32,
    /// Distinct nodes whose fresh, non-TILT report has an opinion on the master (up or down).
    pub fresh_reports: u32,
    /// The effective quorum: the configured one clamped to the current voters
    /// ([`super::quorum::effective_quorum`]).
    pub quorum: u32,
    /// `sdown_votes >= quorum`.
    pub odown: bool,
    /// Why a failover must not start although ODOWN holds; only ever set when `odown` is.
    pub vetoed: Option<String>,
}

/// Whether the log's ODOWN verdict should change: to down when a quorum sees the master down
/// and the log does not say so; to up when the log says down but so many fresh reports see it up
/// that no quorum can say down (a leader that has not heard from enough nodes yet, just after
/// an election, must not clear it).
pub fn odown_change(logged: bool, v: &OdownVerdict, voters: usize) -> Option<bool> {
    let up = v.fresh_reports.saturating_sub(v.sdown_votes) as usize;
    let certainly_up = up > voters.saturating_sub(v.quorum as usize);
    match (logged, v.odown) {
        (false, true) => Some(true),
        (true, false) if certainly_up => Some(false),
        _ => None,
    }
}

/// Every counting observation of `addr` under master `name`, with the report that carried it.
pub fn observations<'a, 'r>(
    name: &'a str,
    addr: &'a Addr,
    reports: &'a [ReportIn<'r>],
    fresh_ms: u64,
) -> impl Iterator<Item = (&'a ReportIn<'r>, &'r Observation)> + 'a {
    reports
        .iter()
        .filter(move |r| r.counts(fresh_ms))
        .filter_map(move |r| r.report.observation(name, addr).map(|o| (r, o)))
}

/// The observation whose last valid PING reply is the most recent as of now at the leader
/// (`age_ms + reply_age_ms`); ties go to the fresher report, then the lower node id.
pub fn freshest_reply<'r>(
    name: &str,
    addr: &Addr,
    reports: &[ReportIn<'r>],
    fresh_ms: u64,
) -> Option<&'r Observation> {
    observations(name, addr, reports, fresh_ms)
        .min_by_key(|(r, o)| (r.age_ms.saturating_add(o.reply_age_ms), r.age_ms, r.node_id))
        .map(|(_, o)| o)
}

/// The observation with the most recent INFO (the one that says what role the instance has), as of
/// now at the leader; observations without INFO or without a parsed role are skipped.
pub fn freshest_info<'r>(
    name: &str,
    addr: &Addr,
    reports: &[ReportIn<'r>],
    fresh_ms: u64,
) -> Option<&'r Observation> {
    freshest_info_at(name, addr, reports, fresh_ms).map(|(o, _)| o)
}

/// `freshest_info` with the INFO's age as of now at the leader (INFO age + report age).
fn freshest_info_at<'r>(
    name: &str,
    addr: &Addr,
    reports: &[ReportIn<'r>],
    fresh_ms: u64,
) -> Option<(&'r Observation, u64)> {
    observations(name, addr, reports, fresh_ms)
        .filter_map(|(r, o)| {
            let age = r.age_ms.saturating_add(o.info_age_ms?);
            o.role.as_ref()?;
            Some(((age, r.age_ms, r.node_id), o))
        })
        .min_by_key(|(key, _)| *key)
        .map(|((age, _, _), o)| (o, age))
}

/// ODOWN for `master` (DESIGN "Detection": "ODOWN when ≥ quorum nodes report SDOWN"; "the leader
/// counts an SDOWN only from a fresh report. A missing report is 'unknown', not 'up'").
///
/// A node that sent several reports is counted once, from its freshest. Only current voters count
/// (invariant 11): a learner, a removed node or an id nobody added never adds a vote. The quorum
/// is the effective one: never below a majority of those voters nor above their number, whatever
/// membership changes happened since it was configured.
pub fn odown(
    name: &str,
    master: &MasterRecord,
    reports: &[ReportIn],
    voters: &BTreeSet<u64>,
    fresh_ms: u64,
) -> OdownVerdict {
    let mut by_node: BTreeMap<u64, &ReportIn> = BTreeMap::new();
    let counting = reports
        .iter()
        .filter(|r| r.counts(fresh_ms) && voters.contains(&r.node_id));
    for r in counting {
        let keep = by_node
            .get(&r.node_id)
            .map_or(true, |k| r.age_ms < k.age_ms);
        if keep {
            by_node.insert(r.node_id, r);
        }
    }
    let mut sdown_votes = 0u32;
    let mut fresh_reports = 0u32;
    for r in by_node.values() {
        if let Some(o) = r.report.observation(name, &master.addr) {
            fresh_reports = fresh_reports.saturating_add(1);
            if o.sdown {
                sdown_votes = sdown_votes.saturating_add(1);
            }
        }
    }
    let quorum = effective_quorum(master.quorum, voters.len());
    let odown = sdown_votes >= quorum;
    let vetoed = if odown {
        replicas_veto(name, master, reports, fresh_ms)
    } else {
        None
    };
    OdownVerdict {
        sdown_votes,
        fresh_reports,
        quorum,
        odown,
        vetoed,
    }
}

/// DESIGN "Detection": "Positive evidence vetoes a failover: … every replica reports its master
/// link up with recent I/O. Replica link status is never *required*".
///
/// For each known replica the freshest INFO decides; the I/O counts as recent when its age as of
/// now at the leader (`master_last_io` + INFO age + report age) is under down-after. No replicas,
/// or any replica without such evidence, means no veto. (The co-located holder's veto belongs to
/// the lease.)
fn replicas_veto(
    name: &str,
    master: &MasterRecord,
    reports: &[ReportIn],
    fresh_ms: u64,
) -> Option<String> {
    let replicas: Vec<_> = master
        .replicas
        .iter()
        .filter(|r| r.addr != master.addr)
        .collect();
    if replicas.is_empty() {
        return None;
    }
    let mut oldest_io = 0u64;
    for replica in &replicas {
        let (o, info_age) = freshest_info_at(name, &replica.addr, reports, fresh_ms)?;
        let Some(ReportedRole::Replica {
            master: of,
            link_up: true,
            last_io_ms: Some(io),
            ..
        }) = &o.role
        else {
            return None;
        };
        let age = io.saturating_add(info_age);
        if of != &master.addr || age >= master.down_after_ms {
            return None;
        }
        oldest_io = oldest_io.max(age);
    }
    Some(format!(
        "all {} replicas report their link to {} up with I/O {} ms ago at most (down-after {} ms)",
        replicas.len(),
        master.addr,
        oldest_io,
        master.down_after_ms
    ))
}
