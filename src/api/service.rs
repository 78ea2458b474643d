//! The `Topology` gRPC service: each call checked for cluster identity, then answered from
//! applied state, committed through Raft, or routed to the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::route::{with_metadata, Routed, DEADLINE, MEMBERSHIP_DEADLINE};
use super::watch::EventStream;
use super::{convert, status};
use crate::config::Config;
use crate::dial::Dialer;
use crate::events::EventBus;
use crate::hooks::check::check_set;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::topology_client::TopologyClient;
use crate::pb::topology_server::Topology;
use crate::pb::{self, Consistency};
use crate::raft::types::typ::{ClientWriteError, RaftError};
use crate::raft::{ClusterIdentity, EventLog, Member, Raft, SmData};
use crate::topology::{Addr, Command, RequestKind};

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
}

fn consistency(value: i32) -> Result<Consistency, Status> {
    Consistency::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("unknown consistency {value}")))
}

fn port(p: u32) -> Result<u16, Status> {
    u16::try_from(p).map_err(|_| Status::invalid_argument("ERR Invalid port number."))
}

impl Api {
    async fn read<T>(
        &self,
        consistency: Consistency,
        read: impl Fn(&SmData) -> Result<T, Status>,
    ) -> Result<T, Routed> {
        if consistency == Consistency::Linearizable {
            self.linearizable(Instant::now() + DEADLINE).await?;
        }
        let view = self.view.borrow().clone();
        Ok(read(&view)?)
    }

    /// Commits `cmd` here if this node leads, else forwards the call with `remote`.
    async fn write<R, Fut>(
        &self,
        md: &MetadataMap,
        cmd: Command,
        remote: R,
    ) -> Result<Response<pb::WriteReply>, Status>
    where
        R: FnOnce(TopologyClient<Channel>, MetadataMap) -> Fut,
        Fut: std::future::Future<Output = Result<Response<pb::WriteReply>, Status>>,
    {
        let local = async { self.commit(cmd).await.map(|index| pb::WriteReply { index }) };
        self.on_leader(md, DEADLINE, local, remote)
            .await
            .map(Response::new)
    }

    async fn membership(&self, change: MembershipChange) -> Result<u64, Routed> {
        let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
        let result = match change {
            MembershipChange::Add(id, member) => {
                // A learner first: it catches up without counting toward the quorum.
                match tokio::time::timeout_at(deadline, self.raft.add_learner(id, member, true))
                    .await
                {
                    Err(_) => return Err(status::timed_out("learner catch-up").into()),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(_)) => {
                        let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                        tokio::time::timeout_at(deadline, self.raft.change_membership(add, false))
                            .await
                            .map_err(|_| Routed::from(status::timed_out("membership change")))?
                    }
                }
            }
            MembershipChange::Remove(id) => {
                let remove = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                tokio::time::timeout_at(deadline, self.raft.change_membership(remove, false))
                    .await
                    .map_err(|_| Routed::from(status::timed_out("membership change")))?
            }
        };
        match result {
            Ok(resp) => Ok(resp.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Routed::Forward(f))
            }
            Err(e) => Err(status::write_error(&e).into()),
        }
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

