//! One task per monitored instance: PING every ping period, INFO every second (every ping while
//! the master is SDOWN or failing over), SDOWN from a deadline timer. Thin I/O over `state`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use super::info::{self, InfoError, InfoReply};
use super::state::{deadline, grid_after, reconnect_after, ProbeSettings, Shared};
use crate::redis::hostnames::is_ip;
use crate::redis::{Access, Conn, ConnError, Connector};
use crate::topology::Addr;

/// Lateness below this is ordinary scheduling noise and not even reported to the TILT check.
const LAG_NOISE: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("PING answered {0}")]
    BadPong(String),
    #[error("INFO: {0}")]
    Info(#[from] InfoError),
}

/// What one instance task shares with the rest of the monitor.
pub struct ProbeCtx {
    pub name: String,
    pub addr: Addr,
    pub shared: Arc<Mutex<Shared>>,
    /// Wakes the publisher: something in the report changed.
    pub changed: Arc<Notify>,
    /// Wakes this task's SDOWN timer: an SDOWN ended or the settings changed.
    pub wake: Arc<Notify>,
    pub redis: Connector,
    /// Where every task's PING grid starts: tasks with the same period PING in the same
    /// instant, so one runtime wake-up serves all of them instead of one per instance.
    pub epoch: Instant,
}

pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the task; it ends when `cancel` fires or the instance is no longer monitored.
pub fn spawn(node_id: u64, ctx: ProbeCtx, cancel: CancellationToken) -> JoinHandle<()> {
    let span = info_span!("probe", node = node_id, master = %ctx.name, addr = %ctx.addr);
    tokio::spawn(
        async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = probe_loop(&ctx) => {}
                _ = sdown_timer(&ctx) => {}
            }
        }
        .instrument(span),
    )
}

impl ProbeCtx {
    fn settings(&self) -> Option<ProbeSettings> {
        lock(&self.shared).probe_settings(&self.name, &self.addr)
    }

    fn note_lag(&self, lag: Duration) {
        if lag < LAG_NOISE {
            return;
        }
        if lock(&self.shared).note_lag(Instant::now(), lag) {
            warn!(
                lag_ms = lag.as_millis() as u64,
                "+tilt: probe timer fired late"
            );
            self.changed.notify_one();
        }
    }

    /// The connection came up or went down: republished at once, as Sentinel flags a dropped
    /// link `disconnected` at once (Sentinel clients skip such a master).
    fn link(&self, up: bool) {
        if lock(&self.shared).set_link(&self.name, &self.addr, up) {
            self.changed.notify_one();
        }
    }

    fn valid_reply(&self, pong: bool) {
        let ended = lock(&self.shared).valid_reply(&self.name, &self.addr, Instant::now(), pong);
        // A reply only moves the deadline later: the timer finds that when it fires and sleeps
        // again, so it is woken only to arm itself after an SDOWN (one wake-up per deadline
        // instead of one per PING).
        if ended {
            info!("-sdown");
            self.wake.notify_one();
            self.changed.notify_one();
        }
    }
}

/// Sleeps until `deadline` and reports how late the timer fired; a deadline already past (the
/// previous round was slow) is not a scheduling lag.
async fn paced_sleep(ctx: &ProbeCtx, deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    sleep_until(deadline).await;
    ctx.note_lag(Instant::now().saturating_duration_since(deadline));
}

async fn sdown_timer(ctx: &ProbeCtx) {
    loop {
        let deadline = lock(&ctx.shared).sdown_deadline(&ctx.name, &ctx.addr);
        match deadline {
            None => return,
            Some(None) => ctx.wake.notified().await,
            Some(Some(deadline)) => {
                let was_future = deadline > Instant::now();
                tokio::select! {
                    _ = sleep_until(deadline) => {}
                    _ = ctx.wake.notified() => continue,
                }
                let now = Instant::now();
                let lag = if was_future {
                    now.saturating_duration_since(deadline)
                } else {
                    Duration::ZERO
                };
                let (down, tilted) = lock(&ctx.shared).sdown_timer(&ctx.name, &ctx.addr, now, lag);
                if tilted {
                    warn!(
                        lag_ms = lag.as_millis() as u64,
                        "+tilt: SDOWN timer fired late"
                    );
                }
                if down {
                    warn!("+sdown");
                }
                if down || tilted {
                    ctx.changed.notify_one();
                }
            }
        }
    }
}

struct Link {
    conn: Conn,
    access: Access,
    /// Where the client library says at once that the connection dropped (RESP3 links).
    closed: Option<mpsc::UnboundedReceiver<redis::PushInfo>>,
}

