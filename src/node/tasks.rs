//! The node's tasks under one tracker: the one rule that a critical task ending (returning or
//! panicking) before shutdown stops the whole node, so systemd restarts it rather than leave a
//! node that, say, no longer fences its Redis; and the one wait for all of them at shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::Instrument;

/// Whether a task's end before shutdown is fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Runs until cancelled: the guard, the renewer, the runner, the servers, ….
    Critical,
    /// Finishes its job and ends: first-boot initialization, the event gate.
    Once,
}

/// Every task the node runs, by name.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<(&'static str, Kind)>,
}

impl Tasks {
    /// A task that must run until shutdown.
    pub fn critical<F>(&mut self, name: &'static str, task: F)
    where
        F: Future + Send + 'static,
    {
        self.spawn(name, Kind::Critical, task);
    }

    /// A task that may finish on its own.
    pub fn once<F>(&mut self, name: &'static str, task: F)
    where
        F: Future + Send + 'static,
    {
        self.spawn(name, Kind::Once, task);
    }

    fn spawn<F>(&mut self, name: &'static str, kind: Kind, task: F)
    where
        F: Future + Send + 'static,
    {
        let task = async move {
            task.await;
            (name, kind)
        };
        self.set.spawn(task.in_current_span());
    }

    /// A critical task that blocks a thread of its own (a runtime of its own).
    pub fn critical_blocking<F>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.set.spawn_blocking(move || {
            run();
            (name, Kind::Critical)
        });
    }

    /// Resolves when a critical task ends, with why; tasks that finish their job are let go.
    /// Cancel-safe: it can lose a `select!` and be called again.
    pub async fn critical_ended(&mut self) -> String {
        loop {
            match self.set.join_next().await {
                None => return "every task ended".to_owned(),
                Some(Ok((_, Kind::Once))) => {}
                Some(Ok((name, Kind::Critical))) => return format!("the {name} task ended"),
                Some(Err(e)) if e.is_panic() => return format!("a task panicked: {e}"),
                Some(Err(e)) => return format!("a task was cancelled: {e}"),
            }
        }
    }

    /// Waits for every task after the node was cancelled, at most `within` (a task stuck past it
    /// is aborted, and said so).
    pub async fn join_all(mut self, within: Duration) {
        let all = async {
            while let Some(r) = self.set.join_next().await {
                if let Err(e) = r {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a task panicked during shutdown");
                    }
                }
            }
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("tasks still running {within:?} after shutdown began; aborting them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_critical_task_ending_is_reported_and_a_finished_job_is_not() {
        let mut t = Tasks::default();
        t.once("bootstrap", async {});
        t.critical("guard", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        t.critical("runner", std::future::pending::<()>());
        assert_eq!(t.critical_ended().await, "the guard task ended");
        t.join_all(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_panic_is_reported() {
        let mut t = Tasks::default();
        t.critical("runner", async { panic!("boom") });
        assert!(t.critical_ended().await.starts_with("a task panicked"));
    }
}
