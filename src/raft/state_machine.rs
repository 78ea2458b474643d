//! The state machine: raftinel's `TopologyState` kept in memory and persisted to sled after every
//! applied batch (what changed: `sm_layout`), its snapshots, and the stored events that Watch
//! resumes from.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, Membership, OptionalSend, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::codec::{decode, encode, versioned, CodecError, TYPED_EVENTS};
use super::crashpoint;
use super::install_gate::InstallGate;
use super::sm_layout::Persisted;
use super::types::typ::{Entry, LogId, SnapshotMeta, StorageError};
use super::types::{Member, Response, TypeConfig};
use crate::events::{EventBus, IndexedEvent};
use crate::topology::{ApplyContext, TopologyEvent, TopologyState};

const SNAPSHOT: &[u8] = b"snapshot";
const EVENTS_FROM: &[u8] = b"events_from";

/// How many log indexes of events are kept for Watch to resume from, behind the last snapshot.
const EVENT_RETENTION: u64 = 10_000;

/// Everything the state machine holds; also the snapshot format. Decode it only with
/// [`decode_data`], which reads older formats too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SmData {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<u64, super::types::Member>,
    pub topology: TopologyState,
    /// Every id ever removed from the membership (since format version 6): never added again,
    /// because the process behind it may have forgotten its votes (`raft::incarnation`).
    pub retired: BTreeSet<u64>,
}

impl SmData {
    pub fn applied_index(&self) -> u64 {
        self.last_applied.map(|l| l.index).unwrap_or(0)
    }

    /// Voters in the applied membership.
    pub fn voter_count(&self) -> usize {
        self.membership.membership().voter_ids().count()
    }

    /// The applied membership's voters.
    pub fn voter_ids(&self) -> std::collections::BTreeSet<u64> {
        self.membership.membership().voter_ids().collect()
    }
}

/// The stored or sent state in any readable format version.
pub fn decode_data(bytes: &[u8]) -> Result<SmData, CodecError> {
    match versioned(bytes)? {
        (3, body) => {
            let v3 = bincode::deserialize::<super::format_v3::SmDataV3>(body)?;
            let v4 = super::format_v4::SmDataV4::from(v3);
            Ok(super::format_v5::SmDataV5::from(v4).into())
        }
        (4, body) => {
            let v4 = bincode::deserialize::<super::format_v4::SmDataV4>(body)?;
            Ok(super::format_v5::SmDataV5::from(v4).into())
        }
        (5, body) => Ok(bincode::deserialize::<super::format_v5::SmDataV5>(body)?.into()),
        (6, body) => Ok(bincode::deserialize::<super::format_v6::SmDataV6>(body)?.into()),
        _ => decode(bytes),
    }
}

/// Read back with `format_v5::decode_snapshot`, which reads older versions too.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The ids a membership change drops: in `before`, voter or learner, and not in `after`.
pub fn removed_ids(before: &Membership<u64, Member>, after: &Membership<u64, Member>) -> Vec<u64> {
    before
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| after.get_node(id).is_none())
        .collect()
}

/// Reads the retained events, for Watch.
#[derive(Clone)]
pub struct EventLog {
    sm: sled::Tree,
    events: sled::Tree,
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("events before log index {first} are no longer retained")]
    Purged { first: u64 },
    #[error("reading stored events: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored event is corrupt: {0}")]
    Codec(#[from] CodecError),
}

