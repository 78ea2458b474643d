//! The `Topology` gRPC service: reads answered from applied state (linearizable through the
//! leader by default); every write handed to the admin path with the caller's principal, which
//! the interceptor established (`admin::authn`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert;
use super::watch::EventStream;
use crate::admin::authn::principal_of;
use crate::admin::route::{with_metadata, Routed, DEADLINE};
use crate::admin::{Admin, AdminReply, AdminRequest, Principal};
use crate::config::Config;
use crate::dial::Dialer;
use crate::events::EventBus;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::topology_server::Topology;
use crate::pb::{self, Consistency};
use crate::raft::{ClusterIdentity, EventLog, Member, Raft, SmData};

const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Api {
    pub node_id: u64,
    pub raft: Raft,
    pub view: watch::Receiver<Arc<SmData>>,
    pub events: EventLog,
    pub bus: EventBus,
    pub identity: ClusterIdentity,
    pub dialer: Dialer,
    pub config: Arc<Config>,
    /// Ends Watch streams, so the server's graceful shutdown is not held open by them.
    pub cancel: CancellationToken,
    /// Every write goes through it.
    pub admin: Arc<Admin>,
    /// One permit per open Watch stream (`watch::MAX_WATCHES`).
    pub watch_slots: Arc<tokio::sync::Semaphore>,
}

fn consistency(value: i32) -> Result<Consistency, Status> {
    Consistency::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("unknown consistency {value}")))
}

impl Api {
    async fn read<T>(
        &self,
        consistency: Consistency,
        read: impl Fn(&SmData) -> Result<T, Status>,
    ) -> Result<T, Routed> {
        if consistency == Consistency::Linearizable {
            self.admin
                .router
                .linearizable(Instant::now() + DEADLINE)
                .await?;
        }
        let view = self.view.borrow().clone();
        Ok(read(&view)?)
    }

    /// Hands a write to the admin path as the caller's principal.
    async fn admin<T>(
        &self,
        req: Request<T>,
        make: impl FnOnce(T) -> AdminRequest,
    ) -> Result<AdminReply, Status> {
        let who = principal_of(&req);
        let md = req.metadata().clone();
        let request = make(req.into_inner());
        Ok(self.admin.execute(&who, &md, request).await?)
    }

    async fn write<T>(
        &self,
        req: Request<T>,
        make: impl FnOnce(T) -> AdminRequest,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let reply = self.admin(req, make).await?;
        Ok(Response::new(pb::WriteReply { index: reply.index }))
    }

    pub(crate) async fn reachable(&self, id: u64, member: &Member) -> bool {
        if id == self.node_id {
            return true;
        }
        let Ok(channel) = self.dialer.channel(&member.addr) else {
            return false;
        };
        let mut req = Request::new(pb::NodeInfoRequest {});
        req.set_timeout(PROBE_TIMEOUT);
        let mut client = RaftInternalClient::new(channel);
        let call = client.node_info(req);
        matches!(tokio::time::timeout(PROBE_TIMEOUT, call).await, Ok(Ok(_)))
    }
}

