//! ROLE and the SENTINEL command: reads answer from the applied state (and this node's own
//! observations for health), writes go to `writes`. Subcommands that only make sense between
//! real sentinels or for Sentinel's own timers get Sentinel's unknown-subcommand error.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::instance::{self, MasterView};
use super::{arity_ok, config, lowercase, unknown_subcommand, writes, wrong_arity, NAME_MAX};
use crate::hooks::PendingState;
use crate::monitor::NodeReport;
use crate::raft::SmData;
use crate::redis::hostnames::is_ip;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::Ctx;
use crate::topology::Addr;

const NO_SUCH_MASTER: &str = "ERR No such master with that name";

/// `["sentinel", [names…]]`: the Rust redis crate checks this on every connect.
pub fn role(ctx: &Ctx) -> Reply {
    let view = ctx.view.borrow();
    let names = view
        .topology
        .masters()
        .map(|m| Reply::from(m.name.as_str()))
        .collect();
    Reply::Array(vec!["sentinel".into(), Reply::Array(names)])
}

/// Sentinel's subcommand arities, counting SENTINEL and the subcommand.
fn arity(sub: &str) -> Option<i32> {
    Some(match sub {
        "ckquorum"
        | "get-master-addr-by-name"
        | "get-primary-addr-by-name"
        | "master"
        | "primary"
        | "remove"
        | "replicas"
        | "slaves"
        | "reset"
        | "sentinels" => 3,
        "masters" | "primaries" | "myid" | "help" | "flushconfig" | "pending-scripts" => 2,
        "failover" => -3,
        "monitor" => 6,
        "set" => -5,
        "config" | "info-cache" => -3,
        _ => return None,
    })
}

pub async fn sentinel(ctx: &Ctx, s: &mut Session, args: &[Bytes]) -> Reply {
    let sub_raw = &args[1];
    let mut buf = [0u8; NAME_MAX];
    let Some(sub) = lowercase(sub_raw, &mut buf) else {
        return unknown_subcommand(sub_raw, "SENTINEL");
    };
    let Some(arity) = arity(sub) else {
        return unknown_subcommand(sub_raw, "SENTINEL");
    };
    if !arity_ok(arity, args.len()) {
        return wrong_arity(&format!("sentinel|{sub}"));
    }
    match sub {
        "get-master-addr-by-name" | "get-primary-addr-by-name" => master_addr(ctx, s, &args[2]),
        "masters" | "primaries" => masters(ctx),
        "master" | "primary" => with_master(ctx, &args[2], instance::master),
        "replicas" | "slaves" => with_master(ctx, &args[2], instance::replicas),
        "sentinels" => sentinels(ctx, &args[2]),
        "myid" => Reply::from(ctx.sentinel_id(ctx.node_id)),
        "ckquorum" => ckquorum(ctx, &args[2]).await,
        "config" => config::config(s, &ctx.hostnames, args),
        "flushconfig" => flushconfig(s),
        "pending-scripts" => pending_scripts(ctx),
        "info-cache" => info_cache(ctx, &args[2..]),
        "help" => help(),
        "monitor" => writes::monitor(ctx, s, args).await,
        "remove" => writes::remove(ctx, s, &args[2]).await,
        "set" => writes::set(ctx, s, args).await,
        "failover" => writes::failover(ctx, s, args).await,
        "reset" => writes::reset(ctx, s, &args[2]).await,
        _ => unknown_subcommand(sub_raw, "SENTINEL"),
    }
}

