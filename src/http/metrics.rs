//! `GET /metrics`: the node's state in Prometheus' text format (OpenMetrics), built at each
//! scrape from what the node already holds: the applied topology, its own probes, Raft's
//! metrics, the lease guard's view of this host, the hook queue and the Sentinel port's
//! counters. Names follow Prometheus' conventions: `raftinel_` prefix, `_total` counters, seconds.
//! Sentinel parity: `raftinel_master_*` carries what redis_exporter reads from Sentinel
//! (`redis_sentinel_master_status`, `_slaves`, `_ok_slaves`, `_ckquorum_status`, `_config_epoch`,
//! `_setting_*`, `redis_sentinel_tilt`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::failover::quorum::{effective_quorum, majority};
use crate::hooks::{PendingScripts, PendingState};
use crate::monitor::{Colocation, NodeReport, ReportedRole};
use crate::raft::types::typ;
use crate::raft::SmData;

type Labels = Vec<(String, String)>;

/// Everything one scrape reads, taken at once.
pub struct Snapshot<'a> {
    pub node_id: u64,
    pub fresh: bool,
    pub view: &'a SmData,
    pub report: &'a NodeReport,
    pub raft: &'a typ::RaftMetrics,
    pub colocation: &'a Colocation,
    pub writable: &'a BTreeSet<String>,
    /// The lease's acting window left, if one is open.
    pub lease_left: Option<std::time::Duration>,
    pub scripts: &'a PendingScripts,
    /// The Sentinel port: connections now, connections accepted, commands, refusals.
    pub resp: [u64; 4],
    pub leader_changes: u64,
    /// Lease renewal rounds: a majority promised, not.
    pub renewals: [u64; 2],
    /// Finished script runs, by `Runs::EXITS`.
    pub hook_runs: [u64; 6],
    pub failovers: &'a Failovers,
    /// A follower's last calls from the leader.
    pub contact: crate::raft::freshness::Contacts,
    /// The VIPs and the fences on this host.
    pub host: &'a crate::lease::fence::HostState,
    /// Whether this node's `/primary/{name}` answers 200, per master.
    pub primary_here: &'a dyn Fn(&str) -> bool,
}

fn master(name: &str) -> Labels {
    vec![("master".to_owned(), label(name))]
}

/// A label value in the text format's escapes (`\\`, `\"`, `\n`): prometheus-client 0.23 writes
/// values as given, and a master name may hold a quote or a backslash.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Failovers this node saw end in the applied log since it started (by master, reason and
/// outcome) and how long each took, from its start to its end as the log records them.
pub struct Failovers {
    counts: Family<Labels, Counter>,
    durations: Histogram,
    /// Per master, when the last failover counted ended (ms since the Unix epoch).
    counted_to: Mutex<HashMap<String, u64>>,
}

impl Default for Failovers {
    fn default() -> Failovers {
        let buckets = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 180.0];
        Failovers {
            counts: Family::default(),
            durations: Histogram::new(buckets),
            counted_to: Mutex::default(),
        }
    }
}

impl Failovers {
    /// The failovers already in the log: not counted (they ended before this node started).
    pub fn skip_past(&self, view: &SmData) {
        let mut to = self.to();
        for m in view.topology.masters() {
            let last = m
                .history
                .iter()
                .map(|f| f.finished_at_ms)
                .max()
                .unwrap_or(0);
            to.insert(m.name.clone(), last);
        }
    }

    /// Counts the failovers that ended since the last look.
    pub fn count_new(&self, view: &SmData) {
        let mut to = self.to();
        for m in view.topology.masters() {
            let since = to.get(&m.name).copied().unwrap_or(0);
            let mut last = since;
            for f in m.history.iter().filter(|f| f.finished_at_ms > since) {
                let outcome = if f.aborted.is_some() {
                    "aborted"
                } else {
                    "done"
                };
                let labels = vec![
                    ("master".to_owned(), label(&m.name)),
                    ("reason".to_owned(), label(&f.reason)),
                    ("outcome".to_owned(), outcome.to_owned()),
                ];
                self.counts.get_or_create(&labels).inc();
                let took = f.finished_at_ms.saturating_sub(f.started_at_ms);
                self.durations.observe(took as f64 / 1000.0);
                last = last.max(f.finished_at_ms);
            }
            // Runs at every applied entry: a name is copied only when a failover ended.
            if last > since {
                to.insert(m.name.clone(), last);
            }
        }
    }

