//! keepalived in the lab benchmark: the VRRP configuration (unicast peers, priority n1 150, n2 100,
//! n3 50, `notify_master` promoting the local Redis), a fresh lab per trial with n1 as MASTER, and
//! the kill -9 of every keepalived process on the master's host. The series themselves are run
//! and printed by benches/lab.rs, beside raftinel's and redis-sentinel's.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::lab::prefix;
use crate::common::lab_hosts::{addr, bounded, link_up, vip_hosts, Setup, VipSampler, HOSTS};
use crate::{plain_redis_setup, watch_vip, VipWatch};

/// The advert intervals compared: keepalived's default and a sub-second one.
pub const ADVERTS: [Duration; 2] = [Duration::from_secs(1), Duration::from_millis(100)];

pub fn installed() -> bool {
    Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The series' name in the printed rows.
pub fn name(advert: Duration) -> String {
    format!("keepalived {} s", advert.as_secs_f64())
}

fn priority(host: &str) -> u8 {
    match host {
        "n1" => 150,
        "n2" => 100,
        _ => 50,
    }
}

/// `vrrp_version 3` lets `advert_int` go below 1 s. Every host starts as BACKUP and the highest
/// priority that is heard wins (preemption is on).
fn config(host: &str, advert: Duration, notify: &str) -> String {
    let peers: Vec<&str> = HOSTS
        .iter()
        .filter(|h| **h != host)
        .map(|h| addr(h))
        .collect();
    format!(
        "global_defs {{\n  router_id {host}\n  vrrp_version 3\n  script_user root\n}}\n\
         vrrp_instance redis {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 77\n  \
         priority {}\n  advert_int {}\n  unicast_src_ip {}\n  unicast_peer {{\n    {}\n  }}\n  \
         virtual_ipaddress {{\n    10.77.0.200/24 dev eth0\n  }}\n  notify_master \"{notify}\"\n}}\n",
        priority(host),
        advert.as_secs_f64(),
        addr(host),
        peers.join("\n    "),
    )
}

/// Writes `host`'s config and promote script into the trial's directory (the namespaces share the
/// filesystem, so every file is per host) and starts its keepalived in the foreground (`-n`).
fn start(s: &mut Setup, host: &str, advert: Duration) -> Option<()> {
    let path = |what: &str| {
        s.dir
            .path()
            .join(format!("keepalived-{host}.{what}"))
            .display()
            .to_string()
    };
    let (conf, script) = (path("conf"), path("promote.sh"));
    let (pid, vrrp_pid, check_pid) = (path("pid"), path("vrrp.pid"), path("check.pid"));
    let promote = format!(
        "#!/bin/sh\nexec redis-cli -h {} -p 6379 REPLICAOF NO ONE\n",
        addr(host)
    );
    std::fs::write(&script, promote).ok()?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).ok()?;
    std::fs::write(&conf, config(host, advert, &script)).ok()?;
    let log = s.log(&format!("keepalived-{host}"));
    let args = [
        "keepalived",
        "-n",
        "-l",
        "-D",
        "-f",
        &conf,
        "-p",
        &pid,
        "-r",
        &vrrp_pid,
        "-c",
        &check_pid,
    ];
    s.lab.spawn(host, "keepalived", &args, &log);
    Some(())
}

fn log_has(s: &Setup, host: &str, text: &str) -> bool {
    std::fs::read_to_string(s.log(&format!("keepalived-{host}"))).is_ok_and(|l| l.contains(text))
}

/// Redis (n1 master, replicas in sync) and keepalived on every host, n1 MASTER with the VIP.
pub fn setup(advert: Duration) -> Option<Setup> {
    let mut s = plain_redis_setup()?;
    // n1 first, alone: a backup whose timer ran out before n1 won would promote its own Redis,
    // and nothing demotes it when n1 preempts.
    start(&mut s, "n1", advert)?;
    let master = bounded("VIP on n1", advert * 3 + Duration::from_secs(5), || {
        vip_hosts() == ["n1"]
    });
    if !master {
        println!("  !! {}: n1 never took the VIP", name(advert));
        return None;
    }
    for h in ["n2", "n3"] {
        start(&mut s, h, advert)?;
    }
    let backups = bounded("backups up", Duration::from_secs(5), || {
        ["n2", "n3"]
            .iter()
            .all(|h| log_has(&s, h, "Entering BACKUP STATE"))
    });
    // Each backup hears n1's adverts before the trial starts.
    std::thread::sleep(advert * 2);
    let ready = backups && vip_hosts() == ["n1"] && ["n2", "n3"].iter().all(|h| link_up(h));
    if !ready {
        println!(
            "  !! {}: backups not ready (VIP on {:?})",
            name(advert),
            vip_hosts()
        );
        return None;
    }
    Some(s)
}

/// SIGKILLs every process named keepalived in `host`; how many there were.
fn kill_keepalived(host: &str) -> usize {
    let ns = format!("{}{host}", prefix());
    let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() else {
        return 0;
    };
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "keepalived")
        })
        .map(str::to_owned)
        .collect();
    let killed = !pids.is_empty()
        && Command::new("kill")
            .arg("-9")
            .args(&pids)
            .status()
            .is_ok_and(|s| s.success());
    if killed {
        pids.len()
    } else {
        0
    }
}

/// kill -9 of keepalived on n1, the MASTER: all its processes are frozen first, so neither the
/// parent nor the VRRP child can send a priority-0 advert on the way out, as after a crash.
/// Watches the VIP for 3 adverts + 2 s.
pub fn daemon_kill(s: &Setup, advert: Duration) -> Option<VipWatch> {
    let sampler = VipSampler::start(Instant::now());
    s.lab.must(&["pause", "n1", "keepalived"]);
    let killed = kill_keepalived("n1");
    let watch = watch_vip(sampler, advert * 3 + Duration::from_secs(2));
    if killed < 2 {
        println!(
            "  !! {}: killed {killed} keepalived processes on n1, not 2",
            name(advert)
        );
        return None;
    }
    watch
}
