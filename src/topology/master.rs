//! One monitored master: its address, Sentinel settings, known replicas, epochs and lease holder,
//! plus SENTINEL SET option parsing. No I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::failover::{FailoverOutcome, FailoverRecord};
use super::refusal::Refusal;

/// Sentinel's default `failover-timeout`.
pub const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 180_000;
/// Sentinel's default `parallel-syncs`.
pub const DEFAULT_PARALLEL_SYNCS: u32 = 1;
/// The highest `min-replicas-to-write` an operator may set: one more (Redis's maximum) is the
/// lease fence, and a master carrying it would read as fenced.
pub const MAX_MIN_REPLICAS: u32 = 2_147_483_646;
/// The highest `min-replicas-max-lag`, Redis's own maximum (INT_MAX seconds).
pub const MAX_MIN_REPLICAS_LAG: u32 = 2_147_483_647;

/// A Redis instance address as Sentinel reports it (`ip` and `port` fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Addr {
            host: host.into(),
            port,
        }
    }

    /// SENTINEL MONITOR's range check on an already parsed integer port: outside 0..=65535 is
    /// "Invalid port number."; port 0 is accepted because Sentinel accepts it.
    pub fn checked(host: impl Into<String>, port: i64) -> Result<Self, Refusal> {
        let port = u16::try_from(port).map_err(|_| Refusal::InvalidPort)?;
        Ok(Addr::new(host, port))
    }

    /// What the log takes as a host wherever a MONITOR is applied: an IP address, or a name
    /// that could be one in DNS (RFC 1123 labels: letters, digits and inner hyphens, 1–63 bytes
    /// each, 253 in all). Whether a name resolves is the accepting node's check (it depends on
    /// the time and the resolver, so it cannot be the state machine's).
    pub fn valid_host(host: &str) -> bool {
        if host.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            // An all-numeric last label would read as a mistyped IP address.
            && !name.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl fmt::Display for Addr {
    /// "host:port", with an IPv6 host in brackets as Sentinel's `anetFormatAddr` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A password that never shows up in logs, `Debug` output or events.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plaintext, for the one place that needs it: AUTH towards Redis.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

/// A replica known for a master; empty `run_id` / `replid` mean "not reported yet".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRecord {
    pub addr: Addr,
    pub run_id: String,
    pub replid: String,
}

/// Everything the log says about one monitored name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MasterRecord {
    pub name: String,
    pub addr: Addr,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    pub auth_user: Option<String>,
    pub auth_pass: Option<Secret>,
    /// raftinel's `tls` option: the master and its replicas speak only TLS (Redis's
    /// `tls-port`), so every connection to them uses TLS with the node's `[redis-tls]` files.
    pub tls: bool,
    /// Redis's `min-replicas-to-write` / `min-replicas-max-lag` for this master, as the operator
    /// set them here: what the co-located node puts on the master when it lifts the fence.
    pub min_replicas: MinReplicas,
    /// Sorted by address and unique, so equal sets compare equal on every replica.
    pub replicas: Vec<ReplicaRecord>,
    /// The current master's replication id, recorded at each switch (the lineage, invariant 7).
    pub replid: Option<String>,
    /// Epoch of the current master configuration (Sentinel's `config-epoch`).
    pub config_epoch: u64,
    /// Highest epoch ever started for this name; never goes back, always >= `config_epoch`.
    pub epoch: u64,
    pub failover: Option<FailoverRecord>,
    /// Node id whose lease covers the master's host; its grant is revoked when a failover starts.
    pub holder: Option<u64>,
    /// The last failovers, oldest first, at most `HISTORY_LEN`: anti-flapping reads the last
    /// one (invariant 3), `raftinel ctl history` all of them.
    pub history: Vec<FailoverOutcome>,
    /// Maintenance: observe, never act (`raftinel ctl pause`).
    pub paused: bool,
    /// An operator's failover or switchover, answered by the next FailoverStarted.
    pub request: Option<FailoverRequest>,
    /// An instance found ahead of the log (invariant 7), waiting for `raftinel ctl resolve`.
    pub conflict: Option<Conflict>,
    /// Instances an operator allowed to be overwritten by `resolve`; cleared at FailoverEnded.
    pub overwrite_ok: Vec<Addr>,
    /// Sentinel's `notification-script`: run by the Raft leader for WARNING events of this master
    /// (see `hooks`). Set only through SET, where the receiving node checks the path; the node
    /// that would run it applies its own `deny-scripts-reconfig` (invariant 12).
    pub notification_script: Option<String>,
    /// Sentinel's `client-reconfig-script`: run by the Raft leader on `+switch-master`.
    pub client_reconfig_script: Option<String>,
    /// The virtual IP that follows this master (`vip`), held by its lease holder's host.
    pub vip: Option<Vip>,
    /// The interface the VIP goes on (`vip-interface`), unless a node's own config names one.
    pub vip_interface: Option<String>,
    /// The grant the last failover revoked: the new holder adds the VIP only once a majority
    /// says the old holder's VIP lifetime is over too.
    pub last_revoked: Option<super::failover::Revoked>,
    /// Nodes that cannot carry this master's VIP and why (no CAP_NET_ADMIN, no such interface,
    /// Redis not listening on it), as each reported: such a node is never given the VIP.
    pub vip_problems: std::collections::BTreeMap<u64, String>,
    /// raftinel's `min-failover-interval` (ms, 0: off): orchestrator-style blocking, no automatic
    /// failover within this long of the last one's start, whether it completed or not.
    pub min_failover_interval_ms: u64,
    /// `raftinel ctl reset-failover-delay` (and SENTINEL RESET): attempts up to this epoch delay
    /// no automatic failover.
    pub retry_cleared_epoch: u64,
    /// The leader's verdict that a quorum sees the master at `addr` down (Sentinel's ODOWN), so
    /// every node shows it and publishes `+odown`; cleared when up again or switched.
    pub odown: Option<Odown>,
    /// How far each replica is in following the new master, during the failover in progress
    /// (Sentinel's reconf_sent / reconf_inprog / reconf_done); cleared when it ends.
    pub reconf: std::collections::BTreeMap<Addr, Reconf>,
    /// Sentinel's `master-reboot-down-after-period` (ms, 0: off): a master that restarted (new
    /// run id) is down until it answers PING with PONG, or this long.
    pub reboot_down_after_ms: u64,
    /// Sentinel's `rename-command`: the name each command raftinel sends has on these instances,
    /// by the command's name in lower case.
    pub renamed: std::collections::BTreeMap<String, String>,
}

