//! A `sentinel.conf` read into what raftinel does with each line: the masters to monitor and
//! their settings, and every other line with why it is ignored or refused. Reads the file as
//! Sentinel writes it when it rewrites its configuration (quoted arguments, `known-replica`,
//! `config-epoch`, …). Pure: no I/O.

/// One master to monitor, and its `sentinel <option> <name> …` lines as SET options, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub line: usize,
    pub name: String,
    pub host: String,
    pub port: u32,
    pub quorum: u32,
    /// `(line, option, value)`; rename-command's two words are one value, as `ctl set` takes it.
    pub options: Vec<(usize, String, String)>,
    /// `known-replica` lines, `(line, host, port)`: raftinel learns replicas from the master's
    /// INFO, so the import checks that it has found these.
    pub known_replicas: Vec<(usize, String, u32)>,
}

/// A line raftinel does not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub text: String,
    pub why: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub masters: Vec<Master>,
    /// Lines that need nothing here, or belong in each node's own config.
    pub ignored: Vec<Skipped>,
    /// Lines raftinel cannot honour: the import says so and exits non-zero.
    pub refused: Vec<Skipped>,
}

/// The per-master options SET takes, as Sentinel's config file names them.
const SET_OPTIONS: [&str; 9] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
    "auth-pass",
    "auth-user",
    "notification-script",
    "client-reconfig-script",
    "master-reboot-down-after-period",
    "primary-reboot-down-after-period",
];

/// `sentinel` lines that need nothing in raftinel, and why.
const NOT_NEEDED: [(&str, &str); 7] = [
    (
        "config-epoch",
        "raftinel keeps its own epochs in the Raft log; clients do not compare them across systems",
    ),
    ("leader-epoch", "raftinel's leader is the Raft leader"),
    (
        "current-epoch",
        "raftinel keeps its own epochs in the Raft log",
    ),
    (
        "known-sentinel",
        "raftinel's sentinels are the members of its Raft cluster",
    ),
    ("myid", "each raftinel node has its own id"),
    (
        "announce-ip",
        "raftinel announces the addresses of its Raft membership",
    ),
    (
        "announce-port",
        "raftinel announces the addresses of its Raft membership",
    ),
];

/// `sentinel` lines that are node settings in raftinel: where to set them instead.
const NODE_SETTINGS: [(&str, &str); 5] = [
    (
        "deny-scripts-reconfig",
        "set `deny-scripts-reconfig` in every node's config",
    ),
    (
        "resolve-hostnames",
        "set `[sentinel] resolve-hostnames = true` in every node's config",
    ),
    (
        "announce-hostnames",
        "set `[sentinel] announce-hostnames = true` in every node's config",
    ),
    (
        "sentinel-user",
        "raftinel's nodes authenticate to each other with mTLS (`raftinel certs`)",
    ),
    (
        "sentinel-pass",
        "raftinel's nodes authenticate to each other with mTLS (`raftinel certs`)",
    ),
];

/// Server directives of a sentinel.conf, and their place in raftinel.
const SERVER: [(&str, &str); 12] = [
    (
        "port",
        "the Sentinel port is `sentinel-listen` in every node's config",
    ),
    (
        "bind",
        "the Sentinel port is `sentinel-listen` in every node's config",
    ),
    (
        "requirepass",
        "set `[sentinel] requirepass` in every node's config",
    ),
    ("user", "set `[sentinel.users]` in every node's config"),
    (
        "tls-port",
        "set `[sentinel] tls-port` and `[tls]` in every node's config",
    ),
    ("daemonize", "systemd runs raftinel (deploy/systemd)"),
    ("pidfile", "systemd runs raftinel (deploy/systemd)"),
    ("supervised", "systemd runs raftinel (deploy/systemd)"),
    ("logfile", "raftinel logs to stderr (the journal)"),
    (
        "loglevel",
        "`SENTINEL CONFIG SET loglevel` on a node, or RUST_LOG",
    ),
    ("dir", "raftinel keeps its state in `data-dir`"),
    (
        "protected-mode",
        "raftinel's Sentinel port lets only loopback clients write without a password",
    ),
];

pub fn parse(text: &str) -> Plan {
    let mut plan = Plan::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let skip = |why: &str| Skipped {
            line,
            text: trimmed.to_owned(),
            why: why.to_owned(),
        };
        let args = match split_args(trimmed) {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => continue,
            Err(why) => {
                plan.refused.push(skip(why));
                continue;
            }
        };
        let directive = args[0].to_ascii_lowercase();
        if directive != "sentinel" {
            match SERVER.iter().find(|(d, _)| *d == directive) {
                Some((_, why)) => plan.ignored.push(skip(why)),
                None if directive.starts_with("tls-") => plan.ignored.push(skip(
                    "set `[tls]` and `[sentinel] tls-port` in every node's config",
                )),
                None => plan
                    .ignored
                    .push(skip("not a Sentinel setting raftinel has")),
            }
            continue;
        }
        match sentinel_line(&mut plan, &args[1..], line) {
            Ok(()) => {}
            Err(Verdict::Ignore(why)) => plan.ignored.push(skip(&why)),
            Err(Verdict::Refuse(why)) => plan.refused.push(skip(&why)),
        }
    }
    plan
}

