//! The Redis instances on this node's host (`local-redis`, DESIGN "Co-location"): one connection
//! each, what they say about themselves, and the fence commands. Matching to monitored instances
//! is by run id, never by address (loopback, NAT and containers break that).

use std::time::Duration;

use crate::redis::{Access, Conn, ConnError, Connector, Failure, Role, FENCE_REPLICAS};
use crate::topology::{Addr, MinReplicas};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);

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

    /// It carries exactly these settings.
    pub fn carries(&self, settings: MinReplicas) -> bool {
        self.min_replicas == i64::from(settings.to_write)
            && self.max_lag == i64::from(settings.max_lag_s)
    }
}

pub struct Local {
    pub addr: Addr,
    redis: Connector,
    /// The connection and the settings it was opened with.
    conn: Option<(Conn, Access)>,
}

impl Local {
    pub fn new(addr: Addr, redis: Connector) -> Self {
        Local {
            addr,
            redis,
            conn: None,
        }
    }

    async fn conn(&mut self, access: &Access) -> Result<&mut Conn, ConnError> {
        let open = match self.conn.take() {
            Some((c, a)) if a == *access => (c, a),
            // None yet, or opened with other credentials or TLS.
            _ => {
                let c = self
                    .redis
                    .connect(&self.addr, access, CONNECT_TIMEOUT)
                    .await?;
                (c, access.clone())
            }
        };
        Ok(&mut self.conn.insert(open).0)
    }

    /// Drops the connection after an error: the next round opens a fresh one.
    fn settle<T>(&mut self, r: Result<T, ConnError>) -> Result<T, ConnError> {
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// Run id, role and fence settings, in one round of commands.
    pub async fn read(&mut self, access: &Access) -> Result<LocalState, ConnError> {
        let r = self.read_once(access).await;
        self.settle(r)
    }

    async fn read_once(&mut self, access: &Access) -> Result<LocalState, ConnError> {
        let addr = self.addr.clone();
        let conn = self.conn(access).await?;
        let info = conn.info(&["server"], COMMAND_TIMEOUT).await?;
        let run_id = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|s| s.trim().to_owned())
            .ok_or(ConnError::Unexpected {
                addr: addr.clone(),
                what: "INFO server",
            })?;
        // A ROLE reply of another shape counts as "not master", as it always has here.
        let master = match conn.role(COMMAND_TIMEOUT).await {
            Ok(role) => role == Role::Master,
            Err(e) if e.failure() == Failure::Unexpected => false,
            Err(e) => return Err(e),
        };
        let mut get = conn.names().cmd("CONFIG");
        get.arg("GET")
            .arg("min-replicas-to-write")
            .arg("min-replicas-max-lag")
            .arg("bind");
        let cfg: Vec<String> = conn.query("CONFIG GET", &get, COMMAND_TIMEOUT).await?;
        let value = |key: &str| -> Option<&String> {
            cfg.chunks(2)
                .find(|kv| kv.first().map(String::as_str) == Some(key))
                .and_then(|kv| kv.get(1))
        };
        let number = |key: &str| value(key).and_then(|v| v.parse::<i64>().ok());
        let (Some(min_replicas), Some(max_lag)) = (
            number("min-replicas-to-write"),
            number("min-replicas-max-lag"),
        ) else {
            return Err(ConnError::Unexpected {
                addr,
                what: "CONFIG GET min-replicas-*",
            });
        };
        let bind = value("bind")
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

    /// Writes fail at once and every normal and pub/sub client is disconnected (see
    /// [`Conn::fence`]).
    pub async fn fence(&mut self, access: &Access) -> Result<(), ConnError> {
        let r = match self.conn(access).await {
            Ok(c) => c.fence(COMMAND_TIMEOUT).await,
            Err(e) => Err(e),
        };
        self.settle(r)
    }

    /// `CLIENT KILL TYPE normal` and `pubsub`.
    pub async fn kill_clients(&mut self, access: &Access) -> Result<(), ConnError> {
        let r = match self.conn(access).await {
            Ok(c) => c.kill_clients(COMMAND_TIMEOUT).await,
            Err(e) => Err(e),
        };
        self.settle(r)
    }

    /// Puts the operator's settings from the log on it (see [`Conn::unfence`]).
    pub async fn unfence(
        &mut self,
        access: &Access,
        settings: MinReplicas,
    ) -> Result<(), ConnError> {
        let r = match self.conn(access).await {
            Ok(c) => c.unfence(settings, COMMAND_TIMEOUT).await,
            Err(e) => Err(e),
        };
        self.settle(r)
    }
}
