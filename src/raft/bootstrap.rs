//! First boot: three nodes started with the same --peers form one cluster with no extra step, in
//! any order. Only the lowest id initializes, only with an empty store, and only once every peer
//! has answered "uninitialized, same peer map"; everything else waits to be contacted or added.
//! The first membership records every peer's incarnation, from its answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::identity::ClusterIdentity;
use super::types::{Member, Raft};
use crate::dial::Dialer;
use crate::pb::raft_internal_client::RaftInternalClient;
use crate::pb::{NodeInfoReply, NodeInfoRequest};

const PROBE_EVERY: Duration = Duration::from_millis(300);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What one peer's answer means for initialization.
#[derive(Debug, PartialEq)]
pub enum PeerVerdict {
    Ready,
    /// The peer already belongs to a cluster: we must never start a second one.
    Initialized {
        cluster_id: String,
    },
    /// Wrong id or another peer map: an operator must fix the flags.
    Mismatch(String),
}

/// Pure check of one probe reply against our own peer map.
pub fn judge(
    expected_id: u64,
    ours: &BTreeMap<u64, SocketAddr>,
    reply: &NodeInfoReply,
) -> PeerVerdict {
    if reply.initialized || !reply.cluster_id.is_empty() {
        return PeerVerdict::Initialized {
            cluster_id: reply.cluster_id.clone(),
        };
    }
    if reply.node_id != expected_id {
        return PeerVerdict::Mismatch(format!(
            "the node at peer {expected_id}'s address says it is node {}",
            reply.node_id
        ));
    }
    let theirs: BTreeMap<u64, String> =
        reply.peers.iter().map(|p| (p.id, p.addr.clone())).collect();
    let mine: BTreeMap<u64, String> = ours.iter().map(|(id, a)| (*id, a.to_string())).collect();
    if theirs != mine {
        return PeerVerdict::Mismatch(format!(
            "node {expected_id} was started with another --peers map: {theirs:?}"
        ));
    }
    PeerVerdict::Ready
}

pub struct Bootstrap {
    pub node_id: u64,
    pub peers: BTreeMap<u64, SocketAddr>,
    pub sentinel_addr: String,
    pub joining: bool,
    pub raft: Raft,
    pub identity: ClusterIdentity,
    pub dialer: Dialer,
}

