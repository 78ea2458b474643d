//! The node's gRPC port: the node-to-node service and the topology API behind one
//! authenticating interceptor, with bounds on what a caller may cost before it is authenticated.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use super::NodeError;
use crate::admin::authn::{Authenticator, Transport};
use crate::api::Api;
use crate::config::Config;
use crate::dial::TlsPem;
use crate::pb::raft_internal_server::RaftInternalServer;
use crate::pb::topology_server::TopologyServer;
use crate::peer::RaftService;
use crate::raft::ClusterIdentity;

/// Raft RPCs carry snapshots and entry batches; only members get as far as decoding them.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Topology requests are names, addresses and options.
const MAX_API_MESSAGE_BYTES: usize = 1 << 20;
const MAX_CALLS_PER_CONNECTION: usize = 256;
const MAX_HEADER_BYTES: u32 = 16 << 10;

/// Binds the gRPC listener now, so a taken port fails the start.
pub(super) async fn bind(
    config: &Config,
    identity: &ClusterIdentity,
) -> Result<TcpListener, NodeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    tracing::info!(listen = %config.listen, cluster = ?identity.get(), security = config.security_summary(), "gRPC listening");
    Ok(listener)
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

/// The server, serving until `cancel`.
pub(super) fn server(
    config: &Config,
    tls: Option<&TlsPem>,
    listener: TcpListener,
    peer: RaftService,
    api: Arc<Api>,
    cancel: CancellationToken,
) -> Result<impl Future<Output = ()>, NodeError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Reflection(e.to_string()))?;
    let authn = authenticator(config);
    // Bounds on what any caller may cost before it is authenticated: streams per connection,
    // header size, and (per service) body size; bodies are decoded only after the interceptor.
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .concurrency_limit_per_connection(MAX_CALLS_PER_CONNECTION)
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION as u32))
        .http2_max_header_list_size(MAX_HEADER_BYTES);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server())?;
    }
    let server = builder
        .add_service(InterceptedService::new(
            RaftInternalServer::new(peer)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            authn.interceptor(),
        ))
        .add_service(InterceptedService::new(
            TopologyServer::from_arc(api).max_decoding_message_size(MAX_API_MESSAGE_BYTES),
            authn.interceptor(),
        ))
        .add_service(reflection)
        // The builder's tcp_nodelay does not reach a listener we bound ourselves: without it,
        // Nagle and delayed ACKs add ~40 ms to a share of small RPCs.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move { cancel.cancelled().await },
        );
    Ok(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "gRPC server ended with an error");
        }
    })
}
