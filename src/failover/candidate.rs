//! The candidate choice: Sentinel's `sentinelSelectSlave` rules (reference/sentinel-surface.md
//! §5.3), scaled to raftinel's faster probing. Pure: no I/O, no clock.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use super::odown::{freshest_reply, observations, ReportIn};
use crate::monitor::{Observation, ReportedRole};
use crate::topology::{Addr, MasterRecord};

/// Sentinel's INFO period towards a healthy master's replicas, scaled from 10 s to raftinel's 1 s.
pub const INFO_PERIOD_MS: u64 = 1_000;

/// Why a replica cannot be the candidate; the first rule that applies, in Sentinel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// No fresh, non-TILT report observes it.
    NoObservation,
    /// SDOWN in its freshest observation.
    Sdown,
    /// Its last valid PING reply is older than 5 × the ping interval.
    StaleReply { age_ms: u64, limit_ms: u64 },
    /// No INFO, or no role parsed from it.
    NoInfo,
    /// Its INFO is older than `info_limit_ms`.
    StaleInfo { age_ms: u64, limit_ms: u64 },
    /// It reports role master.
    NotReplica,
    /// `replica-priority 0`: never promoted.
    PriorityZero,
    /// Its master link has been down longer than the master's downtime + 10 × down-after.
    LinkDownTooLong { down_ms: u64, limit_ms: u64 },
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::NoObservation => f.write_str("not observed"),
            Exclusion::Sdown => f.write_str("sdown"),
            Exclusion::StaleReply { age_ms, limit_ms } => {
                write!(f, "last reply {age_ms} ms ago > {limit_ms} ms")
            }
            Exclusion::NoInfo => f.write_str("no INFO"),
            Exclusion::StaleInfo { age_ms, limit_ms } => {
                write!(f, "INFO {age_ms} ms old > {limit_ms} ms")
            }
            Exclusion::NotReplica => f.write_str("role master"),
            Exclusion::PriorityZero => f.write_str("replica-priority 0"),
            Exclusion::LinkDownTooLong { down_ms, limit_ms } => {
                write!(f, "master link down {down_ms} ms > {limit_ms} ms")
            }
        }
    }
}

/// No replica qualifies; every known replica with the reason it was excluded, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCandidate {
    pub reasons: Vec<(Addr, Exclusion)>,
}

impl fmt::Display for NoCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            return f.write_str("no known replicas");
        }
        for (i, (addr, why)) in self.reasons.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{addr}: {why}")?;
        }
        Ok(())
    }
}

/// Sentinel excludes a replica whose INFO is older than 3 × the INFO period, or 5 × the ping period
/// while the master is down. While the master is down raftinel's monitor sends INFO at the ping
/// interval, but it switches cadence only once it sees SDOWN, so the last INFO can still be one
/// normal period old: the bound is `5 × ping + INFO_PERIOD_MS` when `master_down_ms > 0`, and
/// `3 × max(INFO_PERIOD_MS, ping)` for a live master (an operator's forced failover).
pub fn info_limit_ms(ping_interval_ms: u64, master_down_ms: u64) -> u64 {
    if master_down_ms > 0 {
        ping_interval_ms
            .saturating_mul(5)
            .saturating_add(INFO_PERIOD_MS)
    } else {
        INFO_PERIOD_MS.max(ping_interval_ms).saturating_mul(3)
    }
}

/// Every replica to consider: the log's, plus any a fresh Master-role observation of the master
/// lists; never the master itself. Sorted by address, no duplicates.
pub fn known_replicas(
    name: &str,
    master: &MasterRecord,
    reports: &[ReportIn],
    fresh_ms: u64,
) -> Vec<Addr> {
    let mut all: BTreeSet<Addr> = master.replicas.iter().map(|r| r.addr.clone()).collect();
    for (_, o) in observations(name, &master.addr, reports, fresh_ms) {
        if let Some(ReportedRole::Master { replicas }) = &o.role {
            all.extend(replicas.iter().map(|l| l.addr.clone()));
        }
    }
    all.remove(&master.addr);
    all.into_iter().collect()
}

/// A replica that passed every exclusion, with what the ordering reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible<'r> {
    pub addr: Addr,
    pub priority: u32,
    pub offset: u64,
    pub run_id: &'r str,
}

