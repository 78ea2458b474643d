//! The monitor against real redis-server processes on free ports: roles, run ids and discovery,
//! SDOWN timing after kill -9, no SDOWN for a short SIGSTOP or at boot, priority 0, AUTH, and
//! topology changes. Every wait polls the report against a deadline.

use std::net::TcpListener;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use raftinel::monitor::info::{self, InfoReply};
use raftinel::monitor::{Monitor, NodeReport, Observation, ReportedRole};
use raftinel::raft::SmData;
use raftinel::topology::{Addr, ApplyContext, Command, TopologyState};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

const NAME: &str = "mymaster";
const DOWN_AFTER_MS: u64 = 300;

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A redis-server child process, killed (SIGKILL) when dropped, even on panic.
struct Redis {
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Process::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        Redis {
            port,
            child: Some(child),
            _dir: dir,
        }
    }

    fn addr(&self) -> Addr {
        Addr::new("127.0.0.1", self.port)
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) until the server accepts connections.
    async fn ready(self) -> Redis {
        for _ in 0..500 {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", self.port));
            if connect.await.is_ok() {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis on {} never came up", self.port);
    }

    /// `INFO server replication` straight from the instance, parsed.
    async fn info(&self, pass: Option<&str>) -> InfoReply {
        let auth = pass.map(|p| format!(":{p}@")).unwrap_or_default();
        let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port));
        let fetch = async {
            let mut conn = client?.get_multiplexed_async_connection().await?;
            let mut cmd = redis::cmd("INFO");
            cmd.arg(&["server", "replication"][..])
                .query_async::<String>(&mut conn)
                .await
        };
        match timeout(Duration::from_secs(2), fetch).await {
            Ok(Ok(text)) => info::parse(&text).expect("INFO parses"),
            other => panic!("INFO from {}: {other:?}", self.port),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn topology(cmds: &[Command]) -> Arc<SmData> {
    let mut topology = TopologyState::default();
    for (i, cmd) in cmds.iter().enumerate() {
        let index = i as u64 + 1;
        let voters = std::collections::BTreeSet::from([1, 2, 3]);
        let applied = topology.apply(
            cmd,
            ApplyContext {
                index,
                voters: &voters,
            },
        );
        assert!(applied.result.is_ok(), "{cmd:?}: {:?}", applied.result);
    }
    let data = SmData {
        topology,
        ..SmData::default()
    };
    Arc::new(data)
}

fn monitor_cmd(name: &str, addr: Addr) -> Command {
    Command::Monitor {
        name: name.into(),
        addr,
        quorum: 2,
        down_after_ms: DOWN_AFTER_MS,
    }
}

struct Running {
    reports: watch::Receiver<Arc<NodeReport>>,
    view: watch::Sender<Arc<SmData>>,
    _stop: DropGuard,
}

fn spawn(cmds: &[Command]) -> Running {
    let (view, rx) = watch::channel(topology(cmds));
    let cancel = CancellationToken::new();
    let reports = Monitor::spawn(1, rx, cancel.clone(), Default::default());
    let _stop = cancel.drop_guard();
    Running {
        reports,
        view,
        _stop,
    }
}

fn obs<'a>(r: &'a NodeReport, name: &str, addr: &Addr) -> Option<&'a Observation> {
    r.observation(name, addr)
}

