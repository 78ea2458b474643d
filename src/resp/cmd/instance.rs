//! Sentinel's instance-state replies (`addReplySentinelRedisInstance`): the field/value maps of
//! SENTINEL MASTERS / MASTER / REPLICAS / SENTINELS, numbers as bulk strings, in Sentinel's
//! field order. The address and config come from the log; health from this node's own
//! observations. No I/O.

use std::time::Duration;

use tokio::time::Instant;

use crate::monitor::{NodeReport, Observation, ReportedRole};
use crate::redis::Hostnames;
use crate::resp::peers::PeerSeen;
use crate::resp::reply::Reply;
use crate::topology::{Addr, FailoverState, MasterRecord, Reconf, RequestKind};

/// What a master's reply needs beyond its record.
pub struct MasterView<'a> {
    pub master: &'a MasterRecord,
    pub report: &'a NodeReport,
    pub other_sentinels: usize,
    /// How this node announces addresses (`announce-hostnames`).
    pub hostnames: &'a Hostnames,
}

fn num(n: impl itoa::Integer) -> Reply {
    Reply::num(n)
}

/// Sentinel's flags, in its fixed order.
fn flags(sdown: bool, odown: bool, role: &str, disconnected: bool, extra: &[&str]) -> String {
    let mut f: Vec<&str> = Vec::new();
    if sdown {
        f.push("s_down");
    }
    if odown {
        f.push("o_down");
    }
    f.push(role);
    if disconnected {
        f.push("disconnected");
    }
    f.extend_from_slice(extra);
    f.join(",")
}

