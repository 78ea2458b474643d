//! The Sentinel port's TLS listener (`sentinel.tls-port`): it presents the node's certificate
//! from `[tls]` and checks client certificates against `tls.ca` as Redis's `tls-auth-clients`
//! says.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsAuthClients, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the Sentinel TLS listener cannot use {what} {}: {reason}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the Sentinel TLS listener's configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("the Sentinel TLS listener's client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The acceptor for the Sentinel TLS listener, built once at startup so that bad files stop the
/// node instead of every handshake failing.
pub fn acceptor(files: &TlsFiles, auth_clients: TlsAuthClients) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert, "tls.cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "tls.key",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        TlsAuthClients::Optional | TlsAuthClients::Yes => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(&files.ca, "tls.ca")? {
                roots.add(ca)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth_clients == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}
