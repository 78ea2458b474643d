//! Unit tests of `config`: every refusal names its key and fix on one line; defaults, flags,
//! join mode and the timing rules.

use super::*;

/// Top-level keys, then a three-node `[peers]` table; `tail` may append more tables.
fn file(top: &str, tail: &str) -> String {
    format!(
        "id = 1\ndata-dir = \"/var/lib/raftinel\"\n{top}\n[peers]\n1 = \"10.0.0.1:26380\"\n2 = \"10.0.0.2:26380\"\n3 = \"10.0.0.3:26380\"\n{tail}"
    )
}

/// The tests describe nodes on 10.0.0.x without certificates, so they opt out of TLS; the rule
/// that refuses that by default has its own tests (`plaintext_on_a_network_*`).
fn on_purpose(args: &ServeArgs) -> ServeArgs {
    ServeArgs {
        insecure: true,
        ..args.clone()
    }
}

fn ok_with(text: &str, args: &ServeArgs) -> (Config, Vec<Warning>) {
    match from_toml_str(text, &on_purpose(args), "/etc/raftinel.toml") {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn ok(text: &str) -> (Config, Vec<Warning>) {
    ok_with(text, &ServeArgs::default())
}

/// The error's message, checked to be one line and to contain every part.
fn err_with(text: &str, args: &ServeArgs, parts: &[&str]) -> String {
    let msg = match from_toml_str(text, &on_purpose(args), "/etc/raftinel.toml") {
        Ok((c, _)) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
    msg
}

fn err(text: &str, parts: &[&str]) -> String {
    err_with(text, &ServeArgs::default(), parts)
}

fn warned(warnings: &[Warning], parts: &[&str]) {
    assert!(
        warnings
            .iter()
            .any(|w| parts.iter().all(|p| w.to_string().contains(p))),
        "no warning with {parts:?} in {warnings:?}"
    );
}

fn addr(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn flags() -> ServeArgs {
    ServeArgs {
        id: Some(2),
        data_dir: Some(PathBuf::from("/data")),
        peers: Some("1=10.0.0.1:26380,2=10.0.0.2:26380,3=10.0.0.3:26380".to_owned()),
        ..ServeArgs::default()
    }
}

// --- defaults, full file, flags --------------------------------------------------------------

#[test]
fn minimal_file_gets_every_default() {
    let (c, w) = ok(&file("", ""));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.id, 1);
    assert_eq!(
        c.listen,
        addr("10.0.0.1:26380"),
        "listen defaults to peers[id]"
    );
    assert_eq!(
        c.sentinel_listen,
        addr("10.0.0.1:26379"),
        "listen's IP, port 26379"
    );
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/raftinel"));
    assert_eq!(c.peers.len(), 3);
    assert_eq!(c.join, None);
    assert_eq!(c.default_down_after_ms, 5000);
    assert!(c.deny_scripts_reconfig, "Sentinel's default: yes");
    assert_eq!(c.raft, RaftTimings::default());
    assert_eq!(c.lease, LeaseTimings::default());
    assert_eq!(c.tls, None);
    let r = c.raft;
    assert_eq!(
        (
            r.heartbeat_ms,
            r.election_min_ms,
            r.election_max_ms,
            r.snapshot_every,
            r.keep_logs,
            r.install_snapshot_timeout_ms
        ),
        (50, 150, 300, 1000, 500, 5000)
    );
    let l = c.lease;
    assert_eq!(
        (
            l.duration_ms,
            l.margin_ms,
            l.renew_interval_ms,
            l.renew_timeout_ms,
            l.fence_budget_ms,
            l.vip_lifetime_s
        ),
        (700, 100, 100, 100, 100, 1)
    );
}

#[test]
fn full_file_is_read() {
    let text = r#"
id = 2
listen = "10.0.0.2:26380"
sentinel-listen = "10.0.0.2:26400"
data-dir = "/srv/raftinel"
default-down-after-ms = 2000
# join = "10.0.0.2:26380"
[peers]
1 = "10.0.0.1:26380"
2 = "10.0.0.2:26380"
3 = "10.0.0.3:26380"
[raft]
heartbeat-ms = 50
election-timeout-min-ms = 200
election-timeout-max-ms = 400
snapshot-every = 2000
keep-logs = 0
install-snapshot-timeout-ms = 3000
[lease]
duration-ms = 900
margin-ms = 50
renew-interval-ms = 150
renew-timeout-ms = 120
fence-budget-ms = 80
vip-lifetime-s = 2
"#;
    let (c, w) = ok(text);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        (c.id, c.listen, c.sentinel_listen),
        (2, addr("10.0.0.2:26380"), addr("10.0.0.2:26400"))
    );
    assert_eq!(c.data_dir, PathBuf::from("/srv/raftinel"));
    assert_eq!(c.default_down_after_ms, 2000);
    assert_eq!(c.peers.get(&3), Some(&addr("10.0.0.3:26380")));
    assert_eq!(
        c.raft,
        RaftTimings {
            heartbeat_ms: 50,
            election_min_ms: 200,
            election_max_ms: 400,
            snapshot_every: 2000,
            keep_logs: 0,
            install_snapshot_timeout_ms: 3000
        }
    );
    assert_eq!(
        c.lease,
        LeaseTimings {
            duration_ms: 900,
            margin_ms: 50,
            renew_interval_ms: 150,
            renew_timeout_ms: 120,
            fence_budget_ms: 80,
            vip_lifetime_s: 2
        }
    );
}

#[test]
fn flags_alone_suffice() {
    let (c, w) = ok_with("", &flags());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        (c.id, c.listen, c.sentinel_listen),
        (2, addr("10.0.0.2:26380"), addr("10.0.0.2:26379"))
    );
    assert_eq!(c.data_dir, PathBuf::from("/data"));
}

#[test]
fn flags_override_the_file() {
    let args = ServeArgs {
        id: Some(3),
        listen: Some("10.0.1.3:7000".to_owned()),
        sentinel_listen: Some("10.0.1.3:7001".to_owned()),
        data_dir: Some(PathBuf::from("/flag")),
        peers: Some("1=10.0.1.1:7000,2=10.0.1.2:7000,3=10.0.1.3:7000".to_owned()),
        ..ServeArgs::default()
    };
    let (c, _) = ok_with(
        &file(
            "listen = \"10.0.0.1:26380\"\nsentinel-listen = \"10.0.0.1:1\"",
            "",
        ),
        &args,
    );
    assert_eq!(c.id, 3);
    assert_eq!(c.listen, addr("10.0.1.3:7000"));
    assert_eq!(c.sentinel_listen, addr("10.0.1.3:7001"));
    assert_eq!(c.data_dir, PathBuf::from("/flag"));
    assert_eq!(c.peers.get(&1), Some(&addr("10.0.1.1:7000")));
}

#[test]
fn load_without_file_uses_flags_and_names_an_unreadable_file() {
    let (c, _) = match load(&on_purpose(&flags())) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.id, 2);
    let args = ServeArgs {
        config: Some(PathBuf::from("/nonexistent/raftinel.toml")),
        ..flags()
    };
    let msg = match load(&args) {
        Ok(_) => panic!("read a missing file"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("/nonexistent/raftinel.toml") && msg.contains("--config"),
        "{msg}"
    );
}

// --- identity and peers ----------------------------------------------------------------------

#[test]
fn id_and_data_dir_are_required() {
    err(
        "data-dir = \"/d\"\n[peers]\n1 = \"10.0.0.1:1\"",
        &["`id`", "--id"],
    );
    err(
        "id = 1\n[peers]\n1 = \"10.0.0.1:1\"",
        &["`data-dir`", "--data-dir"],
    );
    err(
        "id = 1\ndata-dir = \"\"\n[peers]\n1 = \"10.0.0.1:1\"",
        &["`data-dir`"],
    );
    err(
        &file("", "").replace("id = 1", "id = 0"),
        &["`id` = 0", "≥ 1"],
    );
    err_with(
        "",
        &ServeArgs {
            id: Some(0),
            ..flags()
        },
        &["`--id` = 0"],
    );
}

#[test]
fn peers_are_required_unless_joining() {
    err(
        "id = 1\ndata-dir = \"/d\"",
        &["`peers`", "--peers", "--join"],
    );
}

#[test]
fn self_must_be_in_peers() {
    err(
        &file("", "").replace("id = 1", "id = 4"),
        &["`id` = 4", "`peers`", "4=IP:PORT"],
    );
    err_with(
        "",
        &ServeArgs {
            id: Some(9),
            ..flags()
        },
        &["`--id` = 9", "`--peers`", "9=IP:PORT"],
    );
}

#[test]
fn listen_defaults_to_or_must_equal_peers_entry() {
    let (c, _) = ok(&file("listen = \"10.0.0.1:26380\"", ""));
    assert_eq!(c.listen, addr("10.0.0.1:26380"));
    err(
        &file("listen = \"10.0.0.1:26381\"", ""),
        &[
            "`listen` = 10.0.0.1:26381",
            "`peers.1` = 10.0.0.1:26380",
            "same address",
        ],
    );
    let args = ServeArgs {
        listen: Some("10.0.0.2:9".to_owned()),
        ..flags()
    };
    err_with(
        "",
        &args,
        &["`--listen`", "`--peers` entry 2", "same address"],
    );
}

#[test]
fn duplicate_peers_are_refused() {
    err(
        &file("", "").replace("3 = \"10.0.0.3:26380\"", "3 = \"10.0.0.1:26380\""),
        &["`peers.1`", "`peers.3`", "10.0.0.1:26380"],
    );
    err(
        &file("", "").replace("3 = ", "01 = "),
        &["`peers`", "node id 1 is given twice"],
    );
    err(
        &file("", "").replace("3 = ", "abc = "),
        &["`peers.abc`", "node id"],
    );
    err(&file("", "").replace("3 = ", "0 = "), &["`peers.0` = 0"]);
    err(
        "id = 1\ndata-dir = \"/d\"\npeers = \"1=10.0.0.1:1\"",
        &["`peers`", "expected a map", "[peers]"],
    );
}

#[test]
fn parse_peers_accepts_the_documented_form() {
    let p = match parse_peers(" 1=10.0.0.1:26380, 2=[fd00::2]:26380 ,3=10.0.0.3:26380,") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(p.len(), 3);
    assert_eq!(p.get(&2), Some(&addr("[fd00::2]:26380")));
}

#[test]
fn parse_peers_errors_name_the_flag() {
    let e = |s: &str| match parse_peers(s) {
        Ok(p) => panic!("{s} parsed as {p:?}"),
        Err(e) => e.to_string(),
    };
    for (input, parts) in [
        (
            "1=10.0.0.1:1,1=10.0.0.2:1",
            &["`--peers`", "node id 1 is given twice"][..],
        ),
        (
            "1=10.0.0.1:1,2=10.0.0.1:1",
            &["`--peers` entry 1", "`--peers` entry 2", "10.0.0.1:1"],
        ),
        (
            "10.0.0.1:1",
            &["`--peers`", "`10.0.0.1:1`", "ID=", "--peers 1="],
        ),
        ("x=10.0.0.1:1", &["`--peers`", "not a whole number"]),
        ("", &["`--peers`", "no ID=IP:PORT entries"]),
        ("0=10.0.0.1:1", &["`--peers` entry 0"]),
        (
            "1=host1:26380",
            &["`--peers` entry 1", "hostnames are not accepted"],
        ),
        ("1=0.0.0.0:26380", &["`--peers` entry 1", "unspecified"]),
    ] {
        let msg = e(input);
        assert!(!msg.contains('\n'), "{msg}");
        for p in parts {
            assert!(msg.contains(p), "{input}: {msg:?} lacks {p:?}");
        }
    }
}

#[test]
fn bad_addresses_name_key_and_form() {
    err(
        &file("listen = \"redis1:26380\"", ""),
        &["`listen`", "hostnames are not accepted", "IP:PORT"],
    );
    err(
        &file("listen = \"10.0.0.1\"", ""),
        &["`listen`", "the :PORT is missing"],
    );
    err(
        &file("listen = \"10.0.0.1:99999\"", ""),
        &["`listen`", "1 to 65535"],
    );
    err(
        &file("listen = \"10.0.0.1:0\"", ""),
        &["`listen`", "port 0"],
    );
    err(
        &file("listen = \"fd00::1:26380\"", ""),
        &["`listen`", "brackets"],
    );
    err(
        &file("listen = \"0.0.0.0:26380\"", ""),
        &["`listen`", "unspecified"],
    );
    err(
        &file("sentinel-listen = \"localhost\"", ""),
        &["`sentinel-listen`", "IP:PORT"],
    );
    err(
        &file("", "").replace("10.0.0.2:26380", "10.0.0.2"),
        &["`peers.2`", ":PORT is missing"],
    );
    err(&file("join = \"db:1\"", ""), &["`join`", "hostnames"]);
    err_with(
        "",
        &ServeArgs {
            listen: Some("x".to_owned()),
            ..flags()
        },
        &["`--listen`", "IP:PORT"],
    );
    err_with(
        "",
        &ServeArgs {
            peers: Some("2=a:1".to_owned()),
            ..flags()
        },
        &["`--peers` entry 2"],
    );
}

// --- join mode -------------------------------------------------------------------------------

#[test]
fn join_mode() {
    let text = "id = 4\ndata-dir = \"/d\"\nlisten = \"10.0.0.4:26380\"\njoin = \"10.0.0.1:26380\"";
    let (c, w) = ok(text);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.join, Some(addr("10.0.0.1:26380")));
    assert!(c.peers.is_empty());
    assert_eq!(c.listen, addr("10.0.0.4:26380"));
    assert_eq!(c.sentinel_listen, addr("10.0.0.4:26379"));

    let (c, w) = ok_with(
        text,
        &ServeArgs {
            peers: Some("1=10.0.0.1:26380".to_owned()),
            ..ServeArgs::default()
        },
    );
    assert!(c.peers.is_empty(), "peers are ignored when joining");
    warned(&w, &["`--peers` is ignored", "`join`"]);

    err(
        "id = 4\ndata-dir = \"/d\"\njoin = \"10.0.0.1:26380\"",
        &["`listen`", "joining", "--listen"],
    );
    err(
        "id = 4\ndata-dir = \"/d\"\nlisten = \"10.0.0.1:26380\"\njoin = \"10.0.0.1:26380\"",
        &["`join`", "`listen`", "another"],
    );
    let args = ServeArgs {
        id: Some(4),
        data_dir: Some(PathBuf::from("/d")),
        listen: Some("10.0.0.4:1".to_owned()),
        join: Some("10.0.0.4:26379".to_owned()),
        ..ServeArgs::default()
    };
    err_with("", &args, &["`sentinel-listen`", "`--join`"]);
}

