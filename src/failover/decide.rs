//! The failover's next step as a pure function of the log's record of one master, the nodes'
//! reports and the time now (DESIGN "Failover"; STYLE: etcd's `Ready`). No I/O, no clock: the
//! runner carries the step out and asks again.

use std::collections::BTreeSet;

use super::candidate::{choose_for, Exclusion};
use super::odown::{freshest_info, freshest_reply, odown, ReportIn};
use crate::monitor::{Observation, ReportedRole};
use crate::topology::failover::retry_delay;
use crate::topology::{Addr, FailoverRecord, FailoverState, MasterRecord, ReplicaRecord};

/// What the runner does next for one master. Each log step (`Start`, `Switched`, `End`, `Abort`) is
/// a commit; each Redis step (`Promote`, `Repoint`, `FoldIn`) is idempotent and comes only after
/// the entry that allows it is committed (invariant 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to do now.
    None,
    /// Commit `FailoverStarted { epoch: master.epoch + 1, candidate, reason }` before touching any
    /// Redis. `reason` is "odown" or "forced".
    Start { candidate: Addr, reason: String },
    /// ODOWN (or forced) but no replica qualifies: report it (Sentinel's
    /// `-failover-abort-no-good-slave`) and ask again later. Nothing is committed, so no epoch is
    /// spent.
    NoCandidate { reasons: Vec<(Addr, Exclusion)> },
    /// Send the promotion to the candidate once the old grant is dead (DESIGN "Failover" 2–3).
    Promote { candidate: Addr },
    /// The candidate reports master: commit `MasterSwitched { epoch in progress, replid }` first.
    Switched { candidate: Addr, replid: String },
    /// `REPLICAOF to` on each (never more than parallel-syncs syncing at once).
    Repoint { replicas: Vec<Addr>, to: Addr },
    /// An instance that claims master passed the lineage check: `REPLICAOF to` on it.
    FoldIn { addr: Addr, to: Addr },
    /// Commit `FailoverEnded` for the epoch in progress.
    End,
    /// Commit `FailoverAborted` for the epoch in progress (only before promotion).
    Abort { reason: String },
    /// The lineage check failed (invariant 7): emit `+topology-conflict` and change no roles until
    /// an operator resolves it.
    Conflict { addr: Addr, detail: String },
    /// Lossless switchover to `target` (operator request): the runner's own step, never
    /// returned by `decide`.
    Switchover { target: Addr },
    /// `resolve --keep` chose an instance that already acts as master: commit it as the master
    /// under a new epoch. The runner's own step, never returned by `decide`.
    Adopt { addr: Addr },
    /// Commit `ReplicasDiscovered`. Never returned by `decide`: the runner's own step, kept here so
    /// that one enum names everything the runner does.
    Discovered { replicas: Vec<ReplicaRecord> },
}

/// Everything `decide` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct DecideInput<'a> {
    /// The name the reports file this master under (`master.name`).
    pub name: &'a str,
    pub master: &'a MasterRecord,
    pub reports: &'a [ReportIn<'a>],
    /// The current voters: only their SDOWNs make ODOWN.
    pub voters: &'a BTreeSet<u64>,
    /// Reports older than this (since the leader received them) are not read.
    pub fresh_ms: u64,
    pub ping_interval_ms: u64,
    /// Wall clock in ms, the unit of `FailoverRecord::started_at_ms`.
    pub now_ms: u64,
    /// How long the master has been down at the leader; 0 when it is up.
    pub master_down_ms: u64,
    /// Operator pause: no new failover starts (one in progress still runs to its end).
    pub paused: bool,
    /// Operator `failover NAME`: skip ODOWN, the veto and anti-flapping, still pick a candidate.
    pub forced: bool,
}

/// The next step for `input.master`.
pub fn decide(input: &DecideInput) -> Step {
    match &input.master.failover {
        None => idle(input),
        Some(f) if f.state == FailoverState::Started => started(input, f),
        Some(f) => promoted(input, f),
    }
}

/// No failover in progress: start one on ODOWN (not vetoed, not flapping) or when forced; otherwise
/// keep the replicas pointed at a healthy master (the old master folds in whenever it returns).
fn idle(i: &DecideInput) -> Step {
    if i.paused {
        return Step::None;
    }
    let verdict = odown(i.name, i.master, i.reports, i.voters, i.fresh_ms);
    if i.forced || (verdict.odown && verdict.vetoed.is_none()) {
        // Anti-flapping state lives in the log (invariant 3); a manual failover bypasses it.
        if !i.forced && delayed(i) {
            return Step::None;
        }
        let found = choose_for(
            i.name,
            i.master,
            i.reports,
            i.fresh_ms,
            i.ping_interval_ms,
            i.master_down_ms,
        );
        return match found {
            Ok(candidate) => Step::Start {
                candidate,
                reason: if i.forced { "forced" } else { "odown" }.to_owned(),
            },
            Err(none) => Step::NoCandidate {
                reasons: none.reasons,
            },
        };
    }
    if verdict.odown {
        return Step::None;
    }
    match healthy_master(i) {
        Some(m) => match plan(i, Some(m)) {
            Plan::Act(step) => step,
            Plan::Settled | Plan::Waiting => Step::None,
        },
        None => Step::None,
    }
}

