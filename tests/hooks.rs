//! Sentinel's scripts end to end: a real three-node cluster, real redis-server processes and
//! shell scripts that append their arguments to a file. notification-script gets `+set` and the
//! failover's WARNING events, client-reconfig-script gets Sentinel's seven arguments after a
//! kill -9 failover, both on the leader only; `deny-scripts-reconfig` (default true) refuses the
//! SET with Sentinel's exact message.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::redis::Redis;
use common::{eventually, serial, Cluster};
use raftinel::pb::{self, Consistency};

const DENIED: &str = "ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration";

/// A script that appends one line per run: its argument count, then each argument, tab-separated
/// (one `printf`, so concurrent runs do not interleave).
fn recorder(dir: &Path, name: &str, out: &Path) -> PathBuf {
    let path = dir.join(name);
    let body = format!(
        "#!/bin/sh\nline=\"$#\"\nfor a in \"$@\"; do line=\"$line\t$a\"; done\nprintf '%s\\n' \"$line\" >> '{}'\n",
        out.display()
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn set(c: &Cluster, via: u64, option: &str, value: &str) -> Result<u64, tonic::Status> {
    let mut client = c.client(via).await;
    client
        .set(pb::SetRequest {
            name: "mymaster".into(),
            options: vec![pb::SetOption {
                option: option.into(),
                value: value.into(),
            }],
        })
        .await
        .map(|r| r.into_inner().index)
}

/// A failover committed on the leader runs notification-script for WARNING events and
/// client-reconfig-script with `<master-name> leader start <from-ip> <from-port> <to-ip> <to-port>`,
/// on the leader only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_on_the_leader_with_sentinels_arguments() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let mut c = Cluster::new(
        3,
        "default-down-after-ms = 1000\ndeny-scripts-reconfig = false\n",
    );
    let _logs = c.logs_on_panic(40);
    let dir = c.tmp.path().to_owned();
    let (notify_log, reconfig_log) = (dir.join("notify.log"), dir.join("reconfig.log"));
    let notify = recorder(&dir, "notify.sh", &notify_log);
    let reconfig = recorder(&dir, "reconfig.sh", &reconfig_log);
    let plain = dir.join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();

    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    eventually("the replica is known", Duration::from_secs(10), || async {
        c.get(leader, "mymaster", Consistency::Local)
            .await
            .ok()
            .filter(|x| x.replicas.len() == 1)
    })
    .await;

    // Allowed, but the path must be an executable file: Sentinel's messages, through a follower.
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let e = set(&c, follower, "notification-script", plain.to_str().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        e.message(),
        "ERR Notification script seems non existing or non executable"
    );
    let missing = dir.join("missing.sh");
    let e = set(
        &c,
        leader,
        "client-reconfig-script",
        missing.to_str().unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        e.message(),
        "ERR Client reconfiguration script seems non existing or non executable"
    );

    let out = c.ctl_settled(&[
        "set",
        "mymaster",
        "notification-script",
        notify.to_str().unwrap(),
        "client-reconfig-script",
        reconfig.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = c
        .get(leader, "mymaster", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(x.notification_script, notify.display().to_string());
    assert_eq!(x.client_reconfig_script, reconfig.display().to_string());

    // Both `+set`s reach the notification script (set by the same entry), with Sentinel's payload.
    let old = m.port;
    let prefix = format!("master mymaster 127.0.0.1 {old}");
    let want_sets = [
        format!("2\t+set\t{prefix} notification-script {}", notify.display()),
        format!(
            "2\t+set\t{prefix} client-reconfig-script {}",
            reconfig.display()
        ),
    ];
    eventually("+set notified", Duration::from_secs(10), || async {
        let got = lines(&notify_log);
        want_sets.iter().all(|w| got.contains(w)).then_some(())
    })
    .await;

    // kill -9 of the master: the replica is promoted, and the scripts run.
    let leader_before = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    m.kill9();
    let new = eventually("a new master", Duration::from_secs(15), || async {
        c.get(leader_before, "mymaster", Consistency::Local)
            .await
            .ok()
            .filter(|x| x.port != u32::from(old))
    })
    .await;
    assert_eq!(new.port, u32::from(r1.port));
    let want_reconfig = format!(
        "7\tmymaster\tleader\tstart\t127.0.0.1\t{old}\t127.0.0.1\t{}",
        r1.port
    );
    let want_switch = format!(
        "2\t+switch-master\tmymaster 127.0.0.1 {old} 127.0.0.1 {}",
        r1.port
    );
    eventually(
        "client-reconfig-script ran",
        Duration::from_secs(10),
        || async { lines(&reconfig_log).contains(&want_reconfig).then_some(()) },
    )
    .await;
    eventually(
        "+switch-master notified",
        Duration::from_secs(10),
        || async { lines(&notify_log).contains(&want_switch).then_some(()) },
    )
    .await;
    eventually(
        "+failover-end notified",
        Duration::from_secs(20),
        || async {
            let got = lines(&notify_log);
            got.iter()
                .any(|l| l.starts_with("2\t+failover-end\tmaster mymaster 127.0.0.1 "))
                .then_some(())
        },
    )
    .await;

    // WARNING events only: `+slave` and the NOTICE failover states are not notified.
    let got = lines(&notify_log);
    let kinds: Vec<&str> = got.iter().filter_map(|l| l.split('\t').nth(1)).collect();
    for kind in [
        "+new-epoch",
        "+try-failover",
        "+elected-leader",
        "+failover-state-select-slave",
        "+selected-slave",
        "+promoted-slave",
        "+failover-state-reconf-slaves",
    ] {
        assert!(kinds.contains(&kind), "{kind} not notified: {got:#?}");
    }
    for kind in [
        "+slave",
        "+failover-state-send-slaveof-noone",
        "+failover-state-wait-promotion",
        "+monitor",
    ] {
        assert!(!kinds.contains(&kind), "{kind} notified: {got:#?}");
    }
    assert!(
        got.iter().all(|l| l.starts_with("2\t")),
        "two arguments each: {got:#?}"
    );

    // Exactly once, by the leader, while the leader did not change.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader_after = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    let ran: Vec<u64> = c.grep("script ran").iter().map(|(id, _)| *id).collect();
    assert!(!ran.is_empty(), "runs are logged");
    if leader_after == leader_before {
        assert!(
            ran.iter().all(|id| *id == leader_before),
            "scripts ran on {ran:?}, the leader is {leader_before}"
        );
        assert_eq!(lines(&reconfig_log), [want_reconfig]);
        let switches = lines(&notify_log)
            .iter()
            .filter(|l| **l == want_switch)
            .count();
        assert_eq!(switches, 1);
    } else {
        // At-least-once: the new leader may have run them again.
        eprintln!("leader moved {leader_before} -> {leader_after}: exactly-once not checked");
    }
}

/// `deny-scripts-reconfig` defaults to true: SET of either script, even clearing it, is refused
/// with Sentinel's message, on the leader and through a follower; other errors keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_paths_are_denied_by_default() {
    let _g = serial();
    let mut c = Cluster::new(3, "");
    let _logs = c.logs_on_panic(40);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let port = common::free_port();
    c.monitor(leader, "mymaster", u32::from(port)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    for via in [leader, follower] {
        for (option, value) in [
            ("notification-script", "/bin/true"),
            ("client-reconfig-script", "/bin/true"),
            ("Notification-Script", ""),
        ] {
            let e = set(&c, via, option, value).await.unwrap_err();
            assert_eq!(
                e.code(),
                tonic::Code::FailedPrecondition,
                "{option} via {via}"
            );
            assert_eq!(e.message(), DENIED, "{option} via {via}");
        }
    }
    let out = c.ctl(&["set", "mymaster", "notification-script", "/bin/true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(DENIED), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");

    // Unlike Sentinel, a master this node does not know is no reason to skip the check (it may
    // exist by the time the SET commits: a racing MONITOR); an earlier bad option still comes
    // first, as in Sentinel.
    let mut client = c.client(leader).await;
    let e = client
        .set(pb::SetRequest {
            name: "nosuch".into(),
            options: vec![pb::SetOption {
                option: "notification-script".into(),
                value: "/bin/true".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), DENIED);
    let e = client
        .set(pb::SetRequest {
            name: "mymaster".into(),
            options: vec![
                pb::SetOption {
                    option: "bogus".into(),
                    value: "1".into(),
                },
                pb::SetOption {
                    option: "notification-script".into(),
                    value: "/bin/true".into(),
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "ERR Unknown option or number of arguments for SENTINEL SET 'bogus'"
    );
    // Other options are unaffected, and nothing was set.
    set(&c, follower, "parallel-syncs", "2").await.unwrap();
    let x = c
        .get(leader, "mymaster", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(x.parallel_syncs, 2);
    assert_eq!(x.notification_script, "");
    assert_eq!(x.client_reconfig_script, "");
}

/// A map reply (RESP2: a flat array of field, value) as pairs.
fn fields(v: &redis::Value) -> Vec<(String, redis::Value)> {
    let items = match v {
        redis::Value::Array(a) => a.clone(),
        redis::Value::Map(m) => m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        other => panic!("not a map: {other:?}"),
    };
    items
        .chunks(2)
        .map(|kv| {
            (
                redis::from_redis_value(kv[0].clone()).unwrap(),
                kv[1].clone(),
            )
        })
        .collect()
}

fn text(v: &redis::Value) -> String {
    redis::from_redis_value(v.clone()).unwrap()
}

fn sentinel_query(addr: &str, args: &[&str]) -> redis::Value {
    let mut conn = redis::Client::open(format!("redis://{addr}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap();
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut conn)
        .unwrap()
}

/// SENTINEL PENDING-SCRIPTS and INFO's script counts show the script the leader is running, with
/// Sentinel's fields; followers run none; the queue empties when the script ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_scripts_shows_what_runs() {
    let _g = serial();
    let m = Redis::start(&[]);
    let mut c = Cluster::new(
        3,
        "default-down-after-ms = 1000\ndeny-scripts-reconfig = false\n",
    );
    let _logs = c.logs_on_panic(40);
    let dir = c.tmp.path().to_owned();
    let pid_file = dir.join("slow.pid");
    let slow = dir.join("slow.sh");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nprintf '%s' $$ > '{}'\nexec sleep 3\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    assert_eq!(
        sentinel_query(&c.nodes[&leader].sentinel, &["SENTINEL", "PENDING-SCRIPTS"]),
        redis::Value::Array(vec![])
    );

    // The `+set` of the script itself runs it on the leader.
    set(&c, leader, "notification-script", slow.to_str().unwrap())
        .await
        .unwrap();
    let pid = eventually("the script started", Duration::from_secs(10), || async {
        std::fs::read_to_string(&pid_file)
            .ok()
            .filter(|p| !p.is_empty())
    })
    .await;
    // The node that runs it is the leader when the +set applied; ask every node.
    let queues: Vec<(u64, redis::Value)> = (1..=3)
        .map(|id| {
            let q = sentinel_query(&c.nodes[&id].sentinel, &["SENTINEL", "PENDING-SCRIPTS"]);
            (id, q)
        })
        .collect();
    let running: Vec<_> = queues
        .iter()
        .filter(|(_, q)| *q != redis::Value::Array(vec![]))
        .collect();
    assert_eq!(running.len(), 1, "one node runs it: {queues:?}");
    let (runner, queue) = running[0].clone();
    let lead = c.nodes[&runner].sentinel.clone();
    let redis::Value::Array(jobs) = &queue else {
        panic!("{queue:?}")
    };
    assert_eq!(jobs.len(), 1, "{queue:?}");
    let job = fields(&jobs[0]);
    let names: Vec<&str> = job.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["argv", "flags", "pid", "run-time", "retry-num"]);
    let redis::Value::Array(argv) = &job[0].1 else {
        panic!("{job:?}")
    };
    assert_eq!(text(&argv[0]), slow.display().to_string());
    assert_eq!(text(&argv[1]), "+set");
    assert_eq!(text(&job[1].1), "running");
    assert_eq!(text(&job[2].1), pid);
    assert!(text(&job[3].1).parse::<u64>().unwrap() < 10_000);
    assert_eq!(text(&job[4].1), "1", "Sentinel counts the first run");
    let info = text(&sentinel_query(&lead, &["INFO", "sentinel"]));
    assert!(
        info.contains("sentinel_running_scripts:1\r\nsentinel_scripts_queue_length:1\r\n"),
        "{info}"
    );

    eventually("the script ended", Duration::from_secs(10), || async {
        (sentinel_query(&lead, &["SENTINEL", "PENDING-SCRIPTS"]) == redis::Value::Array(vec![]))
            .then_some(())
    })
    .await;
    let info = text(&sentinel_query(&lead, &["INFO", "sentinel"]));
    assert!(
        info.contains("sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\n"),
        "{info}"
    );
}