// --- sentinel-listen -------------------------------------------------------------------------

#[test]
fn sentinel_listen_must_not_clash() {
    let msg = err(
        &file("", "").replace("10.0.0.1:26380", "10.0.0.1:26379"),
        &["`sentinel-listen`", "`listen`", "defaulted"],
    );
    assert!(msg.contains("port 26379"), "{msg}");
    err(
        &file("sentinel-listen = \"10.0.0.1:26380\"", ""),
        &["`sentinel-listen` = 10.0.0.1:26380", "`listen`"],
    );
    err(
        &file("sentinel-listen = \"10.0.0.2:26380\"", ""),
        &["`sentinel-listen`", "`peers.2`"],
    );
    err_with(
        "",
        &ServeArgs {
            sentinel_listen: Some("10.0.0.3:26380".to_owned()),
            ..flags()
        },
        &["`--sentinel-listen`", "`--peers` entry 3"],
    );
}

#[test]
fn sentinel_listen_on_all_interfaces_is_a_warning() {
    let (c, w) = ok(&file("sentinel-listen = \"0.0.0.0:26379\"", ""));
    assert_eq!(c.sentinel_listen, addr("0.0.0.0:26379"));
    warned(&w, &["`sentinel-listen`", "SENTINEL SENTINELS"]);
}

