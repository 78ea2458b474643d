//! Lease grants in the replicated state (PaxosLease, invariant 4): at most one current grant per
//! holder node, identified by the log index that granted it. No I/O, no clock: timing lives in lease/.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

impl TopologyState {
    /// A node promises on `id` only while this holds: the grant exists and was not revoked.
    pub fn is_current_grant(&self, id: u64) -> bool {
        self.leases.values().any(|grant| grant.id == id)
    }

    /// The current grant of `holder`, if any.
    pub fn lease_of(&self, holder: u64) -> Option<&LeaseGrant> {
        self.leases.get(&holder)
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
