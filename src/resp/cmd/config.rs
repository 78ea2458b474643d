//! SENTINEL CONFIG GET <pattern> [<pattern> ...] / SET <param> <value> [<param> <value> ...], as
//! in Redis 7.2: every parameter is validated before any is applied, and the replies and errors
//! use sentinel.c's words. `loglevel` switches this node's log filter and `resolve-hostnames` /
//! `announce-hostnames` this node's handling of hostnames; the others are fixed, because
//! raftinel announces the addresses in its Raft membership and authenticates its nodes to each
//! other with TLS: SET accepts only the value in effect.

use bytes::Bytes;

use super::{lossy, text, wrong_arity};
use crate::loglevel::{self, Level};
use crate::redis::Hostnames;
use crate::resp::reply::Reply;
use crate::resp::session::Session;

/// What a parameter holds and how its value is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    YesNo,
    Port,
    Text,
    LogLevel,
}

/// Sentinel's parameters in the order CONFIG GET lists them, each with raftinel's fixed value
/// (`None`: one this node changes) and why it is fixed.
const PARAMS: [(&str, Kind, Option<&str>, &str); 7] = [
    (RESOLVE, Kind::YesNo, None, ""),
    (ANNOUNCE, Kind::YesNo, None, ""),
    (
        "announce-ip",
        Kind::Text,
        Some(""),
        "raftinel announces the addresses in its Raft membership",
    ),
    (
        "announce-port",
        Kind::Port,
        Some("0"),
        "raftinel announces the addresses in its Raft membership",
    ),
    (
        "sentinel-user",
        Kind::Text,
        Some(""),
        "raftinel nodes authenticate to each other with TLS",
    ),
    (
        "sentinel-pass",
        Kind::Text,
        Some(""),
        "raftinel nodes authenticate to each other with TLS",
    ),
    ("loglevel", Kind::LogLevel, None, ""),
];

const RESOLVE: &str = "resolve-hostnames";
const ANNOUNCE: &str = "announce-hostnames";

pub fn config(s: &Session, hostnames: &Hostnames, args: &[Bytes]) -> Reply {
    if args.len() < 4 {
        return wrong_arity("sentinel|config");
    }
    let op = args[2].to_ascii_lowercase();
    match op.as_slice() {
        b"set" if args.len() >= 5 => {
            if let Err(denied) = s.permit_write("sentinel|config") {
                return denied;
            }
            set(hostnames, &args[3..])
        }
        b"get" => get(hostnames, &args[3..]),
        _ => Reply::error(
            "ERR Only SENTINEL CONFIG GET <param> [<param> <param> ...]/ SET <param> <value> [<param> <value> ...] are supported.",
        ),
    }
}

fn value_of(param: &str, hostnames: &Hostnames) -> String {
    let yes_no = |on: bool| if on { "yes" } else { "no" }.to_owned();
    match PARAMS.iter().find(|p| p.0 == param) {
        Some((_, _, Some(fixed), _)) => (*fixed).to_owned(),
        Some((RESOLVE, ..)) => yes_no(hostnames.settings().resolve),
        Some((ANNOUNCE, ..)) => yes_no(hostnames.settings().announce),
        _ => loglevel::current().name().to_owned(),
    }
}

/// Every parameter some pattern matches, once, in pattern order and then table order.
fn get(hostnames: &Hostnames, patterns: &[Bytes]) -> Reply {
    let mut shown: Vec<&str> = Vec::new();
    for pattern in patterns {
        for (name, ..) in PARAMS {
            if !shown.contains(&name) && crate::glob::matches(pattern, name.as_bytes(), true) {
                shown.push(name);
            }
        }
    }
    Reply::fields(
        shown
            .into_iter()
            .map(|p| (p, Reply::from(value_of(p, hostnames)))),
    )
}

/// Validates every pair as sentinel.c does (unknown, duplicate, missing value, malformed value,
/// in argument order), then refuses values raftinel cannot take, then applies: all or nothing.
fn set(hostnames: &Hostnames, pairs: &[Bytes]) -> Reply {
    match validate(pairs) {
        Err(e) => Reply::error(e),
        Ok(change) => {
            if let Some(level) = change.level {
                if let Err(e) = loglevel::set(level) {
                    return Reply::error(format!("ERR {e}"));
                }
                tracing::info!(loglevel = level.name(), "log level set by CONFIG SET");
            }
            let mut h = hostnames.settings();
            h.resolve = change.resolve.unwrap_or(h.resolve);
            h.announce = change.announce.unwrap_or(h.announce);
            if h != hostnames.settings() {
                tracing::info!(
                    resolve = h.resolve,
                    announce = h.announce,
                    "hostname settings set by CONFIG SET"
                );
                hostnames.set(h);
            }
            Reply::ok()
        }
    }
}

/// What a valid CONFIG SET changes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Change {
    level: Option<Level>,
    resolve: Option<bool>,
    announce: Option<bool>,
}

