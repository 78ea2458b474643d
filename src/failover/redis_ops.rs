//! The leader's commands to Redis instances, each on a fresh connection with the failover's
//! timeouts: promotion, repointing, the lease fence, FAILOVER TO, persisting the role, and reading
//! back the role.

use std::time::Duration;

use crate::redis::{Conn, ConnError, Connector, Role};
use crate::topology::{Addr, MasterRecord};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct Instance {
    conn: Conn,
}

impl Instance {
    /// Connects with the master's credentials and TLS setting (replicas share them, as with
    /// Sentinel).
    pub async fn connect(
        redis: &Connector,
        addr: &Addr,
        master: &MasterRecord,
    ) -> Result<Instance, ConnError> {
        let conn = redis
            .connect(addr, &redis.access(master), CONNECT_TIMEOUT)
            .await?;
        Ok(Instance { conn })
    }

    /// The lease fence, sent over the network by the leader before a promotion. Only the
    /// co-located node lifts it, putting back the operator's settings from the log, so it is sent
    /// only to masters that have one.
    pub async fn fence(&mut self) -> Result<(), ConnError> {
        self.conn.fence(COMMAND_TIMEOUT).await
    }

    pub async fn promote(&mut self) -> Result<(), ConnError> {
        self.conn.promote(COMMAND_TIMEOUT).await
    }

    pub async fn replicate(&mut self, to: &Addr) -> Result<(), ConnError> {
        self.conn.replicate(to, COMMAND_TIMEOUT).await
    }

    pub async fn failover_to(&mut self, target: &Addr, timeout_ms: u64) -> Result<(), ConnError> {
        self.conn
            .failover_to(target, timeout_ms, COMMAND_TIMEOUT)
            .await
    }

    pub async fn rewrite_config(&mut self) -> Result<(), ConnError> {
        self.conn.rewrite_config(COMMAND_TIMEOUT).await
    }

    pub async fn role(&mut self) -> Result<Role, ConnError> {
        self.conn.role(COMMAND_TIMEOUT).await
    }

    /// This instance's replica priority and replication offset as of now, if it is a replica.
    pub async fn replica_offset(&mut self) -> Result<Option<(u32, u64)>, ConnError> {
        let text = self.conn.info(&["replication"], COMMAND_TIMEOUT).await?;
        Ok(match crate::monitor::info::parse(&text).map(|i| i.role) {
            Ok(crate::monitor::ReportedRole::Replica {
                priority, offset, ..
            }) => Some((priority, offset)),
            _ => None,
        })
    }

    /// `master_replid` from INFO replication.
    pub async fn replid(&mut self) -> Result<String, ConnError> {
        let info = self.conn.info(&["replication"], COMMAND_TIMEOUT).await?;
        Ok(info
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("master_replid:"))
            .unwrap_or_default()
            .to_string())
    }
}