enum MembershipChange {
    Add(u64, Member),
    Remove(u64),
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
                    .map(|m| convert::master(m, applied))
                    .collect(),
                applied_index: applied,
            })
        });
        let reply = self
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
                .map(|m| convert::master(m, v.applied_index()))
                .ok_or_else(|| Status::not_found("ERR No such master with that name"))
        });
        let reply = self
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
        let md = req.metadata().clone();
        let msg = req.into_inner();
        // Early, in apply's words; `apply` refuses it on every node anyway (invariant 12).
        crate::topology::check_name(&msg.name)
            .map_err(|r| Status::invalid_argument(r.to_string()))?;
        if msg.host.parse::<IpAddr>().is_err() {
            return Err(Status::invalid_argument(
                "ERR Invalid IP address or hostname specified",
            ));
        }
        let cmd = Command::Monitor {
            name: msg.name.clone(),
            addr: Addr {
                host: msg.host.clone(),
                port: port(msg.port)?,
            },
            quorum: msg.quorum,
            down_after_ms: self.config.default_down_after_ms,
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.monitor(with_metadata(msg, md)).await
        })
        .await
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let cmd = Command::Remove {
            name: msg.name.clone(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.remove(with_metadata(msg, md)).await
        })
        .await
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        for o in &msg.options {
            if o.option.eq_ignore_ascii_case("down-after-milliseconds") {
                // Invariant 8 is checked on every SET, against this cluster's lease timings;
                // 0 is left to the commit, which refuses it in Sentinel's words.
                if let Some(v) = o.value.parse::<u64>().ok().filter(|v| *v > 0) {
                    let warnings = self
                        .config
                        .timing_check_down_after(v)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?;
                    for w in warnings {
                        tracing::warn!(master = %msg.name, "{w}");
                    }
                }
            }
        }
        // Sentinel's script checks and the VIP allow-list, against this node's config and files:
        // early refusals only. Whether the master exists in this node's view does not matter (a
        // MONITOR racing this SET must not skip them); the runner and the VIP holder apply their
        // own node's config again at the point of use (invariant 12).
        let options = || {
            msg.options
                .iter()
                .map(|o| (o.option.as_str(), o.value.as_str()))
        };
        check_set(self.config.deny_scripts_reconfig, options())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        crate::lease::vip_allow::check_set(&self.config.vip_allowed, options())
            .map_err(|e| Status::invalid_argument(format!("ERR {e}")))?;
        let cmd = Command::Set {
            name: msg.name.clone(),
            options: msg
                .options
                .iter()
                .map(|o| (o.option.clone(), o.value.clone()))
                .collect(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.set(with_metadata(msg, md)).await
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
            });
        }
        Ok(Response::new(pb::ClusterStatusReply {
            node_id: self.node_id,
            cluster_id: self.identity.get().unwrap_or_default(),
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
        let md = req.metadata().clone();
        let msg = req.into_inner();
        if msg.id == 0 {
            return Err(Status::invalid_argument(
                "member id must be a positive integer",
            ));
        }
        if msg.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(Status::invalid_argument(format!(
                "member address '{}' is not IP:PORT",
                msg.addr
            )));
        }
        let sentinel_addr = if msg.sentinel_addr.is_empty() {
            default_sentinel_addr(&msg.addr)
        } else {
            msg.sentinel_addr.clone()
        };
        let change = MembershipChange::Add(
            msg.id,
            Member {
                addr: msg.addr.clone(),
                sentinel_addr,
            },
        );
        let local = async {
            self.membership(change)
                .await
                .map(|index| pb::WriteReply { index })
        };
        let reply = self
            .on_leader(&md, MEMBERSHIP_DEADLINE, local, |mut c, md| async move {
                let mut r = with_metadata(msg, md);
                r.set_timeout(MEMBERSHIP_DEADLINE);
                c.add_member(r).await
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn failover(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let cmd = Command::RequestFailover {
            name: msg.name.clone(),
            kind: RequestKind::Forced,
            at_ms: now_ms(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.failover(with_metadata(msg, md)).await
        })
        .await
    }

    async fn switchover(
        &self,
        req: Request<pb::SwitchoverRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let to = if msg.to_host.is_empty() {
            None
        } else {
            Some(Addr {
                host: msg.to_host.clone(),
                port: port(msg.to_port)?,
            })
        };
        let cmd = Command::RequestFailover {
            name: msg.name.clone(),
            kind: RequestKind::Switchover { to },
            at_ms: now_ms(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.switchover(with_metadata(msg, md)).await
        })
        .await
    }

    async fn pause(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let cmd = Command::Pause {
            name: msg.name.clone(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.pause(with_metadata(msg, md)).await
        })
        .await
    }

    async fn resume(
        &self,
        req: Request<pb::NameRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let cmd = Command::Resume {
            name: msg.name.clone(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.resume(with_metadata(msg, md)).await
        })
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
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let keep = Addr {
            host: msg.keep_host.clone(),
            port: port(msg.keep_port)?,
        };
        let cmd = Command::Resolve {
            name: msg.name.clone(),
            keep,
            at_ms: now_ms(),
        };
        self.write(&md, cmd, |mut c, md| async move {
            c.resolve(with_metadata(msg, md)).await
        })
        .await
    }

    async fn reset(
        &self,
        req: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let pattern = msg.pattern.clone();
        // The leader matches against the state the entry will be applied to.
        let local = async {
            let names: Vec<String> = self
                .view
                .borrow()
                .topology
                .masters()
                .filter(|m| m.failover.is_none())
                .filter(|m| crate::glob::matches(pattern.as_bytes(), m.name.as_bytes(), false))
                .map(|m| m.name.clone())
                .collect();
            let count = u32::try_from(names.len()).unwrap_or(u32::MAX);
            if names.is_empty() {
                return Ok(pb::ResetReply { index: 0, count });
            }
            let index = self.commit(Command::Reset { names }).await?;
            Ok(pb::ResetReply { index, count })
        };
        let reply = self
            .on_leader(&md, DEADLINE, local, |mut c, md| async move {
                c.reset(with_metadata(msg, md)).await
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        self.identity.admit_client(req.metadata())?;
        let md = req.metadata().clone();
        let msg = req.into_inner();
        let local = async {
            self.membership(MembershipChange::Remove(msg.id))
                .await
                .map(|index| pb::WriteReply { index })
        };
        let reply = self
            .on_leader(&md, MEMBERSHIP_DEADLINE, local, |mut c, md| async move {
                let mut r = with_metadata(msg, md);
                r.set_timeout(MEMBERSHIP_DEADLINE);
                c.remove_member(r).await
            })
            .await?;
        Ok(Response::new(reply))
    }
}

/// A member added without a Sentinel address is assumed to serve it on the same IP, port 26379.
fn default_sentinel_addr(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => std::net::SocketAddr::new(a.ip(), 26379).to_string(),
        Err(_) => String::new(),
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
