//! One raftinel node as a tokio service: starts every part under one task tracker and owns the
//! single shutdown path (signal, openraft stopping or a critical task ending → cancel → wait for
//! every task → raft shutdown → sled flush).
//!
//! - [`store`]: the sled store, the cluster identity and openraft on them.
//! - [`grpc`]: the node-to-node service and the topology API behind one interceptor.
//! - [`sentinel`]: the Sentinel port on its own runtime, and its freshness.
//! - [`leases`]: promises, renewals and the guard on the local Redis.
//! - [`failover`]: reports to the leader, the failover runner and the hooks.
//! - [`tasks`]: the tracker: a critical task that ends stops the node.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod failover;
mod grpc;
mod leases;
mod sentinel;
mod store;
mod tasks;

use tasks::Tasks;

use crate::admin::route::Router;
use crate::admin::Admin;
use crate::api::Api;
use crate::config::Config;
use crate::dial::{DialError, Dialer, TlsPem};
use crate::events::{EventBus, IndexedEvent};
use crate::failover::reports::{OwnReport, Reports};
use crate::monitor::Monitor;
use crate::peer::RaftService;
use crate::raft::bootstrap::Bootstrap;
use crate::raft::freshness::LeaderContact;
use crate::raft::identity::IdentityError;
use crate::raft::read_lease::ReadLease;
use crate::raft::types::typ::StorageError;
use crate::raft::{ClusterIdentity, EventLog, Raft, SmData};
use crate::redis::Connector;

