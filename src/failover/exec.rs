//! The role changes of a failover as a thin executor over two small ports — the log (commit,
//! prove leadership) and the Redis instances (promote, replicate, role, replication id) — so that
//! DESIGN's invariants 1 and 2 are tested with fakes that record every call and fail any one of
//! them: the new epoch is committed before any promotion, leadership is proven right before every
//! role change the executor did not just commit for (a resumed promotion, repointing replicas,
//! folding the old master in), and a fault anywhere leaves no second promotion for the epoch (the
//! next leader resumes with the candidate the log names).
//! `run` supplies the real ports (the Raft handle, `redis_ops::Instance`) and the wait for the
//! old lease; the decisions stay in `decide`.

use std::future::Future;
use std::time::Duration;

use crate::redis::{ConnError, Role};
use crate::topology::{Addr, Command, MasterRecord};

/// How often the candidate's role is read while waiting for it to report master.
const ROLE_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("not the leader")]
    NotLeader,
    #[error("no quorum in time")]
    Timeout,
    #[error("raft: {0}")]
    Raft(String),
    #[error("redis: {0}")]
    Redis(#[from] ConnError),
    #[error("{0} did not report role master within failover-timeout")]
    NotPromoted(Addr),
    #[error("the old master's lease (grant {0}) is not dead yet")]
    LeaseAlive(u64),
    #[error("FAILOVER TO: {0}")]
    Handover(String),
}

/// Why a FAILOVER TO did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverError {
    /// The connection broke: the command may not have run, so it is sent again.
    LinkLost(String),
    /// Redis says a handover is under way or done (the old master is a replica already).
    Underway(String),
    /// Anything else: the switchover is aborted.
    Refused(String),
}

impl std::fmt::Display for HandoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandoverError::LinkLost(e) | HandoverError::Underway(e) | HandoverError::Refused(e) => {
                f.write_str(e)
            }
        }
    }
}

