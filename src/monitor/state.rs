//! The monitor's in-memory state, shared by its tasks: per master name the settings read from the
//! log, the instances to probe and what each last answered; builds the `NodeReport`. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::info::InfoReply;
use super::observation::{NodeReport, Observation, ReportedRole};
use super::tilt::Tilt;
use crate::redis::Access;
use crate::topology::{Addr, MasterRecord};

/// INFO period while nothing is wrong.
pub const INFO_PERIOD: Duration = Duration::from_millis(1000);
/// INFO period while the master is down or failing over (Sentinel: 1 s instead of 10 s). Faster
/// costs every node an INFO of every replica of every down master per period, which at a mass
/// failover starves the Raft commits the failover waits for; the failover itself reads offsets
/// and roles live.
pub const FAST_INFO: Duration = Duration::from_millis(250);
/// Bounds of the PING period, `down_after / 10` (DESIGN "Detection"). SDOWN fires from a timer at
/// last valid reply + down-after, so the period only sets its precision: faster probing buys
/// nothing and costs every instance a round trip per period on every node.
pub const MIN_PING: Duration = Duration::from_millis(100);
pub const MAX_PING: Duration = Duration::from_secs(1);
/// Bounds of the connect / command timeout, `down_after / 2` (Sentinel closes a link whose PING
/// is pending that long).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(50);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Stands for "never" when a deadline would overflow (a down-after of u64::MAX ms is accepted).
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
/// A discovered replica no longer listed by its master is dropped after this many down-afters.
pub const FORGET_AFTER: u32 = 10;

/// The PING period; a down-after below 300 ms still gets three PINGs per down-after, so one late
/// reply is not an SDOWN.
pub fn ping_interval(down_after: Duration) -> Duration {
    (down_after / 10)
        .clamp(MIN_PING, MAX_PING)
        .min(down_after / 3)
        .max(Duration::from_millis(1))
}

/// The longest wait between attempts to connect to an instance that keeps refusing.
const MAX_RECONNECT: Duration = Duration::from_secs(1);

/// How long after its `failures`-th failed connect an instance is tried again: the ping period
/// at first, doubling up to a second (Sentinel's reconnect period) or the period if longer. A
/// mass failure of 200 masters otherwise costs each node 2,000 failed connects a second at
/// down-after 1 s, on the cores the failover needs; a restarted instance is still found
/// again within a second.
pub fn reconnect_after(ping: Duration, failures: u32) -> Duration {
    let doubled = ping.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_RECONNECT.max(ping))
}

pub fn command_timeout(down_after: Duration) -> Duration {
    (down_after / 2).clamp(MIN_TIMEOUT, MAX_TIMEOUT)
}

/// The first point of the grid `epoch + k × period` after `now` (`now` + period if the grid is
/// degenerate).
pub fn grid_after(epoch: Instant, now: Instant, period: Duration) -> Instant {
    let p = period.as_nanos();
    if p == 0 || now < epoch {
        return deadline(now, period);
    }
    let since = now.duration_since(epoch).as_nanos();
    let next = (since / p + 1).saturating_mul(p);
    let next = Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX));
    deadline(epoch, next)
}

