//! Unit tests of the pure script rules: triggers and argv (reference §2.1/§2.2 and Sentinel's
//! documented script arguments), the retry rule of `sentinelCollectTerminatedScripts`, the new
//! leader's backlog and the lag cursor.

use super::*;
use crate::config::MasterScripts;
use crate::topology::event::{Event, Instance, Step};
use crate::topology::{Addr, TopologyEvent};

fn event(index: u64, event: Event) -> IndexedEvent {
    IndexedEvent {
        index,
        event: TopologyEvent {
            master: Some("mymaster".to_owned()),
            epoch: 1,
            event,
        },
    }
}

fn local(port: u16) -> Addr {
    Addr::new("127.0.0.1", port)
}

/// `+switch-master` of mymaster from port `from` to `to` at 127.0.0.1.
fn switch(index: u64, from: u16, to: u16) -> IndexedEvent {
    let (from, to) = (local(from), local(to));
    event(index, Event::SwitchMaster { from, to })
}

fn both() -> Scripts {
    Scripts {
        notification: Some("/opt/notify.sh".to_owned()),
        client_reconfig: Some("/opt/reconfig.sh".to_owned()),
        failover_timeout_ms: 180_000,
        own: Own::default(),
    }
}

fn argvs(jobs: &[Job]) -> Vec<Vec<&str>> {
    jobs.iter()
        .map(|j| j.argv.iter().map(String::as_str).collect())
        .collect()
}

// §2.2: WARNING events with an instance run notification-script; NOTICE/VERBOSE ones, events
// without an instance and raftinel's own events do not.
#[test]
fn which_kinds_notify() {
    for kind in [
        "+monitor",
        "-monitor",
        "+set",
        "+new-epoch",
        "+try-failover",
        "+elected-leader",
        "+failover-state-select-slave",
        "+selected-slave",
        "+promoted-slave",
        "+failover-state-reconf-slaves",
        "+switch-master",
        "+failover-end",
        "-failover-abort-no-good-slave",
        "-failover-abort-not-elected",
        "-failover-abort-slave-timeout",
        "+sdown",
        "-odown",
    ] {
        assert!(notifies(kind), "{kind} is WARNING with an instance");
    }
    for kind in [
        "+slave",
        "+failover-state-send-slaveof-noone",
        "+failover-state-wait-promotion",
        "+slave-reconf-sent",
        "+slave-reconf-done",
        "+convert-to-slave",
        "+role-change",
        "+tilt",
        "-tilt",
        "-script-error",
        "-script-timeout",
        "+paused",
        "-paused",
        "-failover-abort",
        "+topology-conflict",
        "switch-master",
    ] {
        assert!(!notifies(kind), "{kind} runs no notification-script");
    }
}

// Sentinel: notification-script <event-type> <event-description>.
#[test]
fn notification_argv() {
    let set = Event::Set {
        at: local(6390),
        option: "quorum".into(),
        value: "2".into(),
    };
    let e = event(7, set);
    let jobs = jobs_for(&e, Some(&both()));
    assert_eq!(
        argvs(&jobs),
        [[
            "/opt/notify.sh",
            "+set",
            "master mymaster 127.0.0.1 6390 quorum 2"
        ]]
    );
    assert_eq!(
        (
            jobs[0].index,
            jobs[0].master.as_str(),
            jobs[0].event.as_str()
        ),
        (7, "mymaster", "+set")
    );
    assert_eq!(jobs[0].hook, HookKind::Notification);
    assert_eq!(jobs[0].hook.option(), "notification-script");
}

// Sentinel: client-reconfig-script <master-name> <role> <state> <from-ip> <from-port> <to-ip>
// <to-port>, on the switch; the notification-script also gets +switch-master.
#[test]
fn switch_master_runs_both_scripts() {
    let e = switch(12, 6390, 6391);
    let jobs = jobs_for(&e, Some(&both()));
    assert_eq!(
        argvs(&jobs),
        [
            vec![
                "/opt/notify.sh",
                "+switch-master",
                "mymaster 127.0.0.1 6390 127.0.0.1 6391"
            ],
            vec![
                "/opt/reconfig.sh",
                "mymaster",
                "leader",
                "start",
                "127.0.0.1",
                "6390",
                "127.0.0.1",
                "6391"
            ],
        ]
    );
    assert_eq!(jobs[1].hook, HookKind::ClientReconfig);
    assert_eq!(jobs[1].argv.len(), 8, "path + Sentinel's 7 arguments");
    let reconfig_only = Scripts {
        notification: None,
        ..both()
    };
    let jobs = jobs_for(&e, Some(&reconfig_only));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].hook, HookKind::ClientReconfig);
}