#[test]
fn odd_cluster_sizes_are_advised() {
    let (_, w) = ok_with(
        "",
        &ServeArgs {
            peers: Some("2=10.0.0.2:1".to_owned()),
            ..flags()
        },
    );
    warned(&w, &["single node"]);
    let (_, w) = ok_with(
        "",
        &ServeArgs {
            peers: Some("1=10.0.0.1:1,2=10.0.0.2:1".to_owned()),
            ..flags()
        },
    );
    warned(&w, &["2 nodes", "odd"]);
}

// --- TOML errors -----------------------------------------------------------------------------

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    err(
        &file("idd = 1", ""),
        &[
            "/etc/raftinel.toml",
            "line 3",
            "`idd`",
            "unknown key",
            "kebab-case",
        ],
    );
    err(
        &file("", "[raft]\nheartbeat = 50"),
        &["/etc/raftinel.toml", "`raft.heartbeat`", "heartbeat-ms"],
    );
    err(&file("", "[lease]\nduration = 5"), &["`lease.duration`"]);
    err(
        &file("", "[tls]\ncertificate = \"x\""),
        &["`tls.certificate`"],
    );
    err(
        &file("", "[raf]\nheartbeat-ms = 50"),
        &["`raf`", "unknown key"],
    );
    err(&file("data_dir = \"/x\"", ""), &["`data_dir`"]);
}

