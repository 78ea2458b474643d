//! Failover of real Redis: real redis-server processes, a real three-node raftinel cluster,
//! kill -9 of the master.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{serial, Cluster};
use raftinel::pb::{self, Consistency};

const TIMINGS: &str = "default-down-after-ms = 1000\n";

/// Polls `f` every 20 ms until it returns Some, or fails after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, "mymaster", Consistency::Local).await.ok()
}

/// Starts the cluster, monitors `master` and waits until the log knows `replicas` replicas.
async fn monitored(c: &mut Cluster, master: &Redis, replicas: usize) {
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(master.port)).await;
    eventually("replicas discovered", Duration::from_secs(10), || async {
        master_of(c, leader)
            .await
            .filter(|m| m.replicas.len() == replicas)
    })
    .await;
}

// --- kill -9 of the master: the best replica promoted, the other repointed, the old master
//     folded back in when restarted, epoch + 1, all three raftinel nodes agree
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_kill_promotes_best_replica_and_folds_old_master_in() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(3, TIMINGS);
    monitored(&mut c, &m, 2).await;
    m.query(&["SET", "k", "v"]).unwrap();
    m.query(&["WAIT", "2", "2000"]).unwrap();

    let killed = Instant::now();
    m.kill9();
    let new = eventually(
        "a new master in the log",
        Duration::from_secs(10),
        || async {
            master_of(&c, 1)
                .await
                .filter(|x| x.port != u32::from(m.port))
        },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("failover committed {took:?} after kill -9 (down-after 1000 ms)");
    assert_eq!(new.config_epoch, 1);
    let (promoted, other) = if new.port == u32::from(r1.port) {
        (&r1, &r2)
    } else {
        (&r2, &r1)
    };
    assert_eq!(new.port, u32::from(promoted.port));
    assert_eq!(promoted.role().as_deref(), Some("master"));
    for id in 1..=3 {
        let x = eventually("every node agrees", Duration::from_secs(5), || async {
            master_of(&c, id).await.filter(|x| x.port == new.port)
        })
        .await;
        assert_eq!(x.config_epoch, 1, "node {id}");
    }
    eventually(
        "the other replica follows the new master",
        Duration::from_secs(10),
        || async {
            (other.master_port() == Some(promoted.port)
                && other.info_field("master_link_status").as_deref() == Some("up"))
            .then_some(())
        },
    )
    .await;
    let v: String = redis::from_redis_value(promoted.query(&["GET", "k"]).unwrap()).unwrap();
    assert_eq!(v, "v");

    m.restart();
    eventually(
        "the old master folded back in",
        Duration::from_secs(15),
        || async {
            (m.role().as_deref() == Some("slave") && m.master_port() == Some(promoted.port))
                .then_some(())
        },
    )
    .await;
    eventually("the failover ends", Duration::from_secs(15), || async {
        master_of(&c, 2).await.filter(|x| x.failover.is_none())
    })
    .await;
}

// --- replica-priority 0 is never promoted
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_priority_zero_is_never_promoted() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let never = Redis::replica_of(&m, &["--replica-priority", "0"]);
    let ok = Redis::replica_of(&m, &["--replica-priority", "100"]);
    let mut c = Cluster::new(3, TIMINGS);
    monitored(&mut c, &m, 2).await;
    m.kill9();
    let new = eventually(
        "a new master in the log",
        Duration::from_secs(10),
        || async {
            master_of(&c, 1)
                .await
                .filter(|x| x.port != u32::from(m.port))
        },
    )
    .await;
    assert_eq!(new.port, u32::from(ok.port));
    assert_eq!(never.role().as_deref(), Some("slave"));
}