/// Sleeps until `next`, or until the link drops: returns true then.
async fn wait_or_drop(ctx: &ProbeCtx, next: Instant, link: &mut Option<Link>) -> bool {
    loop {
        let Some(closed) = link.as_mut().and_then(|l| l.closed.as_mut()) else {
            paced_sleep(ctx, next).await;
            return false;
        };
        tokio::select! {
            _ = paced_sleep(ctx, next) => return false,
            push = closed.recv() => match push {
                Some(p) if p.kind != redis::PushKind::Disconnection => continue,
                _ => return true,
            },
        }
    }
}

/// A refusal of `HELLO 3` itself (a Redis before 6.0 has no such command): probed in RESP2 from
/// then on. An AUTH refusal inside HELLO is not one: it is retried as it is.
fn no_resp3(e: &ConnError) -> bool {
    e.redis().is_some_and(|r| {
        let text = r.to_string().to_ascii_lowercase();
        r.code() == Some("NOPROTO") || (text.contains("unknown command") && text.contains("hello"))
    })
}

async fn probe_loop(ctx: &ProbeCtx) {
    let mut link: Option<Link> = None;
    let mut next = Instant::now();
    let mut last_info: Option<Instant> = None;
    // Redis before 7.0 refuses `INFO server replication`; then plain INFO is used.
    let mut plain_info = false;
    let mut failures = 0u32;
    let mut resp3 = true;
    let mut bad_pongs = 0u32;
    loop {
        if wait_or_drop(ctx, next, &mut link).await {
            debug!("the link dropped");
            link = None;
            ctx.link(false);
        }
        let Some(settings) = ctx.settings() else {
            return;
        };
        let now = Instant::now();
        next = grid_after(ctx.epoch, now, settings.ping);
        if link.as_ref().is_some_and(|l| l.access != settings.access) {
            debug!("credentials or TLS changed: reconnecting");
            link = None;
        }
        if link.is_none() {
            let conn = connect(ctx, &settings, &mut resp3).await;
            ctx.link(conn.is_ok());
            match conn {
                Ok((conn, closed)) => {
                    if failures > 0 {
                        info!(failures, "connected");
                    }
                    failures = 0;
                    link = Some(Link {
                        conn,
                        access: settings.access.clone(),
                        closed,
                    });
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = reconnect_after(settings.ping, failures);
                    next = grid_after(
                        ctx.epoch,
                        deadline(now, wait.saturating_sub(settings.ping)),
                        settings.ping,
                    );
                    if failures == 1 {
                        warn!(error = %e, "cannot connect; retrying, less often while it fails");
                    } else {
                        debug!(error = %e, failures, "cannot connect");
                    }
                    continue;
                }
            }
        }
        let Some(l) = link.as_mut() else {
            continue;
        };
        match ping(&mut l.conn, settings.timeout).await {
            Ok(pong) => {
                bad_pongs = 0;
                ctx.valid_reply(pong)
            }
            Err(e) if is_link_fatal(&e) => {
                debug!(error = %e, "dropping the link");
                link = None;
                ctx.link(false);
                continue;
            }
            // Sentinel's rule: an error other than -LOADING / -MASTERDOWN (e.g. -MISCONF, which
            // Redis gives PING when it cannot persist) is no sign of life. Said once per spell.
            Err(e) => {
                bad_pongs = bad_pongs.saturating_add(1);
                if bad_pongs == 1 {
                    warn!(error = %e, "invalid PING reply: not counted as alive");
                } else {
                    debug!(error = %e, "invalid PING reply");
                }
            }
        }
        let due = match last_info {
            Some(t) => t.elapsed() >= settings.info_every,
            None => true,
        };
        if !due {
            continue;
        }
        last_info = Some(Instant::now());
        match fetch_info(&mut l.conn, settings.timeout, plain_info).await {
            Ok(text) => match info::parse(&text) {
                Ok(reply) => {
                    let reply = identify(ctx, reply, settings.timeout).await;
                    let changed = {
                        let mut shared = lock(&ctx.shared);
                        let changed =
                            shared.record_info(&ctx.name, &ctx.addr, Instant::now(), reply);
                        shared.keep_info_text(&ctx.name, &ctx.addr, text.into());
                        changed
                    };
                    if changed {
                        // A role change may move the SDOWN deadline earlier, or end an SDOWN.
                        ctx.wake.notify_one();
                        ctx.changed.notify_one();
                    }
                }
                Err(e) => warn!(error = %e, "unusable INFO reply"),
            },
            Err(ProbeError::Conn(e))
                if !plain_info && e.redis().and_then(|r| r.code()) == Some("ERR") =>
            {
                debug!(error = %e, "INFO with sections refused: using plain INFO");
                plain_info = true;
            }
            Err(e) => {
                debug!(error = %e, "INFO failed");
                if is_link_fatal(&e) {
                    link = None;
                    ctx.link(false);
                }
            }
        }
    }
}

