//! MONITOR, REMOVE, SET and replica discovery.

use super::*;

// Sentinel §2.2: `+monitor` is "%@ quorum <q>"; a new master has Sentinel's defaults and epoch 0.
#[test]
fn monitor_creates_master_with_defaults() {
    let mut log = Log::new();
    let events = log.ok(&monitor("mymaster", 6390, 2));
    assert_eq!(
        kinds_and_payloads(&events),
        [("+monitor", "master mymaster 127.0.0.1 6390 quorum 2")]
    );
    assert_eq!(events[0].master.as_deref(), Some("mymaster"));
    let m = log.mymaster();
    assert_eq!(
        (m.failover_timeout_ms, m.parallel_syncs, m.down_after_ms),
        (180_000, 1, 5000)
    );
    assert_eq!(
        (m.config_epoch, m.epoch, m.failover.as_ref(), m.holder),
        (0, 0, None, None)
    );
    assert_eq!(log.state.masters().count(), 1);
}

// Sentinel §1.4 MONITOR errors, quorum checked before the duplicate name; raftinel adds the
// majority rule (DESIGN invariant 8: quorum >= a majority of voters) and the empty name.
#[test]
fn monitor_refusals() {
    let mut log = Log::new();
    log.ok(&monitor("mymaster", 6390, 2));
    let table = [
        (monitor("", 6390, 2), Refusal::EmptyName),
        (monitor("mymaster", 6390, 0), Refusal::QuorumTooSmall),
        (monitor("new", 6390, 0), Refusal::QuorumTooSmall),
        (
            monitor("mymaster", 6390, 1),
            Refusal::QuorumNotMajority {
                quorum: 1,
                voters: 3,
            },
        ),
        (
            monitor("new", 6390, 4),
            Refusal::QuorumAboveVoters {
                quorum: 4,
                voters: 3,
            },
        ),
        (monitor("mymaster", 6391, 2), Refusal::DuplicateMaster),
        (
            monitor("new", 6390, 2),
            Refusal::AlreadyMonitored {
                addr: "127.0.0.1:6390".to_owned(),
                name: "mymaster".to_owned(),
            },
        ),
        (
            Command::Monitor {
                name: "new".to_owned(),
                addr: addr(1),
                quorum: 2,
                down_after_ms: 0,
            },
            Refusal::InvalidOptionValue {
                option: "down-after-milliseconds".to_owned(),
                value: "0".to_owned(),
            },
        ),
    ];
    for (cmd, refusal) in table {
        log.refused(&cmd, refusal);
    }
}

// Majority = voters/2 + 1, at most voters; a 0-voter context (a bug upstream) counts as 1 voter.
#[test]
fn quorum_rule_by_voters() {
    let table: [(u32, usize, Result<(), Refusal>); 8] = [
        (1, 1, Ok(())),
        (1, 0, Ok(())),
        (
            2,
            0,
            Err(Refusal::QuorumAboveVoters {
                quorum: 2,
                voters: 1,
            }),
        ),
        (2, 3, Ok(())),
        (3, 3, Ok(())),
        (
            2,
            4,
            Err(Refusal::QuorumNotMajority {
                quorum: 2,
                voters: 4,
            }),
        ),
        (3, 5, Ok(())),
        (0, 5, Err(Refusal::QuorumTooSmall)),
    ];
    for (quorum, voters, want) in table {
        assert_eq!(
            check_quorum(quorum, voters),
            want,
            "quorum {quorum} voters {voters}"
        );
    }
}

// Sentinel §1.4: port 0 is accepted, outside 0..=65535 is "ERR Invalid port number.".
#[test]
fn port_range() {
    assert_eq!(Addr::checked("127.0.0.1", 0), Ok(addr(0)));
    assert_eq!(Addr::checked("127.0.0.1", 65535), Ok(addr(65535)));
    assert_eq!(Addr::checked("127.0.0.1", 65536), Err(Refusal::InvalidPort));
    assert_eq!(Addr::checked("127.0.0.1", -1), Err(Refusal::InvalidPort));
    assert_eq!(addr(6390).to_string(), "127.0.0.1:6390");
    assert_eq!(Addr::new("::1", 6390).to_string(), "[::1]:6390");
}

