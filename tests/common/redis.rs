//! Real redis-server processes for tests: started on a free port with no persistence, killed
//! with SIGKILL, restarted on the same port, and queried with the redis crate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// Starts `redis-server` on a free port; `extra` are further command-line options.
    pub fn start(extra: &[&str]) -> Redis {
        let mut r = Redis {
            port: super::free_port(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        r.spawn();
        r.wait_ready();
        r
    }

    pub fn replica_of(master: &Redis, extra: &[&str]) -> Redis {
        let port = master.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", &port];
        args.extend_from_slice(extra);
        Redis::start(&args)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0", "--loglevel", "warning"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.query(&["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
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
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn)
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

    pub fn role(&self) -> Option<String> {
        self.info_field("role")
    }

    pub fn master_port(&self) -> Option<u16> {
        self.info_field("master_port")?.parse().ok()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}
