//! Making certificates with rcgen: the cluster CA (self-signed), node certificates (server and
//! client, the node id in a URI SAN, one IP SAN per address) and admin client certificates. Keys
//! are ECDSA P-256. Subjects differ from the issuer's and carry an authority key identifier, as
//! OpenSSL's strict chain checks (Python clients) want.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::identity::{valid_admin_name, CertIdentity};

const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 730;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("admin name '{0}' must be 1 to 64 of letters, digits, '-', '_' and '.'")]
    AdminName(String),
    #[error("node id must be a positive integer")]
    NodeId,
}

/// A certificate and its key, as PEM, and the certificate as DER.
pub struct Issued {
    pub pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// The cluster CA, able to sign.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour back: hosts whose clocks lag a little still accept a fresh certificate.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "raftinel");
    dn.push(DnType::CommonName, cn);
    dn
}

fn uri(identity: &CertIdentity) -> Result<SanType, IssueError> {
    Ok(SanType::URI(identity.uri().try_into()?))
}

impl Ca {
    /// A new CA with a new key.
    pub fn create() -> Result<Ca, IssueError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named("raftinel cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// The CA written earlier by [`Ca::create`] (its PEM certificate and key).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, IssueError> {
        let key = KeyPair::from_pem(key_pem)?;
        // Re-signing the same subject and key gives the issuer name and key id that the
        // certificates it signs refer to, so they chain to the CA file on disk.
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    fn sign(&self, mut params: CertificateParams, days: i64) -> Result<Issued, IssueError> {
        let key = KeyPair::generate()?;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        validity(&mut params, days);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }

    /// Node `id`'s certificate, for every address it listens on (gRPC and Sentinel ports);
    /// `localhost` too when one of them is loopback.
    pub fn node(&self, id: u64, ips: &[IpAddr]) -> Result<Issued, IssueError> {
        if id == 0 {
            return Err(IssueError::NodeId);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = named(&format!("raftinel node {id}"));
        params.subject_alt_names = vec![uri(&CertIdentity::Node(id))?];
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if ips.iter().any(IpAddr::is_loopback) {
            params
                .subject_alt_names
                .push(SanType::DnsName("localhost".try_into()?));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params, LEAF_DAYS)
    }

    /// An operator's client certificate.
    pub fn admin(&self, name: &str) -> Result<Issued, IssueError> {
        if !valid_admin_name(name) {
            return Err(IssueError::AdminName(name.to_owned()));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = named(&format!("raftinel admin {name}"));
        params.subject_alt_names = vec![uri(&CertIdentity::Admin(name.to_owned()))?];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, LEAF_DAYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reloaded_ca_signs_certificates_that_chain_to_its_file() {
        let ca = Ca::create().unwrap();
        let again = Ca::load(&ca.pem(), &ca.key_pem()).unwrap();
        let node = again.node(2, &["127.0.0.1".parse().unwrap()]).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&node.der).unwrap();
        let root_der = ca.der();
        let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
        assert_eq!(leaf.issuer(), root.subject());
        assert_ne!(leaf.subject(), root.subject());
        assert!(leaf.verify_signature(Some(root.public_key())).is_ok());
    }

    #[test]
    fn bad_names_and_ids_are_refused() {
        let ca = Ca::create().unwrap();
        assert!(matches!(ca.admin("a/b"), Err(IssueError::AdminName(_))));
        assert!(matches!(ca.node(0, &[]), Err(IssueError::NodeId)));
    }
}
