//! INFO in sentinel mode: the `server`, `clients`, `stats`, `cpu` and `sentinel` sections, with
//! `redis_mode:sentinel` (how StackExchange.Redis recognises a sentinel) and one
//! `masterN:name=…,status=…` line per master for monitoring tools, exactly as Sentinel writes
//! it; then raftinel's own `raftinel` section (each master's fencing), so that parsers that
//! split the masterN lines by `,` and `=` never meet a field Sentinel does not have.

use std::fmt::Write;

use bytes::Bytes;

use super::client::REDIS_VERSION;
use crate::resp::reply::Reply;
use crate::resp::{Ctx, Stats};

const SECTIONS: [&str; 6] = ["server", "clients", "stats", "cpu", "sentinel", "raftinel"];

pub fn info(ctx: &Ctx, args: &[Bytes]) -> Reply {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let mut out = String::with_capacity(1024);
    for section in SECTIONS {
        if !all && !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match section {
            "server" => server(ctx, &mut out),
            "clients" => clients(ctx, &mut out),
            "stats" => stats(ctx, &mut out),
            "cpu" => cpu(&mut out),
            "sentinel" => sentinel(ctx, &mut out),
            _ => raftinel(ctx, &mut out),
        }
    }
    Reply::Bulk(Bytes::from(out))
}

fn server(ctx: &Ctx, out: &mut String) {
    let uptime = ctx.started.elapsed().as_secs();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "# Server\r\n\
         redis_version:{REDIS_VERSION}\r\n\
         raftinel_version:{}\r\n\
         redis_git_sha1:00000000\r\n\
         redis_git_dirty:0\r\n\
         redis_mode:sentinel\r\n\
         os:{} {}\r\n\
         arch_bits:64\r\n\
         process_id:{}\r\n\
         run_id:{}\r\n\
         tcp_port:{}\r\n\
         server_time_usec:{now_us}\r\n\
         uptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\n\
         hz:10\r\n\
         configured_hz:10\r\n\
         executable:{exe}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::process::id(),
        ctx.run_id,
        ctx.port,
        uptime / 86_400,
    );
}

fn clients(ctx: &Ctx, out: &mut String) {
    let s = &ctx.stats;
    let _ = write!(
        out,
        "# Clients\r\nconnected_clients:{}\r\nblocked_clients:0\r\npubsub_clients:{}\r\n",
        Stats::get(&s.connected),
        Stats::get(&s.pubsub_clients),
    );
}

fn stats(ctx: &Ctx, out: &mut String) {
    let s = &ctx.stats;
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n",
        Stats::get(&s.connections_received),
        Stats::get(&s.commands_processed),
        Stats::get(&s.rejected),
    );
}

fn cpu(out: &mut String) {
    let (user, sys) = rusage();
    let _ = write!(
        out,
        "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n"
    );
}

/// This process's user and system CPU seconds.
fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a zeroed rusage, RUSAGE_SELF.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

fn sentinel(ctx: &Ctx, out: &mut String) {
    let view = ctx.view.borrow().clone();
    let report = ctx.report.borrow().clone();
    let sentinels = view.membership.membership().voter_ids().count().max(1);
    let scripts = ctx.scripts.borrow().clone();
    // Sentinel's: whole seconds in the current TILT, -1 outside one.
    let tilt_since = match report.tilt_since.filter(|_| report.tilt) {
        Some(t) => i64::try_from(t.elapsed().as_secs()).unwrap_or(i64::MAX),
        None => -1,
    };
    let running = scripts
        .iter()
        .filter(|p| matches!(p.state, crate::hooks::PendingState::Running { .. }))
        .count();
    let _ = write!(
        out,
        "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\nsentinel_tilt_since_seconds:{tilt_since}\r\n\
         sentinel_total_tilt:{}\r\nsentinel_running_scripts:{running}\r\nsentinel_scripts_queue_length:{}\r\n\
         sentinel_simulate_failure_flags:0\r\n",
        view.topology.masters().count(),
        u8::from(report.tilt),
        report.tilt_total,
        scripts.len(),
    );
    for (i, m) in view.topology.masters().enumerate() {
        let sdown = report
            .observation(&m.name, &m.addr)
            .is_some_and(|o| o.sdown);
        let status = if m.odown.is_some() {
            "odown"
        } else if sdown {
            "sdown"
        } else {
            "ok"
        };
        let _ = write!(
            out,
            "master{i}:name={},status={status},address={},slaves={},sentinels={sentinels}\r\n",
            m.name,
            ctx.hostnames.announce(&m.addr),
            m.replicas.len(),
        );
    }
}

/// `fencingN:name=…,fencing=…`, N as in the Sentinel section's masterN.
fn raftinel(ctx: &Ctx, out: &mut String) {
    let view = ctx.view.borrow().clone();
    out.push_str("# Raftinel\r\n");
    for (i, m) in view.topology.masters().enumerate() {
        let _ = write!(
            out,
            "fencing{i}:name={},fencing={}\r\n",
            m.name,
            m.fencing()
        );
    }
}
