//! The node's lease tasks: this node as a promiser (what the peer service answers), the holder's
//! renewal rounds, and the guard that fences the local Redis, carries the VIP and feeds the
//! watchdogs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::tasks::Tasks;
use super::Shared;
use crate::config::Config;
use crate::lease::fence::Guard;
use crate::lease::holding::Holding;
use crate::lease::promiser::Promiser;
use crate::lease::renew::{renew, Peers};
use crate::lease::vip::Vips;
use crate::lease::watchdog::Alive;
use crate::monitor::{Colocation, NodeReport};
use crate::sd_notify::Notifier;
use crate::topology::Addr;

/// How long the old holder's VIP may outlive its lease: the kernel removes it V (+ up to 1 s of
/// granularity) after its last refresh, which came at most T after the renewal was sent.
fn vip_extra(config: &Config) -> Duration {
    let l = &config.lease;
    Duration::from_millis(
        (l.vip_lifetime_s * 1000 + 1000 + l.renew_timeout_ms).saturating_sub(l.duration_ms),
    )
}

/// This node as a promiser and as the asker of promises. `caught_up` turns true once the node
/// has applied what the current leader had committed: before that its state may predate a
/// revocation (the model's restart counterexample), so it promises nothing.
pub(super) fn peers(node: &Shared, caught_up: watch::Receiver<bool>) -> Peers {
    let config = &node.config;
    let promiser = Promiser::new(
        config.id,
        std::time::Instant::now(),
        Duration::from_millis(config.lease.duration_ms),
        Duration::from_millis(config.lease.margin_ms),
        vip_extra(config),
        node.view.clone(),
        caught_up,
    );
    Peers {
        node_id: config.id,
        dialer: node.dialer.clone(),
        identity: node.identity.clone(),
        promiser,
    }
}

/// Starts the renewer and the guard as critical tasks; returns what the guard reports about
/// this host.
pub(super) fn spawn(
    tasks: &mut Tasks,
    node: &Shared,
    peers: &Peers,
    report: watch::Receiver<Arc<NodeReport>>,
    notify: Notifier,
) -> Local {
    let config = &node.config;
    let (holding_tx, holding_rx) = watch::channel(Holding::default());
    let (local_ids_tx, local_ids_rx) = watch::channel(Arc::default());
    let (writable_tx, writable_rx) = watch::channel(Arc::default());
    let (host_tx, host_rx) = watch::channel(Arc::default());
    let renewals: Arc<crate::lease::renew::Renewals> = Arc::default();
    let local = Local {
        colocation: local_ids_rx,
        writable: writable_rx,
        host: host_rx,
        holding: holding_rx.clone(),
        renewals: renewals.clone(),
    };
    tasks.critical(
        "lease renewer",
        renew(
            peers.clone(),
            node.view.clone(),
            config.lease,
            (holding_tx, renewals),
            node.cancel.clone(),
        ),
    );
    let guard = Guard {
        node_id: config.id,
        locals: config
            .local_redis
            .iter()
            .map(|a| Addr::new(a.ip().to_string(), a.port()))
            .collect(),
        view: node.view.clone(),
        report,
        holding: holding_rx,
        local_ids: local_ids_tx,
        writable: writable_tx,
        host: host_tx,
        every: Duration::from_millis(config.lease.renew_interval_ms.max(1)),
        vips: Vips::new(
            config.id,
            u32::try_from(config.lease.vip_lifetime_s).unwrap_or(u32::MAX),
            config.vip_interfaces.clone(),
            config.vips.clone(),
            config.vip_allowed.clone(),
            peers.clone(),
            Duration::from_millis(config.lease.renew_timeout_ms.max(1)),
        ),
        redis: node.redis.clone(),
        alive: Alive::new(notify, config.watchdog_device.clone()),
    };
    tasks.critical("lease guard", guard.run(node.cancel.clone()));
    local
}

/// What the guard says about this host: the run ids and released grants (for the reports), the
/// masters it made writable, and the lease's window.
pub(super) struct Local {
    pub colocation: watch::Receiver<Arc<Colocation>>,
    pub writable: watch::Receiver<Arc<std::collections::BTreeSet<String>>>,
    pub host: watch::Receiver<Arc<crate::lease::fence::HostState>>,
    pub holding: watch::Receiver<Holding>,
    pub renewals: Arc<crate::lease::renew::Renewals>,
}
