//! Runs one schedule in the three-host lab: injects and undoes each fault at its time (as the
//! deploy kit would run things: a killed raftinel is followed by `raftinel fence`, systemd's
//! ExecStopPost; a restarted Redis comes back fenced), heals everything at the end, waits for the
//! cluster to converge, and gathers the history: the observers' records, the final master's data
//! and every node's Raft log read from its sled directory after the nodes are stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

use super::clients::{self, us, Ids, Watcher};
use super::common::fault::{Daemon, Fault};
use super::common::lab::in_ns;
use super::common::lab_hosts::{addr, link_up, query, setup, vip_hosts, Setup, VipSampler, HOSTS};
use super::history::{Ending, History, NodeLog, Path, VipSample, Window};
use super::schedule::{Schedule, Step};

/// How long the cluster gets to converge after the last heal.
const CONVERGE_WITHIN: Duration = Duration::from_secs(45);
/// How long one ctl call may block the schedule (ctl itself waits up to 41 s on a frozen node).
const CTL_LIMIT: Duration = Duration::from_secs(6);
/// How long a membership change is retried (it needs a quorum, which a fault may be holding).
const MEMBERSHIP_WITHIN: Duration = Duration::from_secs(8);

/// One applied action, for the report: when, what, and whether it took.
pub struct Applied {
    pub at_us: u64,
    pub what: String,
    pub outcome: Result<(), String>,
}

/// The lab as the nemesis drives it.
struct Harness {
    s: Setup,
    t0: Instant,
    /// The node id running (or meant to run) on each host.
    ids: Ids,
    next_id: u64,
    down: BTreeSet<(String, Daemon)>,
    /// Hosts whose node was removed and wiped, waiting to rejoin.
    replaced: BTreeSet<String>,
    windows: Vec<Window>,
    /// A membership change did not go through (no quorum then): no other starts until the
    /// membership is reconciled with the nodes that run.
    unsettled: bool,
    /// The fourth node, removed from `ids` but still running until its removal goes through.
    lingering: Option<u64>,
    /// Step → its window and fault, while the fault is in.
    open: BTreeMap<usize, (usize, Fault)>,
    applied: Vec<Applied>,
}

/// What a run produced.
pub struct Outcome {
    pub history: History,
    pub applied: Vec<Applied>,
    /// The tail of each node's log, for a failing run.
    pub logs: String,
}

/// Runs `schedule` in a fresh lab and returns what happened.
pub fn run(schedule: &Schedule) -> Outcome {
    let s = setup();
    // docs/leases-and-vip.md's mitigation of the residual gap (a frozen raftinel on a host cut off): the
    // holder puts min-replicas on its unfenced master.
    let set = s.ctl(&[
        "set",
        "mymaster",
        "min-replicas-to-write",
        "1",
        "min-replicas-max-lag",
        "1",
    ]);
    assert!(set, "ctl set min-replicas failed\n{}", s.logs());
    // Persistence on, as Redis's docs require of a master that restarts by itself: a master
    // restarted empty would be unfenced by its node and wipe its replicas (see docs/nemesis.md).
    let mut s = s;
    s.appendonly = true;
    for h in HOSTS {
        let on = query(h, &["CONFIG", "SET", "appendonly", "yes"]).is_some();
        assert!(on, "CONFIG SET appendonly yes on {h} failed");
    }
    let ids: BTreeMap<String, u64> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_string(), i as u64 + 1))
        .collect();
    let h = Harness {
        s,
        t0: Instant::now(),
        ids: Arc::new(Mutex::new(ids)),
        next_id: 10,
        down: BTreeSet::new(),
        replaced: BTreeSet::new(),
        windows: Vec::new(),
        unsettled: false,
        lingering: None,
        open: BTreeMap::new(),
        applied: Vec::new(),
    };
    h.go(schedule)
}

