//! `[sentinel]`: the Sentinel port's users and roles, its bounds on clients, and its TLS
//! listener, with validation whose errors name the key and the fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::file;
use super::{ConfigError, TlsFiles};

/// Who may use the Sentinel port, as Redis's `requirepass` and ACL users. With neither set the
/// port runs in protected mode: every client is the `default` user without a password, and
/// only loopback clients may write.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SentinelAuth {
    /// The `default` user's password (`sentinel.requirepass`); the default user is an admin.
    pub requirepass: Option<String>,
    /// Further users (`[sentinel.users]`); `default` is not one of them.
    pub users: BTreeMap<String, SentinelUser>,
}

impl SentinelAuth {
    /// Whether a client must AUTH before anything else.
    pub fn required(&self) -> bool {
        self.requirepass.is_some() || !self.users.is_empty()
    }
}

/// One `[sentinel.users]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUser {
    pub password: String,
    pub role: SentinelRole,
}

/// What a Sentinel-port user may do, in the spirit of Redis ACL categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentinelRole {
    /// Reads, SUBSCRIBE, and the writes: MONITOR, REMOVE, SET, FAILOVER, RESET, CONFIG SET.
    Admin,
    /// Reads and SUBSCRIBE only: what a Sentinel client library needs.
    Client,
}

impl SentinelRole {
    pub fn parse(s: &str) -> Option<SentinelRole> {
        match s {
            "admin" => Some(SentinelRole::Admin),
            "client" => Some(SentinelRole::Client),
            _ => None,
        }
    }
}

impl std::fmt::Debug for SentinelAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelAuth")
            .field("requirepass", &self.requirepass.as_ref().map(|_| "******"))
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|(n, u)| (n, u.role))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Bounds on the Sentinel port, so that clients that never authenticate, never read or never
/// leave cannot exhaust the node (issue 10 item 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentinelLimits {
    /// Connections one source IP may hold at once (`sentinel.maxclients-per-ip`). Default 256;
    /// raise it for many clients behind one NAT or proxy address.
    pub maxclients_per_ip: usize,
    /// Seconds a connection may stay unauthenticated when AUTH is required, and a TLS handshake
    /// may take (`sentinel.auth-timeout`). Default 10; clients AUTH in their first round trip.
    pub auth_timeout_s: u64,
    /// Seconds an idle (non-subscribed) client is kept, 0 = forever, as Redis's `timeout`
    /// (`sentinel.timeout`). Default 0; client libraries keep idle sentinel connections.
    pub timeout_s: u64,
    /// Channels plus patterns one connection may subscribe to (`sentinel.max-subscriptions`).
    /// Default 256; Sentinel has about 30 channels and clients use a few, or `*`.
    pub max_subscriptions: usize,
    /// Longest channel or pattern name, in bytes (`sentinel.max-channel-length`). Default 256;
    /// Sentinel's channel names are under 32 bytes.
    pub max_channel_length: usize,
}

impl Default for SentinelLimits {
    fn default() -> Self {
        SentinelLimits {
            maxclients_per_ip: 256,
            auth_timeout_s: 10,
            timeout_s: 0,
            max_subscriptions: 256,
            max_channel_length: 256,
        }
    }
}

/// The Sentinel port's TLS listener (`sentinel.tls-port`), with the node's `[tls]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTls {
    /// `sentinel-listen`'s IP with `sentinel.tls-port`.
    pub listen: SocketAddr,
    pub auth_clients: TlsAuthClients,
}

/// Redis's `tls-auth-clients`: whether a client must present a certificate signed by `tls.ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAuthClients {
    No,
    Optional,
    Yes,
}