/// `from + d`, or a far future instead of overflowing.
pub fn deadline(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What an instance task needs for its next round.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSettings {
    pub ping: Duration,
    pub timeout: Duration,
    pub info_every: Duration,
    pub access: Access,
}

#[derive(Debug)]
pub struct InstanceState {
    /// Last valid PING reply; the time probing started until the first one.
    pub last_reply: Instant,
    pub sdown: bool,
    pub info_at: Option<Instant>,
    pub info: Option<InfoReply>,
    /// Since when its INFO has said role replica, without a break.
    pub replica_since: Option<Instant>,
    /// Since when its INFO has said the role it says now (Sentinel's role-reported-time).
    pub role_since: Instant,
    /// The log's master restarted (a new run id) at this time and has not answered PONG since
    /// (Sentinel's master_reboot), while master-reboot-down-after-period is set.
    pub reboot_since: Option<Instant>,
    /// The last INFO reply as Redis sent it (SENTINEL INFO-CACHE).
    pub info_text: Option<Arc<str>>,
    /// The probe's connection is up (Sentinel's link `disconnected` flag when not).
    pub link_up: bool,
}

/// What makes an instance SDOWN: its master's periods and whether it is the log's master.
#[derive(Clone, Copy, Debug)]
struct Rules {
    down_after: Duration,
    /// master-reboot-down-after-period; zero is off.
    reboot_after: Duration,
    is_master: bool,
}

impl InstanceState {
    fn new(now: Instant) -> Self {
        InstanceState {
            last_reply: now,
            sdown: false,
            info_at: None,
            info: None,
            replica_since: None,
            role_since: now,
            reboot_since: None,
            info_text: None,
            link_up: false,
        }
    }

    /// When it is SDOWN for want of a valid reply.
    fn reply_deadline(&self, down_after: Duration) -> Instant {
        deadline(self.last_reply, down_after)
    }

    /// Sentinel's second SDOWN rule, for the log's master only: one that has reported role
    /// replica for longer than down-after + 2 INFO periods is down. A master restarted with a
    /// stale `replicaof` (or left a replica by a hand-made change) would otherwise be waited for
    /// forever while it replicates from nothing.
    fn role_deadline(&self, down_after: Duration, is_master: bool) -> Option<Instant> {
        let since = self.replica_since.filter(|_| is_master)?;
        Some(deadline(since, down_after.saturating_add(INFO_PERIOD * 2)))
    }

    /// Sentinel's third SDOWN rule: a master that restarted and has not answered PONG within
    /// master-reboot-down-after-period is down.
    fn reboot_deadline(&self, r: Rules) -> Option<Instant> {
        let since = self
            .reboot_since
            .filter(|_| r.is_master && !r.reboot_after.is_zero())?;
        Some(deadline(since, r.reboot_after))
    }

    /// The earliest time a rule makes it SDOWN.
    fn sdown_at(&self, r: Rules) -> Instant {
        let reply = self.reply_deadline(r.down_after);
        [
            self.role_deadline(r.down_after, r.is_master),
            self.reboot_deadline(r),
        ]
        .into_iter()
        .flatten()
        .fold(reply, Instant::min)
    }

    fn due(&self, r: Rules, now: Instant) -> bool {
        now >= self.sdown_at(r)
    }
}

#[derive(Debug)]
pub struct NameState {
    pub master: Addr,
    pub down_after: Duration,
    /// master-reboot-down-after-period; zero is off.
    pub reboot_after: Duration,
    pub failover: bool,
    pub access: Access,
    /// Replicas recorded in the log.
    pub known: BTreeSet<Addr>,
    /// Replicas seen in the master's INFO (and old master addresses), with when last listed.
    pub discovered: BTreeMap<Addr, Instant>,
    pub instances: BTreeMap<Addr, InstanceState>,
}

/// The outcome of matching the state to the log.
#[derive(Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Every (name, address) to probe now.
    pub wanted: BTreeSet<(String, Addr)>,
    /// Names whose down-after, credentials or TLS changed: their tasks must re-read settings.
    pub retuned: BTreeSet<String>,
}

#[derive(Debug)]
pub struct Shared {
    pub started: Instant,
    pub tilt: Tilt,
    pub names: BTreeMap<String, NameState>,
    /// `[masters.NAME] tls = true` of this node's config.
    pub tls_names: BTreeSet<String>,
}

impl Shared {
    pub fn new(started: Instant) -> Self {
        Shared {
            started,
            tilt: Tilt::default(),
            names: BTreeMap::new(),
            tls_names: BTreeSet::new(),
        }
    }

    fn clock_ms(&self, now: Instant) -> u64 {
        ms(now.saturating_duration_since(self.started))
    }

