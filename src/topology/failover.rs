//! The failover in progress for one master and the log entries that move it along
//! (started → promoted → ended, or started → aborted). No I/O: the failover module acts on it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::event::{self, Event, Step, TopologyEvent};
use super::lease::{self, LeaseGrant};
use super::master::{Addr, MasterRecord, Odown, Reconf, ReplicaRecord};
use super::refusal::Refusal;

/// Where a failover stands in the log.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverState {
    /// FailoverStarted is committed: the epoch is taken and the old grant revoked.
    Started,
    /// MasterSwitched is committed: the candidate is the master of the log.
    Promoted,
}

impl fmt::Display for FailoverState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailoverState::Started => "started",
            FailoverState::Promoted => "promoted",
        })
    }
}

/// The failover in progress; a new leader resumes from it (invariant 3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailoverRecord {
    pub epoch: u64,
    pub candidate: Addr,
    /// Node id whose lease covers the candidate's host (granted when the failover started).
    pub candidate_holder: Option<u64>,
    pub state: FailoverState,
    pub reason: String,
    /// The master's address when the failover started.
    pub from: Addr,
    pub started_at_ms: u64,
    /// Leader time of MasterSwitched; bounds replica reconfiguration by failover-timeout.
    pub promoted_at_ms: Option<u64>,
    /// The old holder's grant this failover revoked: the promotion waits until it is dead.
    pub revoked: Option<Revoked>,
}

/// A grant revoked by a FailoverStarted (invariant 4).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub grant: LeaseGrant,
    /// Log index of the FailoverStarted: a node that applied it makes no more promises on `grant`.
    pub at: u64,
    /// The holder released it (after fencing, or with its Redis gone): dead without waiting.
    pub released: bool,
}

/// How one failover of a master finished: `raftinel ctl history` and anti-flapping read these.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailoverOutcome {
    pub epoch: u64,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    /// The abort reason, `None` when the failover completed.
    pub aborted: Option<String>,
    /// Why it started: "odown", "forced", "switchover".
    pub reason: String,
    pub from: Addr,
    pub to: Addr,
}

/// Failovers kept per master in `history`.
pub const HISTORY_LEN: usize = 32;

/// Why no automatic failover of a master may start before `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryDelay {
    /// Wall clock in ms.
    pub until_ms: u64,
    /// The last attempt, which the delay counts from.
    pub epoch: u64,
    /// "aborted (REASON)" (Sentinel's rule) or "min-failover-interval".
    pub cause: String,
}

/// Sentinel's rule (`sentinelStartFailoverIfNeeded`): a new automatic attempt waits 2 x
/// failover-timeout from the start of the last attempt, and a completed failover resets that
/// wait (`sentinelResetMaster`: "We can failover again ASAP"). So only a last attempt that was
/// aborted delays the next one. raftinel's `min-failover-interval` adds a wait from the start of
/// the last failover whatever its outcome; `reset-failover-delay` clears both for the attempts
/// so far. An operator's failover or switchover is never delayed (the caller's rule).
pub fn retry_delay(master: &MasterRecord) -> Option<RetryDelay> {
    let last = master
        .last_failover()
        .filter(|l| l.epoch > master.retry_cleared_epoch)?;
    let after = |ms: u64| last.started_at_ms.saturating_add(ms);
    let aborted = last.aborted.as_ref().map(|reason| RetryDelay {
        until_ms: after(master.failover_timeout_ms.saturating_mul(2)),
        epoch: last.epoch,
        cause: format!("aborted ({reason})"),
    });
    let interval = (master.min_failover_interval_ms > 0).then(|| RetryDelay {
        until_ms: after(master.min_failover_interval_ms),
        epoch: last.epoch,
        cause: "min-failover-interval".to_owned(),
    });
    match (aborted, interval) {
        (Some(a), Some(i)) => Some(if i.until_ms > a.until_ms { i } else { a }),
        (a, i) => a.or(i),
    }
}

fn record_outcome(master: &mut MasterRecord, outcome: FailoverOutcome) {
    master.history.push(outcome);
    let excess = master.history.len().saturating_sub(HISTORY_LEN);
    master.history.drain(..excess);
}