// Sentinel §1.4 REMOVE: `+OK` and `-monitor` "%@", then "No such master" the second time.
#[test]
fn remove() {
    let mut log = Log::monitored();
    let events = log.ok(&Command::Remove {
        name: "mymaster".to_owned(),
    });
    assert_eq!(
        kinds_and_payloads(&events),
        [("-monitor", "master mymaster 127.0.0.1 6390")]
    );
    assert!(log.state.master("mymaster").is_none());
    log.refused(
        &Command::Remove {
            name: "mymaster".to_owned(),
        },
        Refusal::NoSuchMaster,
    );
}

// Sentinel §1.4 SET: options and their value rules; names case-insensitive; empty credentials clear.
#[test]
fn parse_options() {
    let invalid = |o: &str, v: &str| {
        Err(Refusal::InvalidOptionValue {
            option: o.to_owned(),
            value: v.to_owned(),
        })
    };
    let table: Vec<(&str, &str, Result<MasterOption, Refusal>)> = vec![
        (
            "down-after-milliseconds",
            "1000",
            Ok(MasterOption::DownAfterMs(1000)),
        ),
        (
            "DOWN-AFTER-MILLISECONDS",
            "7",
            Ok(MasterOption::DownAfterMs(7)),
        ),
        (
            "down-after-milliseconds",
            "0",
            invalid("down-after-milliseconds", "0"),
        ),
        (
            "Down-After-Milliseconds",
            "x",
            invalid("Down-After-Milliseconds", "x"),
        ),
        (
            "failover-timeout",
            "60000",
            Ok(MasterOption::FailoverTimeoutMs(60_000)),
        ),
        ("failover-timeout", "-1", invalid("failover-timeout", "-1")),
        ("parallel-syncs", "2", Ok(MasterOption::ParallelSyncs(2))),
        ("parallel-syncs", "0", invalid("parallel-syncs", "0")),
        ("quorum", "3", Ok(MasterOption::Quorum(3))),
        ("quorum", "0", invalid("quorum", "0")),
        ("quorum", "99999999999", invalid("quorum", "99999999999")),
        (
            "auth-pass",
            "hunter2",
            Ok(MasterOption::AuthPass(Some(Secret::new("hunter2")))),
        ),
        ("auth-pass", "", Ok(MasterOption::AuthPass(None))),
        (
            "auth-user",
            "sentinel",
            Ok(MasterOption::AuthUser(Some("sentinel".to_owned()))),
        ),
        ("auth-user", "", Ok(MasterOption::AuthUser(None))),
        ("tls", "yes", Ok(MasterOption::Tls(true))),
        (
            "min-failover-interval",
            "600000",
            Ok(MasterOption::MinFailoverIntervalMs(600_000)),
        ),
        (
            "MIN-FAILOVER-INTERVAL",
            "0",
            Ok(MasterOption::MinFailoverIntervalMs(0)),
        ),
        (
            "min-failover-interval",
            "-1",
            invalid("min-failover-interval", "-1"),
        ),
        (
            "min-failover-interval",
            "",
            invalid("min-failover-interval", ""),
        ),
        ("TLS", "No", Ok(MasterOption::Tls(false))),
        ("tls", "true", invalid("tls", "true")),
        ("tls", "", invalid("tls", "")),
        (
            "foo",
            "2",
            Err(Refusal::UnknownOption {
                option: "foo".to_owned(),
            }),
        ),
        (
            "notification-script",
            "/x.sh",
            Ok(MasterOption::NotificationScript(Some("/x.sh".to_owned()))),
        ),
        (
            "Notification-Script",
            "",
            Ok(MasterOption::NotificationScript(None)),
        ),
        (
            "client-reconfig-script",
            "/y.sh",
            Ok(MasterOption::ClientReconfigScript(Some("/y.sh".to_owned()))),
        ),
        (
            "client-reconfig-script",
            "",
            Ok(MasterOption::ClientReconfigScript(None)),
        ),
        (
            "reconfig-script",
            "/y.sh",
            Err(Refusal::UnknownOption {
                option: "reconfig-script".to_owned(),
            }),
        ),
    ];
    for (option, value, want) in table {
        assert_eq!(parse_option(option, value), want, "{option} {value}");
    }
}

