//! The Raft log and vote in sled: big-endian index keys so the tree sorts by index, and a flush
//! before openraft is told anything is durable (storage-v2's contract; DESIGN invariant 6).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, OptionalSend, RaftLogReader, StorageIOError};

use super::codec::{decode, encode};
use super::crashpoint;
use super::format_v5::decode_entry;
use super::install_gate::InstallGate;
use super::types::typ::{LogId, StorageError, Vote};
use super::types::TypeConfig;

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";
const COMMITTED: &[u8] = b"committed";

/// Handle on the log and meta trees of the node's one sled database. Clones share the trees.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    /// Shared with the state machine: a purge never passes a snapshot install that is not on
    /// disk yet.
    install: InstallGate,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    /// `install` must be the state machine's (`StateMachineStore::install_gate`).
    pub fn open(db: &sled::Db, install: InstallGate) -> Result<Self, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            logs: db.open_tree("raft_logs")?,
            meta: db.open_tree("raft_meta")?,
            install,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let raw = self.meta.get(key).map_err(|e| StorageIOError::read(&e))?;
        raw.map(|v| decode(&v))
            .transpose()
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        flush: bool,
    ) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(|e| StorageIOError::write(&e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        if flush {
            self.db
                .flush_async()
                .await
                .map_err(|e| StorageIOError::write(&e))?;
        }
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self
            .logs
            .last()
            .map_err(|e| StorageIOError::read_logs(&e))?
        {
            None => Ok(None),
            Some((_, v)) => {
                let entry = decode_entry(&v).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let iter = match range.end_bound() {
            Bound::Included(&i) => self.logs.range(index_key(start)..=index_key(i)),
            Bound::Excluded(&i) => self.logs.range(index_key(start)..index_key(i)),
            Bound::Unbounded => self.logs.range(index_key(start)..),
        };
        let mut out = Vec::new();
        for item in iter {
            let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            out.push(decode_entry(&v).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
        // Entries at or below last_purged may outlive a crash mid-purge (the marker is durable
        // first): they are purged all the same, so the last log id never trails the marker.
        let last_log_id = self.last_entry_log_id()?.max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote, true)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Only speeds up re-apply after a restart; the next log flush makes it durable.
        self.write_meta(COMMITTED, &committed, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Readable now; durable only after the flush, and only then may openraft hear so.
        crashpoint::hit("append:before-flush");
        let flushed = self.db.flush_async().await;
        crashpoint::hit("append:after-flush");
        callback.log_io_completed(flushed.map(|_| ()).map_err(std::io::Error::other));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.logs.range(index_key(log_id.index)..) {
            let (k, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(k);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        crashpoint::hit("truncate:before-flush");
        self.db
            .flush_async()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Never past a snapshot install that is not on disk yet (see `install_gate`).
        self.install
            .before_purge(log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // last_purged goes first and durably, so a crash mid-purge never exposes a hole.
        self.write_meta(LAST_PURGED, &log_id, true).await?;
        crashpoint::hit("purge:after-last-purged");
        let mut batch = sled::Batch::default();
        for item in self.logs.range(..=index_key(log_id.index)) {
            let (k, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(k);
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
