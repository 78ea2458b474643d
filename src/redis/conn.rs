//! Connecting to one Redis instance and running commands on it with a time limit; a failure is
//! classified by the redis crate's error kind and the underlying `io::ErrorKind`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::hostnames::{is_ip, HostError, Hostnames};
use super::tls::RedisTls;
use crate::topology::{Addr, MasterRecord, Secret};

/// How to reach the instances of one master: its credentials (replicas use the master's, as in
/// Sentinel) and whether they speak TLS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Access {
    pub user: Option<String>,
    pub pass: Option<Secret>,
    pub tls: bool,
    /// The names commands have there (Sentinel's `rename-command`).
    pub names: Names,
}

/// Sentinel's `rename-command` for one master's instances: the name each command raftinel sends
/// has there (Redis's own `rename-command` on those instances).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(Arc<BTreeMap<String, String>>);

impl Names {
    /// From the log's map, keyed by the command's name in lower case.
    pub fn of(renamed: &BTreeMap<String, String>) -> Names {
        Names(Arc::new(renamed.clone()))
    }

    /// The name `command` (as raftinel writes it) has on these instances.
    pub fn get<'a>(&'a self, command: &'a str) -> &'a str {
        if self.0.is_empty() {
            return command;
        }
        self.0
            .get(&command.to_ascii_lowercase())
            .map_or(command, String::as_str)
    }

    /// `command` under its name there, to add arguments to.
    pub fn cmd(&self, command: &str) -> redis::Cmd {
        redis::cmd(self.get(command))
    }
}

impl Access {
    /// The log's settings for `m`; `tls_here` is this node's `[masters.NAME] tls`, which turns
    /// TLS on even when the log does not.
    pub fn of(m: &MasterRecord, tls_here: bool) -> Access {
        Access {
            user: m.auth_user.clone(),
            pass: m.auth_pass.clone(),
            tls: m.tls || tls_here,
            names: Names::of(&m.renamed),
        }
    }

    /// Plain TCP without AUTH: what is used for an instance no master's settings cover.
    pub fn is_default(&self) -> bool {
        *self == Access::default()
    }
}

/// What a failed connect or command means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Connection refused: nothing listens there, so no Redis process takes writes at that
    /// address.
    Gone,
    /// The link broke or never formed (reset, closed, TLS handshake, protocol desync, AUTH
    /// refused at connect): the instance may be alive; a command in flight may not have run.
    Broken,
    /// No answer within the limit.
    TimedOut,
    /// Redis answered with an error reply (-LOADING, -MASTERDOWN, -ERR …): it is alive and the
    /// link stays usable.
    Reply,
    /// The reply had an unexpected shape, or the client refused its own settings.
    Unexpected,
}

impl Failure {
    /// The link cannot be used again: reconnect.
    pub fn link_lost(self) -> bool {
        matches!(self, Failure::Gone | Failure::Broken | Failure::TimedOut)
    }
}