/// How long shutdown waits for the tasks (the gRPC server drains its calls in this time).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What the parts of a running node share.
struct Shared {
    config: Arc<Config>,
    raft: Raft,
    lease: ReadLease,
    view: watch::Receiver<Arc<SmData>>,
    bus: EventBus,
    identity: ClusterIdentity,
    dialer: Dialer,
    redis: Connector,
    cancel: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("opening the sled store in {dir}: {source}")]
    Open { dir: String, source: sled::Error },
    #[error("storage: {0}")]
    Storage(Box<StorageError>),
    #[error("cluster identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("raft timings rejected by openraft: {0}")]
    RaftConfig(Box<openraft::ConfigError>),
    #[error("starting raft: {0}")]
    RaftStart(String),
    #[error("binding the gRPC listener {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] DialError),
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    /// openraft's core or a critical task stopped; systemd restarts the node.
    #[error("{0}")]
    Fatal(String),
    #[error("flushing the store on shutdown: {0}")]
    Flush(sled::Error),
    #[error("{0}")]
    Sentinel(#[from] crate::resp::server::ServerError),
    #[error("starting the Sentinel port's runtime: {0}")]
    SentinelRuntime(std::io::Error),
    #[error("{0}")]
    Http(#[from] crate::http::HttpError),
    #[error("starting the monitor's runtime: {0}")]
    MonitorRuntime(std::io::Error),
    #[error("{0}")]
    SentinelTls(#[from] crate::resp::tls::TlsError),
}

impl From<openraft::ConfigError> for NodeError {
    fn from(e: openraft::ConfigError) -> Self {
        NodeError::RaftConfig(Box::new(e))
    }
}

impl From<StorageError> for NodeError {
    fn from(e: StorageError) -> Self {
        NodeError::Storage(Box::new(e))
    }
}

/// Runs the node until `shutdown` resolves (or raft stops on a fatal error, which is returned).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    // An insecure node says so on every line it logs.
    let span = if config.tls.is_none() && config.security.insecure {
        tracing::info_span!("node", id = config.id, insecure = true)
    } else {
        tracing::info_span!("node", id = config.id)
    };
    run_node(Arc::new(config), shutdown).instrument(span).await
}

async fn run_node(
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let tls = match &config.tls {
        Some(t) => Some(TlsPem::load(&t.cert, &t.key, &t.ca)?),
        None => None,
    };
    let dialer = Dialer::new(tls.clone());
    let store::Store {
        db,
        identity,
        raft,
        lease,
        view,
        event_log,
        bus,
        hook_feed,
    } = store::open(&config, &dialer).await?;
    let sentinel_listeners = sentinel::listeners(&config).await?;
    let http_listener = match config.http_listen {
        Some(addr) => Some(crate::http::bind(addr)?),
        None => None,
    };
    let listener = grpc::bind(&config, &identity).await?;
    let node = Shared {
        config: config.clone(),
        raft,
        lease,
        view,
        bus,
        identity,
        dialer,
        redis: Connector::new(config.redis_tls.clone(), config.tls_masters.clone())
            .with_hostnames(crate::redis::Hostnames::new(config.hostnames)),
        cancel: CancellationToken::new(),
    };
    let (caught_up_tx, caught_up) = watch::channel(false);
    let events = (hook_feed, event_log);
    let listeners = (listener, sentinel_listeners, http_listener);
    let (mut tasks, notify) = start(&node, listeners, tls, caught_up, events)?;
    let gate = open_events_when_caught_up(
        node.raft.clone(),
        node.bus.clone(),
        caught_up_tx,
        node.cancel.clone(),
    );
    tasks.once("event gate", gate);

    notify.ready();
    // One rule for every way the node stops: a signal, openraft's core stopping, or any critical
    // task ending (a node whose guard died would no longer fence its Redis: better restarted).
    let fatal = tokio::select! {
        _ = shutdown => None,
        e = raft_stopped(&node.raft) => Some(format!("raft core stopped: {e}")),
        e = tasks.critical_ended() => Some(e),
    };
    notify.stopping();
    stop(node, tasks, db, fatal).await
}

/// Starts every task of a running node: the gRPC server, bootstrap, the monitor, the Sentinel
/// port, the lease tasks and the failover tasks.
/// `events`: the hooks' feed, subscribed before Raft started applying (the hooks must see every
/// applied event), and the retained events.
fn start(
    node: &Shared,
    (listener, sentinel_listeners, http_listener): (
        tokio::net::TcpListener,
        crate::resp::server::Listeners,
        Option<std::net::TcpListener>,
    ),
    tls: Option<TlsPem>,
    caught_up: watch::Receiver<bool>,
    events: (broadcast::Receiver<Arc<IndexedEvent>>, EventLog),
) -> Result<(Tasks, crate::sd_notify::Notifier), NodeError> {
    let config = &node.config;
    let (hook_feed, event_log) = events;
    let (reports, contact) = (Reports::new(), LeaderContact::default());
    let lease_peers = leases::peers(node, caught_up);
    let (admin, api) = admin_and_api(node, &event_log, &reports);
    let peer = RaftService {
        raft: node.raft.clone(),
        identity: node.identity.clone(),
        node_id: config.id,
        peers: config.peers.clone(),
        sentinel_addr: config.sentinel_listen.to_string(),
        reports: reports.clone(),
        contact: contact.clone(),
        promiser: lease_peers.promiser.clone(),
        view: node.view.clone(),
        votes_from: tokio::time::Instant::now() + node.lease.vote_hold(),
    };
    let mut tasks = Tasks::default();
    let server = grpc::server(
        config,
        tls.as_ref(),
        listener,
        peer,
        api.clone(),
        node.cancel.clone(),
    )?;
    tasks.critical("gRPC server", server);
    tasks.once("bootstrap", bootstrap(node).run(node.cancel.clone()));
    // Detection on every node; decisions on the leader only (the runner idles elsewhere).
    log_redis_tls(config);
    let (own_report, info_cache) = spawn_monitor(&mut tasks, node)?;
    let (scripts_tx, scripts_rx) = watch::channel(Arc::default());
    let http_contact = contact.clone();
    let inputs = sentinel::Inputs {
        listeners: sentinel_listeners,
        contact,
        report: own_report.clone(),
        info_cache,
        scripts: scripts_rx.clone(),
        api,
        admin,
    };
    let (fresh, resp_stats) = sentinel::spawn(&mut tasks, node, inputs)?;
    let notify = crate::sd_notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "systemd will not hear from this node");
        Default::default()
    });
    let local = leases::spawn(
        &mut tasks,
        node,
        &lease_peers,
        own_report.clone(),
        notify.clone(),
    );
    let hook_runs: Arc<crate::hooks::Runs> = Arc::default();
    if let Some(listener) = http_listener {
        let ctx = Arc::new(crate::http::HttpCtx {
            node_id: config.id,
            view: node.view.clone(),
            fresh,
            report: own_report.clone(),
            colocation: local.colocation.clone(),
            writable: local.writable,
            holding: local.holding,
            raft: node.raft.clone(),
            scripts: scripts_rx,
            resp_stats,
            renewals: local.renewals.clone(),
            hook_runs: hook_runs.clone(),
            contact: http_contact,
            host: local.host.clone(),
        });
        let cancel = node.cancel.clone();
        let span = tracing::Span::current();
        // A thread of its own, named so that its CPU can be told apart (benches/http.rs).
        tasks.critical_blocking("HTTP API", move || {
            let thread = std::thread::Builder::new()
                .name("raftinel-http".into())
                .spawn(move || {
                    let _in = span.enter();
                    crate::http::run(listener, ctx, cancel)
                });
            let ended = match thread.map(std::thread::JoinHandle::join) {
                Ok(Ok(Ok(()))) => return,
                Ok(Ok(Err(e))) | Err(e) => e.to_string(),
                Ok(Err(_)) => "it panicked".to_owned(),
            };
            tracing::error!(error = %ended, "the HTTP API's thread ended");
        });
    }
    let inputs = failover::Inputs {
        reports,
        own: OwnReport {
            monitor: own_report,
            local: local.colocation,
        },
        lease_peers,
        hook_feed,
        event_log,
        scripts: scripts_tx,
        runs: hook_runs,
    };
    failover::spawn(&mut tasks, node, inputs);
    Ok((tasks, notify))
}

