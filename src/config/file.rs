//! The TOML file as written (every key optional, unknown keys refused) and the parsing of
//! addresses and peer lists, shared by the file, the flags and `raftinel ctl`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The top level of the file. Absent keys are `None` and get their defaults in `resolve`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    pub id: Option<u64>,
    pub listen: Option<String>,
    pub sentinel_listen: Option<String>,
    pub http_listen: Option<String>,
    /// The Redis instances on this host, as IP:PORT strings (co-location).
    pub local_redis: Option<Vec<String>>,
    pub data_dir: Option<PathBuf>,
    pub default_down_after_ms: Option<u64>,
    /// Sentinel's `deny-scripts-reconfig`: refuse SET of script paths (default true).
    pub deny_scripts_reconfig: Option<bool>,
    /// The subnets this node may add a VIP in, as `A.B.C.D/N` strings (default: none).
    pub vip_allowed: Option<Vec<String>>,
    pub join: Option<String>,
    /// Plaintext gRPC on a network address, on purpose (no authentication).
    pub insecure: Option<bool>,
    /// File with the token that makes a gRPC caller an admin.
    pub admin_token_file: Option<PathBuf>,
    /// The Linux watchdog device armed while this node may hold a writable Redis.
    pub watchdog_device: Option<PathBuf>,
    pub watchdog_timeout_s: Option<u32>,
    /// Node id (as written) → address (as written); parsed by [`file_peers`].
    pub peers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub raft: FileRaft,
    #[serde(default)]
    pub lease: FileLease,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub sentinel: FileSentinel,
    /// `[redis-tls]`: this node's TLS files towards Redis.
    #[serde(default)]
    pub redis_tls: FileRedisTls,
    /// `[masters.NAME]`: this host's settings for one monitored master.
    pub masters: Option<BTreeMap<String, FileMaster>>,
}

/// `[masters.NAME]`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileMaster {
    /// The interface this host puts the master's VIP on (hosts name their NICs differently).
    pub vip_interface: Option<String>,
    /// The master's VIP (A.B.C.D/N): the leader puts it in the log when the log has none.
    pub vip: Option<String>,
    /// This node's own scripts for the master (over the log's; allowed under
    /// deny-scripts-reconfig).
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    /// Connect to this master and its replicas with TLS, whatever the log's `tls` option says.
    pub tls: Option<bool>,
}

/// `[redis-tls]`: PEM files, read once at startup.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileRedisTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[sentinel]`: who may use the Sentinel port, its bounds and its TLS listener.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileSentinel {
    pub requirepass: Option<String>,
    /// `[sentinel.users]`: user name → password (an admin) or `{ password, role }`.
    pub users: Option<BTreeMap<String, FileUser>>,
    pub tls_port: Option<u16>,
    pub tls_auth_clients: Option<String>,
    pub maxclients_per_ip: Option<u64>,
    pub auth_timeout: Option<u64>,
    pub timeout: Option<u64>,
    pub max_subscriptions: Option<u64>,
    pub max_channel_length: Option<u64>,
    pub resolve_hostnames: Option<bool>,
    pub announce_hostnames: Option<bool>,
}

/// One `[sentinel.users]` entry: a bare password string (role `admin`, as every user was
/// before roles existed) or a table with the role spelled out.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(super) enum FileUser {
    Password(String),
    Table(FileUserTable),
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUserTable {
    pub password: String,
    pub role: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileRaft {
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub keep_logs: Option<u64>,
    pub install_snapshot_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileLease {
    pub duration_ms: Option<u64>,
    pub margin_ms: Option<u64>,
    pub renew_interval_ms: Option<u64>,
    pub renew_timeout_ms: Option<u64>,
    pub fence_budget_ms: Option<u64>,
    pub vip_lifetime_s: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// Parses the file's text; `path` is only used in messages.
pub(super) fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| toml_error(&e, text, path))
}

/// Turns toml's multi-line report into one line naming the dotted key at fault.
fn toml_error(e: &toml::de::Error, text: &str, path: &str) -> ConfigError {
    let mut start = e.span().map_or(0, |s| s.start).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line = text[..start].matches('\n').count() + 1;
    let key = key_at(text, start).map_or_else(|| "(syntax)".to_owned(), |k| format!("`{k}`"));
    let raw = e
        .message()
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(": ");
    let message = if raw.is_empty() {
        "invalid TOML syntax".to_owned()
    } else {
        raw.replacen("unknown field", "unknown key", 1)
    };
    let fix = if message.starts_with("unknown key") {
        "remove it or correct its spelling (keys are kebab-case; see docs/configuration.md)"
    } else if message.contains("duplicate key") {
        "keep only one of them"
    } else if message.contains("expected u64") {
        "write a whole number ≥ 0 without quotes"
    } else if message.contains("expected a boolean") {
        "write true or false without quotes"
    } else if message.contains("expected a sequence") {
        "write a list in brackets, e.g. vip-allowed = [\"10.0.0.0/24\"]"
    } else if message.contains("expected a map") {
        "write peers as a table: a `[peers]` line, then one `ID = \"IP:PORT\"` line per node"
    } else if message.contains("expected a string") {
        "quote the value, e.g. \"10.0.0.1:26380\" or \"/var/lib/raftinel\""
    } else {
        "fix the TOML syntax"
    };
    ConfigError::Toml {
        path: path.to_owned(),
        line,
        key,
        message,
        fix,
    }
}

/// The dotted key for the line holding byte `pos`: the left side of `key = value` (or a
/// `[table]` header), prefixed by the closest table header above it.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[').then(|| {
            l.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .replace('"', "")
        })
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let lhs = line.split_once('=')?.0.trim().replace('"', "");
    if lhs.is_empty() {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(header);
    Some(match table {
        Some(t) => format!("{t}.{lhs}"),
        None => lhs,
    })
}

