//! The leader's failover loop: on every report, topology change or tick, ask `decide` what the
//! next step is for each master, and carry it out. Every step that changes a role starts with a
//! commit or a quorum-confirmed read (invariants 1 and 2); metrics saying "Leader" only trigger.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::candidate::{eligible, known_replicas, rerank, Eligible};
use super::decide::Step;
use super::exec::{self, HandoverError, StepError};
use super::holders::{config_vip_entry, holder_of, next_lease_entry, next_vip_entry};
use super::next;
use super::odown::{freshest_reply, odown, odown_change, ReportIn};
use super::redis_ops::Instance;
use super::reports::Reports;
use crate::admin::now_ms;
use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::lease::renew::Peers as LeasePeers;
use crate::monitor::{NodeReport, ReportedRole};
use crate::raft::group_commit::{GroupCommit, WriteError};
use crate::raft::types::typ::RaftError;
use crate::raft::{Raft, SmData};
use crate::redis::{ConnError, Connector, Failure, Role};
use crate::topology::event;
use crate::topology::lease::MustDie;
use crate::topology::{Addr, Command, FailoverState, MasterRecord, Reconf, Vip};

const TICK: Duration = Duration::from_millis(25);
/// How often every master is looked at although nothing about it changed, and how often an idle
/// leader wakes at all.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(2);
const RESEND_AFTER: Duration = Duration::from_millis(1000);
const RERANK_WITHIN: Duration = Duration::from_millis(150);
/// How often the leader asks whether a superseded lease grant is dead yet.
const SETTLE_EVERY: Duration = Duration::from_millis(200);

/// The probe period the monitor uses for a master ([`crate::monitor::ping_interval`]).
pub fn ping_interval_ms(down_after_ms: u64) -> u64 {
    crate::monitor::ping_interval(Duration::from_millis(down_after_ms)).as_millis() as u64
}

/// A report older than this is unknown, not evidence.
pub fn fresh_ms(down_after_ms: u64) -> u64 {
    (5 * ping_interval_ms(down_after_ms)).max(500)
}

/// Replica → (the master it was told to follow, when).
pub type Sent = HashMap<Addr, (Addr, tokio::time::Instant)>;

#[derive(Clone)]
pub struct Runner {
    pub node_id: u64,
    pub raft: Raft,
    pub view: watch::Receiver<Arc<SmData>>,
    pub reports: Reports,
    /// For the events only the acting leader publishes (`+fix-slave-config`,
    /// `+convert-to-slave`), as only the acting sentinel does.
    pub bus: EventBus,
    /// Replicas recently sent REPLICAOF, and to which master.
    pub sent: Arc<Mutex<Sent>>,
    /// Asks the nodes whether a revoked grant is dead before a promotion (invariant 4).
    pub lease_peers: LeasePeers,
    /// Per-node timeout of that question (the renew RPC timeout T).
    pub lease_timeout: Duration,
    /// `[masters.NAME] vip` of this node's config, for masters whose log has no VIP.
    pub config_vips: Arc<BTreeMap<String, Vip>>,
    /// Connections to Redis, with this node's TLS files.
    pub redis: Connector,
    /// Where the runner's entries are written.
    pub writes: GroupCommit,
}

/// The busy-set key of lease entries (holder assignments and grants): one commit at a time.
const LEASES: &str = "\0leases";

/// Names with a step under way: one step at a time per master.
#[derive(Clone, Default)]
struct Busy(Arc<Mutex<HashSet<String>>>);

struct BusyGuard(Busy, String);

impl Busy {
    fn holds(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    fn claim(&self, name: &str) -> Option<BusyGuard> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(name.to_string())
            .then(|| BusyGuard(self.clone(), name.to_string()))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut set = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.1);
    }
}

