//! Every mapping from raftinel and openraft errors to gRPC status codes, in one place.

use tonic::Status;

use crate::raft::types::typ::{CheckIsLeaderError, ClientWriteError, RaftError};
use crate::topology::{Refusal, RefusalKind};

pub fn refusal(r: &Refusal) -> Status {
    let msg = r.to_string();
    match r.code() {
        RefusalKind::AlreadyExists => Status::already_exists(msg),
        RefusalKind::NotFound => Status::not_found(msg),
        RefusalKind::InvalidArgument => Status::invalid_argument(msg),
        RefusalKind::FailedPrecondition => Status::failed_precondition(msg),
    }
}

pub fn read_error(e: &RaftError<CheckIsLeaderError>) -> Status {
    match e {
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            Status::unavailable(format!("no quorum confirmed this read: {q}"))
        }
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)) => {
            Status::unavailable("leadership moved during the read; retry")
        }
        RaftError::Fatal(f) => Status::unavailable(format!("raft stopped on this node: {f}")),
    }
}

pub fn write_error(e: &RaftError<ClientWriteError>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            Status::unavailable("leadership moved during the write; retry")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Status::failed_precondition(c.to_string())
        }
        RaftError::Fatal(f) => Status::unavailable(format!("raft stopped on this node: {f}")),
    }
}

pub fn timed_out(what: &str) -> Status {
    Status::unavailable(format!(
        "no quorum: the {what} was not confirmed by a majority in time (a write may still commit later)"
    ))
}