#[test]
fn wrong_types_and_syntax_name_the_key() {
    err(
        &file("", "").replace("id = 1", "id = \"1\""),
        &["/etc/raftinel.toml", "line 1", "`id`", "without quotes"],
    );
    err(
        &file("", "[raft]\nheartbeat-ms = -5"),
        &["`raft.heartbeat-ms`", "-5"],
    );
    err(
        &file("", "").replace("2 = \"10.0.0.2:26380\"", "2 = 5"),
        &["`peers.2`", "quote"],
    );
    err(&file("id = 2", ""), &["`id`", "duplicate key"]);
    err(
        &file("", "[raft]\nheartbeat-ms = "),
        &["`raft.heartbeat-ms`", "TOML"],
    );
}

// Sentinel §5.1 `deny-scripts-reconfig yes|no`, default yes; here a TOML boolean.
#[test]
fn deny_scripts_reconfig() {
    let (c, _) = ok(&file("deny-scripts-reconfig = false", ""));
    assert!(!c.deny_scripts_reconfig);
    let (c, _) = ok(&file("deny-scripts-reconfig = true", ""));
    assert!(c.deny_scripts_reconfig);
    err(
        &file("deny-scripts-reconfig = \"no\"", ""),
        &["`deny-scripts-reconfig`", "true or false"],
    );
    err(
        &file("", "[raft]\ndeny-scripts-reconfig = false"),
        &["`raft.deny-scripts-reconfig`", "unknown key"],
    );
}

// --- timing rules ----------------------------------------------------------------------------

