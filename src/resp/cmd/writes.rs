//! SENTINEL MONITOR, REMOVE, SET, FAILOVER and RESET: each goes through the gRPC service's own
//! handler, so it commits on the leader (or is forwarded there) exactly like `raftinel ctl`, and
//! `+OK` means committed. The reply waits until this node has applied the entry too, so the
//! same connection reads its own write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::{Request, Status};

use super::instance::has_good_replica;
use super::{int, lossy, text};
use crate::api::Api;
use crate::pb;
use crate::pb::topology_server::Topology;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::Ctx;

/// How long a reply waits for this node to apply a write committed elsewhere.
const APPLY_WAIT: Duration = Duration::from_millis(1000);

/// A gRPC status as a RESP error: refusals already carry Sentinel's wording ("ERR …",
/// "INPROG …"); anything else gets "ERR ".
fn error(s: &Status) -> Reply {
    let msg = s.message();
    let code = msg.split(' ').next().unwrap_or("");
    if code.len() >= 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Reply::error(msg)
    } else {
        Reply::error(format!("ERR {msg}"))
    }
}

/// Runs a gRPC handler on the node's main runtime, where Raft and every gRPC channel live: the
/// Sentinel port's runtime only parses and answers.
async fn call<T, F, Fut>(ctx: &Ctx, f: F) -> Result<T, Status>
where
    F: FnOnce(Arc<Api>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
    T: Send + 'static,
{
    let fut = f(ctx.api.clone());
    match ctx.main.spawn(fut).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(e) => Err(Status::internal(format!("the write task failed: {e}"))),
    }
}

async fn applied(ctx: &Ctx, index: u64) {
    let wait = ctx.raft.wait(Some(APPLY_WAIT));
    // A timeout is not an error of the write, which is committed; the next read will see it.
    let _ = wait
        .applied_index_at_least(Some(index), "RESP write visible here")
        .await;
}

async fn done(ctx: &Ctx, r: Result<pb::WriteReply, Status>) -> Reply {
    match r {
        Ok(reply) => {
            applied(ctx, reply.index).await;
            Reply::ok()
        }
        Err(s) => error(&s),
    }
}

/// SENTINEL MONITOR <name> <ip> <port> <quorum>, checked in Sentinel's order.
pub async fn monitor(ctx: &Ctx, s: &Session, args: &[Bytes]) -> Reply {
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
    let Some(host) = text(&args[3]).filter(|h| h.parse::<std::net::IpAddr>().is_ok()) else {
        return Reply::error("ERR Invalid IP address or hostname specified");
    };
    if !(0..=65535).contains(&port) {
        return Reply::error("ERR Invalid port number.");
    }
    let req = pb::MonitorRequest {
        name: lossy(&args[2], usize::MAX),
        host: host.to_owned(),
        port: u32::try_from(port).unwrap_or(u32::MAX),
        quorum: u32::try_from(quorum).unwrap_or(u32::MAX),
    };
    let r = call(
        ctx,
        |api| async move { api.monitor(Request::new(req)).await },
    )
    .await;
    done(ctx, r).await
}

pub async fn remove(ctx: &Ctx, s: &Session, name: &Bytes) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|remove") {
        return denied;
    }
    let req = pb::RemoveRequest {
        name: lossy(name, usize::MAX),
    };
    let r = call(
        ctx,
        |api| async move { api.remove(Request::new(req)).await },
    )
    .await;
    done(ctx, r).await
}

/// SENTINEL SET <name> <option> <value> [<option> <value> ...]: all options or none (Sentinel
/// keeps the options before a bad one; raftinel commits one entry).
pub async fn set(ctx: &Ctx, s: &Session, args: &[Bytes]) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|set") {
        return denied;
    }
    let pairs = &args[3..];
    if pairs.len() % 2 == 1 {
        let option = pairs.last().map(|o| lossy(o, 128)).unwrap_or_default();
        return Reply::error(format!(
            "ERR Unknown option or number of arguments for SENTINEL SET '{option}'"
        ));
    }
    let options = pairs
        .chunks(2)
        .map(|p| pb::SetOption {
            option: lossy(&p[0], usize::MAX),
            value: lossy(&p[1], usize::MAX),
        })
        .collect();
    let req = pb::SetRequest {
        name: lossy(&args[2], usize::MAX),
        options,
    };
    let r = call(ctx, |api| async move { api.set(Request::new(req)).await }).await;
    done(ctx, r).await
}

/// SENTINEL FAILOVER <name>: Sentinel's INPROG and NOGOODSLAVE answers come first, from this
/// node's state and observations; the leader then runs the failover.
pub async fn failover(ctx: &Ctx, s: &Session, name: &Bytes) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|failover") {
        return denied;
    }
    let name = lossy(name, usize::MAX);
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
    let req = pb::NameRequest { name };
    let r = call(
        ctx,
        |api| async move { api.failover(Request::new(req)).await },
    )
    .await;
    done(ctx, r).await
}

/// SENTINEL RESET <pattern>: `:N`, the number of masters reset.
pub async fn reset(ctx: &Ctx, s: &Session, pattern: &Bytes) -> Reply {
    if let Err(denied) = s.permit_write("sentinel|reset") {
        return denied;
    }
    let req = pb::ResetRequest {
        pattern: lossy(pattern, usize::MAX),
    };
    match call(ctx, |api| async move { api.reset(Request::new(req)).await }).await {
        Ok(r) => {
            if r.index > 0 {
                applied(ctx, r.index).await;
            }
            Reply::Int(i64::from(r.count))
        }
        Err(s) => error(&s),
    }
}
