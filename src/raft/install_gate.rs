//! Keeps the log's purge behind a snapshot install (issue 11 §5). openraft 0.9 queues the
//! install on the state machine's worker and runs the purge of the entries the snapshot covers
//! at once; had the purge made `last_purged` durable first, a crash before the install's flush
//! would leave applied < purged with the entries gone, a fatal storage error on every start. So
//! while a snapshot is being received, a purge past the state machine's durably applied index
//! waits for the install to be flushed; the snapshot builder's flush moves the index too, so
//! ordinary compaction never waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long a purge waits for an install before the node gives up with a storage error.
const INSTALL_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Gate {
    /// A snapshot is being received: its install may still be queued.
    receiving: bool,
    /// The highest applied index known to be on disk (an install's or a snapshot's flush).
    durable_applied: u64,
}

/// Whether a purge up to `upto` must wait.
fn must_wait(gate: Gate, upto: u64) -> bool {
    gate.receiving && upto > gate.durable_applied
}

/// Shared by the log store (which waits) and the state machine (which opens it).
#[derive(Clone, Debug)]
pub struct InstallGate(Arc<watch::Sender<Gate>>);

impl Default for InstallGate {
    fn default() -> Self {
        InstallGate(Arc::new(watch::channel(Gate::default()).0))
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "purging the log up to {upto} waited {INSTALL_WAIT:?} for the snapshot install to be on disk"
)]
pub struct InstallTimeout {
    upto: u64,
}

impl InstallGate {
    /// A snapshot transfer began.
    pub(super) fn receiving(&self) {
        self.0.send_modify(|g| g.receiving = true);
    }

    /// State up to `applied` is on disk; with `installed`, the received snapshot's install is.
    pub(super) fn durable(&self, applied: u64, installed: bool) {
        self.0.send_modify(|g| {
            g.durable_applied = g.durable_applied.max(applied);
            g.receiving &= !installed;
        });
    }

    /// Returns once a purge up to `upto` can no longer pass the durably applied state.
    pub(super) async fn before_purge(&self, upto: u64) -> Result<(), InstallTimeout> {
        let mut rx = self.0.subscribe();
        let ready = async move { rx.wait_for(|g| !must_wait(*g, upto)).await.map(|_| ()) };
        match tokio::time::timeout(INSTALL_WAIT, ready).await {
            Ok(Ok(())) => Ok(()),
            // The sender lives in `self`: it cannot be gone while we wait.
            Ok(Err(_)) | Err(_) => Err(InstallTimeout { upto }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(receiving: bool, durable_applied: u64) -> Gate {
        Gate {
            receiving,
            durable_applied,
        }
    }

    #[test]
    fn only_a_purge_past_a_pending_install_waits() {
        assert!(
            !must_wait(gate(false, 0), 10),
            "no install: compaction and tests purge freely"
        );
        assert!(must_wait(gate(true, 5), 10));
        assert!(!must_wait(gate(true, 10), 10));
        assert!(!must_wait(gate(true, 12), 10));
    }

    #[tokio::test]
    async fn a_purge_waits_for_the_install_and_only_for_it() {
        let g = InstallGate::default();
        g.before_purge(10).await.unwrap();
        g.receiving();
        let waiting = {
            let g = g.clone();
            tokio::spawn(async move { g.before_purge(10).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        g.durable(7, false);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a snapshot below the purge does not open it"
        );
        g.durable(10, true);
        waiting.await.unwrap().unwrap();
        g.before_purge(12).await.unwrap();
    }
}
