//! Sentinel's scripts: `notification-script` for WARNING events and `client-reconfig-script` on
//! `+switch-master`, run by the node that is the Raft leader when the event is applied there.
//! Every node follows the applied events; followers only remember recent jobs, which a node
//! runs if it becomes leader (at-least-once across leader changes). docs/hooks.md has the
//! operator's view.
//!
//! - [`plan`]: the pure rules (triggers, argv, retries, the new leader's backlog).
//! - [`check`]: the SET-time checks (`deny-scripts-reconfig`, executable path) on the node that
//!   receives the SET: an early, friendly refusal.
//! - `exec`: the runner (16 at once, 60 s limit, retries), which enforces this node's own
//!   `deny-scripts-reconfig` and vets every argv before it runs anything (`plan::vet`), with
//!   the node's ambient capabilities dropped in the child.

pub mod check;
mod exec;
pub mod plan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::raft::types::typ::ServerMetrics;
use crate::raft::{EventLog, Raft, SmData};
use crate::topology::event::Event;
pub use exec::Runs;
use plan::{Backlog, Cursor, Job, ScriptBook};

/// A script running or waiting to run on this node, as SENTINEL PENDING-SCRIPTS and INFO show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub argv: Vec<String>,
    pub state: PendingState,
    /// Runs started so far, this one included when it runs (Sentinel's `retry-num`).
    pub retry_num: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    /// `pid` is 0 when the script could not be started.
    Running {
        pid: u32,
        since: tokio::time::Instant,
    },
    /// Waiting for a free slot (`due` None) or for its retry time.
    Scheduled { due: Option<tokio::time::Instant> },
}

/// This node's script queue, running ones first.
pub type PendingScripts = Arc<Vec<Pending>>;

/// How often followers drop remembered jobs whose window has passed.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Runs until `cancel`: follows the live events (subscribed before Raft started, so no applied
/// event is missed) and runs the scripts of the events applied while this node leads.
/// `policy` is this node's own, applied to
/// every job before it runs (`plan::vet`).
pub async fn run(node_id: u64, policy: Policy, raft: Raft, io: Io, cancel: CancellationToken) {
    let Io {
        live,
        view,
        events,
        pending,
        bus,
        hostnames,
        runs,
    } = io;
    let (tx, rx) = mpsc::unbounded_channel();
    let follower = Follower {
        node_id,
        view,
        events,
        book: ScriptBook::new(policy.own),
        backlog: Backlog::default(),
        cursor: Cursor::default(),
        leading: false,
        ran_through: 0,
        jobs: tx,
        hostnames,
    };
    tokio::join!(
        exec::run(
            rx,
            exec::Limits::new(policy.deny_scripts_reconfig),
            (pending, bus, runs),
            cancel.clone()
        ),
        follower.run(raft.server_metrics(), live, cancel)
    );
}

/// What the hooks read and show.
pub struct Io {
    /// Applied events, subscribed before Raft started.
    pub live: broadcast::Receiver<Arc<IndexedEvent>>,
    pub view: watch::Receiver<Arc<SmData>>,
    /// The store a lagging subscriber catches up from.
    pub events: EventLog,
    /// Where the script queue is shown (SENTINEL PENDING-SCRIPTS, INFO).
    pub pending: watch::Sender<PendingScripts>,
    /// Where `-script-error` is published.
    pub bus: EventBus,
    /// Scripts get addresses as this node announces them (`announce-hostnames`), as Sentinel's.
    pub hostnames: crate::redis::Hostnames,
    /// Where finished runs are counted (the HTTP API's metrics).
    pub runs: Arc<exec::Runs>,
}

/// This node's script policy, from its own config (invariant 12).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `deny-scripts-reconfig`: true runs no script path that came from the log.
    pub deny_scripts_reconfig: bool,
    /// `[masters.NAME] notification-script` / `client-reconfig-script`: run whatever
    /// `deny_scripts_reconfig` says, in place of the log's.
    pub own: std::collections::BTreeMap<String, crate::config::MasterScripts>,
}

/// Whether openraft says this node is the leader: state Leader and itself as current leader.
fn leads(m: &ServerMetrics, node_id: u64) -> bool {
    m.state == ServerState::Leader && m.current_leader == Some(node_id)
}

struct Follower {
    node_id: u64,
    view: watch::Receiver<Arc<SmData>>,
    events: EventLog,
    book: ScriptBook,
    /// Jobs of events applied while not leading, for the case that this node becomes leader.
    backlog: Backlog,
    cursor: Cursor,
    /// Whether this node led at the last look.
    leading: bool,
    /// The last log index whose hooks this node ran (in memory only).
    ran_through: u64,
    jobs: mpsc::UnboundedSender<Job>,
    hostnames: crate::redis::Hostnames,
}

