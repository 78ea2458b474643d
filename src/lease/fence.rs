//! Keeps every monitored Redis instance on this host fenced unless this node holds a valid lease,
//! the log names the instance master and ROLE says master (invariants 2 and 5), at startup too.
//! `writable` is the rule; `guard` applies it every renewal interval and repeats CLIENT KILL while
//! a master stays fenced, so clients that only re-resolve on a dropped connection do. A writable
//! master carries the operator's `min-replicas-*` from the log, which unfencing puts back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::holding::Holding;
use super::local::{Local, LocalState};
use super::vip::Vips;
use super::watchdog::Alive;
use crate::monitor::{Colocation, NodeReport};
use crate::raft::SmData;
use crate::redis::{Access, Connector, Failure};
use crate::topology::{Addr, MinReplicas};

/// Clients of a fenced master are disconnected again this often.
const KILL_EVERY: Duration = Duration::from_secs(1);

/// What the log and this node's monitor say about one local instance (matched by run id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Some monitored master or known replica has this run id.
    pub monitored: bool,
    /// The log's current master of some name has this run id (as this node's monitor saw it).
    pub master_in_log: bool,
    /// The names the log says it is master of.
    pub names: Vec<String>,
    /// The operator's settings for those names, the strictest if several (Redis's defaults if
    /// none): what it carries while writable.
    pub min_replicas: MinReplicas,
    /// Every name it belongs to, as master or replica: the VIPs that may come to this host.
    pub member_of: Vec<String>,
}

/// Writable only with all three: a valid lease, the log naming it master, ROLE saying master.
pub fn writable(lease_valid: bool, master_in_log: bool, role_master: bool) -> bool {
    lease_valid && master_in_log && role_master
}

/// Where a local instance with `run_id` sits in the log.
pub fn place(view: &SmData, report: &NodeReport, run_id: &str) -> Placement {
    let mut p = Placement::default();
    if run_id.is_empty() {
        return p;
    }
    let mut demoted = false;
    for (name, m) in &view.topology.masters {
        let master_id = report
            .observation(name, &m.addr)
            .map(|o| o.run_id.as_str())
            .unwrap_or("");
        // A started failover revoked the old master's writability, whatever else its host holds.
        let moving = m
            .failover
            .as_ref()
            .is_some_and(|f| f.state == crate::topology::FailoverState::Started);
        let is_master = master_id == run_id;
        // A restarted instance has a new run id that only the monitor has seen so far.
        let is_replica = m.replicas.iter().any(|r| {
            r.run_id == run_id
                || report
                    .observation(name, &r.addr)
                    .is_some_and(|o| o.run_id == run_id)
        });
        if is_master || is_replica {
            p.monitored = true;
            p.member_of.push(name.clone());
        }
        if is_master && !moving {
            p.master_in_log = true;
            p.names.push(name.clone());
        }
        // One Redis monitored under two names (issue 11 §8): a failover of one leaves the other
        // naming it master. Any name that demoted it wins, so it is fenced.
        demoted |= (is_master && moving) || (is_replica && !is_master);
    }
    if demoted {
        p.master_in_log = false;
        p.names.clear();
    }
    p.min_replicas = MinReplicas::strictest(
        p.names
            .iter()
            .filter_map(|n| view.topology.masters.get(n))
            .map(|m| m.min_replicas),
    );
    p
}

/// The credentials and TLS setting of the first master that lists `addr` and has any: replicas
/// share their master's. Plain TCP without AUTH when none does. (`raftinel fence` uses it too.)
pub fn access_for(view: &SmData, redis: &Connector, addr: &Addr) -> Access {
    view.topology
        .masters
        .values()
        .filter(|m| m.addr == *addr || m.replicas.iter().any(|r| r.addr == *addr))
        .map(|m| redis.access(m))
        .find(|a| !a.is_default())
        .unwrap_or_default()
}

/// What the guard remembers about its local instances from round to round.
#[derive(Default)]
struct Memory {
    /// When each fenced master's clients were last disconnected.
    last_kill: BTreeMap<Addr, Instant>,
    /// The run id each local address last had: a Redis that is gone still needs matching.
    last_id: BTreeMap<Addr, String>,
    /// Grants released because the Redis they covered is gone.
    released: BTreeSet<u64>,
    /// Each local instance's VIP problems as last read: kept while it cannot be read, so a
    /// Redis restart does not churn readiness entries through the log.
    problems: BTreeMap<Addr, BTreeMap<String, String>>,
    /// Whether each was last read as a monitored, unfenced master: with the writable ones, what
    /// keeps the watchdog device armed (a fence that failed included).
    exposed: BTreeMap<Addr, bool>,
    /// The masters each was last writable for: what HTTP `/primary` keeps saying through a round
    /// that could not read it (a slow reply is no fence), still within the lease window.
    last_writable: BTreeMap<Addr, Vec<String>>,
    /// Whether each takes no writes as last read (a replica, or a fenced master).
    fenced: BTreeMap<Addr, bool>,
}

