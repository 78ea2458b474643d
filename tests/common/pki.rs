//! Test certificates: a CA and a node certificate for 127.0.0.1 signed by it, as PEM files, for
//! the `[tls]` keys (and so the Sentinel port's `tls-port`).

use std::path::{Path, PathBuf};

use super::{free_port, Cluster};

use raftinel::dial::{Dialer, TlsPem};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Writes `ca.pem`, `node.pem` and `node.key` into `dir`.
    pub fn create(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL takes a leaf whose subject equals its issuer for self-signed.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "raftinel test CA");
        // What OpenSSL's X509_STRICT (Python 3.13's default) requires of a CA and a leaf.
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let node_key = KeyPair::generate().unwrap();
        let mut node =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        node.use_authority_key_identifier_extension = true;
        node.distinguished_name
            .push(DnType::CommonName, "raftinel test node");
        let node = node.signed_by(&node_key, &ca, &ca_key).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, node.pem()).unwrap();
        std::fs::write(&pki.key, node_key.serialize_pem()).unwrap();
        pki
    }

    /// The `[tls]` table naming these files.
    pub fn tls_table(&self) -> String {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }

    /// `n` nodes (not started) with these certificates, `extra` in every config, and each a
    /// `sentinel.tls-port` of its own plus `sentinel_keys` in its `[sentinel]` table; the
    /// harness dials them with the same certificate. Returns the TLS Sentinel addresses.
    pub fn cluster(&self, n: u64, extra: &str, sentinel_keys: &str) -> (Cluster, Vec<String>) {
        let mut c = Cluster::new(n, &format!("{extra}{}", self.tls_table()));
        c.dialer = Dialer::new(Some(TlsPem::load(&self.cert, &self.key, &self.ca).unwrap()));
        let mut tls = Vec::new();
        for node in c.nodes.values() {
            let port = free_port();
            // Appended after [peers]: the harness writes the top-level keys, `extra`, [peers].
            let mut text = std::fs::read_to_string(&node.config).unwrap();
            text.push_str(&format!("[sentinel]\ntls-port = {port}\n{sentinel_keys}"));
            std::fs::write(&node.config, text).unwrap();
            tls.push(format!("127.0.0.1:{port}"));
        }
        (c, tls)
    }
}
