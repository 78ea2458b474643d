//! Format version 4 of the state machine's data (before `MasterRecord.min_replicas`,
//! `min_failover_interval_ms` and `retry_cleared_epoch`), read and
//! upgraded to version 5 (then on by `format_v5`) so that a node keeps its stored state and
//! snapshots across the upgrade; version 3 is upgraded to this first (see `format_v3`). Every
//! other stored or transmitted type has the same shape in versions 4 and 5. No I/O.

use std::collections::BTreeMap;

use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use super::format_v5::{MemberV5, SmDataV5, TopologyStateV5};
use super::format_v6::MasterRecordV6;
use super::types::typ::LogId;
use crate::topology::master::Conflict;
use crate::topology::{
    Addr, FailoverOutcome, FailoverRecord, FailoverRequest, LeaseGrant, MinReplicas, ReplicaRecord,
    Revoked, Secret, Vip,
};

#[derive(Serialize, Deserialize)]
pub(super) struct SmDataV4 {
    pub(super) last_applied: Option<LogId>,
    pub(super) membership: StoredMembership<u64, MemberV5>,
    pub(super) topology: TopologyStateV4,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TopologyStateV4 {
    pub(super) masters: BTreeMap<String, MasterRecordV4>,
    pub(super) leases: BTreeMap<u64, LeaseGrant>,
}

/// `MasterRecord` field for field, in order, without `min_replicas`.
#[derive(Serialize, Deserialize)]
pub(super) struct MasterRecordV4 {
    pub(super) name: String,
    pub(super) addr: Addr,
    pub(super) quorum: u32,
    pub(super) down_after_ms: u64,
    pub(super) failover_timeout_ms: u64,
    pub(super) parallel_syncs: u32,
    pub(super) auth_user: Option<String>,
    pub(super) auth_pass: Option<Secret>,
    pub(super) tls: bool,
    pub(super) replicas: Vec<ReplicaRecord>,
    pub(super) replid: Option<String>,
    pub(super) config_epoch: u64,
    pub(super) epoch: u64,
    pub(super) failover: Option<FailoverRecord>,
    pub(super) holder: Option<u64>,
    pub(super) history: Vec<FailoverOutcome>,
    pub(super) paused: bool,
    pub(super) request: Option<FailoverRequest>,
    pub(super) conflict: Option<Conflict>,
    pub(super) overwrite_ok: Vec<Addr>,
    pub(super) notification_script: Option<String>,
    pub(super) client_reconfig_script: Option<String>,
    pub(super) vip: Option<Vip>,
    pub(super) vip_interface: Option<String>,
    pub(super) last_revoked: Option<Revoked>,
    pub(super) vip_problems: BTreeMap<u64, String>,
}

impl From<SmDataV4> for SmDataV5 {
    fn from(v4: SmDataV4) -> SmDataV5 {
        SmDataV5 {
            last_applied: v4.last_applied,
            membership: v4.membership,
            topology: TopologyStateV5 {
                masters: v4
                    .topology
                    .masters
                    .into_iter()
                    .map(|(name, m)| (name, m.into()))
                    .collect(),
                leases: v4.topology.leases,
            },
        }
    }
}

impl From<MasterRecordV4> for MasterRecordV6 {
    /// Version 4 had no min-replicas options: unfencing put Redis's defaults back when the node
    /// had seen nothing else, so the defaults are what the log now says. It had no
    /// min-failover-interval (0: off) and no cleared retry delay either.
    fn from(m: MasterRecordV4) -> MasterRecordV6 {
        MasterRecordV6 {
            name: m.name,
            addr: m.addr,
            quorum: m.quorum,
            down_after_ms: m.down_after_ms,
            failover_timeout_ms: m.failover_timeout_ms,
            parallel_syncs: m.parallel_syncs,
            auth_user: m.auth_user,
            auth_pass: m.auth_pass,
            tls: m.tls,
            min_replicas: MinReplicas::default(),
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
            min_failover_interval_ms: 0,
            retry_cleared_epoch: 0,
        }
    }
}

#[cfg(test)]
impl From<&crate::topology::MasterRecord> for MasterRecordV4 {
    fn from(m: &crate::topology::MasterRecord) -> MasterRecordV4 {
        let m = m.clone();
        MasterRecordV4 {
            name: m.name,
            addr: m.addr,
            quorum: m.quorum,
            down_after_ms: m.down_after_ms,
            failover_timeout_ms: m.failover_timeout_ms,
            parallel_syncs: m.parallel_syncs,
            auth_user: m.auth_user,
            auth_pass: m.auth_pass,
            tls: m.tls,
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

    /// What a version-4 build wrote: the version byte, then bincode of the old shape.
    fn written_by_v4(data: &SmData) -> Vec<u8> {
        let v4 = SmDataV4 {
            last_applied: data.last_applied,
            // Empty, as in `SmData::default()`; `format_v5` tests the membership's upgrade.
            membership: StoredMembership::default(),
            topology: TopologyStateV4 {
                masters: data
                    .topology
                    .masters
                    .iter()
                    .map(|(k, m)| (k.clone(), (&**m).into()))
                    .collect(),
                leases: data.topology.leases.clone(),
            },
        };
        let mut out = vec![4u8];
        bincode::serialize_into(&mut out, &v4).unwrap();
        out
    }

    #[test]
    fn version_4_state_decodes_with_redis_default_min_replicas() {
        let mut m = MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000);
        m.tls = true;
        m.auth_pass = Some(Secret::new("pw"));
        m.vip_problems.insert(2, "no interface".into());
        let mut data = SmData::default();
        data.topology
            .masters
            .insert(m.name.clone(), m.clone().into());
        data.topology
            .leases
            .insert(1, LeaseGrant { holder: 1, id: 7 });
        let got = decode_data(&written_by_v4(&data)).unwrap();
        assert_eq!(got.topology.masters, data.topology.masters);
        assert_eq!(got.topology.leases, data.topology.leases);
        let got = &got.topology.masters["mymaster"];
        assert!(got.tls);
        assert_eq!(got.min_replicas, MinReplicas::default());
        assert_eq!(
            (got.min_failover_interval_ms, got.retry_cleared_epoch),
            (0, 0)
        );

        // Written now: version 5, with the field.
        let set = MinReplicas {
            to_write: 1,
            max_lag_s: 5,
        };
        if let Some(m) = data
            .topology
            .masters
            .get_mut("mymaster")
            .map(std::sync::Arc::make_mut)
        {
            m.min_replicas = set;
        }
        let now = crate::raft::codec::encode(&data).unwrap();
        assert_eq!(now[0], crate::raft::codec::FORMAT_VERSION);
        assert_eq!(
            decode_data(&now).unwrap().topology.masters["mymaster"].min_replicas,
            set
        );
    }
}
