//! Operator actions against real Redis and a real cluster: lossless switchover under writes,
//! forced failover, pause/resume, and history from the log.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{serial, Cluster};
use raftinel::pb::{self, Consistency};

const TIMINGS: &str = "default-down-after-ms = 1000\n";

async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, "mymaster", Consistency::Local).await.ok()
}

/// Polls `check` every 20 ms until it holds, or fails after `within`.
async fn until(
    c: &Cluster,
    what: &str,
    within: Duration,
    check: impl Fn(&pb::Master) -> bool,
) -> pb::Master {
    let deadline = Instant::now() + within;
    loop {
        if let Some(m) = master_of(c, 1).await.filter(|m| check(m)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            c.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cluster_with(master: &Redis, replicas: usize) -> Cluster {
    let mut c = Cluster::new(3, TIMINGS);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(master.port)).await;
    until(&c, "replicas known", Duration::from_secs(10), |m| {
        m.replicas.len() == replicas
    })
    .await;
    c
}

/// INCRs a counter without pause on the master it is pointed at, like a client re-resolving
/// after a disconnect; `finish_on` checks that every acknowledged INCR is on the new master.
struct Writer {
    acked: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    port: Arc<std::sync::atomic::AtomicU16>,
    thread: std::thread::JoinHandle<u32>,
}

impl Writer {
    fn start(master: u16) -> Writer {
        let acked = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let port = Arc::new(std::sync::atomic::AtomicU16::new(master));
        let thread = {
            let (acked, stop, port) = (acked.clone(), stop.clone(), port.clone());
            std::thread::spawn(move || {
                let mut errors = 0u32;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let p = port.load(Ordering::Relaxed);
                    let r = redis::Client::open(format!("redis://127.0.0.1:{p}/"))
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                        .and_then(|mut conn| {
                            conn.set_read_timeout(Some(Duration::from_secs(3)))?;
                            redis::cmd("INCR").arg("counter").query::<i64>(&mut conn)
                        });
                    match r {
                        Ok(v) => {
                            acked.fetch_max(v, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                errors
            })
        };
        Writer {
            acked,
            stop,
            port,
            thread,
        }
    }

    /// Points the writer at `new`, lets it write there a little, stops it and checks.
    async fn finish_on(self, new: &Redis) {
        self.port.store(new.port, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.thread.join().unwrap();
        let max_acked = self.acked.load(Ordering::Relaxed);
        let on_new: i64 = redis::from_redis_value(new.query(&["GET", "counter"]).unwrap()).unwrap();
        eprintln!("acknowledged up to {max_acked}, new master has {on_new}, {errors} write errors");
        assert!(max_acked > 0);
        assert!(
            on_new >= max_acked,
            "lost acknowledged writes: acked {max_acked}, new master {on_new}"
        );
    }
}

// --- switchover under continuous writes: every acknowledged write is on the new master
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_writes_loses_no_acknowledged_write() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let _r2 = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, 2).await;

    let w = Writer::start(m.port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to = format!("127.0.0.1:{}", r1.port);
    let out = c.ctl(&["switchover", "mymaster", "--to", &to]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = until(&c, "switched to r1", Duration::from_secs(15), |x| {
        x.port == u32::from(r1.port)
    })
    .await;
    assert_eq!(new.config_epoch, 1);
    w.finish_on(&r1).await;
    until(
        &c,
        "old master is a replica and the switchover ends",
        Duration::from_secs(15),
        |x| x.failover.is_none(),
    )
    .await;
    assert_eq!(m.role().as_deref(), Some("slave"));
    let out = c.ctl(&["history", "mymaster", "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h[0]["reason"], "switchover");
    assert_eq!(h[0]["from"], format!("127.0.0.1:{}", m.port));
    assert_eq!(h[0]["to"], to);
}

// --- Valkey 9's SENTINEL FAILOVER <name> COORDINATED is the same lossless switchover
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_coordinated_loses_no_acknowledged_write() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, 1).await;
    let w = Writer::start(m.port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Node 2 refuses with NOGOODSLAVE until its own INFO has seen the replica: wait for that.
    let addr = format!("redis://{}/", c.nodes[&2].sentinel);
    let replica_seen = || -> Option<()> {
        let mut s = redis::Client::open(addr.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .ok()?;
        let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
            .arg(&["REPLICAS", "mymaster"])
            .query(&mut s)
            .ok()?;
        let flags = replicas.first()?.chunks(2).find(|kv| kv[0] == "flags")?[1].clone();
        (flags == "slave").then_some(())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica_seen().is_none() {
        assert!(Instant::now() < deadline, "node 2 never saw the replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = redis::Client::open(addr.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap();
    let bad: redis::RedisResult<String> = redis::cmd("SENTINEL")
        .arg(&["FAILOVER", "mymaster", "NOW"])
        .query(&mut s);
    assert!(
        format!("{:?}", bad.unwrap_err()).contains("syntax error"),
        "an unknown mode is refused"
    );
    let ok: String = redis::cmd("SENTINEL")
        .arg(&["FAILOVER", "mymaster", "coordinated"])
        .query(&mut s)
        .unwrap();
    assert_eq!(ok, "OK");
    let new = until(
        &c,
        "switched to the replica",
        Duration::from_secs(15),
        |x| x.port == u32::from(r.port),
    )
    .await;
    assert_eq!(new.config_epoch, 1);
    w.finish_on(&r).await;
    until(&c, "the switchover ends", Duration::from_secs(15), |x| {
        x.failover.is_none()
    })
    .await;
    assert_eq!(m.role().as_deref(), Some("slave"));
    let out = c.ctl(&["history", "mymaster", "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h[0]["reason"], "switchover", "not a forced failover");
}

// --- a forced failover promotes a replica of a healthy master; pause keeps raftinel hands-off
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_and_pause_resume() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let _r2 = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, 2).await;
    // Anti-flapping blocks a second automatic failover within failover-timeout: keep it short.
    assert!(c
        .ctl(&["set", "mymaster", "failover-timeout", "2000"])
        .status
        .success());

    let out = c.ctl(&["failover", "mymaster"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = until(&c, "forced failover", Duration::from_secs(10), |x| {
        x.config_epoch == 1
    })
    .await;
    assert_ne!(new.port, u32::from(m.port));
    until(&c, "forced failover ends", Duration::from_secs(15), |x| {
        x.failover.is_none()
    })
    .await;
    assert_eq!(
        m.role().as_deref(),
        Some("slave"),
        "the healthy old master is folded in"
    );

    // Paused: the master dies and nothing happens.
    assert!(c.ctl(&["pause", "mymaster"]).status.success());
    let current = if new.port == u32::from(r1.port) {
        &r1
    } else {
        &_r2
    };
    current.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let still = master_of(&c, 1).await.unwrap();
    assert!(still.paused);
    assert_eq!(still.config_epoch, 1, "no failover while paused");
    assert!(c.ctl(&["resume", "mymaster"]).status.success());
    let after = until(&c, "failover after resume", Duration::from_secs(10), |x| {
        x.config_epoch == 2
    })
    .await;
    assert_ne!(after.port, new.port);
    current.signal("-CONT");
    m.kill9();
}

// --- the leader's Watch stream carries Sentinel's events of a failover, +sdown and +odown included
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_events_on_the_watch_stream() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let _r1 = Redis::replica_of(&m, &[]);
    let _r2 = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, 2).await;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    let mut stream = c
        .client(leader)
        .await
        .watch(pb::WatchRequest { from_index: 0 })
        .await
        .unwrap()
        .into_inner();
    m.kill9();
    let mut kinds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = |kinds: &[String], k: &str| kinds.iter().any(|x| x == k);
    let wanted = ["+failover-end", "+sdown", "+slave-reconf-done"];
    while !wanted.iter().all(|k| seen(&kinds, k)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no +failover-end and +sdown; got {kinds:?}"
        );
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(e))) => kinds.push(e.kind),
            other => panic!("stream ended: {other:?}; got {kinds:?}"),
        }
    }
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    // This node's own +sdown may come after +odown, even after the failover: the followers'
    // reports can make the quorum before this node's own timer fires.
    assert!(pos("+odown") < pos("+new-epoch"), "{kinds:?}");
    for (a, b) in [
        ("+new-epoch", "+try-failover"),
        ("+try-failover", "+selected-slave"),
        ("+selected-slave", "+promoted-slave"),
        ("+promoted-slave", "+switch-master"),
        ("+switch-master", "+failover-end"),
    ] {
        assert!(pos(a) < pos(b), "{a} before {b}: {kinds:?}");
    }
    // The other replica is repointed by the leader, then reported linked to the new master.
    assert!(
        pos("+switch-master") < pos("+slave-reconf-sent"),
        "{kinds:?}"
    );
    assert!(
        pos("+slave-reconf-sent") < pos("+slave-reconf-done"),
        "{kinds:?}"
    );
}

// --- min-failover-interval blocks automatic failover after a completed one, ctl master's data
//     says until when and why, and reset-failover-delay (an admin write) clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_failover_interval_shows_and_reset_failover_delay_clears_it() {
    let _g = serial();
    let m = Redis::start(&[]);
    let _r = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, 1).await;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let mut api = c.client(leader).await;
    api.set(pb::SetRequest {
        name: "mymaster".into(),
        options: vec![pb::SetOption {
            option: "min-failover-interval".into(),
            value: "600000".into(),
        }],
    })
    .await
    .expect("SET min-failover-interval");
    api.failover(pb::NameRequest {
        name: "mymaster".into(),
    })
    .await
    .expect("forced failover");
    let m1 = until(
        &c,
        "the forced failover ends",
        Duration::from_secs(20),
        |x| x.config_epoch == 1 && x.failover.is_none(),
    )
    .await;
    assert_eq!(m1.min_failover_interval_ms, 600_000);
    assert_eq!(m1.retry_reason, "min-failover-interval");
    assert_eq!(m1.retry_epoch, 1);
    assert!(m1.retry_not_before_ms > 500_000, "{m1:?}");

    api.reset_failover_delay(pb::NameRequest {
        name: "mymaster".into(),
    })
    .await
    .expect("reset-failover-delay");
    until(&c, "the delay is cleared", Duration::from_secs(5), |x| {
        x.retry_not_before_ms == 0 && x.retry_reason.is_empty()
    })
    .await;
    let missing = api
        .reset_failover_delay(pb::NameRequest {
            name: "nope".into(),
        })
        .await
        .expect_err("no such master");
    assert_eq!(missing.message(), "ERR No such master with that name");
}

// --- issue 14: Sentinel's `rename-command` is honoured in everything raftinel sends: a master and
//     replicas whose CONFIG, REPLICAOF, CLIENT, MULTI and EXEC are renamed (and SLAVEOF disabled)
//     fail over through the renamed commands after a kill -9
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_uses_the_renamed_commands() {
    let _g = serial();
    let renames = [
        "--rename-command",
        "CONFIG",
        "cfg-x",
        "--rename-command",
        "REPLICAOF",
        "rof-x",
        "--rename-command",
        "SLAVEOF",
        "",
        "--rename-command",
        "CLIENT",
        "cli-x",
        "--rename-command",
        "MULTI",
        "mu-x",
        "--rename-command",
        "EXEC",
        "ex-x",
    ];
    let mut m = Redis::start(&renames);
    let r1 = Redis::replica_of(&m, &renames);
    let r2 = Redis::replica_of(&m, &renames);
    let c = cluster_with(&m, 2).await;
    let _logs = c.logs_on_panic(60);
    let set = c.ctl_settled(&[
        "set",
        "mymaster",
        "rename-command",
        "CONFIG cfg-x",
        "rename-command",
        "replicaof rof-x",
        "rename-command",
        "client cli-x",
        "rename-command",
        "MULTI mu-x",
        "rename-command",
        "exec ex-x",
    ]);
    assert!(set.status.success(), "{set:?}");
    m.kill9();
    let new = until(&c, "failover ends", Duration::from_secs(20), |x| {
        x.config_epoch == 1 && x.failover.is_none()
    })
    .await;
    let (promoted, other) = if new.port == u32::from(r1.port) {
        (&r1, &r2)
    } else {
        (&r2, &r1)
    };
    assert_eq!(promoted.role().as_deref(), Some("master"));
    let follows = || other.info_field("master_port") == Some(promoted.port.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !follows() {
        assert!(
            Instant::now() < deadline,
            "the other replica was not repointed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
