//! A model-checked specification of the lease, fence and VIP protocol (DESIGN.md invariants 4, 5
//! and 8, "Failover", "Default timings"), explored exhaustively by stateright.
//!
//! What it covers. Three hosts, each running one raftinel node and one Redis. Host 0 starts as
//! master, holder of grant g0 (every node has just promised it) and owner of the VIP. At any time
//! the leader may fail it over, once, to host 1. Then:
//! - a holder renews every R: it promises itself and asks the two other nodes; a node promises
//!   iff the grant is current in its applied state, and remembers `until = receive + L` on its own
//!   clock; a majority lets the holder act until `send + L − F` on its clock, and at that point it
//!   fences its Redis and removes the VIP, which takes effect within F;
//! - FailoverStarted revokes g0 and grants g1 to host 1. A node reports g0 dead once it applied that
//!   and its clock passed `until + m` (a restarted node: `boot + L + m`); on a majority of reports,
//!   or the old holder's release (given only once its Redis is fenced), the leader promotes host
//!   1's Redis and commits MasterSwitched; host 1 unfences once it holds a valid lease on g1, applied
//!   MasterSwitched and its Redis is master (invariant 2's three conditions);
//! - the VIP is added with a kernel lifetime V, refreshed on each confirmed renewal, and dropped by
//!   the kernel (which checks lifetimes in whole seconds: up to 1 s late) even if raftinel is
//!   frozen or dead. A node reports the VIP free once it applied the revocation and `vip_wait`
//!   passed on its clock since its last promise on g0 (or its boot); host 1 adds the VIP only with
//!   a valid lease, as master, once a majority reported that. This is the simplest encoding of
//!   "the VIP moves only so long after the old holder's last confirmed renewal": a majority
//!   promised that renewal, so one of the reporters saw it. `vip_wait` is m + T + V + 1 s (the
//!   implementation's); DESIGN's max(L + m, V + 1 s) is too short, see the tests.
//!
//! Two models are checked: the fence model (no VIP; ρ = 5 %; two faults, none freezing or killing
//! a holder whose Redis is unfenced) for "at most one writable master", and the VIP model (ρ = 1 %;
//! one fault, which may freeze or kill any holder, since the kernel's lifetime must cover that) for
//! "the VIP on at most one host". Time is unbounded: the state holds no absolute time, only what is
//! left of each timer, so the checker sees every reachable state however late the failover starts
//! and however long a node lags or stays paused. A run stops once host 0 can never act again
//! (`LeaseModel::retired`), after which nothing can break either property.
//!
//! What it abstracts away, and why that is sound for the safety properties.
//! - Raft is correct: one append-only log (g0, FailoverStarted, MasterSwitched), which each node
//!   applies in order at its own pace. The leader's rules, the nodes' reports and the release run
//!   as soon as their inputs are true: those inputs only ever become true, so taking them later,
//!   as a lost or delayed report would, only delays the failover. Detection is not modelled (so
//!   L + m ≤ down-after plays no part): the failover may start at any tick.
//! - Renewals. Requests are answered in the tick they are sent, or lost (a fault). A delayed
//!   request would only make its promiser's `until` later (a later dead report), and a delayed
//!   answer would only let the holder act later within a window whose end the send time fixes;
//!   the one thing a late answer moves, the VIP's refresh, is taken at its latest (send + T, after
//!   which the RPC has timed out). A lost answer to a promise is dominated the same way, and so is
//!   the loss of host 1's requests (it only acts later) or of a request that would be refused.
//! - Time advances in ticks of 50 ms. A node's monotonic clock runs at 1 − ρ or 1 + ρ times real
//!   time, fixed per run and read in units of 1/`scale` tick: each race is between a clock that
//!   must not lag and one that must not run ahead, so rates in between, or varying within those
//!   bounds, are no worse than the extremes. A step at tick t stands for one at any instant in
//!   [t, t + 1), rounded against safety: a promise or boot counts from the tick (its earliest
//!   instant), a report is made once its threshold falls before the next tick, a fence or VIP
//!   removal due at the instant x takes effect at tick ⌈x⌉ (a lease's end is a timer, so its F runs
//!   from that instant; any other trigger's from the end of its tick), and a VIP added at tick t
//!   lives until V + 1 s after t + 1. That rounding costs up to a tick at each end of a race, so
//!   the fence model needs ticks finer than m.
//! - Faults: a lost request; a pause of a node (no steps at all while real time, its clock and the
//!   kernel's VIP lifetime run on; a fence in progress is lost); a restart (the node's promises,
//!   lease and renewals are lost, `boot` is its clock at the restart, and it fences and drops the
//!   VIP at startup; the applied state survives unless `restart_loses_applied`).
//!
//! Parameters (`Params::design`, in 50 ms ticks): L = 14, m = 2, R = 2, T = 2, F = 2, V = 20,
//! kernel granularity 20, VIP wait 44 (the DESIGN's 700, 100, 100, 100, 100, 1000, 1000 and
//! m + T + V + 1 s = 2200 ms). ρ is some 100 to 500 times a real crystal's drift, so that the
//! margin's part shows at this scale.
//!
//! Counterexamples the tests find: drift beyond what m covers; a holder frozen while its Redis is
//! unfenced (invariant 5's residual gap); a restart that forgets an applied revocation the node
//! already acted on (a release or a dead report) — the state machine is persisted without fsync
//! and a restarted node serves its stale view, so it promises the revoked grant again; and a VIP
//! wait of max(L + m, V + 1 s), which ignores the up to T between a promise and the refresh.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use stateright::{Checker, HasDiscoveries, Model, Property};

