//! The three-host namespace lab (deploy/lab/lab.sh): real redis-server and raftinel in hosts n1,
//! n2, n3, a client host, the VIP 10.77.0.200/24 on eth0. Host loss and a partition of the
//! master's host, sampled every 10 ms. Needs root (CI is root); a lab that cannot be built fails
//! the test.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::{enter, in_ns, Lab};
use common::{bin, serial};
use raftinel::lease::netlink::{ifindex, Netlink};

const HOSTS: [&str; 3] = ["n1", "n2", "n3"];
const VIP: &str = "10.77.0.200";
const DOWN_AFTER_MS: u64 = 1000;

fn addr(host: &str) -> &'static str {
    match host {
        "n1" => "10.77.0.11",
        "n2" => "10.77.0.12",
        "n3" => "10.77.0.13",
        _ => "10.77.0.100",
    }
}

struct Setup {
    lab: Lab,
    dir: tempfile::TempDir,
    /// The host whose Redis starts as master.
    master: &'static str,
}

impl Setup {
    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn start_redis(&mut self, host: &str) {
        let dir = self.dir.path().join(format!("redis-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec![
            "redis-server".to_owned(),
            "--bind".into(),
            "0.0.0.0".into(),
            "--protected-mode".into(),
            "no".into(),
            "--port".into(),
            "6379".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
            "--dir".into(),
            dir.display().to_string(),
            // As the deploy kit does: a Redis that starts takes no writes until raftinel says so.
            "--min-replicas-to-write".into(),
            "2147483647".into(),
            "--min-replicas-max-lag".into(),
            "10".into(),
        ];
        if host != self.master {
            args.extend([
                "--replicaof".into(),
                addr(self.master).into(),
                "6379".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.log(&format!("redis-{host}"));
        self.lab.spawn(host, "redis", &args, &log);
    }

    fn start_node(&mut self, id: usize) {
        let host = HOSTS[id - 1];
        let cfg = self.dir.path().join(format!("{host}.toml"));
        let text = format!(
            "id = {id}\nlisten = \"{a}:26380\"\nsentinel-listen = \"{a}:26379\"\ndata-dir = \"{d}\"\n\
             default-down-after-ms = {DOWN_AFTER_MS}\nlocal-redis = [\"{a}:6379\"]\n\
             [masters.mymaster]\nvip-interface = \"eth0\"\n[peers]\n1 = \"10.77.0.11:26380\"\n\
             2 = \"10.77.0.12:26380\"\n3 = \"10.77.0.13:26380\"\n",
            a = addr(host),
            d = self.dir.path().join(format!("data-{host}")).display(),
        );
        std::fs::write(&cfg, text).unwrap();
        let cfg = cfg.display().to_string();
        let log = self.log(&format!("raftinel-{host}"));
        self.lab
            .spawn(host, "raftinel", &[bin(), "serve", "--config", &cfg], &log);
    }

    fn ctl(&self, args: &[&str]) -> bool {
        let cluster = "10.77.0.11:26380,10.77.0.12:26380,10.77.0.13:26380";
        let mut full = vec!["run", "client", bin(), "ctl", "--cluster", cluster];
        full.extend_from_slice(args);
        self.lab.sh(&full).status.success()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for h in HOSTS {
            let text =
                std::fs::read_to_string(self.log(&format!("raftinel-{h}"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- raftinel on {h}\n"));
            for l in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// Three hosts running Redis (n1 master) and raftinel, monitoring `mymaster` with the VIP; waits
/// until the VIP is on n1 and writable from the client.
fn setup() -> Setup {
    setup_on("n1")
}

/// The same with the master on `master`'s host.
fn setup_on(master: &'static str) -> Setup {
    let mut s = Setup {
        lab: Lab::up(),
        dir: tempfile::tempdir().unwrap(),
        master,
    };
    for h in HOSTS {
        s.start_redis(h);
    }
    for id in 1..=3 {
        s.start_node(id);
    }
    let ok = bounded("cluster takes MONITOR", Duration::from_secs(20), || {
        s.ctl(&["monitor", "mymaster", addr(master), "6379", "2"]) || s.ctl(&["master", "mymaster"])
    });
    assert!(ok, "MONITOR never succeeded\n{}", s.logs());
    assert!(s.ctl(&["set", "mymaster", "vip", "10.77.0.200/24"]));
    let synced = bounded("replicas in sync", Duration::from_secs(20), || {
        HOSTS.iter().filter(|h| **h != master).all(|h| link_up(h))
    });
    assert!(synced, "the replicas never synced\n{}", s.logs());
    let ok = bounded(
        "VIP on the master's host and writable",
        Duration::from_secs(20),
        || vip_hosts() == vec![master] && in_ns("client", || set(VIP, "warm").is_ok()),
    );
    assert!(ok, "the VIP never came up on {master}\n{}", s.logs());
    s
}

/// Polls `f` every 50 ms until it holds or `within` passes.
fn bounded(_what: &str, within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// SET from the current thread's namespace, with short timeouts.
fn set(host: &str, key: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(format!("redis://{host}:6379/"))?;
    let mut c = client.get_connection_with_timeout(Duration::from_millis(200))?;
    c.set_read_timeout(Some(Duration::from_millis(300)))?;
    c.set_write_timeout(Some(Duration::from_millis(300)))?;
    redis::cmd("SET").arg(key).arg("v").query(&mut c)
}

fn role(host: &str) -> Option<String> {
    in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr(host))).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        let v: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
        match v.first() {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    })
}

fn link_up(host: &str) -> bool {
    in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr(host))).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
        Some(info.contains("master_link_status:up"))
    })
    .unwrap_or(false)
}

/// The hosts whose eth0 carries the VIP now.
fn vip_hosts() -> Vec<&'static str> {
    HOSTS
        .iter()
        .copied()
        .filter(|h| {
            in_ns(h, || {
                let ip: Ipv4Addr = VIP.parse().unwrap();
                let index = ifindex("eth0").ok()?;
                Netlink::open().ok()?.has(index, ip).ok()
            })
            .unwrap_or(false)
        })
        .collect()
}

/// When, and on which of n1, n2, n3 the VIP was.
type Samples = Arc<Mutex<Vec<(Duration, [bool; 3])>>>;

/// A thread per host that records, every 10 ms, whether the VIP is on it.
struct VipSampler {
    stop: Arc<AtomicBool>,
    samples: Samples,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl VipSampler {
    fn start(t0: Instant) -> VipSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let current = Arc::new(Mutex::new([false; 3]));
        let mut threads = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let (stop, current, samples) = (stop.clone(), current.clone(), samples.clone());
            threads.push(std::thread::spawn(move || {
                enter(h);
                let ip: Ipv4Addr = VIP.parse().unwrap();
                let mut nl = Netlink::open().unwrap();
                let index = ifindex("eth0").unwrap();
                for _ in 0..6000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let on = nl.has(index, ip).unwrap_or(false);
                    let snapshot = {
                        let mut c = current.lock().unwrap();
                        c[i] = on;
                        *c
                    };
                    samples.lock().unwrap().push((t0.elapsed(), snapshot));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
        VipSampler {
            stop,
            samples,
            threads,
        }
    }

    /// The most hosts seen holding the VIP at once, and the first time it was on `host` alone.
    fn finish(self, host: usize) -> (usize, Option<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let samples = self.samples.lock().unwrap();
        let max = samples
            .iter()
            .map(|(_, s)| s.iter().filter(|x| **x).count())
            .max()
            .unwrap_or(0);
        let first = samples
            .iter()
            .find(|(_, s)| s[host] && s.iter().filter(|x| **x).count() == 1)
            .map(|(t, _)| *t);
        (max, first)
    }
}

// --- host loss: the master's host cut off and its processes killed; the new master takes
//     writes and the VIP answers on the new host; the returning host brings no VIP back and its
//     Redis becomes a replica
#[test]
fn host_loss_moves_the_master_and_the_vip() {
    let _g = serial();
    let mut s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.must(&["kill-host", "n1"]);
    // One prober per target, each every 10 ms from the client host: the first acknowledged write.
    let first_ok = |target: &'static str| {
        std::thread::spawn(move || {
            enter("client");
            for i in 0..2000 {
                if t0.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                if set(target, &format!("{target}-{i}")).is_ok() {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    };
    let probes = [first_ok(addr("n2")), first_ok(addr("n3")), first_ok(VIP)];
    let [n2, n3, vip] = probes.map(|p| p.join().unwrap());
    let new_master = match (n2, n3) {
        (Some(a), Some(b)) if b < a => Some(("n3", b)),
        (Some(a), _) => Some(("n2", a)),
        (None, Some(b)) => Some(("n3", b)),
        (None, None) => None,
    };
    let vip_ok = vip;
    let (most, _) = sampler.finish(0);
    let (host, writable) = new_master.unwrap_or_else(|| panic!("no new master\n{}", s.logs()));
    let vip = vip_ok.unwrap_or_else(|| panic!("the VIP never answered\n{}", s.logs()));
    eprintln!(
        "host loss: new master {host} writable after {writable:?}, VIP answers after {vip:?}"
    );
    assert!(most <= 1, "the VIP was on {most} hosts at once");
    // down-after + 700 ms (the Raft leader was on n1), and max(down-after, L + m, V + 1 s) +
    // 300 ms for the VIP: generous bounds here, the benchmark reports the distribution.
    assert!(
        writable < Duration::from_millis(DOWN_AFTER_MS + 2000),
        "{writable:?}"
    );
    assert!(vip < Duration::from_millis(2000 + 2000), "{vip:?}");

    // The host returns: Redis (fenced, as the deploy kit starts it) and raftinel restart.
    s.lab.kill("n1", "redis");
    s.lab.kill("n1", "raftinel");
    s.lab.must(&["heal", "n1"]);
    s.start_redis("n1");
    s.start_node(1);
    let back = bounded("old master a replica", Duration::from_secs(20), || {
        role("n1").as_deref() == Some("slave")
    });
    assert!(back, "n1 did not become a replica\n{}", s.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        vip_hosts(),
        vec![host],
        "the VIP must stay on the new master's host"
    );
}

// --- partition of the master's host from the other two while the client still reaches it:
//     it stops acknowledging writes before the majority promotes; the VIP is never on two
//     hosts; after heal the client's ARP entry for the VIP points at the new holder
#[test]
fn partitioned_master_host_is_fenced_before_the_promotion() {
    let _g = serial();
    let s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.must(&["partition", "n1", "reject"]);
    let mut acked: Vec<(Duration, String)> = Vec::new();
    let mut promoted: Option<(&str, Duration)> = None;
    for i in 0..2000 {
        if t0.elapsed() > Duration::from_secs(6) {
            break;
        }
        let key = format!("p{i}");
        if in_ns("client", || set(addr("n1"), &key).is_ok()) {
            acked.push((t0.elapsed(), key));
        }
        if promoted.is_none() && i % 5 == 0 {
            for h in ["n2", "n3"] {
                if role(h).as_deref() == Some("master") {
                    promoted = Some((h, t0.elapsed()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (host, at) = promoted.unwrap_or_else(|| panic!("no promotion\n{}", s.logs()));
    let last = acked.last().map(|(t, _)| *t).unwrap_or_default();
    let missing: usize = in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr(host))).unwrap();
        let mut c = client.get_connection().unwrap();
        acked
            .iter()
            .filter(|(_, k)| {
                let v: Option<String> = redis::cmd("GET").arg(k).query(&mut c).unwrap_or(None);
                v.is_none()
            })
            .count()
    });
    s.lab.must(&["heal", "n1"]);
    std::thread::sleep(Duration::from_millis(3000));
    let (most, _) = sampler.finish(0);
    eprintln!(
        "partition: old master's last ack {last:?}, promotion of {host} at {at:?}, {} acks after the cut, {missing} of them missing on the new master, most VIP holders at once {most}",
        acked.len()
    );
    assert!(
        last < at,
        "the old master acknowledged a write after the promotion"
    );
    assert!(most <= 1, "the VIP was on {most} hosts at once");
    assert!(
        last < Duration::from_millis(700 + 200),
        "fenced only after {last:?}"
    );
    // After heal: the client's ARP cache points at the new holder.
    let new_mac = in_ns(host, || raftinel::lease::garp::mac_of("eth0").unwrap());
    let arp = in_ns("client", || {
        let _ = set(VIP, "after-heal");
        // This thread's namespace, not the process's: /proc/thread-self.
        std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default()
    });
    let mac = new_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let line: BTreeMap<&str, &str> = arp
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    assert_eq!(
        line.get(VIP).copied(),
        Some(mac.as_str()),
        "client ARP: {arp}"
    );
}

// --- raftinel on the holder SIGSTOPped with its Redis healthy: no promotion, no write lost, the
//     VIP gone by V + 1 s (the kernel lifetime: nothing of raftinel runs); back after SIGCONT
#[test]
fn frozen_holder_raftinel_loses_the_vip_but_no_write() {
    let _g = serial();
    let s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.must(&["pause", "n1", "raftinel"]);
    let mut failed = 0;
    let mut written = Vec::new();
    for i in 0..400 {
        if t0.elapsed() > Duration::from_secs(4) {
            break;
        }
        let key = format!("f{i}");
        match in_ns("client", || set(addr("n1"), &key)) {
            Ok(()) => written.push(key),
            Err(_) => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let promoted: Vec<&str> = ["n2", "n3"]
        .into_iter()
        .filter(|h| role(h).as_deref() == Some("master"))
        .collect();
    s.lab.must(&["resume", "n1", "raftinel"]);
    let back = bounded("VIP back on n1", Duration::from_secs(10), || {
        vip_hosts() == vec!["n1"]
    });
    let samples = sampler.samples.lock().unwrap().clone();
    let (most, _) = sampler.finish(0);
    let gone = samples.iter().find(|(_, s)| !s[0]).map(|(t, _)| *t);
    eprintln!(
        "frozen holder: {} writes, {failed} failed, VIP gone from n1 after {gone:?}, promoted {promoted:?}",
        written.len()
    );
    assert!(promoted.is_empty(), "a healthy master must not be replaced");
    assert_eq!(failed, 0, "the master is healthy: no write may fail");
    assert!(most <= 1);
    let gone = gone.unwrap_or_else(|| panic!("the VIP outlived the frozen holder\n{}", s.logs()));
    // V + 1 s of kernel granularity after the last refresh, which came at most R before the stop.
    assert!(gone <= Duration::from_millis(2000 + 200), "{gone:?}");
    assert!(
        back,
        "the VIP did not come back after SIGCONT\n{}",
        s.logs()
    );
    let kept = in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr("n1"))).unwrap();
        let mut c = client.get_connection().unwrap();
        written
            .iter()
            .filter(|k| redis::cmd("EXISTS").arg(*k).query::<i64>(&mut c) == Ok(1))
            .count()
    });
    assert_eq!(kept, written.len(), "acknowledged writes lost");
}

/// Writes through the VIP every 10 ms for `how_long`: (acknowledged, failed).
fn write_through_vip(how_long: Duration, prefix: &str) -> (usize, usize) {
    let t0 = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    in_ns("client", || {
        for i in 0..(how_long.as_millis() / 10 + 1) {
            if t0.elapsed() > how_long {
                break;
            }
            match set(VIP, &format!("{prefix}{i}")) {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (ok, failed)
}

// --- kill -9 of the Raft leader's raftinel, not on the master's host, with every Redis healthy:
//     the lease comes from a majority, not from the leader, so no write through the VIP fails
#[test]
fn raft_leader_loss_fences_nothing() {
    let _g = serial();
    // n1 initializes the cluster and leads; the master is on n3.
    let mut s = setup_on("n3");
    let out = s.lab.sh(&[
        "run",
        "client",
        bin(),
        "ctl",
        "--cluster",
        "10.77.0.11:26380",
        "--json",
        "status",
    ]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let leader = match status["leader_id"].as_u64() {
        Some(2) => "n2",
        Some(3) => panic!("the Raft leader is on the master's host; this test needs it elsewhere"),
        _ => "n1",
    };
    s.lab.kill(leader, "raftinel");
    let (ok, failed) = write_through_vip(Duration::from_secs(3), "l");
    eprintln!("raft leader {leader} killed: {ok} writes through the VIP, {failed} failed");
    assert_eq!(
        failed,
        0,
        "a Raft leader change fenced the master\n{}",
        s.logs()
    );
    assert_eq!(vip_hosts(), vec!["n3"]);
}

// --- redis-server crash with raftinel alive on its host: the node releases its grant, so the
//     failover does not wait for the lease to expire
#[test]
fn redis_crash_fails_over_without_waiting_for_the_lease() {
    let _g = serial();
    let mut s = setup();
    let t0 = Instant::now();
    s.lab.kill("n1", "redis");
    let first_ok = |target: &'static str| {
        std::thread::spawn(move || {
            enter("client");
            for i in 0..2000 {
                if t0.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                if set(target, &format!("{target}-{i}")).is_ok() {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    };
    let probes = [first_ok(addr("n2")), first_ok(addr("n3"))];
    let [n2, n3] = probes.map(|p| p.join().unwrap());
    let writable = n2.into_iter().chain(n3).min();
    let released = std::fs::read_to_string(s.log("raftinel-n1")).unwrap_or_default();
    eprintln!("redis crash: new master writable after {writable:?}");
    let writable = writable.unwrap_or_else(|| panic!("no new master\n{}", s.logs()));
    assert!(
        released.contains("lease released"),
        "n1 never released its grant\n{}",
        s.logs()
    );
    // down-after + 300 ms in the terms; here with slack for the 10 ms probes.
    assert!(
        writable < Duration::from_millis(DOWN_AFTER_MS + 700),
        "{writable:?}"
    );
}
