//! `raftinel fence`: fences every local Redis (`local-redis`) of a node's config with the guard's
//! own fence ([`Local::fence`]: the unreachable `min-replicas-to-write`, then CLIENT KILL of normal
//! and pub/sub clients), for systemd's `ExecStopPost`, so a raftinel that crashed, was killed or
//! was stopped by its watchdog leaves no writable Redis without a lease behind it. No cluster, no
//! Raft, no network but the local Redis. Credentials come from the node's log when its data dir
//! can be read (the node is not running), else plain TCP and, for masters the config puts on TLS,
//! TLS. A Redis that refuses the connection is down and takes no writes: that counts as safe.

use std::time::Duration;

use crate::config::Config;
use crate::events::EventBus;
use crate::lease::fence::access_for;
use crate::lease::local::{Local, LocalState};
use crate::raft::{SmData, StateMachineStore};
use crate::redis::{Access, Connector, Failure};
use crate::topology::Addr;

/// Rounds over the credentials before giving up on one Redis (a busy Redis may miss 300 ms once).
const ATTEMPTS: usize = 2;
const PAUSE: Duration = Duration::from_millis(250);
/// sled's cache while the log is read once.
const SLED_CACHE_BYTES: u64 = 1 << 20;

/// What became of one local Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The fence took; what the instance was just before, if it could be read.
    Fenced { before: Option<LocalState> },
    /// Connection refused: no process takes writes at that address.
    Down,
    /// Neither: it may still take writes.
    Failed(String),
}

impl Outcome {
    /// Fenced or down: it takes no writes.
    pub fn safe(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// The line `raftinel fence` prints for one local Redis.
pub fn describe(addr: &Addr, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Fenced { before } => {
            let was = match before {
                Some(s) if s.master && !s.fenced() => "it was a writable master",
                Some(s) if s.master => "it was a master, already fenced",
                Some(_) => "it is a replica",
                None => "its state before could not be read",
            };
            format!("{addr}: fenced: writes refused, clients disconnected ({was})")
        }
        Outcome::Down => {
            format!("{addr}: down (connection refused): nothing there takes writes")
        }
        Outcome::Failed(e) => format!("{addr}: NOT fenced: {e}; it may still take writes"),
    }
}

/// The ways to reach `addr`, best first: the log's credentials for it (the guard's choice, matched
/// by address), every other master's (`local-redis` may name the instance by another address than
/// the log does: loopback, NAT), then plain TCP without AUTH, then TLS if this node talks TLS to
/// any master. Each once.
pub fn candidates(view: Option<&SmData>, redis: &Connector, addr: &Addr) -> Vec<Access> {
    let mut out = Vec::new();
    if let Some(view) = view {
        out.push(access_for(view, redis, addr));
        out.extend(view.topology.masters().map(|m| redis.access(m)));
    }
    out.push(Access::default());
    if !redis.tls_names().is_empty() || view.is_some_and(|v| v.topology.masters().any(|m| m.tls)) {
        out.push(Access {
            tls: true,
            ..Access::default()
        });
    }
    let mut unique: Vec<Access> = Vec::new();
    for a in out {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    unique
}

/// The node's applied state, read from its data dir; an error says why not (the node holds the
/// store's lock while it runs, or there is no store yet).
pub fn read_log(config: &Config) -> Result<SmData, String> {
    if !config.data_dir.is_dir() {
        return Err(format!("no data dir {}", config.data_dir.display()));
    }
    let db = sled::Config::new()
        .path(&config.data_dir)
        .cache_capacity(SLED_CACHE_BYTES)
        .open()
        .map_err(|e| e.to_string())?;
    let sm = StateMachineStore::open(&db, EventBus::default()).map_err(|e| e.to_string())?;
    let data = sm.view().borrow().as_ref().clone();
    Ok(data)
}

/// Fences every local Redis of `config`; one outcome each, in config order.
pub async fn fence_all(config: &Config, view: Option<&SmData>) -> Vec<(Addr, Outcome)> {
    let redis = Connector::new(config.redis_tls.clone(), config.tls_masters.clone());
    let mut out = Vec::new();
    for a in &config.local_redis {
        let addr = Addr::new(a.ip().to_string(), a.port());
        let ways = candidates(view, &redis, &addr);
        let outcome = fence_one(&redis, &addr, &ways).await;
        out.push((addr, outcome));
    }
    out
}

async fn fence_one(redis: &Connector, addr: &Addr, ways: &[Access]) -> Outcome {
    let mut last = String::from("no way to connect");
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        for access in ways {
            let mut local = Local::new(addr.clone(), redis.clone());
            let before = match local.read(access).await {
                Ok(s) => Some(s),
                Err(e) if e.failure() == Failure::Gone => return Outcome::Down,
                Err(_) => None,
            };
            match local.fence(access).await {
                Ok(()) => return Outcome::Fenced { before },
                Err(e) if e.failure() == Failure::Gone => return Outcome::Down,
                Err(e) => last = e.to_string(),
            }
        }
    }
    Outcome::Failed(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{MasterRecord, Secret};

    fn state(master: bool, min_replicas: i64) -> LocalState {
        LocalState {
            run_id: "r".into(),
            master,
            min_replicas,
            max_lag: 10,
            bind: Vec::new(),
        }
    }

    #[test]
    fn only_a_failure_is_unsafe() {
        assert!(Outcome::Fenced { before: None }.safe());
        assert!(Outcome::Down.safe());
        assert!(!Outcome::Failed("timed out".into()).safe());
    }

    #[test]
    fn lines_say_what_it_was_and_what_it_is() {
        let a = Addr::new("127.0.0.1", 6379);
        let fenced = |before| describe(&a, &Outcome::Fenced { before });
        assert_eq!(
            fenced(Some(state(true, 0))),
            "127.0.0.1:6379: fenced: writes refused, clients disconnected (it was a writable master)"
        );
        assert!(fenced(Some(state(true, crate::redis::FENCE_REPLICAS))).contains("already fenced"));
        assert!(fenced(Some(state(false, 0))).contains("replica"));
        assert!(fenced(None).contains("could not be read"));
        assert_eq!(
            describe(&a, &Outcome::Down),
            "127.0.0.1:6379: down (connection refused): nothing there takes writes"
        );
        assert!(describe(&a, &Outcome::Failed("x".into())).contains("NOT fenced: x"));
    }

    #[test]
    fn the_logs_credentials_come_first_then_plain_then_tls() {
        let addr = Addr::new("10.0.0.1", 6379);
        let plain = Connector::default();
        assert_eq!(candidates(None, &plain, &addr), [Access::default()]);

        let mut view = SmData::default();
        let mut m = MasterRecord::new("m", addr.clone(), 2, 1000);
        m.auth_pass = Some(Secret::new("pw"));
        view.topology.masters.insert("m".into(), m.into());
        let ways = candidates(Some(&view), &plain, &addr);
        assert_eq!(ways.len(), 2);
        assert!(ways[0].pass.is_some() && !ways[0].tls);
        assert_eq!(ways[1], Access::default());

        // A master on TLS in this node's config: TLS is tried too, even with no log.
        let tls = Connector::new(Default::default(), ["m".to_owned()].into());
        let ways = candidates(None, &tls, &addr);
        assert_eq!(ways.len(), 2);
        assert!(ways[1].tls);
        // An address the log does not know still gets every master's credentials, then plain.
        let other = Addr::new("127.0.0.1", 6379);
        let ways = candidates(Some(&view), &plain, &other);
        assert_eq!(ways.len(), 2);
        assert!(ways[0].is_default() && ways[1].pass.is_some());
    }
}