    /// Follows the log's masters: settings, addresses, replicas; discovery from the master's
    /// last INFO; instance states created (nothing down at start) and dropped.
    pub fn reconcile(
        &mut self,
        masters: &BTreeMap<String, std::sync::Arc<MasterRecord>>,
        now: Instant,
    ) -> Reconciled {
        let mut out = Reconciled::default();
        self.names.retain(|name, _| masters.contains_key(name));
        for (name, rec) in masters {
            let down_after = Duration::from_millis(rec.down_after_ms.max(1));
            let access = Access::of(rec, self.tls_names.contains(name));
            let ns = self.names.entry(name.clone()).or_insert_with(|| NameState {
                master: rec.addr.clone(),
                down_after,
                reboot_after: Duration::ZERO,
                failover: false,
                access: access.clone(),
                known: BTreeSet::new(),
                discovered: BTreeMap::new(),
                instances: BTreeMap::new(),
            });
            if ns.master != rec.addr {
                // The old master stays probed as a replica of this name.
                let old = std::mem::replace(&mut ns.master, rec.addr.clone());
                ns.discovered.insert(old, now);
                // Its time as a replica counts from now: it was not the master until now.
                if let Some(inst) = ns.instances.get_mut(&rec.addr) {
                    inst.replica_since = inst.replica_since.map(|_| now);
                }
            }
            if ns.down_after != down_after || ns.access != access {
                out.retuned.insert(name.clone());
            }
            ns.down_after = down_after;
            ns.reboot_after = Duration::from_millis(rec.reboot_down_after_ms);
            ns.access = access;
            ns.failover = rec.failover.is_some();
            ns.known = rec.replicas.iter().map(|r| r.addr.clone()).collect();
            if let Some(ReportedRole::Master { replicas }) = ns
                .instances
                .get(&ns.master)
                .and_then(|i| i.info.as_ref())
                .map(|info| &info.role)
            {
                for link in replicas {
                    ns.discovered.insert(link.addr.clone(), now);
                }
            }
            let forget = down_after.saturating_mul(FORGET_AFTER);
            ns.discovered
                .retain(|_, listed| now.saturating_duration_since(*listed) < forget);
            let mut wanted: BTreeSet<Addr> = ns.known.clone();
            wanted.extend(ns.discovered.keys().cloned());
            wanted.insert(ns.master.clone());
            ns.instances.retain(|addr, _| wanted.contains(addr));
            for addr in wanted {
                ns.instances
                    .entry(addr.clone())
                    .or_insert_with(|| InstanceState::new(now));
                out.wanted.insert((name.clone(), addr));
            }
        }
        out
    }

    /// None when the instance is no longer monitored (its task should end).
    pub fn probe_settings(&self, name: &str, addr: &Addr) -> Option<ProbeSettings> {
        let ns = self.names.get(name)?;
        ns.instances.get(addr)?;
        let ping = ping_interval(ns.down_after);
        let master_down = ns.instances.get(&ns.master).is_some_and(|i| i.sdown);
        Some(ProbeSettings {
            ping,
            timeout: command_timeout(ns.down_after),
            info_every: if master_down || ns.failover {
                ping.max(FAST_INFO)
            } else {
                INFO_PERIOD
            },
            access: ns.access.clone(),
        })
    }

    /// A timer fired `lag` late: TILT if that is more than a quarter of some master's down-after.
    /// Returns true when TILT started.
    pub fn note_lag(&mut self, now: Instant, lag: Duration) -> bool {
        let now_ms = self.clock_ms(now);
        let mut entered = false;
        for ns in self.names.values() {
            entered |= self.tilt.record_lag(now_ms, ms(lag), ms(ns.down_after));
        }
        entered
    }

    /// The instance and its SDOWN rules.
    fn instance_mut(&mut self, name: &str, addr: &Addr) -> Option<(&mut InstanceState, Rules)> {
        let ns = self.names.get_mut(name)?;
        let rules = Rules {
            down_after: ns.down_after,
            reboot_after: ns.reboot_after,
            is_master: ns.master == *addr,
        };
        Some((ns.instances.get_mut(addr)?, rules))
    }