/// Hosts, nodes and Redis instances.
const N: usize = 3;
/// Promises a holder needs, its own included.
const MAJORITY: u32 = 2;
/// The initial master, holder of grant g0 and of the VIP.
const OLD: usize = 0;
/// The failover candidate, granted g1 by FailoverStarted.
const NEW: usize = 1;

/// Log lengths: LeaseGranted { g0, host 0 }; then FailoverStarted (revokes g0, grants g1 to host
/// 1); then MasterSwitched.
const GRANTED: u8 = 1;
const FAILOVER_STARTED: u8 = 2;
const MASTER_SWITCHED: u8 = 3;

/// Timings in ticks, and the bounds of the exploration.
#[derive(Clone, Debug)]
struct Params {
    /// L: a promise lasts this long on the promiser's clock.
    lease: u32,
    /// m: the margin a promiser waits after a promise before calling it dead.
    margin: u32,
    /// R: renewal interval.
    renew: u32,
    /// T: a renewal's answers count only this long after its send.
    rpc_timeout: u32,
    /// F: a fence (and the VIP's removal) takes effect within this long.
    fence: u32,
    /// Whether the model has a VIP at all (without one, a promise matters only until `until + m`).
    vip: bool,
    /// V: the VIP's kernel lifetime after each add or refresh.
    vip_lifetime: u32,
    /// The kernel checks lifetimes in whole seconds: it may drop the VIP this much after V.
    vip_granularity: u32,
    /// How long after a promise on the old grant a node may report the VIP free.
    vip_wait: u32,
    /// Clock units per tick at the nominal rate.
    scale: u32,
    /// The clock rates (units per tick) a node may have.
    rates: Vec<u32>,
    /// Faults in one run: lost requests, pauses and restarts, of any kinds.
    faults: u8,
    /// Whether a node may be paused or killed while its Redis is unfenced (invariant 5's gap).
    stall_unfenced: bool,
    /// Whether a restart loses the log entries the node had applied (a state machine persisted
    /// without fsync, served before the lost tail is re-applied): it comes back with the grant
    /// only.
    restart_loses_applied: bool,
    /// Explore on until host 1 took over, for the `sometimes` properties; otherwise stop once
    /// host 0 retired, which is enough for the `always` ones.
    examples: bool,
}

impl Params {
    /// The DESIGN's default timings in 50 ms ticks, exact clocks, no faults, no VIP.
    fn design() -> Params {
        let ms = |n: u32| n / 50;
        Params {
            lease: ms(700),
            margin: ms(100),
            renew: ms(100),
            rpc_timeout: ms(100),
            fence: ms(100),
            vip: false,
            vip_lifetime: ms(1000),
            vip_granularity: ms(1000),
            // m + T + V + 1 s: the old VIP was refreshed up to T after the send and lives up to
            // V + 1 s more, and m covers the clocks' drift.
            vip_wait: ms(100 + 100 + 1000 + 1000),
            scale: 1,
            rates: vec![1],
            faults: 0,
            stall_unfenced: false,
            restart_loses_applied: false,
            examples: false,
        }
    }