/// The probes on a thread and runtime of their own, like the Sentinel port: hundreds of probe
/// tasks waking on one PING grid would otherwise queue ahead of Raft's appends, replication and
/// heartbeats in the main runtime (at 200 masters a SENTINEL SET spent most of its 47 ms p50
/// there). Contention with Raft now goes through the OS scheduler.
fn spawn_monitor(
    tasks: &mut Tasks,
    node: &Shared,
) -> Result<
    (
        watch::Receiver<Arc<crate::monitor::NodeReport>>,
        crate::monitor::InfoCache,
    ),
    NodeError,
> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::MonitorRuntime)?;
    let (report, cache, supervisor) = {
        let _inside = runtime.enter();
        Monitor::start(
            node.config.id,
            node.view.clone(),
            node.cancel.clone(),
            node.redis.clone(),
        )
    };
    let supervisor = supervisor.in_current_span();
    tasks.critical_blocking("monitor", move || runtime.block_on(supervisor));
    Ok((report, cache))
}

/// The one shutdown path: cancel, wait for every task (bounded), stop Raft, flush the store.
async fn stop(
    node: Shared,
    tasks: Tasks,
    db: sled::Db,
    fatal: Option<String>,
) -> Result<(), NodeError> {
    match &fatal {
        None => tracing::info!("shutting down"),
        Some(e) => tracing::error!(error = %e, "shutting down"),
    }
    node.cancel.cancel();
    tasks.join_all(SHUTDOWN_WAIT).await;
    if let Err(e) = node.raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    drop(node);
    db.flush_async().await.map_err(NodeError::Flush)?;
    match fatal {
        Some(e) => Err(NodeError::Fatal(e)),
        None => Ok(()),
    }
}

/// The one admin path and the topology API over it.
fn admin_and_api(node: &Shared, events: &EventLog, reports: &Reports) -> (Arc<Admin>, Arc<Api>) {
    let admin = Arc::new(Admin {
        router: Router {
            raft: node.raft.clone(),
            dialer: node.dialer.clone(),
            identity: node.identity.clone(),
            lease: node.lease.clone(),
        },
        view: node.view.clone(),
        config: node.config.clone(),
        reports: reports.clone(),
        redis: node.redis.clone(),
    });
    let api = Arc::new(Api {
        admin: admin.clone(),
        watch_slots: Arc::new(tokio::sync::Semaphore::new(crate::api::MAX_WATCHES)),
        node_id: node.config.id,
        raft: node.raft.clone(),
        view: node.view.clone(),
        events: events.clone(),
        bus: node.bus.clone(),
        identity: node.identity.clone(),
        dialer: node.dialer.clone(),
        config: node.config.clone(),
        cancel: node.cancel.clone(),
    });
    (admin, api)
}

/// First-boot initialization, or waiting to be added.
fn bootstrap(node: &Shared) -> Bootstrap {
    Bootstrap {
        node_id: node.config.id,
        peers: node.config.peers.clone(),
        sentinel_addr: node.config.sentinel_listen.to_string(),
        joining: node.config.join.is_some(),
        raft: node.raft.clone(),
        identity: node.identity.clone(),
        dialer: node.dialer.clone(),
    }
}

fn log_redis_tls(config: &Config) {
    if config.redis_tls != crate::redis::RedisTls::default() {
        tracing::info!(
            ca_file = config.redis_tls.has_ca(),
            client_certificate = config.redis_tls.has_client_cert(),
            "[redis-tls] read: used for masters with tls = yes"
        );
    }
}

/// Live events start once this node has heard a current leader and applied what was committed
/// then: everything before is history (Watch can still replay it by index).
async fn open_events_when_caught_up(
    raft: Raft,
    bus: EventBus,
    caught_up: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut metrics = raft.metrics();
    let committed = loop {
        if metrics.borrow().current_leader.is_some() {
            match raft.with_raft_state(|s| s.committed).await {
                Ok(c) => break c.map(|l| l.index).unwrap_or(0),
                Err(_) => return,
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
    };
    let wait = raft.wait(None);
    let waited = wait.applied_index_at_least(Some(committed), "catch up before publishing events");
    tokio::select! {
        _ = cancel.cancelled() => {}
        r = waited => if r.is_ok() {
            bus.open_from(committed + 1);
            caught_up.send_replace(true);
            tracing::info!(from_index = committed + 1, "caught up: publishing events, promising leases");
        }
    }
}

/// Resolves when openraft's core stops (a storage error, a panic): the node must not linger.
async fn raft_stopped(raft: &Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(e) = &metrics.borrow().running_state {
            return e.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft metrics closed".to_string();
        }
    }
}
