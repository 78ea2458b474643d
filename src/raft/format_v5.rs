//! Format version 5 of the state machine's data (before each lease grant kept the voter set it
//! was granted under, and before superseded grants), read and upgraded so that a node keeps its
//! stored state and snapshots across the upgrade; versions 3 and 4 are upgraded to this first.
//! Every other stored or transmitted type has the same shape in versions 5 and 6. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use super::state_machine::SmData;
use super::types::typ::LogId;
use super::types::Member;
use crate::topology::{LeaseGrant, MasterRecord, TopologyState};

#[derive(Serialize, Deserialize)]
pub(super) struct SmDataV5 {
    pub(super) last_applied: Option<LogId>,
    pub(super) membership: StoredMembership<u64, Member>,
    pub(super) topology: TopologyStateV5,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TopologyStateV5 {
    pub(super) masters: BTreeMap<String, MasterRecord>,
    pub(super) leases: BTreeMap<u64, LeaseGrant>,
}

impl From<SmDataV5> for SmData {
    /// A version-5 node counted every grant against the voters of its own applied membership.
    /// The grants it holds are given the voters of the membership stored with them: what this
    /// node counted them against until now. A grant made under an earlier membership that
    /// another node still counts differently is the hole version 6 closes for grants made from
    /// now on (every membership change re-grants).
    fn from(v5: SmDataV5) -> SmData {
        let voters: BTreeSet<u64> = v5.membership.membership().voter_ids().collect();
        let mut topology = TopologyState {
            masters: v5.topology.masters,
            leases: v5.topology.leases,
            grant_voters: BTreeMap::new(),
            superseded: BTreeMap::new(),
            voter_addrs: BTreeMap::new(),
        };
        let mut ids: BTreeSet<u64> = topology.leases.values().map(|g| g.id).collect();
        for m in topology.masters.values() {
            let revoked = m.failover.as_ref().and_then(|f| f.revoked);
            ids.extend(
                revoked
                    .iter()
                    .chain(m.last_revoked.iter())
                    .map(|r| r.grant.id),
            );
        }
        topology.grant_voters = ids.into_iter().map(|id| (id, voters.clone())).collect();
        let membership = v5.membership.membership();
        topology.voter_addrs = voters
            .iter()
            .filter_map(|id| membership.get_node(id).map(|n| (*id, n.addr.clone())))
            .collect();
        SmData {
            last_applied: v5.last_applied,
            membership: v5.membership,
            topology,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::decode_data;
    use crate::topology::Addr;

    #[test]
    fn version_5_grants_get_the_stored_memberships_voters() {
        let mut data = SmData::default();
        let voters = BTreeSet::from([1, 2, 3]);
        data.membership =
            StoredMembership::new(None, openraft::Membership::new(vec![voters.clone()], None));
        let m = MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000);
        data.topology.masters.insert(m.name.clone(), m);
        data.topology
            .leases
            .insert(1, LeaseGrant { holder: 1, id: 7 });
        let v5 = SmDataV5 {
            last_applied: data.last_applied,
            membership: data.membership.clone(),
            topology: TopologyStateV5 {
                masters: data.topology.masters.clone(),
                leases: data.topology.leases.clone(),
            },
        };
        let mut bytes = vec![5u8];
        bincode::serialize_into(&mut bytes, &v5).unwrap();
        let got = decode_data(&bytes).unwrap();
        assert_eq!(got.topology.masters, data.topology.masters);
        assert_eq!(got.topology.leases, data.topology.leases);
        assert_eq!(got.topology.voters_of(7), Some(&voters));
        assert!(got.topology.superseded.is_empty());
    }
}
