//! The pure rules of Sentinel's scripts: which applied events run which script with which
//! arguments, what to do after a run ends, which events a new Raft leader runs again, and how a
//! lagging subscriber resumes from the stored events. No I/O, no clock (instants are passed in).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::MasterScripts;
use crate::events::IndexedEvent;
use crate::topology::event::Event;
use crate::topology::{Addr, MasterRecord};

/// Sentinel's limit on scripts running at once (`SENTINEL_SCRIPT_MAX_RUNNING`).
pub const MAX_RUNNING: usize = 16;
/// Sentinel's limit on jobs held at once, running, queued or waiting to retry
/// (`SENTINEL_SCRIPT_MAX_QUEUE`); beyond it the oldest job not running is dropped.
pub const MAX_QUEUED: usize = 256;
/// Sentinel's limit on runs of one job, the first included (`SENTINEL_SCRIPT_MAX_RETRY`: a job is
/// retried while its run count is below 10).
pub const MAX_RUNS: u32 = 10;
/// Sentinel's `SCRIPT-MAX-RUNTIME`: a run still going after this is killed with SIGKILL.
pub const MAX_RUNTIME: Duration = Duration::from_secs(60);
/// Sentinel's `SCRIPT-RETRY-DELAY`: the wait after the first failed run, doubled after each
/// further one (`sentinelScriptRetryDelay`: 30 s, 60 s, 2 min, … 128 min).
pub const RETRY_DELAY: Duration = Duration::from_secs(30);
/// client-reconfig-script's `<role>`: the Raft leader is the node that ran the failover.
pub const RECONFIG_ROLE: &str = "leader";
/// client-reconfig-script's `<state>`. Redis's documentation says "failover", but sentinel.c
/// (2.8 through 7.x) passes "start": `sentinelCallClientReconfScript(master, SENTINEL_LEADER,
/// "start", …)`. Scripts written against a running Sentinel see "start".
pub const RECONFIG_STATE: &str = "start";
/// Jobs a follower keeps for the case that it becomes leader (their events are also bounded by
/// the failover-timeout window).
pub const BACKLOG_LEN: usize = 1024;

/// Reference §2.2: the events Sentinel emits at WARNING level with an instance attached, the
/// ones that run `notification-script`. (`+tilt`, `-tilt`, `-script-error` and `-script-timeout`
/// are WARNING too but have no instance, so Sentinel runs no script for them.) raftinel's own
/// events (`+paused`, the generic `-failover-abort`, …) are not Sentinel's and run nothing.
pub const NOTIFY_KINDS: [&str; 23] = [
    "+monitor",
    "-monitor",
    "+set",
    "+reset-master",
    "+sdown",
    "-sdown",
    "+odown",
    "-odown",
    "+new-epoch",
    "+try-failover",
    "+vote-for-leader",
    "+elected-leader",
    "-failover-abort-not-elected",
    "+failover-state-select-slave",
    "-failover-abort-no-good-slave",
    "+selected-slave",
    "-failover-abort-slave-timeout",
    "+promoted-slave",
    "+failover-state-reconf-slaves",
    "+failover-end-for-timeout",
    "+failover-end",
    "+switch-master",
    "+config-update-from",
];

/// Whether an event of this kind runs the master's notification-script.
pub fn notifies(kind: &str) -> bool {
    NOTIFY_KINDS.contains(&kind)
}

/// What the hooks need to know about one master, copied from its record, with this node's own
/// `[masters.NAME]` scripts over the log's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    pub notification: Option<String>,
    pub client_reconfig: Option<String>,
    /// How long after an event a new leader still runs its hooks again.
    pub failover_timeout_ms: u64,
    /// Which of the two paths come from this node's own config (allowed whatever
    /// `deny-scripts-reconfig` says), not from the log.
    pub own: Own,
}

/// Which script paths this node's own config set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Own {
    pub notification: bool,
    pub client_reconfig: bool,
}

impl Scripts {
    /// The log's scripts of `m`, each replaced by this node's own when its config names one.
    pub fn of(m: &MasterRecord, own: Option<&MasterScripts>) -> Self {
        let pick = |mine: Option<&String>, log: &Option<String>| match mine {
            Some(path) => (Some(path.clone()), true),
            None => (log.clone(), false),
        };
        let own = own.cloned().unwrap_or_default();
        let (notification, own_n) = pick(own.notification.as_ref(), &m.notification_script);
        let (client_reconfig, own_c) =
            pick(own.client_reconfig.as_ref(), &m.client_reconfig_script);
        Scripts {
            notification,
            client_reconfig,
            failover_timeout_ms: m.failover_timeout_ms,
            own: Own {
                notification: own_n,
                client_reconfig: own_c,
            },
        }
    }
}

/// Each master's scripts as last seen in the applied state. A removed master keeps its entry
/// until its `-monitor` has been handled, so that event still reaches its notification-script.
#[derive(Debug, Default)]
pub struct ScriptBook {
    masters: BTreeMap<String, Scripts>,
    /// This node's own `[masters.NAME]` scripts.
    own: BTreeMap<String, MasterScripts>,
}

