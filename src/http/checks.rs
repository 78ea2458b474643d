//! The HTTP API's verdicts and bodies, as pure functions of what the node holds: the applied
//! state, its own probes, what its lease guard made writable, and whether it is fresh. No I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::monitor::{NodeReport, ReportedRole};
use crate::topology::{Addr, MasterRecord, TopologyState};

/// What this node knows of itself when a request comes in.
pub struct Here<'a> {
    pub node_id: u64,
    /// Hears the current leader and has caught up (the Sentinel port's condition).
    pub fresh: bool,
    /// Masters whose co-located Redis the lease guard made writable in its last round.
    pub writable: &'a BTreeSet<String>,
    /// The lease's acting window is open now.
    pub lease_open: bool,
    /// Run ids of this host's Redis instances (`local-redis`).
    pub local_run_ids: &'a BTreeSet<String>,
}

/// An answer: 200 when `ok`, else 503; the body is JSON.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verdict {
    #[serde(skip)]
    pub ok: bool,
    pub name: String,
    pub node: u64,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Verdict {
    fn no(name: &str, here: &Here, reason: &'static str) -> Verdict {
        Verdict {
            ok: false,
            name: name.to_owned(),
            node: here.node_id,
            role: "unknown",
            addr: None,
            epoch: None,
            lag: None,
            reason: Some(reason),
        }
    }
}

/// `GET /primary/{name}`: 200 on the node whose co-located Redis is `name`'s master and writable
/// under a lease held now, so no two nodes answer 200 at once (the lease of a new master is
/// granted only once the old one is dead). With `addr`, 200 on any fresh node whose applied
/// state names `addr` the master (that form follows the log, not the fence).
pub fn primary(topology: &TopologyState, here: &Here, name: &str, addr: Option<&Addr>) -> Verdict {
    if !here.fresh {
        return Verdict::no(name, here, "this node is not fresh: it hears no leader");
    }
    let Some(m) = topology.master(name) else {
        return Verdict::no(name, here, "no such master");
    };
    let ok = match addr {
        Some(a) => *a == m.addr,
        None => here.lease_open && here.writable.contains(name),
    };
    Verdict {
        ok,
        name: name.to_owned(),
        node: here.node_id,
        role: if ok { "master" } else { "other" },
        addr: Some(m.addr.to_string()),
        epoch: Some(m.config_epoch),
        lag: None,
        reason: (!ok).then_some(match addr {
            Some(_) => "that address is not the master",
            None => "the master is not writable on this node's host",
        }),
    }
}

/// `GET /replica/{name}?lag=BYTES`: 200 when this host runs a replica of `name`'s current master,
/// linked to it, and (with `max_lag`) no more than that many bytes behind as this node's probes
/// last saw the two offsets.
pub fn replica(
    topology: &TopologyState,
    report: &NodeReport,
    here: &Here,
    name: &str,
    max_lag: Option<u64>,
) -> Verdict {
    if !here.fresh {
        return Verdict::no(name, here, "this node is not fresh: it hears no leader");
    }
    let Some(m) = topology.master(name) else {
        return Verdict::no(name, here, "no such master");
    };
    let Some((addr, lag)) = local_replica(m, report, here.local_run_ids) else {
        return Verdict::no(name, here, "no linked replica of the master on this host");
    };
    let ok = max_lag.map_or(true, |max| lag <= max);
    Verdict {
        ok,
        name: name.to_owned(),
        node: here.node_id,
        role: "replica",
        addr: Some(addr.to_string()),
        epoch: Some(m.config_epoch),
        lag: Some(lag),
        reason: (!ok).then_some("the replica lags more than asked"),
    }
}

/// A replica of `m` running here (by run id) with its link to the log's master up, and its lag
/// in bytes behind the master's offset.
fn local_replica<'r>(
    m: &MasterRecord,
    report: &'r NodeReport,
    local: &BTreeSet<String>,
) -> Option<(&'r Addr, u64)> {
    let master_offset = report.observation(&m.name, &m.addr)?.repl_offset;
    report.masters.get(&m.name)?.iter().find_map(|o| {
        if o.addr == m.addr || o.sdown || !local.contains(&o.run_id) {
            return None;
        }
        match &o.role {
            Some(ReportedRole::Replica {
                master,
                link_up: true,
                offset,
                ..
            }) if *master == m.addr => Some((&o.addr, master_offset.saturating_sub(*offset))),
            _ => None,
        }
    })
}