impl Running {
    /// The first report (current or later) satisfying `pred` within `ms`, and when it was seen.
    async fn wait(
        &mut self,
        ms: u64,
        pred: impl Fn(&NodeReport) -> bool,
    ) -> Option<(Arc<NodeReport>, Instant)> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        for _ in 0..100_000 {
            let report = self.reports.borrow_and_update().clone();
            if pred(&report) {
                return Some((report, Instant::now()));
            }
            match timeout_at(deadline, self.reports.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
        None
    }

    /// `wait` that must succeed.
    async fn until(&mut self, ms: u64, pred: impl Fn(&NodeReport) -> bool) -> Arc<NodeReport> {
        let found = self.wait(ms, pred).await;
        found
            .unwrap_or_else(|| panic!("no report matched within {ms} ms"))
            .0
    }

    fn set_view(&self, cmds: &[Command]) {
        self.view.send_replace(topology(cmds));
    }
}

fn is_sdown(name: &'static str, addr: &Addr) -> impl Fn(&NodeReport) -> bool {
    let addr = addr.clone();
    move |r| obs(r, name, &addr).is_some_and(|o| o.sdown)
}

fn has_info(name: &'static str, addr: &Addr) -> impl Fn(&NodeReport) -> bool {
    let addr = addr.clone();
    move |r| obs(r, name, &addr).is_some_and(|o| o.role.is_some() && !o.run_id.is_empty())
}

/// SDOWN must come no earlier than down-after − 50 ms and no later than down-after + 150 ms.
fn assert_sdown_timing(elapsed: Duration) {
    let (lo, hi) = (DOWN_AFTER_MS - 50, DOWN_AFTER_MS + 150);
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    assert!((lo..=hi).contains(&ms), "SDOWN after {ms} ms");
}

fn free_addr() -> Addr {
    Addr::new("127.0.0.1", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_discovered_replica_with_roles_run_ids_and_replid() {
    let master = Redis::start(&[]).ready().await;
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let replica = replica.ready().await;
    let (m, r) = (master.addr(), replica.addr());
    let mut mon = spawn(&[monitor_cmd(NAME, m.clone())]);

    // --- 1. The replica is found through the master's INFO and reports its link up.
    let synced = |rep: &NodeReport| {
        let listed = match obs(rep, NAME, &m).and_then(|o| o.role.as_ref()) {
            Some(ReportedRole::Master { replicas }) => replicas.iter().any(|l| l.addr == r),
            _ => false,
        };
        let up = obs(rep, NAME, &r).and_then(|o| o.role.as_ref());
        listed && matches!(up, Some(ReportedRole::Replica { link_up: true, .. }))
    };
    let rep = mon.until(8000, synced).await;

    // --- 2. Run ids, replid and the replica's fields match what the instances say themselves.
    let (mi, ri) = (master.info(None).await, replica.info(None).await);
    let mo = obs(&rep, NAME, &m).expect("master observed");
    let ro = obs(&rep, NAME, &r).expect("replica observed");
    assert_eq!(rep.masters[NAME][0].addr, m, "the master comes first");
    assert_eq!((&mo.run_id, &ro.run_id), (&mi.run_id, &ri.run_id));
    assert_eq!(mo.run_id.len(), 40);
    assert_eq!(mo.replid, mi.replid);
    assert_eq!(
        ro.replid, mi.replid,
        "a synced replica has its master's replid"
    );
    match &ro.role {
        Some(ReportedRole::Replica {
            master, priority, ..
        }) => assert_eq!((master, *priority), (&m, 100)),
        other => panic!("replica role expected, got {other:?}"),
    }
    assert!(!mo.sdown && !ro.sdown);
    assert!(mo.info_age_ms.is_some_and(|a| a < 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_master_is_sdown_after_down_after() {
    let mut master = Redis::start(&[]).ready().await;
    let m = master.addr();
    let mut mon = spawn(&[monitor_cmd(NAME, m.clone())]);
    mon.until(3000, has_info(NAME, &m)).await;

    let killed = Instant::now();
    master.kill9();
    let (_, seen) = mon.wait(2000, is_sdown(NAME, &m)).await.expect("SDOWN");
    let elapsed = seen.duration_since(killed);
    println!("SDOWN reported {elapsed:?} after kill -9 (down-after {DOWN_AFTER_MS} ms)");
    assert_sdown_timing(elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sigstop_is_not_sdown() {
    let master = Redis::start(&[]).ready().await;
    let m = master.addr();
    let mut mon = spawn(&[monitor_cmd(NAME, m.clone())]);
    mon.until(3000, has_info(NAME, &m)).await;

    // --- 1. Frozen for half of down-after, watching every report meanwhile.
    master.signal(libc::SIGSTOP);
    let during = mon.wait(150, is_sdown(NAME, &m)).await;
    master.signal(libc::SIGCONT);
    assert!(during.is_none(), "SDOWN while stopped for 150 ms");

    // --- 2. Back: no SDOWN through the rest of down-after and beyond, and fresh replies again.
    let after = mon.wait(450, is_sdown(NAME, &m)).await;
    assert!(after.is_none(), "SDOWN after SIGCONT");
    let fresh = |r: &NodeReport| obs(r, NAME, &m).is_some_and(|o| o.reply_age_ms < 100);
    mon.until(1000, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sdown_at_boot_until_down_after() {
    let nobody = free_addr();
    let started = Instant::now();
    let mut mon = spawn(&[monitor_cmd(NAME, nobody.clone())]);
    let first = mon.reports.borrow_and_update().clone();
    let o = obs(&first, NAME, &nobody).expect("in the first report");
    assert!(!o.sdown && o.role.is_none() && o.info_age_ms.is_none());

    let (_, seen) = mon
        .wait(2000, is_sdown(NAME, &nobody))
        .await
        .expect("SDOWN");
    assert_sdown_timing(seen.duration_since(started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_zero_replica_reports_priority_zero() {
    let master = Redis::start(&[]).ready().await;
    let port = master.port.to_string();
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &port, "--replica-priority", "0"]);
    let replica = replica.ready().await;
    let r = replica.addr();
    let mut mon = spawn(&[monitor_cmd(NAME, master.addr())]);
    let rep = mon.until(5000, has_info(NAME, &r)).await;
    match &obs(&rep, NAME, &r).expect("replica").role {
        Some(ReportedRole::Replica { priority, .. }) => assert_eq!(*priority, 0),
        other => panic!("replica role expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_pass_from_the_topology_is_used() {
    // Also on 127.0.0.2: one instance under two names needs two addresses (a second MONITOR of
    // one address is refused).
    let master = Redis::start(&[
        "--requirepass",
        "secret",
        "--bind",
        "127.0.0.1",
        "127.0.0.2",
    ])
    .ready()
    .await;
    let m = master.addr();
    let other = Addr::new("127.0.0.2", master.port);
    let set = |name: &str, pass: &str| Command::Set {
        name: name.into(),
        options: vec![("auth-pass".into(), pass.into())],
    };
    let mut mon = spawn(&[
        monitor_cmd(NAME, m.clone()),
        set(NAME, "secret"),
        monitor_cmd("wrongpass", other.clone()),
        set("wrongpass", "nope"),
    ]);
    let rep = mon.until(3000, has_info(NAME, &m)).await;
    let direct = master.info(Some("secret")).await;
    assert_eq!(obs(&rep, NAME, &m).expect("m").run_id, direct.run_id);

    // The same instance under a wrong password: no valid reply, so SDOWN after down-after.
    let rep = mon.until(2000, is_sdown("wrongpass", &other)).await;
    let right = obs(&rep, NAME, &m).expect("m");
    assert!(!right.sdown, "the right password keeps it up");
    assert!(obs(&rep, "wrongpass", &other).expect("m").run_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_changes_start_and_stop_probes() {
    let (a, b, c) = (free_addr(), free_addr(), free_addr());
    let mut cmds = vec![monitor_cmd(NAME, a.clone())];
    let mut mon = spawn(&cmds);

    // --- 1. A new name is probed at once.
    cmds.push(monitor_cmd("other", c.clone()));
    mon.set_view(&cmds);
    mon.until(300, |r| obs(r, "other", &c).is_some()).await;

    // --- 2. A switch: the new master first, the old one kept as a replica of the name.
    let (name, epoch) = (NAME.to_owned(), 1);
    let reason = "test".to_owned();
    let (candidate, candidate_holder) = (b.clone(), None);
    cmds.push(Command::FailoverStarted {
        name,
        epoch,
        candidate,
        candidate_holder,
        reason,
        at_ms: 1,
    });
    let (name, replid) = (NAME.to_owned(), "x".to_owned());
    cmds.push(Command::MasterSwitched {
        name,
        epoch,
        replid,
        at_ms: 2,
    });
    mon.set_view(&cmds);
    let switched = |r: &NodeReport| {
        let list = r.masters.get(NAME).map(Vec::as_slice).unwrap_or_default();
        list.first().is_some_and(|o| o.addr == b) && list.iter().any(|o| o.addr == a)
    };
    mon.until(300, switched).await;

    // --- 3. A removed name disappears from the report.
    let name = "other".to_owned();
    cmds.push(Command::Remove { name });
    mon.set_view(&cmds);
    let gone = |r: &NodeReport| !r.masters.contains_key("other") && r.masters.contains_key(NAME);
    mon.until(300, gone).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_starved_runtime_reports_tilt_for_down_after() {
    let nobody = free_addr();
    let mut mon = spawn(&[monitor_cmd(NAME, nobody.clone())]);
    // Running for a while (timers armed), not tilted.
    let aged = |r: &NodeReport| obs(r, NAME, &nobody).is_some_and(|o| o.reply_age_ms >= 50);
    let rep = mon.until(500, aged).await;
    assert!(!rep.tilt);
    // Block the only runtime thread: every monitor timer fires late by > down-after / 4.
    std::thread::sleep(Duration::from_millis(200));
    let (rep, tilted) = mon.wait(100, |r| r.tilt).await.expect("TILT");
    assert_eq!(rep.tilt_total, 1);
    assert!(rep.tilt_since.is_some_and(|t| t <= tilted));
    let (rep, over) = mon.wait(1000, |r| !r.tilt).await.expect("TILT ends");
    // Another late timer on a loaded host is a second trigger, rightly counted.
    assert!(rep.tilt_since.is_none() && rep.tilt_total >= 1, "{rep:?}");
    let lasted = over.duration_since(tilted).as_millis();
    // down-after (300 ms) after the late timer; a loaded host may fire another timer late,
    // which rightly starts TILT over, hence the upper slack.
    assert!((250..=900).contains(&lasted), "TILT lasted {lasted} ms");
}
