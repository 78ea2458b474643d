//! Format version 5 of everything that holds a `Member` (before `Member.incarnation`) and of the
//! topology state (before each lease grant kept its voter set): log entries with a membership
//! payload, the state machine's data and stored snapshots, read and upgraded with the incarnation
//! unknown (0, not checked) and each grant given the stored membership's voters, so that a node
//! keeps its log, state and snapshots across the upgrade. Versions 3 and 4 of the state are upgraded to this first (see
//! `format_v3`, `format_v4`). No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use openraft::{EntryPayload, Membership, StoredMembership};
use serde::{Deserialize, Serialize};

use super::codec::{decode, versioned, CodecError};
use super::format_v6::MasterRecordV6;
use super::state_machine::SmData;
use super::types::typ::{Entry, LogId, SnapshotMeta};
use super::types::Member;
use crate::topology::{Command, LeaseGrant, MasterRecord, TopologyState};

/// The first format version whose `Member` has an incarnation.
const INCARNATION: u8 = 6;

/// `Member` field for field, in order, without `incarnation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MemberV5 {
    pub(super) addr: String,
    pub(super) sentinel_addr: String,
}

impl fmt::Display for MemberV5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl From<MemberV5> for Member {
    /// Recorded before incarnations existed: unknown, so not checked (see the runbook's upgrade
    /// notes for recording it).
    fn from(m: MemberV5) -> Member {
        Member {
            addr: m.addr,
            sentinel_addr: m.sentinel_addr,
            incarnation: 0,
        }
    }
}

fn membership(m: Membership<u64, MemberV5>) -> Membership<u64, Member> {
    let nodes: BTreeMap<u64, Member> = m.nodes().map(|(id, n)| (*id, n.clone().into())).collect();
    Membership::new(m.get_joint_config().clone(), nodes)
}

fn stored(m: StoredMembership<u64, MemberV5>) -> StoredMembership<u64, Member> {
    StoredMembership::new(*m.log_id(), membership(m.membership().clone()))
}

#[derive(Serialize, Deserialize)]
pub(super) struct SmDataV5 {
    pub(super) last_applied: Option<LogId>,
    pub(super) membership: StoredMembership<u64, MemberV5>,
    pub(super) topology: TopologyStateV5,
}

/// `TopologyState` before `grant_voters`, `superseded` and `voter_addrs`.
#[derive(Serialize, Deserialize)]
pub(super) struct TopologyStateV5 {
    pub(super) masters: BTreeMap<String, MasterRecordV6>,
    pub(super) leases: BTreeMap<u64, LeaseGrant>,
}

impl From<SmDataV5> for SmData {
    /// Which ids were removed before the upgrade is not known: none are refused for it.
    fn from(v5: SmDataV5) -> SmData {
        let membership = stored(v5.membership);
        SmData {
            last_applied: v5.last_applied,
            topology: topology(v5.topology, membership.membership()),
            membership,
            retired: BTreeSet::new(),
        }
    }
}

/// A version-5 node counted every grant against the voters of its own applied membership, so
/// the grants get the voters of the membership stored with them: what this node counted them
/// against until now. Grants made from now on carry their own set (every membership change
/// re-grants).
fn topology(v5: TopologyStateV5, membership: &Membership<u64, Member>) -> TopologyState {
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let mut topology = TopologyState {
        masters: v5
            .masters
            .into_iter()
            .map(|(k, v)| (k, std::sync::Arc::new(MasterRecord::from(v))))
            .collect(),
        leases: v5.leases,
        grant_voters: BTreeMap::new(),
        superseded: BTreeMap::new(),
        voter_addrs: voters
            .iter()
            .filter_map(|id| membership.get_node(id).map(|n| (*id, n.addr.clone())))
            .collect(),
    };
    topology.grant_voters = topology
        .referenced_grants()
        .into_iter()
        .map(|id| (id, voters.clone()))
        .collect();
    topology
}

/// `openraft::Entry` in the shape version 5 wrote.
#[derive(Serialize, Deserialize)]
struct EntryV5 {
    log_id: LogId,
    payload: PayloadV5,
}

#[derive(Serialize, Deserialize)]
enum PayloadV5 {
    Blank,
    Normal(Command),
    Membership(Membership<u64, MemberV5>),
}

