//! Outgoing gRPC channels: plain or mutual TLS, lazily connected, one per peer address and
//! shared by every user of a `Dialer` (Raft transport, forwarding, reports, probes, `ctl`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("reading {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("address {addr}: {source}")]
    Endpoint {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// PEM files for TLS: this party's certificate and key (a node always has them; `ctl` may use
/// only a token), and the CA both sides trust.
#[derive(Debug, Clone)]
pub struct TlsPem {
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    pub ca: Vec<u8>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, DialError> {
    std::fs::read(path).map_err(|source| DialError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

impl TlsPem {
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, DialError> {
        Ok(TlsPem {
            identity: Some((read("certificate", cert)?, read("key", key)?)),
            ca: read("CA", ca)?,
        })
    }

    /// Only the CA: a client that verifies the server and proves itself some other way (a token).
    pub fn load_ca(ca: &Path) -> Result<Self, DialError> {
        Ok(TlsPem {
            identity: None,
            ca: read("CA", ca)?,
        })
    }

    /// The server side: client certificates are verified when sent but optional, because a
    /// reader or a token holder has none; who may do what is decided per call (`admin::authn`).
    pub fn server(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new()
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(true);
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }

    fn client(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// Channels to HOST:PORT addresses. Clones share one cache, so every caller reuses one
/// HTTP/2 connection per address instead of connecting anew for each call.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<TlsPem>,
    cache: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Dialer {
    pub fn new(tls: Option<TlsPem>) -> Self {
        Dialer {
            tls,
            cache: Arc::default(),
        }
    }

    /// The channel to `addr`, built on first use. It connects lazily and reconnects by itself,
    /// so it never blocks or fails on an unreachable peer.
    pub fn channel(&self, addr: &str) -> Result<Channel, DialError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = cache.get(addr) {
            return Ok(ch.clone());
        }
        let ch = self.build(addr)?;
        cache.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    fn build(&self, addr: &str) -> Result<Channel, DialError> {
        let err = |source| DialError::Endpoint {
            addr: addr.to_string(),
            source,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(err)?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.client()).map_err(err)?;
        }
        Ok(endpoint.connect_lazy())
    }
}
