//! What `raftinel ctl` prints: a short human-readable form, or JSON with `--json`.

use serde_json::{json, Value};

use super::CtlError;
use crate::pb;
use crate::raft::incarnation;

fn print_json(v: &Value) -> Result<(), CtlError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn master_json(m: &pb::Master) -> Value {
    json!({
        "name": m.name,
        "addr": format!("{}:{}", m.host, m.port),
        "host": m.host,
        "port": m.port,
        "epoch": m.config_epoch,
        "max_epoch": m.epoch,
        "quorum": m.quorum,
        "effective_quorum": m.effective_quorum,
        "voters": m.voters,
        "down_after_ms": m.down_after_ms,
        "failover_timeout_ms": m.failover_timeout_ms,
        "parallel_syncs": m.parallel_syncs,
        "auth_user": m.auth_user,
        "auth_pass_set": m.auth_pass_set,
        "tls": m.tls,
        "min_replicas_to_write": m.min_replicas_to_write,
        "min_replicas_max_lag": m.min_replicas_max_lag,
        "replid": m.replid,
        "replicas": m.replicas.iter().map(|r| json!({
            "addr": format!("{}:{}", r.host, r.port), "run_id": r.run_id, "replid": r.replid,
        })).collect::<Vec<_>>(),
        "failover": m.failover.as_ref().map(|f| json!({
            "epoch": f.epoch,
            "candidate": format!("{}:{}", f.candidate_host, f.candidate_port),
            "state": f.state,
            "reason": f.reason,
            "started_at_ms": f.started_at_ms,
        })),
        "lease_holder": (m.lease_holder != 0).then_some(m.lease_holder),
        "fencing": m.fencing,
        "vip": (!m.vip.is_empty()).then_some(&m.vip),
        "vip_interface": (!m.vip_interface.is_empty()).then_some(&m.vip_interface),
        "vip_problems": m.vip_problems.iter().map(|(n, why)| (n.to_string(), why)).collect::<std::collections::BTreeMap<_, _>>(),
        "paused": m.paused,
        "conflict": (!m.conflict.is_empty()).then_some(&m.conflict),
        "notification_script": (!m.notification_script.is_empty()).then_some(&m.notification_script),
        "client_reconfig_script": (!m.client_reconfig_script.is_empty()).then_some(&m.client_reconfig_script),
        "applied_index": m.applied_index,
        "min_failover_interval_ms": m.min_failover_interval_ms,
        "retry": (m.retry_not_before_ms != 0).then(|| json!({
            "not_before_ms": m.retry_not_before_ms,
            "epoch": m.retry_epoch,
            "cause": m.retry_reason,
        })),
    })
}

/// `quorum N`, with the effective value when the voters clamp it; a node that predates the
/// field (voters 0) gets the configured value only.
fn quorum(m: &pb::Master) -> String {
    if m.voters == 0 {
        return format!("quorum {}", m.quorum);
    }
    crate::failover::quorum::describe(m.quorum, usize::try_from(m.voters).unwrap_or(usize::MAX))
}

pub fn master(m: &pb::Master, json: bool) -> Result<(), CtlError> {
    if json {
        return print_json(&master_json(m));
    }
    println!(
        "{}  {}:{}  epoch {}  {}",
        m.name,
        m.host,
        m.port,
        m.config_epoch,
        quorum(m)
    );
    println!(
        "  down-after-milliseconds {}  failover-timeout {}  parallel-syncs {}  auth-pass {}  tls {}",
        m.down_after_ms,
        m.failover_timeout_ms,
        m.parallel_syncs,
        if m.auth_pass_set { "set" } else { "none" },
        if m.tls { "yes" } else { "no" }
    );
    println!(
        "  min-replicas-to-write {}  min-replicas-max-lag {} ({})",
        m.min_replicas_to_write,
        m.min_replicas_max_lag,
        // Only a co-located node puts them on the master, when it lifts the fence.
        if m.lease_holder == 0 {
            "not applied: no raftinel on its host"
        } else {
            "applied by the lease holder"
        }
    );
    if m.min_failover_interval_ms != 0 {
        println!("  min-failover-interval {}", m.min_failover_interval_ms);
    }
    match m.lease_holder {
        0 => {
            println!("  fencing: none (no raftinel on its host; see docs/leases-and-vip.md: min-replicas-to-write)")
        }
        h => println!("  fencing: lease (held by node {h})"),
    }
    if !m.vip.is_empty() {
        let dev = if m.vip_interface.is_empty() {
            "the node's vip-interface"
        } else {
            &m.vip_interface
        };
        println!("  vip {} on {dev}", m.vip);
        let mut problems: Vec<_> = m.vip_problems.iter().collect();
        problems.sort();
        for (node, why) in problems {
            println!("  vip: node {node} cannot carry it: {why}");
        }
    }
    for r in &m.replicas {
        println!("  replica {}:{}", r.host, r.port);
    }
    if !m.notification_script.is_empty() {
        println!("  notification-script {}", m.notification_script);
    }
    if !m.client_reconfig_script.is_empty() {
        println!("  client-reconfig-script {}", m.client_reconfig_script);
    }
    if !m.conflict.is_empty() {
        println!(
            "  TOPOLOGY CONFLICT: {} (raftinel ctl resolve {} --keep HOST:PORT)",
            m.conflict, m.name
        );
    }
    if m.paused {
        println!("  PAUSED: observing only (raftinel ctl resume {})", m.name);
    }
    if let Some(why) = retry_line(m, now_ms()) {
        println!("  {why}");
    }
    if let Some(f) = &m.failover {
        println!(
            "  failover in progress: epoch {} to {}:{} ({}, {})",
            f.epoch, f.candidate_host, f.candidate_port, f.state, f.reason
        );
    }
    Ok(())
}

