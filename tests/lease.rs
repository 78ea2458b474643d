//! Leases and the fence on real Redis, on one machine: every raftinel node is told which Redis
//! runs "on its host" (`--local-redis`), matched by run id. A co-located master is writable only
//! while its node holds the lease; replicas stay fenced; a crashed master's node releases its
//! grant so the failover need not wait for expiry; a holder cut off from the other nodes fences
//! its master before they promote another; unfencing puts the operator's min-replicas settings
//! from the log on the master. (VIP and multi-host runs: the namespace lab.)

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::firewall::Firewall;
use common::redis::Redis;
use common::{eventually, serial, Cluster};
use raftinel::pb::{self, Consistency};

const TIMINGS: &str = "default-down-after-ms = 1000\n";
const FENCED: &str = "2147483647";

async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, "mymaster", Consistency::Local).await.ok()
}

/// Three nodes, node i co-located with `redis[i-1]`; the first is the master.
async fn colocated(redis: &[&Redis], extra: &str) -> Cluster {
    let mut c = Cluster::new(3, &format!("{TIMINGS}{extra}"));
    for (i, r) in redis.iter().enumerate() {
        let n = c.nodes.get_mut(&(i as u64 + 1)).unwrap();
        n.args = vec!["--local-redis".into(), format!("127.0.0.1:{}", r.port)];
    }
    c
}

async fn monitored_with_lease(c: &mut Cluster, master: &Redis, holder: u64) -> u64 {
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(master.port)).await;
    eventually(
        "the master's node holds its lease",
        Duration::from_secs(10),
        || async {
            master_of(c, 1).await.filter(|m| {
                m.lease_holder == holder && m.fencing == "lease" && m.replicas.len() == 2
            })
        },
    )
    .await;
    leader
}

