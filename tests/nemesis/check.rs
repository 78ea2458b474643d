//! The checker: pure functions over a run's `History` that name every broken promise.
//! - No write acknowledged by an instance after another was promoted for a later epoch.
//! - Acknowledged writes are lost only around a fault on the instance that took them: from its
//!   replication lag before the fault to L (plus slack) after it (docs/failover.md, "What a failover can
//!   lose"), or the operator's min-replicas-max-lag while its raftinel was frozen (DESIGN
//!   invariant 5's residual gap).
//! - The VIP is never on two hosts in one sample.
//! - No node's config epoch goes back; no committed Raft entry differs between two nodes' logs.
//! - After the last heal, exactly one instance takes writes within down-after + 2 s, and the
//!   cluster converges.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{Ack, History, Path, Promotion};

/// The bounds the checker holds a run to.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub down_after_us: u64,
    /// How far before a fault a lost write may have been acknowledged: the replication lag of
    /// a loaded machine.
    pub loss_before_us: u64,
    /// How far after a fault began a lost write may have been acknowledged: L − F + R after the
    /// last renewal, plus slack for this VM's stalls.
    pub loss_after_us: u64,
    /// How long after a promotion an instance whose raftinel is frozen may still acknowledge
    /// writes: bounded only by min-replicas-max-lag (1 s here, counted in whole seconds).
    pub residual_us: u64,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            down_after_us: 1_000_000,
            loss_before_us: 1_000_000,
            loss_after_us: 1_500_000,
            residual_us: 4_500_000,
        }
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    /// Acknowledged writes missing from the final master.
    pub lost: usize,
    /// The most writes lost around one fault, and that fault's step.
    pub worst_loss: Option<(usize, usize)>,
    /// Acknowledged by a frozen-raftinel master after the promotion (DESIGN invariant 5).
    pub residual_acks: usize,
    pub max_vip_holders: usize,
    /// From the last heal to one writable instance.
    pub converge_us: Option<u64>,
}

pub fn check(h: &History, b: &Bounds) -> Report {
    let mut r = Report::default();
    late_acks(h, b, &mut r);
    lost_writes(h, b, &mut r);
    vip(h, &mut r);
    epochs(h, &mut r);
    logs(h, &mut r);
    ending(h, b, &mut r);
    r
}

/// A promotion as the checker uses it: moved as early as the promoted instance's first
/// acknowledged write after the promotion before (once it took a write, the previous master must
/// take none), with that write, which is itself legitimate.
struct Effective {
    p: Promotion,
    by: Option<(Path, u64)>,
}

fn effective_promotions(h: &History) -> Vec<Effective> {
    let mut ps: Vec<Promotion> = h.promotions.clone();
    ps.sort_by_key(|p| p.index);
    let mut prev = 0;
    let mut out = Vec::new();
    for mut p in ps {
        let first = h
            .acks
            .iter()
            .filter(|a| a.host == p.to && a.sent_us > prev && a.acked_us < p.at_us)
            .min_by_key(|a| a.acked_us);
        let by = first.map(|a| {
            p.at_us = a.acked_us;
            (a.path, a.value)
        });
        p.at_us = p.at_us.max(prev);
        prev = p.at_us;
        out.push(Effective { p, by });
    }
    out
}

/// The promotion in force when a write was sent at `t`, if any.
fn master_at(ps: &[Effective], t: u64) -> Option<&Effective> {
    ps.iter().rev().find(|e| e.p.at_us < t)
}

fn frozen_at(h: &History, host: &str, t: u64) -> bool {
    h.faults.iter().any(|w| {
        w.frozen_raftinel && w.hosts.iter().any(|x| x == host) && w.from_us <= t && t <= w.to_us
    })
}

fn late_acks(h: &History, b: &Bounds, r: &mut Report) {
    let ps = effective_promotions(h);
    let defining: BTreeSet<(Path, u64)> = ps.iter().filter_map(|e| e.by).collect();
    let mut late = Vec::new();
    for a in &h.acks {
        let (master, p) = match master_at(&ps, a.sent_us) {
            Some(e) => (e.p.to.as_str(), Some(&e.p)),
            None => (h.first_master.as_str(), None),
        };
        if a.host == master || defining.contains(&(a.path, a.value)) {
            continue;
        }
        if let Some(p) = p {
            if frozen_at(h, &a.host, p.at_us) && a.acked_us <= p.at_us + b.residual_us {
                r.residual_acks += 1;
                continue;
            }
        }
        late.push((a, p));
    }
    if let Some((a, p)) = late.first() {
        let when = p.map_or("at the start".to_owned(), |p| {
            format!(
                "after {} was promoted for epoch {} at {}",
                p.to,
                p.epoch,
                ms(p.at_us)
            )
        });
        r.violations.push(format!(
            "late acknowledgement: {} took {:?} write {} sent at {} ({} in all) {when}",
            a.host,
            a.path,
            a.value,
            ms(a.sent_us),
            late.len()
        ));
    }
}