impl Runner {
    pub async fn run(self, cancel: CancellationToken) {
        let mut changed = self.reports.subscribe();
        let mut metrics = self.raft.server_metrics();
        let mut view = self.view.clone();
        // Every TICK while something is under way, every SWEEP_EVERY otherwise: an idle leader
        // of many masters should not walk them 40 times a second.
        let mut wake_at = tokio::time::Instant::now();
        let busy = Busy::default();
        let mut tasks = JoinSet::new();
        let mut leading = false;
        let mut caught_up = false;
        let mut odown = HashMap::new();
        let mut reconf = HashSet::new();
        let mut swept = tokio::time::Instant::now();
        let mut last_view: Option<Arc<SmData>> = None;
        // Server metrics change with the role, the leader or the membership; only a membership
        // change calls for a sweep.
        let mut last_membership = None;
        loop {
            let mut sweep = false;
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = changed.changed() => if r.is_err() { break },
                r = metrics.changed() => if r.is_err() { break },
                r = view.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
            wake_at = tokio::time::Instant::now() + SWEEP_EVERY;
            while tasks.try_join_next().is_some() {}
            let (is_leader, membership) = {
                let m = metrics.borrow();
                let leads =
                    m.state == ServerState::Leader && m.current_leader == Some(self.node_id);
                (leads, *m.membership_config.log_id())
            };
            if last_membership != Some(membership) {
                last_membership = Some(membership);
                sweep = true;
            }
            if is_leader != leading {
                leading = is_leader;
                caught_up = false;
                if leading {
                    // A predecessor's reports may be stale: only reports sent to us count.
                    self.reports.clear_others(self.node_id);
                    tracing::info!("leading: failover decisions from fresh reports");
                }
            }
            if !leading {
                continue;
            }
            if !caught_up {
                // Decide only from a state holding everything predecessors committed: the
                // quorum-confirmed read waits until this term's first entry is applied.
                let confirmed =
                    tokio::time::timeout(COMMIT_TIMEOUT, self.raft.ensure_linearizable()).await;
                if !matches!(confirmed, Ok(Ok(_))) {
                    wake_at = tokio::time::Instant::now() + TICK;
                    continue;
                }
                caught_up = true;
                sweep = true;
            }
            let data = self.view.borrow().clone();
            let snapshot = self.reports.snapshot();
            // Every master is looked at when the membership or the grants changed and every
            // SWEEP_EVERY (a silent node's reports age out); otherwise those whose record or
            // observations changed and those with something under way. A SENTINEL SET at 200
            // masters no longer costs 200 decisions on the leader.
            let now = tokio::time::Instant::now();
            let changed = match &last_view {
                Some(v) if Arc::ptr_eq(v, &data) => Some(BTreeSet::new()),
                Some(v) => data.topology.changed_masters(&v.topology),
                None => None,
            };
            sweep |= changed.is_none() || now.saturating_duration_since(swept) >= SWEEP_EVERY;
            if sweep {
                swept = now;
            }
            last_view = Some(data.clone());
            let mut dirty = self.reports.take_dirty();
            dirty.extend(changed.into_iter().flatten());
            let hot = self.reports.hot();
            // Something under way: looked at again within a TICK.
            let pressing = |m: &MasterRecord| {
                hot.contains(&m.name)
                    || m.failover.is_some()
                    || m.odown.is_some()
                    || busy.holds(&m.name)
            };
            let active = |m: &MasterRecord| sweep || dirty.contains(&m.name) || pressing(m);
            let inputs = report_inputs(&snapshot);
            let entry = next_lease_entry(&data.topology, &inputs, fresh_ms)
                .or_else(|| next_vip_entry(&data.topology, &inputs, fresh_ms))
                .or_else(|| config_vip_entry(&data.topology, &self.config_vips));
            let unsettled = data.topology.unsettled();
            let leases_pending = entry.is_some() || unsettled.is_some();
            if let (true, Some(guard)) =
                (entry.is_some() || unsettled.is_some(), busy.claim(LEASES))
            {
                let runner = self.clone();
                let data = data.clone();
                tasks.spawn(
                    async move {
                        let _guard = guard;
                        match (entry, unsettled) {
                            (Some(cmd), _) => runner.commit_lease_entry(cmd).await,
                            (None, Some(grant)) => runner.settle(&data, &grant).await,
                            (None, None) => {}
                        }
                    }
                    .in_current_span(),
                );
            }
            if leases_pending || busy.holds(LEASES) || data.topology.masters().any(pressing) {
                wake_at = now + TICK;
            }
            let todo: Vec<&MasterRecord> = data.topology.masters().filter(|m| active(m)).collect();
            for master in todo {
                self.announce_odown(master, &snapshot, &mut odown);
                self.announce_reconf(master, &snapshot, &mut reconf);
                let Some(guard) = busy.claim(&master.name) else {
                    continue;
                };
                let step = self.next_step(master, &snapshot);
                if step == Step::None {
                    continue;
                }
                let span =
                    tracing::info_span!("failover", master = %master.name, epoch = master.epoch);
                let runner = self.clone();
                let master = master.clone();
                tasks.spawn(
                    async move {
                        let _guard = guard;
                        if let Err(e) = runner.execute(&master, step).await {
                            tracing::warn!(error = %e, "failover step not completed");
                        }
                    }
                    .instrument(span),
                );
            }
        }
        tasks.shutdown().await;
    }

