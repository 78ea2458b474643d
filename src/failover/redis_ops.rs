//! The commands the leader sends to Redis instances to change roles, each on a fresh connection
//! with a timeout: promotion, repointing, and reading back the role.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::lease::local::{FENCE_MAX_LAG, FENCE_REPLICAS};
use crate::topology::{Addr, MasterRecord};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{addr}: {source}")]
    Redis {
        addr: String,
        source: redis::RedisError,
    },
    #[error("{addr}: timed out")]
    Timeout { addr: String },
    #[error("{addr}: unexpected ROLE reply")]
    Role { addr: String },
}

impl OpsError {
    /// The connection broke (e.g. a CLIENT KILL from the fence): the command may not have run.
    pub fn dropped(&self) -> bool {
        matches!(self, OpsError::Redis { source, .. } if source.is_connection_dropped() || source.is_io_error())
    }
}

/// What ROLE says an instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica { master: Addr },
    Other(String),
}

pub struct Instance {
    addr: Addr,
    conn: MultiplexedConnection,
}

fn url(addr: &Addr, master: &MasterRecord) -> redis::RedisResult<redis::ConnectionInfo> {
    let mut redis = redis::RedisConnectionInfo::default();
    if let Some(pass) = &master.auth_pass {
        redis = redis.set_password(pass.expose());
    }
    if let Some(user) = &master.auth_user {
        redis = redis.set_username(user.clone());
    }
    let tcp = redis::ConnectionAddr::Tcp(addr.host.clone(), addr.port);
    Ok(redis::IntoConnectionInfo::into_connection_info(tcp)?.set_redis_settings(redis))
}

async fn timed<T>(
    addr: &Addr,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, OpsError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Err(_) => Err(OpsError::Timeout {
            addr: addr.to_string(),
        }),
        Ok(r) => r.map_err(|source| OpsError::Redis {
            addr: addr.to_string(),
            source,
        }),
    }
}

/// Every normal and pub/sub client disconnected, so it looks up the master again.
fn drop_clients(pipe: &mut redis::Pipeline) {
    pipe.cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal"])
        .ignore()
        .cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .ignore();
}

impl Instance {
    /// Connects with the master's credentials (replicas share them, as with Sentinel).
    pub async fn connect(addr: &Addr, master: &MasterRecord) -> Result<Instance, OpsError> {
        let client = url(addr, master)
            .and_then(redis::Client::open)
            .map_err(|source| OpsError::Redis {
                addr: addr.to_string(),
                source,
            })?;
        let conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                .await
            {
                Err(_) => {
                    return Err(OpsError::Timeout {
                        addr: addr.to_string(),
                    })
                }
                Ok(r) => r.map_err(|source| OpsError::Redis {
                    addr: addr.to_string(),
                    source,
                })?,
            };
        Ok(Instance {
            addr: addr.clone(),
            conn,
        })
    }

    /// Sentinel's reconfiguration block: the role change, persisted if Redis has a config file
    /// (CONFIG REWRITE fails harmlessly otherwise), and every client disconnected so it looks again.
    async fn reconfigure(&mut self, replicaof: &[&str]) -> Result<(), OpsError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("REPLICAOF")
            .arg(replicaof)
            .ignore()
            .cmd("CONFIG")
            .arg("REWRITE")
            .ignore();
        drop_clients(&mut pipe);
        let addr = self.addr.clone();
        match timed(&addr, pipe.query_async::<()>(&mut self.conn)).await {
            // The block ran; only CONFIG REWRITE (no config file) may have failed inside it.
            Err(OpsError::Redis { source, .. })
                if source.to_string().contains("without a config file") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The lease fence, sent over the network by the leader before a promotion: writes fail at
    /// once (NOREPLICAS) and every client is dropped. Only the co-located node lifts it, putting
    /// back the operator's saved settings, so it is sent only to masters that have one.
    pub async fn fence(&mut self) -> Result<(), OpsError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-max-lag")
            .arg(FENCE_MAX_LAG)
            .arg("min-replicas-to-write")
            .arg(FENCE_REPLICAS)
            .ignore();
        drop_clients(&mut pipe);
        let addr = self.addr.clone();
        timed(&addr, pipe.query_async::<()>(&mut self.conn)).await
    }

    pub async fn promote(&mut self) -> Result<(), OpsError> {
        self.reconfigure(&["NO", "ONE"]).await
    }

    pub async fn replicate(&mut self, to: &Addr) -> Result<(), OpsError> {
        let port = to.port.to_string();
        self.reconfigure(&[&to.host, &port]).await
    }

    /// `FAILOVER TO host port TIMEOUT ms`: Redis pauses writes until the target has every one of
    /// them, then swaps roles, so no acknowledged write is lost.
    pub async fn failover_to(&mut self, target: &Addr, timeout_ms: u64) -> Result<(), OpsError> {
        let addr = self.addr.clone();
        let mut cmd = redis::cmd("FAILOVER");
        cmd.arg("TO")
            .arg(&target.host)
            .arg(target.port)
            .arg("TIMEOUT")
            .arg(timeout_ms);
        timed(&addr, cmd.query_async::<()>(&mut self.conn)).await
    }

    pub async fn role(&mut self) -> Result<Role, OpsError> {
        let addr = self.addr.clone();
        let reply: Vec<redis::Value> =
            timed(&addr, redis::cmd("ROLE").query_async(&mut self.conn)).await?;
        let text = |v: Option<&redis::Value>| match v {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).to_string()),
            Some(redis::Value::SimpleString(s)) => Some(s.clone()),
            _ => None,
        };
        match text(reply.first()).as_deref() {
            Some("master") => Ok(Role::Master),
            Some("slave") => {
                let host = text(reply.get(1)).ok_or(OpsError::Role {
                    addr: addr.to_string(),
                })?;
                let port = match reply.get(2) {
                    Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                    _ => None,
                }
                .ok_or(OpsError::Role {
                    addr: addr.to_string(),
                })?;
                Ok(Role::Replica {
                    master: Addr { host, port },
                })
            }
            Some(other) => Ok(Role::Other(other.to_string())),
            None => Err(OpsError::Role {
                addr: addr.to_string(),
            }),
        }
    }

    /// This instance's replica priority and replication offset as of now, if it is a replica.
    pub async fn replica_offset(&mut self) -> Result<Option<(u32, u64)>, OpsError> {
        let addr = self.addr.clone();
        let text: String = timed(
            &addr,
            redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut self.conn),
        )
        .await?;
        Ok(match crate::monitor::info::parse(&text).map(|i| i.role) {
            Ok(crate::monitor::ReportedRole::Replica {
                priority, offset, ..
            }) => Some((priority, offset)),
            _ => None,
        })
    }

    /// `master_replid` from INFO replication.
    pub async fn replid(&mut self) -> Result<String, OpsError> {
        let addr = self.addr.clone();
        let info: String = timed(
            &addr,
            redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut self.conn),
        )
        .await?;
        Ok(info
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("master_replid:"))
            .unwrap_or_default()
            .to_string())
    }
}
