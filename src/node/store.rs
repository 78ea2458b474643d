//! The node's storage and Raft: the sled store in the data dir, the cluster identity, the log
//! and state machine, and openraft started on them with this node's timings.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::NodeError;
use crate::config::Config;
use crate::dial::Dialer;
use crate::events::{EventBus, IndexedEvent};
use crate::raft::network::Network;
use crate::raft::read_lease::ReadLease;
use crate::raft::{ClusterIdentity, EventLog, LogStore, Raft, SmData, StateMachineStore};

/// sled's default cache is 1 GiB; raftinel's state is a few KB plus a bounded log.
const SLED_CACHE_BYTES: u64 = 4 << 20;

/// Everything the rest of the node reads from storage.
pub(super) struct Store {
    pub db: sled::Db,
    pub identity: ClusterIdentity,
    pub raft: Raft,
    /// The followers' acknowledgements, heard by the network, for lease reads.
    pub lease: ReadLease,
    pub view: watch::Receiver<Arc<SmData>>,
    pub event_log: EventLog,
    pub bus: EventBus,
    /// Subscribed before Raft starts applying: the hooks must see every applied event.
    pub hook_feed: broadcast::Receiver<Arc<IndexedEvent>>,
}

/// Opens (or creates) the store in the data dir and starts openraft on it.
pub(super) async fn open(config: &Config, dialer: &Dialer) -> Result<Store, NodeError> {
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
    let identity = ClusterIdentity::open(&db, config.id)?;
    let bus = EventBus::default();
    let hook_feed = bus.subscribe();
    let sm = StateMachineStore::open(&db, bus.clone())?;
    let log_store =
        LogStore::open(&db, sm.install_gate()).map_err(|source| NodeError::Open { dir, source })?;
    let (view, event_log) = (sm.view(), sm.event_log());
    let lease = ReadLease::new(Duration::from_millis(config.raft.election_min_ms));
    let network = Network::new(
        dialer.clone(),
        identity.clone(),
        Duration::from_millis(config.raft.heartbeat_ms),
        lease.clone(),
    );
    let raft = Raft::new(
        config.id,
        Arc::new(raft_config(config)?),
        network,
        log_store,
        sm,
    )
    .await
    .map_err(|e| NodeError::RaftStart(e.to_string()))?;
    Ok(Store {
        db,
        identity,
        raft,
        lease,
        view,
        event_log,
        bus,
        hook_feed,
    })
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