// Sentinel §2.2 `+set` "%@ <option> <value>", one per option, auth-pass shown as ******.
#[test]
fn set_applies_every_option_with_one_event_each() {
    let mut log = Log::monitored();
    let events = log.ok(&set(&[
        ("down-after-milliseconds", "1000"),
        ("Failover-Timeout", "60000"),
        ("parallel-syncs", "3"),
        ("quorum", "3"),
        ("auth-user", "sentinel"),
        ("auth-pass", "hunter2"),
    ]));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+set",
                "master mymaster 127.0.0.1 6390 down-after-milliseconds 1000"
            ),
            (
                "+set",
                "master mymaster 127.0.0.1 6390 failover-timeout 60000"
            ),
            ("+set", "master mymaster 127.0.0.1 6390 parallel-syncs 3"),
            ("+set", "master mymaster 127.0.0.1 6390 quorum 3"),
            ("+set", "master mymaster 127.0.0.1 6390 auth-user sentinel"),
            ("+set", "master mymaster 127.0.0.1 6390 auth-pass ******"),
        ]
    );
    let m = log.mymaster();
    assert_eq!(
        (
            m.down_after_ms,
            m.failover_timeout_ms,
            m.parallel_syncs,
            m.quorum
        ),
        (1000, 60_000, 3, 3)
    );
    assert_eq!(m.auth_user.as_deref(), Some("sentinel"));
    assert_eq!(m.auth_pass.as_ref().map(Secret::expose), Some("hunter2"));
    // An empty value clears a credential.
    log.ok(&set(&[("auth-pass", ""), ("auth-user", "")]));
    assert_eq!(
        (
            log.mymaster().auth_pass.as_ref(),
            log.mymaster().auth_user.as_ref()
        ),
        (None, None)
    );
}

// raftinel's `tls` option (issue 10): yes/no as Redis writes its booleans, announced by `+set`.
#[test]
fn set_tls_option() {
    let mut log = Log::monitored();
    assert!(!log.mymaster().tls);
    let events = log.ok(&set(&[("tls", "yes")]));
    assert_eq!(
        kinds_and_payloads(&events),
        [("+set", "master mymaster 127.0.0.1 6390 tls yes")]
    );
    assert!(log.mymaster().tls);
    log.ok(&set(&[("tls", "no")]));
    assert!(!log.mymaster().tls);
}

// Issue 11 §6: the operator's min-replicas settings live in the log; Redis's defaults until set;
// `min-replicas-to-write` 0 up to one below the fence, `min-replicas-max-lag` at least 1 second.
#[test]
fn min_replicas_options() {
    use crate::topology::master::{MAX_MIN_REPLICAS, MAX_MIN_REPLICAS_LAG};
    let invalid = |o: &str, v: &str| {
        Err(Refusal::InvalidOptionValue {
            option: o.to_owned(),
            value: v.to_owned(),
        })
    };
    let to_write = MasterOption::MinReplicasToWrite;
    let lag = MasterOption::MinReplicasMaxLag;
    let table: Vec<(&str, &str, Result<MasterOption, Refusal>)> = vec![
        ("min-replicas-to-write", "0", Ok(to_write(0))),
        ("MIN-REPLICAS-TO-WRITE", "1", Ok(to_write(1))),
        (
            "min-replicas-to-write",
            "2147483646",
            Ok(to_write(MAX_MIN_REPLICAS)),
        ),
        (
            "min-replicas-to-write",
            "2147483647",
            invalid("min-replicas-to-write", "2147483647"),
        ),
        (
            "min-replicas-to-write",
            "-1",
            invalid("min-replicas-to-write", "-1"),
        ),
        (
            "min-replicas-to-write",
            "",
            invalid("min-replicas-to-write", ""),
        ),
        (
            "min-replicas-to-write",
            "1.5",
            invalid("min-replicas-to-write", "1.5"),
        ),
        ("min-replicas-to-write", "+1", Ok(to_write(1))),
        ("min-replicas-max-lag", "5", Ok(lag(5))),
        (
            "Min-Replicas-Max-Lag",
            "2147483647",
            Ok(lag(MAX_MIN_REPLICAS_LAG)),
        ),
        (
            "min-replicas-max-lag",
            "0",
            invalid("min-replicas-max-lag", "0"),
        ),
        (
            "min-replicas-max-lag",
            "2147483648",
            invalid("min-replicas-max-lag", "2147483648"),
        ),
        (
            "min-replicas-max-lag",
            "x",
            invalid("min-replicas-max-lag", "x"),
        ),
        (
            "min-slaves-to-write",
            "1",
            Err(Refusal::UnknownOption {
                option: "min-slaves-to-write".to_owned(),
            }),
        ),
    ];
    for (option, value, want) in table {
        assert_eq!(parse_option(option, value), want, "{option} {value}");
    }

    let mut log = Log::monitored();
    assert_eq!(log.mymaster().min_replicas, MinReplicas::default());
    assert_eq!(
        (
            MinReplicas::default().to_write,
            MinReplicas::default().max_lag_s
        ),
        (0, 10)
    );
    let events = log.ok(&set(&[
        ("min-replicas-to-write", "1"),
        ("min-replicas-max-lag", "5"),
    ]));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+set",
                "master mymaster 127.0.0.1 6390 min-replicas-to-write 1"
            ),
            (
                "+set",
                "master mymaster 127.0.0.1 6390 min-replicas-max-lag 5"
            ),
        ]
    );
    let want = MinReplicas {
        to_write: 1,
        max_lag_s: 5,
    };
    assert_eq!(log.mymaster().min_replicas, want);
    // All or nothing: a bad lag keeps the earlier setting too.
    log.refused(
        &set(&[
            ("min-replicas-to-write", "3"),
            ("min-replicas-max-lag", "0"),
        ]),
        Refusal::InvalidOptionValue {
            option: "min-replicas-max-lag".to_owned(),
            value: "0".to_owned(),
        },
    );
    assert_eq!(log.mymaster().min_replicas, want);
}

