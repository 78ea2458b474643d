//! Carrying out an admin request: authorize it (the one place that decides), check it against
//! this node's config, then commit it on the leader or forward it there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::admission::{self, Admit};
use super::authn::membership_of;
use super::request::{AdminReply, AdminRequest};
use super::route::{Routed, Router, DEADLINE, MEMBERSHIP_DEADLINE};
use super::{authorize, same_instance, status, Denied, Principal};
use crate::config::Config;
use crate::failover::quorum::check_membership;
use crate::failover::reports::Reports;
use crate::hooks::check::check_set;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::NodeInfoRequest;
use crate::raft::types::typ::{ClientWriteError, RaftError};
use crate::raft::{Member, SmData};
use crate::redis::Connector;
use crate::topology::{Addr, Command, Refusal, RequestKind};

/// How long adding a member waits for the new node to say who it is.
const ASK_NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long it keeps asking a node that does not answer (it may be starting).
const ASK_NODE_WINDOW: Duration = Duration::from_secs(10);

/// Why an admin request did not go through.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The caller may not do this (gRPC PERMISSION_DENIED, RESP NOPERM).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Refused or failed; the status carries Sentinel's wording where Sentinel has one.
    #[error("{}", .0.message())]
    Failed(Status),
}

impl From<Status> for AdminError {
    fn from(s: Status) -> Self {
        AdminError::Failed(s)
    }
}

impl From<AdminError> for Status {
    fn from(e: AdminError) -> Status {
        match e {
            AdminError::Denied(d) => Status::permission_denied(d.to_string()),
            AdminError::Failed(s) => s,
        }
    }
}

/// The admin path every facade calls.
pub struct Admin {
    pub router: Router,
    pub view: watch::Receiver<Arc<SmData>>,
    pub config: Arc<Config>,
    /// The observation reports this node holds (all of them on the leader): run ids for MONITOR.
    pub reports: Reports,
    /// For the new instance's run id at MONITOR.
    pub redis: Connector,
}

