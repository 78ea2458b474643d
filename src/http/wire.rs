//! HTTP/1.1 as the API speaks it: a request head parsed (httparse), a reply made into bytes. One
//! request per connection: every reply says `Connection: close`, so there is no keep-alive,
//! pipelining or request body to track. Load-balancer checks and Kubernetes probes open a
//! connection per check anyway, and a scraper reconnects once a scrape. No I/O.

/// A request head larger than this is refused (431), as is one with more than `MAX_HEADERS`.
pub const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// What a request asks, once its head has arrived whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'b> {
    /// `HEAD`: the reply's head alone.
    pub head_only: bool,
    pub path: &'b str,
    /// What follows `?`, or "".
    pub query: &'b str,
    /// Bytes past the head were sent or announced (a body, a second request): the close must
    /// take them first, or the kernel answers them with a reset that can cut the reply short.
    pub more: bool,
}

/// What the bytes received so far make.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'b> {
    /// The head is not whole yet.
    Partial,
    Request(Request<'b>),
    /// Answered without asking the routes: malformed, too large, or not GET/HEAD. What was not
    /// read of it is drained before the close, as for [`Request::more`].
    Refused {
        reply: Reply,
        head_only: bool,
    },
}

/// Parses the start of a connection's bytes (at most [`MAX_HEAD`] of them).
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(buf);
    let refuse = |status, reason| Parsed::Refused {
        reply: Reply::error(status, reason),
        head_only: req.method == Some("HEAD"),
    };
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return refuse(TOO_LARGE, HUGE),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return refuse(TOO_LARGE, HUGE),
        Err(_) => return refuse(Status::BadRequest, "malformed request"),
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return refuse(Status::MethodNotAllowed, "only GET"),
    };
    let Some(target) = req.path.and_then(origin_form) else {
        return refuse(Status::BadRequest, "malformed request target");
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let announced = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0")
    });
    Parsed::Request(Request {
        head_only,
        path,
        query,
        more: announced || head_len < buf.len(),
    })
}

const TOO_LARGE: Status = Status::HeadTooLarge;
const HUGE: &str = "request head too large";

/// The path and query of a request target: `/p?q` as it is, `http://host/p?q` (absolute form,
/// what a proxy may send) without its scheme and authority; None for anything else.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let strip = |scheme: &str| {
        let prefix = target.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    };
    let rest = strip("http://").or_else(|| strip("https://"))?;
    // `http://host` is `/`; `http://host?q` keeps its empty path, which no route has.
    Some(rest.find(['/', '?']).map_or("/", |i| &rest[i..]))
}

/// The statuses the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    Internal,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeadTooLarge => "431 Request Header Fields Too Large",
            Status::Internal => "500 Internal Server Error",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

