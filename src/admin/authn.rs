//! Who is calling over gRPC (invariant 11): a caller's certificate, token, declared node id and
//! address become a [`Principal`]. Runs in an interceptor, before tonic decodes the body, so an
//! unauthenticated caller never costs a large decode. The rule itself ([`classify`]) is pure.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use super::Principal;
use crate::certs::CertIdentity;

/// With which a node names itself on a plaintext cluster. Ignored under TLS, where only the
/// certificate counts.
pub use crate::raft::identity::NODE_HEADER;
/// Metadata key of an operator's token: `authorization: Bearer <token>`.
pub const TOKEN_HEADER: &str = "authorization";

/// How this node's gRPC port is protected, from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// mTLS: identities come from CA-signed certificates only.
    Tls,
    /// Plaintext with every gRPC address on loopback: every caller runs on this host, so a
    /// declared node id is believed and any other caller is an operator (Redis's protected mode).
    Loopback,
    /// Plaintext on a network, by the operator's explicit `insecure = true`.
    Insecure,
}

/// What a call brought, as the transport saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity in the caller's verified client certificate, if it sent one.
    pub cert: Option<CertIdentity>,
    /// The node id the caller declared in [`NODE_HEADER`].
    pub declared_node: Option<u64>,
    /// Whether it presented the configured admin token.
    pub token_ok: bool,
    /// Whether it connected from a loopback address.
    pub loopback: bool,
}

/// The whole rule: which principal a call's credentials prove.
pub fn classify(transport: Transport, token_configured: bool, c: &Credentials) -> Principal {
    let token = || Principal::Admin("token".to_owned());
    match transport {
        Transport::Tls => match &c.cert {
            Some(CertIdentity::Node(id)) => Principal::Node(*id),
            Some(CertIdentity::Admin(name)) => Principal::Admin(name.clone()),
            None if c.token_ok => token(),
            None => Principal::Client,
        },
        Transport::Loopback => match c.declared_node {
            Some(id) if c.loopback => Principal::Node(id),
            _ if c.token_ok => token(),
            _ if c.loopback => Principal::Admin("local".to_owned()),
            _ => Principal::Client,
        },
        Transport::Insecure => match c.declared_node {
            Some(id) => Principal::Node(id),
            None if c.token_ok => token(),
            None if token_configured => Principal::Client,
            None => Principal::Admin("insecure".to_owned()),
        },
    }
}

/// A node-to-node call is admitted only from a node identity that is a member of the current
/// membership (voter or learner). `member(id)` answers from that membership; `None` means this
/// node has none yet (not initialized, or joining), and then any node identity is admitted: that
/// is how it learns the cluster.
pub fn admit_member(
    who: &Principal,
    member: impl FnOnce(u64) -> Option<bool>,
) -> Result<u64, Status> {
    match who {
        Principal::Node(id) => match member(*id) {
            Some(true) | None => Ok(*id),
            Some(false) => Err(Status::permission_denied(format!(
                "node {id} is not a member of this cluster; refusing a node-to-node call"
            ))),
        },
        other => Err(Status::unauthenticated(format!(
            "node-to-node call from {}: only a member's node certificate may make it",
            other.describe()
        ))),
    }
}

/// Appends and snapshots: from a member, or from a node this node never saw removed. A follower
/// behind the membership changes does not know a newer leader, and refusing it, it could never
/// catch up; a removed node stays refused. `removed(id)`: the id left the membership in this
/// node's applied log.
pub fn admit_leader(
    who: &Principal,
    member: impl FnOnce(u64) -> Option<bool>,
    removed: impl FnOnce(u64) -> bool,
) -> Result<u64, Status> {
    admit_member(who, |id| member(id).map(|m| m || !removed(id)))
}

/// Whether `id` is in `raft`'s current (effective) membership, voter or learner; `None` while
/// the membership is empty. Read in place: it runs on every heartbeat.
pub fn membership_of(raft: &crate::raft::Raft, id: u64) -> Option<bool> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    membership.nodes().next()?;
    Some(membership.get_node(&id).is_some())
}

/// Turns requests into principals for this node's gRPC services.
#[derive(Clone)]
pub struct Authenticator {
    transport: Transport,
    token: Option<Arc<str>>,
}

impl Authenticator {
    pub fn new(transport: Transport, token: Option<String>) -> Self {
        Authenticator {
            transport,
            token: token.map(Arc::from),
        }
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The principal of `req`; a certificate that does not carry a raftinel identity is refused
    /// outright rather than treated as anonymous, so a misissued certificate is noticed.
    pub fn principal<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let cert = match (self.transport, req.peer_certs()) {
            (Transport::Tls, Some(chain)) => match chain.first() {
                Some(leaf) => Some(crate::certs::identity(leaf.as_ref()).map_err(|e| {
                    Status::unauthenticated(format!("client certificate refused: {e}"))
                })?),
                None => None,
            },
            _ => None,
        };
        let creds = Credentials {
            cert,
            declared_node: declared_node(req.metadata()),
            token_ok: self.token_ok(req.metadata()),
            loopback: req.remote_addr().is_some_and(|a| a.ip().is_loopback()),
        };
        Ok(classify(self.transport, self.token.is_some(), &creds))
    }

