//! Invariant 9: a node answers Sentinel clients only while it is *fresh* — it hears the current
//! leader within election-timeout-max (or leads with a quorum's recent acknowledgement) and has
//! applied what that leader had committed one contact earlier. The Raft service stamps every
//! contact from a leader here; `fresh` is the pure decision.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// The last two AppendEntries / InstallSnapshot calls from a leader that this node accepted.
#[derive(Clone, Default)]
pub struct LeaderContact {
    inner: Arc<Mutex<Contacts>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    /// When the latest accepted call arrived.
    pub last: Option<Instant>,
    /// The leader's commit index in the latest call.
    pub last_commit: u64,
    /// The leader's commit index in the call before it: applied at least this far means at most
    /// one replication round behind.
    pub prev_commit: Option<u64>,
}

impl LeaderContact {
    /// Records a call from the leader carrying its commit index.
    pub fn heard(&self, leader_commit: u64) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.prev_commit = Some(if c.last.is_some() {
            c.last_commit
        } else {
            leader_commit
        });
        c.last = Some(Instant::now());
        c.last_commit = leader_commit;
    }

    pub fn get(&self) -> Contacts {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the decision reads, as plain values.
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    /// `Some(ms since a quorum acknowledged this leader)` when this node is the leader.
    pub leader_quorum_ack_ms: Option<u64>,
    /// ms since the last accepted call from a leader; `None` if never.
    pub contact_age_ms: Option<u64>,
    /// The commit index this node must have applied (see [`Contacts::prev_commit`]).
    pub need_applied: u64,
    pub applied: u64,
    pub election_max_ms: u64,
}

pub fn fresh(i: &Inputs) -> bool {
    if let Some(ack) = i.leader_quorum_ack_ms {
        return ack <= i.election_max_ms;
    }
    matches!(i.contact_age_ms, Some(age) if age <= i.election_max_ms) && i.applied >= i.need_applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower(age: Option<u64>, need: u64, applied: u64) -> Inputs {
        Inputs {
            leader_quorum_ack_ms: None,
            contact_age_ms: age,
            need_applied: need,
            applied,
            election_max_ms: 600,
        }
    }

    #[test]
    fn a_follower_is_fresh_while_it_hears_the_leader_and_keeps_up() {
        assert!(fresh(&follower(Some(100), 10, 10)));
        assert!(fresh(&follower(Some(600), 10, 12)));
        assert!(
            !fresh(&follower(Some(601), 10, 10)),
            "leader silent too long"
        );
        assert!(!fresh(&follower(None, 0, 0)), "never heard a leader");
        assert!(!fresh(&follower(Some(10), 50, 49)), "catching up");
    }

    #[test]
    fn a_leader_is_fresh_only_with_a_recent_quorum() {
        let leader = |ack| Inputs {
            leader_quorum_ack_ms: Some(ack),
            ..follower(None, 0, 0)
        };
        assert!(fresh(&leader(50)));
        assert!(!fresh(&leader(601)), "a leader cut off from its quorum");
    }

    #[test]
    fn the_catch_up_target_is_one_contact_behind() {
        let c = LeaderContact::default();
        c.heard(5);
        assert_eq!(
            c.get().prev_commit,
            Some(5),
            "first contact: catch up to it"
        );
        c.heard(9);
        let got = c.get();
        assert_eq!((got.prev_commit, got.last_commit), (Some(5), 9));
        assert!(got.last.is_some());
    }
}