// One Redis master under several names gets the most replicas any asks for, within the shortest
// lag among the names that ask for any; one name gets exactly its own.
#[test]
fn strictest_min_replicas() {
    let m = |to_write, max_lag_s| MinReplicas {
        to_write,
        max_lag_s,
    };
    assert_eq!(MinReplicas::strictest([]), MinReplicas::default());
    assert_eq!(MinReplicas::strictest([m(3, 7)]), m(3, 7));
    assert_eq!(MinReplicas::strictest([m(0, 60)]), m(0, 60));
    assert_eq!(MinReplicas::strictest([m(1, 20), m(2, 30)]), m(2, 20));
    assert_eq!(MinReplicas::strictest([m(0, 3), m(1, 20)]), m(1, 20));
    assert_eq!(MinReplicas::strictest([m(1, 20), m(0, 3)]), m(1, 20));
    assert_eq!(MinReplicas::strictest([m(0, 30), m(0, 3)]), m(0, 3));
}

// Sentinel §1.4/§2.2: the script options are stored as given, announced by `+set` with the path,
// and cleared by an empty value (whose `+set` shows the empty value, as Sentinel's "%@ %s %s").
// The path checks (deny-scripts-reconfig, executable) are the API's: they depend on the node.
#[test]
fn set_script_options() {
    let mut log = Log::monitored();
    let events = log.ok(&set(&[
        ("notification-script", "/opt/notify.sh"),
        ("CLIENT-RECONFIG-SCRIPT", "/opt/reconfig.sh"),
    ]));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+set",
                "master mymaster 127.0.0.1 6390 notification-script /opt/notify.sh"
            ),
            (
                "+set",
                "master mymaster 127.0.0.1 6390 client-reconfig-script /opt/reconfig.sh"
            ),
        ]
    );
    let m = log.mymaster();
    assert_eq!(m.notification_script.as_deref(), Some("/opt/notify.sh"));
    assert_eq!(
        m.client_reconfig_script.as_deref(),
        Some("/opt/reconfig.sh")
    );
    let events = log.ok(&set(&[("notification-script", "")]));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "+set",
            "master mymaster 127.0.0.1 6390 notification-script "
        )]
    );
    assert_eq!(log.mymaster().notification_script, None);
    assert_eq!(
        log.mymaster().client_reconfig_script.as_deref(),
        Some("/opt/reconfig.sh")
    );
}

