//! The one stream of typed topology events: produced by the state machine as entries are
//! applied, consumed by gRPC Watch (and later pub/sub, hooks, metrics). No I/O.

use tokio::sync::broadcast;

use crate::topology::TopologyEvent;

/// Room for bursts between a slow consumer's reads; a consumer that falls further behind gets
/// `Lagged` and resumes from the stored events by log index.
const CAPACITY: usize = 4096;

/// An event and the log index of the entry that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEvent {
    pub index: u64,
    pub event: TopologyEvent,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<IndexedEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: IndexedEvent) {
        // No subscriber is normal: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<IndexedEvent> {
        self.tx.subscribe()
    }
}
