//! Leases (PaxosLease, DESIGN invariant 4) and the fence they guard (invariant 5). Grants are log
//! entries (`topology::lease`); promises come from a majority of nodes over gRPC, each on its own
//! monotonic clock, never through the Raft leader, so a Raft election never fences a healthy
//! master. `promises` and `holding` are the pure rules; `renew` runs them over the network,
//! `fence` applies the verdict to the Redis instances on this host and `vip` to its addresses
//! (`netlink`, `garp`; `vip_ready` says whether this node can carry a VIP, `vip_allow` whether its
//! config lets it); `watchdog` reports each guard round to systemd and the watchdog device;
//! `model` checks the protocol exhaustively.

pub mod fence;
pub mod garp;
pub mod holding;
pub mod local;
pub mod netlink;
pub mod promiser;
pub mod promises;
pub mod renew;
pub mod vip;
pub mod vip_allow;
pub mod vip_ready;
pub mod watchdog;

#[cfg(test)]
mod model;
