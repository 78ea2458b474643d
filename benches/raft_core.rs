//! Raft core benchmark: prints figures, asserts nothing about speed.
//!
//! Starts a real three-node `raftinel serve` cluster on loopback (OS-assigned ports, a tempdir,
//! default timings, RUST_LOG=warn), waits for a leader, then measures through the generated gRPC
//! client on one channel per target node:
//! 1. commit latency of a topology write (`Set`) on the leader;
//! 2. linearizable `GetMaster` latency on the leader, and local for comparison;
//! 3. linearizable and local `GetMaster` throughput on the leader, 32 concurrent tasks;
//! 4. idle RSS of each node after the load;
//! 5. write and linearizable read latency through a follower (forwarding cost).
//!
//! Run: `cargo bench --bench raft_core`. Every loop is bounded in count and in time; the three
//! processes are killed on exit, panics included.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftinel::pb;
use raftinel::pb::topology_client::TopologyClient;
use tonic::transport::Channel;

const MASTER: &str = "bench";
const WRITES: usize = 2000;
const READS: usize = 5000;
const FOLLOWER_OPS: usize = 500;
const WARMUP: usize = 100;
const TASKS: usize = 32;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
/// Upper bound on the wall time of one latency loop, whatever N is.
const LOOP_BUDGET: Duration = Duration::from_secs(60);
/// Upper bound on one request.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(12);

const GOAL_WRITE_P50: Duration = Duration::from_millis(2);
const GOAL_READ_P50: Duration = Duration::from_micros(300);
const GOAL_RSS_MB: f64 = 20.0;

/// The three `raftinel serve` children; killed (SIGKILL) and reaped on drop, panics included.
/// On a panic, the tail of each node's log is printed first, before the tempdir goes away.
struct Procs {
    children: Vec<(u64, Child, std::path::PathBuf)>,
}

impl Procs {
    fn pid(&self, id: u64) -> u32 {
        self.children
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, c, _)| c.id())
            .expect("no process for that node id")
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for (id, child, log) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            if panicking {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(20)..];
                eprintln!("--- node {id} log tail ---\n{}", tail.join("\n"));
            }
        }
    }
}