/// A quorum saw the master down: since when (the leader's clock), and the count it saw.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Odown {
    pub since_ms: u64,
    pub votes: u32,
    pub quorum: u32,
}

/// A replica's progress in following the new master, in order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reconf {
    /// Told REPLICAOF the new master.
    Sent,
    /// Reports the new master, link not up yet.
    Inprog,
    /// Reports the new master with the link up.
    Done,
}

/// The operator's `min-replicas-to-write` and `min-replicas-max-lag` (seconds) for a master.
/// The lease fence replaces them while the master's node holds no lease; unfencing puts these
/// back, so they live in the log (durable before any fence) rather than in Redis alone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinReplicas {
    /// At most [`MAX_MIN_REPLICAS`]; 0 switches the check off.
    pub to_write: u32,
    /// At least 1 (Redis switches the check off at 0), at most [`MAX_MIN_REPLICAS_LAG`].
    pub max_lag_s: u32,
}

impl Default for MinReplicas {
    /// Redis's own defaults.
    fn default() -> Self {
        MinReplicas {
            to_write: 0,
            max_lag_s: 10,
        }
    }
}

impl MinReplicas {
    /// What one Redis gets when it is master under several names (which MONITOR should refuse):
    /// the most replicas any name asks for, within the shortest lag of the names that ask for any.
    pub fn strictest(all: impl IntoIterator<Item = MinReplicas>) -> MinReplicas {
        let all: Vec<MinReplicas> = all.into_iter().collect();
        let to_write = all.iter().map(|m| m.to_write).max().unwrap_or(0);
        // A name that asks for no replica has no say in the lag.
        let max_lag_s = all
            .iter()
            .filter(|m| m.to_write > 0)
            .map(|m| m.max_lag_s)
            .min()
            .or_else(|| all.iter().map(|m| m.max_lag_s).min())
            .unwrap_or(MinReplicas::default().max_lag_s);
        MinReplicas {
            to_write,
            max_lag_s,
        }
    }
}