/// Classifies a redis crate error by kind, never by message text.
pub fn classify(e: &redis::RedisError) -> Failure {
    if e.is_connection_refusal() {
        Failure::Gone
    } else if e.is_timeout() {
        Failure::TimedOut
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        // Io (reset, EOF, TLS), Parse (the stream is out of step) and AuthenticationFailed.
        Failure::Broken
    } else {
        match e.kind() {
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => Failure::Reply,
            _ => Failure::Unexpected,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{addr}: {what} timed out")]
    Timeout { addr: Addr, what: &'static str },
    #[error("{addr}: {what}: {source}")]
    Redis {
        addr: Addr,
        what: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("{addr}: unexpected reply to {what}")]
    Unexpected { addr: Addr, what: &'static str },
    #[error("{addr}: {source}")]
    Resolve {
        addr: Addr,
        #[source]
        source: HostError,
    },
}

impl ConnError {
    pub fn failure(&self) -> Failure {
        match self {
            ConnError::Timeout { .. } => Failure::TimedOut,
            ConnError::Redis { source, .. } => classify(source),
            ConnError::Unexpected { .. } => Failure::Unexpected,
            // The name may resolve again; the instance may be alive meanwhile.
            ConnError::Resolve { .. } => Failure::Broken,
        }
    }

    /// The Redis error, for a caller that needs its code (e.g. `ERR` to an old INFO syntax).
    pub fn redis(&self) -> Option<&redis::RedisError> {
        match self {
            ConnError::Redis { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Opens connections with the node's TLS material; cheap to clone.
#[derive(Clone, Default)]
pub struct Connector {
    tls: Arc<RedisTls>,
    /// `[masters.NAME] tls = true` of this node's config.
    tls_names: Arc<BTreeSet<String>>,
    /// A hostname is looked up at every connect, as Sentinel re-resolves on reconnect.
    hostnames: Hostnames,
}

impl Connector {
    pub fn new(tls: RedisTls, tls_names: BTreeSet<String>) -> Self {
        Connector {
            tls: Arc::new(tls),
            tls_names: Arc::new(tls_names),
            hostnames: Hostnames::default(),
        }
    }

    /// The node's hostname settings and answers, shared with the Sentinel port.
    pub fn with_hostnames(mut self, hostnames: Hostnames) -> Self {
        self.hostnames = hostnames;
        self
    }

    pub fn hostnames(&self) -> &Hostnames {
        &self.hostnames
    }

    /// How this node reaches the instances of `m`.
    pub fn access(&self, m: &MasterRecord) -> Access {
        Access::of(m, self.tls_names.contains(&m.name))
    }

    /// The masters this node's config puts on TLS whatever the log says.
    pub fn tls_names(&self) -> &BTreeSet<String> {
        &self.tls_names
    }

    /// Connects, with TLS if `access.tls`, and authenticates as Sentinel does: AUTH only with a
    /// password, `AUTH user pass` when a user is set too. The whole handshake takes at most
    /// `limit`; replies have no limit of their own (each command is given one).
    pub async fn connect(
        &self,
        addr: &Addr,
        access: &Access,
        limit: Duration,
    ) -> Result<Conn, ConnError> {
        self.open(addr, access, limit, None).await
    }

    /// `connect` in RESP3, whose drop the client library reports at once on the receiver: the
    /// monitor flags a link `disconnected` the moment it drops, as Sentinel does (Sentinel
    /// clients skip a master so flagged). A Redis without RESP3 (before 6.0) refuses `HELLO 3`:
    /// the caller connects with `connect` then.
    pub async fn connect_watched(
        &self,
        addr: &Addr,
        access: &Access,
        limit: Duration,
    ) -> Result<(Conn, mpsc::UnboundedReceiver<redis::PushInfo>), ConnError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = self.open(addr, access, limit, Some(tx)).await?;
        Ok((conn, rx))
    }

    async fn open(
        &self,
        addr: &Addr,
        access: &Access,
        limit: Duration,
        pushes: Option<mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<Conn, ConnError> {
        let fail = |source| ConnError::Redis {
            addr: addr.clone(),
            what: "connect",
            source,
        };
        let resp3 = pushes.is_some();
        let ip = if is_ip(&addr.host) {
            None
        } else {
            let found = timeout(limit, self.hostnames.lookup(&addr.host))
                .await
                .map_err(|_| ConnError::Timeout {
                    addr: addr.clone(),
                    what: "hostname lookup",
                })?;
            Some(found.map_err(|source| ConnError::Resolve {
                addr: addr.clone(),
                source,
            })?)
        };
        let client = self.client(addr, ip, access, resp3).map_err(fail)?;
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(None);
        if let Some(tx) = pushes {
            config = config.set_push_sender(tx);
        }
        let inner = timeout(
            limit,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| ConnError::Timeout {
            addr: addr.clone(),
            what: "connect",
        })?
        .map_err(fail)?;
        Ok(Conn {
            addr: addr.clone(),
            inner,
            names: access.names.clone(),
            hostnames: self.hostnames.clone(),
        })
    }

    /// `ip`: what a hostname resolved to just now; plain TCP goes there, TLS goes by the name
    /// (the certificate names the host as given).
    fn client(
        &self,
        addr: &Addr,
        ip: Option<std::net::IpAddr>,
        access: &Access,
        resp3: bool,
    ) -> redis::RedisResult<redis::Client> {
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if resp3 {
            settings = settings.set_protocol(redis::ProtocolVersion::RESP3);
        }
        if let Some(pass) = &access.pass {
            settings = settings.set_password(pass.expose());
            if let Some(user) = &access.user {
                settings = settings.set_username(user);
            }
        }
        let (host, port) = (addr.host.clone(), addr.port);
        if !access.tls {
            let to = ip.map_or(host, |ip| ip.to_string());
            let info = ConnectionAddr::Tcp(to, port)
                .into_connection_info()?
                .set_redis_settings(settings);
            return redis::Client::open(info);
        }
        // The server's certificate must name the address as given (an IP SAN for an IP).
        let info = ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
        .into_connection_info()?
        .set_redis_settings(settings);
        redis::Client::build_with_tls(info, self.tls.certificates())
    }
}

/// One connection to one instance.
pub struct Conn {
    addr: Addr,
    inner: MultiplexedConnection,
    names: Names,
    hostnames: Hostnames,
}

impl Conn {
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The names commands have on this instance.
    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn hostnames(&self) -> &Hostnames {
        &self.hostnames
    }

    /// Runs `cmd` and waits at most `limit` for its reply; `what` names it in errors.
    pub async fn query<T: redis::FromRedisValue>(
        &mut self,
        what: &'static str,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, ConnError> {
        let reply = timeout(limit, cmd.query_async::<T>(&mut self.inner)).await;
        self.settle(what, reply)
    }

    /// Runs `pipe` (one round trip) and waits at most `limit` for all its replies.
    pub async fn pipeline<T: redis::FromRedisValue>(
        &mut self,
        what: &'static str,
        pipe: &redis::Pipeline,
        limit: Duration,
    ) -> Result<T, ConnError> {
        let reply = timeout(limit, pipe.query_async::<T>(&mut self.inner)).await;
        self.settle(what, reply)
    }

    fn settle<T>(
        &self,
        what: &'static str,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ConnError> {
        match reply {
            Err(_) => Err(ConnError::Timeout {
                addr: self.addr.clone(),
                what,
            }),
            Ok(r) => r.map_err(|source| ConnError::Redis {
                addr: self.addr.clone(),
                what,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn reply_error(resp: &[u8]) -> redis::RedisError {
        match redis::parse_redis_value(resp).and_then(|v| v.extract_error()) {
            Err(e) => e,
            Ok(v) => panic!("{v:?} is not an error"),
        }
    }

    #[test]
    fn io_errors_are_gone_broken_or_timed_out_by_kind() {
        let io = |kind| redis::RedisError::from(io::Error::from(kind));
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionRefused)),
            Failure::Gone
        );
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::NotConnected,
            // What a failed TLS handshake (unknown issuer, wrong name) surfaces as.
            io::ErrorKind::InvalidData,
        ] {
            assert_eq!(classify(&io(kind)), Failure::Broken, "{kind:?}");
        }
        assert_eq!(classify(&io(io::ErrorKind::TimedOut)), Failure::TimedOut);
        // The message text plays no part: "refused" in a reset's text is still a reset.
        let worded = io::Error::new(io::ErrorKind::ConnectionReset, "connection refused");
        assert_eq!(classify(&redis::RedisError::from(worded)), Failure::Broken);
    }

    #[test]
    fn error_replies_stay_replies() {
        for resp in [
            &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
            b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
            b"-ERR unknown command 'FAILOVER'\r\n",
            b"-NOREPLICAS Not enough good replicas to write.\r\n",
            b"-NOAUTH Authentication required.\r\n",
            b"-READONLY You can't write against a read only replica.\r\n",
        ] {
            let e = reply_error(resp);
            assert_eq!(classify(&e), Failure::Reply, "{e}");
            assert!(!classify(&e).link_lost());
        }
    }

    #[test]
    fn protocol_and_auth_failures_lose_the_link_type_errors_do_not() {
        let e = redis::RedisError::from((redis::ErrorKind::Parse, "bad frame"));
        assert_eq!(classify(&e), Failure::Broken);
        let e = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "bad password"));
        assert_eq!(classify(&e), Failure::Broken);
        let e = redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not a string"));
        assert_eq!(classify(&e), Failure::Unexpected);
        assert!(!Failure::Unexpected.link_lost());
        assert!(Failure::TimedOut.link_lost() && Failure::Gone.link_lost());
    }

    #[test]
    fn access_takes_tls_from_the_log_or_this_node() {
        let mut m = MasterRecord::new("m", Addr::new("10.0.0.1", 6379), 2, 1000);
        assert!(Access::of(&m, false).is_default());
        assert!(Access::of(&m, true).tls);
        m.tls = true;
        m.auth_user = Some("sentinel".into());
        m.auth_pass = Some(Secret::new("pw"));
        let a = Access::of(&m, false);
        assert!(a.tls && a.user.as_deref() == Some("sentinel"));
        let c = Connector::new(RedisTls::default(), ["other".to_string()].into());
        m.tls = false;
        assert!(!c.access(&m).tls);
        m.name = "other".into();
        assert!(c.access(&m).tls);
    }

    // A real refused connection, through the crate's whole connect path.
    #[tokio::test]
    async fn a_closed_port_is_gone() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = Addr::new("127.0.0.1", port);
        for tls in [false, true] {
            let access = Access {
                tls,
                ..Access::default()
            };
            let r = Connector::default()
                .connect(&addr, &access, Duration::from_secs(2))
                .await;
            match r {
                Err(e) => assert_eq!(e.failure(), Failure::Gone, "tls {tls}: {e}"),
                Ok(_) => panic!("connected to a closed port"),
            }
        }
    }
}