impl Bootstrap {
    /// Runs until the node is part of a cluster, or until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        if self.is_initialized().await {
            self.report_peer_mismatch();
            return;
        }
        if self.joining {
            tracing::info!(
                "waiting to be added: run `raftinel ctl members add {} <this node's HOST:PORT>`",
                self.node_id
            );
            return;
        }
        let lowest = self.peers.keys().next().copied();
        if lowest != Some(self.node_id) {
            tracing::info!(initializer = ?lowest, "waiting for the lowest-id peer to initialize the cluster");
            return;
        }
        let mut last_reason = String::new();
        loop {
            if self.is_initialized().await {
                return;
            }
            match self.probe_all().await {
                Ok(members) => {
                    self.initialize(members).await;
                    return;
                }
                Err(Stop::Never(reason)) => {
                    tracing::warn!(
                        "{reason}; this node will not initialize a cluster and waits to be added"
                    );
                    return;
                }
                Err(Stop::NotYet(reason)) => {
                    if reason != last_reason {
                        tracing::info!("not initializing yet: {reason}");
                        last_reason = reason;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }

    async fn is_initialized(&self) -> bool {
        self.identity.get().is_some() || self.raft.is_initialized().await.unwrap_or(true)
    }

    fn report_peer_mismatch(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        let in_log: BTreeMap<u64, String> = metrics
            .membership_config
            .nodes()
            .map(|(id, m)| (*id, m.addr.clone()))
            .collect();
        let flags: BTreeMap<u64, String> = self
            .peers
            .iter()
            .map(|(id, a)| (*id, a.to_string()))
            .collect();
        if !flags.is_empty() && in_log != flags {
            tracing::warn!(?in_log, ?flags, "--peers differs from the log's membership; the log rules (use `raftinel ctl members` to change it)");
        }
    }

    async fn probe_all(&self) -> Result<BTreeMap<u64, Member>, Stop> {
        let mut members = BTreeMap::new();
        members.insert(
            self.node_id,
            Member {
                addr: self
                    .peers
                    .get(&self.node_id)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                sentinel_addr: self.sentinel_addr.clone(),
                incarnation: self.identity.incarnation(),
            },
        );
        for (&id, addr) in self.peers.iter().filter(|(id, _)| **id != self.node_id) {
            let reply = self
                .probe(addr)
                .await
                .map_err(|e| Stop::NotYet(format!("peer {id} at {addr}: {e}")))?;
            match judge(id, &self.peers, &reply) {
                PeerVerdict::Ready => {}
                PeerVerdict::Initialized { cluster_id } => {
                    return Err(Stop::Never(format!(
                        "peer {id} at {addr} already belongs to cluster {cluster_id}"
                    )))
                }
                PeerVerdict::Mismatch(why) => return Err(Stop::NotYet(why)),
            }
            members.insert(
                id,
                Member {
                    addr: addr.to_string(),
                    sentinel_addr: reply.sentinel_addr,
                    incarnation: reply.incarnation,
                },
            );
        }
        Ok(members)
    }

    async fn probe(&self, addr: &SocketAddr) -> Result<NodeInfoReply, String> {
        let channel = self
            .dialer
            .channel(&addr.to_string())
            .map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(NodeInfoRequest {});
        req.set_timeout(PROBE_TIMEOUT);
        self.identity.stamp(req.metadata_mut());
        let mut client = RaftInternalClient::new(channel);
        let call = client.node_info(req);
        match tokio::time::timeout(PROBE_TIMEOUT, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(status.message().to_string()),
            Err(_) => Err("no answer".to_string()),
        }
    }

    async fn initialize(&self, members: BTreeMap<u64, Member>) {
        let cluster_id = self
            .identity
            .get()
            .unwrap_or_else(ClusterIdentity::generate);
        if let Err(e) = self.identity.adopt(&cluster_id).await {
            tracing::error!(error = %e, "cannot store the cluster id; not initializing");
            return;
        }
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!(%cluster_id, "initialized a new cluster"),
            Err(e) => tracing::info!(error = %e, "initialize refused (already initialized)"),
        }
    }
}

enum Stop {
    NotYet(String),
    Never(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Peer;

    fn peers() -> BTreeMap<u64, SocketAddr> {
        [(1, "127.0.0.1:1"), (2, "127.0.0.1:2")]
            .into_iter()
            .map(|(i, a)| (i, a.parse().unwrap()))
            .collect()
    }

    fn reply(
        node_id: u64,
        initialized: bool,
        cluster_id: &str,
        peers: &[(u64, &str)],
    ) -> NodeInfoReply {
        NodeInfoReply {
            node_id,
            initialized,
            cluster_id: cluster_id.into(),
            peers: peers
                .iter()
                .map(|(id, a)| Peer {
                    id: *id,
                    addr: a.to_string(),
                })
                .collect(),
            sentinel_addr: String::new(),
            incarnation: 7,
        }
    }

    #[test]
    fn ready_only_when_uninitialized_with_same_map() {
        let p = peers();
        let same = [(1, "127.0.0.1:1"), (2, "127.0.0.1:2")];
        assert_eq!(
            judge(2, &p, &reply(2, false, "", &same)),
            PeerVerdict::Ready
        );
        // Invariant 10: a peer already in a cluster means we never start another one.
        assert!(matches!(
            judge(2, &p, &reply(2, true, "abc", &same)),
            PeerVerdict::Initialized { .. }
        ));
        assert!(matches!(
            judge(2, &p, &reply(2, false, "abc", &same)),
            PeerVerdict::Initialized { .. }
        ));
        assert!(matches!(
            judge(2, &p, &reply(3, false, "", &same)),
            PeerVerdict::Mismatch(_)
        ));
        assert!(matches!(
            judge(
                2,
                &p,
                &reply(2, false, "", &[(1, "127.0.0.1:1"), (2, "127.0.0.1:9")])
            ),
            PeerVerdict::Mismatch(_)
        ));
    }
}