/// Sentinel's exclusions applied to one replica's freshest observation.
pub fn eligible<'r>(
    addr: &Addr,
    obs: Option<&'r Observation>,
    master: &MasterRecord,
    ping_interval_ms: u64,
    master_down_ms: u64,
) -> Result<Eligible<'r>, Exclusion> {
    let o = obs.ok_or(Exclusion::NoObservation)?;
    if o.sdown {
        return Err(Exclusion::Sdown);
    }
    let reply_limit = ping_interval_ms.saturating_mul(5);
    if o.reply_age_ms > reply_limit {
        return Err(Exclusion::StaleReply {
            age_ms: o.reply_age_ms,
            limit_ms: reply_limit,
        });
    }
    let (Some(info_age), Some(role)) = (o.info_age_ms, o.role.as_ref()) else {
        return Err(Exclusion::NoInfo);
    };
    let info_limit = info_limit_ms(ping_interval_ms, master_down_ms);
    if info_age > info_limit {
        return Err(Exclusion::StaleInfo {
            age_ms: info_age,
            limit_ms: info_limit,
        });
    }
    let ReportedRole::Replica {
        priority,
        offset,
        link_down_ms,
        ..
    } = role
    else {
        return Err(Exclusion::NotReplica);
    };
    if *priority == 0 {
        return Err(Exclusion::PriorityZero);
    }
    let link_limit = master_down_ms.saturating_add(master.down_after_ms.saturating_mul(10));
    if *link_down_ms > link_limit {
        return Err(Exclusion::LinkDownTooLong {
            down_ms: *link_down_ms,
            limit_ms: link_limit,
        });
    }
    Ok(Eligible {
        addr: addr.clone(),
        priority: *priority,
        offset: *offset,
        run_id: &o.run_id,
    })
}

/// Sentinel's order: lower priority, then higher offset, then the smaller run id compared
/// case-insensitively with an unknown (empty) run id last; the address breaks any remaining tie.
/// The candidate by priority and offset as read just now (`now`: address → (priority, offset)),
/// among the replicas the reports found eligible: one that did not answer in time, or now says
/// priority 0, is left out; none left keeps `proposed`.
pub fn rerank(ok: Vec<Eligible>, now: &HashMap<Addr, (u32, u64)>, proposed: Addr) -> Addr {
    let mut ranked: Vec<Eligible> = ok
        .into_iter()
        .filter_map(|e| {
            let (priority, offset) = *now.get(&e.addr)?;
            (priority > 0).then_some(Eligible {
                priority,
                offset,
                ..e
            })
        })
        .collect();
    ranked.sort_by(preference);
    ranked.into_iter().next().map_or(proposed, |best| best.addr)
}

pub fn preference(a: &Eligible, b: &Eligible) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then(b.offset.cmp(&a.offset))
        .then_with(|| match (a.run_id.is_empty(), b.run_id.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let lower = |s: &'_ str| {
                    s.bytes()
                        .map(|c| c.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                };
                lower(a.run_id).cmp(&lower(b.run_id))
            }
        })
        .then_with(|| a.addr.cmp(&b.addr))
}

/// The replica to promote (DESIGN "Failover" 1: "choose the candidate as Sentinel does"). Each
/// replica is judged on its freshest observation across fresh, non-TILT reports.
/// `master_down_ms` is how long the master has been down (0 when it is up: a forced failover).
pub fn choose(
    master: &MasterRecord,
    reports: &[ReportIn],
    fresh_ms: u64,
    ping_interval_ms: u64,
    master_down_ms: u64,
) -> Result<Addr, NoCandidate> {
    choose_for(
        &master.name,
        master,
        reports,
        fresh_ms,
        ping_interval_ms,
        master_down_ms,
    )
}

/// `choose` with the name the reports file the master under.
pub(crate) fn choose_for(
    name: &str,
    master: &MasterRecord,
    reports: &[ReportIn],
    fresh_ms: u64,
    ping_interval_ms: u64,
    master_down_ms: u64,
) -> Result<Addr, NoCandidate> {
    let mut best: Option<Eligible> = None;
    let mut reasons = Vec::new();
    for addr in known_replicas(name, master, reports, fresh_ms) {
        let obs = freshest_reply(name, &addr, reports, fresh_ms);
        match eligible(&addr, obs, master, ping_interval_ms, master_down_ms) {
            Ok(e) => {
                if best.as_ref().map_or(true, |b| preference(&e, b).is_lt()) {
                    best = Some(e);
                }
            }
            Err(why) => reasons.push((addr, why)),
        }
    }
    best.map(|b| b.addr).ok_or(NoCandidate { reasons })
}
