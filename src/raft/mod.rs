//! Raft for raftinel: openraft's type configuration, the sled log store and state machine, the
//! gRPC transport client, cluster identity and first-boot initialization. The transport's server
//! side lives in `peer`, above this module, because it also serves leases and reports.

// openraft's StorageError is large by design; boxing it at every storage call buys nothing.
#![allow(clippy::result_large_err)]

pub mod bootstrap;
pub mod codec;
pub mod crashpoint;
mod format_v3;
mod format_v4;
mod format_v5;
mod format_v6;
pub mod freshness;
pub mod group_commit;
pub mod identity;
pub mod incarnation;
pub mod install_gate;
pub mod log_store;
pub mod network;
pub mod read_lease;
mod sm_layout;
pub mod state_machine;
pub mod types;

pub use identity::ClusterIdentity;
pub use install_gate::InstallGate;
pub use log_store::LogStore;
pub use state_machine::{EventLog, SmData, StateMachineStore};
pub use types::{Member, NodeId, Raft, Response, TypeConfig};
