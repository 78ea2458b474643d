//! The nemesis: seeded, randomized faults in the three-host namespace lab (deploy/lab/lab.sh) while
//! two clients write (one through the Sentinel ports, one through the VIP), then a checker over the
//! whole history (tests/nemesis/check.rs says what it holds the run to). Needs root, as the lab.
//!
//! `cargo test --release --test nemesis` runs short runs with fixed seeds (CI). Knobs:
//! - `NEMESIS_SECONDS=N`: each run's length (default 60).
//! - `NEMESIS_SEED=S`: replay seed S's schedule; `NEMESIS_SEED=random` draws one per run.
//! - `NEMESIS_RUNS=N`: how many runs (seeds S, S+1, …); `NEMESIS_SCHEDULE=FILE` replays a
//!   printed schedule instead.
//! - `NEMESIS_SHRINK_SECONDS=N`: time allowed to shrink a failing schedule (default 900; 0: off).
//! - `NEMESIS_KEEP=DIR`: keep every daemon's whole log of each run under DIR.
//!
//! A failing run prints its seed and schedule, then the shortest schedule found that still fails.

mod common;

#[path = "nemesis/check.rs"]
mod check;
#[path = "nemesis/clients.rs"]
mod clients;
#[path = "nemesis/harness.rs"]
mod harness;
#[path = "nemesis/history.rs"]
mod history;
#[path = "nemesis/schedule.rs"]
mod schedule;

use std::collections::BTreeMap;
use std::time::Duration;

use check::{check, Bounds, Report};
use common::lab_hosts::DOWN_AFTER_MS;
use common::serial;
use harness::Outcome;
use history::History;
use schedule::{shrink, Schedule};

/// The seeds CI runs, each for NEMESIS_SECONDS.
const CI_SEEDS: [u64; 2] = [1, 2];

fn env_u64(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v} is not a number")),
    )
}

fn schedules() -> Vec<Schedule> {
    if let Ok(path) = std::env::var("NEMESIS_SCHEDULE") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        return vec![Schedule::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))];
    }
    let seconds = env_u64("NEMESIS_SECONDS").unwrap_or(60);
    let seeds: Vec<u64> = match std::env::var("NEMESIS_SEED").ok().as_deref() {
        None => CI_SEEDS.to_vec(),
        Some("random") => {
            let runs = env_u64("NEMESIS_RUNS").unwrap_or(1);
            (0..runs).map(|_| rand::random::<u32>() as u64).collect()
        }
        Some(s) => {
            let first: u64 = s
                .parse()
                .unwrap_or_else(|_| panic!("NEMESIS_SEED={s} is not a number or `random`"));
            let runs = env_u64("NEMESIS_RUNS").unwrap_or(1);
            (first..first + runs).collect()
        }
    };
    seeds
        .into_iter()
        .map(|s| Schedule::generate(s, seconds))
        .collect()
}

fn bounds() -> Bounds {
    Bounds {
        down_after_us: DOWN_AFTER_MS * 1000,
        ..Bounds::default()
    }
}

#[test]
fn nemesis_runs_keep_every_promise() {
    let _g = serial();
    let mut failed = Vec::new();
    for sched in schedules() {
        eprintln!("nemesis: schedule\n{}", sched.text());
        let out = harness::run(&sched);
        let report = check(&out.history, &bounds());
        eprintln!("{}", summary(&sched, &out, &report));
        if report.violations.is_empty() {
            continue;
        }
        eprintln!("{}", out.logs);
        let budget = env_u64("NEMESIS_SHRINK_SECONDS").unwrap_or(900);
        let small = if budget > 0 {
            shrink(&sched, Duration::from_secs(budget), 50, |s| {
                eprintln!("nemesis: shrinking, trying {} steps", s.steps.len());
                !check(&harness::run(s).history, &bounds())
                    .violations
                    .is_empty()
            })
        } else {
            sched.clone()
        };
        failed.push(format!(
            "seed {:?}: {}\nschedule:\n{}shortest failing schedule found ({} steps; replay: NEMESIS_SCHEDULE=FILE):\n{}",
            sched.seed,
            report.violations.join("\n"),
            sched.text(),
            small.steps.len(),
            small.text()
        ));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn median_p95(mut v: Vec<u64>) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    format!("{:.2} s / {:.2} s", at(0.5), at(0.95))
}

/// Each promotion's time from the fault (or switchover) that caused it: the latest one on the
/// master it replaced, begun before it.
fn failover_times(h: &History, out: &Outcome) -> Vec<u64> {
    let mut promotions = h.promotions.clone();
    promotions.sort_by_key(|p| p.index);
    let mut from = h.first_master.clone();
    let mut times = Vec::new();
    for p in promotions {
        let fault = h
            .faults
            .iter()
            .filter(|w| w.hosts.contains(&from) && w.from_us < p.at_us)
            .map(|w| w.from_us);
        let switchover = out
            .applied
            .iter()
            .filter(|a| a.what.contains("switchover") && a.at_us < p.at_us)
            .map(|a| a.at_us);
        if let Some(start) = fault.chain(switchover).max() {
            times.push(p.at_us - start);
        }
        from = p.to;
    }
    times
}

fn summary(sched: &Schedule, out: &Outcome, r: &Report) -> String {
    let h = &out.history;
    let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (a, step) in out
        .applied
        .iter()
        .filter(|a| a.what.starts_with('#'))
        .zip(&sched.steps)
    {
        let e = kinds.entry(step.fault.kind()).or_default();
        if a.outcome.is_ok() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut t = String::new();
    let mut row = |k: &str, v: String| t.push_str(&format!("| {k:<36} | {v} |\n"));
    row("seed", format!("{:?}, {} s", sched.seed, sched.seconds));
    row("rounds (faults scheduled)", sched.steps.len().to_string());
    for (k, (ok, failed)) in &kinds {
        row(
            &format!("  {k}"),
            format!("{ok} injected, {failed} skipped or failed"),
        );
    }
    row("writes acknowledged", h.acks.len().to_string());
    row("writes not acknowledged", h.failed_writes.to_string());
    row(
        "writes lost (total; worst one fault)",
        format!(
            "{}; {} (bound: acked within {:.1} s before to {:.1} s after a fault that can isolate its master)",
            r.lost,
            r.worst_loss
                .map_or("0".to_owned(), |(n, s)| format!("{n} at step #{s}")),
            bounds().loss_before_us as f64 / 1e6,
            bounds().loss_after_us as f64 / 1e6
        ),
    );
    row(
        "acks in the residual gap (frozen raftinel)",
        r.residual_acks.to_string(),
    );
    row("most VIP holders at once", r.max_vip_holders.to_string());
    row(
        "failovers (median / p95 from the fault)",
        format!(
            "{} ({})",
            h.promotions.len(),
            median_p95(failover_times(h, out))
        ),
    );
    row(
        "one writable instance after the last heal",
        r.converge_us
            .map_or("never".to_owned(), |t| format!("{:.2} s", t as f64 / 1e6)),
    );
    row("Raft logs compared", h.logs.len().to_string());
    row("violations", r.violations.len().to_string());
    for v in &r.violations {
        t.push_str(&format!("  seed {:?}: {v}\n", sched.seed));
    }
    format!("nemesis summary\n{t}")
}
