//! Node configuration: a TOML file, `raftinel serve` flags over it, defaults, and validation whose
//! errors name the key and the fix. The timing rules of invariant 8 live in `timing.rs`; the key
//! reference is docs/configuration.md.

mod error;
mod file;
mod masters;
mod security;
mod sentinel;
mod timing;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use file::parse_peers;
use file::{parse_addr, specified, FileConfig};
pub use security::Security;
use sentinel::{sentinel_auth, sentinel_limits, sentinel_tls};
pub use sentinel::{
    SentinelAuth, SentinelLimits, SentinelRole, SentinelTls, SentinelUser, TlsAuthClients,
};

/// The default Sentinel (RESP) port, used with `listen`'s IP when `sentinel-listen` is not given.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Flags of `raftinel serve`. Each overrides the same key of the `--config` file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML config file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id: an integer ≥ 1, its key in --peers
    #[arg(long)]
    pub id: Option<u64>,
    /// IP:PORT to bind and advertise for gRPC (Raft + topology API); defaults to this node's --peers entry
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// IP:PORT of the Sentinel-compatible RESP port [default: listen's IP, port 26379]
    #[arg(long = "sentinel-listen", value_name = "IP:PORT")]
    pub sentinel_listen: Option<String>,
    /// IP:PORT of the HTTP API (health checks, /cluster) [default: off]
    #[arg(long = "http-listen", value_name = "IP:PORT")]
    pub http_listen: Option<String>,
    /// The Redis instances on this host, which this node fences and holds the lease for:
    /// "IP:PORT,IP:PORT" (matched to monitored instances by run id)
    #[arg(long = "local-redis", value_name = "IP:PORT,...")]
    pub local_redis: Option<String>,
    /// Directory of this node's Raft log and state
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Initial members, for the first initialization only: "1=IP:PORT,2=IP:PORT,3=IP:PORT"
    #[arg(long, value_name = "ID=IP:PORT,...")]
    pub peers: Option<String>,
    /// Join a running cluster through any member's gRPC IP:PORT (instead of --peers)
    #[arg(long, value_name = "IP:PORT")]
    pub join: Option<String>,
    /// PEM certificate for mTLS (with --tls-key and --tls-ca)
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for mTLS
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that peers' and admin clients' certificates must chain to
    #[arg(long = "tls-ca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Run plaintext gRPC on a non-loopback address, with no authentication of peers or admins
    #[arg(long)]
    pub insecure: bool,
    /// File holding a token that makes a gRPC caller an admin (`authorization: Bearer TOKEN`)
    #[arg(long = "admin-token-file", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The IPv4 subnets this node may add a VIP in: "A.B.C.D/N,A.B.C.D/N" [default: none, no VIP]
    #[arg(long = "vip-allowed", value_name = "CIDR,...")]
    pub vip_allowed: Option<String>,
}

