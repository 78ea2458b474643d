//! Test harness: real `raftinel serve` processes on loopback with OS-assigned ports and temporary
//! data dirs, killed with SIGKILL or stopped with SIGTERM, polled against deadlines.
#![allow(dead_code)]

pub mod fault;
pub mod firewall;
pub mod lab;
pub mod lab_hosts;
pub mod pki;
pub mod process;
pub mod redis;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use raftinel::pb;
use raftinel::pb::topology_client::TopologyClient;
use tonic::transport::Channel;

/// Polls `f` every 20 ms until it returns Some, or fails after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cluster tests run one at a time: on 2 cores, parallel clusters cause spurious elections.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port the kernel just called free, never one this process handed out before: a port is
/// free again once its probe socket closes, so two calls could otherwise return the same one
/// (seen in CI: two nodes configured on one address).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh port in 100 tries");
}

pub struct Node {
    pub id: u64,
    pub grpc: String,
    pub sentinel: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra `serve` flags for this node only (e.g. `--local-redis`).
    pub args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Adds `serve --config` and this node's output redirection to `cmd`.
    fn serve(&self, cmd: &mut Command, rust_log: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log);
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: BTreeMap<u64, Node>,
    pub extra: String,
    /// How the harness dials nodes (set a TLS dialer for mTLS clusters).
    pub dialer: raftinel::dial::Dialer,
    /// Extra `ctl` flags, e.g. the TLS files.
    pub ctl_flags: Vec<String>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_raftinel")
}

