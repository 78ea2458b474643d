//! The commands that change or read an instance's role, written once for the lease guard and the
//! failover: the fence and its undoing, CLIENT KILL, promotion, repointing, FAILOVER TO, ROLE and
//! INFO. Each takes the caller's time limit.

use std::time::Duration;

use super::conn::{Conn, ConnError, Names};
use crate::topology::{Addr, MinReplicas};

/// `min-replicas-to-write` while fenced: no master ever has that many good replicas.
pub const FENCE_REPLICAS: i64 = 2_147_483_647;
/// `min-replicas-max-lag` while fenced; 0 would switch the check off.
pub const FENCE_MAX_LAG: i64 = 10;

/// What ROLE says an instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica { master: Addr },
    Other(String),
}

/// Every normal and pub/sub client disconnected, so it looks up the master again (our own
/// connection is skipped by default).
fn kill_clients(pipe: &mut redis::Pipeline, names: &Names) {
    for kind in ["normal", "pubsub"] {
        pipe.cmd(names.get("CLIENT"))
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .ignore();
    }
}

fn set_min_replicas(pipe: &mut redis::Pipeline, names: &Names, replicas: i64, lag: i64) {
    pipe.cmd(names.get("CONFIG"))
        .arg("SET")
        .arg("min-replicas-max-lag")
        .arg(lag)
        .arg("min-replicas-to-write")
        .arg(replicas)
        .ignore();
}

/// CONFIG REWRITE refused because Redis runs without a config file: nothing to persist, not an
/// error.
fn without_config_file_ok(r: Result<(), ConnError>) -> Result<(), ConnError> {
    match r {
        Err(ConnError::Redis { source, .. })
            if source.to_string().contains("without a config file") =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The fence's commands (see [`Conn::fence`]).
fn fence_pipeline(names: &Names) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    set_min_replicas(&mut pipe, names, FENCE_REPLICAS, FENCE_MAX_LAG);
    kill_clients(&mut pipe, names);
    pipe
}

/// The operator's settings as one CONFIG SET (see [`Conn::unfence`]); Redis applies a
/// multi-parameter CONFIG SET all or nothing.
fn unfence_pipeline(names: &Names, settings: MinReplicas) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    set_min_replicas(
        &mut pipe,
        names,
        i64::from(settings.to_write),
        i64::from(settings.max_lag_s),
    );
    pipe
}

impl Conn {
    /// The lease fence: writes fail at once (NOREPLICAS), and the fence is state inside Redis
    /// that outlives raftinel; then every client is dropped so it re-resolves. One round trip.
    pub async fn fence(&mut self, limit: Duration) -> Result<(), ConnError> {
        let pipe = fence_pipeline(self.names());
        self.pipeline("fence", &pipe, limit).await
    }

    /// Puts the operator's `min-replicas-*` from the log on the instance: lifts the fence, and
    /// brings a changed setting to a master that is already unfenced.
    pub async fn unfence(
        &mut self,
        settings: MinReplicas,
        limit: Duration,
    ) -> Result<(), ConnError> {
        let pipe = unfence_pipeline(self.names(), settings);
        self.pipeline("unfence", &pipe, limit).await
    }

    /// `CLIENT KILL TYPE normal` and `pubsub`.
    pub async fn kill_clients(&mut self, limit: Duration) -> Result<(), ConnError> {
        let mut pipe = redis::pipe();
        kill_clients(&mut pipe, self.names());
        self.pipeline("CLIENT KILL", &pipe, limit).await
    }

    /// `REPLICAOF NO ONE` in Sentinel's reconfiguration block.
    pub async fn promote(&mut self, limit: Duration) -> Result<(), ConnError> {
        self.reconfigure(&["NO", "ONE"], limit).await
    }

    /// `REPLICAOF host port` in Sentinel's reconfiguration block, `host` as this node announces
    /// it (a hostname only with `announce-hostnames yes`, as Sentinel sends it). A TLS master is
    /// reached by its replicas with Redis's own `tls-replication yes`, the operator's to set.
    pub async fn replicate(&mut self, to: &Addr, limit: Duration) -> Result<(), ConnError> {
        let to = self.hostnames().announce(to).into_owned();
        let port = to.port.to_string();
        self.reconfigure(&[&to.host, &port], limit).await
    }

