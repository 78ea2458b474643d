//! Getting a call to the leader: local linearizable reads and writes on the leader, bounded in
//! time, and forwarding to the leader's own `Topology` service from any other node, as this node
//! (the leader admits a member's forwarded call; this node authorized the caller already).

use std::future::Future;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Status;

use super::status;
use crate::dial::Dialer;
use crate::pb::topology_client::TopologyClient;
use crate::raft::read_lease::ReadLease;
use crate::raft::types::typ::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use crate::raft::{ClusterIdentity, Raft, Response};
use crate::topology::Command;

/// A node cut off from the majority must answer within about 2 s, never hang.
pub const DEADLINE: Duration = Duration::from_millis(1800);
/// Membership changes wait for a learner to catch up, which can take longer.
pub const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);
/// Marks a forwarded call, so a stale leader hint cannot bounce a call around the cluster.
const FORWARDED: &str = "x-raftinel-forwarded";
const READ_TRIES: u32 = 3;

/// Where a call that needs the leader ended up.
pub enum Routed {
    Failed(Status),
    Forward(ForwardToLeader),
}

impl From<Status> for Routed {
    fn from(s: Status) -> Self {
        Routed::Failed(s)
    }
}

/// Runs calls on the leader: here when this node leads, else on the leader's `Topology` service.
#[derive(Clone)]
pub struct Router {
    pub raft: Raft,
    pub dialer: Dialer,
    pub identity: ClusterIdentity,
    /// Lets a leader that a quorum acknowledged recently read without a round trip.
    pub lease: ReadLease,
}

impl Router {
    /// Confirms leadership with a quorum and waits for it to be applied: from the read lease when
    /// it holds, else by ReadIndex. Retries briefly: one slow heartbeat must not fail a read
    /// (openraft issue #1852).
    pub async fn linearizable(&self, deadline: Instant) -> Result<(), Routed> {
        if self
            .lease
            .holds(&self.raft.metrics().borrow(), std::time::Instant::now())
        {
            return Ok(());
        }
        let mut last = Status::unavailable("no quorum");
        for attempt in 0..READ_TRIES {
            match timeout_at(deadline, self.raft.ensure_linearizable()).await {
                Err(_) => return Err(status::timed_out("read").into()),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    return Err(Routed::Forward(f))
                }
                Ok(Err(e)) => last = status::read_error(&e),
            }
            let backoff = Duration::from_millis(50 * u64::from(attempt + 1));
            if Instant::now() + backoff >= deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
        }
        Err(last.into())
    }

    /// Commits a topology command; a refusal becomes its status code.
    pub async fn commit(&self, cmd: Command) -> Result<u64, Routed> {
        let deadline = Instant::now() + DEADLINE;
        match timeout_at(deadline, self.raft.client_write(cmd)).await {
            Err(_) => Err(status::timed_out("write").into()),
            Ok(Ok(resp)) => match resp.data {
                Response { result: Ok(_) } => Ok(resp.log_id.index),
                Response { result: Err(r) } => Err(status::refusal(&r).into()),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(Routed::Forward(f))
            }
            Ok(Err(e)) => Err(status::write_error(&e).into()),
        }
    }

    /// Runs `local` here; if it says another node leads, runs `remote` against that node.
    pub async fn on_leader<T, L, R, Fut>(
        &self,
        metadata: &MetadataMap,
        wait: Duration,
        local: L,
        remote: R,
    ) -> Result<T, Status>
    where
        L: Future<Output = Result<T, Routed>>,
        R: FnOnce(TopologyClient<Channel>, MetadataMap) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let forward = match local.await {
            Ok(v) => return Ok(v),
            Err(Routed::Failed(s)) => return Err(s),
            Err(Routed::Forward(f)) => f,
        };
        if metadata.contains_key(FORWARDED) {
            return Err(Status::unavailable(
                "this node is not the leader either; retry",
            ));
        }
        let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) else {
            return Err(Status::unavailable(
                "no leader is known to this node; retry shortly",
            ));
        };
        let channel = self
            .dialer
            .channel(&node.addr)
            .map_err(|e| Status::unavailable(format!("cannot reach leader {leader}: {e}")))?;
        let mut md = MetadataMap::new();
        self.identity.stamp(&mut md);
        md.insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        let client = TopologyClient::new(channel);
        match tokio::time::timeout(wait, remote(client, md)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(s))
                if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown =>
            {
                Err(Status::unavailable(format!(
                    "leader {leader} at {}: {}",
                    node.addr,
                    s.message()
                )))
            }
            Ok(Err(s)) => Err(s),
            Err(_) => Err(Status::unavailable(format!(
                "leader {leader} at {} did not answer in time",
                node.addr
            ))),
        }
    }
}

/// Builds a request carrying forwarded metadata.
pub fn with_metadata<T>(msg: T, md: MetadataMap) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    *req.metadata_mut() = md;
    req.set_timeout(DEADLINE);
    req
}