    /// The fence model: ρ = 5 %, two faults of any kind, none stalling an unfenced holder.
    fn fence() -> Params {
        Params {
            faults: 2,
            ..Params::design()
        }
        .drift(1, 20)
    }

    /// The VIP model: one fault of any kind, which may freeze or kill a holder whatever it is
    /// doing, since the VIP's kernel lifetime must cover that. Its race runs over some 2.2 s, so
    /// the same margin covers less drift: ρ = 1 %.
    fn vip() -> Params {
        Params {
            vip: true,
            faults: 1,
            stall_unfenced: true,
            ..Params::design()
        }
        .drift(1, 100)
    }

    /// Clocks running at 1 ± `num`/`den`. Each race is between a clock that must not lag and one
    /// that must not run ahead, so a rate between these extremes is never worse than both.
    fn drift(self, num: u32, den: u32) -> Params {
        let rates = if num == 0 {
            vec![den]
        } else {
            vec![den - num, den + num]
        };
        Params {
            scale: den,
            rates,
            ..self
        }
    }

    /// Invariant 8's rule that concerns the lease: R + 2T + F ≤ L − m.
    fn timing_rules_hold(&self) -> bool {
        self.renew + 2 * self.rpc_timeout + self.fence + self.margin <= self.lease
    }

    /// A duration in ticks, in clock units.
    fn units(&self, ticks: u32) -> i32 {
        i32::try_from(ticks * self.scale).expect("small durations")
    }
}

/// One host: its node (promiser, and holder on hosts 0 and 1), its Redis and its VIP. Times are
/// what is left of a timer on this host's clock, in clock units.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Host {
    /// Clock units per tick.
    rate: i32,
    /// Log entries applied.
    applied: u8,
    /// Until the end of this node's promises on g0 (at the floor: none that still matters).
    promised: i32,
    paused: bool,
    /// Holder: until the end of the window in which it may act.
    lease: Option<i32>,
    /// Holder: until its next renewal (`None`: at the next tick).
    renew: Option<i32>,
    /// Redis: ROLE says master.
    master: bool,
    /// Redis: the fence is in place.
    fenced: bool,
    /// Ticks until a fence and VIP removal in progress take effect.
    stopping: Option<u32>,
    /// Until the kernel drops the VIP from this host.
    vip: Option<i32>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct State {
    hosts: [Host; N],
    /// Log length (committed entries).
    log: u8,
    /// Nodes that told the leader g0 is dead.
    dead: u8,
    /// Nodes that told the leader the VIP is free.
    vip_free: u8,
    /// The old holder released g0 (after fencing).
    released: bool,
    faults_left: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    /// Real time advances one tick: fences fall due, the kernel drops expired VIPs, holders
    /// renew. `lost: Some(j)` loses host 0's request to node j.
    Tick {
        lost: Option<usize>,
    },
    /// The leader commits FailoverStarted.
    StartFailover,
    /// A node applies its next log entry.
    Apply(usize),
    Pause(usize),
    Resume(usize),
    Restart(usize),
}

fn bit(i: usize) -> u8 {
    1 << i
}

fn count(bits: u8) -> u32 {
    bits.count_ones()
}

/// Whether a node that applied `applied` entries holds `holder`'s grant current: it promises it,
/// and on the holder itself, renews it.
fn grant_current(holder: usize, applied: u8) -> bool {
    match holder {
        OLD => applied < FAILOVER_STARTED,
        NEW => applied >= FAILOVER_STARTED,
        _ => false,
    }
}

/// Whether host `h`'s own applied log names its Redis master at the current epoch.
fn names_master(h: usize, applied: u8) -> bool {
    match h {
        OLD => applied < FAILOVER_STARTED,
        NEW => applied >= MASTER_SWITCHED,
        _ => false,
    }
}

fn writable(host: &Host) -> bool {
    host.master && !host.fenced
}

/// Host `h` may have its Redis writable and the VIP up: a valid lease, the log naming it master,
/// ROLE master.
fn allowed(host: &Host, h: usize) -> bool {
    host.lease.is_some_and(|left| left > 0) && names_master(h, host.applied) && host.master
}

