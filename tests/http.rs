//! The HTTP API on a real three-node cluster, each node co-located with one real Redis
//! (`--local-redis`): `/primary` answers 200 on the master's node only, moves with a kill -9
//! failover within a second of `+switch-master` and never answers 200 on two nodes in one sample
//! (every 10 ms); `/replica` with a lag bound; `/ready` is 503 on a node that hears no leader;
//! `/cluster` agrees with the cluster.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{eventually, free_port, serial, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` on `addr`: the status code and body, or None if no answer within 1 s.
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: raftinel\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_owned();
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

async fn code(addr: &str, path: &str) -> u16 {
    get(addr, path).await.map_or(0, |(c, _)| c)
}

/// Three nodes, node i co-located with `redis[i-1]`, each with its HTTP API on; their addresses.
fn colocated(redis: &[&Redis]) -> (Cluster, Vec<String>) {
    let mut c = Cluster::new(3, "default-down-after-ms = 1000\n");
    let mut http = Vec::new();
    for (i, r) in redis.iter().enumerate() {
        let addr = format!("127.0.0.1:{}", free_port());
        let n = c.nodes.get_mut(&(i as u64 + 1)).unwrap();
        n.args = vec![
            "--local-redis".into(),
            format!("127.0.0.1:{}", r.port),
            "--http-listen".into(),
            addr.clone(),
        ];
        http.push(addr);
    }
    (c, http)
}