    /// Whether the applied state still shows `master` as it was when the step was decided: after
    /// a leadership proof the view is current, and a step decided from an older one is dropped
    /// (the next round decides again).
    fn still_current(&self, master: &MasterRecord) -> bool {
        let data = self.view.borrow().clone();
        data.topology.master(&master.name).is_some_and(|now| {
            now.addr == master.addr
                && now.epoch == master.epoch
                && now.failover.as_ref().map(|f| f.state)
                    == master.failover.as_ref().map(|f| f.state)
        })
    }

    /// Replicas not already sent `REPLICAOF to` in the last second: INFO needs that long to show
    /// the change, and each send disconnects every client of the replica.
    fn not_recently_sent(&self, replicas: Vec<Addr>, to: &Addr) -> Vec<Addr> {
        let now = tokio::time::Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        // Entries stay (one per replica) so that reconfiguration progress can be announced.
        replicas
            .into_iter()
            .filter(|r| {
                let fresh = sent.get(r).is_some_and(|(target, at)| {
                    target == to && now.saturating_duration_since(*at) < RESEND_AFTER
                });
                if !fresh {
                    sent.insert(r.clone(), (to.clone(), now));
                }
                !fresh
            })
            .collect()
    }

    /// The candidate ranked again on replication offsets read now: reports carry INFO up to a
    /// period old, and the replica that acknowledged the last writes must win. Replicas that do
    /// not answer at once keep the reports' verdict out of the ranking.
    async fn rerank(
        &self,
        master: &MasterRecord,
        proposed: Addr,
        instances: &RedisInstances<'_>,
    ) -> Addr {
        let snapshot = self.reports.snapshot();
        let inputs = report_inputs(&snapshot);
        let fresh = fresh_ms(master.down_after_ms);
        let ping = ping_interval_ms(master.down_after_ms);
        let down = self.master_down_ms(master, &inputs, fresh);
        let ok: Vec<Eligible> = known_replicas(&master.name, master, &inputs, fresh)
            .iter()
            .filter_map(|a| {
                eligible(
                    a,
                    freshest_reply(&master.name, a, &inputs, fresh),
                    master,
                    ping,
                    down,
                )
                .ok()
            })
            .collect();
        // Nothing to rank when the proposed replica is the only eligible one: no round trip
        // to wait for (every master of a one-replica fleet, at once in a mass failover).
        if ok.iter().all(|e| e.addr == proposed) {
            return proposed;
        }
        let mut asks = JoinSet::new();
        for e in &ok {
            let (addr, master, redis) = (e.addr.clone(), master.clone(), self.redis.clone());
            asks.spawn(async move {
                let mut i = Instance::connect(&redis, &addr, &master).await.ok()?;
                let (priority, offset) = i.replica_offset().await.ok()??;
                Some((addr, priority, offset, i))
            });
        }
        // A healthy Redis answers INFO in well under a millisecond; a hung one must not delay
        // the failover, so whoever has not answered by the deadline is left out.
        let deadline = tokio::time::Instant::now() + RERANK_WITHIN;
        let mut now: HashMap<Addr, (u32, u64)> = HashMap::new();
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, asks.join_next()).await {
            if let Ok(Some((addr, priority, offset, i))) = r {
                now.insert(addr.clone(), (priority, offset));
                instances.keep(&addr, i);
            }
        }
        asks.abort_all();
        let best = rerank(ok, &now, proposed.clone());
        if best != proposed {
            tracing::info!(reports = %proposed, now = %best, "offsets read now change the candidate");
        }
        best
    }

    /// How long the master has been without a valid reply, by the freshest report.
    fn master_down_ms(&self, master: &MasterRecord, inputs: &[ReportIn], fresh: u64) -> u64 {
        inputs
            .iter()
            .filter(|r| r.age_ms <= fresh)
            .filter_map(|r| r.report.observation(&master.name, &master.addr))
            .map(|o| o.reply_age_ms)
            .min()
            .unwrap_or(0)
    }

    /// Records in the log each replica this leader repointed during a failover as its INFO shows
    /// it syncing from, then linked to, the new master (Sentinel's `+slave-reconf-inprog` /
    /// `-done`, which every node then publishes); each stage asked for once.
    fn announce_reconf(
        &self,
        master: &MasterRecord,
        snapshot: &[(u64, Arc<NodeReport>)],
        announced: &mut HashSet<(Addr, Addr, Reconf)>,
    ) {
        let Some(epoch) = master
            .failover
            .as_ref()
            .filter(|f| f.state == FailoverState::Promoted)
            .map(|f| f.epoch)
        else {
            return;
        };
        let sent: Vec<Addr> = {
            let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            sent.iter()
                .filter(|(_, (to, _))| to == &master.addr)
                .map(|(r, _)| r.clone())
                .collect()
        };
        if sent.is_empty() {
            return;
        }
        let inputs = report_inputs(snapshot);
        let fresh = fresh_ms(master.down_after_ms);
        for replica in sent {
            let Some(o) = super::odown::freshest_info(&master.name, &replica, &inputs, fresh)
            else {
                continue;
            };
            let stage = match &o.role {
                Some(ReportedRole::Replica {
                    master: m, link_up, ..
                }) if m == &master.addr => {
                    if *link_up {
                        Reconf::Done
                    } else {
                        Reconf::Inprog
                    }
                }
                _ => continue,
            };
            if master.reconf.get(&replica).is_some_and(|s| *s >= stage) {
                continue;
            }
            if announced.insert((replica.clone(), master.addr.clone(), stage)) {
                self.announce(Command::ReplicaReconf {
                    name: master.name.clone(),
                    epoch,
                    replica,
                    stage,
                });
            }
        }
    }

    /// Queues an announcement for the log, ahead of any step decided after it.
    fn announce(&self, cmd: Command) {
        if let Err(e) = self.writes.submit(cmd) {
            tracing::debug!(error = %e, "announcement not queued; asked again on a later round");
        }
    }

    /// A leader-side event about a replica of `master` that only the leader publishes, as only the
    /// acting sentinel does (not in the log: index LOCAL).
    fn publish_about_replica(&self, step: event::Step, addr: &Addr, master: &MasterRecord) {
        let event = event::about_replica(step, addr, master, &master.addr);
        self.bus.publish(IndexedEvent {
            index: LOCAL,
            event,
        });
    }

    /// Records in the log when the quorum verdict on `master` flips (Sentinel's `+odown` /
    /// `-odown`, which every node then publishes); asked again after `RESEND_AFTER` while the log
    /// does not show it.
    fn announce_odown(
        &self,
        master: &MasterRecord,
        snapshot: &[(u64, Arc<NodeReport>)],
        asked: &mut HashMap<String, (Addr, bool, tokio::time::Instant)>,
    ) {
        let inputs = report_inputs(snapshot);
        let voters = self.voters();
        let fresh = fresh_ms(master.down_after_ms);
        let verdict = odown(&master.name, master, &inputs, &voters, fresh);
        let Some(down) = odown_change(master.odown.is_some(), &verdict, voters.len()) else {
            asked.remove(&master.name);
            return;
        };
        let now = tokio::time::Instant::now();
        if let Some((addr, d, at)) = asked.get(&master.name) {
            if *addr == master.addr && *d == down && now.duration_since(*at) < RESEND_AFTER {
                return;
            }
        }
        asked.insert(master.name.clone(), (master.addr.clone(), down, now));
        self.announce(Command::Odown {
            name: master.name.clone(),
            addr: master.addr.clone(),
            down,
            votes: verdict.sdown_votes,
            quorum: verdict.quorum,
            at_ms: now_ms(),
        });
    }

    /// The applied membership's voters: the only nodes whose reports make ODOWN.
    fn voters(&self) -> BTreeSet<u64> {
        self.view
            .borrow()
            .membership
            .membership()
            .voter_ids()
            .collect()
    }

    fn next_step(&self, master: &MasterRecord, snapshot: &[(u64, Arc<NodeReport>)]) -> Step {
        let inputs = report_inputs(snapshot);
        let fresh = fresh_ms(master.down_after_ms);
        let voters = self.voters();
        next::next_step(&next::Inputs {
            master,
            reports: &inputs,
            voters: &voters,
            fresh_ms: fresh,
            ping_interval_ms: ping_interval_ms(master.down_after_ms),
            now_ms: now_ms(),
            master_down_ms: self.master_down_ms(master, &inputs, fresh),
        })
    }

    /// Through the group commit: the steps of a mass failover share entries.
    async fn commit(&self, cmd: Command) -> Result<u64, StepError> {
        match tokio::time::timeout(COMMIT_TIMEOUT, self.writes.write(cmd)).await {
            Err(_) | Ok(Err(WriteError::Timeout)) => Err(StepError::Timeout),
            Ok(Ok((index, Ok(_)))) => Ok(index),
            Ok(Ok((_, Err(refusal)))) => Err(StepError::Refused(refusal.to_string())),
            Ok(Err(WriteError::NotLeader)) => Err(StepError::NotLeader),
            Ok(Err(e)) => Err(StepError::Raft(e.to_string())),
        }
    }

    /// Proves leadership with a quorum right before a role change (no log write needed).
    async fn prove_leadership(&self) -> Result<(), StepError> {
        for _ in 0..3 {
            match tokio::time::timeout(COMMIT_TIMEOUT, self.raft.ensure_linearizable()).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(
                    openraft::error::CheckIsLeaderError::ForwardToLeader(_),
                ))) => return Err(StepError::NotLeader),
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return Err(StepError::Timeout),
            }
        }
        Err(StepError::Timeout)
    }

    async fn execute(&self, master: &MasterRecord, step: Step) -> Result<(), StepError> {
        let name = master.name.clone();
        let in_progress = master.failover.as_ref().map(|f| f.epoch);
        match step {
            Step::None => Ok(()),
            Step::Start { candidate, reason } => {
                // One set of connections for the whole step: the candidate's, opened to read its
                // offset, also carries the promotion and the reads after it.
                let instances = self.instances();
                let candidate = self.rerank(master, candidate, &instances).await;
                let epoch = master.epoch + 1;
                tracing::warn!(%candidate, %reason, epoch, "starting failover");
                let started = Command::FailoverStarted {
                    name: name.clone(),
                    epoch,
                    candidate: candidate.clone(),
                    candidate_holder: self.holder_for(master, &candidate),
                    reason,
                    at_ms: now_ms(),
                };
                // The commit proves leadership: the promotion follows at once.
                let ready = self.before_promotion(master);
                exec::start(self, &instances, master, started, ready).await
            }
            Step::Promote { .. } => {
                // The candidate is the one the log names for the epoch.
                let epoch = in_progress.unwrap_or(master.epoch);
                let current = || self.still_current(master);
                let ready = self.before_promotion(master);
                exec::resume(self, &self.instances(), master, epoch, current, ready).await
            }
            Step::Switched { candidate, replid } => {
                let epoch = in_progress.unwrap_or(master.epoch);
                tracing::info!(%candidate, "candidate reports master: committing the switch");
                self.commit(Command::MasterSwitched {
                    name,
                    epoch,
                    replid,
                    at_ms: now_ms(),
                })
                .await
                .map(drop)
            }
            Step::Repoint { replicas, to } => {
                // During a failover this is Sentinel's replica reconfiguration; outside one, a
                // replica found following the wrong master is being fixed.
                let kind = if master.failover.is_some() {
                    event::Step::ReconfSent
                } else {
                    event::Step::FixSlaveConfig
                };
                let pick = || self.not_recently_sent(replicas, &to);
                self.repoint(master, &to, kind, pick).await
            }
            Step::FoldIn { addr, to } => {
                let pick = || {
                    let picked = self.not_recently_sent(vec![addr], &to);
                    for addr in &picked {
                        tracing::info!(instance = %addr, %to, "folding the old master back in as a replica");
                    }
                    picked
                };
                self.repoint(master, &to, event::Step::ConvertToSlave, pick)
                    .await
            }
            Step::End => {
                let epoch = in_progress.unwrap_or(master.epoch);
                self.commit(Command::FailoverEnded {
                    name,
                    epoch,
                    at_ms: now_ms(),
                })
                .await
                .map(drop)
            }
            Step::Abort { reason } => {
                let epoch = in_progress.unwrap_or(master.epoch);
                tracing::warn!(%reason, "aborting failover");
                self.commit(Command::FailoverAborted {
                    name,
                    epoch,
                    reason,
                    at_ms: now_ms(),
                })
                .await
                .map(drop)
            }
            Step::NoCandidate { reasons } => {
                tracing::warn!(?reasons, "master is down but no replica can be promoted");
                tokio::time::sleep(Duration::from_millis(1000)).await;
                Ok(())
            }
            Step::Conflict { addr, detail } => {
                if master.conflict.as_ref().map(|c| &c.addr) == Some(&addr) {
                    // Recorded already: nothing changes until `raftinel ctl resolve`.
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    return Ok(());
                }
                tracing::error!(instance = %addr, %detail, "+topology-conflict: instance is ahead of the log; waiting for `raftinel ctl resolve`");
                self.commit(Command::ConflictDetected { name, addr, detail })
                    .await
                    .map(drop)
            }
            Step::Switchover { target } => {
                let epoch = master.epoch + 1;
                tracing::warn!(%target, epoch, "starting switchover");
                let started = Command::FailoverStarted {
                    name: name.clone(),
                    epoch,
                    candidate: target.clone(),
                    candidate_holder: self.holder_for(master, &target),
                    reason: "switchover".to_string(),
                    at_ms: now_ms(),
                };
                exec::switchover(self, &self.instances(), master, started).await
            }
            Step::Adopt { addr } => {
                let epoch = master.epoch + 1;
                tracing::warn!(instance = %addr, epoch, "resolve: the log follows the instance the operator kept");
                self.commit(Command::FailoverStarted {
                    name: name.clone(),
                    epoch,
                    candidate: addr.clone(),
                    candidate_holder: self.holder_for(master, &addr),
                    reason: "resolve".to_string(),
                    at_ms: now_ms(),
                })
                .await?;
                let within = Duration::from_millis(master.failover_timeout_ms);
                exec::await_master_and_switch(self, &self.instances(), master, &addr, epoch, within)
                    .await
            }
            Step::Discovered { replicas } => self
                .commit(Command::ReplicasDiscovered { name, replicas })
                .await
                .map(drop),
        }
    }

    /// Sends the promotion, waits for ROLE master (within failover-timeout), then commits
    /// MasterSwitched with the new master's replication id.
    /// DESIGN "Failover" 2, what must hold before a promotion: the fence goes to the old master
    /// over the network too, which is decisive when only its node died (Redis alive, unfenced,
    /// nobody left to fence it), beside the wait for the old lease. The promotion waits for the
    /// fence only while some node still gets replies from the old master; an unreachable one (host
    /// lost, or cut off and fenced by its own lease) must not cost a connect timeout.
    async fn before_promotion(&self, master: &MasterRecord) -> Result<(), StepError> {
        let fence = master.holder.is_some().then(|| {
            tokio::spawn(fence_old_master(self.redis.clone(), master.clone()).in_current_span())
        });
        let reachable = self.answers_now(master);
        let dead = self.await_old_grant_dead(master).await;
        if let Some(fence) = fence {
            if reachable {
                let _ = fence.await;
            } else {
                fence.abort();
            }
        }
        dead
    }

    /// Repoints the replicas `pick` chooses (after the proof of leadership) at `to`, and
    /// announces each that took it with `kind`; a failure is retried on a later round.
    async fn repoint(
        &self,
        master: &MasterRecord,
        to: &Addr,
        kind: event::Step,
        pick: impl FnOnce() -> Vec<Addr>,
    ) -> Result<(), StepError> {
        let current = || self.still_current(master);
        let sent = exec::repoint(self, &self.instances(), master, to, current, pick).await?;
        let epoch = master.failover.as_ref().map(|f| f.epoch);
        for (addr, result) in sent {
            match (result, epoch) {
                // Sentinel's +slave-reconf-sent, in the log so that every node publishes it.
                (Ok(()), Some(epoch)) if kind == event::Step::ReconfSent => {
                    self.announce(Command::ReplicaReconf {
                        name: master.name.clone(),
                        epoch,
                        replica: addr,
                        stage: Reconf::Sent,
                    })
                }
                (Ok(()), _) => self.publish_about_replica(kind, &addr, master),
                (Err(e), _) => {
                    tracing::warn!(replica = %addr, error = %e, "repointing failed; retried on a later round")
                }
            }
        }
        Ok(())
    }

    /// The real instances, for the executor.
    fn instances(&self) -> RedisInstances<'_> {
        RedisInstances {
            redis: &self.redis,
            open: Mutex::default(),
        }
    }

    /// Whether a fresh report got a reply from `master`'s address within the last few pings.
    fn answers_now(&self, master: &MasterRecord) -> bool {
        let snapshot = self.reports.snapshot();
        let fresh = fresh_ms(master.down_after_ms);
        let recent = 3 * ping_interval_ms(master.down_after_ms);
        report_inputs(&snapshot)
            .iter()
            .filter(|r| r.age_ms <= fresh)
            .filter_map(|r| r.report.observation(&master.name, &master.addr))
            .any(|o| !o.sdown && o.reply_age_ms <= recent)
    }

    /// The node co-located with `addr`, by run id, from the reports now.
    fn holder_for(&self, master: &MasterRecord, addr: &Addr) -> Option<u64> {
        let snapshot = self.reports.snapshot();
        let inputs = report_inputs(&snapshot);
        holder_of(&master.name, addr, &inputs, fresh_ms(master.down_after_ms))
    }

    async fn commit_lease_entry(&self, cmd: Command) {
        tracing::info!(entry = ?cmd, "lease entry");
        if let Err(e) = self.commit(cmd).await {
            tracing::warn!(error = %e, "lease entry not committed");
        }
    }

    /// A grant a membership change superseded is dropped once a majority of the voters it was
    /// granted under says it is dead, VIP lifetime included; until then failovers away from its
    /// holder wait for it too. Asked at most every `SETTLE_EVERY`.
    async fn settle(&self, data: &SmData, grant: &MustDie) {
        if self
            .lease_peers
            .grant_dead(data, grant, true, self.lease_timeout)
            .await
        {
            tracing::info!(
                grant = grant.id,
                "superseded lease dead at a majority of its voters"
            );
            let cmd = Command::LeaseSettled { id: grant.id };
            if let Err(e) = self.commit(cmd).await {
                tracing::warn!(error = %e, "lease entry not committed");
            }
            return;
        }
        tokio::time::sleep(SETTLE_EVERY).await;
    }

    /// DESIGN "Failover" 2: no promotion until the grant the failover revoked is dead at a
    /// majority, or its holder released it. Waits up to failover-timeout, asking every 50 ms.
    async fn await_old_grant_dead(&self, master: &MasterRecord) -> Result<(), StepError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(master.failover_timeout_ms);
        loop {
            let data = self.view.borrow().clone();
            let revoked = data
                .topology
                .master(&master.name)
                .and_then(|m| m.failover.as_ref())
                .and_then(|f| f.revoked);
            let Some(r) = revoked else { return Ok(()) };
            if r.released {
                tracing::info!(grant = r.grant.id, "old lease released by its holder");
                return Ok(());
            }
            // The revoked grant and any grant of the same holder a membership change superseded,
            // each dead at a majority of the voters it was granted under (issue 11 §3).
            let mut dead = true;
            for grant in data.topology.must_die(&r) {
                dead &= self
                    .lease_peers
                    .grant_dead(&data, &grant, false, self.lease_timeout)
                    .await;
                if !dead {
                    break;
                }
            }
            if dead {
                tracing::info!(grant = r.grant.id, "old lease dead at a majority");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::LeaseAlive(r.grant.id));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A repeated FAILOVER TO refused because the first one did run: Redis says a failover is in
/// progress, or the old master is a replica already.
fn handed_over(e: &ConnError) -> bool {
    let text = e.to_string();
    text.contains("FAILOVER already in progress") || text.contains("when server is a replica")
}

/// Best effort: the old master refuses writes and drops its clients if it can still be reached.
async fn fence_old_master(redis: Connector, master: MasterRecord) {
    let sent = async {
        Instance::connect(&redis, &master.addr, &master)
            .await?
            .fence()
            .await
    };
    match sent.await {
        Ok(()) => tracing::warn!(old = %master.addr, "old master fenced over the network"),
        Err(e) => {
            tracing::info!(old = %master.addr, error = %e, "old master not fenced over the network")
        }
    }
}

/// The reports as `decide` reads them: each with its age at the leader.
fn report_inputs(snapshot: &[(u64, Arc<NodeReport>)]) -> Vec<ReportIn<'_>> {
    snapshot
        .iter()
        .map(|(age, r)| ReportIn {
            node_id: r.node_id,
            age_ms: *age,
            report: r,
        })
        .collect()
}