/// Parses `value` as `IP:PORT` for the key `key` (already quoted, e.g. `` `listen` ``).
pub(super) fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let v = value.trim();
    let reason = match v.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => "port 0 cannot be connected to",
        Ok(a) => return Ok(a),
        Err(_) => diagnose(v),
    };
    Err(ConfigError::BadAddress {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

/// Why `v` is not a `SocketAddr`, in words.
fn diagnose(v: &str) -> &'static str {
    let is_ip = |s: &str| {
        s.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok()
    };
    if v.is_empty() {
        return "it is empty";
    }
    if is_ip(v) {
        return "the :PORT is missing";
    }
    match v.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_err() => {
            "the port is not a number from 1 to 65535"
        }
        Some((host, _)) if host.contains(':') && is_ip(host) => {
            "an IPv6 address must be in brackets"
        }
        Some(_) => "the host part is a name, not an IP",
        None => "expected IP:PORT",
    }
}

/// Refuses 0.0.0.0 / :: for an address other nodes connect to.
pub(super) fn specified(key: &str, addr: SocketAddr) -> Result<SocketAddr, ConfigError> {
    if addr.ip().is_unspecified() {
        return Err(ConfigError::Unspecified {
            key: key.to_owned(),
            addr,
        });
    }
    Ok(addr)
}

const FLAG_EXAMPLE: &str = "--peers 1=10.0.0.1:26380,2=10.0.0.2:26380,3=10.0.0.3:26380";
const FILE_EXAMPLE: &str = "a `[peers]` table with one line per node, e.g. 1 = \"10.0.0.1:26380\"";

/// Parses a `--peers` value: `ID=IP:PORT` entries separated by commas, e.g.
/// `1=10.0.0.1:26380,2=10.0.0.2:26380,3=10.0.0.3:26380`. Ids are integers ≥ 1; ids and
/// addresses must be unique. Errors name `--peers` and the entry at fault.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, SocketAddr>, ConfigError> {
    let entry_err = |entry: &str, reason| ConfigError::PeerEntry {
        key: "`--peers`".to_owned(),
        entry: entry.to_owned(),
        reason,
        example: FLAG_EXAMPLE,
    };
    let mut out = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(entry_err(entry, "the `ID=` is missing"));
        };
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| entry_err(entry, "the id is not a whole number"))?;
        let key = format!("`--peers` entry {id}");
        if id == 0 {
            return Err(ConfigError::ZeroId { key });
        }
        let addr = specified(&key, parse_addr(&key, addr)?)?;
        if out.insert(id, addr).is_some() {
            return Err(ConfigError::DuplicatePeerId {
                key: "`--peers`".to_owned(),
                id,
            });
        }
    }
    if out.is_empty() {
        return Err(entry_err(s, "no ID=IP:PORT entries"));
    }
    unique_addresses(&out, |id| format!("`--peers` entry {id}"))?;
    Ok(out)
}

/// Parses the file's `[peers]` table; errors name `peers.ID`.
pub(super) fn file_peers(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<u64, SocketAddr>, ConfigError> {
    let mut out = BTreeMap::new();
    for (id_text, addr) in raw {
        let Ok(id) = id_text.trim().parse::<u64>() else {
            return Err(ConfigError::PeerEntry {
                key: format!("`peers.{id_text}`"),
                entry: format!("{id_text} = \"{addr}\""),
                reason: "the key must be the node id, a whole number ≥ 1",
                example: FILE_EXAMPLE,
            });
        };
        let key = format!("`peers.{id}`");
        if id == 0 {
            return Err(ConfigError::ZeroId { key });
        }
        let addr = specified(&key, parse_addr(&key, addr)?)?;
        if out.insert(id, addr).is_some() {
            return Err(ConfigError::DuplicatePeerId {
                key: "`peers`".to_owned(),
                id,
            });
        }
    }
    unique_addresses(&out, |id| format!("`peers.{id}`"))?;
    Ok(out)
}

fn unique_addresses(
    peers: &BTreeMap<u64, SocketAddr>,
    label: impl Fn(u64) -> String,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for (&id, &addr) in peers {
        if let Some(&first) = seen.get(&addr) {
            return Err(ConfigError::DuplicatePeerAddress {
                first: label(first),
                second: label(id),
                addr,
            });
        }
        seen.insert(addr, id);
    }
    Ok(())
}
