//! Whether `ctl members add ID ADDR` may add the node that answers at ADDR under ID (issue 11
//! item 2): an id that was ever removed never comes back, and an id stands for one incarnation
//! (one data dir) for good. Pure: the caller asks the node and reads the membership.

/// What the node at the address said about itself (its `NodeInfo` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub node_id: u64,
    pub cluster_id: String,
    pub incarnation: u64,
}

/// What to do for an admissible request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Add it (learner, then voter); also the retry of an add that went through.
    Add { incarnation: u64 },
    /// A member recorded before incarnations existed: record its incarnation in place.
    Record { incarnation: u64 },
}

/// An id that was ever removed never comes back: checked before the node is asked anything.
pub fn not_retired(id: u64, retired: bool) -> Result<(), String> {
    if retired {
        return Err(format!(
            "node id {id} was removed from this cluster and cannot be added again (the process \
             behind it may have forgotten its votes); start the node with a new id and an empty \
             data dir, and add that id"
        ));
    }
    Ok(())
}

/// The rule for the node's answer. `recorded`: the incarnation the membership records for `id`
/// (`None`: not a member).
pub fn admit(
    id: u64,
    addr: &str,
    ours: &str,
    recorded: Option<u64>,
    answer: &Answer,
) -> Result<Admit, String> {
    if answer.node_id != id {
        return Err(format!(
            "the node at {addr} says it is node {}, not node {id}",
            answer.node_id
        ));
    }
    if !answer.cluster_id.is_empty() && answer.cluster_id != ours {
        return Err(format!(
            "the node at {addr} belongs to cluster {}, not this cluster ({ours}); wipe its data \
             dir to add it here",
            answer.cluster_id
        ));
    }
    let incarnation = answer.incarnation;
    if incarnation == 0 {
        return Err(format!(
            "the node at {addr} did not say its incarnation (a build before format version 6?); \
             upgrade it first"
        ));
    }
    match recorded {
        None => Ok(Admit::Add { incarnation }),
        Some(r) if r == incarnation => Ok(Admit::Add { incarnation }),
        Some(0) if answer.cluster_id == ours => Ok(Admit::Record { incarnation }),
        Some(0) => Err(format!(
            "node {id} is a member recorded before incarnations, and the node at {addr} has not \
             joined this cluster: its data dir was wiped or replaced; remove node {id} and add \
             this node under a new id"
        )),
        Some(r) => Err(format!(
            "node {id} is already a member as incarnation {}, and the node at {addr} is \
             incarnation {}: its data dir was wiped or replaced; remove node {id} and add this \
             node under a new id with an empty data dir",
            crate::raft::incarnation::show(r),
            crate::raft::incarnation::show(incarnation)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "10.0.0.4:26380";

    fn answer(node_id: u64, cluster_id: &str, incarnation: u64) -> Answer {
        Answer {
            node_id,
            cluster_id: cluster_id.into(),
            incarnation,
        }
    }

    #[test]
    fn a_new_node_is_added_with_its_incarnation() {
        let a = answer(4, "", 44);
        assert_eq!(
            admit(4, ADDR, "c", None, &a),
            Ok(Admit::Add { incarnation: 44 })
        );
        // A retry, after the first add went through and the node adopted the cluster.
        let a = answer(4, "c", 44);
        assert_eq!(
            admit(4, ADDR, "c", Some(44), &a),
            Ok(Admit::Add { incarnation: 44 })
        );
    }

    #[test]
    fn a_removed_id_never_comes_back() {
        assert_eq!(not_retired(3, false), Ok(()));
        let e = not_retired(3, true).unwrap_err();
        assert!(
            e.contains("node id 3 was removed") && e.contains("new id"),
            "{e}"
        );
    }

    #[test]
    fn a_wiped_member_is_not_readmitted_under_its_id() {
        let e = admit(3, ADDR, "c", Some(30), &answer(3, "", 31)).unwrap_err();
        assert!(e.contains("wiped") && e.contains("remove node 3"), "{e}");
        // Recorded before incarnations: only the member that is in this cluster records one.
        assert_eq!(
            admit(3, ADDR, "c", Some(0), &answer(3, "c", 31)),
            Ok(Admit::Record { incarnation: 31 })
        );
        assert!(admit(3, ADDR, "c", Some(0), &answer(3, "", 31)).is_err());
    }

    #[test]
    fn the_wrong_node_or_cluster_or_an_old_build_is_refused() {
        assert!(admit(4, ADDR, "c", None, &answer(5, "", 44))
            .unwrap_err()
            .contains("says it is node 5"));
        assert!(admit(4, ADDR, "c", None, &answer(4, "other", 44))
            .unwrap_err()
            .contains("belongs to cluster other"));
        assert!(admit(4, ADDR, "c", None, &answer(4, "", 0))
            .unwrap_err()
            .contains("upgrade it first"));
    }
}
