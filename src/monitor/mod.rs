//! Probing of every monitored Redis instance from this node (PING, INFO replication), turning
//! replies into `Observation`s: SDOWN from a timer, TILT when this node's own scheduling lags.

pub mod observation;

pub use observation::{NodeReport, Observation, ReplicaLink, ReportedRole};
