//! What a nemesis run recorded, as plain data the checker reads: every acknowledged write with
//! the instance that took it, every promotion the log announced, the VIP's holders every 10 ms,
//! every node's config epoch over time, when each fault went in and out, and at the end the data
//! the final master holds and every node's Raft log. Times are microseconds since the run began.

use std::collections::BTreeMap;

/// Which client wrote: one finds the master through the Sentinel port, one writes to the VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    Sentinel,
    Vip,
}

impl Path {
    /// The Redis list the writer appends to.
    pub fn key(self) -> &'static str {
        match self {
            Path::Sentinel => "nemesis:sentinel",
            Path::Vip => "nemesis:vip",
        }
    }
}

/// An acknowledged RPUSH of `value` (unique and increasing per path) by the Redis on `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub path: Path,
    pub value: u64,
    pub host: String,
    pub sent_us: u64,
    pub acked_us: u64,
}

/// `+switch-master` to the Redis on `to`, for `epoch`, as the log announced it (received by the
/// harness at `at_us`, after the promotion itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub at_us: u64,
    pub index: u64,
    pub epoch: u64,
    pub to: String,
}

/// Which of the hosts carried the VIP at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSample {
    pub at_us: u64,
    pub holders: Vec<String>,
}

/// A node's config epoch for the master, read from its Sentinel port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochSample {
    pub at_us: u64,
    pub node: u64,
    pub epoch: u64,
}

/// A fault injected at `from_us` and undone at `to_us` (the end of the run if never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub step: usize,
    pub kind: &'static str,
    /// The hosts it acts on (a single link: both ends).
    pub hosts: Vec<String>,
    /// The fault can cut any master off from its replicas or its majority (a host's partition,
    /// loss, or a daemon's kill or pause anywhere), not only a master on `hosts`.
    pub cuts_all: bool,
    /// A SIGSTOP of the host's raftinel: the one residual gap (DESIGN invariant 5) is open.
    pub frozen_raftinel: bool,
    pub from_us: u64,
    pub to_us: u64,
}

/// One node's Raft log as it was on disk after the run: committed index, what was purged, and
/// every entry kept as (term, encoded bytes).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeLog {
    pub node: u64,
    pub committed: u64,
    pub purged: u64,
    pub entries: BTreeMap<u64, (u64, Vec<u8>)>,
}

/// How the run ended, after every fault was healed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ending {
    /// When the last heal was done.
    pub healed_us: u64,
    /// The first time after it that exactly one instance took writes, if it came.
    pub one_writable_us: Option<u64>,
    /// The final master's host.
    pub master: Option<String>,
    /// What did not converge, if anything: each line one disagreement.
    pub unconverged: Vec<String>,
    /// The final master's copy of each writer's list.
    pub data: BTreeMap<Path, Vec<u64>>,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    /// The master's host when the run began (epoch of the first promotion's predecessor).
    pub first_master: String,
    pub acks: Vec<Ack>,
    /// Attempts that got no acknowledgement (errors and timeouts), for the summary.
    pub failed_writes: u64,
    pub promotions: Vec<Promotion>,
    pub vip: Vec<VipSample>,
    pub epochs: Vec<EpochSample>,
    pub faults: Vec<Window>,
    pub logs: Vec<NodeLog>,
    pub ending: Ending,
}