enum Verdict {
    Ignore(String),
    Refuse(String),
}

fn sentinel_line(plan: &mut Plan, args: &[String], line: usize) -> Result<(), Verdict> {
    let Some(sub) = args.first().map(|s| s.to_ascii_lowercase()) else {
        return Err(Verdict::Refuse("`sentinel` without a directive".to_owned()));
    };
    if let Some((_, why)) = NOT_NEEDED.iter().find(|(d, _)| *d == sub) {
        return Err(Verdict::Ignore((*why).to_owned()));
    }
    if let Some((_, why)) = NODE_SETTINGS.iter().find(|(d, _)| *d == sub) {
        return Err(Verdict::Ignore((*why).to_owned()));
    }
    let refuse = |why: String| Err(Verdict::Refuse(why));
    if sub == "monitor" {
        let [_, name, host, port, quorum] = args else {
            return refuse("`sentinel monitor` takes <name> <host> <port> <quorum>".to_owned());
        };
        let (Ok(port), Ok(quorum)) = (port.parse::<u32>(), quorum.parse::<u32>()) else {
            return refuse("port and quorum must be numbers".to_owned());
        };
        if plan.masters.iter().any(|m| &m.name == name) {
            return refuse(format!("`{name}` is monitored twice in this file"));
        }
        plan.masters.push(Master {
            line,
            name: name.clone(),
            host: host.clone(),
            port,
            quorum,
            options: Vec::new(),
            known_replicas: Vec::new(),
        });
        return Ok(());
    }
    if sub == "known-replica" || sub == "known-slave" {
        let [_, name, host, port] = args else {
            return refuse(format!("`sentinel {sub}` takes <name> <host> <port>"));
        };
        let Ok(port) = port.parse::<u32>() else {
            return refuse("the port must be a number".to_owned());
        };
        return match plan.masters.iter_mut().find(|m| &m.name == name) {
            Some(m) => {
                m.known_replicas.push((line, host.clone(), port));
                Ok(())
            }
            None => Err(Verdict::Ignore(format!(
                "no `sentinel monitor {name}` in this file"
            ))),
        };
    }
    let (option, value) = if sub == "rename-command" {
        let [_, _, cmd, renamed] = args else {
            return refuse("`sentinel rename-command` takes <name> <command> <renamed>".to_owned());
        };
        (sub.clone(), format!("{cmd} {renamed}"))
    } else if SET_OPTIONS.contains(&sub.as_str()) {
        let [_, _, value] = args else {
            return refuse(format!("`sentinel {sub}` takes <name> <value>"));
        };
        (sub.clone(), value.clone())
    } else {
        return refuse(format!("`sentinel {sub}` is not a setting raftinel knows"));
    };
    let name = &args[1];
    match plan.masters.iter_mut().find(|m| &m.name == name) {
        Some(m) => {
            m.options.push((line, option, value));
            Ok(())
        }
        None => refuse(format!(
            "no `sentinel monitor {name}` before it in this file"
        )),
    }
}

