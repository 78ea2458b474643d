//! Lease grants and holders (DESIGN invariant 4): grant ids, revocation by failover, release.

use super::*;

// DESIGN Co-location: the holder is the node on the master's host; it cannot change under a
// failover, whose start already revoked the old holder (invariant 4).
#[test]
fn holder_assignment() {
    let mut log = Log::monitored();
    assert_eq!(log.mymaster().holder, Some(1));
    assert!(log.ok(&holder(None)).is_empty());
    assert_eq!(log.mymaster().holder, None);
    log.ok(&started(1, 6391, None));
    log.refused(&holder(Some(1)), Refusal::FailoverInProgress);
    log.refused(
        &Command::HolderAssigned {
            name: "nosuch".to_owned(),
            holder: None,
        },
        Refusal::NoSuchMaster,
    );
}

// DESIGN invariant 4: a FailoverStarted revokes the old holder's only grant even if it covers other
// masters, and re-grants the candidate's holder under the new index if it already had a grant.
#[test]
fn failover_revokes_shared_holder() {
    let mut log = Log::monitored();
    log.ok(&monitor("other", 7000, 2));
    log.ok(&Command::HolderAssigned {
        name: "other".to_owned(),
        holder: Some(1),
    });
    log.ok(&Command::LeaseGranted { holder: 2 });
    let old_candidate_grant = log.state.lease_of(2).map(|g| g.id);
    let index = log.index;
    log.ok(&started(1, 6391, Some(2)));
    assert_eq!(log.state.lease_of(1), None);
    assert_eq!(log.state.lease_of(2).map(|g| g.id), Some(index));
    assert!(!log.state.is_current_grant(old_candidate_grant.unwrap()));
    // The same host on both sides still loses the old id and gets a fresh one.
    let mut log = Log::monitored();
    let index = log.index;
    log.ok(&started(1, 6391, Some(1)));
    assert!(!log.state.is_current_grant(4));
    assert_eq!(
        log.state.lease_of(1),
        Some(&LeaseGrant {
            id: index,
            holder: 1
        })
    );
}

// DESIGN invariant 4: a grant's id is its log index, one current grant per holder, a new grant
// replaces the old one, and a release only ends the current grant.
#[test]
fn lease_grant_and_release() {
    let mut log = Log::new();
    assert_eq!(
        log.apply(&Command::LeaseGranted { holder: 7 }).result,
        Ok(Outcome::LeaseGranted { id: 1 })
    );
    assert_eq!(
        log.apply(&Command::LeaseGranted { holder: 8 }).result,
        Ok(Outcome::LeaseGranted { id: 2 })
    );
    assert!(log.state.is_current_grant(1) && log.state.is_current_grant(2));
    let applied = log.apply(&Command::LeaseGranted { holder: 7 });
    assert_eq!(
        (applied.result, applied.events.len()),
        (Ok(Outcome::LeaseGranted { id: 3 }), 0)
    );
    assert!(
        !log.state.is_current_grant(1),
        "a new grant revokes the holder's previous one"
    );
    assert_eq!(log.state.leases.len(), 2);

    log.refused(
        &Command::LeaseReleased { id: 1 },
        Refusal::NoSuchLease { id: 1 },
    );
    log.refused(
        &Command::LeaseReleased { id: 99 },
        Refusal::NoSuchLease { id: 99 },
    );
    assert_eq!(
        log.apply(&Command::LeaseReleased { id: 3 }).result,
        Ok(Outcome::Done)
    );
    assert_eq!(log.state.lease_of(7), None);
    assert!(log.state.is_current_grant(2));
    log.refused(
        &Command::LeaseReleased { id: 3 },
        Refusal::NoSuchLease { id: 3 },
    );
}

// Issue 5 §1: the log records which nodes cannot carry a master's VIP, and forgets it when told.
#[test]
fn vip_readiness_is_recorded_per_node() {
    let mut log = Log::monitored();
    let cannot = |problem: Option<&str>| Command::VipReadiness {
        name: "mymaster".to_owned(),
        node: 2,
        problem: problem.map(str::to_owned),
    };
    assert!(log
        .ok(&cannot(Some("raftinel lacks CAP_NET_ADMIN")))
        .is_empty());
    assert_eq!(
        log.mymaster().vip_problems.get(&2).map(String::as_str),
        Some("raftinel lacks CAP_NET_ADMIN")
    );
    log.ok(&cannot(None));
    assert!(log.mymaster().vip_problems.is_empty());
    log.refused(
        &Command::VipReadiness {
            name: "nosuch".to_owned(),
            node: 2,
            problem: None,
        },
        Refusal::NoSuchMaster,
    );
}
