//! `+sdown` / `-sdown`, `+reboot`, `±role-change` and `+tilt` / `-tilt` from this node's own
//! reports, as Sentinel publishes them per sentinel: each flip of an instance's SDOWN flag, each
//! change of its run id or of the role it reports, and each flip of the node's TILT becomes an
//! event on the bus (index `LOCAL`: not in the log).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{NodeReport, Observation, ReportedRole};
use crate::events::{EventBus, IndexedEvent, LOCAL};
use crate::raft::SmData;
use crate::topology::event::{instance_of, Event, Step};
use crate::topology::{Addr, MasterRecord, TopologyEvent};

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

/// Instances whose reported role changed between two reports, as (master name, instance, now
/// reports master). Before its first INFO an instance counts as having the role the log gives
/// it (`master_addr` per name), as Sentinel starts from its configured role.
pub fn role_changes(
    before: &NodeReport,
    after: &NodeReport,
    master_addr: impl Fn(&str) -> Option<Addr>,
) -> Vec<(String, Addr, bool)> {
    let reported = |o: &Observation| match &o.role {
        Some(ReportedRole::Master { .. }) => Some(true),
        Some(ReportedRole::Replica { .. }) => Some(false),
        None => None,
    };
    let was: BTreeMap<(&str, &Addr), Option<bool>> = before
        .masters
        .iter()
        .flat_map(|(name, obs)| {
            obs.iter()
                .map(move |o| ((name.as_str(), &o.addr), reported(o)))
        })
        .collect();
    let mut out = Vec::new();
    for (name, obs) in &after.masters {
        let Some(master) = master_addr(name) else {
            continue;
        };
        for o in obs {
            let Some(now) = reported(o) else { continue };
            let then = was
                .get(&(name.as_str(), &o.addr))
                .copied()
                .flatten()
                .unwrap_or(o.addr == master);
            if then != now {
                out.push((name.clone(), o.addr.clone(), now));
            }
        }
    }
    out
}

/// Sentinel's `+tilt "#tilt mode entered"` (on every trigger, as Sentinel publishes it even when
/// already tilted) / `-tilt "#tilt mode exited"` between two reports; no instance, so no script
/// runs for it.
pub fn tilt_flip(before: &NodeReport, after: &NodeReport) -> Option<TopologyEvent> {
    let triggered = after.tilt && (!before.tilt || after.tilt_since != before.tilt_since);
    let entered = if triggered {
        true
    } else if before.tilt && !after.tilt {
        false
    } else {
        return None;
    };
    Some(TopologyEvent::node(Event::Tilt { entered }))
}

/// What changed about one instance between two reports.
enum Change {
    Sdown(bool),
    Reboot,
    /// It now reports master (`true`) or replica.
    Role(bool),
}

impl Change {
    fn event(self, master: &MasterRecord, addr: &Addr) -> Event {
        let about = instance_of(master, addr);
        match self {
            Change::Sdown(down) => Event::Sdown { about, down },
            Change::Reboot => Event::Step {
                step: Step::Reboot,
                about,
            },
            // `+` when the new role is the one the log gives the instance, `-` when not.
            Change::Role(reports_master) => Event::RoleChange {
                about,
                reports_master,
                expected: reports_master == (*addr == master.addr),
            },
        }
    }
}

/// Publishes this node's TILT flips, SDOWN flips and reboots until `cancel` fires.
pub async fn publish_local_events(
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
        // First, as Sentinel checks TILT before any instance in its timer.
        if let Some(event) = tilt_flip(&last, &now) {
            bus.publish(IndexedEvent {
                index: LOCAL,
                event,
            });
        }
        let changes = flips(&last, &now)
            .into_iter()
            .map(|(name, addr, down)| (Change::Sdown(down), name, addr))
            .chain(
                reboots(&last, &now)
                    .into_iter()
                    .map(|(name, addr)| (Change::Reboot, name, addr)),
            );
        let master_addr = |name: &str| data.topology.master(name).map(|m| m.addr.clone());
        let roles = role_changes(&last, &now, master_addr)
            .into_iter()
            .map(|(name, addr, is_master)| (Change::Role(is_master), name, addr));
        for (change, name, addr) in changes.chain(roles) {
            let Some(master) = data.topology.master(&name) else {
                continue;
            };
            bus.publish(IndexedEvent {
                index: LOCAL,
                event: TopologyEvent::new(change.event(master, &addr), master),
            });
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_role_change_is_judged_against_the_last_report_or_the_log() {
        let master = Addr::new("127.0.0.1", 1);
        let replica = Addr::new("127.0.0.1", 2);
        let of = |m: bool| {
            Some(if m {
                ReportedRole::Master { replicas: vec![] }
            } else {
                ReportedRole::Replica {
                    master: master.clone(),
                    link_up: true,
                    link_down_ms: 0,
                    priority: 100,
                    offset: 0,
                    last_io_ms: None,
                }
            })
        };
        let with = |roles: &[(u16, Option<ReportedRole>)]| {
            let mut r = report(&roles.iter().map(|(p, _)| (*p, false)).collect::<Vec<_>>());
            for (o, (_, role)) in r.masters.values_mut().flatten().zip(roles) {
                o.role = role.clone();
            }
            r
        };
        let log = |_: &str| Some(master.clone());
        // First INFO as the log says: nothing; a replica that says master: a change.
        let none = with(&[(1, None), (2, None)]);
        assert!(role_changes(&none, &with(&[(1, of(true)), (2, of(false))]), log).is_empty());
        let promoted = with(&[(1, of(true)), (2, of(true))]);
        assert_eq!(
            role_changes(&none, &promoted, log),
            vec![("m".to_string(), replica.clone(), true)]
        );
        // From the last report, not the log: back to replica is a change again.
        let back = with(&[(1, of(true)), (2, of(false))]);
        assert_eq!(
            role_changes(&promoted, &back, log),
            vec![("m".to_string(), replica, false)]
        );
        assert!(role_changes(&back, &back, log).is_empty());
        // A name the log no longer has is skipped.
        assert!(role_changes(&none, &promoted, |_: &str| None).is_empty());
    }

    #[test]
    fn tilt_flips_are_events_without_an_instance() {
        let calm = report(&[(1, false)]);
        let tilted = NodeReport {
            tilt: true,
            ..calm.clone()
        };
        let on = tilt_flip(&calm, &tilted).unwrap();
        assert_eq!(on.text(), ("+tilt", "#tilt mode entered".to_owned()));
        assert_eq!(on.master, None);
        let off = tilt_flip(&tilted, &calm).unwrap();
        assert_eq!(off.text(), ("-tilt", "#tilt mode exited".to_owned()));
        assert!(tilt_flip(&calm, &calm).is_none());
        assert!(tilt_flip(&tilted, &tilted).is_none());
        let again = NodeReport {
            tilt_since: Some(tokio::time::Instant::now()),
            ..tilted.clone()
        };
        assert_eq!(
            tilt_flip(&tilted, &again).map(|e| e.channel()),
            Some("+tilt"),
            "a new trigger while tilted"
        );
    }

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
                role_age_ms: 0,
                reboot: false,
                link_up: true,
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
