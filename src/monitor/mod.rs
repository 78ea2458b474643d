//! Probing of every monitored Redis instance from this node (PING, INFO replication), turning
//! replies into `Observation`s: SDOWN from a timer, TILT when this node's own scheduling lags.
//!
//! `Monitor::spawn` runs a supervisor that follows the applied topology, keeps one probe task
//! per instance (the master, its replicas in the log, and replicas its INFO lists) and publishes
//! this node's `NodeReport` on a watch channel.

pub mod events;
pub mod info;
pub mod observation;
mod probe;
mod state;
pub mod tilt;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};

pub use observation::{Colocation, NodeReport, Observation, ReplicaLink, ReportedRole};
pub use probe::ProbeError;
pub use state::ping_interval;

use crate::raft::state_machine::SmData;
use crate::redis::Connector;
use crate::topology::Addr;
use probe::{lock, ProbeCtx};
use state::Shared;

/// How often the probe set is matched to the log when nothing woke the supervisor: what only
/// time changes is a discovered replica aging out (after ten down-afters), or a task that ended.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// This node's prober of every monitored instance.
pub struct Monitor;

/// This node's last INFO of every instance, for SENTINEL INFO-CACHE.
#[derive(Clone)]
pub struct InfoCache(Arc<Mutex<Shared>>);

impl InfoCache {
    /// The master then its other instances: age of the last INFO in ms (0 if none) and its text.
    pub fn of(&self, name: &str) -> Option<Vec<(u64, Option<Arc<str>>)>> {
        probe::lock(&self.0).info_cache(name, Instant::now())
    }
}

struct Task {
    cancel: CancellationToken,
    wake: Arc<Notify>,
    join: JoinHandle<()>,
}

struct Supervisor {
    node_id: u64,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    tasks: BTreeMap<(String, Addr), Task>,
    cancel: CancellationToken,
    report: watch::Sender<Arc<NodeReport>>,
    redis: Connector,
    epoch: Instant,
}

impl Monitor {
    /// Starts probing what `view` lists and returns this node's report, republished on every
    /// change (SDOWN, role, run id, replid, link, new replica, TILT) and at least once per PING
    /// period of the fastest master, with ages as of publication. Runs until `cancel` fires; every
    /// probe task stops then. Must be called inside a Tokio runtime. `redis` opens the probes'
    /// connections.
    pub fn spawn(
        node_id: u64,
        view: watch::Receiver<Arc<SmData>>,
        cancel: CancellationToken,
        redis: Connector,
    ) -> watch::Receiver<Arc<NodeReport>> {
        let (report, _, supervisor) = Self::start(node_id, view, cancel, redis);
        tokio::spawn(supervisor);
        report
    }

    /// Like `spawn`, but the caller runs the supervisor: the node gives the probes a runtime of
    /// their own. Probe tasks go to the runtime this is called in.
    pub fn start(
        node_id: u64,
        mut view: watch::Receiver<Arc<SmData>>,
        cancel: CancellationToken,
        redis: Connector,
    ) -> (
        watch::Receiver<Arc<NodeReport>>,
        InfoCache,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let now = Instant::now();
        let (report, rx) = watch::channel(Arc::new(NodeReport {
            node_id,
            ..NodeReport::default()
        }));
        let mut shared = Shared::new(now);
        shared.tls_names = redis.tls_names().clone();
        let mut sup = Supervisor {
            node_id,
            shared: Arc::new(Mutex::new(shared)),
            changed: Arc::new(Notify::new()),
            tasks: BTreeMap::new(),
            cancel,
            report,
            redis,
            epoch: now,
        };
        let data = view.borrow_and_update().clone();
        sup.reconcile(&data, now);
        sup.publish(now);
        let cache = InfoCache(sup.shared.clone());
        let run = sup
            .run(view)
            .instrument(info_span!("monitor", node = node_id));
        (rx, cache, run)
    }
}

impl Supervisor {
    async fn run(mut self, mut view: watch::Receiver<Arc<SmData>>) {
        let mut view_open = true;
        let mut next_tick = Instant::now() + self.interval();
        let mut reconciled = Instant::now();
        loop {
            // A beat alone changes neither the log nor any INFO: the probe set stays as it was,
            // except that discovered replicas age out, which a slower sweep catches.
            let mut stale = false;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                changed = view.changed(), if view_open => {
                    stale = true;
                    if changed.is_err() {
                        debug!("topology view closed: keeping the last one");
                        view_open = false;
                    }
                }
                _ = self.changed.notified() => stale = true,
                _ = sleep_until(next_tick) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                let lag = now.saturating_duration_since(next_tick);
                if lock(&self.shared).note_lag(now, lag) {
                    tracing::warn!(
                        lag_ms = lag.as_millis() as u64,
                        "+tilt: publish timer fired late"
                    );
                }
                next_tick = now + self.interval();
            }
            if stale || now.saturating_duration_since(reconciled) >= RECONCILE_EVERY {
                let data = view.borrow_and_update().clone();
                self.reconcile(&data, now);
                reconciled = now;
                // A faster master may have appeared.
                next_tick = next_tick.min(now + self.interval());
            }
            self.publish(now);
        }
        for (_, task) in std::mem::take(&mut self.tasks) {
            task.cancel.cancel();
            let _ = task.join.await;
        }
    }

    fn interval(&self) -> Duration {
        lock(&self.shared).publish_interval()
    }

    /// Starts and stops probe tasks so that exactly the wanted instances are probed.
    fn reconcile(&mut self, data: &SmData, now: Instant) {
        let out = lock(&self.shared).reconcile(&data.topology.masters, now);
        self.tasks.retain(|key, task| {
            let keep = out.wanted.contains(key) && !task.join.is_finished();
            if !keep {
                debug!(master = %key.0, addr = %key.1, "stop probing");
                task.cancel.cancel();
            }
            keep
        });
        for (key, task) in &self.tasks {
            if out.retuned.contains(&key.0) {
                task.wake.notify_one();
            }
        }
        for key in out.wanted {
            if self.tasks.contains_key(&key) {
                continue;
            }
            debug!(master = %key.0, addr = %key.1, "start probing");
            let cancel = self.cancel.child_token();
            let wake = Arc::new(Notify::new());
            let ctx = ProbeCtx {
                name: key.0.clone(),
                addr: key.1.clone(),
                shared: self.shared.clone(),
                changed: self.changed.clone(),
                wake: wake.clone(),
                redis: self.redis.clone(),
                epoch: self.epoch,
            };
            let join = probe::spawn(self.node_id, ctx, cancel.clone());
            self.tasks.insert(key, Task { cancel, wake, join });
        }
    }

    fn publish(&self, now: Instant) {
        let report = lock(&self.shared).report(self.node_id, now);
        self.report.send_replace(Arc::new(report));
    }
}
