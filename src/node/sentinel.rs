//! The node's Sentinel-compatible port: its listeners (checked at start), its own
//! single-threaded runtime, the freshness that opens and closes it, and the +sdown/-sdown events.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use super::tasks::Tasks;
use super::{NodeError, Shared};
use crate::admin::Admin;
use crate::api::Api;
use crate::config::Config;
use crate::monitor::NodeReport;
use crate::raft::freshness::LeaderContact;
use crate::resp::server::{check_bind, Listeners};

/// The Sentinel listeners, bound once now: a taken port is a configuration error, said at start
/// rather than once the node is fresh.
pub(super) async fn listeners(config: &Config) -> Result<Listeners, NodeError> {
    check_bind(config.sentinel_listen).await?;
    let tls = match (&config.sentinel_tls, &config.tls) {
        (Some(t), Some(files)) => {
            check_bind(t.listen).await?;
            Some((t.listen, crate::resp::tls::acceptor(files, t.auth_clients)?))
        }
        _ => None,
    };
    Ok(Listeners {
        plain: config.sentinel_listen,
        tls,
    })
}

/// What the Sentinel port answers from.
pub(super) struct Inputs {
    pub listeners: Listeners,
    pub contact: LeaderContact,
    pub report: watch::Receiver<Arc<NodeReport>>,
    pub info_cache: crate::monitor::InfoCache,
    /// The hooks' queue: SENTINEL PENDING-SCRIPTS and INFO's script counts.
    pub scripts: watch::Receiver<crate::hooks::PendingScripts>,
    pub api: Arc<Api>,
    pub admin: Arc<Admin>,
}

/// Starts the port, its freshness tracker and its events as critical tasks.
/// Returns whether the node is fresh (as it opens and closes the port) and the port's counters.
pub(super) fn spawn(
    tasks: &mut Tasks,
    node: &Shared,
    inputs: Inputs,
) -> Result<(watch::Receiver<bool>, Arc<crate::resp::Stats>), NodeError> {
    let config = &node.config;
    let (fresh_tx, fresh_rx) = watch::channel(false);
    tasks.critical(
        "freshness",
        crate::resp::server::track_freshness(
            node.raft.clone(),
            inputs.contact,
            config.raft.election_max_ms,
            fresh_tx,
            node.cancel.clone(),
        ),
    );
    let identity = node.identity.clone();
    let sentinel_id = move |id| crate::resp::sentinel_id(&identity.get().unwrap_or_default(), id);
    let (feed, _) = broadcast::channel(crate::events::CAPACITY);
    let order = crate::resp::order::run(
        config.id,
        node.bus.clone(),
        feed.clone(),
        (node.raft.clone(), node.view.clone()),
        sentinel_id.clone(),
        node.cancel.clone(),
    );
    let (peers_tx, peers_rx) = watch::channel(Arc::default());
    tasks.critical(
        "peer probes",
        crate::resp::peers::watch_peers(
            config.id,
            inputs.api.clone(),
            node.view.clone(),
            peers_tx,
            (node.bus.clone(), sentinel_id.clone()),
            node.cancel.clone(),
        ),
    );
    tasks.critical(
        "Sentinel joins",
        crate::resp::peers::announce_joins(
            node.view.clone(),
            node.bus.clone(),
            sentinel_id,
            node.cancel.clone(),
        ),
    );
    let stats: Arc<crate::resp::Stats> = Arc::default();
    let ctx = Arc::new(crate::resp::Ctx {
        node_id: config.id,
        view: node.view.clone(),
        report: inputs.report.clone(),
        info_cache: inputs.info_cache,
        scripts: inputs.scripts,
        peers: peers_rx,
        api: inputs.api,
        admin: inputs.admin,
        main: tokio::runtime::Handle::current(),
        raft: node.raft.clone(),
        feed,
        identity: node.identity.clone(),
        auth: config.sentinel_auth.clone(),
        limits: config.sentinel_limits,
        hostnames: node.redis.hostnames().clone(),
        port: config.sentinel_listen.port(),
        election_max_ms: config.raft.election_max_ms,
        run_id: crate::resp::random_run_id(),
        started: tokio::time::Instant::now(),
        stats: stats.clone(),
    });
    // Its own single-threaded runtime, like a sentinel's event loop: client load competes with
    // Raft for the CPU through the OS scheduler, never in the task queue of the runtime that
    // sends heartbeats.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::SentinelRuntime)?;
    let fresh = fresh_rx.clone();
    let serve = crate::resp::server::serve(ctx, inputs.listeners, fresh_rx, node.cancel.clone());
    // The event order runs beside the sessions it feeds: handing them an event wakes no thread.
    let port = async move {
        tokio::join!(serve, order);
    }
    .in_current_span();
    tasks.critical_blocking("Sentinel port", move || runtime.block_on(port));
    tasks.critical(
        "Sentinel events",
        crate::monitor::events::publish_local_events(
            inputs.report,
            node.view.clone(),
            node.bus.clone(),
            node.cancel.clone(),
        ),
    );
    Ok((fresh, stats))
}
