//! The Sentinel port on a real three-node cluster monitoring real Redis, driven with raw bytes:
//! exact replies as captured from a real sentinel (`reference/sentinel-surface.md`), RESP2 and
//! RESP3, pipelining, inline commands, protocol errors, AUTH, writes through Raft, pub/sub on
//! every node, and the listener closing when the node is cut off (invariant 9).

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{eventually, serial, Cluster};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fast detection so that the FAILOVER test finishes quickly.
const TIMINGS: &str = "default-down-after-ms = 1000\n";

/// A byte stream: plain TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A connection that sends raw bytes and reads whole replies.
struct Raw {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Raw::over(stream)
    }

    fn over(stream: impl Stream + 'static) -> Raw {
        Raw {
            stream: Box::new(stream),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends one command as a multibulk array.
    async fn cmd(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.send(&out).await;
        self.reply().await
    }

    /// Reads exactly one reply (RESP2 or RESP3), within 5 s.
    async fn reply(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(n) = reply_len(&self.buf, 0) {
                let r: Vec<u8> = self.buf.drain(..n).collect();
                return String::from_utf8_lossy(&r).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout(left, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no whole reply in 5 s; have {:?}", self.text()))
                .unwrap();
            assert!(n > 0, "connection closed; have {:?}", self.text());
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True once the server closed the connection (within 5 s).
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// The length of the complete reply starting at `at`, if it is all there.
fn reply_len(b: &[u8], at: usize) -> Option<usize> {
    let line_end = at + b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[at + 1..line_end]).ok()?;
    let after = line_end + 2;
    match b.get(at)? {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' => Some(after - at),
        b'$' | b'=' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after - at);
            }
            let end = after + n as usize + 2;
            (end <= b.len()).then_some(end - at)
        }
        b'*' | b'>' | b'%' | b'~' => {
            let n: i64 = head.parse().ok()?;
            let items = if b[at] == b'%' { n * 2 } else { n };
            let mut pos = after;
            for _ in 0..items.max(0) {
                pos += reply_len(b, pos)?;
            }
            Some(pos - at)
        }
        _ => None,
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// Waits until node `id`'s Sentinel port accepts connections and knows `mymaster`.
async fn sentinel_ready(c: &Cluster, id: u64) {
    let addr = c.nodes[&id].sentinel.clone();
    eventually("Sentinel port open", Duration::from_secs(15), || {
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.ok()?;
            s.write_all(b"ROLE\r\n").await.ok()?;
            let mut b = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b))
                .await
                .ok()?
                .ok()?;
            String::from_utf8_lossy(&b[..n])
                .contains("mymaster")
                .then_some(())
        }
    })
    .await;
}

/// Waits until node `id` has probed the master and sees `replica` (a port) linked to it: before
/// that its health fields say `disconnected`, as a freshly started sentinel's would.
async fn settled(c: &Cluster, id: u64, replica: Option<u16>) {
    let addr = c.nodes[&id].sentinel.clone();
    eventually(
        "master probed, replica linked",
        Duration::from_secs(15),
        || {
            let addr = addr.clone();
            async move {
                let mut s = Raw::connect(&addr).await;
                let master = s.cmd(&["SENTINEL", "master", "mymaster"]).await;
                if !master.contains("$5\r\nflags\r\n$6\r\nmaster\r\n") {
                    return None;
                }
                let Some(port) = replica else { return Some(()) };
                let replicas = s.cmd(&["SENTINEL", "replicas", "mymaster"]).await;
                (replicas.contains(&bulk(&port.to_string()))
                    && replicas.contains("$5\r\nflags\r\n$5\r\nslave\r\n")
                    && replicas.contains("$18\r\nmaster-link-status\r\n$2\r\nok\r\n"))
                .then_some(())
            }
        },
    )
    .await;
}

/// A cluster monitoring `master` as mymaster (quorum 2), every node's Sentinel port ready.
async fn cluster_with(master: &Redis, extra: &str) -> Cluster {
    let mut c = Cluster::new(3, extra);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(master.port)).await;
    for id in 1..=3 {
        sentinel_ready(&c, id).await;
    }
    c
}

// --- replies byte for byte as a real 7.x sentinel sends them
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_a_real_sentinel_byte_for_byte() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    settled(&c, 2, Some(r.port)).await;
    let port = m.port.to_string();
    let mut s = Raw::connect(&c.nodes[&2].sentinel).await;

    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&port))
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "nosuch"])
            .await,
        "*-1\r\n"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "master", "nosuch"]).await,
        "-ERR No such master with that name\r\n"
    );
    assert_eq!(
        s.cmd(&["ROLE"]).await,
        "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n"
    );
    let myid = s.cmd(&["SENTINEL", "myid"]).await;
    assert!(myid.starts_with("$40\r\n"), "{myid}");
    assert!(myid[5..45].chars().all(|c| c.is_ascii_hexdigit()), "{myid}");
    assert_eq!(myid, s.cmd(&["sentinel", "MYID"]).await, "stable");

    let masters = s.cmd(&["SENTINEL", "masters"]).await;
    assert!(
        masters.starts_with("*1\r\n*40\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n"),
        "{masters}"
    );
    assert!(
        masters.contains("$5\r\nflags\r\n$6\r\nmaster\r\n"),
        "{masters}"
    );
    assert!(
        masters.contains("$19\r\nnum-other-sentinels\r\n$1\r\n2\r\n"),
        "{masters}"
    );
    let sentinels = s.cmd(&["SENTINEL", "sentinels", "mymaster"]).await;
    assert!(
        sentinels.starts_with("*2\r\n*28\r\n$4\r\nname\r\n$40\r\n"),
        "{sentinels}"
    );
    for other in [1, 3] {
        let p = c.nodes[&other]
            .sentinel
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        assert!(
            sentinels.contains(&bulk(&p)),
            "node {other}'s port {p}: {sentinels}"
        );
    }
    let own = c.nodes[&2].sentinel.rsplit(':').next().unwrap().to_owned();
    assert!(!sentinels.contains(&bulk(&own)), "never the node asked");

    assert_eq!(s.cmd(&["SENTINEL", "reset", "nosuch*"]).await, ":0\r\n");
    assert_eq!(
        s.cmd(&["SENTINEL", "ckquorum", "mymaster"]).await,
        "+OK 3 usable Sentinels. Quorum and failover authorization can be reached\r\n"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "config", "get", "announce-port"]).await,
        "*2\r\n$13\r\nannounce-port\r\n$1\r\n0\r\n"
    );
    for sub in ["is-master-down-by-addr", "simulate-failure", "debug"] {
        assert_eq!(
            s.cmd(&["SENTINEL", sub]).await,
            format!("-ERR unknown subcommand '{sub}'. Try SENTINEL HELP.\r\n")
        );
    }
    assert_eq!(
        s.cmd(&["SENTINEL"]).await,
        "-ERR wrong number of arguments for 'sentinel' command\r\n"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "masters", "x"]).await,
        "-ERR wrong number of arguments for 'sentinel|masters' command\r\n"
    );
    assert_eq!(
        s.cmd(&["ECHO", "hi"]).await,
        "-ERR unknown command 'ECHO', with args beginning with: 'hi' \r\n"
    );
    // The Valkey spellings.
    assert_eq!(
        s.cmd(&["SENTINEL", "get-primary-addr-by-name", "mymaster"])
            .await,
        format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&port))
    );
    assert!(s
        .cmd(&["SENTINEL", "primaries"])
        .await
        .starts_with("*1\r\n*40\r\n"));

    // RESP3 after HELLO 3: maps, and the null for an unknown name.
    let hello = s.cmd(&["HELLO", "3"]).await;
    assert!(
        hello.starts_with("%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"),
        "{hello}"
    );
    assert!(
        hello.ends_with("$4\r\nmode\r\n$8\r\nsentinel\r\n$7\r\nmodules\r\n*0\r\n"),
        "{hello}"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "nosuch"])
            .await,
        "_\r\n"
    );
    assert!(s
        .cmd(&["SENTINEL", "masters"])
        .await
        .starts_with("*1\r\n%20\r\n$4\r\nname\r\n"));
    assert!(s
        .cmd(&["SENTINEL", "sentinels", "mymaster"])
        .await
        .starts_with("*2\r\n%14\r\n"));
    assert_eq!(
        s.cmd(&["SENTINEL", "config", "get", "announce-port"]).await,
        "%1\r\n$13\r\nannounce-port\r\n$1\r\n0\r\n"
    );
    let replicas = s.cmd(&["SENTINEL", "replicas", "mymaster"]).await;
    assert!(
        replicas.starts_with("*1\r\n%21\r\n$4\r\nname\r\n"),
        "{replicas}"
    );
    assert!(
        replicas.contains("$18\r\nmaster-link-status\r\n$2\r\nok\r\n"),
        "{replicas}"
    );

    // INFO as a bulk string in both protocols, with the # Sentinel section.
    let info = s.cmd(&["INFO"]).await;
    assert!(info.starts_with('$'), "{info}");
    assert!(info.contains("redis_mode:sentinel\r\n"));
    assert!(info.contains(&format!(
        "master0:name=mymaster,status=ok,address=127.0.0.1:{port},slaves=1,sentinels=3\r\n"
    )));
    // raftinel's own field, in a section of its own, after Sentinel's.
    assert!(
        info.contains("\r\n# Raftinel\r\nfencing0:name=mymaster,fencing=none\r\n"),
        "{info}"
    );
    assert!(!s.cmd(&["INFO", "sentinel"]).await.contains("# Server"));
}

