//! Three-host lab benchmark (deploy/lab/lab.sh, as root): raftinel beside redis-sentinel and
//! keepalived on the same namespaces, real processes, ≥ 10 trials each. Prints figures; asserts
//! nothing about speed.
//!
//! - host loss (`lab.sh kill-host n1`: the master's host's link down, then every process on it
//!   killed): time to the first write acknowledged by the new master (probed from the client host
//!   every 10 ms on n2 and n3 in parallel), and through the VIP for raftinel and keepalived.
//!   raftinel's Raft leader is on n1 too (it initializes the cluster), so this is the "leader and
//!   master lost" case. Sentinel: three redis-sentinel (down-after 1000, failover-timeout 2000),
//!   one per host.
//! - partition (`lab.sh partition n1 reject`, the client still reaches n1): writes the old master
//!   acknowledged after the new master's promotion (must be 0), writes it acknowledged after the
//!   cut that the new master lacks (bounded by L for raftinel), and the most hosts holding the VIP
//!   at once (sampled every 10 ms).
//! - daemon kill: kill -9 of the HA daemon on n1, which holds the VIP, its Redis left running;
//!   the most hosts holding the VIP at once, and when it left n1 and reached n2 or n3.
//! - keepalived (benches/lab/keepalived.rs), once with `advert_int 1` and once with 0.1 (named
//!   "keepalived 1 s" / "keepalived 0.1 s"): one VRRP instance per host (unicast peers, priority n1
//!   150, n2 100, n3 50) whose notify_master runs `REPLICAOF NO ONE` on the local Redis, the usual
//!   keepalived + Redis pairing. Its daemon kill freezes then kills every keepalived process on n1,
//!   so none can send a goodbye advert. Skipped, with a line saying so, if keepalived is missing.
//!
//! Run: `cargo bench --bench lab` (root; needs redis-server, iproute2, iptables;
//! keepalived for its series). `LAB_TRIALS=N` sets the trials per series (default 10);
//! `LAB_ONLY=raftinel,sentinel,keepalived` (any of them) runs only those series;
//! `LAB_SCENARIOS=host-loss,partition,daemon-kill` (any of them) only those scenarios;
//! `RAFTINEL_LAB_PREFIX` names the lab's namespaces apart from the tests' (default `rlt-`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "lab/keepalived.rs"]
mod keepalived;

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

/// Whether `LAB_ONLY` (a comma-separated list; all when unset) asks for `series`.
fn only(series: &str) -> bool {
    listed("LAB_ONLY", series)
}

/// Whether `LAB_SCENARIOS` (a comma-separated list; all when unset) asks for `name`.
fn scenario(name: &str) -> bool {
    listed("LAB_SCENARIOS", name)
}

fn listed(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |v| v.split(',').any(|s| s.trim() == name))
}

struct HostLoss {
    master: Duration,
    vip: Option<Duration>,
    most_vip: usize,
}

/// `lab.sh kill-host n1` at t0: when n2 or n3 first acknowledged a write, when a write through the
/// VIP first was, and the most hosts holding the VIP at once (a dead host's address counts).
fn host_loss(s: &Setup) -> Option<HostLoss> {
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.must(&["kill-host", "n1"]);
    let probes = [
        first_ok(t0, addr("n2")),
        first_ok(t0, addr("n3")),
        first_ok(t0, VIP),
    ];
    let [n2, n3, vip] = probes.map(|p| p.join().ok().flatten());
    let (most_vip, _) = sampler.finish(0);
    earliest(n2, n3).map(|master| HostLoss {
        master,
        vip,
        most_vip,
    })
}