impl exec::Log for Runner {
    fn commit(&self, cmd: Command) -> impl Future<Output = Result<u64, StepError>> + Send {
        Runner::commit(self, cmd)
    }

    fn prove_leadership(&self) -> impl Future<Output = Result<(), StepError>> + Send {
        Runner::prove_leadership(self)
    }
}

/// The executor's Redis port over `redis_ops::Instance`. Connections live as long as the step:
/// a mass failover of 200 masters on two cores spent a third of its time opening one for each
/// command. One that broke is dropped and the next command opens another.
struct RedisInstances<'a> {
    redis: &'a Connector,
    open: Mutex<HashMap<Addr, Instance>>,
}

impl RedisInstances<'_> {
    fn keep(&self, at: &Addr, i: Instance) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(at.clone(), i);
    }

    /// The step's connection to `at`, or a new one. Taken out while in use, so commands to
    /// different instances run side by side.
    async fn take(&self, master: &MasterRecord, at: &Addr) -> Result<Instance, ConnError> {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(at);
        match open {
            Some(i) => Ok(i),
            None => Instance::connect(self.redis, at, master).await,
        }
    }

    /// Puts the connection back unless the command lost it.
    fn settle<T>(&self, at: &Addr, i: Instance, r: Result<T, ConnError>) -> Result<T, ConnError> {
        if r.as_ref()
            .map_or_else(|e| !e.failure().link_lost(), |_| true)
        {
            self.keep(at, i);
        }
        r
    }
}

