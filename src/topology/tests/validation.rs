//! Invariant 12: what `apply` validates on every node, whatever node received the request —
//! master names, SET values and VIPs.

use super::*;
use crate::topology::master::{check_name, MAX_NAME_LEN};

fn invalid(rule: NameRule) -> Result<(), Refusal> {
    Err(Refusal::InvalidName { rule })
}

// Sentinel (redis #14970, valkey #3847) refuses control characters in a MONITOR name; its docs
// ask for no spaces. raftinel adds no leading '-' (argv[1] of client-reconfig-script) and a
// bound on the length. Anything else Sentinel accepts stays accepted.
#[test]
fn name_rules() {
    let long = "m".repeat(MAX_NAME_LEN);
    let too_long = "m".repeat(MAX_NAME_LEN + 1);
    let table: Vec<(&str, Result<(), Refusal>)> = vec![
        ("mymaster", Ok(())),
        ("cache-1.eu_west", Ok(())),
        ("m-", Ok(())),
        ("a:b@c/d*", Ok(())),
        ("café", Ok(())),
        (&long, Ok(())),
        ("", Err(Refusal::EmptyName)),
        ("bad\nmaster", invalid(NameRule::Control)),
        ("bad\rmaster", invalid(NameRule::Control)),
        ("bad\0", invalid(NameRule::Control)),
        ("tab\there", invalid(NameRule::Control)),
        ("del\u{7f}", invalid(NameRule::Control)),
        ("c1\u{85}", invalid(NameRule::Control)),
        // Control characters are named first, whatever else is wrong.
        ("-\n", invalid(NameRule::Control)),
        ("my master", invalid(NameRule::Space)),
        ("nbsp\u{a0}", invalid(NameRule::Space)),
        (" lead", invalid(NameRule::Space)),
        ("-oProxyCommand=x", invalid(NameRule::LeadingDash)),
        ("--help", invalid(NameRule::LeadingDash)),
        ("-", invalid(NameRule::LeadingDash)),
        (&too_long, invalid(NameRule::TooLong)),
    ];
    for (name, want) in table {
        assert_eq!(check_name(name), want, "{name:?}");
    }
}

// redis #14970's test matches "*must not contain control characters*"; raftinel's own rules
// read the same way.
#[test]
fn name_refusal_texts() {
    let table = [
        (
            NameRule::Control,
            "ERR master name must not contain control characters",
        ),
        (NameRule::Space, "ERR master name must not contain spaces"),
        (
            NameRule::LeadingDash,
            "ERR master name must not start with '-'",
        ),
        (
            NameRule::TooLong,
            "ERR master name must be at most 255 bytes long",
        ),
    ];
    for (rule, text) in table {
        assert_eq!(Refusal::InvalidName { rule }.to_string(), text);
        assert_eq!(
            Refusal::InvalidName { rule }.code(),
            RefusalKind::InvalidArgument
        );
    }
    assert_eq!(
        Refusal::ControlCharacters {
            option: "auth-pass".to_owned()
        }
        .to_string(),
        "ERR Invalid argument for SENTINEL SET 'auth-pass': the value must not contain control characters"
    );
    assert_eq!(
        Refusal::InvalidHost.to_string(),
        "ERR Invalid IP address or hostname specified"
    );
}

// Invariant 12: apply refuses a bad name on every node, leaving the state as it was; a host that
// is neither an IP address nor a possible DNS name is refused too, in Sentinel's words (whether a
// name resolves is the accepting node's check).
#[test]
fn monitor_applies_the_rules() {
    let mut log = Log::new();
    for name in ["-x", "a b", "a\r\nb", "\u{1b}[31m"] {
        let want = check_name(name).unwrap_err();
        log.refused(&monitor(name, 6390, 2), want);
    }
    let host = |h: &str| Command::Monitor {
        name: "m".to_owned(),
        addr: Addr::new(h, 6390),
        quorum: 2,
        down_after_ms: 5000,
    };
    for bad in [
        "-x",
        "",
        "10.0.0.1\n",
        "a..b",
        "a_b.test",
        "x-.test",
        "10.0.0.256",
        &"a".repeat(64),
        "m.test:6390",
    ] {
        log.refused(&host(bad), Refusal::InvalidHost);
    }
    log.ok(&host("::1"));
    let named = |n: &str, h: &str| Command::Monitor {
        name: n.to_owned(),
        addr: Addr::new(h, 6390),
        quorum: 2,
        down_after_ms: 5000,
    };
    log.ok(&named("h1", "localhost"));
    log.ok(&named("h2", "Redis-1.DB.example."));
    log.ok(&monitor("mymaster", 6391, 2));
}