impl Memory {
    /// What this node reports about its host after a round that read `ids`.
    fn colocation(&self, ids: BTreeSet<String>) -> Colocation {
        Colocation {
            run_ids: ids,
            released: self.released.clone(),
            vip_problems: self
                .problems
                .values()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// What the guard leaves on this host after a round, for the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The masters whose VIP is on this host.
    pub vips_held: BTreeSet<String>,
    /// Each local instance that answered: true when it takes no writes. One that cannot be
    /// read keeps its last value; one that is gone is left out.
    pub fenced: BTreeMap<Addr, bool>,
}

/// One round's findings: the run ids read and the masters left writable.
#[derive(Default)]
struct Round {
    ids: BTreeSet<String>,
    writable: BTreeSet<String>,
    /// Local instances this round could not read (but that are not gone).
    unread: Vec<Addr>,
}

/// The fence task's inputs.
pub struct Guard {
    pub node_id: u64,
    pub locals: Vec<Addr>,
    pub view: watch::Receiver<Arc<SmData>>,
    pub report: watch::Receiver<Arc<NodeReport>>,
    pub holding: watch::Receiver<Holding>,
    /// Run ids of the local instances and the grants released, for this node's reports.
    pub local_ids: watch::Sender<Arc<Colocation>>,
    /// The masters a local instance was writable for after the last round (HTTP `/primary`).
    pub writable: watch::Sender<Arc<BTreeSet<String>>>,
    /// The VIPs and fences on this host after the last round (metrics).
    pub host: watch::Sender<Arc<HostState>>,
    pub every: Duration,
    /// The VIPs of the masters this node holds.
    pub vips: Vips,
    pub redis: Connector,
    /// Told after every round: systemd's watchdog and the watchdog device.
    pub alive: Alive,
}

impl Guard {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut locals: Vec<Local> = self
            .locals
            .iter()
            .map(|a| Local::new(a.clone(), self.redis.clone()))
            .collect();
        let mut memory = Memory::default();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A round also runs as soon as the log or the lease changes: a new master is unfenced
        // the moment its MasterSwitched applies and its lease holds, not up to R later.
        let mut view_changes = self.view.clone();
        let mut lease_changes = self.holding.clone();
        let mut held = lease_changes.borrow_and_update().until.is_some();
        let mut any_writable = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.alive.stop();
                    return;
                }
                _ = tick.tick() => {}
                Ok(()) = view_changes.changed() => {}
                Ok(()) = lease_changes.changed() => {
                    // Each renewal moves the window; only a lease just acquired needs a round
                    // before the next tick.
                    let now_held = lease_changes.borrow_and_update().until.is_some();
                    let acquired = now_held && !held;
                    held = now_held;
                    if !acquired {
                        continue;
                    }
                }
            }
            // The device is armed before anything can be unfenced below.
            self.alive.round(self.lease_held(), any_writable);
            let mut round = Round::default();
            for local in &mut locals {
                self.check(local, &mut memory, &mut round).await;
            }
            // VIPs follow in the same round, before a release is reported: a released grant's
            // VIP is already gone from this host.
            let view = self.view.borrow().clone();
            let until = self.holding.borrow().until;
            self.vips.reconcile(&view, &round.writable, until).await;
            let host = HostState {
                vips_held: self.vips.held(),
                fenced: memory.fenced.clone(),
            };
            self.host
                .send_if_modified(|old| (**old != host).then(|| *old = Arc::new(host)).is_some());
            any_writable = !round.writable.is_empty() || memory.exposed.values().any(|&e| e);
            self.alive.round(self.lease_held(), any_writable);
            let mut shown = round.writable.clone();
            for addr in &round.unread {
                shown.extend(
                    memory
                        .last_writable
                        .get(addr)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            self.writable
                .send_if_modified(|old| (**old != shown).then(|| *old = Arc::new(shown)).is_some());
            let report = memory.colocation(round.ids);
            self.local_ids.send_if_modified(|old| {
                (**old != report).then(|| *old = Arc::new(report)).is_some()
            });
        }
    }