pub(super) fn sentinel_auth(f: &file::FileSentinel) -> Result<SentinelAuth, ConfigError> {
    let bad = |key: String, reason, fix| ConfigError::SentinelAuth { key, reason, fix };
    if f.requirepass.as_deref() == Some("") {
        return Err(bad(
            "`sentinel.requirepass`".to_owned(),
            "is empty",
            "give a password, or remove the key to run the Sentinel port without one",
        ));
    }
    let mut users = BTreeMap::new();
    for (user, entry) in f.users.iter().flatten() {
        let key = format!("`sentinel.users.{user}`");
        if user == "default" {
            return Err(bad(
                key,
                "the default user's password is `sentinel.requirepass`",
                "move the password to `sentinel.requirepass`",
            ));
        }
        if user.is_empty() || !user.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(bad(
                key,
                "a user name must be printable ASCII without spaces",
                "rename the user",
            ));
        }
        let (password, role) = match entry {
            file::FileUser::Password(p) => (p.clone(), SentinelRole::Admin),
            file::FileUser::Table(t) => {
                let role = match t.role.as_deref() {
                    None => SentinelRole::Admin,
                    Some(r) => SentinelRole::parse(r).ok_or_else(|| {
                        bad(
                            key.clone(),
                            "the role is neither \"admin\" nor \"client\"",
                            "set role = \"admin\" (may write) or role = \"client\" (reads and SUBSCRIBE)",
                        )
                    })?,
                };
                (t.password.clone(), role)
            }
        };
        if password.is_empty() {
            return Err(bad(
                key,
                "the password is empty",
                "give the user a password",
            ));
        }
        users.insert(user.clone(), SentinelUser { password, role });
    }
    Ok(SentinelAuth {
        requirepass: f.requirepass.clone(),
        users,
    })
}

pub(super) fn sentinel_limits(f: &file::FileSentinel) -> Result<SentinelLimits, ConfigError> {
    let d = SentinelLimits::default();
    // A zero would refuse every client or subscription, or time every client out at once.
    let at_least_one = |v: Option<u64>, key: &'static str, fix: &'static str| match v {
        Some(0) => Err(ConfigError::SentinelKey {
            key,
            value: "0".to_owned(),
            reason: "must be at least 1",
            fix,
        }),
        v => Ok(v.map(|n| usize::try_from(n).unwrap_or(usize::MAX))),
    };
    Ok(SentinelLimits {
        maxclients_per_ip: at_least_one(
            f.maxclients_per_ip,
            "`sentinel.maxclients-per-ip`",
            "give the connections one address may hold, e.g. 256",
        )?
        .unwrap_or(d.maxclients_per_ip),
        auth_timeout_s: at_least_one(
            f.auth_timeout,
            "`sentinel.auth-timeout`",
            "give the seconds a client may take to AUTH, e.g. 10",
        )?
        .map_or(d.auth_timeout_s, |n| u64::try_from(n).unwrap_or(u64::MAX)),
        timeout_s: f.timeout.unwrap_or(d.timeout_s),
        max_subscriptions: at_least_one(
            f.max_subscriptions,
            "`sentinel.max-subscriptions`",
            "give the channels one connection may hold, e.g. 256",
        )?
        .unwrap_or(d.max_subscriptions),
        max_channel_length: at_least_one(
            f.max_channel_length,
            "`sentinel.max-channel-length`",
            "give the longest channel name in bytes, e.g. 256",
        )?
        .unwrap_or(d.max_channel_length),
    })
}

/// `sentinel.tls-port` and `sentinel.tls-auth-clients`; the listener needs the `[tls]` files.
pub(super) fn sentinel_tls(
    f: &file::FileSentinel,
    tls: Option<&TlsFiles>,
    sentinel_listen: SocketAddr,
    listen: SocketAddr,
) -> Result<Option<SentinelTls>, ConfigError> {
    let bad = |key, value: String, reason, fix| ConfigError::SentinelKey {
        key,
        value,
        reason,
        fix,
    };
    let auth_clients = match f.tls_auth_clients.as_deref() {
        None | Some("no") => TlsAuthClients::No,
        Some("optional") => TlsAuthClients::Optional,
        Some("yes") => TlsAuthClients::Yes,
        Some(other) => {
            return Err(bad(
                "`sentinel.tls-auth-clients`",
                format!("\"{other}\""),
                "is not one of \"no\", \"optional\", \"yes\"",
                "use one of them, as Redis's tls-auth-clients",
            ))
        }
    };
    let Some(port) = f.tls_port else {
        return Ok(None);
    };
    let addr = SocketAddr::new(sentinel_listen.ip(), port);
    if tls.is_none() {
        return Err(bad(
            "`sentinel.tls-port`",
            port.to_string(),
            "needs the node's certificate",
            "set `tls.cert`, `tls.key` and `tls.ca` (or remove `sentinel.tls-port`)",
        ));
    }
    if port == 0 || addr == sentinel_listen || addr == listen {
        return Err(bad(
            "`sentinel.tls-port`",
            port.to_string(),
            "must be a port of its own, not 0, `sentinel-listen`'s or `listen`'s",
            "pick a free port, e.g. 26380 when `sentinel-listen` uses 26379",
        ));
    }
    Ok(Some(SentinelTls {
        listen: addr,
        auth_clients,
    }))
}
