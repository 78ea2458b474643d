//! raftinel: a Raft-backed Redis high-availability controller and drop-in for Redis Sentinel.
//!
//! # Layout
//! - [`config`]: the TOML file and `serve` flags, defaults and the timing rules.
//! - [`topology`]: the replicated state and the commands that change it (pure, no I/O).
//! - [`raft`]: openraft wiring: sled log store and state machine, gRPC transport, cluster
//!   identity, first-boot initialization.
//! - [`admin`]: who a caller is ([`admin::Principal`]) and what it may do: the one admin path.
//! - [`api`]: the gRPC `Topology` service (reads, writes, forwarding, Watch, membership).
//! - [`redis`](crate::redis): the one connection layer to Redis (AUTH, TLS, timeouts, failure kinds) and
//!   the role commands, used by `monitor`, `lease` and `failover`.
//! - [`resp`]: the Sentinel-compatible RESP2/RESP3 port, open only while the node is fresh.
//! - [`events`]: the broadcast stream of applied topology events.
//! - [`peer`]: the node-to-node service (Raft RPCs, promises, reports), members only.
//! - [`failover`]: the leader's failover: pure decisions, a thin executor over two ports.
//! - [`lease`]: leases, the fence on local Redis, the VIP, the watchdog device.
//! - [`node`]: one node as a service, and its shutdown path.
//! - [`ctl`]: `raftinel ctl`, the operator's client.
//! - [`dial`]: outgoing gRPC channels, plain or mTLS. [`pb`]: generated protobuf code.
//! - [`fence_cmd`]: `raftinel fence`, systemd's `ExecStopPost`: fences every local Redis.
//! - [`http`]: the HTTP API: health checks for load balancers, probes, the cluster summary.
//! - [`sd_notify`]: systemd's readiness and watchdog messages.
//! - [`glob`]: Redis's glob patterns (PSUBSCRIBE, SENTINEL RESET, CONFIG GET).
//! - [`loglevel`]: Sentinel's `loglevel` over the process's tracing filter.

pub mod admin;
pub mod api;
pub mod certs;
pub mod config;
pub mod ctl;
pub mod dial;
pub mod events;
pub mod failover;
pub mod fence_cmd;
pub mod glob;
pub mod hooks;
pub mod http;
pub mod lease;
pub mod loglevel;
pub mod monitor;
pub mod node;
pub mod pb;
pub mod peer;
pub mod raft;
pub mod redis;
pub mod resp;
pub mod sd_notify;
pub mod topology;
