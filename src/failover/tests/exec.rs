//! DESIGN invariants 1 and 2 on the promotion executor, with fakes: the log is a real
//! `TopologyState` applying what is committed, the instances answer from what was promoted, and
//! every call is recorded; a fault is injected at every position in turn, then the next leader
//! resumes from the log.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::failover::exec::{
    repoint, resume, start, switchover, HandoverError, Instances, Log, StepError,
};
use crate::redis::Role;
use crate::topology::{
    Addr, ApplyContext, Command, FailoverState, MasterRecord, ReplicaRecord, TopologyState,
};

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Commit(&'static str),
    Prove,
    Promote(Addr),
    Replicate(Addr, Addr),
    FailoverTo(Addr),
    PersistRole(Addr),
    Role(Addr),
    Replid(Addr),
}

/// The cluster as one leader after another sees it.
struct World {
    state: Mutex<TopologyState>,
    index: Mutex<u64>,
    calls: Mutex<Vec<Call>>,
    /// The call (by position in `calls`) that fails, if any.
    fail_at: Option<usize>,
    promoted: Mutex<BTreeSet<Addr>>,
    /// What each FAILOVER TO answers, in turn (then success).
    handovers: Mutex<Vec<Result<(), HandoverError>>>,
}

fn addr(port: u16) -> Addr {
    Addr::new("10.0.0.1", port)
}

fn kind(cmd: &Command) -> &'static str {
    match cmd {
        Command::FailoverStarted { .. } => "FailoverStarted",
        Command::MasterSwitched { .. } => "MasterSwitched",
        Command::FailoverAborted { .. } => "FailoverAborted",
        _ => "other",
    }
}

impl World {
    fn new(fail_at: Option<usize>) -> World {
        let w = World {
            state: Mutex::new(TopologyState::default()),
            index: Mutex::new(1),
            calls: Mutex::new(Vec::new()),
            fail_at,
            promoted: Mutex::new(BTreeSet::new()),
            handovers: Mutex::new(Vec::new()),
        };
        w.apply(&Command::Monitor {
            name: "m".to_owned(),
            addr: addr(1),
            quorum: 2,
            down_after_ms: 1000,
        });
        let replica = |port| ReplicaRecord {
            addr: addr(port),
            run_id: format!("r{port}"),
            replid: String::new(),
        };
        w.apply(&Command::ReplicasDiscovered {
            name: "m".to_owned(),
            replicas: vec![replica(2), replica(3)],
        });
        w
    }

    fn apply(&self, cmd: &Command) -> bool {
        let mut index = self.index.lock().unwrap();
        let voters = BTreeSet::from([1, 2, 3]);
        let ctx = ApplyContext {
            index: *index,
            voters: &voters,
        };
        *index += 1;
        self.state.lock().unwrap().apply(cmd, ctx).result.is_ok()
    }

