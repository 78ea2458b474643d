//! Lease grants in the replicated state (PaxosLease, invariant 4): at most one current grant per
//! holder node, identified by the log index that granted it, and counted against the voter set
//! of the membership it was granted under (issue 11 §3). No I/O, no clock: timing lives in lease/.
//!
//! Why each grant keeps its own voter set: a holder's promises and the leader's "dead" answers
//! must be majorities of one and the same set, or a holder cut off with removed-but-running
//! voters counts 3 of 5 promises while the leader counts 2 of 3 "dead". So a membership change
//! re-grants every lease under the new set (the entry's index is the new id) and keeps the old
//! grant as *superseded*: nodes that applied the change stop promising on it, and no promotion
//! away from its holder, and no VIP move, happens until it is dead at a majority of its own set
//! too. The leader drops a superseded grant (LeaseSettled) once a majority of its set says dead.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::failover::Revoked;
use super::refusal::Refusal;
use super::state::TopologyState;

/// A grant that lets `holder` ask the nodes for promises on `id`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Log index of the entry that granted it; unique, so a revoked id is never reissued.
    pub id: u64,
    /// Node id of the holder.
    pub holder: u64,
}

/// A grant a membership change replaced: its holder may still be acting on it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superseded {
    pub holder: u64,
    /// Log index of the membership entry that replaced it: a node that applied it makes no more
    /// promises on the grant.
    pub at: u64,
}

/// A grant that must be dead before its holder's master moves: (id, revoked at, its voters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MustDie {
    pub id: u64,
    pub revoked_at: u64,
    pub voters: BTreeSet<u64>,
}

impl TopologyState {
    /// A node promises on `id` only while this holds: the grant exists and was not revoked.
    pub fn is_current_grant(&self, id: u64) -> bool {
        self.leases.values().any(|grant| grant.id == id)
    }

    /// The current grant of `holder`, if any.
    pub fn lease_of(&self, holder: u64) -> Option<&LeaseGrant> {
        self.leases.get(&holder)
    }

    /// The voter set grant `id` was made under; None only for a grant this state no longer
    /// refers to.
    pub fn voters_of(&self, id: u64) -> Option<&BTreeSet<u64>> {
        self.grant_voters.get(&id)
    }

    /// Whether `node` may promise on grant `id`: a voter of the set it was granted under.
    pub fn may_promise(&self, id: u64, node: u64) -> bool {
        self.voters_of(id).is_some_and(|v| v.contains(&node))
    }

    /// Every grant that must be dead before the master `r` was revoked from moves on: `r`'s
    /// grant and every grant a membership change superseded for the same holder.
    pub fn must_die(&self, r: &Revoked) -> Vec<MustDie> {
        let revoked = Some((r.grant.id, r.at));
        let superseded = self
            .superseded
            .iter()
            .filter(|(_, s)| s.holder == r.grant.holder)
            .map(|(id, s)| (*id, s.at));
        revoked
            .into_iter()
            .chain(superseded)
            .map(|(id, revoked_at)| MustDie {
                id,
                revoked_at,
                voters: self.voters_of(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The superseded grant the leader should try to settle first, with its voters.
    pub fn unsettled(&self) -> Option<MustDie> {
        self.superseded.iter().next().map(|(id, s)| MustDie {
            id: *id,
            revoked_at: s.at,
            voters: self.voters_of(*id).cloned().unwrap_or_default(),
        })
    }

    /// A membership entry at `index` with `voters` applied: every grant made under another set
    /// is re-granted under this one, and the old one kept as superseded (see the module header).
    pub fn membership_changed(
        &mut self,
        voters: &BTreeSet<u64>,
        addrs: BTreeMap<u64, String>,
        index: u64,
    ) {
        self.voter_addrs.extend(addrs);
        let stale: Vec<LeaseGrant> = self
            .leases
            .values()
            .filter(|g| self.grant_voters.get(&g.id) != Some(voters))
            .copied()
            .collect();
        for old in stale {
            self.superseded.insert(
                old.id,
                Superseded {
                    holder: old.holder,
                    at: index,
                },
            );
            grant(&mut self.leases, old.holder, index);
        }
        self.record_grant_voters(voters, index);
    }

    /// Grants made by the entry at `index` were made under `voters`; voter sets no grant, revoked
    /// or superseded grant refers to any more are dropped.
    pub(super) fn record_grant_voters(&mut self, voters: &BTreeSet<u64>, index: u64) {
        if self.leases.values().any(|g| g.id == index) {
            self.grant_voters.insert(index, voters.clone());
        }
        let referenced = self.referenced_grants();
        self.grant_voters.retain(|id, _| referenced.contains(id));
        let named: BTreeSet<u64> = self.grant_voters.values().flatten().copied().collect();
        self.voter_addrs.retain(|id, _| named.contains(id));
    }

    /// Every grant id the state still refers to: current, superseded, revoked by a failover in
    /// progress or by the last one.
    pub fn referenced_grants(&self) -> BTreeSet<u64> {
        let mut ids: BTreeSet<u64> = self.leases.values().map(|g| g.id).collect();
        ids.extend(self.superseded.keys());
        for m in self.masters.values() {
            let revoked = m.failover.as_ref().and_then(|f| f.revoked);
            ids.extend(revoked.iter().chain(&m.last_revoked).map(|r| r.grant.id));
        }
        ids
    }

    /// Where to ask voter `id` about a grant when the applied membership no longer has it.
    pub fn voter_addr(&self, id: u64) -> Option<&str> {
        self.voter_addrs.get(&id).map(String::as_str)
    }

    /// LeaseSettled: a superseded grant is dead at a majority of its own voters.
    pub(super) fn settle(&mut self, id: u64) -> Result<(), Refusal> {
        self.superseded
            .remove(&id)
            .map(|_| ())
            .ok_or(Refusal::NoSuchLease { id })
    }
}

/// Grants `holder` a lease with id `index`, replacing (and so revoking) its previous grant.
pub(super) fn grant(leases: &mut BTreeMap<u64, LeaseGrant>, holder: u64, index: u64) -> LeaseGrant {
    let grant = LeaseGrant { id: index, holder };
    leases.insert(holder, grant);
    grant
}

/// Revokes whatever grant `holder` has, and returns it.
pub(super) fn revoke_holder(
    leases: &mut BTreeMap<u64, LeaseGrant>,
    holder: u64,
) -> Option<LeaseGrant> {
    leases.remove(&holder)
}

/// The holder gives its grant back (after fencing); a release of a non-current id is refused so
/// that a late release cannot revoke a newer grant.
pub(super) fn release(leases: &mut BTreeMap<u64, LeaseGrant>, id: u64) -> Result<(), Refusal> {
    let holder = leases
        .values()
        .find(|grant| grant.id == id)
        .map(|grant| grant.holder)
        .ok_or(Refusal::NoSuchLease { id })?;
    leases.remove(&holder);
    Ok(())
}
