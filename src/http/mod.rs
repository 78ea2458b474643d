//! The HTTP API on `http-listen`, for load balancers and probes:
//! - `GET /primary/{name}` (`?addr=HOST:PORT`), `GET /replica/{name}` (`?lag=BYTES`): 200 or 503,
//!   what HAProxy's `option httpchk` and cloud health checks ask;
//! - `GET /health` (the process answers), `GET /ready` (fresh: hears the leader, caught up);
//! - `GET /cluster`: this node's view as JSON; `GET /metrics`: Prometheus ([`metrics`]).
//!
//! Read only: no route changes anything, so none takes credentials. Bounded: connections per
//! source address and in all (the Sentinel port's admission), one request per connection, its
//! head and its reply each within a time limit ([`conn`]). The verdicts are pure ([`checks`]),
//! as is the wire format ([`wire`]); this file is the routes and the accept loop.

pub mod checks;
mod conn;
pub mod metrics;
mod wire;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lease::holding::Holding;
use crate::monitor::{Colocation, NodeReport};
use crate::raft::{Raft, SmData};
use crate::resp::admission::Admission;
use crate::topology::Addr;
use wire::{Reply, Request, Status};

/// Connections at once, in all and from one address; a check holds one for a moment.
const MAX_CONNECTIONS: usize = 1024;
const MAX_PER_IP: usize = 64;
/// Connections taken per wake-up before the loop lets the slower ones' tasks run.
const ACCEPT_BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("binding the HTTP listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the routes read; every field is a cheap handle.
pub struct HttpCtx {
    pub node_id: u64,
    pub view: watch::Receiver<Arc<SmData>>,
    pub fresh: watch::Receiver<bool>,
    pub report: watch::Receiver<Arc<NodeReport>>,
    pub colocation: watch::Receiver<Arc<Colocation>>,
    /// Masters whose co-located Redis the lease guard made writable in its last round.
    pub writable: watch::Receiver<Arc<BTreeSet<String>>>,
    pub holding: watch::Receiver<Holding>,
    pub raft: Raft,
    pub scripts: watch::Receiver<crate::hooks::PendingScripts>,
    pub resp_stats: Arc<crate::resp::Stats>,
    pub renewals: Arc<crate::lease::renew::Renewals>,
    pub hook_runs: Arc<crate::hooks::Runs>,
    /// The last calls from a leader (followers): contact age and the leader's commit index.
    pub contact: crate::raft::freshness::LeaderContact,
    /// The VIPs and the fences on this host, as the lease guard left them.
    pub host: watch::Receiver<Arc<crate::lease::fence::HostState>>,
}

/// Binds at start, so a taken port stops the node at once; the runtime that serves it adopts it.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, HttpError> {
    let bind = |addr| {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        conn::defer_accept(&l);
        Ok(l)
    };
    bind(addr).map_err(|source| HttpError::Bind { addr, source })
}

/// Serves until `cancel` fires, on a single-threaded runtime of its own (as the Sentinel port
/// and the probes have): a check is a connection, and a connection there wakes no other thread.
pub fn run(
    listener: std::net::TcpListener,
    ctx: Arc<HttpCtx>,
    cancel: CancellationToken,
) -> Result<(), std::io::Error> {
    // I/O and time only: no child processes or signals here to watch at every park.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        // SAFETY: the std listener owns its socket and keeps that one descriptor open until the
        // AsyncFd, its owner from here, drops it.
        let registered = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) };
        match registered {
            Ok(l) => serve(l, ctx, cancel).await,
            Err(e) => tracing::error!(error = %e, "HTTP listener unusable"),
        }
    });
    Ok(())
}

async fn serve(
    listener: AsyncFd<std::net::TcpListener>,
    ctx: Arc<HttpCtx>,
    cancel: CancellationToken,
) {
    let changes = Arc::new(AtomicU64::new(0));
    let raft = ctx.raft.clone();
    let failovers = Arc::new(metrics::Failovers::default());
    let (view, seen) = (ctx.view.clone(), failovers.clone());
    let counted = Counted {
        leader_changes: changes.clone(),
        failovers,
    };
    tokio::join!(
        accept(listener, ctx, counted, cancel.clone()),
        count_leader_changes(raft, changes, cancel.clone()),
        count_failovers(view, seen, cancel)
    );
}

