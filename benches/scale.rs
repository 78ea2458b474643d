//! Scale benchmark (issue 13): one controller watching many masters, raftinel against
//! redis-sentinel in the same run. Prints figures; asserts nothing about speed.
//!
//! For each M in `SCALE_M` (default `10,100,200`): M masters × 1 replica (real redis-server
//! processes on 127.0.0.1, no persistence; `SCALE_HZ1=1` adds `--hz 1`), watched by three
//! `raftinel serve` nodes or three redis-sentinel processes, quorum 2, down-after `SCALE_DOWN_AFTER`
//! ms (default 1000), failover-timeout 2000 ms. Both are set up through the Sentinel protocol
//! (`SENTINEL MONITOR` + `SENTINEL SET` on raftinel's port; a sentinel.conf listing every master
//! for Sentinel). Then, per system:
//! - setup: from the first MONITOR until every node lists every master with its replica;
//! - idle CPU (% of one core, utime + stime from /proc over `SCALE_IDLE_SECONDS`, default 10) and
//!   RSS per node, min–max over the three, and CPU per master;
//! - `SENTINEL SET name down-after-milliseconds D` latency on node 1, median and max of 20;
//! - mass failover, the method of the Python harness: a `PSUBSCRIBE *` client on every
//!   node, every master `kill -9`'d in one loop (t0 before it), then `SENTINEL
//!   GET-MASTER-ADDR-BY-NAME` for every master not yet moved, on node 1 every 10 ms (one pipeline
//!   on one connection), and once a master's address changed, `SET` on the new address every
//!   10 ms (one connection each) until it succeeds: its time from t0 (budget 60 s);
//! - duplicate promotions (a name with more than one `+switch-master` on one node), wrongly downed
//!   instances (`+sdown`/`+odown` during the idle window, or of a replica after the kill), and
//!   `+switch-master` delivered per node (distinct names, waiting up to 10 s).
//!
//! Run: `cargo bench --bench scale`; `SCALE_SYSTEMS=raftinel` (or `sentinel`) runs one side;
//! `SCALE_KEEP=DIR` keeps the raftinel nodes' logs.
//! Every process is killed on drop (PR_SET_PDEATHSIG too); only 127.0.0.1 is used.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Proc;
use common::redis::Redis;
use common::Cluster;
use futures::StreamExt;

const FAILOVER_BUDGET: Duration = Duration::from_secs(60);
const SETUP_BUDGET: Duration = Duration::from_secs(180);
/// How often the address is asked for and a write tried during the failover.
const POLL: Duration = Duration::from_millis(10);

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn name(i: usize) -> String {
    format!("m{i:03}")
}

/// The monitored Redis instances.
struct Fleet {
    masters: Vec<Redis>,
    replicas: Vec<Redis>,
}

fn fleet(m: usize, hz1: bool) -> Fleet {
    let extra: &[&str] = if hz1 { &["--hz", "1"] } else { &[] };
    let masters: Vec<Redis> = (0..m).map(|_| Redis::start(extra)).collect();
    let replicas = masters
        .iter()
        .map(|x| Redis::replica_of(x, extra))
        .collect();
    Fleet { masters, replicas }
}

/// What the measurement needs of either system.
struct Controllers {
    /// The Sentinel-protocol address of each node.
    addrs: Vec<String>,
    pids: Vec<u32>,
    setup: Duration,
    /// raftinel's node logs (none for Sentinel).
    logs: Vec<std::path::PathBuf>,
    /// Keeps the processes and their files alive.
    _keep: Box<dyn std::any::Any>,
}