impl Cluster {
    /// Prepares (does not start) `n` nodes with ids 1..=n; `extra` is appended to every config.
    pub fn new(n: u64, extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            nodes.insert(id, Self::make_node(tmp.path(), id));
        }
        let c = Cluster {
            tmp,
            nodes,
            extra: extra.to_string(),
            dialer: raftinel::dial::Dialer::default(),
            ctl_flags: Vec::new(),
        };
        for id in 1..=n {
            c.write_config(id, None);
        }
        c
    }

    fn make_node(root: &Path, id: u64) -> Node {
        Node {
            id,
            grpc: format!("127.0.0.1:{}", free_port()),
            sentinel: format!("127.0.0.1:{}", free_port()),
            dir: root.join(format!("n{id}")),
            config: root.join(format!("n{id}.toml")),
            log: root.join(format!("n{id}.log")),
            args: Vec::new(),
            child: None,
        }
    }

    pub fn peers_flag(&self) -> String {
        self.nodes
            .values()
            .map(|n| format!("{}={}", n.id, n.grpc))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Writes node `id`'s config: a voter of the initial peer map, or a joiner via `join`.
    pub fn write_config(&self, id: u64, join: Option<&str>) {
        let n = &self.nodes[&id];
        let mut text = format!(
            "id = {id}\nlisten = \"{}\"\nsentinel-listen = \"{}\"\ndata-dir = \"{}\"\n",
            n.grpc,
            n.sentinel,
            n.dir.display()
        );
        let peers = match join {
            Some(j) => {
                text.push_str(&format!("join = \"{j}\"\n"));
                String::new()
            }
            None => {
                let mut p = String::from("[peers]\n");
                for peer in self.nodes.values().filter(|p| p.id <= 3 || p.id == id) {
                    p.push_str(&format!("{} = \"{}\"\n", peer.id, peer.grpc));
                }
                p
            }
        };
        // Top-level keys first, then `extra` (which may open tables), then [peers].
        text.push_str(&self.extra);
        text.push_str(&peers);
        std::fs::write(&n.config, text).unwrap();
    }

    pub fn add_joiner(&mut self, id: u64) {
        let node = Self::make_node(self.tmp.path(), id);
        self.nodes.insert(id, node);
        let join = self.nodes[&1].grpc.clone();
        self.write_config(id, Some(&join));
    }

    pub fn start(&mut self, id: u64) {
        self.start_with(id, None);
    }

    /// Starts node `id` as another user (`setpriv`), so that firewall rules can single out its
    /// traffic by owner; its data dir is handed to that user.
    pub fn start_as(&mut self, id: u64, uid: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = self.nodes[&id].dir.clone();
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
        self.start_with(id, Some(uid));
    }

    fn start_with(&mut self, id: u64, uid: Option<u32>) {
        let mut cmd = match uid {
            None => Command::new(bin()),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(bin());
                c
            }
        };
        self.nodes[&id].serve(&mut cmd, &node_log());
        let child = cmd.spawn().unwrap();
        self.nodes.get_mut(&id).unwrap().child = Some(child);
    }

    /// Starts node `id` with CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities, as the
    /// systemd unit's `AmbientCapabilities=` gives them (needs root).
    pub fn start_with_ambient_caps(&mut self, id: u64) {
        let mut cmd = Command::new("setpriv");
        let caps = "+net_admin,+net_raw";
        cmd.args(["--inh-caps", caps, "--ambient-caps", caps, bin()]);
        self.nodes[&id].serve(&mut cmd, &node_log());
        let child = cmd.spawn().unwrap();
        self.nodes.get_mut(&id).unwrap().child = Some(child);
    }

    /// `raftinel serve` for node `id` (its config, stderr appended to its log), for callers that
    /// own the process themselves (the benches).
    pub fn serve_command(&self, id: u64, rust_log: &str) -> Command {
        let mut cmd = Command::new(bin());
        self.nodes[&id].serve(&mut cmd, rust_log);
        cmd
    }

    pub fn start_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.start(id);
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self, id: u64) {
        let n = self.nodes.get_mut(&id).unwrap();
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the node's own shutdown path; returns its exit status.
    pub fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        let n = self.nodes.get_mut(&id).unwrap();
        let mut c = n.child.take().expect("node not running");
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {id} did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for id in self.nodes.keys() {
            let log = self.log_of(*id);
            let lines: Vec<&str> = log.lines().collect();
            let start = lines.len().saturating_sub(15);
            out.push_str(&format!("--- node {id}\n{}\n", lines[start..].join("\n")));
        }
        out
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[&id].log).unwrap_or_default()
    }

    pub async fn client(&self, id: u64) -> TopologyClient<Channel> {
        let ch = self.dialer.channel(&self.nodes[&id].grpc).unwrap();
        TopologyClient::new(ch)
    }

    pub async fn status(&self, id: u64) -> Option<pb::ClusterStatusReply> {
        let mut c = self.client(id).await;
        let mut req = tonic::Request::new(pb::ClusterStatusRequest {});
        req.set_timeout(Duration::from_secs(2));
        c.cluster_status(req).await.ok().map(|r| r.into_inner())
    }

    /// Waits until every node in `ids` agrees on one leader among them; returns it.
    pub async fn wait_leader(&self, ids: &[u64], within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let mut leaders = Vec::new();
            for id in ids {
                match self.status(*id).await {
                    Some(s) if s.leader_id != 0 => leaders.push(s.leader_id),
                    _ => break,
                }
            }
            if leaders.len() == ids.len()
                && leaders.iter().all(|l| *l == leaders[0])
                && ids.contains(&leaders[0])
            {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {ids:?} within {within:?}\n{}",
                self.logs_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.status(id).await {
                if s.applied_index >= index {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not apply index {index} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Monitors a master through node `via`, retrying while the cluster has no leader. A retry
    /// that finds the name taken means an earlier, timed-out attempt committed after all.
    pub async fn monitor(&self, via: u64, name: &str, port: u32) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut retried = false;
        loop {
            let mut c = self.client(via).await;
            let r = c
                .monitor(pb::MonitorRequest {
                    name: name.into(),
                    host: "127.0.0.1".into(),
                    port,
                    quorum: 2,
                })
                .await;
            match r {
                Ok(w) => return w.into_inner().index,
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(s) if retried && s.code() == tonic::Code::AlreadyExists => {
                    let m = self
                        .get(via, name, pb::Consistency::Linearizable)
                        .await
                        .unwrap_or_else(|e| panic!("monitor {name} via {via}: {e}"));
                    assert_eq!(m.port, port, "{name} exists with another address");
                    return m.applied_index;
                }
                Err(s) => panic!("monitor {name} via {via}: {s}"),
            }
        }
    }

    pub async fn get(
        &self,
        id: u64,
        name: &str,
        consistency: pb::Consistency,
    ) -> Result<pb::Master, tonic::Status> {
        let mut c = self.client(id).await;
        c.get_master(pb::GetMasterRequest {
            name: name.into(),
            consistency: consistency as i32,
        })
        .await
        .map(|r| r.into_inner())
    }

    pub async fn list(&self, id: u64) -> Result<Vec<pb::Master>, tonic::Status> {
        let mut c = self.client(id).await;
        c.list_masters(pb::ListMastersRequest {
            consistency: pb::Consistency::Linearizable as i32,
        })
        .await
        .map(|r| r.into_inner().masters)
    }

    /// `ctl` for idempotent commands, tried again (3 times at most) when the cluster was only
    /// briefly unable to answer: no quorum in time or no leader known, as on a loaded CI host.
    pub fn ctl_settled(&self, args: &[&str]) -> std::process::Output {
        let mut out = self.ctl(args);
        for _ in 0..2 {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let transient = ["no quorum", "no leader", "not the leader"]
                .iter()
                .any(|t| err.contains(t));
            if out.status.success() || !transient {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            out = self.ctl(args);
        }
        out
    }

    /// Node `id`'s gRPC port (firewall rules name it).
    pub fn grpc_port(&self, id: u64) -> u16 {
        let addr: std::net::SocketAddr = self.nodes[&id].grpc.parse().unwrap();
        addr.port()
    }

    /// Waits (up to `within`) until node `via`'s log names a master of "mymaster" other than the
    /// one on `old_port`; with `ended`, also with its failover ended.
    pub async fn new_master(
        &self,
        via: u64,
        old_port: u16,
        ended: bool,
        within: Duration,
    ) -> pb::Master {
        eventually("a new master in the log", within, || async {
            self.get(via, "mymaster", pb::Consistency::Local)
                .await
                .ok()
                .filter(|x| x.port != u32::from(old_port) && (!ended || x.failover.is_none()))
        })
        .await
    }

    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        self.ctl_via(&ids, args)
    }

    /// `ctl` that knows only the nodes `ids` (say, to keep it off a node cut off from the rest,
    /// which may still believe it leads).
    pub fn ctl_via(&self, ids: &[u64], args: &[&str]) -> std::process::Output {
        let list: Vec<&str> = ids.iter().map(|id| self.nodes[id].grpc.as_str()).collect();
        Command::new(bin())
            .args(["ctl", "--cluster", &list.join(",")])
            .args(&self.ctl_flags)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

/// Prints the last lines of every node's log if the test is panicking when this is dropped.
/// Declare it after the `Cluster` so that it drops first, while the logs still exist.
pub struct LogsOnPanic {
    logs: Vec<(u64, PathBuf)>,
    lines: usize,
}

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (id, path) in &self.logs {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(self.lines);
            eprintln!(
                "--- node {id} log (last {} lines)\n{}",
                self.lines,
                lines[start..].join("\n")
            );
        }
    }
}

impl Cluster {
    /// A guard that prints the last `lines` lines of every node's log if the test panics.
    pub fn logs_on_panic(&self, lines: usize) -> LogsOnPanic {
        LogsOnPanic {
            logs: self.nodes.values().map(|n| (n.id, n.log.clone())).collect(),
            lines,
        }
    }

    /// The length of node `id`'s log now; `log_since` reads what was written after it.
    pub fn log_mark(&self, id: u64) -> usize {
        self.log_of(id).len()
    }

    pub fn log_since(&self, id: u64, mark: usize) -> String {
        self.log_of(id).get(mark..).unwrap_or_default().to_string()
    }

    /// Every log line, of any node, that contains `needle`, with the node id.
    pub fn grep(&self, needle: &str) -> Vec<(u64, String)> {
        self.nodes
            .keys()
            .flat_map(|id| {
                self.log_of(*id)
                    .lines()
                    .filter(|l| l.contains(needle))
                    .map(|l| (*id, l.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The process id of node `id` while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes[&id].child.as_ref().map(Child::id)
    }
}

/// The nodes' log filter: `RAFTINEL_NODE_LOG` when set (to debug a run), else info.
pub fn node_log() -> String {
    std::env::var("RAFTINEL_NODE_LOG").unwrap_or_else(|_| "info,openraft=warn".to_owned())
}