/// What the HTTP API counts itself, from the node's own view, since it started.
#[derive(Clone)]
struct Counted {
    leader_changes: Arc<AtomicU64>,
    failovers: Arc<metrics::Failovers>,
}

/// Counts every failover that ends in the applied log, by reason and outcome, with its duration.
async fn count_failovers(
    mut view: watch::Receiver<Arc<SmData>>,
    failovers: Arc<metrics::Failovers>,
    cancel: CancellationToken,
) {
    // Those already in the log when the node started are not this node's to count.
    failovers.skip_past(&view.borrow_and_update());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = view.changed() => if r.is_err() { return },
        }
        let now = view.borrow_and_update().clone();
        failovers.count_new(&now);
    }
}

/// Counts the changes of the leader this node knows, for `raftinel_raft_leader_changes_total`.
async fn count_leader_changes(raft: Raft, changes: Arc<AtomicU64>, cancel: CancellationToken) {
    let mut metrics = raft.server_metrics();
    let mut last = metrics.borrow().current_leader;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
        let now = metrics.borrow().current_leader;
        if now != last {
            changes.fetch_add(1, Ordering::Relaxed);
            last = now;
        }
    }
}

async fn accept(
    listener: AsyncFd<std::net::TcpListener>,
    ctx: Arc<HttpCtx>,
    counted: Counted,
    cancel: CancellationToken,
) {
    let admission = Admission::new(MAX_CONNECTIONS, MAX_PER_IP);
    if let Ok(addr) = listener.get_ref().local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    // The routes run in this loop: a bug that panics costs its request a 500, not the API.
    let routes = move |req: &Request<'_>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(&ctx, req, &counted)))
            .unwrap_or_else(|_| Reply::error(Status::Internal, "internal error"))
    };
    loop {
        let mut ready = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.readable() => match r {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!(error = %e, "HTTP listener failed");
                    return;
                }
            },
        };
        for taken in 1..=ACCEPT_BATCH {
            // Err(_) here is "would block": readiness is cleared, wait for the next.
            let Ok(accepted) = ready.try_io(|l| l.get_ref().accept()) else {
                break;
            };
            if taken == ACCEPT_BATCH {
                // More may wait, but the slower connections' tasks get their turn first.
                tokio::task::yield_now().await;
            }
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            };
            let Ok(slot) = admission.admit(peer.ip()) else {
                tracing::debug!(%peer, "HTTP connection refused: too many");
                continue;
            };
            match stream.set_nonblocking(true) {
                Ok(()) => conn::answer(stream, slot, &routes),
                Err(e) => tracing::debug!(%peer, error = %e, "HTTP connection unusable"),
            }
        }
    }
}

fn route(ctx: &HttpCtx, req: &Request<'_>, counted: &Counted) -> Reply {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => Reply::json(Status::Ok, &Health::of(ctx, "ok")),
        ["ready"] => {
            let fresh = *ctx.fresh.borrow();
            let code = if fresh {
                Status::Ok
            } else {
                Status::Unavailable
            };
            Reply::json(
                code,
                &Health::of(ctx, if fresh { "ready" } else { "not fresh" }),
            )
        }
        ["cluster"] => Reply::json(Status::Ok, &cluster(ctx)),
        ["metrics"] => metrics(ctx, counted),
        ["primary", name] => match param(req.query, "addr").map(parse_addr).transpose() {
            Ok(addr) => verdict(with_here(ctx, |view, _, here| {
                checks::primary(&view.topology, here, &decode(name), addr.as_ref())
            })),
            Err(e) => Reply::error(Status::BadRequest, e),
        },
        ["replica", name] => match param(req.query, "lag").map(str::parse::<u64>).transpose() {
            Ok(lag) => verdict(with_here(ctx, |view, report, here| {
                checks::replica(&view.topology, report, here, &decode(name), lag)
            })),
            Err(_) => Reply::error(Status::BadRequest, "lag must be a number of bytes"),
        },
        _ => Reply::error(Status::NotFound, "no such route"),
    }
}