    fn to(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.counted_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn gauges(r: &mut Registry, name: &str, help: &str, samples: Vec<(Labels, i64)>) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, v) in samples {
        family.get_or_create(&labels).set(v);
    }
    r.register(name, help, family);
}

fn gauges_f64(r: &mut Registry, name: &str, help: &str, samples: Vec<(Labels, f64)>) {
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (labels, v) in samples {
        family.get_or_create(&labels).set(v);
    }
    r.register(name, help, family);
}

fn counters(r: &mut Registry, name: &str, help: &str, samples: Vec<(Labels, u64)>) {
    let family = Family::<Labels, Counter>::default();
    for (labels, v) in samples {
        family.get_or_create(&labels).inc_by(v);
    }
    r.register(name, help, family);
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    g.set(v);
    r.register(name, help, g);
}

fn gauge_f64(r: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(v);
    r.register(name, help, g);
}

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    r.register(name, help, c);
}

fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The text a scrape gets.
pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("raftinel");
    node(&mut r, s);
    raft(&mut r, s);
    masters(&mut r, s);
    settings(&mut r, s);
    host(&mut r, s);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

fn node(r: &mut Registry, s: &Snapshot) {
    let version = vec![
        ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("node".to_owned(), s.node_id.to_string()),
    ];
    gauges(
        r,
        "build_info",
        "1, labelled with the version and node id",
        vec![(version, 1)],
    );
    gauge(
        r,
        "fresh",
        "1 while this node hears the current leader and has caught up (the Sentinel port is open)",
        i64::from(s.fresh),
    );
    gauge(
        r,
        "tilt",
        "1 while this node is in TILT (its timers ran late)",
        i64::from(s.report.tilt),
    );
    counter(
        r,
        "tilt_entered",
        "Times this node entered TILT since it started",
        s.report.tilt_total,
    );
    let [now, accepted, commands, refused] = s.resp;
    gauge(
        r,
        "sentinel_connections",
        "Clients connected to the Sentinel port now",
        int(now),
    );
    counter(
        r,
        "sentinel_connections_accepted",
        "Connections the Sentinel port accepted",
        accepted,
    );
    counter(
        r,
        "sentinel_commands",
        "Commands the Sentinel port processed",
        commands,
    );
    counter(
        r,
        "sentinel_connections_rejected",
        "Connections the Sentinel port refused (limits)",
        refused,
    );
    let running = s
        .scripts
        .iter()
        .filter(|p| matches!(p.state, PendingState::Running { .. }))
        .count();
    gauge(r, "hooks_running", "Scripts running now", int(running));
    gauge(
        r,
        "hooks_queued",
        "Scripts waiting to run (or to retry)",
        int(s.scripts.len() - running),
    );
    let runs = crate::hooks::Runs::EXITS
        .iter()
        .zip(s.hook_runs)
        .map(|(exit, n)| (vec![("exit".to_owned(), (*exit).to_owned())], n))
        .collect();
    counters(
        r,
        "hook_runs",
        "Script runs that ended since the node started, by exit: 0, 1 (retry), other, signal, timeout, not_started",
        runs,
    );
    r.register(
        "failovers",
        "Failovers that ended in the log since this node started, by master, reason and outcome",
        s.failovers.counts.clone(),
    );
    r.register(
        "failover_duration_seconds",
        "How long those failovers took, from their start to their end in the log",
        s.failovers.durations.clone(),
    );
}