/// `n` host-loss trials, each on a fresh lab from `make`; prints the new master's row and, for a
/// series with a VIP, the VIP's.
fn host_loss_rows(name: &str, n: usize, with_vip: bool, make: &MakeLab) {
    let (mut master, mut vip, mut most, mut failed, mut vip_failed) =
        (Vec::new(), Vec::new(), 0, 0, 0);
    for _ in 0..n {
        match make().and_then(|s| host_loss(&s)) {
            Some(h) => {
                master.push(h.master);
                most = most.max(h.most_vip);
                match h.vip {
                    Some(v) => vip.push(v),
                    None => vip_failed += 1,
                }
            }
            None => failed += 1,
        }
    }
    stats(&format!("{name}: new master takes writes"), master, failed);
    if with_vip {
        stats(
            &format!("{name}: VIP answers on the new host"),
            vip,
            failed + vip_failed,
        );
        println!(
            "  {:<46} {most}",
            format!("{name}: most VIP holders at once")
        );
    }
}

struct Partition {
    after_promotion: usize,
    missing: usize,
    acked_after_cut: usize,
    most_vip: usize,
    promoted: Duration,
}

/// One partition of n1 (see `partition_n1`), with the VIP sampled when the series has one.
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

/// `n` partition trials, each on a fresh lab from `make`.
fn partition_rows(name: &str, n: usize, with_vip: bool, make: &MakeLab) {
    let mut rows = Vec::new();
    for _ in 0..n {
        if let Some(p) = make().and_then(|s| partition_run(&s, with_vip)) {
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

/// What the VIP did after a failure: the most hosts holding it at once, when it was first seen off
/// n1, and when first on n2 or n3.
struct VipWatch {
    most: usize,
    left_n1: Option<Duration>,
    elsewhere: Option<Duration>,
}

/// Lets `sampler` run `how_long` more, then reads it.
fn watch_vip(sampler: VipSampler, how_long: Duration) -> Option<VipWatch> {
    std::thread::sleep(how_long);
    let samples = sampler.samples.clone();
    let (most, _) = sampler.finish(0);
    let samples = samples.lock().ok()?;
    // Samples start as "nowhere" until each host's thread has looked: n1 has left only once it
    // has been seen holding the VIP.
    let on_n1 = samples
        .iter()
        .position(|(_, s)| s[0])
        .unwrap_or(samples.len());
    let left_n1 = samples[on_n1..]
        .iter()
        .find(|(_, s)| !s[0])
        .map(|(t, _)| *t);
    let elsewhere = samples.iter().find(|(_, s)| s[1] || s[2]).map(|(t, _)| *t);
    Some(VipWatch {
        most,
        left_n1,
        elsewhere,
    })
}

/// kill -9 of raftinel on n1, the Raft leader's and the VIP holder's host (Redis there lives on).
fn raftinel_daemon_kill(mut s: Setup) -> Option<VipWatch> {
    let sampler = VipSampler::start(Instant::now());
    s.lab.kill("n1", "raftinel");
    watch_vip(sampler, Duration::from_secs(3))
}

/// `n` daemon-kill trials, each on a fresh lab from `make`.
fn daemon_kill_rows(name: &str, n: usize, make: &MakeLab, kill: &KillDaemon) {
    let rows: Vec<VipWatch> = (0..n).filter_map(|_| make().and_then(kill)).collect();
    let most = rows.iter().map(|r| r.most).max().unwrap_or(0);
    println!(
        "  {name:<16} {} trials: most VIP holders at once {most}",
        rows.len()
    );
    let gone: Vec<Duration> = rows.iter().filter_map(|w| w.left_n1).collect();
    let elsewhere: Vec<Duration> = rows.iter().filter_map(|w| w.elsewhere).collect();
    for (what, v) in [("VIP gone from n1", gone), ("VIP on n2 or n3", elsewhere)] {
        let label = format!("{name}: {what}");
        if v.is_empty() {
            println!(
                "  {label:<46} never within the watch ({} trials)",
                rows.len()
            );
        } else {
            let failed = n - v.len();
            stats(&label, v, failed);
        }
    }
}

/// Redis on every host, n1 master and n2, n3 its replicas in sync, writable from the start: no
/// raftinel runs to unfence it (the redis-sentinel and keepalived series).
fn plain_redis_setup() -> Option<Setup> {
    let mut s = Setup {
        lab: Lab::up(),
        dir: tempfile::tempdir().ok()?,
        master: "n1",
        ca: raftinel::certs::issue::Ca::create().ok()?,
        appendonly: false,
    };
    for h in HOSTS {
        s.start_redis(h);
    }
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
    let synced = bounded("replicas in sync", Duration::from_secs(20), || {
        ["n2", "n3"].iter().all(|h| link_up(h))
    });
    synced.then_some(s)
}

/// `plain_redis_setup` and a redis-sentinel beside each Redis.
fn sentinel_setup() -> Option<Setup> {
    let mut s = plain_redis_setup()?;
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
        // `redis-sentinel` is redis-server by another name, and Debian packages it apart.
        s.lab
            .spawn(h, "sentinel", &["redis-server", &conf, "--sentinel"], &log);
    }
    // Sentinels find each other through the master's hello channel every 2 s.
    std::thread::sleep(Duration::from_secs(5));
    Some(s)
}

fn stats(name: &str, mut v: Vec<Duration>, failed: usize) {
    v.sort();
    if v.is_empty() {
        println!("  {name:<46} no successful trial ({failed} failed)");
        return;
    }
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {name:<46} median {:>7.0} ms  p95 {:>7.0} ms  min {:>6.0}  max {:>6.0}  ({} trials, {failed} failed)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.95).as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    );
}

