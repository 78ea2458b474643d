//! The one admin path (DESIGN invariant 11): who is calling, what they may do, and carrying out
//! what they asked on the leader. Both facades (gRPC, the Sentinel port) turn their credential
//! into a [`Principal`] and their request into an [`AdminRequest`], and call [`Admin::execute`];
//! nothing else decides whether a write is allowed or where it runs.
//!
//! # Layout
//! - [`principal`]: principals and the authorization rule (pure).
//! - [`authn`]: a gRPC caller's certificate, token, declared id or address → its principal.
//! - [`request`]: the requests, and forwarding one to the leader's `Topology` service.
//! - [`exec`]: checking and committing a request; [`route`]: getting a call to the leader;
//!   [`admission`]: whether a node may be added under an id (pure).
//! - [`same_instance`]: MONITOR of an instance another name monitors at another address.
//! - [`status`]: every mapping from raftinel and openraft errors to gRPC status codes.

mod admission;
pub mod authn;
mod exec;
mod principal;
mod request;
pub mod route;
mod same_instance;
pub mod status;

pub use exec::{now_ms, Admin, AdminError};
pub use principal::{authorize, Action, Denied, Principal};
pub use request::{AdminReply, AdminRequest};
