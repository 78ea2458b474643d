//! Unchanged Sentinel clients against raftinel's Sentinel-compatible port (`sentinel-listen`):
//! the `redis-cli` binary (RESP2 and RESP3), the Rust `redis` crate's sentinel client and
//! redis-py 8's `redis.sentinel.Sentinel` (HELLO 3, discovery with SENTINEL MASTERS), each
//! against a real three-node cluster watching real redis-server processes: discovery, a write
//! workload that survives a kill -9 of the master, and discovery that skips a node cut off from
//! its peers (whose port is closed while it is not fresh). The failover workloads run again
//! through the TLS listener (`sentinel.tls-port`) with certificates from `common::pki`.
//!
//! Needs: redis-server and redis-cli; root, iptables and setpriv (the cut-off test singles out a
//! node's traffic by its uid); and the Python venv with redis-py 8 that `scripts/test.sh`
//! creates (found through `RAFTINEL_PYTHON`, else `<target>/py-venv/bin/python`). Without the
//! venv the redis-py tests fail and say so; they never pass silently.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::firewall::Firewall;
use common::pki::Pki;
use common::redis::Redis;
use common::{eventually, serial, Cluster};
use raftinel::pb::{self, Consistency};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, TlsCertificates};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// down-after 1000 ms, as in tests/failover.rs: a killed master is replaced within seconds.
const TIMINGS: &str = "default-down-after-ms = 1000\n";
const SERVICE: &str = "mymaster";

// ------------------------------------------------------------------------------------------
// The cluster and its Sentinel ports

/// The record of `mymaster` in node `id`'s applied log (gRPC, not the port under test).
async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, SERVICE, Consistency::Local).await.ok()
}

/// Monitors `master` and waits until the log knows `replicas` replicas and every node's
/// Sentinel port answers.
async fn monitored(c: &Cluster, master: &Redis, replicas: usize) {
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, SERVICE, u32::from(master.port)).await;
    eventually("replicas discovered", Duration::from_secs(10), || async {
        master_of(c, leader)
            .await
            .filter(|m| m.replicas.len() == replicas)
    })
    .await;
    for n in c.nodes.values() {
        wait_sentinel_open(&n.sentinel, Duration::from_secs(10)).await;
    }
}

/// PING over a fresh connection answers +PONG within 1 s. The port is open only while the
/// node is fresh, so after start (and after a partition heals) tests wait for this.
async fn sentinel_answers(addr: &str) -> bool {
    let ping = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Some(()))
    )
}

async fn wait_sentinel_open(addr: &str, within: Duration) -> Duration {
    let start = Instant::now();
    eventually(
        &format!("Sentinel port {addr} answers PING"),
        within,
        || async { sentinel_answers(addr).await.then_some(()) },
    )
    .await;
    start.elapsed()
}

/// Waits until a TCP connect to `addr` is refused (the listener is closed); returns how long.
async fn wait_sentinel_refused(addr: &str, within: Duration) -> Duration {
    let start = Instant::now();
    eventually(
        &format!("Sentinel port {addr} refuses connections"),
        within,
        || async {
            let r = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            matches!(r, Ok(Err(ref e)) if e.kind() == std::io::ErrorKind::ConnectionRefused)
                .then_some(())
        },
    )
    .await;
    start.elapsed()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The Sentinel addresses of nodes `ids`, in that order.
fn sentinels(c: &Cluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| c.nodes[id].sentinel.clone()).collect()
}

/// Waits (up to 15 s) until the log names a master other than `old` and that instance says it
/// is a master; returns its address.
async fn new_master(c: &Cluster, old: &Redis, candidates: &[&Redis]) -> String {
    let rec = c
        .new_master(1, old.port, false, Duration::from_secs(15))
        .await;
    let promoted = candidates
        .iter()
        .find(|r| u32::from(r.port) == rec.port)
        .unwrap_or_else(|| panic!("the log names {}:{}, not a replica", rec.host, rec.port));
    eventually(
        "the promoted replica is a master",
        Duration::from_secs(10),
        || async { (promoted.role().as_deref() == Some("master")).then_some(()) },
    )
    .await;
    format!("127.0.0.1:{}", promoted.port)
}

