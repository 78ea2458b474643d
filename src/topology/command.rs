//! The commands of the Raft log: every change to the topology is one of these, applied by
//! `TopologyState::apply`. Plain data, no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::master::{Addr, Reconf, ReplicaRecord, RequestKind, Secret};

/// One log entry's payload. Times (`at_ms`) are the proposing leader's wall clock, carried in the
/// entry so that applying stays deterministic.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub enum Command {
    /// SENTINEL MONITOR.
    Monitor {
        name: String,
        addr: Addr,
        quorum: u32,
        down_after_ms: u64,
    },
    /// SENTINEL REMOVE.
    Remove { name: String },
    /// SENTINEL SET, all-or-nothing (unlike Sentinel, which keeps options applied before an error).
    Set {
        name: String,
        options: Vec<(String, String)>,
    },
    /// The replica set the leader sees for a master; replaces the known set.
    ReplicasDiscovered {
        name: String,
        replicas: Vec<ReplicaRecord>,
    },
    /// Which node's host runs the master (matched by run id), so a failover revokes that node's
    /// grant; `None` when no raftinel node is co-located (`fencing: none`).
    HolderAssigned { name: String, holder: Option<u64> },
    /// Whether `node` can carry the master's VIP: `problem` says why not, `None` that it can.
    VipReadiness {
        name: String,
        node: u64,
        problem: Option<String>,
    },
    /// Takes `epoch` for a failover to `candidate` (invariant 1: committed before any promotion).
    FailoverStarted {
        name: String,
        epoch: u64,
        candidate: Addr,
        candidate_holder: Option<u64>,
        reason: String,
        at_ms: u64,
    },
    /// The candidate reports role master; records its replication id (invariant 7).
    MasterSwitched {
        name: String,
        epoch: u64,
        replid: String,
        at_ms: u64,
    },
    /// The replicas are repointed at the new master.
    FailoverEnded {
        name: String,
        epoch: u64,
        at_ms: u64,
    },
    /// The failover gave up before promotion.
    FailoverAborted {
        name: String,
        epoch: u64,
        reason: String,
        at_ms: u64,
    },
    /// Maintenance on: keep observing, never act.
    Pause { name: String },
    /// Maintenance off.
    Resume { name: String },
    /// An operator asks for a failover or switchover; the leader carries it out.
    RequestFailover {
        name: String,
        kind: RequestKind,
        at_ms: u64,
    },
    /// The leader found `addr` ahead of the log; nothing is folded in until `Resolve`.
    ConflictDetected {
        name: String,
        addr: Addr,
        detail: String,
    },
    /// The operator's answer to a conflict: which instance's data to keep.
    Resolve {
        name: String,
        keep: Addr,
        at_ms: u64,
    },
    /// Grants `holder` a lease whose id is this entry's log index.
    LeaseGranted { holder: u64 },
    /// The holder hands back grant `id` (after fencing itself).
    LeaseReleased { id: u64 },
    /// SENTINEL RESET: forget the listed masters' known replicas (the monitor finds the live
    /// ones again at its next INFO). Appended last: the log's encoding numbers variants.
    Reset { names: Vec<String> },
    /// `raftinel ctl reset-failover-delay`: the attempts so far delay no automatic failover
    /// (Sentinel's retry delay and `min-failover-interval`). Appended last, like `Reset`.
    ResetFailoverDelay { name: String },
    /// A grant a membership change superseded is dead at a majority of the voters it was granted
    /// under: failovers and VIP moves stop waiting for it. Appended last, like `Reset`.
    LeaseSettled { id: u64 },
    /// Several failover steps, for different masters, committed as one entry (group commit,
    /// `raft::group_commit`): each is applied on its own, as if it had an entry of its own at
    /// this index. Only [`Command::batchable`] commands may be in it. Appended last, like `Reset`.
    Batch(Vec<Command>),
    /// The leader's ODOWN verdict on the master at `addr` flipped (Sentinel's `+odown` /
    /// `-odown`, now on every node). Appended last, like `Reset`.
    Odown {
        name: String,
        addr: Addr,
        down: bool,
        votes: u32,
        quorum: u32,
        at_ms: u64,
    },
    /// A replica advanced in following the new master of the failover at `epoch` (Sentinel's
    /// `+slave-reconf-*`, now on every node). Appended last, like `Reset`.
    ReplicaReconf {
        name: String,
        epoch: u64,
        replica: Addr,
        stage: Reconf,
    },
}

/// At most this many commands in one batch entry: applying one stays a bounded piece of work.
pub const MAX_BATCH: usize = 256;

impl Command {
    /// Whether the command may share an entry with others: its effect does not depend on having
    /// the entry's index to itself (a lease grant's id is its index) and it is not a batch.
    pub fn batchable(&self) -> bool {
        matches!(
            self,
            Command::FailoverStarted { .. }
                | Command::MasterSwitched { .. }
                | Command::FailoverEnded { .. }
                | Command::FailoverAborted { .. }
                | Command::ReplicasDiscovered { .. }
                | Command::ConflictDetected { .. }
                | Command::VipReadiness { .. }
                | Command::Odown { .. }
                | Command::ReplicaReconf { .. }
        )
    }
}