    /// Sentinel's reconfiguration block: the role change, persisted if Redis has a config file
    /// (CONFIG REWRITE fails harmlessly otherwise), and every client disconnected.
    async fn reconfigure(&mut self, replicaof: &[&str], limit: Duration) -> Result<(), ConnError> {
        let names = self.names().clone();
        let (multi, exec) = (names.get("MULTI"), names.get("EXEC"));
        if multi != "MULTI" || exec != "EXEC" {
            return self.reconfigure_renamed(replicaof, limit).await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        reconfiguration(&mut pipe, &names, replicaof);
        // The block ran; only CONFIG REWRITE (no config file) may have failed inside it.
        without_config_file_ok(self.pipeline("REPLICAOF", &pipe, limit).await)
    }

    /// The same block where MULTI or EXEC is renamed (the client library's transactions send
    /// the plain names): EXEC's replies are checked here.
    async fn reconfigure_renamed(
        &mut self,
        replicaof: &[&str],
        limit: Duration,
    ) -> Result<(), ConnError> {
        let names = self.names().clone();
        let mut pipe = redis::pipe();
        pipe.cmd(names.get("MULTI")).ignore();
        reconfiguration(&mut pipe, &names, replicaof);
        pipe.cmd(names.get("EXEC"));
        let (replies,): (Vec<redis::Value>,) = self.pipeline("REPLICAOF", &pipe, limit).await?;
        for reply in replies {
            if let Err(source) = reply.extract_error() {
                let failed = Err(ConnError::Redis {
                    addr: self.addr().clone(),
                    what: "REPLICAOF",
                    source,
                });
                without_config_file_ok(failed)?;
            }
        }
        Ok(())
    }

    /// `CONFIG REWRITE`, so a restart keeps the role Redis holds now; a Redis without a config
    /// file has nothing to keep, which is not an error.
    pub async fn rewrite_config(&mut self, limit: Duration) -> Result<(), ConnError> {
        let mut cmd = self.names().cmd("CONFIG");
        cmd.arg("REWRITE");
        without_config_file_ok(self.query("CONFIG REWRITE", &cmd, limit).await)
    }

    /// `FAILOVER TO host port TIMEOUT ms`: Redis pauses writes until the target has every one of
    /// them, then swaps roles, so no acknowledged write is lost.
    ///
    /// Redis finds the target among its replicas by the address it lists for it: the name the
    /// replica announces, or its IP. A target the log knows by hostname is tried by name, then by
    /// the address the name resolved to.
    pub async fn failover_to(
        &mut self,
        target: &Addr,
        timeout_ms: u64,
        limit: Duration,
    ) -> Result<(), ConnError> {
        let mut hosts = vec![target.host.clone()];
        if let Some(ip) = self.hostnames().ip_of(&target.host) {
            if ip.to_string() != target.host {
                hosts.push(ip.to_string());
            }
        }
        let mut result = Ok(());
        for host in hosts {
            let mut cmd = self.names().cmd("FAILOVER");
            cmd.arg("TO")
                .arg(&host)
                .arg(target.port)
                .arg("TIMEOUT")
                .arg(timeout_ms);
            result = self.query("FAILOVER TO", &cmd, limit).await;
            if !result.as_ref().is_err_and(not_a_replica) {
                break;
            }
        }
        result
    }

    pub async fn role(&mut self, limit: Duration) -> Result<Role, ConnError> {
        let role = self.names().cmd("ROLE");
        let reply: Vec<redis::Value> = self.query("ROLE", &role, limit).await?;
        parse_role(&reply).ok_or_else(|| ConnError::Unexpected {
            addr: self.addr().clone(),
            what: "ROLE",
        })
    }

    /// `INFO section…` as text.
    pub async fn info(&mut self, sections: &[&str], limit: Duration) -> Result<String, ConnError> {
        let mut cmd = self.names().cmd("INFO");
        for s in sections {
            cmd.arg(*s);
        }
        self.query("INFO", &cmd, limit).await
    }
}

/// Redis's refusal of a FAILOVER TO whose host and port match none of its replicas.
fn not_a_replica(e: &ConnError) -> bool {
    e.redis()
        .and_then(|r| r.detail())
        .is_some_and(|d| d.contains("is not a replica"))
}

/// Sentinel's reconfiguration: the role change, CONFIG REWRITE, every client disconnected.
fn reconfiguration(pipe: &mut redis::Pipeline, names: &Names, replicaof: &[&str]) {
    pipe.cmd(names.get("REPLICAOF"))
        .arg(replicaof)
        .ignore()
        .cmd(names.get("CONFIG"))
        .arg("REWRITE")
        .ignore();
    kill_clients(pipe, names);
}

/// ROLE's reply: `master …`, `slave host port …` or another role name.
fn parse_role(reply: &[redis::Value]) -> Option<Role> {
    let text = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).to_string()),
        Some(redis::Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match text(reply.first())?.as_str() {
        "master" => Some(Role::Master),
        "slave" => {
            let host = text(reply.get(1))?;
            let port = match reply.get(2) {
                Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                _ => None,
            }?;
            Some(Role::Replica {
                master: Addr { host, port },
            })
        }
        other => Some(Role::Other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn role_replies() {
        assert_eq!(
            parse_role(&[bulk("master"), Value::Int(0), Value::Array(vec![])]),
            Some(Role::Master)
        );
        assert_eq!(
            parse_role(&[
                bulk("slave"),
                bulk("10.0.0.1"),
                Value::Int(6379),
                bulk("connected"),
                Value::Int(1)
            ]),
            Some(Role::Replica {
                master: Addr::new("10.0.0.1", 6379)
            })
        );
        assert_eq!(
            parse_role(&[bulk("sentinel"), Value::Array(vec![])]),
            Some(Role::Other("sentinel".into()))
        );
        assert_eq!(parse_role(&[]), None);
        assert_eq!(
            parse_role(&[bulk("slave"), bulk("h"), Value::Int(70_000)]),
            None
        );
    }

    /// The words of a pipeline, without RESP framing.
    fn words(pipe: &redis::Pipeline) -> Vec<String> {
        String::from_utf8(pipe.get_packed_pipeline())
            .unwrap()
            .split("\r\n")
            .filter(|w| !w.starts_with(['*', '$']) && !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    // Sentinel's rename-command: every command goes out under the instance's name for it, the
    // case of the configured name ignored; unrenamed ones keep theirs.
    #[test]
    fn renamed_commands_go_out_under_their_names() {
        let renamed = std::collections::BTreeMap::from([
            ("config".to_owned(), "cfg-x".to_owned()),
            ("replicaof".to_owned(), "rof".to_owned()),
        ]);
        let names = Names::of(&renamed);
        assert_eq!(names.get("CONFIG"), "cfg-x");
        assert_eq!(names.get("CLIENT"), "CLIENT");
        let fence = words(&fence_pipeline(&names));
        assert_eq!((fence[0].as_str(), fence[6].as_str()), ("cfg-x", "CLIENT"));
        let mut pipe = redis::pipe();
        reconfiguration(&mut pipe, &names, &["NO", "ONE"]);
        assert_eq!(words(&pipe)[..5], ["rof", "NO", "ONE", "cfg-x", "REWRITE"]);
    }

    #[test]
    fn the_fence_is_one_round_trip_of_the_same_three_commands() {
        assert_eq!(
            words(&fence_pipeline(&Names::default())),
            [
                "CONFIG",
                "SET",
                "min-replicas-max-lag",
                "10",
                "min-replicas-to-write",
                "2147483647",
                "CLIENT",
                "KILL",
                "TYPE",
                "normal",
                "CLIENT",
                "KILL",
                "TYPE",
                "pubsub"
            ]
        );
    }

    #[test]
    fn unfencing_sets_exactly_the_logs_values_and_kills_nobody() {
        let set = |to_write, max_lag_s| {
            words(&unfence_pipeline(
                &Names::default(),
                MinReplicas {
                    to_write,
                    max_lag_s,
                },
            ))
        };
        assert_eq!(
            set(1, 5),
            [
                "CONFIG",
                "SET",
                "min-replicas-max-lag",
                "5",
                "min-replicas-to-write",
                "1"
            ]
        );
        let highest = set(
            crate::topology::master::MAX_MIN_REPLICAS,
            crate::topology::master::MAX_MIN_REPLICAS_LAG,
        );
        assert_eq!(highest[3], "2147483647");
        assert_eq!(highest[5], "2147483646");
        assert_eq!(
            words(&unfence_pipeline(&Names::default(), MinReplicas::default()))[3..],
            ["10", "min-replicas-to-write", "0"]
        );
    }

    /// The highest setting an operator may put in the log never reads as the fence.
    #[test]
    fn no_operator_setting_is_the_fence() {
        assert!(i64::from(crate::topology::master::MAX_MIN_REPLICAS) < FENCE_REPLICAS);
    }
}
