//! A nemesis schedule as data: which fault goes in when, and for how long. A seed generates one
//! (the same seed, the same schedule); it prints one line per step and parses back, so a failing
//! run's schedule can be replayed, and `shrink` drops steps while the run still fails.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::common::fault::{Cut, Daemon, Fault};

/// One fault: injected `at_ms` after the run began, undone `hold_ms` later (if it has an undo).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at_ms: u64,
    pub hold_ms: u64,
    pub fault: Fault,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it came from (none for a hand-edited or shrunk one).
    pub seed: Option<u64>,
    pub seconds: u64,
    pub steps: Vec<Step>,
}

const HOSTS: [&str; 3] = ["n1", "n2", "n3"];
/// The first fault waits for the writers to get going.
const WARMUP_MS: u64 = 2_000;
/// At most this many hosts have a fault on them at once.
const MAX_BUSY_HOSTS: usize = 2;

/// The fault kinds and their weights.
const KINDS: [(Kind, u32); 12] = [
    (Kind::KillRedis, 3),
    (Kind::KillRaftinel, 2),
    (Kind::KillHost, 2),
    (Kind::PauseRedis, 1),
    (Kind::PauseRaftinel, 2),
    (Kind::Partition, 3),
    (Kind::OneWay, 2),
    (Kind::OneLink, 2),
    (Kind::AddNode, 1),
    (Kind::Replace, 1),
    (Kind::Switchover, 2),
    (Kind::Maintenance, 1),
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    KillRedis,
    KillRaftinel,
    KillHost,
    PauseRedis,
    PauseRaftinel,
    Partition,
    OneWay,
    OneLink,
    AddNode,
    Replace,
    Switchover,
    Maintenance,
}

fn pick_kind(rng: &mut StdRng) -> Kind {
    let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (k, w) in KINDS {
        if x < w {
            return k;
        }
        x -= w;
    }
    Kind::Switchover
}

/// What is busy while the schedule is drawn: a host (or the membership) until a time.
#[derive(Default)]
struct Busy {
    hosts: [u64; 3],
    membership: u64,
}

impl Busy {
    fn free_hosts(&self, now: u64) -> Vec<usize> {
        (0..3).filter(|i| self.hosts[*i] <= now).collect()
    }

    fn busy_count(&self, now: u64) -> usize {
        3 - self.free_hosts(now).len()
    }
}

impl Schedule {
    /// The schedule of `seed` for a run of `seconds`: a fault every 1.5–4 s, held 1–6 s, at most
    /// two hosts faulted at once and one membership change at a time.
    pub fn generate(seed: u64, seconds: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut busy = Busy::default();
        let mut steps = Vec::new();
        let end = seconds.saturating_mul(1000).saturating_sub(1000);
        let mut at = WARMUP_MS;
        // Bounded: each round moves `at` forward by at least 1.5 s.
        while at < end {
            if let Some(step) = draw(&mut rng, &mut busy, at) {
                steps.push(step);
            }
            at += rng.gen_range(1_500..4_000);
        }
        Schedule {
            seed: Some(seed),
            seconds,
            steps,
        }
    }

    /// One line per step: `AT_MS HOLD_MS FAULT`, after a `#` header.
    pub fn text(&self) -> String {
        let mut out = match self.seed {
            Some(s) => format!("# seed {s}, {} s\n", self.seconds),
            None => format!("# {} s\n", self.seconds),
        };
        for s in &self.steps {
            out.push_str(&format!("{} {} {}\n", s.at_ms, s.hold_ms, s.fault));
        }
        out
    }

    /// Reads `text`'s format back (the header is optional; `seconds` covers the last step).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut steps = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: &str| format!("schedule line {}: {what}: `{line}`", n + 1);
            let mut parts = line.splitn(3, ' ');
            let at_ms = parts
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| err("AT_MS is not a number"))?;
            let hold_ms = parts
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| err("HOLD_MS is not a number"))?;
            let fault = parts
                .next()
                .ok_or_else(|| err("no fault"))?
                .parse()
                .map_err(|e: String| err(&e))?;
            steps.push(Step {
                at_ms,
                hold_ms,
                fault,
            });
        }
        let last = steps.iter().map(|s| s.at_ms + s.hold_ms).max().unwrap_or(0);
        Ok(Schedule {
            seed: None,
            seconds: last / 1000 + 2,
            steps,
        })
    }

    /// This schedule without the steps in `drop`.
    pub fn without(&self, drop: std::ops::Range<usize>) -> Schedule {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        Schedule {
            seed: None,
            seconds: self.seconds,
            steps,
        }
    }
}

