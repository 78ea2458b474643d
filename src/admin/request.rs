//! What an operator can ask of the cluster, whichever facade it came through, and how a request
//! is forwarded to the leader's `Topology` service when this node does not lead.

use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Status;

use super::route::with_metadata;
use super::Action;
use crate::pb;
use crate::pb::topology_client::TopologyClient;

/// One admin request, as the facades parsed it (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    Monitor {
        name: String,
        host: String,
        port: u32,
        quorum: u32,
    },
    Remove {
        name: String,
    },
    /// Option/value pairs; `auth-pass` values never reach a log line (see `Debug` of `Command`).
    Set {
        name: String,
        options: Vec<(String, String)>,
    },
    /// Forced failover: may lose writes.
    Failover {
        name: String,
    },
    /// Lossless switchover, to a given replica or the best one.
    Switchover {
        name: String,
        to: Option<(String, u32)>,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// `ctl reset-failover-delay`: the attempts so far delay no automatic failover.
    ResetFailoverDelay {
        name: String,
    },
    Resolve {
        name: String,
        keep_host: String,
        keep_port: u32,
    },
    /// SENTINEL RESET: every master matching the glob pattern.
    Reset {
        pattern: String,
    },
    AddMember {
        id: u64,
        addr: String,
        sentinel_addr: String,
    },
    RemoveMember {
        id: u64,
    },
}

/// What a committed admin request returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminReply {
    /// The log index of the entry; 0 when nothing needed committing.
    pub index: u64,
    /// RESET only: how many masters were reset.
    pub count: u32,
}

fn stamped<T>(md: MetadataMap, msg: T) -> tonic::Request<T> {
    with_metadata(msg, md)
}

impl AdminRequest {
    pub fn action(&self) -> Action {
        match self {
            AdminRequest::AddMember { .. } | AdminRequest::RemoveMember { .. } => {
                Action::Membership
            }
            _ => Action::Write,
        }
    }

    /// The same request on the leader's `Topology` service.
    pub async fn forward(
        self,
        mut c: TopologyClient<Channel>,
        md: MetadataMap,
    ) -> Result<tonic::Response<AdminReply>, Status> {
        let write = |r: tonic::Response<pb::WriteReply>| {
            r.map(|w| AdminReply {
                index: w.index,
                count: 0,
            })
        };
        match self {
            AdminRequest::Monitor {
                name,
                host,
                port,
                quorum,
            } => c
                .monitor(stamped(
                    md,
                    pb::MonitorRequest {
                        name,
                        host,
                        port,
                        quorum,
                    },
                ))
                .await
                .map(write),
            AdminRequest::Remove { name } => c
                .remove(stamped(md, pb::RemoveRequest { name }))
                .await
                .map(write),
            AdminRequest::Set { name, options } => {
                let options = options
                    .into_iter()
                    .map(|(option, value)| pb::SetOption { option, value })
                    .collect();
                c.set(stamped(md, pb::SetRequest { name, options }))
                    .await
                    .map(write)
            }
            AdminRequest::Failover { name } => c
                .failover(stamped(md, pb::NameRequest { name }))
                .await
                .map(write),
            AdminRequest::Switchover { name, to } => {
                let (to_host, to_port) = to.unwrap_or_default();
                let msg = pb::SwitchoverRequest {
                    name,
                    to_host,
                    to_port,
                };
                c.switchover(stamped(md, msg)).await.map(write)
            }
            AdminRequest::Pause { name } => c
                .pause(stamped(md, pb::NameRequest { name }))
                .await
                .map(write),
            AdminRequest::Resume { name } => c
                .resume(stamped(md, pb::NameRequest { name }))
                .await
                .map(write),
            AdminRequest::ResetFailoverDelay { name } => c
                .reset_failover_delay(stamped(md, pb::NameRequest { name }))
                .await
                .map(write),
            AdminRequest::Resolve {
                name,
                keep_host,
                keep_port,
            } => {
                let msg = pb::ResolveRequest {
                    name,
                    keep_host,
                    keep_port,
                };
                c.resolve(stamped(md, msg)).await.map(write)
            }
            AdminRequest::Reset { pattern } => {
                let r = c.reset(stamped(md, pb::ResetRequest { pattern })).await?;
                Ok(r.map(|r| AdminReply {
                    index: r.index,
                    count: r.count,
                }))
            }
            AdminRequest::AddMember {
                id,
                addr,
                sentinel_addr,
            } => {
                let mut r = stamped(
                    md,
                    pb::AddMemberRequest {
                        id,
                        addr,
                        sentinel_addr,
                    },
                );
                r.set_timeout(super::route::MEMBERSHIP_DEADLINE);
                c.add_member(r).await.map(write)
            }
            AdminRequest::RemoveMember { id } => {
                let mut r = stamped(md, pb::RemoveMemberRequest { id });
                r.set_timeout(super::route::MEMBERSHIP_DEADLINE);
                c.remove_member(r).await.map(write)
            }
        }
    }
}