fn raft(r: &mut Registry, s: &Snapshot) {
    let m = s.raft;
    let leader = m.current_leader == Some(s.node_id);
    gauge(
        r,
        "raft_is_leader",
        "1 on the Raft leader",
        i64::from(leader),
    );
    gauge(
        r,
        "raft_leader_id",
        "The leader this node knows, 0 for none",
        int(m.current_leader.unwrap_or(0)),
    );
    gauge(r, "raft_term", "The current Raft term", int(m.current_term));
    counter(
        r,
        "raft_leader_changes",
        "Changes of the leader this node knows, since it started",
        s.leader_changes,
    );
    gauge(
        r,
        "raft_last_log_index",
        "Index of the last entry in this node's log",
        int(m.last_log_index.unwrap_or(0)),
    );
    gauge(
        r,
        "raft_applied_index",
        "Index of the last entry this node applied",
        int(s.view.applied_index()),
    );
    gauge(
        r,
        "raft_voters",
        "Voters in the applied membership",
        int(s.view.voter_count()),
    );
    if let Some(ms) = m.millis_since_quorum_ack {
        gauge_f64(
            r,
            "raft_seconds_since_quorum_ack",
            "On the leader: seconds since a majority last acknowledged it",
            ms as f64 / 1000.0,
        );
    }
    if let Some(at) = s.contact.last {
        gauge_f64(
            r,
            "raft_seconds_since_leader_contact",
            "On a follower: seconds since the leader's last accepted call",
            at.elapsed().as_secs_f64(),
        );
        gauge(
            r,
            "raft_leader_commit_index",
            "On a follower: the commit index the leader's last call carried",
            int(s.contact.last_commit),
        );
    }
    if let Some(replication) = &m.replication {
        let matched = replication
            .iter()
            .map(|(id, log)| {
                let labels = vec![("follower".to_owned(), id.to_string())];
                (labels, int(log.map_or(0, |l| l.index)))
            })
            .collect();
        gauges(
            r,
            "raft_follower_matched_index",
            "On the leader: the last index each follower has",
            matched,
        );
    }
}

