//! The virtual IPs on this host (invariant 5): a master's VIP is on this host only while this
//! node holds its lease and the master is writable here, and only once a majority says the old
//! holder's VIP lifetime is over (max(L + m, V + 1 s) after its last confirmed renewal). Added
//! with a kernel lifetime V and refreshed on every confirmed renewal, announced by gratuitous ARP
//! on acquire and every second while held, removed otherwise — at startup too — and repaired
//! when someone adds or removes it by hand. Only a VIP inside this node's own `vip-allowed` is
//! touched at all (invariant 12; `vip_allow`). IPv4 only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::garp;
use super::netlink::{self, Netlink};
use super::renew::Peers;
use super::vip_allow::{self, Cidr};
use super::vip_ready;
use crate::raft::SmData;
use crate::topology::{Addr, MasterRecord, Vip};

/// Gratuitous ARPs right after acquiring, 100 ms apart, then one a second while held.
const BURST: u32 = 3;
const BURST_GAP: Duration = Duration::from_millis(100);
const REFRESH_GAP: Duration = Duration::from_secs(1);

struct Held {
    vip: Vip,
    index: u32,
    mac: Option<[u8; 6]>,
    sent: u32,
    last_garp: Instant,
    refreshed_for: Option<Instant>,
}

pub struct Vips {
    pub node_id: u64,
    pub lifetime_s: u32,
    /// `[masters.NAME] vip-interface` of this node's config.
    pub interfaces: BTreeMap<String, String>,
    /// `[masters.NAME] vip` of this node's config: only compared with the log's, which wins.
    pub configured: BTreeMap<String, Vip>,
    /// `vip-allowed` of this node's config: a VIP outside it is never added, nor removed.
    pub allowed: Vec<Cidr>,
    pub peers: Peers,
    pub timeout: Duration,
    nl: Option<Netlink>,
    held: BTreeMap<String, Held>,
    /// Revoked grants whose holder's VIP a majority reported gone.
    cleared: BTreeSet<u64>,
    /// Problems already logged, so a missing capability is said once, not every round.
    said: BTreeSet<String>,
    /// This process's effective capabilities, read once at startup.
    cap_eff: Option<u64>,
}

impl Vips {
    /// The masters whose VIP is on this host now.
    pub fn held(&self) -> BTreeSet<String> {
        self.held.keys().cloned().collect()
    }

    pub fn new(
        node_id: u64,
        lifetime_s: u32,
        interfaces: BTreeMap<String, String>,
        configured: BTreeMap<String, Vip>,
        allowed: Vec<Cidr>,
        peers: Peers,
        timeout: Duration,
    ) -> Self {
        Vips {
            node_id,
            lifetime_s,
            interfaces,
            configured,
            allowed,
            peers,
            timeout,
            nl: None,
            held: BTreeMap::new(),
            cleared: BTreeSet::new(),
            said: BTreeSet::new(),
            cap_eff: vip_ready::cap_eff(),
        }
    }

    /// The interface this node puts `m`'s VIP on: its own config's, else the master's setting.
    fn interface(&self, m: &MasterRecord) -> Option<String> {
        self.interfaces
            .get(&m.name)
            .cloned()
            .or_else(|| m.vip_interface.clone())
    }

    /// For each of `names` (the masters the local instance `redis` belongs to) that has a VIP
    /// this node cannot carry, why; each problem is said once in the log.
    pub fn problems(
        &mut self,
        view: &SmData,
        names: &[String],
        bind: &[String],
        redis: &Addr,
    ) -> BTreeMap<String, String> {
        let redis = redis.to_string();
        names
            .iter()
            .filter_map(|name| {
                let m = view.topology.master(name)?;
                Some((name.clone(), self.problem(m, bind, &redis)?))
            })
            .collect()
    }