/// A validated node configuration. Built only by [`load`] / [`from_toml_str`], so every timing
/// rule holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's Raft id, ≥ 1. A wiped node must rejoin under a new id (invariant 10).
    pub id: u64,
    /// gRPC address (Raft + topology API), bound and advertised to the other nodes, so never
    /// 0.0.0.0. Defaults to `peers[id]`; required when joining.
    pub listen: SocketAddr,
    /// Sentinel-compatible RESP address. Default: `listen`'s IP with port 26379. Must differ from
    /// `listen` and every peer's address.
    pub sentinel_listen: SocketAddr,
    /// The HTTP API's address (`http-listen`), if it is on.
    pub http_listen: Option<SocketAddr>,
    /// Redis instances on this host (`local-redis`): this node keeps them fenced unless it holds
    /// their lease (invariants 2, 5). Empty: this node holds no lease.
    pub local_redis: Vec<SocketAddr>,
    /// `[masters.NAME] vip-interface`: this host's interface for a master's VIP, overriding the
    /// master's `vip-interface` option.
    pub vip_interfaces: BTreeMap<String, String>,
    /// `[masters.NAME] vip`: put in the log by the leader when the log has no VIP for NAME; the
    /// log wins when both name one (`raftinel ctl set NAME vip` changes it).
    pub vips: BTreeMap<String, crate::topology::Vip>,
    /// `vip-allowed`: the subnets this node may add a VIP in (invariant 12). A VIP outside them,
    /// whatever the log says, is never added by this node, and a SET received here is refused.
    /// Empty (the default): this node adds no VIP.
    pub vip_allowed: Vec<crate::lease::vip_allow::Cidr>,
    /// `[masters.NAME] notification-script` / `client-reconfig-script`: this node's own scripts
    /// for NAME, in place of the log's, run (when this node leads) whatever
    /// `deny_scripts_reconfig` says, as sentinel.conf's scripts are (see `hooks`).
    pub scripts: BTreeMap<String, MasterScripts>,
    /// `[masters.NAME] tls = true`: this node connects to NAME's instances with TLS even when
    /// the log's `tls` option is off.
    pub tls_masters: BTreeSet<String>,
    /// `[redis-tls]`: the CA that TLS Redis servers' certificates chain to (default: the
    /// system's trust store) and an optional client certificate, read at startup.
    pub redis_tls: crate::redis::RedisTls,
    /// Directory of the sled database (Raft log, vote, state machine). Required.
    pub data_dir: PathBuf,
    /// Initial voters, id → gRPC address; seeds the first initialization only, afterwards the
    /// log's membership rules. Contains `id`. Empty when joining.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Any member's gRPC address, when this node joins a running cluster instead of seeding one.
    pub join: Option<SocketAddr>,
    /// down-after (ms) for masters added without one. Must be ≥ `lease.duration-ms +
    /// lease.margin-ms`. Default 5000 (Sentinel users saw false failovers at 500 ms); 1000 is
    /// recommended on a quiet LAN.
    pub default_down_after_ms: u64,
    /// Sentinel's `deny-scripts-reconfig`: when true (the default, as in Sentinel), SET of
    /// `notification-script` or `client-reconfig-script` is refused by this node's API. Scripts
    /// run on the Raft leader only (see `hooks`).
    pub deny_scripts_reconfig: bool,
    /// Raft timings and log compaction.
    pub raft: RaftTimings,
    /// Master lease timings (invariant 4).
    pub lease: LeaseTimings,
    /// mTLS between nodes and for admin clients; `None` runs plaintext.
    pub tls: Option<TlsFiles>,
    /// Users, passwords and roles of the Sentinel port (`[sentinel]`).
    pub sentinel_auth: SentinelAuth,
    /// Bounds on the Sentinel port's clients (`[sentinel]`).
    pub sentinel_limits: SentinelLimits,
    /// `sentinel.resolve-hostnames` / `sentinel.announce-hostnames`, both off by default as in
    /// Sentinel; SENTINEL CONFIG SET changes them at run time. Set them alike on every node.
    pub hostnames: crate::redis::HostnameSettings,
    /// The Sentinel port's TLS listener, if `sentinel.tls-port` is set.
    pub sentinel_tls: Option<SentinelTls>,
    /// How peers and admins prove who they are on the gRPC port (invariant 11).
    pub security: Security,
    /// `watchdog-device` and `watchdog-timeout-s`: the Linux watchdog armed while this node may
    /// hold a writable Redis (see `lease::watchdog`). `None` (the default): no device.
    pub watchdog_device: Option<crate::lease::watchdog::DeviceConfig>,
}

impl Config {
    /// How the gRPC port authenticates, in the words `ctl status` and the logs use.
    pub fn security_summary(&self) -> &'static str {
        match (&self.tls, self.security.insecure) {
            (Some(_), _) => "mTLS",
            (None, true) => {
                "INSECURE: plaintext gRPC, peers and admins unauthenticated (insecure = true)"
            }
            (None, false) => "plaintext, loopback only",
        }
    }
}