/// The log as the executor uses it.
pub trait Log {
    /// Commits `cmd`; Ok with its index once applied, or why not.
    fn commit(&self, cmd: Command) -> impl Future<Output = Result<u64, StepError>> + Send;
    /// Confirms with a quorum that this node still leads.
    fn prove_leadership(&self) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// The Redis instances as the executor uses them (with `master`'s credentials).
pub trait Instances {
    fn promote(
        &self,
        master: &MasterRecord,
        at: &Addr,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    fn replicate(
        &self,
        master: &MasterRecord,
        at: &Addr,
        to: &Addr,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Redis's own lossless handover: FAILOVER TO `target` on the master at `master.addr`.
    fn failover_to(
        &self,
        master: &MasterRecord,
        target: &Addr,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<(), HandoverError>> + Send;
    /// Persists the role the instance at `at` holds now (CONFIG REWRITE), as REPLICAOF does
    /// itself: FAILOVER TO changes two roles without it.
    fn persist_role(
        &self,
        master: &MasterRecord,
        at: &Addr,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    fn role(
        &self,
        master: &MasterRecord,
        at: &Addr,
    ) -> impl Future<Output = Result<Role, StepError>> + Send;
    fn replid(
        &self,
        master: &MasterRecord,
        at: &Addr,
    ) -> impl Future<Output = Result<String, StepError>> + Send;
}

/// The epoch and candidate a FailoverStarted names.
fn epoch_and_candidate(started: &Command) -> Result<(u64, Addr), StepError> {
    match started {
        Command::FailoverStarted {
            epoch, candidate, ..
        } => Ok((*epoch, candidate.clone())),
        _ => Err(StepError::Refused("not a FailoverStarted".to_owned())),
    }
}

/// Starts a failover: FailoverStarted first (its commit proves leadership and takes the epoch),
/// then the promotion once `old_lease_dead` says the old holder can no longer act.
pub async fn start<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    started: Command,
    old_lease_dead: impl Future<Output = Result<(), StepError>>,
) -> Result<(), StepError> {
    let (epoch, candidate) = epoch_and_candidate(&started)?;
    log.commit(started).await?;
    promote_and_switch(log, redis, master, &candidate, epoch, old_lease_dead).await
}

/// Resumes a started failover (a new leader, or a promotion that failed): the candidate is the
/// one the log names for `epoch`, and leadership is proven right before the promotion.
/// `still_current` is asked after the proof: false (the log moved on meanwhile) ends it quietly.
pub async fn resume<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    epoch: u64,
    still_current: impl Fn() -> bool,
    old_lease_dead: impl Future<Output = Result<(), StepError>>,
) -> Result<(), StepError> {
    let Some(candidate) = master
        .failover
        .as_ref()
        .filter(|f| f.epoch == epoch)
        .map(|f| f.candidate.clone())
    else {
        return Ok(());
    };
    log.prove_leadership().await?;
    if !still_current() {
        return Ok(());
    }
    promote_and_switch(log, redis, master, &candidate, epoch, old_lease_dead).await
}

async fn promote_and_switch<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    candidate: &Addr,
    epoch: u64,
    old_lease_dead: impl Future<Output = Result<(), StepError>>,
) -> Result<(), StepError> {
    old_lease_dead.await?;
    redis.promote(master, candidate).await?;
    tracing::info!(%candidate, "promotion sent");
    let within = Duration::from_millis(master.failover_timeout_ms);
    await_master_and_switch(log, redis, master, candidate, epoch, within).await
}

/// A switchover: FailoverStarted first, then Redis's FAILOVER TO on the old master, which pauses
/// writes until the target has caught up and hands over (so nothing acknowledged is lost). The
/// old master's node fences it as soon as the epoch is committed and drops every client, ours
/// included, perhaps before FAILOVER TO got through: it is sent again on a broken link, and a
/// repeat that finds the handover under way counts. Refused: the switchover is aborted.
pub async fn switchover<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    started: Command,
) -> Result<(), StepError> {
    let (epoch, target) = epoch_and_candidate(&started)?;
    log.commit(started).await?;
    let timeout_ms = master.failover_timeout_ms.min(60_000);
    let mut sent = Err(HandoverError::LinkLost("not sent".to_owned()));
    for attempt in 0..3 {
        sent = redis.failover_to(master, &target, timeout_ms).await;
        match &sent {
            Err(HandoverError::LinkLost(_)) => continue,
            Err(HandoverError::Underway(_)) if attempt > 0 => sent = Ok(()),
            _ => {}
        }
        break;
    }
    if let Err(e) = sent {
        tracing::warn!(error = %e, "FAILOVER TO refused; aborting the switchover");
        log.commit(Command::FailoverAborted {
            name: master.name.clone(),
            epoch,
            reason: "switchover-refused".to_string(),
            at_ms: crate::admin::now_ms(),
        })
        .await?;
        return Err(StepError::Handover(e.to_string()));
    }
    let within = Duration::from_millis(timeout_ms + 1000);
    await_master_and_switch(log, redis, master, &target, epoch, within).await?;
    // Otherwise a restart brings back the old roles from the config files: the new master as a
    // replica of the old one, which replicates from it, and no instance is master.
    for at in [&target, &master.addr] {
        if let Err(e) = redis.persist_role(master, at).await {
            tracing::warn!(instance = %at, error = %e, "role not persisted (CONFIG REWRITE)");
        }
    }
    Ok(())
}

/// Points replicas at `to`, all at once, right after proving leadership: `pick` chooses them
/// then (it may remember what it picked), `still_current` false (the log moved on) stops it.
/// Returns each picked replica with whether it took the command.
pub async fn repoint<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    to: &Addr,
    still_current: impl Fn() -> bool,
    pick: impl FnOnce() -> Vec<Addr>,
) -> Result<Vec<(Addr, Result<(), StepError>)>, StepError> {
    log.prove_leadership().await?;
    if !still_current() {
        return Ok(Vec::new());
    }
    let sends = pick().into_iter().map(|addr| async move {
        tracing::info!(replica = %addr, %to, "repointing replica");
        let sent = redis.replicate(master, &addr, to).await;
        (addr, sent)
    });
    Ok(futures::future::join_all(sends).await)
}

/// Waits (up to `within`) for `candidate` to report master, then commits MasterSwitched with its
/// replication id.
pub async fn await_master_and_switch<L: Log, I: Instances>(
    log: &L,
    redis: &I,
    master: &MasterRecord,
    candidate: &Addr,
    epoch: u64,
    within: Duration,
) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + within;
    while redis.role(master, candidate).await? != Role::Master {
        if tokio::time::Instant::now() >= deadline {
            return Err(StepError::NotPromoted(candidate.clone()));
        }
        tokio::time::sleep(ROLE_POLL).await;
    }
    let replid = redis.replid(master, candidate).await?;
    log.commit(Command::MasterSwitched {
        name: master.name.clone(),
        epoch,
        replid,
        at_ms: crate::admin::now_ms(),
    })
    .await?;
    tracing::warn!(%candidate, epoch, "+switch-master");
    Ok(())
}
