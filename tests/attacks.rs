//! The attack suite of issue 10 (DESIGN invariant 11): calls an attacker could make, each of which
//! must be refused. Real nodes, real gRPC; loopback here, certificates in `tls.rs`.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::{serial, Cluster};
use raftinel::monitor::NodeReport;
use raftinel::pb;
use raftinel::pb::raft_internal_client::RaftInternalClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn stamped<T>(msg: T, node: Option<u64>, cluster: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(Duration::from_secs(2));
    if let Some(id) = node {
        req.metadata_mut()
            .insert("x-raftinel-node", id.to_string().parse().unwrap());
    }
    req.metadata_mut()
        .insert("x-raftinel-cluster-id", cluster.parse().unwrap());
    req
}

/// Adds the caller's incarnation, as a member's own calls carry it.
fn incarnated<T>(mut req: Request<T>, incarnation: u64) -> Request<T> {
    let v = format!("{incarnation:016x}").parse().unwrap();
    req.metadata_mut().insert("x-raftinel-incarnation", v);
    req
}

/// Node `id`'s incarnation, which it tells a node (here: itself, on a loopback cluster).
async fn incarnation_of(c: &Cluster, id: u64, cluster: &str) -> u64 {
    let req = stamped(pb::NodeInfoRequest {}, Some(id), cluster);
    let info = peer_client(c, id).await.node_info(req).await.unwrap();
    info.into_inner().incarnation
}

fn report_bytes(node_id: u64) -> pb::RaftBytes {
    let report = NodeReport {
        node_id,
        ..NodeReport::default()
    };
    pb::RaftBytes {
        data: raftinel::raft::codec::encode(&report).unwrap(),
    }
}

async fn peer_client(c: &Cluster, id: u64) -> RaftInternalClient<Channel> {
    RaftInternalClient::new(c.dialer.channel(&c.nodes[&id].grpc).unwrap())
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(resp) => panic!("the call was accepted: {resp:?}"),
        Err(s) => s.code(),
    }
}

/// "The sender of a report, a promise or a release is the authenticated peer, never a field in
/// the body"; node-to-node calls only from a current member, identity checked before decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_calls_need_a_members_identity_and_speak_only_for_it() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let _logs = c.logs_on_panic(40);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await;
    // On a loopback-only cluster a local caller is an admin, so it may read the cluster id.
    let cluster = c.status(leader).await.unwrap().cluster_id;
    assert_eq!(cluster.len(), 32, "loopback admin sees the cluster id");
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let mut peer = peer_client(&c, leader).await;

    // No identity at all: refused before the (garbage) body is looked at.
    let garbage = pb::RaftBytes {
        data: vec![0xff; 1024],
    };
    for r in [
        peer.vote(stamped(garbage.clone(), None, &cluster)).await,
        peer.append_entries(stamped(garbage.clone(), None, &cluster))
            .await,
        peer.install_snapshot(stamped(garbage.clone(), None, &cluster))
            .await,
    ] {
        assert_eq!(code(r), Code::Unauthenticated);
    }
    // A made-up node id is no member.
    let r = peer
        .report(stamped(report_bytes(7), Some(7), &cluster))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // Its vote request is answered as Raft answers a shorter log, never granted, and disturbs
    // nothing, even one that claims a later term and a longer log (refused at the door, a
    // candidate could not learn it was behind: tests/nemesis found that livelock).
    let before = c.status(leader).await.unwrap();
    let later = before.term + 100;
    let bold = openraft::raft::VoteRequest::<u64>::new(
        openraft::Vote::new(later, 9),
        Some(openraft::LogId::new(
            openraft::CommittedLeaderId::new(later, 9),
            1 << 40,
        )),
    );
    let bold = pb::RaftBytes {
        data: raftinel::raft::codec::encode(&bold).unwrap(),
    };
    let r = peer.vote(stamped(bold, Some(9), &cluster)).await.unwrap();
    let answer: Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>> =
        raftinel::raft::codec::decode(&r.into_inner().data).unwrap();
    assert!(!answer.unwrap().vote_granted);
    let after = c.status(leader).await.unwrap();
    assert_eq!(
        (after.leader_id, after.term),
        (before.leader_id, before.term)
    );
    let follower_is = incarnation_of(&c, follower, &cluster).await;
    assert_ne!(follower_is, 0);
    let as_follower = |req| incarnated(req, follower_is);
    // A member may not speak for another member.
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != follower)
        .unwrap();
    let r = peer
        .report(as_follower(stamped(
            report_bytes(other),
            Some(follower),
            &cluster,
        )))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let promise = pb::PromiseRequest {
        grant: 1,
        holder: other,
    };
    let r = peer
        .promise(incarnated(
            stamped(promise, Some(follower), &cluster),
            follower_is,
        ))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    // In its own name it is heard.
    let ok = peer
        .report(incarnated(
            stamped(report_bytes(follower), Some(follower), &cluster),
            follower_is,
        ))
        .await
        .expect("a member's own report");
    assert!(ok.into_inner().accepted);
    // Under its id but not its incarnation (a wiped node, or an impostor): refused.
    for wrong in [None, Some(follower_is ^ 1)] {
        let req = stamped(report_bytes(follower), Some(follower), &cluster);
        let req = match wrong {
            Some(i) => incarnated(req, i),
            None => req,
        };
        assert_eq!(code(peer.report(req).await), Code::FailedPrecondition);
    }

    // The bootstrap probe answers anyone, but gives the cluster id only to nodes.
    let info = peer
        .node_info(Request::new(pb::NodeInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.cluster_id, "", "cluster id shown to a non-node");
    let info = peer
        .node_info(stamped(pb::NodeInfoRequest {}, Some(follower), &cluster))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.cluster_id, cluster);
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