/// An IPv4 address with its prefix length, e.g. 10.77.0.200/24 (IPv6 is not supported yet).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vip {
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl std::str::FromStr for Vip {
    type Err = ();

    /// `A.B.C.D/N` with N in `MIN_VIP_PREFIX..=32`; a bare address is /32. See [`Vip::sane`].
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, p.parse::<u8>().map_err(|_| ())?),
            None => (s, 32),
        };
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| ())?;
        let vip = Vip { ip, prefix };
        vip.sane().map_err(|_| ())?;
        Ok(vip)
    }
}

/// The shortest VIP prefix accepted: a /0../7 "subnet" would make the holder claim a route to
/// a sixteenth of the Internet or more on its interface.
pub const MIN_VIP_PREFIX: u8 = 8;

impl Vip {
    /// Whether this can be a host's address: prefix in `MIN_VIP_PREFIX..=32`, not unspecified,
    /// multicast or broadcast, and not the network or broadcast address of its own subnet (which
    /// /31 and /32 do not have, RFC 3021). Checked in `apply` (through SET) and again by every
    /// node before it adds a VIP, for VIPs that an older log let in.
    pub fn sane(&self) -> Result<(), &'static str> {
        if !(MIN_VIP_PREFIX..=32).contains(&self.prefix) {
            return Err("the prefix length must be 8 to 32");
        }
        if self.ip.is_unspecified() || self.ip.is_multicast() || self.ip.is_broadcast() {
            return Err("not a unicast address");
        }
        if self.prefix <= 30 {
            let host_bits = u32::MAX >> self.prefix;
            let bits = u32::from(self.ip) & host_bits;
            if bits == 0 {
                return Err("it is the network address of its subnet");
            }
            if bits == host_bits {
                return Err("it is the broadcast address of its subnet");
            }
        }
        Ok(())
    }
}

/// `+topology-conflict`: what was found, for the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub addr: Addr,
    pub detail: String,
}

/// What an operator asked for with `raftinel ctl failover` / `switchover`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailoverRequest {
    pub kind: RequestKind,
    /// The leader's wall clock when it was committed; a request older than failover-timeout lapses.
    pub at_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Sentinel's SENTINEL FAILOVER: promote the best replica now, even if writes are lost.
    Forced,
    /// Lossless handover with Redis's FAILOVER TO: to the given replica, or the best one.
    Switchover { to: Option<Addr> },
    /// `resolve --keep` named an instance that already acts as master: make the log follow it.
    Adopt { addr: Addr },
}

