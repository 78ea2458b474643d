//! Certificates with identities (invariant 11): a cluster CA, node certificates naming their
//! node id, admin client certificates naming an operator, made by `raftinel certs`; and reading
//! the identity back out of a peer's certificate.
//!
//! # Layout
//! - [`identity`]: the URI subjectAltName format and its parser (pure).
//! - [`issue`]: making the CA and the certificates it signs (rcgen).
//! - [`cli`]: `raftinel certs ca | node | admin | cluster`, writing PEM files.

pub mod cli;
pub mod identity;
pub mod issue;

pub use identity::{identity, CertError, CertIdentity};
