//! One raftinel node as a tokio service: opens the store, starts openraft and the gRPC server,
//! runs first-boot initialization, and owns the single shutdown path (signal → cancel → wait for
//! every task → raft shutdown → sled flush).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tracing::Instrument;

mod tasks;

use tasks::Tasks;

use crate::admin::authn::{Authenticator, Transport};
use crate::admin::route::Router;
use crate::admin::Admin;
use crate::api::Api;
use crate::config::Config;
use crate::dial::{DialError, Dialer, TlsPem};
use crate::events::EventBus;
use crate::failover::reports::{send_reports, OwnReport, Reports};
use crate::failover::run::Runner;
use crate::lease::fence::Guard;
use crate::lease::holding::Holding;
use crate::lease::promiser::Promiser;
use crate::lease::renew::{renew, Peers as LeasePeers};
use crate::lease::vip::Vips;
use crate::monitor::Monitor;
use crate::pb::raft_internal_server::RaftInternalServer;
use crate::pb::topology_server::TopologyServer;
use crate::peer::RaftService;
use crate::raft::bootstrap::Bootstrap;
use crate::raft::freshness::LeaderContact;
use crate::raft::identity::IdentityError;
use crate::raft::network::Network;
use crate::raft::types::typ::StorageError;
use crate::raft::{ClusterIdentity, LogStore, Raft, StateMachineStore};
use crate::redis::Connector;
use crate::topology::Addr;

/// How long the old holder's VIP may outlive its lease: the kernel removes it V (+ up to 1 s of
/// granularity) after its last refresh, which came at most T after the renewal was sent.
fn vip_extra(config: &Config) -> Duration {
    let l = &config.lease;
    Duration::from_millis(
        (l.vip_lifetime_s * 1000 + 1000 + l.renew_timeout_ms).saturating_sub(l.duration_ms),
    )
}

/// sled's default cache is 1 GiB; raftinel's state is a few KB plus a bounded log.
const SLED_CACHE_BYTES: u64 = 4 << 20;
/// Raft RPCs carry snapshots and entry batches; only members get as far as decoding them.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Topology requests are names, addresses and options.
const MAX_API_MESSAGE_BYTES: usize = 1 << 20;
const MAX_CALLS_PER_CONNECTION: usize = 256;
/// How long shutdown waits for the tasks (the gRPC server drains its calls in this time).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
const MAX_HEADER_BYTES: u32 = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("opening the sled store in {dir}: {source}")]
    Open { dir: String, source: sled::Error },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cluster identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("raft timings rejected by openraft: {0}")]
    RaftConfig(#[from] openraft::ConfigError),
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
    SentinelTls(#[from] crate::resp::tls::TlsError),
}

#[allow(clippy::result_large_err)] // openraft's own error type, returned once at startup
fn raft_config(config: &Config) -> Result<openraft::Config, openraft::ConfigError> {
    let r = &config.raft;
    openraft::Config {
        cluster_name: "raftinel".to_string(),
        heartbeat_interval: r.heartbeat_ms,
        election_timeout_min: r.election_min_ms,
        election_timeout_max: r.election_max_ms,
        install_snapshot_timeout: r.install_snapshot_timeout_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_every),
        max_in_snapshot_log_to_keep: r.keep_logs,
        ..Default::default()
    }
    .validate()
}