/// `GET /cluster`: this node's view of the cluster.
#[derive(Debug, Serialize)]
pub struct Cluster {
    pub node: u64,
    pub fresh: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub masters: Vec<MasterSummary>,
}

#[derive(Debug, Serialize)]
pub struct MasterSummary {
    pub name: String,
    pub addr: String,
    pub config_epoch: u64,
    pub replicas: Vec<String>,
    pub odown: bool,
    pub failover_in_progress: bool,
    pub paused: bool,
    pub lease_holder: Option<u64>,
}

pub fn masters(topology: &TopologyState) -> Vec<MasterSummary> {
    topology
        .masters()
        .map(|m| MasterSummary {
            name: m.name.clone(),
            addr: m.addr.to_string(),
            config_epoch: m.config_epoch,
            replicas: m.replicas.iter().map(|r| r.addr.to_string()).collect(),
            odown: m.odown.is_some(),
            failover_in_progress: m.failover.is_some(),
            paused: m.paused,
            lease_holder: m.holder,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Observation;
    use crate::topology::{ApplyContext, Command};

    fn state() -> TopologyState {
        let mut t = TopologyState::default();
        let voters = BTreeSet::from([1, 2, 3]);
        let monitor = Command::Monitor {
            name: "m".into(),
            addr: Addr::new("10.0.0.1", 6379),
            quorum: 2,
            down_after_ms: 5000,
        };
        let applied = t.apply(
            &monitor,
            ApplyContext {
                index: 1,
                voters: &voters,
            },
        );
        assert!(applied.result.is_ok());
        t
    }

    fn here<'a>(
        fresh: bool,
        writable: &'a BTreeSet<String>,
        ids: &'a BTreeSet<String>,
    ) -> Here<'a> {
        Here {
            node_id: 1,
            fresh,
            writable,
            lease_open: true,
            local_run_ids: ids,
        }
    }

    #[test]
    fn primary_needs_freshness_the_fence_lifted_and_an_open_lease() {
        let t = state();
        let (w, none) = (BTreeSet::from(["m".to_owned()]), BTreeSet::new());
        assert!(primary(&t, &here(true, &w, &none), "m", None).ok);
        assert!(!primary(&t, &here(false, &w, &none), "m", None).ok);
        assert!(!primary(&t, &here(true, &none, &none), "m", None).ok);
        let mut closed = here(true, &w, &none);
        closed.lease_open = false;
        assert!(!primary(&t, &closed, "m", None).ok);
        let v = primary(&t, &here(true, &w, &none), "x", None);
        assert_eq!((v.ok, v.reason), (false, Some("no such master")));
    }

    #[test]
    fn primary_by_address_follows_the_log() {
        let t = state();
        let none = BTreeSet::new();
        let h = here(true, &none, &none);
        assert!(primary(&t, &h, "m", Some(&Addr::new("10.0.0.1", 6379))).ok);
        assert!(!primary(&t, &h, "m", Some(&Addr::new("10.0.0.2", 6379))).ok);
    }

    #[test]
    fn replica_needs_a_linked_local_replica_within_the_lag() {
        let t = state();
        let mut master = Observation::answering(6379, "m-id");
        master.repl_offset = 1000;
        let mut r = Observation::answering(6380, "r-id");
        r.role = Some(ReportedRole::Replica {
            master: Addr::new("10.0.0.1", 6379),
            link_up: true,
            link_down_ms: 0,
            priority: 100,
            offset: 900,
            last_io_ms: Some(0),
        });
        let mut report = NodeReport::default();
        report.masters.insert("m".into(), vec![master, r.clone()]);
        let (none, ids) = (BTreeSet::new(), BTreeSet::from(["r-id".to_owned()]));
        let h = here(true, &none, &ids);
        let v = replica(&t, &report, &h, "m", Some(100));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.lag, Some(100));
        assert!(!replica(&t, &report, &h, "m", Some(99)).ok);
        assert!(replica(&t, &report, &h, "m", None).ok);
        let other = BTreeSet::from(["elsewhere".to_owned()]);
        assert!(!replica(&t, &report, &here(true, &none, &other), "m", None).ok);
        if let Some(ReportedRole::Replica { link_up, .. }) = &mut r.role {
            *link_up = false;
        }
        report.masters.get_mut("m").unwrap()[1] = r;
        assert!(!replica(&t, &report, &h, "m", None).ok);
    }
}