impl MasterRecord {
    /// "lease" when a raftinel node on the master's host fences it unless it holds the lease;
    /// "none" when no node is co-located, so nothing fences it (invariant 5).
    pub fn fencing(&self) -> &'static str {
        if self.holder.is_some() {
            "lease"
        } else {
            "none"
        }
    }

    pub fn new(name: impl Into<String>, addr: Addr, quorum: u32, down_after_ms: u64) -> Self {
        MasterRecord {
            name: name.into(),
            addr,
            quorum,
            down_after_ms,
            failover_timeout_ms: DEFAULT_FAILOVER_TIMEOUT_MS,
            parallel_syncs: DEFAULT_PARALLEL_SYNCS,
            auth_user: None,
            auth_pass: None,
            tls: false,
            min_replicas: MinReplicas::default(),
            replicas: Vec::new(),
            replid: None,
            config_epoch: 0,
            epoch: 0,
            failover: None,
            holder: None,
            history: Vec::new(),
            paused: false,
            request: None,
            conflict: None,
            overwrite_ok: Vec::new(),
            notification_script: None,
            client_reconfig_script: None,
            vip: None,
            vip_interface: None,
            last_revoked: None,
            vip_problems: std::collections::BTreeMap::new(),
            min_failover_interval_ms: 0,
            retry_cleared_epoch: 0,
            odown: None,
            reconf: std::collections::BTreeMap::new(),
            reboot_down_after_ms: 0,
            renamed: std::collections::BTreeMap::new(),
        }
    }

    pub fn last_failover(&self) -> Option<&FailoverOutcome> {
        self.history.last()
    }

    pub fn replica(&self, addr: &Addr) -> Option<&ReplicaRecord> {
        self.replicas.iter().find(|r| &r.addr == addr)
    }

    pub fn apply_option(&mut self, option: &MasterOption) {
        match option {
            MasterOption::DownAfterMs(ms) => self.down_after_ms = *ms,
            MasterOption::FailoverTimeoutMs(ms) => self.failover_timeout_ms = *ms,
            MasterOption::ParallelSyncs(n) => self.parallel_syncs = *n,
            MasterOption::Quorum(q) => self.quorum = *q,
            MasterOption::AuthPass(pass) => self.auth_pass = pass.clone(),
            MasterOption::AuthUser(user) => self.auth_user = user.clone(),
            MasterOption::Tls(on) => self.tls = *on,
            MasterOption::MinReplicasToWrite(n) => self.min_replicas.to_write = *n,
            MasterOption::MinReplicasMaxLag(s) => self.min_replicas.max_lag_s = *s,
            MasterOption::NotificationScript(path) => self.notification_script = path.clone(),
            MasterOption::ClientReconfigScript(path) => self.client_reconfig_script = path.clone(),
            MasterOption::Vip(vip) => self.vip = *vip,
            MasterOption::VipInterface(name) => self.vip_interface = name.clone(),
            MasterOption::MinFailoverIntervalMs(ms) => self.min_failover_interval_ms = *ms,
            MasterOption::RebootDownAfterMs(ms) => self.reboot_down_after_ms = *ms,
            MasterOption::RenameCommand { command, renamed } => {
                let key = command.to_ascii_lowercase();
                if renamed.eq_ignore_ascii_case(command) {
                    self.renamed.remove(&key);
                } else {
                    self.renamed.insert(key, renamed.clone());
                }
            }
        }
    }
}

/// One parsed SENTINEL SET option; `None` credentials and script paths mean "cleared" (an empty
/// value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterOption {
    DownAfterMs(u64),
    FailoverTimeoutMs(u64),
    ParallelSyncs(u32),
    Quorum(u32),
    AuthPass(Option<Secret>),
    AuthUser(Option<String>),
    /// raftinel's own: connect to the master and its replicas with TLS (`yes` / `no`).
    Tls(bool),
    /// raftinel's own: Redis's `min-replicas-to-write` on this master while it is unfenced.
    MinReplicasToWrite(u32),
    /// raftinel's own: Redis's `min-replicas-max-lag` (seconds) on this master while unfenced.
    MinReplicasMaxLag(u32),
    /// A path, stored as given; whether it exists and is executable is checked by the API on the
    /// node that receives the SET (it depends on that node's file system, not on the log).
    NotificationScript(Option<String>),
    ClientReconfigScript(Option<String>),
    /// raftinel's own: the master's virtual IP (empty clears it).
    Vip(Option<Vip>),
    /// raftinel's own: the interface for the VIP (empty clears it).
    VipInterface(Option<String>),
    /// raftinel's own: no automatic failover within this many ms of the last one's start (0: off).
    MinFailoverIntervalMs(u64),
    /// Sentinel's `master-reboot-down-after-period` (Valkey's `primary-…`), ms, 0: off.
    RebootDownAfterMs(u64),
    /// Sentinel's `rename-command <command> <renamed>`: the name `command` has on this master's
    /// instances; renaming it to itself removes the entry.
    RenameCommand {
        command: String,
        renamed: String,
    },
}

