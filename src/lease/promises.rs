//! The promises this node makes to lease holders (PaxosLease, invariant 4), on its own monotonic
//! clock: what it answers to a renewal and to the leader's "is that grant dead?". Pure: the
//! caller passes the time and what the applied state says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Every promise this node made that may still be live, by grant id.
#[derive(Debug)]
pub struct Promises {
    lease: Duration,
    margin: Duration,
    /// Promises made before a restart are forgotten, so every grant counts as promised until
    /// `boot + L + m`.
    boot: Instant,
    /// Grant id → the end of the last promise made on it.
    made: BTreeMap<u64, Instant>,
    /// Grants a member told this node were revoked by a committed entry this node may not have
    /// applied (a voter removed meanwhile never will): no promise on them, ever.
    told_revoked: BTreeSet<u64>,
}

impl Promises {
    pub fn new(boot: Instant, lease: Duration, margin: Duration) -> Self {
        Promises {
            lease,
            margin,
            boot,
            made: BTreeMap::new(),
            told_revoked: BTreeSet::new(),
        }
    }

    /// A holder asks for a promise on grant `id`, received at `now`. Given iff the applied state
    /// names `id` as a current, unrevoked grant; the promise lasts until `now + L`.
    pub fn promise(&mut self, id: u64, current: bool, now: Instant) -> Option<Instant> {
        if !current || self.told_revoked.contains(&id) {
            return None;
        }
        let until = now + self.lease;
        let end = self.made.entry(id).or_insert(until);
        *end = (*end).max(until);
        Some(until)
    }

    /// Whether grant `id` is dead as far as this node can tell: the revocation is applied here (so
    /// no promise on it will ever be made again) and every promise made on it, and any this node
    /// may have made before it restarted, ended more than the margin ago.
    ///
    /// `extra` extends every wait, for the question "is the old holder's VIP gone too?": its
    /// kernel lifetime may outlast its acting window.
    pub fn dead(&self, id: u64, revocation_applied: bool, now: Instant, extra: Duration) -> bool {
        if !revocation_applied || now < self.boot + self.lease + self.margin + extra {
            return false;
        }
        self.made
            .get(&id)
            .map_or(true, |until| now >= *until + self.margin + extra)
    }

    /// A member asks whether grant `id` is dead, which it does only once the grant's revocation
    /// (a failover's, or a membership change's) is committed: this node stops promising on it
    /// now, whatever its applied state says, so that its answer can count as applied. Under the
    /// same lock as `promise`, so no promise slips in between.
    pub fn told_revoked(&mut self, id: u64) {
        self.told_revoked.insert(id);
    }

    /// Drops promises that ended more than the margin and `extra` ago: `dead` answers true for
    /// them now whatever it is asked (with `extra` the longest wait it is asked for). Forgetting
    /// one sooner would turn a "not yet" into a "dead".
    pub fn prune(&mut self, now: Instant, extra: Duration) {
        let keep = self.margin + extra;
        self.made.retain(|_, until| now < *until + keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_millis(700);
    const M: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn promises_only_current_grants() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        assert_eq!(p.promise(5, false, t0 + ms(900)), None);
        assert_eq!(p.promise(5, true, t0 + ms(900)), Some(t0 + ms(1600)));
    }

    // Issue 11 §3: told that a grant was revoked (a removed voter never applies it), a node
    // makes no promise on it again, even while its own state still calls it current.
    #[test]
    fn a_grant_told_revoked_gets_no_promise() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(5, true, t0 + ms(1000));
        p.told_revoked(5);
        assert_eq!(p.promise(5, true, t0 + ms(1100)), None);
        assert!(!p.dead(5, true, t0 + ms(1799), ms(0)));
        assert!(p.dead(5, true, t0 + ms(1800), ms(0)));
        assert_eq!(p.promise(6, true, t0 + ms(1100)), Some(t0 + ms(1800)));
    }

    #[test]
    fn a_later_promise_extends_an_earlier_one_never_shortens_it() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(5, true, t0 + ms(1000));
        p.promise(5, true, t0 + ms(1100));
        // Revoked at 1100: dead only at 1100 + L + m.
        assert!(!p.dead(5, true, t0 + ms(1899), ms(0)));
        assert!(p.dead(5, true, t0 + ms(1900), ms(0)));
    }

    #[test]
    fn dead_needs_the_revocation_applied() {
        let t0 = Instant::now();
        let p = Promises::new(t0, L, M);
        assert!(!p.dead(5, false, t0 + ms(10_000), ms(0)));
        assert!(p.dead(5, true, t0 + ms(10_000), ms(0)));
    }

    #[test]
    fn a_restarted_node_counts_every_grant_promised_until_boot_plus_l_plus_m() {
        let boot = Instant::now();
        let p = Promises::new(boot, L, M);
        // Never promised anything since boot, but may have before the restart.
        assert!(!p.dead(9, true, boot + ms(799), ms(0)));
        assert!(p.dead(9, true, boot + ms(800), ms(0)));
    }

    #[test]
    fn the_margin_absorbs_clock_drift_at_the_end_of_a_promise() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(3, true, t0 + ms(1000));
        assert!(!p.dead(3, true, t0 + ms(1700), ms(0)));
        assert!(!p.dead(3, true, t0 + ms(1799), ms(0)));
        assert!(p.dead(3, true, t0 + ms(1800), ms(0)));
    }

    #[test]
    fn the_vip_question_waits_the_extra_time_as_well() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(3, true, t0 + ms(1000));
        // V + 1 s + T − L = 1400 ms beyond the lease's own end.
        assert!(p.dead(3, true, t0 + ms(1800), ms(0)));
        assert!(!p.dead(3, true, t0 + ms(3199), ms(1400)));
        assert!(p.dead(3, true, t0 + ms(3200), ms(1400)));
    }

    #[test]
    fn promises_on_one_grant_say_nothing_about_another() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(3, true, t0 + ms(1000));
        assert!(p.dead(4, true, t0 + ms(1000), ms(0)));
    }

    #[test]
    fn prune_keeps_what_can_still_matter() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(1, true, t0 + ms(1000));
        p.promise(2, true, t0 + ms(2000));
        p.prune(t0 + ms(1800), ms(0));
        assert_eq!(p.made.len(), 1);
        assert!(!p.dead(2, true, t0 + ms(1800), ms(0)));
    }

    #[test]
    fn pruning_never_turns_a_pending_vip_question_into_dead() {
        let t0 = Instant::now();
        let mut p = Promises::new(t0, L, M);
        p.promise(1, true, t0 + ms(1000));
        // The lease part is over at 1800; the VIP part (1400 ms more) is not.
        p.prune(t0 + ms(2000), ms(1400));
        assert!(p.dead(1, true, t0 + ms(2000), ms(0)));
        assert!(!p.dead(1, true, t0 + ms(2000), ms(1400)));
        p.prune(t0 + ms(3200), ms(1400));
        assert!(p.made.is_empty());
    }
}
