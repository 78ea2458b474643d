//! The Sentinel port: a listener that exists only while this node is fresh (invariant 9) —
//! connection refused is what every Sentinel client takes as "try the next sentinel" — and one
//! task per connection that decodes pipelined requests, answers them in order with one write
//! per batch, and pushes pub/sub messages between requests.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::admission::{Admission, Refusal};
use super::cmd;
use super::frame::{self, LIMITS, UNAUTHENTICATED};
use super::reply::Reply;
use super::session::Session;
use super::{Ctx, Stats};
use crate::config::SentinelLimits;
use crate::raft::freshness::{self, LeaderContact};
use crate::raft::Raft;

/// Redis's default maxclients.
const MAX_CLIENTS: usize = 10_000;
/// How often freshness is re-evaluated: well under the election timeout.
const FRESHNESS_TICK: Duration = Duration::from_millis(20);
/// How long a write may wait for the client to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Replies are flushed when this much is pending even mid-batch.
const FLUSH_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the Sentinel listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Fails fast, at startup, if the Sentinel port cannot be bound; the listener itself is opened
/// later, once the node is fresh.
pub async fn check_bind(addr: SocketAddr) -> Result<(), ServerError> {
    TcpListener::bind(addr)
        .await
        .map(drop)
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Publishes whether this node is fresh, re-evaluated every [`FRESHNESS_TICK`].
pub async fn track_freshness(
    raft: Raft,
    contact: LeaderContact,
    election_max_ms: u64,
    tx: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(FRESHNESS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rule = freshness::Hysteresis::default();
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Read in place: cloning the whole metrics (membership, replication map) 50 times a
        // second would be waste.
        let (leader_quorum_ack_ms, applied) = {
            let m = raft.metrics();
            let m = m.borrow();
            let leads = m.current_leader == Some(m.id) && m.state.is_leader();
            let ack = leads.then(|| m.millis_since_quorum_ack.unwrap_or(u64::MAX));
            (ack, m.last_applied.map_or(0, |l| l.index))
        };
        let c = contact.get();
        let inputs = freshness::Inputs {
            leader_quorum_ack_ms,
            contact_age_ms: c
                .last
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            need_applied: c.prev_commit.unwrap_or(u64::MAX),
            applied,
            election_max_ms,
        };
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let fresh = rule.update(&inputs, now_ms);
        if !fresh && *tx.borrow() {
            tracing::warn!(?inputs, "no longer fresh");
        }
        tx.send_if_modified(|v| {
            let changed = *v != fresh;
            *v = fresh;
            changed
        });
    }
}

/// The Sentinel port's listeners: always the plain one, and the TLS one when
/// `sentinel.tls-port` is set. Both follow the same freshness rule and share the client slots.
pub struct Listeners {
    pub plain: SocketAddr,
    pub tls: Option<(SocketAddr, TlsAcceptor)>,
}

/// Serves the Sentinel port until `cancel`: listening while `fresh` says so, closed (and every
/// connection dropped) while it does not.
pub async fn serve(
    ctx: Arc<Ctx>,
    listeners: Listeners,
    mut fresh: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let admission = Admission::new(MAX_CLIENTS, ctx.limits.maxclients_per_ip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ok = until(&mut fresh, true) => if !ok { break },
        }
        let (plain, tls) = match bind(&listeners).await {
            Ok(l) => l,
            Err((addr, e)) => {
                tracing::error!(%addr, error = %e, "cannot bind the Sentinel listener; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        match &listeners.tls {
            Some((tls_addr, _)) => {
                tracing::info!(addr = %listeners.plain, %tls_addr, "fresh: Sentinel listeners open");
            }
            None => tracing::info!(addr = %listeners.plain, "fresh: Sentinel listener open"),
        }
        let conns = cancel.child_token();
        let accept = |stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>| {
            Stats::bump(&ctx.stats.connections_received);
            let slot = match admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    Stats::bump(&ctx.stats.rejected);
                    tracker.spawn(refuse(stream, refusal, tls.is_some()));
                    return;
                }
            };
            let ctx = ctx.clone();
            let conns = conns.clone();
            let span = tracing::debug_span!("resp", %peer, tls = tls.is_some());
            tracker.spawn(
                async move {
                    Stats::bump(&ctx.stats.connected);
                    if let Err(e) = connection(&ctx, stream, peer, tls, conns).await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    ctx.stats.connected.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                }
                .instrument(span),
            );
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ok = until(&mut fresh, false) => {
                    if ok {
                        tracing::warn!(addr = %listeners.plain, "not fresh: Sentinel listener closed, clients dropped");
                    }
                    break;
                }
                accepted = plain.accept() => match accepted {
                    Ok((stream, peer)) => accept(stream, peer, None),
                    Err(e) => accept_failed(e).await,
                },
                accepted = accept_tls(&tls) => match accepted {
                    Ok((stream, peer, acceptor)) => accept(stream, peer, Some(acceptor)),
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drop((plain, tls));
        conns.cancel();
    }
    tracker.close();
    tracker.wait().await;
}

/// Binds both listeners, or says which address failed.
async fn bind(
    l: &Listeners,
) -> Result<(TcpListener, Option<(TcpListener, TlsAcceptor)>), (SocketAddr, std::io::Error)> {
    let plain = TcpListener::bind(l.plain).await.map_err(|e| (l.plain, e))?;
    let tls = match &l.tls {
        None => None,
        Some((addr, acceptor)) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| (*addr, e))?;
            Some((listener, acceptor.clone()))
        }
    };
    Ok((plain, tls))
}

