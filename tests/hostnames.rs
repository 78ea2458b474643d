//! Hostnames, as Sentinel 6.2+ takes them (`resolve-hostnames`, `announce-hostnames`): a master
//! monitored by name, a replica that announces a name (`replica-announce-ip`), a kill -9 failover
//! onto it and the old master folded back in, each node answering as its own settings say, and
//! the replies a real sentinel with the same settings gives; a name that moves is followed. The
//! names are /etc/hosts entries for loopback addresses that the tests add and remove: root, as CI
//! runs.

#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::redis::{RealSentinel, Redis};
use common::{eventually, serial, Cluster};
use redis::aio::MultiplexedConnection;
use redis::Value;

const HOSTS: &str = "/etc/hosts";

/// Lines added to /etc/hosts, removed on drop (a failing test too).
struct HostsEntries {
    marker: String,
}

impl HostsEntries {
    fn add(names: &[&str]) -> HostsEntries {
        HostsEntries::add_at("127.0.0.1", names)
    }

    fn add_at(ip: &str, names: &[&str]) -> HostsEntries {
        let marker = format!("raftinel-test-{}-{ip}", std::process::id());
        let mut text = std::fs::read_to_string(HOSTS).expect("reading /etc/hosts");
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for name in names {
            text.push_str(&format!("{ip} {name} # {marker}\n"));
        }
        std::fs::write(HOSTS, text)
            .unwrap_or_else(|e| panic!("this test adds names to /etc/hosts and needs root: {e}"));
        HostsEntries { marker }
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(HOSTS) {
            let kept: String = text
                .lines()
                .filter(|l| !l.contains(&self.marker))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(HOSTS, kept);
        }
    }
}

async fn conn(addr: &str) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("connect timed out")
    .expect("connect")
}

async fn sentinel(c: &mut MultiplexedConnection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd("SENTINEL");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query_async(c).await
}

async fn addr_by_name(addr: &str) -> Option<(String, u16)> {
    let mut c = conn(addr).await;
    let v = sentinel(&mut c, &["get-master-addr-by-name", "mymaster"])
        .await
        .ok()?;
    redis::from_redis_value(v).ok()
}

