//! openraft type configuration for raftinel: the log carries topology `Command`s, members carry
//! both the gRPC and the Sentinel address of each node, and the `typ` aliases keep signatures short.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::topology::{Command, Outcome, Refusal};

/// What the state machine answers for one applied entry. A refusal is a value every replica
/// computes identically, not an error of the Raft layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub result: Result<Outcome, Refusal>,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            result: Ok(Outcome::Done),
        }
    }
}

/// A member as recorded in the log's membership: SENTINEL SENTINELS lists the Sentinel
/// addresses of the other nodes, so both addresses live here, and which incarnation of the node
/// the id stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// gRPC address (Raft RPCs and the topology API), HOST:PORT.
    pub addr: String,
    /// Sentinel-compatible RESP address, HOST:PORT.
    pub sentinel_addr: String,
    /// The node's incarnation (`raft::incarnation`): made with its data dir, checked on every
    /// node-to-node call. 0: unknown (recorded before format version 6), not checked.
    pub incarnation: u64,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sentinel {})", self.addr, self.sentinel_addr)
    }
}

pub type NodeId = u64;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// Short names for openraft's generic types instantiated with [`TypeConfig`].
pub mod typ {
    use super::{Member, NodeId, TypeConfig};

    pub type Entry = openraft::Entry<TypeConfig>;
    pub type LogId = openraft::LogId<NodeId>;
    pub type Vote = openraft::Vote<NodeId>;
    pub type StorageError = openraft::StorageError<NodeId>;
    pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
    pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
    pub type RpcError<E = openraft::error::Infallible> =
        openraft::error::RPCError<NodeId, Member, RaftError<E>>;
    pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, Member>;
    pub type CheckIsLeaderError = openraft::error::CheckIsLeaderError<NodeId, Member>;
    pub type ForwardToLeader = openraft::error::ForwardToLeader<NodeId, Member>;
    pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;
    /// Vote, role, leader and membership only: sent when one of them changes, where RaftMetrics
    /// is sent at every turn of the Raft core (every heartbeat and ack). What waits for a leader
    /// change watches this.
    pub type ServerMetrics = openraft::metrics::RaftServerMetrics<NodeId, Member>;
}
