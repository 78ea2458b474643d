//! Topology events as typed data: what happened and to which instance. Sentinel's pub/sub text
//! (channel and message) is made from them in one place, [`TopologyEvent::text`], at the edges
//! that speak Sentinel (pub/sub, Watch, the notification-script); everything else (hooks' client
//! reconfiguration, flags) reads the fields. No I/O.

use serde::{Deserialize, Serialize};

use super::master::{Addr, MasterOption, MasterRecord};

/// One event, with the master name it is about and the master's highest started epoch then.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopologyEvent {
    /// The monitored name the event is about; `None` for the node's own TILT and script errors.
    pub master: Option<String>,
    pub epoch: u64,
    pub event: Event,
}

/// The instance an event is about, as Sentinel's `%@` names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Instance {
    /// The master (of the event's name) at `at`.
    Master { at: Addr },
    /// A replica at `at` of the master at `master_at`.
    Replica { at: Addr, master_at: Addr },
    /// A raftinel node, in Sentinel's terms a peer sentinel with run id `id`, at its Sentinel
    /// port `at`, watching the master at `master_at`.
    Sentinel {
        id: String,
        at: Addr,
        master_at: Addr,
    },
}

/// The events whose message is the instance's `%@` and nothing else.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    TryFailover,
    ElectedLeader,
    SelectSlave,
    SelectedSlave,
    SendSlaveofNoone,
    WaitPromotion,
    PromotedSlave,
    ReconfSlaves,
    Slave,
    ReconfSent,
    ReconfInprog,
    ReconfDone,
    FixSlaveConfig,
    ConvertToSlave,
    FailoverEnd,
    Abort(Abort),
    Paused,
    Unpaused,
    ResetMaster,
    Reboot,
    /// A peer joined (`+sentinel`).
    Sentinel,
    /// This node learnt a new configuration from the peer that ran the failover.
    ConfigUpdateFrom,
}

/// Why a failover was given up: Sentinel's own reasons have their own channel.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abort {
    NotElected,
    NoGoodSlave,
    SlaveTimeout,
    /// raftinel's other reasons (operator, candidate unreachable, ...): the generic channel.
    Other,
}

impl Abort {
    pub fn of(reason: &str) -> Abort {
        match reason {
            "not-elected" => Abort::NotElected,
            "no-good-slave" => Abort::NoGoodSlave,
            "slave-timeout" => Abort::SlaveTimeout,
            _ => Abort::Other,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Monitor {
        at: Addr,
        quorum: u32,
    },
    Unmonitor {
        at: Addr,
    },
    /// `value` as the client gave it, `******` for a secret.
    Set {
        at: Addr,
        option: String,
        value: String,
    },
    NewEpoch,
    Step {
        step: Step,
        about: Instance,
    },
    SwitchMaster {
        from: Addr,
        to: Addr,
    },
    Sdown {
        about: Instance,
        down: bool,
    },
    /// `votes` of `quorum` nodes saw the master down (reported when it goes down).
    Odown {
        at: Addr,
        down: bool,
        votes: u32,
        quorum: u32,
    },
    /// The instance reports `reports_master`; `expected` when that is the role the log gives it.
    RoleChange {
        about: Instance,
        reports_master: bool,
        expected: bool,
    },
    /// An instance is ahead of the log (`+topology-conflict`).
    Conflict {
        at: Addr,
        instance: Addr,
        detail: String,
    },
    /// The operator resolved a conflict, keeping `keep`.
    Resolved {
        at: Addr,
        keep: Addr,
    },
    Tilt {
        entered: bool,
    },
    /// A script ended badly for good: killed by `signal`, or exit `code` other than 0 and 1.
    ScriptError {
        path: String,
        signal: i32,
        code: i32,
    },
    /// A script ran past the time limit and was killed.
    ScriptTimeout {
        path: String,
        pid: u32,
    },
}

impl Step {
    pub fn channel(self) -> &'static str {
        match self {
            Step::TryFailover => "+try-failover",
            Step::ElectedLeader => "+elected-leader",
            Step::SelectSlave => "+failover-state-select-slave",
            Step::SelectedSlave => "+selected-slave",
            Step::SendSlaveofNoone => "+failover-state-send-slaveof-noone",
            Step::WaitPromotion => "+failover-state-wait-promotion",
            Step::PromotedSlave => "+promoted-slave",
            Step::ReconfSlaves => "+failover-state-reconf-slaves",
            Step::Slave => "+slave",
            Step::ReconfSent => "+slave-reconf-sent",
            Step::ReconfInprog => "+slave-reconf-inprog",
            Step::ReconfDone => "+slave-reconf-done",
            Step::FixSlaveConfig => "+fix-slave-config",
            Step::ConvertToSlave => "+convert-to-slave",
            Step::FailoverEnd => "+failover-end",
            Step::Abort(Abort::NotElected) => "-failover-abort-not-elected",
            Step::Abort(Abort::NoGoodSlave) => "-failover-abort-no-good-slave",
            Step::Abort(Abort::SlaveTimeout) => "-failover-abort-slave-timeout",
            Step::Abort(Abort::Other) => "-failover-abort",
            Step::Paused => "+paused",
            Step::Unpaused => "-paused",
            Step::ResetMaster => "+reset-master",
            Step::Reboot => "+reboot",
            Step::Sentinel => "+sentinel",
            Step::ConfigUpdateFrom => "+config-update-from",
        }
    }
}

impl Instance {
    fn addrs(&self) -> Vec<&Addr> {
        match self {
            Instance::Master { at } => vec![at],
            Instance::Replica { at, master_at } | Instance::Sentinel { at, master_at, .. } => {
                vec![at, master_at]
            }
        }
    }