// --- replies Redis 7.0's sentinel shares with 7.2, compared with a real one run beside; the
// 7.2-only ones (multi-parameter CONFIG, loglevel) against sentinel.c 7.2's text
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_flushconfig_and_publish_answer_as_sentinel_does() {
    let _g = serial();
    let m = Redis::start(&[]);
    let real = common::redis::RealSentinel::watching(&m, "mymaster");
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    settled(&c, 2, None).await;
    let mut ours = Raw::connect(&c.nodes[&2].sentinel).await;
    let mut theirs = Raw::connect(&format!("127.0.0.1:{}", real.port)).await;
    for cmd in [
        &["PUBLISH", "foo", "bar"][..],
        &["PUBLISH", "foo"],
        &["SENTINEL", "FLUSHCONFIG"],
        &["SENTINEL", "flushconfig", "x"],
        &["SENTINEL", "CONFIG", "SET", "nosuch", "1"],
        &["SENTINEL", "CONFIG", "SET", "announce-port", "70000"],
        &["SENTINEL", "CONFIG", "GET", "announce-port"],
        &["SENTINEL", "CONFIG", "GET", "nosuch"],
        &["COMMAND", "INFO", "publish"],
        &["SENTINEL", "PENDING-SCRIPTS"],
        &["SENTINEL", "pending-scripts", "x"],
        &["SENTINEL", "INFO-CACHE"],
        &["SENTINEL", "INFO-CACHE", "nosuch"],
    ] {
        let want = theirs.cmd(cmd).await;
        assert_eq!(ours.cmd(cmd).await, want, "{cmd:?}");
    }
    // INFO-CACHE: the same shape (name, then [age, INFO text] of the master), the INFO being
    // Redis's own text; a name given twice is listed once.
    for s in [&mut ours, &mut theirs] {
        let cache = s
            .cmd(&["SENTINEL", "INFO-CACHE", "mymaster", "mymaster"])
            .await;
        assert!(
            cache.starts_with("*2\r\n$8\r\nmymaster\r\n*1\r\n*2\r\n:"),
            "{cache}"
        );
        assert!(
            cache.contains("# Replication\r\nrole:master\r\n"),
            "{cache}"
        );
    }

    // 7.2: several parameters per call, each listed once, and loglevel.
    assert_eq!(
        ours.cmd(&[
            "SENTINEL",
            "CONFIG",
            "GET",
            "announce-port",
            "loglevel",
            "ANNOUNCE-PORT"
        ])
        .await,
        "*4\r\n$13\r\nannounce-port\r\n$1\r\n0\r\n$8\r\nloglevel\r\n$6\r\nnotice\r\n"
    );
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "GET"]).await,
        "-ERR wrong number of arguments for 'sentinel|config' command\r\n"
    );
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "SET", "announce-port"]).await,
        "-ERR Only SENTINEL CONFIG GET <param> [<param> <param> ...]/ SET <param> <value> [<param> <value> ...] are supported.\r\n"
    );
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "SET", "loglevel", "debug", "loglevel", "notice"])
            .await,
        "-ERR Duplicate argument 'loglevel' to SENTINEL CONFIG SET\r\n"
    );
    // The level changes this node's log filter: its debug lines appear.
    let mark = c.log_mark(2);
    assert_eq!(
        ours.cmd(&[
            "SENTINEL",
            "CONFIG",
            "SET",
            "loglevel",
            "debug",
            "announce-port",
            "0"
        ])
        .await,
        "+OK\r\n"
    );
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "GET", "log*"]).await,
        "*2\r\n$8\r\nloglevel\r\n$5\r\ndebug\r\n"
    );
    let mut debug_seen = false;
    for _ in 0..100 {
        debug_seen = c.log_since(2, mark).contains(" DEBUG ");
        if debug_seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(debug_seen, "no DEBUG line after loglevel debug");
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "SET", "loglevel", "notice"])
            .await,
        "+OK\r\n"
    );
    // A value raftinel cannot take is refused with Sentinel's wording and the reason.
    let refused = ours
        .cmd(&[
            "SENTINEL",
            "CONFIG",
            "SET",
            "loglevel",
            "warning",
            "announce-port",
            "26999",
        ])
        .await;
    assert!(
        refused.starts_with("-ERR Invalid value '26999' to SENTINEL CONFIG SET 'announce-port': "),
        "{refused}"
    );
    assert_eq!(
        ours.cmd(&["SENTINEL", "CONFIG", "GET", "loglevel"]).await,
        "*2\r\n$8\r\nloglevel\r\n$6\r\nnotice\r\n",
        "nothing applied"
    );
    // Sentinel processes a peer's hello and answers 1; raftinel answers the same and ignores it.
    assert_eq!(
        ours.cmd(&[
            "PUBLISH",
            "__sentinel__:hello",
            "127.0.0.1,1,x,0,mymaster,127.0.0.1,1,0"
        ])
        .await,
        ":1\r\n"
    );
}