fn port(p: u32) -> Result<u16, Status> {
    u16::try_from(p).map_err(|_| Status::invalid_argument("ERR Invalid port number."))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Admin {
    /// Authorizes `req` for `who`, checks it, and commits it on the leader. `md` is the incoming
    /// call's metadata (it marks a call that was already forwarded once).
    pub async fn execute(
        &self,
        who: &Principal,
        md: &MetadataMap,
        req: AdminRequest,
    ) -> Result<AdminReply, AdminError> {
        let who = &self.current(who);
        authorize(who, req.action())?;
        if let AdminRequest::Monitor { host, .. } = &req {
            // This node's `resolve-hostnames`, and the name must resolve now (Sentinel's check).
            if let Err(e) = self.redis.hostnames().accept(host).await {
                tracing::info!(error = %e, "MONITOR refused");
                return Err(Status::invalid_argument(Refusal::InvalidHost.to_string()).into());
            }
        }
        tracing::debug!(who = %who.describe(), ?req, "admin request");
        let wait = match req.action() {
            super::Action::Membership => MEMBERSHIP_DEADLINE,
            _ => DEADLINE,
        };
        let remote = req.clone();
        let local = self.local(req);
        let reply = self
            .router
            .on_leader(md, wait, local, |c, md| remote.forward(c, md))
            .await?;
        Ok(reply)
    }

    /// A node identity counts only while it is a member: the certificate of a removed node, or
    /// of an id never added, proves nothing.
    fn current(&self, who: &Principal) -> Principal {
        match who {
            Principal::Node(id) if membership_of(&self.router.raft, *id) == Some(true) => {
                who.clone()
            }
            Principal::Node(_) => Principal::Client,
            other => other.clone(),
        }
    }

    /// What the leader does with `req`.
    async fn local(&self, req: AdminRequest) -> Result<AdminReply, Routed> {
        let index = match req {
            AdminRequest::AddMember {
                id,
                addr,
                sentinel_addr,
            } => return self.add_member(id, addr, sentinel_addr).await,
            AdminRequest::RemoveMember { id } => return self.remove_member(id).await,
            AdminRequest::Reset { pattern } => return self.reset(&pattern).await,
            other => {
                if let AdminRequest::Monitor {
                    name,
                    host,
                    port: p,
                    ..
                } = &other
                {
                    self.check_run_id(name, host, *p).await?;
                }
                let cmd = self.command(other)?;
                self.router.commit(cmd).await?
            }
        };
        Ok(AdminReply { index, count: 0 })
    }

    /// The topology command for a request, after this node's own checks (the state machine
    /// checks again where it applies it).
    fn command(&self, req: AdminRequest) -> Result<Command, Status> {
        Ok(match req {
            AdminRequest::Monitor {
                name,
                host,
                port: p,
                quorum,
            } => {
                // Early, in apply's words; `apply` refuses it on every node anyway (invariant 12).
                crate::topology::check_name(&name)
                    .map_err(|r| Status::invalid_argument(r.to_string()))?;
                if !Addr::valid_host(&host) {
                    return Err(Status::invalid_argument(Refusal::InvalidHost.to_string()));
                }
                let addr = Addr {
                    host,
                    port: port(p)?,
                };
                self.check_not_monitored(&name, &addr)?;
                Command::Monitor {
                    name,
                    addr,
                    quorum,
                    down_after_ms: self.config.default_down_after_ms,
                }
            }
            AdminRequest::Remove { name } => Command::Remove { name },
            AdminRequest::Set { name, options } => {
                self.check_set(&name, &options)?;
                Command::Set { name, options }
            }
            AdminRequest::Failover { name } => Command::RequestFailover {
                name,
                kind: RequestKind::Forced,
                at_ms: now_ms(),
            },
            AdminRequest::Switchover { name, to } => {
                let to = match to {
                    Some((host, p)) if !host.is_empty() => Some(Addr {
                        host,
                        port: port(p)?,
                    }),
                    _ => None,
                };
                Command::RequestFailover {
                    name,
                    kind: RequestKind::Switchover { to },
                    at_ms: now_ms(),
                }
            }
            AdminRequest::Pause { name } => Command::Pause { name },
            AdminRequest::Resume { name } => Command::Resume { name },
            AdminRequest::ResetFailoverDelay { name } => Command::ResetFailoverDelay { name },
            AdminRequest::Resolve {
                name,
                keep_host,
                keep_port,
            } => Command::Resolve {
                name,
                keep: Addr {
                    host: keep_host,
                    port: port(keep_port)?,
                },
                at_ms: now_ms(),
            },
            AdminRequest::Reset { .. }
            | AdminRequest::AddMember { .. }
            | AdminRequest::RemoveMember { .. } => {
                return Err(Status::internal("not a topology command"))
            }
        })
    }

    /// Invariant 8 on every SET of down-after, against this cluster's lease timings (0 is left to
    /// the commit, which refuses it in Sentinel's words), Sentinel's script checks and the VIP
    /// allow-list.
    fn check_set(&self, name: &str, options: &[(String, String)]) -> Result<(), Status> {
        for (option, value) in options {
            if option.eq_ignore_ascii_case("down-after-milliseconds") {
                if let Some(v) = value.parse::<u64>().ok().filter(|v| *v > 0) {
                    let warnings = self
                        .config
                        .timing_check_down_after(v)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?;
                    for w in warnings {
                        tracing::warn!(master = %name, "{w}");
                    }
                }
            }
        }
        // Sentinel's script checks and the VIP allow-list, against this node's config and files:
        // early refusals only. Whether the master exists in this node's view does not matter (a
        // MONITOR racing this SET must not skip them); the runner and the VIP holder apply their
        // own node's config again at the point of use (invariant 12).
        let pairs = || options.iter().map(|(o, v)| (o.as_str(), v.as_str()));
        check_set(self.config.deny_scripts_reconfig, pairs())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        crate::lease::vip_allow::check_set(&self.config.vip_allowed, pairs())
            .map_err(|e| Status::invalid_argument(format!("ERR {e}")))?;
        Ok(())
    }

    /// Early, in apply's words: an instance another name monitors (as master or known replica)
    /// is refused. A name that exists already is left to apply's "Duplicate master name.".
    fn check_not_monitored(&self, name: &str, addr: &Addr) -> Result<(), Status> {
        let view = self.view.borrow();
        let topology = &view.topology;
        match topology.monitored_as(addr) {
            Some(other) if topology.master(name).is_none() => {
                let refusal = crate::topology::Refusal::AlreadyMonitored {
                    addr: addr.to_string(),
                    name: other.to_owned(),
                };
                Err(Status::already_exists(refusal.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Issue 11 §8: the new address must not reach an instance another name monitors. Only an
    /// instance that answers INFO without credentials can be checked (Sentinel sets auth-pass
    /// after MONITOR); `apply`'s address check covers the rest.
    async fn check_run_id(&self, name: &str, host: &str, p: u32) -> Result<(), Status> {
        let addr = Addr {
            host: host.to_owned(),
            port: port(p)?,
        };
        {
            // The address itself, or the name, is refused in their own words further on.
            let view = self.view.borrow();
            let topology = &view.topology;
            if topology.monitored_as(&addr).is_some() || topology.master(name).is_some() {
                return Ok(());
            }
        }
        let tls = self.config.tls_masters.contains(name);
        let Some(run_id) = same_instance::run_id_of(&self.redis, &addr, tls).await else {
            return Ok(());
        };
        let reports = same_instance::reports_of(&self.reports);
        let other = same_instance::monitored_with_run_id(
            &self.view.borrow().topology,
            reports.iter().map(|r| r.as_ref()),
            &run_id,
        );
        match other {
            Some(other) if other.0 != name => Err(Status::already_exists(same_instance::refusal(
                &addr, &other, &run_id,
            ))),
            _ => Ok(()),
        }
    }

    /// RESET matches against the state the entry will be applied to: the leader's.
    async fn reset(&self, pattern: &str) -> Result<AdminReply, Routed> {
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
            return Ok(AdminReply { index: 0, count });
        }
        let index = self.router.commit(Command::Reset { names }).await?;
        Ok(AdminReply { index, count })
    }

    async fn add_member(
        &self,
        id: u64,
        addr: String,
        sentinel_addr: String,
    ) -> Result<AdminReply, Routed> {
        if id == 0 {
            return Err(Status::invalid_argument("member id must be a positive integer").into());
        }
        let Ok(parsed) = addr.parse::<SocketAddr>() else {
            let msg = format!("member address '{addr}' is not IP:PORT");
            return Err(Status::invalid_argument(msg).into());
        };
        let sentinel_addr = if sentinel_addr.is_empty() {
            // Assumed to serve the Sentinel port on the same IP, port 26379.
            SocketAddr::new(parsed.ip(), crate::config::DEFAULT_SENTINEL_PORT).to_string()
        } else {
            sentinel_addr
        };
        let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
        let retired = self.view.borrow().retired.contains(&id);
        admission::not_retired(id, retired).map_err(Status::failed_precondition)?;
        let answer = self.ask_node(&addr).await?;
        let admit = {
            let view = self.view.borrow();
            let recorded = view
                .membership
                .membership()
                .get_node(&id)
                .map(|m| m.incarnation);
            let ours = self.router.identity.get().unwrap_or_default();
            admission::admit(id, &addr, &ours, recorded, &answer)
                .map_err(Status::failed_precondition)?
        };
        let (Admit::Add { incarnation } | Admit::Record { incarnation }) = admit;
        let member = Member {
            addr,
            sentinel_addr,
            incarnation,
        };
        if let Admit::Record { .. } = admit {
            let set = ChangeMembers::SetNodes(BTreeMap::from([(id, member)]));
            return self.change_membership(set).await;
        }
        // A learner first: it catches up without counting toward the quorum.
        let learner = self.router.raft.add_learner(id, member, true);
        match tokio::time::timeout_at(deadline, learner).await {
            Err(_) => return Err(status::timed_out("learner catch-up").into()),
            Ok(Err(e)) => return Err(membership_error(e)),
            Ok(Ok(_)) => {}
        }
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    /// Asks the node at `addr` who it is and which incarnation it is, to record that; a node
    /// that does not answer yet (just started) is asked again for a few seconds.
    async fn ask_node(&self, addr: &str) -> Result<admission::Answer, Status> {
        let until = Instant::now() + ASK_NODE_WINDOW;
        loop {
            match self.ask_node_once(addr).await {
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < until => {
                    tokio::time::sleep(ASK_NODE_TIMEOUT / 4).await;
                }
                // Not this cluster's unavailability: another node would fail the same way.
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    return Err(Status::failed_precondition(s.message()))
                }
                other => return other,
            }
        }
    }

    async fn ask_node_once(&self, addr: &str) -> Result<admission::Answer, Status> {
        let unreachable = |e: String| {
            Status::unavailable(format!(
                "cannot ask the node at {addr} for its incarnation (start it first): {e}"
            ))
        };
        let channel = self
            .router
            .dialer
            .channel(addr)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut req = tonic::Request::new(NodeInfoRequest {});
        req.set_timeout(ASK_NODE_TIMEOUT);
        self.router.identity.stamp(req.metadata_mut());
        let mut client = RaftInternalClient::new(channel);
        let call = client.node_info(req);
        let reply = match tokio::time::timeout(ASK_NODE_TIMEOUT, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(s)) => return Err(unreachable(s.message().to_owned())),
            Err(_) => return Err(unreachable("no answer".to_owned())),
        };
        Ok(admission::Answer {
            node_id: reply.node_id,
            cluster_id: reply.cluster_id,
            incarnation: reply.incarnation,
        })
    }

    /// A voter leaves the voters and the membership; a learner (an add that never got to the
    /// voter step) leaves the membership, which removing it as a voter would not do: it would
    /// stay a learner, replicated to for good, while `members remove` said it was gone.
    async fn remove_member(&self, id: u64) -> Result<AdminReply, Routed> {
        let learner = {
            let view = self.view.borrow();
            let m = view.membership.membership();
            m.get_node(&id).is_some() && !m.voter_ids().any(|v| v == id)
        };
        let ids = BTreeSet::from([id]);
        let change = if learner {
            ChangeMembers::RemoveNodes(ids)
        } else {
            ChangeMembers::RemoveVoters(ids)
        };
        self.change_membership(change).await
    }

    /// Refuses a change that would leave a master's configured quorum above the voters (issue 11
    /// item 4), against this leader's applied state, before openraft sees it. Growing is allowed:
    /// ODOWN raises a quorum below the new majority to it (`failover::quorum`).
    async fn change_membership(
        &self,
        change: ChangeMembers<u64, Member>,
    ) -> Result<AdminReply, Routed> {
        self.check_quorums(&change)?;
        let call = self.router.raft.change_membership(change, false);
        match tokio::time::timeout(MEMBERSHIP_DEADLINE, call).await {
            Err(_) => Err(status::timed_out("membership change").into()),
            Ok(Err(e)) => Err(membership_error(e)),
            Ok(Ok(resp)) => Ok(AdminReply {
                index: resp.log_id.index,
                count: 0,
            }),
        }
    }

    fn check_quorums(&self, change: &ChangeMembers<u64, Member>) -> Result<(), Status> {
        let view = self.view.borrow();
        let before: BTreeSet<u64> = view.membership.membership().voter_ids().collect();
        let mut after = before.clone();
        match change {
            ChangeMembers::RemoveVoters(ids) => after.retain(|id| !ids.contains(id)),
            ChangeMembers::AddVoterIds(ids) => after.extend(ids),
            // The admin path makes no other change.
            _ => return Ok(()),
        }
        let masters = view.topology.masters().map(|m| (m.name.as_str(), m.quorum));
        check_membership(masters, &before, &after).map_err(Status::failed_precondition)
    }
}

fn membership_error(e: RaftError<ClientWriteError>) -> Routed {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Routed::Forward(f),
        e => status::write_error(&e).into(),
    }
}
