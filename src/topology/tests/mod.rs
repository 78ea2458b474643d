//! Table tests for the topology state machine; each cites the DESIGN.md invariant or the Sentinel
//! behaviour (reference/sentinel-surface.md) it checks.

mod failover;
mod leases;
mod masters;
mod validation;

use super::*;

const VOTERS: usize = 3;

fn addr(port: u16) -> Addr {
    Addr::new("127.0.0.1", port)
}

fn monitor(name: &str, port: u16, quorum: u32) -> Command {
    Command::Monitor {
        name: name.to_owned(),
        addr: addr(port),
        quorum,
        down_after_ms: 5000,
    }
}

fn set(options: &[(&str, &str)]) -> Command {
    Command::Set {
        name: "mymaster".to_owned(),
        options: options
            .iter()
            .map(|(o, v)| ((*o).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn replica(port: u16) -> ReplicaRecord {
    ReplicaRecord {
        addr: addr(port),
        run_id: format!("run{port}"),
        replid: "r1".to_owned(),
    }
}

fn discovered(ports: &[u16]) -> Command {
    Command::ReplicasDiscovered {
        name: "mymaster".to_owned(),
        replicas: ports.iter().map(|p| replica(*p)).collect(),
    }
}

fn holder(node: Option<u64>) -> Command {
    Command::HolderAssigned {
        name: "mymaster".to_owned(),
        holder: node,
    }
}

fn started(epoch: u64, port: u16, candidate_holder: Option<u64>) -> Command {
    started_of("mymaster", epoch, port, candidate_holder)
}

fn started_of(name: &str, epoch: u64, port: u16, candidate_holder: Option<u64>) -> Command {
    Command::FailoverStarted {
        name: name.to_owned(),
        epoch,
        candidate: addr(port),
        candidate_holder,
        reason: "odown".to_owned(),
        at_ms: 1_000,
    }
}

fn switched(epoch: u64) -> Command {
    Command::MasterSwitched {
        name: "mymaster".to_owned(),
        epoch,
        replid: format!("replid{epoch}"),
        at_ms: 2_000,
    }
}

fn ended(epoch: u64) -> Command {
    Command::FailoverEnded {
        name: "mymaster".to_owned(),
        epoch,
        at_ms: 3_000,
    }
}

fn aborted(epoch: u64, reason: &str) -> Command {
    Command::FailoverAborted {
        name: "mymaster".to_owned(),
        epoch,
        reason: reason.to_owned(),
        at_ms: 3_000,
    }
}

/// A state plus the next log index, as the Raft state machine drives it.
struct Log {
    state: TopologyState,
    index: u64,
    /// The membership's voters the next entries apply under.
    voters: std::collections::BTreeSet<u64>,
}

impl Log {
    fn new() -> Self {
        Log {
            state: TopologyState::default(),
            index: 1,
            voters: (1..=VOTERS as u64).collect(),
        }
    }

    /// "mymaster" at :6390 (quorum 2) with replicas :6391 and :6392, its host held by node 1.
    fn monitored() -> Self {
        let mut log = Log::new();
        log.ok(&monitor("mymaster", 6390, 2));
        log.ok(&discovered(&[6391, 6392]));
        log.ok(&holder(Some(1)));
        log.ok(&Command::LeaseGranted { holder: 1 });
        log
    }

    fn apply(&mut self, cmd: &Command) -> Applied {
        let applied = self.state.apply(
            cmd,
            ApplyContext {
                index: self.index,
                voters: &self.voters,
            },
        );
        self.index += 1;
        applied
    }

    /// A membership entry with these voters.
    fn membership(&mut self, voters: &[u64]) {
        self.voters = voters.iter().copied().collect();
        let addrs = voters.iter().map(|id| (*id, format!("n{id}:1"))).collect();
        self.state
            .membership_changed(&self.voters, addrs, self.index);
        self.index += 1;
    }

    /// Applies a command that must succeed; returns its events.
    fn ok(&mut self, cmd: &Command) -> Vec<TopologyEvent> {
        let applied = self.apply(cmd);
        assert!(
            applied.result.is_ok(),
            "{cmd:?} refused: {:?}",
            applied.result
        );
        applied.events
    }

    /// Applies a command that must be refused with `refusal`, and checks nothing changed.
    fn refused(&mut self, cmd: &Command, refusal: Refusal) {
        let before = self.state.clone();
        let applied = self.apply(cmd);
        assert_eq!(applied.result, Err(refusal), "{cmd:?}");
        assert!(applied.events.is_empty(), "refused {cmd:?} emitted events");
        assert_eq!(self.state, before, "refused {cmd:?} changed the state");
    }

    fn mymaster(&self) -> &MasterRecord {
        self.state.master("mymaster").unwrap()
    }
}

/// An event's Sentinel text, comparable with `(channel, message)` pairs.
#[derive(Debug)]
struct Text(&'static str, String);

impl PartialEq<(&str, &str)> for Text {
    fn eq(&self, other: &(&str, &str)) -> bool {
        self.0 == other.0 && self.1 == other.1
    }
}

fn kinds_and_payloads(events: &[TopologyEvent]) -> Vec<Text> {
    events
        .iter()
        .map(|e| {
            let (channel, payload) = e.text();
            Text(channel, payload)
        })
        .collect()
}

// Sentinel surface §1.2/§1.4: Display is the RESP error line without '-'; raftinel's own refusals
// keep the ERR prefix so clients treat them as ordinary errors.
#[test]
fn refusal_texts_are_exact() {
    let table: Vec<(Refusal, &str)> = vec![
        (Refusal::DuplicateMaster, "ERR Duplicate master name."),
        (
            Refusal::AlreadyMonitored {
                addr: "10.0.0.1:6379".to_owned(),
                name: "cache".to_owned(),
            },
            "ERR 10.0.0.1:6379 is already monitored as 'cache'",
        ),
        (Refusal::NoSuchMaster, "ERR No such master with that name"),
        (Refusal::QuorumTooSmall, "ERR Quorum must be 1 or greater."),
        (
            Refusal::QuorumNotMajority {
                quorum: 2,
                voters: 5,
            },
            "ERR quorum 2 is less than a majority of the 5 voters (at least 3)",
        ),
        (
            Refusal::QuorumAboveVoters {
                quorum: 4,
                voters: 3,
            },
            "ERR quorum 4 is more than the 3 voters",
        ),
        (Refusal::InvalidPort, "ERR Invalid port number."),
        (
            Refusal::UnknownOption {
                option: "foo".to_owned(),
            },
            "ERR Unknown option or number of arguments for SENTINEL SET 'foo'",
        ),
        (
            Refusal::InvalidOptionValue {
                option: "down-after-milliseconds".to_owned(),
                value: "0".to_owned(),
            },
            "ERR Invalid argument '0' for SENTINEL SET 'down-after-milliseconds'",
        ),
        (
            Refusal::FailoverInProgress,
            "INPROG Failover already in progress",
        ),
        (
            Refusal::NoFailoverInProgress {
                name: "m".to_owned(),
            },
            "ERR No failover in progress for 'm'",
        ),
        (
            Refusal::EpochMismatch {
                epoch: 3,
                in_progress: 4,
            },
            "ERR epoch 3 is not the failover in progress (epoch 4)",
        ),
        (
            Refusal::StaleEpoch {
                epoch: 2,
                current: 2,
            },
            "ERR epoch 2 is not above the current epoch 2",
        ),
        (
            Refusal::CannotAbortPromoted { epoch: 1 },
            "ERR failover of epoch 1 has promoted its candidate and cannot be aborted",
        ),
        (
            Refusal::AlreadyPromoted { epoch: 1 },
            "ERR failover of epoch 1 has already promoted its candidate",
        ),
        (
            Refusal::NotPromoted { epoch: 1 },
            "ERR failover of epoch 1 has not promoted its candidate yet",
        ),
        (
            Refusal::CandidateIsMaster {
                candidate: "127.0.0.1:6390".to_owned(),
            },
            "ERR candidate 127.0.0.1:6390 is already the master",
        ),
        (
            Refusal::NoSuchLease { id: 9 },
            "ERR no current lease grant with id 9",
        ),
        (Refusal::EmptyName, "ERR master name must not be empty"),
    ];
    for (refusal, text) in table {
        assert_eq!(refusal.to_string(), text);
    }
}

// The gRPC layer maps kinds to status codes: a name clash, a missing thing, a bad request, or a
// state that may change.
#[test]
fn refusal_kinds() {
    let table = [
        (Refusal::DuplicateMaster, RefusalKind::AlreadyExists),
        (
            Refusal::AlreadyMonitored {
                addr: String::new(),
                name: String::new(),
            },
            RefusalKind::AlreadyExists,
        ),
        (Refusal::NoSuchMaster, RefusalKind::NotFound),
        (Refusal::NoSuchLease { id: 1 }, RefusalKind::NotFound),
        (Refusal::QuorumTooSmall, RefusalKind::InvalidArgument),
        (
            Refusal::QuorumNotMajority {
                quorum: 1,
                voters: 3,
            },
            RefusalKind::InvalidArgument,
        ),
        (
            Refusal::QuorumAboveVoters {
                quorum: 4,
                voters: 3,
            },
            RefusalKind::InvalidArgument,
        ),
        (Refusal::InvalidPort, RefusalKind::InvalidArgument),
        (
            Refusal::UnknownOption {
                option: "x".to_owned(),
            },
            RefusalKind::InvalidArgument,
        ),
        (
            Refusal::InvalidOptionValue {
                option: "x".to_owned(),
                value: "y".to_owned(),
            },
            RefusalKind::InvalidArgument,
        ),
        (
            Refusal::CandidateIsMaster {
                candidate: "a:1".to_owned(),
            },
            RefusalKind::InvalidArgument,
        ),
        (Refusal::EmptyName, RefusalKind::InvalidArgument),
        (Refusal::FailoverInProgress, RefusalKind::FailedPrecondition),
        (
            Refusal::NoFailoverInProgress {
                name: "m".to_owned(),
            },
            RefusalKind::FailedPrecondition,
        ),
        (
            Refusal::EpochMismatch {
                epoch: 1,
                in_progress: 2,
            },
            RefusalKind::FailedPrecondition,
        ),
        (
            Refusal::StaleEpoch {
                epoch: 1,
                current: 1,
            },
            RefusalKind::FailedPrecondition,
        ),
        (
            Refusal::CannotAbortPromoted { epoch: 1 },
            RefusalKind::FailedPrecondition,
        ),
        (
            Refusal::AlreadyPromoted { epoch: 1 },
            RefusalKind::FailedPrecondition,
        ),
        (
            Refusal::NotPromoted { epoch: 1 },
            RefusalKind::FailedPrecondition,
        ),
    ];
    for (refusal, kind) in table {
        assert_eq!(refusal.code(), kind, "{refusal:?}");
    }
}

/// A full history: monitor, settings, a failover, an aborted one, leases.
fn history() -> Vec<Command> {
    vec![
        monitor("mymaster", 6390, 2),
        monitor("other", 7000, 3),
        set(&[("auth-pass", "hunter2"), ("parallel-syncs", "2")]),
        discovered(&[6392, 6391]),
        holder(Some(1)),
        Command::LeaseGranted { holder: 1 },
        started(1, 6391, Some(2)),
        switched(1),
        ended(1),
        started(2, 6392, Some(3)),
        aborted(2, "slave-timeout"),
        Command::LeaseReleased { id: 10 },
        Command::Remove {
            name: "other".to_owned(),
        },
    ]
}

// DESIGN "apply is pure and deterministic": the same log gives the same state, results and events.
#[test]
fn same_log_same_state() {
    let (mut a, mut b) = (Log::new(), Log::new());
    for cmd in history() {
        assert_eq!(a.apply(&cmd), b.apply(&cmd));
    }
    assert_eq!(a.state, b.state);
    assert_eq!(a.mymaster().epoch, 2);
}

// DESIGN Storage: the state machine is persisted whole and commands travel in the log, so both
// survive a serde round trip unchanged (auth-pass included, in plaintext only inside storage).
#[test]
fn serde_roundtrip() {
    let mut log = Log::new();
    let mut applied = Vec::new();
    for cmd in history() {
        let json = serde_json::to_string(&cmd).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
        applied.push(log.apply(&cmd));
    }
    let json = serde_json::to_string(&log.state).unwrap();
    assert_eq!(
        serde_json::from_str::<TopologyState>(&json).unwrap(),
        log.state
    );
    assert_eq!(
        log.mymaster().auth_pass.as_ref().map(Secret::expose),
        Some("hunter2")
    );
    let json = serde_json::to_string(&applied).unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<Applied>>(&json).unwrap(),
        applied
    );
}
