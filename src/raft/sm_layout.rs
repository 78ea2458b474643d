//! How the applied state lies in sled: a small header (everything but the masters) and one key per
//! monitored master, so that an applied entry writes what it changed and not the whole fleet.
//!
//! Earlier releases stored the whole state as one value under `data`; a store that still has it
//! is rewritten in this layout, in one atomic batch, when it is opened.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::codec::{decode, encode, CodecError};
use super::state_machine::{decode_data, SmData};
use crate::topology::{MasterRecord, TopologyState};

/// The whole state of earlier releases (any format version `decode_data` reads).
const LEGACY: &[u8] = b"data";
/// The state without its masters.
const HEAD: &[u8] = b"head";
/// Followed by the master's name.
const MASTER: &[u8] = b"m/";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("state machine store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state machine store is corrupt: {0}")]
    Codec(#[from] CodecError),
    #[error("state machine store is corrupt: a master key that is not UTF-8")]
    BadName,
}

fn master_key(name: &str) -> Vec<u8> {
    [MASTER, name.as_bytes()].concat()
}

/// What is on disk, as far as this process wrote it: a record is rewritten when the state holds
/// another `Arc` for its name (an applied entry copies only the records it changes).
#[derive(Debug, Default)]
pub struct Persisted {
    masters: BTreeMap<String, Arc<MasterRecord>>,
}

