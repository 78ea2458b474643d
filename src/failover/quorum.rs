//! The quorum ODOWN uses against the current voters, and which membership changes a master's
//! configured quorum allows (issue 11 item 4). Pure: the admin path and the readers bring the
//! voters and the masters.
//!
//! The rule: the effective quorum is the configured one clamped to [majority, voters] of the
//! current voters, so ODOWN is never agreed by fewer than a majority and never needs more nodes
//! than exist. A membership change that would push a configured quorum above the voters is
//! refused (the operator lowers it first, so automatic failover never silently stops needing
//! nodes that are gone); a change that only leaves it below the new majority is allowed, and the
//! clamp raises it (stricter, never off), which CKQUORUM and `ctl master` report.

use std::collections::BTreeSet;

/// A majority of `voters` (at least 1: a membership always has a voter).
pub fn majority(voters: usize) -> usize {
    voters.max(1) / 2 + 1
}

/// The quorum ODOWN uses: `configured` clamped to [majority of `voters`, `voters`].
pub fn effective_quorum(configured: u32, voters: usize) -> u32 {
    let voters = voters.max(1);
    let wanted = usize::try_from(configured).unwrap_or(usize::MAX);
    let clamped = wanted.clamp(majority(voters), voters);
    u32::try_from(clamped).unwrap_or(u32::MAX)
}

/// `quorum N`, plus `(effective E with V voters)` when the clamp changes it: what CKQUORUM and
/// `ctl master` print.
pub fn describe(configured: u32, voters: usize) -> String {
    let effective = effective_quorum(configured, voters);
    if effective == configured {
        format!("quorum {configured}")
    } else {
        format!("quorum {configured} (effective {effective} with {voters} voters)")
    }
}

/// Checks a change of the voters from `before` to `after` against every master's configured
/// quorum (`masters` yields name and quorum). Refused, with the masters named and the fix, when a
/// quorum would exceed the voters left and a value valid both now and after exists (one voter at
/// a time always has one, except 2 → 1, which the clamp then covers).
pub fn check_membership<'a>(
    masters: impl IntoIterator<Item = (&'a str, u32)>,
    before: &BTreeSet<u64>,
    after: &BTreeSet<u64>,
) -> Result<(), String> {
    let left = after.len();
    // The highest quorum SET accepts now that also fits after the change.
    let fix = before.len().min(left);
    if fix < majority(before.len()).max(majority(left)) {
        return Ok(());
    }
    let over: Vec<(&str, u32)> = masters
        .into_iter()
        .filter(|(_, q)| usize::try_from(*q).map_or(true, |q| q > left))
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = over
        .iter()
        .map(|(name, q)| format!("'{name}' has quorum {q}"))
        .collect();
    let commands: Vec<String> = over
        .iter()
        .map(|(name, _)| format!("`raftinel ctl set {name} quorum {fix}`"))
        .collect();
    let (noun, it) = if over.len() == 1 {
        ("master", "it")
    } else {
        ("masters", "them")
    };
    Err(format!(
        "{} leaves {left} voters; {noun} {} > {left} voters: lower {it} first with {}",
        change(before, after),
        names.join(", "),
        commands.join(", ")
    ))
}