/// Per master: Sentinel's status and counts, from the log and this node's probes.
fn masters(r: &mut Registry, s: &Snapshot) {
    let voters = s.view.voter_count();
    let mut status = Vec::new();
    let mut odown = Vec::new();
    let mut replicas = Vec::new();
    let mut ok_replicas = Vec::new();
    let mut epoch = Vec::new();
    let mut quorum_ok = Vec::new();
    let mut in_progress = Vec::new();
    let mut paused = Vec::new();
    let mut conflict = Vec::new();
    let mut started = Vec::new();
    let mut completed = Vec::new();
    let mut last = Vec::new();
    let mut primary = Vec::new();
    for m in s.view.topology.masters() {
        let l = master(&m.name);
        let seen = |addr| s.report.observation(&m.name, addr);
        let sdown = seen(&m.addr).is_some_and(|o| o.sdown);
        status.push((l.clone(), i64::from(!sdown && m.odown.is_none())));
        odown.push((l.clone(), i64::from(m.odown.is_some())));
        replicas.push((l.clone(), int(m.replicas.len())));
        let ok = m
            .replicas
            .iter()
            .filter_map(|rep| seen(&rep.addr))
            .filter(|o| !o.sdown)
            .filter(|o| {
                matches!(&o.role, Some(ReportedRole::Replica { master, link_up: true, .. }) if *master == m.addr)
            })
            .count();
        ok_replicas.push((l.clone(), int(ok)));
        epoch.push((l.clone(), int(m.config_epoch)));
        let q = usize::try_from(effective_quorum(m.quorum, voters)).unwrap_or(usize::MAX);
        quorum_ok.push((
            l.clone(),
            i64::from(s.fresh && voters >= q.max(majority(voters))),
        ));
        in_progress.push((l.clone(), i64::from(m.failover.is_some())));
        paused.push((l.clone(), i64::from(m.paused)));
        conflict.push((l.clone(), i64::from(m.conflict.is_some())));
        started.push((l.clone(), m.epoch));
        completed.push((l.clone(), m.config_epoch));
        if let Some(f) = m.history.last() {
            last.push((l.clone(), f.finished_at_ms as f64 / 1000.0));
        }
        primary.push((l, i64::from((s.primary_here)(&m.name))));
    }
    gauges(
        r,
        "master_status",
        "1 when the master is up as this node sees it and not ODOWN (redis_sentinel_master_status)",
        status,
    );
    gauges(
        r,
        "master_odown",
        "1 while the cluster holds the master objectively down",
        odown,
    );
    gauges(
        r,
        "master_replicas",
        "Replicas the log knows (redis_sentinel_master_slaves)",
        replicas,
    );
    gauges(
        r,
        "master_ok_replicas",
        "Replicas this node sees up and linked to the master (redis_sentinel_master_ok_slaves)",
        ok_replicas,
    );
    gauges(
        r,
        "master_config_epoch",
        "The master's configuration epoch (redis_sentinel_master_config_epoch)",
        epoch,
    );
    gauges(r, "master_quorum_ok", "1 while this node hears a leader and the voters can reach the quorum (redis_sentinel_master_ckquorum_status)", quorum_ok);
    gauges(
        r,
        "master_failover_in_progress",
        "1 while a failover of the master runs",
        in_progress,
    );
    gauges(
        r,
        "master_paused",
        "1 while automatic failover of the master is paused",
        paused,
    );
    gauges(
        r,
        "master_topology_conflict",
        "1 while an instance is ahead of the log (ctl resolve)",
        conflict,
    );
    counters(
        r,
        "master_failovers_started",
        "Failovers started for the master since it was monitored (its epoch)",
        started,
    );
    counters(
        r,
        "master_failovers_completed",
        "Failovers that switched the master (its config epoch)",
        completed,
    );
    gauges_f64(
        r,
        "master_last_failover_timestamp_seconds",
        "When the last failover of the master ended (Unix time)",
        last,
    );
    gauges(
        r,
        "master_primary_here",
        "1 when this node's /primary/{master} answers 200",
        primary,
    );
}

/// Per master: the settings (redis_exporter's redis_sentinel_master_setting_*).
fn settings(r: &mut Registry, s: &Snapshot) {
    let each = |f: &dyn Fn(&crate::topology::MasterRecord) -> f64| {
        s.view
            .topology
            .masters()
            .map(|m| (master(&m.name), f(m)))
            .collect::<Vec<_>>()
    };
    let secs = |ms: u64| ms as f64 / 1000.0;
    gauges_f64(
        r,
        "master_setting_quorum",
        "SENTINEL SET quorum",
        each(&|m| f64::from(m.quorum)),
    );
    gauges_f64(
        r,
        "master_setting_down_after_seconds",
        "down-after-milliseconds, in seconds",
        each(&|m| secs(m.down_after_ms)),
    );
    gauges_f64(
        r,
        "master_setting_failover_timeout_seconds",
        "failover-timeout, in seconds",
        each(&|m| secs(m.failover_timeout_ms)),
    );
    gauges_f64(
        r,
        "master_setting_parallel_syncs",
        "parallel-syncs",
        each(&|m| f64::from(m.parallel_syncs)),
    );
}