async fn accept_tls(
    tls: &Option<(TcpListener, TlsAcceptor)>,
) -> std::io::Result<(TcpStream, SocketAddr, TlsAcceptor)> {
    match tls {
        Some((listener, acceptor)) => {
            let (stream, peer) = listener.accept().await?;
            Ok((stream, peer, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

/// EMFILE and friends: back off instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Writes replies, giving up on a peer that has not read anything for [`WRITE_TIMEOUT`]: a
/// client that never reads must not hold its slot (and its pending pub/sub messages) forever.
/// Flushed, so that a TLS stream sends its records now.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let send = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, send).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client did not read its replies",
        )),
    }
}

/// Waits until `fresh` is `want`; false if the sender is gone.
async fn until(fresh: &mut watch::Receiver<bool>, want: bool) -> bool {
    fresh.wait_for(|f| *f == want).await.is_ok()
}

/// A plaintext client reads why before the close; a TLS client is closed before the handshake,
/// which a refused client must not be able to make the node spend time on.
async fn refuse(mut stream: TcpStream, refusal: Refusal, tls: bool) {
    if !tls {
        let _ = stream.write_all(refusal.line()).await;
    }
}

async fn connection(
    ctx: &Ctx,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let id = Stats::bump(&ctx.stats.next_client_id);
    let mut s = Session::new(id, peer, local, &ctx.auth);
    let result = match tls {
        None => {
            let mut stream = stream;
            session(ctx, &mut stream, &mut s, cancel).await
        }
        Some(acceptor) => {
            // A handshake gets the time an unauthenticated client gets.
            let limit = Duration::from_secs(ctx.limits.auth_timeout_s);
            let handshake = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                h = tokio::time::timeout(limit, acceptor.accept(stream)) => h,
            };
            let Ok(stream) = handshake else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            };
            session(ctx, &mut stream?, &mut s, cancel).await
        }
    };
    if s.subscriptions() > 0 {
        ctx.stats.pubsub_clients.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

/// When an idle connection is closed: an unauthenticated one `auth-timeout` after it connected
/// (when AUTH is required), any other `timeout` after its last command (0 = never, as Redis's
/// `timeout`); subscribers are never closed for idleness, as in Redis.
fn idle_deadline(limits: &SentinelLimits, s: &Session) -> Option<Instant> {
    if !s.authenticated() {
        return Some(s.since + Duration::from_secs(limits.auth_timeout_s));
    }
    (limits.timeout_s > 0 && s.subscriptions() == 0)
        .then(|| s.last_command + Duration::from_secs(limits.timeout_s))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Ctx,
    stream: &mut S,
    s: &mut Session,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut wbuf = BytesMut::with_capacity(4096);
    let mut replies = Vec::new();
    let mut events: Option<broadcast::Receiver<Arc<crate::events::IndexedEvent>>> = None;
    // Registered once: a fresh `cancelled()` per request would lock the token on every turn.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Answer everything already buffered, in order, then write once.
        s.last_command = Instant::now();
        let Some(answered) = answer(ctx, stream, s, &mut rbuf, &mut wbuf, &mut replies).await?
        else {
            return Ok(());
        };
        // One shared counter update per batch, not per pipelined command.
        ctx.stats
            .commands_processed
            .fetch_add(answered, Ordering::Relaxed);
        // Subscribe before the next event can be missed; unsubscribe drops the receiver.
        match (s.subscriptions() > 0, events.is_some()) {
            (true, false) => events = Some(ctx.feed.subscribe()),
            (false, true) => events = None,
            _ => {}
        }
        if !wbuf.is_empty() {
            write(stream, &wbuf).await?;
            wbuf.clear();
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4096);
        }
        tokio::select! {
            _ = &mut cancelled => return Ok(()),
            _ = sleep_until(idle_deadline(&ctx.limits, s)) => {
                tracing::debug!(client = s.id, "idle timeout");
                return Ok(());
            }
            n = stream.read_buf(&mut rbuf) => {
                if n? == 0 {
                    return Ok(());
                }
            }
            ev = recv(&mut events) => match ev {
                Ok(ev) => {
                    cmd::deliver(s, &ctx.hostnames, &ev, &mut replies);
                    for r in replies.drain(..) {
                        r.encode(s.proto, &mut wbuf);
                    }
                }
                // A subscriber this far behind is dropped, as Redis drops a client over its
                // pub/sub output-buffer limit; it reconnects and re-reads the state.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(client = s.id, missed = n, "pub/sub client too slow; closing");
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// Answers every whole request in `rbuf`, writing whenever [`FLUSH_BYTES`] are pending; the
/// number answered, or `None` when the connection is to close (QUIT, a protocol error).
async fn answer<S: AsyncWrite + Unpin>(
    ctx: &Ctx,
    stream: &mut S,
    s: &mut Session,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    replies: &mut Vec<Reply>,
) -> std::io::Result<Option<u64>> {
    let mut answered = 0u64;
    loop {
        let limits = if s.authenticated() {
            &LIMITS
        } else {
            &UNAUTHENTICATED
        };
        let args = match frame::decode(rbuf, limits, s.authenticated()) {
            Ok(Some(args)) => args,
            Ok(None) => return Ok(Some(answered)),
            Err(e) => {
                Reply::error(format!("ERR {e}")).encode(s.proto, wbuf);
                write(stream, wbuf).await?;
                return Ok(None);
            }
        };
        answered += 1;
        cmd::dispatch(ctx, s, &args, replies).await;
        for r in replies.drain(..) {
            r.encode(s.proto, wbuf);
        }
        if s.closing {
            write(stream, wbuf).await?;
            return Ok(None);
        }
        if wbuf.len() >= FLUSH_BYTES {
            write(stream, wbuf).await?;
            wbuf.clear();
        }
    }
}

async fn recv(
    events: &mut Option<broadcast::Receiver<Arc<crate::events::IndexedEvent>>>,
) -> Result<Arc<crate::events::IndexedEvent>, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SentinelAuth, SentinelRole, SentinelUser};

    fn session(auth: &SentinelAuth) -> Session {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        Session::new(1, a, a, auth)
    }

    #[test]
    fn idle_deadlines_follow_auth_timeout_and_timeout() {
        let limits = SentinelLimits {
            auth_timeout_s: 10,
            timeout_s: 0,
            ..SentinelLimits::default()
        };
        let open = SentinelAuth::default();
        let mut s = session(&open);
        // No credentials: authenticated at once, and `timeout 0` keeps it forever.
        assert_eq!(idle_deadline(&limits, &s), None);
        let with_timeout = SentinelLimits {
            timeout_s: 60,
            ..limits
        };
        assert_eq!(
            idle_deadline(&with_timeout, &s),
            Some(s.last_command + Duration::from_secs(60))
        );
        // Subscribers are never closed for idleness.
        s.channels
            .insert(bytes::Bytes::from_static(b"+switch-master"));
        assert_eq!(idle_deadline(&with_timeout, &s), None);

        let mut auth = SentinelAuth::default();
        auth.users.insert(
            "app".to_owned(),
            SentinelUser {
                password: "pw".to_owned(),
                role: SentinelRole::Client,
            },
        );
        let mut s = session(&auth);
        assert_eq!(
            idle_deadline(&limits, &s),
            Some(s.since + Duration::from_secs(10))
        );
        s.login(&auth, "app".to_owned());
        assert_eq!(idle_deadline(&limits, &s), None);
    }
}