    /// A valid PING reply (`pong`: +PONG, not -LOADING or -MASTERDOWN, which do not end a
    /// reboot). Returns true when it ended an SDOWN (a master that still reports role replica
    /// past its deadline stays down).
    pub fn valid_reply(&mut self, name: &str, addr: &Addr, now: Instant, pong: bool) -> bool {
        let Some((inst, rules)) = self.instance_mut(name, addr) else {
            return false;
        };
        inst.last_reply = inst.last_reply.max(now);
        if pong {
            inst.reboot_since = None;
        }
        // Only the timer starts an SDOWN.
        if inst.sdown && !inst.due(rules, now) {
            inst.sdown = false;
            return true;
        }
        false
    }

    /// When the instance goes SDOWN if nothing changes: Some(None) if it is down already, None
    /// if it is not monitored any more.
    pub fn sdown_deadline(&self, name: &str, addr: &Addr) -> Option<Option<Instant>> {
        let ns = self.names.get(name)?;
        let inst = ns.instances.get(addr)?;
        let rules = Rules {
            down_after: ns.down_after,
            reboot_after: ns.reboot_after,
            is_master: ns.master == *addr,
        };
        Some((!inst.sdown).then(|| inst.sdown_at(rules)))
    }

    /// The SDOWN timer fired `lag` late at `now` (lag recorded first, so no report shows the
    /// SDOWN without the TILT). Returns (SDOWN started, TILT started).
    pub fn sdown_timer(
        &mut self,
        name: &str,
        addr: &Addr,
        now: Instant,
        lag: Duration,
    ) -> (bool, bool) {
        let tilted = self.note_lag(now, lag);
        let Some((inst, rules)) = self.instance_mut(name, addr) else {
            return (false, tilted);
        };
        if inst.sdown || !inst.due(rules, now) {
            return (false, tilted);
        }
        inst.sdown = true;
        (true, tilted)
    }