#[test]
fn nothing_runs_without_a_script_a_master_or_a_trigger() {
    let e = switch(3, 6390, 6391);
    assert!(jobs_for(&e, None).is_empty());
    let none = Scripts {
        notification: None,
        client_reconfig: None,
        failover_timeout_ms: 1,
        own: Own::default(),
    };
    assert!(jobs_for(&e, Some(&none)).is_empty());
    let mut orphan = e.clone();
    orphan.event.master = None;
    assert!(jobs_for(&orphan, Some(&both())).is_empty());
    let about = Instance::Replica {
        at: local(6391),
        master_at: local(6390),
    };
    let step = Step::Slave;
    let slave = event(3, Event::Step { step, about });
    assert!(jobs_for(&slave, Some(&both())).is_empty());
}

// sentinelCollectTerminatedScripts: exit 1 or a signal (our timeout kill included) → retried
// while fewer than 10 runs; exit ≥ 2 → not retried; delays 30 s doubling.
#[test]
fn retry_rule() {
    let s = Duration::from_secs;
    let table = [
        (Exit::Code(0), 1, Next::Done),
        (Exit::Code(0), 10, Next::Done),
        (Exit::Code(1), 1, Next::Retry(s(30))),
        (Exit::Code(1), 2, Next::Retry(s(60))),
        (Exit::Code(1), 3, Next::Retry(s(120))),
        (Exit::Code(1), 9, Next::Retry(s(30 * 256))),
        (Exit::Code(1), 10, Next::GaveUp),
        (Exit::Signal(15), 1, Next::Retry(s(30))),
        (Exit::Signal(9), 10, Next::GaveUp),
        (Exit::TimedOut, 4, Next::Retry(s(240))),
        (Exit::Code(2), 1, Next::Failed),
        (Exit::Code(127), 1, Next::Failed),
        (Exit::Code(-1), 1, Next::Failed),
        (Exit::SpawnFailed("ENOENT".to_owned()), 1, Next::Failed),
    ];
    for (exit, runs, want) in table {
        assert_eq!(
            next(&exit, runs, RETRY_DELAY),
            want,
            "{exit:?} after run {runs}"
        );
    }
    // A job that always exits 1 runs exactly MAX_RUNS times.
    let mut runs = 0;
    loop {
        runs += 1;
        if next(&Exit::Code(1), runs, RETRY_DELAY) == Next::GaveUp {
            break;
        }
    }
    assert_eq!(runs, MAX_RUNS);
    assert_eq!(retry_delay(0, RETRY_DELAY), s(30));
    assert!(retry_delay(u32::MAX, RETRY_DELAY) >= retry_delay(10, RETRY_DELAY));
}

fn job(index: u64) -> Job {
    Job {
        index,
        master: "mymaster".to_owned(),
        event: "+switch-master".to_owned(),
        hook: HookKind::ClientReconfig,
        argv: vec!["/r".to_owned()],
        own: false,
    }
}

// A new leader runs the hooks of events applied within failover-timeout that it did not run.
#[test]
fn backlog_for_a_new_leader() {
    let t0 = Instant::now();
    let window = Duration::from_secs(180);
    let mut b = Backlog::default();
    b.record(t0, window, vec![job(4)]);
    b.record(t0, window, vec![job(5), job(5)]);
    b.record(t0 + Duration::from_secs(100), window, vec![job(6)]);
    b.record(t0, Duration::from_secs(10), vec![job(7)]);
    assert_eq!(b.len(), 5);
    let taken: Vec<u64> = b
        .take(4, t0 + Duration::from_secs(60))
        .iter()
        .map(|j| j.index)
        .collect();
    assert_eq!(
        taken,
        [5, 5, 6],
        "above ran_through 4, inside their windows"
    );
    assert!(b.is_empty(), "taking empties the backlog");

    b.record(t0, window, vec![job(8)]);
    b.record(t0 + Duration::from_secs(100), window, vec![job(9)]);
    let later = t0 + Duration::from_secs(200);
    b.prune(later);
    assert_eq!(b.len(), 1);
    assert_eq!(b.take(0, later).len(), 1);

    for i in 0..(BACKLOG_LEN as u64 + 5) {
        b.record(t0, window, vec![job(100 + i)]);
    }
    assert_eq!(b.len(), BACKLOG_LEN);
    let first = b.take(0, t0).first().map(|j| j.index);
    assert_eq!(first, Some(105), "the oldest are dropped first");
}

// After a broadcast lag, the stored events are re-read from where the stream stopped, partway
// through a log index, and live events already re-read are skipped.
#[test]
fn cursor_resumes_mid_index() {
    let mut c = Cursor::default();
    assert_eq!(c.resume(), (1, 0));
    assert!(c.live(5));
    assert!(c.live(5));
    assert_eq!(c.resume(), (5, 2));
    assert!(c.live(6));
    assert_eq!(c.resume(), (6, 1));
    c.caught_up(9);
    assert_eq!(c.resume(), (10, 0));
    assert!(!c.live(6));
    assert!(!c.live(9));
    assert!(c.live(10));
    assert!(c.live(12));
    assert_eq!(c.resume(), (12, 1));
    c.caught_up(11);
    assert_eq!(c.resume(), (12, 0), "through never goes back");
}

