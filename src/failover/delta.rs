//! Reports as deltas. A follower sends the leader only the masters whose observations changed
//! since the last delta the leader applied, and an empty beat when nothing did; the leader rebuilds
//! each node's full report from them. Pure: no I/O, no clock.
//!
//! Ages are the one thing that changes without any event. A delta's contract is that, as of each
//! beat, every observation the leader holds is within one ping period of the truth in its ages and
//! equal in everything else a decision reads. A name is "hot" (its master SDOWN here, a failover
//! of it in the log, or the leader asked for it because some node sees it down): then offsets, I/O
//! ages and INFO ages are kept exact too, which costs a resend per INFO; a quiet name is resent
//! only when its shape changes or an instance stops answering.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::monitor::{Colocation, NodeReport, Observation, ReportedRole};

/// What one node sends the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDelta {
    pub node_id: u64,
    /// Chosen at random when the sender starts: a leader that holds another session's state asks
    /// for a full set instead of applying a delta to it.
    pub session: u64,
    /// Consecutive within a session.
    pub seq: u64,
    /// A full set: replaces whatever the leader held for this node.
    pub full: bool,
    pub tilt: bool,
    /// This node's host, when it changed (always in a full set).
    pub local: Option<Colocation>,
    /// Masters whose observations changed, each with its whole list.
    pub masters: BTreeMap<String, Vec<Observation>>,
    /// Masters this node no longer observes.
    pub removed: Vec<String>,
}

impl ReportDelta {
    /// Whether it carries nothing but the beat.
    pub fn is_beat(&self) -> bool {
        !self.full && self.local.is_none() && self.masters.is_empty() && self.removed.is_empty()
    }
}

/// How precisely the leader must know one master's observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    /// The master's PING period, in ms: the tolerance on ages.
    pub ping_ms: u64,
    pub hot: bool,
}

/// The follower's side: what the leader holds, as far as this sender knows.
#[derive(Debug, Default)]
pub struct Outbox {
    session: u64,
    seq: u64,
    /// What the last applied delta left the leader with; None: the next delta is a full set.
    held: Option<Leader>,
}

/// What the leader holds of this node, as the sender knows it.
#[derive(Debug)]
struct Leader {
    local: Colocation,
    masters: BTreeMap<String, Vec<Observation>>,
}

/// The leader's answer to a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Applied,
    /// The leader could not apply it (another session, a gap, no state): send a full set.
    NeedFull,
    /// Not delivered, or the receiver does not lead: whether it was applied is unknown.
    Lost,
}

impl Outbox {
    pub fn new(session: u64) -> Self {
        Outbox {
            session,
            seq: 0,
            held: None,
        }
    }

    /// The next delta from `report` and this node's host view `local` (kept apart from the
    /// monitor's report so that a beat never copies the report); `precision` says, per master,
    /// how closely it must be kept. Call [`Outbox::settle`] with the outcome before building the
    /// next one.
    pub fn next(
        &mut self,
        report: &NodeReport,
        local: &Colocation,
        precision: impl Fn(&str) -> Precision,
    ) -> ReportDelta {
        self.seq = self.seq.wrapping_add(1);
        let mut delta = ReportDelta {
            node_id: report.node_id,
            session: self.session,
            seq: self.seq,
            tilt: report.tilt,
            ..ReportDelta::default()
        };
        match &self.held {
            None => {
                delta.full = true;
                delta.local = Some(local.clone());
                delta.masters = report.masters.clone();
            }
            Some(held) => {
                if held.local != *local {
                    delta.local = Some(local.clone());
                }
                for (name, list) in &report.masters {
                    let same = held
                        .masters
                        .get(name)
                        .is_some_and(|old| close_enough(old, list, precision(name)));
                    if !same {
                        delta.masters.insert(name.clone(), list.clone());
                    }
                }
                delta.removed = held
                    .masters
                    .keys()
                    .filter(|n| !report.masters.contains_key(*n))
                    .cloned()
                    .collect();
            }
        }
        delta
    }

    /// Records what became of `delta`: applied, the leader holds what it says; otherwise the
    /// next delta is a full set.
    pub fn settle(&mut self, delta: ReportDelta, ack: Ack) {
        if ack != Ack::Applied {
            self.held = None;
            return;
        }
        let held = self.held.get_or_insert_with(|| Leader {
            local: Colocation::default(),
            masters: BTreeMap::new(),
        });
        if delta.full {
            held.masters.clear();
        }
        // A delta carries the host's view whenever it changed (always in a full set).
        if let Some(local) = delta.local {
            held.local = local;
        }
        for name in &delta.removed {
            held.masters.remove(name);
        }
        held.masters.extend(delta.masters);
    }