/// The names whose records must be written, and those whose keys must go.
pub fn diff<'a>(
    on_disk: &BTreeMap<String, Arc<MasterRecord>>,
    now: &'a BTreeMap<String, Arc<MasterRecord>>,
) -> (Vec<&'a str>, Vec<String>) {
    let write = now
        .iter()
        .filter(|(name, rec)| {
            on_disk
                .get(*name)
                .map_or(true, |old| !Arc::ptr_eq(old, rec))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let remove = on_disk
        .keys()
        .filter(|name| !now.contains_key(*name))
        .cloned()
        .collect();
    (write, remove)
}

impl Persisted {
    /// Reads the state, migrating a store of an earlier release first; `None` for an empty store.
    pub fn load(sm: &sled::Tree) -> Result<(Option<SmData>, Persisted), LayoutError> {
        if let Some(head) = sm.get(HEAD)? {
            let mut data = decode_data(&head)?;
            for item in sm.scan_prefix(MASTER) {
                let (key, value) = item?;
                let name = std::str::from_utf8(&key[MASTER.len()..])
                    .map_err(|_| LayoutError::BadName)?
                    .to_owned();
                let rec: MasterRecord = decode(&value)?;
                data.topology.masters.insert(name, Arc::new(rec));
            }
            let persisted = Persisted {
                masters: data.topology.masters.clone(),
            };
            return Ok((Some(data), persisted));
        }
        let Some(legacy) = sm.get(LEGACY)? else {
            return Ok((None, Persisted::default()));
        };
        let data = decode_data(&legacy)?;
        let mut persisted = Persisted::default();
        persisted.write(sm, &data, true)?;
        sm.flush()?;
        tracing::info!(
            masters = data.topology.masters.len(),
            "state machine store rewritten with one key per master"
        );
        Ok((Some(data), persisted))
    }

    /// Writes the header and every record that changed since the last write, in one atomic
    /// batch (no fsync: see `StateMachineStore::persist`). `drop_legacy` removes the old value.
    pub fn write(
        &mut self,
        sm: &sled::Tree,
        data: &SmData,
        drop_legacy: bool,
    ) -> Result<(), LayoutError> {
        let mut batch = sled::Batch::default();
        let (write, remove) = diff(&self.masters, &data.topology.masters);
        for name in write {
            if let Some(rec) = data.topology.masters.get(name) {
                batch.insert(master_key(name), encode(&**rec)?);
            }
        }
        for name in &remove {
            batch.remove(master_key(name));
        }
        batch.insert(HEAD, encode_head(data)?);
        if drop_legacy {
            batch.remove(LEGACY);
        }
        sm.apply_batch(batch)?;
        self.masters = data.topology.masters.clone();
        Ok(())
    }
}

/// The state without its masters (a struct literal, so a new field cannot be left out silently).
fn encode_head(data: &SmData) -> Result<Vec<u8>, CodecError> {
    let head = SmData {
        last_applied: data.last_applied,
        membership: data.membership.clone(),
        topology: TopologyState {
            masters: BTreeMap::new(),
            leases: data.topology.leases.clone(),
            grant_voters: data.topology.grant_voters.clone(),
            superseded: data.topology.superseded.clone(),
            voter_addrs: data.topology.voter_addrs.clone(),
        },
        retired: data.retired.clone(),
    };
    encode(&head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Addr;

    fn record(name: &str, port: u16) -> Arc<MasterRecord> {
        Arc::new(MasterRecord::new(
            name,
            Addr::new("10.0.0.1", port),
            2,
            1000,
        ))
    }

    fn state(names: &[&str]) -> SmData {
        let mut data = SmData::default();
        for (i, n) in names.iter().enumerate() {
            data.topology
                .masters
                .insert(n.to_string(), record(n, 7000 + i as u16));
        }
        data
    }

    #[test]
    fn only_records_that_changed_are_written_and_removed_ones_deleted() {
        let a = state(&["a", "b", "c"]);
        let mut b = SmData {
            topology: TopologyState {
                masters: a.topology.masters.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        Arc::make_mut(b.topology.masters.get_mut("b").expect("b")).quorum = 3;
        b.topology.masters.remove("c");
        b.topology.masters.insert("d".into(), record("d", 1));
        let (write, remove) = diff(&a.topology.masters, &b.topology.masters);
        assert_eq!(write, ["b", "d"]);
        assert_eq!(remove, ["c"]);
        let (write, remove) = diff(&b.topology.masters, &b.topology.masters);
        assert!(write.is_empty() && remove.is_empty());
    }

    fn open_tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("sled");
        let tree = db.open_tree("sm").expect("tree");
        (dir, tree)
    }

    fn masters_of(data: &SmData) -> Vec<(String, MasterRecord)> {
        data.topology
            .masters
            .iter()
            .map(|(k, v)| (k.clone(), (**v).clone()))
            .collect()
    }

    #[test]
    fn a_store_of_the_previous_release_is_rewritten_per_master_and_reads_the_same() {
        let (_dir, sm) = open_tree();
        let mut old = state(&["a", "b"]);
        old.retired.insert(9);
        // What the previous release wrote: the whole state under `data`.
        sm.insert(LEGACY, encode(&old).expect("encode"))
            .expect("insert");
        let (got, _) = Persisted::load(&sm).expect("load");
        let got = got.expect("state");
        assert_eq!(masters_of(&got), masters_of(&old));
        assert_eq!(got.retired, old.retired);
        assert!(sm.get(LEGACY).expect("get").is_none(), "old value gone");
        assert_eq!(sm.scan_prefix(MASTER).count(), 2);
        let (again, _) = Persisted::load(&sm).expect("reload");
        assert_eq!(masters_of(&again.expect("state")), masters_of(&old));
    }

    #[test]
    fn writes_follow_the_state_across_reopens() {
        let (_dir, sm) = open_tree();
        assert!(Persisted::load(&sm).expect("empty").0.is_none());
        let mut p = Persisted::default();
        let mut data = state(&["a", "b"]);
        p.write(&sm, &data, false).expect("write");
        data.topology.masters.remove("a");
        Arc::make_mut(data.topology.masters.get_mut("b").expect("b")).quorum = 1;
        p.write(&sm, &data, false).expect("write");
        let (got, _) = Persisted::load(&sm).expect("load");
        assert_eq!(masters_of(&got.expect("state")), masters_of(&data));
        assert_eq!(sm.scan_prefix(MASTER).count(), 1);
    }
}