fn record(name: &str, notify: Option<&str>) -> MasterRecord {
    let mut m = MasterRecord::new(name, Addr::new("127.0.0.1", 6390), 2, 5000);
    m.notification_script = notify.map(str::to_owned);
    m
}

// A removed master's scripts stay until its -monitor is handled.
#[test]
fn script_book_keeps_removed_masters_until_forgotten() {
    let mut book = ScriptBook::default();
    let a = record("a", Some("/n"));
    book.refresh([&a, &record("b", None)].into_iter());
    assert_eq!(
        book.get("a").and_then(|s| s.notification.as_deref()),
        Some("/n")
    );
    book.refresh([&record("b", None)].into_iter());
    assert!(
        book.get("a").is_some(),
        "absent from the state, still known"
    );
    book.refresh([&record("a", None)].into_iter());
    assert_eq!(book.get("a").and_then(|s| s.notification.clone()), None);
    book.forget("a");
    assert!(book.get("a").is_none());
    assert_eq!(book.get("b").map(|s| s.failover_timeout_ms), Some(180_000));
}

// Invariant 12 at the point of use: this node's deny-scripts-reconfig decides, and argv never
// carries a leading '-' from a master name or an address, nor a control character; only the
// notification's event type may start with '-' (Sentinel passes `-sdown` there).
#[test]
fn vet_policy_and_argv() {
    let job = |master: &str, hook: HookKind, argv: &[&str]| Job {
        index: 1,
        master: master.to_owned(),
        event: "+switch-master".to_owned(),
        hook,
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        own: false,
    };
    let n = HookKind::Notification;
    let r = HookKind::ClientReconfig;
    let reconfig = [
        "/r.sh", "m", "leader", "start", "10.0.0.1", "6379", "10.0.0.2", "6379",
    ];
    let table: Vec<(Job, bool, Result<(), Refused>)> = vec![
        (
            job("m", n, &["/n.sh", "-sdown", "master m 10.0.0.1 6379"]),
            false,
            Ok(()),
        ),
        (job("m", r, &reconfig), false, Ok(())),
        (job("m", r, &reconfig), true, Err(Refused::Denied)),
        (
            job("m", n, &["/n.sh", "+sdown", "x"]),
            true,
            Err(Refused::Denied),
        ),
        (
            job("-m", r, &["/r.sh", "-m", "leader"]),
            false,
            Err(Refused::BadName(
                "master name must not start with '-'".to_owned(),
            )),
        ),
        (
            job("a b", n, &["/n.sh", "+sdown", "master a b"]),
            false,
            Err(Refused::BadName(
                "master name must not contain spaces".to_owned(),
            )),
        ),
        (
            job(
                "m",
                r,
                &["/r.sh", "m", "leader", "start", "-x", "1", "10.0.0.2", "2"],
            ),
            false,
            Err(Refused::UnsafeArg(4)),
        ),
        (
            job("m", n, &["/n.sh", "+sdown", "-x"]),
            false,
            Err(Refused::UnsafeArg(2)),
        ),
        (
            job("m", n, &["/n.sh", "+sdown\n", "x"]),
            false,
            Err(Refused::UnsafeArg(1)),
        ),
        (
            job("m", r, &["/r.sh", "-m"]),
            false,
            Err(Refused::UnsafeArg(1)),
        ),
    ];
    for (j, deny, want) in table {
        assert_eq!(vet(&j, deny), want, "{j:?} deny={deny}");
    }
    assert!(Refused::Denied.to_string().contains(
        "set `deny-scripts-reconfig = false` in the config of the nodes that may run it"
    ));
}

// This node's own `[masters.NAME]` script replaces the log's, per hook, and its jobs say so.
#[test]
fn own_scripts_override_the_log() {
    let mut m = record("a", Some("/log/notify.sh"));
    m.client_reconfig_script = Some("/log/reconfig.sh".to_owned());
    let own = MasterScripts {
        notification: None,
        client_reconfig: Some("/etc/own/reconfig.sh".to_owned()),
    };
    let mut book = ScriptBook::new([("a".to_owned(), own)].into_iter().collect());
    book.refresh([&m, &record("b", Some("/log/b.sh"))].into_iter());
    let a = book.get("a").unwrap();
    assert_eq!(a.notification.as_deref(), Some("/log/notify.sh"));
    assert_eq!(a.client_reconfig.as_deref(), Some("/etc/own/reconfig.sh"));
    assert_eq!(
        a.own,
        Own {
            notification: false,
            client_reconfig: true
        }
    );
    assert_eq!(book.get("b").map(|s| s.own), Some(Own::default()));
    let mut e = switch(4, 6390, 6391);
    e.event.master = Some("a".to_owned());
    let jobs = jobs_for(&e, Some(a));
    let own: Vec<(HookKind, bool)> = jobs.iter().map(|j| (j.hook, j.own)).collect();
    assert_eq!(
        own,
        [
            (HookKind::Notification, false),
            (HookKind::ClientReconfig, true)
        ]
    );
}
