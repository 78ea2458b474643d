//! The `RaftInternal` server: openraft RPCs, promises, "dead" answers and reports from members
//! only (their identity was established by the interceptor before the body was decoded), and the
//! bootstrap probe, which anyone may ask but only a node gets the cluster id and incarnation
//! from. Every member call is checked against the incarnations in the membership first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::admin::authn::{admit_leader, admit_member, membership_of, principal_of};
use crate::admin::Principal;
use crate::failover::delta::ReportDelta;
use crate::failover::reports::Reports;
use crate::lease::promiser::Promiser;
use crate::monitor::NodeReport;
use crate::pb::raft_internal_server::RaftInternal;
use crate::pb::{
    GrantDeadReply, GrantDeadRequest, NodeInfoReply, NodeInfoRequest, Peer, PromiseReply,
    PromiseRequest, RaftBytes, ReportReply,
};
use crate::raft::codec::{decode, encode};
use crate::raft::freshness::LeaderContact;
use crate::raft::incarnation::{self, Claims, Mismatch};
use crate::raft::{ClusterIdentity, Raft, SmData, TypeConfig};

pub struct RaftService {
    pub raft: Raft,
    pub identity: ClusterIdentity,
    pub node_id: u64,
    pub peers: BTreeMap<u64, SocketAddr>,
    pub sentinel_addr: String,
    pub reports: Reports,
    /// Stamped on every call from a leader this node accepts (invariant 9).
    pub contact: LeaderContact,
    /// This node's lease promises (invariant 4).
    pub promiser: Promiser,
    /// The applied state: which ids were removed from the membership.
    pub view: watch::Receiver<Arc<SmData>>,
    /// No vote is looked at before this (election-timeout-min after start): a restarted voter
    /// has forgotten which leader it heard last, and a leader may still serve lease reads on
    /// its acknowledgement from before the restart (`raft::read_lease`).
    pub votes_from: tokio::time::Instant,
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftBytes>, Status> {
    let data = encode(value).map_err(|e| Status::internal(format!("encoding reply: {e}")))?;
    Ok(Response::new(RaftBytes { data }))
}

fn body<T: serde::de::DeserializeOwned>(req: Request<RaftBytes>) -> Result<T, Status> {
    decode(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable Raft RPC: {e}")))
}

impl RaftService {
    /// Applies a member's report delta, if this node leads.
    fn observed(&self, from: u64, delta: ReportDelta) -> Result<Response<ReportReply>, Status> {
        if delta.node_id != from {
            return Err(Status::permission_denied(format!(
                "node {from} sent a report in node {}'s name",
                delta.node_id
            )));
        }
        // Only the leader decides; a stale sender learns to look again.
        let accepted = self.raft.metrics().borrow().current_leader == Some(self.node_id);
        if !accepted {
            return Ok(Response::new(ReportReply::default()));
        }
        let need_full = self.reports.apply(delta).is_err();
        Ok(Response::new(ReportReply {
            accepted,
            need_full,
            hot: self.reports.hot().into_iter().collect(),
        }))
    }

    /// The calling member's id, after the incarnation check and then the cluster-id check (a
    /// node of another cluster is a wiring mistake worth its own message). The incarnation comes
    /// first: a wiped node must not adopt the cluster id of a leader that calls its old id.
    async fn member<T>(&self, req: &Request<T>) -> Result<u64, Status> {
        self.admit(req, Caller::Member).await
    }

    async fn admit<T>(&self, req: &Request<T>, caller: Caller) -> Result<u64, Status> {
        let principal = principal_of(req);
        let id = match caller {
            Caller::Member => admit_member(&principal, |id| membership_of(&self.raft, id))?,
            Caller::Leader => admit_leader(
                &principal,
                |id| membership_of(&self.raft, id),
                |id| self.view.borrow().retired.contains(&id),
            )?,
            Caller::AnyNode => admit_member(&principal, |_| None)?,
        };
        let own = self.identity.incarnation();
        let recorded = recorded_incarnation(&self.raft, id);
        let claims = Claims::of(req.metadata());
        if let Err(e) = incarnation::check(self.node_id, own, id, recorded, claims) {
            say_loudly(&e);
            return Err(Status::failed_precondition(format!(
                "incarnation mismatch: {e}; refusing the call"
            )));
        }
        self.identity.admit_peer(req.metadata()).await?;
        Ok(id)
    }
}

/// Who may make a call.
enum Caller {
    /// Reports, promises, releases: only a node of this node's current membership (they are
    /// counted per member).
    Member,
    /// Appends and snapshots: `admit_leader` (the nemesis found two voters stuck at index 299
    /// for good, refusing the leaders of index 732 as non-members, and no leader could be
    /// elected without them).
    Leader,
    /// A vote request: any node of the cluster (certificate, cluster id and, where recorded,
    /// incarnation still checked); a non-member's is answered, never granted (see `vote`).
    AnyNode,
}

/// The incarnation this node's current membership records for `id`; `None` while it has none.
fn recorded_incarnation(raft: &Raft, id: u64) -> Option<u64> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    m.membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.incarnation)
}

