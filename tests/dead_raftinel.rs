//! A dead or stuck raftinel fences (issue 11 §7), with real nodes and real Redis: `raftinel fence`
//! run as systemd's `ExecStopPost` would, after a kill -9 left the master writable; the systemd
//! notify protocol (READY, WATCHDOG pings that stop while the process is frozen, STOPPING); and
//! the watchdog device (here a regular file) armed while the node holds its master's lease and
//! disarmed with the magic 'V' when the lease moves away or the node stops cleanly; a device that
//! cannot be opened refuses the start; and the freeze path end to end, the test playing systemd
//! (missed pings → kill → `raftinel fence`). No systemd runs here: the unit itself is untested.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::Proc;
use common::redis::Redis;
use common::{bin, eventually, free_port, serial, Cluster};
use raftinel::pb::{self, Consistency};

const TIMINGS: &str = "default-down-after-ms = 1000\n";
const FENCED: &str = "2147483647";
const PASS: &str = "s3cret";

async fn master_of(c: &Cluster, id: u64) -> Option<pb::Master> {
    c.get(id, "mymaster", Consistency::Local).await.ok()
}

/// Three nodes, node i co-located with `redis[i-1]`.
fn colocated(redis: &[&Redis]) -> Cluster {
    let mut c = Cluster::new(3, TIMINGS);
    for (i, r) in redis.iter().enumerate() {
        let n = c.nodes.get_mut(&(i as u64 + 1)).unwrap();
        n.args = vec!["--local-redis".into(), format!("127.0.0.1:{}", r.port)];
    }
    c
}

/// Monitors the master (with `auth` as its auth-pass) and waits for node `holder` to hold its
/// lease with both replicas known.
async fn monitored_with_lease(c: &mut Cluster, master: &Redis, holder: u64, auth: Option<&str>) {
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(master.port)).await;
    if let Some(pass) = auth {
        let out = c.ctl_settled(&["set", "mymaster", "auth-pass", pass]);
        assert!(out.status.success(), "{out:?}");
    }
    eventually(
        "the master's node holds its lease",
        Duration::from_secs(15),
        || async {
            master_of(c, 1).await.filter(|m| {
                m.lease_holder == holder && m.fencing == "lease" && m.replicas.len() == 2
            })
        },
    )
    .await;
    eventually("master writable", Duration::from_secs(5), || async {
        master.write_ok("k").then_some(())
    })
    .await;
}

/// `raftinel fence` with node `id`'s config and flags, as the unit's `ExecStopPost` runs it.
fn fence(c: &Cluster, id: u64) -> std::process::Output {
    let n = &c.nodes[&id];
    Command::new(bin())
        .arg("fence")
        .arg("--config")
        .arg(&n.config)
        .args(&n.args)
        .output()
        .unwrap()
}

fn password_redis(extra: &[&str]) -> Redis {
    Redis::start_with_pass(PASS, extra)
}

fn password_replica(master: &Redis) -> Redis {
    let port = master.port.to_string();
    Redis::start_with_pass(
        PASS,
        &["--replicaof", "127.0.0.1", &port, "--masterauth", PASS],
    )
}

