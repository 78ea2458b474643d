//! The lab's fault vocabulary, shared by tests/lab.rs and the nemesis (tests/nemesis.rs): what can
//! go wrong with a host, its processes, its links, the membership or the operator, as data. A
//! fault prints as one line and parses back (a nemesis schedule is a list of them), and the
//! network-level ones map onto deploy/lab/lab.sh's verbs, so a new fault is one variant here.

use std::fmt;
use std::str::FromStr;

/// A process of a lab host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Daemon {
    Raftinel,
    Redis,
}

impl Daemon {
    /// The name the lab spawns it under, and the pattern lab.sh's pause/resume match.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Raftinel => "raftinel",
            Daemon::Redis => "redis",
        }
    }

    /// What lab.sh pause/resume look for in the process's command line.
    pub fn pattern(self) -> &'static str {
        match self {
            Daemon::Raftinel => "raftinel serve",
            Daemon::Redis => "redis-server",
        }
    }
}

/// How a partition cuts a host off (lab.sh partition MODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Packets silently dropped both ways.
    Drop,
    /// Connections refused at once.
    Reject,
    /// Only what the host receives is dropped (one-way).
    In,
    /// Only what the host sends is dropped (one-way).
    Out,
}

impl Cut {
    pub fn mode(self) -> &'static str {
        match self {
            Cut::Drop => "drop",
            Cut::Reject => "reject",
            Cut::In => "in",
            Cut::Out => "out",
        }
    }
}

/// One fault. Each has an undo (`Fault::undo` says which lab verbs, the nemesis does the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of one daemon; undone by restarting it.
    Kill { host: String, daemon: Daemon },
    /// SIGSTOP of one daemon; undone by SIGCONT.
    Pause { host: String, daemon: Daemon },
    /// The host's link down, then every process in it killed; undone by bringing the link up and
    /// restarting its daemons.
    KillHost { host: String },
    /// `host` cut off from the other hosts (not from the client), or from `peer` only.
    Partition {
        host: String,
        cut: Cut,
        peer: Option<String>,
    },
    /// A fourth raftinel node (on n4) added to the cluster; undone by removing it.
    AddNode,
    /// The host's raftinel removed from the cluster and its data dir wiped; undone by rejoining
    /// it under a new id.
    Replace { host: String },
    /// `ctl switchover`: a lossless planned handover to the best replica.
    Switchover,
    /// `ctl pause`: maintenance, no failover; undone by `ctl resume`.
    Maintenance,
}

impl Fault {
    pub fn pause(host: &str, daemon: Daemon) -> Fault {
        Fault::Pause {
            host: host.to_owned(),
            daemon,
        }
    }

    pub fn kill_host(host: &str) -> Fault {
        Fault::KillHost {
            host: host.to_owned(),
        }
    }

    /// `host` cut off from every other host.
    pub fn partition(host: &str, cut: Cut) -> Fault {
        Fault::Partition {
            host: host.to_owned(),
            cut,
            peer: None,
        }
    }

