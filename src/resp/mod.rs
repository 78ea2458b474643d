//! The Sentinel-compatible RESP2/RESP3 server: unchanged Sentinel clients, scripts and
//! monitoring talk to raftinel through it (DESIGN "Clients"; `reference/sentinel-surface.md` is
//! the specification of every reply).
//!
//! # Layout
//! - [`frame`]: request decoding with Redis's limits; [`reply`]: reply values and their bytes.
//! - [`session`]: one connection's state (protocol, auth, name, subscriptions).
//! - [`access`]: the connection's principal (roles, protected mode) and the NOPERM refusal.
//! - [`cmd`]: one file per command family; `cmd::dispatch` routes a request.
//! - [`server`]: the listeners (plain and TLS), opened only while this node is fresh
//!   (invariant 9), and the one connection loop, over either, with pipelining and pub/sub pushes.
//! - [`admission`]: client slots, in all and per source address; [`tls`]: the TLS acceptor.
//!
//! Who-is-master answers come from the applied state; health fields from this node's own
//! observations. Writes (MONITOR, REMOVE, SET, FAILOVER, RESET) go through the admin path as
//! the session's principal, so they are authorized and committed like `raftinel ctl`'s.

pub mod access;
pub mod admission;
pub mod cmd;
pub mod frame;
pub mod order;
pub mod peers;
pub mod reply;
pub mod server;
pub mod session;
pub mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::admin::Admin;
use crate::api::Api;
use crate::config::{SentinelAuth, SentinelLimits};
use crate::events::IndexedEvent;
use crate::monitor::NodeReport;
use crate::raft::{ClusterIdentity, Raft, SmData};

/// What every connection of this node shares.
pub struct Ctx {
    pub node_id: u64,
    pub view: watch::Receiver<Arc<SmData>>,
    /// This node's own observations: the health fields of every reply.
    pub report: watch::Receiver<Arc<NodeReport>>,
    /// This node's last INFO of each instance (SENTINEL INFO-CACHE).
    pub info_cache: crate::monitor::InfoCache,
    /// This node's script queue (the hooks), running first.
    pub scripts: watch::Receiver<crate::hooks::PendingScripts>,
    /// The other voters as this node's probes see them (SENTINELS flags).
    pub peers: watch::Receiver<peers::PeerView>,
    pub api: Arc<Api>,
    /// The admin path every write goes through.
    pub admin: Arc<Admin>,
    /// The node's main runtime: writes and probes run there, next to Raft and the gRPC
    /// channels, while the Sentinel port has a runtime of its own so that a flood of clients
    /// never queues ahead of heartbeats.
    pub main: tokio::runtime::Handle,
    pub raft: Raft,
    /// The events for this node's subscribers, in one sentinel's order (`order`).
    pub feed: broadcast::Sender<Arc<IndexedEvent>>,
    pub identity: ClusterIdentity,
    pub auth: SentinelAuth,
    pub limits: SentinelLimits,
    /// `resolve-hostnames` / `announce-hostnames` and what each hostname resolved to.
    pub hostnames: crate::redis::Hostnames,
    pub port: u16,
    pub election_max_ms: u64,
    /// A random id of this process, as Redis's INFO `run_id` (distinct from SENTINEL MYID).
    pub run_id: String,
    pub started: Instant,
    /// Shared with the HTTP API's metrics.
    pub stats: Arc<Stats>,
}

/// Counters for INFO.
#[derive(Default)]
pub struct Stats {
    pub next_client_id: AtomicU64,
    pub connected: AtomicU64,
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected: AtomicU64,
    pub pubsub_clients: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Ctx {
    /// The 40-hex id SENTINEL MYID returns and SENTINELS lists: 32 hex digits derived from the
    /// cluster id (a digest, so the port does not hand the id out) followed by the node id (8 hex
    /// digits), so any node can name any other the same way and the id survives restarts.
    pub fn sentinel_id(&self, node_id: u64) -> String {
        sentinel_id(&self.identity.get().unwrap_or_default(), node_id)
    }
}

pub fn sentinel_id(cluster_id: &str, node_id: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"raftinel sentinel id\0");
    ctx.update(cluster_id.as_bytes());
    let digest = ctx.finish();
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}{:08x}", node_id & 0xffff_ffff)
}

/// 40 random hex digits.
pub fn random_run_id() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentinel_ids_are_40_hex_and_distinct_per_node() {
        let a = super::sentinel_id("0123456789abcdef0123456789ABCDEF", 1);
        let b = super::sentinel_id("0123456789abcdef0123456789ABCDEF", 2);
        assert!(a.ends_with("00000001") && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..32], b[..32]);
        assert_ne!(a, b);
        // The port never hands out the cluster id itself.
        assert!(!a.contains("0123456789abcdef"));
        assert_eq!(super::sentinel_id("", 3).len(), 40);
        assert!(super::random_run_id()
            .chars()
            .all(|c| c.is_ascii_hexdigit()));
    }
}
