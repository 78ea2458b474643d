//! Issue 11 item 2 with real nodes and real sled dirs: a node whose data dir was wiped and that
//! comes back under its old id is refused everywhere (it gets no entries, its acknowledgements
//! and votes do not count, it cannot be added back), the cluster keeps every committed entry;
//! an id that was removed cannot be added again; and a cluster whose stores were written by
//! format version 5 starts with its members' incarnations unknown and records them on
//! `members add`.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use raftinel::pb;

/// What the wiped node logs about itself, and what the leader logs about it.
const WIPED_SAYS: &str = "this node is not the member its id stands for";
const LEADER_SAYS: &str = "peer refuses this node's Raft RPCs";

/// Node `id`'s gRPC and Sentinel addresses.
fn addrs(c: &Cluster, id: u64) -> (String, String) {
    let n = &c.nodes[&id];
    (n.grpc.clone(), n.sentinel.clone())
}

/// A write through `via` with a short deadline; whether it committed in time.
async fn write_commits(c: &Cluster, via: u64, name: &str, port: u32) -> Result<u64, String> {
    let mut client = c.client(via).await;
    let mut req = tonic::Request::new(pb::MonitorRequest {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
        quorum: 2,
    });
    req.set_timeout(Duration::from_secs(3));
    client
        .monitor(req)
        .await
        .map(|r| r.into_inner().index)
        .map_err(|s| s.to_string())
}