/// "removing node 5" / "adding node 6" / both, from the difference of two voter sets.
fn change(before: &BTreeSet<u64>, after: &BTreeSet<u64>) -> String {
    let list = |ids: Vec<&u64>| {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let noun = if ids.len() == 1 { "node" } else { "nodes" };
        format!("{noun} {}", ids.join(", "))
    };
    let removed: Vec<&u64> = before.difference(after).collect();
    let added: Vec<&u64> = after.difference(before).collect();
    match (removed.is_empty(), added.is_empty()) {
        (false, true) => format!("removing {}", list(removed)),
        (true, false) => format!("adding {}", list(added)),
        (false, false) => format!("removing {} and adding {}", list(removed), list(added)),
        (true, true) => "the change".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clamp over every voter count a cluster plausibly has and every quorum around it.
    #[test]
    fn effective_quorum_is_clamped_to_majority_and_voters() {
        // (voters, configured, effective)
        let cases: &[(usize, u32, u32)] = &[
            (1, 0, 1),
            (1, 1, 1),
            (1, 3, 1),
            (2, 1, 2),
            (2, 2, 2),
            (2, 3, 2),
            (3, 0, 2),
            (3, 1, 2),
            (3, 2, 2),
            (3, 3, 3),
            (3, 4, 3),
            (3, 5, 3),
            (4, 2, 3),
            (4, 3, 3),
            (4, 4, 4),
            (4, 5, 4),
            (5, 1, 3),
            (5, 2, 3),
            (5, 3, 3),
            (5, 4, 4),
            (5, 5, 5),
            (5, u32::MAX, 5),
            (7, 3, 4),
            (7, 6, 6),
            (0, 2, 1), // no voters is a bug upstream: treated as one
        ];
        for (voters, configured, effective) in cases {
            assert_eq!(
                effective_quorum(*configured, *voters),
                *effective,
                "{configured} with {voters} voters"
            );
        }
    }

    /// Exhaustively: the effective quorum is always a majority and never above the voters, and it
    /// is the configured one whenever that is already in range (what SET accepts).
    #[test]
    fn effective_quorum_invariants() {
        for voters in 1..=9usize {
            for configured in 0..=12u32 {
                let e = usize::try_from(effective_quorum(configured, voters)).unwrap();
                assert!(
                    e >= majority(voters) && e <= voters,
                    "{configured}/{voters}"
                );
                let c = usize::try_from(configured).unwrap();
                let in_range = crate::topology::check_quorum(configured, voters).is_ok();
                assert_eq!(in_range, c == e, "{configured}/{voters}");
            }
        }
    }

    #[test]
    fn describe_names_the_effective_value_only_when_it_differs() {
        assert_eq!(describe(2, 3), "quorum 2");
        assert_eq!(describe(2, 5), "quorum 2 (effective 3 with 5 voters)");
        assert_eq!(describe(5, 3), "quorum 5 (effective 3 with 3 voters)");
    }

    fn ids(n: u64) -> BTreeSet<u64> {
        (1..=n).collect()
    }

    /// Voters before/after × configured quorum: refused exactly when the quorum exceeds the
    /// voters left and a fix exists; growing is never refused (the clamp raises the quorum).
    #[test]
    fn membership_table() {
        // (before, after, quorum, refused)
        let cases: &[(u64, u64, u32, bool)] = &[
            (5, 4, 3, false),
            (5, 4, 4, false),
            (5, 4, 5, true),
            (4, 3, 2, false),
            (4, 3, 3, false),
            (4, 3, 4, true),
            (3, 2, 2, false),
            (3, 2, 3, true),
            (2, 1, 2, false), // no quorum fits both 2 and 1 voters: the clamp makes it 1
            (2, 1, 1, false),
            (3, 4, 2, false), // below the new majority: allowed, clamped up to 3
            (3, 4, 3, false),
            (3, 5, 2, false),
            (4, 5, 3, false),
            (1, 2, 1, false),
            (5, 3, 4, true),
            (5, 3, 3, false),
            (5, 3, 5, true),
            (5, 5, 5, false),
        ];
        for (before, after, quorum, refused) in cases {
            let got = check_membership([("m", *quorum)], &ids(*before), &ids(*after));
            assert_eq!(
                got.is_err(),
                *refused,
                "{before} → {after} with quorum {quorum}: {got:?}"
            );
            if let Err(msg) = got {
                let fix = (*before).min(*after);
                assert!(
                    msg.contains(&format!("raftinel ctl set m quorum {fix}")),
                    "{msg}"
                );
                let left = usize::try_from(*after).unwrap();
                let fixed = u32::try_from(fix).unwrap();
                assert!(
                    crate::topology::check_quorum(fixed, usize::try_from(*before).unwrap()).is_ok()
                );
                assert!(crate::topology::check_quorum(fixed, left).is_ok());
            }
        }
    }

    #[test]
    fn refusal_names_every_master_over_and_the_fix() {
        let masters = [("a", 5), ("b", 3), ("c", 5)];
        let before = ids(5);
        let after = BTreeSet::from([1, 2, 3, 4]);
        assert_eq!(
            check_membership(masters, &before, &after).unwrap_err(),
            "removing node 5 leaves 4 voters; masters 'a' has quorum 5, 'c' has quorum 5 > 4 \
             voters: lower them first with `raftinel ctl set a quorum 4`, \
             `raftinel ctl set c quorum 4`"
        );
        assert_eq!(
            check_membership([("m", 4)], &ids(4), &BTreeSet::from([1, 2, 4])).unwrap_err(),
            "removing node 3 leaves 3 voters; master 'm' has quorum 4 > 3 voters: lower it \
             first with `raftinel ctl set m quorum 3`"
        );
        assert_eq!(check_membership([], &before, &after), Ok(()));
    }
}