fn validate(pairs: &[Bytes]) -> Result<Change, String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut checked = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let option = lossy(&pairs[i], 128);
        let Some(&(name, kind, fixed, why)) =
            PARAMS.iter().find(|p| p.0.eq_ignore_ascii_case(&option))
        else {
            return Err(format!(
                "ERR Invalid argument '{option}' to SENTINEL CONFIG SET"
            ));
        };
        if seen.contains(&name) {
            return Err(format!(
                "ERR Duplicate argument '{option}' to SENTINEL CONFIG SET"
            ));
        }
        seen.push(name);
        let Some(raw) = pairs.get(i + 1) else {
            return Err(format!("ERR Missing argument '{option}' value"));
        };
        let value = lossy(raw, 128);
        let bad = || format!("ERR Invalid value '{value}' to SENTINEL CONFIG SET '{option}'");
        let well_formed = match kind {
            Kind::YesNo => value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("no"),
            Kind::Port => text(raw)
                .and_then(|_| super::int(raw))
                .is_some_and(|p| (0..=65535).contains(&p)),
            Kind::Text => true,
            Kind::LogLevel => Level::parse(&value).is_some(),
        };
        if !well_formed {
            return Err(bad());
        }
        checked.push((name, kind, fixed, why, value.clone(), bad()));
        i += 2;
    }
    let mut change = Change::default();
    for (name, kind, fixed, why, value, bad) in checked {
        match (fixed, name) {
            (Some(fixed), _) if !same_value(kind, fixed, &value) => {
                return Err(format!("{bad}: {why}"))
            }
            (Some(_), _) => {}
            (None, RESOLVE) => change.resolve = Some(value.eq_ignore_ascii_case("yes")),
            (None, ANNOUNCE) => change.announce = Some(value.eq_ignore_ascii_case("yes")),
            (None, _) => change.level = Level::parse(&value),
        }
    }
    Ok(change)
}

fn same_value(kind: Kind, fixed: &str, value: &str) -> bool {
    match kind {
        Kind::YesNo => fixed.eq_ignore_ascii_case(value),
        Kind::Port => value.parse::<i64>().ok() == fixed.parse::<i64>().ok(),
        Kind::Text | Kind::LogLevel => fixed == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    #[test]
    fn validation_follows_sentinel_c_in_argument_order() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["nosuch", "1"],
                "ERR Invalid argument 'nosuch' to SENTINEL CONFIG SET",
            ),
            (
                &["announce-port", "0", "ANNOUNCE-PORT", "0"],
                "ERR Duplicate argument 'ANNOUNCE-PORT' to SENTINEL CONFIG SET",
            ),
            (
                &["announce-port", "0", "loglevel"],
                "ERR Missing argument 'loglevel' value",
            ),
            (
                &["announce-port", "65536"],
                "ERR Invalid value '65536' to SENTINEL CONFIG SET 'announce-port'",
            ),
            (
                &["announce-port", "-1"],
                "ERR Invalid value '-1' to SENTINEL CONFIG SET 'announce-port'",
            ),
            (
                &["resolve-hostnames", "maybe"],
                "ERR Invalid value 'maybe' to SENTINEL CONFIG SET 'resolve-hostnames'",
            ),
            (
                &["loglevel", "info"],
                "ERR Invalid value 'info' to SENTINEL CONFIG SET 'loglevel'",
            ),
            // A malformed value later in the request wins over an unsupported one earlier:
            // sentinel.c's checks all run before raftinel's.
            (
                &["announce-port", "1234", "loglevel", "loud"],
                "ERR Invalid value 'loud' to SENTINEL CONFIG SET 'loglevel'",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(validate(&args(pairs)).unwrap_err(), *want, "{pairs:?}");
        }
    }

    #[test]
    fn values_raftinel_cannot_take_are_refused_with_the_reason() {
        let e = validate(&args(&["announce-port", "1234"])).unwrap_err();
        assert!(
            e.starts_with("ERR Invalid value '1234' to SENTINEL CONFIG SET 'announce-port': "),
            "{e}"
        );
        // Nothing is applied when any pair is refused.
        assert!(validate(&args(&["loglevel", "debug", "announce-ip", "10.77.0.9"])).is_err());
    }

    #[test]
    fn the_values_in_effect_and_a_level_are_accepted() {
        let ok = validate(&args(&[
            "RESOLVE-HOSTNAMES",
            "No",
            "announce-port",
            "0",
            "announce-ip",
            "",
            "loglevel",
            "WARNING",
        ]));
        assert_eq!(
            ok,
            Ok(Change {
                level: Some(Level::Warning),
                resolve: Some(false),
                announce: None
            })
        );
        assert_eq!(
            validate(&args(&["announce-port", "0"])),
            Ok(Change::default())
        );
        assert_eq!(
            validate(&args(&[
                "announce-hostnames",
                "YES",
                "resolve-hostnames",
                "yes"
            ])),
            Ok(Change {
                level: None,
                resolve: Some(true),
                announce: Some(true)
            })
        );
    }

    #[test]
    fn get_lists_each_match_once_in_pattern_then_table_order() {
        let hostnames = Hostnames::new(crate::redis::HostnameSettings {
            resolve: true,
            announce: false,
        });
        let Reply::Map(fields) = get(
            &hostnames,
            &args(&["loglevel", "announce-*", "LOGLEVEL", "nosuch"]),
        ) else {
            panic!("a map");
        };
        let names: Vec<String> = fields
            .iter()
            .map(|(k, _)| match k {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "loglevel",
                "announce-hostnames",
                "announce-ip",
                "announce-port"
            ]
        );
    }
}