/// INFO sentinel from `addr`, or None while the port is closed (the node is not fresh yet).
fn info_sentinel(addr: &str) -> Option<String> {
    let mut conn = redis::Client::open(format!("redis://{addr}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    redis::cmd("INFO").arg("sentinel").query(&mut conn).ok()
}

// --- TILT in INFO: a node whose timers were starved (SIGSTOP longer than down-after / 4) says
// so with Sentinel's since-seconds and Valkey's total, and both settle when TILT ends
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_reports_tilt_in_info() {
    let _g = serial();
    let m = Redis::start(&[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    let node = (1..=3).find(|id| *id != leader).unwrap();
    let mut s = Raw::connect(&c.nodes[&node].sentinel).await;
    assert_eq!(
        s.cmd(&[
            "SENTINEL",
            "SET",
            "mymaster",
            "down-after-milliseconds",
            "8000"
        ])
        .await,
        "+OK\r\n"
    );
    let addr = c.nodes[&node].sentinel.clone();
    // Subscribed on another node: a sentinel's TILT events are its own, never another's.
    let mut other = Raw::connect(&c.nodes[&leader].sentinel).await;
    psubscribe(&mut other, "*tilt").await;
    let info = info_sentinel(&addr).unwrap();
    assert!(
        info.contains(
            "sentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_total_tilt:0\r\n"
        ),
        "{info}"
    );
    let pid = c.pid(node).unwrap().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    // Longer than down-after / 4, so TILT lasts down-after (8 s) after the node runs again:
    // time for the port to settle and a subscriber to join before it ends.
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(3000));
    signal("-CONT");
    // The port reopens once the node has heard the leader again.
    let shows = |want: &'static str| {
        let addr = addr.clone();
        move || {
            let info = info_sentinel(&addr).filter(|i| i.contains(want));
            async move { info }
        }
    };
    let info = eventually(
        "TILT shown in INFO",
        Duration::from_secs(3),
        shows("sentinel_tilt:1\r\n"),
    )
    .await;
    let field = |info: &str, name: &str| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {info}"))
    };
    // A loaded host may add a trigger of its own; one stall is at least one.
    assert!(field(&info, "sentinel_total_tilt:") >= 1, "{info}");
    assert!(
        (0..=8).contains(&field(&info, "sentinel_tilt_since_seconds:")),
        "{info}"
    );
    // The port may close once more while the node's own late election timer settles: a
    // subscriber that joins once the port has stayed open for a second sees the TILT end.
    let mut open_since = Instant::now();
    for _ in 0..40 {
        if info_sentinel(&addr).is_none() {
            open_since = Instant::now();
        } else if open_since.elapsed() >= Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sub = Raw::connect(&addr).await;
    psubscribe(&mut sub, "*tilt").await;
    let info = eventually(
        "TILT ends",
        Duration::from_secs(16),
        shows("sentinel_tilt:0\r\n"),
    )
    .await;
    assert_eq!(field(&info, "sentinel_tilt_since_seconds:"), -1, "{info}");
    assert!(field(&info, "sentinel_total_tilt:") >= 1, "{info}");
    // Any further trigger on a loaded host comes first as +tilt; then the end.
    let exited =
        "*4\r\n$8\r\npmessage\r\n$5\r\n*tilt\r\n$5\r\n-tilt\r\n$17\r\n#tilt mode exited\r\n";
    let entered =
        "*4\r\n$8\r\npmessage\r\n$5\r\n*tilt\r\n$5\r\n+tilt\r\n$18\r\n#tilt mode entered\r\n";
    let mut got = sub.reply().await;
    for _ in 0..5 {
        if got != entered {
            break;
        }
        got = sub.reply().await;
    }
    assert_eq!(got, exited);
    // The resumed node's late election timer may have unseated the leader, whose port then
    // dropped this subscriber: what it got before that is what counts.
    let _ = tokio::time::timeout(Duration::from_millis(500), other.closed()).await;
    assert!(
        !other.text().contains("tilt mode"),
        "another node published this node's TILT: {}",
        other.text()
    );
}

/// Each peer's flags in SENTINEL SENTINELS from `addr`, by its Sentinel port; None while the
/// port is closed.
fn peer_flags(addr: &str) -> Option<Vec<(String, String)>> {
    let mut conn = redis::Client::open(format!("redis://{addr}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
        .ok()?;
    let v: Vec<Vec<String>> = redis::cmd("SENTINEL")
        .arg(&["SENTINELS", "mymaster"])
        .query(&mut conn)
        .ok()?;
    let field = |entry: &Vec<String>, name: &str| {
        entry
            .chunks(2)
            .find(|kv| kv[0] == name)
            .map(|kv| kv[1].clone())
            .unwrap_or_default()
    };
    Some(
        v.iter()
            .map(|e| (field(e, "port"), field(e, "flags")))
            .collect(),
    )
}

// --- a peer this node cannot reach is flagged s_down in SENTINELS after the master's
// down-after (redis_exporter's healthy-sentinel count reads these flags), and recovers
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_is_flagged_down_in_sentinels() {
    let _g = serial();
    let m = Redis::start(&[]);
    let mut c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let port_of = |id: u64| c.nodes[&id].sentinel.rsplit(':').next().unwrap().to_owned();
    let (p2, p3) = (port_of(2), port_of(3));
    let asked = c.nodes[&1].sentinel.clone();
    let healthy = vec![
        (p2.clone(), "sentinel".to_owned()),
        (p3.clone(), "sentinel".to_owned()),
    ];
    let flagged = |want: Vec<(String, String)>| {
        let asked = asked.clone();
        move || {
            let hit = peer_flags(&asked).filter(|f| *f == want).map(drop);
            async move { hit }
        }
    };
    eventually(
        "both peers healthy",
        Duration::from_secs(5),
        flagged(healthy.clone()),
    )
    .await;
    let mut sub = Raw::connect(&asked).await;
    psubscribe(&mut sub, "*sdown").await;
    let myid = Raw::connect(&c.nodes[&3].sentinel)
        .await
        .cmd(&["SENTINEL", "MYID"])
        .await;
    let id3 = myid.trim_end().rsplit('\n').next().unwrap().to_owned();

    c.stop(3);
    let down = vec![
        (p2.clone(), "sentinel".to_owned()),
        (p3.clone(), "s_down,sentinel,disconnected".to_owned()),
    ];
    eventually("node 3 flagged down", Duration::from_secs(8), flagged(down)).await;
    // Sentinel's +sdown for a peer: `sentinel <id> <ip> <port> @ <master> <ip> <port>`.
    let payload = format!(
        "sentinel {id3} 127.0.0.1 {p3} @ mymaster 127.0.0.1 {}",
        m.port
    );
    let event = |kind: &str| {
        format!(
            "*4\r\n$8\r\npmessage\r\n$6\r\n*sdown\r\n$6\r\n{kind}\r\n${}\r\n{payload}\r\n",
            payload.len()
        )
    };
    assert_eq!(sub.reply().await, event("+sdown"));

    c.start(3);
    eventually("node 3 back", Duration::from_secs(10), flagged(healthy)).await;
    assert_eq!(sub.reply().await, event("-sdown"));
}

// --- a role an instance reports that differs from the log's: Sentinel's -role-change (+ when
// it matches again), published by every node from its own probes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_made_master_by_hand_is_a_role_change() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    for id in 1..=3 {
        settled(&c, id, Some(r.port)).await;
    }
    let mut subs = Vec::new();
    for id in 1..=3 {
        let mut s = Raw::connect(&c.nodes[&id].sentinel).await;
        psubscribe(&mut s, "*role-change").await;
        subs.push(s);
    }
    r.query(&["REPLICAOF", "NO", "ONE"]).unwrap();
    let (rp, mp) = (r.port, m.port);
    let payload = format!(
        "slave 127.0.0.1:{rp} 127.0.0.1 {rp} @ mymaster 127.0.0.1 {mp} new reported role is master"
    );
    let want = format!(
        "*4\r\n$8\r\npmessage\r\n$12\r\n*role-change\r\n$12\r\n-role-change\r\n${}\r\n{payload}\r\n",
        payload.len()
    );
    // A node whose INFO never caught the replica as master (the leader may turn it back into a
    // replica first) rightly says nothing, as a sentinel would; the others say it first.
    let mut saw = 0;
    for (i, s) in subs.iter_mut().enumerate() {
        let first = tokio::time::timeout(Duration::from_secs(4), s.reply()).await;
        if let Ok(got) = first {
            assert_eq!(got, want, "node {}", i + 1);
            saw += 1;
        }
    }
    assert!(saw >= 1, "no node published -role-change");
}

// --- pipelining, inline commands, CLIENT, and protocol errors that close the connection
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_inline_and_protocol_errors() {
    let _g = serial();
    let m = Redis::start(&[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let addr = c.nodes[&1].sentinel.clone();

    let mut s = Raw::connect(&addr).await;
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    }
    batch.extend_from_slice(b"PING hello\r\n");
    s.send(&batch).await;
    for _ in 0..200 {
        assert_eq!(s.reply().await, "+PONG\r\n");
    }
    assert_eq!(s.reply().await, "$5\r\nhello\r\n");
    assert_eq!(s.cmd(&["CLIENT", "SETNAME", "probe"]).await, "+OK\r\n");
    assert_eq!(s.cmd(&["CLIENT", "GETNAME"]).await, "$5\r\nprobe\r\n");
    assert!(s.cmd(&["CLIENT", "ID"]).await.starts_with(':'));
    assert_eq!(
        s.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "raw"]).await,
        "+OK\r\n"
    );
    assert!(s.cmd(&["CLIENT", "INFO"]).await.contains("name=probe"));
    assert_eq!(
        s.cmd(&["CLIENT", "SETNAME", "a b"]).await,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert!(s.cmd(&["COMMAND", "COUNT"]).await.starts_with(':'));
    assert_eq!(s.cmd(&["QUIT"]).await, "+OK\r\n");
    assert!(s.closed().await, "QUIT closes");

    for (input, error) in [
        (
            &b"*1\r\n+PING\r\n"[..],
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$99999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"PING \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut s = Raw::connect(&addr).await;
        s.send(input).await;
        assert_eq!(s.reply().await, error);
        assert!(s.closed().await, "a protocol error closes the connection");
    }
    // Megabytes of garbage without a newline: an error, not an unbounded buffer.
    let mut s = Raw::connect(&addr).await;
    let junk = vec![b'x'; 200 * 1024];
    let _ = s.stream.write_all(&junk).await;
    assert_eq!(
        s.reply().await,
        "-ERR Protocol error: too big inline request\r\n"
    );
    // The node is still serving.
    let mut s = Raw::connect(&addr).await;
    assert_eq!(s.cmd(&["PING"]).await, "+PONG\r\n");
}

// --- AUTH: requirepass and users, with Redis's NOAUTH / WRONGPASS wording
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_requirepass_and_users() {
    let _g = serial();
    let m = Redis::start(&[]);
    let extra = format!(
        "{TIMINGS}[sentinel]\nrequirepass = \"s3cret\"\n[sentinel.users]\nalice = \"wonder\"\n"
    );
    let mut c = Cluster::new(3, &extra);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let _logs = c.logs_on_panic(40);
    let addr = c.nodes[&3].sentinel.clone();
    eventually("port open", Duration::from_secs(15), || {
        let addr = addr.clone();
        async move { TcpStream::connect(&addr).await.ok() }
    })
    .await;
    let mut s = Raw::connect(&addr).await;
    assert_eq!(
        s.cmd(&["PING"]).await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        s.cmd(&["HELLO", "3"]).await,
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
    );
    assert_eq!(
        s.cmd(&["AUTH", "nope"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(s.cmd(&["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(s.cmd(&["PING"]).await, "+PONG\r\n");

    let mut s = Raw::connect(&addr).await;
    assert!(s
        .cmd(&["HELLO", "3", "AUTH", "alice", "wonder", "SETNAME", "a"])
        .await
        .starts_with("%6\r\n"));
    assert_eq!(s.cmd(&["CLIENT", "GETNAME"]).await, "$1\r\na\r\n");
    let mut s = Raw::connect(&addr).await;
    assert_eq!(
        s.cmd(&["AUTH", "alice", "wrong"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    // Before AUTH, Redis's small limits apply.
    s.send(b"*20\r\n").await;
    assert_eq!(
        s.reply().await,
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
}

// --- writes through Raft: +OK means committed and visible on this node at once
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_commit_through_raft_with_sentinel_errors() {
    let _g = serial();
    let m = Redis::start(&[]);
    let other = Redis::start(&[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut s = Raw::connect(&c.nodes[&follower].sentinel).await;
    let port = other.port.to_string();

    for (args, reply) in [
        (
            vec!["mymaster", "127.0.0.1", "1", "2"],
            "-ERR Duplicate master name.\r\n",
        ),
        (
            vec!["x", "127.0.0.1", "1", "two"],
            "-ERR Invalid quorum\r\n",
        ),
        (vec!["x", "127.0.0.1", "abc", "2"], "-ERR Invalid port\r\n"),
        (
            vec!["x", "127.0.0.1", "1", "0"],
            "-ERR Quorum must be 1 or greater.\r\n",
        ),
        (
            vec!["x", "nohost.invalid", "1", "2"],
            "-ERR Invalid IP address or hostname specified\r\n",
        ),
        (
            vec!["x", "127.0.0.1", "70000", "2"],
            "-ERR Invalid port number.\r\n",
        ),
    ] {
        let mut cmd = vec!["SENTINEL", "MONITOR"];
        cmd.extend(args);
        assert_eq!(s.cmd(&cmd).await, reply, "{cmd:?}");
    }
    assert_eq!(
        s.cmd(&["SENTINEL", "MONITOR", "other", "127.0.0.1", &port, "2"])
            .await,
        "+OK\r\n"
    );
    // Read-your-write on the same (follower) node, then everywhere.
    assert!(s
        .cmd(&["SENTINEL", "MASTER", "other"])
        .await
        .contains(&bulk(&port)));
    // The other nodes apply it within a replication round or so.
    let want = format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&port));
    for id in 1..=3 {
        let mut o = Raw::connect(&c.nodes[&id].sentinel).await;
        let mut r = String::new();
        for _ in 0..100 {
            r = o
                .cmd(&["SENTINEL", "get-master-addr-by-name", "other"])
                .await;
            if r == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(r, want, "node {id}");
    }
    assert_eq!(
        s.cmd(&["SENTINEL", "SET", "other", "down-after-milliseconds", "0"])
            .await,
        "-ERR Invalid argument '0' for SENTINEL SET 'down-after-milliseconds'\r\n"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "SET", "other", "foo", "2"]).await,
        "-ERR Unknown option or number of arguments for SENTINEL SET 'foo'\r\n"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "SET", "other", "notification-script", "/bin/true"]).await,
        "-ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration\r\n"
    );
    assert_eq!(
        s.cmd(&[
            "SENTINEL",
            "SET",
            "other",
            "failover-timeout",
            "9000",
            "parallel-syncs",
            "3"
        ])
        .await,
        "+OK\r\n"
    );
    let master = s.cmd(&["SENTINEL", "MASTER", "other"]).await;
    assert!(
        master.contains("$16\r\nfailover-timeout\r\n$4\r\n9000\r\n"),
        "{master}"
    );
    assert!(
        master.contains("$14\r\nparallel-syncs\r\n$1\r\n3\r\n"),
        "{master}"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "FAILOVER", "other"]).await,
        "-NOGOODSLAVE No suitable replica to promote\r\n"
    );
    assert_eq!(s.cmd(&["SENTINEL", "RESET", "oth*"]).await, ":1\r\n");
    assert_eq!(s.cmd(&["SENTINEL", "REMOVE", "other"]).await, "+OK\r\n");
    assert_eq!(
        s.cmd(&["SENTINEL", "REMOVE", "other"]).await,
        "-ERR No such master with that name\r\n"
    );
    assert_eq!(
        s.cmd(&["ROLE"]).await,
        "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n"
    );
}

/// Subscribes `s` to `channels` and checks the acknowledgements.
async fn psubscribe(s: &mut Raw, pattern: &str) {
    let ack = s.cmd(&["PSUBSCRIBE", pattern]).await;
    assert!(ack.ends_with(":1\r\n"), "{ack}");
}

// --- pub/sub: every node publishes every event with Sentinel's payload; SENTINEL FAILOVER's
//     +switch-master reaches subscribers of all three nodes, and the address answer follows
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_subscribers_on_every_node() {
    let _g = serial();
    let m = Redis::start(&[]);
    let r = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(60);
    let mport = m.port.to_string();
    for id in 1..=3 {
        settled(&c, id, Some(r.port)).await;
    }

    // Node 1 in RESP2 (SUBSCRIBE), node 2 in RESP3 (push frames), node 3 with a pattern.
    let mut subs = Vec::new();
    let mut s1 = Raw::connect(&c.nodes[&1].sentinel).await;
    assert_eq!(
        s1.cmd(&["SUBSCRIBE", "+set", "+switch-master"]).await,
        "*3\r\n$9\r\nsubscribe\r\n$4\r\n+set\r\n:1\r\n"
    );
    assert_eq!(
        s1.reply().await,
        "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:2\r\n"
    );
    assert_eq!(s1.cmd(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert!(s1
        .cmd(&["SENTINEL", "masters"])
        .await
        .starts_with("-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE"));
    subs.push(s1);
    let mut s2 = Raw::connect(&c.nodes[&2].sentinel).await;
    assert!(s2.cmd(&["HELLO", "3"]).await.starts_with("%6"));
    assert_eq!(
        s2.cmd(&["SUBSCRIBE", "+set", "+switch-master"]).await,
        ">3\r\n$9\r\nsubscribe\r\n$4\r\n+set\r\n:1\r\n"
    );
    let _ = s2.reply().await;
    // RESP3 connections may run commands while subscribed.
    assert!(s2
        .cmd(&["SENTINEL", "masters"])
        .await
        .starts_with("*1\r\n%"));
    subs.push(s2);
    let mut s3 = Raw::connect(&c.nodes[&3].sentinel).await;
    psubscribe(&mut s3, "+s*").await;
    subs.push(s3);

    let mut w = Raw::connect(&c.nodes[&3].sentinel).await;
    let sent = Instant::now();
    assert_eq!(
        w.cmd(&["SENTINEL", "SET", "mymaster", "parallel-syncs", "2"])
            .await,
        "+OK\r\n"
    );
    let payload = format!("master mymaster 127.0.0.1 {mport} parallel-syncs 2");
    let expected = [
        format!("*3\r\n$7\r\nmessage\r\n$4\r\n+set\r\n{}", bulk(&payload)),
        format!(">3\r\n$7\r\nmessage\r\n$4\r\n+set\r\n{}", bulk(&payload)),
        format!(
            "*4\r\n$8\r\npmessage\r\n$3\r\n+s*\r\n$4\r\n+set\r\n{}",
            bulk(&payload)
        ),
    ];
    for (s, want) in subs.iter_mut().zip(&expected) {
        // The pattern also matches +sdown / +slave from this node's own probes: skip those.
        let mut got = s.reply().await;
        for _ in 0..20 {
            if got.contains("+set") {
                break;
            }
            got = s.reply().await;
        }
        assert_eq!(&got, want);
        eprintln!(
            "+set delivered {:?} after the write was sent",
            sent.elapsed()
        );
    }

    // A forced failover: +switch-master on every node, GET-MASTER-ADDR-BY-NAME follows.
    assert_eq!(
        w.cmd(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "+OK\r\n"
    );
    let rport = r.port.to_string();
    let switch = format!("mymaster 127.0.0.1 {mport} 127.0.0.1 {rport}");
    for (i, s) in subs.iter_mut().enumerate() {
        // The pattern subscriber sees other +s… events (+slave, +sdown) too: skip to the switch.
        let mut got = String::new();
        for _ in 0..20 {
            got = s.reply().await;
            if got.contains("+switch-master") {
                break;
            }
        }
        assert!(got.ends_with(&bulk(&switch)), "node {}: {got}", i + 1);
    }
    for id in 1..=3 {
        let mut o = Raw::connect(&c.nodes[&id].sentinel).await;
        assert_eq!(
            o.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
                .await,
            format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&rport)),
            "node {id} answers the new master"
        );
    }
}

/// The (channel, message) of a `pmessage` push for pattern `*`.
fn pmessage(reply: &str) -> (String, String) {
    let parts: Vec<&str> = reply.split("\r\n").collect();
    match parts.as_slice() {
        ["*4", _, "pmessage", _, "*", _, channel, _, payload, ..] => {
            ((*channel).to_owned(), (*payload).to_owned())
        }
        _ => panic!("not a pmessage: {reply:?}"),
    }
}

// --- issue 14: a PSUBSCRIBE * client on each node sees the whole failover after a kill -9, in
//     one sentinel's order: its own +sdown before +odown, the failover steps, each replica's
//     +slave-reconf-*, +failover-end; the nodes that did not run it learn it with
//     +config-update-from before +switch-master
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_publishes_the_whole_failover_in_sentinels_order() {
    let _g = serial();
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &[]);
    let r2 = Redis::replica_of(&m, &[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(80);
    for id in 1..=3 {
        settled(&c, id, Some(r2.port)).await;
        settled(&c, id, Some(r1.port)).await;
    }
    let mut subs = Vec::new();
    for id in 1..=3 {
        let mut s = Raw::connect(&c.nodes[&id].sentinel).await;
        psubscribe(&mut s, "*").await;
        subs.push((id, s));
    }
    let mport = m.port.to_string();
    m.kill9();
    let mut seen: Vec<(u64, Vec<(String, String)>)> = Vec::new();
    for (id, s) in subs.iter_mut() {
        let mut events: Vec<(String, String)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let done = |e: &[(String, String)]| {
            e.iter().any(|(k, _)| k == "+failover-end")
                && e.iter().any(|(k, _)| k == "+slave-reconf-done")
        };
        while !done(&events) {
            assert!(
                Instant::now() < deadline,
                "node {id}: no whole failover; got {events:?}"
            );
            events.push(pmessage(&s.reply().await));
        }
        seen.push((*id, events));
    }
    let master_at = format!("master mymaster 127.0.0.1 {mport}");
    let mut updated = 0;
    for (id, events) in &seen {
        let pos = |k: &str, prefix: &str| {
            events
                .iter()
                .position(|(c, p)| c == k && p.starts_with(prefix))
                .unwrap_or_else(|| panic!("node {id}: no {k} {prefix}… in {events:?}"))
        };
        let order = [
            pos("+sdown", &master_at),
            pos("+odown", &format!("{master_at} #quorum ")),
            pos("+new-epoch", ""),
            pos("+try-failover", &master_at),
            pos("+selected-slave", "slave "),
            pos("+promoted-slave", "slave "),
            pos("+switch-master", "mymaster 127.0.0.1 "),
            pos("+slave-reconf-sent", "slave "),
            pos("+slave-reconf-done", "slave "),
            pos("+failover-end", "master mymaster "),
        ];
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "node {id}: not in Sentinel's order: {events:?}"
        );
        if let Some(at) = events.iter().position(|(c, _)| c == "+config-update-from") {
            assert!(at < pos("+switch-master", ""), "node {id}: {events:?}");
            assert!(events[at].1.starts_with("sentinel "), "{events:?}");
            let from = format!("@ mymaster 127.0.0.1 {mport}");
            assert!(events[at].1.ends_with(&from), "{events:?}");
            updated += 1;
        }
    }
    assert_eq!(
        updated, 2,
        "the two nodes that did not run the failover: {seen:?}"
    );
}

// --- invariant 9: a node that cannot hear a leader closes its Sentinel port (connection
//     refused, and open connections dropped), and reopens once it has caught up
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_leader_closes_its_sentinel_port() {
    let _g = serial();
    let m = Redis::start(&[]);
    let mut c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(60);
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    let lone = (1..=3).find(|id| *id != leader).unwrap();
    let addr = c.nodes[&lone].sentinel.clone();
    let mut open = Raw::connect(&addr).await;
    assert_eq!(open.cmd(&["PING"]).await, "+PONG\r\n");

    let others: Vec<u64> = (1..=3).filter(|id| *id != lone).collect();
    let cut = Instant::now();
    for id in &others {
        c.kill(*id);
    }
    assert!(open.closed().await, "an open connection is dropped");
    eventually("connection refused", Duration::from_secs(5), || {
        let addr = addr.clone();
        async move { TcpStream::connect(&addr).await.is_err().then_some(()) }
    })
    .await;
    eprintln!(
        "Sentinel port closed {:?} after the other nodes died",
        cut.elapsed()
    );

    for id in &others {
        c.start(*id);
    }
    sentinel_ready(&c, lone).await;
    let mut s = Raw::connect(&addr).await;
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&m.port.to_string()))
    );
}

/// Words the fuzzer builds requests from: real names, near misses and hostile values.
const WORDS: &[&str] = &[
    "SENTINEL",
    "sentinel",
    "PING",
    "ROLE",
    "INFO",
    "CLIENT",
    "COMMAND",
    "HELLO",
    "AUTH",
    "ECHO",
    "masters",
    "master",
    "replicas",
    "slaves",
    "sentinels",
    "get-master-addr-by-name",
    "GET-PRIMARY-ADDR-BY-NAME",
    "myid",
    "ckquorum",
    "monitor",
    "remove",
    "set",
    "failover",
    "reset",
    "config",
    "get",
    "help",
    "debug",
    "info-cache",
    "setname",
    "getname",
    "id",
    "setinfo",
    "lib-name",
    "count",
    "list",
    "docs",
    "mymaster",
    "fz",
    "*",
    "[",
    "\\",
    "",
    "down-after-milliseconds",
    "quorum",
    "parallel-syncs",
    "auth-pass",
    "failover-timeout",
    "0",
    "-1",
    "1",
    "2",
    "3",
    "65536",
    "99999999999999999999",
    "127.0.0.1",
    "::1",
    "abc",
    "a b",
    "\r\n",
    "\"",
    "'",
    "\u{0}",
    "\u{ff}é",
];

// --- fuzzing the command dispatch: thousands of random requests against a live node, every
//     one answered with one well-formed reply, and the node unharmed (seed printed to replay)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_commands_never_break_the_node() {
    use rand::{Rng, SeedableRng};
    let _g = serial();
    let m = Redis::start(&[]);
    let mut c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let seed: u64 = std::env::var("RAFTINEL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("fuzz seed {seed} (RAFTINEL_FUZZ_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let addr = c.nodes[&1].sentinel.clone();
    let mut s = Raw::connect(&addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while sent < 3000 && Instant::now() < deadline {
        let n = rng.gen_range(1..8);
        let mut args: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                if rng.gen_bool(0.15) {
                    (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect()
                } else {
                    WORDS[rng.gen_range(0..WORDS.len())].as_bytes().to_vec()
                }
            })
            .collect();
        // Subscriptions change how many replies come back, and QUIT ends the connection:
        // both have their own tests.
        let first = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        if first.contains("subscribe") || first == "quit" {
            args[0] = b"PING".to_vec();
        }
        let mut wire = format!("*{}\r\n", args.len()).into_bytes();
        for a in &args {
            wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            wire.extend_from_slice(a);
            wire.extend_from_slice(b"\r\n");
        }
        s.send(&wire).await;
        // One whole reply (or `reply` panics), and never a protocol error: every request here is
        // well-formed, whatever bytes its arguments hold.
        let reply = s.reply().await;
        assert!(
            !reply.contains("Protocol error"),
            "request {args:?} got {reply}"
        );
        sent += 1;
        // Garbage on a side connection now and then: an error and a close, nothing else.
        if sent % 200 == 0 {
            let mut g = Raw::connect(&addr).await;
            let junk: Vec<u8> = (0..rng.gen_range(1..2000)).map(|_| rng.gen()).collect();
            let _ = g.stream.write_all(&junk).await;
            let _ = g.stream.write_all(b"\r\n").await;
            drop(g);
        }
    }
    eprintln!("fuzz: {sent} random requests answered");
    assert!(sent >= 500, "only {sent} requests in 30 s");
    let mut fresh = Raw::connect(&addr).await;
    assert_eq!(fresh.cmd(&["PING"]).await, "+PONG\r\n");
    c.wait_leader(&[1, 2, 3], Duration::from_secs(5)).await;
    for id in 1..=3 {
        assert!(c.nodes.get_mut(&id).unwrap().is_running(), "node {id} died");
    }
}

// --- access: roles, protected mode, the AUTH bypass ---------------------------------------------

const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

fn noperm(user: &str, command: &str) -> String {
    format!("-NOPERM User {user} has no permissions to run the '{command}' command\r\n")
}

/// Every write the Sentinel port has, with its name in Redis's `command|subcommand` form.
fn writes(other_port: &str) -> Vec<(Vec<String>, &'static str)> {
    let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        (
            v(&["SENTINEL", "MONITOR", "other", "127.0.0.1", other_port, "2"]),
            "sentinel|monitor",
        ),
        (v(&["SENTINEL", "REMOVE", "mymaster"]), "sentinel|remove"),
        (
            v(&[
                "SENTINEL",
                "SET",
                "mymaster",
                "down-after-milliseconds",
                "2000",
            ]),
            "sentinel|set",
        ),
        (
            v(&["SENTINEL", "FAILOVER", "mymaster"]),
            "sentinel|failover",
        ),
        (v(&["SENTINEL", "RESET", "*"]), "sentinel|reset"),
        (
            v(&["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"]),
            "sentinel|config",
        ),
        (
            v(&["SENTINEL", "CONFIG", "SET", "loglevel", "debug"]),
            "sentinel|config",
        ),
        (
            v(&["SENTINEL", "FAILOVER", "mymaster", "COORDINATED"]),
            "sentinel|failover",
        ),
        (v(&["SENTINEL", "FLUSHCONFIG"]), "sentinel|flushconfig"),
    ]
}

/// Nothing the refused writes asked for happened: mymaster unchanged, `other` not monitored.
async fn unchanged(s: &mut Raw, master_port: u16) {
    let master = s.cmd(&["SENTINEL", "MASTER", "mymaster"]).await;
    assert!(master.contains(&bulk(&master_port.to_string())), "{master}");
    assert!(
        master.contains("$23\r\ndown-after-milliseconds\r\n$4\r\n1000\r\n"),
        "{master}"
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "other"])
            .await,
        "*-1\r\n"
    );
}

async fn port_open(addr: &str) {
    eventually("port open", Duration::from_secs(15), || async move {
        TcpStream::connect(addr).await.ok()
    })
    .await;
}

// --- with users and no requirepass, `default` is disabled (the bypass was `AUTH default x` →
//     +OK); a client-role user reads and subscribes but gets Redis's NOPERM for every write; an
//     admin writes; a connection that never authenticates is closed after auth-timeout
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_gate_writes_and_the_default_user_is_disabled() {
    let _g = serial();
    let m = Redis::start(&[]);
    let other = Redis::start(&[]);
    let extra = format!(
        "{TIMINGS}[sentinel]\nauth-timeout = 1\n[sentinel.users]\nops = \"o\"\napp = {{ password = \"a\", role = \"client\" }}\n"
    );
    let mut c = Cluster::new(3, &extra);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let index = c.monitor(leader, "mymaster", u32::from(m.port)).await;
    c.wait_applied(leader, index, Duration::from_secs(5)).await;
    let _logs = c.logs_on_panic(40);
    let addr = c.nodes[&leader].sentinel.clone();
    port_open(&addr).await;

    let mut s = Raw::connect(&addr).await;
    let opened = Instant::now();
    assert_eq!(s.cmd(&["AUTH", "default", "whatever"]).await, WRONGPASS);
    assert_eq!(s.cmd(&["AUTH", "whatever"]).await, WRONGPASS);
    assert_eq!(
        s.cmd(&["HELLO", "3", "AUTH", "default", "whatever"]).await,
        WRONGPASS
    );
    assert_eq!(
        s.cmd(&["SENTINEL", "SET", "mymaster", "quorum", "1"]).await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert!(s.closed().await, "an unauthenticated client was kept");
    let kept = opened.elapsed();
    assert!(kept < Duration::from_secs(3), "closed after {kept:?}");

    let other_port = other.port.to_string();
    let mut app = Raw::connect(&addr).await;
    assert_eq!(app.cmd(&["AUTH", "app", "a"]).await, "+OK\r\n");
    for (args, name) in writes(&other_port) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(app.cmd(&args).await, noperm("app", name), "{args:?}");
    }
    unchanged(&mut app, m.port).await;
    assert!(app
        .cmd(&["SENTINEL", "CONFIG", "GET", "resolve-hostnames"])
        .await
        .contains("no"));
    // Authenticated clients are not subject to auth-timeout (and `timeout` is 0).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.cmd(&["PING"]).await, "+PONG\r\n");
    psubscribe(&mut app, "*").await;

    let mut ops = Raw::connect(&addr).await;
    let hello = ops.cmd(&["HELLO", "2", "AUTH", "ops", "o"]).await;
    assert!(hello.starts_with("*12\r\n"), "{hello}");
    let ok: [&[&str]; 5] = [
        &[
            "SENTINEL",
            "SET",
            "mymaster",
            "down-after-milliseconds",
            "2000",
        ],
        &[
            "SENTINEL",
            "MONITOR",
            "other",
            "127.0.0.1",
            &other_port,
            "2",
        ],
        &["SENTINEL", "REMOVE", "other"],
        &["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"],
        &[
            "SENTINEL",
            "SET",
            "mymaster",
            "down-after-milliseconds",
            "1000",
        ],
    ];
    for args in ok {
        assert_eq!(ops.cmd(args).await, "+OK\r\n", "{args:?}");
    }
    assert_eq!(ops.cmd(&["SENTINEL", "RESET", "mymaster"]).await, ":1\r\n");
    // Allowed, and refused only for Sentinel's own reason (no replica).
    assert_eq!(
        ops.cmd(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-NOGOODSLAVE No suitable replica to promote\r\n"
    );
    unchanged(&mut ops, m.port).await;
}

/// This machine's own non-loopback IPv4 address (from `ip -4 -o addr`): a connection to it
/// from here has a non-loopback peer address, and nothing leaves the machine.
fn own_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no non-loopback IPv4 address on this machine: {text}"))
}

// --- no users, no requirepass: Redis's protected mode — anyone reads, only loopback writes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_only_loopback_writes() {
    let _g = serial();
    let m = Redis::start(&[]);
    let other = Redis::start(&[]);
    let own = own_address();
    let mut c = Cluster::new(3, TIMINGS);
    let port = common::free_port();
    c.nodes.get_mut(&3).unwrap().sentinel = format!("0.0.0.0:{port}");
    c.write_config(3, None);
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let _logs = c.logs_on_panic(40);
    let far_addr = format!("{own}:{port}");
    let want = format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&m.port.to_string()));
    // Reads are open to everyone; this also waits for node 3 to apply the MONITOR.
    eventually(
        "node 3 answers for mymaster",
        Duration::from_secs(15),
        || {
            let (far_addr, want) = (far_addr.clone(), want.clone());
            async move {
                TcpStream::connect(&far_addr).await.ok()?;
                let mut far = Raw::connect(&far_addr).await;
                let r = far
                    .cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
                    .await;
                (r == want).then_some(())
            }
        },
    )
    .await;

    let other_port = other.port.to_string();
    let mut far = Raw::connect(&far_addr).await;
    let me = far.cmd(&["CLIENT", "INFO"]).await;
    assert!(me.contains(&format!("addr={own}:")), "{me}");
    for (args, name) in writes(&other_port) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(far.cmd(&args).await, noperm("default", name), "{args:?}");
    }
    unchanged(&mut far, m.port).await;
    // AUTH cannot lift it: there is no password to give.
    assert!(far
        .cmd(&["AUTH", "x"])
        .await
        .starts_with("-ERR AUTH <password> called"));

    let mut near = Raw::connect(&format!("127.0.0.1:{port}")).await;
    assert_eq!(
        near.cmd(&[
            "SENTINEL",
            "MONITOR",
            "other",
            "127.0.0.1",
            &other_port,
            "2"
        ])
        .await,
        "+OK\r\n"
    );
    assert_eq!(near.cmd(&["SENTINEL", "REMOVE", "other"]).await, "+OK\r\n");
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// --- 1,000 SUBSCRIBEs, each arriving in a ~1 MiB request: the names are copied, so the node's
//     RSS does not grow by the buffers they came in; over-long names are refused
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_do_not_pin_request_buffers() {
    let _g = serial();
    let m = Redis::start(&[]);
    let extra = format!("{TIMINGS}[sentinel]\nmax-subscriptions = 1000\n");
    let c = cluster_with(&m, &extra).await;
    let _logs = c.logs_on_panic(40);
    let pid = c.pid(1).unwrap();
    let mut s = Raw::connect(&c.nodes[&1].sentinel).await;
    // Warm up the connection path before measuring.
    assert_eq!(s.cmd(&["PING"]).await, "+PONG\r\n");
    let before = rss_kib(pid);
    let pad = "x".repeat(60_000);
    let filler = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{pad}\r\n", pad.len());
    for i in 0..1000 {
        let name = format!("chan-{i}");
        let mut req =
            format!("*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{name}\r\n", name.len()).into_bytes();
        // In subscribe mode ECHO is refused with a short error: the request is big, the replies
        // are not.
        for _ in 0..16 {
            req.extend_from_slice(filler.as_bytes());
        }
        s.send(&req).await;
        let ack = s.reply().await;
        assert!(ack.ends_with(&format!(":{}\r\n", i + 1)), "{ack}");
        for _ in 0..16 {
            assert!(s.reply().await.starts_with("-ERR Can't execute 'echo'"));
        }
    }
    let after = rss_kib(pid);
    eprintln!(
        "node RSS {before} KiB before, {after} KiB after 1,000 SUBSCRIBEs in ~1 MiB requests"
    );
    // Pinned, the buffers cost ~84 MiB here (measured with the names kept as slices).
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert_eq!(
        s.cmd(&["SUBSCRIBE", "one-too-many"]).await,
        "-ERR max number of subscriptions per client reached (1000)\r\n"
    );
    let mut t = Raw::connect(&c.nodes[&1].sentinel).await;
    assert_eq!(
        t.cmd(&["SUBSCRIBE", "ok", &"n".repeat(257)]).await,
        "-ERR channel or pattern name longer than 256 bytes\r\n"
    );
    assert_eq!(
        t.cmd(&["PING"]).await,
        "+PONG\r\n",
        "nothing was subscribed"
    );
}

// --- 5,000 idle connections from one address: past sentinel.maxclients-per-ip (256) each is
//     refused with a clear error, and a client from another address is answered at once
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_per_address() {
    let _g = serial();
    let m = Redis::start(&[]);
    let c = cluster_with(&m, TIMINGS).await;
    let _logs = c.logs_on_panic(40);
    let addr: std::net::SocketAddr = c.nodes[&1].sentinel.parse().unwrap();
    let pid = c.pid(1).unwrap();
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(5000);
    let started = Instant::now();
    for _ in 0..5000 {
        let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .unwrap();
        conns.push(s);
    }
    eprintln!("5,000 connections in {:?}", started.elapsed());
    const REFUSED: &[u8] = b"-ERR max number of clients per IP address reached\r\n";
    // Each refused connection gets the line, then the close; the others hear nothing.
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); conns.len()];
    let mut closed = vec![false; conns.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, s) in conns.iter().enumerate() {
            let mut b = [0u8; 128];
            while !closed[i] {
                match s.try_read(&mut b) {
                    Ok(0) => closed[i] = true,
                    Ok(n) => got[i].extend_from_slice(&b[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => closed[i] = true,
                }
            }
        }
        let refused = closed.iter().filter(|c| **c).count();
        if refused >= 5000 - 256 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = (0..conns.len()).filter(|i| closed[*i]).count();
    assert_eq!(refused, 5000 - 256, "connections closed by the node");
    for i in (0..conns.len()).filter(|i| closed[*i]) {
        assert_eq!(got[i], REFUSED, "connection {i}");
    }
    assert!((0..conns.len()).all(|i| closed[i] || got[i].is_empty()));

    // Another address (127.0.0.2 is loopback too, but not the flooding one) is served at once.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let asked = Instant::now();
    let mut s = Raw::over(sock.connect(addr).await.unwrap());
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&m.port.to_string()))
    );
    let took = asked.elapsed();
    eprintln!("GET-MASTER-ADDR-BY-NAME from 127.0.0.2 with 256 idle clients held: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let after = rss_kib(pid);
    eprintln!("node RSS {before} KiB before, {after} KiB with 256 idle clients");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );

    // The slots come back when the idle clients leave.
    drop(conns);
    eventually(
        "a slot for 127.0.0.1 again",
        Duration::from_secs(5),
        || async {
            let mut s = Raw::connect(&c.nodes[&1].sentinel).await;
            s.send(b"PING\r\n").await;
            (s.reply().await == "+PONG\r\n").then_some(())
        },
    )
    .await;
}