#[test]
fn raft_timing_rules() {
    err(
        &file("", "[raft]\nheartbeat-ms = 0"),
        &["`raft.heartbeat-ms` = 0", "≥ 1", "default is 50"],
    );
    err(
        &file("", "[raft]\nheartbeat-ms = 150"),
        &[
            "`raft.heartbeat-ms`",
            "3 × 150 = 450",
            "`raft.election-timeout-min-ms` = 150",
            "lower the heartbeat",
        ],
    );
    err(
        &file("", "[raft]\nelection-timeout-min-ms = 300"),
        &[
            "`raft.election-timeout-min-ms` = 300",
            "`raft.election-timeout-max-ms` = 300",
            "raise the max",
        ],
    );
    err(
        &file("", "[raft]\nsnapshot-every = 0"),
        &["`raft.snapshot-every` = 0", "default is 1000"],
    );
    err(
        &file("", "[raft]\ninstall-snapshot-timeout-ms = 50"),
        &["`raft.install-snapshot-timeout-ms` = 50", "≥ 100"],
    );
    let (_, w) = ok(&file("", "[raft]\ninstall-snapshot-timeout-ms = 500"));
    warned(&w, &["`raft.install-snapshot-timeout-ms` = 500"]);
    let (c, w) = ok(&file("", "[raft]\nkeep-logs = 0"));
    assert_eq!(c.raft.keep_logs, 0);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn lease_timing_rules() {
    let msg = err(
        &file("", "[lease]\nrenew-timeout-ms = 250"),
        &["raise lease.duration-ms"],
    );
    assert!(
        msg.starts_with(
            "lease.renew-interval-ms (R) + 2 × lease.renew-timeout-ms (T) + lease.fence-budget-ms (F) = 100 + 2 × 250 + 100 = 700 \
             must be ≤ lease.duration-ms (L) − lease.margin-ms (m) = 700 − 100 = 600"
        ),
        "{msg}"
    );
    err(
        &file("", "[lease]\nduration-ms = 50\nmargin-ms = 100"),
        &["= 50 − 100 = -50"],
    );
    err(
        &file("", "[lease]\nrenew-interval-ms = 0"),
        &["`lease.renew-interval-ms` = 0"],
    );
    err(
        &file("", "[lease]\nrenew-timeout-ms = 0"),
        &["`lease.renew-timeout-ms` = 0"],
    );
    err(
        &file("", "[lease]\nvip-lifetime-s = 0"),
        &["`lease.vip-lifetime-s` = 0", "seconds"],
    );
    err(
        &file("default-down-after-ms = 750", ""),
        &[
            "lease.duration-ms (L) + lease.margin-ms (m) = 700 + 100 = 800",
            "`default-down-after-ms` = 750",
            "at least 800",
        ],
    );
    let (_, w) = ok(&file("", "[lease]\nmargin-ms = 0\nfence-budget-ms = 0"));
    warned(&w, &["`lease.margin-ms` = 0"]);
    warned(&w, &["`lease.fence-budget-ms` = 0"]);
}

#[test]
fn risky_timings_are_warnings() {
    let (c, w) = ok(&file(
        "default-down-after-ms = 900",
        "[raft]\nelection-timeout-max-ms = 800",
    ));
    assert_eq!(c.default_down_after_ms, 900);
    warned(
        &w,
        &[
            "2 × `raft.election-timeout-max-ms` = 2 × 800 = 1600",
            "`default-down-after-ms` + 650 = 1550",
        ],
    );
    warned(
        &w,
        &[
            "`lease.vip-lifetime-s` = 1",
            "`default-down-after-ms` = 900",
        ],
    );
}

#[test]
fn timing_check_down_after_for_sentinel_set() {
    let (c, _) = ok(&file("", ""));
    assert!(matches!(c.timing_check_down_after(1000).as_deref(), Ok([])));
    assert!(
        matches!(c.timing_check_down_after(800).as_deref(), Ok([_])),
        "V = 1 s > 800 ms warns"
    );
    let msg = match c.timing_check_down_after(799) {
        Ok(w) => panic!("accepted: {w:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("`down-after-milliseconds` = 799") && msg.contains("700 + 100 = 800"),
        "{msg}"
    );
    let fast = "[lease]\nduration-ms = 300\nmargin-ms = 50\nrenew-interval-ms = 50\nrenew-timeout-ms = 50\nfence-budget-ms = 50\n[raft]\nheartbeat-ms = 100\nelection-timeout-min-ms = 300\nelection-timeout-max-ms = 600";
    let (c, _) = ok(&file("default-down-after-ms = 1000", fast));
    match c.timing_check_down_after(400) {
        Ok(w) => warned(
            &w,
            &["2 × 600 = 1200", "`down-after-milliseconds` + 650 = 1050"],
        ),
        Err(e) => panic!("{e}"),
    }
}

// --- TLS -------------------------------------------------------------------------------------

/// Three empty files in a fresh temp dir, removed on drop.
struct TlsDir(PathBuf);

impl TlsDir {
    fn new(name: &str) -> TlsDir {
        let dir =
            std::env::temp_dir().join(format!("raftinel-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(dir.join(f), "").unwrap_or_else(|e| panic!("{e}"));
        }
        TlsDir(dir)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TlsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_needs_all_three_existing_files() {
    let dir = TlsDir::new("all");
    let table = |cert: &PathBuf, key: &PathBuf, ca: &PathBuf| {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"",
            cert.display(),
            key.display(),
            ca.display()
        )
    };
    let (c, _) = ok(&file(
        "",
        &table(
            &dir.path("cert.pem"),
            &dir.path("key.pem"),
            &dir.path("ca.pem"),
        ),
    ));
    assert_eq!(
        c.tls,
        Some(TlsFiles {
            cert: dir.path("cert.pem"),
            key: dir.path("key.pem"),
            ca: dir.path("ca.pem")
        })
    );

    let missing = dir.path("nope.pem");
    let missing_s = missing.display().to_string();
    err(
        &file(
            "",
            &table(&dir.path("cert.pem"), &missing, &dir.path("ca.pem")),
        ),
        &["`tls.key`", &missing_s],
    );
    err(
        &file(
            "",
            &table(&dir.0, &dir.path("key.pem"), &dir.path("ca.pem")),
        ),
        &["`tls.cert`", "not a regular file"],
    );

    // Flags override the file's (broken) paths.
    let args = ServeArgs {
        tls_key: Some(dir.path("key.pem")),
        ..ServeArgs::default()
    };
    let (c, _) = ok_with(
        &file(
            "",
            &table(&dir.path("cert.pem"), &missing, &dir.path("ca.pem")),
        ),
        &args,
    );
    assert_eq!(c.tls.map(|t| t.key), Some(dir.path("key.pem")));
    let args = ServeArgs {
        tls_ca: Some(missing.clone()),
        ..args
    };
    err_with(
        &file(
            "",
            &table(
                &dir.path("cert.pem"),
                &dir.path("key.pem"),
                &dir.path("ca.pem"),
            ),
        ),
        &args,
        &["`--tls-ca`", &missing_s],
    );
}

#[test]
fn tls_partial_names_the_missing_key() {
    err(
        &file("", "[tls]\ncert = \"/c\"\nca = \"/a\""),
        &["`tls.key` (`--tls-key`) is missing", "`tls.cert` is set"],
    );
    err(
        &file("", "[tls]\nkey = \"/k\""),
        &["`tls.cert`", "missing", "`tls.key` is set"],
    );
    err_with(
        "",
        &ServeArgs {
            tls_cert: Some(PathBuf::from("/c")),
            tls_key: Some(PathBuf::from("/k")),
            ..flags()
        },
        &["`tls.ca` (`--tls-ca`) is missing", "`--tls-cert` is set"],
    );
    let (c, _) = ok(&file("", "[tls]"));
    assert_eq!(c.tls, None, "an empty [tls] table means no TLS");
}

#[test]
fn warning_displays_its_text() {
    assert_eq!(Warning("careful".to_owned()).to_string(), "careful");
}

// --- docs/configuration.md stays true ----------------------------------------------------------------------------

/// Every key the parser takes, table by table, is in the reference: the parser's own list (serde
/// names the expected fields when it meets an unknown one), so a new key cannot go undocumented.
#[test]
fn every_config_key_is_in_the_reference() {
    let doc = include_str!("../../docs/configuration.md");
    let tables = [
        ("", ""),
        ("[raft]\n", "raft."),
        ("[lease]\n", "lease."),
        ("[tls]\n", "tls."),
        ("[redis-tls]\n", "redis-tls."),
        ("[sentinel]\n", "sentinel."),
        ("[masters.m]\n", "masters.NAME."),
    ];
    for (table, prefix) in tables {
        let text = format!("{table}no-such-key = 1\n");
        let e = toml::from_str::<super::file::FileConfig>(&text)
            .err()
            .unwrap_or_else(|| panic!("{table:?}: an unknown key was taken"))
            .message()
            .to_owned();
        let expected = e
            .split_once("expected")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("no list of fields in {e:?}"));
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!keys.is_empty(), "{e}");
        for key in keys {
            assert!(
                doc.contains(&format!("`{prefix}{key}")),
                "`{prefix}{key}` is not in docs/configuration.md"
            );
        }
    }
}

#[test]
fn documented_example_and_benchmark_timings_are_valid() {
    let doc = include_str!("../../docs/configuration.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no toml block in docs/configuration.md"));
    let (c, w) = ok(example);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.listen, addr("10.0.0.1:26380"));

    let bench = "[raft]\nheartbeat-ms = 20\nelection-timeout-min-ms = 60\nelection-timeout-max-ms = 120\n\
                 [lease]\nduration-ms = 200\nmargin-ms = 50\nrenew-interval-ms = 30\nrenew-timeout-ms = 30\nfence-budget-ms = 30";
    let (c, w) = ok(&file("default-down-after-ms = 300", bench));
    assert_eq!(w.len(), 1, "only the VIP warning: {w:?}");
    warned(&w, &["`lease.vip-lifetime-s`"]);
    err(
        &file("default-down-after-ms = 300", ""),
        &["`default-down-after-ms` = 300"],
    );
    assert!(c.timing_check_down_after(249).is_err());
}

