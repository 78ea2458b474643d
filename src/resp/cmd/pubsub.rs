//! SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE, and turning bus events into messages for
//! a connection's channels and patterns: channel = event name, message = Sentinel's payload.

use bytes::Bytes;

use super::wrong_arity;
use crate::events::IndexedEvent;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::resp::{Ctx, Stats};

/// Most channels one connection may hold: a bound on per-connection memory.
const MAX_SUBSCRIPTIONS: usize = 4096;

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
            for n in names {
                let set = if pattern {
                    &mut s.patterns
                } else {
                    &mut s.channels
                };
                if set.len() < MAX_SUBSCRIPTIONS {
                    set.insert(n.clone());
                }
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

fn ack(cmd: &str, name: Reply, count: usize) -> Reply {
    Reply::Push(vec![
        cmd.into(),
        name,
        Reply::Int(i64::try_from(count).unwrap_or(i64::MAX)),
    ])
}

/// The messages one event produces for this connection: one per matching channel and pattern.
pub fn deliver(s: &Session, ev: &IndexedEvent, out: &mut Vec<Reply>) {
    let channel = ev.event.kind.as_bytes();
    let payload = || Reply::from(ev.event.payload.as_str());
    if s.channels.contains(channel) {
        out.push(Reply::Push(vec![
            "message".into(),
            Reply::from(ev.event.kind.as_str()),
            payload(),
        ]));
    }
    for p in &s.patterns {
        if crate::glob::matches(p, channel, false) {
            out.push(Reply::Push(vec![
                "pmessage".into(),
                Reply::Bulk(p.clone()),
                Reply::from(ev.event.kind.as_str()),
                payload(),
            ]));
        }
    }
}