// raftinel SET is all-or-nothing (Sentinel keeps options applied before an error): a bad option
// anywhere refuses the whole command, with no `+set` events.
#[test]
fn set_is_all_or_nothing() {
    let mut log = Log::monitored();
    let table = [
        (
            set(&[("parallel-syncs", "2"), ("foo", "1")]),
            Refusal::UnknownOption {
                option: "foo".to_owned(),
            },
        ),
        (
            set(&[
                ("down-after-milliseconds", "1000"),
                ("down-after-milliseconds", "0"),
            ]),
            Refusal::InvalidOptionValue {
                option: "down-after-milliseconds".to_owned(),
                value: "0".to_owned(),
            },
        ),
        (
            set(&[("auth-pass", "x"), ("quorum", "1")]),
            Refusal::QuorumNotMajority {
                quorum: 1,
                voters: 3,
            },
        ),
        (
            set(&[("quorum", "4")]),
            Refusal::QuorumAboveVoters {
                quorum: 4,
                voters: 3,
            },
        ),
        (
            Command::Set {
                name: "nosuch".to_owned(),
                options: vec![("quorum".to_owned(), "2".to_owned())],
            },
            Refusal::NoSuchMaster,
        ),
    ];
    for (cmd, refusal) in table {
        log.refused(&cmd, refusal);
    }
    // Later options see earlier ones: the last value of a repeated option wins.
    log.ok(&set(&[("parallel-syncs", "2"), ("parallel-syncs", "5")]));
    assert_eq!(log.mymaster().parallel_syncs, 5);
}

// Sentinel §2.2: auth-pass is redacted in `+set`; raftinel also keeps it out of every Debug output.
#[test]
fn auth_pass_never_printed() {
    let mut log = Log::monitored();
    let cmd = set(&[("AUTH-PASS", "hunter2"), ("auth-user", "bob")]);
    let events = log.ok(&cmd);
    let printed = [
        format!("{cmd:?}"),
        format!("{:?}", log.mymaster()),
        format!("{:?}", log.state),
        format!("{events:?}"),
        format!("{}", Secret::new("hunter2")),
        format!("{:?}", parse_option("auth-pass", "hunter2")),
    ];
    for text in printed {
        assert!(!text.contains("hunter2"), "leaked in {text}");
        assert!(text.contains("******"), "no redaction marker in {text}");
    }
    assert!(
        format!("{cmd:?}").contains("bob"),
        "other options stay visible"
    );
}

// Sentinel §2.2 `+slave` "%@" (replica) once per newly discovered replica; an unchanged set is a
// no-op; the set is stored sorted and unique so equal sets give equal states (determinism).
#[test]
fn replicas_discovered() {
    let mut log = Log::new();
    log.ok(&monitor("mymaster", 6390, 2));
    let events = log.ok(&discovered(&[6392, 6391, 6392, 6390]));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+slave",
                "slave 127.0.0.1:6391 127.0.0.1 6391 @ mymaster 127.0.0.1 6390"
            ),
            (
                "+slave",
                "slave 127.0.0.1:6392 127.0.0.1 6392 @ mymaster 127.0.0.1 6390"
            ),
        ]
    );
    let ports: Vec<u16> = log
        .mymaster()
        .replicas
        .iter()
        .map(|r| r.addr.port)
        .collect();
    assert_eq!(ports, [6391, 6392]);
    let before = log.state.clone();
    assert!(log.ok(&discovered(&[6391, 6392])).is_empty());
    assert_eq!(log.state, before);
    // A departed replica is dropped silently; only the new one is announced.
    let events = log.ok(&discovered(&[6393, 6391]));
    assert_eq!(
        kinds_and_payloads(&events),
        [(
            "+slave",
            "slave 127.0.0.1:6393 127.0.0.1 6393 @ mymaster 127.0.0.1 6390"
        )]
    );
    log.refused(
        &Command::ReplicasDiscovered {
            name: "nosuch".to_owned(),
            replicas: vec![],
        },
        Refusal::NoSuchMaster,
    );
}

/// SENTINEL RESET forgets the known replicas and publishes `+reset-master`; raftinel leaves a
/// master with a failover in progress alone (invariant 3: the failover owns its replica set).
#[test]
fn reset_forgets_replicas_but_not_during_a_failover() {
    let mut log = Log::new();
    log.ok(&monitor("mymaster", 6390, 2));
    log.ok(&monitor("other", 6400, 2));
    log.ok(&discovered(&[6391, 6392]));
    let reset = |names: &[&str]| Command::Reset {
        names: names.iter().map(|n| (*n).to_owned()).collect(),
    };
    let events = log.ok(&reset(&["mymaster", "gone"]));
    assert_eq!(
        kinds_and_payloads(&events),
        [("+reset-master", "master mymaster 127.0.0.1 6390")]
    );
    assert!(log.mymaster().replicas.is_empty());
    log.ok(&discovered(&[6391, 6392]));
    log.ok(&started(1, 6391, None));
    assert!(log.ok(&reset(&["mymaster"])).is_empty());
    assert_eq!(
        log.mymaster().replicas.len(),
        2,
        "untouched during a failover"
    );
}