    fn token_ok(&self, md: &MetadataMap) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        md.get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(expected.as_bytes(), given.as_bytes()))
    }

    /// A tonic interceptor: computes the principal before the body is decoded and leaves it in
    /// the request's extensions, where [`principal_of`] finds it.
    pub fn interceptor(
        &self,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + 'static {
        let this = self.clone();
        move |mut req: Request<()>| {
            let who = this.principal(&req)?;
            req.extensions_mut().insert(who);
            Ok(req)
        }
    }
}

/// The principal the interceptor found; a request that bypassed it is a client.
pub fn principal_of<T>(req: &Request<T>) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Client)
}

fn declared_node(md: &MetadataMap) -> Option<u64> {
    md.get(NODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .filter(|id| *id > 0)
}

/// Compares in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(cert: Option<CertIdentity>, node: Option<u64>, token: bool, lo: bool) -> Credentials {
        Credentials {
            cert,
            declared_node: node,
            token_ok: token,
            loopback: lo,
        }
    }

    fn admin(n: &str) -> Principal {
        Principal::Admin(n.to_owned())
    }

    #[test]
    fn under_tls_only_certificates_and_tokens_count() {
        let t = Transport::Tls;
        let node = Some(CertIdentity::Node(3));
        assert_eq!(
            classify(t, false, &creds(node, None, false, false)),
            Principal::Node(3)
        );
        let ops = Some(CertIdentity::Admin("ops".into()));
        assert_eq!(
            classify(t, false, &creds(ops, Some(2), false, true)),
            admin("ops")
        );
        // A declared id and a loopback address prove nothing under TLS.
        assert_eq!(
            classify(t, false, &creds(None, Some(2), false, true)),
            Principal::Client
        );
        assert_eq!(
            classify(t, true, &creds(None, None, true, false)),
            admin("token")
        );
    }

    #[test]
    fn loopback_plaintext_believes_local_callers() {
        let t = Transport::Loopback;
        assert_eq!(
            classify(t, false, &creds(None, Some(2), false, true)),
            Principal::Node(2)
        );
        assert_eq!(
            classify(t, false, &creds(None, None, false, true)),
            admin("local")
        );
        // Only reachable if the node is misconfigured; still not trusted.
        assert_eq!(
            classify(t, false, &creds(None, Some(2), false, false)),
            Principal::Client
        );
        assert_eq!(
            classify(t, true, &creds(None, None, true, false)),
            admin("token")
        );
    }

    #[test]
    fn insecure_trusts_everyone_unless_a_token_is_set() {
        let t = Transport::Insecure;
        assert_eq!(
            classify(t, false, &creds(None, None, false, false)),
            admin("insecure")
        );
        assert_eq!(
            classify(t, true, &creds(None, None, false, false)),
            Principal::Client
        );
        assert_eq!(
            classify(t, true, &creds(None, None, true, false)),
            admin("token")
        );
        assert_eq!(
            classify(t, true, &creds(None, Some(4), false, false)),
            Principal::Node(4)
        );
    }

    #[test]
    fn members_only_once_initialized() {
        let members = std::collections::BTreeSet::from([1, 2, 3]);
        let known = |id: u64| Some(members.contains(&id));
        assert_eq!(admit_member(&Principal::Node(2), known).ok(), Some(2));
        let s = admit_member(&Principal::Node(9), known).unwrap_err();
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert_eq!(admit_member(&Principal::Node(9), |_| None).ok(), Some(9));
        for who in [Principal::Client, admin("ops")] {
            let s = admit_member(&who, |_| None).unwrap_err();
            assert_eq!(s.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn leaders_are_heard_unless_removed() {
        let members = std::collections::BTreeSet::from([1, 2, 3]);
        let known = |id: u64| Some(members.contains(&id));
        let removed = |id: u64| id == 4;
        // A member, and a node added after this node's view: heard.
        assert_eq!(
            admit_leader(&Principal::Node(2), known, removed).ok(),
            Some(2)
        );
        assert_eq!(
            admit_leader(&Principal::Node(9), known, removed).ok(),
            Some(9)
        );
        // A removed node: refused.
        let s = admit_leader(&Principal::Node(4), known, removed).unwrap_err();
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        // Not a node: refused before anything else.
        let s = admit_leader(&Principal::Client, known, removed).unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
