//! Why a command was refused: a value every replica computes the same way, with Redis Sentinel's
//! exact error text where Sentinel has one. No I/O.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::master::NameRule;

/// A refused command. `Display` is the RESP error line without its leading '-'.
#[derive(Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    #[error("ERR Duplicate master name.")]
    DuplicateMaster,
    #[error("ERR {addr} is not a known replica of this master")]
    NotAReplica { addr: String },
    #[error("ERR no topology conflict is waiting for this master")]
    NoConflict,
    #[error("ERR keep must be the current master {master} or the conflicting instance {conflict}")]
    BadKeep { master: String, conflict: String },
    #[error("ERR No such master with that name")]
    NoSuchMaster,
    #[error("ERR Quorum must be 1 or greater.")]
    QuorumTooSmall,
    /// raftinel-specific: ODOWN must be agreed by a majority of the voters.
    #[error(
        "ERR quorum {quorum} is less than a majority of the {voters} voters (at least {})",
        .voters / 2 + 1
    )]
    QuorumNotMajority { quorum: u32, voters: usize },
    /// raftinel-specific: a quorum no membership can reach would block every failover.
    #[error("ERR quorum {quorum} is more than the {voters} voters")]
    QuorumAboveVoters { quorum: u32, voters: usize },
    #[error("ERR Invalid port number.")]
    InvalidPort,
    #[error("ERR Unknown option or number of arguments for SENTINEL SET '{option}'")]
    UnknownOption { option: String },
    #[error("ERR Invalid argument '{value}' for SENTINEL SET '{option}'")]
    InvalidOptionValue { option: String, value: String },
    #[error("INPROG Failover already in progress")]
    FailoverInProgress,
    #[error("ERR No failover in progress for '{name}'")]
    NoFailoverInProgress { name: String },
    #[error("ERR epoch {epoch} is not the failover in progress (epoch {in_progress})")]
    EpochMismatch { epoch: u64, in_progress: u64 },
    #[error("ERR epoch {epoch} is not above the current epoch {current}")]
    StaleEpoch { epoch: u64, current: u64 },
    #[error("ERR failover of epoch {epoch} has promoted its candidate and cannot be aborted")]
    CannotAbortPromoted { epoch: u64 },
    #[error("ERR failover of epoch {epoch} has already promoted its candidate")]
    AlreadyPromoted { epoch: u64 },
    #[error("ERR failover of epoch {epoch} has not promoted its candidate yet")]
    NotPromoted { epoch: u64 },
    #[error("ERR candidate {candidate} is already the master")]
    CandidateIsMaster { candidate: String },
    #[error("ERR no current lease grant with id {id}")]
    NoSuchLease { id: u64 },
    #[error("ERR master name must not be empty")]
    EmptyName,
    /// redis #14970's wording for control characters ("… must not contain control
    /// characters"); raftinel's own rules in the same form.
    #[error("ERR master name {rule}")]
    InvalidName { rule: NameRule },
    /// redis #14970 / valkey #3847: SET values are single-line text. The value is not echoed.
    #[error("ERR Invalid argument for SENTINEL SET '{option}': the value must not contain control characters")]
    ControlCharacters { option: String },
    /// Sentinel's reply for a MONITOR host that is not an IP address or an accepted hostname
    /// (`apply` checks the form again).
    #[error("ERR Invalid IP address or hostname specified")]
    InvalidHost,
    /// raftinel's own (Sentinel has no such check): one Redis under two names would leave the
    /// other name naming a deposed master after a failover of the first. Appended last: the
    /// encoding numbers variants.
    #[error("ERR {addr} is already monitored as '{name}'")]
    AlreadyMonitored { addr: String, name: String },
    /// A batch entry holding a command that must have an entry of its own, or more than
    /// `MAX_BATCH` commands. Only a faulty or hostile leader writes one; appended last.
    #[error("ERR a batch entry holds a command that cannot be batched, or too many")]
    NotBatchable,
    /// An ODOWN verdict about an instance the log no longer names as the master (a switch came
    /// first). Appended last.
    #[error("ERR {addr} is no longer the master")]
    NotTheMaster { addr: String },
}

/// How an API layer should classify a refusal (maps onto gRPC status codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    AlreadyExists,
    NotFound,
    InvalidArgument,
    FailedPrecondition,
}

impl Refusal {
    pub fn code(&self) -> RefusalKind {
        match self {
            Refusal::DuplicateMaster | Refusal::AlreadyMonitored { .. } => {
                RefusalKind::AlreadyExists
            }
            Refusal::NoSuchMaster | Refusal::NoSuchLease { .. } => RefusalKind::NotFound,
            Refusal::QuorumTooSmall
            | Refusal::QuorumNotMajority { .. }
            | Refusal::QuorumAboveVoters { .. }
            | Refusal::InvalidPort
            | Refusal::UnknownOption { .. }
            | Refusal::InvalidOptionValue { .. }
            | Refusal::CandidateIsMaster { .. }
            | Refusal::NotAReplica { .. }
            | Refusal::BadKeep { .. }
            | Refusal::EmptyName
            | Refusal::InvalidName { .. }
            | Refusal::ControlCharacters { .. }
            | Refusal::InvalidHost
            | Refusal::NotBatchable => RefusalKind::InvalidArgument,
            // These depend on the state, not on the request: retrying later may succeed.
            Refusal::FailoverInProgress
            | Refusal::NoFailoverInProgress { .. }
            | Refusal::EpochMismatch { .. }
            | Refusal::StaleEpoch { .. }
            | Refusal::CannotAbortPromoted { .. }
            | Refusal::AlreadyPromoted { .. }
            | Refusal::NotPromoted { .. }
            | Refusal::NotTheMaster { .. }
            | Refusal::NoConflict => RefusalKind::FailedPrecondition,
        }
    }
}