/// This host: the lease, what is writable here, VIP problems.
fn host(r: &mut Registry, s: &Snapshot) {
    let [ok, failed] = s.renewals;
    counters(
        r,
        "lease_renewals",
        "Renewal rounds of this node's lease since it started: promised by a majority (ok) or not",
        vec![
            (vec![("result".to_owned(), "ok".to_owned())], ok),
            (vec![("result".to_owned(), "failed".to_owned())], failed),
        ],
    );
    gauge(
        r,
        "lease_held",
        "1 while this node's lease window is open",
        i64::from(s.lease_left.is_some()),
    );
    gauge_f64(
        r,
        "lease_remaining_seconds",
        "What is left of this node's lease window",
        s.lease_left.map_or(0.0, |d| d.as_secs_f64()),
    );
    gauge(
        r,
        "local_instances",
        "Redis instances on this host (local-redis) that answered",
        int(s.colocation.run_ids.len()),
    );
    let writable = s
        .view
        .topology
        .masters()
        .map(|m| (master(&m.name), i64::from(s.writable.contains(&m.name))))
        .collect();
    let vips = s
        .view
        .topology
        .masters()
        .filter(|m| m.vip.is_some())
        .map(|m| {
            (
                master(&m.name),
                i64::from(s.host.vips_held.contains(&m.name)),
            )
        })
        .collect();
    gauges(
        r,
        "vip_held",
        "1 for a master whose VIP is on this host now",
        vips,
    );
    gauges(
        r,
        "master_writable_here",
        "1 when the master's Redis on this host is unfenced (writable)",
        writable,
    );
    let fenced = s
        .host
        .fenced
        .iter()
        .map(|(addr, &f)| {
            (
                vec![("addr".to_owned(), label(&addr.to_string()))],
                i64::from(f),
            )
        })
        .collect();
    gauges(
        r,
        "local_instance_fenced",
        "1 when a Redis on this host (local-redis) takes no writes: a replica, or a master raftinel fenced",
        fenced,
    );
    let problems = s
        .colocation
        .vip_problems
        .keys()
        .map(|name| (master(name), 1))
        .collect();
    gauges(
        r,
        "vip_problem",
        "1 for a master whose VIP this host cannot carry (see ctl status)",
        problems,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
        assert_eq!(label("plain"), "plain");
    }

    /// What an idle node that knows nothing renders (counters given as below).
    fn idle() -> String {
        let view = SmData::default();
        let report = NodeReport::default();
        let raft = typ::RaftMetrics::new_initial(7);
        let colocation = Colocation::default();
        let writable = BTreeSet::new();
        let scripts = PendingScripts::default();
        render(&Snapshot {
            node_id: 7,
            fresh: true,
            view: &view,
            report: &report,
            raft: &raft,
            colocation: &colocation,
            writable: &writable,
            lease_left: None,
            scripts: &scripts,
            resp: [1, 2, 3, 4],
            leader_changes: 5,
            renewals: [6, 7],
            hook_runs: [8, 0, 0, 0, 0, 9],
            failovers: &Failovers::default(),
            host: &crate::lease::fence::HostState {
                vips_held: BTreeSet::new(),
                fenced: [(crate::topology::Addr::new("10.0.0.1", 6379), true)].into(),
            },
            contact: crate::raft::freshness::Contacts {
                last: Some(tokio::time::Instant::now()),
                last_commit: 42,
                prev_commit: None,
            },
            primary_here: &|_| false,
        })
    }

    #[test]
    fn an_idle_node_renders_its_own_figures() {
        let text = idle();
        for line in [
            "raftinel_fresh 1",
            "raftinel_raft_is_leader 0",
            "raftinel_raft_leader_changes_total 5",
            "raftinel_raft_leader_commit_index 42",
            "raftinel_sentinel_commands_total 3",
            "raftinel_lease_held 0",
            "raftinel_lease_renewals_total{result=\"failed\"} 7",
            "raftinel_hook_runs_total{exit=\"not_started\"} 9",
            "raftinel_failover_duration_seconds_count 0",
            "raftinel_local_instance_fenced{addr=\"10.0.0.1:6379\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// deploy/grafana/raftinel.json asks only for series a node exports.
    #[test]
    fn the_grafana_dashboard_uses_only_metrics_that_exist() {
        let dashboard = include_str!("../../deploy/grafana/raftinel.json");
        let text = idle();
        let mut names = BTreeSet::new();
        for (i, _) in dashboard.match_indices("raftinel_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            names.insert(name);
        }
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(
                text.contains(&format!("# TYPE {base} ")),
                "the dashboard's {name} is not a metric"
            );
        }
    }
}
