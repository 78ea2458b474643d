//! Failover benchmark: raftinel against redis-sentinel on real redis-server processes.
//!
//! Prints figures and goal verdicts; asserts nothing about speed.
//!
//! Measured: the time from `kill -9` of the master (t0) to the first successful `SET k v` on the
//! new master *as reported by the controller* (t1):
//! - raftinel: a three-node `raftinel serve` cluster on loopback (`default-down-after-ms = D` in
//!   every node's config; for D = 300 ms with the shortened Raft and lease timings config
//!   validation asks for), `monitor mymaster 127.0.0.1 PORT 2`, one master and two replicas
//!   (redis-server, `--repl-diskless-sync-delay 0`, no persistence). An in-process gRPC client on
//!   one channel polls `GetMaster` LOCAL every 1 ms; as soon as the address changes, an in-process
//!   redis connection sends `SET k v` to the new address every 1 ms until it succeeds. Between
//!   trials the old master is restarted (empty, as a master: raftinel folds it in) and the bench
//!   waits until the replica set is stable again and the failover has ended.
//! - redis-sentinel: three sentinels (configs in a tempdir), same topology, `SENTINEL
//!   GET-MASTER-ADDR-BY-NAME mymaster` polled every 1 ms on one sentinel, same t1. Every trial
//!   starts fresh redis-servers and sentinels (Sentinel refuses a second failover within
//!   2 × failover-timeout of the last one).
//! - "leader and master loss": raftinel at D = 1000 ms, the master and the Raft leader node are
//!   killed (SIGKILL to both, back to back, before either is reaped); polled through a surviving
//!   node. The killed node is restarted between trials.
//!
//! Both systems get `failover-timeout` = 2000 ms (raftinel's is set with `Set` after `Monitor`):
//! Sentinel's default of 180 s would forbid a second failover for 6 min, and raftinel's
//! anti-flapping likewise waits failover-timeout after the last failover ended.
//!
//! Run: `cargo bench --bench failover`. `BENCH_MTLS=1` runs the raftinel nodes with mTLS between
//! them (node certificates from `common::pki`; the bench's own client uses the admin certificate).
//! `FAILOVER_TRIALS=N` changes the trials per setting
//! (default 20, at least 1); `FAILOVER_SERIES=r300,s300` runs a subset of r1000, s1000, r300, s300,
//! rl1000, rb1000 (raftinel / sentinel / raftinel leader+master, by D; rb1000 is the back-to-back
//! series: five kills of whichever instance is master, each 30 s after the previous failover, at
//! raftinel's default failover-timeout of 180 s, which must not delay the next failover). A raftinel trial slower than its
//! goal (D + 200 ms, D + 700 ms with the leader) prints the node log lines written during it. Every
//! wait is bounded: a trial that does not finish within 15 s is reported as a failure with its
//! reason (and the node logs of the trial), and a setup or reset that does not settle within 40 s
//! ends that series. Every process (redis-server, sentinel, raftinel) is killed
//! on drop, panics included, and also gets SIGKILL from the kernel if this process dies
//! (PR_SET_PDEATHSIG). Only 127.0.0.1 is used.

#[path = "../tests/common/mod.rs"]
mod common;

use common::process::Proc;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raftinel::pb;
use raftinel::pb::topology_client::TopologyClient;
use tonic::transport::Channel;

const NAME: &str = "mymaster";
const DEFAULT_TRIALS: usize = 20;
/// From kill -9 to a successful write; beyond this a trial is a failure.
const TRIAL_BUDGET: Duration = Duration::from_secs(15);
/// Setup and reset between trials (cluster up, replicas known, failover ended, stable).
const SETTLE_BUDGET: Duration = Duration::from_secs(40);
/// failover-timeout for both systems.
const FAILOVER_TIMEOUT_MS: u64 = 2000;
/// The back-to-back series (issue 11): this many kills, each this long after the previous
/// failover, at raftinel's default failover-timeout.
const B2B_TRIALS: usize = 5;
const B2B_GAP: Duration = Duration::from_secs(30);
/// How long "stable" must hold before a raftinel trial: covers the anti-flapping window (the
/// failover ended before the state was first seen stable) plus a margin.
const RAFTINEL_HOLD: Duration = Duration::from_millis(FAILOVER_TIMEOUT_MS + 500);
/// How long "stable" must hold before a Sentinel trial.
const SENTINEL_HOLD: Duration = Duration::from_millis(1000);
const POLL: Duration = Duration::from_millis(1);
/// Bound on one poll or write attempt.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);

const RAFT_300: &str = "[raft]\nheartbeat-ms = 20\nelection-timeout-min-ms = 60\nelection-timeout-max-ms = 120\n\
[lease]\nduration-ms = 200\nmargin-ms = 50\nrenew-interval-ms = 30\nrenew-timeout-ms = 30\nfence-budget-ms = 30\n";

// ---------------------------------------------------------------------------------------------
// Processes

struct RedisProc {
    port: u16,
    // Declared before `_dir`: killed before its working directory is removed.
    proc: Proc,
    /// Working directory (`--dir`): a replica's full sync writes its RDB there, not in the repo.
    _dir: tempfile::TempDir,
}

