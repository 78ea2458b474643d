//! One connection of the HTTP API: its request head read, one reply written, then closed.
//!
//! Most are answered where they are accepted, without the reactor: the listener hands a
//! connection over only once its request has arrived (`TCP_DEFER_ACCEPT`), so one read finds
//! the head and one write takes the reply. A check then costs the node one wake-up and no epoll
//! registration — a node answers its load balancers' checks many times a second, for ever. A
//! connection slower than that (its head in pieces, a reply larger than the socket takes) goes
//! to a task of its own, bounded in time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, Parsed, Reply, Request};
use crate::resp::admission::Slot;

/// A request's head must arrive within this, and its reply be taken within as long again.
const HEAD_LIMIT: Duration = Duration::from_secs(5);
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// How long the kernel holds a connection back waiting for its first bytes.
const DEFER_ACCEPT_SECS: libc::c_int = 2;

/// The kernel hands a connection over only once its request has arrived, so that
/// [`answer`]'s first read finds it. Refused (not Linux, say), connections come as usual and
/// more of them take the slower path.
pub fn defer_accept(l: &std::net::TcpListener) {
    let secs = DEFER_ACCEPT_SECS;
    // SAFETY: `l` owns an open socket; the value is a c_int of the size given.
    let r = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::addr_of!(secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "TCP_DEFER_ACCEPT refused");
    }
}

/// Answers a just-accepted connection (non-blocking): at once if its request is here whole and
/// its reply fits the socket, else from a task that finishes it. `slot` is held until it closes.
pub fn answer<F>(stream: TcpStream, slot: Slot, routes: &F)
where
    F: Fn(&Request<'_>) -> Reply + Clone + Send + Sync + 'static,
{
    let mut head = [0u8; wire::MAX_HEAD];
    let n = match (&stream).read(&mut head) {
        Ok(0) => return,
        Ok(n) => n,
        Err(e) if again(&e) => 0,
        Err(e) => return tracing::debug!(error = %e, "HTTP read failed"),
    };
    let Some(reply) = reply_to(&head[..n], routes) else {
        let rest = Rest::Head(head[..n].to_vec());
        tokio::spawn(finish(stream, slot, rest, routes.clone()));
        return;
    };
    let written = match (&stream).write(&reply) {
        Ok(n) => n,
        Err(e) if again(&e) => 0,
        Err(e) => return tracing::debug!(error = %e, "HTTP write failed"),
    };
    if written < reply.len() {
        let rest = Rest::Reply(reply[written..].to_vec());
        tokio::spawn(finish(stream, slot, rest, routes.clone()));
    }
}

/// Nothing to do now; the same call later may succeed.
fn again(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// The reply's bytes once `head` holds a whole request head (or something refused); None while
/// it does not.
fn reply_to<F: Fn(&Request<'_>) -> Reply>(head: &[u8], routes: &F) -> Option<Vec<u8>> {
    let date = || httpdate::fmt_http_date(SystemTime::now());
    match wire::parse(head) {
        Parsed::Partial => None,
        Parsed::Refused(r) => Some(r.encode(false, &date())),
        Parsed::Request(req) => Some(routes(&req).encode(req.head_only, &date())),
    }
}

/// What the fast path left of a connection.
enum Rest {
    /// The head so far; more is to come.
    Head(Vec<u8>),
    /// The reply's bytes not yet taken.
    Reply(Vec<u8>),
}

async fn finish<F>(stream: TcpStream, _slot: Slot, rest: Rest, routes: F)
where
    F: Fn(&Request<'_>) -> Reply,
{
    let mut stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return tracing::debug!(error = %e, "HTTP connection unusable"),
    };
    let reply = match rest {
        Rest::Reply(r) => r,
        Rest::Head(head) => {
            match tokio::time::timeout(HEAD_LIMIT, read_head(&mut stream, head, &routes)).await {
                Ok(Some(r)) => r,
                // Closed, failed or too slow: dropped without a word, as a server does.
                Ok(None) | Err(_) => return,
            }
        }
    };
    if let Ok(Err(e)) = tokio::time::timeout(WRITE_LIMIT, stream.write_all(&reply)).await {
        tracing::debug!(error = %e, "HTTP write failed");
    }
}

/// Reads until `head` is a whole request head (or one refused); the reply's bytes.
async fn read_head<F>(
    stream: &mut tokio::net::TcpStream,
    mut head: Vec<u8>,
    routes: &F,
) -> Option<Vec<u8>>
where
    F: Fn(&Request<'_>) -> Reply,
{
    // Each round reads at least one byte and the head is capped, so this ends by itself too.
    loop {
        if let Some(reply) = reply_to(&head, routes) {
            return Some(reply);
        }
        let had = head.len();
        head.resize(wire::MAX_HEAD, 0);
        let n = stream.read(&mut head[had..]).await.ok()?;
        head.truncate(had + n);
        if n == 0 {
            return None;
        }
    }
}