    /// Every address known for `name`, the log's first (the master, its replicas) so that its
    /// spelling wins, then the discovered ones and those probed.
    pub fn known_addrs(&self, name: &str) -> Vec<Addr> {
        let Some(n) = self.names.get(name) else {
            return Vec::new();
        };
        let mut all: Vec<Addr> = std::iter::once(&n.master)
            .chain(&n.known)
            .cloned()
            .collect();
        let others = n.discovered.keys().chain(n.instances.keys());
        for a in others {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }

    /// A parsed INFO. Returns true when something a reader acts on changed (role, run id,
    /// replid, master link, priority, the replica list, an SDOWN the role ended), not for
    /// offsets alone.
    pub fn record_info(&mut self, name: &str, addr: &Addr, now: Instant, info: InfoReply) -> bool {
        let Some((inst, rules)) = self.instance_mut(name, addr) else {
            return false;
        };
        let mut changed = match &inst.info {
            Some(old) => !same_shape(old, &info),
            None => true,
        };
        let was_replica = inst
            .info
            .as_ref()
            .map(|i| matches!(i.role, ReportedRole::Replica { .. }));
        let is_replica = matches!(info.role, ReportedRole::Replica { .. });
        if was_replica.is_some_and(|was| was != is_replica) {
            inst.role_since = now;
        }
        let old_run_id = inst.info.as_ref().map(|i| i.run_id.as_str());
        if old_run_id.is_some_and(|old| !old.is_empty() && old != info.run_id) {
            inst.reboot_since = Some(now);
            changed = true;
        }
        inst.replica_since = match info.role {
            ReportedRole::Replica { .. } => inst.replica_since.or(Some(now)),
            ReportedRole::Master { .. } => None,
        };
        inst.info = Some(info);
        inst.info_at = Some(now);
        if inst.sdown && !inst.due(rules, now) {
            inst.sdown = false;
            changed = true;
        }
        changed
    }

    /// The probe's connection came up or went down. Returns whether that changed.
    pub fn set_link(&mut self, name: &str, addr: &Addr, up: bool) -> bool {
        match self.instance_mut(name, addr) {
            Some((inst, _)) if inst.link_up != up => {
                inst.link_up = up;
                true
            }
            _ => false,
        }
    }

    /// Keeps an INFO reply's text for SENTINEL INFO-CACHE.
    pub fn keep_info_text(&mut self, name: &str, addr: &Addr, text: Arc<str>) {
        if let Some((inst, _)) = self.instance_mut(name, addr) {
            inst.info_text = Some(text);
        }
    }

    /// SENTINEL INFO-CACHE for `name`: the master then its other instances, each with the age of
    /// its last INFO (0 if none) and that INFO's text.
    pub fn info_cache(&self, name: &str, now: Instant) -> Option<Vec<(u64, Option<Arc<str>>)>> {
        let ns = self.names.get(name)?;
        let entry = |inst: &InstanceState| {
            let age = inst
                .info_at
                .map_or(0, |t| ms(now.saturating_duration_since(t)));
            (age, inst.info_text.clone())
        };
        let master = ns.instances.get(&ns.master).map(entry);
        let others = ns
            .instances
            .iter()
            .filter(|(a, _)| **a != ns.master)
            .map(|(_, i)| entry(i));
        Some(master.into_iter().chain(others).collect())
    }

    /// The shortest PING period of any master: how often the report is republished.
    pub fn publish_interval(&self) -> Duration {
        self.names
            .values()
            .map(|ns| ping_interval(ns.down_after))
            .min()
            .unwrap_or(MAX_PING)
    }

    /// The report with ages as of `now`; per name, the master first, then by address.
    pub fn report(&self, node_id: u64, now: Instant) -> NodeReport {
        let mut masters = BTreeMap::new();
        for (name, ns) in &self.names {
            let mut list = Vec::with_capacity(ns.instances.len());
            if let Some(inst) = ns.instances.get(&ns.master) {
                let reboot = inst.reboot_since.is_some() && !ns.reboot_after.is_zero();
                list.push(observe(&ns.master, inst, now, reboot));
            }
            for (addr, inst) in ns.instances.iter().filter(|(a, _)| **a != ns.master) {
                list.push(observe(addr, inst, now, false));
            }
            masters.insert(name.clone(), list);
        }
        NodeReport {
            node_id,
            tilt: self.tilt.is_active(self.clock_ms(now)),
            masters,
            local: Default::default(),
            tilt_since: self
                .tilt
                .since_ms(self.clock_ms(now))
                .map(|ms| self.started + Duration::from_millis(ms)),
            tilt_total: self.tilt.entered(),
        }
    }
}

fn observe(addr: &Addr, inst: &InstanceState, now: Instant, reboot: bool) -> Observation {
    let info = inst.info.as_ref();
    Observation {
        addr: addr.clone(),
        sdown: inst.sdown,
        reply_age_ms: ms(now.saturating_duration_since(inst.last_reply)),
        info_age_ms: inst.info_at.map(|t| ms(now.saturating_duration_since(t))),
        role: info.map(|i| i.role.clone()),
        run_id: info.map(|i| i.run_id.clone()).unwrap_or_default(),
        replid: info.map(|i| i.replid.clone()).unwrap_or_default(),
        repl_offset: info.map(|i| i.repl_offset).unwrap_or(0),
        replid2: info.map(|i| i.replid2.clone()).unwrap_or_default(),
        second_repl_offset: info.and_then(|i| i.second_repl_offset),
        role_age_ms: ms(now.saturating_duration_since(inst.role_since)),
        reboot,
        link_up: inst.link_up,
    }
}

fn same_shape(a: &InfoReply, b: &InfoReply) -> bool {
    let roles = match (&a.role, &b.role) {
        (ReportedRole::Master { replicas: x }, ReportedRole::Master { replicas: y }) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(l, r)| l.addr == r.addr && l.state == r.state)
        }
        (
            ReportedRole::Replica {
                master: m1,
                link_up: l1,
                priority: p1,
                ..
            },
            ReportedRole::Replica {
                master: m2,
                link_up: l2,
                priority: p2,
                ..
            },
        ) => m1 == m2 && l1 == l2 && p1 == p2,
        _ => false,
    };
    roles && a.run_id == b.run_id && a.replid == b.replid && a.replid2 == b.replid2
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