/// The last attempt was aborted less than 2 x failover-timeout after it started (Sentinel's
/// retry rule, `topology::failover::retry_delay`); a completed failover delays nothing.
fn delayed(i: &DecideInput) -> bool {
    retry_delay(i.master).is_some_and(|d| i.now_ms < d.until_ms)
}

/// FailoverStarted is committed (invariant 3: "candidate reports master → commit MasterSwitched;
/// candidate reports replica → repeat the promotion …; candidate unreachable → abort").
fn started(i: &DecideInput, f: &FailoverRecord) -> Step {
    let c = &f.candidate;
    if let Some(o) = freshest_info(i.name, c, i.reports, i.fresh_ms) {
        if matches!(o.role, Some(ReportedRole::Master { .. })) && !o.replid.is_empty() {
            return Step::Switched {
                candidate: c.clone(),
                replid: o.replid.clone(),
            };
        }
    }
    if freshest_reply(i.name, c, i.reports, i.fresh_ms).is_some_and(|o| !o.sdown) {
        return Step::Promote {
            candidate: c.clone(),
        };
    }
    if i.now_ms.saturating_sub(f.started_at_ms) > i.master.failover_timeout_ms {
        return Step::Abort {
            reason: "slave-timeout".to_owned(),
        };
    }
    Step::None
}

/// MasterSwitched is committed: `master.addr` is the new master. Repoint, fold in, then end; the
/// failover ends at failover-timeout after the switch even if some replicas are left (as Sentinel's
/// reconfiguration does), and the idle state keeps fixing them.
fn promoted(i: &DecideInput, f: &FailoverRecord) -> Step {
    let since = f.promoted_at_ms.unwrap_or(f.started_at_ms);
    if i.now_ms.saturating_sub(since) > i.master.failover_timeout_ms {
        return Step::End;
    }
    let master_obs = freshest_info(i.name, &i.master.addr, i.reports, i.fresh_ms)
        .filter(|o| matches!(o.role, Some(ReportedRole::Master { .. })));
    match plan(i, master_obs) {
        Plan::Act(step) => step,
        Plan::Settled => Step::End,
        Plan::Waiting => Step::None,
    }
}

/// The log's master, reachable and reporting role master, as its freshest INFO says.
fn healthy_master<'r>(i: &DecideInput<'r>) -> Option<&'r Observation> {
    let reply = freshest_reply(i.name, &i.master.addr, i.reports, i.fresh_ms)?;
    let info = freshest_info(i.name, &i.master.addr, i.reports, i.fresh_ms)?;
    let is_master = matches!(info.role, Some(ReportedRole::Master { .. }));
    (!reply.sdown && is_master).then_some(info)
}

enum Plan {
    Act(Step),
    /// Every reachable replica replicates from the master with its link up.
    Settled,
    /// Syncs in flight, or something not yet known.
    Waiting,
}

/// What to do about the log's replicas: a conflict first (no role changes while one stands), then
/// up to parallel-syncs repoints (replicas syncing from the master with the link down count as in
/// flight), then one fold-in. Unreachable replicas are skipped; they are not waited for.
fn plan(i: &DecideInput, master_obs: Option<&Observation>) -> Plan {
    let to = &i.master.addr;
    let mut in_flight = 0usize;
    let mut repoint = Vec::new();
    let mut fold_in = None;
    let mut pending = false;
    for replica in i.master.replicas.iter().filter(|r| &r.addr != to) {
        let addr = &replica.addr;
        if freshest_reply(i.name, addr, i.reports, i.fresh_ms).map_or(true, |o| o.sdown) {
            continue;
        }
        let info = freshest_info(i.name, addr, i.reports, i.fresh_ms);
        let Some((o, role)) = info.and_then(|o| o.role.as_ref().map(|r| (o, r))) else {
            pending = true;
            continue;
        };
        pending |=
            !matches!(role, ReportedRole::Replica { master, link_up: true, .. } if master == to);
        let claims_master = match role {
            ReportedRole::Replica {
                master, link_up, ..
            } if master == to => {
                in_flight += usize::from(!*link_up);
                continue;
            }
            ReportedRole::Replica { .. } => false,
            ReportedRole::Master { .. } => true,
        };
        // The operator chose (`resolve`) to let this instance's own data go.
        let verdict = if i.master.overwrite_ok.contains(addr) {
            Lineage::Safe
        } else {
            lineage(i.master, o, master_obs, claims_master)
        };
        match verdict {
            Lineage::Ahead(detail) => {
                return Plan::Act(Step::Conflict {
                    addr: addr.clone(),
                    detail,
                })
            }
            Lineage::Undecided => {}
            Lineage::Safe if claims_master => {
                fold_in.get_or_insert_with(|| addr.clone());
            }
            Lineage::Safe => repoint.push(addr.clone()),
        }
    }
    let budget = (i.master.parallel_syncs.max(1) as usize).saturating_sub(in_flight);
    if budget > 0 && !repoint.is_empty() {
        repoint.truncate(budget);
        return Plan::Act(Step::Repoint {
            replicas: repoint,
            to: to.clone(),
        });
    }
    match fold_in {
        Some(addr) if budget > 0 => Plan::Act(Step::FoldIn {
            addr,
            to: to.clone(),
        }),
        _ if !pending => Plan::Settled,
        _ => Plan::Waiting,
    }
}

