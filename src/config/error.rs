//! `ConfigError`: every refusal names the TOML key or flag at fault and says how to fix it, on one line.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a configuration was refused.
///
/// Key fields hold the key as the user wrote it, already quoted: `` `raft.heartbeat-ms` ``,
/// `` `peers.2` ``, or a flag such as `` `--peers` ``. Every `Display` is one line: what is wrong,
/// with the values, then `;` and the fix.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {} (`--config`): {source}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file is not valid TOML for this schema: bad syntax, an unknown or duplicate key, a
    /// value of the wrong type.
    #[error("{path} line {line}: {key}: {message}; {fix}")]
    Toml {
        path: String,
        line: usize,
        key: String,
        message: String,
        fix: &'static str,
    },

    /// `watchdog-device` or `watchdog-timeout-s` out of range.
    #[error("{key} = {value} is not usable: {fix}")]
    Watchdog {
        key: &'static str,
        value: String,
        fix: &'static str,
    },

    /// A required setting is absent.
    #[error("{key} is required: {fix}")]
    Missing { key: String, fix: &'static str },

    /// `id`, or a node id in `peers`, is 0.
    #[error(
        "{key} = 0 is not a valid node id; node ids are integers ≥ 1, unique within the cluster"
    )]
    ZeroId { key: String },

    /// An address that is not `IP:PORT`.
    #[error("{key} = \"{value}\" is not an IP:PORT address: {reason}; write it as IP:PORT, e.g. 10.0.0.1:26380 or [fd00::1]:26380 (hostnames are not accepted)")]
    BadAddress {
        key: String,
        value: String,
        reason: &'static str,
    },

    /// An address other nodes or clients connect to is the unspecified address (0.0.0.0 / ::).
    #[error("{key} = {addr} is an unspecified address, but other nodes connect to it; give this node's own IP, e.g. 10.0.0.1:{}", addr.port())]
    Unspecified { key: String, addr: SocketAddr },

    /// An entry of `--peers` or of the `[peers]` table that is not `ID=IP:PORT`.
    #[error("{key}: `{entry}` is not a peer entry: {reason}; write {example}")]
    PeerEntry {
        key: String,
        entry: String,
        reason: &'static str,
        example: &'static str,
    },

    /// The same node id twice in `--peers` (or `1` and `01` in `[peers]`).
    #[error("{key}: node id {id} is given twice; give each node exactly one ID=IP:PORT entry")]
    DuplicatePeerId { key: String, id: u64 },

    /// Two peers with one address.
    #[error("{first} and {second} are both {addr}; every node needs its own gRPC address: fix one of them")]
    DuplicatePeerAddress {
        first: String,
        second: String,
        addr: SocketAddr,
    },

    /// Not joining, and this node's id has no entry in the peers.
    #[error("{id_key} = {id} is not in {peers_key}; add this node's own entry `{id}=IP:PORT` (its gRPC address) to {peers_key}, or fix {id_key}")]
    SelfNotInPeers {
        id_key: String,
        id: u64,
        peers_key: String,
    },

    /// `listen` is given and differs from this node's peers entry.
    #[error("{listen_key} = {listen} but {peer_key} = {peer}; they are the same address (this node's gRPC address): make them equal, or drop {listen_key} and it defaults to {peer_key}")]
    ListenNotPeer {
        listen_key: String,
        listen: SocketAddr,
        peer_key: String,
        peer: SocketAddr,
    },

    /// `join` points at this node itself.
    #[error("{join_key} = {addr} is this node's own {listen_key}; {join_key} must be the gRPC address of another, running member")]
    JoinIsSelf {
        join_key: String,
        listen_key: String,
        addr: SocketAddr,
    },

    /// `http-listen` collides with the gRPC or the Sentinel address.
    #[error("{key} = {addr} is also {other}; the HTTP API needs its own address: set {key} to another IP:PORT, e.g. {}:26381", addr.ip())]
    HttpClash {
        key: String,
        addr: SocketAddr,
        other: String,
    },

    /// `sentinel-listen` collides with a gRPC address.
    #[error("{key} = {addr} is also {other}; the Sentinel port needs its own address: set {key} to another IP:PORT, e.g. {}:26379", addr.ip())]
    SentinelClash {
        key: String,
        addr: SocketAddr,
        other: String,
    },

    #[error("{key} = \"{value}\" is not an interface name (1 to 15 bytes, no '/' or spaces); give the name `ip link` shows, e.g. eth0")]
    VipInterface { key: String, value: String },
    #[error("{key} = \"{value}\" is not an IPv4 address with a prefix length of 8 to 32 that a host can have; give one like \"10.77.0.200/24\" (IPv6 is not supported yet)")]
    Vip { key: String, value: String },
    /// A `[masters.NAME]` script that cannot run.
    #[error(
        "{key} = \"{value}\": {reason}; give the absolute path of an executable file (chmod +x)"
    )]
    Script {
        key: String,
        value: String,
        reason: &'static str,
    },
    /// An entry of `vip-allowed` that is not a subnet.
    #[error(
        "{key}: \"{value}\" is not an IPv4 subnet: {reason}; write entries like \"10.77.0.0/16\""
    )]
    VipAllowed {
        key: String,
        value: String,
        reason: String,
    },
    /// `[masters.NAME] vip` outside this node's `vip-allowed`.
    #[error("{key}: {why}")]
    VipNotAllowed {
        key: String,
        why: crate::lease::vip_allow::VipRefused,
    },
    /// Some but not all of the three TLS files are given.
    #[error("{key}: {reason}; {fix}")]
    SentinelAuth {
        key: String,
        reason: &'static str,
        fix: &'static str,
    },
    /// A `[sentinel]` bound or TLS setting that cannot be used.
    #[error("{key} = {value}: {reason}; {fix}")]
    SentinelKey {
        key: &'static str,
        value: String,
        reason: &'static str,
        fix: &'static str,
    },
    #[error("{missing} is missing while {given} is set; TLS needs all three of `tls.cert`, `tls.key` and `tls.ca` (or `--tls-cert`, `--tls-key`, `--tls-ca`): set {missing}, or remove the others to run without TLS")]
    TlsIncomplete {
        missing: &'static str,
        given: &'static str,
    },

    /// Plaintext gRPC on a network address without `insecure`.
    #[error("the gRPC port would run without TLS on {addrs}, where anyone on the network could act as a peer or an admin; make certificates with `raftinel certs cluster --dir DIR --node ID=IP ...` and set `[tls] cert`, `key`, `ca` (or `--tls-cert`, `--tls-key`, `--tls-ca`), or set `insecure = true` (`--insecure`) to run without authentication on purpose")]
    Plaintext { addrs: String },

    /// `admin-token-file` that cannot be used.
    #[error("`admin-token-file` = {}: {reason}; write a token of at least 32 characters (e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`) or remove the key", path.display())]
    TokenFile { path: PathBuf, reason: String },

    /// A TLS file that cannot be used.
    #[error("{key} = {}: {reason}; fix the path or create the file (relative paths are relative to the working directory)", path.display())]
    TlsFile {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// A `[redis-tls]` file that cannot be used.
    #[error("{key} = {}: {reason}; {fix}", path.display())]
    RedisTlsFile {
        key: &'static str,
        path: PathBuf,
        reason: String,
        fix: &'static str,
    },

    /// `redis-tls.cert` without `redis-tls.key`, or the other way round.
    #[error("{missing} is missing while {given} is set; a client certificate needs both `redis-tls.cert` and `redis-tls.key`: set {missing}, or remove {given} if your Redis does not ask for client certificates (tls-auth-clients no/optional)")]
    RedisTlsIncomplete {
        missing: &'static str,
        given: &'static str,
    },

    /// A numeric setting below its minimum.
    #[error(
        "`{key}` = {value} is too small: it must be ≥ {min} ({why}); the default is {default}"
    )]
    TooSmall {
        key: &'static str,
        value: u64,
        min: u64,
        why: &'static str,
        default: u64,
    },

    /// `raft.election-timeout-min-ms` ≥ `raft.election-timeout-max-ms`.
    #[error("`raft.election-timeout-min-ms` = {min} must be < `raft.election-timeout-max-ms` = {max} (the timeout is drawn at random from that range); raise the max, e.g. to 2 × the min (defaults 150 and 300)")]
    ElectionRange { min: u64, max: u64 },

    /// `3 × raft.heartbeat-ms > raft.election-timeout-min-ms`.
    #[error("3 × `raft.heartbeat-ms` = 3 × {heartbeat} = {} must be ≤ `raft.election-timeout-min-ms` = {min}, or one late heartbeat starts an election; lower the heartbeat or raise the election timeout (defaults 50 and 150)", u128::from(*heartbeat) * 3)]
    HeartbeatVsElection { heartbeat: u64, min: u64 },

    /// `R + 2T + F > L − m` (invariant 8).
    #[error("lease.renew-interval-ms (R) + 2 × lease.renew-timeout-ms (T) + lease.fence-budget-ms (F) = {r} + 2 × {t} + {f} = {} must be ≤ lease.duration-ms (L) − lease.margin-ms (m) = {l} − {m} = {}, or the lease can lapse between healthy renewals; raise lease.duration-ms or lower R, T or F (defaults R=100 T=100 F=100 L=700 m=100)", u128::from(*r) + 2 * u128::from(*t) + u128::from(*f), i128::from(*l) - i128::from(*m))]
    LeaseBudget {
        r: u64,
        t: u64,
        f: u64,
        l: u64,
        m: u64,
    },

    /// `L + m > down-after` (invariant 8).
    #[error("lease.duration-ms (L) + lease.margin-ms (m) = {l} + {m} = {} must be ≤ `{key}` = {down_after}, or a failover waits on the old lease longer than detection takes; raise `{key}` to at least {} or lower lease.duration-ms / lease.margin-ms", u128::from(*l) + u128::from(*m), u128::from(*l) + u128::from(*m))]
    LeaseVsDownAfter {
        key: &'static str,
        l: u64,
        m: u64,
        down_after: u64,
    },
}
