//! The three-host namespace lab (deploy/lab/lab.sh): real redis-server and raftinel in hosts n1,
//! n2, n3, a client host, the VIP 10.77.0.200/24 on eth0. Host loss, a partition of the master's
//! host sampled every 10 ms, a frozen holder, a Raft leader loss and a Redis crash. Needs root (CI
//! is root); a lab that cannot be built fails the test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fault::{Cut, Daemon, Fault};
use common::lab::in_ns;
use common::lab_hosts::*;
use common::{bin, serial};

// --- host loss: the master's host cut off and its processes killed; the new master takes
//     writes and the VIP answers on the new host; the returning host brings no VIP back and its
//     Redis becomes a replica
#[test]
fn host_loss_moves_the_master_and_the_vip() {
    let _g = serial();
    let mut s = setup();
    let (host, writable, vip) = lose_host(&s, "n1");
    eprintln!(
        "host loss: new master {host} writable after {writable:?}, VIP answers after {vip:?}"
    );
    // down-after + 700 ms (the Raft leader was on n1), and max(down-after, L + m, V + 1 s) +
    // 300 ms for the VIP: generous bounds here, the benchmark reports the distribution.
    assert!(
        writable < Duration::from_millis(DOWN_AFTER_MS + 2000),
        "{writable:?}"
    );
    assert!(vip < Duration::from_millis(2000 + 2000), "{vip:?}");

    // The host returns: Redis (fenced, as the deploy kit starts it) and raftinel restart.
    s.lab.kill("n1", "redis");
    s.lab.kill("n1", "raftinel");
    s.lab.undo(&Fault::kill_host("n1"));
    s.start_redis("n1");
    s.start_node(1);
    let back = bounded("old master a replica", Duration::from_secs(20), || {
        role("n1").as_deref() == Some("slave")
    });
    assert!(back, "n1 did not become a replica\n{}", s.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        vip_hosts(),
        vec![host],
        "the VIP must stay on the new master's host"
    );
}

/// Kills `lost` (link down, then every process) and probes the two other hosts and the VIP from
/// the client every 10 ms: the new master's host, when it took a write, and when the VIP did.
/// The VIP is never on two hosts meanwhile.
fn lose_host(s: &Setup, lost: &'static str) -> (&'static str, Duration, Duration) {
    let others: Vec<&'static str> = HOSTS.into_iter().filter(|h| *h != lost).collect();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.inject(&Fault::kill_host(lost));
    let probes = [
        first_ok(t0, addr(others[0])),
        first_ok(t0, addr(others[1])),
        first_ok(t0, VIP),
    ];
    let [a, b, vip] = probes.map(|p| p.join().unwrap());
    let (most, _) = sampler.finish(0);
    let new_master = [(others[0], a), (others[1], b)]
        .into_iter()
        .filter_map(|(h, t)| Some((h, t?)))
        .min_by_key(|(_, t)| *t);
    let (host, writable) = new_master.unwrap_or_else(|| panic!("no new master\n{}", s.logs()));
    let vip = vip.unwrap_or_else(|| panic!("the VIP never answered\n{}", s.logs()));
    assert!(most <= 1, "the VIP was on {most} hosts at once");
    (host, writable, vip)
}

// --- host loss with the Raft leader on another host: the new master takes writes within
//     down-after + 300 ms in the terms (no election on the way)
#[test]
fn host_loss_with_the_raft_leader_elsewhere() {
    let _g = serial();
    // n1 initializes the cluster and leads; the master is on n3.
    let s = setup_on("n3");
    let leader = raft_leader(&s);
    assert_ne!(leader, Some(3), "the Raft leader is on the master's host");
    let (host, writable, vip) = lose_host(&s, "n3");
    eprintln!(
        "host loss, leader elsewhere: new master {host} writable after {writable:?}, VIP answers after {vip:?}"
    );
    assert!(
        writable < Duration::from_millis(DOWN_AFTER_MS + 1500),
        "{writable:?}\n{}",
        s.logs()
    );
    assert!(vip < Duration::from_millis(2000 + 2000), "{vip:?}");
}

/// The Raft leader's node id, as `ctl status` on n1 says.
fn raft_leader(s: &Setup) -> Option<u64> {
    let tls = s.ctl_tls();
    let mut args = vec![
        "run",
        "client",
        bin(),
        "ctl",
        "--cluster",
        "10.77.0.11:26380",
    ];
    args.extend(tls.iter().map(String::as_str));
    args.extend(["--json", "status"]);
    let out = s.lab.sh(&args);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["leader_id"].as_u64()
}

