//! The Watch stream: retained events from a log index, then live ones, without gaps or repeats;
//! a subscriber that lags behind the bus catches up from the stored events. Streams are bounded
//! in number ([`MAX_WATCHES`]) and each in its queue; a stream's task ends when its client goes.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert;
use super::service::Api;
use crate::events::IndexedEvent;
use crate::raft::state_machine::EventLogError;

/// Watch streams one node serves at once; past it a new one gets RESOURCE_EXHAUSTED.
pub const MAX_WATCHES: usize = 1024;
/// Events queued for one slow stream before its task waits for the client.
const QUEUE: usize = 256;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<crate::pb::Event, Status>> + Send>>;

fn history_error(e: EventLogError) -> Status {
    match e {
        EventLogError::Purged { first } => Status::out_of_range(format!(
            "events before log index {first} are no longer retained: re-read ListMasters, then watch from index {first} or from now (0)"
        )),
        other => Status::internal(other.to_string()),
    }
}

impl Api {
    pub(super) fn watch_stream(&self, from_index: u64) -> Result<EventStream, Status> {
        let slot = self.watch_slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this node already serves {MAX_WATCHES} Watch streams; retry later or watch another node"
            ))
        })?;
        // Subscribe before reading the applied index: everything after it then arrives live.
        let mut live = self.bus.subscribe();
        let applied = self.view.borrow().applied_index();
        let history = if from_index > 0 {
            self.events
                .read(from_index, applied)
                .map_err(history_error)?
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = self.events.clone();
        let view = self.view.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // Every event at or below `complete` was sent; of index `partial`, the first `sent_at`.
            let mut complete = applied;
            let (mut partial, mut sent_at) = (0u64, 0usize);
            let send = |e: &IndexedEvent| tx.send(Ok(convert::event(e)));
            for e in &history {
                if send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    // The client went away: end now, not at the next event.
                    _ = tx.closed() => return,
                    next = live.recv() => next,
                };
                match next {
                    // This node's own observations: live only, outside the index bookkeeping.
                    Ok(e) if e.index == crate::events::LOCAL => {
                        if send(&e).await.is_err() {
                            return;
                        }
                    }
                    Ok(e) if e.index <= complete => {}
                    Ok(e) => {
                        if send(&e).await.is_err() {
                            return;
                        }
                        if e.index == partial {
                            sent_at += 1;
                        } else {
                            complete = complete.max(partial);
                            (partial, sent_at) = (e.index, 1);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let now = view.borrow().applied_index();
                        let missed = match events.read(complete + 1, now) {
                            Ok(missed) => missed,
                            Err(e) => {
                                let _ = tx.send(Err(history_error(e))).await;
                                return;
                            }
                        };
                        let already =
                            |i: usize, e: &IndexedEvent| e.index == partial && i < sent_at;
                        let mut at_partial = 0;
                        for e in &missed {
                            let skip = already(at_partial, e);
                            if e.index == partial {
                                at_partial += 1;
                            }
                            if !skip && send(e).await.is_err() {
                                return;
                            }
                        }
                        complete = now;
                        (partial, sent_at) = (0, 0);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}