    /// The leader changed: it holds nothing of ours yet.
    pub fn reset(&mut self) {
        self.held = None;
    }
}

/// A delta that does not follow what the leader holds: the sender must send a full set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap;

/// One node's report as the leader rebuilt it, with the (session, seq) of the last delta applied.
pub type Held = (u64, u64, Arc<NodeReport>);

/// Applies `delta` to `held` (the node's rebuilt report, if any) at the leader. Returns the names
/// whose observations changed.
pub fn apply(held: &mut Option<Held>, delta: ReportDelta) -> Result<BTreeSet<String>, Gap> {
    let ReportDelta {
        node_id,
        session,
        seq,
        full,
        tilt,
        local,
        masters,
        removed,
    } = delta;
    if full {
        let mut changed: BTreeSet<String> = masters.keys().cloned().collect();
        if let Some((_, _, old)) = held.as_ref() {
            changed.extend(old.masters.keys().cloned());
        }
        let report = NodeReport {
            node_id,
            tilt,
            masters,
            local: local.unwrap_or_default(),
            ..NodeReport::default()
        };
        *held = Some((session, seq, Arc::new(report)));
        return Ok(changed);
    }
    let Some((s, q, report)) = held.as_mut() else {
        return Err(Gap);
    };
    if *s != session || seq != q.wrapping_add(1) {
        return Err(Gap);
    }
    *q = seq;
    // Copies the report only while a runner's snapshot still holds the previous one.
    let report = Arc::make_mut(report);
    let mut changed = BTreeSet::new();
    if report.tilt != tilt {
        report.tilt = tilt;
        changed.extend(report.masters.keys().cloned());
    }
    if let Some(local) = local {
        report.local = local;
    }
    for name in removed {
        report.masters.remove(&name);
        changed.insert(name);
    }
    for (name, list) in masters {
        report.masters.insert(name.clone(), list);
        changed.insert(name);
    }
    Ok(changed)
}

/// Whether the leader's copy `held` of one master's observations may stand for `now`.
fn close_enough(held: &[Observation], now: &[Observation], p: Precision) -> bool {
    held.len() == now.len() && held.iter().zip(now).all(|(a, b)| same_obs(a, b, p))
}

fn same_obs(a: &Observation, b: &Observation, p: Precision) -> bool {
    let info_tol = if p.hot {
        p.ping_ms
    } else {
        // A quiet name's INFO age goes round its period; only an INFO that stopped coming shows.
        p.ping_ms
            .saturating_add(crate::failover::candidate::INFO_PERIOD_MS)
    };
    let offsets = !p.hot || a.repl_offset == b.repl_offset;
    a.addr == b.addr
        && a.sdown == b.sdown
        && a.run_id == b.run_id
        && a.replid == b.replid
        && a.replid2 == b.replid2
        && a.second_repl_offset == b.second_repl_offset
        && offsets
        && within(a.reply_age_ms, b.reply_age_ms, p.ping_ms)
        && match (a.info_age_ms, b.info_age_ms) {
            (Some(x), Some(y)) => within(x, y, info_tol),
            (None, None) => true,
            _ => false,
        }
        && same_role(a.role.as_ref(), b.role.as_ref(), p.hot)
}

fn within(a: u64, b: u64, tol: u64) -> bool {
    a.abs_diff(b) <= tol
}

/// Roles equal in what decisions read; offsets and I/O ages only when `exact`.
fn same_role(a: Option<&ReportedRole>, b: Option<&ReportedRole>, exact: bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (
            Some(ReportedRole::Master { replicas: x }),
            Some(ReportedRole::Master { replicas: y }),
        ) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(l, r)| {
                    l.addr == r.addr && l.state == r.state && (!exact || l.offset == r.offset)
                })
        }
        (
            Some(ReportedRole::Replica {
                master: m1,
                link_up: u1,
                link_down_ms: d1,
                priority: p1,
                offset: o1,
                last_io_ms: io1,
            }),
            Some(ReportedRole::Replica {
                master: m2,
                link_up: u2,
                link_down_ms: d2,
                priority: p2,
                offset: o2,
                last_io_ms: io2,
            }),
        ) => m1 == m2 && u1 == u2 && p1 == p2 && (!exact || (d1 == d2 && o1 == o2 && io1 == io2)),
        _ => false,
    }
}