    /// Records `call`; Err if it is the one that fails.
    fn record(&self, call: Call) -> Result<(), StepError> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(call);
        match self.fail_at {
            Some(n) if n == calls.len() - 1 => Err(StepError::Timeout),
            _ => Ok(()),
        }
    }

    fn master(&self) -> MasterRecord {
        (*self.state.lock().unwrap().masters["m"]).clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Log for World {
    async fn commit(&self, cmd: Command) -> Result<u64, StepError> {
        // A failed commit is one this leader could not get committed (it lost leadership).
        self.record(Call::Commit(kind(&cmd)))?;
        if !self.apply(&cmd) {
            return Err(StepError::Refused(kind(&cmd).to_owned()));
        }
        Ok(*self.index.lock().unwrap() - 1)
    }

    async fn prove_leadership(&self) -> Result<(), StepError> {
        self.record(Call::Prove)
    }
}

impl Instances for World {
    async fn promote(&self, _: &MasterRecord, at: &Addr) -> Result<(), StepError> {
        self.record(Call::Promote(at.clone()))?;
        self.promoted.lock().unwrap().insert(at.clone());
        Ok(())
    }

    async fn replicate(&self, _: &MasterRecord, at: &Addr, to: &Addr) -> Result<(), StepError> {
        self.record(Call::Replicate(at.clone(), to.clone()))
    }

    async fn failover_to(
        &self,
        _: &MasterRecord,
        target: &Addr,
        _: u64,
    ) -> Result<(), HandoverError> {
        let failed = self.record(Call::FailoverTo(target.clone())).is_err();
        let mut script = self.handovers.lock().unwrap();
        let answer = if script.is_empty() {
            Ok(())
        } else {
            script.remove(0)
        };
        if failed {
            return Err(HandoverError::LinkLost("injected".to_owned()));
        }
        // A handover under way ends with the target as master too.
        if matches!(answer, Ok(()) | Err(HandoverError::Underway(_))) {
            self.promoted.lock().unwrap().insert(target.clone());
        }
        answer
    }

    async fn persist_role(&self, _: &MasterRecord, at: &Addr) -> Result<(), StepError> {
        self.record(Call::PersistRole(at.clone()))
    }

    async fn role(&self, _: &MasterRecord, at: &Addr) -> Result<Role, StepError> {
        self.record(Call::Role(at.clone()))?;
        if self.promoted.lock().unwrap().contains(at) {
            Ok(Role::Master)
        } else {
            Ok(Role::Other("slave".to_owned()))
        }
    }

    async fn replid(&self, _: &MasterRecord, at: &Addr) -> Result<String, StepError> {
        self.record(Call::Replid(at.clone()))?;
        Ok("replid-of-new".to_owned())
    }
}

fn started(epoch: u64, candidate: Addr) -> Command {
    Command::FailoverStarted {
        name: "m".to_owned(),
        epoch,
        candidate,
        candidate_holder: None,
        reason: "odown".to_owned(),
        at_ms: 0,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// One failover of epoch 1 to :2 with a fault at `fail_at`, then, while the log still shows it
/// in progress, the next leader resumes it (no fault). Returns the world.
fn failover_with_fault(fail_at: Option<usize>) -> World {
    let w = World::new(fail_at);
    let rt = rt();
    let master = w.master();
    let first = rt.block_on(start(&w, &w, &master, started(1, addr(2)), async {
        Ok(())
    }));
    assert_eq!(first.is_err(), fail_at.is_some_and(|n| n < w.calls().len()));
    let now = w.master();
    if now
        .failover
        .as_ref()
        .is_some_and(|f| f.state == FailoverState::Started)
    {
        let again = rt.block_on(resume(&w, &w, &now, 1, || true, async { Ok(()) }));
        assert!(
            again.is_ok(),
            "resume after a fault at {fail_at:?}: {again:?}"
        );
    }
    w
}

// Invariant 1: the epoch is committed before any promotion; the new master is the one the log
// names, and the switch is committed after it reports master.
#[test]
fn the_epoch_is_committed_before_the_promotion() {
    let w = failover_with_fault(None);
    let calls = w.calls();
    assert_eq!(calls[0], Call::Commit("FailoverStarted"));
    assert_eq!(calls[1], Call::Promote(addr(2)));
    assert_eq!(calls.last(), Some(&Call::Commit("MasterSwitched")));
    let m = w.master();
    assert_eq!((m.addr, m.config_epoch), (addr(2), 1));
}

// Invariants 1 and 2 under every single fault: whatever call fails, no promotion comes before
// the epoch's commit, a resumed promotion is preceded directly by a proof of leadership, only the
// log's candidate is ever promoted for the epoch, and the failover completes once resumed.
#[test]
fn a_fault_at_any_step_leaves_no_second_promotion_for_the_epoch() {
    let steps = failover_with_fault(None).calls().len();
    for fail_at in 0..steps {
        let w = failover_with_fault(Some(fail_at));
        let calls = w.calls();
        let committed = calls
            .iter()
            .position(|c| *c == Call::Commit("FailoverStarted"));
        for (i, call) in calls.iter().enumerate() {
            if let Call::Promote(at) = call {
                assert_eq!(
                    at,
                    &addr(2),
                    "fault at {fail_at}: a second instance promoted"
                );
                assert!(
                    committed.is_some_and(|c| c < i),
                    "fault at {fail_at}: promotion before the epoch was committed: {calls:?}"
                );
            }
        }
        let promotes: Vec<usize> = (0..calls.len())
            .filter(|i| matches!(calls[*i], Call::Promote(_)))
            .collect();
        for p in promotes.iter().skip(1) {
            assert_eq!(
                calls[p - 1],
                Call::Prove,
                "fault at {fail_at}: a resumed promotion without a proof of leadership: {calls:?}"
            );
        }
        let m = w.master();
        if fail_at == 0 {
            // FailoverStarted never committed: nothing happened, nothing to resume.
            assert_eq!((m.addr, m.epoch), (addr(1), 0));
            assert!(promotes.is_empty());
        } else {
            assert_eq!((m.addr, m.config_epoch), (addr(2), 1), "fault at {fail_at}");
        }
    }
}

// A stale resume (the log has moved on to another epoch) does nothing at all.
#[test]
fn resuming_a_finished_epoch_does_nothing() {
    let w = World::new(None);
    let rt = rt();
    let master = w.master();
    rt.block_on(resume(&w, &w, &master, 1, || true, async { Ok(()) }))
        .unwrap();
    assert!(w.calls().is_empty());
}

// The old lease must be dead first: while it is not, nothing is promoted (the epoch stays
// committed, so the next attempt resumes the same candidate).
#[test]
fn no_promotion_while_the_old_lease_lives() {
    let w = World::new(None);
    let rt = rt();
    let master = w.master();
    let alive = async { Err(StepError::LeaseAlive(7)) };
    let r = rt.block_on(start(&w, &w, &master, started(1, addr(3)), alive));
    assert!(matches!(r, Err(StepError::LeaseAlive(7))));
    assert_eq!(w.calls(), vec![Call::Commit("FailoverStarted")]);
    let now = w.master();
    rt.block_on(resume(&w, &w, &now, 1, || true, async { Ok(()) }))
        .unwrap();
    assert!(w.calls().contains(&Call::Promote(addr(3))));
    assert!(!w.calls().contains(&Call::Promote(addr(2))));
}

// Invariant 2 for repointing replicas and folding the old master in: leadership is proven right
// before, nothing is sent without it or once the log moved on, and a failed replica does not
// stop the others.
#[test]
fn replicas_are_repointed_only_right_after_a_proof_of_leadership() {
    let rt = rt();
    let pick = || vec![addr(2), addr(3)];
    let w = World::new(None);
    let master = w.master();
    let sent = rt
        .block_on(repoint(&w, &w, &master, &addr(9), || true, pick))
        .unwrap();
    assert_eq!(w.calls()[0], Call::Prove);
    assert_eq!(sent.len(), 2);
    assert!(w.calls().contains(&Call::Replicate(addr(3), addr(9))));

    // The proof fails: nothing is sent, and `pick` is not even asked.
    let w = World::new(Some(0));
    let r = rt.block_on(repoint(
        &w,
        &w,
        &master,
        &addr(9),
        || true,
        || -> Vec<Addr> { panic!("picked without a proof") },
    ));
    assert!(r.is_err());
    assert_eq!(w.calls(), vec![Call::Prove]);

    // The log moved on meanwhile: nothing is sent.
    let w = World::new(None);
    let sent = rt
        .block_on(repoint(&w, &w, &master, &addr(9), || false, pick))
        .unwrap();
    assert!(sent.is_empty());
    assert_eq!(w.calls(), vec![Call::Prove]);

    // One replica refuses: the other is still repointed, and each result says which.
    let w = World::new(Some(1));
    let sent = rt
        .block_on(repoint(&w, &w, &master, &addr(9), || true, pick))
        .unwrap();
    let ok: Vec<bool> = sent.iter().map(|(_, r)| r.is_ok()).collect();
    assert_eq!(ok, [false, true]);
}

fn switchover_to(
    target: u16,
    handovers: Vec<Result<(), HandoverError>>,
) -> (World, Result<(), StepError>) {
    let w = World::new(None);
    *w.handovers.lock().unwrap() = handovers;
    let master = w.master();
    let started = Command::FailoverStarted {
        name: "m".to_owned(),
        epoch: 1,
        candidate: addr(target),
        candidate_holder: None,
        reason: "switchover".to_owned(),
        at_ms: 0,
    };
    let r = rt().block_on(switchover(&w, &w, &master, started));
    (w, r)
}

// A switchover commits its epoch before FAILOVER TO, and the switch once the target reports
// master; then both changed roles are persisted (FAILOVER TO does not rewrite the config).
#[test]
fn a_switchover_commits_the_epoch_before_the_handover() {
    let (w, r) = switchover_to(2, Vec::new());
    r.unwrap();
    assert_eq!(
        w.calls(),
        vec![
            Call::Commit("FailoverStarted"),
            Call::FailoverTo(addr(2)),
            Call::Role(addr(2)),
            Call::Replid(addr(2)),
            Call::Commit("MasterSwitched"),
            Call::PersistRole(addr(2)),
            Call::PersistRole(addr(1)),
        ]
    );
}

// A role that could not be persisted is logged; the switch stands.
#[test]
fn an_unpersisted_role_does_not_undo_the_switch() {
    let w = World::new(Some(5));
    let master = w.master();
    let started = Command::FailoverStarted {
        name: "m".to_owned(),
        epoch: 1,
        candidate: addr(2),
        candidate_holder: None,
        reason: "switchover".to_owned(),
        at_ms: 0,
    };
    rt().block_on(switchover(&w, &w, &master, started)).unwrap();
    assert_eq!(w.calls().last(), Some(&Call::PersistRole(addr(1))));
    assert_eq!(w.master().addr, addr(2));
}

// The old master's node drops our connection as soon as the epoch is committed: FAILOVER TO is
// sent again, and a repeat that finds the handover under way counts as done.
#[test]
fn a_lost_link_sends_the_handover_again() {
    let lost = || Err(HandoverError::LinkLost("reset".to_owned()));
    let underway = Err(HandoverError::Underway(
        "FAILOVER already in progress".to_owned(),
    ));
    let (w, r) = switchover_to(2, vec![lost(), underway]);
    r.unwrap();
    assert!(w.calls().contains(&Call::Commit("MasterSwitched")));
    let tos = w
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::FailoverTo(_)))
        .count();
    assert_eq!(tos, 2);
    assert!(!w.calls().contains(&Call::Commit("FailoverAborted")));
    let (w, r) = switchover_to(2, vec![lost(), lost(), lost()]);
    assert!(matches!(r, Err(StepError::Handover(_))));
    assert!(w.calls().contains(&Call::Commit("FailoverAborted")));
}

// Redis refuses the handover (or says one is under way before we sent any): the switchover is
// aborted through the log, nothing is switched.
#[test]
fn a_refused_handover_aborts_the_switchover() {
    for first in [
        HandoverError::Refused("ERR target is not a replica".to_owned()),
        HandoverError::Underway("FAILOVER already in progress".to_owned()),
    ] {
        let (w, r) = switchover_to(2, vec![Err(first)]);
        assert!(matches!(r, Err(StepError::Handover(_))));
        let calls = w.calls();
        assert_eq!(calls.last(), Some(&Call::Commit("FailoverAborted")));
        assert!(!calls.contains(&Call::Commit("MasterSwitched")));
        assert_eq!(w.master().addr, addr(1));
    }
}