/// SET options for `Debug`, with auth-pass values redacted like Sentinel's `+set` event.
struct RedactedOptions<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (option, value) in self.0 {
            if option.eq_ignore_ascii_case("auth-pass") {
                list.entry(&(option, Secret::new(value.as_str())));
            } else {
                list.entry(&(option, value));
            }
        }
        list.finish()
    }
}

impl fmt::Debug for Command {
    /// Written by hand only so that a SET auth-pass value never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Monitor {
                name,
                addr,
                quorum,
                down_after_ms,
            } => f
                .debug_struct("Monitor")
                .field("name", name)
                .field("addr", addr)
                .field("quorum", quorum)
                .field("down_after_ms", down_after_ms)
                .finish(),
            Command::Remove { name } => f.debug_struct("Remove").field("name", name).finish(),
            Command::Set { name, options } => f
                .debug_struct("Set")
                .field("name", name)
                .field("options", &RedactedOptions(options))
                .finish(),
            Command::ReplicasDiscovered { name, replicas } => f
                .debug_struct("ReplicasDiscovered")
                .field("name", name)
                .field("replicas", replicas)
                .finish(),
            Command::HolderAssigned { name, holder } => f
                .debug_struct("HolderAssigned")
                .field("name", name)
                .field("holder", holder)
                .finish(),
            Command::VipReadiness {
                name,
                node,
                problem,
            } => f
                .debug_struct("VipReadiness")
                .field("name", name)
                .field("node", node)
                .field("problem", problem)
                .finish(),
            Command::FailoverStarted {
                name,
                epoch,
                candidate,
                candidate_holder,
                reason,
                at_ms,
            } => f
                .debug_struct("FailoverStarted")
                .field("name", name)
                .field("epoch", epoch)
                .field("candidate", candidate)
                .field("candidate_holder", candidate_holder)
                .field("reason", reason)
                .field("at_ms", at_ms)
                .finish(),
            Command::MasterSwitched {
                name,
                epoch,
                replid,
                at_ms,
            } => f
                .debug_struct("MasterSwitched")
                .field("name", name)
                .field("epoch", epoch)
                .field("replid", replid)
                .field("at_ms", at_ms)
                .finish(),
            Command::FailoverEnded { name, epoch, at_ms } => f
                .debug_struct("FailoverEnded")
                .field("name", name)
                .field("epoch", epoch)
                .field("at_ms", at_ms)
                .finish(),
            Command::FailoverAborted {
                name,
                epoch,
                reason,
                at_ms,
            } => f
                .debug_struct("FailoverAborted")
                .field("name", name)
                .field("epoch", epoch)
                .field("reason", reason)
                .field("at_ms", at_ms)
                .finish(),
            Command::Pause { name } => f.debug_struct("Pause").field("name", name).finish(),
            Command::Resume { name } => f.debug_struct("Resume").field("name", name).finish(),
            Command::RequestFailover { name, kind, at_ms } => f
                .debug_struct("RequestFailover")
                .field("name", name)
                .field("kind", kind)
                .field("at_ms", at_ms)
                .finish(),
            Command::ConflictDetected { name, addr, detail } => f
                .debug_struct("ConflictDetected")
                .field("name", name)
                .field("addr", addr)
                .field("detail", detail)
                .finish(),
            Command::Resolve { name, keep, at_ms } => f
                .debug_struct("Resolve")
                .field("name", name)
                .field("keep", keep)
                .field("at_ms", at_ms)
                .finish(),
            Command::LeaseGranted { holder } => f
                .debug_struct("LeaseGranted")
                .field("holder", holder)
                .finish(),
            Command::LeaseReleased { id } => {
                f.debug_struct("LeaseReleased").field("id", id).finish()
            }
            Command::Reset { names } => f.debug_struct("Reset").field("names", names).finish(),
            Command::ResetFailoverDelay { name } => f
                .debug_struct("ResetFailoverDelay")
                .field("name", name)
                .finish(),
            Command::LeaseSettled { id } => f.debug_struct("LeaseSettled").field("id", id).finish(),
            Command::Batch(cmds) => f.debug_tuple("Batch").field(cmds).finish(),
            Command::Odown {
                name,
                addr,
                down,
                votes,
                quorum,
                at_ms,
            } => f
                .debug_struct("Odown")
                .field("name", name)
                .field("addr", addr)
                .field("down", down)
                .field("votes", votes)
                .field("quorum", quorum)
                .field("at_ms", at_ms)
                .finish(),
            Command::ReplicaReconf {
                name,
                epoch,
                replica,
                stage,
            } => f
                .debug_struct("ReplicaReconf")
                .field("name", name)
                .field("epoch", epoch)
                .field("replica", replica)
                .field("stage", stage)
                .finish(),
        }
    }
}