/// Which nodes (1-based) answer 200 on `path`, asked one after the other.
async fn saying_ok(http: &[String], path: &str) -> Vec<usize> {
    let mut ok = Vec::new();
    for (i, a) in http.iter().enumerate() {
        if code(a, path).await == 200 {
            ok.push(i + 1);
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_follows_the_failover_and_is_never_on_two_nodes() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &["--replica-priority", "0"]);
    let (mut c, http) = colocated(&[&m, &r1, &r2]);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(60);
    c.monitor(leader, "mymaster", u32::from(m.port)).await;

    for a in &http {
        assert_eq!(get(a, "/health").await.map(|r| r.0), Some(200));
    }
    eventually("node 1 says primary", Duration::from_secs(15), || {
        let http = http.clone();
        async move { (saying_ok(&http, "/primary/mymaster").await == [1]).then_some(()) }
    })
    .await;
    let (_, body) = get(&http[0], "/primary/mymaster").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["role"], "master", "{body}");
    assert_eq!(v["addr"], format!("127.0.0.1:{}", m.port), "{body}");
    let by_addr = format!("/primary/mymaster?addr=127.0.0.1:{}", m.port);
    assert_eq!(saying_ok(&http, &by_addr).await, [1, 2, 3]);
    assert_eq!(code(&http[0], "/primary/nosuch").await, 503);
    assert_eq!(code(&http[0], "/nosuch").await, 404);
    assert_eq!(code(&http[0], "/primary/mymaster?addr=nonsense").await, 400);
    eventually(
        "node 2's replica within the lag",
        Duration::from_secs(15),
        || {
            let a = http[1].clone();
            async move { (code(&a, "/replica/mymaster?lag=1000000").await == 200).then_some(()) }
        },
    )
    .await;
    assert_eq!(code(&http[0], "/replica/mymaster").await, 503, "a master");

    let (_, body) = get(&http[2], "/cluster").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["leader"], leader, "{body}");
    assert_eq!(v["voters"], serde_json::json!([1, 2, 3]), "{body}");
    assert_eq!(v["masters"][0]["name"], "mymaster", "{body}");

    // kill -9 the master; sample every 10 ms until node 2 says primary.
    let mut sub = redis::Client::open(format!("redis://{}/", c.nodes[&2].sentinel))
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    sub.subscribe("+switch-master").await.unwrap();
    let killed = Instant::now();
    m.kill9();
    let sampler = {
        let http = http.clone();
        tokio::spawn(async move {
            let mut two = Vec::new();
            let mut moved = None;
            for _ in 0..3000 {
                let ok = saying_ok(&http, "/primary/mymaster").await;
                if ok.len() > 1 {
                    two.push(ok.clone());
                }
                if ok == [2] {
                    moved = Some(Instant::now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (two, moved)
        })
    };
    let switched = {
        use futures::StreamExt;
        let mut messages = sub.on_message();
        tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("no +switch-master within 30 s");
        Instant::now()
    };
    let (two, moved) = sampler.await.unwrap();
    assert!(two.is_empty(), "200 on two nodes at once: {two:?}");
    let moved = moved.expect("/primary never moved to node 2");
    eprintln!(
        "+switch-master {:?} after the kill; /primary on node 2 {:?} after it",
        switched - killed,
        moved.saturating_duration_since(switched)
    );
    assert!(
        moved.saturating_duration_since(switched) < Duration::from_secs(1),
        "/primary moved {:?} after +switch-master",
        moved.saturating_duration_since(switched)
    );
    // /metrics parses as Prometheus text and agrees with the gRPC API.
    let master = c
        .get(2, "mymaster", raftinel::pb::Consistency::Linearizable)
        .await
        .unwrap();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let (code, text) = get(&http[1], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, master: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name && master.map_or(true, |m| s.labels.get("master") == Some(m))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(
        value("raftinel_master_config_epoch", Some("mymaster")),
        master.config_epoch as f64
    );
    assert_eq!(
        value(
            "raftinel_master_failovers_completed_total",
            Some("mymaster")
        ),
        1.0
    );
    assert_eq!(value("raftinel_raft_leader_id", None), leader as f64);
    assert_eq!(value("raftinel_master_primary_here", Some("mymaster")), 1.0);
    assert_eq!(value("raftinel_fresh", None), 1.0);
    let fenced = format!(
        "raftinel_local_instance_fenced{{addr=\"127.0.0.1:{}\"}} 0",
        r1.port
    );
    assert!(text.lines().any(|l| l == fenced), "{fenced} in\n{text}");
    let renewed = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"raftinel_lease_renewals_total{result="ok"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(renewed.is_some_and(|n| n > 0), "{renewed:?} in\n{text}");
    // The failover ends (history, +failover-end) once the replicas follow: counted then.
    let ended = eventually(
        "the failover counted as ended",
        Duration::from_secs(15),
        || {
            let a = http[1].clone();
            async move {
                let (_, text) = get(&a, "/metrics").await?;
                let done = text.lines().any(|l| {
                    l.starts_with("raftinel_failovers_total{")
                        && l.contains(r#"reason="odown""#)
                        && l.contains(r#"outcome="done""#)
                        && l.ends_with(" 1")
                });
                done.then_some(text)
            }
        },
    )
    .await;
    assert!(
        ended.contains("raftinel_failover_duration_seconds_count 1"),
        "{ended}"
    );
    drop(r1);
    drop(r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_on_a_node_that_hears_no_leader() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let (mut c, http) = colocated(&[&m, &r1, &r2]);
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(40);
    eventually("every node ready", Duration::from_secs(15), || {
        let http = http.clone();
        async move { (saying_ok(&http, "/ready").await == [1, 2, 3]).then_some(()) }
    })
    .await;
    // Node 1 alone: the other two stopped.
    let stopped: Vec<u32> = [2, 3].iter().filter_map(|id| c.pid(*id)).collect();
    assert_eq!(stopped.len(), 2);
    let signal = |sig: &str| {
        for pid in &stopped {
            let _ = std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status();
        }
    };
    signal("-STOP");
    let cut_off = eventually("node 1 not ready", Duration::from_secs(15), || {
        let a = http[0].clone();
        async move {
            let (code, body) = get(&a, "/ready").await?;
            (code == 503).then_some(body)
        }
    })
    .await;
    signal("-CONT");
    assert!(cut_off.contains("not fresh"), "{cut_off}");
    assert_eq!(code(&http[0], "/health").await, 200);
    eventually("node 1 ready again", Duration::from_secs(15), || {
        let a = http[0].clone();
        async move { (code(&a, "/ready").await == 200).then_some(()) }
    })
    .await;
}

/// HAProxy (foreground, killed on drop) with deploy/haproxy/haproxy.cfg rewritten for this machine.
struct Haproxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// `servers[i]`: the Redis port and the HTTP API address of host i+1.
    fn shipped(servers: &[(u16, &str)]) -> Haproxy {
        let text = include_str!("../deploy/haproxy/haproxy.cfg");
        let port = free_port();
        let mut cfg = String::new();
        for line in text.lines() {
            let mut line = line.replace("bind *:6380", &format!("bind 127.0.0.1:{port}"));
            for (i, (redis, http)) in servers.iter().enumerate() {
                let host = format!("10.0.0.{}", i + 1);
                if line.contains(&format!("server redis{} {host}:6379", i + 1)) {
                    let (ip, http_port) = http.split_once(':').unwrap();
                    line = line
                        .replace(&format!("{host}:6379"), &format!("127.0.0.1:{redis}"))
                        .replace(
                            "check port 26382",
                            &format!("check addr {ip} port {http_port}"),
                        );
                }
            }
            assert!(!line.contains("10.0.0."), "unrewritten: {line}");
            cfg.push_str(&line);
            cfg.push('\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let check = std::process::Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("haproxy must be installed (scripts/test.sh installs it)");
        assert!(check.status.success(), "{check:?}");
        let child = std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Haproxy {
            child,
            port,
            _dir: dir,
        }
    }

    /// SET through HAProxy on a fresh connection; true when the write was acknowledged.
    fn write(&self, key: &str) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)) else {
            return false;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(300)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query::<()>(&mut c)
            .is_ok()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_with_the_shipped_config_routes_writes_to_the_new_master() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &["--replica-priority", "0"]);
    let (mut c, http) = colocated(&[&m, &r1, &r2]);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(40);
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let proxy = Haproxy::shipped(&[(m.port, &http[0]), (r1.port, &http[1]), (r2.port, &http[2])]);
    eventually("a write through HAProxy", Duration::from_secs(15), || {
        let ok = proxy.write("before");
        async move { ok.then_some(()) }
    })
    .await;
    assert_eq!(
        m.query(&["EXISTS", "before"]).ok(),
        Some(redis::Value::Int(1))
    );

    m.kill9();
    eventually(
        "writes reach the new master",
        Duration::from_secs(30),
        || {
            let ok = proxy.write("after")
                && r1.query(&["EXISTS", "after"]).ok() == Some(redis::Value::Int(1));
            async move { ok.then_some(()) }
        },
    )
    .await;
    assert_eq!(r1.role().as_deref(), Some("master"));
}

/// Writes `parts` to a new connection to `addr`, `pause` apart, then reads to the end (at most
/// `within`): what came back, and whether the server closed the connection cleanly (no reset) in
/// that time.
async fn exchange(
    addr: &str,
    parts: &[&[u8]],
    pause: Duration,
    within: Duration,
) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        s.write_all(p).await.expect("write");
    }
    let mut buf = Vec::new();
    let closed = matches!(
        tokio::time::timeout(within, s.read_to_end(&mut buf)).await,
        Ok(Ok(_))
    );
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_odd_and_silent_requests_get_an_answer_or_a_close_in_bounded_time() {
    let _g = serial();
    let mut c = Cluster::new(1, "");
    let addr = format!("127.0.0.1:{}", free_port());
    c.nodes.get_mut(&1).unwrap().args = vec!["--http-listen".into(), addr.clone()];
    c.start_all();
    c.wait_leader(&[1], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(40);
    let second = Duration::from_secs(1);
    // Its head in pieces, 300 ms apart, no `Connection: close`: the task-path answer, then a close.
    let parts: [&[u8]; 3] = [b"GET /hea", b"lth HTTP/1.1\r\nHost: x\r\n", b"\r\n"];
    let (text, closed) = exchange(&addr, &parts, Duration::from_millis(300), second).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.ends_with(r#"{"node":1,"status":"ok"}"#), "{text}");
    assert!(closed, "kept open after its reply");
    // HEAD: the head alone, with the body's length.
    let (text, _) = exchange(&addr, &[b"HEAD /health HTTP/1.1\r\n\r\n"], second, second).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n") && text.contains("content-length: 24\r\n"),
        "{text}"
    );
    // Not GET: 405 with Allow. Too large a head: 431. Not HTTP: 400. Unknown: 404.
    let (text, _) = exchange(&addr, &[b"POST /health HTTP/1.1\r\n\r\n"], second, second).await;
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nallow: GET, HEAD\r\n"), "{text}");
    // Both with bytes left unread: drained before the close, so the reply is not reset away.
    let big = format!("GET /health HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let (text, closed) = exchange(&addr, &[big.as_bytes()], second, second).await;
    assert!(text.starts_with("HTTP/1.1 431 ") && closed, "{text}");
    let post: [&[u8]; 2] = [
        b"POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        b"hello",
    ];
    let (text, closed) = exchange(&addr, &post, Duration::from_millis(100), second).await;
    assert!(text.starts_with("HTTP/1.1 405 ") && closed, "{text}");
    let (text, _) = exchange(&addr, &[b"PING\r\n\r\n"], second, second).await;
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    let (text, _) = exchange(&addr, &[b"GET /nope HTTP/1.1\r\n\r\n"], second, second).await;
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    // /metrics is larger than one small write; it arrives whole.
    let (text, _) = exchange(&addr, &[b"GET /metrics HTTP/1.1\r\n\r\n"], second, second).await;
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.parse::<usize>().ok());
    assert_eq!(length, Some(body.len()), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    // Silent, then half a head: each closed without a reply within its bound (the kernel holds a
    // silent one back ~1 s, the head limit is 5 s from the accept), while others are answered.
    let silent = tokio::spawn({
        let addr = addr.clone();
        async move { exchange(&addr, &[], second, Duration::from_secs(15)).await }
    });
    let half = tokio::spawn({
        let addr = addr.clone();
        async move { exchange(&addr, &[b"GET /health HT"], second, Duration::from_secs(15)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        code(&addr, "/health").await,
        200,
        "answered beside the stalled ones"
    );
    for (what, task) in [("silent", silent), ("half a head", half)] {
        let (text, closed) = task.await.expect("join");
        assert!(
            closed && text.is_empty(),
            "{what}: closed {closed}, got {text:?}"
        );
    }
}