fn event_key(index: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&index.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl EventLog {
    /// Every retained event with index >= `from`, in order, up to `until` inclusive.
    pub fn read(&self, from: u64, until: u64) -> Result<Vec<IndexedEvent>, EventLogError> {
        let first = match self.sm.get(EVENTS_FROM)? {
            Some(v) => decode::<u64>(&v)?,
            None => 1,
        };
        if from < first {
            return Err(EventLogError::Purged { first });
        }
        let mut out = Vec::new();
        for item in self
            .events
            .range(event_key(from, 0)..=event_key(until, u32::MAX))
        {
            let (k, v) = item?;
            let mut idx = [0u8; 8];
            idx.copy_from_slice(k.get(..8).unwrap_or(&[0u8; 8]));
            out.push(IndexedEvent {
                index: u64::from_be_bytes(idx),
                event: decode_event(&v)?,
            });
        }
        Ok(out)
    }
}

/// A stored event; one of an untyped version left behind is corruption, as they are dropped at
/// open.
fn decode_event(bytes: &[u8]) -> Result<TopologyEvent, CodecError> {
    match versioned(bytes)? {
        (v, _) if v < TYPED_EVENTS => Err(CodecError::Version { found: v }),
        _ => decode(bytes),
    }
}

/// Drops the events stored before events were typed (format 7) and moves the start of the
/// retained events past them, so Watch from before them gets OUT_OF_RANGE, as for events
/// dropped by age. They all come before any typed one (an upgrade happens once, at a restart).
fn drop_untyped_events(sm: &sled::Tree, events: &sled::Tree) -> Result<(), StorageError> {
    let mut batch = sled::Batch::default();
    let mut last = None;
    for item in events.iter() {
        let (k, v) = item.map_err(|e| StorageIOError::read_state_machine(&e))?;
        if v.first().is_some_and(|version| *version >= TYPED_EVENTS) {
            break;
        }
        let mut idx = [0u8; 8];
        idx.copy_from_slice(k.get(..8).unwrap_or(&[0u8; 8]));
        last = Some(u64::from_be_bytes(idx));
        batch.remove(k);
    }
    let Some(last) = last else {
        return Ok(());
    };
    tracing::info!(
        through = last,
        "dropping events stored before events were typed (format 7)"
    );
    events
        .apply_batch(batch)
        .map_err(|e| StorageIOError::write_state_machine(&e))?;
    let from = encode(&(last + 1)).map_err(|e| StorageIOError::write_state_machine(&e))?;
    sm.insert(EVENTS_FROM, from)
        .map_err(|e| StorageIOError::write_state_machine(&e))?;
    Ok(())
}

pub struct StateMachineStore {
    db: sled::Db,
    sm: sled::Tree,
    events: sled::Tree,
    data: SmData,
    /// What of `data` is on disk.
    persisted: Persisted,
    view: watch::Sender<Arc<SmData>>,
    bus: EventBus,
    snapshot_seq: Arc<AtomicU64>,
    install: InstallGate,
}

impl StateMachineStore {
    /// Opens the state machine trees and loads the persisted state; a value that does not decode
    /// is returned as an error (the node must not start on a corrupt store).
    pub fn open(db: &sled::Db, bus: EventBus) -> Result<Self, StorageError> {
        let sm = db
            .open_tree("sm")
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let events = db
            .open_tree("events")
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        drop_untyped_events(&sm, &events)?;
        let (data, persisted) =
            Persisted::load(&sm).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let data = data.unwrap_or_default();
        Ok(StateMachineStore {
            db: db.clone(),
            sm,
            events,
            view: watch::channel(Arc::new(data.clone())).0,
            data,
            persisted,
            bus,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            install: InstallGate::default(),
        })
    }

    /// The gate the log store's purge waits at (give it to `LogStore::open`).
    pub fn install_gate(&self) -> InstallGate {
        self.install.clone()
    }

    /// The applied state, updated after every persisted batch.
    pub fn view(&self) -> watch::Receiver<Arc<SmData>> {
        self.view.subscribe()
    }

    pub fn event_log(&self) -> EventLog {
        EventLog {
            sm: self.sm.clone(),
            events: self.events.clone(),
        }
    }

    fn persist(&mut self, events: &[IndexedEvent]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        let mut seq = 0u32;
        let mut last_index = 0;
        for e in events {
            if e.index != last_index {
                seq = 0;
                last_index = e.index;
            }
            let bytes = encode(&e.event).map_err(|e| StorageIOError::write_state_machine(&e))?;
            batch.insert(&event_key(e.index, seq), bytes);
            seq = seq.saturating_add(1);
        }
        self.events
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        // No fsync here: applying is on a follower's freshness path, and an fsync that queues
        // behind other writers holds it back by whole heartbeats. The next log flush of this same
        // db (every append, vote and purge) makes it durable, and a snapshot's own flush comes
        // before any purge; a tail lost in a crash is re-applied from the durable log at boot.
        self.persisted
            .write(&self.sm, &self.data, false)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(())
    }
}

pub struct SnapshotBuilder {
    install: InstallGate,
    db: sled::Db,
    sm: sled::Tree,
    events: sled::Tree,
    data: SmData,
    seq: Arc<AtomicU64>,
}

fn sig_err(e: &(impl std::error::Error + 'static)) -> StorageError {
    StorageIOError::write_snapshot(None, e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let blob = encode(&self.data).map_err(|e| sig_err(&e))?;
        let last = self.data.last_applied;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.data.membership.clone(),
            snapshot_id: format!("{}-{}", last.map(|l| l.to_string()).unwrap_or_default(), n),
        };
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data: blob.clone(),
        })
        .map_err(|e| sig_err(&e))?;
        self.sm.insert(SNAPSHOT, stored).map_err(|e| sig_err(&e))?;
        // Events far behind the snapshot are dropped; Watch from before them gets OUT_OF_RANGE.
        let applied = self.data.applied_index();
        if applied > EVENT_RETENTION {
            let first = applied - EVENT_RETENTION;
            let mut batch = sled::Batch::default();
            for item in self.events.range(..event_key(first, 0)) {
                let (k, _) = item.map_err(|e| sig_err(&e))?;
                batch.remove(k);
            }
            self.events.apply_batch(batch).map_err(|e| sig_err(&e))?;
            let from = encode(&first).map_err(|e| sig_err(&e))?;
            self.sm.insert(EVENTS_FROM, from).map_err(|e| sig_err(&e))?;
        }
        crashpoint::hit("snapshot:before-flush");
        self.db.flush_async().await.map_err(|e| sig_err(&e))?;
        self.install.durable(applied, false);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(blob)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, super::types::Member>), StorageError> {
        Ok((self.data.last_applied, self.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut events = Vec::new();
        for entry in entries {
            self.data.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(Response::default()),
                EntryPayload::Normal(cmd) => {
                    let voters = self.data.voter_ids();
                    let ctx = ApplyContext {
                        index: entry.log_id.index,
                        voters: &voters,
                    };
                    let applied = self.data.topology.apply(&cmd, ctx);
                    events.extend(applied.events.into_iter().map(|event| IndexedEvent {
                        index: entry.log_id.index,
                        event,
                    }));
                    responses.push(Response {
                        result: applied.result,
                    });
                }
                EntryPayload::Membership(m) => {
                    let removed = removed_ids(self.data.membership.membership(), &m);
                    self.data.retired.extend(removed);
                    self.data.membership = StoredMembership::new(Some(entry.log_id), m);
                    let voters = self.data.voter_ids();
                    let addrs = self
                        .data
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, n)| (*id, n.addr.clone()))
                        .collect();
                    // Leases are re-granted under the new voter set (topology::lease).
                    self.data
                        .topology
                        .membership_changed(&voters, addrs, entry.log_id.index);
                    responses.push(Response::default());
                }
            }
        }
        self.persist(&events)?;
        crashpoint::hit("apply:after-persist");
        self.view.send_replace(Arc::new(self.data.clone()));
        for e in events {
            self.bus.publish(e);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            install: self.install.clone(),
            db: self.db.clone(),
            sm: self.sm.clone(),
            events: self.events.clone(),
            data: self.data.clone(),
            seq: self.snapshot_seq.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        self.install.receiving();
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let blob = snapshot.into_inner();
        let sig = Some(meta.signature());
        let data =
            decode_data(&blob).map_err(|e| StorageIOError::read_snapshot(sig.clone(), &e))?;
        self.data = SmData {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            topology: data.topology,
            retired: data.retired,
        };
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data: blob,
        })
        .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.sm
            .insert(SNAPSHOT, stored)
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        // The events between our old state and the snapshot are unknown here: history restarts.
        self.events
            .clear()
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        let from = encode(&(self.data.applied_index() + 1))
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.sm
            .insert(EVENTS_FROM, from)
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.persist(&[])?;
        crashpoint::hit("install:before-flush");
        // Durable before the log's purge up to the snapshot may go on (see `install_gate`).
        self.db
            .flush_async()
            .await
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        crashpoint::hit("install:after-flush");
        self.install.durable(self.data.applied_index(), true);
        self.view.send_replace(Arc::new(self.data.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(raw) = self
            .sm
            .get(SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let (meta, data) = super::format_v5::decode_snapshot(&raw)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn membership(config: &[&[u64]], nodes: &[u64]) -> Membership<u64, Member> {
        let config = config.iter().map(|c| c.iter().copied().collect()).collect();
        let nodes: BTreeMap<u64, Member> =
            nodes.iter().map(|id| (*id, Member::default())).collect();
        Membership::new(config, nodes)
    }

    #[test]
    fn removal_retires_the_ids_a_change_drops() {
        let three = membership(&[&[1, 2, 3]], &[1, 2, 3]);
        // Removing voter 3 (openraft's two steps: joint, then the new config without node 3).
        let joint = membership(&[&[1, 2, 3], &[1, 2]], &[1, 2, 3]);
        let two = membership(&[&[1, 2]], &[1, 2]);
        assert!(removed_ids(&three, &joint).is_empty());
        assert_eq!(removed_ids(&joint, &two), vec![3]);
        // Adding a learner, then making it a voter, drops nobody.
        let learner = membership(&[&[1, 2]], &[1, 2, 4]);
        assert!(removed_ids(&two, &learner).is_empty());
        assert!(removed_ids(&learner, &membership(&[&[1, 2, 4]], &[1, 2, 4])).is_empty());
    }

    // Format 7: events stored untyped by an older version are dropped at open, and reading from
    // before them says they are no longer retained; the typed ones after them stay.
    #[test]
    fn untyped_events_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let events = db.open_tree("events").unwrap();
        events.insert(event_key(3, 0), vec![6u8, 1, 2, 3]).unwrap();
        events.insert(event_key(4, 0), vec![6u8, 4]).unwrap();
        let typed = TopologyEvent::node(crate::topology::event::Event::Tilt { entered: true });
        events
            .insert(event_key(5, 0), encode(&typed).unwrap())
            .unwrap();
        let store = StateMachineStore::open(&db, EventBus::default()).unwrap();
        let log = store.event_log();
        assert!(matches!(
            log.read(1, 10),
            Err(EventLogError::Purged { first: 5 })
        ));
        let kept = log.read(5, 10).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].index, &kept[0].event), (5, &typed));
        // Opening again finds nothing more to drop.
        drop(store);
        let again = StateMachineStore::open(&db, EventBus::default()).unwrap();
        assert_eq!(again.event_log().read(5, 10).unwrap().len(), 1);
    }
}
