//! Routing of one request to its command family, with the checks Redis makes before any
//! command runs: authentication, arity, and RESP2's subscribe-mode restriction.

mod client;
mod command;
mod config;
mod info;
mod instance;
mod pubsub;
mod sentinel;
mod writes;

use bytes::Bytes;

use super::reply::Reply;
use super::session::Session;
use super::Ctx;

pub use pubsub::deliver;

/// Runs one request; several replies (SUBSCRIBE a b) come back as several entries.
pub async fn dispatch(ctx: &Ctx, s: &mut Session, args: &[Bytes], out: &mut Vec<Reply>) {
    let Some(name) = args.first() else { return };
    let mut buf = [0u8; NAME_MAX];
    let Some(cmd) = lowercase(name, &mut buf) else {
        out.push(unknown_command(args));
        return;
    };

    if !s.authenticated() && !matches!(cmd, "auth" | "hello" | "quit") {
        out.push(Reply::error("NOAUTH Authentication required."));
        return;
    }
    if s.in_subscribe_mode()
        && !matches!(
            cmd,
            "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        )
    {
        out.push(Reply::error(format!(
            "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )));
        return;
    }
    let Some(arity) = command::arity(cmd) else {
        out.push(unknown_command(args));
        return;
    };
    if !arity_ok(arity, args.len()) {
        out.push(wrong_arity(cmd));
        return;
    }
    let reply = match cmd {
        "ping" => client::ping(s, args),
        "quit" => {
            s.closing = true;
            Reply::ok()
        }
        "auth" => client::auth(ctx, s, args),
        "hello" => client::hello(ctx, s, args),
        "client" => client::client(s, args),
        "role" => sentinel::role(ctx),
        "info" => info::info(ctx, args),
        "command" => command::command(args),
        "sentinel" => sentinel::sentinel(ctx, s, args).await,
        "publish" => pubsub::publish(args),
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" => {
            pubsub::subscription(ctx, s, cmd, args, out);
            return;
        }
        _ => unknown_command(args),
    };
    out.push(reply);
}

/// Longer than any command or subcommand name.
pub const NAME_MAX: usize = 32;

/// A command or subcommand name in lowercase, in `buf` (no allocation on the hot path); `None`
/// when it is too long or not ASCII, so it cannot be a known name.
pub fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; NAME_MAX]) -> Option<&'b str> {
    let out = buf.get_mut(..name.len())?;
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// Redis's arity: positive is exact, negative is a minimum, both counting the command name.
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

pub fn wrong_arity(full_name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{full_name}' command"
    ))
}

/// `-ERR unknown command 'ECHO', with args beginning with: 'hi' ` — Redis's wording, arguments
/// quoted and cut at 128 bytes in all.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = args.first().map(|n| lossy(n, 128)).unwrap_or_default();
    let mut rest = String::new();
    for a in &args[1.min(args.len())..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push_str(&format!("'{}' ", lossy(a, room)));
    }
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

/// `-ERR unknown subcommand 'FOO'. Try SENTINEL HELP.`
pub fn unknown_subcommand(sub: &Bytes, family: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {family} HELP.",
        lossy(sub, 128)
    ))
}

/// At most `max` bytes of `b` as text.
pub fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// An argument as UTF-8 text, or `None`.
pub fn text(b: &Bytes) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// Redis's `string2ll` on an argument.
pub fn int(b: &Bytes) -> Option<i64> {
    let t = text(b)?;
    if t.is_empty() || t.starts_with('+') || (t.len() > 1 && t.starts_with('0')) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