/// A stored log entry in any readable format version.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, CodecError> {
    match versioned(bytes)? {
        (v, body) if v < INCARNATION => {
            let old: EntryV5 = bincode::deserialize(body)?;
            let payload = match old.payload {
                PayloadV5::Blank => EntryPayload::Blank,
                PayloadV5::Normal(cmd) => EntryPayload::Normal(cmd),
                PayloadV5::Membership(m) => EntryPayload::Membership(membership(m)),
            };
            Ok(Entry {
                log_id: old.log_id,
                payload,
            })
        }
        _ => decode(bytes),
    }
}

/// `StoredSnapshot`'s metadata in the shape version 5 wrote.
#[derive(Serialize, Deserialize)]
struct SnapshotMetaV5 {
    last_log_id: Option<LogId>,
    last_membership: StoredMembership<u64, MemberV5>,
    snapshot_id: String,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshotV5 {
    meta: SnapshotMetaV5,
    data: Vec<u8>,
}

/// A stored snapshot (metadata and the state's bytes, which `decode_data` reads in any version)
/// in any readable format version.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), CodecError> {
    match versioned(bytes)? {
        (v, body) if v < INCARNATION => {
            let old: StoredSnapshotV5 = bincode::deserialize(body)?;
            let meta = SnapshotMeta {
                last_log_id: old.meta.last_log_id,
                last_membership: stored(old.meta.last_membership),
                snapshot_id: old.meta.snapshot_id,
            };
            Ok((meta, old.data))
        }
        _ => decode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::codec::encode;
    use crate::raft::state_machine::decode_data;
    use crate::topology::{Addr, MasterRecord};
    use openraft::{CommittedLeaderId, LogId as RaftLogId};

    fn log_id(index: u64) -> LogId {
        RaftLogId::new(CommittedLeaderId::new(3, 1), index)
    }

    fn v5_members() -> Membership<u64, MemberV5> {
        let nodes: BTreeMap<u64, MemberV5> = (1..=3)
            .map(|id| {
                let m = MemberV5 {
                    addr: format!("10.0.0.{id}:26380"),
                    sentinel_addr: format!("10.0.0.{id}:26379"),
                };
                (id, m)
            })
            .collect();
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
    }

    /// What a version-5 build wrote: the version byte, then bincode of the old shape.
    fn written_by_v5<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = vec![5u8];
        bincode::serialize_into(&mut out, value).unwrap();
        out
    }