    /// One local instance in one round: read it, place it in the log, fence or unfence it, and
    /// note what the node reports about it.
    async fn check(&mut self, local: &mut Local, memory: &mut Memory, round: &mut Round) {
        let access = self.access_for(&local.addr);
        match local.read(&access).await {
            Ok(state) => {
                round.ids.insert(state.run_id.clone());
                memory
                    .last_id
                    .insert(local.addr.clone(), state.run_id.clone());
                let view = self.view.borrow().clone();
                let placement = place(&view, &self.report.borrow(), &state.run_id);
                memory.exposed.insert(
                    local.addr.clone(),
                    placement.monitored && state.master && !state.fenced(),
                );
                let mine =
                    self.vips
                        .problems(&view, &placement.member_of, &state.bind, &local.addr);
                memory.problems.insert(local.addr.clone(), mine);
                let enforced = self
                    .enforce(local, &access, &state, &placement, &mut memory.last_kill)
                    .await;
                // One raftinel does not monitor is as it was read: nothing here changed it.
                let takes_no_writes = enforced
                    .as_ref()
                    .map_or(!state.master || state.fenced(), Vec::is_empty);
                memory.fenced.insert(local.addr.clone(), takes_no_writes);
                let enforced: Vec<String> = enforced.into_iter().flatten().collect();
                round.writable.extend(enforced.iter().cloned());
                memory.last_writable.insert(local.addr.clone(), enforced);
            }
            Err(e) if e.failure() == Failure::Gone => {
                let addr = local.addr.clone();
                memory.exposed.insert(addr.clone(), false);
                memory.last_writable.remove(&addr);
                memory.fenced.remove(&addr);
                let gone = memory.last_id.get(&addr).map(String::as_str).unwrap_or("");
                for grant in self.releasable(gone) {
                    if memory.released.insert(grant) {
                        tracing::warn!(%addr, grant, "Redis gone: lease released");
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "local Redis not readable");
                round.unread.push(local.addr.clone());
            }
        }
    }

    /// The acting window of a lease is open now.
    fn lease_held(&self) -> bool {
        self.holding
            .borrow()
            .until
            .is_some_and(|u| Instant::now() < u)
    }

    /// This node's grants revoked by a failover of the master that ran as `run_id` here: with
    /// that Redis gone (connection refused), nothing on this host can take its writes, so the
    /// release is safe and final (invariant 5's fast path). The revocation is applied here, so
    /// this node will not act on the grant again.
    fn releasable(&self, run_id: &str) -> Vec<u64> {
        if run_id.is_empty() {
            return Vec::new();
        }
        let view = self.view.borrow();
        let report = self.report.borrow();
        view.topology
            .masters()
            .filter_map(|m| {
                let f = m.failover.as_ref()?;
                let r = f.revoked.filter(|r| r.grant.holder == self.node_id)?;
                let was = report.observation(&m.name, &f.from)?;
                (was.run_id == run_id).then_some(r.grant.id)
            })
            .collect()
    }

    fn access_for(&self, addr: &Addr) -> Access {
        access_for(&self.view.borrow(), &self.redis, addr)
    }

    /// Applies the rule to one local instance; returns the masters it is writable for now.
    async fn enforce(
        &self,
        local: &mut Local,
        access: &Access,
        state: &LocalState,
        place: &Placement,
        last_kill: &mut BTreeMap<Addr, Instant>,
    ) -> Option<Vec<String>> {
        if !place.monitored {
            return None;
        }
        let lease_valid = || {
            let grant = self
                .view
                .borrow()
                .topology
                .lease_of(self.node_id)
                .map(|g| g.id);
            grant.is_some_and(|g| self.holding.borrow().valid(g, Instant::now()))
        };
        let want = writable(lease_valid(), place.master_in_log, state.master);
        let addr = local.addr.clone();
        let mut now_writable = want && !state.fenced();
        let result = if want && state.fenced() {
            // Checked again right before acting: the round above may have taken a while. The
            // watchdog device, if any, is armed before the Redis can take a write.
            if lease_valid() && self.alive.may_unfence() {
                let settings = place.min_replicas;
                tracing::info!(%addr, ?settings, "lease held and the log names it master: unfenced");
                let r = local.unfence(access, place.min_replicas).await;
                now_writable = r.is_ok();
                r
            } else {
                Ok(())
            }
        } else if want && !state.carries(place.min_replicas) {
            // The log is the source of truth: a `set` reaches a writable master at once, and a
            // CONFIG SET made on Redis directly is undone.
            let settings = place.min_replicas;
            tracing::info!(%addr, ?settings, "min-replicas set from the log");
            local.unfence(access, settings).await
        } else if !want && !state.fenced() {
            tracing::warn!(%addr, master = state.master, "fenced: writes refused, clients dropped");
            last_kill.insert(addr.clone(), Instant::now());
            local.fence(access).await
        } else if !want && state.master {
            let due = last_kill
                .get(&addr)
                .map_or(true, |t| t.elapsed() >= KILL_EVERY);
            if due {
                last_kill.insert(addr.clone(), Instant::now());
                local.kill_clients(access).await
            } else {
                Ok(())
            }
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(%addr, error = %e, "fence change failed; retrying next round");
        }
        now_writable.then(|| place.names.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Observation;
    use crate::topology::{FailoverRecord, MasterRecord};

    /// Masters `a` on port 1 and `b` on port 2 (with a replica on port 3), as node 1 sees them:
    /// the instance on port N runs as "rN".
    fn log(a: MinReplicas, b: MinReplicas) -> (SmData, NodeReport) {
        let mut view = SmData::default();
        let mut report = NodeReport::default();
        for (name, port, settings) in [("a", 1, a), ("b", 2, b)] {
            let mut m = MasterRecord::new(name, Addr::new("10.0.0.1", port), 2, 1000);
            m.min_replicas = settings;
            let mut obs = vec![Observation::answering(port, &format!("r{port}"))];
            if name == "b" {
                m.replicas.push(crate::topology::ReplicaRecord {
                    addr: Addr::new("10.0.0.1", 3),
                    run_id: String::new(),
                    replid: String::new(),
                });
                obs.push(Observation::answering(3, "r3"));
            }
            view.topology.masters.insert(name.to_owned(), m.into());
            report.masters.insert(name.to_owned(), obs);
        }
        (view, report)
    }

    // Issue 11 §6: a writable master carries the log's min-replicas for its name, not a replica's
    // name's; with none of its own, Redis's defaults.
    #[test]
    fn placement_carries_the_logs_min_replicas() {
        let one = MinReplicas {
            to_write: 1,
            max_lag_s: 5,
        };
        let two = MinReplicas {
            to_write: 2,
            max_lag_s: 9,
        };
        let (view, report) = log(one, two);
        let a = place(&view, &report, "r1");
        assert_eq!(
            (a.master_in_log, a.names.clone(), a.min_replicas),
            (true, vec!["a".to_owned()], one)
        );
        assert_eq!(a.member_of, ["a"]);
        let r3 = place(&view, &report, "r3");
        assert!(r3.monitored && !r3.master_in_log);
        assert_eq!(r3.member_of, ["b"]);
        let b = place(&view, &report, "r2");
        assert_eq!(
            (b.names.clone(), b.min_replicas),
            (vec!["b".to_owned()], two)
        );
        let stranger = place(&view, &report, "r9");
        assert!(!stranger.monitored);
        assert_eq!(stranger.min_replicas, MinReplicas::default());

        // A started failover of `a` revokes its writability: no settings of its own remain.
        let mut moving = view.clone();
        if let Some(m) = moving
            .topology
            .masters
            .get_mut("a")
            .map(std::sync::Arc::make_mut)
        {
            m.failover = Some(FailoverRecord {
                epoch: 7,
                candidate: Addr::new("10.0.0.1", 3),
                candidate_holder: None,
                state: crate::topology::FailoverState::Started,
                reason: "test".to_owned(),
                from: Addr::new("10.0.0.1", 1),
                started_at_ms: 0,
                promoted_at_ms: None,
                revoked: None,
            });
        }
        let a = place(&moving, &report, "r1");
        assert!(!a.master_in_log && a.monitored);
        assert_eq!(a.min_replicas, MinReplicas::default());
    }

    // Issue 11 §8: one Redis under two names, `b` failed over and folded it in as a replica while
    // `a` still names it master: it is not the log's master, so it is fenced.
    #[test]
    fn a_name_that_demoted_the_instance_wins() {
        let (mut view, mut report) = log(MinReplicas::default(), MinReplicas::default());
        if let Some(b) = view
            .topology
            .masters
            .get_mut("b")
            .map(std::sync::Arc::make_mut)
        {
            b.replicas[0].run_id = "r1".to_owned();
        }
        if let Some(obs) = report.masters.get_mut("b") {
            obs[1].run_id = "r1".to_owned();
        }
        let p = place(&view, &report, "r1");
        assert!(p.monitored && !p.master_in_log);
        assert!(p.names.is_empty());
        assert_eq!(p.member_of, ["a", "b"]);
        assert_eq!(p.min_replicas, MinReplicas::default());
    }

    #[test]
    fn writable_needs_lease_log_and_role() {
        for lease in [false, true] {
            for log in [false, true] {
                for role in [false, true] {
                    assert_eq!(writable(lease, log, role), lease && log && role);
                }
            }
        }
    }
}
