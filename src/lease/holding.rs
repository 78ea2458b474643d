//! The holder's side of a lease (invariant 4): how long a renewal round lets it act. Pure.

use std::time::{Duration, Instant};

/// A renewal round sent at `sent` (holder's monotonic clock) collected `promised` promises out of
/// `voters` (the holder's own included). With a majority the holder may act until
/// `sent + L − F`: every promiser's `until` is later than that on its own clock, and F leaves
/// the holder time to fence before the first promise can run out.
pub fn acting_until(
    sent: Instant,
    promised: usize,
    voters: usize,
    lease: Duration,
    fence_budget: Duration,
) -> Option<Instant> {
    (voters > 0 && promised * 2 > voters).then(|| sent + lease.saturating_sub(fence_budget))
}

/// What the holder knows now: the grant it renews and until when it may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holding {
    /// The grant the last round renewed, if this node holds one.
    pub grant: Option<u64>,
    /// End of the acting window; `None` until a round gathered a majority.
    pub until: Option<Instant>,
}

impl Holding {
    /// True while the window from the last majority round is open at `now`.
    pub fn valid(&self, grant: u64, now: Instant) -> bool {
        self.grant == Some(grant) && self.until.is_some_and(|u| now < u)
    }

    /// Folds in a finished round on `grant`. A round never shortens the window of the same grant
    /// (an earlier round's promises still stand); a new grant starts from nothing.
    pub fn renewed(&mut self, grant: u64, until: Option<Instant>) {
        if self.grant != Some(grant) {
            *self = Holding {
                grant: Some(grant),
                until: None,
            };
        }
        self.until = self.until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_millis(700);
    const F: Duration = Duration::from_millis(100);

    #[test]
    fn a_majority_opens_the_window_until_send_time_plus_l_minus_f() {
        let t = Instant::now();
        assert_eq!(
            acting_until(t, 2, 3, L, F),
            Some(t + Duration::from_millis(600))
        );
        assert_eq!(
            acting_until(t, 3, 5, L, F),
            Some(t + Duration::from_millis(600))
        );
    }

    #[test]
    fn no_majority_no_window() {
        let t = Instant::now();
        assert_eq!(acting_until(t, 1, 3, L, F), None);
        assert_eq!(acting_until(t, 2, 4, L, F), None);
        assert_eq!(acting_until(t, 0, 0, L, F), None);
    }

    #[test]
    fn windows_of_one_grant_only_grow_and_a_new_grant_starts_closed() {
        let t = Instant::now();
        let mut h = Holding::default();
        h.renewed(4, Some(t + L));
        h.renewed(4, None);
        assert!(h.valid(4, t));
        assert!(!h.valid(4, t + L));
        assert!(!h.valid(5, t));
        h.renewed(5, None);
        assert!(!h.valid(5, t));
        assert!(!h.valid(4, t));
    }
}
