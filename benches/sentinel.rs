//! Sentinel-port benchmark (issue 4): raftinel's Sentinel-compatible RESP server against a real
//! redis-sentinel, same machine, same run. Prints figures and goal verdicts; asserts nothing
//! about speed.
//!
//! Setup (127.0.0.1 only): one redis-server master (no persistence); one real `redis-sentinel`
//! (a writable sentinel.conf in a tempdir: `sentinel monitor mymaster 127.0.0.1 PORT 1`); a
//! three-node `raftinel serve` cluster (default timings, RUST_LOG=warn) monitoring the same
//! master as `mymaster` with quorum 2. raftinel opens its Sentinel port only once a node is fresh
//! (it has heard the Raft leader and caught up), so the bench waits until every target answers
//! `SENTINEL GET-MASTER-ADDR-BY-NAME mymaster` with the master's address, byte for byte.
//!
//! Reply checks, on raw TCP, before the load (and the first one again after it): that request
//! answers exactly `*2 $9 127.0.0.1 $N PORT`; 16 copies of it in one write answer 16 copies of
//! that reply; an unknown master name answers the same bytes as redis-sentinel.
//!
//! Measured, per target (redis-sentinel, a raftinel follower, the raftinel leader):
//! - `redis-benchmark -h 127.0.0.1 -p PORT -c 50 -n N --csv SENTINEL GET-MASTER-ADDR-BY-NAME
//!   mymaster`, and the same with `-P 16`, each configuration run `REPS` times, interleaved
//!   across targets; the table shows the median rps (and the range), and the median of the runs'
//!   p50 and p99 as redis-benchmark reports them (its `--csv` columns).
//! - idle RSS (VmRSS from /proc/PID/status) of the sentinel and of each raftinel node after
//!   10 s idle, before the load and after it (and VmHWM, the peak, after it).
//! - stability under the load: the Raft leader and term before and after it, and the notable
//!   raftinel log lines (Sentinel listener closed, +tilt, elections, RPC timeouts, any other WARN
//!   or ERROR) written during each run, printed next to that run.
//!
//! Goals: raftinel rps ≥ redis-sentinel rps in both modes; raftinel idle RSS ≤ 20 MB. For
//! reference, issue 4 measured redis-sentinel at 78.5k req/s (-c 50), 1.14M req/s (-P 16) and
//! 7.2 MB RSS. On a 2-core machine redis-benchmark itself takes one core, so these are figures for
//! this box, not absolutes.
//!
//! Run: `cargo bench --bench sentinel`. Environment: `BENCH_MTLS=1` (mTLS between the raftinel
//! nodes), `SENTINEL_BENCH_N` (requests per -c 50 run,
//! default 300000), `SENTINEL_BENCH_N_PIPELINE` (per -P 16 run, default 3000000),
//! `SENTINEL_BENCH_REPS` (runs per configuration, default 3), `SENTINEL_BENCH_TARGETS` (a
//! comma-separated subset of sentinel,follower,leader). Every wait is bounded: readiness 30 s per
//! target, one redis-benchmark run max(120 s, N / 20k req/s) (a run over budget is killed and
//! reported as a hang, with what the target answers right after). Every process (redis-server,
//! redis-sentinel, raftinel, redis-benchmark) is killed on drop, panics included, and gets
//! SIGKILL from the kernel if this process dies (PR_SET_PDEATHSIG).

#[path = "../tests/common/mod.rs"]
mod common;

use common::process::Proc;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NAME: &str = "mymaster";
const CLIENTS: u32 = 50;
const PIPELINE: u32 = 16;
const DEFAULT_N: u64 = 300_000;
const DEFAULT_N_PIPELINE: u64 = 3_000_000;
const DEFAULT_REPS: usize = 3;
/// Until a target answers GET-MASTER-ADDR-BY-NAME correctly.
const READY_BUDGET: Duration = Duration::from_secs(30);
/// Idle time before each RSS reading.
const IDLE: Duration = Duration::from_secs(10);
/// One redis-benchmark run: at least this long...
const RUN_BUDGET_MIN: Duration = Duration::from_secs(120);
/// ...or N at this rate, whichever is longer.
const RUN_BUDGET_RATE: u64 = 20_000;
/// One raw request: connect, write, read the whole reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const GOAL_RSS_MB: f64 = 20.0;

