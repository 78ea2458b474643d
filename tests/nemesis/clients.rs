//! The nemesis's observers, each a thread on the lab's client host: two writers (one finds the
//! master through the Sentinel ports as a Sentinel client does, one writes to the VIP) that append
//! unique increasing values and record every acknowledgement with the instance that gave it; a
//! sampler of every node's config epoch; and a reader of the log's events (`ctl watch`) for the
//! promotions. Every loop is bounded by the run's length.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::common::bin;
use super::common::lab::{enter, prefix};
use super::common::lab_hosts::{addr, VIP};
use super::history::{Ack, EpochSample, Path, Promotion};

/// Pause between two writes of one writer.
const WRITE_EVERY: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const IO_TIMEOUT: Duration = Duration::from_millis(300);

/// Microseconds since `t0`.
pub fn us(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// The lab host with address `ip`.
pub fn host_of(ip: &str) -> Option<String> {
    ["n1", "n2", "n3", "n4"]
        .into_iter()
        .find(|h| addr(h) == ip)
        .map(str::to_owned)
}

fn connect(ip: &str, port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{ip}:{port}/"))?;
    let c = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
}

/// What one writer saw.
#[derive(Default)]
pub struct Written {
    pub acks: Vec<Ack>,
    pub failed: u64,
}

/// A connection to one Redis and the host it is on.
struct Target {
    conn: redis::Connection,
    host: String,
}

/// Through the VIP: the host is whichever one answers; `CONFIG GET dir` names it (the lab's
/// Redis on host H runs in `.../redis-H`).
fn vip_target() -> Option<Target> {
    let mut conn = connect(VIP, 6379).ok()?;
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut conn)
        .ok()?;
    let host = dir.get(1)?.rsplit("redis-").next()?.to_owned();
    Some(Target { conn, host })
}

/// As a Sentinel client: ask the nodes' Sentinel ports in turn for the master, then check with
/// ROLE that it is one.
fn sentinel_target(turn: &mut usize) -> Option<Target> {
    for _ in 0..3 {
        *turn = (*turn + 1) % 3;
        let node = addr(["n1", "n2", "n3"][*turn]);
        let Ok(mut s) = connect(node, 26379) else {
            continue;
        };
        let reply: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut s);
        let Ok(Some((ip, port))) = reply else {
            continue;
        };
        let Some(host) = host_of(&ip) else { continue };
        let Ok(mut conn) = connect(&ip, port) else {
            continue;
        };
        let role: redis::RedisResult<redis::Value> = redis::cmd("ROLE").query(&mut conn);
        match role {
            Ok(redis::Value::Array(v)) if matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master") =>
            {
                return Some(Target { conn, host });
            }
            _ => continue,
        }
    }
    None
}