fn lost_writes(h: &History, b: &Bounds, r: &mut Report) {
    let mut per_fault: BTreeMap<usize, usize> = BTreeMap::new();
    let mut unexplained: Vec<&Ack> = Vec::new();
    for path in [Path::Sentinel, Path::Vip] {
        let Some(kept) = h.ending.data.get(&path) else {
            if h.acks.iter().any(|a| a.path == path) {
                r.violations.push(format!(
                    "the final master's {:?} list could not be read",
                    path
                ));
            }
            continue;
        };
        let kept: BTreeSet<u64> = kept.iter().copied().collect();
        for a in h.acks.iter().filter(|a| a.path == path) {
            if kept.contains(&a.value) {
                continue;
            }
            r.lost += 1;
            match explaining_fault(h, b, a) {
                Some(step) => *per_fault.entry(step).or_default() += 1,
                None => unexplained.push(a),
            }
        }
    }
    r.worst_loss = per_fault
        .iter()
        .map(|(step, n)| (*n, *step))
        .max_by_key(|(n, _)| *n);
    if let Some(a) = unexplained.first() {
        r.violations.push(format!(
            "lost write: {:?} write {} acknowledged by {} at {} is not on the final master, and no fault on {} began between {} before and {} after it ({} such writes)",
            a.path,
            a.value,
            a.host,
            ms(a.acked_us),
            a.host,
            ms(b.loss_before_us),
            ms(b.loss_after_us),
            unexplained.len()
        ));
    }
}

/// The step of a fault on the acknowledging instance's host that began close enough to the
/// acknowledgement to excuse its loss.
fn explaining_fault(h: &History, b: &Bounds, a: &Ack) -> Option<usize> {
    h.faults
        .iter()
        .filter(|w| w.cuts_all || w.hosts.contains(&a.host))
        .filter(|w| {
            let after = if w.frozen_raftinel {
                b.residual_us.max(b.loss_after_us)
            } else {
                b.loss_after_us
            };
            a.acked_us + b.loss_before_us >= w.from_us && a.acked_us <= w.from_us + after
                || w.frozen_raftinel && w.from_us <= a.acked_us && a.acked_us <= w.to_us
        })
        .map(|w| w.step)
        .next()
}

fn vip(h: &History, r: &mut Report) {
    r.max_vip_holders = h.vip.iter().map(|s| s.holders.len()).max().unwrap_or(0);
    let two: Vec<_> = h.vip.iter().filter(|s| s.holders.len() > 1).collect();
    if let Some(s) = two.first() {
        r.violations.push(format!(
            "the VIP on {} hosts at once: {:?} at {} ({} such samples)",
            s.holders.len(),
            s.holders,
            ms(s.at_us),
            two.len()
        ));
    }
}

fn epochs(h: &History, r: &mut Report) {
    let mut samples = h.epochs.clone();
    samples.sort_by_key(|s| s.at_us);
    let mut seen: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for s in &samples {
        match seen.get(&s.node) {
            Some(&(epoch, at)) if s.epoch < epoch => {
                r.violations.push(format!(
                    "epoch went back on node {}: {} at {}, then {} at {}",
                    s.node,
                    epoch,
                    ms(at),
                    s.epoch,
                    ms(s.at_us)
                ));
                return;
            }
            Some(&(epoch, _)) if s.epoch == epoch => {}
            _ => {
                seen.insert(s.node, (s.epoch, s.at_us));
            }
        }
    }
}

/// Every two nodes agree on every entry both have committed and kept.
fn logs(h: &History, r: &mut Report) {
    for (i, a) in h.logs.iter().enumerate() {
        for b in &h.logs[i + 1..] {
            let from = a.purged.max(b.purged) + 1;
            let to = a.committed.min(b.committed);
            for index in from..=to {
                let (x, y) = (a.entries.get(&index), b.entries.get(&index));
                if x != y || x.is_none() {
                    let show = |e: Option<&(u64, Vec<u8>)>| {
                        e.map_or("nothing".to_owned(), |(t, _)| {
                            format!("an entry of term {t}")
                        })
                    };
                    r.violations.push(format!(
                        "committed entry {index} differs: node {} has {}, node {} has {}",
                        a.node,
                        show(x),
                        b.node,
                        show(y)
                    ));
                    return;
                }
            }
        }
    }
}