    /// lab.sh's arguments that inject this fault, for the ones that are lab verbs.
    pub fn lab_args(&self) -> Option<Vec<String>> {
        let v = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect());
        match self {
            Fault::Pause { host, daemon } => v(&["pause", host, daemon.pattern()]),
            Fault::KillHost { host } => v(&["kill-host", host]),
            Fault::Partition { host, cut, peer } => {
                let mut a = vec!["partition", host.as_str(), cut.mode()];
                a.extend(peer.as_deref());
                v(&a)
            }
            _ => None,
        }
    }

    /// lab.sh's arguments that undo the network or signal side of this fault (restarting
    /// daemons and membership steps are the caller's).
    pub fn heal_args(&self) -> Option<Vec<String>> {
        let v = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect());
        match self {
            Fault::Pause { host, daemon } => v(&["resume", host, daemon.pattern()]),
            Fault::KillHost { host } | Fault::Partition { host, .. } => v(&["heal", host]),
            _ => None,
        }
    }

    /// The lab host this fault acts on, if one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Fault::Kill { host, .. }
            | Fault::Pause { host, .. }
            | Fault::KillHost { host }
            | Fault::Partition { host, .. }
            | Fault::Replace { host } => Some(host),
            Fault::AddNode => Some("n4"),
            Fault::Switchover | Fault::Maintenance => None,
        }
    }

    /// The kind, for the nemesis's counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill {
                daemon: Daemon::Raftinel,
                ..
            } => "kill raftinel",
            Fault::Kill {
                daemon: Daemon::Redis,
                ..
            } => "kill redis",
            Fault::Pause {
                daemon: Daemon::Raftinel,
                ..
            } => "pause raftinel",
            Fault::Pause {
                daemon: Daemon::Redis,
                ..
            } => "pause redis",
            Fault::KillHost { .. } => "kill host",
            Fault::Partition { peer: Some(_), .. } => "partition one link",
            Fault::Partition {
                cut: Cut::In | Cut::Out,
                ..
            } => "partition one-way",
            Fault::Partition { .. } => "partition",
            Fault::AddNode => "add fourth node",
            Fault::Replace { .. } => "wipe and rejoin",
            Fault::Switchover => "switchover",
            Fault::Maintenance => "pause/resume",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { host, daemon } => write!(f, "kill {host} {}", daemon.name()),
            Fault::Pause { host, daemon } => write!(f, "pause {host} {}", daemon.name()),
            Fault::KillHost { host } => write!(f, "kill-host {host}"),
            Fault::Partition { host, cut, peer } => {
                write!(f, "partition {host} {}", cut.mode())?;
                match peer {
                    Some(p) => write!(f, " {p}"),
                    None => Ok(()),
                }
            }
            Fault::AddNode => write!(f, "add-node"),
            Fault::Replace { host } => write!(f, "replace {host}"),
            Fault::Switchover => write!(f, "switchover"),
            Fault::Maintenance => write!(f, "maintenance"),
        }
    }
}

const HOSTS: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn host(word: Option<&str>) -> Result<String, String> {
    match word {
        Some(h) if HOSTS.contains(&h) => Ok(h.to_owned()),
        Some(h) => Err(format!("unknown host `{h}` (n1, n2, n3, n4)")),
        None => Err("missing host".to_owned()),
    }
}

fn daemon(word: Option<&str>) -> Result<Daemon, String> {
    match word {
        Some("raftinel") => Ok(Daemon::Raftinel),
        Some("redis") => Ok(Daemon::Redis),
        other => Err(format!("`{other:?}` is not raftinel or redis")),
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let mut w = s.split_whitespace();
        let fault = match w.next() {
            Some("kill") => Fault::Kill {
                host: host(w.next())?,
                daemon: daemon(w.next())?,
            },
            Some("pause") => Fault::Pause {
                host: host(w.next())?,
                daemon: daemon(w.next())?,
            },
            Some("kill-host") => Fault::KillHost {
                host: host(w.next())?,
            },
            Some("partition") => {
                let h = host(w.next())?;
                let cut = match w.next() {
                    Some("drop") => Cut::Drop,
                    Some("reject") => Cut::Reject,
                    Some("in") => Cut::In,
                    Some("out") => Cut::Out,
                    other => return Err(format!("`{other:?}` is not drop, reject, in or out")),
                };
                let peer = w.next().map(|p| host(Some(p))).transpose()?;
                Fault::Partition { host: h, cut, peer }
            }
            Some("add-node") => Fault::AddNode,
            Some("replace") => Fault::Replace {
                host: host(w.next())?,
            },
            Some("switchover") => Fault::Switchover,
            Some("maintenance") => Fault::Maintenance,
            other => return Err(format!("unknown fault `{other:?}`")),
        };
        match w.next() {
            Some(extra) => Err(format!("unexpected `{extra}` after `{fault}`")),
            None => Ok(fault),
        }
    }
}
