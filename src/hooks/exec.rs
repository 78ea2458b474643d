//! Runs script jobs as Sentinel does: at most 16 at once (the rest queued, at most 256 held),
//! each with stdin from /dev/null and a 60 s limit (then SIGKILL), retried by `plan::next`.
//! Every run is logged with its master, event, exit status and duration.

use std::collections::{HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::{self, Exit, Job, Next};
use super::{Pending, PendingScripts, PendingState};
use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::topology::event::Event;
use crate::topology::TopologyEvent;

/// The limits of script runs: Sentinel's time limits by default (shorter in tests), and this
/// node's script policy (see `plan::vet`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A run still going after this is killed with SIGKILL (and retried).
    pub max_runtime: Duration,
    /// The first retry delay, doubled after each further failed run.
    pub retry_delay: Duration,
    /// This node's `deny-scripts-reconfig`: true runs no script set through the log.
    pub deny_scripts_reconfig: bool,
}

impl Limits {
    /// Sentinel's time limits with this node's policy.
    pub fn new(deny_scripts_reconfig: bool) -> Self {
        Limits {
            max_runtime: plan::MAX_RUNTIME,
            retry_delay: plan::RETRY_DELAY,
            deny_scripts_reconfig,
        }
    }
}

/// A job and how many times it has run.
struct Entry {
    job: Job,
    runs: u32,
}

/// A run that ended.
struct Ran {
    entry: Entry,
    exit: Exit,
    took: Duration,
    /// The child's pid, 0 if it never started.
    pid: u32,
}

/// Jobs waiting for a free slot or for their retry time.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Entry>,
    /// (due, entry), in the order they were delayed.
    delayed: Vec<(Instant, Entry)>,
}

impl Queue {
    fn held(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Sentinel drops the oldest job that is not running when too many are held.
    fn drop_oldest(&mut self) -> Option<Entry> {
        if let Some(e) = self.ready.pop_front() {
            return Some(e);
        }
        if self.delayed.is_empty() {
            return None;
        }
        Some(self.delayed.remove(0).1)
    }

    fn next_due(&self) -> Option<Instant> {
        self.delayed.iter().map(|(due, _)| *due).min()
    }

    fn release_due(&mut self, now: Instant) {
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.delayed = wait;
        self.ready.extend(due.into_iter().map(|(_, e)| e));
    }
}

/// A script that is running now, for SENTINEL PENDING-SCRIPTS.
struct Started {
    argv: Vec<String>,
    at: Instant,
    retry_num: u32,
    /// 0 when it could not be started.
    pid: u32,
}

/// Everything running or waiting, running first (Sentinel keeps one list in queue order, running
/// ones in place; raftinel's running scripts are not in its queue).
fn snapshot<'a>(running: impl Iterator<Item = &'a Started>, queue: &Queue) -> PendingScripts {
    let mut out: Vec<Pending> = running
        .map(|s| Pending {
            argv: s.argv.clone(),
            state: PendingState::Running {
                pid: s.pid,
                since: s.at,
            },
            retry_num: s.retry_num,
        })
        .collect();
    out.sort_by_key(|p| match p.state {
        PendingState::Running { since, .. } => Some(since),
        PendingState::Scheduled { .. } => None,
    });
    let waiting = queue
        .ready
        .iter()
        .map(|e| (e, None))
        .chain(queue.delayed.iter().map(|(due, e)| (e, Some(*due))));
    out.extend(waiting.map(|(e, due)| Pending {
        argv: e.job.argv.clone(),
        state: PendingState::Scheduled { due },
        retry_num: e.runs,
    }));
    Arc::new(out)
}

/// Script runs that ended, by how (`raftinel_hook_runs_total{exit}`): exit 0, exit 1 (Sentinel's
/// "retry"), another exit code, a signal, killed for running too long, not started.
#[derive(Debug, Default)]
pub struct Runs {
    pub by_exit: [std::sync::atomic::AtomicU64; 6],
}

