//! The leader's collection of observation reports: its own, plus each follower's latest, stamped
//! with when it arrived; and each follower's task that sends its report to whoever leads.

use std::collections::HashMap;
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
use crate::raft::{ClusterIdentity, Raft};

/// Followers resend at least this often even when nothing changed, so the leader can tell a
/// silent node from a quiet one.
const RESEND_EVERY: Duration = Duration::from_millis(100);
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// The latest report of each sender and when it arrived.
type Latest = HashMap<u64, (Instant, Arc<NodeReport>)>;

/// Reports received by this node, by sender.
#[derive(Clone, Default)]
pub struct Reports {
    inner: Arc<Mutex<Latest>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Reports {
    pub fn new() -> Self {
        Reports {
            inner: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    pub fn put(&self, report: Arc<NodeReport>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(report.node_id, (Instant::now(), report));
        drop(map);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every report with its age in ms.
    pub fn snapshot(&self) -> Vec<(u64, Arc<NodeReport>)> {
        let now = Instant::now();
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .map(|(at, r)| {
                (
                    now.saturating_duration_since(*at).as_millis() as u64,
                    r.clone(),
                )
            })
            .collect()
    }

    /// Forgets every follower's report: after a leader change only fresh ones may count.
    pub fn clear_others(&self, own: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| *id == own);
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

/// Keeps the leader supplied with this node's report: on every change, every RESEND_EVERY, and
/// at once on every leader change. The leader's own report goes straight into `reports`.
pub async fn send_reports(
    node_id: u64,
    raft: Raft,
    own: OwnReport,
    reports: Reports,
    identity: ClusterIdentity,
    dialer: Dialer,
    cancel: CancellationToken,
) {
    let OwnReport {
        monitor: mut own,
        mut local,
    } = own;
    let mut metrics = raft.metrics();
    let mut tick = tokio::time::interval(RESEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = own.changed() => if r.is_err() { return },
            r = local.changed() => if r.is_err() { return },
            r = metrics.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let mut report = own.borrow().clone();
        let ids = local.borrow().clone();
        if report.local != *ids {
            Arc::make_mut(&mut report).local = (*ids).clone();
        }
        let (leader, addr) = {
            let m = metrics.borrow();
            let addr = m.current_leader.and_then(|l| {
                m.membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| (n.addr.clone(), n.incarnation))
            });
            (m.current_leader, addr)
        };
        match (leader, addr) {
            (Some(l), _) if l == node_id => reports.put(report),
            (Some(_), Some((addr, incarnation))) => {
                if let Ok(ch) = dialer.channel(&addr) {
                    send(ch, &identity, (&addr, incarnation), &report).await;
                }
            }
            _ => {}
        }
    }
}

/// Sends `report` to the leader at `to` (its address and recorded incarnation).
async fn send(
    channel: Channel,
    identity: &ClusterIdentity,
    (addr, incarnation): (&str, u64),
    report: &NodeReport,
) {
    let Ok(data) = encode(report) else {
        return;
    };
    let mut req = tonic::Request::new(RaftBytes { data });
    req.set_timeout(SEND_TIMEOUT);
    identity.stamp(req.metadata_mut());
    stamp_target(req.metadata_mut(), incarnation);
    let mut client = RaftInternalClient::new(channel);
    if let Err(e) = client.report(req).await {
        tracing::debug!(leader = %addr, error = %e, "report not delivered");
    }
}