/// The hot path of every Sentinel client: answered from the connection's cache of encoded
/// replies while the applied state is unchanged.
fn master_addr(ctx: &Ctx, s: &mut Session, name: &Bytes) -> Reply {
    let view = ctx.view.borrow().clone();
    if let Some(hit) = s.addr_cache.get(&view, name) {
        return Reply::Raw(hit);
    }
    match lookup(&view, name) {
        // A hostname's announced form changes without the state changing: never cached.
        Some(m) if !is_ip(&m.addr.host) => {
            let shown = ctx.hostnames.announce(&m.addr);
            Reply::Array(vec![shown.host.as_str().into(), Reply::num(shown.port)])
        }
        Some(m) => {
            let reply = Reply::Array(vec![m.addr.host.as_str().into(), Reply::num(m.addr.port)]);
            let mut encoded = bytes::BytesMut::new();
            // An array of bulk strings is the same in RESP2 and RESP3.
            reply.encode(crate::resp::reply::Proto::Resp2, &mut encoded);
            let encoded = encoded.freeze();
            s.addr_cache.put(name.clone(), encoded.clone());
            Reply::Raw(encoded)
        }
        None => Reply::NilArray,
    }
}

/// The master named by a request argument.
fn lookup<'v>(view: &'v SmData, name: &Bytes) -> Option<&'v crate::topology::MasterRecord> {
    std::str::from_utf8(name)
        .ok()
        .and_then(|n| view.topology.master(n))
}

fn voters_other_than(view: &SmData, me: u64) -> usize {
    view.membership
        .membership()
        .voter_ids()
        .filter(|id| *id != me)
        .count()
}

fn snapshot(ctx: &Ctx) -> (Arc<SmData>, Arc<NodeReport>) {
    (ctx.view.borrow().clone(), ctx.report.borrow().clone())
}

fn masters(ctx: &Ctx) -> Reply {
    let (view, report) = snapshot(ctx);
    let others = voters_other_than(&view, ctx.node_id);
    Reply::Array(
        view.topology
            .masters()
            .map(|m| {
                instance::master(&MasterView {
                    master: m,
                    report: &report,
                    other_sentinels: others,
                    hostnames: &ctx.hostnames,
                })
            })
            .collect(),
    )
}

fn with_master(ctx: &Ctx, name: &Bytes, f: fn(&MasterView) -> Reply) -> Reply {
    let (view, report) = snapshot(ctx);
    let others = voters_other_than(&view, ctx.node_id);
    let Some(m) = lookup(&view, name) else {
        return Reply::error(NO_SUCH_MASTER);
    };
    f(&MasterView {
        master: m,
        report: &report,
        other_sentinels: others,
        hostnames: &ctx.hostnames,
    })
}

/// The other raftinel nodes' Sentinel addresses and ids (never the node asked, as in Sentinel).
fn sentinels(ctx: &Ctx, name: &Bytes) -> Reply {
    let view = ctx.view.borrow().clone();
    let Some(m) = lookup(&view, name) else {
        return Reply::error(NO_SUCH_MASTER);
    };
    let voters: BTreeSet<u64> = view.membership.membership().voter_ids().collect();
    let peers = ctx.peers.borrow().clone();
    let now = tokio::time::Instant::now();
    let mut out = Vec::new();
    for (id, member) in view.membership.membership().nodes() {
        if *id == ctx.node_id || !voters.contains(id) {
            continue;
        }
        let Ok(sock) = member.sentinel_addr.parse::<std::net::SocketAddr>() else {
            continue;
        };
        let addr = Addr::new(sock.ip().to_string(), sock.port());
        out.push(instance::sentinel(
            &ctx.sentinel_id(*id),
            &addr,
            m.down_after_ms,
            peers.get(id),
            now,
        ));
    }
    Reply::Array(out)
}

/// Usable nodes are the voters that answer a probe now (this node included); the quorum must be
/// reachable for ODOWN and a majority for the failover itself.
async fn ckquorum(ctx: &Ctx, name: &Bytes) -> Reply {
    let view = ctx.view.borrow().clone();
    let Some(m) = lookup(&view, name) else {
        return Reply::error(NO_SUCH_MASTER);
    };
    let membership = view.membership.membership();
    let voters: Vec<_> = membership
        .voter_ids()
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
        .collect();
    let voter_count = voters.len();
    let api = ctx.api.clone();
    // On the main runtime, where the gRPC channels live.
    let probe = ctx.main.spawn(async move {
        let probes = voters.iter().map(|(id, n)| api.reachable(*id, n));
        futures::future::join_all(probes).await
    });
    let usable = probe
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|up| *up)
        .count();
    match ckquorum_verdict(usable, voter_count, m.quorum) {
        Ok(text) => Reply::Status(text),
        Err(text) => Reply::error(text),
    }
}