impl Runs {
    pub const EXITS: [&'static str; 6] = ["0", "1", "other", "signal", "timeout", "not_started"];

    fn count(&self, exit: &Exit) {
        let i = match exit {
            Exit::Code(0) => 0,
            Exit::Code(1) => 1,
            Exit::Code(_) => 2,
            Exit::Signal(_) => 3,
            Exit::TimedOut => 4,
            Exit::SpawnFailed(_) => 5,
        };
        self.by_exit[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Takes jobs from `jobs` until it closes or `cancel` fires; then stops, killing running scripts
/// (SIGKILL) and dropping queued ones, with a log line saying how many. `pending` is kept
/// up to date with what runs and waits.
pub async fn run(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    limits: Limits,
    (pending, bus, runs): (watch::Sender<PendingScripts>, EventBus, Arc<Runs>),
    cancel: CancellationToken,
) {
    let mut queue = Queue::default();
    let mut running: JoinSet<Ran> = JoinSet::new();
    let mut started: HashMap<Id, Started> = HashMap::new();
    let mut open = true;
    loop {
        while running.len() < plan::MAX_RUNNING {
            let Some(mut entry) = queue.ready.pop_front() else {
                break;
            };
            let child = start(&mut entry);
            let info = Started {
                argv: entry.job.argv.clone(),
                at: Instant::now(),
                // Sentinel counts the run when it starts: 1 on the first.
                retry_num: entry.runs,
                pid: child.as_ref().ok().and_then(|c| c.id()).unwrap_or(0),
            };
            let handle = running.spawn(finish(entry, child, limits.max_runtime));
            started.insert(handle.id(), info);
        }
        pending.send_replace(snapshot(started.values(), &queue));
        if !open && running.is_empty() && queue.held() == 0 {
            return;
        }
        let due = queue.next_due();
        tokio::select! {
            _ = cancel.cancelled() => break,
            job = jobs.recv(), if open => match job {
                Some(job) => {
                    if let Err(why) = plan::vet(&job, limits.deny_scripts_reconfig) {
                        tracing::warn!(
                            master = %job.master, event = %job.event, hook = job.hook.option(),
                            script = %job.script(), "script not run: {why}"
                        );
                        continue;
                    }
                    if queue.held() + running.len() >= plan::MAX_QUEUED {
                        if let Some(old) = queue.drop_oldest() {
                            tracing::warn!(
                                master = %old.job.master, event = %old.job.event,
                                script = %old.job.script(),
                                "too many scripts pending ({}): dropping the oldest waiting one",
                                plan::MAX_QUEUED
                            );
                        }
                    }
                    queue.ready.push_back(Entry { job, runs: 0 });
                }
                None => open = false,
            },
            Some(done) = running.join_next_with_id(), if !running.is_empty() => match done {
                Ok((id, ran)) => {
                    started.remove(&id);
                    runs.count(&ran.exit);
                    after(ran, limits, &mut queue, &bus);
                }
                Err(e) => {
                    started.remove(&e.id());
                    tracing::error!(error = %e, "script task failed");
                }
            },
            _ = sleep_until(due), if due.is_some() => queue.release_due(Instant::now()),
        }
    }
    let (killed, dropped) = (running.len(), queue.held());
    running.shutdown().await;
    pending.send_replace(Arc::default());
    if killed + dropped > 0 {
        tracing::warn!(
            killed,
            dropped,
            "shutting down: running scripts killed, pending ones dropped"
        );
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Logs a finished run and requeues it if it is to be retried.
fn after(ran: Ran, limits: Limits, queue: &mut Queue, bus: &EventBus) {
    let Ran {
        entry,
        exit,
        took,
        pid,
    } = ran;
    let job = &entry.job;
    let next = plan::next(&exit, entry.runs, limits.retry_delay);
    // Sentinel's `-script-timeout <path> <pid>` when it kills one, then `-script-error` if the
    // script is given up on.
    let timeout = (exit == Exit::TimedOut).then(|| Event::ScriptTimeout {
        path: job.script().to_owned(),
        pid,
    });
    for event in timeout
        .into_iter()
        .chain(plan::script_error(job, &exit, &next))
    {
        bus.publish(IndexedEvent {
            index: LOCAL,
            event: TopologyEvent::node(event),
        });
    }
    let took_ms = took.as_millis() as u64;
    let status = describe(&exit);
    let (master, event, hook, script) = (
        job.master.as_str(),
        job.event.as_str(),
        job.hook.option(),
        job.script(),
    );
    match &next {
        Next::Done => tracing::info!(
            master, event, hook, script, index = job.index, run = entry.runs,
            exit = %status, took_ms, "script ran"
        ),
        Next::Retry(delay) => tracing::warn!(
            master, event, hook, script, index = job.index, run = entry.runs,
            exit = %status, took_ms, retry_in_s = delay.as_secs(),
            "script ran and asked for a retry"
        ),
        Next::Failed | Next::GaveUp => tracing::warn!(
            master, event, hook, script, index = job.index, run = entry.runs,
            exit = %status, took_ms, gave_up = next == Next::GaveUp,
            "-script-error: script failed and is not retried"
        ),
    }
    if let Next::Retry(delay) = next {
        queue.delayed.push((Instant::now() + delay, entry));
    }
}

fn describe(exit: &Exit) -> String {
    match exit {
        Exit::Code(c) => format!("exit {c}"),
        Exit::Signal(s) => format!("signal {s}"),
        Exit::TimedOut => "killed: ran too long (-script-timeout)".to_owned(),
        Exit::SpawnFailed(e) => format!("not started: {e}"),
    }
}

/// Starts one run of `entry`'s argv, in the caller (spawning a child does not block), so the
/// queue shows its pid at once. Output goes where the node's goes (as Sentinel's children
/// inherit its stdout and stderr).
fn start(entry: &mut Entry) -> Result<tokio::process::Child, Exit> {
    entry.runs += 1;
    let mut cmd = tokio::process::Command::new(entry.job.script());
    cmd.args(entry.job.argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // SAFETY: runs in the forked child before exec, where only async-signal-safe calls are
    // allowed: prctl is a plain system call, and nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(drop_ambient_capabilities);
    }
    cmd.spawn().map_err(|e| Exit::SpawnFailed(e.to_string()))
}

/// Waits for a run `start` began; dropping this future kills the script.
async fn finish(
    entry: Entry,
    child: Result<tokio::process::Child, Exit>,
    max_runtime: Duration,
) -> Ran {
    let began = Instant::now();
    let pid = child.as_ref().ok().and_then(|c| c.id()).unwrap_or(0);
    let exit = match child {
        Err(exit) => exit,
        Ok(mut child) => match tokio::time::timeout(max_runtime, child.wait()).await {
            Ok(Ok(status)) => exit_of(status),
            Ok(Err(e)) => Exit::SpawnFailed(format!("waiting for it: {e}")),
            Err(_) => {
                // SIGKILL, then reap it.
                if let Err(e) = child.kill().await {
                    let script = entry.job.script();
                    tracing::warn!(error = %e, %script, "killing a timed-out script");
                }
                Exit::TimedOut
            }
        },
    };
    Ran {
        took: began.elapsed(),
        entry,
        exit,
        pid,
    }
}

/// The node keeps CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities (for the VIP), which a
/// child would inherit across exec: a script gets none of them. (A root raftinel's scripts are
/// root anyway; run raftinel as its own user.)
fn drop_ambient_capabilities() -> std::io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers; the unused arguments must be 0.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