// --- partition of the master's host from the other two while the client still reaches it:
//     it stops acknowledging writes before the majority promotes; the VIP is never on two
//     hosts; after heal the client's ARP entry for the VIP points at the new holder
#[test]
fn partitioned_master_host_is_fenced_before_the_promotion() {
    let _g = serial();
    let s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    let Partitioned { acked, promoted } = partition_n1(&s, t0);
    let (host, at) = promoted.unwrap_or_else(|| panic!("no promotion\n{}", s.logs()));
    let last = acked.last().map(|(t, _)| *t).unwrap_or_default();
    let missing = missing_on(host, acked.iter().map(|(_, k)| k.as_str()))
        .unwrap_or_else(|| panic!("cannot read the new master {host}"));
    s.lab.undo(&Fault::partition("n1", Cut::Reject));
    std::thread::sleep(Duration::from_millis(3000));
    let (most, _) = sampler.finish(0);
    eprintln!(
        "partition: old master's last ack {last:?}, promotion of {host} at {at:?}, {} acks after the cut, {missing} of them missing on the new master, most VIP holders at once {most}",
        acked.len()
    );
    assert!(
        last < at,
        "the old master acknowledged a write after the promotion"
    );
    assert!(most <= 1, "the VIP was on {most} hosts at once");
    // L − F + R after the last renewal plus one guard round (~700 ms), with slack for a CI host
    // whose VM stalls for ~700 ms at a time (measured: steal up to 30 % at idle).
    assert!(
        last < Duration::from_millis(1500),
        "fenced only after {last:?}"
    );
    // After heal: the client's ARP cache points at the new holder.
    let new_mac = in_ns(host, || raftinel::lease::garp::mac_of("eth0").unwrap());
    let arp = in_ns("client", || {
        let _ = set(VIP, "after-heal");
        // This thread's namespace, not the process's: /proc/thread-self.
        std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default()
    });
    let mac = new_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let line: BTreeMap<&str, &str> = arp
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    assert_eq!(
        line.get(VIP).copied(),
        Some(mac.as_str()),
        "client ARP: {arp}"
    );
}