    fn addrs_mut(&mut self) -> Vec<&mut Addr> {
        match self {
            Instance::Master { at } => vec![at],
            Instance::Replica { at, master_at } | Instance::Sentinel { at, master_at, .. } => {
                vec![at, master_at]
            }
        }
    }
}

impl Event {
    /// Every address the event names, in the order `addrs_mut` gives them.
    fn addrs(&self) -> Vec<&Addr> {
        match self {
            Event::Monitor { at, .. }
            | Event::Unmonitor { at }
            | Event::Set { at, .. }
            | Event::Odown { at, .. } => vec![at],
            Event::Step { about, .. } | Event::Sdown { about, .. } => about.addrs(),
            Event::RoleChange { about, .. } => about.addrs(),
            Event::SwitchMaster { from, to } => vec![from, to],
            Event::Conflict { at, instance, .. } => vec![at, instance],
            Event::Resolved { at, keep } => vec![at, keep],
            Event::NewEpoch
            | Event::Tilt { .. }
            | Event::ScriptError { .. }
            | Event::ScriptTimeout { .. } => Vec::new(),
        }
    }

    fn addrs_mut(&mut self) -> Vec<&mut Addr> {
        match self {
            Event::Monitor { at, .. }
            | Event::Unmonitor { at }
            | Event::Set { at, .. }
            | Event::Odown { at, .. } => vec![at],
            Event::Step { about, .. } | Event::Sdown { about, .. } => about.addrs_mut(),
            Event::RoleChange { about, .. } => about.addrs_mut(),
            Event::SwitchMaster { from, to } => vec![from, to],
            Event::Conflict { at, instance, .. } => vec![at, instance],
            Event::Resolved { at, keep } => vec![at, keep],
            Event::NewEpoch
            | Event::Tilt { .. }
            | Event::ScriptError { .. }
            | Event::ScriptTimeout { .. } => Vec::new(),
        }
    }

    /// Sentinel's channel name, e.g. "+switch-master".
    pub fn channel(&self) -> &'static str {
        match self {
            Event::Monitor { .. } => "+monitor",
            Event::Unmonitor { .. } => "-monitor",
            Event::Set { .. } => "+set",
            Event::NewEpoch => "+new-epoch",
            Event::Step { step, .. } => step.channel(),
            Event::SwitchMaster { .. } => "+switch-master",
            Event::Sdown { down: true, .. } => "+sdown",
            Event::Sdown { down: false, .. } => "-sdown",
            Event::Odown { down: true, .. } => "+odown",
            Event::Odown { down: false, .. } => "-odown",
            Event::RoleChange { expected: true, .. } => "+role-change",
            Event::RoleChange {
                expected: false, ..
            } => "-role-change",
            Event::Conflict { .. } => "+topology-conflict",
            Event::Resolved { .. } => "-topology-conflict",
            Event::Tilt { entered: true } => "+tilt",
            Event::Tilt { entered: false } => "-tilt",
            Event::ScriptError { .. } => "-script-error",
            Event::ScriptTimeout { .. } => "-script-timeout",
        }
    }
}

impl TopologyEvent {
    pub fn new(event: Event, master: &MasterRecord) -> Self {
        TopologyEvent {
            master: Some(master.name.clone()),
            epoch: master.epoch,
            event,
        }
    }

    /// An event of this node's own, about no master.
    pub fn node(event: Event) -> Self {
        TopologyEvent {
            master: None,
            epoch: 0,
            event,
        }
    }