impl ScriptBook {
    pub fn new(own: BTreeMap<String, MasterScripts>) -> Self {
        ScriptBook {
            masters: BTreeMap::new(),
            own,
        }
    }

    /// Takes every present master's scripts from the applied state; absent ones are kept.
    pub fn refresh<'a>(&mut self, masters: impl Iterator<Item = &'a MasterRecord>) {
        for m in masters {
            let scripts = Scripts::of(m, self.own.get(&m.name));
            if self.masters.get(&m.name) != Some(&scripts) {
                self.masters.insert(m.name.clone(), scripts);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Scripts> {
        self.masters.get(name)
    }

    /// After `-monitor` was handled: the entry is no longer needed.
    pub fn forget(&mut self, name: &str) {
        self.masters.remove(name);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Notification,
    ClientReconfig,
}

impl HookKind {
    /// The SET option that configures it.
    pub fn option(self) -> &'static str {
        match self {
            HookKind::Notification => "notification-script",
            HookKind::ClientReconfig => "client-reconfig-script",
        }
    }
}

/// One script execution to make (and retry): the event it is for and the full argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Log index of the event's entry.
    pub index: u64,
    pub master: String,
    /// The event's channel name, e.g. "+switch-master".
    pub event: String,
    pub hook: HookKind,
    /// `argv[0]` is the script's path.
    pub argv: Vec<String>,
    /// The path comes from this node's own config, not from the log.
    pub own: bool,
}

impl Job {
    /// The script's path (`argv[0]`).
    pub fn script(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

/// Why a job is not run; said in a warn line by the runner.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this node's config has deny-scripts-reconfig = true (the default), and the script was set through SENTINEL SET or `raftinel ctl set`; set `deny-scripts-reconfig = false` in the config of the nodes that may run it")]
    Denied,
    #[error("the master name is not accepted any more ({0}); REMOVE it and MONITOR it under a valid name")]
    BadName(String),
    #[error("argument {0} starts with '-' or has control characters")]
    UnsafeArg(usize),
}

/// The script policy, decided where the script would run (invariant 12) and not where the SET
/// was received. A node whose own config says `deny-scripts-reconfig = true` runs no script
/// path that came from the log (SENTINEL SET / `ctl set`), whatever the node that accepted the
/// SET was configured with, and however the SET got into the log: a MONITOR racing the SET, a
/// forwarded call, or one misconfigured or compromised admin path. Only the operators of the
/// nodes that set `deny-scripts-reconfig = false` get log scripts run on them; a node's own
/// `[masters.NAME]` scripts always run (as sentinel.conf's do under Sentinel's directive). A
/// policy stored in the log instead could be changed through that same admin path.
///
/// Arguments are checked too: no control characters anywhere, and no leading '-' except the
/// notification-script's event type (Sentinel passes `-sdown` there), so a master name or an
/// address never reads as an option.
pub fn vet(job: &Job, deny_scripts_reconfig: bool) -> Result<(), Refused> {
    if deny_scripts_reconfig && !job.own {
        return Err(Refused::Denied);
    }
    if let Err(r) = crate::topology::check_name(&job.master) {
        let why = r.to_string();
        return Err(Refused::BadName(why.trim_start_matches("ERR ").to_owned()));
    }
    for (i, arg) in job.argv.iter().enumerate().skip(1) {
        let event_type = i == 1 && job.hook == HookKind::Notification;
        if crate::topology::has_control(arg) || (arg.starts_with('-') && !event_type) {
            return Err(Refused::UnsafeArg(i));
        }
    }
    Ok(())
}

/// The scripts an applied event runs, in the order Sentinel schedules them.
pub fn jobs_for(e: &IndexedEvent, scripts: Option<&Scripts>) -> Vec<Job> {
    let (Some(master), Some(scripts)) = (e.event.master.as_deref(), scripts) else {
        return Vec::new();
    };
    let channel = e.event.channel();
    let job = |hook, argv, own| Job {
        index: e.index,
        master: master.to_owned(),
        event: channel.to_owned(),
        hook,
        argv,
        own,
    };
    let mut jobs = Vec::new();
    if let Some(path) = &scripts.notification {
        if notifies(channel) {
            let argv = vec![path.clone(), channel.to_owned(), e.event.payload()];
            jobs.push(job(HookKind::Notification, argv, scripts.own.notification));
        }
    }
    if let (Some(path), Event::SwitchMaster { from, to }) =
        (&scripts.client_reconfig, &e.event.event)
    {
        let argv = reconfig_argv(path, master, from, to);
        jobs.push(job(
            HookKind::ClientReconfig,
            argv,
            scripts.own.client_reconfig,
        ));
    }
    jobs
}

/// `<path> <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>`.
pub fn reconfig_argv(path: &str, master: &str, from: &Addr, to: &Addr) -> Vec<String> {
    vec![
        path.to_owned(),
        master.to_owned(),
        RECONFIG_ROLE.to_owned(),
        RECONFIG_STATE.to_owned(),
        from.host.clone(),
        from.port.to_string(),
        to.host.clone(),
        to.port.to_string(),
    ]
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Terminated by this signal (not by us).
    Signal(i32),
    /// Still running after `MAX_RUNTIME`: killed with SIGKILL.
    TimedOut,
    /// Could not be started (no such file, not executable, …); Sentinel's child exits 2 then.
    SpawnFailed(String),
}

/// What to do with a job after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Exit 0.
    Done,
    /// Run again after this delay.
    Retry(Duration),
    /// Exit ≥ 2, or could not start: not retried (Sentinel's `-script-error`).
    Failed,
    /// Still asking for a retry after `MAX_RUNS` runs.
    GaveUp,
}

/// Sentinel's rule (`sentinelCollectTerminatedScripts`): exit 1, a signal or the timeout's
/// SIGKILL mean "retry later", up to `MAX_RUNS` runs; exit ≥ 2 is final. `runs` counts the run
/// that just ended; `base` is the first retry delay (`RETRY_DELAY`).
pub fn next(exit: &Exit, runs: u32, base: Duration) -> Next {
    let retry = match exit {
        Exit::Code(0) => return Next::Done,
        Exit::Code(1) | Exit::Signal(_) | Exit::TimedOut => true,
        Exit::Code(_) | Exit::SpawnFailed(_) => false,
    };
    match (retry, runs < MAX_RUNS) {
        (false, _) => Next::Failed,
        (true, true) => Next::Retry(retry_delay(runs, base)),
        (true, false) => Next::GaveUp,
    }
}

/// Sentinel's `-script-error <path> <bysignal> <exitcode>` for a run that is not retried and did
/// not succeed: the timeout's kill is signal 9, and a script that could not be started counts as
/// Sentinel's child that failed to exec (exit 2).
pub fn script_error(job: &Job, exit: &Exit, next: &Next) -> Option<Event> {
    if !matches!(next, Next::Failed | Next::GaveUp) {
        return None;
    }
    let (signal, code) = match exit {
        Exit::Code(c) => (0, *c),
        Exit::Signal(s) => (*s, 0),
        Exit::TimedOut => (9, 0),
        Exit::SpawnFailed(_) => (0, 2),
    };
    Some(Event::ScriptError {
        path: job.script().to_owned(),
        signal,
        code,
    })
}

/// `base` × 2^(runs − 1).
pub fn retry_delay(runs: u32, base: Duration) -> Duration {
    let doublings = runs.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings)
}

