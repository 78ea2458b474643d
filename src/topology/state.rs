//! The replicated topology state and `apply`, the one function that changes it: pure and
//! deterministic (no I/O, no clock, no randomness), so every node computes the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::command::{Command, MAX_BATCH};
use super::event::{self, Event, Step, TopologyEvent};
use super::failover::{self, FailoverRecord, FailoverState, Revoked};
use super::lease::{self, LeaseGrant, Superseded};
use super::master::{
    check_name, parse_option, Addr, Conflict, FailoverRequest, MasterOption, MasterRecord,
    ReplicaRecord, RequestKind,
};
use super::refusal::Refusal;

/// Every monitored master and every current lease grant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TopologyState {
    /// Shared with the views handed out: an applied entry copies only the records it changes.
    pub masters: BTreeMap<String, Arc<MasterRecord>>,
    /// Keyed by holder node id: at most one current grant per holder.
    pub leases: BTreeMap<u64, LeaseGrant>,
    /// The voter set each grant still referred to (current, revoked by a failover in progress or
    /// the last one, superseded) was made under, by grant id.
    pub grant_voters: BTreeMap<u64, BTreeSet<u64>>,
    /// Grants a membership change replaced, by id, until a majority of their voters says dead.
    pub superseded: BTreeMap<u64, Superseded>,
    /// The gRPC address of every voter some grant's set names, as the last membership that had
    /// it said: a voter removed since is still asked about the grants it may promise on.
    pub voter_addrs: BTreeMap<u64, String>,
}

/// What `apply` needs to know about the entry besides its command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyContext<'a> {
    /// Log index of the entry; becomes the id of the lease grants it makes.
    pub index: u64,
    /// Voters in the membership at this entry: the quorum rule counts them, and the lease grants
    /// the entry makes are counted against them.
    pub voters: &'a BTreeSet<u64>,
}

/// The result of applying one entry: identical on every node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Applied {
    pub result: Result<Outcome, Refusal>,
    /// Empty when the command was refused.
    pub events: Vec<TopologyEvent>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    LeaseGranted {
        id: u64,
    },
    /// One result per command of a `Command::Batch`, in its order.
    Batch(Vec<Result<Outcome, Refusal>>),
}

impl TopologyState {
    /// Applies one committed command. A refusal is a value and leaves the state exactly as it was:
    /// the command runs on a copy that replaces the state only on success (states are small).
    pub fn apply(&mut self, cmd: &Command, ctx: ApplyContext<'_>) -> Applied {
        if let Command::Batch(cmds) = cmd {
            return self.apply_batch(cmds, ctx);
        }
        let mut next = self.clone();
        match next.dispatch(cmd, ctx) {
            Ok((outcome, events)) => {
                next.record_grant_voters(ctx.voters, ctx.index);
                *self = next;
                Applied {
                    result: Ok(outcome),
                    events,
                }
            }
            Err(refusal) => Applied {
                result: Err(refusal),
                events: Vec::new(),
            },
        }
    }

    /// Each command of a batch on its own, in order: one refused leaves the others applied. The
    /// whole batch is refused, changing nothing, if any command in it may not be batched.
    fn apply_batch(&mut self, cmds: &[Command], ctx: ApplyContext<'_>) -> Applied {
        if cmds.len() > MAX_BATCH || !cmds.iter().all(Command::batchable) {
            return Applied {
                result: Err(Refusal::NotBatchable),
                events: Vec::new(),
            };
        }
        let mut results = Vec::with_capacity(cmds.len());
        let mut events = Vec::new();
        for cmd in cmds {
            let applied = self.apply(cmd, ctx);
            results.push(applied.result);
            events.extend(applied.events);
        }
        Applied {
            result: Ok(Outcome::Batch(results)),
            events,
        }
    }

    /// The grant of `holder` that a failover still in progress revoked and its holder has not
    /// released. A failover of another master on the same host revokes nothing (the grant is
    /// gone already) but must wait for that grant all the same: until it is dead, the host may
    /// still keep this master's Redis writable (invariant 4).
    fn pending_revocation(&self, holder: u64) -> Option<Revoked> {
        self.masters
            .values()
            .filter_map(|m| m.failover.as_ref()?.revoked)
            .filter(|r| r.grant.holder == holder && !r.released)
            .max_by_key(|r| r.at)
    }