impl exec::Instances for RedisInstances<'_> {
    async fn promote(&self, master: &MasterRecord, at: &Addr) -> Result<(), StepError> {
        let mut i = self.take(master, at).await?;
        let r = i.promote().await;
        Ok(self.settle(at, i, r)?)
    }

    async fn replicate(
        &self,
        master: &MasterRecord,
        at: &Addr,
        to: &Addr,
    ) -> Result<(), StepError> {
        let mut i = self.take(master, at).await?;
        let r = i.replicate(to).await;
        Ok(self.settle(at, i, r)?)
    }

    async fn failover_to(
        &self,
        master: &MasterRecord,
        target: &Addr,
        timeout_ms: u64,
    ) -> Result<(), HandoverError> {
        let sent = async {
            let mut old = self.take(master, &master.addr).await?;
            let r = old.failover_to(target, timeout_ms).await;
            self.settle(&master.addr, old, r)
        };
        sent.await.map_err(|e| match e.failure() {
            Failure::Gone | Failure::Broken => HandoverError::LinkLost(e.to_string()),
            _ if handed_over(&e) => HandoverError::Underway(e.to_string()),
            _ => HandoverError::Refused(e.to_string()),
        })
    }

    async fn persist_role(&self, master: &MasterRecord, at: &Addr) -> Result<(), StepError> {
        let mut i = self.take(master, at).await?;
        let r = i.rewrite_config().await;
        Ok(self.settle(at, i, r)?)
    }

    async fn role(&self, master: &MasterRecord, at: &Addr) -> Result<Role, StepError> {
        let mut i = self.take(master, at).await?;
        let r = i.role().await;
        Ok(self.settle(at, i, r)?)
    }

    async fn replid(&self, master: &MasterRecord, at: &Addr) -> Result<String, StepError> {
        let mut i = self.take(master, at).await?;
        let r = i.replid().await;
        Ok(self.settle(at, i, r)?)
    }
}