/// The step at `at`, if some fault fits what is busy.
fn draw(rng: &mut StdRng, busy: &mut Busy, at: u64) -> Option<Step> {
    let kind = pick_kind(rng);
    let hold = rng.gen_range(1_000..6_000);
    let free = busy.free_hosts(at);
    let can_take_host = !free.is_empty() && busy.busy_count(at) < MAX_BUSY_HOSTS;
    let mut host = || -> Option<usize> {
        if !can_take_host {
            return None;
        }
        let i = free[rng.gen_range(0..free.len())];
        Some(i)
    };
    let (fault, hold, hosts): (Fault, u64, Vec<usize>) = match kind {
        Kind::KillRedis | Kind::KillRaftinel | Kind::PauseRedis | Kind::PauseRaftinel => {
            let h = host()?;
            let daemon = match kind {
                Kind::KillRedis | Kind::PauseRedis => Daemon::Redis,
                _ => Daemon::Raftinel,
            };
            let host = HOSTS[h].to_owned();
            let f = match kind {
                Kind::KillRedis | Kind::KillRaftinel => Fault::Kill { host, daemon },
                _ => Fault::Pause { host, daemon },
            };
            (f, hold, vec![h])
        }
        Kind::KillHost => (Fault::kill_host(HOSTS[host()?]), hold, vec![]),
        Kind::Partition | Kind::OneWay => {
            let h = host()?;
            let cut = match (kind, rng.gen_bool(0.5)) {
                (Kind::Partition, true) => Cut::Drop,
                (Kind::Partition, false) => Cut::Reject,
                (_, true) => Cut::In,
                (_, false) => Cut::Out,
            };
            (Fault::partition(HOSTS[h], cut), hold, vec![h])
        }
        Kind::OneLink => {
            let h = host()?;
            let others: Vec<usize> = (0..3).filter(|i| *i != h).collect();
            let p = others[rng.gen_range(0..2)];
            let cut = if rng.gen_bool(0.5) {
                Cut::Drop
            } else {
                Cut::Reject
            };
            let f = Fault::Partition {
                host: HOSTS[h].to_owned(),
                cut,
                peer: Some(HOSTS[p].to_owned()),
            };
            (f, hold, vec![h])
        }
        Kind::AddNode | Kind::Replace if busy.membership > at => return None,
        Kind::AddNode => {
            let hold = rng.gen_range(4_000..10_000);
            busy.membership = at + hold + 2_000;
            (Fault::AddNode, hold, vec![])
        }
        Kind::Replace => {
            let h = host()?;
            let hold = rng.gen_range(3_000..8_000);
            busy.membership = at + hold + 2_000;
            let f = Fault::Replace {
                host: HOSTS[h].to_owned(),
            };
            (f, hold, vec![h])
        }
        Kind::Switchover => (Fault::Switchover, 0, vec![]),
        Kind::Maintenance => (Fault::Maintenance, hold, vec![]),
    };
    // A host's fault keeps it busy a little past its undo, while it recovers.
    let hosts = match &fault {
        Fault::KillHost { host } => vec![HOSTS.iter().position(|x| x == host)?],
        _ => hosts,
    };
    for h in hosts {
        busy.hosts[h] = at + hold + 1_000;
    }
    Some(Step {
        at_ms: at,
        hold_ms: hold,
        fault,
    })
}

/// The shortest schedule found, by dropping chunks of steps (halves, then quarters, … then single
/// steps) while `fails` still says the run fails, within `budget` and `max_runs` runs.
pub fn shrink(
    failing: &Schedule,
    budget: Duration,
    max_runs: usize,
    mut fails: impl FnMut(&Schedule) -> bool,
) -> Schedule {
    let started = Instant::now();
    let mut best = failing.clone();
    let mut runs = 0;
    let mut chunk = best.steps.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < best.steps.len() {
            if runs >= max_runs || started.elapsed() > budget {
                return best;
            }
            let candidate = best.without(start..(start + chunk).min(best.steps.len()));
            runs += 1;
            if fails(&candidate) {
                best = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            return best;
        }
        chunk = chunk.div_ceil(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = Schedule::generate(7, 120);
        assert_eq!(a, Schedule::generate(7, 120));
        assert_ne!(a.steps, Schedule::generate(8, 120).steps);
        assert!(a.steps.len() >= 20, "{}", a.text());
        assert!(a.steps.iter().all(|s| s.at_ms < 119_000));
    }

    #[test]
    fn a_schedule_prints_and_parses_back() {
        let a = Schedule::generate(3, 300);
        let b = Schedule::parse(&a.text()).unwrap();
        assert_eq!(a.steps, b.steps);
        let err = Schedule::parse("100 200 kill n9 redis").unwrap_err();
        assert!(err.contains("line 1") && err.contains("n9"), "{err}");
        assert!(Schedule::parse("x 1 switchover").is_err());
    }

    #[test]
    fn long_schedules_use_every_fault_kind_and_keep_two_hosts_at_most() {
        let a = Schedule::generate(11, 3600);
        let kinds: std::collections::BTreeSet<&str> =
            a.steps.iter().map(|s| s.fault.kind()).collect();
        assert_eq!(kinds.len(), 12, "{kinds:?}");
        for s in &a.steps {
            let Some(h) = s.fault.host() else { continue };
            if h == "n4" {
                continue;
            }
            let overlapping: std::collections::BTreeSet<&str> = a
                .steps
                .iter()
                .filter(|o| o.at_ms <= s.at_ms && s.at_ms < o.at_ms + o.hold_ms)
                .filter_map(|o| o.fault.host())
                .filter(|h| *h != "n4")
                .collect();
            assert!(overlapping.len() <= 2, "{overlapping:?} at {}", s.at_ms);
        }
    }

    #[test]
    fn shrinking_finds_the_steps_that_matter() {
        let a = Schedule::generate(5, 200);
        let needed: Vec<Step> = vec![a.steps[3].clone(), a.steps[17].clone()];
        let fails = |s: &Schedule| needed.iter().all(|n| s.steps.contains(n));
        let small = shrink(&a, Duration::from_secs(10), 1000, fails);
        assert_eq!(small.steps, needed);
        // A budget of runs is kept.
        let mut runs = 0;
        let _ = shrink(&a, Duration::from_secs(10), 5, |s| {
            runs += 1;
            fails(s)
        });
        assert_eq!(runs, 5);
    }
}
