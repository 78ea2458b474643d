//! Mutual TLS with identities (invariant 11): nodes with their node certificates form a cluster;
//! `ctl` with the admin certificate writes; a client without a certificate reads but cannot
//! write; no Raft RPC is accepted from a client without a node certificate, or from a node
//! certificate whose id is not a member; a spoofed report cannot make a healthy master ODOWN.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::pki::{Pki, OUTSIDER};
use common::serial;
use raftinel::dial::{Dialer, TlsPem};
use raftinel::monitor::NodeReport;
use raftinel::pb;
use raftinel::pb::raft_internal_client::RaftInternalClient;
use tonic::{Code, Request};

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(resp) => panic!("the call was accepted: {resp:?}"),
        Err(s) => s.code(),
    }
}

fn raft_bytes<T: serde::Serialize>(v: &T) -> pb::RaftBytes {
    pb::RaftBytes {
        data: raftinel::raft::codec::encode(v).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_decide_who_may_do_what() {
    let _g = serial();
    let pki = Pki::new();
    let (mut c, _) = pki.cluster(3, "", "");
    c.start_all();
    let _logs = c.logs_on_panic(40);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await;
    c.monitor(leader, "mymaster", 6390).await;
    let status = c.status(leader).await.unwrap();
    assert_eq!(status.security, "mTLS");
    assert_eq!(status.cluster_id.len(), 32, "an admin sees the cluster id");

    // ctl with the admin certificate reads and writes; with the CA alone it reads only.
    let out = c.ctl(&["set", "mymaster", "down-after-milliseconds", "6000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca = pki.ca.display().to_string();
    let reader = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.arg("ctl").arg("--cluster").arg(&c.nodes[&leader].grpc);
        cmd.args(["--tls-ca", &ca]).args(args);
        cmd.output().unwrap()
    };
    let out = reader(&["master", "mymaster", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reader(&["remove", "mymaster"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not"));

    // A plaintext client gets nothing at all.
    let plain = Dialer::default().channel(&c.nodes[&leader].grpc).unwrap();
    let mut client = pb::topology_client::TopologyClient::new(plain);
    assert!(client
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .is_err());

    // A TLS client without a certificate: reads, no cluster id, no writes, no Raft.
    let anon = Dialer::new(Some(TlsPem::load_ca(&pki.ca).unwrap()));
    let ch = anon.channel(&c.nodes[&leader].grpc).unwrap();
    let mut api = pb::topology_client::TopologyClient::new(ch.clone());
    let s = api
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.cluster_id, "");
    let monitor = pb::MonitorRequest {
        name: "evil".into(),
        host: "127.0.0.1".into(),
        port: 1,
        quorum: 2,
    };
    assert_eq!(
        code(api.monitor(monitor.clone()).await),
        Code::PermissionDenied
    );
    let add = pb::AddMemberRequest {
        id: 9,
        addr: "127.0.0.1:1".into(),
        sentinel_addr: String::new(),
    };
    assert_eq!(
        code(api.add_member(add.clone()).await),
        Code::PermissionDenied
    );
    let mut peer = RaftInternalClient::new(ch);
    let garbage = pb::RaftBytes { data: vec![0; 64] };
    assert_eq!(
        code(peer.vote(garbage.clone()).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(peer.append_entries(garbage.clone()).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(peer.install_snapshot(garbage.clone()).await),
        Code::Unauthenticated
    );
    // Naming a node in a header proves nothing under TLS.
    let mut req = Request::new(raft_bytes(&NodeReport {
        node_id: 2,
        ..NodeReport::default()
    }));
    req.metadata_mut()
        .insert("x-raftinel-node", "2".parse().unwrap());
    assert_eq!(code(peer.report(req).await), Code::Unauthenticated);

    // A genuine node certificate for an id that is not a member: no reports, no writes. Its
    // Raft calls are judged by Raft (a follower must hear a leader newer than its view; a
    // removed id stays refused), and first by the cluster id it must send.
    let outsider = Dialer::new(Some(TlsPem::load(&pki.cert, &pki.key, &pki.ca).unwrap()));
    let ch = outsider.channel(&c.nodes[&leader].grpc).unwrap();
    let mut peer = RaftInternalClient::new(ch.clone());
    for r in [
        peer.vote(garbage.clone()).await,
        peer.append_entries(garbage.clone()).await,
        peer.install_snapshot(garbage).await,
    ] {
        assert_eq!(code(r), Code::FailedPrecondition);
    }
    let report = raft_bytes(&NodeReport {
        node_id: OUTSIDER,
        ..NodeReport::default()
    });
    assert_eq!(code(peer.report(report).await), Code::PermissionDenied);
    let mut api = pb::topology_client::TopologyClient::new(ch);
    assert_eq!(code(api.monitor(monitor).await), Code::PermissionDenied);
    assert_eq!(code(api.add_member(add).await), Code::PermissionDenied);

    // A member's certificate speaks for that member only.
    let (cert, key) = pki.node(2);
    let two = Dialer::new(Some(TlsPem::load(&cert, &key, &pki.ca).unwrap()));
    let mut peer = RaftInternalClient::new(two.channel(&c.nodes[&leader].grpc).unwrap());
    let cluster: tonic::metadata::MetadataValue<_> = status.cluster_id.parse().unwrap();
    // Node 2's own incarnation, which its calls carry (it tells a node certificate).
    let mut own = RaftInternalClient::new(two.channel(&c.nodes[&2].grpc).unwrap());
    let info = own.node_info(pb::NodeInfoRequest {}).await.unwrap();
    let incarnation: tonic::metadata::MetadataValue<_> =
        format!("{:016x}", info.into_inner().incarnation)
            .parse()
            .unwrap();
    let stamped = |md: &mut tonic::metadata::MetadataMap| {
        md.insert("x-raftinel-cluster-id", cluster.clone());
        md.insert("x-raftinel-incarnation", incarnation.clone());
    };
    let as_three = |node_id| {
        let mut r = Request::new(raft_bytes(&NodeReport {
            node_id,
            ..NodeReport::default()
        }));
        stamped(r.metadata_mut());
        r
    };
    let other = if leader == 3 { 1 } else { 3 };
    assert_eq!(
        code(peer.report(as_three(other)).await),
        Code::PermissionDenied
    );
    let promise = pb::PromiseRequest {
        grant: 1,
        holder: other,
    };
    let mut req = Request::new(promise);
    stamped(req.metadata_mut());
    assert_eq!(code(peer.promise(req).await), Code::PermissionDenied);
    assert!(peer.report(as_three(2)).await.is_ok());
    // Node 2's certificate without node 2's incarnation (a wiped node 2): refused.
    let mut req = as_three(2);
    req.metadata_mut().remove("x-raftinel-incarnation");
    assert_eq!(code(peer.report(req).await), Code::FailedPrecondition);
}
