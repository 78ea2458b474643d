//! Replies as values and their bytes in RESP2 or RESP3. Sentinel's shapes: maps are flat arrays
//! in RESP2, nulls differ by type in RESP2 and are `_` in RESP3, pub/sub messages are `>` pushes
//! in RESP3. No I/O.

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol a connection speaks, chosen by HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR …`: the text without the leading '-'.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// The null bulk string (`$-1` / `_`).
    Nil,
    /// The null array (`*-1` / `_`): GET-MASTER-ADDR-BY-NAME's "no such master".
    NilArray,
    Array(Vec<Reply>),
    /// A RESP3 map; a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A RESP3 push (pub/sub); an array in RESP2.
    Push(Vec<Reply>),
    /// Bytes already encoded, identical in RESP2 and RESP3 (a cached hot reply).
    Raw(Bytes),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status("OK".to_owned())
    }

    pub fn bulk(s: impl Into<Bytes>) -> Reply {
        Reply::Bulk(s.into())
    }

    /// A bulk string with the decimal digits of `n`: Sentinel sends numbers this way.
    pub fn num(n: impl itoa::Integer) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(n).as_bytes(),
        ))
    }

    /// An error line; CR and LF are replaced by spaces, as Redis does, so that the reply stays
    /// one line whatever the client sent.
    pub fn error(text: impl Into<String>) -> Reply {
        let mut text = text.into();
        if text.contains(['\r', '\n']) {
            text = text.replace(['\r', '\n'], " ");
        }
        Reply::Error(text)
    }

    /// A map whose keys are field names.
    pub fn fields<K: Into<Bytes>>(pairs: impl IntoIterator<Item = (K, Reply)>) -> Reply {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::Bulk(k.into()), v))
                .collect(),
        )
    }

    pub fn encode(&self, proto: Proto, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => line(out, b':', itoa::Buffer::new().format(*n).as_bytes()),
            Reply::Bulk(b) => {
                header(out, b'$', b.len());
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Raw(b) => out.put_slice(b),
            Reply::Nil => out.put_slice(null(proto, b"$-1\r\n")),
            Reply::NilArray => out.put_slice(null(proto, b"*-1\r\n")),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|i| i.encode(proto, out));
            }
            Reply::Push(items) => {
                let tag = if proto == Proto::Resp3 { b'>' } else { b'*' };
                header(out, tag, items.len());
                items.iter().for_each(|i| i.encode(proto, out));
            }
            Reply::Map(pairs) => {
                match proto {
                    Proto::Resp3 => header(out, b'%', pairs.len()),
                    Proto::Resp2 => header(out, b'*', pairs.len() * 2),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
        }
    }
}

fn null(proto: Proto, resp2: &'static [u8]) -> &'static [u8] {
    match proto {
        Proto::Resp2 => resp2,
        Proto::Resp3 => b"_\r\n",
    }
}

fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, tag: u8, len: usize) {
    line(out, tag, itoa::Buffer::new().format(len).as_bytes());
}

impl From<&str> for Reply {
    fn from(s: &str) -> Self {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Reply {
    fn from(s: String) -> Self {
        Reply::Bulk(Bytes::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply, proto: Proto) -> String {
        let mut out = BytesMut::new();
        r.encode(proto, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn captured_sentinel_bytes() {
        let addr = Reply::Array(vec!["127.0.0.1".into(), Reply::num(6390u16)]);
        assert_eq!(
            wire(&addr, Proto::Resp2),
            "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6390\r\n"
        );
        assert_eq!(wire(&Reply::NilArray, Proto::Resp2), "*-1\r\n");
        assert_eq!(wire(&Reply::NilArray, Proto::Resp3), "_\r\n");
        assert_eq!(wire(&Reply::Nil, Proto::Resp2), "$-1\r\n");
        assert_eq!(
            wire(
                &Reply::error("ERR No such master with that name"),
                Proto::Resp2
            ),
            "-ERR No such master with that name\r\n"
        );
        assert_eq!(wire(&Reply::Int(0), Proto::Resp3), ":0\r\n");
        let map = Reply::fields([("announce-port", Reply::from("0"))]);
        assert_eq!(
            wire(&map, Proto::Resp2),
            "*2\r\n$13\r\nannounce-port\r\n$1\r\n0\r\n"
        );
        assert_eq!(
            wire(&map, Proto::Resp3),
            "%1\r\n$13\r\nannounce-port\r\n$1\r\n0\r\n"
        );
        let msg = Reply::Push(vec!["message".into(), "+set".into(), "x".into()]);
        assert_eq!(
            wire(&msg, Proto::Resp2),
            "*3\r\n$7\r\nmessage\r\n$4\r\n+set\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            wire(&msg, Proto::Resp3),
            ">3\r\n$7\r\nmessage\r\n$4\r\n+set\r\n$1\r\nx\r\n"
        );
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(
            wire(&Reply::error("ERR bad 'a\r\nb'"), Proto::Resp2),
            "-ERR bad 'a  b'\r\n"
        );
    }
}
