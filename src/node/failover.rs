//! The node's failover tasks: sending its observations to the leader, the leader's failover
//! runner (idle on followers), and Sentinel's scripts run by whichever node leads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::tasks::Tasks;
use super::Shared;
use crate::events::IndexedEvent;
use crate::failover::reports::{send_reports, OwnReport, Reports, Sender};
use crate::failover::run::Runner;
use crate::lease::renew::Peers;
use crate::raft::group_commit::GroupCommit;
use crate::raft::EventLog;

/// What the failover tasks start from.
pub(super) struct Inputs {
    pub reports: Reports,
    pub own: OwnReport,
    pub lease_peers: Peers,
    /// Subscribed before Raft started applying: the hooks see every applied event.
    pub hook_feed: broadcast::Receiver<Arc<IndexedEvent>>,
    pub event_log: EventLog,
    /// Where the hooks show their queue.
    pub scripts: watch::Sender<crate::hooks::PendingScripts>,
    /// Where the hooks count finished runs.
    pub runs: std::sync::Arc<crate::hooks::Runs>,
}

/// Starts the report sender, the runner and the hooks as critical tasks.
pub(super) fn spawn(tasks: &mut Tasks, node: &Shared, inputs: Inputs) {
    let config = &node.config;
    let sender = Sender {
        node_id: config.id,
        raft: node.raft.clone(),
        identity: node.identity.clone(),
        dialer: node.dialer.clone(),
        view: node.view.clone(),
        reports: inputs.reports.clone(),
    };
    tasks.critical(
        "report sender",
        send_reports(sender, inputs.own, node.cancel.clone()),
    );
    let (writes, writer) = GroupCommit::new(
        node.raft.clone(),
        crate::failover::run::COMMIT_TIMEOUT,
        node.cancel.clone(),
    );
    tasks.critical("group commit", writer);
    let runner = Runner {
        node_id: config.id,
        raft: node.raft.clone(),
        view: node.view.clone(),
        reports: inputs.reports,
        bus: node.bus.clone(),
        sent: Default::default(),
        lease_peers: inputs.lease_peers,
        lease_timeout: Duration::from_millis(config.lease.renew_timeout_ms.max(1)),
        config_vips: Arc::new(config.vips.clone()),
        redis: node.redis.clone(),
        writes,
    };
    tasks.critical("failover runner", runner.run(node.cancel.clone()));
    tasks.critical(
        "hooks",
        crate::hooks::run(
            config.id,
            crate::hooks::Policy {
                deny_scripts_reconfig: config.deny_scripts_reconfig,
                own: config.scripts.clone(),
            },
            node.raft.clone(),
            crate::hooks::Io {
                live: inputs.hook_feed,
                view: node.view.clone(),
                events: inputs.event_log,
                pending: inputs.scripts,
                bus: node.bus.clone(),
                hostnames: node.redis.hostnames().clone(),
                runs: inputs.runs,
            },
            node.cancel.clone(),
        ),
    );
}