// Issue 5 §1: `[masters.NAME] vip` and `vip-interface` per host; a bad VIP names the key and
// shows the form.
#[test]
fn master_vip_and_interface_from_the_file() {
    let (c, _) = ok(&file(
        "vip-allowed = [\"10.77.0.0/16\"]",
        "[masters.mymaster]\nvip = \"10.77.0.200/24\"\nvip-interface = \"eth0\"",
    ));
    assert_eq!(
        c.vips.get("mymaster").map(|v| v.to_string()).as_deref(),
        Some("10.77.0.200/24")
    );
    assert_eq!(
        c.vip_interfaces.get("mymaster").map(String::as_str),
        Some("eth0")
    );
    for bad in [
        "vip.example",
        "10.77.0.300/24",
        "fe80::1/64",
        "10.77.0.200/33",
        "10.77.0.0/24",
    ] {
        err(
            &file("", &format!("[masters.mymaster]\nvip = \"{bad}\"")),
            &["`masters.mymaster.vip`", bad, "10.77.0.200/24"],
        );
    }
}

/// Invariant 11 / issue 10: "a node configured with a non-loopback listen address and neither
/// certificates nor `insecure = true` refuses to start … with a message that names both fixes".
#[test]
fn plaintext_on_a_network_address_is_refused_naming_both_fixes() {
    let msg = match from_toml_str(&file("", ""), &ServeArgs::default(), "/etc/raftinel.toml") {
        Ok((c, _)) => panic!("expected a refusal, got {c:?}"),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "{msg}");
    for part in [
        "10.0.0.1:26380",
        "raftinel certs",
        "[tls]",
        "insecure = true",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn plaintext_on_a_network_with_insecure_runs_and_says_so() {
    let (c, _) = ok(&file("insecure = true", ""));
    assert!(c.security.insecure);
    assert_eq!(c.security.admin_token, None);
}

#[test]
fn plaintext_on_loopback_needs_no_opt_out() {
    let text = "id = 1\ndata-dir = \"/d\"\n[peers]\n1 = \"127.0.0.1:26380\"\n2 = \"127.0.0.1:26381\"\n3 = \"127.0.0.1:26382\"\n";
    match from_toml_str(text, &ServeArgs::default(), "/etc/raftinel.toml") {
        Ok((c, _)) => assert!(!c.security.insecure),
        Err(e) => panic!("loopback plaintext refused: {e}"),
    }
}

#[test]
fn admin_token_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("token");
    std::fs::write(&good, format!("{}\n", "a1".repeat(20))).unwrap();
    let (c, _) = ok(&file(
        &format!("admin-token-file = \"{}\"", good.display()),
        "",
    ));
    assert_eq!(
        c.security.admin_token.as_deref(),
        Some("a1".repeat(20).as_str())
    );
    assert!(
        !format!("{c:?}").contains("a1a1"),
        "the token must not reach Debug output"
    );
    let short = dir.path().join("short");
    std::fs::write(&short, "abc").unwrap();
    err(
        &file(&format!("admin-token-file = \"{}\"", short.display()), ""),
        &["`admin-token-file`", "at least 32"],
    );
}

// --- [sentinel]: users, roles, bounds, TLS listener --------------------------------------------

#[test]
fn a_bare_password_is_an_admin_and_a_table_sets_the_role() {
    let (c, _) = ok(&file(
        "",
        "[sentinel]\nrequirepass = \"p\"\n[sentinel.users]\nops = \"o\"\napp = { password = \"a\", role = \"client\" }\nboss = { password = \"b\", role = \"admin\" }\nold = { password = \"x\" }\n",
    ));
    let a = &c.sentinel_auth;
    assert_eq!(a.requirepass.as_deref(), Some("p"));
    let role = |n: &str| a.users.get(n).map(|u| (u.password.as_str(), u.role));
    assert_eq!(role("ops"), Some(("o", SentinelRole::Admin)));
    assert_eq!(role("app"), Some(("a", SentinelRole::Client)));
    assert_eq!(role("boss"), Some(("b", SentinelRole::Admin)));
    assert_eq!(role("old"), Some(("x", SentinelRole::Admin)));
    assert!(a.required());
    // The Debug form names roles, never passwords.
    let shown = format!("{a:?}");
    assert!(
        shown.contains("Client") && !shown.contains("\"a\""),
        "{shown}"
    );
}

#[test]
fn bad_users_are_refused_with_the_key() {
    err(
        &file(
            "",
            "[sentinel.users]\napp = { password = \"a\", role = \"root\" }\n",
        ),
        &["`sentinel.users.app`", "\"admin\"", "\"client\""],
    );
    err(
        &file(
            "",
            "[sentinel.users]\napp = { password = \"\", role = \"client\" }\n",
        ),
        &["`sentinel.users.app`", "password is empty"],
    );
    err(
        &file("", "[sentinel.users]\ndefault = \"x\"\n"),
        &["`sentinel.users.default`", "`sentinel.requirepass`"],
    );
    err(
        &file(
            "",
            "[sentinel.users]\napp = { password = \"a\", rights = \"all\" }\n",
        ),
        &["sentinel.users"],
    );
}

#[test]
fn no_credentials_means_protected_mode() {
    let (c, _) = ok(&file("", ""));
    assert!(!c.sentinel_auth.required());
    assert_eq!(c.sentinel_limits, SentinelLimits::default());
    assert_eq!(c.sentinel_tls, None);
}

#[test]
fn hostnames_are_off_unless_the_sentinel_table_turns_them_on() {
    let (c, _) = ok(&file("", ""));
    assert_eq!(c.hostnames, crate::redis::HostnameSettings::default());
    let (c, _) = ok(&file(
        "",
        "[sentinel]\nresolve-hostnames = true\nannounce-hostnames = true\n",
    ));
    assert!(c.hostnames.resolve && c.hostnames.announce);
    err(
        &file("", "[sentinel]\nresolve-hostnames = \"yes\"\n"),
        &["resolve-hostnames"],
    );
}

#[test]
fn sentinel_bounds_have_defaults_and_refuse_zero() {
    let d = SentinelLimits::default();
    assert_eq!(
        (d.maxclients_per_ip, d.auth_timeout_s, d.timeout_s),
        (256, 10, 0)
    );
    assert_eq!((d.max_subscriptions, d.max_channel_length), (256, 256));
    let (c, _) = ok(&file(
        "",
        "[sentinel]\nmaxclients-per-ip = 8\nauth-timeout = 3\ntimeout = 60\nmax-subscriptions = 16\nmax-channel-length = 64\n",
    ));
    assert_eq!(
        c.sentinel_limits,
        SentinelLimits {
            maxclients_per_ip: 8,
            auth_timeout_s: 3,
            timeout_s: 60,
            max_subscriptions: 16,
            max_channel_length: 64,
        }
    );
    for key in [
        "maxclients-per-ip",
        "auth-timeout",
        "max-subscriptions",
        "max-channel-length",
    ] {
        err(
            &file("", &format!("[sentinel]\n{key} = 0\n")),
            &[&format!("`sentinel.{key}` = 0"), "at least 1"],
        );
    }
    // timeout = 0 is Redis's "never".
    assert_eq!(
        ok(&file("", "[sentinel]\ntimeout = 0\n"))
            .0
            .sentinel_limits
            .timeout_s,
        0
    );
}

#[test]
fn the_tls_port_needs_the_node_certificate_and_a_port_of_its_own() {
    err(
        &file("", "[sentinel]\ntls-port = 26390\n"),
        &["`sentinel.tls-port` = 26390", "`tls.cert`"],
    );
    let dir = TlsDir::new("sentinel");
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        dir.path("cert.pem").display(),
        dir.path("key.pem").display(),
        dir.path("ca.pem").display()
    );
    let (c, _) = ok(&file(
        "sentinel-listen = \"10.0.0.1:26379\"",
        &format!("{tls}[sentinel]\ntls-port = 26390\ntls-auth-clients = \"optional\"\n"),
    ));
    assert_eq!(
        c.sentinel_tls,
        Some(SentinelTls {
            listen: addr("10.0.0.1:26390"),
            auth_clients: TlsAuthClients::Optional,
        })
    );
    let (c, _) = ok(&file("", &format!("{tls}[sentinel]\ntls-port = 26390\n")));
    assert_eq!(
        c.sentinel_tls.map(|t| t.auth_clients),
        Some(TlsAuthClients::No)
    );
    err(
        &file(
            "sentinel-listen = \"10.0.0.1:26379\"",
            &format!("{tls}[sentinel]\ntls-port = 26379\n"),
        ),
        &["`sentinel.tls-port` = 26379", "a port of its own"],
    );
    err(
        &file(
            "",
            &format!("{tls}[sentinel]\ntls-port = 26390\ntls-auth-clients = \"maybe\"\n"),
        ),
        &["`sentinel.tls-auth-clients`", "\"optional\""],
    );
}

