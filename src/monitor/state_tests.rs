//! Tests of the monitor state with explicit times: discovery, switches, forgetting, SDOWN
//! deadlines, INFO cadence, TILT and the report's shape and ages.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::monitor::observation::ReplicaLink;
use crate::topology::{FailoverRecord, FailoverState, MasterRecord, ReplicaRecord, Secret};

fn addr(port: u16) -> Addr {
    Addr::new("10.0.0.1", port)
}

fn record(port: u16, down_after_ms: u64) -> MasterRecord {
    MasterRecord::new("m", addr(port), 2, down_after_ms)
}

/// `rec` with the replica at `port` in the log.
fn with_replica(mut rec: MasterRecord, port: u16) -> MasterRecord {
    rec.replicas.push(ReplicaRecord {
        addr: addr(port),
        run_id: String::new(),
        replid: String::new(),
    });
    rec
}

fn masters(records: &[MasterRecord]) -> BTreeMap<String, std::sync::Arc<MasterRecord>> {
    records
        .iter()
        .map(|r| (r.name.clone(), std::sync::Arc::new(r.clone())))
        .collect()
}

fn wanted(out: &Reconciled) -> Vec<u16> {
    out.wanted.iter().map(|(_, a)| a.port).collect()
}

fn master_info(replicas: &[u16]) -> InfoReply {
    InfoReply {
        run_id: "r".into(),
        role: ReportedRole::Master {
            replicas: replicas
                .iter()
                .map(|p| ReplicaLink {
                    addr: addr(*p),
                    state: "online".into(),
                    offset: 1,
                })
                .collect(),
        },
        replid: "x".into(),
        repl_offset: 1,
        replid2: String::new(),
        second_repl_offset: None,
    }
}

#[test]
fn timing_rules() {
    assert_eq!(ping_interval(Duration::from_millis(300)), MIN_PING);
    assert_eq!(ping_interval(Duration::from_millis(1000)), MIN_PING);
    assert_eq!(
        ping_interval(Duration::from_millis(5000)),
        Duration::from_millis(500)
    );
    assert_eq!(ping_interval(Duration::from_secs(30)), MAX_PING);
    assert_eq!(
        ping_interval(Duration::from_millis(150)),
        Duration::from_millis(50)
    );
    assert_eq!(
        ping_interval(Duration::from_millis(1)),
        Duration::from_millis(1)
    );
    assert_eq!(
        command_timeout(Duration::from_millis(300)),
        Duration::from_millis(150)
    );
    assert_eq!(command_timeout(Duration::from_millis(20)), MIN_TIMEOUT);
    assert_eq!(command_timeout(Duration::from_secs(3600)), MAX_TIMEOUT);
}

#[test]
fn the_largest_down_after_never_overflows() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, u64::MAX)]), t0);
    let Some(Some(at)) = s.sdown_deadline("m", &addr(1)) else {
        panic!("a deadline expected");
    };
    assert!(at > t0 + Duration::from_secs(365 * 86_400));
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(
        s.sdown_timer("m", &addr(1), later, Duration::from_secs(1)),
        (false, false)
    );
    assert!(
        s.reconcile(&masters(&[record(1, u64::MAX)]), later)
            .wanted
            .len()
            == 1
    );
    assert!(!s.report(1, later).tilt);
}

#[test]
fn master_and_log_replicas_are_probed_and_nothing_is_down_at_start() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    let rec = with_replica(record(1, 300), 2);
    let out = s.reconcile(&masters(&[rec]), t0);
    assert_eq!(wanted(&out), vec![1, 2]);
    let report = s.report(7, t0 + Duration::from_millis(299));
    assert_eq!(report.node_id, 7);
    assert!(!report.tilt);
    let obs = &report.masters["m"];
    assert_eq!(obs.len(), 2);
    assert!(obs
        .iter()
        .all(|o| !o.sdown && o.reply_age_ms == 299 && o.info_age_ms.is_none()));
    assert_eq!(
        s.sdown_deadline("m", &addr(1)),
        Some(Some(t0 + Duration::from_millis(300)))
    );
}