    fn unknown_incarnations(m: &Membership<u64, Member>) {
        let got: Vec<(u64, String, u64)> = m
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone(), n.incarnation))
            .collect();
        assert_eq!(
            got,
            (1..=3)
                .map(|id| (id, format!("10.0.0.{id}:26380"), 0))
                .collect::<Vec<_>>()
        );
        assert_eq!(m.get_joint_config(), &vec![BTreeSet::from([1, 2, 3])]);
    }

    #[test]
    fn version_5_log_entries_decode_with_unknown_incarnations() {
        let membership = written_by_v5(&EntryV5 {
            log_id: log_id(1),
            payload: PayloadV5::Membership(v5_members()),
        });
        let entry = decode_entry(&membership).unwrap();
        assert_eq!(entry.log_id, log_id(1));
        match &entry.payload {
            EntryPayload::Membership(m) => unknown_incarnations(m),
            _ => panic!("not a membership entry"),
        }
        let cmd = Command::Pause { name: "m".into() };
        let normal = written_by_v5(&EntryV5 {
            log_id: log_id(2),
            payload: PayloadV5::Normal(cmd.clone()),
        });
        assert!(
            matches!(decode_entry(&normal).unwrap().payload, EntryPayload::Normal(c) if c == cmd)
        );
        let blank = written_by_v5(&EntryV5 {
            log_id: log_id(3),
            payload: PayloadV5::Blank,
        });
        assert!(matches!(
            decode_entry(&blank).unwrap().payload,
            EntryPayload::Blank
        ));

        // Written now: version 6, read back as is.
        let now = Entry {
            log_id: log_id(4),
            payload: EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([1])],
                BTreeMap::from([(
                    1,
                    Member {
                        incarnation: 42,
                        ..Member::default()
                    },
                )]),
            )),
        };
        let bytes = encode(&now).unwrap();
        assert_eq!(bytes[0], crate::raft::codec::FORMAT_VERSION);
        assert_eq!(decode_entry(&bytes).unwrap(), now);
    }

    /// A version-5 store (log, state, snapshot written in the old shape) opens and reads back
    /// through the log store and the state machine, incarnations unknown.
    #[tokio::test]
    async fn a_version_5_store_opens_upgraded() {
        use crate::raft::{LogStore, StateMachineStore};
        use openraft::storage::{RaftLogStorage, RaftStateMachine};
        use openraft::RaftLogReader;

        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let entry = written_by_v5(&EntryV5 {
            log_id: log_id(1),
            payload: PayloadV5::Membership(v5_members()),
        });
        db.open_tree("raft_logs")
            .unwrap()
            .insert(1u64.to_be_bytes(), entry)
            .unwrap();
        let stored_m = StoredMembership::new(Some(log_id(1)), v5_members());
        let state = written_by_v5(&SmDataV5 {
            last_applied: Some(log_id(1)),
            membership: stored_m.clone(),
            topology: TopologyStateV5 {
                masters: BTreeMap::new(),
                leases: BTreeMap::from([(1, LeaseGrant { id: 7, holder: 1 })]),
            },
        });
        let snapshot = written_by_v5(&StoredSnapshotV5 {
            meta: SnapshotMetaV5 {
                last_log_id: Some(log_id(1)),
                last_membership: stored_m,
                snapshot_id: "s".into(),
            },
            data: state.clone(),
        });
        let sm_tree = db.open_tree("sm").unwrap();
        sm_tree.insert(b"data", state).unwrap();
        sm_tree.insert(b"snapshot", snapshot).unwrap();

        let mut sm = StateMachineStore::open(&db, Default::default()).unwrap();
        let mut log = LogStore::open(&db, sm.install_gate()).unwrap();
        assert_eq!(
            log.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1))
        );
        match &log.try_get_log_entries(1..2).await.unwrap()[0].payload {
            EntryPayload::Membership(m) => unknown_incarnations(m),
            _ => panic!("not a membership entry"),
        }
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1)));
        unknown_incarnations(membership.membership());
        // The version-5 grant is counted against the stored membership's voters.
        let view = sm.view();
        let topology = &view.borrow().topology;
        assert_eq!(topology.voters_of(7), Some(&BTreeSet::from([1, 2, 3])));
        assert_eq!(topology.voter_addr(2), Some("10.0.0.2:26380"));
        let snap = sm.get_current_snapshot().await.unwrap().unwrap();
        unknown_incarnations(snap.meta.last_membership.membership());
    }

    #[test]
    fn version_5_state_and_snapshot_decode_with_unknown_incarnations() {
        let mut masters = BTreeMap::new();
        let m = MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 1000);
        masters.insert(m.name.clone(), m.clone());
        let stored_m = StoredMembership::new(Some(log_id(1)), v5_members());
        let state = written_by_v5(&SmDataV5 {
            last_applied: Some(log_id(9)),
            membership: stored_m.clone(),
            topology: TopologyStateV5 {
                masters: BTreeMap::from([(m.name.clone(), MasterRecordV6::from(&m))]),
                leases: BTreeMap::new(),
            },
        });
        let got = decode_data(&state).unwrap();
        assert_eq!(got.last_applied, Some(log_id(9)));
        assert_eq!(got.membership.log_id(), &Some(log_id(1)));
        unknown_incarnations(got.membership.membership());
        let got_masters: BTreeMap<_, _> = got
            .topology
            .masters
            .into_iter()
            .map(|(k, v)| (k, (*v).clone()))
            .collect();
        assert_eq!(got_masters, masters);
        assert!(got.topology.leases.is_empty() && got.topology.superseded.is_empty());
        assert!(got.retired.is_empty());

        let snapshot = written_by_v5(&StoredSnapshotV5 {
            meta: SnapshotMetaV5 {
                last_log_id: Some(log_id(9)),
                last_membership: stored_m,
                snapshot_id: "3-1-9-0".into(),
            },
            data: state.clone(),
        });
        let (meta, data) = decode_snapshot(&snapshot).unwrap();
        assert_eq!(meta.last_log_id, Some(log_id(9)));
        assert_eq!(meta.snapshot_id, "3-1-9-0");
        unknown_incarnations(meta.last_membership.membership());
        assert_eq!(data, state);
    }
}