/// Whether holder `h` renews at the next tick: running, its grant current, its interval over.
fn renews(host: &Host, h: usize) -> bool {
    !host.paused
        && grant_current(h, host.applied)
        && host.renew.map_or(true, |left| left <= host.rate)
}

/// The lease/fence/VIP protocol as a stateright model.
struct LeaseModel {
    p: Params,
}

impl LeaseModel {
    fn new(p: Params) -> LeaseModel {
        assert!(p.timing_rules_hold(), "R + 2T + F ≤ L − m broken: {p:?}");
        LeaseModel { p }
    }

    /// Whether host 0 is out for good: after the promotion no majority will ever promise g0
    /// again (two nodes applied its revocation, or host 0 did and released it), so once its lease
    /// is gone and its Redis is fenced (or, in a VIP model, its VIP gone), it never acts again,
    /// and host 1 acting alone breaks nothing.
    fn retired(&self, s: &State) -> bool {
        let old = &s.hosts[OLD];
        let stopped = if self.p.vip {
            old.vip.is_none()
        } else {
            old.fenced
        };
        // (A node that can forget the revocation could promise g0 again.)
        !self.p.restart_loses_applied
            && s.log == MASTER_SWITCHED
            && (old.lease.is_none() || old.applied >= FAILOVER_STARTED)
            && stopped
    }

    /// Whether host 1 took over: its Redis writable (in a VIP model, the VIP on it).
    fn took_over(&self, s: &State) -> bool {
        let new = &s.hosts[NEW];
        if self.p.vip {
            new.vip.is_some()
        } else {
            writable(new)
        }
    }

    /// A promise older than this is dead for every purpose.
    fn promise_floor(&self) -> i32 {
        let p = &self.p;
        -p.units(if p.vip {
            p.vip_wait - p.lease
        } else {
            p.margin
        })
    }

    fn tick(&self, s: &mut State, lost: Option<usize>) {
        let renewing: [bool; N] = std::array::from_fn(|h| renews(&s.hosts[h], h));
        for host in &mut s.hosts {
            let rate = host.rate;
            host.promised -= rate;
            for timer in [&mut host.lease, &mut host.renew, &mut host.vip] {
                *timer = timer.map(|left| left - rate);
            }
            // The kernel drops an expired VIP whatever raftinel does.
            if host.vip.is_some_and(|left| left <= 0) {
                host.vip = None;
            }
            if !host.paused {
                host.stopping = host.stopping.map(|left| left.saturating_sub(1));
                if host.stopping == Some(0) {
                    host.fenced = true;
                    host.vip = None;
                    host.stopping = None;
                }
            }
        }
        for h in (0..N).filter(|&h| renewing[h]) {
            self.renew(s, h, lost);
        }
    }

    /// Holder `h` renews now: it promises itself, and every running node it reaches that holds
    /// the grant current promises too.
    fn renew(&self, s: &mut State, h: usize, lost: Option<usize>) {
        let p = &self.p;
        let mut promised = 0;
        for j in 0..N {
            let node = &mut s.hosts[j];
            let reached = j == h || (!node.paused && (h != OLD || lost != Some(j)));
            if !reached || !grant_current(h, node.applied) {
                continue;
            }
            promised += 1;
            if h == OLD {
                node.promised = node.promised.max(p.units(p.lease));
            }
        }
        let host = &mut s.hosts[h];
        host.renew = Some(p.units(p.renew));
        if promised < MAJORITY {
            return;
        }
        host.lease = host.lease.max(Some(p.units(p.lease - p.fence)));
        // A confirmed renewal refreshes the VIP's kernel lifetime; the answer may have come as
        // late as the RPC timeout.
        if allowed(host, h) && host.stopping.is_none() && host.vip.is_some() {
            host.vip = Some(p.units(p.rpc_timeout + p.vip_lifetime + p.vip_granularity));
        }
    }

    /// Everything that follows at once from a step: reports, the leader's rules, the holders'
    /// reactions. `timer` says the step was a tick, so a lease that ran out did so within it.
    fn settle(&self, s: &mut State, timer: bool) {
        loop {
            let before = s.clone();
            self.report(s);
            if s.log == FAILOVER_STARTED && (count(s.dead) >= MAJORITY || s.released) {
                // Promote (REPLICAOF NO ONE, ROLE master), then commit MasterSwitched.
                s.hosts[NEW].master = true;
                s.log = MASTER_SWITCHED;
            }
            for h in [OLD, NEW] {
                self.hold(s, h, timer);
            }
            if *s == before {
                return;
            }
        }
    }

