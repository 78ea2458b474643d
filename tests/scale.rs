//! Issue 13 (scale): one cluster watching 50 masters fails them all over when they are killed at
//! once, and every node's Sentinel port tells its subscriber every `+switch-master`.
//!
//! Real parts: 100 redis-server processes, three `raftinel serve` nodes over gRPC, the redis
//! crate's pub/sub client on each node's Sentinel port. Timings are not asserted here (the scale
//! benchmark measures them); only that everything happens within generous bounds.

#![allow(clippy::await_holding_lock)] // serial(): one cluster test at a time

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::Redis;
use common::{eventually, serial, Cluster};
use futures::StreamExt;
use raftinel::pb;

const M: usize = 50;

fn name(i: usize) -> String {
    format!("m{i:02}")
}

/// Subscribes to `+switch-master` on a Sentinel port and collects the names it announces.
async fn subscriber(addr: &str) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let client = redis::Client::open(format!("redis://{addr}")).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("connect");
    pubsub.subscribe("+switch-master").await.expect("subscribe");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    let task = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            if let Some(name) = payload.split(' ').next() {
                into.lock().unwrap().push(name.to_owned());
            }
        }
    });
    (seen, task)
}

/// Every node lists all M masters, each with its replica known.
async fn all_known(c: &Cluster) {
    eventually(
        "every master with its replica on every node",
        Duration::from_secs(90),
        || async {
            for id in 1..=3u64 {
                let list = c.list(id).await.ok()?;
                let ready = list.iter().filter(|m| m.replicas.len() == 1).count();
                (ready == M).then_some(())?;
            }
            Some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_masters_killed_at_once_all_fail_over_and_every_node_tells_its_subscribers() {
    let _g = serial();
    let mut masters: Vec<Redis> = (0..M).map(|_| Redis::start(&[])).collect();
    let replicas: Vec<Redis> = masters.iter().map(|m| Redis::replica_of(m, &[])).collect();
    let mut c = Cluster::new(3, "default-down-after-ms = 1000\n");
    c.start_all();
    let _logs = c.logs_on_panic(80);
    c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await;
    for (i, m) in masters.iter().enumerate() {
        c.monitor(1, &name(i), u32::from(m.port)).await;
    }
    all_known(&c).await;

    let mut subs = Vec::new();
    for id in 1..=3u64 {
        subs.push(subscriber(&c.nodes[&id].sentinel).await);
    }
    for m in &mut masters {
        m.kill9();
    }

    for (id, (seen, _)) in subs.iter().enumerate() {
        eventually(
            &format!("+switch-master for every master on node {}", id + 1),
            Duration::from_secs(60),
            || async {
                let names: BTreeSet<String> = seen.lock().unwrap().iter().cloned().collect();
                (names.len() == M).then_some(())
            },
        )
        .await;
    }
    for (i, r) in replicas.iter().enumerate() {
        let m = c
            .get(1, &name(i), pb::Consistency::Linearizable)
            .await
            .expect("get");
        assert_eq!(
            m.port,
            u32::from(r.port),
            "{} promoted its replica",
            name(i)
        );
        eventually(
            &format!("{} writable", name(i)),
            Duration::from_secs(10),
            || async { r.write_ok("k").then_some(()) },
        )
        .await;
    }
    for (seen, task) in subs {
        task.abort();
        assert_eq!(
            seen.lock().unwrap().len(),
            M,
            "one +switch-master per master"
        );
    }
}