// --- kill -9 of the holder's raftinel: its master stays writable (no lease behind it) until
//     `raftinel fence` runs with the node's config; then writes fail with NOREPLICAS. The
//     credentials come from the dead node's log; a local address with nothing listening is down
//     and counts as safe; a node that is still running keeps its store locked, so the command
//     works without credentials and says so, and fails loudly on a Redis that needs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_after_kill_9_makes_the_orphaned_master_refuse_writes() {
    let _g = serial();
    let m = password_redis(&["--min-replicas-to-write", "0"]);
    let r1 = password_replica(&m);
    let r2 = password_replica(&m);
    let dead_port = free_port();
    let mut c = colocated(&[&m, &r1, &r2]);
    c.nodes.get_mut(&1).unwrap().args[1] = format!("127.0.0.1:{},127.0.0.1:{dead_port}", m.port);
    let _logs = c.logs_on_panic(40);
    monitored_with_lease(&mut c, &m, 1, Some(PASS)).await;

    c.kill(1);
    // Longer than L + m: the lease is long dead, and nothing has fenced the master.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        m.write_ok("orphaned"),
        "the master was writable before the fence"
    );
    assert_eq!(m.min_replicas().as_deref(), Some("0"));
    let mut client = m.client().unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("held")
        .arg("v")
        .query(&mut client)
        .unwrap();

    let started = Instant::now();
    let out = fence(&c, 1);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("raftinel fence took {took:?}:\n{stdout}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!(
            "127.0.0.1:{}: fenced: writes refused, clients disconnected (it was a writable master)",
            m.port
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "127.0.0.1:{dead_port}: down (connection refused): nothing there takes writes"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("cannot be read"), "{stdout}");
    assert_eq!(m.min_replicas().as_deref(), Some(FENCED));
    match m.query(&["SET", "after", "v"]) {
        Err(e) => {
            assert_eq!(e.code(), Some("NOREPLICAS"), "{e}");
            assert_eq!(
                e.detail(),
                Some("Not enough good replicas to write."),
                "{e}"
            );
        }
        Ok(v) => panic!("a fenced master took a write: {v:?}"),
    }
    // Its clients were disconnected, so they look the master up again.
    let r: redis::RedisResult<String> = redis::cmd("PING").query(&mut client);
    match r {
        Err(e) => assert!(e.is_connection_dropped() || e.is_io_error(), "{e}"),
        Ok(v) => panic!("a client of the fenced master is still connected: {v}"),
    }

    // Node 2 runs: its store is locked, so no credentials, and its password-protected replica
    // cannot be fenced: exit 1, saying which and why.
    let out = fence(&c, 2);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("cannot be read"), "{stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{}: NOT fenced:", r1.port)),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of 1 local Redis not fenced and not down"),
        "{stderr}"
    );

    // The restarted node takes its lease back and lifts the fence: what a restart costs writes.
    let restarted = Instant::now();
    c.start(1);
    eventually("writable again", Duration::from_secs(20), || async {
        m.write_ok("back").then_some(())
    })
    .await;
    eprintln!(
        "master writable again {:?} after its node restarted",
        restarted.elapsed()
    );
}

/// Datagrams received until `until` or until `stop` says so, with their arrival times.
fn receive(
    rx: &UnixDatagram,
    until: Instant,
    stop: impl Fn(&str) -> bool,
) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        if let Ok(len) = rx.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
            let done = stop(&msg);
            got.push((Instant::now(), msg));
            if done {
                break;
            }
        }
    }
    got
}

/// Node 1 started as systemd would with `WatchdogSec=watchdog`: the socket it notifies (reads
/// time out after `poll`) and the process.
fn serve_as_systemd(c: &Cluster, watchdog: Duration, poll: Duration) -> (UnixDatagram, Proc) {
    let socket = c.tmp.path().join("notify.sock");
    let rx = UnixDatagram::bind(&socket).unwrap();
    rx.set_read_timeout(Some(poll)).unwrap();
    let mut cmd = c.serve_command(1, "info,openraft=warn");
    cmd.env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string());
    (rx, Proc::spawn("raftinel serve", &mut cmd))
}