/// CKQUORUM's answer in Sentinel's words, against the effective quorum (the configured one
/// clamped to the voters, which is what ODOWN uses); when that differs from the configured one
/// the answer says so at the end, so a script matching Sentinel's text still matches.
fn ckquorum_verdict(usable: usize, voters: usize, configured: u32) -> Result<String, String> {
    let majority = crate::failover::quorum::majority(voters);
    let effective = crate::failover::quorum::effective_quorum(configured, voters);
    let quorum = usize::try_from(effective).unwrap_or(usize::MAX);
    let note = if effective == configured {
        String::new()
    } else {
        format!(
            "; {}",
            crate::failover::quorum::describe(configured, voters)
        )
    };
    if usable >= quorum && usable >= majority {
        return Ok(format!(
            "OK {usable} usable Sentinels. Quorum and failover authorization can be reached{note}"
        ));
    }
    let mut text = format!("NOQUORUM {usable} usable Sentinels. ");
    if usable < quorum {
        text.push_str(
            "Not enough available Sentinels to reach the specified quorum for this master",
        );
    }
    if usable < majority {
        if usable < quorum {
            text.push_str(". ");
        }
        text.push_str(
            "Not enough available Sentinels to reach the majority and authorize a failover",
        );
    }
    text.push_str(&note);
    Err(text)
}

/// INFO-CACHE <name> [<name> ...]: for each named master (unknown names skipped, each once, in
/// the order given), this node's last INFO of the master and of each other instance with its age
/// in ms; the text is the sections the monitor asks for (server, replication), not all of INFO.
fn info_cache(ctx: &Ctx, names: &[Bytes]) -> Reply {
    let view = ctx.view.borrow().clone();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let Some(m) = lookup(&view, name) else {
            continue;
        };
        if !seen.insert(m.name.as_str()) {
            continue;
        }
        let instances = ctx.info_cache.of(&m.name).unwrap_or_default();
        let entries = instances
            .into_iter()
            .map(|(age, text)| {
                let info = text.map_or(Reply::Nil, |t| Reply::from(&*t));
                Reply::Array(vec![
                    Reply::Int(i64::try_from(age).unwrap_or(i64::MAX)),
                    info,
                ])
            })
            .collect();
        out.push(Reply::from(m.name.as_str()));
        out.push(Reply::Array(entries));
    }
    Reply::Array(out)
}

/// PENDING-SCRIPTS: this node's script queue with Sentinel's fields, running ones first.
fn pending_scripts(ctx: &Ctx) -> Reply {
    let queue = ctx.scripts.borrow().clone();
    let now = tokio::time::Instant::now();
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Reply::Array(
        queue
            .iter()
            .map(|p| {
                let argv = Reply::Array(p.argv.iter().map(|a| Reply::from(a.as_str())).collect());
                let (flags, pid, time) = match p.state {
                    PendingState::Running { pid, since } => (
                        "running",
                        pid,
                        ("run-time", ms(now.saturating_duration_since(since))),
                    ),
                    PendingState::Scheduled { due } => (
                        "scheduled",
                        0,
                        (
                            "run-delay",
                            due.map_or(0, |d| ms(d.saturating_duration_since(now))),
                        ),
                    ),
                };
                Reply::fields([
                    ("argv", argv),
                    ("flags", Reply::from(flags)),
                    ("pid", Reply::num(pid)),
                    (time.0, Reply::num(time.1)),
                    ("retry-num", Reply::num(p.retry_num)),
                ])
            })
            .collect(),
    )
}

