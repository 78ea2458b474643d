//! Applied topology records as protobuf messages. auth-pass never leaves the node: only whether
//! one is set.

use crate::events::IndexedEvent;
use crate::failover::quorum::effective_quorum;
use crate::pb;
use crate::topology::failover::retry_delay;
use crate::topology::{MasterRecord, ReplicaRecord};

/// `voters` is the applied membership's voter count, for the effective quorum.
pub fn master(m: &MasterRecord, applied_index: u64, voters: usize) -> pb::Master {
    let retry = retry_delay(m);
    pb::Master {
        name: m.name.clone(),
        host: m.addr.host.clone(),
        port: u32::from(m.addr.port),
        quorum: m.quorum,
        effective_quorum: effective_quorum(m.quorum, voters),
        voters: u32::try_from(voters).unwrap_or(u32::MAX),
        down_after_ms: m.down_after_ms,
        failover_timeout_ms: m.failover_timeout_ms,
        parallel_syncs: m.parallel_syncs,
        auth_user: m.auth_user.clone().unwrap_or_default(),
        auth_pass_set: m.auth_pass.is_some(),
        tls: m.tls,
        min_replicas_to_write: m.min_replicas.to_write,
        min_replicas_max_lag: m.min_replicas.max_lag_s,
        config_epoch: m.config_epoch,
        epoch: m.epoch,
        replid: m.replid.clone().unwrap_or_default(),
        replicas: m.replicas.iter().map(replica).collect(),
        failover: m.failover.as_ref().map(|f| pb::Failover {
            epoch: f.epoch,
            candidate_host: f.candidate.host.clone(),
            candidate_port: u32::from(f.candidate.port),
            state: f.state.to_string(),
            reason: f.reason.clone(),
            started_at_ms: f.started_at_ms,
        }),
        lease_holder: m.holder.unwrap_or(0),
        fencing: m.fencing().to_owned(),
        vip: m.vip.map(|v| v.to_string()).unwrap_or_default(),
        vip_interface: m.vip_interface.clone().unwrap_or_default(),
        vip_problems: m.vip_problems.clone().into_iter().collect(),
        applied_index,
        paused: m.paused,
        conflict: m
            .conflict
            .as_ref()
            .map(|c| format!("{} {}", c.addr, c.detail))
            .unwrap_or_default(),
        notification_script: m.notification_script.clone().unwrap_or_default(),
        client_reconfig_script: m.client_reconfig_script.clone().unwrap_or_default(),
        retry_not_before_ms: retry.as_ref().map_or(0, |d| d.until_ms),
        retry_epoch: retry.as_ref().map_or(0, |d| d.epoch),
        retry_reason: retry.map(|d| d.cause).unwrap_or_default(),
        min_failover_interval_ms: m.min_failover_interval_ms,
    }
}

pub fn history(m: &MasterRecord) -> pb::HistoryReply {
    pb::HistoryReply {
        entries: m
            .history
            .iter()
            .map(|o| pb::HistoryEntry {
                epoch: o.epoch,
                reason: o.reason.clone(),
                from: o.from.to_string(),
                to: o.to.to_string(),
                started_at_ms: o.started_at_ms,
                finished_at_ms: o.finished_at_ms,
                aborted: o.aborted.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn replica(r: &ReplicaRecord) -> pb::Replica {
    pb::Replica {
        host: r.addr.host.clone(),
        port: u32::from(r.addr.port),
        run_id: r.run_id.clone(),
        replid: r.replid.clone(),
    }
}

pub fn event(e: &IndexedEvent) -> pb::Event {
    pb::Event {
        index: e.index,
        kind: e.event.channel().to_owned(),
        payload: e.event.payload(),
        master: e.event.master.clone().unwrap_or_default(),
        epoch: e.event.epoch,
    }
}