/// Jobs of events this node applied while it was not the leader, kept so that it can run them if
/// it becomes the leader soon after (the old leader may have died before running them).
#[derive(Debug, Default)]
pub struct Backlog {
    entries: VecDeque<(Instant, Duration, Job)>,
}

impl Backlog {
    /// Records `jobs` of an event applied at `at`; they stay eligible for `window`.
    pub fn record(&mut self, at: Instant, window: Duration, jobs: Vec<Job>) {
        for job in jobs {
            if self.entries.len() >= BACKLOG_LEN {
                self.entries.pop_front();
            }
            self.entries.push_back((at, window, job));
        }
    }

    /// On becoming leader at `now`: every recorded job whose event is above `ran_through` (the
    /// last index whose hooks this node ran) and was applied within its window; the backlog is
    /// emptied.
    pub fn take(&mut self, ran_through: u64, now: Instant) -> Vec<Job> {
        self.entries
            .drain(..)
            .filter(|(at, window, job)| {
                job.index > ran_through && now.saturating_duration_since(*at) <= *window
            })
            .map(|(_, _, job)| job)
            .collect()
    }

    /// Drops what can no longer be taken at `now`.
    pub fn prune(&mut self, now: Instant) {
        self.entries
            .retain(|(at, window, _)| now.saturating_duration_since(*at) <= *window);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Position in the event stream, so that events re-read from the store after a broadcast lag are
/// handled exactly once (one log index may carry several events).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Every event at or below this index was handled.
    through: u64,
    /// Of index `partial` (> `through`), the first `count` events were handled.
    partial: u64,
    count: usize,
}

impl Cursor {
    /// A live event at `index`: false if it was already handled (re-read from the store).
    pub fn live(&mut self, index: u64) -> bool {
        if index <= self.through {
            return false;
        }
        if index == self.partial {
            self.count += 1;
        } else {
            if self.partial > self.through {
                self.through = self.partial;
            }
            self.partial = index;
            self.count = 1;
        }
        true
    }

    /// Where to re-read the store from after a lag: the first index, and how many of its events
    /// were already handled.
    pub fn resume(&self) -> (u64, usize) {
        if self.partial > self.through {
            (self.partial, self.count)
        } else {
            (self.through + 1, 0)
        }
    }

    /// After re-reading and handling every stored event up to `until` (inclusive).
    pub fn caught_up(&mut self, until: u64) {
        self.through = self.through.max(until);
        self.partial = 0;
        self.count = 0;
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