    /// Nodes tell the leader what they may: g0 dead at `until + m`, the VIP free at
    /// `until − L + vip_wait`, both once the revocation is applied.
    fn report(&self, s: &mut State) {
        let dead_after = self.p.units(self.p.margin);
        let free_after = self.p.units(self.p.vip_wait) - self.p.units(self.p.lease);
        for j in 0..N {
            let node = &s.hosts[j];
            if node.paused || node.applied < FAILOVER_STARTED {
                continue;
            }
            // Reached at some instant before the next tick.
            let soon = |after: i32| node.rate > node.promised + after;
            if s.log == FAILOVER_STARTED && soon(dead_after) {
                s.dead |= bit(j);
            }
            if self.p.vip && count(s.vip_free) < MAJORITY && soon(free_after) {
                s.vip_free |= bit(j);
            }
        }
    }

    /// Holder `h` acts on its lease: fence and drop the VIP once it may not act, unfence and add
    /// the VIP while it may, release a revoked grant once fenced.
    fn hold(&self, s: &mut State, h: usize, timer: bool) {
        let p = &self.p;
        let vip_ours = p.vip && (h == OLD || count(s.vip_free) >= MAJORITY);
        let host = &mut s.hosts[h];
        if host.paused {
            return;
        }
        if !allowed(host, h) {
            // A lease running out within the last tick is due F after that instant; anything
            // else happened somewhere in the current tick.
            if (!host.fenced || host.vip.is_some()) && host.stopping.is_none() {
                host.stopping = Some(p.fence + u32::from(!timer));
            }
        } else if host.stopping.is_none() {
            host.fenced = false;
            if host.vip.is_none() && vip_ours {
                let lifetime = p.units(p.vip_lifetime + p.vip_granularity);
                host.vip = Some(host.rate + lifetime);
            }
        }
        if h == OLD && host.applied >= FAILOVER_STARTED && host.fenced && host.stopping.is_none() {
            s.released = true;
        }
    }

    /// Clears what can no longer matter, so that runs differing only there meet again.
    fn forget(&self, s: &mut State) {
        let promoted = s.log == MASTER_SWITCHED;
        if promoted {
            s.dead = 0;
            s.released = false;
        }
        if count(s.vip_free) >= MAJORITY || !self.p.vip {
            s.vip_free = (1 << N) - 1;
        }
        let floor = self.promise_floor();
        for j in 0..N {
            let told = (promoted || s.dead & bit(j) != 0) && s.vip_free & bit(j) != 0;
            let host = &mut s.hosts[j];
            host.promised = if told {
                floor
            } else {
                host.promised.max(floor)
            };
            // An expired lease, or a renewal due by the next tick, is as good as none.
            if host.lease.is_some_and(|left| left <= 0) {
                host.lease = None;
            }
            if host.renew.is_some_and(|left| left <= host.rate) {
                host.renew = None;
            }
        }
    }
}