#[test]
fn replicas_listed_by_the_master_are_discovered_then_forgotten() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    let m = masters(&[record(1, 100)]);
    s.reconcile(&m, t0);
    assert!(s.record_info("m", &addr(1), t0, master_info(&[3, 2])));
    assert!(!s.record_info("m", &addr(1), t0, master_info(&[3, 2])));
    assert_eq!(wanted(&s.reconcile(&m, t0)), vec![1, 2, 3]);
    // The master stops listing 3: it is probed for 10 × down-after more, then dropped.
    s.record_info("m", &addr(1), t0, master_info(&[2]));
    let t1 = t0 + Duration::from_millis(999);
    assert_eq!(wanted(&s.reconcile(&m, t1)), vec![1, 2, 3]);
    let t2 = t0 + Duration::from_millis(1000);
    assert_eq!(wanted(&s.reconcile(&m, t2)), vec![1, 2]);
    assert!(s.probe_settings("m", &addr(3)).is_none());
}

#[test]
fn a_down_master_keeps_its_last_listed_replicas() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    let m = masters(&[record(1, 100)]);
    s.reconcile(&m, t0);
    s.record_info("m", &addr(1), t0, master_info(&[2]));
    let later = t0 + Duration::from_secs(60);
    assert_eq!(wanted(&s.reconcile(&m, later)), vec![1, 2]);
}

#[test]
fn a_switch_probes_the_new_master_and_keeps_the_old_as_replica() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, 100)]), t0);
    s.valid_reply("m", &addr(1), t0, true);
    let t1 = t0 + Duration::from_millis(50);
    let out = s.reconcile(&masters(&[record(2, 100)]), t1);
    assert_eq!(wanted(&out), vec![1, 2]);
    let report = s.report(1, t1);
    let ports: Vec<u16> = report.masters["m"].iter().map(|o| o.addr.port).collect();
    assert_eq!(ports, vec![2, 1], "the master comes first");
    // The old master's state survives the switch.
    assert_eq!(report.masters["m"][1].reply_age_ms, 50);
}

#[test]
fn removed_names_stop_being_probed_and_settings_changes_are_flagged() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, 100)]), t0);
    let mut rec = record(1, 100);
    rec.auth_pass = Some(Secret::new("p"));
    let out = s.reconcile(&masters(&[rec.clone()]), t0);
    assert!(out.retuned.contains("m"));
    assert_eq!(
        s.probe_settings("m", &addr(1)).map(|p| p.access.pass),
        Some(Some(Secret::new("p")))
    );
    assert!(s.reconcile(&masters(&[rec.clone()]), t0).retuned.is_empty());
    // TLS from the log, or from this node's config, retunes too.
    rec.tls = true;
    assert!(s
        .reconcile(&masters(&[rec.clone()]), t0)
        .retuned
        .contains("m"));
    assert!(s
        .probe_settings("m", &addr(1))
        .is_some_and(|p| p.access.tls));
    rec.tls = false;
    s.tls_names.insert("m".to_string());
    assert!(s.reconcile(&masters(&[rec.clone()]), t0).retuned.is_empty());
    assert!(s
        .probe_settings("m", &addr(1))
        .is_some_and(|p| p.access.tls));
    let out = s.reconcile(&BTreeMap::new(), t0);
    assert!(out.wanted.is_empty());
    assert!(s.report(1, t0).masters.is_empty());
}

#[test]
fn sdown_only_from_the_deadline_and_cleared_by_a_valid_reply() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, 300)]), t0);
    let a = addr(1);
    let early = t0 + Duration::from_millis(299);
    assert_eq!(
        s.sdown_timer("m", &a, early, Duration::ZERO),
        (false, false)
    );
    let due = t0 + Duration::from_millis(300);
    assert_eq!(s.sdown_timer("m", &a, due, Duration::ZERO), (true, false));
    assert_eq!(s.sdown_deadline("m", &a), Some(None));
    assert!(s.report(1, due).masters["m"][0].sdown);
    let back = due + Duration::from_millis(10);
    assert!(s.valid_reply("m", &a, back, true));
    assert!(!s.valid_reply("m", &a, back, true));
    assert_eq!(
        s.sdown_deadline("m", &a),
        Some(Some(back + Duration::from_millis(300)))
    );
}

fn replica_info(of: u16) -> InfoReply {
    InfoReply {
        role: ReportedRole::Replica {
            master: addr(of),
            link_up: false,
            link_down_ms: 0,
            priority: 100,
            offset: 1,
            last_io_ms: None,
        },
        ..master_info(&[])
    }
}