    /// Why this node cannot carry `m`'s VIP; `None` when it can, or `m` has no VIP.
    fn problem(&mut self, m: &MasterRecord, bind: &[String], redis: &str) -> Option<String> {
        let vip = m.vip?;
        if let Err(why) = vip_allow::check(&self.allowed, &vip) {
            let why = why.to_string();
            self.refused_once(&m.name, &why);
            return Some(why);
        }
        let interface = self.interface(m);
        let problem = vip_ready::problem(&vip_ready::Readiness {
            cap_eff: self.cap_eff,
            interface: interface.as_deref(),
            interface_exists: interface
                .as_deref()
                .is_some_and(|dev| netlink::ifindex(dev).is_ok()),
            redis,
            bind,
            vip: vip.ip,
        })?;
        self.say_once(
            format!("{}:{problem}", m.name),
            &format!(
                "this node cannot carry the VIP {vip} of {}: {problem}",
                m.name
            ),
        );
        Some(problem)
    }

    fn say_once(&mut self, key: String, msg: &str) {
        if self.said.insert(key.clone()) {
            tracing::error!(vip = %key, "{msg}");
        }
    }

    /// A VIP this node's config does not allow: said once per master and reason, at warn (the
    /// node works as configured; the log asked for something it will not do).
    fn refused_once(&mut self, master: &str, why: &str) {
        if self.said.insert(format!("{master}:{why}")) {
            tracing::warn!(master, "this node will not carry the VIP: {why}");
        }
    }

    fn netlink(&mut self) -> Option<&mut Netlink> {
        if self.nl.is_none() {
            match Netlink::open() {
                Ok(nl) => self.nl = Some(nl),
                Err(e) => {
                    self.say_once(
                        "netlink".into(),
                        &format!("no netlink socket ({e}): VIPs are not managed on this node"),
                    );
                    return None;
                }
            }
        }
        self.nl.as_mut()
    }

    /// Whether the VIP of the master's previous holder is gone: nothing was revoked, or the old
    /// holder released it (its raftinel removes the VIP before it releases), or a majority says
    /// the old grant's promises and the VIP lifetime after them are over.
    async fn old_vip_gone(&mut self, view: &SmData, m: &MasterRecord) -> bool {
        let Some(r) = m.last_revoked else { return true };
        if r.released || r.grant.holder == self.node_id || self.cleared.contains(&r.grant.id) {
            return true;
        }
        // Every grant of the old holder must be over, the one the failover revoked and any a
        // membership change superseded, each at a majority of its own voters.
        let mut gone = true;
        for grant in view.topology.must_die(&r) {
            gone &= self
                .peers
                .grant_dead(view, &grant, true, self.timeout)
                .await;
            if !gone {
                break;
            }
        }
        if gone {
            self.cleared.insert(r.grant.id);
        }
        gone
    }