    pub fn channel(&self) -> &'static str {
        self.event.channel()
    }

    /// Sentinel's message for the event, byte for byte.
    pub fn payload(&self) -> String {
        let name = self.master.as_deref().unwrap_or("");
        match &self.event {
            Event::Monitor { at, quorum } => format!("{} quorum {quorum}", master_prefix(name, at)),
            Event::Unmonitor { at } => master_prefix(name, at),
            Event::Set { at, option, value } => {
                format!("{} {option} {value}", master_prefix(name, at))
            }
            Event::NewEpoch => self.epoch.to_string(),
            Event::Step { about, .. } | Event::Sdown { about, .. } => prefix(name, about),
            Event::SwitchMaster { from, to } => {
                format!("{name} {} {} {} {}", from.host, from.port, to.host, to.port)
            }
            Event::Odown {
                at,
                down: true,
                votes,
                quorum,
            } => format!("{} #quorum {votes}/{quorum}", master_prefix(name, at)),
            Event::Odown { at, .. } => master_prefix(name, at),
            Event::RoleChange {
                about,
                reports_master,
                ..
            } => {
                let role = if *reports_master { "master" } else { "slave" };
                format!("{} new reported role is {role}", prefix(name, about))
            }
            Event::Conflict {
                at,
                instance,
                detail,
            } => format!(
                "{} {} {} {detail}",
                master_prefix(name, at),
                instance.host,
                instance.port
            ),
            Event::Resolved { at, keep } => format!("{} keep {keep}", master_prefix(name, at)),
            Event::Tilt { entered: true } => "#tilt mode entered".to_owned(),
            Event::Tilt { entered: false } => "#tilt mode exited".to_owned(),
            Event::ScriptError { path, signal, code } => format!("{path} {signal} {code}"),
            Event::ScriptTimeout { path, pid } => format!("{path} {pid}"),
        }
    }

    /// The event with each address respelled by `show` (`None`: keep it), or `None` when no
    /// address changes: the Sentinel port announces hostnames or their addresses.
    pub fn respelled(&self, show: impl Fn(&Addr) -> Option<Addr>) -> Option<TopologyEvent> {
        // Most events name IP addresses only: no copy for them.
        let mut shown: Vec<Option<Addr>> = self.event.addrs().into_iter().map(&show).collect();
        if shown.iter().all(Option::is_none) {
            return None;
        }
        let mut out = self.clone();
        for (a, s) in out.event.addrs_mut().into_iter().zip(shown.iter_mut()) {
            if let Some(s) = s.take() {
                *a = s;
            }
        }
        Some(out)
    }

    /// Channel and message, for the Sentinel-speaking edges.
    pub fn text(&self) -> (&'static str, String) {
        (self.channel(), self.payload())
    }
}

/// Sentinel's `%@` for an instance of master `name`.
fn prefix(name: &str, about: &Instance) -> String {
    match about {
        Instance::Master { at } => master_prefix(name, at),
        Instance::Replica { at, master_at } => replica_prefix(at, name, master_at),
        Instance::Sentinel { id, at, master_at } => format!(
            "sentinel {id} {} {} @ {name} {} {}",
            at.host, at.port, master_at.host, master_at.port
        ),
    }
}

/// Sentinel's `%@` for a master: "master <name> <ip> <port>".
pub fn master_prefix(name: &str, addr: &Addr) -> String {
    format!("master {} {} {}", name, addr.host, addr.port)
}

/// Sentinel's `%@` for a replica:
/// "slave <ip>:<port> <ip> <port> @ <master-name> <master-ip> <master-port>".
pub fn replica_prefix(replica: &Addr, master_name: &str, master_addr: &Addr) -> String {
    format!(
        "slave {} {} {} @ {} {} {}",
        replica, replica.host, replica.port, master_name, master_addr.host, master_addr.port
    )
}

/// The instance at `addr` of `master`: the master itself or one of its replicas.
pub fn instance_of(master: &MasterRecord, addr: &Addr) -> Instance {
    if *addr == master.addr {
        Instance::Master { at: addr.clone() }
    } else {
        Instance::Replica {
            at: addr.clone(),
            master_at: master.addr.clone(),
        }
    }
}

/// `+monitor` "%@ quorum <q>".
pub fn monitor(master: &MasterRecord) -> TopologyEvent {
    let event = Event::Monitor {
        at: master.addr.clone(),
        quorum: master.quorum,
    };
    TopologyEvent::new(event, master)
}

/// `-monitor` "%@".
pub fn unmonitor(master: &MasterRecord) -> TopologyEvent {
    let event = Event::Unmonitor {
        at: master.addr.clone(),
    };
    TopologyEvent::new(event, master)
}