// ---------------------------------------------------------------------------------------------
// Processes

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

fn version_of(bin: &str) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{bin} --version failed: {e}"))
}

/// VmRSS and VmHWM of a process, in KiB (the kernel's "kB").
fn rss_kib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("      {l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw RESP

fn resp_cmd(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Bytes as a Rust-like string literal: CR, LF and non-printables escaped.
fn esc(b: &[u8]) -> String {
    const MAX: usize = 300;
    let mut s: String = b
        .iter()
        .take(MAX)
        .flat_map(|c| c.escape_ascii())
        .map(char::from)
        .collect();
    if b.len() > MAX {
        s.push_str(&format!("… ({} bytes in all)", b.len()));
    }
    format!("\"{s}\"")
}

async fn connect(addr: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
        Err(_) => Err(format!("connect {addr}: timed out after {CALL_TIMEOUT:?}")),
    }
}

/// Sends `req` on a new connection and checks that the answer is exactly `want`: reads until it
/// has that many bytes, the bytes stop matching, the peer closes, or `CALL_TIMEOUT`.
async fn ask(addr: &str, req: &[u8], want: &[u8]) -> Result<(), String> {
    let mut s = connect(addr).await?;
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
    tokio::time::timeout_at(deadline, s.write_all(req))
        .await
        .map_err(|_| format!("write to {addr} timed out"))?
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut closed = false;
    while buf.len() < want.len() && want.starts_with(&buf) {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("read from {addr}: {e} after {}", esc(&buf))),
            Err(_) => {
                return Err(format!(
                    "{addr}: no complete reply within {CALL_TIMEOUT:?}; got {} of {} bytes: {}",
                    buf.len(),
                    want.len(),
                    esc(&buf)
                ))
            }
        }
    }
    if buf == want {
        return Ok(());
    }
    if !closed {
        // Whatever else comes right after, for the report.
        let linger = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(Ok(n)) = tokio::time::timeout_at(linger, s.read(&mut chunk)).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    Err(format!(
        "{addr} answered {} (expected {}){}",
        esc(&buf),
        esc(want),
        if closed {
            " and closed the connection"
        } else {
            ""
        }
    ))
}

/// Sends `req` and collects the answer until 150 ms pass without more bytes (at most
/// `CALL_TIMEOUT`): for replies whose exact bytes come from the reference sentinel.
async fn collect(addr: &str, req: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = connect(addr).await?;
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
    tokio::time::timeout_at(deadline, s.write_all(req))
        .await
        .map_err(|_| format!("write to {addr} timed out"))?
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let quiet = (tokio::time::Instant::now() + Duration::from_millis(150)).min(deadline);
        let wait = if buf.is_empty() { deadline } else { quiet };
        match tokio::time::timeout_at(wait, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Ok(buf),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("read from {addr}: {e}")),
        }
    }
}

fn get_addr_req(name: &str) -> Vec<u8> {
    resp_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])
}

fn addr_reply(host: &str, port: u16) -> Vec<u8> {
    let p = port.to_string();
    format!("*2\r\n${}\r\n{host}\r\n${}\r\n{p}\r\n", host.len(), p.len()).into_bytes()
}

/// Polls until `addr` answers GET-MASTER-ADDR-BY-NAME with `want`, within `READY_BUDGET`.
async fn wait_ready(addr: &str, want: &[u8]) -> Result<Duration, String> {
    let start = Instant::now();
    let req = get_addr_req(NAME);
    loop {
        let last = match ask(addr, &req, want).await {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => e,
        };
        if start.elapsed() > READY_BUDGET {
            return Err(format!(
                "{addr} did not answer the master's address within {READY_BUDGET:?}; last: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Plain,
    Pipelined,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Plain => format!("-c {CLIENTS}"),
            Mode::Pipelined => format!("-c {CLIENTS} -P {PIPELINE}"),
        }
    }
}

fn bench_args(port: u16, mode: Mode, n: u64) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        CLIENTS.to_string(),
        "-n".into(),
        n.to_string(),
    ];
    if mode == Mode::Pipelined {
        a.extend(["-P".into(), PIPELINE.to_string()]);
    }
    a.push("--csv".into());
    a.extend(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME].map(String::from));
    a
}