fn pings(msgs: &[(Instant, String)]) -> usize {
    msgs.iter().filter(|(_, m)| m == "WATCHDOG=1").count()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signals the test's own child, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

// --- NOTIFY_SOCKET: READY=1 once serving, WATCHDOG=1 every quarter of WATCHDOG_USEC from the
//     guard loop, none while the process is stopped, again after SIGCONT, STOPPING=1 on SIGTERM
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_pings_and_stopping() {
    let _g = serial();
    let c = Cluster::new(1, TIMINGS);
    let _logs = c.logs_on_panic(30);
    let (rx, mut node) =
        serve_as_systemd(&c, Duration::from_millis(400), Duration::from_millis(50));
    let pid = node.pid().unwrap();

    let start = receive(&rx, Instant::now() + Duration::from_secs(15), |m| {
        m.starts_with("READY=1")
    });
    assert!(
        start.iter().any(|(_, m)| m.starts_with("READY=1")),
        "no READY=1 within 15 s: {start:?}"
    );
    let running = receive(&rx, Instant::now() + Duration::from_secs(2), |_| false);
    let n = pings(&running);
    eprintln!("{n} WATCHDOG=1 in 2 s (WATCHDOG_USEC 400 ms: one per 100 ms or more)");
    assert!(n >= 8, "too few pings: {running:?}");

    signal(pid, libc::SIGSTOP);
    // What was in flight when it stopped, then silence.
    receive(&rx, Instant::now() + Duration::from_millis(300), |_| false);
    let stopped = receive(&rx, Instant::now() + Duration::from_millis(1500), |_| false);
    signal(pid, libc::SIGCONT);
    assert_eq!(
        pings(&stopped),
        0,
        "pings from a stopped process: {stopped:?}"
    );
    let resumed = receive(&rx, Instant::now() + Duration::from_secs(3), |m| {
        m == "WATCHDOG=1"
    });
    assert_eq!(pings(&resumed), 1, "no ping after SIGCONT: {resumed:?}");

    signal(pid, libc::SIGTERM);
    let stopping = receive(&rx, Instant::now() + Duration::from_secs(10), |m| {
        m == "STOPPING=1"
    });
    assert!(
        stopping.iter().any(|(_, m)| m == "STOPPING=1"),
        "no STOPPING=1 after SIGTERM: {stopping:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = node.exited() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Node `id`'s config with `watchdog-device = path` (top-level keys come before the tables).
fn with_watchdog(c: &Cluster, id: u64, path: &Path) {
    let config = &c.nodes[&id].config;
    let text = read(config);
    let line = format!(
        "watchdog-device = \"{}\"\nwatchdog-timeout-s = 3\n",
        path.display()
    );
    std::fs::write(config, format!("{line}{text}")).unwrap();
    std::fs::write(path, "").unwrap();
}

/// Keepalives keep arriving at `path` and it is not disarmed.
async fn armed(path: &Path) {
    let before = read(path).len();
    eventually("keepalives", Duration::from_secs(5), || async {
        let now = read(path);
        (now.len() >= before + 3 && !now.ends_with('V')).then_some(())
    })
    .await;
}

/// `path` ends with the magic close and nothing follows for a while.
async fn disarmed(path: &Path, what: &str) {
    let text = eventually(what, Duration::from_secs(10), || async {
        let t = read(path);
        t.ends_with('V').then_some(t)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read(path), text, "{what}: written to after the magic close");
}

// --- the watchdog device (a regular file here): "1V" at startup (opened, checked, disarmed);
//     keepalives while the node holds its master's lease; 'V' once a failover moved the lease
//     away; the new holder's device armed, then disarmed by its clean shutdown; a node holding
//     nothing never arms it
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_device_is_armed_only_while_the_lease_is_held() {
    let _g = serial();
    let m = Redis::start(&["--min-replicas-to-write", "0"]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = colocated(&[&m, &r1, &r2]);
    let _logs = c.logs_on_panic(40);
    let files: Vec<PathBuf> = (1..=3)
        .map(|id| c.tmp.path().join(format!("watchdog{id}")))
        .collect();
    for (id, f) in (1..=3).zip(&files) {
        with_watchdog(&c, id, f);
    }
    monitored_with_lease(&mut c, &m, 1, None).await;
    assert!(read(&files[0]).starts_with("1V1"), "{}", read(&files[0]));
    armed(&files[0]).await;
    for f in &files[1..] {
        assert_eq!(read(f), "1V", "a node without a lease armed its device");
    }

    let out = c.ctl_settled(&["failover", "mymaster"]);
    assert!(out.status.success(), "{out:?}");
    let new = eventually(
        "the new master's lease",
        Duration::from_secs(15),
        || async {
            master_of(&c, 1).await.filter(|x| {
                x.port != u32::from(m.port) && x.fencing == "lease" && x.lease_holder > 1
            })
        },
    )
    .await;
    disarmed(&files[0], "the old holder disarms").await;
    let holder = new.lease_holder;
    let file = &files[usize::try_from(holder).unwrap() - 1];
    armed(file).await;

    let status = c.stop(holder);
    assert!(status.success(), "{status:?}");
    disarmed(file, "a clean shutdown disarms").await;
}

// --- a configured watchdog device that cannot be opened: the node refuses to start (exit 2,
//     naming the key), since it could not keep its promise to reboot a frozen holder
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_watchdog_device_refuses_to_start() {
    let _g = serial();
    let c = Cluster::new(1, TIMINGS);
    let missing = c.tmp.path().join("no-such-watchdog");
    let config = &c.nodes[&1].config;
    let text = read(config);
    std::fs::write(
        config,
        format!("watchdog-device = \"{}\"\n{text}", missing.display()),
    )
    .unwrap();
    let mut node = Proc::spawn("raftinel serve", &mut c.serve_command(1, "info"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = node.exited() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running with no watchdog device"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    let log = c.log_of(1);
    assert!(
        log.contains("raftinel: config error: `watchdog-device`: ")
            && log.contains(&format!("{}: open:", missing.display())),
        "{log}"
    );
}

/// Plays systemd's part for `WatchdogSec = within`: returns when no `WATCHDOG=1` came for that
/// long (the time of the last one), or `None` if pings kept coming until `until`.
fn watchdog_expired(rx: &UnixDatagram, within: Duration, until: Instant) -> Option<Instant> {
    let mut last = Instant::now();
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        if let Ok(len) = rx.recv(&mut buf) {
            if &buf[..len] == b"WATCHDOG=1" {
                last = Instant::now();
            }
        }
        if last.elapsed() > within {
            return Some(last);
        }
    }
    None
}

// --- the freeze path end to end, with the test as systemd: the holder's raftinel (its master
//     writable) pings steadily, then is stopped (SIGSTOP); the pings stop, "systemd" kills it once
//     WatchdogSec passed and runs `raftinel fence` (ExecStopPost): the master refuses writes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_misses_its_pings_and_is_fenced_as_systemd_would() {
    const WATCHDOG: Duration = Duration::from_secs(1);
    let _g = serial();
    let m = Redis::start(&["--min-replicas-to-write", "0"]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let mut c = colocated(&[&m, &r1, &r2]);
    let _logs = c.logs_on_panic(40);
    let (rx, mut node1) = serve_as_systemd(&c, WATCHDOG, Duration::from_millis(20));
    c.start(2);
    c.start(3);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    eventually(
        "node 1 holds the lease",
        Duration::from_secs(15),
        || async {
            master_of(&c, 2)
                .await
                .filter(|x| x.lease_holder == 1 && x.fencing == "lease")
        },
    )
    .await;
    eventually("master writable", Duration::from_secs(5), || async {
        m.write_ok("k").then_some(())
    })
    .await;
    // A healthy holder never lets the watchdog expire.
    let steady = watchdog_expired(&rx, WATCHDOG, Instant::now() + Duration::from_secs(3));
    assert!(steady.is_none(), "a healthy node missed its watchdog");

    let pid = node1.pid().unwrap();
    let frozen = Instant::now();
    signal(pid, libc::SIGSTOP);
    let expired = watchdog_expired(&rx, WATCHDOG, Instant::now() + Duration::from_secs(10));
    assert!(expired.is_some(), "pings went on from a stopped process");
    let noticed = frozen.elapsed();
    assert!(
        m.write_ok("frozen"),
        "writable while its raftinel is frozen"
    );
    node1.sigkill();
    node1.reap();
    let out = fence(&c, 1);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !m.write_ok("after"),
        "the master took a write after the fence"
    );
    assert_eq!(m.min_replicas().as_deref(), Some(FENCED));
    eprintln!(
        "frozen → watchdog expired after {noticed:?} (WatchdogSec {WATCHDOG:?}) → killed and fenced after {:?}",
        frozen.elapsed()
    );
}