/// The link and ping fields every instance type starts with.
fn common(
    fields: &mut Vec<(&'static str, Reply)>,
    name: String,
    addr: &Addr,
    run_id: &str,
    flags: String,
) {
    fields.push(("name", name.into()));
    fields.push(("ip", addr.host.as_str().into()));
    fields.push(("port", num(addr.port)));
    fields.push(("runid", run_id.into()));
    fields.push(("flags", flags.into()));
    fields.push(("link-pending-commands", num(0)));
    fields.push(("link-refcount", num(1)));
}

/// Sentinel's ping ages. `last-ping-sent` is how long the PING now unanswered has waited (0 when
/// none is): this node PINGs every `ping_ms`, so one is outstanding once the last reply is older
/// than a period.
fn pings(fields: &mut Vec<(&'static str, Reply)>, obs: Option<&Observation>, ping_ms: u64) {
    let age = obs.map_or(0, |o| o.reply_age_ms);
    fields.push(("last-ping-sent", num(age.saturating_sub(ping_ms))));
    fields.push(("last-ok-ping-reply", num(age)));
    fields.push(("last-ping-reply", num(age)));
}

fn role_name(obs: Option<&Observation>, default: &'static str) -> &'static str {
    match obs.and_then(|o| o.role.as_ref()) {
        Some(ReportedRole::Master { .. }) => "master",
        Some(ReportedRole::Replica { .. }) => "slave",
        None => default,
    }
}

/// This node's connection to it is down (or never came up): Sentinel's `disconnected`.
fn disconnected(obs: Option<&Observation>) -> bool {
    !obs.is_some_and(|o| o.link_up)
}

/// The fields from this node's probes that masters and replicas share, in Sentinel's order;
/// `odown_ms` is how long the log has said the master is objectively down.
fn health(
    fields: &mut Vec<(&'static str, Reply)>,
    m: &MasterRecord,
    obs: Option<&Observation>,
    (role, odown_ms): (&'static str, Option<u64>),
) {
    let ping_ms = crate::failover::run::ping_interval_ms(m.down_after_ms);
    pings(fields, obs, ping_ms);
    if let Some(o) = obs.filter(|o| o.sdown) {
        let down_for = o.reply_age_ms.saturating_sub(m.down_after_ms);
        fields.push(("s-down-time", num(down_for)));
    }
    if let Some(ms) = odown_ms {
        fields.push(("o-down-time", num(ms)));
    }
    fields.push(("down-after-milliseconds", num(m.down_after_ms)));
    let info_age = obs.and_then(|o| o.info_age_ms).unwrap_or(0);
    fields.push(("info-refresh", num(info_age)));
    fields.push(("role-reported", role_name(obs, role).into()));
    fields.push(("role-reported-time", num(obs.map_or(0, |o| o.role_age_ms))));
}

pub fn master(v: &MasterView) -> Reply {
    let m = v.master;
    let obs = v.report.observation(&m.name, &m.addr);
    let sdown = obs.is_some_and(|o| o.sdown);
    let mut extra = Vec::new();
    if m.failover.is_some() {
        extra.push("failover_in_progress");
    }
    let forced = matches!(&m.request, Some(r) if r.kind == RequestKind::Forced)
        || m.failover.as_ref().is_some_and(|f| f.reason == "forced");
    if forced {
        extra.push("force_failover");
    }
    if obs.is_some_and(|o| o.reboot) {
        extra.push("master_reboot");
    }
    let mut fields = Vec::with_capacity(24);
    common(
        &mut fields,
        m.name.clone(),
        &v.hostnames.announce(&m.addr),
        obs.map_or("", |o| o.run_id.as_str()),
        flags(
            sdown,
            v.master.odown.is_some(),
            "master",
            disconnected(obs),
            &extra,
        ),
    );
    if let Some(f) = &m.failover {
        let state = match f.state {
            FailoverState::Started => "wait_promotion",
            FailoverState::Promoted => "reconf_slaves",
        };
        fields.push(("failover-state", state.into()));
    }
    let odown_ms = m
        .odown
        .map(|o| crate::admin::now_ms().saturating_sub(o.since_ms));
    health(&mut fields, m, obs, ("master", odown_ms));
    fields.push(("config-epoch", num(m.config_epoch)));
    fields.push(("num-slaves", num(m.replicas.len())));
    fields.push(("num-other-sentinels", num(v.other_sentinels)));
    fields.push(("quorum", num(m.quorum)));
    fields.push(("failover-timeout", num(m.failover_timeout_ms)));
    fields.push(("parallel-syncs", num(m.parallel_syncs)));
    if let Some(s) = &m.notification_script {
        fields.push(("notification-script", s.as_str().into()));
    }
    if let Some(s) = &m.client_reconfig_script {
        fields.push(("client-reconfig-script", s.as_str().into()));
    }
    Reply::fields(fields)
}

pub fn replicas(v: &MasterView) -> Reply {
    let m = v.master;
    Reply::Array(
        m.replicas
            .iter()
            .map(|r| replica(v, &r.addr, &r.run_id))
            .collect(),
    )
}

fn replica(v: &MasterView, addr: &Addr, run_id: &str) -> Reply {
    let m = v.master;
    let obs = v.report.observation(&m.name, addr);
    let sdown = obs.is_some_and(|o| o.sdown);
    let run_id = obs
        .map(|o| o.run_id.as_str())
        .filter(|r| !r.is_empty())
        .unwrap_or(run_id);
    let mut fields = Vec::with_capacity(22);
    let shown = v.hostnames.announce(addr);
    common(
        &mut fields,
        shown.to_string(),
        &shown,
        run_id,
        flags(
            sdown,
            false,
            "slave",
            disconnected(obs),
            &replica_flags(m, addr),
        ),
    );
    health(&mut fields, m, obs, ("slave", None));
    let link = obs.and_then(|o| match &o.role {
        Some(ReportedRole::Replica {
            master,
            link_up,
            link_down_ms,
            priority,
            offset,
            ..
        }) => Some((master, *link_up, *link_down_ms, *priority, *offset)),
        _ => None,
    });
    let (host, port) = link.map_or(("?".to_owned(), 0), |l| {
        (v.hostnames.announce(l.0).host.clone(), l.0.port)
    });
    fields.push(("master-link-down-time", num(link.map_or(0, |l| l.2))));
    let status = if link.is_some_and(|l| l.1) {
        "ok"
    } else {
        "err"
    };
    fields.push(("master-link-status", status.into()));
    fields.push(("master-host", host.into()));
    fields.push(("master-port", num(port)));
    fields.push(("slave-priority", num(link.map_or(100, |l| l.3))));
    fields.push(("slave-repl-offset", num(link.map_or(0, |l| l.4))));
    fields.push(("replica-announced", num(1)));
    Reply::fields(fields)
}

/// Sentinel's failover flags of a replica: the candidate of the failover in progress is
/// `promoted`; the others show how far they are in following it.
fn replica_flags(m: &MasterRecord, addr: &Addr) -> Vec<&'static str> {
    let mut out = Vec::new();
    if m.failover.as_ref().is_some_and(|f| f.candidate == *addr) {
        out.push("promoted");
    }
    match m.reconf.get(addr) {
        Some(Reconf::Sent) => out.push("reconf_sent"),
        Some(Reconf::Inprog) => out.push("reconf_inprog"),
        Some(Reconf::Done) => out.push("reconf_done"),
        None => {}
    }
    out
}

/// Another raftinel node, as SENTINEL SENTINELS lists a peer sentinel: `s_down` once a probe of
/// it has waited longer than the master's down-after, `disconnected` while the last probe failed,
/// with the ping ages of this node's probes of it.
pub fn sentinel(
    id: &str,
    addr: &Addr,
    down_after_ms: u64,
    seen: Option<&PeerSeen>,
    now: Instant,
) -> Reply {
    let mut fields = Vec::with_capacity(14);
    let down = seen.is_some_and(|s| s.is_down(now, Duration::from_millis(down_after_ms)));
    common(
        &mut fields,
        id.to_owned(),
        addr,
        id,
        flags(
            down,
            false,
            "sentinel",
            seen.is_some_and(|s| s.pending_since.is_some()),
            &[],
        ),
    );
    let age = |t: Instant| {
        u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX)
    };
    let ok_age = seen.map_or(0, |s| age(s.last_ok));
    fields.push((
        "last-ping-sent",
        num(seen.and_then(|s| s.pending_since).map_or(0, age)),
    ));
    fields.push(("last-ok-ping-reply", num(ok_age)));
    fields.push(("last-ping-reply", num(ok_age)));
    fields.push(("down-after-milliseconds", num(down_after_ms)));
    fields.push(("last-hello-message", num(0)));
    fields.push(("voted-leader", "?".into()));
    fields.push(("voted-leader-epoch", num(0)));
    Reply::fields(fields)
}

/// Whether this node sees a replica it could promote: reached, not down, priority above 0.
pub fn has_good_replica(m: &MasterRecord, report: &NodeReport) -> bool {
    m.replicas.iter().any(|r| {
        report.observation(&m.name, &r.addr).is_some_and(|o| {
            !o.sdown
                && matches!(o.role, Some(ReportedRole::Replica { priority, .. }) if priority > 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{FailoverRecord, FailoverRequest, Odown, ReplicaRecord};

    fn field<'a>(reply: &'a Reply, name: &str) -> Option<&'a Reply> {
        let Reply::Map(pairs) = reply else {
            panic!("not a map: {reply:?}")
        };
        pairs
            .iter()
            .find(|(k, _)| *k == Reply::from(name))
            .map(|(_, v)| v)
    }

    fn text(r: Option<&Reply>) -> String {
        match r {
            Some(Reply::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a bulk: {other:?}"),
        }
    }

    fn record() -> MasterRecord {
        let mut m = MasterRecord::new("m", Addr::new("10.0.0.1", 1), 2, 1000);
        for port in [2, 3] {
            m.replicas.push(ReplicaRecord {
                addr: Addr::new("10.0.0.1", port),
                run_id: String::new(),
                replid: String::new(),
            });
        }
        m
    }

    fn observed(port: u16, reply_age_ms: u64) -> Observation {
        Observation {
            addr: Addr::new("10.0.0.1", port),
            sdown: false,
            reply_age_ms,
            info_age_ms: Some(10),
            role: None,
            run_id: String::new(),
            replid: String::new(),
            repl_offset: 0,
            replid2: String::new(),
            second_repl_offset: None,
            role_age_ms: 4242,
            reboot: true,
            link_up: true,
        }
    }

    // Sentinel's flags and times from the log and this node's probes: o_down with o-down-time,
    // force_failover and master_reboot on the master; promoted and reconf_* on replicas; a PING
    // outstanding once the last reply is older than a period; role-reported-time.
    #[test]
    fn flags_and_times_of_a_failover_in_progress() {
        let mut m = record();
        m.odown = Some(Odown {
            since_ms: crate::admin::now_ms().saturating_sub(5_000),
            votes: 2,
            quorum: 2,
        });
        m.request = Some(FailoverRequest {
            kind: RequestKind::Forced,
            at_ms: 0,
        });
        m.failover = Some(FailoverRecord {
            epoch: 1,
            candidate: Addr::new("10.0.0.1", 2),
            candidate_holder: None,
            state: FailoverState::Promoted,
            reason: "forced".into(),
            from: m.addr.clone(),
            started_at_ms: 0,
            promoted_at_ms: Some(1),
            revoked: None,
        });
        m.reconf.insert(Addr::new("10.0.0.1", 3), Reconf::Inprog);
        let mut report = NodeReport::default();
        report
            .masters
            .insert("m".into(), vec![observed(1, 350), observed(2, 0)]);
        let master = super::master(&MasterView {
            master: &m,
            report: &report,
            other_sentinels: 2,
            hostnames: &Hostnames::default(),
        });
        assert_eq!(
            text(field(&master, "flags")),
            "o_down,master,failover_in_progress,force_failover,master_reboot"
        );
        let odown: u64 = text(field(&master, "o-down-time")).parse().unwrap();
        assert!((5_000..6_000).contains(&odown), "{odown}");
        assert_eq!(text(field(&master, "last-ping-sent")), "250");
        assert_eq!(text(field(&master, "role-reported-time")), "4242");
        let Reply::Array(replicas) = replicas(&MasterView {
            master: &m,
            report: &report,
            other_sentinels: 2,
            hostnames: &Hostnames::default(),
        }) else {
            panic!("not an array")
        };
        assert_eq!(text(field(&replicas[0], "flags")), "slave,promoted");
        assert_eq!(text(field(&replicas[0], "last-ping-sent")), "0");
        assert_eq!(
            text(field(&replicas[1], "flags")),
            "slave,disconnected,reconf_inprog"
        );
    }
}