async fn cmd(addr: &str, args: &[&str]) -> Result<redis::Value, String> {
    let client = redis::Client::open(format!("redis://{addr}")).map_err(|e| e.to_string())?;
    let mut c = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let mut q = redis::cmd(args[0]);
    for a in &args[1..] {
        q.arg(*a);
    }
    tokio::time::timeout(Duration::from_secs(5), q.query_async(&mut c))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// `cmd`, tried again for up to 10 s: a node opens its Sentinel port only once it is fresh.
async fn cmd_retry(addr: &str, args: &[&str]) -> Result<redis::Value, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd(addr, args).await {
            // Only the connection failed: Redis-level errors are answers.
            Err(e)
                if Instant::now() < deadline
                    && (e.contains("os error") || e.contains("timed out")) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn len(v: &redis::Value) -> usize {
    match v {
        redis::Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// Every node lists every master with its replica (and, for Sentinel, both other sentinels).
async fn wait_known(addrs: &[String], m: usize, sentinels: bool) -> Result<(), String> {
    let deadline = Instant::now() + SETUP_BUDGET;
    for addr in addrs {
        for i in 0..m {
            loop {
                let n = name(i);
                let replicas = cmd(addr, &["SENTINEL", "REPLICAS", &n])
                    .await
                    .map(|v| len(&v));
                let peers = if sentinels {
                    cmd(addr, &["SENTINEL", "SENTINELS", &n])
                        .await
                        .map(|v| len(&v))
                } else {
                    Ok(2)
                };
                if matches!((replicas, peers), (Ok(1), Ok(2))) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{addr}: {n} not known within {SETUP_BUDGET:?}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

async fn raftinel(f: &Fleet, down_after: u64) -> Result<Controllers, String> {
    let mut c = Cluster::new(3, &format!("default-down-after-ms = {down_after}\n"));
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await;
    let addrs: Vec<String> = c.nodes.values().map(|n| n.sentinel.clone()).collect();
    let t0 = Instant::now();
    for (i, m) in f.masters.iter().enumerate() {
        let (n, port) = (name(i), m.port.to_string());
        let monitor = ["SENTINEL", "MONITOR", &n, "127.0.0.1", &port, "2"];
        match cmd_retry(&addrs[0], &monitor).await {
            // A retry after a timed-out MONITOR that committed after all.
            Err(e) if e.contains("Duplicate master name") => {}
            other => other.map(drop).map_err(|e| format!("MONITOR {n}: {e}"))?,
        }
        let set = ["SENTINEL", "SET", &n, "failover-timeout", "2000"];
        cmd_retry(&addrs[0], &set)
            .await
            .map_err(|e| format!("SET {n}: {e}"))?;
    }
    wait_known(&addrs, f.masters.len(), false).await?;
    let setup = t0.elapsed();
    let pids = [1, 2, 3].iter().filter_map(|id| c.pid(*id)).collect();
    let logs = c.nodes.values().map(|n| n.log.clone()).collect();
    Ok(Controllers {
        addrs,
        pids,
        setup,
        logs,
        _keep: Box::new(c),
    })
}

fn sentinel_command(conf: &std::path::Path) -> Command {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("redis-sentinel").is_file()));
    let mut c = Command::new(if on_path {
        "redis-sentinel"
    } else {
        "redis-server"
    });
    c.arg(conf);
    if !on_path {
        c.arg("--sentinel");
    }
    c
}

async fn sentinel(f: &Fleet, down_after: u64) -> Result<Controllers, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut procs = Vec::new();
    let mut addrs = Vec::new();
    let t0 = Instant::now();
    for i in 1..=3 {
        let port = common::free_port();
        let conf = dir.path().join(format!("s{i}.conf"));
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"{}\"\ndir \"{}\"\n",
            dir.path().join(format!("s{i}.log")).display(),
            dir.path().display()
        );
        for (j, m) in f.masters.iter().enumerate() {
            let n = name(j);
            text.push_str(&format!(
                "sentinel monitor {n} 127.0.0.1 {} 2\nsentinel down-after-milliseconds {n} {down_after}\n\
                 sentinel failover-timeout {n} 2000\n",
                m.port
            ));
        }
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let mut c = sentinel_command(&conf);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        procs.push(Proc::spawn(&format!("sentinel :{port}"), &mut c));
        addrs.push(format!("127.0.0.1:{port}"));
    }
    wait_known(&addrs, f.masters.len(), true).await?;
    let setup = t0.elapsed();
    let pids = procs.iter().filter_map(Proc::pid).collect();
    Ok(Controllers {
        addrs,
        pids,
        setup,
        logs: Vec::new(),
        _keep: Box::new((procs, dir)),
    })
}

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Every message a `PSUBSCRIBE *` client on one node received: (channel, payload).
type Heard = Arc<Mutex<Vec<(String, String)>>>;

async fn listen(addr: &str) -> Result<(Heard, tokio::task::JoinHandle<()>), String> {
    let client = redis::Client::open(format!("redis://{addr}")).map_err(|e| e.to_string())?;
    let mut ps = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
    ps.psubscribe("*").await.map_err(|e| e.to_string())?;
    let heard: Heard = Arc::default();
    let into = heard.clone();
    let task = tokio::spawn(async move {
        let mut s = ps.into_on_message();
        while let Some(m) = s.next().await {
            let payload: String = m.get_payload().unwrap_or_default();
            let entry = (m.get_channel_name().to_owned(), payload);
            into.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
        }
    });
    Ok((heard, task))
}

fn downs(heard: &Heard) -> BTreeSet<String> {
    let h = heard.lock().unwrap_or_else(|p| p.into_inner());
    h.iter()
        .filter(|(c, _)| c == "+sdown" || c == "+odown")
        .map(|(_, p)| p.clone())
        .collect()
}

fn switches(heard: &Heard) -> BTreeMap<String, usize> {
    let h = heard.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = BTreeMap::new();
    for (_, p) in h.iter().filter(|(c, _)| c == "+switch-master") {
        let n = p.split(' ').next().unwrap_or("").to_owned();
        *out.entry(n).or_insert(0) += 1;
    }
    out
}

async fn connect(addr: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// From t0 until a SET succeeds on `port`, over one connection (made again if it breaks).
async fn until_writable(port: u16, t0: Instant) -> Option<Duration> {
    let deadline = t0 + FAILOVER_BUDGET;
    let mut conn = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            conn = connect(&format!("127.0.0.1:{port}")).await;
        }
        if let Some(c) = conn.as_mut() {
            let mut set = redis::cmd("SET");
            set.arg("k").arg("v");
            match tokio::time::timeout(Duration::from_secs(1), set.query_async::<()>(c)).await {
                Ok(Ok(())) => return Some(t0.elapsed()),
                Ok(Err(e))
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) => {}
                _ => conn = None,
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// The port `GET-MASTER-ADDR-BY-NAME` names for every name in `names`, in one pipeline.
async fn addresses(
    c: &mut redis::aio::MultiplexedConnection,
    names: &[String],
) -> Option<Vec<Option<u16>>> {
    let mut pipe = redis::pipe();
    for n in names {
        pipe.cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(n);
    }
    let got = tokio::time::timeout(
        Duration::from_secs(2),
        pipe.query_async::<Vec<redis::Value>>(c),
    );
    let Ok(Ok(values)) = got.await else {
        return None;
    };
    let ports = values
        .iter()
        .map(|v| match v {
            redis::Value::Array(a) => match a.get(1)? {
                redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(ports)
}

/// Asks node 1 for every master's address every POLL (one pipeline) until it changes, then
/// writes to the new address until that succeeds: each master's time from t0.
async fn failover_times(addr: &str, olds: &[u16], t0: Instant) -> Vec<Duration> {
    let mut pending: Vec<(String, u16)> = olds
        .iter()
        .enumerate()
        .map(|(i, p)| (name(i), *p))
        .collect();
    let mut writes = tokio::task::JoinSet::new();
    let mut conn = None;
    while !pending.is_empty() && Instant::now() < t0 + FAILOVER_BUDGET {
        if conn.is_none() {
            conn = connect(addr).await;
        }
        if let Some(c) = conn.as_mut() {
            let names: Vec<String> = pending.iter().map(|(n, _)| n.clone()).collect();
            let Some(ports) = addresses(c, &names).await else {
                conn = None;
                continue;
            };
            let mut still = Vec::new();
            for ((n, old), port) in pending.into_iter().zip(ports) {
                match port.filter(|p| *p != old) {
                    Some(p) => {
                        writes.spawn(until_writable(p, t0));
                    }
                    None => still.push((n, old)),
                }
            }
            pending = still;
        }
        tokio::time::sleep(POLL).await;
    }
    let mut times = Vec::new();
    while let Some(t) = writes.join_next().await {
        if let Ok(Some(t)) = t {
            times.push(t);
        }
    }
    times.sort();
    times
}

/// One system's row.
#[derive(Default)]
struct Row {
    system: &'static str,
    m: usize,
    setup: Duration,
    cpu: Vec<f64>,
    rss: Vec<f64>,
    set_ms: Vec<f64>,
    times: Vec<Duration>,
    duplicates: usize,
    wrongly_down: usize,
    delivered: Vec<usize>,
    /// raftinel only: Sentinel-port closures, pub/sub clients dropped as too slow, and Raft
    /// terms begun, over all nodes during the run.
    troubles: Option<(usize, usize, usize)>,
}

/// Counts what must not happen in a healthy run in the raftinel nodes' logs.
fn troubles(logs: &[std::path::PathBuf]) -> Option<(usize, usize, usize)> {
    if logs.is_empty() {
        return None;
    }
    let text: String = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    for line in text
        .lines()
        .filter(|l| l.contains("no longer fresh"))
        .take(3)
    {
        eprintln!("    {line}");
    }
    Some((
        count("no longer fresh"),
        count("pub/sub client too slow"),
        count("leading: failover decisions"),
    ))
}

async fn measure(system: &'static str, f: &mut Fleet, c: &Controllers) -> Result<Row, String> {
    let m = f.masters.len();
    let idle = env_or("SCALE_IDLE_SECONDS", 10u64);
    let down_after = env_or("SCALE_DOWN_AFTER", 1000u64).to_string();
    let mut listeners = Vec::new();
    for a in &c.addrs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match listen(a).await {
                Ok(l) => break listeners.push(l),
                Err(e) if Instant::now() > deadline => return Err(format!("subscribe {a}: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<u64> = c.pids.iter().map(|p| cpu_ticks(*p)).collect();
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let mut row = Row {
        system,
        m,
        setup: c.setup,
        ..Row::default()
    };
    for (p, b) in c.pids.iter().zip(&before) {
        row.cpu.push((cpu_ticks(*p) - b) as f64 / idle as f64);
        row.rss.push(rss_mb(*p));
    }
    let idle_downs: BTreeSet<String> = listeners.iter().flat_map(|(h, _)| downs(h)).collect();
    for _ in 0..20 {
        let t = Instant::now();
        let n = name(0);
        let args = [
            "SENTINEL",
            "SET",
            &n,
            "down-after-milliseconds",
            &down_after,
        ];
        cmd_retry(&c.addrs[0], &args)
            .await
            .map_err(|e| format!("SENTINEL SET: {e}"))?;
        row.set_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let olds: Vec<u16> = f.masters.iter().map(|r| r.port).collect();
    let t0 = Instant::now();
    // SIGKILL to all first, reaping after: the loop takes microseconds per master, not a wait each.
    for r in &f.masters {
        if let Some(pid) = r.pid() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped before the loop below.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
    let killed = t0.elapsed();
    for r in &mut f.masters {
        r.kill9();
    }
    eprintln!("    {system} M={m}: {m} SIGKILLs sent in {killed:?}");
    row.times = failover_times(&c.addrs[0], &olds, t0).await;
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle && listeners.iter().any(|(h, _)| switches(h).len() < m) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replica_ports: BTreeSet<String> = f.replicas.iter().map(|r| r.port.to_string()).collect();
    let mut wrong = idle_downs;
    for (h, _) in &listeners {
        for d in downs(h) {
            // "+sdown slave 127.0.0.1:PORT ..." of an instance that was never killed.
            let port = d.split(' ').nth(1).and_then(|a| a.rsplit(':').next());
            if d.starts_with("slave") && port.is_some_and(|p| replica_ports.contains(p)) {
                wrong.insert(d);
            }
        }
        let s = switches(h);
        row.duplicates += s.values().filter(|n| **n > 1).count();
        row.delivered.push(s.len());
    }
    row.wrongly_down = wrong.len();
    row.troubles = troubles(&c.logs);
    if let Ok(dir) = std::env::var("SCALE_KEEP") {
        for (i, l) in c.logs.iter().enumerate() {
            let _ = std::fs::copy(l, format!("{dir}/{system}-{m}-n{}.log", i + 1));
        }
    }
    for (_, task) in listeners {
        task.abort();
    }
    Ok(row)
}

fn range(v: &[f64], digits: usize) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(0.0, f64::max);
    format!("{lo:.digits$}–{hi:.digits$}")
}

fn secs(d: Option<&Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn print_row(r: &Row) {
    let mut set = r.set_ms.clone();
    set.sort_by(f64::total_cmp);
    let per_master: Vec<f64> = r.cpu.iter().map(|c| c / r.m as f64).collect();
    let delivered: Vec<String> = r.delivered.iter().map(|d| format!("{d}/{}", r.m)).collect();
    let troubles = r
        .troubles
        .map_or("-".into(), |(f, p, l)| format!("{f} / {p} / {l}"));
    println!(
        "| {} | {} | {:.1} s | {} % | {} % | {} MB | {:.1} / {:.1} ms | {} / {} / {} s | {}/{} | {} | {} | {} | {troubles} |",
        r.m,
        r.system,
        r.setup.as_secs_f64(),
        range(&r.cpu, 2),
        range(&per_master, 4),
        range(&r.rss, 1),
        set.get(set.len() / 2).copied().unwrap_or(0.0),
        set.last().copied().unwrap_or(0.0),
        secs(r.times.first()),
        secs(r.times.get(r.times.len() / 2)),
        secs(r.times.last()),
        r.times.len(),
        r.m,
        r.duplicates,
        r.wrongly_down,
        delivered.join(" ")
    );
}

async fn run(system: &'static str, m: usize) -> Result<Row, String> {
    let down_after = env_or("SCALE_DOWN_AFTER", 1000u64);
    let mut f = fleet(m, env_or("SCALE_HZ1", 0u8) == 1);
    let c = match system {
        "raftinel" => raftinel(&f, down_after).await?,
        _ => sentinel(&f, down_after).await?,
    };
    measure(system, &mut f, &c).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ms: Vec<usize> = std::env::var("SCALE_M")
        .unwrap_or_else(|_| "10,100,200".into())
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    let systems: Vec<&'static str> = match std::env::var("SCALE_SYSTEMS").as_deref() {
        Ok("raftinel") => vec!["raftinel"],
        Ok("sentinel") => vec!["sentinel"],
        _ => vec!["raftinel", "sentinel"],
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "scale benchmark: {cores} cores, loadavg {}, down-after {} ms, idle window {} s, Redis hz {}",
        load.trim(),
        env_or("SCALE_DOWN_AFTER", 1000u64),
        env_or("SCALE_IDLE_SECONDS", 10u64),
        if env_or("SCALE_HZ1", 0u8) == 1 { "1" } else { "default" }
    );
    println!(
        "| M | system | setup | idle CPU/node | CPU/master/node | RSS/node | SENTINEL SET p50 / max | \
         failover first / median / last | failed over | duplicate promotions | wrongly downed | \
         +switch-master per node | port closures / slow subscribers dropped / leader terms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in ms {
        for system in &systems {
            match run(system, m).await {
                Ok(row) => print_row(&row),
                Err(e) => println!("| {m} | {system} | setup failed: {e} |"),
            }
        }
    }
}
