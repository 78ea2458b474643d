//! Topology events as data, named and formatted exactly like Redis Sentinel's pub/sub messages
//! (channel = `kind`, message = `payload`). No I/O: the events module publishes them.

use serde::{Deserialize, Serialize};

use super::master::{Addr, MasterOption, MasterRecord};

/// One event produced by applying a command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopologyEvent {
    /// Sentinel channel name, e.g. "+switch-master".
    pub kind: String,
    pub payload: String,
    /// The monitored name the event is about, for filtering without parsing the payload.
    pub master: Option<String>,
    /// The master's highest started epoch once the command is applied.
    pub epoch: u64,
}

impl TopologyEvent {
    pub fn new(kind: impl Into<String>, payload: String, master: &MasterRecord) -> Self {
        TopologyEvent {
            kind: kind.into(),
            payload,
            master: Some(master.name.clone()),
            epoch: master.epoch,
        }
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

/// `+monitor` "%@ quorum <q>".
pub fn monitor(master: &MasterRecord) -> TopologyEvent {
    let payload = format!(
        "{} quorum {}",
        master_prefix(&master.name, &master.addr),
        master.quorum
    );
    TopologyEvent::new("+monitor", payload, master)
}

/// `-monitor` "%@".
pub fn unmonitor(master: &MasterRecord) -> TopologyEvent {
    TopologyEvent::new(
        "-monitor",
        master_prefix(&master.name, &master.addr),
        master,
    )
}

/// `+set` "%@ <option> <value>", the value as the client gave it except auth-pass (`******`).
pub fn set(master: &MasterRecord, option: &MasterOption, value: &str) -> TopologyEvent {
    let shown = if option.is_secret() { "******" } else { value };
    let payload = format!(
        "{} {} {}",
        master_prefix(&master.name, &master.addr),
        option.name(),
        shown
    );
    TopologyEvent::new("+set", payload, master)
}

/// An event whose payload is a master's `%@` (e.g. "+try-failover", "+failover-end").
pub fn about_master(kind: &str, master: &MasterRecord) -> TopologyEvent {
    TopologyEvent::new(kind, master_prefix(&master.name, &master.addr), master)
}

/// An event about the master as it was at `addr` (e.g. during a switch, the old address).
pub fn about_instance_at(kind: &str, master: &MasterRecord, addr: &Addr) -> TopologyEvent {
    TopologyEvent::new(kind, master_prefix(&master.name, addr), master)
}

/// An event whose payload is a replica's `%@` relative to `master_addr` (e.g. "+slave").
pub fn about_replica(
    kind: &str,
    replica: &Addr,
    master: &MasterRecord,
    master_addr: &Addr,
) -> TopologyEvent {
    let payload = replica_prefix(replica, &master.name, master_addr);
    TopologyEvent::new(kind, payload, master)
}

/// `+switch-master` "<name> <old-ip> <old-port> <new-ip> <new-port>" (no `%@` prefix).
pub fn switch_master(master: &MasterRecord, old: &Addr, new: &Addr) -> TopologyEvent {
    let payload = format!(
        "{} {} {} {} {}",
        master.name, old.host, old.port, new.host, new.port
    );
    TopologyEvent::new("+switch-master", payload, master)
}

/// `+new-epoch` "<epoch>".
pub fn new_epoch(master: &MasterRecord) -> TopologyEvent {
    TopologyEvent::new("+new-epoch", master.epoch.to_string(), master)
}

/// Sentinel's abort channels carry a fixed reason; any other reason uses the generic channel so
/// subscribers never see a channel name Sentinel does not publish.
pub fn failover_abort_kind(reason: &str) -> String {
    match reason {
        "not-elected" | "no-good-slave" | "slave-timeout" => format!("-failover-abort-{reason}"),
        _ => "-failover-abort".to_owned(),
    }
}