// ------------------------------------------------------------------------------------------
// redis-cli

/// `redis-cli -h 127.0.0.1 -p PORT <args>` (bounded by `timeout 10`); its stdout. Fails on a
/// non-zero exit (redis-cli exits 1 on an error reply).
fn redis_cli(addr: &str, args: &[&str]) -> String {
    let port = port_of(addr).to_string();
    let out = Command::new("timeout")
        .args(["10", "redis-cli", "-h", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (scripts/test.sh installs redis-server)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.starts_with("(error)") && !stdout.starts_with("ERR"),
        "redis-cli {args:?} against {addr}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The values that follow a line equal to `key` in redis-cli's raw output of a list of
/// field/value replies (e.g. every `port` of SENTINEL SENTINELS).
fn raw_field_values(raw: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = raw.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == key)
        .map(|w| w[1].to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Write workloads and what they report

/// What a write loop saw: acknowledged writes per master address, errors, and the longest
/// error burst (from the last acknowledged write before an error to the next acknowledged
/// write: the client's outage as its user sees it).
#[derive(Debug, Default)]
struct Summary {
    ok: u64,
    errors: u64,
    attempts: u64,
    longest_burst: Duration,
    still_failing: bool,
    master_seen_last: Option<String>,
    ok_per_master: BTreeMap<String, u64>,
    error_kinds: BTreeMap<String, u64>,
    /// The index `i` of the last acknowledged `SET key:i i`.
    last_ok_key: Option<u64>,
}

/// Tracks error bursts between acknowledged writes.
struct Bursts {
    last_ok: Option<Instant>,
    burst_from: Option<Instant>,
}

impl Bursts {
    fn new() -> Bursts {
        Bursts {
            last_ok: None,
            burst_from: None,
        }
    }

    fn error(&mut self) {
        if self.burst_from.is_none() {
            self.burst_from = Some(self.last_ok.unwrap_or_else(Instant::now));
        }
    }

    /// An acknowledged write; returns the burst it ends, if any.
    fn ok(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.last_ok = Some(now);
        self.burst_from.take().map(|from| now - from)
    }
}

/// A connection to the master the sentinel client names, and that master's address.
struct MasterConn {
    addr: String,
    conn: MultiplexedConnection,
}

/// Asks the sentinels (SENTINEL MASTERS, then ROLE on the named master) and connects.
async fn connect_via_sentinels(client: &mut SentinelClient) -> redis::RedisResult<MasterConn> {
    let master = client.async_get_client().await?;
    let addr = master.get_connection_info().addr().to_string();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    let conn = master
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(MasterConn { addr, conn })
}

fn sentinel_client(sentinels: &[String]) -> SentinelClient {
    let urls: Vec<String> = sentinels.iter().map(|a| format!("redis://{a}/")).collect();
    SentinelClient::build(urls, SERVICE, None, SentinelServerType::Master).unwrap()
}

/// The redis crate's client for TLS sentinels (`rediss://`, verified against `ca`); the master
/// is reached in plaintext, as with Redis's `tls-port` on the sentinels only.
fn tls_sentinel_client(sentinels: &[String], ca: &Path) -> SentinelClient {
    let addrs = sentinels.iter().map(|a| {
        redis::IntoConnectionInfo::into_connection_info(format!("rediss://{a}/"))
            .unwrap()
            .addr()
            .clone()
    });
    SentinelClientBuilder::new(addrs, SERVICE, SentinelServerType::Master)
        .unwrap()
        .set_client_to_sentinel_certificates(TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(ca).unwrap()),
        })
        .build()
        .unwrap()
}

/// A three-node cluster (not started) for the failover tests. With `pki`, every node has its
/// certificate and a `sentinel.tls-port` of its own, and the clients are given those ports;
/// otherwise the plain Sentinel ports.
fn failover_cluster(pki: Option<&Pki>) -> (Cluster, Vec<String>) {
    let Some(pki) = pki else {
        let c = Cluster::new(3, TIMINGS);
        let plain = sentinels(&c, &[1, 2, 3]);
        return (c, plain);
    };
    pki.cluster(3, TIMINGS, "")
}

/// `SET key:i i` for i = 0, 1, ... through the redis crate's sentinel client for `duration`,
/// 2 ms apart (so that the loop does not starve the cluster of the two cores). On any error the
/// connection is dropped and the next attempt asks the sentinels again, after 50 ms. `ready`
/// fires after the first acknowledged write.
async fn redis_rs_workload(
    mut client: SentinelClient,
    duration: Duration,
    ready: tokio::sync::oneshot::Sender<()>,
) -> (Summary, BTreeMap<String, Vec<u64>>) {
    let mut s = Summary::default();
    let mut acked: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut bursts = Bursts::new();
    let mut conn: Option<MasterConn> = None;
    let mut ready = Some(ready);
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let i = s.attempts;
        s.attempts += 1;
        let step = async {
            if conn.is_none() {
                conn = Some(connect_via_sentinels(&mut client).await?);
            }
            let c = conn.as_mut().unwrap();
            redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(i)
                .query_async::<()>(&mut c.conn)
                .await?;
            Ok::<String, redis::RedisError>(c.addr.clone())
        };
        // The client's own timeouts should end every step; this bounds it regardless.
        let result = match tokio::time::timeout(Duration::from_secs(5), step).await {
            Ok(r) => r.map_err(|e| format!("{:?}", e.kind())),
            Err(_) => Err("step timed out (5 s)".to_string()),
        };
        match result {
            Ok(addr) => {
                s.ok += 1;
                s.last_ok_key = Some(i);
                if let Some(b) = bursts.ok() {
                    s.longest_burst = s.longest_burst.max(b);
                }
                *s.ok_per_master.entry(addr.clone()).or_default() += 1;
                acked.entry(addr.clone()).or_default().push(i);
                s.master_seen_last = Some(addr);
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(kind) => {
                s.errors += 1;
                *s.error_kinds.entry(kind).or_default() += 1;
                bursts.error();
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Some(from) = bursts.burst_from {
        s.still_failing = true;
        s.longest_burst = s.longest_burst.max(from.elapsed());
    }
    (s, acked)
}

/// Checks a write loop's summary after a failover from `old` to `new` (addresses): writes went
/// on at the new master, the outage is bounded, and the new master holds a sane key count.
fn check_survived(who: &str, s: &Summary, old: &str, new: &Redis, new_addr: &str) {
    let on_new = s.ok_per_master.get(new_addr).copied().unwrap_or(0);
    let on_old = s.ok_per_master.get(old).copied().unwrap_or(0);
    let keys = new.dbsize().unwrap();
    eprintln!(
        "{who}: {} ok ({on_old} on the old master {old}, {on_new} on the new master {new_addr}), \
         {} errors {:?}, longest error burst {} ms, new master holds {keys} keys of {} attempts",
        s.ok,
        s.errors,
        s.error_kinds,
        s.longest_burst.as_millis(),
        s.attempts
    );
    assert!(
        on_old > 0,
        "{who}: no write reached the first master: {s:?}"
    );
    // Writes on both masters show the kill landed mid-loop. A client may surface no error at all:
    // node-redis v5 retries a command on a link that dropped until it finds the new master.
    assert!(
        on_new > 0 && s.master_seen_last.as_deref() == Some(new_addr),
        "{who}: the last writes must go to the new master {new_addr}: {s:?}"
    );
    assert!(
        !s.still_failing,
        "{who}: still failing when the loop ended: {s:?}"
    );
    // Generous: kill -9 to promotion is ~2-3 s with down-after 1000 ms; a timed assert must not
    // flake on a loaded machine.
    assert!(
        s.longest_burst < Duration::from_secs(15),
        "{who}: longest error burst {:?}",
        s.longest_burst
    );
    // Every write the new master acknowledged is there; a few of the old master's last writes
    // may be missing (asynchronous replication); nothing beyond what was attempted.
    assert!(
        keys >= on_new as i64 && keys <= s.attempts as i64,
        "{who}: the new master holds {keys} keys; {on_new} acknowledged by it, {} attempted",
        s.attempts
    );
    assert!(
        keys >= (s.ok / 2) as i64,
        "{who}: the new master holds {keys} keys of {} acknowledged writes",
        s.ok
    );
    let last = s.last_ok_key.unwrap();
    let v: String =
        redis::from_redis_value(new.query(&["GET", &format!("key:{last}")]).unwrap()).unwrap();
    assert_eq!(v, last.to_string(), "{who}: the last acknowledged write");
}

// ------------------------------------------------------------------------------------------
// redis-py, through the venv that scripts/test.sh builds

/// The venv's python: `RAFTINEL_PYTHON`, else `<target>/py-venv/bin/python` (the target dir is
/// where the raftinel binary was built). Fails, with what to do, if it is missing or has no
/// redis-py 8.
fn python() -> PathBuf {
    let path = match std::env::var_os("RAFTINEL_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = PathBuf::from(common::bin())
                .parent()
                .and_then(|d| d.parent())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("py-venv/bin/python")
        }
    };
    assert!(
        path.exists(),
        "the redis-py venv is missing ({} does not exist): run scripts/test.sh, which creates \
         it and sets RAFTINEL_PYTHON",
        path.display()
    );
    let out = Command::new(&path)
        .args(["-c", "import redis; print(redis.__version__)"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && version.starts_with("8."),
        "{} has no redis-py 8 (got {version:?}, {}): run scripts/test.sh",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn py_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_sentinel.py")
}

/// The summary line the script prints, as a `Summary`.
fn parse_py_summary(line: &str) -> Summary {
    let v: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("redis-py summary is not JSON ({e}): {line}"));
    let counts = |k: &str| -> BTreeMap<String, u64> {
        v[k].as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Summary {
        ok: v["ok"].as_u64().unwrap(),
        errors: v["errors"].as_u64().unwrap(),
        attempts: v["attempts"].as_u64().unwrap(),
        longest_burst: Duration::from_millis(v["longest_error_burst_ms"].as_u64().unwrap()),
        still_failing: v["still_failing"].as_bool().unwrap(),
        master_seen_last: v["master_seen_last"].as_str().map(str::to_string),
        ok_per_master: counts("ok_per_master"),
        error_kinds: counts("error_kinds"),
        last_ok_key: v["last_ok_key"].as_u64(),
    }
}

/// How long redis-py's `Sentinel.discover_master` took with these sentinels, in this order
/// (measured inside the script, without the interpreter's start); see the script's header.
struct PyDiscovery {
    /// Every call's answer (they must agree).
    masters: Vec<String>,
    /// Default retry policy, first call: includes the client's own backoff on a refused port.
    default: Duration,
    /// The same Sentinel again: the sentinel that answered is first in its list now.
    again: Duration,
    /// Sentinel connections without retries: what the server costs.
    no_retry: Duration,
}

fn py_discover(sentinels: &[String]) -> PyDiscovery {
    let out = Command::new("timeout")
        .arg("60")
        .arg(python())
        .arg(py_script())
        .args(["discover", "--service", SERVICE, "--sentinels"])
        .arg(sentinels.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-py discover_master failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let ms = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap() / 1000.0);
    PyDiscovery {
        masters: ["master", "master_again", "master_no_retry"]
            .iter()
            .map(|k| v[*k].as_str().unwrap().to_string())
            .collect(),
        default: ms("ms_default"),
        again: ms("ms_default_again"),
        no_retry: ms("ms_no_retry"),
    }
}

// ------------------------------------------------------------------------------------------
// Cutting one node off from its peers

/// Cuts node `id` (running as `uid(id)`) off from its peers, both ways: its own connections to
/// their Raft ports, and theirs to its Raft port, are reset. Everything else (its Redis
/// monitoring, the test's own connections) goes through.
fn cut_off(c: &Cluster, id: u64) -> Firewall {
    let mut rules = Vec::new();
    for peer in c.nodes.values().filter(|n| n.id != id) {
        rules.push(Firewall::reject(uid(id), port_of(&peer.grpc)));
        rules.push(Firewall::reject(uid(peer.id), port_of(&c.nodes[&id].grpc)));
    }
    Firewall::add(rules)
}

/// The uid node `id` runs as in the cut-off test: one per node, so that any follower's traffic
/// (and its peers') can be singled out.
fn uid(id: u64) -> u32 {
    64_100 + id as u32
}

// ------------------------------------------------------------------------------------------
// Tests

// --- redis-cli, RESP2 and RESP3: address lookup, the master's state as a map, HELLO 3, ROLE,
//     the other sentinels, and the null reply for an unknown master
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_resp2_and_resp3() {
    let _g = serial();
    let m = Redis::start(&[]);
    let _r = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(3, TIMINGS);
    let _logs = c.logs_on_panic(40);
    c.start_all();
    monitored(&c, &m, 1).await;
    let node = &c.nodes[&1].sentinel;

    let addr = redis_cli(node, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE]);
    assert_eq!(addr, format!("127.0.0.1\n{}\n", m.port), "raw output");

    // RESP3: SENTINEL MASTER is a map (redis-cli prints `1# "key" => value` for map entries).
    let master = redis_cli(node, &["-3", "--no-raw", "SENTINEL", "MASTER", SERVICE]);
    assert!(
        master.contains("1# \"name\" => \"mymaster\""),
        "not a RESP3 map: {master}"
    );
    assert!(
        master.contains(&format!("\"port\" => \"{}\"", m.port)),
        "{master}"
    );
    assert!(master.contains("\"flags\" => \"master\""), "{master}");
    // In RESP2 the same reply is a flat array of field/value pairs.
    let flat = redis_cli(node, &["--no-raw", "SENTINEL", "MASTER", SERVICE]);
    assert!(
        flat.starts_with(" 1) \"name\"\n 2) \"mymaster\"\n"),
        "{flat}"
    );

    let hello = redis_cli(node, &["-3", "--no-raw", "HELLO", "3"]);
    assert!(hello.contains("\"proto\" => (integer) 3"), "{hello}");
    assert!(hello.contains("\"mode\" => \"sentinel\""), "{hello}");
    let hello2 = redis_cli(node, &["--no-raw", "HELLO", "2"]);
    assert!(
        hello2.contains("\"proto\"\n") && hello2.contains("(integer) 2"),
        "{hello2}"
    );

    let role = redis_cli(node, &["--no-raw", "ROLE"]);
    assert_eq!(role, "1) \"sentinel\"\n2) 1) \"mymaster\"\n");
    let role3 = redis_cli(node, &["-3", "--no-raw", "ROLE"]);
    assert_eq!(role3, "1) \"sentinel\"\n2) 1) \"mymaster\"\n");

    let others = redis_cli(node, &["SENTINEL", "SENTINELS", SERVICE]);
    let ports: BTreeSet<String> = raw_field_values(&others, "port").into_iter().collect();
    let expected: BTreeSet<String> = c
        .nodes
        .values()
        .filter(|n| n.id != 1)
        .map(|n| port_of(&n.sentinel).to_string())
        .collect();
    assert_eq!(ports, expected, "SENTINEL SENTINELS:\n{others}");
    let ips = raw_field_values(&others, "ip");
    assert_eq!(ips, vec!["127.0.0.1", "127.0.0.1"], "{others}");

    let unknown = redis_cli(
        node,
        &["--no-raw", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nosuch"],
    );
    assert_eq!(unknown, "(nil)\n");
    let unknown3 = redis_cli(
        node,
        &[
            "-3",
            "--no-raw",
            "SENTINEL",
            "GET-MASTER-ADDR-BY-NAME",
            "nosuch",
        ],
    );
    assert_eq!(unknown3, "(nil)\n");
}

// --- the redis crate's sentinel client keeps writing through a kill -9 of the master: it asks
//     the sentinels again after each error and lands on the promoted replica
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_sentinel_client_survives_failover() {
    redis_rs_through_failover(false).await;
}

// --- the same through the Sentinel port's TLS listener (`sentinel.tls-port`)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_sentinel_client_over_tls_survives_failover() {
    redis_rs_through_failover(true).await;
}

async fn redis_rs_through_failover(tls: bool) {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = tls.then(|| Pki::create(pki_dir.path()));
    let (mut c, addrs) = failover_cluster(pki.as_ref());
    let _logs = c.logs_on_panic(40);
    c.start_all();
    monitored(&c, &m, 2).await;
    let old = format!("127.0.0.1:{}", m.port);

    let client = match &pki {
        Some(p) => tls_sentinel_client(&addrs, &p.ca),
        None => sentinel_client(&addrs),
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let work = tokio::spawn(redis_rs_workload(client, Duration::from_secs(14), ready_tx));
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("no acknowledged write within 10 s")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.kill9();
    let killed = Instant::now();
    let new_addr = new_master(&c, &m, &[&r1, &r2]).await;
    eprintln!(
        "new master {new_addr} in the log {:?} after kill -9",
        killed.elapsed()
    );

    let (s, acked) = tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("the workload outlived its duration by 16 s")
        .unwrap();
    let new = if new_addr.ends_with(&format!(":{}", r1.port)) {
        &r1
    } else {
        &r2
    };
    check_survived("redis crate", &s, &old, new, &new_addr);

    // Every write the new master acknowledged is on it, with its value; count the old
    // master's acknowledged writes that did not make it (asynchronous replication).
    let keys = |ids: &[u64]| -> Vec<Option<String>> {
        ids.chunks(1000)
            .flat_map(|chunk| {
                let names: Vec<String> = chunk.iter().map(|i| format!("key:{i}")).collect();
                let mut args = vec!["MGET"];
                args.extend(names.iter().map(String::as_str));
                let v: Vec<Option<String>> =
                    redis::from_redis_value(new.query(&args).unwrap()).unwrap();
                v
            })
            .collect()
    };
    let on_new = &acked[&new_addr];
    for (i, v) in on_new.iter().zip(keys(on_new)) {
        assert_eq!(
            v,
            Some(i.to_string()),
            "key:{i}, acknowledged by the new master"
        );
    }
    let on_old = &acked[&old];
    let lost = keys(on_old).iter().filter(|v| v.is_none()).count();
    eprintln!(
        "redis crate: {lost} of the {} writes the old master acknowledged are not on the new one",
        on_old.len()
    );
}

// --- redis-py 8 (HELLO 3, SENTINEL MASTERS) keeps writing through a kill -9 of the master
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_sentinel_survives_failover() {
    redis_py_through_failover(false).await;
}

// --- the same through the Sentinel port's TLS listener (`ssl=True, ssl_ca_certs=…` in
//     sentinel_kwargs)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_sentinel_over_tls_survives_failover() {
    redis_py_through_failover(true).await;
}

async fn redis_py_through_failover(tls: bool) {
    let python = python();
    client_through_failover("redis-py", (tls, Failover::Kill9), |addrs, pki| {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(py_script())
            .args([
                "write",
                "--service",
                SERVICE,
                "--duration",
                "14",
                "--sentinels",
            ])
            .arg(addrs.join(","));
        if let Some(p) = pki {
            cmd.arg("--sentinel-ca").arg(&p.ca);
        }
        cmd
    })
    .await;
}

/// How the master is replaced under a client's writes.
#[derive(Clone, Copy, PartialEq)]
enum Failover {
    Kill9,
    /// `SENTINEL FAILOVER mymaster COORDINATED` (Valkey 9): nothing acknowledged may be lost.
    Coordinated,
}

/// Runs a client's write loop (a script printing `ready`, then one JSON summary line as
/// redis_py_sentinel.py does) against a cluster watching a master and two replicas, replaces
/// the master two seconds into it, and checks the client survived the failover.
async fn client_through_failover(
    who: &str,
    (tls, how): (bool, Failover),
    command: impl FnOnce(&[String], Option<&Pki>) -> tokio::process::Command,
) {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = tls.then(|| Pki::create(pki_dir.path()));
    let (mut c, addrs) = failover_cluster(pki.as_ref());
    let _logs = c.logs_on_panic(40);
    c.start_all();
    monitored(&c, &m, 2).await;
    let old = format!("127.0.0.1:{}", m.port);

    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = command(&addrs, pki.as_ref())
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let client_err = || std::fs::read_to_string(stderr.path()).unwrap_or_default();
    let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{who}: no acknowledged write within 15 s\n{}", client_err()))
        .unwrap();
    assert_eq!(first.as_deref(), Some("ready"), "{who}: {}", client_err());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    match how {
        Failover::Kill9 => m.kill9(),
        Failover::Coordinated => {
            let reply = redis_cli(&addrs[0], &["SENTINEL", "FAILOVER", SERVICE, "COORDINATED"]);
            assert_eq!(reply.trim(), "OK", "SENTINEL FAILOVER … COORDINATED");
        }
    }
    let new_addr = new_master(&c, &m, &[&r1, &r2]).await;
    eprintln!(
        "new master {new_addr} in the log {:?} after the {}",
        started.elapsed(),
        if how == Failover::Kill9 {
            "kill -9"
        } else {
            "COORDINATED failover"
        }
    );

    let summary = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{who} outlived its duration by 16 s\n{}", client_err()))
        .unwrap()
        .unwrap_or_else(|| panic!("{who} printed no summary\n{}", client_err()));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{who}: {status}\n{}", client_err());
    eprintln!("{who} summary: {summary}");
    let s = parse_py_summary(&summary);
    let new = if new_addr.ends_with(&format!(":{}", r1.port)) {
        &r1
    } else {
        &r2
    };
    check_survived(who, &s, &old, new, &new_addr);
    if how == Failover::Coordinated {
        let keys = u64::try_from(new.dbsize().unwrap()).unwrap_or(0);
        assert!(
            keys >= s.ok,
            "{who}: {} writes acknowledged, the new master holds {keys}: a lossless failover \
             lost acknowledged writes",
            s.ok
        );
    }
}

// ------------------------------------------------------------------------------------------
// ioredis and node-redis v5, with the modules scripts/test.sh installs

/// `node` and the modules directory (`RAFTINEL_NODE_MODULES`). Fails, with what to do, if
/// either is missing.
fn node() -> (PathBuf, PathBuf) {
    let modules = std::env::var_os("RAFTINEL_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(common::bin())
                .parent()
                .and_then(|d| d.parent())
                .map(|t| t.join("node-clients/node_modules"))
                .unwrap_or_default()
        });
    for m in ["ioredis", "redis"] {
        assert!(
            modules.join(m).join("package.json").exists(),
            "{m} is not installed in {}: run scripts/test.sh, which installs ioredis 5 and \
             redis 5 there and sets RAFTINEL_NODE_MODULES",
            modules.display()
        );
    }
    (PathBuf::from("node"), modules)
}

async fn node_client_through_failover(client: &str) {
    let (node, modules) = node();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_sentinel.cjs");
    client_through_failover(client, (false, Failover::Kill9), |addrs, _| {
        let mut cmd = tokio::process::Command::new(&node);
        cmd.arg(&script)
            .args(["write", "--client", client, "--service", SERVICE])
            .args(["--duration", "14", "--sentinels"])
            .arg(addrs.join(","))
            .env("RAFTINEL_NODE_MODULES", &modules);
        cmd
    })
    .await;
}

// --- valkey-py's Sentinel client writes on through `SENTINEL FAILOVER mymaster COORDINATED`
//     (Valkey 9's lossless failover, raftinel's switchover): every acknowledged write is on the
//     new master
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_py_rides_a_coordinated_failover_losing_no_write() {
    let python = python();
    let out = Command::new(&python)
        .args(["-c", "import valkey; print(valkey.__version__)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} has no valkey-py: run scripts/test.sh",
        python.display()
    );
    client_through_failover("valkey-py", (false, Failover::Coordinated), |addrs, _| {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(py_script())
            .args(["write", "--lib", "valkey", "--service", SERVICE])
            .args(["--duration", "14", "--sentinels"])
            .arg(addrs.join(","));
        cmd
    })
    .await;
}

// --- ioredis's Sentinel client writes on through a kill -9 failover (issue 14: it reconnects on
//     +switch-master and ±sdown / odown from every node)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_sentinel_survives_failover() {
    node_client_through_failover("ioredis").await;
}

// --- node-redis v5's Sentinel client (SENTINEL MASTER / REPLICAS / SENTINELS and its pub/sub
//     subscription to +switch-master, +sentinel, ±sdown, ±odown) writes on through a kill -9
//     failover
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_redis_sentinel_survives_failover() {
    node_client_through_failover("node-redis").await;
}

// --- a node cut off from its peers closes its Sentinel port; with it FIRST in their lists, the
//     redis crate and redis-py still find the master at once through the others; healed, the
//     port reopens
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_skip_a_cut_off_sentinel() {
    python(); // fails now, not after the set-up, if the venv is missing
    let _g = serial();
    let m = Redis::start(&[]);
    let _r = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(3, TIMINGS);
    let _logs = c.logs_on_panic(40);
    // Every node as its own user: whichever turns out a follower can be singled out.
    for id in 1..=3 {
        c.start_as(id, uid(id));
    }
    monitored(&c, &m, 1).await;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let cut = (1..=3).find(|id| *id != leader).unwrap();
    let rest: Vec<u64> = (1..=3).filter(|id| *id != cut).collect();
    let cut_addr = c.nodes[&cut].sentinel.clone();
    let expected = format!("127.0.0.1:{}", m.port);

    let fw = cut_off(&c, cut);
    let closed_after = wait_sentinel_refused(&cut_addr, Duration::from_secs(5)).await;
    eprintln!(
        "node {cut} (leader {leader}) cut off: its Sentinel port refused after {closed_after:?}"
    );
    for id in &rest {
        assert!(
            sentinel_answers(&c.nodes[id].sentinel).await,
            "node {id}, still in the majority, must keep its port open"
        );
    }
    // The cut-off node first in every client's list.
    let list = sentinels(&c, &[cut, rest[0], rest[1]]);

    let start = Instant::now();
    let found = tokio::time::timeout(
        Duration::from_secs(10),
        sentinel_client(&list).async_get_client(),
    )
    .await
    .expect("redis crate (async): no answer within 10 s")
    .unwrap();
    let rs_async = start.elapsed();
    assert_eq!(found.get_connection_info().addr().to_string(), expected);

    let sync_list = list.clone();
    let (found, rs_sync) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let found = sentinel_client(&sync_list).get_client().unwrap();
        (
            found.get_connection_info().addr().to_string(),
            start.elapsed(),
        )
    })
    .await
    .unwrap();
    assert_eq!(found, expected);

    let py = tokio::task::spawn_blocking(move || py_discover(&list))
        .await
        .unwrap();
    assert_eq!(py.masters, vec![expected.clone(); 3], "redis-py");
    eprintln!(
        "discovery with the cut-off node first: redis crate async {rs_async:?}, sync {rs_sync:?}; \
         redis-py discover_master {:?} with its default retries (client-side backoff on the \
         refused port), {:?} again, {:?} without retries",
        py.default, py.again, py.no_retry
    );
    for (who, took) in [
        ("redis crate async", rs_async),
        ("redis crate sync", rs_sync),
        ("redis-py, again", py.again),
        ("redis-py without retries", py.no_retry),
    ] {
        assert!(took < Duration::from_secs(5), "{who}: {took:?}");
    }
    // redis-py's default policy retries a refused connection 10 times, backing off up to
    // 1 s each (~4 s on average, 5.3 s at most): bounded by the client, not by the server.
    assert!(
        py.default < Duration::from_secs(10),
        "redis-py default: {:?}",
        py.default
    );

    drop(fw);
    let reopened = wait_sentinel_open(&cut_addr, Duration::from_secs(15)).await;
    eprintln!("healed: node {cut}'s Sentinel port answers again after {reopened:?}");
}