fn spawn_all(cluster: &common::Cluster) -> Procs {
    let mut procs = Procs {
        children: Vec::new(),
    };
    for n in cluster.nodes.values() {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("open node log file in the tempdir");
        let child = Command::new(env!("CARGO_BIN_EXE_raftinel"))
            .args(["serve", "--config"])
            .arg(&n.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn `raftinel serve` (CARGO_BIN_EXE_raftinel)");
        // Pushed at once, so a later spawn failure still kills the earlier children.
        procs.children.push((n.id, child, n.log.clone()));
    }
    procs
}

fn client(addr: &str) -> TopologyClient<Channel> {
    let ch = raftinel::dial::Dialer::default()
        .channel(addr)
        .expect("build gRPC channel to node");
    TopologyClient::new(ch)
}

/// Outcome of one bounded latency loop.
struct Latencies {
    samples: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Latencies {
    fn pct(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort_unstable();
        if s.is_empty() {
            return Duration::ZERO;
        }
        // Nearest rank.
        let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[rank - 1]
    }

    fn max(&self) -> Duration {
        self.samples.iter().copied().max().unwrap_or_default()
    }

    /// Samples of 10 ms or more: stalls, next to sub-millisecond medians.
    fn slow(&self) -> usize {
        self.samples
            .iter()
            .filter(|d| **d >= Duration::from_millis(10))
            .count()
    }

    fn per_sec(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `op(i)` sequentially for i in 0..n, stopping early at `LOOP_BUDGET`; each call is bounded
/// by `CALL_TIMEOUT`. Only successful calls are samples.
async fn sequential<F, Fut, T>(n: usize, mut op: F) -> Latencies
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut samples = Vec::with_capacity(n);
    let mut errors = 0;
    let mut first_error = None;
    let start = Instant::now();
    for i in 0..n {
        if start.elapsed() > LOOP_BUDGET {
            break;
        }
        let t = Instant::now();
        let r = tokio::time::timeout(CALL_TIMEOUT, op(i)).await;
        let d = t.elapsed();
        match r {
            Ok(Ok(_)) => samples.push(d),
            Ok(Err(s)) => {
                errors += 1;
                first_error.get_or_insert_with(|| s.to_string());
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("timed out after {CALL_TIMEOUT:?}"));
            }
        }
    }
    Latencies {
        samples,
        errors,
        first_error,
        elapsed: start.elapsed(),
    }
}

fn set_req(i: usize) -> pb::SetRequest {
    pb::SetRequest {
        name: MASTER.into(),
        options: vec![pb::SetOption {
            option: "failover-timeout".into(),
            value: (180_000 + i).to_string(),
        }],
    }
}

fn get_req(c: pb::Consistency) -> pb::GetMasterRequest {
    pb::GetMasterRequest {
        name: MASTER.into(),
        consistency: c as i32,
    }
}

async fn writes(c: &TopologyClient<Channel>, n: usize, offset: usize) -> Latencies {
    sequential(n, |i| {
        let mut c = c.clone();
        async move { c.set(set_req(offset + i)).await }
    })
    .await
}

async fn reads(c: &TopologyClient<Channel>, n: usize, cons: pb::Consistency) -> Latencies {
    sequential(n, |_| {
        let mut c = c.clone();
        async move { c.get_master(get_req(cons)).await }
    })
    .await
}

/// `TASKS` concurrent readers on clones of one client for `THROUGHPUT_WINDOW`.
/// Returns (successful reads, errors, elapsed).
async fn read_throughput(
    c: &TopologyClient<Channel>,
    cons: pb::Consistency,
) -> (u64, u64, Duration) {
    let start = Instant::now();
    let deadline = start + THROUGHPUT_WINDOW;
    let mut handles = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let mut c = c.clone();
        handles.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            while Instant::now() < deadline {
                match tokio::time::timeout(CALL_TIMEOUT, c.get_master(get_req(cons))).await {
                    Ok(Ok(_)) => ok += 1,
                    _ => err += 1,
                }
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for h in handles {
        let (o, e) = h.await.expect("throughput task panicked");
        ok += o;
        err += e;
    }
    (ok, err, start.elapsed())
}

/// VmRSS of a process in KiB (the kernel's "kB").
fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn latency_row(label: &str, l: &Latencies, goal: &str) {
    println!(
        "{label:<34} {:>7} {:>10} {:>10} {:>10} {:>7} {:>8}  {goal}",
        l.samples.len(),
        fmt_d(l.pct(0.50)),
        fmt_d(l.pct(0.99)),
        fmt_d(l.max()),
        l.slow(),
        format!("{:.0}/s", l.per_sec()),
    );
    if l.errors > 0 {
        println!(
            "{:<34} {} error(s), first: {}",
            "",
            l.errors,
            l.first_error.as_deref().unwrap_or("?")
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

#[tokio::main]
async fn main() {
    // Declared before `procs`, so it is dropped after the processes are killed.
    let cluster = common::Cluster::new(3, "");
    let procs = spawn_all(&cluster);

    let ids = [1u64, 2, 3];
    let leader = cluster.wait_leader(&ids, Duration::from_secs(30)).await;
    let follower = *ids
        .iter()
        .find(|id| **id != leader)
        .expect("a three-node cluster has a follower");

    // A real, healthy Redis master, so every node probes it as in production.
    let redis = common::redis::Redis::start(&[]);
    cluster.monitor(leader, MASTER, u32::from(redis.port)).await;

    let lc = client(&cluster.nodes[&leader].grpc);
    let fc = client(&cluster.nodes[&follower].grpc);

    // Warm-up (connection setup, first-touch allocations); not counted.
    let w = writes(&lc, WARMUP, 0).await;
    let r = reads(&lc, WARMUP, pb::Consistency::Linearizable).await;
    assert!(
        w.errors == 0 && r.errors == 0,
        "warm-up against leader {leader} failed: {:?} / {:?}",
        w.first_error,
        r.first_error
    );

    // 1. Write commit latency on the leader.
    let w_leader = writes(&lc, WRITES, WARMUP).await;
    // 2. Linearizable read latency on the leader.
    let r_leader = reads(&lc, READS, pb::Consistency::Linearizable).await;
    // The same call without the read index: what the transport and the service cost alone.
    let r_local = reads(&lc, READS, pb::Consistency::Local).await;
    // 3. Read throughput on the leader.
    let tp_lin = read_throughput(&lc, pb::Consistency::Linearizable).await;
    let tp_local = read_throughput(&lc, pb::Consistency::Local).await;
    // 5. Forwarding cost through a follower.
    let _ = reads(&fc, WARMUP / 4, pb::Consistency::Linearizable).await;
    let w_follower = writes(&fc, FOLLOWER_OPS, WARMUP + WRITES).await;
    let r_follower = reads(&fc, FOLLOWER_OPS, pb::Consistency::Linearizable).await;

    // 4. Idle RSS after the load.
    tokio::time::sleep(IDLE_BEFORE_RSS).await;
    let rss: Vec<(u64, Option<f64>)> = ids
        .iter()
        .map(|id| (*id, rss_kib(procs.pid(*id))))
        .collect();

    let profile = if cfg!(debug_assertions) {
        "debug assertions ON (not a release build)"
    } else {
        "release (cargo bench profile `bench`, inherits `release`)"
    };
    println!();
    println!("raftinel raft_core benchmark");
    println!("  build profile : {profile}");
    println!("  binary        : {}", env!("CARGO_BIN_EXE_raftinel"));
    println!(
        "  cluster       : 3 nodes on loopback, default timings, RUST_LOG=warn; leader = node {leader}, follower used = node {follower}"
    );
    println!(
        "  client        : one tonic channel per target node; sequential loops capped at {LOOP_BUDGET:?}, {WARMUP} warm-up calls not counted"
    );
    println!();
    println!(
        "{:<34} {:>7} {:>10} {:>10} {:>10} {:>7} {:>8}  goal",
        "latency (sequential)", "samples", "p50", "p99", "max", "≥10ms", "rate"
    );
    println!("{}", "-".repeat(100));
    let wg = format!(
        "p50 ≤ 2 ms: {}",
        verdict(w_leader.pct(0.5) <= GOAL_WRITE_P50 && !w_leader.samples.is_empty())
    );
    let rg = format!(
        "p50 ≤ 300 µs: {}",
        verdict(r_leader.pct(0.5) <= GOAL_READ_P50 && !r_leader.samples.is_empty())
    );
    latency_row("1. Set (write commit), leader", &w_leader, &wg);
    latency_row("2. GetMaster LINEARIZABLE, leader", &r_leader, &rg);
    latency_row("2. GetMaster LOCAL, leader", &r_local, "-");
    latency_row("5. Set via follower (forwarded)", &w_follower, "-");
    latency_row("5. GetMaster LIN. via follower", &r_follower, "-");
    println!();
    println!(
        "{:<34} {:>7} {:>10} {:>10} {:>12}",
        "throughput (leader)", "tasks", "window", "reads", "reads/s"
    );
    println!("{}", "-".repeat(100));
    for (label, (ok, err, el)) in [
        ("3. GetMaster LINEARIZABLE", tp_lin),
        ("3. GetMaster LOCAL", tp_local),
    ] {
        println!(
            "{label:<34} {TASKS:>7} {:>10} {ok:>10} {:>12.0}{}",
            format!("{:.2} s", el.as_secs_f64()),
            ok as f64 / el.as_secs_f64().max(1e-9),
            if err > 0 {
                format!("  ({err} errors)")
            } else {
                String::new()
            }
        );
    }
    println!();
    println!(
        "{:<34} {:>10} {:>10}  goal (after {IDLE_BEFORE_RSS:?} idle)",
        "4. idle RSS (VmRSS)", "MB", "MiB"
    );
    println!("{}", "-".repeat(100));
    for (id, kib) in rss {
        let role = if id == leader { "leader" } else { "follower" };
        match kib {
            Some(kib) => {
                let mb = kib * 1024.0 / 1e6;
                println!(
                    "{:<34} {mb:>10.1} {:>10.1}  ≤ {GOAL_RSS_MB} MB: {}",
                    format!("node {id} ({role})"),
                    kib / 1024.0,
                    verdict(mb <= GOAL_RSS_MB)
                )
            }
            None => println!(
                "{:<34} {:>10} {:>10}  (process gone?)",
                format!("node {id} ({role})"),
                "n/a",
                "n/a"
            ),
        }
    }
    println!();
    drop(procs);
}
