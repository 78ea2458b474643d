//! The leader's collection of observation reports: its own, plus each follower's rebuilt from its
//! deltas, stamped with when that node was last heard from; and each node's task that sends its
//! deltas to whoever leads.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::dial::Dialer;
use crate::monitor::{Colocation, NodeReport};
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::RaftBytes;
use crate::raft::codec::encode;
use crate::raft::identity::stamp_target;
use crate::raft::state_machine::SmData;
use crate::raft::{ClusterIdentity, Raft};

use super::delta::{self, Ack, Gap, Held, Outbox, Precision, ReportDelta};

const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// One node's report as the leader holds it and when it last heard from that node.
struct Entry {
    heard: Instant,
    held: Option<Held>,
}

#[derive(Default)]
struct Inner {
    nodes: HashMap<u64, Entry>,
    /// Masters whose observations changed since the runner last looked.
    dirty: BTreeSet<String>,
    /// Masters some held report shows an instance of SDOWN: followers keep them exact.
    hot: BTreeSet<String>,
}

/// Reports received by this node, by sender, rebuilt from deltas.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Reports {
    fn default() -> Self {
        Self::new()
    }
}

impl Reports {
    pub fn new() -> Self {
        Reports {
            inner: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one node's delta; a beat only marks the node as heard. `Err` asks for a full set.
    pub fn apply(&self, delta: ReportDelta) -> Result<(), Gap> {
        let mut inner = self.lock();
        let entry = inner.nodes.entry(delta.node_id).or_insert(Entry {
            heard: Instant::now(),
            held: None,
        });
        let changed = delta::apply(&mut entry.held, delta)?;
        entry.heard = Instant::now();
        if changed.is_empty() {
            return Ok(());
        }
        for name in &changed {
            let down = inner.nodes.values().any(|e| {
                e.held.as_ref().is_some_and(|(_, _, r)| {
                    r.masters
                        .get(name)
                        .is_some_and(|l| l.iter().any(|o| o.sdown))
                })
            });
            if down {
                inner.hot.insert(name.clone());
            } else {
                inner.hot.remove(name);
            }
        }
        inner.dirty.extend(changed);
        drop(inner);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Every report with its age in ms (since its node was last heard from).
    pub fn snapshot(&self) -> Vec<(u64, Arc<NodeReport>)> {
        let now = Instant::now();
        self.lock()
            .nodes
            .values()
            .filter_map(|e| {
                let (_, _, r) = e.held.as_ref()?;
                let age = now.saturating_duration_since(e.heard).as_millis() as u64;
                Some((age, r.clone()))
            })
            .collect()
    }

    /// The masters whose observations changed since the last call.
    pub fn take_dirty(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.lock().dirty)
    }

    /// The masters followers must keep exact (some node sees an instance of them down).
    pub fn hot(&self) -> BTreeSet<String> {
        self.lock().hot.clone()
    }

    /// Forgets every follower's report: after a leader change only fresh ones may count.
    pub fn clear_others(&self, own: u64) {
        self.lock().nodes.retain(|id, _| *id == own);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// What this node reports: its monitor's observations and its lease guard's view of its host.
pub struct OwnReport {
    pub monitor: watch::Receiver<Arc<NodeReport>>,
    pub local: watch::Receiver<Arc<Colocation>>,
}

/// Where this node's reports go and how they get there.
pub struct Sender {
    pub node_id: u64,
    pub raft: Raft,
    pub identity: ClusterIdentity,
    pub dialer: Dialer,
    /// The applied state: each master's PING period and whether a failover of it is running.
    pub view: watch::Receiver<Arc<SmData>>,
    /// The leader's store; this node's own deltas go straight into it while it leads.
    pub reports: Reports,
}

/// Keeps the leader supplied with this node's report as deltas: one per monitor publication (at
/// least once per PING period of the fastest master, which is the beat), and a full set at once on
/// every leader change.
pub async fn send_reports(sender: Sender, own: OwnReport, cancel: CancellationToken) {
    let OwnReport {
        monitor: mut own,
        mut local,
    } = own;
    let mut metrics = sender.raft.server_metrics();
    let mut outbox = Outbox::new(rand::random());
    let mut last_leader = None;
    let mut hot = BTreeSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = own.changed() => if r.is_err() { return },
            r = local.changed() => if r.is_err() { return },
            r = metrics.changed() => if r.is_err() { return },
        }
        let report = own.borrow_and_update().clone();
        let ids = local.borrow_and_update().clone();
        let (leader, addr) = leader_of(&metrics);
        if leader != last_leader {
            last_leader = leader;
            outbox.reset();
            hot.clear();
        }
        let data = sender.view.borrow().clone();
        let delta = outbox.next(&report, &ids, |name| precision(&data, &report, &hot, name));
        let ack = match (leader, addr) {
            (Some(l), _) if l == sender.node_id => {
                let ack = match sender.reports.apply(delta.clone()) {
                    Ok(()) => Ack::Applied,
                    Err(Gap) => Ack::NeedFull,
                };
                hot = sender.reports.hot();
                ack
            }
            (Some(_), Some(to)) => match sender.dialer.channel(&to.0) {
                Ok(ch) => {
                    let (ack, leader_hot) = sender.send(ch, &to, &delta, &report, &ids).await;
                    if let Some(h) = leader_hot {
                        hot = h;
                    }
                    ack
                }
                Err(_) => Ack::Lost,
            },
            _ => Ack::Lost,
        };
        outbox.settle(delta, ack);
    }
}

/// The leader as this node's Raft sees it, with its address and recorded incarnation.
fn leader_of(
    metrics: &watch::Receiver<crate::raft::types::typ::ServerMetrics>,
) -> (Option<u64>, Option<(String, u64)>) {
    let m = metrics.borrow();
    let addr = m.current_leader.and_then(|l| {
        m.membership_config
            .membership()
            .get_node(&l)
            .map(|n| (n.addr.clone(), n.incarnation))
    });
    (m.current_leader, addr)
}

/// How exactly the leader must know `name`: hot when the leader asked, when this node sees its
/// master down, or while the log has a failover of it.
fn precision(data: &SmData, report: &NodeReport, hot: &BTreeSet<String>, name: &str) -> Precision {
    let record = data.topology.master(name);
    let ping_ms = record.map_or(1_000, |m| super::run::ping_interval_ms(m.down_after_ms));
    let master_down = report
        .masters
        .get(name)
        .and_then(|l| l.first())
        .is_some_and(|o| o.sdown);
    Precision {
        ping_ms,
        hot: hot.contains(name) || master_down || record.is_some_and(|m| m.failover.is_some()),
    }
}

impl Sender {
    /// Sends `delta` to the leader at `to` (its address and recorded incarnation); a leader of an
    /// earlier release, which has no Observe, gets the full `report` through Report instead.
    async fn send(
        &self,
        channel: Channel,
        to: &(String, u64),
        delta: &ReportDelta,
        report: &NodeReport,
        local: &Colocation,
    ) -> (Ack, Option<BTreeSet<String>>) {
        let Ok(data) = encode(delta) else {
            return (Ack::Lost, None);
        };
        let mut client = RaftInternalClient::new(channel);
        let reply = match client.observe(self.request(to, data)).await {
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                let full = NodeReport {
                    local: local.clone(),
                    ..report.clone()
                };
                let Ok(data) = encode(&full) else {
                    return (Ack::Lost, None);
                };
                let _ = client.report(self.request(to, data)).await;
                // The old leader holds no deltas: every report is a full set.
                return (Ack::Lost, None);
            }
            other => other,
        };
        match reply.map(|r| r.into_inner()) {
            Ok(r) if r.accepted && !r.need_full => {
                (Ack::Applied, Some(r.hot.into_iter().collect()))
            }
            Ok(r) if r.accepted => (Ack::NeedFull, Some(r.hot.into_iter().collect())),
            Ok(_) => (Ack::Lost, None),
            Err(e) => {
                tracing::debug!(leader = %to.0, error = %e, "report not delivered");
                (Ack::Lost, None)
            }
        }
    }

    fn request(&self, to: &(String, u64), data: Vec<u8>) -> tonic::Request<RaftBytes> {
        let mut req = tonic::Request::new(RaftBytes { data });
        req.set_timeout(SEND_TIMEOUT);
        self.identity.stamp(req.metadata_mut());
        stamp_target(req.metadata_mut(), to.1);
        req
    }
}