    /// The masters whose records differ from `older`'s (an applied entry replaces only the records
    /// it changes, so an unchanged one is the same `Arc`); `None` when anything besides the
    /// records changed (grants, their voters), which any master's next step may read.
    pub fn changed_masters(&self, older: &TopologyState) -> Option<BTreeSet<String>> {
        let same_rest = self.leases == older.leases
            && self.grant_voters == older.grant_voters
            && self.superseded == older.superseded
            && self.voter_addrs == older.voter_addrs;
        if !same_rest {
            return None;
        }
        let changed = self
            .masters
            .iter()
            .filter(|(name, m)| {
                older
                    .masters
                    .get(*name)
                    .map_or(true, |o| !Arc::ptr_eq(m, o))
            })
            .map(|(name, _)| name.clone())
            .collect();
        Some(changed)
    }

    /// The name that monitors `addr`, as its master or as a known replica.
    pub fn monitored_as(&self, addr: &Addr) -> Option<&str> {
        self.masters
            .values()
            .find(|m| &m.addr == addr || m.replica(addr).is_some())
            .map(|m| m.name.as_str())
    }

    pub fn master(&self, name: &str) -> Option<&MasterRecord> {
        self.masters.get(name).map(|m| &**m)
    }

    pub fn masters(&self) -> impl Iterator<Item = &MasterRecord> {
        self.masters.values().map(|m| &**m)
    }

    /// The record to change, copied first if a view still shares it.
    fn master_mut(&mut self, name: &str) -> Result<&mut MasterRecord, Refusal> {
        self.masters
            .get_mut(name)
            .map(Arc::make_mut)
            .ok_or(Refusal::NoSuchMaster)
    }

