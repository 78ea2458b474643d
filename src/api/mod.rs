//! The gRPC topology/admin API (`proto/raftinel.proto`, service `Topology`): reads from applied
//! state (linearizable through the leader by default), writes through Raft, and forwarding of
//! whatever needs the leader, so any node accepts any call.

mod convert;
mod service;
mod watch;

pub use service::Api;
pub use watch::MAX_WATCHES;
