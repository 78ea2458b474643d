//! The events this node's Sentinel subscribers get, in the order one sentinel publishes them.
//! The log's `+odown` is the leader's verdict, but a sentinel says `+odown` only of a master it
//! holds SDOWN itself, after its own `+sdown`: so a master's `+odown` waits here (with the
//! master's events after it) for this node's `+sdown`, at most a short while; past that, the rest
//! goes on and the `+odown` follows this node's `+sdown` if it comes while the log still says
//! down (a node that never sees the master down says neither, as such a sentinel would), and a
//! `+switch-master` ends the wait at once: clients must not learn of a switch late. A
//! `-odown` is said only after a `+odown`. Before the `+switch-master` of a failover another
//! node ran, this node says `+config-update-from` that node, as a sentinel that learns the new
//! configuration from a peer does. Gate and timing are pure ([`Order`]); [`run`] feeds it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::raft::{Raft, SmData};
use crate::topology::event::{Event, Instance, Step};
use crate::topology::{Addr, TopologyEvent};

/// The most events held behind one master's `+odown`; more release them.
const MAX_HELD: usize = 1024;
/// The least a `+odown` waits for this node's `+sdown`.
const MIN_HOLD: Duration = Duration::from_millis(200);

/// Another node, as a peer sentinel: its node id, Sentinel run id and Sentinel address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node_id: u64,
    pub id: String,
    pub at: Addr,
}

/// What the gate needs to know besides the event.
pub struct Env {
    /// How long this master's `+odown` may wait for this node's `+sdown`.
    pub hold: Duration,
    /// The node that leads now: the one that ran a failover whose `+switch-master` arrives.
    pub leader: Option<Peer>,
}

struct Held {
    odown: IndexedEvent,
    at: Addr,
    until: Instant,
    after: Vec<IndexedEvent>,
}

/// The per-node ordering gate.
pub struct Order {
    node_id: u64,
    /// Masters (name, address) this node holds SDOWN.
    sdown: HashSet<(String, Addr)>,
    /// A master's `+odown` waiting for this node's `+sdown`, with what came after it.
    held: HashMap<String, Held>,
    /// A master's `+odown` that waited in vain: said if this node's `+sdown` still comes.
    late: HashMap<String, (Addr, IndexedEvent)>,
    /// Masters whose `+odown` this node said.
    said: HashSet<String>,
}

impl Order {
    pub fn new(node_id: u64) -> Self {
        Order {
            node_id,
            sdown: HashSet::new(),
            held: HashMap::new(),
            late: HashMap::new(),
            said: HashSet::new(),
        }
    }

    /// Takes one event; returns what to publish now, in order.
    pub fn push(&mut self, e: IndexedEvent, now: Instant, env: &Env) -> Vec<IndexedEvent> {
        let mut out = Vec::new();
        self.take(e, now, env, &mut out);
        out
    }

    /// Releases every hold that has waited long enough.
    pub fn expire(&mut self, now: Instant) -> Vec<IndexedEvent> {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        let mut out = Vec::new();
        for name in due {
            self.release(&name, false, now, &mut out);
        }
        out
    }

    /// When the next hold is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|h| h.until).min()
    }

    fn take(&mut self, e: IndexedEvent, now: Instant, env: &Env, out: &mut Vec<IndexedEvent>) {
        let Some(name) = e.event.master.clone() else {
            out.push(e);
            return;
        };
        // This node's own SDOWN of a master: the event that releases its held +odown.
        if let (
            Event::Sdown {
                about: Instance::Master { at },
                down,
            },
            LOCAL,
        ) = (&e.event.event, e.index)
        {
            let key = (name.clone(), at.clone());
            let at = at.clone();
            if !*down {
                self.sdown.remove(&key);
                out.push(e);
                return;
            }
            self.sdown.insert(key);
            out.push(e);
            if self.held.get(&name).is_some_and(|h| h.at == at) {
                self.release(&name, true, now, out);
            } else if let Some((late_at, odown)) = self.late.remove(&name) {
                if late_at == at {
                    self.said.insert(name);
                    out.push(odown);
                }
            }
            return;
        }
        // A switch is never held back: clients of this node move to the new master at once.
        if matches!(e.event.event, Event::SwitchMaster { .. }) {
            self.release(&name, false, now, out);
        }
        if let Some(held) = self.held.get_mut(&name) {
            held.after.push(e);
            if held.after.len() >= MAX_HELD {
                self.release(&name, false, now, out);
            }
            return;
        }
        match &e.event.event {
            Event::Odown { at, down: true, .. } => {
                self.late.remove(&name);
                if self.sdown.contains(&(name.clone(), at.clone())) {
                    self.said.insert(name);
                    out.push(e);
                } else {
                    let at = at.clone();
                    let until = now + env.hold.max(MIN_HOLD);
                    let after = Vec::new();
                    let held = Held {
                        odown: e,
                        at,
                        until,
                        after,
                    };
                    self.held.insert(name, held);
                }
            }
            Event::Odown { down: false, .. } => {
                self.late.remove(&name);
                if self.said.remove(&name) {
                    out.push(e);
                }
            }
            Event::SwitchMaster { from, .. } => {
                // The down instance is a replica now: no -odown for it (as Sentinel).
                self.said.remove(&name);
                self.late.remove(&name);
                if let Some(peer) = env.leader.as_ref().filter(|p| p.node_id != self.node_id) {
                    if e.index != LOCAL {
                        out.push(config_update_from(&e.event, peer, from));
                    }
                }
                out.push(e);
            }
            Event::Unmonitor { .. } => {
                self.said.remove(&name);
                self.late.remove(&name);
                self.sdown.retain(|(n, _)| *n != name);
                out.push(e);
            }
            _ => out.push(e),
        }
    }

    /// Ends `name`'s hold: its `+odown` goes out first if this node now holds SDOWN, else it is
    /// kept for a late `+sdown`; then what waited behind it, each taken again in order.
    fn release(&mut self, name: &str, sdown: bool, now: Instant, out: &mut Vec<IndexedEvent>) {
        let Some(held) = self.held.remove(name) else {
            return;
        };
        if sdown {
            self.said.insert(name.to_owned());
            out.push(held.odown);
        } else {
            self.late.insert(name.to_owned(), (held.at, held.odown));
        }
        // Nothing re-holds while these are taken: a later +odown of the same master would,
        // and it is taken like any other.
        let env = Env {
            hold: Duration::ZERO,
            leader: None,
        };
        for e in held.after {
            self.take(e, now, &env, out);
        }
    }
}