// --- raftinel on the holder SIGSTOPped with its Redis healthy: no promotion, no write lost, the
//     VIP gone by V + 1 s (the kernel lifetime: nothing of raftinel runs); back after SIGCONT
#[test]
fn frozen_holder_raftinel_loses_the_vip_but_no_write() {
    let _g = serial();
    let s = setup();
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.inject(&Fault::pause("n1", Daemon::Raftinel));
    let mut failed = 0;
    let mut written = Vec::new();
    for i in 0..400 {
        if t0.elapsed() > Duration::from_secs(4) {
            break;
        }
        let key = format!("f{i}");
        match in_ns("client", || set(addr("n1"), &key)) {
            Ok(()) => written.push(key),
            Err(_) => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let promoted: Vec<&str> = ["n2", "n3"]
        .into_iter()
        .filter(|h| role(h).as_deref() == Some("master"))
        .collect();
    s.lab.undo(&Fault::pause("n1", Daemon::Raftinel));
    let back = bounded("VIP back on n1", Duration::from_secs(10), || {
        vip_hosts() == vec!["n1"]
    });
    let samples = sampler.samples.lock().unwrap().clone();
    let (most, _) = sampler.finish(0);
    // Gone for good: the first sample after which n1 shows no VIP for 100 ms (a single sample can
    // miss it while the address is being refreshed).
    let gone = samples
        .windows(10)
        .find(|w| w.iter().all(|(_, s)| !s[0]))
        .map(|w| w[0].0);
    eprintln!(
        "frozen holder: {} writes, {failed} failed, VIP gone from n1 after {gone:?}, promoted {promoted:?}",
        written.len()
    );
    assert!(
        promoted.is_empty(),
        "a healthy master must not be replaced\n{}",
        s.logs()
    );
    assert_eq!(failed, 0, "the master is healthy: no write may fail");
    assert!(most <= 1);
    let gone = gone.unwrap_or_else(|| panic!("the VIP outlived the frozen holder\n{}", s.logs()));
    // V + 1 s of kernel granularity after the last refresh, which came at most R before the stop.
    assert!(gone <= Duration::from_millis(2000 + 200), "{gone:?}");
    assert!(
        back,
        "the VIP did not come back after SIGCONT\n{}",
        s.logs()
    );
    let kept = in_ns("client", || {
        let client = redis::Client::open(format!("redis://{}:6379/", addr("n1"))).unwrap();
        let mut c = client.get_connection().unwrap();
        written
            .iter()
            .filter(|k| redis::cmd("EXISTS").arg(*k).query::<i64>(&mut c) == Ok(1))
            .count()
    });
    assert_eq!(kept, written.len(), "acknowledged writes lost");
}

// --- raftinel on the holder SIGSTOPped and its host cut off from the others (the client still
//     reaches it): the one residual gap (DESIGN invariant 5). Nothing on the host can fence the
//     master, so the majority promotes once the lease is dead, and the old side's writes are
//     bounded by the operator's own min-replicas-max-lag (docs/leases-and-vip.md, "Quorum loss and the residual
//     gap"); the moment raftinel runs again it fences, still cut off. The VIP leaves with its
//     kernel lifetime and is never on two hosts.
#[test]
fn frozen_and_cut_off_holder_is_replaced_after_the_lease() {
    let _g = serial();
    let s = setup();
    // docs/leases-and-vip.md's mitigation: min-replicas on the data node itself, set in the log; the holder
    // puts it on its unfenced master.
    assert!(s.ctl(&[
        "set",
        "mymaster",
        "min-replicas-to-write",
        "1",
        "min-replicas-max-lag",
        "1"
    ]));
    assert!(
        bounded(
            "n1 carries the log's min-replicas",
            Duration::from_secs(5),
            || { min_replicas("n1").as_deref() == Some("1") }
        ),
        "n1 never carried min-replicas-to-write 1\n{}",
        s.logs()
    );
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    s.lab.inject(&Fault::pause("n1", Daemon::Raftinel));
    let Partitioned { acked, promoted } = partition_n1(&s, t0);
    let (host, at) = promoted.unwrap_or_else(|| panic!("no promotion\n{}", s.logs()));
    let last = acked.last().map(|(t, _)| *t).unwrap_or_default();
    let after = acked.iter().filter(|(t, _)| *t > at).count();
    let missing = missing_on(host, acked.iter().map(|(_, k)| k.as_str()))
        .unwrap_or_else(|| panic!("cannot read the new master {host}"));

    // raftinel runs again, its host still cut off: its lease is long over, so it fences at once.
    let resumed = Instant::now();
    s.lab.undo(&Fault::pause("n1", Daemon::Raftinel));
    let fenced = bounded("n1 fenced after SIGCONT", Duration::from_secs(3), || {
        min_replicas("n1").as_deref() == Some("2147483647")
    });
    let fenced_after = resumed.elapsed();
    s.lab.undo(&Fault::partition("n1", Cut::Reject));
    let back = bounded("old master a replica", Duration::from_secs(20), || {
        role("n1").as_deref() == Some("slave")
    });
    let (most, _) = sampler.finish(0);
    eprintln!(
        "frozen + cut off: promotion of {host} at {at:?}, old master's last ack {last:?}, {} acks after the cut ({after} after the promotion, {missing} missing on the new master), fenced {fenced_after:?} after SIGCONT, most VIP holders at once {most}",
        acked.len()
    );
    // The majority waits for the lease (L + m after the last renewal) and down-after.
    assert!(at >= Duration::from_millis(800), "promoted at {at:?}");
    assert!(most <= 1, "the VIP was on {most} hosts at once");
    // Replicas ACK every second; with max-lag 1 Redis refuses writes once the last ACK is over
    // 1 s old, counted in whole seconds and checked once a second: at most ~3 s, plus slack.
    assert!(
        last < Duration::from_millis(4500),
        "old side acknowledged writes until {last:?}"
    );
    assert!(fenced, "n1 not fenced after SIGCONT\n{}", s.logs());
    assert!(back, "n1 did not become a replica\n{}", s.logs());
    assert_eq!(
        vip_hosts(),
        vec![host],
        "the VIP must be on the new master's host"
    );
}

// --- a node without CAP_NET_ADMIN / CAP_NET_RAW says so in the log (`ctl master`), is never
//     given the VIP, and keeps serving everything else: its Redis becomes master and takes writes
#[test]
fn a_node_without_capabilities_is_never_given_the_vip() {
    let _g = serial();
    let mut s = setup();
    s.lab.kill("n2", "raftinel");
    s.start_node_under(
        2,
        &["setpriv", "--bounding-set", "-net_admin,-net_raw", "--"],
    );
    let mut shown = String::new();
    let recorded = bounded(
        "the log names node 2's problem",
        Duration::from_secs(15),
        || {
            let m = s.master_json();
            shown = m["vip_problems"]["2"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            !shown.is_empty()
        },
    );
    assert!(
        recorded,
        "node 2's VIP problem never reached the log\n{}",
        s.logs()
    );
    assert!(
        shown.contains("CAP_NET_ADMIN and CAP_NET_RAW"),
        "unclear: {shown}"
    );
    let text = String::from_utf8_lossy(&s.ctl_out(&["master", "mymaster"]).stdout).into_owned();
    assert!(text.contains("vip: node 2 cannot carry it"), "{text}");

    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    assert!(s.ctl(&["switchover", "mymaster", "--to", "10.77.0.12:6379"]));
    let writable = bounded("n2 takes writes", Duration::from_secs(15), || {
        in_ns("client", || set(addr("n2"), "on-n2").is_ok())
    });
    assert!(writable, "n2 never took writes\n{}", s.logs());
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let (most, _) = sampler.finish(0);
    eprintln!("no capabilities: node 2 said {shown:?}; n2 writable {took:?} after the switchover");
    assert!(most <= 1);
    assert_eq!(
        vip_hosts(),
        Vec::<&str>::new(),
        "node 2 must never hold the VIP"
    );
    // `ctl set` changes the VIP; the log then wins over the nodes' config.
    assert!(s.ctl(&["set", "mymaster", "vip", "10.77.0.201/24"]));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.master_json()["vip"].as_str(), Some("10.77.0.201/24"));
}

// --- invariant 12: a node whose own `vip-allowed` does not cover the log's VIP never adds it,
//     says why (`ctl master`), and serves everything else: its Redis becomes master and takes
//     writes
#[test]
fn a_node_never_adds_a_vip_outside_its_vip_allowed() {
    let _g = serial();
    let mut s = setup();
    s.lab.kill("n2", "raftinel");
    s.start_node_allowing(2, "10.99.0.0/24");
    let mut shown = String::new();
    let recorded = bounded(
        "the log names node 2's problem",
        Duration::from_secs(15),
        || {
            let m = s.master_json();
            shown = m["vip_problems"]["2"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            !shown.is_empty()
        },
    );
    assert!(
        recorded,
        "node 2's VIP problem never reached the log\n{}",
        s.logs()
    );
    assert!(
        shown.contains("outside this node's `vip-allowed` (10.99.0.0/24)"),
        "unclear: {shown}"
    );
    let t0 = Instant::now();
    let sampler = VipSampler::start(t0);
    assert!(s.ctl(&["switchover", "mymaster", "--to", "10.77.0.12:6379"]));
    let writable = bounded("n2 takes writes", Duration::from_secs(15), || {
        in_ns("client", || set(addr("n2"), "on-n2").is_ok())
    });
    assert!(writable, "n2 never took writes\n{}", s.logs());
    std::thread::sleep(Duration::from_secs(3));
    let (most, _) = sampler.finish(0);
    assert!(most <= 1);
    assert_eq!(
        vip_hosts(),
        Vec::<&str>::new(),
        "node 2 must never add a VIP outside its vip-allowed"
    );
}

// --- kill -9 of the Raft leader's raftinel, not on the master's host, with every Redis healthy:
//     the lease comes from a majority, not from the leader, so no write through the VIP fails
#[test]
fn raft_leader_loss_fences_nothing() {
    let _g = serial();
    // n1 initializes the cluster and leads; the master is on n3.
    let mut s = setup_on("n3");
    let leader = match raft_leader(&s) {
        Some(2) => "n2",
        Some(3) => panic!("the Raft leader is on the master's host; this test needs it elsewhere"),
        _ => "n1",
    };
    s.lab.kill(leader, "raftinel");
    let (ok, failed) = write_through_vip(Duration::from_secs(3), "l");
    eprintln!("raft leader {leader} killed: {ok} writes through the VIP, {failed} failed");
    assert_eq!(
        failed,
        0,
        "a Raft leader change fenced the master\n{}",
        s.logs()
    );
    assert_eq!(vip_hosts(), vec!["n3"]);
}

// --- redis-server crash with raftinel alive on its host: the node releases its grant, so the
//     failover does not wait for the lease to expire
#[test]
fn redis_crash_fails_over_without_waiting_for_the_lease() {
    let _g = serial();
    let mut s = setup();
    let t0 = Instant::now();
    s.lab.kill("n1", "redis");
    let probes = [first_ok(t0, addr("n2")), first_ok(t0, addr("n3"))];
    let [n2, n3] = probes.map(|p| p.join().unwrap());
    let writable = n2.into_iter().chain(n3).min();
    let released = std::fs::read_to_string(s.log("raftinel-n1")).unwrap_or_default();
    eprintln!("redis crash: new master writable after {writable:?}");
    let writable = writable.unwrap_or_else(|| panic!("no new master\n{}", s.logs()));
    assert!(
        released.contains("lease released"),
        "n1 never released its grant\n{}",
        s.logs()
    );
    // down-after + 300 ms is the goal (the benchmark reports it). The release path itself is
    // proven by the log line above; this bound only catches a gross regression, with slack for a
    // CI host whose VM stalls for ~700 ms at a time.
    assert!(
        writable < Duration::from_millis(DOWN_AFTER_MS + 2500),
        "{writable:?}\n{}",
        s.logs()
    );
}