/// Appends 1, 2, 3, … to `path`'s list every 10 ms until `stop` (or `limit`).
pub fn writer(
    t0: Instant,
    path: Path,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> JoinHandle<Written> {
    std::thread::spawn(move || {
        enter("client");
        let mut out = Written::default();
        let mut target: Option<Target> = None;
        let mut turn = 0;
        let rounds = limit.as_millis() as u64 / WRITE_EVERY.as_millis() as u64 + 1;
        for value in 1..=rounds {
            if stop.load(Ordering::Relaxed) || t0.elapsed() > limit {
                break;
            }
            if target.is_none() {
                target = match path {
                    Path::Vip => vip_target(),
                    Path::Sentinel => sentinel_target(&mut turn),
                };
            }
            let Some(t) = target.as_mut() else {
                out.failed += 1;
                std::thread::sleep(WRITE_EVERY);
                continue;
            };
            let sent_us = us(t0);
            let reply: redis::RedisResult<i64> = redis::cmd("RPUSH")
                .arg(path.key())
                .arg(value)
                .query(&mut t.conn);
            match reply {
                Ok(_) => out.acks.push(Ack {
                    path,
                    value,
                    host: t.host.clone(),
                    sent_us,
                    acked_us: us(t0),
                }),
                Err(_) => {
                    out.failed += 1;
                    // Reconnect (and, for the Sentinel client, ask again) after any error, as
                    // clients do after READONLY / NOREPLICAS / a reset.
                    target = None;
                }
            }
            std::thread::sleep(WRITE_EVERY);
        }
        out
    })
}

/// Which node id runs on each host now (the harness updates it as nodes are replaced).
pub type Ids = Arc<Mutex<BTreeMap<String, u64>>>;

/// Every 100 ms, each node's config epoch for `mymaster` from its Sentinel port.
pub fn epoch_sampler(
    t0: Instant,
    ids: Ids,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> JoinHandle<Vec<EpochSample>> {
    std::thread::spawn(move || {
        enter("client");
        let mut out = Vec::new();
        let mut conns: BTreeMap<String, redis::Connection> = BTreeMap::new();
        for _ in 0..limit.as_millis() / 100 + 1 {
            if stop.load(Ordering::Relaxed) || t0.elapsed() > limit {
                break;
            }
            let hosts: Vec<(String, u64)> = ids
                .lock()
                .unwrap()
                .iter()
                .map(|(h, id)| (h.clone(), *id))
                .collect();
            for (host, node) in hosts {
                if !conns.contains_key(&host) {
                    match connect(addr(&host), 26379) {
                        Ok(c) => {
                            conns.insert(host.clone(), c);
                        }
                        Err(_) => continue,
                    }
                }
                let Some(c) = conns.get_mut(&host) else {
                    continue;
                };
                let reply: redis::RedisResult<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg("mymaster")
                    .query(c);
                let Ok(fields) = reply else {
                    conns.remove(&host);
                    continue;
                };
                let epoch = fields
                    .chunks(2)
                    .find(|kv| kv[0] == "config-epoch")
                    .and_then(|kv| kv.get(1)?.parse().ok());
                if let Some(epoch) = epoch {
                    out.push(EpochSample {
                        at_us: us(t0),
                        node,
                        epoch,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        out
    })
}

/// `ctl --json watch` from the client host, one per node (a stream to a host whose link went
/// down hangs silently, so each is restarted every 10 s after the index last seen): every
/// `+switch-master` becomes a promotion, stamped when it first arrived.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<u64, Promotion>>>,
    threads: Vec<JoinHandle<()>>,
}

/// How long one `ctl watch` runs before it is restarted.
const WATCH_FOR: Duration = Duration::from_secs(10);
/// The shortest a watch round may take, so the rounds last the whole run.
const WATCH_ROUND_MIN: Duration = Duration::from_secs(1);

impl Watcher {
    /// `ctl_tls`: ctl's certificate flags.
    pub fn start(t0: Instant, ctl_tls: Vec<String>, nodes: &[&str], limit: Duration) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let next = Arc::new(AtomicU64::new(1));
        let threads = nodes
            .iter()
            .map(|node| {
                let mut args = vec!["--cluster".to_owned(), format!("{node}:26380")];
                args.extend(ctl_tls.iter().cloned());
                let (stop, seen, next) = (stop.clone(), seen.clone(), next.clone());
                std::thread::spawn(move || {
                    // At most one round a second: a watch that fails at once (node down, no
                    // leader) used to spend a budget counted in 10 s rounds within minutes,
                    // and the promotions of the rest of a long run went unseen.
                    let rounds = limit.as_secs() + 2;
                    for _ in 0..rounds {
                        if stop.load(Ordering::Relaxed) || t0.elapsed() > limit {
                            break;
                        }
                        let round = Instant::now();
                        watch_once(t0, &args, &stop, &seen, &next);
                        let rest = WATCH_ROUND_MIN.saturating_sub(round.elapsed());
                        std::thread::sleep(rest.max(Duration::from_millis(100)));
                    }
                })
            })
            .collect();
        Watcher {
            stop,
            seen,
            threads,
        }
    }

    pub fn finish(mut self) -> Vec<Promotion> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let seen = self.seen.lock().unwrap();
        seen.values().cloned().collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One `ctl watch` for at most WATCH_FOR.
fn watch_once(
    t0: Instant,
    args: &[String],
    stop: &AtomicBool,
    seen: &Arc<Mutex<BTreeMap<u64, Promotion>>>,
    next: &Arc<AtomicU64>,
) {
    let spawned = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}client", prefix()),
            bin(),
            "ctl",
        ])
        .args(args)
        .args([
            "--json",
            "watch",
            "--from",
            &next.load(Ordering::Relaxed).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn();
    let Ok(mut child) = spawned else { return };
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let (seen, next) = (seen.clone(), next.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let index = e["index"].as_u64().unwrap_or(0);
            next.fetch_max(index + 1, Ordering::Relaxed);
            if e["kind"] != "+switch-master" {
                continue;
            }
            // "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"
            let payload = e["payload"].as_str().unwrap_or_default();
            let Some(to) = payload.split(' ').nth(3).and_then(host_of) else {
                continue;
            };
            let p = Promotion {
                at_us: us(t0),
                index,
                epoch: e["epoch"].as_u64().unwrap_or(0),
                to,
            };
            seen.lock().unwrap().entry(index).or_insert_with(|| {
                eprintln!(
                    "nemesis {:>8.3} s  log index {index}: +switch-master {payload} (epoch {})",
                    p.at_us as f64 / 1e6,
                    p.epoch
                );
                p
            });
        }
    });
    let started = Instant::now();
    while started.elapsed() < WATCH_FOR && !stop.load(Ordering::Relaxed) && !reader.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}
