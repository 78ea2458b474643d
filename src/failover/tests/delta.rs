//! The delta protocol between a follower's `Outbox` and the leader's `apply`: beats when nothing
//! changed, only changed masters otherwise, a full set after any loss, gap or leader change, and
//! convergence whatever is lost or reordered.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::NAME;
use crate::failover::delta::{apply, Ack, Gap, Held, Outbox, Precision, ReportDelta};
use crate::monitor::{NodeReport, Observation, ReportedRole};

const QUIET: Precision = Precision {
    ping_ms: 100,
    hot: false,
};
const HOT: Precision = Precision {
    ping_ms: 100,
    hot: true,
};

fn obs(port: u16) -> Observation {
    Observation {
        role: Some(ReportedRole::Master { replicas: vec![] }),
        ..Observation::answering(port, &format!("run{port}"))
    }
}

fn report(names: &[&str]) -> NodeReport {
    let masters = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), vec![obs(7000 + i as u16)]))
        .collect();
    NodeReport {
        node_id: 2,
        masters,
        ..NodeReport::default()
    }
}

/// Sends `r` with `p` for every name; the leader applies it unless `lose`.
fn round(
    out: &mut Outbox,
    held: &mut Option<Held>,
    r: &NodeReport,
    p: Precision,
    lose: bool,
) -> ReportDelta {
    let delta = out.next(r, &r.local, |_| p);
    let ack = if lose {
        Ack::Lost
    } else {
        match apply(held, delta.clone()) {
            Ok(_) => Ack::Applied,
            Err(Gap) => Ack::NeedFull,
        }
    };
    out.settle(delta.clone(), ack);
    delta
}

fn held_masters(held: &Option<Held>) -> &BTreeMap<String, Vec<Observation>> {
    &held.as_ref().expect("the leader holds a report").2.masters
}

#[test]
fn the_first_delta_is_a_full_set_and_nothing_changed_is_a_beat() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let r = report(&[NAME, "b"]);
    let first = round(&mut out, &mut held, &r, QUIET, false);
    assert!(first.full && first.local.is_some());
    assert_eq!(held_masters(&held), &r.masters);
    let beat = round(&mut out, &mut held, &r, QUIET, false);
    assert!(beat.is_beat(), "{beat:?}");
}

#[test]
fn only_the_master_that_changed_is_sent() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let mut r = report(&[NAME, "b", "c"]);
    round(&mut out, &mut held, &r, QUIET, false);
    r.masters.get_mut("b").expect("b")[0].sdown = true;
    let d = round(&mut out, &mut held, &r, QUIET, false);
    assert_eq!(d.masters.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(held_masters(&held), &r.masters);
}

#[test]
fn ages_are_kept_within_one_ping_period() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let mut r = report(&[NAME]);
    round(&mut out, &mut held, &r, QUIET, false);
    r.masters.get_mut(NAME).expect("name")[0].reply_age_ms = 100;
    assert!(round(&mut out, &mut held, &r, QUIET, false).is_beat());
    r.masters.get_mut(NAME).expect("name")[0].reply_age_ms = 101;
    let d = round(&mut out, &mut held, &r, QUIET, false);
    assert_eq!(
        d.masters.len(),
        1,
        "an instance that stopped answering shows"
    );
}

#[test]
fn a_quiet_master_is_resent_for_its_shape_a_hot_one_for_its_offsets_too() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let mut r = report(&[NAME]);
    round(&mut out, &mut held, &r, QUIET, false);
    let o = &mut r.masters.get_mut(NAME).expect("name")[0];
    o.repl_offset += 1000;
    o.info_age_ms = Some(900);
    assert!(round(&mut out, &mut held, &r, QUIET, false).is_beat());
    assert_eq!(round(&mut out, &mut held, &r, HOT, false).masters.len(), 1);
    r.masters.get_mut(NAME).expect("name")[0].info_age_ms = Some(2001);
    assert_eq!(
        round(&mut out, &mut held, &r, QUIET, false).masters.len(),
        1,
        "an INFO that stopped coming shows even on a quiet master"
    );
}

#[test]
fn a_lost_delta_is_followed_by_a_full_set() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let mut r = report(&[NAME, "b"]);
    round(&mut out, &mut held, &r, QUIET, false);
    r.masters.get_mut("b").expect("b")[0].sdown = true;
    let lost = round(&mut out, &mut held, &r, QUIET, true);
    assert!(!lost.full);
    let next = round(&mut out, &mut held, &r, QUIET, false);
    assert!(next.full);
    assert_eq!(held_masters(&held), &r.masters);
}