#[tonic::async_trait]
impl Topology for Api {
    async fn list_masters(
        &self,
        req: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let c = consistency(msg.consistency)?;
        let local = self.read(c, |v| {
            let applied = v.applied_index();
            Ok(pb::ListMastersReply {
                masters: v
                    .topology
                    .masters()
                    .map(|m| convert::master(m, applied, v.voter_count()))
                    .collect(),
                applied_index: applied,
            })
        });
        let reply = self
            .admin
            .router
            .on_leader(&md, DEADLINE, local, |mut c, md| async move {
                c.list_masters(with_metadata(msg, md)).await
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_master(
        &self,
        req: Request<pb::GetMasterRequest>,
    ) -> Result<Response<pb::Master>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let c = consistency(msg.consistency)?;
        let name = msg.name.clone();
        let local = self.read(c, |v| {
            v.topology
                .master(&name)
                .map(|m| convert::master(m, v.applied_index(), v.voter_count()))
                .ok_or_else(|| Status::not_found("ERR No such master with that name"))
        });
        let reply = self
            .admin
            .router
            .on_leader(&md, DEADLINE, local, |mut c, md| async move {
                c.get_master(with_metadata(msg, md)).await
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn monitor(
        &self,
        req: Request<pb::MonitorRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Monitor {
            name: m.name,
            host: m.host,
            port: m.port,
            quorum: m.quorum,
        })
        .await
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Remove { name: m.name })
            .await
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Set {
            name: m.name,
            options: m.options.into_iter().map(|o| (o.option, o.value)).collect(),
        })
        .await
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.identity.admit_client(req.metadata())?;
        Ok(Response::new(
            self.watch_stream(req.into_inner().from_index)?,
        ))
    }

    async fn cluster_status(
        &self,
        req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        // The cluster id is no secret, but nobody unauthenticated needs it.
        let known = !matches!(principal_of(&req), Principal::Client);
        let m = self.raft.metrics().borrow().clone();
        let committed = self
            .raft
            .with_raft_state(|st| st.committed)
            .await
            .map_err(|e| Status::unavailable(format!("raft stopped on this node: {e}")))?;
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let matched: BTreeMap<u64, u64> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, l)| (*id, l.map(|l| l.index).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let mut members = Vec::new();
        for (id, node) in membership.nodes() {
            members.push(pb::Member {
                id: *id,
                addr: node.addr.clone(),
                sentinel_addr: node.sentinel_addr.clone(),
                voter: voters.contains(id),
                reachable: self.reachable(*id, node).await,
                matched_index: matched.get(id).copied().unwrap_or(0),
                incarnation: node.incarnation,
            });
        }
        Ok(Response::new(pb::ClusterStatusReply {
            node_id: self.node_id,
            cluster_id: known
                .then(|| self.identity.get())
                .flatten()
                .unwrap_or_default(),
            security: self.config.security_summary().to_owned(),
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            commit_index: committed.map(|l| l.index).unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            state: describe_state(&m, self.config.raft.election_max_ms),
            members,
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
        }))
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::AddMember {
            id: m.id,
            addr: m.addr,
            sentinel_addr: m.sentinel_addr,
        })
        .await
    }

    async fn failover(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Failover { name: m.name })
            .await
    }

    async fn switchover(
        &self,
        req: Request<pb::SwitchoverRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Switchover {
            name: m.name,
            to: Some((m.to_host, m.to_port)),
        })
        .await
    }

    async fn pause(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Pause { name: m.name })
            .await
    }

    async fn resume(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Resume { name: m.name })
            .await
    }

    async fn reset_failover_delay(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::ResetFailoverDelay { name: m.name })
            .await
    }

    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let c = consistency(msg.consistency)?;
        let name = msg.name.clone();
        let local = self.read(c, |v| {
            v.topology
                .master(&name)
                .map(convert::history)
                .ok_or_else(|| Status::not_found("ERR No such master with that name"))
        });
        let reply = self
            .admin
            .router
            .on_leader(&md, DEADLINE, local, |mut c, md| async move {
                c.history(with_metadata(msg, md)).await
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn resolve(
        &self,
        req: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::Resolve {
            name: m.name,
            keep_host: m.keep_host,
            keep_port: m.keep_port,
        })
        .await
    }

    async fn reset(
        &self,
        req: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let r = self
            .admin(req, |m| AdminRequest::Reset { pattern: m.pattern })
            .await?;
        Ok(Response::new(pb::ResetReply {
            index: r.index,
            count: r.count,
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        self.write(req, |m| AdminRequest::RemoveMember { id: m.id })
            .await
    }
}

/// The node's Raft role; a leader that has not heard from a quorum lately says so, since a node
/// restarted alone restores itself as leader from its stored vote.
fn describe_state(m: &crate::raft::types::typ::RaftMetrics, election_max_ms: u64) -> String {
    match (m.state, m.millis_since_quorum_ack) {
        (openraft::ServerState::Leader, Some(ms)) if ms <= election_max_ms => "Leader".to_string(),
        (openraft::ServerState::Leader, Some(ms)) => format!("Leader (no quorum ack for {ms} ms)"),
        (openraft::ServerState::Leader, None) => "Leader (not confirmed by a quorum)".to_string(),
        (state, _) => format!("{state:?}"),
    }
}