/// One master's scripts in this node's config: absolute paths of executable files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterScripts {
    pub notification: Option<String>,
    pub client_reconfig: Option<String>,
}

/// Raft timings, in the style of etcd's raft `Config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTimings {
    /// Interval (ms) between leader heartbeats. Must be ≥ 1 and ≤ `election_min_ms / 3`, so a
    /// single late heartbeat never starts an election. Default 50 (a LAN; see docs/timings.md).
    pub heartbeat_ms: u64,
    /// Lower bound (ms) of the randomized election timeout. Must be < `election_max_ms` and ≥
    /// 3 × `heartbeat_ms`. Default 150.
    pub election_min_ms: u64,
    /// Upper bound (ms) of the election timeout; also the freshness window of invariant 9. We
    /// suggest 2 × `election_min_ms`; keep 2 × this ≤ down-after + 650 or losing the leader and a
    /// master together makes the failover wait for the election. openraft's followers also
    /// refuse votes for this long after hearing the leader, so a dead leader is replaced
    /// `election_max_ms + election timeout` after its last heartbeat. Default 300.
    pub election_max_ms: u64,
    /// Take a snapshot after this many log entries since the last one. Must be ≥ 1. Default 1000.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot so slightly lagging followers catch up from the log rather
    /// than a snapshot. May be 0. Default 500.
    pub keep_logs: u64,
    /// Timeout (ms) of one snapshot transfer to a follower. Must be ≥ 100; below 1000 is warned
    /// about. Default 5000.
    pub install_snapshot_timeout_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings {
            heartbeat_ms: 50,
            election_min_ms: 150,
            election_max_ms: 300,
            snapshot_every: 1000,
            keep_logs: 500,
            install_snapshot_timeout_ms: 5000,
        }
    }
}

/// Lease timings (invariants 4, 5, 8). Rules: `R + 2T + F ≤ L − m` and `L + m ≤ down-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// L (ms): a promise lasts L on the promising node's monotonic clock; the holder may act until
    /// `send_time + L − F`. A failover waits up to L + m for the old lease. Default 700.
    pub duration_ms: u64,
    /// m (ms): slack for clock-rate drift; a node reports a promise dead only after `until + m`,
    /// and a restarted node treats every grant as live until `boot + L + m`. 0 is warned about.
    /// Default 100.
    pub margin_ms: u64,
    /// R (ms): period of the holder's renewals. Must be ≥ 1. Default 100.
    pub renew_interval_ms: u64,
    /// T (ms): timeout of one promise RPC. Must be ≥ 1. Default 100.
    pub renew_timeout_ms: u64,
    /// F (ms): the time the holder needs to fence its Redis and drop the VIP; it stops acting F
    /// before the lease ends. 0 is warned about. Default 100.
    pub fence_budget_ms: u64,
    /// V (s): kernel valid lifetime of the VIP, refreshed on every confirmed renewal, so the VIP
    /// goes away even if raftinel dies. Must be ≥ 1 (the kernel counts seconds); V × 1000 >
    /// down-after is warned about. Default 1.
    pub vip_lifetime_s: u64,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            duration_ms: 700,
            margin_ms: 100,
            renew_interval_ms: 100,
            renew_timeout_ms: 100,
            fence_budget_ms: 100,
            vip_lifetime_s: 1,
        }
    }
}

/// PEM files for mTLS; all three or none, each checked to exist at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate chain (`tls.cert`, `--tls-cert`).
    pub cert: PathBuf,
    /// Its private key (`tls.key`, `--tls-key`).
    pub key: PathBuf,
    /// CA bundle that peers and admin clients must chain to (`tls.ca`, `--tls-ca`).
    pub ca: PathBuf,
}