#[test]
fn a_gap_or_another_session_is_refused_and_a_full_set_repairs_it() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let r = report(&[NAME]);
    round(&mut out, &mut held, &r, QUIET, false);
    let d1 = out.next(&r, &r.local, |_| QUIET);
    let d2 = out.next(&r, &r.local, |_| QUIET);
    assert_eq!(apply(&mut held, d2.clone()), Err(Gap), "seq skipped");
    out.settle(d2, Ack::NeedFull);
    assert_eq!(
        apply(&mut held, d1),
        Ok(Default::default()),
        "late, in order"
    );
    let stray = ReportDelta {
        node_id: 2,
        session: 9,
        seq: 3,
        ..ReportDelta::default()
    };
    assert_eq!(apply(&mut held, stray), Err(Gap), "another session");
    assert!(round(&mut out, &mut held, &r, QUIET, false).full);
}

#[test]
fn a_new_leader_gets_a_full_set() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let r = report(&[NAME]);
    round(&mut out, &mut held, &r, QUIET, false);
    let mut new_leader: Option<Held> = None;
    let beat = out.next(&r, &r.local, |_| QUIET);
    assert_eq!(apply(&mut new_leader, beat), Err(Gap), "holds nothing");
    out.reset();
    assert!(round(&mut out, &mut new_leader, &r, QUIET, false).full);
}

#[test]
fn removed_masters_and_tilt_reach_the_leader() {
    let (mut out, mut held) = (Outbox::new(7), None);
    let mut r = report(&[NAME, "b"]);
    round(&mut out, &mut held, &r, QUIET, false);
    r.masters.remove("b");
    r.tilt = true;
    let d = out.next(&r, &r.local, |_| QUIET);
    assert_eq!(d.removed, ["b"]);
    let changed = apply(&mut held, d.clone()).expect("applies");
    out.settle(d, Ack::Applied);
    assert!(
        changed.contains("b") && changed.contains(NAME),
        "{changed:?}"
    );
    let h = held.as_ref().expect("held");
    assert!(h.2.tilt && !h.2.masters.contains_key("b"));
}

/// Random changes, losses and leader changes: after every applied delta the leader holds what
/// the follower has, within the tolerance.
#[test]
fn converges_whatever_is_lost() {
    let mut rng = StdRng::seed_from_u64(42);
    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let (mut out, mut held) = (Outbox::new(1), None);
    let mut r = report(&[]);
    for step in 0..2_000 {
        let name = &names[rng.gen_range(0..names.len())];
        match rng.gen_range(0..5) {
            0 => {
                r.masters.remove(name);
            }
            1 => {
                let list = r
                    .masters
                    .entry(name.clone())
                    .or_insert_with(|| vec![obs(1)]);
                list[0].sdown = !list[0].sdown;
            }
            2 => {
                let list = r
                    .masters
                    .entry(name.clone())
                    .or_insert_with(|| vec![obs(1)]);
                list[0].reply_age_ms = rng.gen_range(0..500);
            }
            3 => {
                let list = r
                    .masters
                    .entry(name.clone())
                    .or_insert_with(|| vec![obs(1)]);
                list.push(Observation::answering(2, "r"));
            }
            _ => {}
        }
        if rng.gen_range(0..50) == 0 {
            held = None;
            out.reset();
        }
        let lose = rng.gen_range(0..10) == 0;
        let d = round(&mut out, &mut held, &r, QUIET, lose);
        if lose {
            continue;
        }
        let h = held_masters(&held);
        assert_eq!(
            h.keys().collect::<Vec<_>>(),
            r.masters.keys().collect::<Vec<_>>(),
            "step {step}: {d:?}"
        );
        for (n, list) in &r.masters {
            let got = &h[n];
            assert_eq!(got.len(), list.len(), "step {step}");
            for (a, b) in got.iter().zip(list) {
                assert_eq!((a.addr.clone(), a.sdown), (b.addr.clone(), b.sdown));
                assert!(a.reply_age_ms.abs_diff(b.reply_age_ms) <= QUIET.ping_ms);
            }
        }
    }
}