/// `+set` "%@ <option> <value>", the value as the client gave it except auth-pass (`******`).
pub fn set(master: &MasterRecord, option: &MasterOption, value: &str) -> TopologyEvent {
    let shown = if option.is_secret() { "******" } else { value };
    let event = Event::Set {
        at: master.addr.clone(),
        option: option.name().to_owned(),
        value: shown.to_owned(),
    };
    TopologyEvent::new(event, master)
}

/// A step about the master at its current address (e.g. "+try-failover", "+failover-end").
pub fn about_master(step: Step, master: &MasterRecord) -> TopologyEvent {
    about_instance_at(step, master, &master.addr)
}

/// A step about the master as it was at `addr` (e.g. during a switch, the old address).
pub fn about_instance_at(step: Step, master: &MasterRecord, addr: &Addr) -> TopologyEvent {
    let about = Instance::Master { at: addr.clone() };
    TopologyEvent::new(Event::Step { step, about }, master)
}

/// A step about a replica relative to the master at `master_addr` (e.g. "+slave").
pub fn about_replica(
    step: Step,
    replica: &Addr,
    master: &MasterRecord,
    master_addr: &Addr,
) -> TopologyEvent {
    let about = Instance::Replica {
        at: replica.clone(),
        master_at: master_addr.clone(),
    };
    TopologyEvent::new(Event::Step { step, about }, master)
}

/// `+switch-master` "<name> <old-ip> <old-port> <new-ip> <new-port>" (no `%@` prefix).
pub fn switch_master(master: &MasterRecord, old: &Addr, new: &Addr) -> TopologyEvent {
    let event = Event::SwitchMaster {
        from: old.clone(),
        to: new.clone(),
    };
    TopologyEvent::new(event, master)
}

/// `+new-epoch` "<epoch>".
pub fn new_epoch(master: &MasterRecord) -> TopologyEvent {
    TopologyEvent::new(Event::NewEpoch, master)
}

/// The failover abort for `reason`.
pub fn abort(master: &MasterRecord, reason: &str) -> TopologyEvent {
    about_master(Step::Abort(Abort::of(reason)), master)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MasterRecord {
        MasterRecord::new("mymaster", Addr::new("10.0.0.1", 6379), 2, 5000)
    }

    // Sentinel §2.2: each kind's channel and `%@` message.
    #[test]
    fn sentinel_text_of_each_shape() {
        let m = record();
        let r = Addr::new("10.0.0.2", 6380);
        let cases = [
            (
                monitor(&m),
                "+monitor",
                "master mymaster 10.0.0.1 6379 quorum 2",
            ),
            (
                about_replica(Step::ReconfDone, &r, &m, &m.addr),
                "+slave-reconf-done",
                "slave 10.0.0.2:6380 10.0.0.2 6380 @ mymaster 10.0.0.1 6379",
            ),
            (
                switch_master(&m, &m.addr, &r),
                "+switch-master",
                "mymaster 10.0.0.1 6379 10.0.0.2 6380",
            ),
            (
                TopologyEvent::new(
                    Event::Odown {
                        at: m.addr.clone(),
                        down: true,
                        votes: 3,
                        quorum: 2,
                    },
                    &m,
                ),
                "+odown",
                "master mymaster 10.0.0.1 6379 #quorum 3/2",
            ),
            (
                TopologyEvent::new(
                    Event::Step {
                        step: Step::ConfigUpdateFrom,
                        about: Instance::Sentinel {
                            id: "ab".into(),
                            at: Addr::new("10.0.0.9", 26379),
                            master_at: m.addr.clone(),
                        },
                    },
                    &m,
                ),
                "+config-update-from",
                "sentinel ab 10.0.0.9 26379 @ mymaster 10.0.0.1 6379",
            ),
            (
                TopologyEvent::node(Event::ScriptError {
                    path: "/bin/n".into(),
                    signal: 9,
                    code: 0,
                }),
                "-script-error",
                "/bin/n 9 0",
            ),
            (
                abort(&m, "operator"),
                "-failover-abort",
                "master mymaster 10.0.0.1 6379",
            ),
        ];
        for (event, channel, payload) in cases {
            assert_eq!(event.text(), (channel, payload.to_owned()));
        }
    }

    #[test]
    fn respelling_changes_only_the_addresses_shown() {
        let ev = TopologyEvent {
            master: Some("m".into()),
            epoch: 3,
            event: Event::SwitchMaster {
                from: Addr::new("a.test", 1),
                to: Addr::new("10.0.0.2", 2),
            },
        };
        assert_eq!(ev.respelled(|_| None), None);
        let shown = ev
            .respelled(|a| (a.host == "a.test").then(|| Addr::new("10.0.0.1", a.port)))
            .unwrap();
        assert_eq!(shown.payload(), "m 10.0.0.1 1 10.0.0.2 2");
        assert_eq!(shown.epoch, 3);
    }
}