// --- the co-located master is writable under the lease, its replicas fenced; the lease and
//     fence survive a Raft leader change without a single failed write
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_unfences_the_master_and_fences_replicas() {
    let _g = serial();
    let m = Redis::start(&["--min-replicas-to-write", "0"]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    // The master on node 2's host: node 1 initializes the cluster and usually leads.
    let mut c = colocated(&[&r1, &m, &r2], "").await;
    let _logs = c.logs_on_panic(40);
    monitored_with_lease(&mut c, &m, 2).await;
    // Fenced from MONITOR until node 1's first renewal round, then the operator's setting is back.
    eventually(
        "master unfenced and writable",
        Duration::from_secs(5),
        || async { (m.min_replicas().as_deref() == Some("0") && m.write_ok("k")).then_some(()) },
    )
    .await;
    eventually("replicas fenced", Duration::from_secs(5), || async {
        (r1.min_replicas().as_deref() == Some(FENCED)
            && r2.min_replicas().as_deref() == Some(FENCED))
        .then_some(())
    })
    .await;

    // kill -9 the Raft leader's raftinel (not on the master's host): the lease comes from a
    // majority, not from the leader, so the master never notices.
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let victim = if leader == 2 { 3 } else { leader };
    let started = Instant::now();
    c.kill(victim);
    let mut failed = 0;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        n += 1;
        if !m.write_ok(&format!("w{n}")) {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{n} writes while node {victim} (leader {leader}) was down: {failed} failed");
    assert_eq!(
        failed, 0,
        "a Raft leader change must not fence a healthy master"
    );
}

// --- redis-server crash with raftinel alive on its host: the grant is released and the failover
//     does not wait for the lease to expire; the new master is writable once its node holds the
//     lease; the old one comes back fenced and becomes a replica
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_master_releases_its_lease_and_the_new_master_is_unfenced() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = colocated(&[&m, &r1, &r2], "").await;
    let _logs = c.logs_on_panic(60);
    monitored_with_lease(&mut c, &m, 1).await;
    eventually("master writable", Duration::from_secs(5), || async {
        m.write_ok("k").then_some(())
    })
    .await;

    let killed = Instant::now();
    m.kill9();
    let new = c
        .new_master(1, m.port, false, Duration::from_secs(10))
        .await;
    let switched = killed.elapsed();
    let promoted = if new.port == u32::from(r1.port) {
        &r1
    } else {
        &r2
    };
    eventually(
        "the new master takes writes",
        Duration::from_secs(5),
        || async { promoted.write_ok("after").then_some(()) },
    )
    .await;
    let writable = killed.elapsed();
    eprintln!("kill -9 → switch {switched:?}, → writable {writable:?} (down-after 1000 ms)");
    let released = c.grep("lease released").len();
    assert!(released > 0, "node 1 never released its grant");
    // The release skips the lease wait: well under down-after + L + m + promotion.
    assert!(
        switched < Duration::from_millis(1000 + 800 + 700),
        "took {switched:?}"
    );

    m.restart();
    eventually(
        "old master fenced, then a replica",
        Duration::from_secs(10),
        || async {
            (m.min_replicas().as_deref() == Some(FENCED) && m.role().as_deref() == Some("slave"))
                .then_some(())
        },
    )
    .await;
    assert!(!m.write_ok("stale"));
}

// --- the master's raftinel dead, its Redis alive: nothing on its host can fence it, so the
//     leader sends the fence over the network before it promotes (an operator's failover here)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_fences_a_reachable_old_master_whose_node_is_dead() {
    let _g = serial();
    let m = Redis::start(&["--min-replicas-to-write", "0"]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = colocated(&[&m, &r1, &r2], "").await;
    let _logs = c.logs_on_panic(40);
    monitored_with_lease(&mut c, &m, 1).await;
    eventually("master writable", Duration::from_secs(5), || async {
        m.write_ok("k").then_some(())
    })
    .await;

    c.kill(1);
    c.wait_leader(&[2, 3], Duration::from_secs(10)).await;
    // The documented gap this closes: with its node gone, the master keeps taking writes.
    assert!(m.write_ok("unguarded"));
    let out = c.ctl(&["failover", "mymaster"]);
    assert!(out.status.success(), "{out:?}");
    c.new_master(2, m.port, false, Duration::from_secs(10))
        .await;
    assert_eq!(
        m.min_replicas().as_deref(),
        Some(FENCED),
        "the old master must carry the fence (only its own node may lift it)"
    );
    assert!(!m.write_ok("stale"));
    assert!(!c.grep("old master fenced over the network").is_empty());
}

// --- the holder's raftinel cut off from the other two nodes, and the master from the other
//     hosts, while the test's client still reaches it: the master refuses writes before the
//     others promote, and never takes one after
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_holder_fences_its_master_before_the_promotion() {
    // "Host 1" (node 1 and the master) runs as A; "the other hosts" (nodes 2, 3 and the replicas)
    // as B; the test's client as itself, so iptables owner rules can tell them apart.
    const A: u32 = 65534;
    const B: u32 = 65533;
    let _g = serial();
    let m = Redis::start(&[]);
    let r1 = Redis::replica_of_as(Some(B), &m, &[]);
    let r2 = Redis::replica_of_as(Some(B), &m, &[]);
    let mut c = colocated(&[&m, &r1, &r2], "").await;
    let _logs = c.logs_on_panic(60);
    c.start_as(1, A);
    c.start_as(2, B);
    c.start_as(3, B);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    eventually(
        "node 1 holds the lease",
        Duration::from_secs(10),
        || async {
            master_of(&c, 2)
                .await
                .filter(|x| x.lease_holder == 1 && x.replicas.len() == 2)
        },
    )
    .await;
    eventually("master writable", Duration::from_secs(5), || async {
        m.write_ok("k").then_some(())
    })
    .await;

    let port = |id: u64| c.grpc_port(id);
    let _cut = Firewall::add(vec![
        Firewall::reject(A, port(2)),
        Firewall::reject(A, port(3)),
        Firewall::reject(B, port(1)),
        Firewall::reject(B, m.port),
    ]);
    let cut = Instant::now();

    let mut last_ok: Option<Duration> = None;
    let mut promoted_at: Option<Duration> = None;
    let mut acked_after_promotion = 0;
    let mut n = 0;
    while cut.elapsed() < Duration::from_secs(8) {
        n += 1;
        if m.write_ok(&format!("p{n}")) {
            last_ok = Some(cut.elapsed());
            if promoted_at.is_some() {
                acked_after_promotion += 1;
            }
        }
        let promoted =
            r1.role().as_deref() == Some("master") || r2.role().as_deref() == Some("master");
        if promoted_at.is_none() && promoted {
            promoted_at = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "cut-off holder: last write acknowledged {last_ok:?} after the cut, promotion at {promoted_at:?}, {n} samples"
    );
    let promoted_at = promoted_at.expect("the majority never promoted a replica");
    let last_ok = last_ok.unwrap_or_default();
    assert!(
        last_ok < promoted_at,
        "the old master acknowledged a write after the promotion"
    );
    assert_eq!(acked_after_promotion, 0);
    // Fenced at most L − F after the last renewal, plus one guard round: within L + R.
    assert!(
        last_ok < Duration::from_millis(700 + 100),
        "fenced only after {last_ok:?}"
    );
}

/// `min-replicas-to-write` and `min-replicas-max-lag` as Redis has them now.
fn min_replicas_of(r: &Redis) -> (Option<String>, Option<String>) {
    (r.min_replicas(), r.config("min-replicas-max-lag"))
}

// --- issue 11 §6: the operator's min-replicas come from the log. A Redis started fenced (as the
//     deploy kit does) ends, once its node acquires the lease, with exactly the log's values and
//     takes writes; after a forced failover the old master is fenced again and the new master
//     carries the same values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfencing_puts_the_logs_min_replicas_on_a_master_started_fenced() {
    let _g = serial();
    let fenced = [
        "--min-replicas-to-write",
        FENCED,
        "--min-replicas-max-lag",
        "10",
    ];
    let m = Redis::start(&fenced);
    let r1 = Redis::replica_of(&m, &fenced);
    let r2 = Redis::replica_of(&m, &fenced);
    // The master on node 3's host. Node 3 is told so only once the settings are in the log (it
    // runs from the start, for the cluster's first initialization), so the first unfence of
    // this Redis must take them from there.
    let mut c = colocated(&[&r1, &r2, &m], "").await;
    let _logs = c.logs_on_panic(60);
    let local = std::mem::take(&mut c.nodes.get_mut(&3).unwrap().args);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let out = c.ctl_settled(&[
        "set",
        "mymaster",
        "min-replicas-to-write",
        "1",
        "min-replicas-max-lag",
        "5",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(!m.write_ok("before"), "started fenced, nobody unfenced it");

    c.stop(3);
    c.nodes.get_mut(&3).unwrap().args = local;
    c.start(3);
    eventually(
        "node 3 holds the master's lease",
        Duration::from_secs(15),
        || async {
            master_of(&c, 1)
                .await
                .filter(|x| x.lease_holder == 3 && x.replicas.len() == 2)
        },
    )
    .await;
    let want = (Some("1".to_owned()), Some("5".to_owned()));
    eventually(
        "the master carries the log's values and takes writes",
        Duration::from_secs(5),
        || async { (min_replicas_of(&m) == want && m.write_ok("k")).then_some(()) },
    )
    .await;
    let json = c.ctl_settled(&["--json", "master", "mymaster"]);
    let shown: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (
            &shown["min_replicas_to_write"],
            &shown["min_replicas_max_lag"]
        ),
        (&serde_json::json!(1), &serde_json::json!(5)),
        "{shown}"
    );
    let text = String::from_utf8_lossy(&c.ctl_settled(&["master", "mymaster"]).stdout).into_owned();
    assert!(
        text.contains(
            "min-replicas-to-write 1  min-replicas-max-lag 5 (applied by the lease holder)"
        ),
        "{text}"
    );
    // A CONFIG SET on Redis itself does not stick: the log is the source of truth.
    m.query(&["CONFIG", "SET", "min-replicas-to-write", "0"])
        .unwrap();
    eventually(
        "the log's value is back",
        Duration::from_secs(5),
        || async { (min_replicas_of(&m) == want).then_some(()) },
    )
    .await;

    let out = c.ctl_settled(&["failover", "mymaster"]);
    assert!(out.status.success(), "{out:?}");
    let new = c.new_master(1, m.port, true, Duration::from_secs(15)).await;
    let promoted = if new.port == u32::from(r1.port) {
        &r1
    } else {
        &r2
    };
    eventually(
        "the new master carries the operator's values and takes writes",
        Duration::from_secs(15),
        || async {
            (min_replicas_of(promoted) == want && promoted.write_ok("after")).then_some(())
        },
    )
    .await;
    // SENTINEL SET on the Sentinel port reaches the writable master without a fence between.
    let sentinel = redis::Client::open(format!("redis://{}", c.nodes[&1].sentinel)).unwrap();
    let mut conn = sentinel
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let reply: redis::Value = redis::cmd("SENTINEL")
        .arg(&["SET", "mymaster", "min-replicas-max-lag", "7"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(reply, redis::Value::Okay);
    let want = (Some("1".to_owned()), Some("7".to_owned()));
    eventually(
        "the new lag on the master",
        Duration::from_secs(5),
        || async {
            (min_replicas_of(promoted) == want && promoted.write_ok("later")).then_some(())
        },
    )
    .await;
    eventually(
        "the old master fenced again",
        Duration::from_secs(5),
        || async { (m.min_replicas().as_deref() == Some(FENCED)).then_some(()) },
    )
    .await;
    assert!(!m.write_ok("stale"));
}

/// Samples for `secs`: the old master's acknowledged writes, and when a replica was first seen
/// promoted. Returns (writes acknowledged after the promotion, promotion time).
async fn writes_after_promotion(
    old: &Redis,
    replicas: &[&Redis],
    secs: u64,
) -> (u32, Option<Duration>) {
    let start = Instant::now();
    let (mut promoted_at, mut after, mut n) = (None, 0, 0);
    while start.elapsed() < Duration::from_secs(secs) {
        n += 1;
        let acked = old.write_ok(&format!("w{n}"));
        if promoted_at.is_none()
            && replicas
                .iter()
                .any(|r| r.role().as_deref() == Some("master"))
        {
            promoted_at = Some(start.elapsed());
        }
        if acked && promoted_at.is_some() {
            after += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (after, promoted_at)
}

// --- issue 11 §3: nodes 4 and 5 removed while running, the holder cut off while the removal
//     commits and then reachable by 4 and 5 only, its master cut off from the remaining voters'
//     hosts. Nodes 4 and 5 never hear of the failover; they must not lend node 1 a majority of
//     the five-voter set while nodes 2 and 3 count "dead" in the three-voter one: never two
//     writable masters, and the failover still happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_but_running_voters_never_split_a_lease() {
    // Host 1 (node 1, the master) runs as A; nodes 2, 3 and the replicas as B; nodes 4, 5 as C.
    const A: u32 = 65534;
    const B: u32 = 65533;
    const C: u32 = 65532;
    let _g = serial();
    let m = Redis::start_as(Some(A), &[]);
    let r1 = Redis::replica_of_as(Some(B), &m, &[]);
    let r2 = Redis::replica_of_as(Some(B), &m, &[]);
    let mut c = colocated(&[&m, &r1, &r2], "").await;
    c.start_as(1, A);
    c.start_as(2, B);
    c.start_as(3, B);
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    for id in [4, 5] {
        c.add_joiner(id);
        c.start_as(id, C);
        let (grpc, sentinel) = (c.nodes[&id].grpc.clone(), c.nodes[&id].sentinel.clone());
        let id = id.to_string();
        let out = c.ctl_settled(&["members", "add", &id, &grpc, "--sentinel", &sentinel]);
        assert!(out.status.success(), "{out:?}");
    }
    let _logs = c.logs_on_panic(80);
    // Node 1's grant is made under the five voters.
    c.wait_leader(&[1, 2, 3, 4, 5], Duration::from_secs(10))
        .await;
    let port = m.port.to_string();
    let out = c.ctl_settled(&["monitor", "mymaster", "127.0.0.1", &port, "3"]);
    assert!(out.status.success(), "{out:?}");
    eventually(
        "node 1 holds, master writable",
        Duration::from_secs(10),
        || async {
            let held = master_of(&c, 2)
                .await
                .is_some_and(|x| x.lease_holder == 1 && x.replicas.len() == 2);
            (held && m.write_ok("k")).then_some(())
        },
    )
    .await;

    let port = |id: u64| c.grpc_port(id);
    let _rest = Firewall::add(vec![
        Firewall::reject(A, port(2)),
        Firewall::reject(A, port(3)),
        Firewall::reject(B, port(1)),
        Firewall::reject(B, m.port),
    ]);
    let a_c = Firewall::add(vec![
        Firewall::reject(A, port(4)),
        Firewall::reject(A, port(5)),
        Firewall::reject(C, port(1)),
    ]);
    c.wait_leader(&[2, 3, 4, 5], Duration::from_secs(10)).await;
    // Not through node 1: cut off, it may still believe it leads. Elections follow a leader
    // removing itself, so each step is retried.
    let via_2_3 = |args: &[&str]| {
        (0..10).any(|_| {
            let ok = c.ctl_via(&[2, 3], args).status.success();
            if !ok {
                std::thread::sleep(Duration::from_millis(500));
            }
            ok
        })
    };
    for id in ["5", "4"] {
        assert!(via_2_3(&["members", "remove", id]), "removing node {id}");
    }
    // Nodes 2 and 3 alone may now agree the master is down.
    assert!(via_2_3(&["set", "mymaster", "quorum", "2"]));
    // Node 1 never applied the removal: it counts the five voters, and now reaches 4 and 5.
    drop(a_c);
    let (after, promoted_at) = writes_after_promotion(&m, &[&r1, &r2], 12).await;
    eprintln!(
        "removed-but-running voters: promotion at {promoted_at:?}, {after} writes acknowledged by the old master after it"
    );
    assert_eq!(after, 0, "two writable masters");
    assert!(promoted_at.is_some(), "the remaining voters never promoted");
}