impl Model for LeaseModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let p = &self.p;
        let mut states = Vec::new();
        for &r0 in &p.rates {
            for &r1 in &p.rates {
                for &r2 in &p.rates {
                    let rates = [r0, r1, r2];
                    // Every node has just promised g0 to host 0, which acts.
                    let hosts = std::array::from_fn(|i| Host {
                        rate: i32::try_from(rates[i]).expect("small rates"),
                        applied: GRANTED,
                        promised: p.units(p.lease),
                        paused: false,
                        lease: (i == OLD).then(|| p.units(p.lease - p.fence)),
                        renew: (i == OLD).then(|| p.units(p.renew)),
                        master: i == OLD,
                        fenced: i != OLD,
                        stopping: None,
                        vip: (p.vip && i == OLD)
                            .then(|| p.units(p.rpc_timeout + p.vip_lifetime + p.vip_granularity)),
                    });
                    states.push(State {
                        hosts,
                        log: GRANTED,
                        dead: 0,
                        vip_free: 0,
                        released: false,
                        faults_left: p.faults,
                    });
                }
            }
        }
        states
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // Nothing after this can break a property; for the examples, go on to the takeover.
        if self.retired(s) && (!self.p.examples || self.took_over(s)) {
            return;
        }
        actions.push(Action::Tick { lost: None });
        if s.faults_left > 0 && renews(&s.hosts[OLD], OLD) {
            // Only a request that would be promised is worth losing.
            let promising =
                |j: usize| j != OLD && !s.hosts[j].paused && grant_current(OLD, s.hosts[j].applied);
            for j in (0..N).filter(|&j| promising(j)) {
                actions.push(Action::Tick { lost: Some(j) });
            }
        }
        if s.log == GRANTED {
            actions.push(Action::StartFailover);
        }
        for j in 0..N {
            // Only the candidate's node acts on MasterSwitched.
            let last = if j == NEW {
                s.log
            } else {
                s.log.min(FAILOVER_STARTED)
            };
            if !s.hosts[j].paused && s.hosts[j].applied < last {
                actions.push(Action::Apply(j));
            }
        }
        for j in 0..N {
            let host = &s.hosts[j];
            let may_stall = self.p.stall_unfenced || host.fenced;
            if host.paused {
                actions.push(Action::Resume(j));
            } else if s.faults_left > 0 && may_stall {
                actions.push(Action::Pause(j));
            }
            if s.faults_left > 0 && may_stall {
                actions.push(Action::Restart(j));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let timer = matches!(action, Action::Tick { .. });
        match action {
            Action::Tick { lost } => {
                s.faults_left -= u8::from(lost.is_some());
                self.tick(&mut s, lost);
            }
            Action::StartFailover => s.log = FAILOVER_STARTED,
            Action::Apply(j) => {
                let host = &mut s.hosts[j];
                host.applied += 1;
                if j == OLD && !grant_current(OLD, host.applied) {
                    // Revoked: no lease, no more renewals (the fence follows in `hold`).
                    host.lease = None;
                    host.renew = None;
                }
            }
            Action::Pause(j) => {
                s.hosts[j].paused = true;
                s.hosts[j].stopping = None;
                s.faults_left -= 1;
            }
            Action::Resume(j) => s.hosts[j].paused = false,
            Action::Restart(j) => {
                let host = &mut s.hosts[j];
                host.paused = false;
                if self.p.restart_loses_applied {
                    host.applied = GRANTED;
                }
                // Every grant counts as promised until boot + L (+ m).
                host.promised = self.p.units(self.p.lease);
                host.lease = None;
                host.renew = None;
                host.stopping = None;
                s.faults_left -= 1;
            }
        }
        self.settle(&mut s, timer);
        self.forget(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        if self.p.vip {
            vec![
                Property::always(VIP, |_, s: &State| {
                    s.hosts.iter().filter(|h| h.vip.is_some()).count() <= 1
                }),
                Property::sometimes(VIP_MOVED, |_, s: &State| s.hosts[NEW].vip.is_some()),
            ]
        } else {
            vec![
                Property::always(WRITABLE, |_, s: &State| {
                    s.hosts.iter().filter(|h| writable(h)).count() <= 1
                }),
                Property::sometimes(FAILED_OVER, |_, s: &State| writable(&s.hosts[NEW])),
            ]
        }
    }
}

const WRITABLE: &str = "at most one writable master";
const VIP: &str = "the VIP on at most one host";
const FAILED_OVER: &str = "a failover completes";
const VIP_MOVED: &str = "the VIP moves";

/// What one breadth-first run found.
struct Outcome {
    states: usize,
    unique: usize,
    found: BTreeSet<&'static str>,
    /// The path to the discovery the run stopped at, one line per state.
    trace: Option<String>,
}

/// Checks `p` breadth first, to the end or to the first discovery of `stop`.
fn check(p: Params, stop: Option<&'static str>) -> Outcome {
    let vip = p.vip;
    let mut builder = LeaseModel::new(p).checker();
    if let Some(name) = stop {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name])));
    }
    let checker = builder.spawn_bfs().join();
    let discoveries = checker.discoveries();
    let trace = stop.and_then(|name| discoveries.get(name)).map(|path| {
        let mut out = String::new();
        let mut tick = 0;
        for (state, action) in path.clone().into_vec() {
            out.push_str(&describe(tick, &state, vip));
            if let Some(action) = action {
                tick += u32::from(matches!(action, Action::Tick { .. }));
                out.push_str(&format!("  {action:?}\n"));
            }
        }
        out
    });
    Outcome {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        found: discoveries.keys().copied().collect(),
        trace,
    }
}

