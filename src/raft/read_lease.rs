//! Lease reads: a linearizable read on the leader without a heartbeat round trip, while a quorum
//! has acknowledged this leader recently enough that no other leader can exist yet.
//!
//! Why it holds: an openraft 0.9 follower that accepts an AppendEntries from the leader refuses
//! every vote for `election_timeout_max` after it (the leader lease of openraft's engine), and a
//! node refuses votes for `election_timeout_min` after it starts (`peer::service`), so a voter
//! that restarted has not forgotten its promise. If a quorum accepted AppendEntries that this
//! leader *sent* at or after `t`, no other leader is elected before `t + window` for any window
//! up to `election_timeout_min`; `window` is half of it, which leaves the rest for clock rate
//! differences and for nodes configured with other timings. The read also needs this leader to
//! have applied an entry of its own term (then everything committed before it is applied here).
//! Anything short of that falls back to openraft's ReadIndex round trip.
//!
//! The network records the acknowledgements ([`ReadLease::acked`]); [`quorum_acked`] is the pure
//! rule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::types::typ::{RaftMetrics, Vote};
use super::types::NodeId;

/// What the leader knows of each follower's latest acknowledgement.
#[derive(Clone)]
pub struct ReadLease {
    acks: Arc<Mutex<BTreeMap<NodeId, (Vote, Instant)>>>,
    /// election-timeout-min: the lease lasts half of it, a restarted node's vote hold all of it.
    election_min: Duration,
}

impl ReadLease {
    pub fn new(election_min: Duration) -> Self {
        ReadLease {
            acks: Arc::default(),
            election_min,
        }
    }

    /// How long after it starts a node must not vote: at least the lease of any acknowledgement
    /// it gave before a restart.
    pub fn vote_hold(&self) -> Duration {
        self.election_min
    }

    fn window(&self) -> Duration {
        self.election_min / 2
    }

    /// Whether the node whose metrics are `m` may serve a read at `now` without a round trip: it
    /// leads, has applied an entry of its own term, and a majority of its (single, not joint)
    /// voter set acknowledged it within the window.
    pub fn holds(&self, m: &RaftMetrics, now: Instant) -> bool {
        if m.state != ServerState::Leader || m.current_leader != Some(m.id) {
            return false;
        }
        if m.last_applied.map(|l| l.leader_id.term) != Some(m.vote.leader_id().term) {
            return false;
        }
        let joint = m.membership_config.membership().get_joint_config();
        let [voters] = joint.as_slice() else {
            return false;
        };
        self.acknowledged(m.id, &m.vote, voters, now)
    }

    /// `target` accepted (did not answer with a higher vote) an AppendEntries carrying `vote`
    /// that was sent at `sent`.
    pub fn acked(&self, target: NodeId, vote: &Vote, sent: Instant) {
        let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        match acks.get(&target) {
            // Replies to concurrent requests may arrive out of order: keep the latest send.
            Some((v, at)) if v == vote && *at >= sent => {}
            _ => {
                acks.insert(target, (*vote, sent));
            }
        }
    }

    /// Whether a majority of `voters` acknowledged the leader `me` at `vote` within the window.
    fn acknowledged(
        &self,
        me: NodeId,
        vote: &Vote,
        voters: &BTreeSet<NodeId>,
        now: Instant,
    ) -> bool {
        let acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        match quorum_acked(me, vote, voters, &acks, now) {
            Some(t) => now.saturating_duration_since(t) < self.window(),
            None => false,
        }
    }
}

/// The latest time `t` such that a majority of `voters` acknowledged `vote` sent at or after `t`;
/// `me` counts as acknowledging at `now`. None without a majority.
pub fn quorum_acked(
    me: NodeId,
    vote: &Vote,
    voters: &BTreeSet<NodeId>,
    acks: &BTreeMap<NodeId, (Vote, Instant)>,
    now: Instant,
) -> Option<Instant> {
    let mut times: Vec<Instant> = voters
        .iter()
        .filter_map(|id| {
            if *id == me {
                return Some(now);
            }
            acks.get(id).filter(|(v, _)| v == vote).map(|(_, t)| *t)
        })
        .collect();
    let majority = voters.len() / 2 + 1;
    if voters.is_empty() || times.len() < majority {
        return None;
    }
    times.sort_unstable_by(|a, b| b.cmp(a));
    times.get(majority - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, node: NodeId) -> Vote {
        let mut v = Vote::new(term, node);
        v.commit();
        v
    }

    fn voters(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_majority_is_the_leader_and_its_most_recent_follower() {
        let now = Instant::now();
        let v = vote(3, 1);
        let acks = BTreeMap::from([
            (2, (v, now - Duration::from_millis(40))),
            (3, (v, now - Duration::from_millis(90))),
        ]);
        let t = quorum_acked(1, &v, &voters(&[1, 2, 3]), &acks, now);
        assert_eq!(t, Some(now - Duration::from_millis(40)));
        let five = voters(&[1, 2, 3, 4, 5]);
        assert_eq!(
            quorum_acked(1, &v, &five, &acks, now),
            Some(now - Duration::from_millis(90))
        );
    }

    #[test]
    fn acks_of_another_term_or_a_non_voter_do_not_count() {
        let now = Instant::now();
        let v = vote(3, 1);
        let acks = BTreeMap::from([
            (2, (vote(2, 1), now)),
            (4, (v, now)), // a learner
        ]);
        assert_eq!(quorum_acked(1, &v, &voters(&[1, 2, 3]), &acks, now), None);
    }

    #[test]
    fn a_single_voter_needs_no_one_and_a_leader_outside_the_voters_needs_a_majority() {
        let now = Instant::now();
        let v = vote(1, 1);
        let none = BTreeMap::new();
        assert_eq!(quorum_acked(1, &v, &voters(&[1]), &none, now), Some(now));
        assert_eq!(quorum_acked(1, &v, &voters(&[]), &none, now), None);
        let acks = BTreeMap::from([(2, (v, now)), (3, (v, now))]);
        assert_eq!(
            quorum_acked(1, &v, &voters(&[2, 3, 4]), &acks, now),
            Some(now)
        );
    }

    #[test]
    fn the_lease_lasts_the_window_from_the_send_time_and_late_replies_do_not_go_back() {
        let lease = ReadLease::new(Duration::from_millis(300));
        let start = Instant::now();
        let v = vote(2, 1);
        let set = voters(&[1, 2, 3]);
        assert!(!lease.acknowledged(1, &v, &set, start));
        lease.acked(3, &v, start);
        lease.acked(3, &v, start - Duration::from_millis(500));
        assert!(lease.acknowledged(1, &v, &set, start + Duration::from_millis(149)));
        assert!(!lease.acknowledged(1, &v, &set, start + Duration::from_millis(150)));
        // A new term starts from nothing.
        let next = vote(3, 1);
        assert!(!lease.acknowledged(1, &next, &set, start));
        lease.acked(2, &next, start);
        assert!(lease.acknowledged(1, &next, &set, start));
    }
}
