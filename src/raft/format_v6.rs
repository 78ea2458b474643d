//! Format version 6 of the state machine's data (before `MasterRecord.odown`, `reconf`,
//! `reboot_down_after_ms` and `renamed`), read and upgraded so that a node keeps its stored
//! state and snapshots across the upgrade; versions 3 to 5 are upgraded through this record.
//! Log entries of version 6 decode as they are (commands were only appended). No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use super::state_machine::SmData;
use super::types::typ::LogId;
use super::types::Member;
use crate::topology::master::Conflict;
use crate::topology::{
    Addr, FailoverOutcome, FailoverRecord, FailoverRequest, LeaseGrant, MasterRecord, MinReplicas,
    ReplicaRecord, Revoked, Secret, Superseded, TopologyState, Vip,
};

/// `SmData` field for field, with the version-6 master record.
#[derive(Serialize, Deserialize)]
pub(super) struct SmDataV6 {
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, Member>,
    topology: TopologyStateV6,
    retired: BTreeSet<u64>,
}

/// `TopologyState` field for field, with the version-6 master record.
#[derive(Serialize, Deserialize)]
struct TopologyStateV6 {
    masters: BTreeMap<String, MasterRecordV6>,
    leases: BTreeMap<u64, LeaseGrant>,
    grant_voters: BTreeMap<u64, BTreeSet<u64>>,
    superseded: BTreeMap<u64, Superseded>,
    voter_addrs: BTreeMap<u64, String>,
}

/// `MasterRecord` field for field, in order, up to `retry_cleared_epoch`.
#[derive(Serialize, Deserialize)]
pub(super) struct MasterRecordV6 {
    pub(super) name: String,
    pub(super) addr: Addr,
    pub(super) quorum: u32,
    pub(super) down_after_ms: u64,
    pub(super) failover_timeout_ms: u64,
    pub(super) parallel_syncs: u32,
    pub(super) auth_user: Option<String>,
    pub(super) auth_pass: Option<Secret>,
    pub(super) tls: bool,
    pub(super) min_replicas: MinReplicas,
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
    pub(super) min_failover_interval_ms: u64,
    pub(super) retry_cleared_epoch: u64,
}

impl From<SmDataV6> for SmData {
    fn from(v6: SmDataV6) -> SmData {
        let t = v6.topology;
        SmData {
            last_applied: v6.last_applied,
            membership: v6.membership,
            topology: TopologyState {
                masters: t
                    .masters
                    .into_iter()
                    .map(|(k, m)| (k, Arc::new(m.into())))
                    .collect(),
                leases: t.leases,
                grant_voters: t.grant_voters,
                superseded: t.superseded,
                voter_addrs: t.voter_addrs,
            },
            retired: v6.retired,
        }
    }
}

impl From<MasterRecordV6> for MasterRecord {
    /// Version 6 kept no ODOWN verdict (the leader judges again from fresh reports and records
    /// it), no replica progress (a failover in progress shows it from the next report on), no
    /// reboot period (0: off, Sentinel's default) and no renamed commands.
    fn from(m: MasterRecordV6) -> MasterRecord {
        MasterRecord {
            name: m.name,
            addr: m.addr,
            quorum: m.quorum,
            down_after_ms: m.down_after_ms,
            failover_timeout_ms: m.failover_timeout_ms,
            parallel_syncs: m.parallel_syncs,
            auth_user: m.auth_user,
            auth_pass: m.auth_pass,
            tls: m.tls,
            min_replicas: m.min_replicas,
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
            min_failover_interval_ms: m.min_failover_interval_ms,
            retry_cleared_epoch: m.retry_cleared_epoch,
            odown: None,
            reconf: BTreeMap::new(),
            reboot_down_after_ms: 0,
            renamed: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
impl From<&MasterRecord> for MasterRecordV6 {
    fn from(m: &MasterRecord) -> MasterRecordV6 {
        let m = m.clone();
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
            min_replicas: m.min_replicas,
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
            min_failover_interval_ms: m.min_failover_interval_ms,
            retry_cleared_epoch: m.retry_cleared_epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::decode_data;
    use crate::topology::Addr;

    /// What a version-6 build wrote: the version byte, then bincode of the old shape.
    fn written_by_v6<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = vec![6u8];
        bincode::serialize_into(&mut out, value).unwrap();
        out
    }

    #[test]
    fn version_6_state_decodes_with_the_new_fields_empty() {
        let mut m = MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000);
        m.epoch = 4;
        m.config_epoch = 3;
        m.min_failover_interval_ms = 60_000;
        let state = written_by_v6(&SmDataV6 {
            last_applied: None,
            membership: StoredMembership::default(),
            topology: TopologyStateV6 {
                masters: BTreeMap::from([(m.name.clone(), MasterRecordV6::from(&m))]),
                leases: BTreeMap::new(),
                grant_voters: BTreeMap::from([(7, BTreeSet::from([1, 2, 3]))]),
                superseded: BTreeMap::new(),
                voter_addrs: BTreeMap::from([(2, "10.0.0.2:26380".to_owned())]),
            },
            retired: BTreeSet::from([5]),
        });
        let got = decode_data(&state).unwrap();
        assert_eq!(got.topology.master("mymaster"), Some(&m));
        assert_eq!(got.topology.voters_of(7), Some(&BTreeSet::from([1, 2, 3])));
        assert_eq!(got.topology.voter_addr(2), Some("10.0.0.2:26380"));
        assert_eq!(got.retired, BTreeSet::from([5]));
    }
}
