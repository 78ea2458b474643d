//! Three hosts running real Redis and raftinel in the namespace lab, for tests/lab.rs and
//! benches/lab.rs: n1, n2, n3 (one Redis and one raftinel each, the master on one of them), the
//! client host, and the VIP 10.77.0.200/24 on eth0. The nodes run mTLS with certificates from
//! raftinel's own `certs` module (what `raftinel certs cluster` writes); `ctl` uses the admin one.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftinel::lease::netlink::{ifindex, Netlink};

use raftinel::certs::issue::{Ca, Issued};

use super::bin;
use super::fault::{Cut, Fault};
use super::lab::{enter, in_ns, Lab};

pub const HOSTS: [&str; 3] = ["n1", "n2", "n3"];
pub const VIP: &str = "10.77.0.200";
pub const DOWN_AFTER_MS: u64 = 1000;

pub fn addr(host: &str) -> &'static str {
    match host {
        "n1" => "10.77.0.11",
        "n2" => "10.77.0.12",
        "n3" => "10.77.0.13",
        "n4" => "10.77.0.14",
        _ => "10.77.0.100",
    }
}

/// The lab's VIP lines of a node's config: `vip-allowed` and `[masters.mymaster]` with its `vip`.
const VIP_CONFIG: &str =
    "vip-allowed = [\"10.77.0.0/24\"]\n[masters.mymaster]\nvip = \"10.77.0.200/24\"\n";

pub struct Setup {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    /// The host whose Redis starts as master.
    pub master: &'static str,
    /// The cluster's CA, for nodes that join later.
    pub ca: Ca,
    /// Redis started from now on keeps an append-only file (a restarted master keeps its data).
    pub appendonly: bool,
}

impl Setup {
    pub fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Starts `host`'s Redis, a replica of the first master unless it is on that host.
    pub fn start_redis(&mut self, host: &str) {
        let master = (host != self.master).then_some(self.master);
        self.spawn_redis(host, master);
    }