/// FailoverStarted: takes the epoch, revokes the old holder's grant and grants the candidate's host.
/// `pending` is the old holder's grant an earlier failover revoked that may still be alive: with
/// no current grant to revoke, this failover waits for that one.
pub(super) fn start(
    master: &mut MasterRecord,
    leases: &mut BTreeMap<u64, LeaseGrant>,
    record: FailoverRecord,
    pending: Option<Revoked>,
    index: u64,
) -> Result<Vec<TopologyEvent>, Refusal> {
    if master.failover.is_some() {
        return Err(Refusal::FailoverInProgress);
    }
    // Epochs only increase, so one epoch can never carry two promotions (invariant 1).
    if record.epoch <= master.epoch {
        return Err(Refusal::StaleEpoch {
            epoch: record.epoch,
            current: master.epoch,
        });
    }
    if record.candidate == master.addr {
        return Err(Refusal::CandidateIsMaster {
            candidate: record.candidate.to_string(),
        });
    }
    // The old holder loses its grant even if it covers other masters: it must fetch a fresh one,
    // and nodes stop promising for the revoked id (invariant 4).
    let mut record = record;
    if let Some(old) = master.holder {
        record.revoked = lease::revoke_holder(leases, old)
            .map(|grant| Revoked {
                grant,
                at: index,
                released: false,
            })
            .or(pending);
    }
    if let Some(new) = record.candidate_holder {
        lease::grant(leases, new, index);
    }
    master.epoch = record.epoch;
    // The request (if any) is answered by this failover.
    master.request = None;
    // Sentinel's captured order (§2.3); the leader was elected by Raft, not by a sentinel vote.
    let candidate = &record.candidate;
    let events = vec![
        event::new_epoch(master),
        event::about_master(Step::TryFailover, master),
        event::about_master(Step::ElectedLeader, master),
        event::about_master(Step::SelectSlave, master),
        event::about_replica(Step::SelectedSlave, candidate, master, &master.addr),
        event::about_replica(Step::SendSlaveofNoone, candidate, master, &master.addr),
        event::about_replica(Step::WaitPromotion, candidate, master, &master.addr),
    ];
    master.failover = Some(record);
    Ok(events)
}

/// The failover in progress, if `epoch` is its epoch.
fn in_progress(master: &mut MasterRecord, epoch: u64) -> Result<&mut FailoverRecord, Refusal> {
    let name = master.name.clone();
    let failover = master
        .failover
        .as_mut()
        .ok_or(Refusal::NoFailoverInProgress { name })?;
    if failover.epoch != epoch {
        return Err(Refusal::EpochMismatch {
            epoch,
            in_progress: failover.epoch,
        });
    }
    Ok(failover)
}

/// MasterSwitched: the candidate reports master; the log now names it, with its replication id.
pub(super) fn switch(
    master: &mut MasterRecord,
    epoch: u64,
    replid: &str,
    at_ms: u64,
) -> Result<Vec<TopologyEvent>, Refusal> {
    let failover = in_progress(master, epoch)?;
    if failover.state == FailoverState::Promoted {
        return Err(Refusal::AlreadyPromoted { epoch });
    }
    failover.state = FailoverState::Promoted;
    failover.promoted_at_ms = Some(at_ms);
    let new = failover.candidate.clone();
    let holder = failover.candidate_holder;
    let revoked = failover.revoked;

    let old = std::mem::replace(&mut master.addr, new.clone());
    // The down instance is no longer the master: like Sentinel, no -odown for it.
    master.odown = None;
    let mut events = vec![event::about_replica(
        Step::PromotedSlave,
        &new,
        master,
        &old,
    )];
    events.push(event::about_instance_at(Step::ReconfSlaves, master, &old));
    master.config_epoch = epoch;
    master.replid = Some(replid.to_owned());
    master.holder = holder;
    master.last_revoked = revoked;
    master.replicas.retain(|r| r.addr != new);
    if master.replica(&old).is_none() {
        // The old master comes back as a replica; run id and replid are learnt when it answers.
        master.replicas.push(ReplicaRecord {
            addr: old.clone(),
            run_id: String::new(),
            replid: String::new(),
        });
        master.replicas.sort_by(|a, b| a.addr.cmp(&b.addr));
    }
    events.push(event::switch_master(master, &old, &new));
    // Sentinel announces every replica again under the new master right after +switch-master.
    for replica in &master.replicas {
        events.push(event::about_replica(
            Step::Slave,
            &replica.addr,
            master,
            &master.addr,
        ));
    }
    Ok(events)
}

