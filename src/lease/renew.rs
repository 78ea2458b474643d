//! The holder's renewal rounds (invariant 4): every R, while the applied state grants this node a
//! lease, ask every voter for a promise on it (its own answer included) with timeout T, and
//! publish until when this node may act. Renewals are never log writes and never depend on who
//! leads Raft.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::holding::{acting_until, Holding};
use super::promiser::Promiser;
use crate::config::LeaseTimings;
use crate::dial::Dialer;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::{GrantDeadRequest, PromiseRequest};
use crate::raft::identity::ClusterIdentity;
use crate::raft::SmData;

/// Asks the other voters over gRPC; this node's own answer is local.
#[derive(Clone)]
pub struct Peers {
    pub node_id: u64,
    pub dialer: Dialer,
    pub identity: ClusterIdentity,
    pub promiser: Promiser,
}

impl Peers {
    /// Every voter of the applied membership: (id, gRPC address).
    fn voters(view: &SmData) -> Vec<(u64, String)> {
        let membership = view.membership.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
            .collect()
    }

    /// How many voters promise on `grant` within `timeout`, out of how many.
    pub async fn promises(&self, view: &SmData, grant: u64, timeout: Duration) -> (usize, usize) {
        let voters = Self::voters(view);
        let mut asks = JoinSet::new();
        for (id, addr) in &voters {
            if *id == self.node_id {
                continue;
            }
            let (peers, addr) = (self.clone(), addr.clone());
            asks.spawn(async move { peers.ask_promise(&addr, grant, timeout).await });
        }
        let mut yes = usize::from(
            voters.iter().any(|(id, _)| *id == self.node_id)
                && self.promiser.promise(grant, self.node_id),
        );
        while let Some(r) = asks.join_next().await {
            yes += usize::from(r.unwrap_or(false));
        }
        (yes, voters.len())
    }

    /// Whether a majority of voters report `grant` (revoked at `revoked_at`) dead; with `vip`,
    /// its holder's VIP too.
    pub async fn grant_dead(
        &self,
        view: &SmData,
        grant: u64,
        revoked_at: u64,
        vip: bool,
        timeout: Duration,
    ) -> bool {
        let voters = Self::voters(view);
        let mut asks = JoinSet::new();
        for (id, addr) in &voters {
            if *id == self.node_id {
                continue;
            }
            let (peers, addr) = (self.clone(), addr.clone());
            asks.spawn(async move { peers.ask_dead(&addr, grant, revoked_at, vip, timeout).await });
        }
        let mut dead = usize::from(
            voters.iter().any(|(id, _)| *id == self.node_id)
                && self.promiser.grant_dead(grant, revoked_at, vip),
        );
        while let Some(r) = asks.join_next().await {
            dead += usize::from(r.unwrap_or(false));
        }
        dead * 2 > voters.len()
    }

    async fn ask_promise(&self, addr: &str, grant: u64, timeout: Duration) -> bool {
        let Ok(channel) = self.dialer.channel(addr) else {
            return false;
        };
        let mut req = tonic::Request::new(PromiseRequest {
            grant,
            holder: self.node_id,
        });
        req.set_timeout(timeout);
        self.identity.stamp(req.metadata_mut());
        let mut client = RaftInternalClient::new(channel);
        let call = client.promise(req);
        matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(r)) if r.get_ref().promised)
    }

    async fn ask_dead(
        &self,
        addr: &str,
        grant: u64,
        revoked_at: u64,
        vip: bool,
        timeout: Duration,
    ) -> bool {
        let Ok(channel) = self.dialer.channel(addr) else {
            return false;
        };
        let mut req = tonic::Request::new(GrantDeadRequest {
            grant,
            revoked_at,
            vip,
        });
        req.set_timeout(timeout);
        self.identity.stamp(req.metadata_mut());
        let mut client = RaftInternalClient::new(channel);
        let call = client.grant_dead(req);
        matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(r)) if r.get_ref().dead)
    }
}

/// Runs renewal rounds until cancelled, publishing the holder's window on `out`.
pub async fn renew(
    peers: Peers,
    view: watch::Receiver<Arc<SmData>>,
    timings: LeaseTimings,
    out: watch::Sender<Holding>,
    cancel: CancellationToken,
) {
    let every = Duration::from_millis(timings.renew_interval_ms.max(1));
    let timeout = Duration::from_millis(timings.renew_timeout_ms.max(1));
    let lease = Duration::from_millis(timings.duration_ms);
    let fence = Duration::from_millis(timings.fence_budget_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = view.borrow().clone();
        // A restarted node's state may predate the revocation of its own grant.
        let grant = peers
            .promiser
            .caught_up()
            .then(|| state.topology.lease_of(peers.node_id).map(|g| g.id))
            .flatten();
        let Some(grant) = grant else {
            out.send_if_modified(|h| std::mem::take(h) != Holding::default());
            continue;
        };
        let sent = Instant::now();
        let (yes, voters) = peers.promises(&state, grant, timeout).await;
        let until = acting_until(sent, yes, voters, lease, fence);
        if until.is_none() {
            tracing::debug!(
                grant,
                promised = yes,
                voters,
                "lease not renewed by a majority"
            );
        }
        out.send_if_modified(|h| {
            let before = *h;
            h.renewed(grant, until);
            *h != before
        });
    }
}