    fn dispatch(
        &mut self,
        cmd: &Command,
        ctx: ApplyContext<'_>,
    ) -> Result<(Outcome, Vec<TopologyEvent>), Refusal> {
        let events = match cmd {
            Command::Monitor {
                name,
                addr,
                quorum,
                down_after_ms,
            } => {
                // Invariant 12: the name rules hold wherever the entry is applied. A name an
                // older version let in stays in the state (it can be REMOVEd); the hooks never
                // run a script for it.
                check_name(name)?;
                if !Addr::valid_host(&addr.host) {
                    return Err(Refusal::InvalidHost);
                }
                // Sentinel checks the quorum before the duplicate name.
                check_quorum(*quorum, ctx.voters.len())?;
                if self.masters.contains_key(name) {
                    return Err(Refusal::DuplicateMaster);
                }
                if let Some(other) = self.monitored_as(addr) {
                    return Err(Refusal::AlreadyMonitored {
                        addr: addr.to_string(),
                        name: other.to_owned(),
                    });
                }
                if *down_after_ms == 0 {
                    return Err(Refusal::InvalidOptionValue {
                        option: "down-after-milliseconds".to_owned(),
                        value: "0".to_owned(),
                    });
                }
                let master = MasterRecord::new(name.clone(), addr.clone(), *quorum, *down_after_ms);
                let events = vec![event::monitor(&master)];
                self.masters.insert(name.clone(), Arc::new(master));
                events
            }
            Command::Remove { name } => {
                let master = self.masters.remove(name).ok_or(Refusal::NoSuchMaster)?;
                vec![event::unmonitor(&master)]
            }
            Command::Set { name, options } => {
                set(self.master_mut(name)?, options, ctx.voters.len())?
            }
            Command::ReplicasDiscovered { name, replicas } => {
                replicas_discovered(self.master_mut(name)?, replicas)
            }
            Command::HolderAssigned { name, holder } => {
                let master = self.master_mut(name)?;
                // The failover in progress revoked the old holder already; changing it now
                // would make the record disagree with the grants.
                if master.failover.is_some() {
                    return Err(Refusal::FailoverInProgress);
                }
                master.holder = *holder;
                Vec::new()
            }
            Command::VipReadiness {
                name,
                node,
                problem,
            } => {
                let master = self.master_mut(name)?;
                match problem {
                    Some(why) => master.vip_problems.insert(*node, why.clone()),
                    None => master.vip_problems.remove(node),
                };
                Vec::new()
            }
            Command::FailoverStarted {
                name,
                epoch,
                candidate,
                candidate_holder,
                reason,
                at_ms,
            } => {
                let pending = self
                    .master(name)
                    .and_then(|m| m.holder)
                    .and_then(|holder| self.pending_revocation(holder));
                let master = self
                    .masters
                    .get_mut(name)
                    .map(Arc::make_mut)
                    .ok_or(Refusal::NoSuchMaster)?;
                let record = FailoverRecord {
                    epoch: *epoch,
                    candidate: candidate.clone(),
                    candidate_holder: *candidate_holder,
                    state: FailoverState::Started,
                    reason: reason.clone(),
                    from: master.addr.clone(),
                    started_at_ms: *at_ms,
                    promoted_at_ms: None,
                    revoked: None,
                };
                failover::start(master, &mut self.leases, record, pending, ctx.index)?
            }
            Command::MasterSwitched {
                name,
                epoch,
                replid,
                at_ms,
            } => failover::switch(self.master_mut(name)?, *epoch, replid, *at_ms)?,
            Command::FailoverEnded { name, epoch, at_ms } => {
                failover::end(self.master_mut(name)?, *epoch, *at_ms)?
            }
            Command::FailoverAborted {
                name,
                epoch,
                reason,
                at_ms,
            } => failover::abort(self.master_mut(name)?, *epoch, reason, *at_ms)?,
            Command::Pause { name } => {
                let master = self.master_mut(name)?;
                master.paused = true;
                vec![event::about_master(Step::Paused, master)]
            }
            Command::Resume { name } => {
                let master = self.master_mut(name)?;
                master.paused = false;
                vec![event::about_master(Step::Unpaused, master)]
            }
            Command::RequestFailover { name, kind, at_ms } => {
                let master = self.master_mut(name)?;
                if master.failover.is_some() {
                    return Err(Refusal::FailoverInProgress);
                }
                if let RequestKind::Switchover { to: Some(to) } = kind {
                    if master.replica(to).is_none() {
                        return Err(Refusal::NotAReplica {
                            addr: to.to_string(),
                        });
                    }
                }
                master.request = Some(FailoverRequest {
                    kind: kind.clone(),
                    at_ms: *at_ms,
                });
                Vec::new()
            }
            Command::ConflictDetected { name, addr, detail } => {
                let master = self.master_mut(name)?;
                let conflict = Conflict {
                    addr: addr.clone(),
                    detail: detail.clone(),
                };
                if master.conflict.as_ref() == Some(&conflict) {
                    Vec::new()
                } else {
                    master.conflict = Some(conflict);
                    let event = Event::Conflict {
                        at: master.addr.clone(),
                        instance: addr.clone(),
                        detail: detail.clone(),
                    };
                    vec![TopologyEvent::new(event, master)]
                }
            }
            Command::Reset { names } => {
                let mut events = Vec::new();
                for name in names {
                    // A failover in progress owns its replica set until it ends (invariant 3).
                    if let Some(master) = self.masters.get_mut(name) {
                        if master.failover.is_none() {
                            let master = Arc::make_mut(master);
                            master.replicas.clear();
                            events.push(event::about_master(Step::ResetMaster, master));
                        }
                    }
                }
                events
            }
            Command::ResetFailoverDelay { name } => {
                let master = self.master_mut(name)?;
                master.retry_cleared_epoch = master.epoch;
                Vec::new()
            }
            Command::Resolve { name, keep, at_ms } => {
                let master = self.master_mut(name)?;
                let conflict = master.conflict.clone().ok_or(Refusal::NoConflict)?;
                if *keep == master.addr {
                    master.overwrite_ok.push(conflict.addr.clone());
                } else if *keep == conflict.addr {
                    master.overwrite_ok.push(master.addr.clone());
                    master.request = Some(FailoverRequest {
                        kind: RequestKind::Adopt { addr: keep.clone() },
                        at_ms: *at_ms,
                    });
                } else {
                    return Err(Refusal::BadKeep {
                        master: master.addr.to_string(),
                        conflict: conflict.addr.to_string(),
                    });
                }
                master.overwrite_ok.dedup();
                master.conflict = None;
                let event = Event::Resolved {
                    at: master.addr.clone(),
                    keep: keep.clone(),
                };
                vec![TopologyEvent::new(event, master)]
            }
            Command::LeaseGranted { holder } => {
                let grant = lease::grant(&mut self.leases, *holder, ctx.index);
                return Ok((Outcome::LeaseGranted { id: grant.id }, Vec::new()));
            }
            Command::LeaseReleased { id } => {
                // A failover that revoked this grant learns it is dead without waiting for it.
                let mut revoked = false;
                for master in self.masters.values_mut() {
                    let revokes =
                        |f: &FailoverRecord| f.revoked.as_ref().is_some_and(|r| r.grant.id == *id);
                    if !master.failover.as_ref().is_some_and(revokes) {
                        continue;
                    }
                    if let Some(r) = Arc::make_mut(master)
                        .failover
                        .as_mut()
                        .and_then(|f| f.revoked.as_mut())
                    {
                        r.released = true;
                        revoked = true;
                    }
                }
                if !revoked {
                    lease::release(&mut self.leases, *id)?;
                }
                Vec::new()
            }
            Command::LeaseSettled { id } => {
                self.settle(*id)?;
                Vec::new()
            }
            // `apply` takes batches apart before dispatching.
            Command::Batch(_) => return Err(Refusal::NotBatchable),
            Command::Odown {
                name,
                addr,
                down,
                votes,
                quorum,
                at_ms,
            } => failover::odown(
                self.master_mut(name)?,
                addr,
                *down,
                (*votes, *quorum),
                *at_ms,
            )?,
            Command::ReplicaReconf {
                name,
                epoch,
                replica,
                stage,
            } => failover::reconf(self.master_mut(name)?, *epoch, replica, *stage)?,
        };
        Ok((Outcome::Done, events))
    }
}

