//! Optional mutual TLS on the gRPC port: nodes and `ctl` with certificates from one CA work;
//! a client without a certificate is refused.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{serial, Cluster};
use raftinel::dial::{Dialer, TlsPem};
use raftinel::pb;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and one certificate for 127.0.0.1 signed by it, written as PEM files into `dir`.
fn make_pki(dir: &Path) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("node.pem"), cert.pem()).unwrap();
    std::fs::write(path("node.key"), key.serialize_pem()).unwrap();
    (path("node.pem"), path("node.key"), path("ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_cluster_and_ctl() {
    let _g = serial();
    let pki = tempfile::tempdir().unwrap();
    let (cert, key, ca) = make_pki(pki.path());
    let extra = format!("[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{ca}\"\n");
    let mut c = Cluster::new(3, &extra);
    c.dialer = Dialer::new(Some(
        TlsPem::load(cert.as_ref(), key.as_ref(), ca.as_ref()).unwrap(),
    ));
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    c.monitor(leader, "mymaster", 6390).await;

    c.ctl_flags = vec![
        "--tls-cert".into(),
        cert,
        "--tls-key".into(),
        key,
        "--tls-ca".into(),
        ca,
    ];
    let out = c.ctl(&["master", "mymaster", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A plaintext client gets nothing.
    let plain = Dialer::default().channel(&c.nodes[&leader].grpc).unwrap();
    let mut client = pb::topology_client::TopologyClient::new(plain);
    assert!(client
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .is_err());
    c.ctl_flags.clear();
    assert!(!c.ctl(&["status"]).status.success());
}