fn ending(h: &History, b: &Bounds, r: &mut Report) {
    let e = &h.ending;
    r.converge_us = e.one_writable_us.map(|t| t.saturating_sub(e.healed_us));
    match r.converge_us {
        None => r
            .violations
            .push("no single writable instance after the last heal".to_owned()),
        Some(t) if t > b.down_after_us + 2_000_000 => r.violations.push(format!(
            "one writable instance only {} after the last heal (bound: down-after + 2 s = {})",
            ms(t),
            ms(b.down_after_us + 2_000_000)
        )),
        Some(_) => {}
    }
    for line in &e.unconverged {
        r.violations.push(format!("not converged: {line}"));
    }
}

fn ms(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::super::history::*;
    use super::*;

    fn ack(path: Path, value: u64, host: &str, sent_ms: u64) -> Ack {
        Ack {
            path,
            value,
            host: host.to_owned(),
            sent_us: sent_ms * 1000,
            acked_us: sent_ms * 1000 + 2000,
        }
    }

    fn window(step: usize, host: &str, from_ms: u64, to_ms: u64, frozen: bool) -> Window {
        Window {
            step,
            kind: "partition",
            hosts: vec![host.to_owned()],
            cuts_all: false,
            frozen_raftinel: frozen,
            from_us: from_ms * 1000,
            to_us: to_ms * 1000,
        }
    }

    /// A clean run: n1 master, cut off at 10 s, n2 promoted at 12 s, writes on both in turn,
    /// everything kept, two identical logs, one VIP holder at a time.
    fn clean() -> History {
        let mut h = History {
            first_master: "n1".into(),
            ..History::default()
        };
        for i in 0..100 {
            h.acks.push(ack(Path::Vip, i, "n1", i * 100));
        }
        for i in 130..200 {
            h.acks.push(ack(Path::Vip, i, "n2", i * 100));
        }
        h.promotions.push(Promotion {
            at_us: 12_500_000,
            index: 40,
            epoch: 1,
            to: "n2".into(),
        });
        h.faults.push(window(0, "n1", 10_000, 15_000, false));
        for t in 0..2000 {
            let holder = if t < 1100 { "n1" } else { "n2" };
            h.vip.push(VipSample {
                at_us: t * 10_000,
                holders: vec![holder.into()],
            });
        }
        for node in 1..=3 {
            h.epochs.push(EpochSample {
                at_us: 1_000_000,
                node,
                epoch: 0,
            });
            h.epochs.push(EpochSample {
                at_us: 13_000_000,
                node,
                epoch: 1,
            });
        }
        let entries: BTreeMap<u64, (u64, Vec<u8>)> =
            (1..=50).map(|i| (i, (1 + i / 20, vec![i as u8]))).collect();
        for node in 1..=3 {
            h.logs.push(NodeLog {
                node,
                committed: 50,
                purged: 0,
                entries: entries.clone(),
            });
        }
        let kept: Vec<u64> = h.acks.iter().map(|a| a.value).collect();
        h.ending = Ending {
            healed_us: 15_000_000,
            one_writable_us: Some(15_400_000),
            master: Some("n2".into()),
            unconverged: Vec::new(),
            data: [(Path::Vip, kept)].into_iter().collect(),
        };
        h
    }

    /// Takes `values` out of the final master's copy of the VIP writer's list.
    fn lose(h: &mut History, values: &[u64]) {
        let kept = h.ending.data.entry(Path::Vip).or_default();
        kept.retain(|v| !values.contains(v));
    }

    fn violations(h: &History) -> Vec<String> {
        check(h, &Bounds::default()).violations
    }

    #[test]
    fn a_clean_history_passes() {
        let h = clean();
        let r = check(&h, &Bounds::default());
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.max_vip_holders, 1);
        assert_eq!(r.converge_us, Some(400_000));
    }

    #[test]
    fn a_late_acknowledgement_is_caught() {
        let mut h = clean();
        h.acks.push(ack(Path::Sentinel, 7, "n1", 12_600));
        h.ending.data.insert(Path::Sentinel, vec![7]);
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("late acknowledgement: n1"), "{v:?}");
    }

    #[test]
    fn the_new_masters_first_write_moves_the_promotion_earlier() {
        let mut h = clean();
        // The log announced n2 at 12.5 s, but n2 took a write at 12.0 s: n1's write sent at
        // 12.2 s came after that.
        h.acks.push(ack(Path::Sentinel, 1, "n2", 12_000));
        h.acks.push(ack(Path::Sentinel, 2, "n1", 12_200));
        h.ending.data.insert(Path::Sentinel, vec![1, 2]);
        let v = violations(&h);
        assert!(
            v.iter().any(|v| v.contains("late acknowledgement: n1")),
            "{v:?}"
        );
    }

    #[test]
    fn a_frozen_raftinel_excuses_acks_only_within_the_residual_bound() {
        let mut h = clean();
        h.faults.push(window(1, "n1", 9_000, 20_000, true));
        h.acks.push(ack(Path::Sentinel, 1, "n1", 13_000));
        h.ending.data.insert(Path::Sentinel, vec![1]);
        let r = check(&h, &Bounds::default());
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.residual_acks, 1);
        h.acks.push(ack(Path::Sentinel, 2, "n1", 18_000));
        h.ending.data.insert(Path::Sentinel, vec![1, 2]);
        assert!(violations(&h)[0].starts_with("late acknowledgement"));
    }

    #[test]
    fn a_write_lost_near_a_fault_on_its_master_is_within_the_bound() {
        let mut h = clean();
        // Acked at 9.5 s and 9.9 s by n1, cut off at 10 s: within the replication lag.
        lose(&mut h, &[95, 99]);
        let r = check(&h, &Bounds::default());
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.lost, 2);
        assert_eq!(r.worst_loss, Some((2, 0)));
    }

    #[test]
    fn a_lost_write_beyond_the_bound_is_caught() {
        let mut h = clean();
        // Acked at 5 s, long before any fault.
        lose(&mut h, &[50]);
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("lost write: Vip write 50"), "{v:?}");
    }

    #[test]
    fn a_lost_write_near_a_fault_on_another_host_is_caught() {
        let mut h = clean();
        h.faults[0].hosts = vec!["n3".into()];
        lose(&mut h, &[99]);
        assert!(violations(&h)[0].starts_with("lost write"));
    }

    #[test]
    fn a_write_lost_near_a_cut_of_another_host_is_within_the_bound() {
        let mut h = clean();
        // n3's partition cuts n1 off from that replica too.
        h.faults[0].hosts = vec!["n3".into()];
        h.faults[0].cuts_all = true;
        lose(&mut h, &[99]);
        assert!(violations(&h).is_empty());
    }

    #[test]
    fn two_vip_holders_in_one_sample_are_caught() {
        let mut h = clean();
        h.vip[1100].holders = vec!["n1".into(), "n2".into()];
        let r = check(&h, &Bounds::default());
        assert_eq!(r.max_vip_holders, 2);
        assert!(
            r.violations[0].starts_with("the VIP on 2 hosts"),
            "{:?}",
            r.violations
        );
    }

    #[test]
    fn an_epoch_going_back_is_caught() {
        let mut h = clean();
        h.epochs.push(EpochSample {
            at_us: 14_000_000,
            node: 2,
            epoch: 0,
        });
        let v = violations(&h);
        assert!(v[0].starts_with("epoch went back on node 2"), "{v:?}");
    }

    #[test]
    fn a_diverged_log_prefix_is_caught() {
        let mut h = clean();
        h.logs[2].entries.insert(30, (9, vec![0xff]));
        let v = violations(&h);
        assert!(v[0].starts_with("committed entry 30 differs"), "{v:?}");
    }

    #[test]
    fn a_committed_entry_missing_from_a_log_is_caught() {
        let mut h = clean();
        h.logs[1].entries.remove(&44);
        let v = violations(&h);
        assert!(v[0].contains("node 2 has nothing"), "{v:?}");
    }

    #[test]
    fn entries_past_a_nodes_commit_or_before_its_purge_may_differ() {
        let mut h = clean();
        h.logs[0].committed = 45;
        h.logs[0].entries.insert(48, (7, vec![1]));
        h.logs[1].purged = 10;
        h.logs[1].entries.retain(|i, _| *i > 10);
        h.logs[2].purged = 10;
        h.logs[2].entries.retain(|i, _| *i > 10);
        assert!(violations(&h).is_empty());
    }

    #[test]
    fn a_slow_or_missing_single_master_after_the_heal_is_caught() {
        let mut h = clean();
        h.ending.one_writable_us = Some(15_000_000 + 3_500_000);
        assert!(violations(&h)[0].starts_with("one writable instance only"));
        h.ending.one_writable_us = None;
        assert!(violations(&h)[0].starts_with("no single writable"));
        h.ending.one_writable_us = Some(15_100_000);
        h.ending.unconverged = vec!["node 3 says master n1".into()];
        assert!(violations(&h)[0].starts_with("not converged"));
    }
}