/// A configuration that runs but is risky; the caller logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads `--config` if given, applies the flags over it, fills defaults and validates.
pub fn load(args: &ServeArgs) -> Result<(Config, Vec<Warning>), ConfigError> {
    match &args.config {
        Some(path) => {
            tracing::debug!(path = %path.display(), "reading config file");
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            from_toml_str(&text, args, &path.display().to_string())
        }
        None => from_toml_str("", args, "(no config file)"),
    }
}

/// [`load`] on a file's text; `source` names the file in messages. `args.config` is ignored.
pub fn from_toml_str(
    text: &str,
    args: &ServeArgs,
    source: &str,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let file = file::parse(text, source)?;
    resolve(file, args)
}

/// The flag's value if given, else the file's, with the name to use in messages.
fn pick<T>(flag: Option<T>, flag_name: &str, file: Option<T>, key: &str) -> Option<(T, String)> {
    match (flag, file) {
        (Some(v), _) => Some((v, format!("`{flag_name}`"))),
        (None, Some(v)) => Some((v, format!("`{key}`"))),
        (None, None) => None,
    }
}

/// Parses a picked address string; `advertised` addresses may not be 0.0.0.0 / ::.
fn addr(
    picked: Option<(&String, String)>,
    advertised: bool,
) -> Result<Option<(SocketAddr, String)>, ConfigError> {
    let Some((text, key)) = picked else {
        return Ok(None);
    };
    let a = parse_addr(&key, text)?;
    let a = if advertised { specified(&key, a)? } else { a };
    Ok(Some((a, key)))
}

