//! SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE, and turning bus events into messages for
//! a connection's channels and patterns: channel = event name, message = Sentinel's payload.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::wrong_arity;
use crate::events::IndexedEvent;
use crate::redis::Hostnames;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::{Ctx, Stats};

/// PUBLISH <channel> <message>: Sentinel takes only its peers' hello messages. raftinel learns
/// its peers from the Raft membership, so a hello is answered as Sentinel does and not acted on.
pub fn publish(args: &[Bytes]) -> Reply {
    if args[1].as_ref() != HELLO_CHANNEL {
        return Reply::error("ERR Only HELLO messages are accepted by Sentinel instances.");
    }
    tracing::debug!("ignored a Sentinel hello message: peers come from the Raft membership");
    Reply::Int(1)
}

const HELLO_CHANNEL: &[u8] = b"__sentinel__:hello";

pub fn subscription(ctx: &Ctx, s: &mut Session, cmd: &str, args: &[Bytes], out: &mut Vec<Reply>) {
    let was = s.subscriptions();
    let pattern = cmd.starts_with('p');
    let kind = cmd.trim_start_matches('p');
    let names = &args[1..];
    match kind {
        "subscribe" => {
            if names.is_empty() {
                out.push(wrong_arity(cmd));
                return;
            }
            let limits = &ctx.limits;
            let set = if pattern { &s.patterns } else { &s.channels };
            let held = s.subscriptions();
            if let Err(e) = admit(
                set,
                held,
                names,
                limits.max_subscriptions,
                limits.max_channel_length,
            ) {
                out.push(e);
                return;
            }
            for n in names {
                let set = if pattern {
                    &mut s.patterns
                } else {
                    &mut s.channels
                };
                // Copied: a slice would pin the whole read buffer it came in (up to 1 MiB) for
                // as long as the subscription lives.
                set.insert(Bytes::copy_from_slice(n));
                out.push(ack(cmd, Reply::Bulk(n.clone()), s.subscriptions()));
            }
        }
        _ => {
            let set = if pattern {
                &mut s.patterns
            } else {
                &mut s.channels
            };
            let targets: Vec<Bytes> = if names.is_empty() {
                set.iter().cloned().collect()
            } else {
                names.to_vec()
            };
            if targets.is_empty() {
                out.push(ack(cmd, Reply::Nil, s.subscriptions()));
            }
            for n in targets {
                let set = if pattern {
                    &mut s.patterns
                } else {
                    &mut s.channels
                };
                set.remove(&n);
                out.push(ack(cmd, Reply::Bulk(n), s.subscriptions()));
            }
        }
    }
    let now = s.subscriptions();
    if was == 0 && now > 0 {
        Stats::bump(&ctx.stats.pubsub_clients);
    } else if was > 0 && now == 0 {
        ctx.stats
            .pubsub_clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// All of `names` or none: each at most `max_len` bytes, and the connection's `held` channels
/// and patterns plus the new names in `set` at most `max_subs`.
fn admit(
    set: &BTreeSet<Bytes>,
    held: usize,
    names: &[Bytes],
    max_subs: usize,
    max_len: usize,
) -> Result<(), Reply> {
    if names.iter().any(|n| n.len() > max_len) {
        return Err(Reply::error(format!(
            "ERR channel or pattern name longer than {max_len} bytes"
        )));
    }
    let fresh: BTreeSet<&Bytes> = names.iter().filter(|n| !set.contains(*n)).collect();
    if held + fresh.len() > max_subs {
        return Err(Reply::error(format!(
            "ERR max number of subscriptions per client reached ({max_subs})"
        )));
    }
    Ok(())
}

fn ack(cmd: &str, name: Reply, count: usize) -> Reply {
    Reply::Push(vec![
        cmd.into(),
        name,
        Reply::Int(i64::try_from(count).unwrap_or(i64::MAX)),
    ])
}

/// The messages one event produces for this connection: one per matching channel and pattern,
/// with addresses as this node announces them.
pub fn deliver(s: &Session, hostnames: &Hostnames, ev: &IndexedEvent, out: &mut Vec<Reply>) {
    let kind = ev.event.channel();
    let channel = kind.as_bytes();
    // Made once, and only for a connection that listens.
    let mut text = None;
    let mut payload = || {
        let p = text.get_or_insert_with(|| {
            let shown = hostnames.announce_event(&ev.event);
            Bytes::from(shown.as_ref().unwrap_or(&ev.event).payload())
        });
        Reply::Bulk(p.clone())
    };
    if s.channels.contains(channel) {
        out.push(Reply::Push(vec![
            "message".into(),
            Reply::from(kind),
            payload(),
        ]));
    }
    for p in &s.patterns {
        if crate::glob::matches(p, channel, false) {
            out.push(Reply::Push(vec![
                "pmessage".into(),
                Reply::Bulk(p.clone()),
                Reply::from(kind),
                payload(),
            ]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<Bytes> {
        n.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn names_over_the_length_cap_are_refused_whole() {
        let set = BTreeSet::new();
        assert!(admit(&set, 0, &names(&["abcd", "ef"]), 10, 4).is_ok());
        let Err(Reply::Error(e)) = admit(&set, 0, &names(&["ok", "abcde"]), 10, 4) else {
            panic!("a long name passed");
        };
        assert_eq!(e, "ERR channel or pattern name longer than 4 bytes");
    }

    #[test]
    fn the_count_cap_counts_only_new_names() {
        let set: BTreeSet<Bytes> = names(&["a", "b"]).into_iter().collect();
        // Already held, and a duplicate within the request, cost nothing.
        assert!(admit(&set, 2, &names(&["a", "b", "c", "c"]), 3, 8).is_ok());
        let Err(Reply::Error(e)) = admit(&set, 2, &names(&["c", "d"]), 3, 8) else {
            panic!("over the cap");
        };
        assert_eq!(e, "ERR max number of subscriptions per client reached (3)");
        // Patterns count against the same cap as channels.
        assert!(admit(&BTreeSet::new(), 3, &names(&["x"]), 3, 8).is_err());
    }
}
