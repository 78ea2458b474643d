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

fn set_of(ids: &[u64]) -> std::collections::BTreeSet<u64> {
    ids.iter().copied().collect()
}

/// Whether `yes` answers make a majority of `voters`.
fn majority(yes: usize, voters: &std::collections::BTreeSet<u64>) -> bool {
    yes * 2 > voters.len()
}

// Issue 11 §3: a grant is counted against the voter set of the entry that made it, and only its
// voters may promise on it.
#[test]
fn a_grant_keeps_the_voters_it_was_granted_under() {
    let mut log = Log::monitored();
    let grant = log.state.lease_of(1).map(|g| g.id).unwrap();
    assert_eq!(log.state.voters_of(grant), Some(&set_of(&[1, 2, 3])));
    assert!(log.state.may_promise(grant, 3));
    assert!(!log.state.may_promise(grant, 4));
    assert!(
        !log.state.may_promise(grant + 100, 1),
        "an unknown grant gets no promise"
    );
    // A failover's grant for the candidate's host is made under the same entry's voters.
    let index = log.index;
    log.ok(&started(1, 6391, Some(2)));
    assert_eq!(log.state.voters_of(index), Some(&set_of(&[1, 2, 3])));
    // The revoked grant keeps its voters while the failover still needs it dead.
    assert_eq!(log.state.voters_of(grant), Some(&set_of(&[1, 2, 3])));
}

// Issue 11 §3: a membership change re-grants every lease under the new set and keeps the old
// grant superseded; nodes that applied the change promise only on the new one.
#[test]
fn a_membership_change_regrants_and_supersedes() {
    let mut log = Log::monitored();
    log.membership(&[1, 2, 3, 4, 5]);
    let five = log.state.lease_of(1).map(|g| g.id).unwrap();
    let old = *log.state.superseded.keys().next().unwrap();
    assert_eq!(log.state.voters_of(five), Some(&set_of(&[1, 2, 3, 4, 5])));
    assert!(!log.state.is_current_grant(old));
    assert!(log.state.may_promise(five, 5));

    let at = log.index;
    log.membership(&[1, 2, 3]);
    let three = log.state.lease_of(1).map(|g| g.id).unwrap();
    assert_eq!(three, at);
    assert_eq!(log.state.voters_of(three), Some(&set_of(&[1, 2, 3])));
    assert!(
        !log.state.may_promise(three, 4),
        "a removed voter promises nothing new"
    );
    assert_eq!(
        log.state.superseded.get(&five),
        Some(&Superseded { holder: 1, at })
    );
    // The same set again changes nothing.
    log.membership(&[1, 2, 3]);
    assert_eq!(log.state.lease_of(1).map(|g| g.id), Some(three));
    assert_eq!(log.state.superseded.len(), 2);
}

// Issue 11 §3, the hole: nodes 4 and 5 removed but running never apply the change and keep
// promising on the old grant, so a holder cut off with them counts 3 of 5. The leader must then
// count the old grant dead against the same 5, which its side (1, 2) cannot reach.
#[test]
fn removed_but_running_voters_cannot_split_a_lease() {
    let mut log = Log::monitored();
    log.membership(&[1, 2, 3, 4, 5]);
    let before_removal = log.state.clone();
    let five = log.state.lease_of(1).map(|g| g.id).unwrap();
    log.membership(&[1, 2, 3]);
    // The holder (node 1) is cut off with 4 and 5, whose state is `before_removal`.
    let promisers = [1, 4, 5]
        .into_iter()
        .filter(|n| before_removal.may_promise(five, *n))
        .count();
    let grant_voters = before_removal.voters_of(five).unwrap();
    assert!(majority(promisers, grant_voters), "the holder still holds");
    // The leader (node 2 with node 3) starts a failover and revokes the current grant.
    log.ok(&started(1, 6391, Some(2)));
    let revoked = log.mymaster().failover.as_ref().unwrap().revoked.unwrap();
    let must_die = log.state.must_die(&revoked);
    let old = must_die
        .iter()
        .find(|g| g.id == five)
        .expect("superseded grant must die");
    assert_eq!(old.voters, set_of(&[1, 2, 3, 4, 5]));
    // Only 2 and 3 can say dead: not a majority of the grant's own voters. The removed voters
    // are still asked, at the addresses their last membership had.
    assert!(!majority(2, &old.voters));
    assert_eq!(log.state.voter_addr(4), Some("n4:1"));
    log.ok(&Command::LeaseSettled { id: five });
    assert_eq!(
        log.state.voter_addr(4),
        None,
        "no grant names node 4 any more"
    );
    // Counted against the leader's current membership, as before, it would have promoted.
    assert!(majority(2, &set_of(&[1, 2, 3])));
}