impl Harness {
    fn go(mut self, schedule: &Schedule) -> Outcome {
        let t0 = self.t0;
        // Observers run past the schedule through the heal and the convergence wait.
        let limit = Duration::from_secs(schedule.seconds) + CONVERGE_WITHIN * 3;
        let stop = Arc::new(AtomicBool::new(false));
        let mut vip = VipSampler::start_for(t0, limit);
        let writers =
            [Path::Sentinel, Path::Vip].map(|p| clients::writer(t0, p, stop.clone(), limit));
        let epochs = clients::epoch_sampler(t0, self.ids.clone(), stop.clone(), limit);
        let nodes = HOSTS.map(addr);
        let watcher = Watcher::start(t0, self.s.ctl_tls(), &nodes, limit);

        self.play(schedule);
        let healed_us = self.heal_all();
        let mut ending = self.converge(healed_us);

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut history = History {
            first_master: "n1".to_owned(),
            ..History::default()
        };
        for w in writers {
            let w = w.join().unwrap_or_default();
            history.acks.extend(w.acks);
            history.failed_writes += w.failed;
        }
        if let Some(m) = &ending.master {
            ending.data = final_data(m);
        }
        history.epochs = epochs.join().unwrap_or_default();
        history.promotions = watcher.finish();
        vip.stop();
        history.vip = vip
            .samples
            .lock()
            .unwrap()
            .iter()
            .map(|(t, on)| VipSample {
                at_us: t.as_micros() as u64,
                holders: HOSTS
                    .iter()
                    .zip(on)
                    .filter(|(_, on)| **on)
                    .map(|(h, _)| h.to_string())
                    .collect(),
            })
            .collect();
        let end_us = us(t0);
        for w in &mut self.windows {
            w.to_us = w.to_us.min(end_us);
        }
        history.faults = self.windows.clone();
        history.ending = ending;
        let logs = self.s.logs();
        history.logs = self.stop_and_read_logs();
        self.keep_logs();
        Outcome {
            history,
            applied: self.applied,
            logs,
        }
    }