pub const JSON: &str = "application/json";
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A reply before it is made into bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    /// `body` as JSON.
    pub fn json(status: Status, body: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            content_type: JSON,
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    /// An error: its reason as a JSON string.
    pub fn error(status: Status, reason: &str) -> Reply {
        Reply::json(status, &reason)
    }

    /// The bytes on the wire; `head_only` leaves the body out (a HEAD request), not its length.
    /// `date` is the `Date` header's value (RFC 9110 asks one of a server with a clock).
    pub fn encode(&self, head_only: bool, date: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.line().as_bytes());
        out.extend_from_slice(b"\r\ncontent-type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(self.body.len()).as_bytes());
        if self.status == Status::MethodNotAllowed {
            out.extend_from_slice(b"\r\nallow: GET, HEAD");
        }
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Request<'_> {
        match parse(raw.as_bytes()) {
            Parsed::Request(r) => r,
            other => panic!("{raw:?} parsed as {other:?}"),
        }
    }

    fn refused(raw: &[u8]) -> Status {
        match parse(raw) {
            Parsed::Refused { reply, .. } => reply.status,
            other => panic!("{raw:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn a_get_gives_its_path_and_query() {
        let r = request("GET /primary/mymaster?addr=10.0.0.1%3A6379 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            r,
            Request {
                head_only: false,
                path: "/primary/mymaster",
                query: "addr=10.0.0.1%3A6379",
                more: false,
            }
        );
        assert_eq!(request("GET /health HTTP/1.0\r\n\r\n").query, "");
        assert!(request("HEAD /ready HTTP/1.1\r\n\r\n").head_only);
    }

    #[test]
    fn a_head_arriving_in_pieces_is_partial_until_whole() {
        let raw = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut]), Parsed::Partial, "cut at {cut}");
        }
        assert!(matches!(parse(raw), Parsed::Request(_)));
    }

    #[test]
    fn bytes_past_the_head_sent_or_announced_are_to_be_drained() {
        let r = request("GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\n");
        assert!(r.path == "/health" && r.more);
        assert!(request("GET / HTTP/1.1\r\ncontent-length: 5\r\n\r\n").more);
        assert!(request("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").more);
        assert!(request("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n").more);
        assert!(!request("GET / HTTP/1.1\r\nContent-Length:  0 \r\n\r\n").more);
        assert!(!request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").more);
    }

    #[test]
    fn a_refused_head_request_is_answered_without_a_body() {
        let Parsed::Refused { head_only, .. } = parse(b"HEAD * HTTP/1.1\r\n\r\n") else {
            panic!("not refused")
        };
        assert!(head_only);
        let Parsed::Refused { head_only, .. } = parse(b"GET * HTTP/1.1\r\n\r\n") else {
            panic!("not refused")
        };
        assert!(!head_only);
    }

    #[test]
    fn absolute_targets_are_reduced_to_path_and_query() {
        assert_eq!(
            request("GET http://h:1/ready HTTP/1.1\r\n\r\n").path,
            "/ready"
        );
        let r = request("GET HTTPS://h/primary/m?addr=a HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/primary/m", "addr=a"));
        assert_eq!(request("GET http://h HTTP/1.1\r\n\r\n").path, "/");
        let r = request("GET http://h?lag=1 HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("", "lag=1"));
        assert_eq!(refused(b"GET * HTTP/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(
            refused(b"GET ftp://h/ HTTP/1.1\r\n\r\n"),
            Status::BadRequest
        );
    }

    #[test]
    fn other_methods_are_refused_with_allow() {
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"] {
            let raw = format!("{m} /health HTTP/1.1\r\n\r\n");
            assert_eq!(refused(raw.as_bytes()), Status::MethodNotAllowed, "{m}");
        }
        let Parsed::Refused { reply, .. } = parse(b"POST / HTTP/1.1\r\n\r\n") else {
            panic!("not refused")
        };
        let text = String::from_utf8(reply.encode(false, "d")).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nallow: GET, HEAD\r\n"), "{text}");
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        for raw in [
            &b"GET /health HTTP/2.0\r\n\r\n"[..],
            b"GET /health\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(refused(raw), Status::BadRequest, "{raw:?}");
        }
    }

    #[test]
    fn large_heads_are_refused_not_buffered() {
        let mut raw = b"GET / HTTP/1.1\r\nX: ".to_vec();
        raw.resize(MAX_HEAD, b'a');
        assert_eq!(refused(&raw), Status::HeadTooLarge);
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(refused(many.as_bytes()), Status::HeadTooLarge);
    }

    #[test]
    fn replies_carry_length_type_date_and_close() {
        let r = Reply::json(Status::Unavailable, &serde_json::json!({"ok": false}));
        let text = String::from_utf8(r.encode(false, "Sun, 06 Dec 2026 05:00:00 GMT")).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: 12\r\ndate: Sun, 06 Dec 2026 05:00:00 GMT\r\n\
             connection: close\r\n\r\n{\"ok\":false}"
        );
        let head = String::from_utf8(r.encode(true, "d")).unwrap();
        assert!(head.ends_with("content-length: 12\r\ndate: d\r\nconnection: close\r\n\r\n"));
        assert_eq!(
            Reply::error(Status::NotFound, "no such route").body,
            b"\"no such route\""
        );
    }
}
