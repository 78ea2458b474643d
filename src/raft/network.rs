//! The Raft transport's client side: openraft RPCs as bincode inside `RaftInternal` gRPC calls,
//! over one cached lazily-connected channel per peer, stamped with the cluster id, this node's
//! incarnation and the one the membership records for the peer.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use std::sync::Mutex;
use std::time::Duration;

use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use super::codec::{decode, encode};
use super::identity::{stamp_target, ClusterIdentity};
use super::read_lease::ReadLease;
use super::types::typ::{RaftError, RpcError};
use super::types::{Member, NodeId, TypeConfig};
use crate::dial::Dialer;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::RaftBytes;

/// Hands openraft one client per target, over the dialer's shared channel to its address.
#[derive(Clone)]
pub struct Network {
    dialer: Dialer,
    identity: ClusterIdentity,
    retry_after: Duration,
    lease: ReadLease,
}

impl Network {
    /// `retry_after` paces retries to a peer that refuses connections: one heartbeat interval,
    /// not openraft's 500 ms, so a peer back from a restart is heard from within one heartbeat.
    /// `lease` hears every accepted AppendEntries.
    pub fn new(
        dialer: Dialer,
        identity: ClusterIdentity,
        retry_after: Duration,
        lease: ReadLease,
    ) -> Self {
        Network {
            dialer,
            identity,
            retry_after,
            lease,
        }
    }

    fn channel(&self, addr: &str) -> Option<Channel> {
        self.dialer
            .channel(addr)
            .map_err(|e| tracing::warn!(%addr, error = %e, "cannot build a channel to peer"))
            .ok()
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    channel: Option<Channel>,
    identity: ClusterIdentity,
    retry_after: Duration,
    /// The target's incarnation in the membership this client was made for.
    expected: u64,
    /// The last refusal logged, so that a refusing peer is reported once, not every heartbeat.
    refused: Mutex<Option<String>>,
    lease: ReadLease,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            channel: self.channel(&node.addr),
            identity: self.identity.clone(),
            retry_after: self.retry_after,
            expected: node.incarnation,
            refused: Mutex::new(None),
            lease: self.lease.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.channel.clone().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
                "no channel to {}",
                self.addr
            ))))
        })?;
        let data = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftBytes { data });
        // openraft 0.9 bounds an AppendEntries by heartbeat_interval itself
        // (replication/mod.rs): a longer deadline here would change nothing.
        request.set_timeout(option.soft_ttl());
        self.identity.stamp(request.metadata_mut());
        stamp_target(request.metadata_mut(), self.expected);
        let mut client = RaftInternalClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        // Only a refused or broken connection is "unreachable" (openraft then backs off). A
        // deadline is a slow peer, typically a follower whose fsync queues behind other writes:
        // the next heartbeat retries at once, instead of a backoff that silences the leader for
        // longer than the election timeout.
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            code => {
                if code == tonic::Code::FailedPrecondition {
                    self.report_refusal(status.message());
                }
                RPCError::Network(NetworkError::new(&status))
            }
        })?;
        let result: Result<Resp, RaftError<E>> = decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl PeerClient {
    /// A peer that refuses this node (another cluster, or an incarnation that does not match)
    /// needs an operator: said at error level, once per distinct refusal.
    fn report_refusal(&self, message: &str) {
        let mut last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(message) {
            tracing::error!(peer = self.target, addr = %self.addr, "peer refuses this node's Raft RPCs: {message}");
            *last = Some(message.to_owned());
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_after))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let sent = std::time::Instant::now();
        let reply = self.call(Rpc::Append, &rpc, &option).await;
        if let Ok(r) = &reply {
            if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                self.lease.acked(self.target, &rpc.vote, sent);
            }
        }
        reply
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
