//! The script runner with real `/bin/sh` scripts and short limits: argv and stdin, Sentinel's
//! retry rule end to end, the SIGKILL on timeout, the limit of 16 at once, and shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::hooks::plan::HookKind;

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn job(argv: Vec<String>) -> Job {
    Job {
        index: 1,
        master: "mymaster".to_owned(),
        event: "+set".to_owned(),
        hook: HookKind::Notification,
        argv,
        own: false,
    }
}

fn lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

const FAST: Limits = Limits {
    max_runtime: Duration::from_millis(300),
    retry_delay: Duration::from_millis(1),
    deny_scripts_reconfig: false,
};

/// A bus that publishes this node's own events at once.
fn open_bus() -> EventBus {
    let bus = EventBus::default();
    bus.open_from(0);
    bus
}

/// Submits `jobs`, closes the queue and waits for the runner to finish them all; returns the
/// `-script-error` messages published.
async fn run_all(jobs: Vec<Job>, limits: Limits) -> Vec<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    for j in jobs {
        tx.send(j).unwrap();
    }
    drop(tx);
    let cancel = CancellationToken::new();
    let (pending, _) = watch::channel(Arc::default());
    let bus = open_bus();
    let mut events = bus.subscribe();
    tokio::time::timeout(
        Duration::from_secs(30),
        run(rx, limits, (pending, bus, Arc::default()), cancel),
    )
    .await
    .unwrap();
    let mut errors = Vec::new();
    while let Ok(e) = events.try_recv() {
        match e.event.channel() {
            "-script-error" => errors.push(e.event.payload()),
            // `<path> <pid>`: one per kill of a script that ran too long.
            "-script-timeout" => errors.push(format!(
                "timeout {}",
                e.event.payload().split(' ').next().unwrap_or("")
            )),
            other => panic!("{other}"),
        }
    }
    errors
}

#[tokio::test]
async fn argv_stdin_and_the_retry_rule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let args = script(
        dir.path(),
        "args.sh",
        &format!("read x; echo \"$#|$1|$2|stdin-eof:$?\" >> {d}/args.runs"),
    );
    let ok = script(dir.path(), "ok.sh", &format!("echo run >> {d}/ok.runs"));
    let twice = script(
        dir.path(),
        "twice.sh",
        &format!(
            "echo run >> {d}/twice.runs\n[ \"$(wc -l < {d}/twice.runs)\" -ge 3 ] && exit 0\nexit 1"
        ),
    );
    let two = script(
        dir.path(),
        "two.sh",
        &format!("echo run >> {d}/two.runs\nexit 2"),
    );
    let always = script(
        dir.path(),
        "one.sh",
        &format!("echo run >> {d}/one.runs\nexit 1"),
    );
    let slow = script(
        dir.path(),
        "slow.sh",
        &format!("echo run >> {d}/slow.runs\nexec sleep 30"),
    );
    let signal = script(
        dir.path(),
        "sig.sh",
        &format!("echo run >> {d}/sig.runs\nkill -TERM $$"),
    );
    let started = Instant::now();
    let missing = dir.path().join("missing.sh").display().to_string();
    let mut errors = run_all(
        vec![
            job(vec![
                args,
                "+set".to_owned(),
                "master m 1.2.3.4 5 quorum 2".to_owned(),
            ]),
            job(vec![ok]),
            job(vec![twice]),
            job(vec![two]),
            job(vec![always]),
            job(vec![slow]),
            job(vec![signal]),
            job(vec![missing.clone()]),
        ],
        FAST,
    )
    .await;
    // Sentinel's `-script-error <path> <bysignal> <exitcode>` for each run given up on.
    errors.sort();
    let mut want = vec![
        format!("{d}/two.sh 0 2"),
        format!("{d}/one.sh 0 1"),
        format!("{d}/sig.sh 15 0"),
        format!("{d}/slow.sh 9 0"),
        format!("{missing} 0 2"),
    ];
    want.extend((0..plan::MAX_RUNS).map(|_| format!("timeout {d}/slow.sh")));
    want.sort();
    assert_eq!(errors, want);
    let runs = |name: &str| lines(&dir.path().join(format!("{name}.runs"))).len();
    assert_eq!(
        lines(&dir.path().join("args.runs")),
        ["2|+set|master m 1.2.3.4 5 quorum 2|stdin-eof:1"]
    );
    assert_eq!(runs("ok"), 1, "exit 0: done");
    assert_eq!(runs("twice"), 3, "exit 1: retried until it succeeds");
    assert_eq!(runs("two"), 1, "exit 2: not retried");
    assert_eq!(
        runs("one"),
        plan::MAX_RUNS as usize,
        "exit 1: at most 10 runs"
    );
    assert_eq!(
        runs("sig"),
        plan::MAX_RUNS as usize,
        "a signal counts as exit 1"
    );
    assert_eq!(
        runs("slow"),
        plan::MAX_RUNS as usize,
        "killed at the time limit, and retried"
    );
    // Ten 300 ms kills of the slow script, not ten 30 s sleeps.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn at_most_sixteen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let body = format!("s=$(date +%s%N)\nsleep 0.4\necho \"$s $(date +%s%N)\" >> {d}/spans");
    let path = script(dir.path(), "span.sh", &body);
    let limits = Limits {
        max_runtime: Duration::from_secs(10),
        ..FAST
    };
    run_all((0..24).map(|_| job(vec![path.clone()])).collect(), limits).await;
    let spans: Vec<(u128, u128)> = lines(&dir.path().join("spans"))
        .iter()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 24);
    let overlap = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert!(overlap <= plan::MAX_RUNNING, "{overlap} ran at once");
    assert!(overlap >= 8, "the first ones run together: {overlap}");
}