/// One run's figures, from redis-benchmark's `--csv` line.
#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One CSV line into fields: quoted fields, `""` inside quotes, commas between.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Redis 7's `--csv`: a header line `"test","rps","avg_latency_ms",…,"p50_latency_ms",…,
/// "p99_latency_ms",…` and one data line.
fn parse_csv(text: &str) -> Result<Figures, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let h = lines
        .iter()
        .position(|l| l.starts_with("\"test\""))
        .ok_or_else(|| format!("no CSV header in the output {}", esc(text.as_bytes())))?;
    let header = split_csv(lines[h]);
    let data = split_csv(
        lines
            .get(h + 1)
            .ok_or_else(|| format!("no CSV data line in the output {}", esc(text.as_bytes())))?,
    );
    let col = |name: &str| -> Result<f64, String> {
        let i = header
            .iter()
            .position(|f| f == name)
            .ok_or_else(|| format!("no {name} column in {:?}", header))?;
        data.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no number in column {name} of {data:?}"))
    };
    Ok(Figures {
        rps: col("rps")?,
        p50_ms: col("p50_latency_ms")?,
        p99_ms: col("p99_latency_ms")?,
    })
}

/// Runs redis-benchmark once, bounded in time; its output goes to files in `dir`.
/// Ok: the figures and its stderr (warnings).
async fn run_benchmark(
    dir: &Path,
    seq: usize,
    port: u16,
    mode: Mode,
    n: u64,
) -> Result<(Figures, Duration, String), String> {
    let out = dir.join(format!("rb-{seq}.out"));
    let err = dir.join(format!("rb-{seq}.err"));
    let file = |p: &PathBuf| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(bench_args(port, mode, n))
        .stdout(file(&out)?)
        .stderr(file(&err)?);
    let budget = RUN_BUDGET_MIN.max(Duration::from_secs(n / RUN_BUDGET_RATE));
    let start = Instant::now();
    let mut p = Proc::spawn("redis-benchmark", &mut cmd);
    let status = loop {
        if let Some(s) = p.exited() {
            break s;
        }
        if start.elapsed() > budget {
            p.reap();
            let stdout = std::fs::read_to_string(&out).unwrap_or_default();
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            return Err(format!(
                "HANG: redis-benchmark did not finish within {budget:?} and was killed; stdout {}, stderr {}",
                esc(stdout.as_bytes()),
                esc(stderr.as_bytes())
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = start.elapsed();
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "redis-benchmark exited with {status} after {:.1} s; stdout {}, stderr {}",
            elapsed.as_secs_f64(),
            esc(stdout.as_bytes()),
            esc(stderr.as_bytes())
        ));
    }
    let f = parse_csv(&stdout)?;
    Ok((f, elapsed, stderr))
}

// ---------------------------------------------------------------------------------------------
// Targets and results

struct Target {
    label: String,
    addr: String,
    port: u16,
    raftinel: bool,
}

#[derive(Default)]
struct Cell {
    runs: Vec<Figures>,
    failures: Vec<String>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

impl Cell {
    fn rps(&self) -> Option<f64> {
        median(self.runs.iter().map(|f| f.rps).collect())
    }
    fn p50(&self) -> Option<f64> {
        median(self.runs.iter().map(|f| f.p50_ms).collect())
    }
    fn p99(&self) -> Option<f64> {
        median(self.runs.iter().map(|f| f.p99_ms).collect())
    }
    fn range(&self) -> String {
        let lo = self
            .runs
            .iter()
            .map(|f| f.rps)
            .fold(f64::INFINITY, f64::min);
        let hi = self.runs.iter().map(|f| f.rps).fold(0.0, f64::max);
        if self.runs.is_empty() {
            "n/a".into()
        } else {
            format!("{}–{}", rate(lo), rate(hi))
        }
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn env_num<T: std::str::FromStr + PartialOrd + Copy>(key: &str, default: T, min: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse::<T>().ok())
        .filter(|v| *v >= min)
        .unwrap_or(default)
}

/// Notable raftinel log lines (RUST_LOG=warn), by what they mean; the first pattern a line
/// contains decides.
const LOG_EVENTS: &[(&str, &str)] = &[
    (
        "not fresh: Sentinel listener closed",
        "Sentinel listener closed (not fresh)",
    ),
    ("+tilt", "+tilt (a timer fired late)"),
    ("higher vote", "election (higher vote seen)"),
    ("Timeout expired", "Raft RPC timeout"),
    ("WARN", "other WARN"),
    ("ERROR", "other ERROR"),
];

/// Every node's log length now.
fn log_marks(c: &common::Cluster) -> Vec<(u64, usize)> {
    c.nodes.keys().map(|id| (*id, c.log_mark(*id))).collect()
}

/// What the node logs recorded since `marks`, e.g. "node 1: +tilt (a timer fired late) ×2";
/// empty if nothing notable.
fn log_events(c: &common::Cluster, marks: &[(u64, usize)]) -> Vec<String> {
    let mut out = Vec::new();
    for (id, mark) in marks {
        let text = c.log_since(*id, *mark);
        let mut counts = vec![0usize; LOG_EVENTS.len()];
        for line in text.lines() {
            if let Some(i) = LOG_EVENTS.iter().position(|(pat, _)| line.contains(pat)) {
                counts[i] += 1;
            }
        }
        let parts: Vec<String> = LOG_EVENTS
            .iter()
            .zip(&counts)
            .filter(|(_, n)| **n > 0)
            .map(|((_, what), n)| format!("{what} ×{n}"))
            .collect();
        if !parts.is_empty() {
            out.push(format!("node {id}: {}", parts.join(", ")));
        }
    }
    out
}

/// A process whose RSS is reported: its label, pid, and raftinel node id (None: the sentinel).
struct Watched {
    label: String,
    pid: u32,
    node: Option<u64>,
}

fn read_rss(w: &[Watched]) -> Vec<Option<(f64, f64)>> {
    w.iter().map(|w| rss_kib(w.pid)).collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n_plain: u64 = env_num("SENTINEL_BENCH_N", DEFAULT_N, 1);
    let n_pipe: u64 = env_num("SENTINEL_BENCH_N_PIPELINE", DEFAULT_N_PIPELINE, 1);
    let reps: usize = env_num("SENTINEL_BENCH_REPS", DEFAULT_REPS, 1);
    let only = std::env::var("SENTINEL_BENCH_TARGETS").unwrap_or_default();
    let wanted = |key: &str| only.is_empty() || only.split(',').any(|k| k.trim() == key);
    let n_of = |m: Mode| if m == Mode::Plain { n_plain } else { n_pipe };
    let profile = if cfg!(debug_assertions) {
        "debug assertions ON (not a release build)"
    } else {
        "release (cargo bench profile `bench`)"
    };
    let load_start = loadavg();
    let work = tempfile::tempdir().expect("tempdir");

    // 1. The master.
    let mport = common::free_port();
    let mdir = work.path().join("master");
    std::fs::create_dir_all(&mdir).expect("master dir");
    let master_args: Vec<String> = [
        "--port",
        &mport.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--dir",
        &mdir.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let master = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(&master_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let ping = resp_cmd(&["PING"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = ask(&format!("127.0.0.1:{mport}"), &ping, b"+PONG\r\n").await {
        assert!(
            Instant::now() < deadline,
            "redis-server on {mport} did not start within 5 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 2. The real sentinel.
    let sport = common::free_port();
    let sdir = work.path().join("sentinel");
    std::fs::create_dir_all(&sdir).expect("sentinel dir");
    let sconf = sdir.join("sentinel.conf");
    let slog = sdir.join("sentinel.log");
    let sconf_text = format!(
        "port {sport}\nbind 127.0.0.1\ndaemonize no\nlogfile \"{}\"\ndir \"{}\"\n\
         sentinel monitor {NAME} 127.0.0.1 {mport} 1\n",
        slog.display(),
        sdir.display()
    );
    std::fs::write(&sconf, &sconf_text).expect("write sentinel.conf");
    let mut scmd = sentinel_command(&sconf);
    let scmd_text = format!(
        "{} {}",
        scmd.get_program().to_string_lossy(),
        scmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let sentinel = Proc::spawn(
        "redis-sentinel",
        scmd.stdout(Stdio::null()).stderr(Stdio::null()),
    );

    // 3. The raftinel cluster. Declared after `cluster`: killed before its tempdir goes.
    // `BENCH_MTLS=1`: the nodes talk mTLS (the Sentinel port itself stays plaintext).
    let mut cluster = common::Cluster::new(3, "");
    let pki = std::env::var("BENCH_MTLS")
        .is_ok_and(|v| v == "1")
        .then(common::pki::Pki::new);
    if let Some(pki) = &pki {
        pki.secure(&mut cluster);
    }
    let mut nodes: BTreeMap<u64, Proc> = BTreeMap::new();
    for n in cluster.nodes.values() {
        let mut cmd = cluster.serve_command(n.id, "warn");
        nodes.insert(
            n.id,
            Proc::spawn(&format!("raftinel node {}", n.id), &mut cmd),
        );
    }
    let logs_tail = || -> String {
        let mut out = String::new();
        for (id, n) in &cluster.nodes {
            out.push_str(&format!(
                "    --- raftinel node {id} log tail ---\n{}",
                tail(&n.log, 25)
            ));
        }
        out.push_str(&format!(
            "    --- redis-sentinel log tail ---\n{}",
            tail(&slog, 10)
        ));
        out
    };
    let ids = [1u64, 2, 3];
    let leader = cluster.wait_leader(&ids, READY_BUDGET).await;
    let follower = *ids.iter().find(|id| **id != leader).expect("3 nodes");
    cluster.monitor(leader, NAME, u32::from(mport)).await;
    let monitored = Instant::now();

    let want = addr_reply("127.0.0.1", mport);
    let mut targets = Vec::new();
    if wanted("sentinel") {
        targets.push(Target {
            label: "redis-sentinel".into(),
            addr: format!("127.0.0.1:{sport}"),
            port: sport,
            raftinel: false,
        });
    }
    for (key, id, role) in [
        ("follower", follower, "follower"),
        ("leader", leader, "leader"),
    ] {
        if !wanted(key) {
            continue;
        }
        let addr = cluster.nodes[&id].sentinel.clone();
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("sentinel address IP:PORT");
        targets.push(Target {
            label: format!("raftinel node {id} ({role})"),
            addr,
            port,
            raftinel: true,
        });
    }
    assert!(
        !targets.is_empty(),
        "SENTINEL_BENCH_TARGETS={only:?} selects no target (sentinel, follower, leader)"
    );
    // Every raftinel node, and the sentinel, must answer (whatever the targets).
    let mut ready = Vec::new();
    let all_ports: Vec<(String, String)> =
        std::iter::once(("redis-sentinel".to_string(), format!("127.0.0.1:{sport}")))
            .chain(
                cluster
                    .nodes
                    .iter()
                    .map(|(id, n)| (format!("raftinel node {id}"), n.sentinel.clone())),
            )
            .collect();
    for (label, addr) in &all_ports {
        match wait_ready(addr, &want).await {
            Ok(_) => ready.push(format!(
                "{label} {:.2} s",
                monitored.elapsed().as_secs_f64()
            )),
            Err(e) => panic!("{label}: {e}\n{}", logs_tail()),
        }
    }

    println!();
    println!("raftinel Sentinel-port benchmark (issue 4): SENTINEL GET-MASTER-ADDR-BY-NAME with redis-benchmark, raftinel vs redis-sentinel");
    println!(
        "  build      : {profile}; binary {}",
        env!("CARGO_BIN_EXE_raftinel")
    );
    println!("  redis      : {}", version_of("redis-server"));
    println!("  benchmark  : {}", version_of("redis-benchmark"));
    println!("  topology   : 1 redis-server master :{mport}; redis-sentinel :{sport} (quorum 1); raftinel 3 nodes (default timings, RUST_LOG=warn), leader node {leader}, follower used node {follower}; quorum 2; 127.0.0.1 only");
    println!(
        "  ready      : {} (time since Monitor was committed)",
        ready.join(", ")
    );
    println!("  runs       : {reps} per target and mode, interleaved; -c {CLIENTS}: -n {n_plain}; -c {CLIENTS} -P {PIPELINE}: -n {n_pipe}");
    println!(
        "  load avg   : {load_start} at start (2 cores; redis-benchmark takes one of them; other work on the machine skews the figures)"
    );
    println!();

    // Reply checks.
    let mut problems: Vec<String> = Vec::new();
    println!("reply checks (raw TCP)");
    println!("{}", "-".repeat(110));
    let req = get_addr_req(NAME);
    let pipelined: Vec<u8> = req.repeat(PIPELINE as usize);
    let pipelined_want: Vec<u8> = want.repeat(PIPELINE as usize);
    let unknown = get_addr_req("nosuchmaster");
    let unknown_want = collect(&format!("127.0.0.1:{sport}"), &unknown).await;
    for (label, addr) in &all_ports {
        let mut checks: Vec<(String, &[u8], &[u8])> = vec![
            (
                format!("GET-MASTER-ADDR-BY-NAME {NAME} = {}", esc(&want)),
                &req,
                &want,
            ),
            (
                format!(
                    "{PIPELINE} × GET-MASTER-ADDR-BY-NAME {NAME} in one write = {PIPELINE} × that reply"
                ),
                &pipelined,
                &pipelined_want,
            ),
        ];
        match &unknown_want {
            Ok(w) => checks.push((
                format!(
                    "GET-MASTER-ADDR-BY-NAME nosuchmaster = {} (redis-sentinel's bytes)",
                    esc(w)
                ),
                &unknown,
                w,
            )),
            Err(e) => println!("  {label:<24} unknown-name check skipped: redis-sentinel: {e}"),
        }
        for (what, rq, w) in checks {
            match ask(addr, rq, w).await {
                Ok(()) => println!("  {label:<24} {what}: ok"),
                Err(e) => {
                    println!("  {label:<24} {what}: WRONG: {e}");
                    if label.starts_with("raftinel") {
                        problems.push(format!("{label}: request {} → {e}", esc(rq)));
                    }
                }
            }
        }
    }
    println!();

    // 4a. Idle RSS before the load.
    let mut watched: Vec<Watched> = nodes
        .iter()
        .map(|(id, p)| {
            let role = if *id == leader {
                "leader"
            } else if *id == follower {
                "follower, measured"
            } else {
                "follower"
            };
            Watched {
                label: format!("raftinel node {id} ({role})"),
                pid: p.pid().expect("running"),
                node: Some(*id),
            }
        })
        .collect();
    watched.push(Watched {
        label: "redis-sentinel".into(),
        pid: sentinel.pid().expect("running"),
        node: None,
    });
    println!("idle {IDLE:?} before the load…");
    tokio::time::sleep(IDLE).await;
    let rss_before = read_rss(&watched);
    let term_before = cluster.status(follower).await.map(|s| s.term);
    let load_marks = log_marks(&cluster);

    // 3. The load.
    let mut cells: BTreeMap<(usize, Mode), Cell> = BTreeMap::new();
    let mut warnings: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut seq = 0;
    println!("runs");
    println!("{}", "-".repeat(110));
    for rep in 0..reps {
        for mode in [Mode::Plain, Mode::Pipelined] {
            for (ti, t) in targets.iter().enumerate() {
                seq += 1;
                let n = n_of(mode);
                let marks = log_marks(&cluster);
                let r = run_benchmark(work.path(), seq, t.port, mode, n).await;
                let cell = cells.entry((ti, mode)).or_default();
                let label = format!(
                    "  {:<28} {:<13} run {}/{reps}",
                    t.label,
                    mode.label(),
                    rep + 1
                );
                let events = log_events(&cluster, &marks);
                let events_note = if events.is_empty() {
                    String::new()
                } else {
                    format!("  raftinel logs during this run: {}", events.join("; "))
                };
                if !events.is_empty() {
                    problems.push(format!(
                        "during {} {} run {}: {}",
                        t.label,
                        mode.label(),
                        rep + 1,
                        events.join("; ")
                    ));
                }
                match r {
                    Ok((f, el, stderr)) => {
                        println!(
                            "{label}: {:>9} req/s  p50 {:.3} ms  p99 {:.3} ms  ({:.1} s){events_note}",
                            rate(f.rps),
                            f.p50_ms,
                            f.p99_ms,
                            el.as_secs_f64()
                        );
                        cell.runs.push(f);
                        let w = warnings.entry(ti).or_default();
                        for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
                            if !w.iter().any(|x| x == line) {
                                w.push(line.to_string());
                            }
                        }
                    }
                    Err(e) => {
                        // What the target answers right after, for the report.
                        let after = match ask(&t.addr, &req, &want).await {
                            Ok(()) => "a fresh GET-MASTER-ADDR-BY-NAME right after: ok".to_string(),
                            Err(e2) => format!("a fresh GET-MASTER-ADDR-BY-NAME right after: {e2}"),
                        };
                        println!("{label}: FAILED: {e}; {after}{events_note}");
                        let msg = format!(
                            "{} {} run {}: redis-benchmark {}: {e}; {after}",
                            t.label,
                            mode.label(),
                            rep + 1,
                            bench_args(t.port, mode, n).join(" ")
                        );
                        cell.failures.push(msg.clone());
                        if t.raftinel {
                            problems.push(msg);
                        }
                    }
                }
            }
        }
    }
    println!();

    // After the load: still fresh and right, same leader and term.
    let after = cluster.status(follower).await;
    let leader_after = after.as_ref().map(|s| s.leader_id);
    let term_after = after.as_ref().map(|s| s.term);
    let load_events = log_events(&cluster, &load_marks);
    let mut after_checks = Vec::new();
    for (label, addr) in &all_ports {
        if let Err(e) = ask(addr, &req, &want).await {
            after_checks.push((label.starts_with("raftinel"), format!("{label}: {e}")));
        }
    }

    // 4b. Idle RSS after the load.
    println!("idle {IDLE:?} after the load…");
    tokio::time::sleep(IDLE).await;
    let rss_after = read_rss(&watched);
    println!();

    // 5. Tables.
    println!(
        "{:<36} {:<13} {:>6} {:>10} {:>17} {:>9} {:>9}",
        "target", "mode", "ok", "rps (med)", "rps min–max", "p50 ms", "p99 ms"
    );
    println!("{}", "-".repeat(110));
    for mode in [Mode::Plain, Mode::Pipelined] {
        for (ti, t) in targets.iter().enumerate() {
            let c = cells.remove(&(ti, mode)).unwrap_or_default();
            println!(
                "{:<36} {:<13} {:>6} {:>10} {:>17} {:>9} {:>9}",
                format!("{} :{}", t.label, t.port),
                mode.label(),
                format!("{}/{reps}", c.runs.len()),
                c.rps().map(rate).unwrap_or_else(|| "n/a".into()),
                c.range(),
                opt_ms(c.p50()),
                opt_ms(c.p99()),
            );
            cells.insert((ti, mode), c);
        }
    }
    println!("(rps: median of the runs; p50/p99: medians of the runs' redis-benchmark percentiles; issue 4 measured redis-sentinel at 78.5k and 1.14M req/s)");
    println!();

    println!(
        "{:<36} {:>14} {:>14} {:>16}  goal",
        "idle RSS (VmRSS)", "before load", "after load", "peak (VmHWM)"
    );
    println!("{}", "-".repeat(110));
    let mb = |kib: f64| kib * 1024.0 / 1e6;
    let mut rss_ok = true;
    let mut rss_any = false;
    for (i, w) in watched.iter().enumerate() {
        let (b, a) = (rss_before[i], rss_after[i]);
        let is_raftinel = w.node.is_some();
        let fmt = |v: Option<(f64, f64)>, peak: bool| {
            v.map(|(rss, hwm)| format!("{:.1} MB", mb(if peak { hwm } else { rss })))
                .unwrap_or_else(|| "n/a".into())
        };
        let goal = if is_raftinel {
            let worst = [b, a]
                .iter()
                .flatten()
                .map(|(r, _)| mb(*r))
                .fold(0.0, f64::max);
            let ok = b.is_some() && a.is_some() && worst <= GOAL_RSS_MB;
            rss_ok &= ok;
            rss_any = true;
            format!("≤ {GOAL_RSS_MB} MB: {}", verdict(ok))
        } else {
            "(reference; issue 4 measured 7.2 MB)".into()
        };
        println!(
            "{:<36} {:>14} {:>14} {:>16}  {goal}",
            w.label,
            fmt(b, false),
            fmt(a, false),
            fmt(a, true)
        );
    }
    println!("(MB = 10^6 bytes; each reading after {IDLE:?} idle)");
    println!();

    println!("goals");
    println!("{}", "-".repeat(110));
    let sentinel_i = targets.iter().position(|t| !t.raftinel);
    for mode in [Mode::Plain, Mode::Pipelined] {
        for (ti, t) in targets.iter().enumerate().filter(|(_, t)| t.raftinel) {
            let r = cells.get(&(ti, mode)).and_then(Cell::rps);
            let s = sentinel_i.and_then(|si| cells.get(&(si, mode)).and_then(Cell::rps));
            match (r, s) {
                (Some(r), Some(s)) => println!(
                    "throughput {:<13} {:<28} {:>9} vs redis-sentinel {:>9} = {:.2}×  goal ≥ 1: {}",
                    mode.label(),
                    t.label,
                    rate(r),
                    rate(s),
                    r / s,
                    verdict(r >= s)
                ),
                _ => println!(
                    "throughput {:<13} {:<28} n/a (raftinel {}, redis-sentinel {}): MISSED",
                    mode.label(),
                    t.label,
                    r.map(rate).unwrap_or_else(|| "no successful run".into()),
                    s.map(rate).unwrap_or_else(|| if sentinel_i.is_some() {
                        "no successful run".into()
                    } else {
                        "not run".into()
                    })
                ),
            }
        }
    }
    if rss_any {
        println!(
            "idle RSS of every raftinel node ≤ {GOAL_RSS_MB} MB, before and after the load: {}",
            verdict(rss_ok)
        );
    }
    println!(
        "Raft leader: node {leader} before the load, {} after; term {} before, {} after (seen by node {follower})",
        leader_after
            .map(|l| format!("node {l}"))
            .unwrap_or_else(|| "unknown".into()),
        term_before
            .map(|t| t.to_string())
            .unwrap_or_else(|| "unknown".into()),
        term_after
            .map(|t| t.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    if leader_after != Some(leader) || term_after != term_before {
        problems.push(format!(
            "the Raft leader or term changed during the load: leader node {leader} → {leader_after:?}, term {term_before:?} → {term_after:?}"
        ));
    }
    if load_events.is_empty() {
        println!("raftinel logs during the load: nothing at WARN or above");
    } else {
        println!("raftinel logs during the load: {}", load_events.join("; "));
    }
    if after_checks.is_empty() {
        println!("after the load every target still answers GET-MASTER-ADDR-BY-NAME correctly");
    } else {
        for (raftinel, c) in &after_checks {
            println!("after the load: WRONG: {c}");
            if *raftinel {
                problems.push(format!("after the load: {c}"));
            }
        }
    }
    println!("load avg at the end: {}", loadavg());
    println!();

    println!("commands");
    println!("{}", "-".repeat(110));
    let shown: Vec<String> = master_args
        .iter()
        .map(|a| {
            if a.is_empty() {
                "\"\"".into()
            } else {
                a.clone()
            }
        })
        .collect();
    println!("  redis-server {}", shown.join(" "));
    println!("  {scmd_text}");
    for l in sconf_text.lines() {
        println!("      {l}");
    }
    println!(
        "  RUST_LOG=warn {} serve --config {}   (×3; node {follower}'s config:)",
        env!("CARGO_BIN_EXE_raftinel"),
        cluster.nodes[&follower].config.display()
    );
    for l in std::fs::read_to_string(&cluster.nodes[&follower].config)
        .unwrap_or_default()
        .lines()
    {
        println!("      {l}");
    }
    println!("  raftinel: Monitor {NAME} 127.0.0.1 {mport} quorum 2 (gRPC, via the leader)");
    for t in &targets {
        for mode in [Mode::Plain, Mode::Pipelined] {
            println!(
                "  redis-benchmark {}   # {}",
                bench_args(t.port, mode, n_of(mode)).join(" "),
                t.label
            );
        }
    }
    for (ti, w) in &warnings {
        for line in w {
            println!(
                "  redis-benchmark stderr against {}: {line}",
                targets[*ti].label
            );
        }
    }

    if !problems.is_empty() {
        println!();
        println!("problems in the raftinel server");
        println!("{}", "-".repeat(110));
        for p in &problems {
            println!("  {p}");
        }
        println!("{}", logs_tail());
    }
    println!();
    drop(nodes);
    drop(sentinel);
    drop(master);
}
