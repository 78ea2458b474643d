//! TILT: when this node's own timers fire late (the process was stopped or starved), what it
//! observed meanwhile is suspect, so its reports say `tilt` for a while. Pure: times are passed in.

/// A timer that fired more than `down_after / 4` late puts the node in TILT.
pub const LAG_DIVISOR: u64 = 4;

/// The TILT window, in milliseconds on the monitor's own clock (time since it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tilt {
    /// TILT lasts while now < `until_ms`.
    until_ms: Option<u64>,
    /// When the current (or last) TILT was last triggered.
    since_ms: Option<u64>,
    /// How many times TILT was triggered (Sentinel's `sentinel_total_tilt`).
    entered: u64,
}

/// Whether a timer that fired `lag_ms` late is a scheduling lag for a master with this down-after.
pub fn is_lag(lag_ms: u64, down_after_ms: u64) -> bool {
    lag_ms.saturating_mul(LAG_DIVISOR) > down_after_ms
}

impl Tilt {
    /// A timer fired `lag_ms` late, noticed at `now_ms`, judged against one master's down-after.
    /// A lag extends TILT to `now_ms + down_after_ms` (never shortens it). A stall that began
    /// after the last trigger is a new trigger, as each late run of Sentinel's one timer is:
    /// TILT's start moves to now and the count goes up; the many probe timers one stall made
    /// late are the same trigger. Returns true when this call turned TILT on.
    pub fn record_lag(&mut self, now_ms: u64, lag_ms: u64, down_after_ms: u64) -> bool {
        if !is_lag(lag_ms, down_after_ms) {
            return false;
        }
        let was_active = self.is_active(now_ms);
        let until = now_ms.saturating_add(down_after_ms);
        self.until_ms = Some(self.until_ms.map_or(until, |u| u.max(until)));
        let stalled_from = now_ms.saturating_sub(lag_ms);
        if self.since_ms.map_or(true, |t| stalled_from >= t) {
            self.since_ms = Some(now_ms);
            self.entered = self.entered.saturating_add(1);
        }
        !was_active
    }

    /// When the current TILT began, if it is on.
    pub fn since_ms(&self, now_ms: u64) -> Option<u64> {
        self.since_ms.filter(|_| self.is_active(now_ms))
    }

    /// How many times TILT was entered.
    pub fn entered(&self) -> u64 {
        self.entered
    }

    pub fn is_active(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|until| now_ms < until)
    }

    /// When the current TILT ends, if it is on.
    pub fn until_ms(&self, now_ms: u64) -> Option<u64> {
        self.until_ms.filter(|_| self.is_active(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_tilted_at_start() {
        let t = Tilt::default();
        assert!(!t.is_active(0));
        assert!(!t.is_active(u64::MAX));
        assert_eq!(t.until_ms(0), None);
    }

    #[test]
    fn threshold_is_a_quarter_of_down_after_exclusive() {
        assert!(!is_lag(250, 1000));
        assert!(is_lag(251, 1000));
        assert!(!is_lag(75, 300));
        assert!(is_lag(76, 300));
        assert!(!is_lag(0, 0));
        assert!(is_lag(u64::MAX, 1000));
    }

    #[test]
    fn a_small_lag_changes_nothing() {
        let mut t = Tilt::default();
        assert!(!t.record_lag(5_000, 200, 1000));
        assert!(!t.is_active(5_000));
    }

    #[test]
    fn a_lag_tilts_for_down_after_from_when_it_was_seen() {
        let mut t = Tilt::default();
        assert!(t.record_lag(5_000, 400, 1000));
        assert!(t.is_active(5_000));
        assert!(t.is_active(5_999));
        assert!(!t.is_active(6_000));
        assert_eq!(t.until_ms(5_500), Some(6_000));
        assert_eq!(t.until_ms(6_000), None);
    }

    #[test]
    fn a_second_lag_extends_and_reports_no_new_entry() {
        let mut t = Tilt::default();
        assert!(t.record_lag(5_000, 400, 1000));
        // Another timer late from the same stall (it began before 5 000): the same trigger.
        assert!(!t.record_lag(5_010, 450, 1000));
        assert_eq!((t.since_ms(5_010), t.entered()), (Some(5_000), 1));
        // A new stall while tilted: TILT goes on from now and counts again, as in Sentinel.
        assert!(!t.record_lag(5_800, 300, 1000));
        assert!(t.is_active(6_500));
        assert_eq!((t.since_ms(6_500), t.entered()), (Some(5_800), 2));
        assert!(!t.is_active(6_800));
        assert_eq!(t.since_ms(6_800), None);
        // After it ended, the next lag enters TILT again.
        assert!(t.record_lag(7_000, 300, 1000));
        assert_eq!((t.since_ms(7_000), t.entered()), (Some(7_000), 3));
    }

    #[test]
    fn a_shorter_master_never_shortens_the_window() {
        let mut t = Tilt::default();
        // 10 s of lag (SIGSTOP): every master counts it; the longest down-after wins.
        assert!(t.record_lag(20_000, 10_000, 30_000));
        assert!(!t.record_lag(20_000, 10_000, 1_000));
        assert!(t.is_active(49_999));
        assert!(!t.is_active(50_000));
    }

    #[test]
    fn lag_is_judged_per_master() {
        let mut t = Tilt::default();
        // 300 ms of lag matters to a 1 s master, not to a 30 s one.
        assert!(!t.record_lag(1_000, 300, 30_000));
        assert!(!t.is_active(1_000));
        assert!(t.record_lag(1_000, 300, 1_000));
        assert!(!t.is_active(2_000));
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let mut t = Tilt::default();
        assert!(t.record_lag(u64::MAX - 1, 1_000, 1_000));
        assert!(t.is_active(u64::MAX - 1));
    }
}
