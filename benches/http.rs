//! HTTP API cost benchmark (issue 15): what load-balancer checks and Prometheus scrapes cost a
//! node. Prints figures; asserts nothing about speed.
//!
//! Setup (127.0.0.1 only): one redis-server master and two replicas, three `raftinel serve` nodes
//! (default timings, RUST_LOG=warn), node i co-located with Redis i (`--local-redis`), each with
//! its HTTP API on (`--http-listen`), monitoring the master as `mymaster`.
//!
//! Measured per node, as % of one core (utime + stime from /proc), over `HTTP_BENCH_SECONDS`
//! (default 20) each: an idle window, then a load window in which every node gets
//! `GET /primary/mymaster` 100 times a second and `GET /metrics` once a second, each on a new
//! connection (as HAProxy's checks and Prometheus' scrapes come). Figures: idle, loaded, and their
//! difference; requests answered and the /metrics size. Goal: the load costs under 1 % of a core
//! per node.
//!
//! Run: `cargo bench --bench http`. Every wait is bounded; processes are killed on drop.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{free_port, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// utime + stime of `pid`'s thread named `raftinel-http`, the HTTP API's.
fn http_thread_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "raftinel-http" {
            return stat_ticks(&t.path().join("stat").display().to_string());
        }
    }
    0
}

fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

async fn get(addr: &str, path: &str) -> Option<(u16, usize)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let code = text.split(' ').nth(1)?.parse().ok()?;
        Some((code, buf.len()))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// What one window measured: per node, % of one core for the process and for its HTTP thread;
/// requests answered; the last /metrics size.
struct Window {
    process: Vec<f64>,
    http: Vec<f64>,
    answered: u64,
    metrics_len: usize,
}

/// % of one core each pid used over `window`, while `load` runs (if any).
async fn cpu_over(pids: &[u32], window: Duration, load: Option<&[String]>) -> Window {
    let before_http: Vec<u64> = pids.iter().map(|p| http_thread_ticks(*p)).collect();
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let start = Instant::now();
    let (mut answered, mut metrics_len) = (0u64, 0usize);
    if let Some(http) = load {
        let mut primary = tokio::time::interval(Duration::from_millis(10));
        let mut scrape = tokio::time::interval(Duration::from_secs(1));
        while start.elapsed() < window {
            tokio::select! {
                _ = primary.tick() => {
                    let asks = http.iter().map(|a| get(a, "/primary/mymaster"));
                    answered += futures::future::join_all(asks).await.iter().flatten().count() as u64;
                }
                _ = scrape.tick() => {
                    let asks = http.iter().map(|a| get(a, "/metrics"));
                    for (_, len) in futures::future::join_all(asks).await.into_iter().flatten() {
                        answered += 1;
                        metrics_len = len;
                    }
                }
            }
        }
    } else {
        tokio::time::sleep(window).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / 100.0 / secs * 100.0;
    Window {
        process: pids
            .iter()
            .zip(before)
            .map(|(p, b)| pct(cpu_ticks(*p).saturating_sub(b)))
            .collect(),
        http: pids
            .iter()
            .zip(before_http)
            .map(|(p, b)| pct(http_thread_ticks(*p).saturating_sub(b)))
            .collect(),
        answered,
        metrics_len,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::var("HTTP_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let window = Duration::from_secs(seconds);
    let m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(3, "");
    let mut http = Vec::new();
    for (i, r) in [&m, &r1, &r2].iter().enumerate() {
        let addr = format!("127.0.0.1:{}", free_port());
        let n = c.nodes.get_mut(&(i as u64 + 1)).unwrap();
        n.args = vec![
            "--local-redis".into(),
            format!("127.0.0.1:{}", r.port),
            "--http-listen".into(),
            addr.clone(),
        ];
        http.push(addr);
    }
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&http[0], "/primary/mymaster").await.map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "node 1 never said primary");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pids: Vec<u32> = (1..=3).filter_map(|id| c.pid(id)).collect();
    assert_eq!(pids.len(), 3, "every node runs");
    println!("raftinel HTTP API cost: /primary 100/s and /metrics 1/s on every node, {seconds} s windows");
    let idle = cpu_over(&pids, window, None).await;
    let loaded = cpu_over(&pids, window, Some(&http)).await;
    println!(
        "{:<24}{:>10}{:>10}{:>14}{:>16}",
        "node", "idle %", "loaded %", "process Δ %", "HTTP thread %"
    );
    let mut worst = 0.0f64;
    for i in 0..pids.len() {
        let role = if i as u64 + 1 == leader {
            "leader"
        } else {
            "follower"
        };
        let thread = loaded.http[i] - idle.http[i];
        worst = worst.max(thread);
        println!(
            "{:<24}{:>10.2}{:>10.2}{:>14.2}{:>16.2}",
            format!("node {} ({role})", i + 1),
            idle.process[i],
            loaded.process[i],
            loaded.process[i] - idle.process[i],
            thread
        );
    }
    let expected = 3 * (100 + 1) * seconds;
    println!(
        "requests answered: {} of about {expected}; /metrics response {} bytes",
        loaded.answered, loaded.metrics_len
    );
    println!("(process Δ also counts the rest of the node slowed by the load generator on the same 2 cores)");
    let verdict = if worst < 1.0 { "met" } else { "MISSED" };
    println!("goal: the HTTP API under 1 % of a core per node (worst {worst:.2} %): {verdict}");
    drop(c);
}
