//! Pub/sub latency benchmark (issue 4): how long after the commit that caused it an event reaches
//! Sentinel-port subscribers on every node. Prints figures; asserts nothing about speed.
//!
//! Setup (127.0.0.1 only): one redis-server master and a three-node `raftinel serve` cluster
//! (default timings) monitoring it as `mymaster`. One raw RESP connection per node runs
//! `PSUBSCRIBE +set`. Then, `EVENTS_BENCH_N` times (default 200), the bench commits `SET
//! mymaster parallel-syncs K` through the leader's gRPC API and timestamps its reply — the leader
//! answers once the entry is committed and applied, so that is the commit time as a client can
//! observe it — and the arrival of the matching `+set` message on each node. Figures: per node,
//! the p50 / p99 / max of (arrival − commit reply), which is negative when the message beats the
//! reply; and the same from the request's send time. Goal: every node within 50 ms of the commit.
//!
//! Run: `cargo bench --bench events`. Every wait is bounded (readiness 30 s, each event 5 s);
//! processes are killed on drop, panics included.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{eventually, Cluster};
use raftinel::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Reads `+set` messages from one subscription and sends (value, arrival) pairs.
async fn listen(mut s: TcpStream, node: u64, tx: mpsc::UnboundedSender<(u64, String, Instant)>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        let at = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        // Each message ends with its payload "... parallel-syncs K\r\n".
        let text = String::from_utf8_lossy(&buf).into_owned();
        let mut consumed = 0;
        for (i, _) in text.match_indices("parallel-syncs ") {
            let rest = &text[i + 15..];
            if let Some(end) = rest.find("\r\n") {
                let _ = tx.send((node, rest[..end].to_owned(), at));
                consumed = i + 15 + end + 2;
            }
        }
        buf.drain(..consumed.min(buf.len()));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("EVENTS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(1);
    let m = Redis::start(&[]);
    let mut c = Cluster::new(3, "");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for id in 1..=3u64 {
        let addr = c.nodes[&id].sentinel.clone();
        let mut s = eventually("Sentinel port open", Duration::from_secs(30), || {
            let addr = addr.clone();
            async move { TcpStream::connect(&addr).await.ok() }
        })
        .await;
        s.write_all(b"PSUBSCRIBE +set\r\n").await.unwrap();
        let mut ack = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut ack)).await;
        tokio::spawn(listen(s, id, tx.clone()));
    }
    let mut client = c.client(leader).await;
    let mut from_commit: [Vec<f64>; 3] = Default::default();
    let mut from_send: [Vec<f64>; 3] = Default::default();
    let mut missed = 0;
    for k in 0..n {
        // Values cycle through 1..=9: consecutive commits differ, so each message is matched
        // to its own commit.
        let value = (k % 9 + 1).to_string();
        let sent = Instant::now();
        let req = pb::SetRequest {
            name: "mymaster".to_owned(),
            options: vec![pb::SetOption {
                option: "parallel-syncs".to_owned(),
                value: value.clone(),
            }],
        };
        client.set(req).await.expect("SET through the leader");
        let committed = Instant::now();
        let mut seen = [false; 3];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.iter().any(|s| !s) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((node, v, at))) if v == value => {
                    let i = (node - 1) as usize;
                    if !seen[i] {
                        seen[i] = true;
                        let ms = |a: Instant, b: Instant| {
                            if a >= b {
                                (a - b).as_secs_f64() * 1e3
                            } else {
                                -((b - a).as_secs_f64() * 1e3)
                            }
                        };
                        from_commit[i].push(ms(at, committed));
                        from_send[i].push(ms(at, sent));
                    }
                }
                Ok(Some(_)) => {}
                _ => {
                    missed += 1;
                    break;
                }
            }
        }
        // A short pause, so that each commit is measured alone.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("raftinel pub/sub latency: +set on PSUBSCRIBE +set, {n} commits through the leader (node {leader})");
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "node", "p50 ms", "p99 ms", "max ms", "send→p50 ms", "send→p99 ms"
    );
    let mut worst = f64::MIN;
    for i in 0..3 {
        let role = if i as u64 + 1 == leader {
            "leader"
        } else {
            "follower"
        };
        let (mut a, mut b) = (from_commit[i].clone(), from_send[i].clone());
        let max = a.iter().copied().fold(f64::MIN, f64::max);
        worst = worst.max(max);
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>12.2}",
            format!("node {} ({role})", i + 1),
            pct(&mut a, 0.5),
            pct(&mut a, 0.99),
            max,
            pct(&mut b, 0.5),
            pct(&mut b, 0.99)
        );
    }
    println!("events not seen on every node within 5 s: {missed}");
    let verdict = if worst <= 50.0 && missed == 0 {
        "met"
    } else {
        "MISSED"
    };
    println!("goal: every node within 50 ms of the commit (worst {worst:.2} ms): {verdict}");
    drop(c);
}