/// One line for a state of a trace, at `tick` (times are what is left, in clock units; reports
/// that no longer matter are cleared).
fn describe(tick: u32, s: &State, vip: bool) -> String {
    let mut line = format!("t={tick} log={} dead={:03b}", s.log, s.dead);
    if vip {
        line.push_str(&format!(" vip_free={:03b}", s.vip_free));
    }
    for (i, h) in s.hosts.iter().enumerate() {
        line.push_str(&format!(
            " | h{i} rate {} applied {} promised {} lease {:?} {} {}",
            h.rate,
            h.applied,
            h.promised,
            h.lease,
            if h.master { "master" } else { "replica" },
            if h.fenced { "fenced" } else { "UNFENCED" },
        ));
        if let Some(left) = h.stopping {
            line.push_str(&format!(" (fenced in {left})"));
        }
        if h.paused {
            line.push_str(" PAUSED");
        }
        if vip {
            line.push_str(&format!(" vip {:?}", h.vip));
        }
    }
    line.push('\n');
    line
}

fn report(test: &str, o: &Outcome) {
    println!(
        "{test}: {} states checked ({} unique), found {:?}",
        o.states, o.unique, o.found
    );
}

/// The VIP model, explored once and shared by the tests that read it.
fn vip_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| check(Params::vip(), None))
}

#[test]
fn at_most_one_writable_master() {
    let o = check(Params::fence(), None);
    report("at_most_one_writable_master", &o);
    assert!(!o.found.contains(WRITABLE));
}

#[test]
fn a_failover_completes() {
    let p = Params {
        examples: true,
        ..Params::fence()
    };
    let o = check(p, Some(FAILED_OVER));
    report("a_failover_completes", &o);
    assert!(o.found.contains(FAILED_OVER));
}

#[test]
fn the_vip_on_at_most_one_host() {
    let o = vip_run();
    report("the_vip_on_at_most_one_host", o);
    assert!(!o.found.contains(VIP));
}

#[test]
fn the_vip_moves() {
    // Host 0 retires in the very step its VIP goes, which is when host 1 may add it: the safety
    // run sees the takeover too.
    let o = vip_run();
    report("the_vip_moves", o);
    assert!(o.found.contains(VIP_MOVED));
}

#[test]
fn drift_beyond_the_margin_breaks_single_master() {
    // ρ = 10 %: a slow holder's L − F + F outlasts a fast promiser's L + m.
    let o = check(Params::fence().drift(1, 10), Some(WRITABLE));
    report("drift_beyond_the_margin_breaks_single_master", &o);
    println!("{}", o.trace.expect("a counterexample"));
}

#[test]
fn a_holder_frozen_while_unfenced_breaks_single_master() {
    let p = Params {
        stall_unfenced: true,
        faults: 1,
        ..Params::design()
    };
    let o = check(p, Some(WRITABLE));
    report("a_holder_frozen_while_unfenced_breaks_single_master", &o);
    println!("{}", o.trace.expect("a counterexample"));
}

#[test]
fn a_restart_that_forgets_the_revocation_breaks_single_master() {
    let p = Params {
        faults: 1,
        restart_loses_applied: true,
        ..Params::design()
    };
    let o = check(p, Some(WRITABLE));
    report(
        "a_restart_that_forgets_the_revocation_breaks_single_master",
        &o,
    );
    println!("{}", o.trace.expect("a counterexample"));
}

#[test]
fn a_vip_wait_of_max_l_plus_m_and_v_plus_1s_is_too_short() {
    // The old VIP's lifetime starts at the renewal's answer, up to T after the send the promises
    // count from: even with exact clocks, max(L + m, V + 1 s) leaves the VIP on two hosts.
    let d = Params::design();
    let p = Params {
        vip_wait: (d.lease + d.margin).max(d.vip_lifetime + d.vip_granularity),
        ..Params::vip().drift(0, 1)
    };
    let o = check(p, Some(VIP));
    report("a_vip_wait_of_max_l_plus_m_and_v_plus_1s_is_too_short", &o);
    println!("{}", o.trace.expect("a counterexample"));
}