/// A fresh lab for one trial (None if it did not come up).
type MakeLab = Box<dyn Fn() -> Option<Setup>>;
/// kill -9 of the HA daemon on n1, the VIP holder, in a lab from `MakeLab`.
type KillDaemon = Box<dyn Fn(Setup) -> Option<VipWatch>>;

/// One system compared; `with_vip` if it moves the VIP.
struct Series {
    name: String,
    with_vip: bool,
    make: MakeLab,
    daemon_kill: Option<KillDaemon>,
}

/// The series that `LAB_ONLY` asks for, keepalived's only if it is installed.
fn series() -> Vec<Series> {
    let mut all = Vec::new();
    if only("raftinel") {
        all.push(Series {
            name: "raftinel".into(),
            with_vip: true,
            make: Box::new(|| Some(setup())),
            daemon_kill: Some(Box::new(raftinel_daemon_kill)),
        });
    }
    if only("sentinel") {
        all.push(Series {
            name: "redis-sentinel".into(),
            with_vip: false,
            make: Box::new(sentinel_setup),
            daemon_kill: None,
        });
    }
    if only("keepalived") && !keepalived::installed() {
        println!("keepalived not installed: apt-get install keepalived (then stop its service)");
    } else if only("keepalived") {
        for advert in keepalived::ADVERTS {
            all.push(Series {
                name: keepalived::name(advert),
                with_vip: true,
                make: Box::new(move || keepalived::setup(advert)),
                daemon_kill: Some(Box::new(move |s| keepalived::daemon_kill(&s, advert))),
            });
        }
    }
    all
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = trials();
    println!("lab benchmark: {n} trials per series, down-after 1000 ms, lease defaults (L 700, m 100, V 1 s)");
    let series = series();
    if scenario("host-loss") {
        println!("host loss (master's host killed, link down; raftinel's Raft leader there too):");
        for s in &series {
            host_loss_rows(&s.name, n, s.with_vip, &s.make);
        }
    }
    if scenario("partition") {
        println!(
            "partition of the master's host from the others (REJECT), client still reaches it:"
        );
        for s in &series {
            partition_rows(&s.name, n, s.with_vip, &s.make);
        }
    }
    if scenario("daemon-kill") {
        println!("kill -9 of the VIP holder's daemon on n1 (its Redis lives on):");
        for s in &series {
            if let Some(kill) = &s.daemon_kill {
                daemon_kill_rows(&s.name, n, &s.make, kill);
            }
        }
    }
}
