//! Invariant 12 end to end, on a real three-node cluster over the Sentinel port: master names
//! with a leading '-' or a control character are refused with the exact error; SET of
//! client-reconfig-script is refused even while a MONITOR of the same name races it on another
//! connection; a VIP outside the node's `vip-allowed` is refused at SET (RESP and `ctl`); a
//! node's own `[masters.NAME]` notification-script runs under the default deny policy, without
//! the node's ambient capabilities.

// Each test owns its runtime on its own thread; the std guard only serializes whole tests.
#![allow(clippy::await_holding_lock)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{eventually, serial, Cluster};
use raftinel::pb::Consistency;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DENIED: &str = "-ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration\r\n";
const OUTSIDE: &str = "vip 192.168.1.10/24 is outside this node's `vip-allowed` (10.77.0.0/16); add a subnet that contains it to `vip-allowed` in the config of every node that may hold it, or choose a VIP inside it";

/// A Sentinel-port connection for commands whose reply is one line (`+OK`, `-ERR …`).
struct Line {
    stream: TcpStream,
}

impl Line {
    /// Connects once the node's Sentinel port is open (it opens once the node has a leader).
    async fn connect(addr: &str) -> Line {
        eventually("the Sentinel port opens", Duration::from_secs(10), || {
            let addr = addr.to_owned();
            async move { TcpStream::connect(addr).await.ok() }
        })
        .await
        .into()
    }

    async fn cmd(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n") {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(left, self.stream.read(&mut byte))
                .await
                .unwrap_or_else(|_| panic!("no reply line in 5 s to {args:?}"))
                .unwrap();
            assert_eq!(n, 1, "connection closed during the reply to {args:?}");
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }
}

/// An executable script that appends "$1<TAB>$2<TAB>its CapAmb" to a file; returns both paths.
fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
    let (path, out) = (dir.join("notify.sh"), dir.join("notified"));
    let body = format!(
        "#!/bin/sh\namb=$(awk '/^CapAmb/ {{print $2}}' /proc/$$/status)\nprintf '%s\\t%s\\t%s\\n' \"$1\" \"$2\" \"$amb\" >> '{}'\n",
        out.display()
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, out)
}

impl From<TcpStream> for Line {
    fn from(stream: TcpStream) -> Self {
        Line { stream }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_scripts_and_vips_are_validated_where_applied() {
    let _g = serial();
    let scripts = tempfile::tempdir().unwrap();
    let (notify, notified) = recorder(scripts.path());
    let mut c = Cluster::new(
        3,
        &format!(
            "vip-allowed = [\"10.77.0.0/16\"]\n[masters.race0]\nnotification-script = \"{}\"\n",
            notify.display()
        ),
    );
    let _logs = c.logs_on_panic(40);
    // As root, the nodes get CAP_NET_ADMIN/CAP_NET_RAW as ambient capabilities, as under systemd.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for id in 1..=3 {
        if root {
            c.start_with_ambient_caps(id);
        } else {
            c.start(id);
        }
    }
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let mut f = Line::connect(&c.nodes[&follower].sentinel).await;
    let mut l = Line::connect(&c.nodes[&leader].sentinel).await;
    let port = common::free_port().to_string();

    // --- 1. names: Sentinel's wording for control characters, raftinel's for a leading '-' ---
    for (name, reply) in [
        (
            "-oProxyCommand=x",
            "-ERR master name must not start with '-'\r\n",
        ),
        (
            "bad\nmaster",
            "-ERR master name must not contain control characters\r\n",
        ),
        (
            "bad\rmaster",
            "-ERR master name must not contain control characters\r\n",
        ),
        ("my master", "-ERR master name must not contain spaces\r\n"),
    ] {
        let cmd = ["SENTINEL", "MONITOR", name, "127.0.0.1", &port, "2"];
        assert_eq!(f.cmd(&cmd).await, reply, "{name:?} via a follower");
        assert_eq!(l.cmd(&cmd).await, reply, "{name:?} via the leader");
    }
    assert_eq!(c.list(leader).await.unwrap().len(), 0, "nothing was added");

    // --- 2. SET client-reconfig-script racing a MONITOR of the same name, on two nodes ---
    for i in 0..5 {
        let name = format!("race{i}");
        // One address is monitored under one name: race0 is the real instance, the others
        // other loopback addresses (nothing listens there; this round only races the SET).
        let host = format!("127.0.0.{}", i + 1);
        let monitor = ["SENTINEL", "MONITOR", &name, &host, &port, "2"];
        let set = [
            "SENTINEL",
            "SET",
            &name,
            "client-reconfig-script",
            "/bin/sh",
        ];
        let (m, s) = tokio::join!(f.cmd(&monitor), l.cmd(&set));
        assert_eq!(m, "+OK\r\n", "{name}");
        assert_eq!(s, DENIED, "{name}: the race must not skip the check");
        // Once the master is known everywhere, still denied.
        assert_eq!(l.cmd(&set).await, DENIED, "{name}");
    }
    for i in 0..5 {
        let m = c
            .get(leader, &format!("race{i}"), Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(m.client_reconfig_script, "", "race{i}");
    }

    // --- 3. a VIP outside this node's vip-allowed, refused at SET; inside, committed ---
    let vip = |v: &'static str| ["SENTINEL", "SET", "race0", "vip", v];
    assert_eq!(
        f.cmd(&vip("192.168.1.10/24")).await,
        format!("-ERR {OUTSIDE}\r\n")
    );
    assert_eq!(
        f.cmd(&vip("10.77.0.0/24")).await,
        "-ERR Invalid argument '10.77.0.0/24' for SENTINEL SET 'vip'\r\n",
        "a network address is no host address"
    );
    assert_eq!(f.cmd(&vip("10.77.0.200/24")).await, "+OK\r\n");
    let out = c.ctl(&["set", "race0", "vip", "192.168.1.10/24"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(OUTSIDE), "{err}");
    let m = c
        .get(leader, "race0", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(m.vip, "10.77.0.200/24");

    // --- 4. the nodes' own script for race0 runs on the leader, deny-scripts-reconfig or not,
    //        and without the node's ambient capabilities ---
    let want = format!("+monitor\tmaster race0 127.0.0.1 {port} quorum 2\t0000000000000000");
    if root {
        let pid = c.pid(leader).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains("CapAmb:\t0000000000003000"),
            "the node itself has them: {status}"
        );
    }
    eventually(
        "race0's own notification-script ran",
        Duration::from_secs(10),
        || {
            let lines = std::fs::read_to_string(&notified).unwrap_or_default();
            let found = lines.lines().any(|l| l == want);
            async move { found.then_some(()) }
        },
    )
    .await;

    // --- 5. SET values with control characters (redis #14970) ---
    assert_eq!(
        f.cmd(&["SENTINEL", "SET", "race0", "auth-pass", "x\r\nsentinel"])
            .await,
        "-ERR Invalid argument for SENTINEL SET 'auth-pass': the value must not contain control characters\r\n"
    );
}