/// `+config-update-from sentinel <id> <ip> <port> @ <name> <old-ip> <old-port>`.
fn config_update_from(switch: &TopologyEvent, peer: &Peer, from: &Addr) -> IndexedEvent {
    let about = Instance::Sentinel {
        id: peer.id.clone(),
        at: peer.at.clone(),
        master_at: from.clone(),
    };
    let event = Event::Step {
        step: Step::ConfigUpdateFrom,
        about,
    };
    IndexedEvent {
        index: LOCAL,
        event: TopologyEvent {
            master: switch.master.clone(),
            epoch: switch.epoch,
            event,
        },
    }
}

/// Feeds the bus through the gate to `out` until `cancel`.
pub async fn run(
    node_id: u64,
    bus: EventBus,
    out: broadcast::Sender<Arc<IndexedEvent>>,
    (raft, view): (Raft, watch::Receiver<Arc<SmData>>),
    sentinel_id: impl Fn(u64) -> String,
    cancel: CancellationToken,
) {
    let mut events = bus.subscribe();
    let mut order = Order::new(node_id);
    loop {
        let due = order.next_due();
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let ready = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep => order.expire(Instant::now()),
            e = events.recv() => match e {
                Ok(e) => {
                    let env = env_for(&e, &raft, &view, &sentinel_id);
                    order.push(Arc::unwrap_or_clone(e), Instant::now(), &env)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "Sentinel event order fell behind; events lost");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        for e in ready {
            // No subscriber is normal.
            let _ = out.send(Arc::new(e));
        }
    }
}

/// The hold for the event's master (two of its probe periods) and, for a `+switch-master`,
/// the node that leads.
fn env_for(
    e: &IndexedEvent,
    raft: &Raft,
    view: &watch::Receiver<Arc<SmData>>,
    sentinel_id: &impl Fn(u64) -> String,
) -> Env {
    let data = view.borrow().clone();
    let master = e
        .event
        .master
        .as_deref()
        .and_then(|n| data.topology.master(n));
    let hold = master.map_or(MIN_HOLD, |m| {
        2 * crate::monitor::ping_interval(Duration::from_millis(m.down_after_ms))
    });
    let leader = matches!(e.event.event, Event::SwitchMaster { .. })
        .then(|| raft.metrics().borrow().current_leader)
        .flatten()
        .and_then(|id| {
            let membership = data.membership.membership();
            let node = membership.get_node(&id)?;
            let at: std::net::SocketAddr = node.sentinel_addr.parse().ok()?;
            Some(Peer {
                node_id: id,
                id: sentinel_id(id),
                at: Addr::new(at.ip().to_string(), at.port()),
            })
        });
    Env { hold, leader }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::MasterRecord;

    fn m() -> MasterRecord {
        MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000)
    }

    fn at(index: u64, event: Event) -> IndexedEvent {
        IndexedEvent {
            index,
            event: TopologyEvent::new(event, &m()),
        }
    }

    fn sdown(down: bool) -> IndexedEvent {
        let about = Instance::Master { at: m().addr };
        at(LOCAL, Event::Sdown { about, down })
    }

    fn odown(index: u64, down: bool) -> IndexedEvent {
        let e = Event::Odown {
            at: m().addr,
            down,
            votes: 2,
            quorum: 2,
        };
        at(index, e)
    }

    fn new_epoch(index: u64) -> IndexedEvent {
        at(index, Event::NewEpoch)
    }

    fn switch(index: u64) -> IndexedEvent {
        let e = Event::SwitchMaster {
            from: m().addr,
            to: Addr::new("10.0.0.2", 6379),
        };
        at(index, e)
    }

    fn env(leader: Option<u64>) -> Env {
        Env {
            hold: Duration::from_millis(200),
            leader: leader.map(|node_id| Peer {
                node_id,
                id: format!("id{node_id}"),
                at: Addr::new("10.0.0.9", 26379),
            }),
        }
    }

    fn channels(events: &[IndexedEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.event.channel()).collect()
    }

    // Sentinel's order for one node: its own +sdown first, then +odown and the failover.
    #[test]
    fn odown_waits_for_this_nodes_sdown() {
        let t = Instant::now();
        let mut o = Order::new(1);
        assert!(o.push(odown(10, true), t, &env(None)).is_empty());
        assert!(o.push(new_epoch(11), t, &env(None)).is_empty());
        assert_eq!(o.next_due(), Some(t + Duration::from_millis(200)));
        let out = o.push(sdown(true), t, &env(None));
        assert_eq!(channels(&out), ["+sdown", "+odown", "+new-epoch"]);
        assert_eq!(o.next_due(), None);
        let out = o.push(odown(12, false), t, &env(None));
        assert_eq!(channels(&out), ["-odown"]);
    }

    #[test]
    fn a_node_already_down_says_odown_at_once() {
        let t = Instant::now();
        let mut o = Order::new(1);
        assert_eq!(channels(&o.push(sdown(true), t, &env(None))), ["+sdown"]);
        assert_eq!(
            channels(&o.push(odown(10, true), t, &env(None))),
            ["+odown"]
        );
    }

    // Past the hold the rest goes on; the +odown follows a late +sdown while the log still says
    // down, and a node that never said +odown never says -odown.
    #[test]
    fn a_late_sdown_still_gets_its_odown() {
        let t = Instant::now();
        let mut o = Order::new(1);
        o.push(odown(10, true), t, &env(None));
        o.push(new_epoch(11), t, &env(None));
        let later = t + Duration::from_millis(250);
        assert_eq!(channels(&o.expire(later)), ["+new-epoch"]);
        assert_eq!(
            channels(&o.push(sdown(true), later, &env(None))),
            ["+sdown", "+odown"]
        );
        let mut never = Order::new(1);
        never.push(odown(10, true), t, &env(None));
        never.expire(later);
        assert!(never.push(odown(12, false), later, &env(None)).is_empty());
        assert_eq!(
            channels(&never.push(sdown(true), later, &env(None))),
            ["+sdown"],
            "no +odown once the log says up"
        );
    }

    // A node that does not see the master down holds the failover's steps at most until the
    // switch: +switch-master goes out at once, after what waited, without a +odown.
    #[test]
    fn a_switch_ends_the_wait() {
        let t = Instant::now();
        let mut o = Order::new(1);
        o.push(odown(10, true), t, &env(None));
        o.push(new_epoch(11), t, &env(None));
        let out = o.push(switch(12), t, &env(Some(1)));
        assert_eq!(channels(&out), ["+new-epoch", "+switch-master"]);
        assert_eq!(o.next_due(), None);
        assert_eq!(channels(&o.push(sdown(true), t, &env(None))), ["+sdown"]);
    }

    // A sentinel that learns a failover from the peer that ran it says +config-update-from
    // first; the node that ran it does not, and after a switch no -odown comes.
    #[test]
    fn a_switch_run_elsewhere_is_a_config_update() {
        let t = Instant::now();
        let mut o = Order::new(1);
        o.push(sdown(true), t, &env(None));
        o.push(odown(10, true), t, &env(None));
        let out = o.push(switch(12), t, &env(Some(2)));
        assert_eq!(channels(&out), ["+config-update-from", "+switch-master"]);
        assert_eq!(
            out[0].event.payload(),
            "sentinel id2 10.0.0.9 26379 @ mymaster 10.0.0.1 6379"
        );
        assert!(o.push(odown(13, false), t, &env(None)).is_empty());
        let mut leader = Order::new(2);
        assert_eq!(
            channels(&leader.push(switch(12), t, &env(Some(2)))),
            ["+switch-master"]
        );
    }

    #[test]
    fn events_of_other_masters_and_of_no_master_pass() {
        let t = Instant::now();
        let mut o = Order::new(1);
        o.push(odown(10, true), t, &env(None));
        let mut other = new_epoch(11);
        other.event.master = Some("other".into());
        assert_eq!(channels(&o.push(other, t, &env(None))), ["+new-epoch"]);
        let tilt = IndexedEvent {
            index: LOCAL,
            event: TopologyEvent::node(Event::Tilt { entered: true }),
        };
        assert_eq!(channels(&o.push(tilt, t, &env(None))), ["+tilt"]);
    }
}