/// Runs `f` over the node's state as of now.
fn with_here<T>(ctx: &HttpCtx, f: impl FnOnce(&SmData, &NodeReport, &checks::Here) -> T) -> T {
    let view = ctx.view.borrow().clone();
    let report = ctx.report.borrow().clone();
    let colocation = ctx.colocation.borrow().clone();
    let writable = ctx.writable.borrow().clone();
    // The guard's own test: the window of the grant the log gives this node, open now.
    let lease_open = view
        .topology
        .lease_of(ctx.node_id)
        .is_some_and(|g| ctx.holding.borrow().valid(g.id, std::time::Instant::now()));
    let here = checks::Here {
        node_id: ctx.node_id,
        fresh: *ctx.fresh.borrow(),
        writable: &writable,
        lease_open,
        local_run_ids: &colocation.run_ids,
    };
    f(&view, &report, &here)
}

fn metrics(ctx: &HttpCtx, counted: &Counted) -> Reply {
    let raft = ctx.raft.metrics().borrow().clone();
    let scripts = ctx.scripts.borrow().clone();
    // A copy: a borrow held while the text is built would hold up the lease guard's updates.
    let colocation = ctx.colocation.borrow().clone();
    let host = ctx.host.borrow().clone();
    let stats = &ctx.resp_stats;
    let resp = [
        &stats.connected,
        &stats.connections_received,
        &stats.commands_processed,
        &stats.rejected,
    ]
    .map(|c| c.load(Ordering::Relaxed));
    let text = with_here(ctx, |view, report, here| {
        let lease_left = ctx
            .holding
            .borrow()
            .until
            .and_then(|u| u.checked_duration_since(std::time::Instant::now()));
        let primary_here = |name: &str| checks::primary(&view.topology, here, name, None).ok;
        metrics::render(&metrics::Snapshot {
            node_id: ctx.node_id,
            fresh: here.fresh,
            view,
            report,
            raft: &raft,
            colocation: &colocation,
            writable: here.writable,
            lease_left,
            scripts: &scripts,
            resp,
            leader_changes: counted.leader_changes.load(Ordering::Relaxed),
            renewals: [&ctx.renewals.ok, &ctx.renewals.failed].map(|c| c.load(Ordering::Relaxed)),
            hook_runs: ctx
                .hook_runs
                .by_exit
                .each_ref()
                .map(|c| c.load(Ordering::Relaxed)),
            failovers: &counted.failovers,
            contact: ctx.contact.get(),
            host: &host,
            primary_here: &primary_here,
        })
    });
    Reply {
        status: Status::Ok,
        content_type: wire::OPENMETRICS,
        body: text.into_bytes(),
    }
}

fn verdict(v: checks::Verdict) -> Reply {
    let code = if v.ok {
        Status::Ok
    } else {
        Status::Unavailable
    };
    Reply::json(code, &v)
}

/// `/health` and `/ready`'s body.
#[derive(serde::Serialize)]
struct Health {
    node: u64,
    status: &'static str,
}

impl Health {
    fn of(ctx: &HttpCtx, status: &'static str) -> Health {
        Health {
            node: ctx.node_id,
            status,
        }
    }
}

fn cluster(ctx: &HttpCtx) -> checks::Cluster {
    let view = ctx.view.borrow().clone();
    let m = ctx.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    checks::Cluster {
        node: ctx.node_id,
        fresh: *ctx.fresh.borrow(),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        applied_index: view.applied_index(),
        voters,
        learners,
        masters: checks::masters(&view.topology),
    }
}

/// The value of `key` in a query string (`a=1&b=2`), undecoded but for `%3A` (`:`).
fn param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A path segment or query value with percent-escapes undone (names are printable ASCII).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `HOST:PORT` (`[v6]:PORT` too) as an address.
fn parse_addr(raw: &str) -> Result<Addr, &'static str> {
    let text = decode(raw);
    let (host, port) = text.rsplit_once(':').ok_or("addr must be HOST:PORT")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .map_err(|_| "addr's port must be 0-65535")?;
    if host.is_empty() {
        return Err("addr must be HOST:PORT");
    }
    Ok(Addr::new(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_escapes() {
        assert_eq!(param("lag=10&addr=a", "addr"), Some("a"));
        assert_eq!(param("lag=10", "addr"), None);
        assert_eq!(decode("my%2Dmaster"), "my-master");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(
            parse_addr("10.0.0.1%3A6379"),
            Ok(Addr::new("10.0.0.1", 6379))
        );
        assert_eq!(parse_addr("[::1]:6379"), Ok(Addr::new("::1", 6379)));
        assert!(parse_addr("10.0.0.1").is_err());
        assert!(parse_addr(":6379").is_err());
        assert!(parse_addr("h:99999").is_err());
    }
}