// Invariant 12: `vip-allowed` (or `--vip-allowed`) lists the subnets this node may add a VIP in;
// absent means none, so a `[masters.NAME] vip` then names the key and the fix.
#[test]
fn vip_allowed_from_file_and_flag() {
    let (c, _) = ok(&file("", ""));
    assert!(c.vip_allowed.is_empty(), "secure by default");
    let (c, _) = ok(&file(
        "vip-allowed = [\"10.77.0.0/16\", \"192.168.7.0/24\"]",
        "",
    ));
    let shown: Vec<String> = c.vip_allowed.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.77.0.0/16", "192.168.7.0/24"]);
    let args = ServeArgs {
        vip_allowed: Some("10.1.0.0/16, 10.2.0.0/16".to_owned()),
        ..flags()
    };
    let (c, _) = ok_with(&file("vip-allowed = [\"10.77.0.0/16\"]", ""), &args);
    let shown: Vec<String> = c.vip_allowed.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.1.0.0/16", "10.2.0.0/16"], "the flag wins");

    err(
        &file("vip-allowed = [\"10.77.1.0/16\"]", ""),
        &[
            "`vip-allowed`",
            "10.77.1.0/16",
            "host bits are set; the subnet is 10.77.0.0/16",
        ],
    );
    err_with(
        &file("", ""),
        &ServeArgs {
            vip_allowed: Some("10.0.0.0".to_owned()),
            ..flags()
        },
        &["`--vip-allowed`", "the /PREFIX is missing"],
    );
    err(
        &file("vip-allowed = \"10.0.0.0/8\"", ""),
        &["`vip-allowed`", "write a list in brackets"],
    );
    let vip = "[masters.mymaster]\nvip = \"10.77.0.200/24\"";
    err(
        &file("", vip),
        &[
            "`masters.mymaster.vip`",
            "`vip-allowed` is empty",
            "vip-allowed = [\"10.77.0.0/24\"]",
        ],
    );
    err(
        &file("vip-allowed = [\"10.78.0.0/16\"]", vip),
        &[
            "`masters.mymaster.vip`",
            "outside this node's `vip-allowed` (10.78.0.0/16)",
        ],
    );
}