fn resolve(file: FileConfig, args: &ServeArgs) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut warnings = Vec::new();

    let (id, id_key) = pick(args.id, "--id", file.id, "id").ok_or_else(|| ConfigError::Missing {
        key: "`id`".to_owned(),
        fix: "set `id = N` in the file or pass `--id N`: this node's id, an integer ≥ 1 that is its key in `peers`",
    })?;
    if id == 0 {
        return Err(ConfigError::ZeroId { key: id_key });
    }
    let data_dir = pick(args.data_dir.clone(), "--data-dir", file.data_dir, "data-dir")
        .map(|(d, _)| d)
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| ConfigError::Missing {
            key: "`data-dir`".to_owned(),
            fix: "set `data-dir = \"/var/lib/raftinel\"` in the file or pass `--data-dir DIR`: where this node keeps its Raft log",
        })?;

    let join = addr(
        pick(args.join.as_ref(), "--join", file.join.as_ref(), "join"),
        true,
    )?;
    let listen = addr(
        pick(
            args.listen.as_ref(),
            "--listen",
            file.listen.as_ref(),
            "listen",
        ),
        true,
    )?;
    let (peers, peers_key) = match (&args.peers, &file.peers) {
        (Some(s), _) => (Some(parse_peers(s)?), "`--peers`"),
        (None, Some(t)) => (Some(file::file_peers(t)?), "`peers`"),
        (None, None) => (None, "`peers`"),
    };
    let peer_label = |pid: u64| match args.peers {
        Some(_) => format!("`--peers` entry {pid}"),
        None => format!("`peers.{pid}`"),
    };

    let (listen, listen_key, peers) = match &join {
        Some((join_addr, join_key)) => {
            let (listen, listen_key) = listen.ok_or_else(|| ConfigError::Missing {
                key: "`listen`".to_owned(),
                fix: "a joining node must know its own gRPC address: set `listen = \"IP:PORT\"` or pass `--listen IP:PORT`",
            })?;
            if *join_addr == listen {
                return Err(ConfigError::JoinIsSelf {
                    join_key: join_key.clone(),
                    listen_key,
                    addr: listen,
                });
            }
            if peers.is_some() {
                warnings.push(Warning(format!(
                    "{peers_key} is ignored because {join_key} is set: a joining node learns the membership from the cluster; remove {peers_key}"
                )));
            }
            (listen, listen_key, BTreeMap::new())
        }
        None => {
            let peers = peers.ok_or_else(|| ConfigError::Missing {
                key: "`peers`".to_owned(),
                fix: "set a `[peers]` table (one `ID = \"IP:PORT\"` per node) or pass `--peers 1=IP:PORT,2=IP:PORT,3=IP:PORT`; to add this node to a running cluster pass `--join IP:PORT` instead",
            })?;
            let own = *peers.get(&id).ok_or_else(|| ConfigError::SelfNotInPeers {
                id_key: id_key.clone(),
                id,
                peers_key: peers_key.to_owned(),
            })?;
            let listen_key = match listen {
                Some((l, key)) if l != own => {
                    return Err(ConfigError::ListenNotPeer {
                        listen_key: key,
                        listen: l,
                        peer_key: peer_label(id),
                        peer: own,
                    });
                }
                Some((_, key)) => key,
                None => format!("`listen` (defaulted to {})", peer_label(id)),
            };
            match peers.len() {
                1 => warnings.push(Warning(format!(
                    "{peers_key} has a single node: the cluster tolerates no failure; use 3 or 5 nodes"
                ))),
                n if n % 2 == 0 => warnings.push(Warning(format!(
                    "{peers_key} has {n} nodes: an even count tolerates no more failures than {} nodes; use an odd number",
                    n - 1
                ))),
                _ => {}
            }
            (own, listen_key, peers)
        }
    };

    let sentinel = addr(
        pick(
            args.sentinel_listen.as_ref(),
            "--sentinel-listen",
            file.sentinel_listen.as_ref(),
            "sentinel-listen",
        ),
        false,
    )?;
    let (sentinel_listen, sentinel_key) = sentinel.unwrap_or_else(|| {
        (
            SocketAddr::new(listen.ip(), DEFAULT_SENTINEL_PORT),
            format!("`sentinel-listen` (defaulted to {listen_key}'s IP and port {DEFAULT_SENTINEL_PORT})"),
        )
    });
    let clash = |other: String| ConfigError::SentinelClash {
        key: sentinel_key.clone(),
        addr: sentinel_listen,
        other,
    };
    if sentinel_listen == listen {
        return Err(clash(listen_key));
    }
    if let Some((&pid, _)) = peers.iter().find(|(_, &a)| a == sentinel_listen) {
        return Err(clash(peer_label(pid)));
    }
    if let Some((j, key)) = &join {
        if *j == sentinel_listen {
            return Err(clash(key.clone()));
        }
    }
    if sentinel_listen.ip().is_unspecified() {
        warnings.push(Warning(format!(
            "{sentinel_key} = {sentinel_listen} binds every interface, but SENTINEL SENTINELS will advertise {sentinel_listen} to clients; give this node's IP to advertise a reachable address"
        )));
    }

    let http_listen = addr(
        pick(
            args.http_listen.as_ref(),
            "--http-listen",
            file.http_listen.as_ref(),
            "http-listen",
        ),
        false,
    )?;
    let http_listen = match http_listen {
        Some((a, key)) if a == listen || a == sentinel_listen => {
            return Err(ConfigError::HttpClash {
                key,
                addr: a,
                other: if a == listen {
                    listen_key
                } else {
                    sentinel_key
                },
            })
        }
        other => other.map(|(a, _)| a),
    };

    let local_redis = match (&args.local_redis, &file.local_redis) {
        (Some(flag), _) => flag
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|a| parse_addr("`--local-redis`", a))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(list)) => list
            .iter()
            .map(|a| parse_addr("`local-redis`", a))
            .collect::<Result<Vec<_>, _>>()?,
        (None, None) => Vec::new(),
    };

    let masters = masters::resolve(
        args.vip_allowed.as_deref(),
        file.vip_allowed.as_deref(),
        file.masters.as_ref(),
    )?;

    let tls = tls_files(args, &file.tls)?;
    let sentinel_tls = sentinel_tls(&file.sentinel, tls.as_ref(), sentinel_listen, listen)?;
    let mut config = Config {
        id,
        listen,
        sentinel_listen,
        http_listen,
        local_redis,
        vip_interfaces: masters.vip_interfaces,
        vips: masters.vips,
        vip_allowed: masters.vip_allowed,
        scripts: masters.scripts,
        tls_masters: masters.tls_masters,
        redis_tls: redis_tls(&file.redis_tls)?,
        data_dir,
        peers,
        join: join.map(|(a, _)| a),
        default_down_after_ms: file.default_down_after_ms.unwrap_or(5000),
        deny_scripts_reconfig: file.deny_scripts_reconfig.unwrap_or(true),
        raft: raft_timings(&file.raft),
        lease: lease_timings(&file.lease),
        tls,
        sentinel_auth: sentinel_auth(&file.sentinel)?,
        security: Security::default(),
        sentinel_limits: sentinel_limits(&file.sentinel)?,
        hostnames: crate::redis::HostnameSettings {
            resolve: file.sentinel.resolve_hostnames.unwrap_or(false),
            announce: file.sentinel.announce_hostnames.unwrap_or(false),
        },
        sentinel_tls,
        watchdog_device: watchdog_device(file.watchdog_device, file.watchdog_timeout_s)?,
    };
    config.security = security::resolve(args, &file.insecure, &file.admin_token_file, &config)?;
    timing::check(&config, &mut warnings)?;
    Ok((config, warnings))
}