impl MasterOption {
    /// Sentinel's lowercase option name, as `+set` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            MasterOption::DownAfterMs(_) => "down-after-milliseconds",
            MasterOption::FailoverTimeoutMs(_) => "failover-timeout",
            MasterOption::ParallelSyncs(_) => "parallel-syncs",
            MasterOption::Quorum(_) => "quorum",
            MasterOption::AuthPass(_) => "auth-pass",
            MasterOption::AuthUser(_) => "auth-user",
            MasterOption::Tls(_) => "tls",
            MasterOption::MinReplicasToWrite(_) => "min-replicas-to-write",
            MasterOption::MinReplicasMaxLag(_) => "min-replicas-max-lag",
            MasterOption::NotificationScript(_) => "notification-script",
            MasterOption::ClientReconfigScript(_) => "client-reconfig-script",
            MasterOption::Vip(_) => "vip",
            MasterOption::VipInterface(_) => "vip-interface",
            MasterOption::MinFailoverIntervalMs(_) => "min-failover-interval",
            MasterOption::RebootDownAfterMs(_) => "master-reboot-down-after-period",
            MasterOption::RenameCommand { .. } => "rename-command",
        }
    }

    /// Whether events must show `******` instead of the value (Sentinel redacts auth-pass).
    pub fn is_secret(&self) -> bool {
        matches!(self, MasterOption::AuthPass(_))
    }
}

/// The SET options raftinel knows, lowercase.
const OPTIONS: [&str; 17] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
    "quorum",
    "auth-pass",
    "auth-user",
    "notification-script",
    "client-reconfig-script",
    "vip",
    "vip-interface",
    "tls",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "min-failover-interval",
    "master-reboot-down-after-period",
    "primary-reboot-down-after-period",
    "rename-command",
];

/// Parses one SENTINEL SET `<option> <value>` pair; option names are case-insensitive as in
/// Sentinel, and refusals echo the option as the client typed it. An unknown option is refused
/// first, then a value with control characters (redis #14970: a newline in a value could inject
/// configuration; here values reach events, scripts' argv and `ctl` output).
pub fn parse_option(option: &str, value: &str) -> Result<MasterOption, Refusal> {
    let lower = option.to_ascii_lowercase();
    if !OPTIONS.contains(&lower.as_str()) {
        return Err(Refusal::UnknownOption {
            option: option.to_owned(),
        });
    }
    if has_control(value) {
        return Err(Refusal::ControlCharacters {
            option: option.to_owned(),
        });
    }
    match lower.as_str() {
        "down-after-milliseconds" => positive::<u64>(option, value).map(MasterOption::DownAfterMs),
        "failover-timeout" => positive::<u64>(option, value).map(MasterOption::FailoverTimeoutMs),
        "parallel-syncs" => positive::<u32>(option, value).map(MasterOption::ParallelSyncs),
        // 0 turns it off, so unlike Sentinel's numeric options 0 is accepted.
        "min-failover-interval" => value
            .parse::<u64>()
            .map(MasterOption::MinFailoverIntervalMs)
            .map_err(|_| Refusal::InvalidOptionValue {
                option: option.to_owned(),
                value: value.to_owned(),
            }),
        "quorum" => positive::<u32>(option, value).map(MasterOption::Quorum),
        // Sentinel's check: a number, not negative (0 turns it off).
        "master-reboot-down-after-period" | "primary-reboot-down-after-period" => value
            .parse::<u64>()
            .map(MasterOption::RebootDownAfterMs)
            .map_err(|_| Refusal::InvalidOptionValue {
                option: option.to_owned(),
                value: value.to_owned(),
            }),
        // The two words SENTINEL SET takes, joined by a space; an empty one is refused naming
        // it, as Sentinel does.
        "rename-command" => match value.split_once(' ') {
            Some((command, renamed))
                if !command.is_empty() && !renamed.is_empty() && !renamed.contains(' ') =>
            {
                Ok(MasterOption::RenameCommand {
                    command: command.to_owned(),
                    renamed: renamed.to_owned(),
                })
            }
            Some((command, renamed)) => Err(Refusal::InvalidOptionValue {
                option: option.to_owned(),
                value: if command.is_empty() { command } else { renamed }.to_owned(),
            }),
            None => Err(Refusal::UnknownOption {
                option: option.to_owned(),
            }),
        },
        "auth-pass" => Ok(MasterOption::AuthPass(non_empty(value).map(Secret::new))),
        "auth-user" => Ok(MasterOption::AuthUser(non_empty(value).map(str::to_owned))),
        // Redis's yes/no, as in its own `tls-replication yes`.
        "tls" => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok(MasterOption::Tls(true)),
            "no" => Ok(MasterOption::Tls(false)),
            _ => Err(Refusal::InvalidOptionValue {
                option: option.to_owned(),
                value: value.to_owned(),
            }),
        },
        "min-replicas-to-write" => {
            in_range(option, value, 0, MAX_MIN_REPLICAS).map(MasterOption::MinReplicasToWrite)
        }
        "min-replicas-max-lag" => {
            in_range(option, value, 1, MAX_MIN_REPLICAS_LAG).map(MasterOption::MinReplicasMaxLag)
        }
        "notification-script" => Ok(MasterOption::NotificationScript(
            non_empty(value).map(str::to_owned),
        )),
        "client-reconfig-script" => Ok(MasterOption::ClientReconfigScript(
            non_empty(value).map(str::to_owned),
        )),
        "vip" => match non_empty(value) {
            None => Ok(MasterOption::Vip(None)),
            Some(v) => v
                .parse::<Vip>()
                .map(|vip| MasterOption::Vip(Some(vip)))
                .map_err(|()| Refusal::InvalidOptionValue {
                    option: option.to_owned(),
                    value: value.to_owned(),
                }),
        },
        "vip-interface" => match non_empty(value) {
            None => Ok(MasterOption::VipInterface(None)),
            Some(v) if interface_name(v) => Ok(MasterOption::VipInterface(Some(v.to_owned()))),
            Some(_) => Err(Refusal::InvalidOptionValue {
                option: option.to_owned(),
                value: value.to_owned(),
            }),
        },
        // OPTIONS lists every arm above.
        _ => Err(Refusal::UnknownOption {
            option: option.to_owned(),
        }),
    }
}