impl Follower {
    async fn run(
        mut self,
        mut metrics: watch::Receiver<ServerMetrics>,
        mut live: broadcast::Receiver<Arc<IndexedEvent>>,
        cancel: CancellationToken,
    ) {
        let now_leads = leads(&metrics.borrow_and_update(), self.node_id);
        self.set_leading(now_leads);
        let mut metrics_open = true;
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = metrics.changed(), if metrics_open => {
                    // Closed: raft is stopping, and so is the node.
                    let now_leads =
                        changed.is_ok() && leads(&metrics.borrow_and_update(), self.node_id);
                    metrics_open = changed.is_ok();
                    self.set_leading(now_leads);
                }
                next = live.recv() => {
                    let now_leads = metrics_open && leads(&metrics.borrow(), self.node_id);
                    self.set_leading(now_leads);
                    match next {
                        Ok(e) if e.index == LOCAL => self.handle_local(&e),
                        Ok(e) => {
                            if self.cursor.live(e.index) {
                                self.handle(&e);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => self.catch_up(missed),
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
                _ = prune.tick() => self.backlog.prune(Instant::now()),
            }
        }
    }

    /// On becoming leader, runs the remembered jobs the previous leader may not have run.
    fn set_leading(&mut self, now_leads: bool) {
        if now_leads && !self.leading {
            let jobs = self.backlog.take(self.ran_through, Instant::now());
            tracing::info!(
                jobs = jobs.len(),
                ran_through = self.ran_through,
                "leader: scripts run here from now on, and again for recent events"
            );
            for job in jobs {
                self.submit(job);
            }
        } else if !now_leads && self.leading {
            tracing::info!(
                ran_through = self.ran_through,
                "no longer leader: scripts of new events are the new leader's"
            );
        }
        self.leading = now_leads;
    }

    fn submit(&mut self, job: Job) {
        self.ran_through = self.ran_through.max(job.index);
        tracing::debug!(
            master = %job.master,
            event = %job.event,
            index = job.index,
            script = %job.script(),
            "script queued"
        );
        // Closed only when the runner stopped on shutdown.
        let _ = self.jobs.send(job);
    }

    /// `e` with its addresses as this node announces them.
    fn announced<'e>(&self, e: &'e IndexedEvent) -> std::borrow::Cow<'e, IndexedEvent> {
        match self.hostnames.announce_event(&e.event) {
            Some(event) => std::borrow::Cow::Owned(IndexedEvent {
                index: e.index,
                event,
            }),
            None => std::borrow::Cow::Borrowed(e),
        }
    }

    /// One applied event, handled once: its jobs run now if this node leads, else are remembered.
    fn handle(&mut self, e: &IndexedEvent) {
        // The state is published before its events: it already holds this event's entry.
        self.book.refresh(self.view.borrow().topology.masters());
        let master = e.event.master.as_deref();
        let scripts = master.and_then(|m| self.book.get(m));
        let jobs = plan::jobs_for(&self.announced(e), scripts);
        let window = Duration::from_millis(scripts.map_or(0, |s| s.failover_timeout_ms));
        if let (Some(m), Event::Unmonitor { .. }) = (master, &e.event.event) {
            self.book.forget(m);
        }
        if self.leading {
            self.ran_through = self.ran_through.max(e.index);
            for job in jobs {
                self.submit(job);
            }
        } else if !jobs.is_empty() {
            self.backlog.record(Instant::now(), window, jobs);
        }
    }

    /// This node's own observation (`+sdown`, …; not in the log): the leader runs the scripts of
    /// its own observations only, and no later leader runs them again (it has its own).
    fn handle_local(&mut self, e: &IndexedEvent) {
        if !self.leading {
            return;
        }
        self.book.refresh(self.view.borrow().topology.masters());
        let scripts = e.event.master.as_deref().and_then(|m| self.book.get(m));
        for job in plan::jobs_for(&self.announced(e), scripts) {
            self.submit(job);
        }
    }

    /// The broadcast dropped `missed` events: re-read them from the store.
    fn catch_up(&mut self, missed: u64) {
        let until = self.view.borrow().applied_index();
        let (from, skip) = self.cursor.resume();
        tracing::warn!(
            missed,
            from,
            until,
            "scripts fell behind the event stream; re-reading the stored events"
        );
        match self.events.read(from, until) {
            Ok(stored) => {
                let mut skipped = 0;
                for e in &stored {
                    if e.index == from && skipped < skip {
                        skipped += 1;
                        continue;
                    }
                    self.handle(e);
                }
            }
            Err(err) => tracing::error!(
                error = %err,
                from,
                until,
                "the scripts of these events are not run"
            ),
        }
        self.cursor.caught_up(until);
    }
}
