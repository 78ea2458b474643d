//! Leader-run failover: ODOWN from the nodes' reports, the candidate choice, the failover steps,
//! and resuming a predecessor's failover.
//!
//! Decisions are pure and return the step as data: [`next`] (an operator's request, else
//! [`decide`], else discovered replicas), with [`odown`], [`candidate`], [`holders`] and
//! [`quorum`] beneath. [`exec`] carries out the role changes over two ports (the log, the Redis
//! instances), which fakes test (DESIGN invariants 1 and 2); [`run`] is the leader's loop that
//! gathers the inputs and supplies the real ports; [`reports`] moves observations to the leader.

pub mod candidate;
pub mod decide;
pub mod delta;
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