/// Control characters as Redis counts them (0x00-0x1F, 0x7F), plus Unicode's C1 controls.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The longest master name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a master name is refused. Sentinel's own rule is only the control characters (redis
/// #14970, valkey #3847); its documentation asks for no spaces and "A-z 0-9 and .-_". raftinel
/// adds what keeps a name safe where it goes: no whitespace (event payloads are split on
/// spaces), no leading '-' (the name is argv[1] of the client-reconfig-script, where a leading
/// '-' reads as an option), and a bounded length.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Control,
    Space,
    LeadingDash,
    TooLong,
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Control => f.write_str("must not contain control characters"),
            NameRule::Space => f.write_str("must not contain spaces"),
            NameRule::LeadingDash => f.write_str("must not start with '-'"),
            NameRule::TooLong => write!(f, "must be at most {MAX_NAME_LEN} bytes long"),
        }
    }
}

/// A master name MONITOR may create: not empty, then the rules of [`NameRule`] in that order.
/// `apply` refuses a new name that breaks them; the facades check early with the same function,
/// and the hooks check again before a name reaches a script.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err(Refusal::EmptyName);
    }
    let rule = if has_control(name) {
        NameRule::Control
    } else if name.chars().any(char::is_whitespace) {
        NameRule::Space
    } else if name.starts_with('-') {
        NameRule::LeadingDash
    } else if name.len() > MAX_NAME_LEN {
        NameRule::TooLong
    } else {
        return Ok(());
    };
    Err(Refusal::InvalidName { rule })
}

/// A Linux interface name: 1 to 15 bytes, no '/', no whitespace, not "." or "..".
pub fn interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// A decimal integer in `min..=max`, refused with SET's usual message otherwise.
fn in_range(option: &str, value: &str, min: u32, max: u32) -> Result<u32, Refusal> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Refusal::InvalidOptionValue {
            option: option.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// Sentinel refuses 0 and non-numbers for every numeric SET option with the same message.
fn positive<T>(option: &str, value: &str) -> Result<T, Refusal>
where
    T: std::str::FromStr + Default + PartialEq,
{
    match value.parse::<T>() {
        Ok(n) if n != T::default() => Ok(n),
        _ => Err(Refusal::InvalidOptionValue {
            option: option.to_owned(),
            value: value.to_owned(),
        }),
    }
}