enum Lineage {
    /// Not ahead of the log: it may be made a replica of the log's master.
    Safe,
    /// Holds data the log's lineage does not: never fold it in automatically.
    Ahead(String),
    /// Not enough data yet (no INFO of the log's master): wait.
    Undecided,
}

/// Invariant 7: "Never fold newer data into older". Decides whether instance `x` (claiming
/// master, or a replica of some other master) may be pointed at the log's master, whose freshest
/// INFO is `m`.
///
/// The log keeps one replid, the current master's. With `master_replid2` and `second_repl_offset`
/// (which Redis sets at each promotion) of `x` and `m`, one hop of lineage is visible:
/// - `x.replid` is the log's or `m`'s replid: same history. Safe, whatever the offsets.
/// - `x.replid2` is the log's replid: `x` (or its master) was promoted out of the log's lineage
///   behind the log's back. Safe only if nothing was written since (`repl_offset + 1 ==
///   second_repl_offset`); otherwise ahead.
/// - `x.replid` is `m.replid2`: `x` holds the lineage `m` was promoted from (the deposed master,
///   or its replicas). Safe: what it took after `m.second_repl_offset - 1` is the loss DESIGN
///   states.
/// - `x.replid2` is `m.replid2`: a sibling promoted from the same predecessor (a stray
///   promotion). Safe only without writes of its own, as above.
/// - Otherwise the lineage is unknown (two or more hops away, replid2 not reported, a restored or
///   hand-made instance). Offsets carry over promotions, so a master whose `repl_offset` is
///   beyond `m`'s is treated as ahead and one at or behind it as older. A replica is not judged on
///   offsets alone (priority can pick a candidate with a smaller offset than its peers): safe.
///
/// What this cannot see: history more than one promotion away; a same-replid instance with data
/// beyond `m` (only a rewound master causes that); writes the deposed master took in its last
/// lease (DESIGN's stated loss).
fn lineage(
    master: &MasterRecord,
    x: &Observation,
    m: Option<&Observation>,
    claims_master: bool,
) -> Lineage {
    let log = master.replid.as_deref().filter(|r| known(r));
    let x2 = Some(x.replid2.as_str()).filter(|r| known(r));
    let x1 = Some(x.replid.as_str()).filter(|r| known(r));
    if x1.is_some() && x1 == log {
        return Lineage::Safe;
    }
    if x2.is_some() && x2 == log {
        return own_history(x, "the log's lineage");
    }
    let Some(m) = m else {
        return Lineage::Undecided;
    };
    let m1 = Some(m.replid.as_str()).filter(|r| known(r));
    let m2 = Some(m.replid2.as_str()).filter(|r| known(r));
    if x1.is_some() && (x1 == m1 || x1 == m2) {
        return Lineage::Safe;
    }
    if x2.is_some() && x2 == m2 {
        return own_history(x, "the new master's predecessor");
    }
    if claims_master && x.repl_offset > m.repl_offset {
        return Lineage::Ahead(format!(
            "unknown lineage {} at offset {} is beyond {} ({} at offset {})",
            show(&x.replid),
            x.repl_offset,
            master.addr,
            show(&m.replid),
            m.repl_offset
        ));
    }
    Lineage::Safe
}

/// `x` continued `from` under a new replid: safe only if it has written nothing since.
fn own_history(x: &Observation, from: &str) -> Lineage {
    let own = x
        .second_repl_offset
        .map(|s| x.repl_offset.saturating_add(1).saturating_sub(s));
    match own {
        Some(0) => Lineage::Safe,
        Some(n) => Lineage::Ahead(format!(
            "replid {} branched from {from} ({}) and holds {n} bytes of its own (offset {})",
            show(&x.replid),
            x.replid2,
            x.repl_offset
        )),
        None => Lineage::Ahead(format!(
            "replid {} branched from {from} ({}) at an unknown offset",
            show(&x.replid),
            x.replid2
        )),
    }
}

/// A replication id that means something: Redis reports 40 zeros for "none".
fn known(replid: &str) -> bool {
    replid.bytes().any(|b| b != b'0')
}

fn show(replid: &str) -> &str {
    if replid.is_empty() {
        "(none)"
    } else {
        replid
    }
}
