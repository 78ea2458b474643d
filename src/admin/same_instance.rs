//! MONITOR of an instance another name already monitors under a different address (issue 11
//! §8): one Redis reached at two addresses would be failed over under one name while the other
//! still named it master. The address check lives in `apply`; this is the run-id check, made on
//! the leader before the commit, from the run ids the nodes' monitors report and the log records.
//! Best effort by nature: an instance that needs AUTH, or does not answer, has no run id yet.

use std::time::Duration;

use crate::failover::reports::Reports;
use crate::monitor::info;
use crate::redis::{Access, Connector};
use crate::topology::{Addr, TopologyState};

/// How long the leader waits for the new instance's INFO before letting the MONITOR through.
const PROBE_LIMIT: Duration = Duration::from_millis(500);

/// Another name's instance with this run id, as (name, address).
pub fn monitored_with_run_id<'a>(
    topology: &'a TopologyState,
    reports: impl IntoIterator<Item = &'a crate::monitor::NodeReport>,
    run_id: &str,
) -> Option<(String, Addr)> {
    if run_id.is_empty() {
        return None;
    }
    let in_log = topology.masters().find_map(|m| {
        m.replicas
            .iter()
            .find(|r| r.run_id == run_id)
            .map(|r| (m.name.clone(), r.addr.clone()))
    });
    in_log.or_else(|| {
        reports.into_iter().find_map(|report| {
            report.masters.iter().find_map(|(name, seen)| {
                seen.iter()
                    .find(|o| o.run_id == run_id)
                    .map(|o| (name.clone(), o.addr.clone()))
            })
        })
    })
}

/// The instance's run id, if it answers INFO without credentials within the limit (`tls`: this
/// node's `[masters.NAME] tls` for the new name).
pub async fn run_id_of(redis: &Connector, addr: &Addr, tls: bool) -> Option<String> {
    let access = Access {
        tls,
        ..Access::default()
    };
    let mut conn = redis.connect(addr, &access, PROBE_LIMIT).await.ok()?;
    let text = conn.info(&["server"], PROBE_LIMIT).await.ok()?;
    Some(info::run_id(&text).to_owned()).filter(|id| !id.is_empty())
}

/// The refusal, in the words of `apply`'s address check.
pub fn refusal(addr: &Addr, other: &(String, Addr), run_id: &str) -> String {
    format!(
        "ERR {addr} is already monitored as '{}' (the same instance as {}, run id {run_id})",
        other.0, other.1
    )
}

/// Every report the leader holds, for `monitored_with_run_id`.
pub fn reports_of(reports: &Reports) -> Vec<std::sync::Arc<crate::monitor::NodeReport>> {
    reports.snapshot().into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{NodeReport, Observation};
    use crate::topology::{MasterRecord, ReplicaRecord};

    #[test]
    fn finds_a_run_id_in_the_log_or_in_any_report() {
        let mut topology = TopologyState::default();
        let mut m = MasterRecord::new("a", Addr::new("10.0.0.1", 1), 2, 1000);
        m.replicas.push(ReplicaRecord {
            addr: Addr::new("10.0.0.1", 2),
            run_id: "r2".to_owned(),
            replid: String::new(),
        });
        topology.masters.insert("a".to_owned(), m.into());
        let mut report = NodeReport::default();
        report.masters.insert(
            "a".to_owned(),
            vec![
                Observation::answering(1, "r1"),
                Observation::answering(2, ""),
            ],
        );

        let hit = |id| monitored_with_run_id(&topology, [&report], id);
        assert_eq!(hit("r2"), Some(("a".to_owned(), Addr::new("10.0.0.1", 2))));
        assert_eq!(hit("r1"), Some(("a".to_owned(), Addr::new("10.0.0.1", 1))));
        assert_eq!(hit("r9"), None);
        // An instance not reported yet has an empty run id: it matches nothing.
        assert_eq!(hit(""), None);
        assert_eq!(
            monitored_with_run_id(&topology, std::iter::empty(), "r1"),
            None
        );
    }

    #[test]
    fn the_refusal_names_both_addresses() {
        let other = ("a".to_owned(), Addr::new("10.0.0.1", 1));
        assert_eq!(
            refusal(&Addr::new("10.0.0.2", 1), &other, "abc"),
            "ERR 10.0.0.2:1 is already monitored as 'a' (the same instance as 10.0.0.1:1, run id abc)"
        );
    }
}
