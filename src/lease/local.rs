//! The Redis instances on this node's host (`local-redis`, DESIGN "Co-location"): one connection
//! each, what they say about themselves, and the fence commands. Matching to monitored instances
//! is by run id, never by address (loopback, NAT and containers break that).

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::topology::Addr;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);

/// Credentials for a local instance: (ACL user, password), the monitored master's.
pub type Auth = (Option<String>, String);

/// `min-replicas-to-write` while fenced: no master ever has that many good replicas.
pub const FENCE_REPLICAS: i64 = 2_147_483_647;
/// `min-replicas-max-lag` while fenced; 0 would switch the check off.
pub const FENCE_MAX_LAG: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Connection refused: nothing listens, so no Redis process takes writes there.
    #[error("{addr}: connection refused")]
    Gone { addr: Addr },
    #[error("{addr}: {source}")]
    Redis {
        addr: Addr,
        source: redis::RedisError,
    },
    #[error("{addr}: timed out")]
    Timeout { addr: Addr },
    #[error("{addr}: unexpected reply to {what}")]
    Reply { addr: Addr, what: &'static str },
}

/// What a local instance says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    pub run_id: String,
    /// ROLE says master.
    pub master: bool,
    pub min_replicas: i64,
    pub max_lag: i64,
    /// Its `bind` addresses (empty: every address).
    pub bind: Vec<String>,
}

impl LocalState {
    pub fn fenced(&self) -> bool {
        self.min_replicas == FENCE_REPLICAS && self.max_lag > 0
    }
}

pub struct Local {
    pub addr: Addr,
    conn: Option<MultiplexedConnection>,
}

impl Local {
    pub fn new(addr: Addr) -> Self {
        Local { addr, conn: None }
    }

    async fn conn(&mut self, password: Option<&Auth>) -> Result<MultiplexedConnection, LocalError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let addr = self.addr.clone();
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some((user, pass)) = password {
            settings = settings.set_password(pass.clone());
            if let Some(user) = user {
                settings = settings.set_username(user.clone());
            }
        }
        let tcp = redis::ConnectionAddr::Tcp(addr.host.clone(), addr.port);
        let client = redis::IntoConnectionInfo::into_connection_info(tcp)
            .map(|i| i.set_redis_settings(settings))
            .and_then(redis::Client::open)
            .map_err(|source| LocalError::Redis {
                addr: addr.clone(),
                source,
            })?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| LocalError::Timeout { addr: addr.clone() })?
            .map_err(|source| {
                if source.kind() == redis::ErrorKind::Io && source.to_string().contains("refused") {
                    LocalError::Gone { addr: addr.clone() }
                } else {
                    LocalError::Redis {
                        addr: addr.clone(),
                        source,
                    }
                }
            })?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn query<T: redis::FromRedisValue>(
        &mut self,
        password: Option<&Auth>,
        cmd: &redis::Cmd,
    ) -> Result<T, LocalError> {
        let mut conn = self.conn(password).await?;
        let addr = self.addr.clone();
        let r = tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await;
        let r = match r {
            Err(_) => Err(LocalError::Timeout { addr }),
            Ok(r) => r.map_err(|source| LocalError::Redis { addr, source }),
        };
        if r.is_err() {
            // A fresh connection next time: the old one may be dead.
            self.conn = None;
        }
        r
    }

    /// Run id, role and fence settings, in one round of commands.
    pub async fn read(&mut self, password: Option<&Auth>) -> Result<LocalState, LocalError> {
        let info: String = self
            .query(password, redis::cmd("INFO").arg("server"))
            .await?;
        let run_id = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|s| s.trim().to_owned())
            .ok_or(LocalError::Reply {
                addr: self.addr.clone(),
                what: "INFO server",
            })?;
        let role: Vec<redis::Value> = self.query(password, &redis::cmd("ROLE")).await?;
        let master = matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master");
        let cfg: Vec<String> = self
            .query(
                password,
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("min-replicas-to-write")
                    .arg("min-replicas-max-lag")
                    .arg("bind"),
            )
            .await?;
        let get = |key: &str| -> Option<i64> {
            cfg.chunks(2)
                .find(|kv| kv.first().map(String::as_str) == Some(key))
                .and_then(|kv| kv.get(1))
                .and_then(|v| v.parse().ok())
        };
        let (Some(min_replicas), Some(max_lag)) =
            (get("min-replicas-to-write"), get("min-replicas-max-lag"))
        else {
            return Err(LocalError::Reply {
                addr: self.addr.clone(),
                what: "CONFIG GET min-replicas-*",
            });
        };
        let bind = cfg
            .chunks(2)
            .find(|kv| kv.first().map(String::as_str) == Some("bind"))
            .and_then(|kv| kv.get(1))
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(LocalState {
            run_id,
            master,
            min_replicas,
            max_lag,
            bind,
        })
    }

    /// Writes fail at once (NOREPLICAS), and the fence is state inside Redis that outlives this
    /// process; then every normal and pub/sub client is disconnected so it re-resolves.
    pub async fn fence(&mut self, password: Option<&Auth>) -> Result<(), LocalError> {
        self.set_min_replicas(password, FENCE_REPLICAS, FENCE_MAX_LAG)
            .await?;
        self.kill_clients(password).await
    }

    /// `CLIENT KILL TYPE normal` and `pubsub` (our own connection is skipped by default).
    pub async fn kill_clients(&mut self, password: Option<&Auth>) -> Result<(), LocalError> {
        for kind in ["normal", "pubsub"] {
            let _: i64 = self
                .query(
                    password,
                    redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg(kind),
                )
                .await?;
        }
        Ok(())
    }

    /// Puts the operator's own settings back.
    pub async fn unfence(
        &mut self,
        password: Option<&Auth>,
        saved: (i64, i64),
    ) -> Result<(), LocalError> {
        self.set_min_replicas(password, saved.0, saved.1).await
    }

    async fn set_min_replicas(
        &mut self,
        password: Option<&Auth>,
        replicas: i64,
        lag: i64,
    ) -> Result<(), LocalError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET")
            .arg("min-replicas-max-lag")
            .arg(lag)
            .arg("min-replicas-to-write")
            .arg(replicas);
        let _: () = self.query(password, &cmd).await?;
        Ok(())
    }
}
