//! Test certificates made with rcgen: a CA and one certificate for 127.0.0.1 and localhost that
//! serves as Redis's server certificate and as raftinel's client certificate, as PEM files.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

/// rcgen's default subject is the same for every certificate; OpenSSL (Redis) then takes the
/// leaf for self-signed, so each gets its own.
fn named(mut params: CertificateParams, cn: &str) -> CertificateParams {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params
}

pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = named(
            CertificateParams::new(Vec::<String>::new()).unwrap(),
            "raftinel test CA",
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        // "127.0.0.1" becomes an IP SAN: raftinel checks the address it connects to.
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = named(params, "redis")
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let pki = Pki {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("redis.pem"),
            key: dir.path().join("redis.key"),
            _dir: dir,
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    /// redis-server's options for a TLS-only instance on `port` whose replication uses TLS too.
    pub fn redis_args(&self, port: u16) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&self.cert),
            "--tls-key-file",
            &path(&self.key),
            "--tls-ca-cert-file",
            &path(&self.ca),
            "--tls-replication",
            "yes",
            "--tls-auth-clients",
            "optional",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The same files for the redis crate (the tests' own connections).
    pub fn certificates(&self) -> redis::TlsCertificates {
        let read = |p: &PathBuf| std::fs::read(p).unwrap();
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(&self.cert),
                client_key: read(&self.key),
            }),
            root_cert: Some(read(&self.ca)),
        }
    }

    /// raftinel's `[redis-tls]` table.
    pub fn raftinel_config(&self) -> String {
        format!(
            "[redis-tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}
