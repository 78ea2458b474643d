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

/// The strict rule, without memory: hears the leader and is at most one round behind.
pub fn fresh(i: &Inputs) -> bool {
    if let Some(ack) = i.leader_quorum_ack_ms {
        return ack <= i.election_max_ms;
    }
    hears(i) && i.applied >= i.need_applied
}

fn hears(i: &Inputs) -> bool {
    matches!(i.contact_age_ms, Some(age) if age <= i.election_max_ms)
}

/// The rule with hysteresis. Not hearing the leader (invariant 9's cut-off node) closes at once;
/// a follower that hears it but is more than one round behind stays open until it has been behind
/// for a whole election_timeout_max: under load, applying trails the leader by an entry now and
/// then, and closing the port for that drops every client and subscriber for nothing. Reopening
/// always needs the strict rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hysteresis {
    open: bool,
    /// When the node was first seen behind while hearing the leader, in the caller's ms clock.
    behind_since_ms: Option<u64>,
}

impl Hysteresis {
    pub fn update(&mut self, i: &Inputs, now_ms: u64) -> bool {
        let strict = fresh(i);
        let behind = i.leader_quorum_ack_ms.is_none() && hears(i) && !strict;
        self.behind_since_ms = if behind {
            Some(self.behind_since_ms.unwrap_or(now_ms))
        } else {
            None
        };
        let grace = self
            .behind_since_ms
            .is_some_and(|t| now_ms.saturating_sub(t) <= i.election_max_ms);
        self.open = strict || (self.open && grace);
        self.open
    }
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
    fn a_follower_briefly_behind_stays_open_but_one_that_cannot_hear_closes_at_once() {
        let mut h = Hysteresis::default();
        assert!(
            !h.update(&follower(Some(10), 10, 9), 0),
            "never opened: strict"
        );
        assert!(h.update(&follower(Some(10), 10, 10), 10));
        assert!(
            h.update(&follower(Some(10), 12, 11), 20),
            "one entry behind"
        );
        assert!(
            h.update(&follower(Some(10), 13, 11), 620),
            "behind for 600 ms"
        );
        assert!(
            !h.update(&follower(Some(10), 14, 12), 621),
            "behind too long"
        );
        assert!(
            !h.update(&follower(Some(10), 14, 13), 630),
            "reopens only caught up"
        );
        assert!(h.update(&follower(Some(10), 14, 14), 640));
        assert!(
            !h.update(&follower(Some(601), 14, 14), 650),
            "cannot hear: at once"
        );
        assert!(h.update(&follower(Some(10), 14, 14), 660));
        assert!(h.update(&follower(Some(10), 15, 14), 670));
        assert!(
            h.update(&follower(Some(10), 15, 15), 680),
            "caught up: grace restarts"
        );
        assert!(h.update(&follower(Some(10), 16, 15), 1200));
    }

    #[test]
    fn a_leader_gets_no_grace() {
        let mut h = Hysteresis::default();
        let leader = |ack| Inputs {
            leader_quorum_ack_ms: Some(ack),
            ..follower(None, 0, 0)
        };
        assert!(h.update(&leader(50), 0));
        assert!(!h.update(&leader(601), 10));
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
