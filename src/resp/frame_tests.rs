//! Decoder tests: exact cases from Redis's behaviour, then properties over random input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{decode, split_args, Limits, ProtocolError, LIMITS, UNAUTHENTICATED};

fn one(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    decode(&mut BytesMut::from(input), &LIMITS, true)
}

fn args(v: &[&str]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn multibulk_requests() {
    let r = one(b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n");
    assert_eq!(
        r,
        Ok(Some(args(&[
            "SENTINEL",
            "get-master-addr-by-name",
            "mymaster"
        ])))
    );
    assert_eq!(one(b"*1\r\n$4\r\nPING\r\n"), Ok(Some(args(&["PING"]))));
    assert_eq!(one(b"*1\r\n$0\r\n\r\n"), Ok(Some(args(&[""]))));
}

#[test]
fn incomplete_requests_wait_and_consume_nothing() {
    let full = b"*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n";
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(decode(&mut buf, &LIMITS, true), Ok(None), "cut at {cut}");
        assert_eq!(&buf[..], &full[..cut]);
    }
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let mut buf =
        BytesMut::from(&b"*1\r\n$4\r\nPING\r\nPING\r\n*0\r\n\r\n*1\r\n$4\r\nROLE\r\n"[..]);
    assert_eq!(decode(&mut buf, &LIMITS, true), Ok(Some(args(&["PING"]))));
    assert_eq!(decode(&mut buf, &LIMITS, true), Ok(Some(args(&["PING"]))));
    assert_eq!(decode(&mut buf, &LIMITS, true), Ok(Some(args(&["ROLE"]))));
    assert_eq!(decode(&mut buf, &LIMITS, true), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn inline_requests_split_like_redis() {
    assert_eq!(one(b"PING\r\n"), Ok(Some(args(&["PING"]))));
    assert_eq!(one(b"ping\n"), Ok(Some(args(&["ping"]))));
    assert_eq!(
        one(b"sentinel   master  \"my master\"\r\n"),
        Ok(Some(args(&["sentinel", "master", "my master"])))
    );
    assert_eq!(
        one(b"set 'a b' \"\\x41\\n\"\r\n"),
        Ok(Some(args(&["set", "a b", "A\n"])))
    );
    assert_eq!(one(b"PING \"abc\r\n"), Err(ProtocolError::UnbalancedQuotes));
    assert_eq!(
        one(b"PING \"abc\"x\r\n"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(split_args(b""), Some(vec![]));
}

#[test]
fn protocol_errors_use_redis_wording() {
    let text = |r: Result<Option<Vec<Bytes>>, ProtocolError>| r.unwrap_err().to_string();
    assert_eq!(
        text(one(b"*x\r\n")),
        "Protocol error: invalid multibulk length"
    );
    assert_eq!(
        text(one(b"*2000\r\n")),
        "Protocol error: invalid multibulk length"
    );
    assert_eq!(
        text(one(b"*1\r\n+PING\r\n")),
        "Protocol error: expected '$', got '+'"
    );
    assert_eq!(
        text(one(b"*1\r\n$-2\r\n")),
        "Protocol error: invalid bulk length"
    );
    assert_eq!(
        text(one(b"*1\r\n$99999999\r\n")),
        "Protocol error: invalid bulk length"
    );
    assert_eq!(
        text(one(b"*1\r\n$abc\r\n")),
        "Protocol error: invalid bulk length"
    );
    let big = vec![b'a'; 70 * 1024];
    assert_eq!(text(one(&big)), "Protocol error: too big inline request");
    let mut star = b"*".to_vec();
    star.extend_from_slice(&big);
    assert_eq!(
        text(one(&star)),
        "Protocol error: too big mbulk count string"
    );
    let unauth = |input: &[u8]| decode(&mut BytesMut::from(input), &UNAUTHENTICATED, false);
    assert_eq!(
        unauth(b"*11\r\n").unwrap_err().to_string(),
        "Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        unauth(b"*1\r\n$20000\r\n").unwrap_err().to_string(),
        "Protocol error: unauthenticated bulk length"
    );
}

#[test]
fn a_request_is_bounded_in_total() {
    // 20 arguments of 60 KiB each are each allowed, but not together.
    let mut input = b"*20\r\n".to_vec();
    for _ in 0..20 {
        input.extend_from_slice(format!("${}\r\n", 60 * 1024).as_bytes());
        input.extend_from_slice(&vec![b'x'; 60 * 1024]);
        input.extend_from_slice(b"\r\n");
    }
    assert_eq!(one(&input), Err(ProtocolError::BulkLength));
}

fn small_limits() -> Limits {
    Limits {
        max_args: 64,
        max_bulk: 512,
        max_request: 8192,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes: never a panic, and the buffer never grows past what was fed.
    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..input.len() + 1 {
            match decode(&mut buf, &small_limits(), true) {
                Ok(Some(args)) => prop_assert!(args.iter().all(|a| a.len() <= 512)),
                Ok(None) | Err(_) => break,
            }
        }
        prop_assert!(buf.len() <= input.len());
    }

    /// Protocol-shaped garbage: RESP tokens glued at random.
    #[test]
    fn resp_shaped_garbage_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()), Just(b"\n".to_vec()),
            Just(b"-1".to_vec()), Just(b"0".to_vec()), Just(b"3".to_vec()),
            Just(b"99999999999999999999".to_vec()), Just(b"\"".to_vec()), Just(b"'".to_vec()),
            Just(b"\\x4".to_vec()), Just(b" ".to_vec()), Just(b"PING".to_vec()),
        ], 0..40)) {
        let input: Vec<u8> = parts.concat();
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..input.len() + 1 {
            match decode(&mut buf, &small_limits(), true) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Well-formed requests decode to exactly their arguments, however the bytes arrive.
    #[test]
    fn encoded_requests_round_trip_in_any_chunks(
        reqs in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..5),
        chunk in 1usize..64,
    ) {
        let wire: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(args) = decode(&mut buf, &LIMITS, true).unwrap() {
                got.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        prop_assert_eq!(got, reqs);
        prop_assert!(buf.is_empty());
    }
}
