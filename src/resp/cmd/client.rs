//! Connection commands: PING, AUTH, HELLO and CLIENT, with Redis's exact error wording.

use bytes::Bytes;

use super::{int, lossy, unknown_subcommand, wrong_arity};
use crate::config::SentinelAuth;
use crate::resp::reply::{Proto, Reply};
use crate::resp::session::Session;
use crate::resp::Ctx;

/// The Redis version raftinel reports in HELLO and INFO: clients gate features on it, and 7.2
/// is the Sentinel whose surface (CLIENT SETINFO, QUIT) raftinel serves.
pub const REDIS_VERSION: &str = "7.2.4";

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

pub fn ping(s: &Session, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return wrong_arity("ping");
    }
    if s.in_subscribe_mode() {
        let msg = args.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec!["pong".into(), Reply::Bulk(msg)]);
    }
    match args.get(1) {
        Some(msg) => Reply::Bulk(msg.clone()),
        None => Reply::Status("PONG".to_owned()),
    }
}

/// Checks a user and password against the configured ones, in time independent of where they
/// differ.
fn check(auth: &SentinelAuth, user: &str, pass: &[u8]) -> bool {
    let expected = if user == "default" {
        match &auth.requirepass {
            Some(p) => p.as_str(),
            // As in Redis: the default user is `nopass` (any password) only while no credential
            // is configured at all; once other users exist it is disabled.
            None => return !auth.required(),
        }
    } else {
        match auth.users.get(user) {
            Some(u) => u.password.as_str(),
            None => return false,
        }
    };
    constant_time_eq(expected.as_bytes(), pass)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

pub fn auth(ctx: &Ctx, s: &mut Session, args: &[Bytes]) -> Reply {
    let (user, pass) = match args.len() {
        2 => ("default".to_owned(), &args[1]),
        3 => (lossy(&args[1], 256), &args[2]),
        _ => return Reply::error("ERR syntax error"),
    };
    if args.len() == 2 && !ctx.auth.required() {
        return Reply::error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if check(&ctx.auth, &user, pass) {
        s.login(&ctx.auth, user);
        Reply::ok()
    } else {
        Reply::error(WRONGPASS)
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(ctx: &Ctx, s: &mut Session, args: &[Bytes]) -> Reply {
    let mut proto = s.proto;
    if let Some(v) = args.get(1) {
        proto = match int(v) {
            Some(2) => Proto::Resp2,
            Some(3) => Proto::Resp3,
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => return Reply::error("ERR Protocol version is not an integer or out of range"),
        };
    }
    let mut i = 2;
    let mut login: Option<(String, Bytes)> = None;
    let mut setname: Option<Bytes> = None;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        let more = args.len() - i - 1;
        if opt == b"auth" && more >= 2 {
            login = Some((lossy(&args[i + 1], 256), args[i + 2].clone()));
            i += 3;
        } else if opt == b"setname" && more >= 1 {
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                lossy(&args[i], 128)
            ));
        }
    }
    match login {
        Some((user, pass)) => {
            if !check(&ctx.auth, &user, &pass) {
                return Reply::error(WRONGPASS);
            }
            s.login(&ctx.auth, user);
        }
        None if !s.authenticated() => {
            return Reply::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        None => {}
    }
    if let Some(name) = setname {
        if let Err(e) = valid_name(&name) {
            return e;
        }
        s.name = (!name.is_empty()).then_some(name);
    }
    s.proto = proto;
    let number = match proto {
        Proto::Resp2 => 2,
        Proto::Resp3 => 3,
    };
    Reply::fields([
        ("server", Reply::from("redis")),
        ("version", Reply::from(REDIS_VERSION)),
        ("proto", Reply::Int(number)),
        ("id", Reply::Int(i64::try_from(s.id).unwrap_or(i64::MAX))),
        ("mode", Reply::from("sentinel")),
        ("modules", Reply::Array(Vec::new())),
    ])
}

fn valid_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

pub fn client(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let lower = sub.to_ascii_lowercase();
    let argc = args.len();
    let arity =
        |n: usize| (argc != n).then(|| wrong_arity(&format!("client|{}", lossy(&lower, 32))));
    match lower.as_slice() {
        b"id" => arity(2).unwrap_or(Reply::Int(i64::try_from(s.id).unwrap_or(i64::MAX))),
        b"getname" => arity(2).unwrap_or_else(|| s.name.clone().map_or(Reply::Nil, Reply::Bulk)),
        b"setname" => arity(3).unwrap_or_else(|| match valid_name(&args[2]) {
            Err(e) => e,
            Ok(()) => {
                s.name = (!args[2].is_empty()).then(|| args[2].clone());
                Reply::ok()
            }
        }),
        b"setinfo" => arity(4).unwrap_or_else(|| {
            let attr = args[2].to_ascii_lowercase();
            let value = args[3].clone();
            if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                return Reply::error(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    lossy(&args[2], 32)
                ));
            }
            match attr.as_slice() {
                b"lib-name" => s.lib_name = Some(value),
                b"lib-ver" => s.lib_ver = Some(value),
                _ => {
                    return Reply::error(format!(
                        "ERR Unrecognized option '{}'",
                        lossy(&args[2], 64)
                    ))
                }
            }
            Reply::ok()
        }),
        b"info" => arity(2).unwrap_or_else(|| {
            let line = s.info_line(tokio::time::Instant::now(), "client|info");
            Reply::Bulk(Bytes::from(line + "\n"))
        }),
        b"help" => Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are:",
                "    * LIB-NAME: the client lib name.",
                "    * LIB-VER: the client lib version.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Status((*l).to_owned()))
            .collect(),
        ),
        _ => unknown_subcommand(sub, "CLIENT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SentinelRole, SentinelUser};

    fn auth(requirepass: Option<&str>, user: Option<(&str, &str)>) -> SentinelAuth {
        SentinelAuth {
            requirepass: requirepass.map(str::to_owned),
            users: user
                .map(|(n, p)| {
                    let u = SentinelUser {
                        password: p.to_owned(),
                        role: SentinelRole::Client,
                    };
                    (n.to_owned(), u)
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn default_is_nopass_only_without_any_credential() {
        assert!(check(&auth(None, None), "default", b"anything"));
        // The bypass: users configured, no requirepass.
        assert!(!check(
            &auth(None, Some(("app", "pw"))),
            "default",
            b"whatever"
        ));
        assert!(!check(&auth(None, Some(("app", "pw"))), "default", b""));
        assert!(check(&auth(Some("s"), None), "default", b"s"));
        assert!(!check(&auth(Some("s"), None), "default", b"t"));
    }

    #[test]
    fn users_need_their_own_password() {
        let a = auth(Some("s"), Some(("app", "pw")));
        assert!(check(&a, "app", b"pw"));
        assert!(!check(&a, "app", b"s"));
        assert!(!check(&a, "app", b"pwx"));
        assert!(!check(&a, "nobody", b"pw"));
    }
}