/// Spells each address the reply names as this node already knows the instance, as Sentinel
/// compares a reported host by what it resolves to: a replica naming its master by hostname
/// while the log has its IP (or the other way round) is one instance, not two. Only hostnames
/// cost anything; lookups are bounded by `limit` in all.
async fn identify(ctx: &ProbeCtx, mut reply: InfoReply, limit: Duration) -> InfoReply {
    let known = lock(&ctx.shared).known_addrs(&ctx.name);
    let hostnames = ctx.redis.hostnames();
    let names: Vec<String> = reply
        .role
        .addrs_mut()
        .into_iter()
        .map(|a| &*a)
        .chain(&known)
        .filter(|a| !is_ip(&a.host))
        .map(|a| a.host.clone())
        .collect();
    if names.is_empty() {
        return reply;
    }
    let refresh = hostnames.refresh(names.iter().map(String::as_str));
    if tokio::time::timeout(limit, refresh).await.is_err() {
        debug!("hostname lookups did not finish within the command timeout");
    }
    let known: Vec<&Addr> = known.iter().collect();
    for a in reply.role.addrs_mut() {
        if let Some(k) = hostnames.identify(a, &known) {
            *a = k;
        }
    }
    reply
}

/// A timeout or a broken connection: reconnect on the next tick. A server error keeps the link.
fn is_link_fatal(e: &ProbeError) -> bool {
    match e {
        ProbeError::Conn(e) => e.failure().link_lost(),
        ProbeError::BadPong(_) | ProbeError::Info(_) => false,
    }
}

/// +PONG is valid, and so are -LOADING and -MASTERDOWN (the instance is alive).
/// A probe's connection: RESP3 with drop notices while the instance speaks it, else RESP2.
async fn connect(
    ctx: &ProbeCtx,
    settings: &ProbeSettings,
    resp3: &mut bool,
) -> Result<(Conn, Option<mpsc::UnboundedReceiver<redis::PushInfo>>), ConnError> {
    let (addr, access, limit) = (&ctx.addr, &settings.access, settings.timeout);
    if *resp3 {
        match ctx.redis.connect_watched(addr, access, limit).await {
            Ok((conn, closed)) => return Ok((conn, Some(closed))),
            Err(e) if no_resp3(&e) => {
                info!(error = %e, "no RESP3: probing in RESP2 (a dropped link is noticed at the next PING)");
                *resp3 = false;
            }
            Err(e) => return Err(e),
        }
    }
    let conn = ctx.redis.connect(addr, access, limit).await?;
    Ok((conn, None))
}

/// A valid reply: `true` for +PONG, `false` for -LOADING / -MASTERDOWN.
async fn ping(conn: &mut Conn, limit: Duration) -> Result<bool, ProbeError> {
    match conn
        .query::<redis::Value>("PING", &conn.names().cmd("PING"), limit)
        .await
    {
        Ok(redis::Value::SimpleString(s)) if s == "PONG" => Ok(true),
        Ok(other) => Err(ProbeError::BadPong(format!("{other:?}"))),
        Err(e)
            if matches!(
                e.redis().and_then(|r| r.code()),
                Some("LOADING" | "MASTERDOWN")
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

async fn fetch_info(conn: &mut Conn, limit: Duration, plain: bool) -> Result<String, ProbeError> {
    let sections: &[&str] = if plain {
        &[]
    } else {
        &["server", "replication"]
    };
    Ok(conn.info(sections, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(resp: &[u8]) -> ConnError {
        let source = match redis::parse_redis_value(resp).and_then(|v| v.extract_error()) {
            Err(e) => e,
            Ok(v) => panic!("{v:?} is not an error"),
        };
        ConnError::Redis {
            addr: Addr::new("127.0.0.1", 1),
            what: "connect",
            source,
        }
    }

    // Only a Redis without HELLO is probed in RESP2 for good; a refused AUTH inside HELLO (a
    // password not set yet) is retried in RESP3 once the password is there.
    #[test]
    fn only_a_missing_hello_means_no_resp3() {
        assert!(no_resp3(&refused(
            b"-ERR unknown command 'HELLO', with args beginning with: '3' \r\n"
        )));
        assert!(no_resp3(&refused(
            b"-NOPROTO unsupported protocol version\r\n"
        )));
        for other in [
            &b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"[..],
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            b"-ERR unknown command 'PING'\r\n",
        ] {
            assert!(!no_resp3(&refused(other)), "{}", String::from_utf8_lossy(other));
        }
        let timeout = ConnError::Timeout {
            addr: Addr::new("127.0.0.1", 1),
            what: "connect",
        };
        assert!(!no_resp3(&timeout));
    }
}