// Sentinel's rule: the log's master reporting role replica for down-after + 2 INFO periods is
// SDOWN, although it answers every PING; it is up again once it says master.
#[test]
fn a_master_that_reports_replica_too_long_is_sdown() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, 300)]), t0);
    let a = addr(1);
    let limit = Duration::from_millis(300) + INFO_PERIOD * 2;
    assert!(s.record_info("m", &a, t0, replica_info(2)));
    assert_eq!(
        s.sdown_deadline("m", &a),
        Some(Some(t0 + Duration::from_millis(300)))
    );
    // PINGs keep coming; only the role deadline remains.
    let mut t = t0;
    while t < t0 + limit - Duration::from_millis(100) {
        t += Duration::from_millis(100);
        assert!(!s.valid_reply("m", &a, t, true));
        s.record_info("m", &a, t, replica_info(2));
    }
    assert_eq!(s.sdown_deadline("m", &a), Some(Some(t0 + limit)));
    assert_eq!(s.sdown_timer("m", &a, t, Duration::ZERO), (false, false));
    assert_eq!(
        s.sdown_timer("m", &a, t0 + limit, Duration::ZERO),
        (true, false)
    );
    // A PING reply does not end it while the role is still wrong.
    assert!(!s.valid_reply("m", &a, t0 + limit, true));
    assert!(s.report(1, t0 + limit).masters["m"][0].sdown);
    // Role master again: up.
    let back = t0 + limit + Duration::from_millis(50);
    assert!(s.record_info("m", &a, back, master_info(&[])));
    assert!(!s.report(1, back).masters["m"][0].sdown);
}

// Only the log's master is judged on its role; a replica newly named master counts its time as
// a replica from the switch.
#[test]
fn the_role_rule_applies_to_the_logs_master_from_when_it_became_master() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    let mut rec = with_replica(record(1, 300), 2);
    s.reconcile(&masters(&[rec.clone()]), t0);
    let r = addr(2);
    s.record_info("m", &r, t0, replica_info(1));
    let late = t0 + Duration::from_secs(10);
    s.valid_reply("m", &r, late, true);
    assert_eq!(s.sdown_timer("m", &r, late, Duration::ZERO), (false, false));
    rec.addr = r.clone();
    s.reconcile(&masters(&[rec]), late);
    assert_eq!(
        s.sdown_deadline("m", &r),
        Some(Some(late + Duration::from_millis(300)))
    );
    let due = late + Duration::from_millis(300) + INFO_PERIOD * 2;
    let mut t = late;
    while t + Duration::from_millis(100) < due {
        t += Duration::from_millis(100);
        s.valid_reply("m", &r, t, true);
        assert_eq!(s.sdown_timer("m", &r, t, Duration::ZERO), (false, false));
    }
    s.valid_reply("m", &r, due, true);
    assert_eq!(s.sdown_timer("m", &r, due, Duration::ZERO), (true, false));
}

#[test]
fn info_is_fast_while_the_master_is_down_or_failing_over() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    let mut rec = with_replica(record(1, 300), 2);
    s.reconcile(&masters(&[rec.clone()]), t0);
    let every = |s: &Shared| s.probe_settings("m", &addr(2)).map(|p| p.info_every);
    assert_eq!(every(&s), Some(INFO_PERIOD));
    s.sdown_timer(
        "m",
        &addr(1),
        t0 + Duration::from_millis(300),
        Duration::ZERO,
    );
    assert_eq!(every(&s), Some(FAST_INFO));
    s.valid_reply("m", &addr(1), t0 + Duration::from_millis(301), true);
    assert_eq!(every(&s), Some(INFO_PERIOD));
    rec.failover = Some(FailoverRecord {
        epoch: 1,
        candidate: addr(2),
        candidate_holder: None,
        state: FailoverState::Started,
        reason: String::new(),
        from: addr(1),
        started_at_ms: 0,
        promoted_at_ms: None,
        revoked: None,
    });
    s.reconcile(&masters(&[rec]), t0);
    assert_eq!(every(&s), Some(FAST_INFO));
}