/// (ip, port) of every replica SENTINEL REPLICAS lists.
async fn replicas(addr: &str) -> Vec<(String, String)> {
    let mut c = conn(addr).await;
    let Ok(v) = sentinel(&mut c, &["replicas", "mymaster"]).await else {
        return Vec::new();
    };
    let list: Vec<Vec<String>> = redis::from_redis_value(v).unwrap_or_default();
    list.iter()
        .map(|fields| {
            let get = |k: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv[0] == k)
                    .map(|kv| kv[1].clone())
                    .unwrap_or_default()
            };
            (get("ip"), get("port"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_monitored_by_hostname_fails_over_as_sentinel_would() {
    let _g = serial();
    let pid = std::process::id();
    let (mname, rname) = (
        format!("m-{pid}.raftinel.test"),
        format!("r1-{pid}.raftinel.test"),
    );
    let _hosts = HostsEntries::add(&[&mname, &rname]);
    let mut m = Redis::start(&[]);
    let r1 = Redis::replica_of(&m, &["--replica-announce-ip", &rname]);
    // Never promoted: the failover goes to the replica that announces a name.
    let r2 = Redis::replica_of(&m, &["--replica-priority", "0"]);
    let (mport, r1port, r2port) = (m.port.to_string(), r1.port.to_string(), r2.port.to_string());
    let mut c = Cluster::new(3, "default-down-after-ms = 1000\n");
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(60);
    let at = |id: u64| c.nodes[&id].sentinel.clone();

    // resolve-hostnames no (the default): a name is refused in Sentinel's words.
    let mut s1 = conn(&at(1)).await;
    let monitor = ["monitor", "mymaster", mname.as_str(), mport.as_str(), "2"];
    let e = sentinel(&mut s1, &monitor).await.unwrap_err();
    assert_eq!(
        e.detail(),
        Some("Invalid IP address or hostname specified"),
        "{e}"
    );

    // Every node resolves; node 2 keeps announcing addresses.
    for id in 1..=3 {
        let mut s = conn(&at(id)).await;
        let mut set = vec!["config", "set", "resolve-hostnames", "yes"];
        if id != 2 {
            set.extend(["announce-hostnames", "yes"]);
        }
        let ok = sentinel(&mut s, &set).await.unwrap();
        assert_eq!(ok, Value::Okay);
    }
    let got = sentinel(&mut s1, &["config", "get", "*-hostnames"])
        .await
        .unwrap();
    let got: Vec<String> = redis::from_redis_value(got).unwrap();
    assert_eq!(
        got,
        ["resolve-hostnames", "yes", "announce-hostnames", "yes"]
    );
    // Not a possible name: refused before any lookup (a name /etc/hosts lacks would be asked of
    // a DNS server, off this host).
    let malformed = ["monitor", "other", "bad..name", "6379", "2"];
    let e = sentinel(&mut s1, &malformed).await.unwrap_err();
    assert_eq!(e.detail(), Some("Invalid IP address or hostname specified"));
    assert_eq!(sentinel(&mut s1, &monitor).await.unwrap(), Value::Okay);

    let named = (mname.clone(), m.port);
    let numbered = ("127.0.0.1".to_owned(), m.port);
    eventually(
        "each node names the master its way",
        Duration::from_secs(10),
        || {
            let (a1, a2, named, numbered) = (at(1), at(2), named.clone(), numbered.clone());
            async move {
                (addr_by_name(&a1).await == Some(named)
                    && addr_by_name(&a2).await == Some(numbered))
                .then_some(())
            }
        },
    )
    .await;
    let want1 = vec![
        ("127.0.0.1".to_owned(), r2port.clone()),
        (rname.clone(), r1port.clone()),
    ];
    eventually(
        "the replicas, as announced",
        Duration::from_secs(15),
        || {
            let (a1, want1) = (at(1), want1.clone());
            async move {
                let mut got = replicas(&a1).await;
                got.sort();
                (got == want1).then_some(())
            }
        },
    )
    .await;
    // Node 2 applies the same entries a moment later, perhaps; it lists r1 by its address.
    let numbered_r1 = ("127.0.0.1".to_owned(), r1port.clone());
    eventually(
        "node 2 announces addresses",
        Duration::from_secs(10),
        || {
            let (a2, want) = (at(2), numbered_r1.clone());
            async move { replicas(&a2).await.contains(&want).then_some(()) }
        },
    )
    .await;

    // A real sentinel with both settings on answers the same.
    let real = RealSentinel::watching_at(
        &m,
        &mname,
        "mymaster",
        "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n",
    );
    let real_at = format!("127.0.0.1:{}", real.port);
    eventually(
        "the real sentinel found both replicas",
        Duration::from_secs(15),
        || {
            let real_at = real_at.clone();
            async move { (replicas(&real_at).await.len() == 2).then_some(()) }
        },
    )
    .await;
    assert_eq!(addr_by_name(&real_at).await, addr_by_name(&at(1)).await);
    let mut real_replicas = replicas(&real_at).await;
    real_replicas.sort();
    assert_eq!(real_replicas, want1, "the real sentinel's replicas");
    drop(real);

    // kill -9: the failover lands on the named replica, announced per node.
    let mut sub = redis::Client::open(format!("redis://{}/", at(1)))
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    sub.subscribe("+switch-master").await.unwrap();
    m.kill9();
    let named = (rname.clone(), r1.port);
    let numbered = ("127.0.0.1".to_owned(), r1.port);
    eventually(
        "failed over onto the named replica",
        Duration::from_secs(30),
        || {
            let (a1, a2, named, numbered) = (at(1), at(2), named.clone(), numbered.clone());
            async move {
                (addr_by_name(&a1).await == Some(named)
                    && addr_by_name(&a2).await == Some(numbered))
                .then_some(())
            }
        },
    )
    .await;
    let msg = {
        use futures::StreamExt;
        let mut stream = sub.on_message();
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("no +switch-master within 5 s")
            .expect("subscription ended")
    };
    let payload: String = msg.get_payload().unwrap();
    assert_eq!(
        payload,
        format!("mymaster {mname} {mport} {rname} {r1port}")
    );
    eventually("the other replica follows", Duration::from_secs(15), || {
        let follows = r2.master_port() == Some(r1.port);
        async move { follows.then_some(()) }
    })
    .await;

    // The old master returns and is folded in: one instance, however it names its master.
    m.restart();
    eventually("the old master folds in", Duration::from_secs(30), || {
        let ok = m.role().as_deref() == Some("slave") && m.master_port() == Some(r1.port);
        async move { ok.then_some(()) }
    })
    .await;
    let want = vec![
        ("127.0.0.1".to_owned(), r2port.clone()),
        (mname.clone(), mport.clone()),
    ];
    eventually(
        "the replicas after the failover",
        Duration::from_secs(15),
        || {
            let (a1, want) = (at(1), want.clone());
            async move {
                let mut got = replicas(&a1).await;
                got.sort();
                (got == want).then_some(())
            }
        },
    )
    .await;
}

/// A name is looked up again (at every connect, and while INFO is read): with
/// `announce-hostnames no` the address it is announced at follows the name to where it points now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_moves_is_followed() {
    let _g = serial();
    let name = format!("moving-{}.raftinel.test", std::process::id());
    let m = Redis::start(&["--bind", "127.0.0.1", "127.0.0.2"]);
    let hosts = HostsEntries::add_at("127.0.0.2", &[&name]);
    let mut c = Cluster::new(
        3,
        "default-down-after-ms = 1000\n[sentinel]\nresolve-hostnames = true\n",
    );
    c.start_all();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(10)).await;
    let _logs = c.logs_on_panic(40);
    let at = c.nodes[&1].sentinel.clone();
    let mut s = conn(&at).await;
    let port = m.port.to_string();
    let monitor = ["monitor", "mymaster", name.as_str(), port.as_str(), "2"];
    assert_eq!(sentinel(&mut s, &monitor).await.unwrap(), Value::Okay);
    let shows = |ip: &'static str| {
        let (at, port) = (at.clone(), m.port);
        move || {
            let at = at.clone();
            async move { (addr_by_name(&at).await == Some((ip.to_owned(), port))).then_some(()) }
        }
    };
    eventually(
        "announced at 127.0.0.2",
        Duration::from_secs(10),
        shows("127.0.0.2"),
    )
    .await;
    drop(hosts);
    let _hosts = HostsEntries::add_at("127.0.0.1", &[&name]);
    // The probes' links drop, so each node connects again, looking the name up.
    let _ = m.query(&["CLIENT", "KILL", "TYPE", "normal"]);
    eventually(
        "announced at 127.0.0.1",
        Duration::from_secs(15),
        shows("127.0.0.1"),
    )
    .await;
    let master = sentinel(&mut conn(&at).await, &["master", "mymaster"])
        .await
        .unwrap();
    let fields: Vec<String> = redis::from_redis_value(master).unwrap();
    let flags = fields
        .chunks(2)
        .find(|kv| kv[0] == "flags")
        .map(|kv| kv[1].clone());
    assert_eq!(flags.as_deref(), Some("master"), "{fields:?}");
}