/// Why no automatic failover would start now: Sentinel's retry delay after an aborted attempt.
fn retry_line(m: &pb::Master, now_ms: u64) -> Option<String> {
    let left = m
        .retry_not_before_ms
        .checked_sub(now_ms)
        .filter(|l| *l > 0)?;
    Some(format!(
        "next automatic failover not before {}, in {} s: the attempt of \
         epoch {}: {} (raftinel ctl reset-failover-delay {} clears it; forced failovers are not \
         delayed)",
        rfc3339(m.retry_not_before_ms),
        left.div_ceil(1000),
        m.retry_epoch,
        m.retry_reason,
        m.name
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn masters(ms: &[pb::Master], json: bool) -> Result<(), CtlError> {
    if json {
        return print_json(&Value::Array(ms.iter().map(master_json).collect()));
    }
    if ms.is_empty() {
        println!("no masters monitored");
    }
    for m in ms {
        println!(
            "{}  {}:{}  epoch {}  {}  replicas {}",
            m.name,
            m.host,
            m.port,
            m.config_epoch,
            quorum(m),
            m.replicas.len()
        );
    }
    Ok(())
}

/// One row per instance, patronictl's `list` shape.
struct Row {
    master: String,
    instance: String,
    role: &'static str,
    epoch: u64,
    fencing: String,
    state: String,
}

fn rows(ms: &[pb::Master]) -> Vec<Row> {
    let mut out = Vec::new();
    for m in ms {
        let state = if !m.conflict.is_empty() {
            format!("conflict: {}", m.conflict)
        } else if let Some(f) = &m.failover {
            format!("failover to epoch {} ({})", f.epoch, f.reason)
        } else if m.paused {
            "paused".to_owned()
        } else {
            "ok".to_owned()
        };
        let fencing = match (m.fencing.as_str(), m.lease_holder) {
            ("lease", h) if h != 0 => format!("lease (node {h})"),
            (f, _) => f.to_owned(),
        };
        out.push(Row {
            master: m.name.clone(),
            instance: join_host_port(&m.host, m.port),
            role: "master",
            epoch: m.config_epoch,
            fencing,
            state,
        });
        for r in &m.replicas {
            out.push(Row {
                master: m.name.clone(),
                instance: join_host_port(&r.host, r.port),
                role: "replica",
                epoch: m.config_epoch,
                fencing: "read-only".to_owned(),
                state: String::new(),
            });
        }
    }
    out
}

fn join_host_port(host: &str, port: u32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub fn list(ms: &[pb::Master], json: bool) -> Result<(), CtlError> {
    let rows = rows(ms);
    if json {
        return print_json(&Value::Array(
            rows.iter()
                .map(|r| {
                    json!({
                        "master": r.master, "instance": r.instance, "role": r.role,
                        "epoch": r.epoch, "fencing": r.fencing, "state": r.state,
                    })
                })
                .collect(),
        ));
    }
    print!("{}", table(&rows));
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let head = ["MASTER", "INSTANCE", "ROLE", "EPOCH", "FENCING", "STATE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.master.clone(),
                r.instance.clone(),
                r.role.to_owned(),
                r.epoch.to_string(),
                r.fencing.clone(),
                r.state.clone(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, cell) in width.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&head.map(str::to_owned));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}

pub fn written(w: &pb::WriteReply, json: bool) -> Result<(), CtlError> {
    if json {
        return print_json(&json!({ "ok": true, "index": w.index }));
    }
    println!("OK (committed at log index {})", w.index);
    Ok(())
}

fn members_json(s: &pb::ClusterStatusReply) -> Value {
    Value::Array(
        s.members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "addr": m.addr, "sentinel_addr": m.sentinel_addr, "voter": m.voter,
                    "reachable": m.reachable, "leader": m.id == s.leader_id, "matched_index": m.matched_index,
                    "incarnation": (m.incarnation != 0).then(|| incarnation::show(m.incarnation)),
                })
            })
            .collect(),
    )
}

