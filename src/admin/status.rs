//! Every mapping from raftinel and openraft errors to gRPC status codes, in one place.

use tonic::Status;

use openraft::error::ChangeMembershipError;

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
        // A change still committing is transient. openraft checks it before leadership, so a
        // follower (or a removed node that never learned of its removal) answers it too: ctl
        // must go on to the next node rather than stop there.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => Status::unavailable(format!("{p}; retry once it commits")),
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

#[cfg(test)]
mod tests {
    use openraft::error::{ChangeMembershipError, EmptyMembership, InProgress};
    use openraft::LogId;
    use tonic::Code;

    use super::*;

    fn membership(e: ChangeMembershipError<u64>) -> Status {
        write_error(&RaftError::APIError(
            ClientWriteError::ChangeMembershipError(e),
        ))
    }

    #[test]
    fn a_change_in_progress_is_worth_asking_another_node() {
        let s = membership(ChangeMembershipError::InProgress(InProgress {
            committed: None,
            membership_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 9)),
        }));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(
            s.message().contains("retry once it commits"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn a_change_that_cannot_be_made_is_a_precondition() {
        let s = membership(ChangeMembershipError::EmptyMembership(EmptyMembership {}));
        assert_eq!(s.code(), Code::FailedPrecondition);
    }
}