    /// One round: `writable` names the masters whose Redis this node just found writable under
    /// its lease; `until` is the end of the current acting window (it moves on each renewal).
    pub async fn reconcile(
        &mut self,
        view: &SmData,
        writable: &BTreeSet<String>,
        until: Option<Instant>,
    ) {
        let mut wanted: BTreeMap<String, (Vip, String)> = BTreeMap::new();
        for m in view.topology.masters() {
            let Some(vip) = m.vip else { continue };
            if let Some(config) = self.configured.get(&m.name).filter(|c| **c != vip) {
                self.say_once(
                    format!("{}:config {config}", m.name),
                    &format!("this node's config says vip {config} for {}, the log says {vip}: the log wins (`raftinel ctl set {} vip {config}` to change it)", m.name, m.name),
                );
            }
            // Invariant 12: this node's own `vip-allowed`, never the log alone, decides whether
            // it touches the address at all: a VIP outside it is neither added nor removed (a
            // SET of this host's own address must not make it drop that address).
            if let Err(why) = vip_allow::check(&self.allowed, &vip) {
                self.refused_once(&m.name, &why.to_string());
                continue;
            }
            // No interface: `readiness` has said so, and this node reports it.
            let Some(dev) = self.interface(m) else {
                continue;
            };
            // A node the log records as unable to carry the VIP is never given it.
            let want = writable.contains(&m.name)
                && m.holder == Some(self.node_id)
                && !m.vip_problems.contains_key(&self.node_id)
                && self.old_vip_gone(view, m).await;
            if want {
                wanted.insert(m.name.clone(), (vip, dev));
            } else {
                self.remove(&m.name, vip, &dev);
            }
        }
        // VIPs of masters removed or re-addressed since.
        let stale: Vec<String> = self
            .held
            .iter()
            .filter(|(name, h)| wanted.get(*name).map(|(v, _)| *v) != Some(h.vip))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(h) = self.held.remove(&name) {
                self.delete(h.index, h.vip, &name);
            }
        }
        for (name, (vip, dev)) in wanted {
            self.hold(&name, vip, &dev, until);
        }
    }

    fn remove(&mut self, name: &str, vip: Vip, dev: &str) {
        let held = self.held.remove(name);
        let Ok(index) = netlink::ifindex(dev) else {
            return;
        };
        let Some(nl) = self.netlink() else { return };
        match nl.has(index, vip.ip) {
            Ok(true) => {
                if held.is_none() {
                    tracing::warn!(master = name, %vip, dev, "VIP present without the lease (left over, or added by hand): removing it");
                }
                self.delete(index, vip, name);
            }
            Ok(false) => {
                if held.is_some() {
                    tracing::info!(master = name, %vip, "VIP already gone");
                }
            }
            Err(e) => tracing::warn!(master = name, %vip, error = %e, "cannot list addresses"),
        }
    }

    fn delete(&mut self, index: u32, vip: Vip, name: &str) {
        let Some(nl) = self.netlink() else { return };
        match nl.delete(index, vip) {
            Ok(()) => tracing::warn!(master = name, %vip, "VIP removed"),
            Err(e) => tracing::error!(master = name, %vip, error = %e, "cannot remove the VIP"),
        }
    }

    fn hold(&mut self, name: &str, vip: Vip, dev: &str, until: Option<Instant>) {
        let index = match netlink::ifindex(dev) {
            Ok(i) => i,
            Err(e) => {
                self.say_once(format!("{vip}@{dev}"), &format!("VIP interface {dev}: {e}"));
                return;
            }
        };
        let lifetime = self.lifetime_s;
        let (was_held, refresh) = match self.held.get(name) {
            None => (false, true),
            Some(h) => (true, h.index != index || until > h.refreshed_for),
        };
        let Some(nl) = self.netlink() else { return };
        let present = nl.has(index, vip.ip).unwrap_or(false);
        if !present || refresh {
            if let Err(e) = nl.replace(index, vip, lifetime) {
                let why = if e.raw_os_error() == Some(libc::EPERM) {
                    "no CAP_NET_ADMIN: this node cannot hold the VIP (everything else still runs)"
                        .to_owned()
                } else {
                    e.to_string()
                };
                self.say_once(
                    format!("{vip}@{dev}:add"),
                    &format!("cannot add VIP {vip} on {dev}: {why}"),
                );
                return;
            }
            if !present && was_held {
                tracing::warn!(master = name, %vip, dev, "VIP was removed by hand: added again");
            }
        }
        let now = Instant::now();
        let h = self.held.entry(name.to_owned()).or_insert_with(|| {
            tracing::warn!(master = name, %vip, dev, "VIP up");
            Held {
                vip,
                index,
                mac: garp::mac_of(dev).ok(),
                sent: 0,
                last_garp: now,
                refreshed_for: None,
            }
        });
        h.refreshed_for = h.refreshed_for.max(until);
        let gap = if h.sent < BURST {
            BURST_GAP
        } else {
            REFRESH_GAP
        };
        if h.sent == 0 || now.duration_since(h.last_garp) >= gap {
            h.sent = h.sent.saturating_add(1);
            h.last_garp = now;
            let (index, mac) = (h.index, h.mac);
            match mac.map(|mac| garp::announce(index, mac, vip.ip)) {
                Some(Ok(())) => {}
                Some(Err(e)) => self.say_once(
                    format!("{vip}@{dev}:arp"),
                    &format!("cannot send gratuitous ARP for {vip} on {dev} (CAP_NET_RAW?): {e}"),
                ),
                None => self.say_once(
                    format!("{vip}@{dev}:mac"),
                    &format!("no MAC address for {dev}: no gratuitous ARP"),
                ),
            }
        }
    }
}
