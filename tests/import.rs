//! `raftinel import-sentinel`: a sentinel.conf that a real redis-sentinel rewrote after a failover
//! (known-replica, known-sentinel, config-epoch, the new master in its monitor line) applied to a
//! fresh raftinel cluster, which then takes an unchanged Sentinel client through a kill -9
//! failover.

#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::redis::{RealSentinel, Redis};
use common::{bin, eventually, serial, Cluster};
use redis::sentinel::{SentinelClient, SentinelServerType};

fn sentinel_cmd(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut c = client.get_connection_with_timeout(Duration::from_secs(1))?;
    let mut cmd = redis::cmd("SENTINEL");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

fn master_port(port: u16) -> Option<u16> {
    let v = sentinel_cmd(port, &["get-master-addr-by-name", "mymaster"]).ok()?;
    let (_, p): (String, u16) = redis::from_redis_value(v).ok()?;
    Some(p)
}

fn import(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .arg("import-sentinel")
        .args(args)
        .output()
        .unwrap()
}

/// SET through a Sentinel client of the redis crate, on a fresh connection to the master it finds.
async fn write_via(sentinels: &[String], key: &str) -> bool {
    let urls: Vec<String> = sentinels.iter().map(|a| format!("redis://{a}/")).collect();
    let Ok(mut client) = SentinelClient::build(urls, "mymaster", None, SentinelServerType::Master)
    else {
        return false;
    };
    let step = async {
        let mut c = client.get_async_connection().await?;
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query_async::<()>(&mut c)
            .await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), step).await,
        Ok(Ok(()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_sentinel_conf_is_imported_and_fails_over() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &["--replica-priority", "0"]);

    // A real Sentinel, tuned and failed over once: it rewrites its file with the new master.
    let real = RealSentinel::watching(&m, "mymaster");
    // Quorum 2, as three sentinels would have it (a forced failover needs no quorum).
    for (k, v) in [
        ("down-after-milliseconds", "1000"),
        ("failover-timeout", "20000"),
        ("quorum", "2"),
    ] {
        assert_eq!(
            sentinel_cmd(real.port, &["set", "mymaster", k, v]).unwrap(),
            redis::Value::Okay
        );
    }
    eventually(
        "the real sentinel sees both replicas",
        Duration::from_secs(15),
        || {
            let n = sentinel_cmd(real.port, &["replicas", "mymaster"])
                .ok()
                .and_then(|v| redis::from_redis_value::<Vec<redis::Value>>(v).ok())
                .map_or(0, |v| v.len());
            async move { (n == 2).then_some(()) }
        },
    )
    .await;
    // Refused (NOGOODSLAVE) until the sentinel has fresh INFO of a replica.
    eventually(
        "the real sentinel starts a failover",
        Duration::from_secs(15),
        || {
            let ok = sentinel_cmd(real.port, &["failover", "mymaster"]).is_ok();
            async move { ok.then_some(()) }
        },
    )
    .await;
    eventually(
        "the real sentinel failed over, both others replicating the new master",
        Duration::from_secs(60),
        || {
            let moved = master_port(real.port) == Some(r1.port)
                && m.master_port() == Some(r1.port)
                && r2.master_port() == Some(r1.port);
            async move { moved.then_some(()) }
        },
    )
    .await;
    let conf = std::fs::read_to_string(real.conf()).unwrap();
    assert!(conf.contains("known-replica"), "{conf}");
    drop(real);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.conf");
    std::fs::write(&file, &conf).unwrap();
    let file = file.display().to_string();

    let mut c = Cluster::new(3, "default-down-after-ms = 5000\n");
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(40);
    let grpc = c.nodes[&1].grpc.clone();

    let dry = import(&[&file, "--dry-run", "--cluster", &grpc]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        dry_out.contains(&format!(
            "raftinel ctl --cluster {grpc} monitor mymaster 127.0.0.1 {}",
            r1.port
        )),
        "{dry_out}"
    );
    assert!(
        dry_out.contains("set mymaster down-after-milliseconds 1000"),
        "{dry_out}"
    );

    let json = import(&[&file, "--dry-run", "--json", "--cluster", &grpc]);
    let lines: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let statuses: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"command") && statuses.contains(&"ignored"),
        "{lines}"
    );

    let out = import(&[&file, "--cluster", &grpc]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}\n{text}");
    for want in [
        "monitor mymaster 127.0.0.1",
        "set mymaster down-after-milliseconds 1000: OK",
        "set mymaster failover-timeout 20000: OK",
        "known-replica 127.0.0.1",
        "ignored: sentinel config-epoch mymaster 1",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    assert!(text.contains(": listed by the cluster"), "{text}");
    assert!(!text.contains("not listed yet"), "{text}");
    // ctl list: one row per instance.
    let list = std::process::Command::new(bin())
        .args(["ctl", "--cluster", &grpc, "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.starts_with("MASTER "), "{table}");
    assert!(
        table.contains(&format!("mymaster  127.0.0.1:{}  master ", r1.port)),
        "{table}"
    );
    // Importing again changes nothing and says so.
    let again = import(&[&file, "--cluster", &grpc]);
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already monitored"));

    let sentinels: Vec<String> = (1..=3).map(|id| c.nodes[&id].sentinel.clone()).collect();
    eventually(
        "the imported master through the Sentinel port",
        Duration::from_secs(15),
        || {
            let ports: Vec<Option<u16>> = sentinels
                .iter()
                .map(|a| master_port(a.rsplit_once(':').unwrap().1.parse().unwrap()))
                .collect();
            let want = Some(r1.port);
            async move { ports.iter().all(|p| *p == want).then_some(()) }
        },
    )
    .await;
    let down_after = sentinel_cmd(
        sentinels[0].rsplit_once(':').unwrap().1.parse().unwrap(),
        &["master", "mymaster"],
    )
    .unwrap();
    let fields: Vec<String> = redis::from_redis_value(down_after).unwrap();
    let pos = fields
        .iter()
        .position(|f| f == "down-after-milliseconds")
        .unwrap();
    assert_eq!(fields[pos + 1], "1000");
    eventually(
        "a write through the imported cluster",
        Duration::from_secs(15),
        || {
            let s = sentinels.clone();
            async move { write_via(&s, "before").await.then_some(()) }
        },
    )
    .await;

    // kill -9 the master the import took over: the unchanged client follows the failover.
    let mut r1 = r1;
    r1.kill9();
    eventually(
        "a write after the failover",
        Duration::from_secs(30),
        || {
            let s = sentinels.clone();
            async move { write_via(&s, "after").await.then_some(()) }
        },
    )
    .await;
    assert_eq!(
        m.query(&["EXISTS", "after"]).ok(),
        Some(redis::Value::Int(1))
    );
    drop(r2);
}
