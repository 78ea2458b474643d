//! Real redis-server processes for tests: started on a free port with no persistence (TLS-only or
//! with a password if asked), killed with SIGKILL, restarted on the same port, and queried with
//! the redis crate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    /// Runs as this user (`setpriv`), so firewall rules can single out its traffic by owner.
    uid: Option<u32>,
    child: Option<Child>,
    /// The instance's own working directory: a replica saves the RDB it receives in a full sync
    /// (disk load) to `dir/dump.rdb`, and Redis loads that file at startup even with `save ""`.
    /// One directory per instance keeps that file out of the crate root and away from the others.
    dir: tempfile::TempDir,
    /// TLS-only: redis-server's TLS options and the tests' client certificates.
    tls: Option<(Vec<String>, redis::TlsCertificates)>,
    /// `requirepass`, which the tests' own connections use too.
    pass: Option<String>,
}

impl Redis {
    /// Starts `redis-server` on a free port; `extra` are further command-line options.
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_as(None, extra)
    }

    /// Starts `redis-server` as user `uid` (None: as the test itself).
    pub fn start_as(uid: Option<u32>, extra: &[&str]) -> Redis {
        Redis::launch(uid, None, None, extra)
    }

    /// Starts a TLS-only `redis-server` (`--port 0 --tls-port P`, TLS replication) with `pki`'s
    /// certificate; the test's own queries use TLS too.
    pub fn start_tls(pki: &super::pki::Pki, extra: &[&str]) -> Redis {
        Redis::launch(None, Some(pki), None, extra)
    }

    /// A TLS-only replica of the TLS-only `master`.
    pub fn replica_of_tls(pki: &super::pki::Pki, master: &Redis, extra: &[&str]) -> Redis {
        let port = master.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", &port];
        args.extend_from_slice(extra);
        Redis::start_tls(pki, &args)
    }

    /// Starts `redis-server` with `requirepass pass`.
    pub fn start_with_pass(pass: &str, extra: &[&str]) -> Redis {
        let mut args = vec!["--requirepass", pass];
        args.extend_from_slice(extra);
        Redis::launch(None, None, Some(pass), &args)
    }

    fn launch(
        uid: Option<u32>,
        pki: Option<&super::pki::Pki>,
        pass: Option<&str>,
        extra: &[&str],
    ) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        if let Some(uid) = uid {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
        }
        let port = super::free_port();
        let mut r = Redis {
            port,
            args: extra.iter().map(|s| s.to_string()).collect(),
            uid,
            child: None,
            dir,
            tls: pki.map(|p| (p.redis_args(port), p.certificates())),
            pass: pass.map(str::to_string),
        };
        r.spawn();
        r.wait_ready();
        r
    }

    /// A client for the test's own queries: TLS and the password when the instance needs them.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
        let host = "127.0.0.1".to_string();
        let addr = match self.tls {
            Some(_) => ConnectionAddr::TcpTls {
                host,
                port: self.port,
                insecure: false,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host, self.port),
        };
        let mut settings = RedisConnectionInfo::default();
        if let Some(p) = &self.pass {
            settings = settings.set_password(p);
        }
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        match &self.tls {
            Some((_, certs)) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }

    pub fn replica_of(master: &Redis, extra: &[&str]) -> Redis {
        Redis::replica_of_as(None, master, extra)
    }

    pub fn replica_of_as(uid: Option<u32>, master: &Redis, extra: &[&str]) -> Redis {
        let port = master.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", &port];
        args.extend_from_slice(extra);
        Redis::start_as(uid, &args)
    }

    fn spawn(&mut self) {
        let mut cmd = match self.uid {
            None => Command::new("redis-server"),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg("redis-server");
                c
            }
        };
        match &self.tls {
            // Only the TLS port listens.
            Some((args, _)) => cmd.args(args),
            None => cmd.args(["--port", &self.port.to_string()]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0", "--loglevel", "warning"])
            // Replication may still write an RDB: keep it out of the work tree.
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .args(["--dbfilename", &format!("raftinel-test-{}.rdb", self.port)])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(e) = self.query(&["PING"]) {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start: {e}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, with the same options (and no data: no persistence).
    pub fn restart(&mut self) {
        self.kill9();
        // What a full sync left behind would be loaded at startup (whatever its dbfilename).
        if let Ok(files) = std::fs::read_dir(self.dir.path()) {
            for f in files.flatten() {
                if f.path().extension().is_some_and(|e| e == "rdb") {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        self.spawn();
        self.wait_ready();
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap();
        }
    }

    pub fn query(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = self.client()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn)
    }

    /// `CONFIG GET min-replicas-to-write`: the fence's setting.
    pub fn min_replicas(&self) -> Option<String> {
        self.config("min-replicas-to-write")
    }

    /// `CONFIG GET key`'s value.
    pub fn config(&self, key: &str) -> Option<String> {
        match self.query(&["CONFIG", "GET", key]).ok()? {
            redis::Value::Array(v) => match v.get(1)? {
                redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether `SET key v` is acknowledged.
    pub fn write_ok(&self, key: &str) -> bool {
        matches!(self.query(&["SET", key, "v"]), Ok(redis::Value::Okay))
    }

    pub fn info_field(&self, field: &str) -> Option<String> {
        let v = self.query(&["INFO", "replication"]).ok()?;
        let text: String = redis::from_redis_value(v).ok()?;
        text.lines().find_map(|l| {
            l.trim_end()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_string)
        })
    }

    /// The process id while running (e.g. for `kill -STOP`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the process is frozen; the kernel still accepts connections and buffers data.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after `freeze`.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// `field` of `INFO section` (e.g. `("server", "run_id")`).
    pub fn info_in(&self, section: &str, field: &str) -> Option<String> {
        let v = self.query(&["INFO", section]).ok()?;
        let text: String = redis::from_redis_value(v).ok()?;
        text.lines().find_map(|l| {
            l.trim_end()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_string)
        })
    }

    pub fn run_id(&self) -> Option<String> {
        self.info_in("server", "run_id")
    }

    /// `master_repl_offset` (on a replica: what it has processed of its master's stream).
    pub fn repl_offset(&self) -> Option<u64> {
        self.info_field("master_repl_offset")?.parse().ok()
    }

    pub fn dbsize(&self) -> Option<i64> {
        redis::from_redis_value(self.query(&["DBSIZE"]).ok()?).ok()
    }

    /// `SET {prefix}{i} <value_len bytes>` for i in 0..n, then `WAIT replicas 5000`, in one
    /// pipeline on one connection (WAIT counts the acknowledgements of its own connection's
    /// writes: on a fresh connection it returns at once). Returns WAIT's count.
    pub fn fill_and_wait(
        &self,
        prefix: &str,
        n: usize,
        value_len: usize,
        replicas: usize,
    ) -> redis::RedisResult<i64> {
        let client = self.client()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))?;
        let value = "x".repeat(value_len);
        let mut pipe = redis::pipe();
        for i in 0..n {
            pipe.cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.cmd("WAIT").arg(replicas).arg(5000);
        let (acked,): (i64,) = pipe.query(&mut conn)?;
        Ok(acked)
    }

    /// Runs `cmds` in order on one connection (e.g. writes then `WAIT`); the last reply.
    pub fn pipeline(&self, cmds: &[&[&str]]) -> redis::RedisResult<redis::Value> {
        let client = self.client()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut last = redis::Value::Nil;
        for c in cmds {
            let mut cmd = redis::cmd(c[0]);
            for a in &c[1..] {
                cmd.arg(*a);
            }
            last = cmd.query(&mut conn)?;
        }
        Ok(last)
    }

    /// Runs `cmds` as one MULTI/EXEC block on one connection.
    pub fn transaction(&self, cmds: &[&[&str]]) -> redis::RedisResult<redis::Value> {
        let client = self.client()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for c in cmds {
            let mut cmd = redis::cmd(c[0]);
            for a in &c[1..] {
                cmd.arg(*a);
            }
            pipe.add_command(cmd);
        }
        pipe.query(&mut conn)
    }

    pub fn role(&self) -> Option<String> {
        self.info_field("role")
    }

    pub fn master_port(&self) -> Option<u16> {
        self.info_field("master_port")?.parse().ok()
    }

    /// Whether this instance replicates from `master` with its link up.
    pub fn follows(&self, master: &Redis) -> bool {
        self.role().as_deref() == Some("slave")
            && self.master_port() == Some(master.port)
            && self.info_field("master_link_status").as_deref() == Some("up")
    }

    /// Waits (bounded) until this instance [`follows`](Redis::follows) `master`.
    pub async fn wait_following(&self, master: &Redis, within: std::time::Duration) {
        let what = format!("{} follows {}", self.port, master.port);
        super::eventually(&what, within, || async {
            self.follows(master).then_some(())
        })
        .await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A real Sentinel (`redis-server CONF --sentinel`; Debian packages redis-sentinel apart) watching
/// one master under `name` with quorum 1, for byte-for-byte comparisons of replies. Killed on drop.
pub struct RealSentinel {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RealSentinel {
    pub fn watching(master: &Redis, name: &str) -> RealSentinel {
        RealSentinel::watching_at(master, "127.0.0.1", name, "")
    }

    /// Watching `master` by `host` (a hostname needs `sentinel resolve-hostnames yes` in
    /// `settings`, lines that go before the monitor line).
    pub fn watching_at(master: &Redis, host: &str, name: &str, settings: &str) -> RealSentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n{settings}sentinel monitor {name} {host} {} 1\n",
                dir.path().display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let s = RealSentinel {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let addr = format!("redis://127.0.0.1:{port}/");
        while redis::Client::open(addr.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "redis-sentinel on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
}

impl RealSentinel {
    /// Its sentinel.conf, as it rewrote it last.
    pub fn conf(&self) -> std::path::PathBuf {
        self._dir.path().join("sentinel.conf")
    }
}

impl Drop for RealSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
