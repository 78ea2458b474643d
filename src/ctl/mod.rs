//! `raftinel ctl`: the operator's client for the gRPC API. It tries the listed nodes in turn,
//! prints human-readable text or `--json`, and exits non-zero with a one-line reason on failure.

mod client;
mod import;
mod output;
mod secret;
mod sentinel_conf;

pub use import::ImportArgs;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::dial::{DialError, Dialer, TlsPem};
use crate::pb;
use client::Cluster;

#[derive(Args, Debug)]
pub struct CtlArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Read this node's applied state instead of a linearizable read through the leader.
    #[arg(long, global = true)]
    pub local: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// How to reach the cluster: its nodes and the credentials.
#[derive(Args, Debug)]
pub struct Connection {
    /// gRPC addresses of cluster nodes, tried in turn: HOST:PORT[,HOST:PORT...]
    #[arg(long, default_value = "127.0.0.1:26380")]
    pub cluster: String,
    /// Refuse to talk to a cluster with another id (see `ctl status`).
    #[arg(long = "cluster-id")]
    pub cluster_id: Option<String>,
    /// Admin client certificate (from `raftinel certs admin`), with --tls-key and --tls-ca.
    #[arg(long = "tls-cert", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long = "tls-key", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The cluster's CA: alone, it verifies the nodes (reads; writes with --token-file).
    #[arg(long = "tls-ca")]
    pub tls_ca: Option<PathBuf>,
    /// File holding the admin token of the nodes' `admin-token-file`.
    #[arg(long = "token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    fn cluster(&self) -> Result<Cluster, CtlError> {
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(c), Some(k), Some(a)) => Some(TlsPem::load(c, k, a)?),
            (None, None, Some(a)) => Some(TlsPem::load_ca(a)?),
            _ => None,
        };
        let token = self
            .token_file
            .as_deref()
            .map(client::read_token)
            .transpose()?;
        Cluster::new(
            &self.cluster,
            Dialer::new(tls),
            self.cluster_id.clone(),
            token,
        )
    }

    /// What a TLS port answers a plaintext HTTP/2 client; say what to do about it.
    fn explain(&self, e: CtlError) -> CtlError {
        match e {
            CtlError::Status(m) if self.tls_ca.is_none() && m.contains("h2 protocol error") => {
                CtlError::Status(format!(
                    "{m} (the nodes may require TLS: pass --tls-ca CA, plus --tls-cert/--tls-key or --token-file to write)"
                ))
            }
            other => other,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Leader, term, commit/applied index and members with reachability.
    Status,
    /// Every monitored master.
    Masters,
    /// Every instance of every master in one table: role, epoch, fencing, state.
    List,
    /// One master: address, epoch, replicas, failover in progress.
    Master { name: String },
    /// Start monitoring a master (SENTINEL MONITOR).
    Monitor {
        name: String,
        host: String,
        port: u32,
        quorum: u32,
    },
    /// Stop monitoring a master (SENTINEL REMOVE).
    Remove { name: String },
    /// Change options (SENTINEL SET): down-after-milliseconds, failover-timeout, parallel-syncs,
    /// quorum, auth-pass, auth-user, notification-script, client-reconfig-script (refused unless
    /// the nodes run with deny-scripts-reconfig = false), and raftinel's vip (A.B.C.D/N, IPv4),
    /// vip-interface (e.g. eth0; an empty value clears either), tls (yes/no),
    /// min-replicas-to-write (0 or more) and min-replicas-max-lag (seconds, 1 or more): what the
    /// lease holder puts on its master while unfenced. Several OPTION VALUE pairs are applied all
    /// or none. `auth-pass -` reads the password from the first line
    /// of stdin, keeping it out of argv and shell history.
    Set {
        name: String,
        /// Read auth-pass from the first line of FILE.
        #[arg(long = "auth-pass-file", value_name = "FILE")]
        auth_pass_file: Option<PathBuf>,
        #[arg(num_args = 2.., value_names = ["OPTION", "VALUE"], required_unless_present = "auth_pass_file")]
        pairs: Vec<String>,
    },
    /// Stream topology events as they are applied.
    Watch {
        /// Replay retained events from this log index first (0: only new events).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Force a failover now, like SENTINEL FAILOVER: the best replica is promoted without
    /// agreement that the master is down. Writes the master acknowledged but had not yet
    /// replicated can be LOST; prefer `switchover` for planned moves.
    Failover { name: String },
    /// Lossless planned handover (Redis's FAILOVER TO): writes pause until the target has caught
    /// up, so every acknowledged write survives.
    Switchover {
        name: String,
        /// The replica to hand over to (HOST:PORT); default: the best replica.
        #[arg(long)]
        to: Option<String>,
    },
    /// Maintenance: keep observing the master, never act on it, until `resume`.
    Pause { name: String },
    /// End maintenance.
    Resume { name: String },
    /// Let the next automatic failover start at once: clears the delay after an aborted attempt
    /// (2 x failover-timeout, Sentinel's rule) and the min-failover-interval wait.
    ResetFailoverDelay { name: String },
    /// The master's failovers from the log: when, why, from, to, epoch, duration.
    History { name: String },
    /// Answer a +topology-conflict: --keep the current master (the conflicting instance's own
    /// writes are overwritten) or --keep the conflicting instance (it becomes the master).
    Resolve {
        name: String,
        #[arg(long)]
        keep: String,
    },
    /// List members, or add / remove one.
    Members {
        #[command(subcommand)]
        action: Option<MembersAction>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MembersAction {
    /// Add a node (started with --join) as a learner, then as a voter once caught up.
    Add {
        id: u64,
        /// The new node's gRPC address.
        addr: String,
        /// Its Sentinel (RESP) address; default: same IP, port 26379.
        #[arg(long)]
        sentinel: Option<String>,
    },
    /// Remove a node from the cluster.
    Remove { id: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Dial(#[from] DialError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Status(String),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn parse_host_port(s: &str) -> Result<(String, u32), CtlError> {
    let addr: std::net::SocketAddr = s
        .parse()
        .map_err(|_| CtlError::Usage(format!("'{s}' is not IP:PORT")))?;
    Ok((addr.ip().to_string(), u32::from(addr.port())))
}

fn consistency(local: bool) -> i32 {
    if local {
        pb::Consistency::Local as i32
    } else {
        pb::Consistency::Linearizable as i32
    }
}

/// Runs one ctl command, printing its result to stdout.
pub async fn run(args: CtlArgs) -> Result<(), CtlError> {
    let cluster = args.conn.cluster()?;
    run_command(cluster, args.json, args.local, args.command)
        .await
        .map_err(|e| args.conn.explain(e))
}

/// `raftinel import-sentinel`.
pub async fn import_sentinel(args: ImportArgs) -> Result<(), CtlError> {
    let cluster = match args.dry_run {
        true => None,
        false => Some(args.conn.cluster()?),
    };
    import::run(cluster.as_ref(), &args)
        .await
        .map_err(|e| args.conn.explain(e))
}

async fn run_command(
    cluster: Cluster,
    json: bool,
    local: bool,
    command: CtlCommand,
) -> Result<(), CtlError> {
    match command {
        CtlCommand::Status => {
            let s = cluster
                .call(|mut c, r| async move {
                    c.cluster_status(r.req(pb::ClusterStatusRequest {})).await
                })
                .await?;
            output::status(&s, json)
        }
        CtlCommand::Masters => {
            let req = pb::ListMastersRequest {
                consistency: consistency(local),
            };
            let reply = cluster
                .call(|mut c, r| async move { c.list_masters(r.req(req)).await })
                .await?;
            output::masters(&reply.masters, json)
        }
        CtlCommand::List => {
            let req = pb::ListMastersRequest {
                consistency: consistency(local),
            };
            let reply = cluster
                .call(|mut c, r| async move { c.list_masters(r.req(req)).await })
                .await?;
            output::list(&reply.masters, json)
        }
        CtlCommand::Master { name } => {
            let req = pb::GetMasterRequest {
                name,
                consistency: consistency(local),
            };
            let m = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.get_master(r.req(req)).await }
                })
                .await?;
            output::master(&m, json)
        }
        CtlCommand::Monitor {
            name,
            host,
            port,
            quorum,
        } => {
            let req = pb::MonitorRequest {
                name,
                host,
                port,
                quorum,
            };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.monitor(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Remove { name } => {
            let req = pb::RemoveRequest { name };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.remove(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Set {
            name,
            auth_pass_file,
            pairs,
        } => {
            let asks_stdin = pairs
                .chunks(2)
                .any(|p| matches!(p, [o, v] if o.eq_ignore_ascii_case("auth-pass") && v == "-"));
            if asks_stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("auth-pass for {name}: ");
            }
            let (options, exposed) = secret::options(
                &pairs,
                auth_pass_file.as_deref(),
                &mut std::io::stdin().lock(),
            )?;
            if exposed {
                eprintln!("{}", secret::ARGV_WARNING);
            }
            let req = pb::SetRequest { name, options };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.set(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Watch { from, count } => cluster.watch(from, count, json).await,
        CtlCommand::Failover { name } => {
            let req = pb::NameRequest { name };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.failover(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Switchover { name, to } => {
            let (to_host, to_port) = match to.as_deref().map(parse_host_port).transpose()? {
                Some((h, p)) => (h, p),
                None => (String::new(), 0),
            };
            let req = pb::SwitchoverRequest {
                name,
                to_host,
                to_port,
            };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.switchover(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Pause { name } => {
            let req = pb::NameRequest { name };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.pause(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Resume { name } => {
            let req = pb::NameRequest { name };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.resume(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::ResetFailoverDelay { name } => {
            let req = pb::NameRequest { name };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.reset_failover_delay(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Resolve { name, keep } => {
            let (keep_host, keep_port) = parse_host_port(&keep)?;
            let req = pb::ResolveRequest {
                name,
                keep_host,
                keep_port,
            };
            let w = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.resolve(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::History { name } => {
            let req = pb::HistoryRequest {
                name,
                consistency: consistency(local),
            };
            let h = cluster
                .call(|mut c, r| {
                    let req = req.clone();
                    async move { c.history(r.req(req)).await }
                })
                .await?;
            output::history(&h, json)
        }
        CtlCommand::Members { action: None } => {
            let s = cluster
                .call(|mut c, r| async move {
                    c.cluster_status(r.req(pb::ClusterStatusRequest {})).await
                })
                .await?;
            output::members(&s, json)
        }
        CtlCommand::Members {
            action: Some(MembersAction::Add { id, addr, sentinel }),
        } => {
            let req = pb::AddMemberRequest {
                id,
                addr,
                sentinel_addr: sentinel.unwrap_or_default(),
            };
            let w = cluster
                .call_long(|mut c, r| {
                    let req = req.clone();
                    async move { c.add_member(r.req(req)).await }
                })
                .await?;
            output::written(&w, json)
        }
        CtlCommand::Members {
            action: Some(MembersAction::Remove { id }),
        } => {
            let req = pb::RemoveMemberRequest { id };
            let w = cluster
                .call_long(|mut c, r| async move { c.remove_member(r.req(req)).await })
                .await?;
            output::written(&w, json)
        }
    }
}