/// Redis's `sdssplitargs`, byte for byte: words split on ASCII blanks; a `"` anywhere opens a
/// quoted part with `\n \r \t \b \a \\ \"` and `\xHH` (a raw byte) escapes, a `'` one with `\'`
/// only; a closing quote must be followed by a blank or the end. Words must then be UTF-8 (SET
/// values are text). `Err` says why the line is unusable.
pub fn split_args(line: &str) -> Result<Vec<String>, &'static str> {
    let b = line.as_bytes();
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && blank(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let mut word: Vec<u8> = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let Some(&c) = b.get(i) else {
                if in_double || in_single {
                    return Err("unbalanced quotes");
                }
                break;
            };
            if in_double {
                match (
                    c,
                    b.get(i + 1).copied(),
                    b.get(i + 2).copied(),
                    b.get(i + 3).copied(),
                ) {
                    (b'\\', Some(b'x'), Some(h), Some(l))
                        if hex(h).is_some() && hex(l).is_some() =>
                    {
                        word.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                        i += 3;
                    }
                    (b'\\', Some(e), ..) => {
                        word.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 1;
                    }
                    (b'"', ..) => {
                        if b.get(i + 1).is_some_and(|&n| !blank(n)) {
                            return Err("a closing quote must be followed by a blank");
                        }
                        i += 1;
                        break;
                    }
                    (c, ..) => word.push(c),
                }
            } else if in_single {
                match (c, b.get(i + 1).copied()) {
                    (b'\\', Some(b'\'')) => {
                        word.push(b'\'');
                        i += 1;
                    }
                    (b'\'', _) => {
                        if b.get(i + 1).is_some_and(|&n| !blank(n)) {
                            return Err("a closing quote must be followed by a blank");
                        }
                        i += 1;
                        break;
                    }
                    (c, _) => word.push(c),
                }
            } else {
                match c {
                    c if blank(c) => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    c => word.push(c),
                }
            }
            i += 1;
        }
        out.push(String::from_utf8(word).map_err(|_| "a word that is not UTF-8")?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-sentinel 7.0 writes after a failover (its CONFIG REWRITE), trimmed.
    const REWRITTEN: &str = r#"port 26379
daemonize no
dir "/var/lib/redis"
sentinel monitor mymaster 10.0.0.2 6379 2
sentinel down-after-milliseconds mymaster 5000
sentinel auth-pass mymaster "s3cr\"et"
sentinel rename-command mymaster CONFIG "GUARDED-CONFIG"
# Generated by CONFIG REWRITE
latency-tracking-info-percentiles 50 99 99.9
user default on nopass ~* &* +@all
sentinel myid 5d8b4b1c1d9c0c7a3c2b1a0f9e8d7c6b5a4f3e2d
sentinel config-epoch mymaster 1
sentinel leader-epoch mymaster 1
sentinel current-epoch 1
sentinel known-replica mymaster 10.0.0.1 6379
sentinel known-replica mymaster 10.0.0.3 6379
sentinel known-sentinel mymaster 10.0.0.3 26379 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567
sentinel resolve-hostnames no
sentinel deny-scripts-reconfig yes
sentinel parallel-syncs other 2
sentinel unheard-of mymaster 1
"#;

    #[test]
    fn a_rewritten_config_becomes_monitor_and_set_with_every_other_line_accounted_for() {
        let plan = parse(REWRITTEN);
        assert_eq!(
            plan.masters,
            [Master {
                line: 4,
                name: "mymaster".into(),
                host: "10.0.0.2".into(),
                port: 6379,
                quorum: 2,
                options: vec![
                    (5, "down-after-milliseconds".into(), "5000".into()),
                    (6, "auth-pass".into(), "s3cr\"et".into()),
                    (7, "rename-command".into(), "CONFIG GUARDED-CONFIG".into()),
                ],
                known_replicas: vec![(15, "10.0.0.1".into(), 6379), (16, "10.0.0.3".into(), 6379)],
            }]
        );
        let refused: Vec<usize> = plan.refused.iter().map(|s| s.line).collect();
        assert_eq!(refused, [20, 21], "{:?}", plan.refused);
        assert!(plan.refused[0].why.contains("no `sentinel monitor other`"));
        let ignored: Vec<usize> = plan.ignored.iter().map(|s| s.line).collect();
        assert_eq!(ignored, [1, 2, 3, 9, 10, 11, 12, 13, 14, 17, 18, 19]);
        assert!(plan.ignored.iter().all(|s| !s.why.is_empty()));
    }

    #[test]
    fn arguments_split_as_redis_splits_them() {
        let s = |l: &str| split_args(l).map_err(drop);
        let w = |v: &[&str]| Ok(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s("a  b\tc"), w(&["a", "b", "c"]));
        assert_eq!(s(r#"x "a b\x41\n""#), w(&["x", "a bA\n"]));
        assert_eq!(s(r#""\xc3\xa9""#), w(&["é"]), "bytes, not code points");
        assert_eq!(s(r#""\xzz""#), w(&["xzz"]), "no hex: the x itself");
        assert_eq!(s(r"x 'it\'s'"), w(&["x", "it's"]));
        assert_eq!(
            s(r#"a"b c"d"#),
            Err(()),
            "a quote mid-word opens a quoted part"
        );
        assert_eq!(s(r#"a"b c""#), w(&["ab c"]));
        assert_eq!(s(r#"x "open"#), Err(()));
        assert_eq!(s(r#"x "a"b"#), Err(()));
        assert_eq!(s(r#""\xff""#), Err(()), "not UTF-8");
        assert_eq!(s(""), w(&[]));
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        let plan = parse("sentinel monitor m 10.0.0.1 notaport 2\nsentinel monitor m\nsentinel\n");
        assert_eq!(plan.refused.len(), 3, "{:?}", plan.refused);
        assert!(plan.masters.is_empty());
    }
}
