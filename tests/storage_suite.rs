//! openraft's own storage conformance suite against the real sled log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use raftinel::events::EventBus;
use raftinel::raft::types::typ::StorageError;
use raftinel::raft::{LogStore, StateMachineStore, TypeConfig};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(&db, EventBus::default())?;
        let log = LogStore::open(&db, sm.install_gate())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_openraft_suite() {
    Suite::test_all(SledBuilder).unwrap();
}
