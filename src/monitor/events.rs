//! `+sdown` / `-sdown` and `+reboot` from this node's own reports, as Sentinel publishes them per
//! sentinel: each flip of an instance's SDOWN flag, and each change of its run id, becomes an
//! event on the bus (index `LOCAL`: not in the log).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::NodeReport;
use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::raft::SmData;
use crate::topology::event::{master_prefix, replica_prefix};
use crate::topology::{Addr, TopologyEvent};

/// The SDOWN flips between two reports, as (master name, instance, now down).
pub fn flips(before: &NodeReport, after: &NodeReport) -> Vec<(String, Addr, bool)> {
    let was: BTreeMap<(&str, &Addr), bool> = before
        .masters
        .iter()
        .flat_map(|(name, obs)| obs.iter().map(move |o| ((name.as_str(), &o.addr), o.sdown)))
        .collect();
    let mut out = Vec::new();
    for (name, obs) in &after.masters {
        for o in obs {
            let before = was.get(&(name.as_str(), &o.addr)).copied().unwrap_or(false);
            if before != o.sdown {
                out.push((name.clone(), o.addr.clone(), o.sdown));
            }
        }
    }
    out
}

/// Instances whose run id changed between two reports (a restart), as (master name, instance).
pub fn reboots(before: &NodeReport, after: &NodeReport) -> Vec<(String, Addr)> {
    let was: BTreeMap<(&str, &Addr), &str> = before
        .masters
        .iter()
        .flat_map(|(name, obs)| {
            obs.iter()
                .map(move |o| ((name.as_str(), &o.addr), o.run_id.as_str()))
        })
        .collect();
    let mut out = Vec::new();
    for (name, obs) in &after.masters {
        for o in obs {
            match was.get(&(name.as_str(), &o.addr)) {
                Some(old) if !old.is_empty() && !o.run_id.is_empty() && *old != o.run_id => {
                    out.push((name.clone(), o.addr.clone()))
                }
                _ => {}
            }
        }
    }
    out
}

/// Publishes this node's SDOWN flips and reboots until `cancel` fires.
pub async fn publish_sdown(
    mut reports: watch::Receiver<Arc<NodeReport>>,
    view: watch::Receiver<Arc<SmData>>,
    bus: EventBus,
    cancel: CancellationToken,
) {
    let mut last = reports.borrow().clone();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = reports.changed() => if r.is_err() { return },
        }
        let now = reports.borrow().clone();
        let data = view.borrow().clone();
        let changes = flips(&last, &now)
            .into_iter()
            .map(|(name, addr, down)| (if down { "+sdown" } else { "-sdown" }, name, addr))
            .chain(
                reboots(&last, &now)
                    .into_iter()
                    .map(|(name, addr)| ("+reboot", name, addr)),
            );
        for (kind, name, addr) in changes {
            let Some(master) = data.topology.master(&name) else {
                continue;
            };
            let prefix = if addr == master.addr {
                master_prefix(&name, &addr)
            } else {
                replica_prefix(&addr, &name, &master.addr)
            };
            bus.publish(IndexedEvent {
                index: LOCAL,
                event: TopologyEvent::new(kind, prefix, master),
            });
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Observation;

    #[test]
    fn a_new_run_id_is_a_reboot() {
        // Sentinel's +reboot: the instance answers with another run id than before.
        let mut a = report(&[(1, false)]);
        let mut b = a.clone();
        for (r, id) in [(&mut a, "aaa"), (&mut b, "bbb")] {
            for o in r.masters.values_mut().flatten() {
                o.run_id = id.to_string();
            }
        }
        assert_eq!(
            reboots(&a, &b),
            vec![("m".to_string(), Addr::new("127.0.0.1", 1))]
        );
        assert!(reboots(&a, &a).is_empty());
        // Learning the run id for the first time is not a reboot.
        assert!(reboots(&report(&[(1, false)]), &a).is_empty());
    }

    fn report(down: &[(u16, bool)]) -> NodeReport {
        let obs = down
            .iter()
            .map(|(port, sdown)| Observation {
                addr: Addr::new("127.0.0.1", *port),
                sdown: *sdown,
                reply_age_ms: 0,
                info_age_ms: None,
                role: None,
                run_id: String::new(),
                replid: String::new(),
                repl_offset: 0,
                replid2: String::new(),
                second_repl_offset: None,
            })
            .collect();
        NodeReport {
            node_id: 1,
            tilt: false,
            masters: [("m".to_string(), obs)].into_iter().collect(),
            ..NodeReport::default()
        }
    }

    #[test]
    fn only_flips_are_events() {
        // Sentinel publishes +sdown when an instance goes down and -sdown when it comes back, once.
        let a = report(&[(1, false), (2, false)]);
        let b = report(&[(1, true), (2, false)]);
        assert_eq!(
            flips(&a, &b),
            vec![("m".to_string(), Addr::new("127.0.0.1", 1), true)]
        );
        assert!(flips(&b, &b).is_empty());
        assert_eq!(
            flips(&b, &a),
            vec![("m".to_string(), Addr::new("127.0.0.1", 1), false)]
        );
        // A new instance that starts up is not an event; one that starts down is.
        let c = report(&[(1, false), (2, false), (3, true)]);
        assert_eq!(
            flips(&a, &c),
            vec![("m".to_string(), Addr::new("127.0.0.1", 3), true)]
        );
    }
}