#[test]
fn a_late_timer_tilts_the_report_for_down_after() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    s.reconcile(&masters(&[record(1, 1000)]), t0);
    let t1 = t0 + Duration::from_secs(5);
    assert!(!s.note_lag(t1, Duration::from_millis(250)));
    assert!(!s.report(1, t1).tilt);
    // A frozen process: the SDOWN timer fires 2 s late; TILT is on before the SDOWN shows.
    assert_eq!(
        s.sdown_timer("m", &addr(1), t1, Duration::from_secs(2)),
        (true, true)
    );
    assert!(s.report(1, t1 + Duration::from_millis(999)).tilt);
    assert!(!s.report(1, t1 + Duration::from_millis(1000)).tilt);
}

#[test]
fn publish_interval_follows_the_fastest_master() {
    let t0 = Instant::now();
    let mut s = Shared::new(t0);
    assert_eq!(s.publish_interval(), MAX_PING);
    let mut fast = record(1, 200);
    fast.name = "fast".into();
    s.reconcile(&masters(&[record(2, 5000), fast]), t0);
    assert_eq!(s.publish_interval(), Duration::from_millis(200) / 3);
}

#[test]
fn pings_are_aligned_on_one_grid() {
    let epoch = Instant::now();
    let p = Duration::from_millis(100);
    let at = |ms| epoch + Duration::from_millis(ms);
    assert_eq!(grid_after(epoch, at(0), p), at(100));
    assert_eq!(grid_after(epoch, at(99), p), at(100));
    assert_eq!(grid_after(epoch, at(100), p), at(200));
    assert_eq!(grid_after(epoch, at(1234), p), at(1300));
    assert_eq!(grid_after(epoch, at(5), Duration::ZERO), at(5));
}

#[test]
fn reconnects_back_off_to_a_second() {
    let ms = Duration::from_millis;
    let tries: Vec<_> = (1..=6).map(|f| reconnect_after(ms(100), f)).collect();
    assert_eq!(
        tries,
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
    // A period above the cap is kept: never more often than before, never slower than it.
    assert_eq!(reconnect_after(ms(1000), 1), ms(1000));
    assert_eq!(reconnect_after(ms(1000), 9), ms(1000));
    assert_eq!(reconnect_after(ms(100), u32::MAX), ms(1000));
    assert_eq!(reconnect_after(ms(100), 0), ms(100));
}

// Sentinel's master-reboot-down-after-period: a master with a new run id that answers only
// -LOADING is SDOWN once the period passes, and flagged master_reboot until a +PONG; with the
// period 0 (the default) a reboot changes nothing. Its role-reported-time restarts only when the
// role changes.
#[test]
fn a_rebooted_master_is_down_after_the_reboot_period() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut s = Shared::new(t0);
    let mut rec = record(1, 5000);
    rec.reboot_down_after_ms = 400;
    s.reconcile(&masters(&[rec.clone()]), t0);
    let a = addr(1);
    s.record_info("m", &a, t0, master_info(&[]));
    let rebooted = InfoReply {
        run_id: "new".into(),
        ..master_info(&[])
    };
    let t1 = t0 + ms(100);
    s.record_info("m", &a, t1, rebooted.clone());
    assert!(s.report(1, t1).masters["m"][0].reboot);
    assert_eq!(s.sdown_deadline("m", &a), Some(Some(t1 + ms(400))));
    // -LOADING keeps it rebooting; the period passes: SDOWN although it answers.
    s.valid_reply("m", &a, t1 + ms(300), false);
    let due = t1 + ms(400);
    assert_eq!(s.sdown_timer("m", &a, due, Duration::ZERO), (true, false));
    // +PONG ends it.
    assert!(s.valid_reply("m", &a, due + ms(10), true));
    let o = &s.report(1, due + ms(10)).masters["m"][0];
    assert!(!o.sdown && !o.reboot);
    assert_eq!(o.role_age_ms, 510, "the role never changed");

    rec.reboot_down_after_ms = 0;
    s.reconcile(&masters(&[rec]), due + ms(20));
    let t2 = due + ms(30);
    s.record_info("m", &a, t2, master_info(&[]));
    assert!(!s.report(1, t2).masters["m"][0].reboot);
    assert_eq!(
        s.sdown_deadline("m", &a),
        Some(Some(due + ms(10) + ms(5000)))
    );
    s.record_info("m", &a, t2, replica_info(2));
    assert_eq!(s.report(1, t2 + ms(5)).masters["m"][0].role_age_ms, 5);
}
