//! How this node sees the other voters, for SENTINEL SENTINELS: each is probed once a second, as
//! a sentinel PINGs its peers, and one that has not answered for the master's down-after is
//! flagged `s_down`, with Sentinel's `+sdown` / `-sdown` (redis_exporter counts a master's healthy
//! sentinels from these flags). A voter that joins is announced with `+sentinel`, once per
//! monitored master.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::api::Api;
use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::raft::SmData;
use crate::topology::event::{Event, Instance, Step};
use crate::topology::{Addr, MasterRecord, TopologyEvent};

/// Sentinel's PING period to its peers.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One peer as this node last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSeen {
    /// The last answer, or when this node started watching the peer.
    pub last_ok: Instant,
    /// When the oldest probe still unanswered was sent (Sentinel's `act_ping_time`).
    pub pending_since: Option<Instant>,
}

impl PeerSeen {
    /// Sentinel's SDOWN for a sentinel: a probe unanswered for longer than `down_after`.
    pub fn is_down(&self, now: Instant, down_after: Duration) -> bool {
        self.pending_since
            .is_some_and(|t| now.saturating_duration_since(t) > down_after)
    }
}

/// Every other voter by node id.
pub type PeerView = Arc<BTreeMap<u64, PeerSeen>>;

/// One round's outcome folded in: `answered` per voter probed at `sent`, answers seen at `now`;
/// voters no longer probed are dropped.
pub fn record(
    seen: &BTreeMap<u64, PeerSeen>,
    answered: &[(u64, bool)],
    sent: Instant,
    now: Instant,
) -> BTreeMap<u64, PeerSeen> {
    answered
        .iter()
        .map(|(id, ok)| {
            let before = seen.get(id).copied().unwrap_or(PeerSeen {
                last_ok: sent,
                pending_since: None,
            });
            let after = if *ok {
                PeerSeen {
                    last_ok: now,
                    pending_since: None,
                }
            } else {
                PeerSeen {
                    pending_since: before.pending_since.or(Some(sent)),
                    ..before
                }
            };
            (*id, after)
        })
        .collect()
}

/// The (master, peer) pairs whose peer is down for that master's down-after, each with the
/// peer's Sentinel `%@` payload: Sentinel keeps its peers per master and flags them with the
/// master's down-after.
pub fn down_pairs(
    data: &SmData,
    seen: &BTreeMap<u64, PeerSeen>,
    now: Instant,
    sentinel_id: &impl Fn(u64) -> String,
) -> BTreeMap<(String, u64), Instance> {
    let addrs = voters(data);
    let mut out = BTreeMap::new();
    for m in data.topology.masters() {
        let down_after = Duration::from_millis(m.down_after_ms);
        for (id, s) in seen {
            let Some(Some(addr)) = addrs.get(id) else {
                continue;
            };
            if s.is_down(now, down_after) {
                out.insert((m.name.clone(), *id), peer(&sentinel_id(*id), addr, m));
            }
        }
    }
    out
}

/// Probes every other voter once a second until `cancel`, publishing what it saw and Sentinel's
/// `+sdown` / `-sdown` for a peer, per master, when it flips.
pub async fn watch_peers(
    node_id: u64,
    api: Arc<Api>,
    view: watch::Receiver<Arc<SmData>>,
    out: watch::Sender<PeerView>,
    events: (EventBus, impl Fn(u64) -> String),
    cancel: CancellationToken,
) {
    let (bus, sentinel_id) = events;
    let mut down: BTreeMap<(String, u64), Instance> = BTreeMap::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let voters: Vec<_> = {
            let data = view.borrow();
            let membership = data.membership.membership();
            membership
                .voter_ids()
                .filter(|id| *id != node_id)
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
                .collect()
        };
        let sent = Instant::now();
        let probes = voters.iter().map(|(id, n)| {
            let api = api.clone();
            async move { (*id, api.reachable(*id, n).await) }
        });
        let answered = futures::future::join_all(probes).await;
        let now = Instant::now();
        let next = record(&out.borrow(), &answered, sent, now);
        let data = view.borrow().clone();
        let down_now = down_pairs(&data, &next, now, &sentinel_id);
        let ended = down.iter().filter(|(k, _)| !down_now.contains_key(*k));
        let began = down_now.iter().filter(|(k, _)| !down.contains_key(*k));
        let flips = ended
            .map(|(k, p)| (false, k, p))
            .chain(began.map(|(k, p)| (true, k, p)));
        for (down, (name, _), about) in flips {
            if let Some(m) = data.topology.master(name) {
                let about = about.clone();
                bus.publish(IndexedEvent {
                    index: LOCAL,
                    event: TopologyEvent::new(Event::Sdown { about, down }, m),
                });
            }
        }
        down = down_now;
        out.send_replace(Arc::new(next));
    }
}

