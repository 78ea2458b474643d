//! Client requests on the wire: RESP multibulk arrays (what every client library sends) and
//! inline commands (telnet, `redis-cli` pipes), decoded with Redis's limits and its exact
//! protocol-error wording. No I/O.
//!
//! Decoding walks the buffer first without allocating and returns `None` until a whole request
//! is there; only then are the arguments cut out, as zero-copy slices of the read buffer. Every
//! length is checked against [`Limits`] before anything is buffered for it, so a client can make
//! a connection hold at most `max_request` bytes.

use bytes::{Buf, Bytes, BytesMut};

/// How big a request may be. Sentinel's arguments are names, addresses and options: a few bytes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_args: usize,
    pub max_bulk: usize,
    /// The whole request, headers included.
    pub max_request: usize,
}

/// For an authenticated (or auth-free) connection.
pub const LIMITS: Limits = Limits {
    max_args: 1024,
    max_bulk: 64 * 1024,
    max_request: 1024 * 1024,
};

/// Before AUTH, as Redis does: at most 10 arguments of at most 16 KiB.
pub const UNAUTHENTICATED: Limits = Limits {
    max_args: 10,
    max_bulk: 16 * 1024,
    max_request: 64 * 1024,
};

/// Redis's PROTO_INLINE_MAX_SIZE: an inline request or a header line may not be longer.
const MAX_INLINE: usize = 64 * 1024;

/// A request that cannot be decoded; Redis replies `-ERR Protocol error: …` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: too big mbulk count string")]
    BigCount,
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulk,
    #[error("Protocol error: too big bulk count string")]
    BigBulkCount,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulk,
    #[error("Protocol error: too big inline request")]
    BigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Takes the next whole request off `buf`: its arguments, or `None` if more bytes are needed.
/// Empty requests (`*0`, `*-1`, blank inline lines) are consumed and skipped.
pub fn decode(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let parsed = if first == b'*' {
            multibulk(buf, limits, authenticated)?
        } else {
            inline(buf)?
        };
        match parsed {
            None => return Ok(None),
            Some(args) if args.is_empty() => continue,
            Some(args) => return Ok(Some(args)),
        }
    }
}

/// The end of the line starting at `from` (the index of its '\r'), if it is complete.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rel = memchr(b'\r', &buf[from..])?;
    (from + rel + 1 < buf.len()).then_some(from + rel)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses a decimal length as Redis's `string2ll` does (optional '-', digits only).
fn number(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

fn multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    // Pass 1: find where every argument lies, allocating nothing.
    let Some(end) = line_end(buf, 1) else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError::BigCount)
        } else {
            Ok(None)
        };
    };
    let count = number(&buf[1..end]).ok_or(ProtocolError::MultibulkLength)?;
    if count > limits.max_args as i64 {
        return Err(if authenticated {
            ProtocolError::MultibulkLength
        } else {
            ProtocolError::UnauthenticatedMultibulk
        });
    }
    let mut pos = end + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    let count = count as usize;
    let mut spans = [(0usize, 0usize); 16];
    let mut more = Vec::new();
    for i in 0..count {
        let Some(&tag) = buf.get(pos) else {
            return Ok(None);
        };
        if tag != b'$' {
            return Err(ProtocolError::ExpectedDollar(char::from(tag)));
        }
        let Some(end) = line_end(buf, pos + 1) else {
            return if buf.len() - pos > MAX_INLINE {
                Err(ProtocolError::BigBulkCount)
            } else {
                Ok(None)
            };
        };
        let len = number(&buf[pos + 1..end]).ok_or(ProtocolError::BulkLength)?;
        if len < 0 || len as usize > limits.max_bulk {
            return Err(if authenticated || len < 0 {
                ProtocolError::BulkLength
            } else {
                ProtocolError::UnauthenticatedBulk
            });
        }
        let start = end + 2;
        let stop = start + len as usize;
        if stop + 2 > limits.max_request {
            return Err(ProtocolError::BulkLength);
        }
        if i < spans.len() {
            spans[i] = (start, stop);
        } else {
            more.push((start, stop));
        }
        // Like Redis, the two bytes after the data are skipped, not checked.
        pos = stop + 2;
        if pos > buf.len() {
            return Ok(None);
        }
    }
    // Pass 2: the request is whole; cut the arguments out of one frozen slice.
    let frame = buf.split_to(pos).freeze();
    let args = spans
        .iter()
        .take(count.min(spans.len()))
        .chain(more.iter())
        .map(|&(s, e)| frame.slice(s..e))
        .collect();
    Ok(Some(args))
}

fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError::BigInline)
        } else {
            Ok(None)
        };
    };
    if nl > MAX_INLINE {
        return Err(ProtocolError::BigInline);
    }
    let line = buf.split_to(nl + 1);
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    split_args(text)
        .map(|args| Some(args.into_iter().map(Bytes::from).collect()))
        .ok_or(ProtocolError::UnbalancedQuotes)
}

/// Redis's `sdssplitargs`: words separated by spaces, with "double quotes" (and \n, \xHH, … escapes)
/// and 'single quotes'. `None` for unbalanced quotes or a closing quote not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c {
                    None => return None,
                    Some(b'\\') if i + 3 < line.len() && line[i + 1] == b'x' => {
                        match (hex(line[i + 2]), hex(line[i + 3])) {
                            (Some(h), Some(l)) => {
                                cur.push(h * 16 + l);
                                i += 3;
                            }
                            _ => cur.push(b'\\'),
                        }
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        in_dq = false;
                        i += 1;
                        break;
                    }
                    Some(x) => cur.push(x),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        in_sq = false;
                        i += 1;
                        break;
                    }
                    Some(x) => cur.push(x),
                }
            } else {
                match c {
                    None => break,
                    Some(x) if x.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(x) => cur.push(x),
                }
            }
            i += 1;
        }
        debug_assert!(!in_dq && !in_sq);
        args.push(cur);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