/// No node of `ids` follows a leader among `ids` at any point during `for_how_long`.
async fn no_leader_among(c: &Cluster, ids: &[u64], for_how_long: Duration) -> Result<(), String> {
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        for id in ids {
            let s = c
                .status(*id)
                .await
                .ok_or_else(|| format!("node {id} does not answer status"))?;
            // A restarted node reports the stopped leader of its stored vote for a while.
            if ids.contains(&s.leader_id) {
                return Err(format!("node {id} follows leader {}", s.leader_id));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_under_its_old_id_is_refused_and_nothing_committed_is_lost() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    let _logs = c.logs_on_panic(30);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let mut followers = [1, 2, 3].into_iter().filter(|i| *i != leader);
    let (wiped, other) = (followers.next().unwrap(), followers.next().unwrap());
    let mut last = 0;
    for i in 0..5u32 {
        last = c.monitor(leader, &format!("committed-{i}"), 7000 + i).await;
    }
    c.wait_applied(wiped, last, Duration::from_secs(10)).await;

    // The disk is replaced: same id, same config, empty data dir.
    c.kill(wiped);
    std::fs::remove_dir_all(&c.nodes[&wiped].dir).unwrap();
    let marks = (c.log_mark(wiped), c.log_mark(leader));
    c.start(wiped);
    refused_and_says_why(&mut c, wiped, leader, marks).await;

    // It cannot be added back under its id.
    let w = addrs(&c, wiped);
    let out = c.ctl(&[
        "members",
        "add",
        &wiped.to_string(),
        &w.0,
        "--sentinel",
        &w.1,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("wiped"),
        "re-adding the wiped node under id {wiped}: {err}"
    );

    // Its acknowledgements do not count: with the other follower down, nothing commits.
    c.kill(other);
    let r = write_commits(&c, leader, "during-wipe", 7100).await;
    assert!(
        matches!(&r, Err(e) if e.contains("no quorum") || e.contains("Deadline")),
        "a write on the leader and the wiped node alone did not wait for a quorum: {r:?}"
    );

    // Its vote does not count: the other follower cannot be elected with it.
    c.kill(leader);
    c.start(other);
    common::eventually(
        "the other follower answers",
        Duration::from_secs(10),
        || async { c.status(other).await },
    )
    .await;
    no_leader_among(&c, &[other, wiped], Duration::from_secs(4))
        .await
        .unwrap_or_else(|e| panic!("a leader was elected with the wiped node's vote: {e}"));

    // The two real members elect a leader, and every committed entry is there.
    c.start(leader);
    let now = c
        .wait_leader(&[leader, other], Duration::from_secs(15))
        .await;
    let names: Vec<String> = c
        .list(now)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    for i in 0..5 {
        let name = format!("committed-{i}");
        assert!(names.contains(&name), "{name} was lost: {names:?}");
    }
    let s = c
        .status(wiped)
        .await
        .expect("the wiped node answers status");
    assert_eq!((s.applied_index, s.last_log_index), (0, 0));
}

/// The wiped node, restarted after the log marks `(wiped, leader)`, gets no entries and does not
/// adopt the cluster (the leader sends heartbeats every 100 ms: 3 s is many tries), both sides
/// say why, and the leader keeps running.
async fn refused_and_says_why(c: &mut Cluster, wiped: u64, leader: u64, marks: (usize, usize)) {
    common::eventually(
        "the wiped node answers",
        Duration::from_secs(10),
        || async { c.status(wiped).await },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = c
        .status(wiped)
        .await
        .expect("the wiped node answers status");
    assert_eq!(
        (s.applied_index, s.last_log_index, s.cluster_id.as_str()),
        (0, 0, ""),
        "the wiped node took entries or the cluster id under its old id"
    );
    let said = c.log_since(wiped, marks.0);
    assert!(
        said.contains(WIPED_SAYS) && said.contains("rejoin under a new id"),
        "the wiped node does not say why it is refused:\n{said}"
    );
    assert!(c.log_since(leader, marks.1).contains(LEADER_SAYS));
    // On main before incarnations, the leader's Raft core panicked here ("raft core stopped")
    // and the node exited.
    assert!(
        c.nodes.get_mut(&leader).unwrap().is_running(),
        "the leader exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_id_cannot_be_added_again() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    let _logs = c.logs_on_panic(30);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let removed = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    let id = removed.to_string();
    let out = c.ctl_settled(&["members", "remove", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same node, still running with its data: refused, naming the id and the fix.
    let (grpc, sentinel) = addrs(&c, removed);
    let out = c.ctl(&["members", "add", &id, &grpc, "--sentinel", &sentinel]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!("node id {removed} was removed"))
            && err.contains("new id"),
        "adding removed id {removed} back: {err}"
    );
    let members = |s: pb::ClusterStatusReply| s.members.iter().map(|m| m.id).collect::<Vec<_>>();
    let remaining: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != removed).collect();
    assert_eq!(members(c.status(leader).await.unwrap()), remaining);

    // A new id is added, with its incarnation, and replicates.
    c.add_joiner(4);
    c.start(4);
    let (grpc, sentinel) = addrs(&c, 4);
    let out = c.ctl(&["members", "add", "4", &grpc, "--sentinel", &sentinel]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = c.monitor(leader, "after-add", 7200).await;
    c.wait_applied(4, index, Duration::from_secs(10)).await;
}

/// `Member` as format version 5 stored it: no incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct MemberV5 {
    addr: String,
    sentinel_addr: String,
}

/// `openraft::Entry` as version 5 stored it. Only the membership variant is written here; the
/// other two give it its variant index.
#[derive(serde::Serialize)]
struct EntryV5 {
    log_id: openraft::LogId<u64>,
    payload: PayloadV5,
}

#[derive(serde::Serialize)]
#[allow(dead_code)]
enum PayloadV5 {
    Blank,
    Normal(()),
    Membership(openraft::Membership<u64, MemberV5>),
}

/// Writes what a version-5 build leaves after initializing: the cluster id and the first
/// membership entry (log index 0, as openraft's `initialize` writes it), in every node's store.
fn write_version_5_stores(c: &Cluster) {
    let nodes: BTreeMap<u64, MemberV5> = c
        .nodes
        .values()
        .map(|n| {
            let m = MemberV5 {
                addr: n.grpc.clone(),
                sentinel_addr: n.sentinel.clone(),
            };
            (n.id, m)
        })
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    let entry = EntryV5 {
        log_id: openraft::LogId::default(),
        payload: PayloadV5::Membership(openraft::Membership::new(vec![voters], nodes)),
    };
    let mut bytes = vec![5u8];
    bincode::serialize_into(&mut bytes, &entry).unwrap();
    let cluster_id = raftinel::raft::codec::encode(&"5".repeat(32)).unwrap();
    for n in c.nodes.values() {
        let db = sled::open(&n.dir).unwrap();
        let logs = db.open_tree("raft_logs").unwrap();
        logs.insert(0u64.to_be_bytes(), bytes.clone()).unwrap();
        let meta = db.open_tree("raft_meta").unwrap();
        meta.insert(b"cluster_id", cluster_id.clone()).unwrap();
        db.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_upgrade_members_add_records_the_incarnations() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    let _logs = c.logs_on_panic(30);
    write_version_5_stores(&c);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    let incarnations = |s: pb::ClusterStatusReply| {
        s.members
            .iter()
            .map(|m| (m.id, m.incarnation))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        incarnations(c.status(leader).await.unwrap()),
        vec![(1, 0), (2, 0), (3, 0)],
        "a version-5 membership reads with incarnations unknown"
    );
    for id in 1..=3 {
        let (grpc, sentinel) = addrs(&c, id);
        let out = c.ctl_settled(&[
            "members",
            "add",
            &id.to_string(),
            &grpc,
            "--sentinel",
            &sentinel,
        ]);
        assert!(
            out.status.success(),
            "recording node {id}'s incarnation: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let recorded = incarnations(c.status(leader).await.unwrap());
    assert!(
        recorded.iter().all(|(_, i)| *i != 0),
        "incarnations not recorded: {recorded:?}"
    );

    // Now a wiped member is refused as on a new cluster.
    let wiped = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap();
    let index = c.monitor(leader, "before-wipe", 7300).await;
    c.wait_applied(wiped, index, Duration::from_secs(10)).await;
    c.kill(wiped);
    std::fs::remove_dir_all(&c.nodes[&wiped].dir).unwrap();
    let marks = (c.log_mark(wiped), c.log_mark(leader));
    c.start(wiped);
    refused_and_says_why(&mut c, wiped, leader, marks).await;
}