#[tokio::test]
async fn cancel_kills_running_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let path = script(
        dir.path(),
        "long.sh",
        &format!("echo $$ > {d}/pid\nexec sleep 30"),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(job(vec![path])).unwrap();
    let cancel = CancellationToken::new();
    let (pending, mut shown) = watch::channel(Arc::default());
    let runner = tokio::spawn(run(
        rx,
        Limits::new(false),
        (pending, open_bus(), Arc::default()),
        cancel.clone(),
    ));
    let pid_file = dir.path().join("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    let pid = loop {
        if let Some(pid) = lines(&pid_file).first().filter(|p| !p.is_empty()) {
            break pid.clone();
        }
        assert!(Instant::now() < deadline, "the script did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The queue shows it running, with the script's pid once the child exists.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now: PendingScripts = shown.borrow_and_update().clone();
        if let [Pending {
            state: PendingState::Running { pid: p, .. },
            retry_num: 1,
            ..
        }] = now.as_slice()
        {
            if p.to_string() == pid {
                break;
            }
        }
        assert!(Instant::now() < deadline, "not shown running: {now:?}");
        let _ = tokio::time::timeout(Duration::from_millis(50), shown.changed()).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .unwrap()
        .unwrap();
    // Gone, or a zombie about to be reaped: not sleeping any more.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "script {pid} still running: {stat}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Invariant 12, at the point of use: with this node's deny-scripts-reconfig = true nothing set
// through the log runs here, however the SET got in; a job whose argv would carry a leading '-'
// from a master name, or control characters, never runs either.
#[tokio::test]
async fn the_runner_enforces_this_nodes_policy_and_vets_argv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let path = script(dir.path(), "rec.sh", &format!("echo \"$1\" >> {d}/runs"));
    let good = job(vec![
        path.clone(),
        "-sdown".to_owned(),
        "master m 1.2.3.4 5".to_owned(),
    ]);
    let denied = Limits {
        deny_scripts_reconfig: true,
        ..FAST
    };
    run_all(vec![good.clone()], denied).await;
    assert!(
        lines(&dir.path().join("runs")).is_empty(),
        "denied, yet it ran"
    );

    let mut dash_name = good.clone();
    dash_name.master = "-oProxyCommand=x".to_owned();
    let mut reconfig = good.clone();
    reconfig.hook = HookKind::ClientReconfig;
    reconfig.argv = vec![path.clone(), "-x".to_owned(), "leader".to_owned()];
    let mut newline = good.clone();
    newline.argv[2] = "master m\nx".to_owned();
    run_all(vec![dash_name, reconfig, newline, good], FAST).await;
    // Only the valid job ran; a notification's event type may start with '-' (Sentinel's).
    assert_eq!(lines(&dir.path().join("runs")), ["-sdown"]);
}

// A script gets none of the node's ambient capabilities (CAP_NET_ADMIN/CAP_NET_RAW for the VIP).
#[tokio::test]
async fn scripts_run_without_ambient_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let path = script(
        dir.path(),
        "caps.sh",
        &format!("grep CapAmb /proc/self/status >> {d}/caps"),
    );
    run_all(vec![job(vec![path])], FAST).await;
    assert_eq!(
        lines(&dir.path().join("caps")),
        ["CapAmb:\t0000000000000000"]
    );
}

/// Running first (oldest first), then waiting for a slot, then waiting for a retry.
#[test]
fn the_queue_is_shown_running_first() {
    let now = Instant::now();
    let started = |argv: &str, secs: u64, pid: u32| Started {
        argv: vec![argv.to_owned()],
        at: now - Duration::from_secs(secs),
        retry_num: 0,
        pid,
    };
    let running = [started("/new", 1, 11), started("/old", 5, 22)];
    let mut queue = Queue::default();
    queue.delayed.push((
        now + Duration::from_secs(30),
        Entry {
            job: job(vec!["/retry".into()]),
            runs: 2,
        },
    ));
    queue.ready.push_back(Entry {
        job: job(vec!["/ready".into()]),
        runs: 0,
    });
    let shown = snapshot(running.iter(), &queue);
    let order: Vec<(&str, u32)> = shown
        .iter()
        .map(|p| (p.argv[0].as_str(), p.retry_num))
        .collect();
    assert_eq!(
        order,
        [("/old", 0), ("/new", 0), ("/ready", 0), ("/retry", 2)]
    );
    assert_eq!(
        shown[0].state,
        PendingState::Running {
            pid: 22,
            since: now - Duration::from_secs(5)
        }
    );
    assert_eq!(shown[2].state, PendingState::Scheduled { due: None });
    assert_eq!(
        shown[3].state,
        PendingState::Scheduled {
            due: Some(now + Duration::from_secs(30))
        }
    );
}