// Invariant 12: a node's own `[masters.NAME]` scripts (run whatever deny-scripts-reconfig says)
// must be absolute paths of executable files, checked at load as Sentinel checks its config's.
#[test]
fn master_scripts_from_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("notify.sh");
    std::fs::write(&exe, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let (exe, plain) = (exe.display().to_string(), plain.display().to_string());
    let (c, _) = ok(&file(
        "",
        &format!(
            "[masters.m]\nnotification-script = \"{exe}\"\n[masters.n]\nvip-interface = \"eth0\""
        ),
    ));
    assert_eq!(
        c.scripts.get("m"),
        Some(&MasterScripts {
            notification: Some(exe.clone()),
            client_reconfig: None
        })
    );
    assert!(!c.scripts.contains_key("n"), "no script, no entry");
    for (path, why) in [
        (plain.as_str(), "not an executable regular file"),
        ("notify.sh", "not an absolute path"),
        ("/nonexistent/x.sh", "not an executable regular file"),
    ] {
        err(
            &file(
                "",
                &format!("[masters.m]\nclient-reconfig-script = \"{path}\""),
            ),
            &["`masters.m.client-reconfig-script`", path, why, "chmod +x"],
        );
    }
}

// Issue 10 §5: `[redis-tls]` files are read at load; a missing or wrong file names its key and
// the fix; a certificate needs its key. `[masters.NAME] tls = true` turns TLS on for NAME here.
#[test]
fn redis_tls_files_and_per_master_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["raftinel".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), cert.pem()).unwrap();
    std::fs::write(path("client.pem"), cert.pem()).unwrap();
    std::fs::write(path("client.key"), key.serialize_pem()).unwrap();
    let table = |ca: &str, cert: &str, key: &str| {
        format!("[redis-tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n[masters.a]\ntls = true\n[masters.b]\ntls = false\n")
    };

    let (c, _) = ok(&file("", ""));
    assert_eq!(c.redis_tls, crate::redis::RedisTls::default());
    assert!(c.tls_masters.is_empty());

    let (c, _) = ok(&file(
        "",
        &table(&path("ca.pem"), &path("client.pem"), &path("client.key")),
    ));
    assert!(c.redis_tls.has_ca() && c.redis_tls.has_client_cert());
    assert_eq!(c.tls_masters, BTreeSet::from(["a".to_string()]));
    // Only a CA: server authentication without a client certificate.
    let (c, _) = ok(&file(
        "",
        &format!("[redis-tls]\nca = \"{}\"", path("ca.pem")),
    ));
    assert!(c.redis_tls.has_ca() && !c.redis_tls.has_client_cert());

    err(
        &file(
            "",
            &table(&path("nope.pem"), &path("client.pem"), &path("client.key")),
        ),
        &[
            "`redis-tls.ca`",
            "nope.pem",
            "cannot read it",
            "tls-ca-cert-file",
        ],
    );
    // The key given as the CA, the certificate given as the key.
    err(
        &file(
            "",
            &table(
                &path("client.key"),
                &path("client.pem"),
                &path("client.key"),
            ),
        ),
        &["`redis-tls.ca`", "no PEM certificate"],
    );
    err(
        &file(
            "",
            &table(&path("ca.pem"), &path("client.pem"), &path("client.pem")),
        ),
        &["`redis-tls.key`", "no PEM private key"],
    );
    err(
        &file(
            "",
            &format!("[redis-tls]\ncert = \"{}\"", path("client.pem")),
        ),
        &["`redis-tls.key` is missing", "`redis-tls.cert`"],
    );
    err(
        &file(
            "",
            &format!("[redis-tls]\nkey = \"{}\"", path("client.key")),
        ),
        &["`redis-tls.cert` is missing"],
    );
    err(
        &file("", "[redis-tls]\ncafile = \"x\""),
        &["`redis-tls.cafile`", "unknown key"],
    );
    err(
        &file("", "[masters.a]\ntls = \"yes\""),
        &["`masters.a.tls`", "true or false"],
    );
}

// Issue 11 §7: the watchdog device is off by default; its timeout defaults to 5 s.
#[test]
fn watchdog_device_is_optional_absolute_and_its_timeout_positive() {
    assert_eq!(ok(&file("", "")).0.watchdog_device, None);
    let (c, _) = ok(&file("watchdog-device = \"/dev/watchdog\"", ""));
    assert_eq!(
        c.watchdog_device,
        Some(crate::lease::watchdog::DeviceConfig {
            path: PathBuf::from("/dev/watchdog"),
            timeout_s: DEFAULT_WATCHDOG_TIMEOUT_S,
        })
    );
    let (c, _) = ok(&file(
        "watchdog-device = \"/dev/watchdog1\"\nwatchdog-timeout-s = 30",
        "",
    ));
    assert_eq!(c.watchdog_device.map(|d| d.timeout_s), Some(30));
    err(
        &file("watchdog-device = \"watchdog\"", ""),
        &["`watchdog-device` = watchdog", "absolute path"],
    );
    err(
        &file(
            "watchdog-device = \"/dev/watchdog\"\nwatchdog-timeout-s = 0",
            "",
        ),
        &["`watchdog-timeout-s` = 0", "at least 1"],
    );
}