// --- the TLS listener (sentinel.tls-port): the same replies over TLS; with tls-auth-clients
//     "yes" a client without a certificate gets nothing; it closes with the plain port when the
//     node is no longer fresh (invariant 9)

/// A TLS connection to `addr` that trusts `pki`'s CA, presenting the node certificate as its
/// client certificate when `with_cert`.
async fn tls_connect(addr: &str, pki: &common::pki::Pki, with_cert: bool) -> std::io::Result<Raw> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_cert {
        let certs = CertificateDer::pem_file_iter(&pki.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Raw::over(tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_port_serves_and_closes_with_freshness() {
    let _g = serial();
    let m = Redis::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::create(dir.path());
    let (mut c, tls) = pki.cluster(3, TIMINGS, "tls-auth-clients = \"yes\"\n");
    c.start_all();
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await;
    let index = c.monitor(leader, "mymaster", u32::from(m.port)).await;
    let _logs = c.logs_on_panic(40);
    let lone = (1..=3).find(|id| *id != leader).unwrap();
    c.wait_applied(lone, index, Duration::from_secs(5)).await;
    let addr = tls[usize::try_from(lone - 1).unwrap()].clone();
    port_open(&addr).await;

    let mut s = tls_connect(&addr, &pki, true).await.unwrap();
    assert_eq!(
        s.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        format!("*2\r\n{}{}", bulk("127.0.0.1"), bulk(&m.port.to_string()))
    );
    assert!(s.cmd(&["HELLO", "3"]).await.starts_with("%6\r\n"));

    // Without a client certificate: refused in the handshake or on the first read.
    if let Ok(mut anon) = tls_connect(&addr, &pki, false).await {
        anon.send(b"PING\r\n").await;
        assert!(
            anon.closed().await,
            "a client without a certificate was served"
        );
        assert!(!anon.text().contains("PONG"), "{}", anon.text());
    }
    // Plaintext on the TLS port is not RESP.
    let mut plain = Raw::connect(&addr).await;
    plain.send(b"PING\r\n").await;
    assert!(plain.closed().await);
    assert!(!plain.text().contains("PONG"));

    let others: Vec<u64> = (1..=3).filter(|id| *id != lone).collect();
    for id in &others {
        c.kill(*id);
    }
    assert!(s.closed().await, "an open TLS connection is dropped");
    eventually("TLS port refused", Duration::from_secs(5), || {
        let addr = addr.clone();
        async move { TcpStream::connect(&addr).await.is_err().then_some(()) }
    })
    .await;
}