// redis #14970 / valkey #3847: every SET value is refused with a control character, after the
// option is known (an unknown option is refused first, as Sentinel checks options in order).
#[test]
fn set_values_reject_control_characters() {
    let control = |o: &str| {
        Err(Refusal::ControlCharacters {
            option: o.to_owned(),
        })
    };
    let table: Vec<(&str, &str, Result<MasterOption, Refusal>)> = vec![
        (
            "auth-pass",
            "x\nsentinel notification-script m /tmp/evil.sh",
            control("auth-pass"),
        ),
        ("auth-user", "u\r", control("auth-user")),
        (
            "notification-script",
            "/tmp/ok\n/tmp/evil.sh",
            control("notification-script"),
        ),
        (
            "Client-Reconfig-Script",
            "/x\0",
            control("Client-Reconfig-Script"),
        ),
        ("quorum", "2\n", control("quorum")),
        ("vip", "10.77.0.200/24\t", control("vip")),
        ("vip-interface", "eth0\u{7f}", control("vip-interface")),
        (
            "bogus\n",
            "x\n",
            Err(Refusal::UnknownOption {
                option: "bogus\n".to_owned(),
            }),
        ),
        // Spaces and quotes are not control characters (Sentinel round-trips them).
        (
            "auth-pass",
            "my \"comp#$&^`'!,lex pass",
            Ok(MasterOption::AuthPass(Some(Secret::new(
                "my \"comp#$&^`'!,lex pass",
            )))),
        ),
    ];
    for (option, value, want) in table {
        assert_eq!(parse_option(option, value), want, "{option} {value:?}");
    }
    // All or nothing: one bad value refuses the whole SET.
    let mut log = Log::monitored();
    log.refused(
        &set(&[("quorum", "2"), ("auth-pass", "a\r\nb")]),
        Refusal::ControlCharacters {
            option: "auth-pass".to_owned(),
        },
    );
}

// A VIP must be a host address: prefix 8..=32, not the subnet's network or broadcast address
// (/31 and /32 have neither, RFC 3021), not unspecified or multicast.
#[test]
fn vip_values() {
    let table = [
        ("10.77.0.200/24", true),
        ("10.77.0.200", true),
        ("10.0.0.1/8", true),
        ("10.77.0.0/31", true),
        ("10.77.0.1/31", true),
        ("10.77.0.7/32", true),
        ("10.77.0.1/30", true),
        ("10.77.0.200/7", false),
        ("10.77.0.200/0", false),
        ("10.77.0.200/33", false),
        ("10.77.0.0/24", false),
        ("10.77.0.255/24", false),
        ("10.77.0.0/30", false),
        ("10.77.0.3/30", false),
        ("0.0.0.0/32", false),
        ("224.0.0.1/32", false),
        ("255.255.255.255/32", false),
        ("10.77.0.200/", false),
        ("fd00::1/64", false),
    ];
    for (text, ok) in table {
        assert_eq!(text.parse::<Vip>().is_ok(), ok, "{text}");
        let want = if ok {
            Ok(())
        } else {
            Err(Refusal::InvalidOptionValue {
                option: "vip".to_owned(),
                value: text.to_owned(),
            })
        };
        assert_eq!(parse_option("vip", text).map(|_| ()), want, "{text}");
    }
}

// Deterministic: the same log gives the same results on every replica, refusals included.
#[test]
fn refusals_are_the_same_everywhere() {
    let log: Vec<Command> = vec![
        monitor("-x", 6390, 2),
        monitor("mymaster", 6390, 2),
        set(&[("auth-pass", "a\nb")]),
        set(&[("vip", "10.77.0.0/24")]),
        set(&[("vip", "10.77.0.200/24")]),
    ];
    let (mut a, mut b) = (Log::new(), Log::new());
    for cmd in &log {
        assert_eq!(a.apply(cmd), b.apply(cmd));
    }
    assert_eq!(a.state, b.state);
    assert_eq!(
        a.mymaster().vip.map(|v| v.to_string()).as_deref(),
        Some("10.77.0.200/24")
    );
    assert!(a.state.master("-x").is_none());
}