/// How callers of this node's gRPC port are authenticated, from its config (invariant 11).
fn authenticator(config: &Config) -> Authenticator {
    let transport = match (&config.tls, config.security.insecure) {
        (Some(_), _) => Transport::Tls,
        (None, true) => Transport::Insecure,
        (None, false) => Transport::Loopback,
    };
    Authenticator::new(transport, config.security.admin_token.clone())
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
    let dir = config.data_dir.display().to_string();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
        dir: dir.clone(),
        source,
    })?;
    let db = sled::Config::new()
        .path(&config.data_dir)
        .cache_capacity(SLED_CACHE_BYTES)
        .open()
        .map_err(|source| NodeError::Open {
            dir: dir.clone(),
            source,
        })?;

    let tls = match &config.tls {
        Some(t) => Some(TlsPem::load(&t.cert, &t.key, &t.ca)?),
        None => None,
    };
    let dialer = Dialer::new(tls.clone());
    let identity = ClusterIdentity::open(&db, config.id)?;
    let bus = EventBus::default();
    // Before Raft starts applying: the hooks must see every applied event.
    let hook_feed = bus.subscribe();
    let bus_gate = bus.clone();
    let sm = StateMachineStore::open(&db, bus.clone())?;
    let log_store = LogStore::open(&db, sm.install_gate()).map_err(|source| NodeError::Open {
        dir: dir.clone(),
        source,
    })?;
    let view = sm.view();
    let sm_view = sm.view();
    let event_log = sm.event_log();
    let (hooks_view, hooks_log) = (sm.view(), sm.event_log());
    let network = Network::new(
        dialer.clone(),
        identity.clone(),
        Duration::from_millis(config.raft.heartbeat_ms),
    );
    let raft = Raft::new(
        config.id,
        Arc::new(raft_config(&config)?),
        network,
        log_store,
        sm,
    )
    .await
    .map_err(|e| NodeError::RaftStart(e.to_string()))?;

    // A taken Sentinel port is a configuration error: say so now, not once the node is fresh.
    crate::resp::server::check_bind(config.sentinel_listen).await?;
    let sentinel_listeners = crate::resp::server::Listeners {
        plain: config.sentinel_listen,
        tls: match (&config.sentinel_tls, &config.tls) {
            (Some(t), Some(files)) => {
                crate::resp::server::check_bind(t.listen).await?;
                Some((t.listen, crate::resp::tls::acceptor(files, t.auth_clients)?))
            }
            _ => None,
        },
    };
    let cancel = CancellationToken::new();
    let reports = Reports::new();
    let contact = LeaderContact::default();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    tracing::info!(listen = %config.listen, cluster = ?identity.get(), security = config.security_summary(), "gRPC listening");

    let boot = std::time::Instant::now();
    // Until this node has applied what the current leader committed, its state may predate a
    // revocation (the model's restart counterexample): no promises, no renewals before that.
    let (caught_up_tx, caught_up) = tokio::sync::watch::channel(false);
    let promiser = Promiser::new(
        config.id,
        boot,
        Duration::from_millis(config.lease.duration_ms),
        Duration::from_millis(config.lease.margin_ms),
        vip_extra(&config),
        sm_view.clone(),
        caught_up,
    );
    let lease_peers = LeasePeers {
        node_id: config.id,
        dialer: dialer.clone(),
        identity: identity.clone(),
        promiser: promiser.clone(),
    };
    let raft_service = RaftService {
        raft: raft.clone(),
        identity: identity.clone(),
        node_id: config.id,
        peers: config.peers.clone(),
        sentinel_addr: config.sentinel_listen.to_string(),
        reports: reports.clone(),
        contact: contact.clone(),
        promiser,
    };
    let resp_bus = bus.clone();
    let resp_identity = identity.clone();
    let redis = Connector::new(config.redis_tls.clone(), config.tls_masters.clone());
    let admin = Arc::new(Admin {
        router: Router {
            raft: raft.clone(),
            dialer: dialer.clone(),
            identity: identity.clone(),
        },
        view: view.clone(),
        config: config.clone(),
        reports: reports.clone(),
        redis: redis.clone(),
    });
    let api = Arc::new(Api {
        admin: admin.clone(),
        watch_slots: Arc::new(tokio::sync::Semaphore::new(crate::api::MAX_WATCHES)),
        node_id: config.id,
        raft: raft.clone(),
        view,
        events: event_log,
        bus,
        identity: identity.clone(),
        dialer: dialer.clone(),
        config: config.clone(),
        cancel: cancel.clone(),
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Reflection(e.to_string()))?;
    let authn = authenticator(&config);
    // Bounds on what any caller may cost before it is authenticated: streams per connection,
    // header size, and (per service) body size; bodies are decoded only after the interceptor.
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .concurrency_limit_per_connection(MAX_CALLS_PER_CONNECTION)
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION as u32))
        .http2_max_header_list_size(MAX_HEADER_BYTES);
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.server())?;
    }
    let server_cancel = cancel.clone();
    let server = builder
        .add_service(InterceptedService::new(
            RaftInternalServer::new(raft_service)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            authn.interceptor(),
        ))
        .add_service(InterceptedService::new(
            TopologyServer::from_arc(api.clone()).max_decoding_message_size(MAX_API_MESSAGE_BYTES),
            authn.interceptor(),
        ))
        .add_service(reflection)
        // The builder's tcp_nodelay does not reach a listener we bound ourselves: without it, Nagle and
        // delayed ACKs add ~40 ms to a share of small RPCs.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move { server_cancel.cancelled().await },
        );
    let mut tasks = Tasks::default();
    tasks.critical("gRPC server", async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "gRPC server ended with an error");
        }
    });

    let identity_for_reports = identity.clone();
    let dialer_for_reports = dialer.clone();
    let bootstrap = Bootstrap {
        node_id: config.id,
        peers: config.peers.clone(),
        sentinel_addr: config.sentinel_listen.to_string(),
        joining: config.join.is_some(),
        raft: raft.clone(),
        identity,
        dialer,
    };
    tasks.once("bootstrap", bootstrap.run(cancel.clone()));

    // Detection on every node; decisions on the leader only (the runner idles elsewhere).
    if config.redis_tls != crate::redis::RedisTls::default() {
        tracing::info!(
            ca_file = config.redis_tls.has_ca(),
            client_certificate = config.redis_tls.has_client_cert(),
            "[redis-tls] read: used for masters with tls = yes"
        );
    }
    let own_report = Monitor::spawn(config.id, sm_view.clone(), cancel.clone(), redis.clone());
    let (odown_tx, odown_rx) = tokio::sync::watch::channel(Arc::default());
    let (fresh_tx, fresh_rx) = tokio::sync::watch::channel(false);
    tasks.critical(
        "freshness",
        crate::resp::server::track_freshness(
            raft.clone(),
            contact,
            config.raft.election_max_ms,
            fresh_tx,
            cancel.clone(),
        ),
    );
    let resp_ctx = Arc::new(crate::resp::Ctx {
        node_id: config.id,
        view: sm_view.clone(),
        report: own_report.clone(),
        odown: odown_rx,
        api,
        admin,
        main: tokio::runtime::Handle::current(),
        raft: raft.clone(),
        bus: resp_bus,
        identity: resp_identity,
        auth: config.sentinel_auth.clone(),
        limits: config.sentinel_limits,
        port: config.sentinel_listen.port(),
        election_max_ms: config.raft.election_max_ms,
        run_id: crate::resp::random_run_id(),
        started: tokio::time::Instant::now(),
        stats: Default::default(),
    });
    // Its own single-threaded runtime, like a sentinel's event loop: client load competes with
    // Raft for the CPU through the OS scheduler, never in the task queue of the runtime that
    // sends heartbeats.
    let resp_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::SentinelRuntime)?;
    let serve = crate::resp::server::serve(resp_ctx, sentinel_listeners, fresh_rx, cancel.clone())
        .in_current_span();
    tasks.critical_blocking("Sentinel port", move || resp_runtime.block_on(serve));
    tasks.critical(
        "Sentinel events",
        crate::monitor::events::publish_sdown(
            own_report.clone(),
            sm_view.clone(),
            bus_gate.clone(),
            cancel.clone(),
        ),
    );
    // Leases: renewal rounds while the log grants this node one; the fence on the local Redis.
    let notify = crate::sd_notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "systemd will not hear from this node");
        Default::default()
    });
    let (holding_tx, holding_rx) = tokio::sync::watch::channel(Holding::default());
    let (local_ids_tx, local_ids_rx) = tokio::sync::watch::channel(Arc::default());
    tasks.critical(
        "lease renewer",
        renew(
            lease_peers.clone(),
            sm_view.clone(),
            config.lease,
            holding_tx,
            cancel.clone(),
        ),
    );
    let guard = Guard {
        node_id: config.id,
        locals: config
            .local_redis
            .iter()
            .map(|a| Addr::new(a.ip().to_string(), a.port()))
            .collect(),
        view: sm_view.clone(),
        report: own_report.clone(),
        holding: holding_rx,
        local_ids: local_ids_tx,
        every: Duration::from_millis(config.lease.renew_interval_ms.max(1)),
        vips: Vips::new(
            config.id,
            u32::try_from(config.lease.vip_lifetime_s).unwrap_or(u32::MAX),
            config.vip_interfaces.clone(),
            config.vips.clone(),
            config.vip_allowed.clone(),
            lease_peers.clone(),
            Duration::from_millis(config.lease.renew_timeout_ms.max(1)),
        ),
        redis: redis.clone(),
        alive: crate::lease::watchdog::Alive::new(notify.clone(), config.watchdog_device.clone()),
    };
    tasks.critical("lease guard", guard.run(cancel.clone()));
    tasks.critical(
        "report sender",
        send_reports(
            config.id,
            raft.clone(),
            OwnReport {
                monitor: own_report,
                local: local_ids_rx,
            },
            reports.clone(),
            identity_for_reports,
            dialer_for_reports,
            cancel.clone(),
        ),
    );
    let runner = Runner {
        node_id: config.id,
        raft: raft.clone(),
        view: sm_view,
        reports,
        bus: bus_gate.clone(),
        sent: Default::default(),
        odown_names: Arc::new(odown_tx),
        lease_peers,
        lease_timeout: Duration::from_millis(config.lease.renew_timeout_ms.max(1)),
        config_vips: Arc::new(config.vips.clone()),
        redis,
    };
    tasks.critical("failover runner", runner.run(cancel.clone()));
    // Sentinel's scripts, run by whichever node leads when an event is applied.
    tasks.critical(
        "hooks",
        crate::hooks::run(
            config.id,
            crate::hooks::Policy {
                deny_scripts_reconfig: config.deny_scripts_reconfig,
                own: config.scripts.clone(),
            },
            raft.clone(),
            hook_feed,
            hooks_view,
            hooks_log,
            cancel.clone(),
        ),
    );
    tasks.once(
        "event gate",
        open_events_when_caught_up(raft.clone(), bus_gate, caught_up_tx, cancel.clone()),
    );

    notify.ready();
    // One rule for every way the node stops: a signal, openraft's core stopping, or any critical
    // task ending (a node whose guard died would no longer fence its Redis: better restarted).
    let fatal = tokio::select! {
        _ = shutdown => None,
        e = raft_stopped(&raft) => Some(format!("raft core stopped: {e}")),
        e = tasks.critical_ended() => Some(e),
    };
    notify.stopping();
    match &fatal {
        None => tracing::info!("shutting down"),
        Some(e) => tracing::error!(error = %e, "shutting down"),
    }
    cancel.cancel();
    tasks.join_all(SHUTDOWN_WAIT).await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    drop(raft);
    db.flush_async().await.map_err(NodeError::Flush)?;
    match fatal {
        Some(e) => Err(NodeError::Fatal(e)),
        None => Ok(()),
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
