//! The one Redis connection layer of monitor, lease and failover: connecting (address, AUTH with
//! Sentinel's auth-user/auth-pass, optional TLS, timeouts), what a failure means (from the error's
//! kind, never its text), and the commands more than one of them sends.
//!
//! - [`conn`]: [`Connector`], [`Conn`], [`Access`], [`ConnError`] and [`Failure`].
//! - [`ops`]: fence, unfence, CLIENT KILL, promote, repoint, FAILOVER TO, ROLE, INFO.
//! - [`tls`]: the node's `[redis-tls]` files, read and checked once at startup.
//! - [`hostnames`]: `resolve-hostnames` / `announce-hostnames`: lookups, identity, announcing.

pub mod conn;
pub mod hostnames;
pub mod ops;
pub mod tls;

pub use conn::{classify, Access, Conn, ConnError, Connector, Failure};
pub use hostnames::{HostError, HostnameSettings, Hostnames};
pub use ops::{Role, FENCE_MAX_LAG, FENCE_REPLICAS};
pub use tls::{RedisTls, TlsError};