    /// Injects every step at its time and undoes it `hold_ms` after it went in (a step that had
    /// to wait for a slow one before it keeps its full hold).
    fn play(&mut self, schedule: &Schedule) {
        // (due ms, undo?, step): an undo sorts after an injection due at the same time.
        let mut due: BTreeSet<(u64, bool, usize)> = schedule
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.at_ms, false, i))
            .collect();
        // Bounded: each step is injected once and undone at most once.
        for _ in 0..schedule.steps.len() * 2 {
            let Some((at_ms, undo, i)) = due.pop_first() else {
                break;
            };
            if let Some(wait) = Duration::from_millis(at_ms).checked_sub(self.t0.elapsed()) {
                std::thread::sleep(wait);
            }
            let step = &schedule.steps[i];
            if undo {
                if self.open.contains_key(&i) {
                    let r = self.undo(i, &step.fault);
                    self.record(format!("undo #{i} {}", step.fault), r);
                }
            } else {
                let r = self.inject(i, step);
                self.record(format!("#{i} {}", step.fault), r);
                if self.open.contains_key(&i) {
                    let now = self.t0.elapsed().as_millis() as u64;
                    due.insert((now + step.hold_ms, true, i));
                }
            }
        }
    }

    fn record(&mut self, what: String, outcome: Result<(), String>) {
        eprintln!(
            "nemesis {:>8.3} s  {what}{}",
            self.t0.elapsed().as_secs_f64(),
            match &outcome {
                Ok(()) => String::new(),
                Err(e) => format!("  ({e})"),
            }
        );
        self.applied.push(Applied {
            at_us: us(self.t0),
            what,
            outcome,
        });
    }

    fn id_of(&self, host: &str) -> Option<u64> {
        self.ids.lock().unwrap().get(host).copied()
    }

    fn open_window(&mut self, step: usize, fault: &Fault) {
        let mut hosts: Vec<String> = fault.host().map(str::to_owned).into_iter().collect();
        if let Fault::Partition { peer: Some(p), .. } = fault {
            hosts.push(p.clone());
        }
        let frozen = matches!(
            fault,
            Fault::Pause {
                daemon: Daemon::Raftinel,
                ..
            }
        );
        let cuts_all = !matches!(
            fault,
            Fault::Partition { peer: Some(_), .. } | Fault::AddNode | Fault::Maintenance
        );
        self.windows.push(Window {
            step,
            kind: fault.kind(),
            hosts,
            cuts_all,
            frozen_raftinel: frozen,
            from_us: us(self.t0),
            to_us: u64::MAX,
        });
        self.open
            .insert(step, (self.windows.len() - 1, fault.clone()));
    }

    fn inject(&mut self, i: usize, step: &Step) -> Result<(), String> {
        let f = &step.fault;
        if let Some(h) = f.host() {
            if h != "n4" && self.replaced.contains(h) && !matches!(f, Fault::Replace { .. }) {
                return Err("skipped: the host's node is being replaced".into());
            }
        }
        match f {
            Fault::Kill { host, daemon } => {
                if self.down.contains(&(host.clone(), *daemon)) {
                    return Err("skipped: already down".into());
                }
                self.open_window(i, f);
                self.kill(host, *daemon);
            }
            Fault::Pause { host, daemon } => {
                if self.down.contains(&(host.clone(), *daemon)) {
                    return Err("skipped: not running".into());
                }
                self.open_window(i, f);
                self.s.lab.inject(f);
            }
            Fault::KillHost { host } => {
                self.open_window(i, f);
                self.s.lab.inject(f);
                for d in [Daemon::Raftinel, Daemon::Redis] {
                    self.s.lab.kill(host, d.name());
                    self.down.insert((host.clone(), d));
                }
            }
            Fault::Partition { .. } => {
                self.open_window(i, f);
                self.s.lab.inject(f);
            }
            Fault::AddNode | Fault::Replace { .. } if self.unsettled => {
                let r = self.reconcile(MEMBERSHIP_WITHIN);
                self.record("reconcile the membership".to_owned(), r);
                if self.unsettled {
                    return Err("skipped: the membership is not settled".into());
                }
                return self.inject(i, step);
            }
            Fault::AddNode => {
                if self.id_of("n4").is_some() {
                    return Err("skipped: a fourth node is already in".into());
                }
                self.open_window(i, f);
                let id = self.next_id;
                self.next_id += 1;
                self.down.remove(&("n4".to_owned(), Daemon::Raftinel));
                self.s.start_joiner("n4", id);
                self.ids.lock().unwrap().insert("n4".into(), id);
                self.members(&["add", &id.to_string(), "10.77.0.14:26380"])?;
            }
            Fault::Replace { host } => {
                let Some(old) = self.id_of(host) else {
                    return Err("skipped: no node on the host".into());
                };
                // docs/operations.md's order: remove the node while it runs, then wipe it. A voter wiped
                // before its removal committed can leave the voters without a quorum for good.
                self.members(&["remove", &old.to_string()])?;
                self.open_window(i, f);
                self.retire(host, old);
            }
            Fault::Switchover => return self.ctl(&["switchover", "mymaster"]),
            Fault::Maintenance => {
                self.open_window(i, f);
                self.ctl(&["pause", "mymaster"])?;
            }
        }
        Ok(())
    }

    fn undo(&mut self, i: usize, f: &Fault) -> Result<(), String> {
        if let Some((w, _)) = self.open.remove(&i) {
            self.windows[w].to_us = us(self.t0);
        }
        match f {
            Fault::Kill { host, daemon } => self.restart(host, *daemon),
            Fault::Pause { .. } | Fault::Partition { .. } => {
                self.s.lab.undo(f);
                Ok(())
            }
            Fault::KillHost { host } => {
                self.s.lab.undo(f);
                self.restart(host, Daemon::Redis)?;
                self.restart(host, Daemon::Raftinel)
            }
            Fault::AddNode => {
                let Some(id) = self.id_of("n4") else {
                    return Ok(());
                };
                // Stopped only once removed; otherwise the reconciliation removes it, then stops it.
                let r = self.members(&["remove", &id.to_string()]);
                self.ids.lock().unwrap().remove("n4");
                match r {
                    Ok(()) => self.retire("n4", id),
                    Err(_) => self.lingering = Some(id),
                }
                r
            }
            Fault::Replace { host } => {
                let id = self.rejoin(host);
                self.members(&["add", &id.to_string(), &format!("{}:26380", addr(host))])
            }
            Fault::Switchover => Ok(()),
            Fault::Maintenance => self.ctl_retrying(&["resume", "mymaster"], MEMBERSHIP_WITHIN),
        }
    }

    /// Starts a node with a new id and an empty data dir on `host`, joining; returns the id.
    fn rejoin(&mut self, host: &str) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.s.start_joiner(host, id);
        self.down.remove(&(host.to_owned(), Daemon::Raftinel));
        self.ids.lock().unwrap().insert(host.to_owned(), id);
        self.replaced.remove(host);
        id
    }

    /// Stops node `id` on `host` for good (it was removed) and wipes its data.
    fn retire(&mut self, host: &str, id: u64) {
        if host != "n4" {
            self.replaced.insert(host.to_owned());
        }
        self.kill(host, Daemon::Raftinel);
        self.ids.lock().unwrap().remove(host);
        let _ = std::fs::remove_dir_all(self.s.data_dir(host, id));
    }

    /// kill -9; for raftinel, then `raftinel fence` as systemd's ExecStopPost would.
    fn kill(&mut self, host: &str, daemon: Daemon) {
        self.s.lab.kill(host, daemon.name());
        self.down.insert((host.to_owned(), daemon));
        if daemon == Daemon::Raftinel {
            let cfg = self.s.dir.path().join(format!("{host}.toml"));
            let cfg = cfg.display().to_string();
            let out = self.s.lab.sh(&[
                "run",
                host,
                "timeout",
                "-s",
                "KILL",
                "60",
                super::common::bin(),
                "fence",
                "--config",
                &cfg,
            ]);
            if !out.status.success() {
                eprintln!(
                    "nemesis: raftinel fence on {host}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Starts `daemon` on `host` again if it is down (a Redis fenced, as the deploy kit does).
    fn restart(&mut self, host: &str, daemon: Daemon) -> Result<(), String> {
        if !self.down.remove(&(host.to_owned(), daemon)) {
            return Ok(());
        }
        match daemon {
            Daemon::Redis => self.s.spawn_redis(host, None),
            Daemon::Raftinel if self.replaced.contains(host) => {
                // Its node rejoins when the replacement is undone.
                self.down.insert((host.to_owned(), daemon));
            }
            Daemon::Raftinel => {
                self.s.lab.kill(host, "raftinel");
                self.s.restart_node(host);
            }
        }
        Ok(())
    }

    fn ctl(&self, args: &[&str]) -> Result<(), String> {
        let out = self.s.ctl_within(CTL_LIMIT, args);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        match (out.status.success(), err.is_empty()) {
            (true, _) => Ok(()),
            (false, true) => Err(format!("ctl gave no answer within {CTL_LIMIT:?}")),
            (false, false) => Err(err),
        }
    }

    /// `ctl ARGS`, retried every 300 ms within `within`.
    fn ctl_retrying(&self, args: &[&str], within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        for _ in 0..200 {
            match self.ctl(args) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(last)
    }

    /// `ctl members ARGS`; a failure leaves the membership unsettled.
    fn members(&mut self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["members"];
        full.extend_from_slice(args);
        let r = self.ctl_retrying(&full, MEMBERSHIP_WITHIN);
        if r.is_err() {
            self.unsettled = true;
        }
        r
    }

    /// The voters as a node that answers `ctl status` has applied them.
    fn voters(&self) -> Result<BTreeSet<u64>, String> {
        let out = self.s.ctl_within(CTL_LIMIT, &["--json", "status"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let status: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["voter"] == true)
            .filter_map(|m| m["id"].as_u64())
            .collect())
    }

    /// Makes the voters the nodes the harness keeps, within `within`: adds first, removals only
    /// once every wanted node is a voter.
    fn reconcile(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        for _ in 0..100 {
            // Every node that exists, running or not: a node killed mid-run comes back, and
            // removing it meanwhile would leave a removed node running on its host.
            let want: BTreeMap<u64, String> = self
                .ids
                .lock()
                .unwrap()
                .iter()
                .map(|(h, id)| (*id, h.clone()))
                .collect();
            match self.voters() {
                Ok(have) if have.iter().eq(want.keys()) => {
                    self.unsettled = false;
                    if let Some(id) = self.lingering.take() {
                        self.retire("n4", id);
                    }
                    return Ok(());
                }
                Ok(have) => {
                    let missing = want.keys().any(|id| !have.contains(id));
                    last = format!(
                        "voters {have:?}, want {:?}",
                        want.keys().collect::<Vec<_>>()
                    );
                    for (id, h) in want.iter().filter(|(id, _)| !have.contains(id)) {
                        let a = format!("{}:26380", addr(h));
                        match self.ctl(&["members", "add", &id.to_string(), &a]) {
                            // A removal that committed after ctl gave up: the node rejoins under
                            // a new id, as an operator would do.
                            Err(e) if e.contains("was removed from this cluster") => {
                                self.retire(h, *id);
                                if h != "n4" {
                                    self.rejoin(h);
                                }
                                last = e;
                            }
                            Err(e) => last = e,
                            Ok(()) => {}
                        }
                    }
                    // Removals only once every wanted node is a voter: removing while an add
                    // fails shrank the voters round after round, down to one.
                    let extra = have.iter().filter(|id| !want.contains_key(id));
                    for id in extra.filter(|_| !missing) {
                        if let Err(e) = self.ctl(&["members", "remove", &id.to_string()]) {
                            last = e;
                        }
                    }
                }
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last)
    }

    /// Undoes every fault still in, then makes sure every host runs its Redis and its node.
    /// Returns when the last heal was done.
    fn heal_all(&mut self) -> u64 {
        let open: Vec<(usize, Fault)> = self
            .open
            .iter()
            .map(|(s, (_, f))| (*s, f.clone()))
            .collect();
        for (step, fault) in open {
            let r = self.undo(step, &fault);
            self.record(format!("heal #{step} {fault}"), r);
        }
        for h in HOSTS {
            let _ = self.s.lab.sh(&["heal", h]);
            let _ = self.s.lab.sh(&["resume", h, "raftinel serve"]);
            let _ = self.s.lab.sh(&["resume", h, "redis-server"]);
            let r = self
                .restart(h, Daemon::Redis)
                .and_then(|()| self.restart(h, Daemon::Raftinel));
            if r.is_err() {
                self.record(format!("restart {h}"), r);
            }
        }
        let r = self.reconcile(CONVERGE_WITHIN);
        self.record("reconcile the membership".to_owned(), r);
        us(self.t0)
    }

    /// Waits until exactly one instance takes writes (when, first), then until the nodes agree
    /// on it, the VIP is on its host alone and the other two replicate from it.
    fn converge(&self, healed_us: u64) -> Ending {
        let mut ending = Ending {
            healed_us,
            ..Ending::default()
        };
        let deadline = Instant::now() + CONVERGE_WITHIN;
        for _ in 0..1000 {
            let writable: Vec<&str> = HOSTS.into_iter().filter(|h| takes_writes(h)).collect();
            if writable.len() == 1 && ending.one_writable_us.is_none() {
                ending.one_writable_us = Some(us(self.t0));
            }
            let master = writable.first().copied();
            ending.unconverged = match (writable.len(), master) {
                (1, Some(m)) => self.disagreements(m),
                (n, _) => vec![format!("{n} instances take writes: {writable:?}")],
            };
            if writable.len() == 1 {
                ending.master = master.map(str::to_owned);
            }
            if ending.unconverged.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ending
    }

    /// What still disagrees with `master` being the one master.
    fn disagreements(&self, master: &str) -> Vec<String> {
        let mut out = Vec::new();
        for h in HOSTS {
            let said = in_ns("client", || sentinel_master(h));
            if said.as_deref() != Some(master) {
                out.push(format!("node on {h} names master {said:?}, not {master}"));
            }
            if h != master && !link_up(h) {
                out.push(format!("{h} does not replicate from {master}"));
            }
        }
        let vip = vip_hosts();
        if vip != vec![master] {
            out.push(format!("the VIP is on {vip:?}, not on {master}"));
        }
        out
    }

    /// With `NEMESIS_KEEP=DIR`, every daemon's whole log is copied to DIR/RUN/, where the tail
    /// printed on a failure is not enough to say why.
    fn keep_logs(&self) {
        let Ok(keep) = std::env::var("NEMESIS_KEEP") else {
            return;
        };
        let to = std::path::Path::new(&keep)
            .join(format!("run-{}", std::process::id()))
            .join(format!("{}", self.t0.elapsed().as_millis()));
        if let Err(e) = std::fs::create_dir_all(&to) {
            eprintln!("nemesis: NEMESIS_KEEP: cannot create {}: {e}", to.display());
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.s.dir.path()) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(&path, to.join(e.file_name()));
            }
        }
        eprintln!("nemesis: logs kept in {}", to.display());
    }

    /// Stops every node (kill -9, as a crash) and reads each one's Raft log from its data dir.
    fn stop_and_read_logs(&mut self) -> Vec<NodeLog> {
        let ids: Vec<(String, u64)> = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .map(|(h, id)| (h.clone(), *id))
            .collect();
        for (h, _) in &ids {
            self.s.lab.kill(h, "raftinel");
        }
        let mut logs = Vec::new();
        for (h, id) in ids {
            match read_log(id, &self.s.data_dir(&h, id)) {
                Ok(l) => logs.push(l),
                Err(e) => eprintln!("nemesis: node {id}'s log on {h}: {e}"),
            }
        }
        logs
    }
}

/// Whether an RPUSH to `host`'s Redis from the client is acknowledged.
fn takes_writes(host: &str) -> bool {
    in_ns("client", || {
        let Ok(client) = redis::Client::open(format!("redis://{}:6379/", addr(host))) else {
            return false;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
        redis::cmd("RPUSH")
            .arg("nemesis:probe")
            .arg(1)
            .query::<i64>(&mut c)
            .is_ok()
    })
}

/// The host the node on `host` names as master on its Sentinel port.
fn sentinel_master(host: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://{}:26379/", addr(host))).ok()?;
    let mut c = client
        .get_connection_with_timeout(Duration::from_millis(200))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let (ip, _): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query(&mut c)
        .ok()?;
    clients::host_of(&ip)
}

/// Each writer's list on the final master.
fn final_data(master: &str) -> BTreeMap<Path, Vec<u64>> {
    in_ns("client", || {
        let mut out = BTreeMap::new();
        let Ok(client) = redis::Client::open(format!("redis://{}:6379/", addr(master))) else {
            return out;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return out;
        };
        for p in [Path::Sentinel, Path::Vip] {
            let list: redis::RedisResult<Vec<u64>> = redis::cmd("LRANGE")
                .arg(p.key())
                .arg(0)
                .arg(-1)
                .query(&mut c);
            if let Ok(list) = list {
                out.insert(p, list);
            }
        }
        out
    })
}

/// Node `node`'s log from the sled database in `dir` (the node must be stopped).
fn read_log(node: u64, dir: &FsPath) -> Result<NodeLog, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| e.to_string())?;
        let mut store = raftinel::raft::LogStore::open(&db, raftinel::raft::InstallGate::default())
            .map_err(|e| e.to_string())?;
        let state = store.get_log_state().await.map_err(|e| e.to_string())?;
        let committed = store.read_committed().await.map_err(|e| e.to_string())?;
        let purged = state.last_purged_log_id.map_or(0, |l| l.index);
        let last = state.last_log_id.map_or(0, |l| l.index);
        let entries = store
            .try_get_log_entries(purged + 1..last + 1)
            .await
            .map_err(|e| e.to_string())?;
        let mut log = NodeLog {
            node,
            committed: committed.map_or(0, |l| l.index),
            purged,
            entries: BTreeMap::new(),
        };
        for e in entries {
            let bytes = raftinel::raft::codec::encode(&e).map_err(|e| e.to_string())?;
            log.entries
                .insert(e.log_id.index, (e.log_id.leader_id.term, bytes));
        }
        Ok(log)
    })
}