/// Quorum rule for MONITOR and SET quorum: at least 1 (Sentinel's check, first), at least a
/// majority of the voters (ODOWN must be agreed by a majority) and at most the voters.
pub fn check_quorum(quorum: u32, voters: usize) -> Result<(), Refusal> {
    if quorum == 0 {
        return Err(Refusal::QuorumTooSmall);
    }
    // A membership always has a voter; 0 would only come from a bug upstream.
    let voters = voters.max(1);
    let wanted = usize::try_from(quorum).unwrap_or(usize::MAX);
    if wanted < voters / 2 + 1 {
        return Err(Refusal::QuorumNotMajority { quorum, voters });
    }
    if wanted > voters {
        return Err(Refusal::QuorumAboveVoters { quorum, voters });
    }
    Ok(())
}

/// SENTINEL SET on `master`, option after option; the caller discards the whole copy on the first
/// refusal, which makes the command all-or-nothing.
fn set(
    master: &mut MasterRecord,
    options: &[(String, String)],
    voters: usize,
) -> Result<Vec<TopologyEvent>, Refusal> {
    let mut events = Vec::with_capacity(options.len());
    for (option, value) in options {
        let parsed = parse_option(option, value)?;
        if let MasterOption::Quorum(quorum) = parsed {
            check_quorum(quorum, voters)?;
        }
        master.apply_option(&parsed);
        events.push(event::set(master, &parsed, value));
    }
    Ok(events)
}

/// Replaces the known replicas with `replicas`, kept sorted and unique by address so the same set
/// always yields the same state; `+slave` for each address not known before.
fn replicas_discovered(
    master: &mut MasterRecord,
    replicas: &[ReplicaRecord],
) -> Vec<TopologyEvent> {
    let mut next: Vec<ReplicaRecord> = replicas
        .iter()
        .filter(|r| r.addr != master.addr) // the master is never its own replica
        .cloned()
        .collect();
    next.sort_by(|a, b| a.addr.cmp(&b.addr));
    next.dedup_by(|later, first| later.addr == first.addr);
    if next == master.replicas {
        return Vec::new();
    }
    let events = next
        .iter()
        .filter(|r| master.replica(&r.addr).is_none())
        .map(|r| event::about_replica(Step::Slave, &r.addr, master, &master.addr))
        .collect();
    master.replicas = next;
    events
}