    /// Starts `host`'s Redis fenced; the first time, a replica of `master`'s if given. A restart
    /// keeps the role its config file was last rewritten with.
    pub fn spawn_redis(&mut self, host: &str, master: Option<&str>) {
        let dir = self.dir.path().join(format!("redis-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        // A config file, as the deploy kit's Redis has: CONFIG REWRITE (raftinel's, with each
        // REPLICAOF) keeps the role across a restart. The options below override it at start.
        let conf = dir.join("redis.conf");
        if !conf.exists() {
            let role = master.map_or(String::new(), |m| format!("replicaof {} 6379\n", addr(m)));
            std::fs::write(&conf, role).unwrap();
        }
        let args = vec![
            "redis-server".to_owned(),
            conf.display().to_string(),
            "--bind".into(),
            "0.0.0.0".into(),
            "--protected-mode".into(),
            "no".into(),
            "--port".into(),
            "6379".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            if self.appendonly { "yes" } else { "no" }.into(),
            // The AOF is for a killed Redis to restart with its writes: the page cache keeps
            // them (the lab kills processes, never the kernel). An fsync on the CI machine's
            // busy disk can block Redis's main thread for seconds ("Asynchronous AOF fsync is
            // taking too long"), a stall of Redis's own the nemesis is not about.
            "--appendfsync".into(),
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
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.log(&format!("redis-{host}"));
        self.lab.spawn(host, "redis", &args, &log);
    }

    fn save(&self, stem: &str, issued: &Issued) {
        let dir = self.dir.path();
        std::fs::write(dir.join(format!("{stem}.pem")), &issued.pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), &issued.key_pem).unwrap();
    }

    /// The cluster's CA, a certificate per node (for its lab address) and the admin's, in the
    /// setup's directory.
    fn make_certs(&self) {
        std::fs::write(self.dir.path().join("ca.pem"), self.ca.pem()).unwrap();
        for (i, host) in HOSTS.iter().enumerate() {
            self.node_cert(i as u64 + 1, host);
        }
        self.save("admin-admin", &self.ca.admin("admin").unwrap());
    }

    /// A certificate for node `id` on `host` (node-ID.pem / .key).
    pub fn node_cert(&self, id: u64, host: &str) {
        let ip = addr(host).parse().unwrap();
        self.save(&format!("node-{id}"), &self.ca.node(id, &[ip]).unwrap());
    }

    /// `ctl`'s flags for the admin certificate.
    pub fn ctl_tls(&self) -> Vec<String> {
        let f = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            "--tls-cert".into(),
            f("admin-admin.pem"),
            "--tls-key".into(),
            f("admin-admin.key"),
            "--tls-ca".into(),
            f("ca.pem"),
        ]
    }

    pub fn start_node(&mut self, id: usize) {
        self.start_node_under(id, &[]);
    }

    /// `start_node` with raftinel run under `wrapper` (e.g. setpriv dropping capabilities).
    pub fn start_node_under(&mut self, id: usize, wrapper: &[&str]) {
        self.start_node_config(id, wrapper, VIP_CONFIG);
    }

    /// `start_node` with a `vip-allowed` that does not cover the lab's VIP (so no `vip` line in
    /// its `[masters.mymaster]`, which would refuse to load).
    pub fn start_node_allowing(&mut self, id: usize, allowed: &str) {
        let vip = format!("vip-allowed = [\"{allowed}\"]\n[masters.mymaster]\n");
        self.start_node_config(id, &[], &vip);
    }

    /// `vip` holds `vip-allowed` and opens `[masters.mymaster]` (maybe with its `vip`).
    fn start_node_config(&mut self, id: usize, wrapper: &[&str], vip: &str) {
        let host = HOSTS[id - 1];
        let cfg = self.write_config(host, id as u64, vip, None);
        let log = self.log(&format!("raftinel-{host}"));
        let mut cmd = wrapper.to_vec();
        cmd.extend([bin(), "serve", "--config", &cfg]);
        self.lab.spawn(host, "raftinel", &cmd, &log);
    }

    /// Node `id`'s config on `host` (data in `data_dir(host, id)`; the host's Redis local if it
    /// has one): `vip` as in `start_node_config`; the first three nodes as peers, or `join` the
    /// running cluster through that address. Returns its path.
    pub fn write_config(&self, host: &str, id: u64, vip: &str, join: Option<&str>) -> String {
        let cfg = self.dir.path().join(format!("{host}.toml"));
        let local = if HOSTS.contains(&host) {
            format!("local-redis = [\"{}:6379\"]\n", addr(host))
        } else {
            String::new()
        };
        let (join, peers) = match join {
            Some(j) => (format!("join = \"{j}\"\n"), ""),
            None => (
                String::new(),
                "[peers]\n1 = \"10.77.0.11:26380\"\n2 = \"10.77.0.12:26380\"\n\
                 3 = \"10.77.0.13:26380\"\n",
            ),
        };
        let text = format!(
            "id = {id}\nlisten = \"{a}:26380\"\nsentinel-listen = \"{a}:26379\"\ndata-dir = \"{d}\"\n\
             default-down-after-ms = {DOWN_AFTER_MS}\n{join}{local}{vip}vip-interface = \"eth0\"\n\
             [tls]\ncert = \"{c}/node-{id}.pem\"\nkey = \"{c}/node-{id}.key\"\nca = \"{c}/ca.pem\"\n\
             {peers}",
            a = addr(host),
            d = self.data_dir(host, id).display(),
            c = self.dir.path().display(),
        );
        std::fs::write(&cfg, text).unwrap();
        cfg.display().to_string()
    }

    /// Where node `id` on `host` keeps its data (the first three nodes: `data-HOST`).
    pub fn data_dir(&self, host: &str, id: u64) -> std::path::PathBuf {
        if HOSTS.iter().position(|h| *h == host) == Some(id as usize - 1) {
            self.dir.path().join(format!("data-{host}"))
        } else {
            self.dir.path().join(format!("data-{host}-{id}"))
        }
    }

    /// Starts node `id` on `host` as a node joining the running cluster through n1 (n2 from n1),
    /// with the lab's VIP config; `ctl members add` makes it a member.
    pub fn start_joiner(&mut self, host: &str, id: u64) {
        self.node_cert(id, host);
        let via = if host == "n1" { "n2" } else { "n1" };
        let via = format!("{}:26380", addr(via));
        let cfg = self.write_config(host, id, VIP_CONFIG, Some(&via));
        self.spawn_node(host, &cfg);
    }

    /// Starts raftinel on `host` with the config `start_node_*` or `start_joiner` wrote last.
    pub fn restart_node(&mut self, host: &str) {
        let cfg = self
            .dir
            .path()
            .join(format!("{host}.toml"))
            .display()
            .to_string();
        self.spawn_node(host, &cfg);
    }

    fn spawn_node(&mut self, host: &str, cfg: &str) {
        let log = self.log(&format!("raftinel-{host}"));
        self.lab
            .spawn(host, "raftinel", &[bin(), "serve", "--config", cfg], &log);
    }

    pub fn ctl(&self, args: &[&str]) -> bool {
        self.ctl_out(args).status.success()
    }

    /// `ctl --json master mymaster`, or Null if no node answered.
    pub fn master_json(&self) -> serde_json::Value {
        let out = self.ctl_out(&["--json", "master", "mymaster"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// `raftinel ctl ARGS` from the client host, its output kept.
    pub fn ctl_out(&self, args: &[&str]) -> std::process::Output {
        // ctl bounds its own calls; the kill is the test's bound should that ever fail.
        self.ctl_within(Duration::from_secs(120), args)
    }

    /// `ctl_out`, killed after `limit` (a nemesis cannot wait out a membership change that
    /// asks a frozen node first).
    pub fn ctl_within(&self, limit: Duration, args: &[&str]) -> std::process::Output {
        let cluster = "10.77.0.11:26380,10.77.0.12:26380,10.77.0.13:26380";
        let tls = self.ctl_tls();
        let limit = limit.as_secs().max(1).to_string();
        let mut full = vec![
            "run",
            "client",
            "timeout",
            "-s",
            "KILL",
            &limit,
            bin(),
            "ctl",
        ];
        full.extend(["--cluster", cluster]);
        full.extend(tls.iter().map(String::as_str));
        full.extend_from_slice(args);
        self.lab.sh(&full)
    }

    pub fn logs(&self) -> String {
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
        // Redis's own warnings (`#` lines): a stall of its own shows there.
        for h in HOSTS {
            let text = std::fs::read_to_string(self.log(&format!("redis-{h}"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(" # ")).collect();
            out.push_str(&format!("--- redis on {h} (warnings)\n"));
            for l in &lines[lines.len().saturating_sub(10)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// Three hosts running Redis (n1 master) and raftinel, monitoring `mymaster` with the VIP; waits
/// until the VIP is on n1 and writable from the client.
pub fn setup() -> Setup {
    setup_on("n1")
}

/// The same with the master on `master`'s host.
pub fn setup_on(master: &'static str) -> Setup {
    let mut s = Setup {
        lab: Lab::up(),
        dir: tempfile::tempdir().unwrap(),
        master,
        ca: Ca::create().unwrap(),
        appendonly: false,
    };
    s.make_certs();
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
    // The VIP comes from the nodes' config (`[masters.mymaster] vip`): the leader logs it.
    let vip_logged = bounded(
        "the config's VIP in the log",
        Duration::from_secs(20),
        || {
            let m = s.master_json();
            m["vip"].as_str() == Some("10.77.0.200/24")
        },
    );
    assert!(
        vip_logged,
        "the config's VIP never reached the log\n{}",
        s.logs()
    );
    let synced = bounded("replicas in sync", Duration::from_secs(20), || {
        HOSTS.iter().filter(|h| **h != master).all(|h| link_up(h))
    });
    assert!(synced, "the replicas never synced\n{}", s.logs());
    // The log must know the replicas too, or a failover right away has no candidate (a loaded
    // machine can lag behind Redis's own replication here).
    let known = bounded(
        "the log lists both replicas",
        Duration::from_secs(20),
        || {
            let m = s.master_json();
            m["replicas"].as_array().map_or(0, Vec::len) == 2
                && m["lease_holder"].as_u64().is_some()
        },
    );
    assert!(known, "the log never listed both replicas\n{}", s.logs());
    let ok = bounded(
        "VIP on the master's host and writable",
        Duration::from_secs(20),
        || vip_hosts() == vec![master] && in_ns("client", || set(VIP, "warm").is_ok()),
    );
    assert!(ok, "the VIP never came up on {master}\n{}", s.logs());
    s
}

/// Polls `f` every 50 ms until it holds or `within` passes.
pub fn bounded(_what: &str, within: Duration, mut f: impl FnMut() -> bool) -> bool {
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
pub fn set(host: &str, key: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(format!("redis://{host}:6379/"))?;
    let mut c = client.get_connection_with_timeout(Duration::from_millis(200))?;
    c.set_read_timeout(Some(Duration::from_millis(300)))?;
    c.set_write_timeout(Some(Duration::from_millis(300)))?;
    redis::cmd("SET").arg(key).arg("v").query(&mut c)
}

/// Any command on `host`'s Redis, from the client host.
pub fn query(host: &str, args: &[&str]) -> Option<redis::Value> {
    in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr(host))).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        redis::cmd(args.first()?).arg(&args[1..]).query(&mut c).ok()
    })
}

/// Element `i` of an array reply, as text.
fn text_at(reply: redis::Value, i: usize) -> Option<String> {
    match reply {
        redis::Value::Array(v) => match v.get(i)? {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// `min-replicas-to-write` of `host`'s Redis (2147483647: fenced).
pub fn min_replicas(host: &str) -> Option<String> {
    text_at(query(host, &["CONFIG", "GET", "min-replicas-to-write"])?, 1)
}

/// What ROLE says `host`'s Redis is: "master" or "slave".
pub fn role(host: &str) -> Option<String> {
    text_at(query(host, &["ROLE"])?, 0)
}

pub fn link_up(host: &str) -> bool {
    match query(host, &["INFO", "replication"]) {
        Some(redis::Value::BulkString(b)) => {
            String::from_utf8_lossy(&b).contains("master_link_status:up")
        }
        Some(redis::Value::VerbatimString { text, .. }) => text.contains("master_link_status:up"),
        _ => false,
    }
}

/// The hosts whose eth0 carries the VIP now.
pub fn vip_hosts() -> Vec<&'static str> {
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
pub type Samples = Arc<Mutex<Vec<(Duration, [bool; 3])>>>;

/// A thread per host that records, every 10 ms, whether the VIP is on it.
pub struct VipSampler {
    stop: Arc<AtomicBool>,
    pub samples: Samples,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl VipSampler {
    /// Samples for at most a minute.
    pub fn start(t0: Instant) -> VipSampler {
        VipSampler::start_for(t0, Duration::from_secs(60))
    }

    /// Samples for at most `limit`.
    pub fn start_for(t0: Instant, limit: Duration) -> VipSampler {
        let rounds = limit.as_millis() / 10 + 1;
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
                for _ in 0..rounds {
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

    /// Stops the threads; the samples stay.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The most hosts seen holding the VIP at once, and the first time it was on `host` alone.
    pub fn finish(mut self, host: usize) -> (usize, Option<Duration>) {
        self.stop();
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

/// Writes through the VIP every 10 ms for `how_long`: (acknowledged, failed).
pub fn write_through_vip(how_long: Duration, prefix: &str) -> (usize, usize) {
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

/// From the client host, SET on `target` every 10 ms for up to 10 s after `t0`, on a thread of
/// its own: when the first one was acknowledged.
pub fn first_ok(t0: Instant, target: &'static str) -> std::thread::JoinHandle<Option<Duration>> {
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
}

/// What a partition run saw: the writes n1 acknowledged after the cut, and who was promoted when.
pub struct Partitioned {
    pub acked: Vec<(Duration, String)>,
    pub promoted: Option<(&'static str, Duration)>,
}

/// Cuts n1 off from n2 and n3 (REJECT; the client still reaches it) at `t0`, then for 6 s writes
/// to n1 from the client every 10 ms and watches n2 and n3 for a promotion every 50 ms.
pub fn partition_n1(s: &Setup, t0: Instant) -> Partitioned {
    s.lab.inject(&Fault::partition("n1", Cut::Reject));
    let mut run = Partitioned {
        acked: Vec::new(),
        promoted: None,
    };
    for i in 0..1000 {
        if t0.elapsed() > Duration::from_secs(6) {
            break;
        }
        let key = format!("p{i}");
        if in_ns("client", || set(addr("n1"), &key).is_ok()) {
            run.acked.push((t0.elapsed(), key));
        }
        if run.promoted.is_none() && i % 5 == 0 {
            for h in ["n2", "n3"] {
                if role(h).as_deref() == Some("master") {
                    run.promoted = Some((h, t0.elapsed()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    run
}

/// How many of `keys` the Redis on `host` lacks (None if it cannot be asked).
pub fn missing_on<'k>(host: &str, keys: impl Iterator<Item = &'k str> + Send) -> Option<usize> {
    in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr(host))).ok()?;
        let mut c = client.get_connection().ok()?;
        Some(
            keys.filter(|k| {
                redis::cmd("EXISTS")
                    .arg(*k)
                    .query::<i64>(&mut c)
                    .unwrap_or(0)
                    == 0
            })
            .count(),
        )
    })
}
