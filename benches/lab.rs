//! Three-host lab benchmark (deploy/lab/lab.sh, as root): raftinel beside redis-sentinel on the
//! same namespaces, real processes, ≥ 10 trials each. Prints figures; asserts nothing about speed.
//!
//! - host loss (`lab.sh kill-host n1`: every process on the master's host killed, its link down):
//!   time to the first write acknowledged by the new master (probed from the client host every
//!   10 ms on n2 and n3 in parallel), and for raftinel also through the VIP. raftinel's Raft
//!   leader is on n1 too (it initializes the cluster), so this is the "leader and master lost"
//!   case. Sentinel: three redis-sentinel (down-after 1000, failover-timeout 2000), one per host.
//! - partition (`lab.sh partition n1 reject`, the client still reaches n1): writes the old master
//!   acknowledged after the new master's promotion (must be 0), writes it acknowledged after the
//!   cut that the new master lacks (bounded by L for raftinel), and the most hosts holding the VIP
//!   at once (sampled every 10 ms).
//!
//! Run: `cargo bench --bench lab` (root; needs redis-server, redis-sentinel, iproute2, iptables).
//! `LAB_TRIALS=N` sets the trials per series (default 10). keepalived is not compared yet.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::lab::{in_ns, Lab};
use common::lab_hosts::*;

fn trials() -> usize {
    std::env::var("LAB_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1)
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    a.into_iter().chain(b).min()
}

fn raftinel_host_loss() -> Option<(Duration, Option<Duration>)> {
    let s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.must(&["kill-host", "n1"]);
    let probes = [
        first_ok(t0, addr("n2")),
        first_ok(t0, addr("n3")),
        first_ok(t0, VIP),
    ];
    let [n2, n3, vip] = probes.map(|p| p.join().ok().flatten());
    let (most, _) = sampler.finish(0);
    if most > 1 {
        println!("  !! the VIP was on {most} hosts at once");
    }
    earliest(n2, n3).map(|m| (m, vip))
}

struct Partition {
    after_promotion: usize,
    missing: usize,
    acked_after_cut: usize,
    most_vip: usize,
    promoted: Duration,
}

/// One partition of n1 (see `partition_n1`), with the VIP sampled when raftinel runs.
fn partition_run(s: &Setup, with_vip: bool) -> Option<Partition> {
    let t0 = Instant::now();
    let sampler = with_vip.then(|| VipSampler::start(t0));
    let Partitioned { acked, promoted } = partition_n1(s, t0);
    let most_vip = sampler.map(|s| s.finish(0).0).unwrap_or(0);
    let (host, at) = promoted?;
    let missing = missing_on(host, acked.iter().map(|(_, k)| k.as_str()))?;
    Some(Partition {
        after_promotion: acked.iter().filter(|(t, _)| *t > at).count(),
        missing,
        acked_after_cut: acked.len(),
        most_vip,
        promoted: at,
    })
}

/// Redis on every host (n1 master, no fence) and a redis-sentinel beside each.
fn sentinel_setup() -> Option<Setup> {
    let mut s = Setup {
        lab: Lab::up(),
        dir: tempfile::tempdir().ok()?,
        master: "n1",
    };
    for h in HOSTS {
        s.start_redis(h);
    }
    // No raftinel: nothing unfences. Sentinel's Redis is writable as it starts.
    in_ns("client", || {
        for h in HOSTS {
            let c = redis::Client::open(format!("redis://{}:6379/", addr(h))).ok()?;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let done = c.get_connection().ok().and_then(|mut c| {
                    redis::cmd("CONFIG")
                        .arg("SET")
                        .arg("min-replicas-to-write")
                        .arg("0")
                        .query::<()>(&mut c)
                        .ok()
                });
                if done.is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(())
    })?;
    for h in HOSTS {
        let conf = s.dir.path().join(format!("sentinel-{h}.conf"));
        let text = format!(
            "port 26379\nbind {a}\nsentinel announce-ip {a}\nsentinel monitor mymaster 10.77.0.11 6379 2\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 2000\n\
             sentinel parallel-syncs mymaster 1\n",
            a = addr(h)
        );
        std::fs::write(&conf, text).ok()?;
        let conf = conf.display().to_string();
        let log = s.log(&format!("sentinel-{h}"));
        s.lab.spawn(h, "sentinel", &["redis-sentinel", &conf], &log);
    }
    let synced = bounded("replicas in sync", Duration::from_secs(20), || {
        ["n2", "n3"].iter().all(|h| link_up(h))
    });
    // Sentinels find each other through the master's hello channel every 2 s.
    std::thread::sleep(Duration::from_secs(5));
    synced.then_some(s)
}

fn sentinel_host_loss() -> Option<Duration> {
    let s = sentinel_setup()?;
    let t0 = Instant::now();
    s.lab.must(&["kill-host", "n1"]);
    let probes = [first_ok(t0, addr("n2")), first_ok(t0, addr("n3"))];
    let [n2, n3] = probes.map(|p| p.join().ok().flatten());
    earliest(n2, n3)
}

fn stats(name: &str, mut v: Vec<Duration>, failed: usize) {
    v.sort();
    if v.is_empty() {
        println!("  {name:<44} no successful trial ({failed} failed)");
        return;
    }
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {name:<44} median {:>7.0} ms  p95 {:>7.0} ms  min {:>6.0}  max {:>6.0}  ({} trials, {failed} failed)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.95).as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = trials();
    println!("lab benchmark: {n} trials per series, down-after 1000 ms, lease defaults (L 700, m 100, V 1 s)");

    let (mut master, mut vip, mut failed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..n {
        match raftinel_host_loss() {
            Some((m, v)) => {
                master.push(m);
                match v {
                    Some(v) => vip.push(v),
                    None => failed += 1,
                }
            }
            None => failed += 1,
        }
    }
    println!("host loss (master's host killed, link down; raftinel's Raft leader there too):");
    stats("raftinel: new master takes writes", master, failed);
    stats("raftinel: VIP answers on the new host", vip, failed);
    let (mut sentinel, mut sfailed) = (Vec::new(), 0);
    for _ in 0..n {
        match sentinel_host_loss() {
            Some(d) => sentinel.push(d),
            None => sfailed += 1,
        }
    }
    stats("redis-sentinel: new master takes writes", sentinel, sfailed);

    println!("partition of the master's host from the others (REJECT), client still reaches it:");
    for (name, vip) in [("raftinel", true), ("redis-sentinel", false)] {
        let mut rows = Vec::new();
        for _ in 0..n {
            let setup = if vip { Some(setup()) } else { sentinel_setup() };
            if let Some(p) = setup.and_then(|s| partition_run(&s, vip)) {
                rows.push(p);
            }
        }
        let sum = |f: fn(&Partition) -> usize| rows.iter().map(f).sum::<usize>();
        let most = rows.iter().map(|r| r.most_vip).max().unwrap_or(0);
        println!(
            "  {name:<16} {} trials: acked by the old master after the promotion {} (total), acked after the cut {} of which missing on the new master {}, most VIP holders at once {most}",
            rows.len(),
            sum(|r| r.after_promotion),
            sum(|r| r.acked_after_cut),
            sum(|r| r.missing),
        );
        stats(
            &format!("{name}: promotion after the cut"),
            rows.iter().map(|r| r.promoted).collect(),
            n - rows.len(),
        );
    }
}
