//! Format version 3 of the state machine's data (before `MasterRecord.tls`), read and upgraded
//! to version 4 (then on by `format_v4`) so that a node keeps its stored state and snapshots
//! across the upgrade. Every other stored or transmitted type has the same shape in versions 3
//! and 4. No I/O.

use std::collections::BTreeMap;

use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use super::format_v4::{MasterRecordV4, SmDataV4, TopologyStateV4};
use super::format_v5::MemberV5;
use super::types::typ::LogId;
use crate::topology::master::Conflict;
use crate::topology::{
    Addr, FailoverOutcome, FailoverRecord, FailoverRequest, LeaseGrant, ReplicaRecord, Revoked,
    Secret, Vip,
};

#[derive(Serialize, Deserialize)]
pub(super) struct SmDataV3 {
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, MemberV5>,
    topology: TopologyStateV3,
}

#[derive(Serialize, Deserialize)]
struct TopologyStateV3 {
    masters: BTreeMap<String, MasterRecordV3>,
    leases: BTreeMap<u64, LeaseGrant>,
}

/// `MasterRecord` field for field, in order, without `tls`.
#[derive(Serialize, Deserialize)]
struct MasterRecordV3 {
    name: String,
    addr: Addr,
    quorum: u32,
    down_after_ms: u64,
    failover_timeout_ms: u64,
    parallel_syncs: u32,
    auth_user: Option<String>,
    auth_pass: Option<Secret>,
    replicas: Vec<ReplicaRecord>,
    replid: Option<String>,
    config_epoch: u64,
    epoch: u64,
    failover: Option<FailoverRecord>,
    holder: Option<u64>,
    history: Vec<FailoverOutcome>,
    paused: bool,
    request: Option<FailoverRequest>,
    conflict: Option<Conflict>,
    overwrite_ok: Vec<Addr>,
    notification_script: Option<String>,
    client_reconfig_script: Option<String>,
    vip: Option<Vip>,
    vip_interface: Option<String>,
    last_revoked: Option<Revoked>,
    vip_problems: BTreeMap<u64, String>,
}

impl From<SmDataV3> for SmDataV4 {
    fn from(v3: SmDataV3) -> SmDataV4 {
        SmDataV4 {
            last_applied: v3.last_applied,
            membership: v3.membership,
            topology: TopologyStateV4 {
                masters: v3
                    .topology
                    .masters
                    .into_iter()
                    .map(|(name, m)| (name, m.into()))
                    .collect(),
                leases: v3.topology.leases,
            },
        }
    }
}

impl From<MasterRecordV3> for MasterRecordV4 {
    /// Nothing written in version 3 used TLS.
    fn from(m: MasterRecordV3) -> MasterRecordV4 {
        MasterRecordV4 {
            name: m.name,
            addr: m.addr,
            quorum: m.quorum,
            down_after_ms: m.down_after_ms,
            failover_timeout_ms: m.failover_timeout_ms,
            parallel_syncs: m.parallel_syncs,
            auth_user: m.auth_user,
            auth_pass: m.auth_pass,
            tls: false,
            replicas: m.replicas,
            replid: m.replid,
            config_epoch: m.config_epoch,
            epoch: m.epoch,
            failover: m.failover,
            holder: m.holder,
            history: m.history,
            paused: m.paused,
            request: m.request,
            conflict: m.conflict,
            overwrite_ok: m.overwrite_ok,
            notification_script: m.notification_script,
            client_reconfig_script: m.client_reconfig_script,
            vip: m.vip,
            vip_interface: m.vip_interface,
            last_revoked: m.last_revoked,
            vip_problems: m.vip_problems,
        }
    }
}

#[cfg(test)]
impl From<&crate::topology::MasterRecord> for MasterRecordV3 {
    fn from(m: &crate::topology::MasterRecord) -> MasterRecordV3 {
        let m = m.clone();
        MasterRecordV3 {
            name: m.name,
            addr: m.addr,
            quorum: m.quorum,
            down_after_ms: m.down_after_ms,
            failover_timeout_ms: m.failover_timeout_ms,
            parallel_syncs: m.parallel_syncs,
            auth_user: m.auth_user,
            auth_pass: m.auth_pass,
            replicas: m.replicas,
            replid: m.replid,
            config_epoch: m.config_epoch,
            epoch: m.epoch,
            failover: m.failover,
            holder: m.holder,
            history: m.history,
            paused: m.paused,
            request: m.request,
            conflict: m.conflict,
            overwrite_ok: m.overwrite_ok,
            notification_script: m.notification_script,
            client_reconfig_script: m.client_reconfig_script,
            vip: m.vip,
            vip_interface: m.vip_interface,
            last_revoked: m.last_revoked,
            vip_problems: m.vip_problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::{decode_data, SmData};
    use crate::topology::MasterRecord;

    /// What a version-3 build wrote: the version byte, then bincode of the old shape.
    fn written_by_v3(data: &SmData) -> Vec<u8> {
        let v3 = SmDataV3 {
            last_applied: data.last_applied,
            // Empty, as in `SmData::default()`; `format_v5` tests the membership's upgrade.
            membership: StoredMembership::default(),
            topology: TopologyStateV3 {
                masters: data
                    .topology
                    .masters
                    .iter()
                    .map(|(k, m)| (k.clone(), (&**m).into()))
                    .collect(),
                leases: data.topology.leases.clone(),
            },
        };
        let mut out = vec![3u8];
        bincode::serialize_into(&mut out, &v3).unwrap();
        out
    }

    #[test]
    fn version_3_state_decodes_with_tls_off() {
        let mut m = MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000);
        m.auth_pass = Some(Secret::new("pw"));
        m.vip_problems.insert(2, "no interface".into());
        let mut data = SmData::default();
        data.topology
            .masters
            .insert(m.name.clone(), m.clone().into());
        data.topology
            .leases
            .insert(1, LeaseGrant { holder: 1, id: 7 });
        let got = decode_data(&written_by_v3(&data)).unwrap();
        assert_eq!(got.topology.masters, data.topology.masters);
        assert_eq!(got.topology.leases, data.topology.leases);
        assert!(!got.topology.masters["mymaster"].tls);

        // Written now: the current version, with the field.
        std::sync::Arc::make_mut(data.topology.masters.get_mut("mymaster").unwrap()).tls = true;
        let now = crate::raft::codec::encode(&data).unwrap();
        assert_eq!(now[0], crate::raft::codec::FORMAT_VERSION);
        assert!(decode_data(&now).unwrap().topology.masters["mymaster"].tls);
    }
}