/// Sentinel's `+sentinel` for a peer that joined: `sentinel <id> <ip> <port> @ <master-name>
/// <master-ip> <master-port>`, one per monitored master.
pub fn joined_events(data: &SmData, id: &str, sentinel: &Addr) -> Vec<TopologyEvent> {
    data.topology
        .masters()
        .map(|m| {
            let about = peer(id, sentinel, m);
            let step = Step::Sentinel;
            TopologyEvent::new(Event::Step { step, about }, m)
        })
        .collect()
}

/// A peer sentinel of master `m`, as events name it.
fn peer(id: &str, sentinel: &Addr, m: &MasterRecord) -> Instance {
    Instance::Sentinel {
        id: id.to_owned(),
        at: sentinel.clone(),
        master_at: m.addr.clone(),
    }
}

/// The voters with their Sentinel addresses, as the applied membership has them.
fn voters(data: &SmData) -> BTreeMap<u64, Option<Addr>> {
    let membership = data.membership.membership();
    membership
        .voter_ids()
        .map(|id| {
            let addr = membership
                .get_node(&id)
                .and_then(|n| n.sentinel_addr.parse::<std::net::SocketAddr>().ok())
                .map(|a| Addr::new(a.ip().to_string(), a.port()));
            (id, addr)
        })
        .collect()
}

/// Publishes `+sentinel` for every voter that joins after this node started, until `cancel`.
pub async fn announce_joins(
    mut view: watch::Receiver<Arc<SmData>>,
    bus: EventBus,
    sentinel_id: impl Fn(u64) -> String,
    cancel: CancellationToken,
) {
    let mut known = voters(&view.borrow_and_update());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = view.changed() => if r.is_err() { return },
        }
        let data = view.borrow_and_update().clone();
        let now = voters(&data);
        for (id, addr) in &now {
            if known.contains_key(id) {
                continue;
            }
            let Some(addr) = addr else {
                debug!(node = id, "a voter without a Sentinel address joined");
                continue;
            };
            for event in joined_events(&data, &sentinel_id(*id), addr) {
                bus.publish(IndexedEvent {
                    index: LOCAL,
                    event,
                });
            }
        }
        known = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_down_once_a_probe_waits_longer_than_down_after() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let d = Duration::from_millis(2500);
        let mut seen = record(&BTreeMap::new(), &[(2, true), (3, false)], s(0), s(0));
        assert_eq!(seen[&2].pending_since, None);
        assert_eq!(seen[&3].pending_since, Some(s(0)));
        // The oldest unanswered probe counts, not the latest.
        seen = record(&seen, &[(2, true), (3, false)], s(1), s(1));
        seen = record(&seen, &[(2, true), (3, false)], s(2), s(2));
        assert_eq!(seen[&3].pending_since, Some(s(0)));
        assert!(!seen[&3].is_down(s(2), d));
        assert!(seen[&3].is_down(s(3), d));
        assert!(!seen[&2].is_down(s(3), d));
        // An answer clears it; a voter no longer probed is forgotten.
        seen = record(&seen, &[(3, true)], s(4), s(4));
        assert_eq!(
            seen[&3],
            PeerSeen {
                last_ok: s(4),
                pending_since: None
            }
        );
        assert!(!seen.contains_key(&2));
    }
}
