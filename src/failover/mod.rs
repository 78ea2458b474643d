//! Leader-run failover: ODOWN from the nodes' reports, the candidate choice, the failover steps,
//! and resuming a predecessor's failover.

pub mod reports;
pub mod redis_ops;
