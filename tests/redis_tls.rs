//! raftinel's connections to Redis (issue 10 §5): a TLS-only master and replicas monitored and
//! failed over after kill -9, and `ctl set NAME auth-pass -` reading the password from stdin.
//! Real redis-server processes, a real three-node cluster on loopback.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::Pki;
use common::redis::Redis;
use common::{bin, eventually, serial, Cluster};
use raftinel::pb::{self, Consistency};

const TIMINGS: &str = "default-down-after-ms = 1000\n";
const FENCED: &str = "2147483647";

async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, "mymaster", Consistency::Local).await.ok()
}

/// SENTINEL GET-MASTER-ADDR-BY-NAME mymaster on node `id`'s Sentinel port: the port it names.
async fn sentinel_says(c: &Cluster, id: u64) -> Option<u16> {
    let url = format!("redis://{}/", c.nodes[&id].sentinel);
    let client = redis::Client::open(url).ok()?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query_async(&mut conn)
        .await
        .ok()?;
    reply.map(|(_, port)| port)
}

/// `ctl set mymaster ...` with `stdin` piped in.
fn ctl_with_stdin(c: &Cluster, args: &[&str], stdin: &str) -> std::process::Output {
    let list: Vec<&str> = c.nodes.values().map(|n| n.grpc.as_str()).collect();
    let mut child = Command::new(bin())
        .args(["ctl", "--cluster", &list.join(",")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

// --- A TLS-only master (no plaintext port) with two TLS replicas, each on a node's "host"
//     (`--local-redis`): the `tls` option makes the probes, discovery, the lease fence, promotion
//     and repointing all use TLS with the nodes' [redis-tls] files. kill -9 of the master: its
//     node sees it gone (connection refused on the TLS port) and releases the lease, the best
//     replica is promoted and unfenced, and every Sentinel port names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_redis_is_monitored_fenced_and_failed_over() {
    let _g = serial();
    let pki = Pki::new();
    let mut m = Redis::start_tls(&pki, &["--min-replicas-to-write", "0"]);
    let r1 = Redis::replica_of_tls(&pki, &m, &[]);
    let r2 = Redis::replica_of_tls(&pki, &m, &[]);
    let mut c = Cluster::new(3, &format!("{TIMINGS}{}", pki.raftinel_config()));
    for (id, r) in [(1, &m), (2, &r1), (3, &r2)] {
        let n = c.nodes.get_mut(&id).unwrap();
        n.args = vec!["--local-redis".into(), format!("127.0.0.1:{}", r.port)];
    }
    let _logs = c.logs_on_panic(40);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let out = c.ctl_settled(&["set", "mymaster", "tls", "yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.ctl_settled(&["master", "mymaster", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tls"], serde_json::Value::Bool(true), "{json}");

    // Discovery reads the master's INFO, the holder is found by the run id each node reads from
    // its local Redis: all over TLS.
    eventually(
        "replicas discovered and node 1 holding the lease, over TLS",
        Duration::from_secs(15),
        || async {
            master_of(&c, leader)
                .await
                .filter(|x| x.replicas.len() == 2 && x.lease_holder == 1)
        },
    )
    .await;
    eventually(
        "the master unfenced, its replicas fenced",
        Duration::from_secs(10),
        || async {
            (m.write_ok("k")
                && r1.min_replicas().as_deref() == Some(FENCED)
                && r2.min_replicas().as_deref() == Some(FENCED))
            .then_some(())
        },
    )
    .await;
    for id in 1..=3 {
        let port = eventually("the Sentinel port answers", Duration::from_secs(10), || {
            sentinel_says(&c, id)
        })
        .await;
        assert_eq!(port, m.port, "node {id}");
    }
    // Something to survive the failover: WAIT counts its own connection's writes.
    let acked = m
        .pipeline(&[&["SET", "k", "v"], &["WAIT", "2", "2000"]])
        .unwrap();
    assert_eq!(acked, redis::Value::Int(2));

    m.kill9();
    let new = c.new_master(1, m.port, true, Duration::from_secs(15)).await;
    assert!(
        !c.grep("Redis gone: lease released").is_empty(),
        "node 1 did not see its TLS-only master gone"
    );
    let (promoted, other) = if new.port == u32::from(r1.port) {
        (&r1, &r2)
    } else {
        (&r2, &r1)
    };
    assert_eq!(new.port, u32::from(promoted.port));
    assert_eq!(promoted.role().as_deref(), Some("master"));
    eventually(
        "the new master unfenced by its node",
        Duration::from_secs(10),
        || async { promoted.write_ok("after").then_some(()) },
    )
    .await;
    for id in 1..=3 {
        eventually(
            "every Sentinel port names the new master",
            Duration::from_secs(10),
            || async { (sentinel_says(&c, id).await == Some(promoted.port)).then_some(()) },
        )
        .await;
    }
    other
        .wait_following(promoted, Duration::from_secs(15))
        .await;
    let v: String = redis::from_redis_value(promoted.query(&["GET", "k"]).unwrap()).unwrap();
    assert_eq!(v, "v");
}

// --- `ctl set NAME auth-pass -` reads the password from stdin (never argv): with it the monitor
//     authenticates and discovers the replica; the old argv form still works but warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_set_auth_pass_reads_stdin() {
    let _g = serial();
    let m = Redis::start_with_pass("s3cret", &[]);
    let port = m.port.to_string();
    let _r = Redis::start_with_pass(
        "s3cret",
        &["--replicaof", "127.0.0.1", &port, "--masterauth", "s3cret"],
    );
    let mut c = Cluster::new(3, TIMINGS);
    let _logs = c.logs_on_panic(40);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;

    let out = ctl_with_stdin(&c, &["set", "mymaster", "auth-pass", "-"], "s3cret\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let out = c.ctl_settled(&["master", "mymaster", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["auth_pass_set"],
        serde_json::Value::Bool(true),
        "{json}"
    );
    // INFO needs the password: the replica is found only with the right one (no newline).
    eventually(
        "the replica discovered with the password from stdin",
        Duration::from_secs(10),
        || async {
            master_of(&c, leader)
                .await
                .filter(|x| x.replicas.len() == 1)
        },
    )
    .await;

    let out = c.ctl_settled(&["set", "mymaster", "auth-pass", "s3cret"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: a password on the command line"),
        "{stderr}"
    );
}
