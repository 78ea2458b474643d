//! Tests of the INFO parser on replies captured from redis-server 7.0.15 (`info_captures.rs`),
//! on edits of them, and on garbage.

use super::captures::*;
use super::*;

const RUN_ID_MASTER: &str = "51ad5c22a559eda5c8242f18567b7de6dfd43f22";
const RUN_ID_REPLICA: &str = "92e9407e91aa8a52591642f65a97c855af23a0d2";
const REPLID_FIRST: &str = "e6827f6bdc2a1d819db380902ce938cb07c58426";

fn addr(port: u16) -> Addr {
    Addr::new("127.0.0.1", port)
}

fn link(port: u16, state: &str, offset: u64) -> ReplicaLink {
    ReplicaLink {
        addr: addr(port),
        state: state.to_owned(),
        offset,
    }
}

fn replica(reply: &InfoReply) -> (Addr, bool, u64, u32, u64, Option<u64>) {
    match &reply.role {
        ReportedRole::Replica {
            master,
            link_up,
            link_down_ms,
            priority,
            offset,
            last_io_ms,
        } => (
            master.clone(),
            *link_up,
            *link_down_ms,
            *priority,
            *offset,
            *last_io_ms,
        ),
        other => panic!("expected a replica, got {other:?}"),
    }
}

#[test]
fn master_during_first_sync() {
    let r = parse(MASTER_SYNCING).expect("parses");
    assert_eq!(
        r.role,
        ReportedRole::Master {
            replicas: vec![link(16402, "wait_bgsave", 0)]
        }
    );
    assert_eq!(r.replid, REPLID_FIRST);
    assert_eq!(r.repl_offset, 50);
    // Only the replication section was asked for: no run id, which is not an error.
    assert_eq!(r.run_id, "");
}

#[test]
fn master_with_replica_online() {
    let r = parse(MASTER_ONLINE).expect("parses");
    assert_eq!(
        r.role,
        ReportedRole::Master {
            replicas: vec![link(16402, "online", 100)]
        }
    );
    assert_eq!(r.repl_offset, 100);
}

#[test]
fn master_with_server_section_and_two_replicas() {
    let r = parse(MASTER_TWO_REPLICAS).expect("parses");
    assert_eq!(r.run_id, RUN_ID_MASTER);
    assert_eq!(r.replid, "a504ad2d774fc76bc1ba89aad24eee3c7bf878be");
    assert_eq!(r.repl_offset, 100);
    // It continued the lineage of its previous life up to offset 50.
    assert_eq!(r.replid2, REPLID_FIRST);
    assert_eq!(r.second_repl_offset, Some(51));
    assert_eq!(
        r.role,
        ReportedRole::Master {
            replicas: vec![link(16403, "online", 100), link(16402, "online", 100)]
        }
    );
}

#[test]
fn replica_during_first_sync_never_had_a_link() {
    let r = parse(REPLICA_SYNCING).expect("parses");
    // master_link_down_since_seconds:-1 means "never up": as long as it gets.
    assert_eq!(replica(&r), (addr(16401), false, u64::MAX, 0, 1, None));
    assert_eq!(r.replid, "869085129614ddcc40b21930e2dd86cc5fcfcba9");
    assert_eq!(r.repl_offset, 0);
}

#[test]
fn replica_with_link_up() {
    let r = parse(REPLICA_UP).expect("parses");
    assert_eq!(replica(&r), (addr(16401), true, 0, 0, 100, Some(3000)));
    assert_eq!(r.run_id, RUN_ID_REPLICA);
    assert_eq!(r.replid, REPLID_FIRST);
    assert_eq!(r.repl_offset, 100);
    assert_eq!(r.replid2, "0".repeat(40));
    assert_eq!(r.second_repl_offset, None);
}

#[test]
fn replica_whose_master_died() {
    let r = parse(REPLICA_LINK_DOWN).expect("parses");
    assert_eq!(replica(&r), (addr(16401), false, 3000, 0, 100, None));
}

#[test]
fn bare_newlines_parse_the_same() {
    for text in ALL {
        assert_eq!(parse(&text.replace("\r\n", "\n")), parse(text));
    }
}

#[test]
fn plain_info_with_every_section_parses_the_same() {
    let extra =
        "# Clients\r\nconnected_clients:2\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
    for text in ALL {
        assert_eq!(parse(&format!("{text}\r\n{extra}")), parse(text));
    }
}

#[test]
fn replica_priority_spellings_and_default() {
    let edited = REPLICA_UP.replace("slave_priority:0", "replica_priority:7");
    assert_eq!(replica(&parse(&edited).expect("parses")).3, 7);
    let edited = REPLICA_UP.replace("slave_priority:0\r\n", "");
    assert_eq!(
        replica(&parse(&edited).expect("parses")).3,
        DEFAULT_PRIORITY
    );
}

