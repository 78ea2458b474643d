//! The command table (names, arities, flags) and COMMAND [COUNT | LIST | INFO | DOCS], enough
//! for `redis-cli` and for clients that introspect the server.

use bytes::Bytes;

use super::{lossy, unknown_subcommand};
use crate::resp::reply::Reply;

struct Spec {
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    categories: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    categories: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        categories,
    }
}

const CONN: &[&str] = &["@fast", "@connection"];
const PUBSUB: &[&str] = &["@pubsub", "@slow"];
const TABLE: &[Spec] = &[
    spec(
        "auth",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "sentinel",
            "allow_busy",
        ],
        CONN,
    ),
    spec("client", -2, &["sentinel"], &["@slow"]),
    spec(
        "command",
        -1,
        &["loading", "stale", "sentinel"],
        &["@slow", "@connection"],
    ),
    spec(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "sentinel",
            "allow_busy",
        ],
        CONN,
    ),
    spec(
        "info",
        -1,
        &["loading", "stale", "sentinel"],
        &["@slow", "@dangerous"],
    ),
    spec("ping", -1, &["fast", "sentinel"], CONN),
    spec(
        "psubscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale", "sentinel"],
        PUBSUB,
    ),
    spec(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        &["@pubsub", "@fast"],
    ),
    spec(
        "punsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale", "sentinel"],
        PUBSUB,
    ),
    spec(
        "quit",
        -1,
        &[
            "allow_busy",
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
        ],
        CONN,
    ),
    spec(
        "role",
        1,
        &["noscript", "loading", "stale", "fast", "sentinel"],
        &["@admin", "@fast", "@dangerous"],
    ),
    spec(
        "sentinel",
        -2,
        &["admin", "sentinel", "only_sentinel"],
        &["@admin", "@slow", "@dangerous"],
    ),
    spec(
        "subscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale", "sentinel"],
        PUBSUB,
    ),
    spec(
        "unsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale", "sentinel"],
        PUBSUB,
    ),
];

/// The arity of a known command (lowercase name), or `None` for an unknown one.
pub fn arity(name: &str) -> Option<i32> {
    TABLE.iter().find(|s| s.name == name).map(|s| s.arity)
}

fn entry(s: &Spec) -> Reply {
    let status =
        |v: &[&str]| Reply::Array(v.iter().map(|f| Reply::Status((*f).to_owned())).collect());
    Reply::Array(vec![
        s.name.into(),
        Reply::Int(i64::from(s.arity)),
        status(s.flags),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(0),
        status(s.categories),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

pub fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(TABLE.iter().map(entry).collect());
    };
    let rest = &args[2..];
    match sub.to_ascii_lowercase().as_slice() {
        b"count" if rest.is_empty() => Reply::Int(TABLE.len() as i64),
        b"list" if rest.is_empty() => {
            Reply::Array(TABLE.iter().map(|s| Reply::from(s.name)).collect())
        }
        b"info" => {
            if rest.is_empty() {
                return Reply::Array(TABLE.iter().map(entry).collect());
            }
            Reply::Array(
                rest.iter()
                    .map(|n| {
                        let n = lossy(n, 64).to_ascii_lowercase();
                        TABLE.iter().find(|s| s.name == n).map_or(Reply::Nil, entry)
                    })
                    .collect(),
            )
        }
        // No documentation is served: redis-cli then falls back to its built-in hints.
        b"docs" => Reply::Map(Vec::new()),
        b"count" | b"list" => {
            super::wrong_arity(&format!("command|{}", lossy(sub, 32).to_ascii_lowercase()))
        }
        _ => unknown_subcommand(sub, "COMMAND"),
    }
}
