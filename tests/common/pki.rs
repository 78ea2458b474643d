//! Test certificates from raftinel's own `certs` module (what `raftinel certs` writes): a CA,
//! one node certificate per node (`raftinel://node/ID`, 127.0.0.1 and localhost), an admin
//! certificate, and a general one for 127.0.0.1 that Redis serves and clients present.

use std::path::{Path, PathBuf};

use super::{free_port, Cluster};

use raftinel::certs::issue::{Ca, Issued};
use raftinel::dial::{Dialer, TlsPem};

/// The id in the general certificate: never a member, so it proves nothing to a cluster.
pub const OUTSIDER: u64 = 9999;

pub struct Pki {
    _dir: Option<tempfile::TempDir>,
    dir: PathBuf,
    authority: Ca,
    pub ca: PathBuf,
    /// The general certificate (Redis's server certificate, a client's certificate).
    pub cert: PathBuf,
    pub key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
}

fn write(dir: &Path, stem: &str, issued: &Issued) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert, &issued.pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    (cert, key)
}

impl Pki {
    /// In a directory of its own, removed on drop.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut pki = Pki::create(dir.path());
        pki._dir = Some(dir);
        pki
    }

    /// Writes `ca.pem`, `node.pem`/`node.key` (the general one) and `admin-admin.*` into `dir`.
    pub fn create(dir: &Path) -> Pki {
        let authority = Ca::create().unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, authority.pem()).unwrap();
        let lo = ["127.0.0.1".parse().unwrap()];
        let (cert, key) = write(dir, "node", &authority.node(OUTSIDER, &lo).unwrap());
        let (admin_cert, admin_key) = write(dir, "admin-admin", &authority.admin("admin").unwrap());
        Pki {
            _dir: None,
            dir: dir.to_owned(),
            authority,
            ca,
            cert,
            key,
            admin_cert,
            admin_key,
        }
    }

    /// Node `id`'s certificate and key, written on first use.
    pub fn node(&self, id: u64) -> (PathBuf, PathBuf) {
        let lo = ["127.0.0.1".parse().unwrap()];
        write(
            &self.dir,
            &format!("node-{id}"),
            &self.authority.node(id, &lo).unwrap(),
        )
    }

    /// Node `id`'s `[tls]` table.
    pub fn tls_table(&self, id: u64) -> String {
        let (cert, key) = self.node(id);
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
            cert.display(),
            key.display(),
            self.ca.display()
        )
    }

    /// A dialer presenting the admin certificate.
    pub fn admin_dialer(&self) -> Dialer {
        Dialer::new(Some(
            TlsPem::load(&self.admin_cert, &self.admin_key, &self.ca).unwrap(),
        ))
    }

    /// `ctl`'s flags for the admin certificate.
    pub fn ctl_flags(&self) -> Vec<String> {
        let s = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls-cert".into(),
            s(&self.admin_cert),
            "--tls-key".into(),
            s(&self.admin_key),
            "--tls-ca".into(),
            s(&self.ca),
        ]
    }

    /// Gives every node of `c` (not started) its node certificate in `[tls]`, and the harness and
    /// `ctl` the admin certificate.
    pub fn secure(&self, c: &mut Cluster) {
        c.dialer = self.admin_dialer();
        c.ctl_flags = self.ctl_flags();
        for node in c.nodes.values() {
            // Appended after [peers]: the harness writes the top-level keys, `extra`, [peers].
            let mut text = std::fs::read_to_string(&node.config).unwrap();
            text.push_str(&self.tls_table(node.id));
            std::fs::write(&node.config, text).unwrap();
        }
    }

    /// `n` nodes (not started) with certificates ([`Pki::secure`]), `extra` in every config, and
    /// each a `sentinel.tls-port` of its own plus `sentinel_keys` in its `[sentinel]` table.
    /// Returns the TLS Sentinel addresses.
    pub fn cluster(&self, n: u64, extra: &str, sentinel_keys: &str) -> (Cluster, Vec<String>) {
        let mut c = Cluster::new(n, extra);
        self.secure(&mut c);
        let mut tls = Vec::new();
        for node in c.nodes.values() {
            let port = free_port();
            let mut text = std::fs::read_to_string(&node.config).unwrap();
            text.push_str(&format!("[sentinel]\ntls-port = {port}\n{sentinel_keys}"));
            std::fs::write(&node.config, text).unwrap();
            tls.push(format!("127.0.0.1:{port}"));
        }
        (c, tls)
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