#[test]
fn offset_falls_back_to_slave_repl_offset() {
    let edited = REPLICA_UP
        .replace("slave_read_repl_offset:100\r\n", "")
        .replace("slave_repl_offset:100", "slave_repl_offset:90");
    assert_eq!(replica(&parse(&edited).expect("parses")).4, 90);
    let edited = REPLICA_UP
        .replace("slave_read_repl_offset:100\r\n", "")
        .replace("slave_repl_offset:100\r\n", "");
    assert_eq!(replica(&parse(&edited).expect("parses")).4, 0);
}

#[test]
fn missing_optional_fields_take_defaults() {
    let r = parse("role:slave\nmaster_host:10.0.0.1\nmaster_port:6379\n").expect("parses");
    assert_eq!(
        replica(&r),
        (
            Addr::new("10.0.0.1", 6379),
            false,
            0,
            DEFAULT_PRIORITY,
            0,
            None
        )
    );
    assert_eq!(
        (r.run_id.as_str(), r.replid.as_str(), r.repl_offset),
        ("", "", 0)
    );
    let r = parse("role:master").expect("parses");
    assert_eq!(r.role, ReportedRole::Master { replicas: vec![] });
}

#[test]
fn replica_lines_sort_numerically_and_skip_lookalikes() {
    let text = "role:master\nslave10:ip=a,port=3,state=online,offset=3,lag=0\n\
                slave2:ip=b,port=2,state=online,offset=2,lag=0\nslave_repl_offset:5\n\
                slaves:1\nslave0:ip=::1,port=1,state=send_bulk,offset=-1,lag=0\n";
    let r = parse(text).expect("parses");
    let ReportedRole::Master { replicas } = r.role else {
        panic!("master expected");
    };
    let got: Vec<_> = replicas
        .iter()
        .map(|l| (l.addr.to_string(), l.offset))
        .collect();
    assert_eq!(
        got,
        vec![
            ("[::1]:1".to_owned(), 0),
            ("b:2".to_owned(), 2),
            ("a:3".to_owned(), 3)
        ]
    );
}

#[test]
fn ipv6_master_host() {
    let r = parse("role:slave\r\nmaster_host:::1\r\nmaster_port:7000\r\nmaster_link_status:up\r\n")
        .expect("parses");
    assert_eq!(replica(&r).0, Addr::new("::1", 7000));
}

#[test]
fn garbage_is_an_error_value() {
    assert_eq!(parse(""), Err(InfoError::MissingRole));
    assert_eq!(
        parse("\r\n\r\n# Replication\r\n"),
        Err(InfoError::MissingRole)
    );
    assert_eq!(parse("\u{0}\u{fffd}garbage"), Err(InfoError::MissingRole));
    assert_eq!(
        parse("-ERR unknown command\r\n"),
        Err(InfoError::MissingRole)
    );
    assert_eq!(
        parse("role:sentinel\n"),
        Err(InfoError::UnknownRole("sentinel".into()))
    );
    assert_eq!(
        parse("role:slave\nmaster_port:1\n"),
        Err(InfoError::MissingField("master_host"))
    );
    assert_eq!(
        parse("role:slave\nmaster_host:h\n"),
        Err(InfoError::MissingField("master_port"))
    );
    assert_eq!(
        parse("role:slave\nmaster_host:h\nmaster_port:70000\n"),
        Err(invalid("master_port", "70000"))
    );
    assert_eq!(
        parse(&MASTER_ONLINE.replace("master_repl_offset:100", "master_repl_offset:x")),
        Err(invalid("master_repl_offset", "x"))
    );
    let bad_line = "ip=127.0.0.1,state=online";
    assert_eq!(
        parse(&format!("role:master\nslave0:{bad_line}\n")),
        Err(invalid("slave0", bad_line))
    );
    assert_eq!(
        parse("role:master\nslave0:127.0.0.1,6380,online\n"),
        Err(invalid("slave0", "127.0.0.1,6380,online"))
    );
    assert_eq!(
        parse(&REPLICA_UP.replace("slave_priority:0", "slave_priority:-3")),
        Err(invalid("slave_priority", "-3"))
    );
}

#[test]
fn long_garbage_is_echoed_truncated() {
    let long = "9".repeat(10_000);
    let Err(InfoError::InvalidValue { value, .. }) =
        parse(&format!("role:slave\nmaster_host:h\nmaster_port:{long}\n"))
    else {
        panic!("expected InvalidValue");
    };
    assert_eq!(value.len(), ECHO_MAX);
}

#[test]
fn every_prefix_and_mutation_parses_without_panic() {
    for text in ALL {
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i]);
        }
    }
    // Deterministic xorshift: overwrite bytes of the captures with separators and junk.
    let junk = [b':', b',', b'=', b'\r', b'\n', b'-', b'9', b'#', 0xff];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..3000 {
        let mut bytes = ALL[round % ALL.len()].as_bytes().to_vec();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % bytes.len();
            bytes[at] = junk[(x >> 32) as usize % junk.len()];
        }
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
}