/// FLUSHCONFIG: `+OK`. Sentinel rewrites its config file; raftinel's state is the Raft log,
/// durable on every node as each entry commits, so there is nothing left to write.
fn flushconfig(s: &Session) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|flushconfig") {
        return denied;
    }
    Reply::ok()
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CKQUORUM <master-name>",
        "    Check if the current Sentinel configuration is able to reach the quorum needed",
        "    to failover a master and the majority needed to authorize the failover.",
        "CONFIG SET param value [param value ...]",
        "    Set a global Sentinel configuration parameter.",
        "CONFIG GET <param> [param param param ...]",
        "    Get global Sentinel configuration parameter.",
        "GET-MASTER-ADDR-BY-NAME <master-name>",
        "    Return the ip and port number of the master with that name.",
        "FAILOVER <master-name> [COORDINATED]",
        "    Manually failover a master node without asking for agreement from other",
        "    Sentinels; COORDINATED hands over with FAILOVER TO, losing no write.",
        "FLUSHCONFIG",
        "    Force Sentinel to rewrite its configuration on disk, including the current",
        "    Sentinel state.",
        "INFO-CACHE <master-name>",
        "    Return last cached INFO output from masters and all its replicas.",
        "MASTER <master-name>",
        "    Show the state and info of the specified master.",
        "MASTERS",
        "    Show a list of monitored masters and their state.",
        "MONITOR <name> <ip> <port> <quorum>",
        "    Start monitoring a new master with the specified name, ip, port and quorum.",
        "MYID",
        "    Return the ID of the Sentinel instance.",
        "PENDING-SCRIPTS",
        "    Get pending scripts information.",
        "REMOVE <master-name>",
        "    Remove a master from Sentinel's monitor list.",
        "REPLICAS <master-name>",
        "    Show a list of replicas for this master and their state.",
        "RESET <pattern>",
        "    Reset masters for specific master name matching this pattern.",
        "SENTINELS <master-name>",
        "    Show a list of Sentinel instances for this master and their state.",
        "SET <master-name> <option> <value> [<option> <value> ...]",
        "    Set configuration parameters for certain masters.",
        "HELP",
        "    Print this help.",
    ];
    Reply::Array(
        LINES
            .iter()
            .map(|l| Reply::Status((*l).to_owned()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::ckquorum_verdict;

    /// Usable nodes × voters × configured quorum: judged against the effective quorum, and the
    /// answer names it when it differs from the configured one.
    #[test]
    fn ckquorum_uses_the_effective_quorum() {
        let ok = "Quorum and failover authorization can be reached";
        let no_quorum = "Not enough available Sentinels to reach the specified quorum";
        let no_majority = "Not enough available Sentinels to reach the majority";
        // (usable, voters, configured, ok?, note)
        let cases: &[(usize, usize, u32, bool, &str)] = &[
            (3, 3, 2, true, ""),
            (2, 3, 2, true, ""),
            (1, 3, 2, false, ""),
            (2, 5, 2, false, "; quorum 2 (effective 3 with 5 voters)"),
            (3, 5, 2, true, "; quorum 2 (effective 3 with 5 voters)"),
            (3, 3, 4, true, "; quorum 4 (effective 3 with 3 voters)"),
            (4, 5, 4, true, ""),
            (3, 5, 4, false, ""),
        ];
        for (usable, voters, configured, is_ok, note) in cases {
            let got = ckquorum_verdict(*usable, *voters, *configured);
            let text = match &got {
                Ok(t) | Err(t) => t.clone(),
            };
            assert_eq!(got.is_ok(), *is_ok, "{text}");
            assert!(text.ends_with(note), "{text}");
            let prefix = if *is_ok { "OK" } else { "NOQUORUM" };
            assert!(text.starts_with(&format!("{prefix} {usable} usable Sentinels. ")));
            assert!(!*is_ok || text.contains(ok), "{text}");
        }
        let text = ckquorum_verdict(1, 5, 4).unwrap_err();
        assert!(
            text.contains(no_quorum) && text.contains(no_majority),
            "{text}"
        );
    }
}
