//! One connection of the HTTP API: its request head read, one reply written, then closed.
//!
//! Most are answered where they are accepted, without the reactor: the listener hands a
//! connection over once its first bytes have arrived (`TCP_DEFER_ACCEPT`), so one read finds
//! the head and one write takes the reply. A check then costs the node one wake-up and no epoll
//! registration — a node answers its load balancers' checks many times a second, for ever. A
//! connection slower than that (its head in pieces, a reply larger than the socket takes, bytes
//! past the head to drain before the close) goes to a task of its own, bounded in time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, Parsed, Reply, Request};
use crate::resp::admission::Slot;

/// A request's head must arrive within this of the accept, and its reply be taken within as
/// long again.
const HEAD_LIMIT: Duration = Duration::from_secs(5);
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// What is drained of bytes past the head before the close, at most.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 64 * 1024;
/// How long the kernel holds a connection back waiting for its first bytes (Linux rounds it up
/// to a whole SYN-ACK retransmission, ~1 s here), after which it is handed over anyway.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// The kernel hands a connection over once its first bytes have arrived (or after
/// `DEFER_ACCEPT_SECS` anyway), so that [`answer`]'s first read finds the head. Refused (not
/// Linux, say), connections come as usual and more of them take the slower path.
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
    let Some(answer) = reply_to(&head[..n], routes) else {
        let rest = Rest::Head(head[..n].to_vec());
        tokio::spawn(finish(stream, slot, rest, routes.clone()));
        return;
    };
    let written = match (&stream).write(&answer.bytes) {
        Ok(n) => n,
        Err(e) if again(&e) => 0,
        Err(e) => return tracing::debug!(error = %e, "HTTP write failed"),
    };
    if written < answer.bytes.len() || answer.drain {
        let rest = Rest::Reply(Answer {
            bytes: answer.bytes[written..].to_vec(),
            drain: answer.drain,
        });
        tokio::spawn(finish(stream, slot, rest, routes.clone()));
    }
}

/// Nothing to do now; the same call later may succeed.
fn again(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// A reply's bytes, and whether the request left bytes to drain before the close.
struct Answer {
    bytes: Vec<u8>,
    drain: bool,
}

/// The answer once `head` holds a whole request head (or something refused); None while it does
/// not.
fn reply_to<F: Fn(&Request<'_>) -> Reply>(head: &[u8], routes: &F) -> Option<Answer> {
    let date = || httpdate::fmt_http_date(SystemTime::now());
    match wire::parse(head) {
        Parsed::Partial => None,
        Parsed::Refused { reply, head_only } => Some(Answer {
            bytes: reply.encode(head_only, &date()),
            drain: true,
        }),
        Parsed::Request(req) => Some(Answer {
            bytes: routes(&req).encode(req.head_only, &date()),
            drain: req.more,
        }),
    }
}

/// What the fast path left of a connection.
enum Rest {
    /// The head so far; more is to come.
    Head(Vec<u8>),
    /// The reply's bytes not yet taken, and whether to drain.
    Reply(Answer),
}

async fn finish<F>(stream: TcpStream, _slot: Slot, rest: Rest, routes: F)
where
    F: Fn(&Request<'_>) -> Reply,
{
    let mut stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return tracing::debug!(error = %e, "HTTP connection unusable"),
    };
    let answer = match rest {
        Rest::Reply(a) => a,
        Rest::Head(head) => {
            match tokio::time::timeout(HEAD_LIMIT, read_head(&mut stream, head, &routes)).await {
                Ok(Some(a)) => a,
                // Closed, failed or too slow: dropped without a word, as a server does.
                Ok(None) | Err(_) => return,
            }
        }
    };
    match tokio::time::timeout(WRITE_LIMIT, stream.write_all(&answer.bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return tracing::debug!(error = %e, "HTTP write failed"),
        Err(_) => return,
    }
    if answer.drain {
        // Our FIN first, then what the client still sends, so the close resets nothing unread.
        let drain = async {
            stream.shutdown().await.ok()?;
            let mut sink = [0u8; 4096];
            let mut taken = 0;
            while taken < DRAIN_BYTES {
                match stream.read(&mut sink).await.ok()? {
                    0 => break,
                    n => taken += n,
                }
            }
            Some(())
        };
        let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
    }
}

/// Reads until `head` is a whole request head (or one refused); the answer.
async fn read_head<F>(
    stream: &mut tokio::net::TcpStream,
    mut head: Vec<u8>,
    routes: &F,
) -> Option<Answer>
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
