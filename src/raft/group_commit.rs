//! Group commit: the commands that arrive while one entry is being written go into the next
//! entry together, as a `Command::Batch`. openraft 0.9 appends, fsyncs and replicates each
//! `client_write` on its own, so 200 failovers started at once cost 200 fsyncs in a row (about
//! 200 ms on a 2-core box, issue 13); as one entry they cost one. Commands that need an entry of
//! their own (`Command::batchable` is false) are written alone.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::types::typ::{ClientWriteError, RaftError};
use super::Raft;
use crate::topology::command::MAX_BATCH;
use crate::topology::{Command, Outcome, Refusal};

/// How many writers may wait at once; more wait for room (the runner has one step per master).
const QUEUE: usize = 4 * MAX_BATCH;

/// The log index of the entry and what applying the command gave.
pub type Written = (u64, Result<Outcome, Refusal>);

#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    #[error("this node is not the leader")]
    NotLeader,
    #[error("the write was not committed in time (it may still be)")]
    Timeout,
    #[error("raft: {0}")]
    Raft(String),
    #[error("the node is shutting down")]
    Stopped,
}

struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Result<Written, WriteError>>,
}

/// The writers' side; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// The handle and the writer loop, which ends when `cancel` fires or every handle is gone.
    /// Each entry gets at most `limit` to commit.
    pub fn new(
        raft: Raft,
        limit: Duration,
        cancel: CancellationToken,
    ) -> (GroupCommit, impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (GroupCommit { tx }, writer(raft, rx, limit, cancel))
    }

    /// Queues `cmd` at once, ahead of every write asked for later, without waiting for it: what
    /// the leader announces (ODOWN, replica progress) must be in the log before the steps decided
    /// after it. Dropped when the queue is full; the caller asks again.
    pub fn submit(&self, cmd: Command) -> Result<(), WriteError> {
        let (reply, _) = oneshot::channel();
        self.tx
            .try_send(Pending { cmd, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Timeout,
                mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
            })
    }

    /// Commits `cmd`, alone or with whatever else is waiting.
    pub async fn write(&self, cmd: Command) -> Result<Written, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { cmd, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn writer(
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    limit: Duration,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
        };
        // Whatever else is waiting now joins it: no timer, so a lone write is not delayed.
        let (mut group, mut alone) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(p) = next {
            if p.cmd.batchable() {
                group.push(p);
            } else {
                alone.push(p);
            }
            if group.len() + alone.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !group.is_empty() {
            commit(&raft, group, limit).await;
        }
        for p in alone {
            commit(&raft, vec![p], limit).await;
        }
    }
}

/// Writes one entry for `group` and answers each writer.
async fn commit(raft: &Raft, group: Vec<Pending>, limit: Duration) {
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        group.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let n = cmds.len();
    let started = tokio::time::Instant::now();
    let written = match tokio::time::timeout(limit, raft.client_write(entry(cmds))).await {
        Err(_) => Err(WriteError::Timeout),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
            Err(WriteError::NotLeader)
        }
        Ok(Err(e)) => Err(WriteError::Raft(e.to_string())),
        Ok(Ok(resp)) => Ok((resp.log_id.index, spread(n, resp.data.result))),
    };
    tracing::debug!(
        commands = n,
        ms = started.elapsed().as_millis() as u64,
        ok = written.is_ok(),
        "entry written"
    );
    match written {
        Ok((index, results)) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok((index, result)));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The entry for `cmds`: the command itself when alone.
fn entry(cmds: Vec<Command>) -> Command {
    match <[Command; 1]>::try_from(cmds) {
        Ok([only]) => only,
        Err(cmds) => Command::Batch(cmds),
    }
}

/// Each command's result out of the entry's: a batch answers one per command; a batch refused
/// whole gives every command that refusal.
fn spread(n: usize, result: Result<Outcome, Refusal>) -> Vec<Result<Outcome, Refusal>> {
    match result {
        _ if n == 1 => vec![result],
        Ok(Outcome::Batch(results)) if results.len() == n => results,
        Err(refusal) => vec![Err(refusal); n],
        Ok(_) => vec![Err(Refusal::NotBatchable); n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Addr;

    fn switched(name: &str) -> Command {
        Command::MasterSwitched {
            name: name.to_owned(),
            epoch: 1,
            replid: "r".to_owned(),
            at_ms: 0,
        }
    }

    #[test]
    fn one_command_is_its_own_entry_several_are_a_batch() {
        assert_eq!(entry(vec![switched("a")]), switched("a"));
        assert_eq!(
            entry(vec![switched("a"), switched("b")]),
            Command::Batch(vec![switched("a"), switched("b")])
        );
        let grant = Command::LeaseGranted { holder: 1 };
        assert!(!grant.batchable() && !entry(vec![switched("a"), switched("b")]).batchable());
        let monitor = Command::Monitor {
            name: "m".to_owned(),
            addr: Addr::new("10.77.0.1", 6379),
            quorum: 2,
            down_after_ms: 1000,
        };
        assert!(!monitor.batchable() && switched("a").batchable());
    }

    #[test]
    fn results_are_spread_one_per_command() {
        assert_eq!(spread(1, Ok(Outcome::Done)), vec![Ok(Outcome::Done)]);
        let each = vec![Ok(Outcome::Done), Err(Refusal::NoSuchMaster)];
        assert_eq!(spread(2, Ok(Outcome::Batch(each.clone()))), each);
        assert_eq!(
            spread(2, Err(Refusal::NotBatchable)),
            vec![Err(Refusal::NotBatchable); 2]
        );
        // A reply of the wrong shape is never taken as success.
        assert_eq!(
            spread(3, Ok(Outcome::Batch(each))),
            vec![Err(Refusal::NotBatchable); 3]
        );
        assert_eq!(
            spread(2, Ok(Outcome::Done)),
            vec![Err(Refusal::NotBatchable); 2]
        );
    }
}