pub fn status(s: &pb::ClusterStatusReply, json: bool) -> Result<(), CtlError> {
    if json {
        return print_json(&json!({
            "node_id": s.node_id, "cluster_id": s.cluster_id, "state": s.state,
            "leader_id": (s.leader_id != 0).then_some(s.leader_id), "term": s.term,
            "commit_index": s.commit_index, "applied_index": s.applied_index,
            "last_log_index": s.last_log_index, "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index, "members": members_json(s),
            "security": s.security,
        }));
    }
    let leader = if s.leader_id == 0 {
        "none".to_string()
    } else {
        s.leader_id.to_string()
    };
    println!(
        "cluster {}  answered by node {} ({})",
        s.cluster_id, s.node_id, s.state
    );
    println!(
        "leader {}  term {}  commit {}  applied {}  snapshot {}  purged {}",
        leader, s.term, s.commit_index, s.applied_index, s.snapshot_index, s.purged_index
    );
    println!("security {}", s.security);
    print_members(s);
    Ok(())
}

fn print_members(s: &pb::ClusterStatusReply) {
    for m in &s.members {
        let incarnation = match m.incarnation {
            0 => "unknown".to_owned(),
            i => incarnation::show(i),
        };
        println!(
            "  {} {:<21} sentinel {:<21} {:<7} {:<11} incarnation {}{}",
            m.id,
            m.addr,
            m.sentinel_addr,
            if m.voter { "voter" } else { "learner" },
            if m.reachable {
                "reachable"
            } else {
                "UNREACHABLE"
            },
            incarnation,
            if m.id == s.leader_id { "  leader" } else { "" }
        );
    }
}

pub fn members(s: &pb::ClusterStatusReply, json: bool) -> Result<(), CtlError> {
    if json {
        return print_json(&members_json(s));
    }
    println!("security {}", s.security);
    print_members(s);
    Ok(())
}

pub fn history(h: &pb::HistoryReply, json: bool) -> Result<(), CtlError> {
    if json {
        let entries: Vec<Value> = h
            .entries
            .iter()
            .map(|e| {
                json!({
                    "epoch": e.epoch, "reason": e.reason, "from": e.from, "to": e.to,
                    "started_at_ms": e.started_at_ms, "finished_at_ms": e.finished_at_ms,
                    "duration_ms": e.finished_at_ms.saturating_sub(e.started_at_ms),
                    "aborted": (!e.aborted.is_empty()).then_some(&e.aborted),
                })
            })
            .collect();
        return print_json(&Value::Array(entries));
    }
    if h.entries.is_empty() {
        println!("no failovers");
    }
    for e in &h.entries {
        let outcome = if e.aborted.is_empty() {
            "done".to_string()
        } else {
            format!("aborted: {}", e.aborted)
        };
        println!(
            "{}  epoch {}  {} -> {}  {}  took {} ms  {}",
            rfc3339(e.started_at_ms),
            e.epoch,
            e.from,
            e.to,
            e.reason,
            e.finished_at_ms.saturating_sub(e.started_at_ms),
            outcome
        );
    }
    Ok(())
}

pub fn event(e: &pb::Event, json: bool) -> Result<(), CtlError> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&json!({
                "index": e.index, "kind": e.kind, "payload": e.payload, "master": e.master, "epoch": e.epoch,
            }))?
        );
    } else {
        println!("{} {} {} {}", rfc3339(now_ms()), e.index, e.kind, e.payload);
    }
    Ok(())
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, e.g. `2026-12-05T23:04:05.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_one_aligned_row_per_instance() {
        let m = pb::Master {
            name: "mymaster".into(),
            host: "10.0.0.1".into(),
            port: 6379,
            config_epoch: 2,
            fencing: "lease".into(),
            lease_holder: 1,
            replicas: vec![pb::Replica {
                host: "10.0.0.2".into(),
                port: 6379,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            table(&rows(&[m])),
            "MASTER    INSTANCE       ROLE     EPOCH  FENCING         STATE\n\
             mymaster  10.0.0.1:6379  master   2      lease (node 1)  ok\n\
             mymaster  10.0.0.2:6379  replica  2      read-only\n"
        );
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_511_927_049), "2026-12-05T23:05:27.049Z");
    }

    #[test]
    fn retry_line_says_until_when_and_why() {
        let m = pb::Master {
            name: "mymaster".into(),
            retry_not_before_ms: 361_000,
            retry_epoch: 3,
            retry_reason: "aborted (slave-timeout)".into(),
            ..Default::default()
        };
        assert_eq!(
            retry_line(&m, 1_000).as_deref(),
            Some(
                "next automatic failover not before 1970-01-01T00:06:01.000Z, in 360 s: the \
                 attempt of epoch 3: aborted (slave-timeout) (raftinel ctl reset-failover-delay \
                 mymaster clears it; forced failovers are not delayed)"
            )
        );
        assert_eq!(retry_line(&m, 361_000), None, "the delay is over");
        let none = pb::Master::default();
        assert_eq!(retry_line(&none, 1_000), None, "no aborted attempt");
    }
}
