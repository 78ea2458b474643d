//! What one node observed of one Redis instance, as data: the monitor produces it, followers send
//! it to the leader, and the failover decisions read it. No I/O.

use serde::{Deserialize, Serialize};

use crate::topology::Addr;

/// The role an instance reported in its last INFO replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportedRole {
    Master {
        /// The replicas it lists (`slaveN:ip=…,port=…,state=…,offset=…`).
        replicas: Vec<ReplicaLink>,
    },
    Replica {
        master: Addr,
        /// `master_link_status:up`.
        link_up: bool,
        /// How long the link has been down (`master_link_down_since_seconds`), 0 when up.
        link_down_ms: u64,
        /// `slave_priority` / `replica-priority`: 0 means never promote.
        priority: u32,
        /// `slave_read_repl_offset` or `slave_repl_offset`.
        offset: u64,
        /// `master_last_io_seconds_ago`, in ms; None when unknown (-1).
        last_io_ms: Option<u64>,
    },
}

impl ReportedRole {
    /// Every address the role names: its replicas, or its master.
    pub fn addrs_mut(&mut self) -> Vec<&mut Addr> {
        match self {
            ReportedRole::Master { replicas } => replicas.iter_mut().map(|r| &mut r.addr).collect(),
            ReportedRole::Replica { master, .. } => vec![master],
        }
    }
}

/// One `slaveN` line of a master's INFO replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLink {
    pub addr: Addr,
    pub state: String,
    pub offset: u64,
}

/// One node's view of one instance. Ages are relative to when the report was built, so a report
/// means the same on any node's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub addr: Addr,
    /// Subjectively down: no valid reply for down-after.
    pub sdown: bool,
    /// Time since the last valid PING reply (+PONG, -LOADING, -MASTERDOWN).
    pub reply_age_ms: u64,
    /// Time since the last successful INFO; None if never.
    pub info_age_ms: Option<u64>,
    /// From the last successful INFO; None if never.
    pub role: Option<ReportedRole>,
    pub run_id: String,
    /// `master_replid`.
    pub replid: String,
    /// `master_repl_offset`.
    pub repl_offset: u64,
    /// `master_replid2`: the lineage this instance continued from when it was last promoted (or
    /// when its master was); empty or all zeros when none. The lineage check (invariant 7) needs it.
    #[serde(default)]
    pub replid2: String,
    /// `second_repl_offset`: `master_repl_offset + 1` at the switch from `replid2` (the history
    /// under `replid2` ends at this − 1); None when Redis reports -1 or the field is absent.
    #[serde(default)]
    pub second_repl_offset: Option<u64>,
    /// Time since its INFO last changed role (Sentinel's role-reported-time). Local to this
    /// node: never sent, so reports keep their wire format.
    #[serde(skip)]
    pub role_age_ms: u64,
    /// The log's master restarted and has not answered PONG since, with
    /// master-reboot-down-after-period set (Sentinel's `master_reboot` flag). Local.
    #[serde(skip)]
    pub reboot: bool,
    /// This node's connection to it is up: Sentinel flags an instance `disconnected` from the
    /// moment its link drops (a killed master at once), not after down-after. Local.
    #[serde(skip)]
    pub link_up: bool,
}

/// Everything one node observed, per monitored master name: the master and every replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node_id: u64,
    /// The node's scheduling lagged (TILT): its observations are not to be trusted.
    pub tilt: bool,
    pub masters: std::collections::BTreeMap<String, Vec<Observation>>,
    /// The Redis instances on this node's host, as its lease guard sees them.
    pub local: Colocation,
    /// When this node's current TILT began (INFO's `sentinel_tilt_since_seconds`). Local: never
    /// sent, so reports keep their wire format.
    #[serde(skip)]
    pub tilt_since: Option<tokio::time::Instant>,
    /// How many times this node entered TILT since it started (`sentinel_total_tilt`). Local.
    #[serde(skip)]
    pub tilt_total: u64,
}

/// What a node reports about its own host (DESIGN "Co-location", invariant 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colocation {
    /// Run ids of the `local-redis` instances: the leader assigns lease holders by them.
    pub run_ids: std::collections::BTreeSet<String>,
    /// Grants this node released for good, because the Redis they covered is gone (connection
    /// refused): the leader commits LeaseReleased and promotes without waiting for expiry.
    pub released: std::collections::BTreeSet<u64>,
    /// Masters with a VIP whose instance runs here but whose VIP this node cannot carry, and why.
    pub vip_problems: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
impl Observation {
    /// A fresh, answering instance at 10.0.0.1:`port` that reported `run_id` (for unit tests).
    pub fn answering(port: u16, run_id: &str) -> Observation {
        Observation {
            addr: Addr::new("10.0.0.1", port),
            sdown: false,
            reply_age_ms: 0,
            info_age_ms: Some(0),
            role: None,
            run_id: run_id.to_owned(),
            replid: String::new(),
            repl_offset: 0,
            replid2: String::new(),
            second_repl_offset: None,
            role_age_ms: 0,
            reboot: false,
            link_up: true,
        }
    }
}

impl NodeReport {
    pub fn observation(&self, master: &str, addr: &Addr) -> Option<&Observation> {
        self.masters.get(master)?.iter().find(|o| &o.addr == addr)
    }
}
