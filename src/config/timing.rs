//! The timing rules of invariant 8: hard rules refuse the config with the values printed, risky
//! combinations become [`Warning`]s.

use super::{Config, ConfigError, LeaseTimings, RaftTimings, Warning};

/// The margin, in ms, that the risky-election rule grants beyond down-after: roughly the time a
/// failover needs after detection (lease death, promotion, commit).
const ELECTION_SLACK_MS: u64 = 650;

/// Checks every timing rule of a resolved config; `default-down-after-ms` goes through the
/// same rule as a `SENTINEL SET down-after-milliseconds`.
pub(super) fn check(cfg: &Config, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    check_raft(&cfg.raft, warnings)?;
    check_lease(&cfg.lease, warnings)?;
    warnings.extend(cfg.check_down_after("default-down-after-ms", cfg.default_down_after_ms)?);
    Ok(())
}

fn at_least(
    key: &'static str,
    value: u64,
    min: u64,
    why: &'static str,
    default: u64,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::TooSmall {
            key,
            value,
            min,
            why,
            default,
        });
    }
    Ok(())
}

fn check_raft(r: &RaftTimings, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    let d = RaftTimings::default();
    at_least(
        "raft.heartbeat-ms",
        r.heartbeat_ms,
        1,
        "the leader must send heartbeats",
        d.heartbeat_ms,
    )?;
    if r.election_min_ms >= r.election_max_ms {
        return Err(ConfigError::ElectionRange {
            min: r.election_min_ms,
            max: r.election_max_ms,
        });
    }
    if u128::from(r.heartbeat_ms) * 3 > u128::from(r.election_min_ms) {
        return Err(ConfigError::HeartbeatVsElection {
            heartbeat: r.heartbeat_ms,
            min: r.election_min_ms,
        });
    }
    at_least(
        "raft.snapshot-every",
        r.snapshot_every,
        1,
        "a snapshot every 0 entries is meaningless",
        d.snapshot_every,
    )?;
    at_least(
        "raft.install-snapshot-timeout-ms",
        r.install_snapshot_timeout_ms,
        100,
        "sending a snapshot takes at least a few round trips",
        d.install_snapshot_timeout_ms,
    )?;
    if r.install_snapshot_timeout_ms < 1000 {
        warnings.push(Warning(format!(
            "`raft.install-snapshot-timeout-ms` = {} is below 1000: a large snapshot may never finish sending to a lagging node; the default is {}",
            r.install_snapshot_timeout_ms, d.install_snapshot_timeout_ms
        )));
    }
    Ok(())
}

fn check_lease(l: &LeaseTimings, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    let d = LeaseTimings::default();
    at_least(
        "lease.renew-interval-ms",
        l.renew_interval_ms,
        1,
        "the holder renews on this period",
        d.renew_interval_ms,
    )?;
    at_least(
        "lease.renew-timeout-ms",
        l.renew_timeout_ms,
        1,
        "a promise RPC needs time to answer",
        d.renew_timeout_ms,
    )?;
    at_least(
        "lease.vip-lifetime-s",
        l.vip_lifetime_s,
        1,
        "the kernel counts address lifetimes in whole seconds",
        d.vip_lifetime_s,
    )?;
    let spent = u128::from(l.renew_interval_ms)
        + 2 * u128::from(l.renew_timeout_ms)
        + u128::from(l.fence_budget_ms);
    let usable = i128::from(l.duration_ms) - i128::from(l.margin_ms);
    if i128::try_from(spent).map_or(true, |s| s > usable) {
        return Err(ConfigError::LeaseBudget {
            r: l.renew_interval_ms,
            t: l.renew_timeout_ms,
            f: l.fence_budget_ms,
            l: l.duration_ms,
            m: l.margin_ms,
        });
    }
    if l.margin_ms == 0 {
        warnings.push(Warning(
            "`lease.margin-ms` = 0 leaves no room for clock-rate drift between nodes; the default is 100".to_owned(),
        ));
    }
    if l.fence_budget_ms == 0 {
        warnings.push(Warning(
            "`lease.fence-budget-ms` = 0 assumes fencing Redis and dropping the VIP take no time; the default is 100".to_owned(),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks a down-after (ms) against this node's timings: `L + m ≤ down-after` is an error; an
    /// election that can outlast detection (`2 × raft.election-timeout-max-ms > down-after + 650`)
    /// and a VIP lifetime longer than down-after are warnings. Errors name the key
    /// `down-after-milliseconds`, as `SENTINEL SET` writes it; `load` already checks
    /// `default-down-after-ms` under that name.
    pub fn timing_check_down_after(&self, down_after_ms: u64) -> Result<Vec<Warning>, ConfigError> {
        self.check_down_after("down-after-milliseconds", down_after_ms)
    }

    fn check_down_after(
        &self,
        key: &'static str,
        down_after: u64,
    ) -> Result<Vec<Warning>, ConfigError> {
        let (l, m) = (self.lease.duration_ms, self.lease.margin_ms);
        if u128::from(l) + u128::from(m) > u128::from(down_after) {
            return Err(ConfigError::LeaseVsDownAfter {
                key,
                l,
                m,
                down_after,
            });
        }
        let mut warnings = Vec::new();
        let emax = self.raft.election_max_ms;
        if u128::from(emax) * 2 > u128::from(down_after) + u128::from(ELECTION_SLACK_MS) {
            warnings.push(Warning(format!(
                "risky timing: 2 × `raft.election-timeout-max-ms` = 2 × {emax} = {} > `{key}` + {ELECTION_SLACK_MS} = {}; \
                 if the Raft leader and a master fail together, the election can delay the failover beyond down-after: \
                 lower `raft.election-timeout-max-ms` or raise `{key}`",
                u128::from(emax) * 2,
                u128::from(down_after) + u128::from(ELECTION_SLACK_MS),
            )));
        }
        let vip_ms = u128::from(self.lease.vip_lifetime_s) * 1000;
        if vip_ms > u128::from(down_after) {
            warnings.push(Warning(format!(
                "risky timing: `lease.vip-lifetime-s` = {} s is longer than `{key}` = {down_after} ms; \
                 if raftinel stops on a master's host, the kernel keeps its VIP that long, so it can overlap a failover by up to {} ms: \
                 raise `{key}` to at least {vip_ms}",
                self.lease.vip_lifetime_s,
                vip_ms - u128::from(down_after),
            )));
        }
        Ok(warnings)
    }
}
