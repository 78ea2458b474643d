//! This node as a promiser: the promise table on the monotonic clock, read against the applied
//! state. The Raft service answers holders' and the leader's RPCs through it; the holder and the
//! leader on this node ask it directly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::promises::Promises;
use crate::raft::SmData;

#[derive(Clone)]
pub struct Promiser {
    /// This node: it promises only on grants made under a voter set it belongs to.
    node_id: u64,
    table: Arc<Mutex<Promises>>,
    view: watch::Receiver<Arc<SmData>>,
    /// How much longer than the lease the old holder's VIP may live: V + 1 s + T − L.
    vip_extra: Duration,
    /// False until this node applied what the current leader had committed when it first heard
    /// of it: before that its state may predate a revocation.
    caught_up: watch::Receiver<bool>,
}

impl Promiser {
    /// `boot` is when this process started: promises made before it are unknown (invariant 4).
    pub fn new(
        node_id: u64,
        boot: Instant,
        lease: Duration,
        margin: Duration,
        vip_extra: Duration,
        view: watch::Receiver<Arc<SmData>>,
        caught_up: watch::Receiver<bool>,
    ) -> Self {
        Promiser {
            node_id,
            table: Arc::new(Mutex::new(Promises::new(boot, lease, margin))),
            view,
            vip_extra,
            caught_up,
        }
    }

    /// Whether this node has caught up since it started (see `caught_up`).
    pub fn caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// A renewal request on `grant` from `holder`, received now.
    pub fn promise(&self, grant: u64, holder: u64) -> bool {
        if !self.caught_up() {
            return false;
        }
        // A node outside the grant's voter set never promises on it (issue 11 §3): a removed
        // voter that missed the change would otherwise lend its promise to a set it left.
        let current = {
            let view = self.view.borrow();
            view.topology
                .lease_of(holder)
                .is_some_and(|g| g.id == grant)
                && view.topology.may_promise(grant, self.node_id)
        };
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.prune(now, self.vip_extra);
        table.promise(grant, current, now).is_some()
    }

    /// The leader's question before a promotion (or before settling a superseded grant): is the
    /// revoked `grant` dead here? With `vip`, the new holder's: is the old holder's VIP lifetime over as well?
    ///
    /// The question itself says the revocation is committed (only members ask, and only after
    /// it is): this node stops promising on `grant` before it answers, so a node that has not
    /// applied the revocation, or never will (a voter removed meanwhile), can still answer once
    /// its own promises ran out, as PaxosLease's revoke message does.
    pub fn grant_dead(&self, grant: u64, vip: bool) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.told_revoked(grant);
        let extra = if vip { self.vip_extra } else { Duration::ZERO };
        table.dead(grant, true, Instant::now(), extra)
    }
}