/// "gRPC writes and membership changes require an admin identity (… optionally a token read from
/// a file for automation)"; `insecure = true` with a token trusts no one else to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_an_admin_and_a_token_makes_one() {
    let _g = serial();
    let secrets = tempfile::tempdir().unwrap();
    let token = "f".repeat(16) + &"0123456789abcdef".repeat(2);
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let extra = format!(
        "insecure = true\nadmin-token-file = \"{}\"\n",
        token_file.display()
    );
    let mut c = Cluster::new(3, &extra);
    c.start_all();
    let _logs = c.logs_on_panic(40);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();

    for via in [leader, follower] {
        let mut api = c.client(via).await;
        let monitor = || pb::MonitorRequest {
            name: "m".into(),
            host: "127.0.0.1".into(),
            port: 6399,
            quorum: 2,
        };
        let denied = [
            code(api.monitor(with_token(monitor(), None)).await),
            code(api.monitor(with_token(monitor(), Some("wrong"))).await),
            code(
                api.remove(with_token(pb::RemoveRequest { name: "m".into() }, None))
                    .await,
            ),
            code(
                api.failover(with_token(pb::NameRequest { name: "m".into() }, None))
                    .await,
            ),
            code(
                api.set(with_token(
                    pb::SetRequest {
                        name: "m".into(),
                        options: vec![pb::SetOption {
                            option: "vip".into(),
                            value: "10.77.0.1/24".into(),
                        }],
                    },
                    None,
                ))
                .await,
            ),
            code(
                api.add_member(with_token(
                    pb::AddMemberRequest {
                        id: 9,
                        addr: "127.0.0.1:1".into(),
                        sentinel_addr: String::new(),
                    },
                    None,
                ))
                .await,
            ),
            code(
                api.remove_member(with_token(pb::RemoveMemberRequest { id: 1 }, None))
                    .await,
            ),
        ];
        assert!(
            denied.iter().all(|c| *c == Code::PermissionDenied),
            "via node {via}: {denied:?}"
        );
        // Reads stay open, without the cluster id; the status says the node is insecure.
        let status = api
            .cluster_status(with_token(pb::ClusterStatusRequest {}, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.cluster_id, "");
        assert!(
            status.security.starts_with("INSECURE"),
            "{}",
            status.security
        );
        api.list_masters(with_token(pb::ListMastersRequest::default(), None))
            .await
            .unwrap();
    }
    // The token makes an admin, on the leader and through a follower (forwarded as that node).
    let mut api = c.client(follower).await;
    let req = pb::MonitorRequest {
        name: "m".into(),
        host: "127.0.0.1".into(),
        port: 6399,
        quorum: 2,
    };
    api.monitor(with_token(req, Some(&token))).await.unwrap();
    // ctl: refused without the token, accepted with --token-file.
    let out = c.ctl(&["remove", "m"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may not"), "{stderr}");
    let file = token_file.display().to_string();
    let out = c.ctl(&["--token-file", &file, "remove", "m"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every log line of an insecure node says so.
    let log = c.log_of(leader);
    // Every line, not only the startup one: the span carries it. (A log with no line would pass
    // an `all`, so the startup line must be there.)
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(lines.iter().any(|l| l.contains("gRPC listening")), "{log}");
    assert!(lines.iter().all(|l| l.contains("insecure=true")), "{log}");
}

/// Issue 10: "A flood ends with clear refusals and a node that keeps failing over on time."
/// Every node's Sentinel port holds 1,000 idle connections (past the per-address cap) and a
/// client with as many ~1 MiB SUBSCRIBEs as it may have; then the master is killed. The failover commits in about down-after, and a client from another
/// address still finds the new master on every Sentinel port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_does_not_delay_a_failover() {
    use common::redis::Redis;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(3, "default-down-after-ms = 1000\n");
    c.start_all();
    let _logs = c.logs_on_panic(60);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    common::eventually("the replica is known", Duration::from_secs(10), || async {
        c.get(leader, "mymaster", pb::Consistency::Local)
            .await
            .ok()
            .filter(|x| x.replicas.len() == 1)
    })
    .await;

    let mut flood = Vec::new();
    for node in c.nodes.values() {
        for _ in 0..1000 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&node.sentinel))
                    .await
            {
                flood.push(s);
            }
        }
        // One subscriber per node with 256 channels, each in a ~1 MiB request.
        let mut sub = TcpStream::connect(&node.sentinel).await.unwrap();
        let pad = "x".repeat(1 << 20);
        for i in 0..256 {
            let ch = format!("ch{i}");
            let req = format!(
                "*3\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{ch}\r\n${}\r\n{pad}\r\n",
                ch.len(),
                pad.len()
            );
            if sub.write_all(req.as_bytes()).await.is_err() {
                break;
            }
        }
        flood.push(sub);
    }
    let killed = std::time::Instant::now();
    m.kill9();
    let new = common::eventually("a new master", Duration::from_secs(15), || async {
        c.get(leader, "mymaster", pb::Consistency::Local)
            .await
            .ok()
            .filter(|x| x.port == u32::from(r1.port))
    })
    .await;
    let took = killed.elapsed();
    eprintln!("failover committed {took:?} after kill -9 under the flood (down-after 1000 ms)");
    assert_eq!(new.config_epoch, 1);
    // Generous: the bound is about correctness under load, the benchmark measures speed.
    assert!(took < Duration::from_secs(6), "{took:?}");
    // A client from another address is served by every node and sees the new master (a
    // follower answers from what it has applied, which may trail the leader's commit briefly).
    let want = format!("127.0.0.1:{}", r1.port);
    for node in c.nodes.values() {
        let mut reply = String::new();
        for _ in 0..50 {
            reply = master_from_another_address(&node.sentinel).await;
            if reply.contains("127.0.0.1") && reply.contains(&r1.port.to_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            reply.contains(&r1.port.to_string()),
            "node {}: {reply} (want {want})",
            node.id
        );
    }
    drop(flood);
}

/// SENTINEL get-master-addr-by-name mymaster from 127.0.0.2, as one line of text.
async fn master_from_another_address(sentinel: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(sentinel.parse().unwrap()).await.unwrap();
    s.write_all(b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("an answer within 2 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).replace("\r\n", " ")
}