/// Seconds the watchdog device waits for a keepalive when `watchdog-timeout-s` is not given.
pub const DEFAULT_WATCHDOG_TIMEOUT_S: u32 = 5;

fn watchdog_device(
    path: Option<PathBuf>,
    timeout_s: Option<u32>,
) -> Result<Option<crate::lease::watchdog::DeviceConfig>, ConfigError> {
    let timeout_s = match timeout_s {
        Some(0) => {
            return Err(ConfigError::Watchdog {
                key: "`watchdog-timeout-s`",
                value: "0".to_owned(),
                fix: "give the seconds without a keepalive before the host reboots, at least 1 (default 5)",
            })
        }
        Some(t) => t,
        None => DEFAULT_WATCHDOG_TIMEOUT_S,
    };
    match path {
        Some(p) if p.as_os_str().is_empty() || !p.is_absolute() => Err(ConfigError::Watchdog {
            key: "`watchdog-device`",
            value: p.display().to_string(),
            fix: "give the absolute path of the watchdog device, e.g. /dev/watchdog",
        }),
        Some(path) => Ok(Some(crate::lease::watchdog::DeviceConfig {
            path,
            timeout_s,
        })),
        None => Ok(None),
    }
}

fn raft_timings(f: &file::FileRaft) -> RaftTimings {
    let d = RaftTimings::default();
    RaftTimings {
        heartbeat_ms: f.heartbeat_ms.unwrap_or(d.heartbeat_ms),
        election_min_ms: f.election_timeout_min_ms.unwrap_or(d.election_min_ms),
        election_max_ms: f.election_timeout_max_ms.unwrap_or(d.election_max_ms),
        snapshot_every: f.snapshot_every.unwrap_or(d.snapshot_every),
        keep_logs: f.keep_logs.unwrap_or(d.keep_logs),
        install_snapshot_timeout_ms: f
            .install_snapshot_timeout_ms
            .unwrap_or(d.install_snapshot_timeout_ms),
    }
}

fn lease_timings(f: &file::FileLease) -> LeaseTimings {
    let d = LeaseTimings::default();
    LeaseTimings {
        duration_ms: f.duration_ms.unwrap_or(d.duration_ms),
        margin_ms: f.margin_ms.unwrap_or(d.margin_ms),
        renew_interval_ms: f.renew_interval_ms.unwrap_or(d.renew_interval_ms),
        renew_timeout_ms: f.renew_timeout_ms.unwrap_or(d.renew_timeout_ms),
        fence_budget_ms: f.fence_budget_ms.unwrap_or(d.fence_budget_ms),
        vip_lifetime_s: f.vip_lifetime_s.unwrap_or(d.vip_lifetime_s),
    }
}