/// FailoverEnded: replicas are repointed; only a promoted failover can end.
pub(super) fn end(
    master: &mut MasterRecord,
    epoch: u64,
    at_ms: u64,
) -> Result<Vec<TopologyEvent>, Refusal> {
    let failover = in_progress(master, epoch)?;
    if failover.state != FailoverState::Promoted {
        return Err(Refusal::NotPromoted { epoch });
    }
    let outcome = FailoverOutcome {
        epoch,
        started_at_ms: failover.started_at_ms,
        finished_at_ms: at_ms,
        aborted: None,
        reason: failover.reason.clone(),
        from: failover.from.clone(),
        to: failover.candidate.clone(),
    };
    master.failover = None;
    master.reconf.clear();
    record_outcome(master, outcome);
    Ok(vec![event::about_master(Step::FailoverEnd, master)])
}

/// FailoverAborted: gives up before promotion; the epoch stays taken (it never goes back).
pub(super) fn abort(
    master: &mut MasterRecord,
    epoch: u64,
    reason: &str,
    at_ms: u64,
) -> Result<Vec<TopologyEvent>, Refusal> {
    let failover = in_progress(master, epoch)?;
    // After MasterSwitched the candidate is the master of the log: only moving forward is safe.
    if failover.state == FailoverState::Promoted {
        return Err(Refusal::CannotAbortPromoted { epoch });
    }
    let outcome = FailoverOutcome {
        epoch,
        started_at_ms: failover.started_at_ms,
        finished_at_ms: at_ms,
        aborted: Some(reason.to_owned()),
        reason: failover.reason.clone(),
        from: failover.from.clone(),
        to: failover.candidate.clone(),
    };
    master.failover = None;
    master.reconf.clear();
    record_outcome(master, outcome);
    Ok(vec![event::abort(master, reason)])
}

/// Odown: the leader's verdict on the master at `addr` flipped. A repeat changes nothing and says
/// nothing; a verdict on an instance a switch already replaced is refused.
pub(super) fn odown(
    master: &mut MasterRecord,
    addr: &Addr,
    down: bool,
    (votes, quorum): (u32, u32),
    at_ms: u64,
) -> Result<Vec<TopologyEvent>, Refusal> {
    if *addr != master.addr {
        return Err(Refusal::NotTheMaster {
            addr: addr.to_string(),
        });
    }
    if down == master.odown.is_some() {
        return Ok(Vec::new());
    }
    master.odown = down.then_some(Odown {
        since_ms: at_ms,
        votes,
        quorum,
    });
    let event = Event::Odown {
        at: addr.clone(),
        down,
        votes,
        quorum,
    };
    Ok(vec![TopologyEvent::new(event, master)])
}

/// ReplicaReconf: a replica advanced in following the promoted candidate of the failover at
/// `epoch`; only forward, and only once promoted.
pub(super) fn reconf(
    master: &mut MasterRecord,
    epoch: u64,
    replica: &Addr,
    stage: Reconf,
) -> Result<Vec<TopologyEvent>, Refusal> {
    let failover = in_progress(master, epoch)?;
    if failover.state != FailoverState::Promoted {
        return Err(Refusal::NotPromoted { epoch });
    }
    if master.replica(replica).is_none() {
        return Err(Refusal::NotAReplica {
            addr: replica.to_string(),
        });
    }
    if master.reconf.get(replica).is_some_and(|s| *s >= stage) {
        return Ok(Vec::new());
    }
    master.reconf.insert(replica.clone(), stage);
    let step = match stage {
        Reconf::Sent => Step::ReconfSent,
        Reconf::Inprog => Step::ReconfInprog,
        Reconf::Done => Step::ReconfDone,
    };
    Ok(vec![event::about_replica(
        step,
        replica,
        master,
        &master.addr,
    )])
}