// Issue 11 item 8: one Redis under one name. An address another name monitors, as its master or
// as a known replica, is refused; after REMOVE (or once it is no longer a known replica) it may be
// monitored again.
#[test]
fn an_instance_is_monitored_under_one_name() {
    let mut log = Log::monitored();
    log.ok(&discovered(&[6391]));
    let refused = |port: u16| Refusal::AlreadyMonitored {
        addr: format!("127.0.0.1:{port}"),
        name: "mymaster".to_owned(),
    };
    log.refused(&monitor("other", 6390, 2), refused(6390));
    log.refused(&monitor("other", 6391, 2), refused(6391));
    log.ok(&monitor("other", 6392, 2));
    log.ok(&discovered(&[]));
    log.ok(&monitor("third", 6391, 2));
    assert_eq!(
        log.state.monitored_as(&addr(6391)),
        Some("third"),
        "the replica left mymaster's known set"
    );
    log.ok(&Command::Remove {
        name: "mymaster".to_owned(),
    });
    log.ok(&monitor("again", 6390, 2));
}

// Issue 13: the leader looks again only at the masters an entry changed; grants changing means
// every master (a decision may wait on any grant).
#[test]
fn changed_masters_names_only_the_records_an_entry_replaced() {
    let mut log = Log::monitored();
    log.ok(&monitor("other", 7000, 2));
    let before = log.state.clone();
    assert_eq!(log.state.changed_masters(&before), Some(Default::default()));
    log.ok(&set(&[("down-after-milliseconds", "2000")]));
    assert_eq!(
        log.state.changed_masters(&before),
        Some(["mymaster".to_owned()].into())
    );
    let before = log.state.clone();
    log.ok(&monitor("third", 8000, 2));
    assert_eq!(
        log.state.changed_masters(&before),
        Some(["third".to_owned()].into())
    );
    let before = log.state.clone();
    log.ok(&Command::LeaseGranted { holder: 2 });
    assert_eq!(log.state.changed_masters(&before), None);
}

// Sentinel 7.2's SET master-reboot-down-after-period (Valkey's primary-… alias) and
// rename-command <command> <renamed>: stored in the log, +set with Sentinel's words, renaming a
// command to itself removes it, and Sentinel's checks (not negative; no empty name).
#[test]
fn reboot_period_and_renamed_commands() {
    let mut log = Log::monitored();
    let events = log.ok(&set(&[
        ("master-reboot-down-after-period", "5000"),
        ("rename-command", "CONFIG GUESSME"),
        ("rename-command", "replicaof rof"),
    ]));
    assert_eq!(
        kinds_and_payloads(&events),
        [
            (
                "+set",
                "master mymaster 127.0.0.1 6390 master-reboot-down-after-period 5000"
            ),
            (
                "+set",
                "master mymaster 127.0.0.1 6390 rename-command CONFIG GUESSME"
            ),
            (
                "+set",
                "master mymaster 127.0.0.1 6390 rename-command replicaof rof"
            ),
        ]
    );
    let m = log.mymaster();
    assert_eq!(m.reboot_down_after_ms, 5000);
    assert_eq!(
        m.renamed.iter().collect::<Vec<_>>(),
        [
            (&"config".to_owned(), &"GUESSME".to_owned()),
            (&"replicaof".to_owned(), &"rof".to_owned())
        ]
    );
    log.ok(&set(&[
        ("primary-reboot-down-after-period", "0"),
        ("rename-command", "Config config"),
    ]));
    let m = log.mymaster();
    assert_eq!(m.reboot_down_after_ms, 0);
    assert_eq!(m.renamed.len(), 1, "renamed to itself: removed");
    for (option, value) in [
        ("master-reboot-down-after-period", "-1"),
        ("master-reboot-down-after-period", "x"),
    ] {
        log.refused(
            &set(&[(option, value)]),
            Refusal::InvalidOptionValue {
                option: option.into(),
                value: value.into(),
            },
        );
    }
    log.refused(
        &set(&[("rename-command", "config ")]),
        Refusal::InvalidOptionValue {
            option: "rename-command".into(),
            value: String::new(),
        },
    );
}