impl RedisProc {
    async fn start(port: u16, replicaof: Option<u16>) -> Result<RedisProc, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(m) = replicaof {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        let r = RedisProc {
            port,
            proc: Proc::spawn(&format!("redis-server :{port}"), &mut cmd),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while rcmd(port, &redis::cmd("PING")).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server on {port} did not start within 5 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(r)
    }

    async fn restart(&mut self) -> Result<(), String> {
        self.proc.reap();
        *self = RedisProc::start(self.port, None).await?;
        Ok(())
    }
}

/// A fresh master and two replicas of it, links up.
async fn redis_trio() -> Result<Vec<RedisProc>, String> {
    let m = RedisProc::start(common::free_port(), None).await?;
    let r1 = RedisProc::start(common::free_port(), Some(m.port)).await?;
    let r2 = RedisProc::start(common::free_port(), Some(m.port)).await?;
    let trio = vec![m, r1, r2];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ok = true;
        for r in &trio[1..] {
            let i = info(r.port).await.unwrap_or_default();
            ok &= i.get("master_link_status").map(String::as_str) == Some("up");
        }
        if ok {
            return Ok(trio);
        }
        if Instant::now() > deadline {
            return Err("replicas did not sync with the master within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Redis helpers

fn client_for(port: u16) -> Result<redis::Client, String> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())
}

/// One command on a fresh connection, bounded by 1 s.
async fn rcmd(port: u16, cmd: &redis::Cmd) -> Result<redis::Value, String> {
    let client = client_for(port)?;
    let fut = async {
        let mut c = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<redis::Value>(&mut c).await
    };
    match tokio::time::timeout(Duration::from_secs(1), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn value_string(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn value_strings(v: &redis::Value) -> Option<Vec<String>> {
    match v {
        redis::Value::Array(items) => items.iter().map(value_string).collect(),
        _ => None,
    }
}

/// A flat key/value reply (SENTINEL MASTER) or a RESP3 map, as a map.
fn value_map(v: &redis::Value) -> Option<HashMap<String, String>> {
    match v {
        redis::Value::Array(_) => {
            let s = value_strings(v)?;
            Some(
                s.chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect(),
            )
        }
        redis::Value::Map(kv) => kv
            .iter()
            .map(|(k, v)| Some((value_string(k)?, value_string(v)?)))
            .collect(),
        _ => None,
    }
}

async fn info(port: u16) -> Option<HashMap<String, String>> {
    let v = rcmd(port, redis::cmd("INFO").arg("replication"))
        .await
        .ok()?;
    let text = value_string(&v)?;
    Some(
        text.lines()
            .filter_map(|l| l.trim_end().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// `SET k v` on one address over a kept connection, reconnecting after any error.
struct Writer {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
    attempts: u32,
    last_error: String,
}

impl Writer {
    fn new(host: &str, port: u16) -> Result<Writer, String> {
        let client =
            redis::Client::open(format!("redis://{host}:{port}/")).map_err(|e| e.to_string())?;
        Ok(Writer {
            client,
            conn: None,
            attempts: 0,
            last_error: String::new(),
        })
    }

    async fn try_set(&mut self) -> bool {
        self.attempts += 1;
        if self.conn.is_none() {
            match tokio::time::timeout(CALL_TIMEOUT, self.client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => self.conn = Some(c),
                Ok(Err(e)) => {
                    self.last_error = format!("connect: {e}");
                    return false;
                }
                Err(_) => {
                    self.last_error = "connect timed out".into();
                    return false;
                }
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        let r = tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("SET").arg("k").arg("v").query_async::<()>(conn),
        )
        .await;
        match r {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.last_error = format!("SET: {e}");
                self.conn = None;
                false
            }
            Err(_) => {
                self.last_error = "SET timed out".into();
                self.conn = None;
                false
            }
        }
    }
}

/// After the controller reported `addr` at `t_addr`: write every 1 ms until success or the
/// trial deadline. Returns t1.
async fn write_until_ok(host: &str, port: u16, deadline: Instant) -> Result<Instant, String> {
    let mut w = Writer::new(host, port)?;
    loop {
        if w.try_set().await {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the new master {host}:{port} refused {} write attempt(s) until the {TRIAL_BUDGET:?} budget ran out; last error: {}",
                w.attempts, w.last_error
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Default)]
struct Series {
    system: &'static str,
    scenario: &'static str,
    d_ms: u64,
    /// t1 − t0 of each successful trial.
    samples: Vec<Duration>,
    /// t(address changed at the controller) − t0.
    addr_samples: Vec<Duration>,
    failures: Vec<String>,
    /// Why the series stopped early, if it did.
    aborted: Option<String>,
    wanted: usize,
}

impl Series {
    fn new(system: &'static str, scenario: &'static str, d_ms: u64, wanted: usize) -> Series {
        Series {
            system,
            scenario,
            d_ms,
            wanted,
            ..Default::default()
        }
    }

    fn pct(v: &[Duration], q: f64) -> Option<Duration> {
        let mut s = v.to_vec();
        s.sort_unstable();
        if s.is_empty() {
            return None;
        }
        // Nearest rank.
        let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
        Some(s[rank - 1])
    }

    fn median(&self) -> Option<Duration> {
        // The mean of the two middle samples for an even count.
        let mut s = self.samples.clone();
        s.sort_unstable();
        match s.len() {
            0 => None,
            n if n % 2 == 1 => Some(s[n / 2]),
            n => Some((s[n / 2 - 1] + s[n / 2]) / 2),
        }
    }

    fn record(&mut self, trial: usize, r: Result<(Duration, Duration), String>) {
        let label = format!(
            "  {:<8} {:<18} D={:>4} ms  trial {:>2}/{}",
            self.system,
            self.scenario,
            self.d_ms,
            trial + 1,
            self.wanted
        );
        match r {
            Ok((write, addr)) => {
                println!(
                    "{label}: {:>8}  (address changed at {}, +{:.1} ms to the first write)",
                    ms(write),
                    ms(addr),
                    (write.as_secs_f64() - addr.as_secs_f64()) * 1e3
                );
                self.samples.push(write);
                self.addr_samples.push(addr);
            }
            Err(e) => {
                println!("{label}: FAILED: {e}");
                self.failures.push(format!("trial {}: {e}", trial + 1));
            }
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn ms_opt(d: Option<Duration>) -> String {
    d.map(ms).unwrap_or_else(|| "n/a".into())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// raftinel

struct Raftinel {
    // Declared first: dropped (killed) before `cluster` removes the tempdir.
    nodes: BTreeMap<u64, Proc>,
    cluster: common::Cluster,
    redis: Vec<RedisProc>,
    /// With `BENCH_MTLS=1`: the certificates, kept until the nodes are gone.
    _pki: Option<common::pki::Pki>,
}

impl Raftinel {
    fn spawn_node(&mut self, id: u64) {
        let mut cmd = self.cluster.serve_command(id, "info,openraft=warn");
        self.nodes
            .insert(id, Proc::spawn(&format!("raftinel node {id}"), &mut cmd));
    }

    fn logs_tail(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.cluster.nodes {
            out.push_str(&format!(
                "    --- node {id} log tail ({}) ---\n{}\n",
                n.log.display(),
                indent(&tail(&n.log, 25))
            ));
        }
        out
    }

    async fn status(&self, id: u64) -> Option<pb::ClusterStatusReply> {
        tokio::time::timeout(Duration::from_secs(2), self.cluster.status(id))
            .await
            .ok()
            .flatten()
    }

    async fn get_local(&self, id: u64) -> Result<pb::Master, String> {
        match tokio::time::timeout(
            Duration::from_secs(2),
            self.cluster.get(id, NAME, pb::Consistency::Local),
        )
        .await
        {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(s)) => Err(format!("node {id}: {}: {}", s.code(), s.message())),
            Err(_) => Err(format!("node {id}: GetMaster timed out")),
        }
    }

    /// One check of "a stable replica set": all three nodes agree on a leader and on the master,
    /// no failover in progress, the log knows exactly the two other instances as replicas, and the
    /// Redis side matches (master role, both replicas linked to it). Returns the master's port.
    async fn check_stable(&self) -> Result<u16, String> {
        let mut leader = None;
        for id in self.cluster.nodes.keys() {
            let s = self
                .status(*id)
                .await
                .ok_or(format!("node {id}: no ClusterStatus"))?;
            if s.leader_id == 0 {
                return Err(format!("node {id} knows no leader"));
            }
            if *leader.get_or_insert(s.leader_id) != s.leader_id {
                return Err("nodes disagree on the leader".into());
            }
        }
        let mut seen: Option<(String, u32)> = None;
        for id in self.cluster.nodes.keys() {
            let m = self.get_local(*id).await?;
            if let Some(f) = &m.failover {
                return Err(format!(
                    "node {id}: failover epoch {} in progress (state {})",
                    f.epoch, f.state
                ));
            }
            let addr = (m.host.clone(), m.port);
            if *seen.get_or_insert(addr.clone()) != addr {
                return Err("nodes disagree on the master".into());
            }
            let mut known: Vec<u32> = m.replicas.iter().map(|r| r.port).collect();
            known.sort_unstable();
            let mut want: Vec<u32> = self
                .redis
                .iter()
                .map(|r| u32::from(r.port))
                .filter(|p| *p != m.port)
                .collect();
            want.sort_unstable();
            if known != want {
                return Err(format!(
                    "node {id}: log replicas {known:?}, want {want:?} (master {})",
                    m.port
                ));
            }
        }
        let (_, port) = seen.ok_or("no nodes")?;
        let port = port as u16;
        for r in &self.redis {
            let i = info(r.port)
                .await
                .ok_or(format!("redis {}: no INFO", r.port))?;
            let role = i.get("role").map(String::as_str);
            if r.port == port {
                if role != Some("master")
                    || i.get("connected_slaves").map(String::as_str) != Some("2")
                {
                    return Err(format!(
                        "redis {}: master with {:?} replicas",
                        r.port,
                        i.get("connected_slaves")
                    ));
                }
            } else if role != Some("slave")
                || i.get("master_port").map(String::as_str) != Some(&port.to_string())
                || i.get("master_link_status").map(String::as_str) != Some("up")
            {
                return Err(format!(
                    "redis {}: role {role:?}, master_port {:?}, link {:?}",
                    r.port,
                    i.get("master_port"),
                    i.get("master_link_status")
                ));
            }
        }
        Ok(port)
    }

    /// Waits until `check_stable` has held for `RAFTINEL_HOLD`.
    async fn wait_stable(&self) -> Result<u16, String> {
        let deadline = Instant::now() + SETTLE_BUDGET;
        let mut since: Option<(Instant, u16)> = None;
        loop {
            match self.check_stable().await {
                Ok(port) => match since {
                    Some((t, p)) if p == port => {
                        if t.elapsed() >= RAFTINEL_HOLD {
                            return Ok(port);
                        }
                    }
                    _ => since = Some((Instant::now(), port)),
                },
                Err(e) => {
                    since = None;
                    if Instant::now() > deadline {
                        return Err(format!("not stable within {SETTLE_BUDGET:?}: {e}"));
                    }
                }
            }
            if Instant::now() > deadline + RAFTINEL_HOLD {
                return Err(format!("not stable within {SETTLE_BUDGET:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

fn poll_client(r: &Raftinel, id: u64) -> Result<TopologyClient<Channel>, String> {
    r.cluster
        .dialer
        .channel(&r.cluster.nodes[&id].grpc)
        .map(TopologyClient::new)
        .map_err(|e| e.to_string())
}

/// `BENCH_MTLS=1`: the nodes talk mTLS.
fn mtls() -> bool {
    std::env::var("BENCH_MTLS").is_ok_and(|v| v == "1")
}

/// Brings up three redis-servers and a three-node raftinel cluster monitoring them.
/// `failover_timeout`: None keeps raftinel's default (180 s), as the back-to-back series does.
async fn raftinel_setup(extra: &str, failover_timeout: Option<u64>) -> Result<Raftinel, String> {
    let redis = redis_trio().await?;
    let mut cluster = common::Cluster::new(3, extra);
    let pki = mtls().then(common::pki::Pki::new);
    if let Some(pki) = &pki {
        pki.secure(&mut cluster);
    }
    let mut r = Raftinel {
        nodes: BTreeMap::new(),
        cluster,
        redis,
        _pki: pki,
    };
    for id in 1..=3 {
        r.spawn_node(id);
    }
    // A real quorum: wait for an agreed leader (polling, bounded).
    let deadline = Instant::now() + SETTLE_BUDGET;
    let leader = loop {
        let mut ls = Vec::new();
        for id in 1..=3u64 {
            ls.push(r.status(id).await.map(|s| s.leader_id).unwrap_or(0));
        }
        if ls[0] != 0 && ls.iter().all(|l| *l == ls[0]) {
            break ls[0];
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no agreed leader within {SETTLE_BUDGET:?}\n{}",
                r.logs_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mport = r.redis[0].port;
    let mut c = poll_client(&r, leader)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let req = pb::MonitorRequest {
            name: NAME.into(),
            host: "127.0.0.1".into(),
            port: u32::from(mport),
            quorum: 2,
        };
        match tokio::time::timeout(Duration::from_secs(3), c.monitor(req)).await {
            Ok(Ok(_)) => break,
            Ok(Err(s)) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {}
            Ok(Err(s)) => return Err(format!("Monitor: {s}")),
            Err(_) if Instant::now() < deadline => {}
            Err(_) => return Err("Monitor timed out".into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(timeout) = failover_timeout {
        let set = pb::SetRequest {
            name: NAME.into(),
            options: vec![pb::SetOption {
                option: "failover-timeout".into(),
                value: timeout.to_string(),
            }],
        };
        match tokio::time::timeout(Duration::from_secs(5), c.set(set)).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) => return Err(format!("Set failover-timeout: {s}")),
            Err(_) => return Err("Set failover-timeout timed out".into()),
        }
    }
    if let Err(e) = r.wait_stable().await {
        return Err(format!("after Monitor: {e}\n{}", r.logs_tail()));
    }
    Ok(r)
}

/// One raftinel trial; on success returns (t1 − t0, t_addr − t0). Does not reset.
/// What one raftinel trial gives back: the measurement or the failure, the raftinel node killed
/// with the master (if any), and for a slow trial the node log lines written during it.
type TrialOutcome = (
    Result<(Duration, Duration), String>,
    Option<u64>,
    Option<String>,
);

/// The node log lines appended since `marks` (log lengths taken before the kill), at most `n` per node.
fn logs_since(r: &Raftinel, marks: &[(u64, u64)], n: usize) -> String {
    let mut out = String::new();
    for (id, from) in marks {
        let text = std::fs::read(&r.cluster.nodes[id].log).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(*from as usize..).unwrap_or_default());
        let lines: Vec<&str> = new.lines().collect();
        let skipped = lines.len().saturating_sub(n);
        out.push_str(&format!(
            "    --- node {id}, log lines written during the trial{} ---\n{}",
            if skipped > 0 {
                format!(" (last {n}; {skipped} earlier left out)")
            } else {
                String::new()
            },
            indent(&lines[skipped..].join("\n"))
        ));
    }
    out
}

async fn raftinel_trial(
    r: &mut Raftinel,
    master_port: u16,
    kill_leader: bool,
    slow: Duration,
) -> TrialOutcome {
    let mi = match r.redis.iter().position(|x| x.port == master_port) {
        Some(i) => i,
        None => {
            return (
                Err(format!("no redis-server on master port {master_port}")),
                None,
                None,
            )
        }
    };
    let mut killed_node = None;
    let mut via = 1u64;
    if kill_leader {
        let leader = match r.status(1).await {
            Some(s) if s.leader_id != 0 => s.leader_id,
            _ => {
                return (
                    Err("node 1 knows no leader before the kill".into()),
                    None,
                    None,
                )
            }
        };
        killed_node = Some(leader);
        via = *r
            .cluster
            .nodes
            .keys()
            .find(|id| **id != leader)
            .expect("3 nodes");
    }
    let mut client = match poll_client(r, via) {
        Ok(c) => c,
        Err(e) => return (Err(e), None, None),
    };
    let req = || pb::GetMasterRequest {
        name: NAME.into(),
        consistency: pb::Consistency::Local as i32,
    };
    // Warm the channel, and read the address the controller reports before the kill.
    let before = match tokio::time::timeout(Duration::from_secs(2), client.get_master(req())).await
    {
        Ok(Ok(m)) => m.into_inner(),
        other => {
            return (
                Err(format!("warm-up GetMaster via node {via}: {other:?}")),
                None,
                None,
            )
        }
    };
    if before.port != u32::from(master_port) {
        return (
            Err(format!(
                "node {via} reports master {} before the kill, expected {master_port}",
                before.port
            )),
            None,
            None,
        );
    }
    let marks: Vec<(u64, u64)> = r
        .cluster
        .nodes
        .iter()
        .map(|(id, n)| (*id, std::fs::metadata(&n.log).map(|m| m.len()).unwrap_or(0)))
        .collect();

    let t0 = Instant::now();
    r.redis[mi].proc.sigkill();
    if let Some(l) = killed_node {
        r.nodes[&l].sigkill();
    }
    r.redis[mi].proc.reap();
    if let Some(l) = killed_node {
        r.nodes.get_mut(&l).expect("spawned").reap();
    }
    let deadline = t0 + TRIAL_BUDGET;

    let mut polls = 0u32;
    let mut last: String;
    let (host, port, t_addr) = loop {
        polls += 1;
        match tokio::time::timeout(CALL_TIMEOUT, client.get_master(req())).await {
            Ok(Ok(m)) => {
                let m = m.into_inner();
                if (m.host.as_str(), m.port) != (before.host.as_str(), before.port) {
                    break (m.host, m.port as u16, Instant::now());
                }
                last = format!(
                    "still {}:{} (epoch {}, failover {:?})",
                    m.host, m.port, m.epoch, m.failover
                );
            }
            Ok(Err(s)) => last = format!("GetMaster error {}: {}", s.code(), s.message()),
            Err(_) => last = format!("GetMaster timed out after {CALL_TIMEOUT:?}"),
        }
        if Instant::now() > deadline {
            return (
                Err(format!(
                    "node {via} never reported a new master within {TRIAL_BUDGET:?} ({polls} polls); last: {last}\n{}",
                    logs_since(r, &marks, 40)
                )),
                killed_node,
                None,
            );
        }
        tokio::time::sleep(POLL).await;
    };
    match write_until_ok(&host, port, deadline).await {
        Ok(t1) => {
            let note = (t1 - t0 > slow).then(|| logs_since(r, &marks, 40));
            (Ok((t1 - t0, t_addr - t0)), killed_node, note)
        }
        Err(e) => (
            Err(format!("{e}\n{}", logs_since(r, &marks, 40))),
            killed_node,
            None,
        ),
    }
}

/// How a raftinel series paces its trials.
#[derive(Clone, Copy)]
struct Pace {
    kill_leader: bool,
    /// Back to back (issue 11): raftinel's default failover-timeout (180 s), and each kill this
    /// long after the previous failover's first write, not after a settle window.
    back_to_back: Option<Duration>,
}

const ONE_AT_A_TIME: Pace = Pace {
    kill_leader: false,
    back_to_back: None,
};

async fn raftinel_series(
    scenario: &'static str,
    d_ms: u64,
    extra: String,
    trials: usize,
    pace: Pace,
) -> Series {
    let kill_leader = pace.kill_leader;
    let mut s = Series::new("raftinel", scenario, d_ms, trials);
    // Trials slower than the goal print the node logs written during them.
    let slow = Duration::from_millis(d_ms + if kill_leader { 700 } else { 200 });
    let timeout = pace.back_to_back.is_none().then_some(FAILOVER_TIMEOUT_MS);
    let mut r = match raftinel_setup(&extra, timeout).await {
        Ok(r) => r,
        Err(e) => {
            s.aborted = Some(format!("setup: {e}"));
            return s;
        }
    };
    let mut master_port = r.redis[0].port;
    let mut next_kill: Option<Instant> = None;
    for t in 0..trials {
        if let Some(at) = next_kill {
            tokio::time::sleep_until(at.into()).await;
        }
        let t0 = Instant::now();
        let (res, killed_node, note) = raftinel_trial(&mut r, master_port, kill_leader, slow).await;
        if let (Some(gap), Ok((write, _))) = (pace.back_to_back, &res) {
            next_kill = Some(t0 + *write + gap);
        }
        s.record(t, res);
        if let Some(note) = note {
            println!("    slower than {} (the goal's D + 200 ms / D + 700 ms): node logs of this trial follow", ms(slow));
            print!("{note}");
        }
        // Reset: the killed raftinel node and the old master back, then a stable replica set.
        if let Some(id) = killed_node {
            if !r.nodes.get_mut(&id).is_some_and(Proc::running) {
                r.spawn_node(id);
            }
        }
        if let Some(i) = r.redis.iter().position(|x| x.port == master_port) {
            if let Err(e) = r.redis[i].restart().await {
                s.aborted = Some(format!("reset after trial {}: {e}", t + 1));
                return s;
            }
        }
        match r.wait_stable().await {
            Ok(p) => master_port = p,
            Err(e) => {
                s.aborted = Some(format!(
                    "reset after trial {}: {e}\n{}",
                    t + 1,
                    r.logs_tail()
                ));
                return s;
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// redis-sentinel

struct SentinelSet {
    // Dropped first: the sentinels and redis-servers die before the tempdir goes.
    procs: Vec<Proc>,
    ports: Vec<u16>,
    logs: Vec<PathBuf>,
    redis: Vec<RedisProc>,
    _dir: tempfile::TempDir,
}

impl SentinelSet {
    fn logs_tail(&self) -> String {
        let mut out = String::new();
        for (i, l) in self.logs.iter().enumerate() {
            out.push_str(&format!(
                "    --- sentinel {} log tail ({}) ---\n{}\n",
                i + 1,
                l.display(),
                indent(&tail(l, 25))
            ));
        }
        out
    }

    async fn check_stable(&self) -> Result<(), String> {
        for p in &self.ports {
            let v = rcmd(*p, redis::cmd("SENTINEL").arg("MASTER").arg(NAME))
                .await
                .map_err(|e| format!("sentinel {p}: {e}"))?;
            let m = value_map(&v).ok_or(format!("sentinel {p}: unexpected reply {v:?}"))?;
            let field = |k: &str| m.get(k).map(String::as_str).unwrap_or("?");
            if field("flags") != "master"
                || field("num-slaves") != "2"
                || field("num-other-sentinels") != "2"
            {
                return Err(format!(
                    "sentinel {p}: flags {}, num-slaves {}, num-other-sentinels {}",
                    field("flags"),
                    field("num-slaves"),
                    field("num-other-sentinels")
                ));
            }
            let v = rcmd(*p, redis::cmd("SENTINEL").arg("REPLICAS").arg(NAME))
                .await
                .map_err(|e| format!("sentinel {p}: {e}"))?;
            let redis::Value::Array(list) = &v else {
                return Err(format!("sentinel {p}: unexpected REPLICAS reply {v:?}"));
            };
            for r in list {
                let r = value_map(r).unwrap_or_default();
                if r.get("flags").map(String::as_str) != Some("slave")
                    || r.get("master-link-status").map(String::as_str) != Some("ok")
                {
                    return Err(format!(
                        "sentinel {p}: replica {:?} flags {:?} link {:?}",
                        r.get("port"),
                        r.get("flags"),
                        r.get("master-link-status")
                    ));
                }
            }
        }
        Ok(())
    }

    async fn wait_stable(&self) -> Result<(), String> {
        let deadline = Instant::now() + SETTLE_BUDGET;
        let mut since: Option<Instant> = None;
        loop {
            match self.check_stable().await {
                Ok(()) => {
                    let t = *since.get_or_insert_with(Instant::now);
                    if t.elapsed() >= SENTINEL_HOLD {
                        return Ok(());
                    }
                }
                Err(e) => {
                    since = None;
                    if Instant::now() > deadline {
                        return Err(format!("sentinels not ready within {SETTLE_BUDGET:?}: {e}"));
                    }
                }
            }
            if Instant::now() > deadline + SENTINEL_HOLD {
                return Err(format!("sentinels not ready within {SETTLE_BUDGET:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn sentinel_command(conf: &Path) -> Command {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-sentinel").is_file()))
        .unwrap_or(false);
    if on_path {
        let mut c = Command::new("redis-sentinel");
        c.arg(conf);
        c
    } else {
        let mut c = Command::new("redis-server");
        c.arg(conf).arg("--sentinel");
        c
    }
}

async fn sentinel_setup(d_ms: u64) -> Result<SentinelSet, String> {
    let redis = redis_trio().await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mport = redis[0].port;
    let mut set = SentinelSet {
        procs: Vec::new(),
        ports: Vec::new(),
        logs: Vec::new(),
        redis,
        _dir: dir,
    };
    for i in 1..=3 {
        let port = common::free_port();
        let root = set._dir.path();
        let conf = root.join(format!("s{i}.conf"));
        let log = root.join(format!("s{i}.log"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"{}\"\ndir \"{}\"\n\
             sentinel monitor {NAME} 127.0.0.1 {mport} 2\n\
             sentinel down-after-milliseconds {NAME} {d_ms}\n\
             sentinel failover-timeout {NAME} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {NAME} 1\n",
            log.display(),
            root.display()
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let mut cmd = sentinel_command(&conf);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        set.procs
            .push(Proc::spawn(&format!("sentinel :{port}"), &mut cmd));
        set.ports.push(port);
        set.logs.push(log);
    }
    if let Err(e) = set.wait_stable().await {
        return Err(format!("{e}\n{}", set.logs_tail()));
    }
    Ok(set)
}

async fn get_master_addr(
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    client: &redis::Client,
) -> Result<(String, u16), String> {
    if conn.is_none() {
        let c = tokio::time::timeout(CALL_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        *conn = Some(c);
    }
    let c = conn.as_mut().expect("connected above");
    let r = tokio::time::timeout(
        CALL_TIMEOUT,
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(NAME)
            .query_async::<redis::Value>(c),
    )
    .await;
    let v = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e.to_string());
        }
        Err(_) => {
            *conn = None;
            return Err("timed out".into());
        }
    };
    let s = value_strings(&v).ok_or(format!("unexpected reply {v:?}"))?;
    match s.as_slice() {
        [h, p] => Ok((h.clone(), p.parse().map_err(|_| format!("bad port {p}"))?)),
        _ => Err(format!("unexpected reply {v:?}")),
    }
}

async fn sentinel_trial(d_ms: u64) -> Result<(Duration, Duration), String> {
    let mut set = sentinel_setup(d_ms).await?;
    let client = client_for(set.ports[0])?;
    let mut conn = None;
    let before = get_master_addr(&mut conn, &client)
        .await
        .map_err(|e| format!("warm-up GET-MASTER-ADDR-BY-NAME: {e}"))?;
    if before.1 != set.redis[0].port {
        return Err(format!("sentinel reports {before:?} before the kill"));
    }

    let t0 = Instant::now();
    set.redis[0].proc.sigkill();
    set.redis[0].proc.reap();
    let deadline = t0 + TRIAL_BUDGET;
    let mut polls = 0u32;
    let mut last: String;
    let (host, port, t_addr) = loop {
        polls += 1;
        match get_master_addr(&mut conn, &client).await {
            Ok(a) if a != before => break (a.0, a.1, Instant::now()),
            Ok(a) => last = format!("still {}:{}", a.0, a.1),
            Err(e) => last = e,
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sentinel {} never reported a new master within {TRIAL_BUDGET:?} ({polls} polls); last: {last}\n{}",
                set.ports[0],
                set.logs_tail()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let t1 = write_until_ok(&host, port, deadline)
        .await
        .map_err(|e| format!("{e}\n{}", set.logs_tail()))?;
    Ok((t1 - t0, t_addr - t0))
}

async fn sentinel_series(d_ms: u64, trials: usize) -> Series {
    let mut s = Series::new("sentinel", "master kill", d_ms, trials);
    for t in 0..trials {
        // Fresh redis-servers and sentinels per trial; all killed when the trial returns.
        let r = sentinel_trial(d_ms).await;
        s.record(t, r);
    }
    s
}

// ---------------------------------------------------------------------------------------------

/// Runs a series in its own task, so a panic inside it (every process dropped and killed on the
/// way out) is reported as that series' abort instead of ending the whole bench.
async fn guarded<F>(
    system: &'static str,
    scenario: &'static str,
    d_ms: u64,
    trials: usize,
    f: F,
) -> Series
where
    F: std::future::Future<Output = Series> + Send + 'static,
{
    match tokio::spawn(f).await {
        Ok(s) => s,
        Err(e) => {
            let mut s = Series::new(system, scenario, d_ms, trials);
            s.aborted = Some(format!("panicked: {e}"));
            s
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn row(s: &Series) {
    println!(
        "{:<9} {:<20} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>12}",
        s.system,
        s.scenario,
        s.d_ms,
        format!("{}/{}", s.samples.len(), s.wanted),
        ms_opt(s.median()),
        ms_opt(Series::pct(&s.samples, 0.95)),
        ms_opt(s.samples.iter().min().copied()),
        ms_opt(s.samples.iter().max().copied()),
        ms_opt(Series::pct(&s.addr_samples, 0.5)),
    );
}

#[tokio::main]
async fn main() {
    let trials = std::env::var("FAILOVER_TRIALS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_TRIALS);
    let profile = if cfg!(debug_assertions) {
        "debug assertions ON (not a release build)"
    } else {
        "release (cargo bench profile `bench`)"
    };
    let sentinel_version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("redis-server --version failed: {e}"));
    println!();
    println!("raftinel failover benchmark: kill -9 of the master → first successful SET on the new master, as the controller reports it");
    println!(
        "  build      : {profile}; binary {}",
        env!("CARGO_BIN_EXE_raftinel")
    );
    println!("  redis      : {sentinel_version}");
    println!("  topology   : 1 master + 2 replicas (redis-server --repl-diskless-sync-delay 0, no persistence), quorum 2, 127.0.0.1 only");
    println!("  controllers: raftinel 3 nodes (GetMaster LOCAL on one gRPC channel) / redis-sentinel ×3 (SENTINEL GET-MASTER-ADDR-BY-NAME on sentinel 1)");
    println!(
        "  load avg   : {} at start (2 cores; other work on the machine skews the figures)",
        loadavg()
    );
    println!("  polling    : every 1 ms; write retried every 1 ms; failover-timeout {FAILOVER_TIMEOUT_MS} ms on both; {trials} trials per setting; trial budget {TRIAL_BUDGET:?}");
    println!();

    // FAILOVER_SERIES: a comma-separated subset of r1000,s1000,r300,s300,rl1000,rb1000 (default: all).
    let only = std::env::var("FAILOVER_SERIES").unwrap_or_default();
    let want = |key: &str| only.is_empty() || only.split(',').any(|k| k.trim() == key);
    let d1000 = "default-down-after-ms = 1000\n".to_string();
    let d300 = format!("default-down-after-ms = 300\n{RAFT_300}");
    let mut all = Vec::new();
    if want("r1000") {
        all.push(
            guarded(
                "raftinel",
                "master kill",
                1000,
                trials,
                raftinel_series("master kill", 1000, d1000.clone(), trials, ONE_AT_A_TIME),
            )
            .await,
        );
    }
    if want("s1000") {
        all.push(
            guarded(
                "sentinel",
                "master kill",
                1000,
                trials,
                sentinel_series(1000, trials),
            )
            .await,
        );
    }
    if want("r300") {
        all.push(
            guarded(
                "raftinel",
                "master kill",
                300,
                trials,
                raftinel_series("master kill", 300, d300, trials, ONE_AT_A_TIME),
            )
            .await,
        );
    }
    if want("s300") {
        all.push(
            guarded(
                "sentinel",
                "master kill",
                300,
                trials,
                sentinel_series(300, trials),
            )
            .await,
        );
    }
    if want("rl1000") {
        all.push(
            guarded(
                "raftinel",
                "leader+master kill",
                1000,
                trials,
                raftinel_series(
                    "leader+master kill",
                    1000,
                    d1000.clone(),
                    trials,
                    Pace {
                        kill_leader: true,
                        back_to_back: None,
                    },
                ),
            )
            .await,
        );
    }
    if want("rb1000") {
        all.push(
            guarded(
                "raftinel",
                "back-to-back kills",
                1000,
                B2B_TRIALS,
                raftinel_series(
                    "back-to-back kills",
                    1000,
                    d1000,
                    B2B_TRIALS,
                    Pace {
                        kill_leader: false,
                        back_to_back: Some(B2B_GAP),
                    },
                ),
            )
            .await,
        );
    }

    println!();
    println!(
        "{:<9} {:<20} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "system", "scenario", "D ms", "ok/runs", "median", "p95", "min", "max", "addr median"
    );
    println!("{}", "-".repeat(104));
    for s in &all {
        row(s);
    }
    println!("(t = kill -9 → first successful SET on the new master; addr median = kill -9 → the controller first reports the new address; p95 nearest rank)");
    println!();

    let ran = |sys: &str, sc: &str, d: u64| {
        all.iter()
            .any(|s| s.system == sys && s.scenario == sc && s.d_ms == d)
    };
    let find = |sys: &str, sc: &str, d: u64| {
        all.iter()
            .find(|s| s.system == sys && s.scenario == sc && s.d_ms == d)
            .and_then(|s| s.median().map(|m| (m, s)))
    };
    let missing = |sys: &str, sc: &str, d: u64| {
        if ran(sys, sc, d) {
            "no successful trial: MISSED"
        } else {
            "not run (FAILOVER_SERIES)"
        }
    };
    println!("ratios and goals");
    println!("{}", "-".repeat(104));
    for d in [1000u64, 300] {
        let r = find("raftinel", "master kill", d);
        let st = find("sentinel", "master kill", d);
        if let (Some((rm, _)), Some((sm, _))) = (r, st) {
            let ratio = rm.as_secs_f64() / sm.as_secs_f64();
            let goal = if d == 1000 {
                format!("  goal ≤ 0.5: {}", verdict(ratio <= 0.5))
            } else {
                String::new()
            };
            println!(
                "D = {d:>4} ms: raftinel/sentinel median = {} / {} = {ratio:.2}{goal}",
                ms(rm),
                ms(sm)
            );
        } else {
            println!(
                "D = {d:>4} ms: raftinel/sentinel median = n/a (raftinel: {}; sentinel: {})",
                if r.is_some() {
                    "ok"
                } else {
                    missing("raftinel", "master kill", d)
                },
                if st.is_some() {
                    "ok"
                } else {
                    missing("sentinel", "master kill", d)
                }
            );
        }
        match r {
            Some((rm, s)) => {
                let all_ok = s.failures.is_empty() && s.aborted.is_none();
                println!(
                    "D = {d:>4} ms: raftinel median {} ≤ D + 200 = {} ms: {};  stretch ≤ D + 50 = {} ms: {}{}",
                    ms(rm),
                    d + 200,
                    verdict(rm <= Duration::from_millis(d + 200)),
                    d + 50,
                    verdict(rm <= Duration::from_millis(d + 50)),
                    if all_ok { "" } else { "  (with failed trials, see below)" }
                );
            }
            None => println!(
                "D = {d:>4} ms: raftinel: {}",
                missing("raftinel", "master kill", d)
            ),
        }
    }
    match find("raftinel", "leader+master kill", 1000) {
        Some((m, s)) => println!(
            "D = 1000 ms: leader+master loss median {} ≤ D + 700 = 1700 ms: {} (p95 {}, max {}){}",
            ms(m),
            verdict(m <= Duration::from_millis(1700)),
            ms_opt(Series::pct(&s.samples, 0.95)),
            ms_opt(s.samples.iter().max().copied()),
            if s.failures.is_empty() && s.aborted.is_none() {
                ""
            } else {
                "  (with failed trials, see below)"
            }
        ),
        None => println!(
            "D = 1000 ms: leader+master loss: {}",
            missing("raftinel", "leader+master kill", 1000)
        ),
    }
    match (
        find("raftinel", "back-to-back kills", 1000),
        find("raftinel", "master kill", 1000),
    ) {
        (Some((b2b, s)), Some((one, _))) => println!(
            "D = 1000 ms: back-to-back kills (30 s apart, failover-timeout 180 s) median {} vs one at a time {} ({:.2}×; max {})",
            ms(b2b),
            ms(one),
            b2b.as_secs_f64() / one.as_secs_f64(),
            ms_opt(Series::pct(&s.samples, 1.0))
        ),
        _ => println!(
            "D = 1000 ms: back-to-back kills: {}",
            missing("raftinel", "back-to-back kills", 1000)
        ),
    }
    println!("load avg at the end: {}", loadavg());

    let mut any = false;
    for s in &all {
        if s.failures.is_empty() && s.aborted.is_none() {
            continue;
        }
        if !any {
            println!();
            println!("failures");
            println!("{}", "-".repeat(104));
            any = true;
        }
        for f in &s.failures {
            println!("{} {} D={}: {f}", s.system, s.scenario, s.d_ms);
        }
        if let Some(a) = &s.aborted {
            println!(
                "{} {} D={}: series ended early: {a}",
                s.system, s.scenario, s.d_ms
            );
        }
    }
    println!();
}
