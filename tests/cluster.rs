//! A real three-node cluster: real processes, real gRPC on loopback, real sled on disk, kill -9.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::{serial, Cluster};
use raftinel::pb::{self, Consistency};

/// Twice the default election-timeout-max (300 ms): a bound, not a figure.
const ELECTION_MAX: Duration = Duration::from_millis(600);
/// How long a leader serves reads on a quorum's acknowledgement: election-timeout-min / 2 = 75 ms
/// by default, doubled for a slow CI box.
const LEASE_WINDOW: Duration = Duration::from_millis(150);

// --- a leader is elected; a Monitor sent to any node is readable linearizably from all three
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_via_any_node_is_linearizably_readable_everywhere() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let follower = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    c.monitor(follower, "mymaster", 6390).await;
    for id in 1..=3 {
        let m = c
            .get(id, "mymaster", Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(
            (m.host.as_str(), m.port, m.quorum),
            ("127.0.0.1", 6390, 2),
            "node {id}"
        );
    }
    // Duplicate names are refused with Sentinel's wording, from any node.
    let mut cl = c.client(follower).await;
    let dup = cl
        .monitor(pb::MonitorRequest {
            name: "mymaster".into(),
            host: "127.0.0.1".into(),
            port: 1,
            quorum: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    assert_eq!(dup.message(), "ERR Duplicate master name.");
    let missing = c
        .get(leader, "nope", Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // ctl: JSON for scripts, non-zero exit with one line on failure.
    let out = c.ctl(&["master", "mymaster", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "mymaster");
    assert_eq!(v["addr"], "127.0.0.1:6390");
    assert_eq!(v["epoch"], 0);
    let out = c.ctl(&[
        "set",
        "mymaster",
        "down-after-milliseconds",
        "2000",
        "auth-pass",
        "s3cret",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.ctl(&["master", "mymaster", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !text.contains("s3cret"),
        "auth-pass must never be returned: {text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["down_after_ms"], 2000);
    assert_eq!(v["auth_pass_set"], true);
    let out = c.ctl(&["set", "mymaster", "bogus", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unknown option or number of arguments for SENTINEL SET 'bogus'"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    let out = c.ctl(&["remove", "nope"]);
    assert!(!out.status.success());
    let out = c.ctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    for id in 1..=3 {
        assert!(
            !c.log_of(id).contains("s3cret"),
            "auth-pass leaked into node {id}'s log"
        );
    }
}

// --- kill -9 of the leader: a new leader within 3 × the election timeout, writes continue;
//     the killed node restarts and catches up
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_elects_new_leader_and_restarted_node_catches_up() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let old = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(old, "before", 7000).await;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != old).collect();
    let killed_at = Instant::now();
    c.kill(old);
    let new = c.wait_leader(&rest, ELECTION_MAX * 3).await;
    let took = killed_at.elapsed();
    assert_ne!(new, old);
    assert!(took <= ELECTION_MAX * 3, "new leader after {took:?}");
    let idx = c.monitor(rest[0], "after", 7001).await;
    c.start(old);
    c.wait_applied(old, idx, Duration::from_secs(10)).await;
    let m = c.get(old, "after", Consistency::Local).await.unwrap();
    assert_eq!(m.port, 7001);
    eprintln!("new leader {new} after {took:?}");
}

// --- kill -9 of all three and restart: every committed entry is there, no re-initialization
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_and_restart_keeps_every_committed_entry() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let cluster_id = c.status(leader).await.unwrap().cluster_id;
    let mut last = 0;
    for i in 0..30u32 {
        last = c
            .monitor(1 + u64::from(i % 3), &format!("m{i}"), 7000 + i)
            .await;
    }
    for id in 1..=3 {
        c.kill(id);
    }
    // Restart in reverse order: nothing may re-initialize.
    for id in [3, 2, 1] {
        c.start(id);
    }
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    for id in 1..=3 {
        c.wait_applied(id, last, Duration::from_secs(10)).await;
        let s = c.status(id).await.unwrap();
        assert_eq!(s.cluster_id, cluster_id, "node {id} must keep its cluster");
    }
    let masters = c.list(2).await.unwrap();
    assert_eq!(masters.len(), 30);
    // A clean SIGTERM exits 0 after the shutdown path.
    for id in 1..=3 {
        assert!(
            c.stop(id).success(),
            "node {id} did not exit cleanly:\n{}",
            c.log_of(id)
        );
    }
}

// --- a follower down while the leader snapshots and purges catches up by snapshot
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_down_past_purge_catches_up_by_snapshot() {
    let _g = serial();
    let mut c = Cluster::new(3, "[raft]\nsnapshot-every = 20\nkeep-logs = 5\n");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let follower = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    c.monitor(leader, "m0", 7000).await;
    let before = c.status(follower).await.unwrap().last_log_index;
    c.kill(follower);
    let mut last = 0;
    for i in 1..100u32 {
        last = c.monitor(leader, &format!("m{i}"), 7000 + i).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.status(leader).await.unwrap();
        if s.purged_index > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader never purged past {before}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.start(follower);
    c.wait_applied(follower, last, Duration::from_secs(15))
        .await;
    let s = c.status(follower).await.unwrap();
    assert!(
        s.snapshot_index > before,
        "follower should hold a snapshot: {s:?}"
    );
    let masters = c.get(follower, "m99", Consistency::Local).await.unwrap();
    assert_eq!(masters.port, 7099);
    // Watch history from before the installed snapshot is gone on the follower: OUT_OF_RANGE.
    let mut cl = c.client(follower).await;
    let err = cl
        .watch(pb::WatchRequest { from_index: 1 })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(err, Some(tonic::Code::OutOfRange));
}

// --- a node whose two peers are down answers linearizable reads with UNAVAILABLE within ~2 s
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_node_answers_unavailable_quickly() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", 6390).await;
    // Keep the leader alone: the worst case, since it still believes it leads.
    for id in [1, 2, 3].into_iter().filter(|i| *i != leader) {
        c.kill(id);
    }
    // Until its read lease runs out (half of election-timeout-min after the last acknowledgement)
    // the leader may still answer, correctly: no other leader can exist yet.
    tokio::time::sleep(LEASE_WINDOW).await;
    for (what, id) in [("leader", leader)] {
        let t = Instant::now();
        let err = c
            .get(id, "mymaster", Consistency::Linearizable)
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{what}: {err}");
        assert!(
            took < Duration::from_millis(2500),
            "{what} answered after {took:?}"
        );
        let t = Instant::now();
        let mut cl = c.client(id).await;
        let err = cl
            .remove(pb::RemoveRequest {
                name: "mymaster".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "write answered after {:?}",
            t.elapsed()
        );
        // LOCAL reads still answer, from applied state.
        assert_eq!(
            c.get(id, "mymaster", Consistency::Local)
                .await
                .unwrap()
                .port,
            6390
        );
    }
    // A restarted follower alone (no leader reachable) also answers UNAVAILABLE quickly.
    c.kill(leader);
    let lone = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    c.start(lone);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.status(lone).await.is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let err = c
        .get(lone, "mymaster", Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "follower answered after {:?}",
        t.elapsed()
    );
}

// --- lease reads: a leader frozen (SIGSTOP) while the others elect a new one and commit a change
// never answers a linearizable read with the old value once it runs again
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_never_serves_a_stale_linearizable_read() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let _logs = c.logs_on_panic(40);
    let old = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(old, "mymaster", 6390).await;
    // Reads on the leader ride the lease now.
    for _ in 0..50 {
        c.get(old, "mymaster", Consistency::Linearizable)
            .await
            .unwrap();
    }
    let pid = c.pid(old).unwrap() as i32;
    // SAFETY: plain signals to a child process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != old).collect();
    let new = c.wait_leader(&others, Duration::from_secs(10)).await;
    let mut cl = c.client(new).await;
    let set = pb::SetRequest {
        name: "mymaster".into(),
        options: vec![pb::SetOption {
            option: "down-after-milliseconds".into(),
            value: "7777".into(),
        }],
    };
    cl.set(set).await.unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let until = Instant::now() + Duration::from_secs(2);
    let mut answered = 0;
    while Instant::now() < until {
        if let Ok(m) = c.get(old, "mymaster", Consistency::Linearizable).await {
            assert_eq!(
                m.down_after_ms, 7777,
                "stale linearizable read on the old leader"
            );
            answered += 1;
        }
    }
    assert!(answered > 0, "the old leader never answered again");
}

// --- membership 3 → 4 → 3 with writes continuing
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_grows_to_four_and_back_with_writes() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(1, "w", 8000).await;
    c.add_joiner(4);
    c.start(4);
    let writer = {
        let grpc: Vec<String> = (1..=3).map(|i| c.nodes[&i].grpc.clone()).collect();
        tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..60u32 {
                let ch = raftinel::dial::Dialer::default()
                    .channel(&grpc[(i % 3) as usize])
                    .unwrap();
                let mut cl = pb::topology_client::TopologyClient::new(ch);
                let r = cl
                    .set(pb::SetRequest {
                        name: "w".into(),
                        options: vec![pb::SetOption {
                            option: "failover-timeout".into(),
                            value: (10_000 + i).to_string(),
                        }],
                    })
                    .await;
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => eprintln!("write w{i}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            ok
        })
    };
    let n4 = c.nodes[&4].grpc.clone();
    let s4 = c.nodes[&4].sentinel.clone();
    // A subscriber on node 1 hears Sentinel's +sentinel for the new voter, once per master.
    let mut sub = None;
    for _ in 0..100 {
        // The port opens once the node is fresh.
        if let Ok(s) = tokio::net::TcpStream::connect(&c.nodes[&1].sentinel).await {
            sub = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sub = sub.expect("node 1's Sentinel port opens");
    let ack = subscribe_reply(
        &mut sub,
        b"*2\r\n$10\r\nPSUBSCRIBE\r\n$9\r\n+sentinel\r\n",
        ":1\r\n",
    )
    .await;
    assert!(ack.ends_with(":1\r\n"), "{ack}");
    let out = c.ctl(&["members", "add", "4", &n4, "--sentinel", &s4]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = c.status(1).await.unwrap();
    let m4 = s
        .members
        .iter()
        .find(|m| m.id == 4)
        .expect("node 4 is a member");
    assert!(m4.voter);
    assert_eq!(m4.sentinel_addr, s4);
    let tail = format!(" {} @ w 127.0.0.1 8000\r\n", s4.replace(':', " "));
    let heard = subscribe_reply(&mut sub, b"", &tail).await;
    let payload = heard.lines().last().unwrap_or_default().to_owned();
    assert!(
        payload.starts_with("sentinel ")
            && payload.len() == "sentinel ".len() + 40 + tail.len() - 2,
        "{heard}"
    );
    c.wait_leader(&[1, 2, 3, 4], Duration::from_secs(10)).await;
    let out = c.ctl(&["members", "remove", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = c.status(1).await.unwrap();
    assert_eq!(
        s.members.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let ok = writer.await.unwrap();
    assert!(
        ok >= 55,
        "only {ok}/60 writes succeeded during membership changes"
    );
    // Node 4 (removed) must not disturb the three: a write still commits.
    c.monitor(1, "after-remove", 9000).await;
}

/// Sends `cmd` (if any) and reads until what was read ends with `until`, within 10 s.
async fn subscribe_reply(s: &mut tokio::net::TcpStream, cmd: &[u8], until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(cmd).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).ends_with(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "nothing ending {until:?}; have {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap();
        assert!(n > 0, "closed; have {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `ctl` must succeed; returns its stdout.
fn ctl_ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.ctl_settled(args);
    assert!(
        out.status.success(),
        "ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// --- issue 11 item 4: quorum across membership. Growing 3 → 5 is allowed and clamps a quorum
//     of 2 to the new majority (shown by ctl master); shrinking 5 → 3 with quorum 4 is refused
//     with the master and the fix named, and goes through once the quorum is lowered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_below_a_masters_quorum_is_refused_until_it_is_lowered() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(1, "low", 8000).await;
    for id in [4, 5] {
        c.add_joiner(id);
        c.start(id);
        let (grpc, sentinel) = (c.nodes[&id].grpc.clone(), c.nodes[&id].sentinel.clone());
        let id = id.to_string();
        ctl_ok(&c, &["members", "add", &id, &grpc, "--sentinel", &sentinel]);
    }
    c.wait_leader(&[1, 2, 3, 4, 5], Duration::from_secs(10))
        .await;
    let shown = ctl_ok(&c, &["master", "low"]);
    assert!(
        shown.contains("quorum 2 (effective 3 with 5 voters)"),
        "{shown}"
    );
    ctl_ok(&c, &["monitor", "q", "127.0.0.1", "8001", "4"]);
    // 5 → 4 keeps quorum 4 in range; 4 → 3 does not.
    ctl_ok(&c, &["members", "remove", "5"]);
    let out = c.ctl_settled(&["members", "remove", "4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "removing node 4 was not refused");
    assert!(
        err.contains(
            "removing node 4 leaves 3 voters; master 'q' has quorum 4 > 3 voters: lower it \
             first with `raftinel ctl set q quorum 3`"
        ),
        "{err}"
    );
    let members = |s: pb::ClusterStatusReply| s.members.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(members(c.status(1).await.unwrap()), vec![1, 2, 3, 4]);
    ctl_ok(&c, &["set", "q", "quorum", "3"]);
    ctl_ok(&c, &["members", "remove", "4"]);
    assert_eq!(members(c.status(1).await.unwrap()), vec![1, 2, 3]);
    let shown = ctl_ok(&c, &["master", "low"]);
    assert!(
        shown
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("quorum 2")),
        "{shown}"
    );
}

// --- bootstrap in any start order; a wiped node never initializes a second cluster;
//     a node of another cluster is refused
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_any_order_and_cluster_identity() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    for id in [3, 2] {
        c.start(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.status(3).await.unwrap().leader_id,
        0,
        "nothing initializes without node 1"
    );
    c.start(1);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let id_a = c.status(leader).await.unwrap().cluster_id;
    assert_eq!(id_a.len(), 32);

    // Wrong cluster id from a client: refused with a clear error.
    let out = c.ctl(&["--cluster-id", "0123456789abcdef0123456789abcdef", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster id mismatch"));
    let out = c.ctl(&["--cluster-id", &id_a, "status"]);
    assert!(out.status.success());

    // Node 1 wiped (empty data dir, same flags): its peers form a cluster, so it must wait.
    c.kill(1);
    std::fs::remove_dir_all(&c.nodes[&1].dir).unwrap();
    c.start(1);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(s) = c.status(1).await {
            assert!(
                s.cluster_id.is_empty() || s.cluster_id == id_a,
                "wiped node 1 made cluster {}",
                s.cluster_id
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.log_of(1).contains("will not initialize"),
        "{}",
        c.log_of(1)
    );
    c.kill(1);

    // A single-node cluster B on node 3's port: cluster A's leader is refused by it, and A goes on.
    let leader = c.wait_leader(&[2, 3], Duration::from_secs(10)).await;
    let other = if leader == 2 { 3 } else { 2 };
    c.kill(other);
    let foreign_dir = c.tmp.path().join("foreign");
    let foreign_cfg = c.tmp.path().join("foreign.toml");
    let addr = c.nodes[&other].grpc.clone();
    let sentinel = format!("127.0.0.1:{}", common::free_port());
    std::fs::write(
        &foreign_cfg,
        format!(
            "id = {other}\nlisten = \"{addr}\"\nsentinel-listen = \"{sentinel}\"\ndata-dir = \"{}\"\n[peers]\n{other} = \"{addr}\"\n",
            foreign_dir.display()
        ),
    )
    .unwrap();
    let mut foreign = std::process::Command::new(common::bin())
        .args(["serve", "--config"])
        .arg(&foreign_cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Give the foreign node time to initialize its own cluster and to be contacted by A's leader.
    let ch = raftinel::dial::Dialer::default().channel(&addr).unwrap();
    let mut fc = pb::topology_client::TopologyClient::new(ch);
    let deadline = Instant::now() + Duration::from_secs(10);
    let foreign_status = loop {
        if let Ok(s) = fc.cluster_status(pb::ClusterStatusRequest {}).await {
            let s = s.into_inner();
            if s.leader_id == other {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "foreign node never led its own cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(foreign_status.cluster_id, id_a);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = fc
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.cluster_id, foreign_status.cluster_id);
    assert_eq!(
        after.members.len(),
        1,
        "the foreign node must not take A's membership"
    );
    assert!(
        after.last_log_index <= 3,
        "A's entries reached the foreign node: {after:?}"
    );
    let _ = foreign.kill();
    let _ = foreign.wait();
}

// --- Watch streams applied events with Sentinel's payloads and resumes from a log index
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_and_resumes_from_index() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let follower = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    let mut live = c
        .client(follower)
        .await
        .watch(pb::WatchRequest { from_index: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = c.monitor(leader, "mymaster", 6390).await;
    let mut cl = c.client(leader).await;
    cl.set(pb::SetRequest {
        name: "mymaster".into(),
        options: vec![
            pb::SetOption {
                option: "down-after-milliseconds".into(),
                value: "1000".into(),
            },
            pb::SetOption {
                option: "auth-pass".into(),
                value: "hunter2".into(),
            },
        ],
    })
    .await
    .unwrap();
    let e = next_event(&mut live).await;
    assert_eq!(
        (e.kind.as_str(), e.payload.as_str()),
        ("+monitor", "master mymaster 127.0.0.1 6390 quorum 2")
    );
    assert_eq!(e.index, first);
    let e = next_event(&mut live).await;
    assert_eq!(
        e.payload,
        "master mymaster 127.0.0.1 6390 down-after-milliseconds 1000"
    );
    let e = next_event(&mut live).await;
    assert_eq!(e.payload, "master mymaster 127.0.0.1 6390 auth-pass ******");
    // Resume from the first index on another node: the same three events, in order.
    let mut replay = c
        .client(leader)
        .await
        .watch(pb::WatchRequest { from_index: first })
        .await
        .unwrap()
        .into_inner();
    let kinds = [
        next_event(&mut replay).await,
        next_event(&mut replay).await,
        next_event(&mut replay).await,
    ]
    .map(|e| (e.index, e.kind));
    assert_eq!(kinds[0], (first, "+monitor".to_string()));
    assert_eq!(kinds[1].1, "+set");
    assert_eq!(kinds[1].0, kinds[2].0);
    let out = c.ctl(&["watch", "--from", &first.to_string(), "--count", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("+monitor master mymaster 127.0.0.1 6390 quorum 2"));
}

async fn next_event(s: &mut tonic::Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("an event within 5 s")
        .expect("stream ok")
        .expect("stream open")
}