/// How often one refusal is logged again while it repeats (every heartbeat would bury the log).
const REPEAT_LOUD: Duration = Duration::from_secs(30);

/// Logs a refusal at error level: the operator must act, on this node (wiped: it must rejoin
/// under a new id) or on the caller.
fn say_loudly(e: &Mismatch) {
    static LAST: Mutex<Option<(String, Instant)>> = Mutex::new(None);
    let text = e.to_string();
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let repeat = matches!(&*last, Some((t, at)) if *t == text && at.elapsed() < REPEAT_LOUD);
    if !repeat {
        match e {
            Mismatch::Target { .. } => tracing::error!(
                "refusing Raft and lease calls: this node is not the member its id stands for: {text}"
            ),
            Mismatch::Sender { id, .. } => {
                tracing::error!(node = id, "refusing a node-to-node call: {text}")
            }
        }
        *last = Some((text, Instant::now()));
    }
}

#[tonic::async_trait]
impl RaftInternal for RaftService {
    async fn append_entries(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.admit(&req, Caller::Leader).await?;
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = body(req)?;
        let commit = rpc.leader_commit.map_or(0, |l| l.index);
        let resp = self.raft.append_entries(rpc).await;
        if let Ok(r) = &resp {
            if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)) {
                self.contact.heard(commit);
            }
        }
        reply(&resp)
    }

    /// A non-member's request is answered as Raft rejects a candidate with a shorter log: with
    /// this node's vote and last log id, and nothing changed here. Refused at the door instead,
    /// it looked like a network error to a candidate this node does not (or no longer) count:
    /// the candidate never learned of this node's longer log, so it never backed off, and with
    /// one node that did count it, it outbid every other candidate's term for good (an election
    /// livelock the nemesis found with a fourth voter whose addition did not commit).
    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let from = self.admit(&req, Caller::AnyNode).await?;
        let rpc: openraft::raft::VoteRequest<u64> = body(req)?;
        // The candidate's own deadline bounds the wait.
        tokio::time::sleep_until(self.votes_from).await;
        if membership_of(&self.raft, from) == Some(false) {
            // Term 0 and no log: rejected by the log check before any vote is looked at.
            let nothing = openraft::raft::VoteRequest::new(openraft::Vote::new(0, from), None);
            return reply(&self.raft.vote(nothing).await);
        }
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        self.admit(&req, Caller::Leader).await?;
        let rpc = body(req)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn promise(
        &self,
        req: Request<PromiseRequest>,
    ) -> Result<Response<PromiseReply>, Status> {
        let from = self.member(&req).await?;
        let r = req.into_inner();
        if r.holder != from {
            return Err(Status::permission_denied(format!(
                "node {from} asked for a promise on node {}'s lease",
                r.holder
            )));
        }
        let promised = self.promiser.promise(r.grant, r.holder);
        Ok(Response::new(PromiseReply { promised }))
    }

    async fn grant_dead(
        &self,
        req: Request<GrantDeadRequest>,
    ) -> Result<Response<GrantDeadReply>, Status> {
        self.member(&req).await?;
        let r = req.into_inner();
        // `revoked_at` is not needed: asking says the revocation is committed (Promiser).
        let dead = self.promiser.grant_dead(r.grant, r.vip);
        Ok(Response::new(GrantDeadReply { dead }))
    }

    async fn report(&self, req: Request<RaftBytes>) -> Result<Response<ReportReply>, Status> {
        let from = self.member(&req).await?;
        let report: NodeReport = body(req)?;
        // A sender of an earlier release: every report is a full set.
        let delta = ReportDelta {
            node_id: report.node_id,
            full: true,
            tilt: report.tilt,
            local: Some(report.local),
            masters: report.masters,
            ..ReportDelta::default()
        };
        self.observed(from, delta)
    }

    async fn observe(&self, req: Request<RaftBytes>) -> Result<Response<ReportReply>, Status> {
        let from = self.member(&req).await?;
        let delta: ReportDelta = body(req)?;
        self.observed(from, delta)
    }

    async fn node_info(
        &self,
        req: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoReply>, Status> {
        // The cluster id is no secret, but only nodes need it (to join and to check wiring).
        let node = matches!(principal_of(&req), Principal::Node(_));
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| Status::unavailable(format!("raft core stopped: {e}")))?;
        Ok(Response::new(NodeInfoReply {
            node_id: self.node_id,
            initialized: initialized || self.identity.get().is_some(),
            cluster_id: if node {
                self.identity.get().unwrap_or_default()
            } else {
                String::new()
            },
            peers: self
                .peers
                .iter()
                .map(|(&id, addr)| Peer {
                    id,
                    addr: addr.to_string(),
                })
                .collect(),
            sentinel_addr: self.sentinel_addr.clone(),
            incarnation: if node { self.identity.incarnation() } else { 0 },
        }))
    }
}