// Issue 11 §3: LeaseSettled drops a superseded grant (a failover stops waiting for it), refuses an
// id that is not superseded, and voter sets nothing refers to are dropped.
#[test]
fn settling_a_superseded_grant() {
    let mut log = Log::monitored();
    let first = log.state.lease_of(1).map(|g| g.id).unwrap();
    log.membership(&[1, 2, 3, 4]);
    let unsettled = log.state.unsettled().unwrap();
    assert_eq!(unsettled.id, first);
    assert_eq!(unsettled.voters, set_of(&[1, 2, 3]));
    log.ok(&Command::LeaseSettled { id: first });
    assert!(log.state.unsettled().is_none());
    assert_eq!(log.state.voters_of(first), None);
    log.refused(
        &Command::LeaseSettled { id: first },
        Refusal::NoSuchLease { id: first },
    );
    // With nothing superseded, a failover waits for its revoked grant only.
    log.ok(&started(1, 6391, Some(2)));
    let revoked = log.mymaster().failover.as_ref().unwrap().revoked.unwrap();
    let ids: Vec<u64> = log.state.must_die(&revoked).iter().map(|g| g.id).collect();
    assert_eq!(ids, [revoked.grant.id]);
}

/// Monitors `name` at `port` with a replica at `port + 1`, its master's host held by node 1.
fn on_host_1(log: &mut Log, name: &str, port: u16) {
    log.ok(&monitor(name, port, 2));
    log.ok(&Command::ReplicasDiscovered {
        name: name.to_owned(),
        replicas: vec![replica(port + 1)],
    });
    log.ok(&Command::HolderAssigned {
        name: name.to_owned(),
        holder: Some(1),
    });
}

// DESIGN invariant 4 when one host runs several masters and is lost: the first failover revokes
// the host's grant; the second finds nothing left to revoke but must still wait for that grant,
// or it promotes while the cut-off host may keep its old master writable.
#[test]
fn a_second_failover_from_the_same_host_waits_for_the_revoked_grant() {
    let mut log = Log::monitored();
    on_host_1(&mut log, "other", 7000);
    let first = log.index;
    log.ok(&started(1, 6391, Some(2)));
    let revoked = log.mymaster().failover.as_ref().unwrap().revoked;
    assert_eq!(revoked.map(|r| (r.grant.id, r.at)), Some((4, first)));
    log.ok(&started_of("other", 1, 7001, Some(2)));
    let other = |log: &Log| log.state.master("other").unwrap().failover.clone().unwrap();
    assert_eq!(other(&log).revoked, revoked);
    // The holder's release counts for both.
    log.ok(&Command::LeaseReleased { id: 4 });
    assert!(other(&log).revoked.unwrap().released);
    assert!(
        log.mymaster()
            .failover
            .as_ref()
            .unwrap()
            .revoked
            .unwrap()
            .released
    );
    // A released grant is not handed on: a third master's failover has nothing to wait for.
    on_host_1(&mut log, "third", 8000);
    log.ok(&started_of("third", 1, 8001, None));
    let third = log.state.master("third").unwrap().failover.clone().unwrap();
    assert_eq!(third.revoked, None);
}
