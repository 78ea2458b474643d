//! The replicated topology: masters, replicas, epochs, the failover in progress and lease grants,
//! and the Raft log `Command`s that change them. Pure and deterministic: no I/O, no clock.

pub mod command;
pub mod event;
pub mod failover;
pub mod lease;
pub mod master;
pub mod refusal;
pub mod state;

#[cfg(test)]
mod tests;

pub use command::Command;
pub use event::TopologyEvent;
pub use failover::{FailoverOutcome, FailoverRecord, FailoverState, Revoked};
pub use lease::{LeaseGrant, Superseded};
pub use master::{
    check_name, has_control, interface_name, parse_option, Addr, FailoverRequest, MasterOption,
    MasterRecord, MinReplicas, NameRule, Odown, Reconf, ReplicaRecord, RequestKind, Secret, Vip,
};
pub use refusal::{Refusal, RefusalKind};
pub use state::{check_quorum, Applied, ApplyContext, Outcome, TopologyState};
