//! The one stream of typed topology events: produced by the state machine as entries are
//! applied or observed, consumed by gRPC Watch, the Sentinel port's pub/sub and the hooks. No I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::topology::TopologyEvent;

/// The index of events that come from this node's observations rather than from the log.
pub const LOCAL: u64 = 0;

/// Room for bursts between a slow consumer's reads; a consumer that falls further behind gets
/// `Lagged` and resumes from the stored events by log index.
pub const CAPACITY: usize = 4096;

/// An event and the log index of the entry that caused it; index 0 marks this node's own
/// observation (`+sdown`, `±tilt`, ...), which is not in the log and cannot be replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEvent {
    pub index: u64,
    pub event: TopologyEvent,
}

#[derive(Clone)]
pub struct EventBus {
    /// Shared, not copied: the channel preallocates `CAPACITY` slots, and every subscriber
    /// gets each event.
    tx: broadcast::Sender<Arc<IndexedEvent>>,
    /// Events of entries below this index are old news (replayed at restart or while catching
    /// up) and are not published live; they stay readable from the store by index.
    publish_from: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            publish_from: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: IndexedEvent) {
        let from = self.publish_from.load(Ordering::Acquire);
        let old_news = if event.index == LOCAL {
            from == u64::MAX
        } else {
            event.index < from
        };
        if old_news {
            return;
        }
        // No subscriber is normal: nobody is watching.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Opens live publishing from `index` on: called once the node has caught up with a current
    /// leader, so a restart never replays old `+switch-master`s to subscribers.
    pub fn open_from(&self, index: u64) {
        self.publish_from.fetch_min(index, Ordering::AcqRel);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<IndexedEvent>> {
        self.tx.subscribe()
    }
}