/// All three TLS files or none; each flag overrides its key; each file must exist.
fn tls_files(args: &ServeArgs, f: &file::FileTls) -> Result<Option<TlsFiles>, ConfigError> {
    let pick_tls = |flag: &Option<PathBuf>,
                    file: &Option<PathBuf>,
                    label: &'static str,
                    flag_label: &'static str| {
        match (flag, file) {
            (Some(p), _) => Some((p.clone(), flag_label)),
            (None, Some(p)) => Some((p.clone(), label)),
            (None, None) => None,
        }
    };
    let cert = pick_tls(&args.tls_cert, &f.cert, "`tls.cert`", "`--tls-cert`");
    let key = pick_tls(&args.tls_key, &f.key, "`tls.key`", "`--tls-key`");
    let ca = pick_tls(&args.tls_ca, &f.ca, "`tls.ca`", "`--tls-ca`");
    let (cert, key, ca) = match (cert, key, ca) {
        (None, None, None) => return Ok(None),
        (Some(c), Some(k), Some(a)) => (c, k, a),
        (c, k, a) => {
            let given = [&c, &k, &a]
                .into_iter()
                .find_map(|x| x.as_ref().map(|(_, label)| *label))
                .unwrap_or("TLS");
            let missing = match (c, k) {
                (None, _) => "`tls.cert` (`--tls-cert`)",
                (_, None) => "`tls.key` (`--tls-key`)",
                _ => "`tls.ca` (`--tls-ca`)",
            };
            return Err(ConfigError::TlsIncomplete { missing, given });
        }
    };
    for (path, label) in [&cert, &key, &ca] {
        check_file(path, label)?;
    }
    Ok(Some(TlsFiles {
        cert: cert.0,
        key: key.0,
        ca: ca.0,
    }))
}

/// Reads `[redis-tls]`: an optional CA and an optional client certificate with its key.
fn redis_tls(f: &file::FileRedisTls) -> Result<crate::redis::RedisTls, ConfigError> {
    use crate::redis::tls::{read_certificates, read_key};
    let bad = |key, path: &Path, e: crate::redis::TlsError, fix| ConfigError::RedisTlsFile {
        key,
        path: path.to_owned(),
        reason: e.to_string(),
        fix,
    };
    let ca = match &f.ca {
        Some(p) => Some(read_certificates(p).map_err(|e| {
            bad("`redis-tls.ca`", p, e, "give the PEM file of the CA that signed your Redis servers' certificates (Redis's tls-ca-cert-file)")
        })?),
        None => None,
    };
    let client = match (&f.cert, &f.key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::RedisTlsIncomplete {
                missing: "`redis-tls.key`",
                given: "`redis-tls.cert`",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::RedisTlsIncomplete {
                missing: "`redis-tls.cert`",
                given: "`redis-tls.key`",
            })
        }
        (Some(c), Some(k)) => {
            let cert = read_certificates(c).map_err(|e| {
                bad("`redis-tls.cert`", c, e, "give the PEM certificate (chain) raftinel presents to Redis, signed by a CA in Redis's tls-ca-cert-file")
            })?;
            let key = read_key(k).map_err(|e| {
                bad(
                    "`redis-tls.key`",
                    k,
                    e,
                    "give the PEM private key of `redis-tls.cert`",
                )
            })?;
            Some((cert, key))
        }
    };
    Ok(crate::redis::RedisTls::new(ca, client))
}

fn check_file(path: &Path, key: &'static str) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::TlsFile {
        key,
        path: path.to_owned(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(err("not a regular file".to_owned())),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
