//! The holder's renewal rounds (invariant 4): every R, while the applied state grants this node a
//! lease, ask every voter for a promise on it (its own answer included) with timeout T, and
//! publish until when this node may act. Renewals are never log writes and never depend on who
//! leads Raft.

use std::collections::BTreeSet;
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
use crate::raft::identity::{stamp_target, ClusterIdentity};
use crate::raft::SmData;
use crate::topology::lease::MustDie;

/// Asks the other voters over gRPC; this node's own answer is local.
#[derive(Clone)]
pub struct Peers {
    pub node_id: u64,
    pub dialer: Dialer,
    pub identity: ClusterIdentity,
    pub promiser: Promiser,
}

impl Peers {
    /// Where to reach each node of `voters`: (id, gRPC address, incarnation). A voter removed
    /// since is asked at the address its last membership had (incarnation unknown: 0, not
    /// checked); one with none counts as a no.
    fn addresses(view: &SmData, voters: &BTreeSet<u64>) -> Vec<(u64, String, u64)> {
        let membership = view.membership.membership();
        voters
            .iter()
            .filter_map(|id| match membership.get_node(id) {
                Some(n) => Some((*id, n.addr.clone(), n.incarnation)),
                None => view
                    .topology
                    .voter_addr(*id)
                    .map(|a| (*id, a.to_owned(), 0)),
            })
            .collect()
    }

    /// How many of the voters `grant` was granted under promise on it within `timeout` (counting
    /// stops at a majority), out of how many (issue 11 §3: never the counter's own membership).
    pub async fn promises(&self, view: &SmData, grant: u64, timeout: Duration) -> (usize, usize) {
        let voters = view.topology.voters_of(grant).cloned().unwrap_or_default();
        self.count(view, Question::Promise { grant }, &voters, timeout)
            .await
    }

    /// Whether a majority of the voters `grant` was granted under report it (revoked or
    /// superseded at `grant.revoked_at`) dead; with `vip`, its holder's VIP too.
    pub async fn grant_dead(
        &self,
        view: &SmData,
        grant: &MustDie,
        vip: bool,
        timeout: Duration,
    ) -> bool {
        let q = Question::Dead {
            grant: grant.id,
            revoked_at: grant.revoked_at,
            vip,
        };
        let (yes, voters) = self.count(view, q, &grant.voters, timeout).await;
        yes * 2 > voters
    }

    /// Puts `q` to every node of `voters` at once (this node answers locally): how many said yes
    /// within `timeout`, out of how many voters. Stops asking once a majority said yes: either
    /// question is settled then (a promise window counts from the send), and a lost host's voter
    /// must not hold back every round by the timeout — the new master's fence lifts only after
    /// its host's first round on the new grant, and a failover waits on "dead".
    async fn count(
        &self,
        view: &SmData,
        q: Question,
        voters: &BTreeSet<u64>,
        timeout: Duration,
    ) -> (usize, usize) {
        let enough = voters.len() / 2 + 1;
        let mut asks = JoinSet::new();
        let mut yes = 0;
        for (id, addr, incarnation) in Self::addresses(view, voters) {
            if id == self.node_id {
                yes += usize::from(self.answer(q));
                continue;
            }
            let peers = self.clone();
            asks.spawn(async move { peers.ask(&addr, incarnation, q, timeout).await });
        }
        while yes < enough {
            let Some(r) = asks.join_next().await else {
                break;
            };
            yes += usize::from(r.unwrap_or(false));
        }
        (yes, voters.len())
    }

    fn answer(&self, q: Question) -> bool {
        match q {
            Question::Promise { grant } => self.promiser.promise(grant, self.node_id),
            Question::Dead { grant, vip, .. } => self.promiser.grant_dead(grant, vip),
        }
    }

    /// Asks the node at `addr`, which the membership records as `incarnation`; no answer within
    /// `timeout` (or any error) is a no.
    async fn ask(&self, addr: &str, incarnation: u64, q: Question, timeout: Duration) -> bool {
        let Ok(channel) = self.dialer.channel(addr) else {
            return false;
        };
        let mut client = RaftInternalClient::new(channel);
        let call = async {
            match q {
                Question::Promise { grant } => {
                    let req = self.request(
                        PromiseRequest {
                            grant,
                            holder: self.node_id,
                        },
                        timeout,
                        incarnation,
                    );
                    client
                        .promise(req)
                        .await
                        .is_ok_and(|r| r.get_ref().promised)
                }
                Question::Dead {
                    grant,
                    revoked_at,
                    vip,
                } => {
                    let req = self.request(
                        GrantDeadRequest {
                            grant,
                            revoked_at,
                            vip,
                        },
                        timeout,
                        incarnation,
                    );
                    client.grant_dead(req).await.is_ok_and(|r| r.get_ref().dead)
                }
            }
        };
        tokio::time::timeout(timeout, call).await.unwrap_or(false)
    }

    fn request<T>(&self, body: T, timeout: Duration, incarnation: u64) -> tonic::Request<T> {
        let mut req = tonic::Request::new(body);
        req.set_timeout(timeout);
        self.identity.stamp(req.metadata_mut());
        stamp_target(req.metadata_mut(), incarnation);
        req
    }
}

/// The two questions a node puts to every voter.
#[derive(Clone, Copy)]
enum Question {
    /// A holder's renewal.
    Promise { grant: u64 },
    /// The leader's (or, with `vip`, a new holder's) "is the revoked grant dead?".
    Dead {
        grant: u64,
        revoked_at: u64,
        vip: bool,
    },
}

/// Renewal rounds of this node's grant since it started: those a majority promised, and the
/// others (`raftinel_lease_renewals_total{result}`).
#[derive(Debug, Default)]
pub struct Renewals {
    pub ok: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// Runs renewal rounds until cancelled, publishing the holder's window on `out`.
pub async fn renew(
    peers: Peers,
    view: watch::Receiver<Arc<SmData>>,
    timings: LeaseTimings,
    (out, renewals): (watch::Sender<Holding>, Arc<Renewals>),
    cancel: CancellationToken,
) {
    let every = Duration::from_millis(timings.renew_interval_ms.max(1));
    let timeout = Duration::from_millis(timings.renew_timeout_ms.max(1));
    let lease = Duration::from_millis(timings.duration_ms);
    let fence = Duration::from_millis(timings.fence_budget_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut view_changes = view.clone();
    let own_grant = |v: &SmData| v.topology.lease_of(peers.node_id).map(|g| g.id);
    let mut last_grant = own_grant(&view_changes.borrow_and_update());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            Ok(()) = view_changes.changed() => {
                // A new grant (a failover naming this node's host) is renewed at once, so the
                // new master's fence can lift without waiting up to R.
                let grant = own_grant(&view_changes.borrow_and_update());
                let fresh = grant != last_grant;
                last_grant = grant;
                if !fresh {
                    continue;
                }
            }
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
        let counter = match until {
            Some(_) => &renewals.ok,
            None => &renewals.failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
