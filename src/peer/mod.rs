//! The node-to-node gRPC service (`RaftInternal`): openraft's RPCs, lease promises and "dead"
//! answers, observation reports and the bootstrap probe. Every call but the probe is admitted
//! only from a current member's node identity (invariant 11), and the sender of a report or a
//! promise request is that identity, never a field of the body.

mod service;

pub use service::RaftService;
