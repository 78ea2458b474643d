//! SENTINEL MONITOR, REMOVE, SET, FAILOVER and RESET: each goes through the admin path as the
//! session's principal, so it is authorized and committed on the leader (or forwarded there)
//! exactly like `raftinel ctl`, and `+OK` means committed. The reply waits until this node has
//! applied the entry too, so the same connection reads its own write.

use std::time::Duration;

use bytes::Bytes;
use tonic::metadata::MetadataMap;

use super::instance::has_good_replica;
use super::{int, lossy, text};
use crate::admin::{AdminError, AdminReply, AdminRequest};
use crate::resp::access::noperm;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::Ctx;

/// How long a reply waits for this node to apply a write committed elsewhere.
const APPLY_WAIT: Duration = Duration::from_millis(1000);

/// An admin refusal as a RESP error: refusals already carry Sentinel's wording ("ERR …",
/// "INPROG …"); anything else gets "ERR "; a denied write gets Redis's NOPERM.
fn error(e: &AdminError, s: &Session, command: &str) -> Reply {
    let msg = match e {
        AdminError::Denied(_) => return noperm(s.user.as_deref().unwrap_or("default"), command),
        AdminError::Failed(s) => s.message(),
    };
    let code = msg.split(' ').next().unwrap_or("");
    if code.len() >= 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Reply::error(msg)
    } else {
        Reply::error(format!("ERR {msg}"))
    }
}

/// Runs the request on the node's main runtime, where Raft and every gRPC channel live: the
/// Sentinel port's runtime only parses and answers.
async fn call(ctx: &Ctx, s: &Session, req: AdminRequest) -> Result<AdminReply, AdminError> {
    let admin = ctx.admin.clone();
    let who = s.principal.clone();
    let task = async move { admin.execute(&who, &MetadataMap::new(), req).await };
    match ctx.main.spawn(task).await {
        Ok(r) => r,
        Err(e) => Err(AdminError::Failed(tonic::Status::internal(format!(
            "the write task failed: {e}"
        )))),
    }
}

async fn applied(ctx: &Ctx, index: u64) {
    let wait = ctx.raft.wait(Some(APPLY_WAIT));
    // A timeout is not an error of the write, which is committed; the next read will see it.
    let _ = wait
        .applied_index_at_least(Some(index), "RESP write visible here")
        .await;
}

/// Runs a write and answers `+OK` once it is applied here.
async fn write(ctx: &Ctx, s: &Session, command: &str, req: AdminRequest) -> Reply {
    match call(ctx, s, req).await {
        Ok(reply) => {
            applied(ctx, reply.index).await;
            Reply::ok()
        }
        Err(e) => error(&e, s, command),
    }
}

/// SENTINEL MONITOR <name> <ip> <port> <quorum>, checked in Sentinel's order.
pub async fn monitor(ctx: &Ctx, s: &Session, args: &[Bytes]) -> Reply {
    // Redis checks ACLs before the command's own checks.
    if let Err(denied) = s.permit_write("sentinel|monitor") {
        return denied;
    }
    let Some(quorum) = int(&args[5]) else {
        return Reply::error("ERR Invalid quorum");
    };
    let Some(port) = int(&args[4]) else {
        return Reply::error("ERR Invalid port");
    };
    if quorum <= 0 {
        return Reply::error("ERR Quorum must be 1 or greater.");
    }
    let Some(host) = text(&args[3]) else {
        return Reply::error("ERR Invalid IP address or hostname specified");
    };
    if ctx.hostnames.accept(host).await.is_err() {
        return Reply::error("ERR Invalid IP address or hostname specified");
    }
    if !(0..=65535).contains(&port) {
        return Reply::error("ERR Invalid port number.");
    }
    let req = AdminRequest::Monitor {
        name: lossy(&args[2], usize::MAX),
        host: host.to_owned(),
        port: u32::try_from(port).unwrap_or(u32::MAX),
        quorum: u32::try_from(quorum).unwrap_or(u32::MAX),
    };
    write(ctx, s, "sentinel|monitor", req).await
}

pub async fn remove(ctx: &Ctx, s: &Session, name: &Bytes) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|remove") {
        return denied;
    }
    let req = AdminRequest::Remove {
        name: lossy(name, usize::MAX),
    };
    write(ctx, s, "sentinel|remove", req).await
}

/// SET's `<option> <value>` pairs; `rename-command` takes two words, given on as one value
/// joined by a space. `Err` names the option whose values are missing.
fn set_options(args: &[Bytes]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = args.iter();
    while let Some(option) = rest.next() {
        let name = lossy(option, usize::MAX);
        let words = if option.eq_ignore_ascii_case(b"rename-command") {
            2
        } else {
            1
        };
        let values: Vec<String> = rest
            .by_ref()
            .take(words)
            .map(|v| lossy(v, usize::MAX))
            .collect();
        if values.len() < words {
            return Err(lossy(option, 128));
        }
        out.push((name, values.join(" ")));
    }
    Ok(out)
}

/// SENTINEL SET <name> <option> <value> [<option> <value> ...]: all options or none (Sentinel
/// keeps the options before a bad one; raftinel commits one entry).
pub async fn set(ctx: &Ctx, s: &Session, args: &[Bytes]) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|set") {
        return denied;
    }
    let options = match set_options(&args[3..]) {
        Ok(options) => options,
        Err(option) => {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for SENTINEL SET '{option}'"
            ))
        }
    };
    let req = AdminRequest::Set {
        name: lossy(&args[2], usize::MAX),
        options,
    };
    write(ctx, s, "sentinel|set", req).await
}

/// SENTINEL FAILOVER <name> [COORDINATED]: Sentinel's INPROG and NOGOODSLAVE answers come
/// first, from this node's state and observations; the leader then runs the failover, or with
/// COORDINATED (Valkey 9) the lossless switchover (FAILOVER TO on the old master).
pub async fn failover(ctx: &Ctx, s: &Session, args: &[Bytes]) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|failover") {
        return denied;
    }
    let coordinated = match args.get(3) {
        None => false,
        Some(mode) if args.len() == 4 && mode.eq_ignore_ascii_case(b"coordinated") => true,
        Some(_) => return Reply::error("ERR syntax error"),
    };
    let name = lossy(&args[2], usize::MAX);
    {
        let view = ctx.view.borrow();
        let Some(m) = view.topology.master(&name) else {
            return Reply::error("ERR No such master with that name");
        };
        if m.failover.is_some() {
            return Reply::error("INPROG Failover already in progress");
        }
        if !has_good_replica(m, &ctx.report.borrow()) {
            return Reply::error("NOGOODSLAVE No suitable replica to promote");
        }
    }
    let req = if coordinated {
        AdminRequest::Switchover { name, to: None }
    } else {
        AdminRequest::Failover { name }
    };
    write(ctx, s, "sentinel|failover", req).await
}

/// SENTINEL RESET <pattern>: `:N`, the number of masters reset.
pub async fn reset(ctx: &Ctx, s: &Session, pattern: &Bytes) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|reset") {
        return denied;
    }
    let req = AdminRequest::Reset {
        pattern: lossy(pattern, usize::MAX),
    };
    match call(ctx, s, req).await {
        Ok(r) => {
            if r.index > 0 {
                applied(ctx, r.index).await;
            }
            Reply::Int(i64::from(r.count))
        }
        Err(e) => error(&e, s, "sentinel|reset"),
    }
}
