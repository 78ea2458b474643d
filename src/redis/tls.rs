//! The node's TLS material towards Redis (`[redis-tls]`): the CA that Redis servers' certificates
//! must chain to and an optional client certificate, read and checked once at startup.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("it holds no PEM private key (-----BEGIN PRIVATE KEY----- or an RSA/EC key)")]
    NoKey,
    #[error("it is not valid PEM: {0}")]
    Pem(String),
}

/// PEM bytes, as the redis crate takes them; `Debug` never shows the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// CA certificates; `None`: the system's trust store.
    ca: Option<Vec<u8>>,
    /// Client certificate chain and private key, for Redis's `tls-auth-clients yes`.
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.as_ref().map(|_| "set"))
            .field("client", &self.client.as_ref().map(|_| "set"))
            .finish()
    }
}

impl RedisTls {
    pub fn new(ca: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        RedisTls { ca, client }
    }

    pub fn has_ca(&self) -> bool {
        self.ca.is_some()
    }

    pub fn has_client_cert(&self) -> bool {
        self.client.is_some()
    }

    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        }
    }
}

/// A file of one or more PEM certificates (a CA bundle or a certificate chain).
pub fn read_certificates(path: &Path) -> Result<Vec<u8>, TlsError> {
    certificates(std::fs::read(path)?)
}

/// A file holding one PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    key(std::fs::read(path)?)
}

fn certificates(pem: Vec<u8>) -> Result<Vec<u8>, TlsError> {
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| TlsError::Pem(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(TlsError::NoCertificate);
    }
    Ok(pem)
}

fn key(pem: Vec<u8>) -> Result<Vec<u8>, TlsError> {
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey),
        Err(e) => Err(TlsError::Pem(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn certificates_need_at_least_one_pem_certificate() {
        let (cert, key) = pem_pair();
        assert!(certificates(cert.clone().into_bytes()).is_ok());
        let bundle = format!("{cert}{cert}");
        assert!(certificates(bundle.into_bytes()).is_ok());
        assert!(matches!(
            certificates(b"".to_vec()),
            Err(TlsError::NoCertificate)
        ));
        // A key file given where a certificate belongs.
        assert!(matches!(
            certificates(key.into_bytes()),
            Err(TlsError::NoCertificate)
        ));
    }

    #[test]
    fn key_needs_a_pem_private_key() {
        let (cert, key) = pem_pair();
        assert!(super::key(key.into_bytes()).is_ok());
        assert!(matches!(
            super::key(cert.into_bytes()),
            Err(TlsError::NoKey)
        ));
        assert!(matches!(super::key(b"junk".to_vec()), Err(TlsError::NoKey)));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (cert, key) = pem_pair();
        let tls = RedisTls::new(None, Some((cert.into_bytes(), key.into_bytes())));
        let shown = format!("{tls:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(tls.has_client_cert() && !tls.has_ca());
    }
}
