//! Leader-run failover: ODOWN from the nodes' reports, the candidate choice, the failover steps,
//! and resuming a predecessor's failover.

pub mod candidate;
pub mod decide;
pub mod exec;
pub mod holders;
pub mod next;
pub mod odown;
pub mod quorum;
pub mod redis_ops;
pub mod reports;

pub mod run;
#[cfg(test)]
mod tests;
