//! Dispatch-level checks of Redis's exact wording that need no node.

use bytes::Bytes;

use super::{arity_ok, int, unknown_command, unknown_subcommand, wrong_arity};
use crate::resp::reply::Reply;

fn b(v: &[&str]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

#[test]
fn unknown_command_quotes_its_arguments_like_redis() {
    assert_eq!(
        unknown_command(&b(&["ECHO", "hi"])),
        Reply::Error("ERR unknown command 'ECHO', with args beginning with: 'hi' ".into())
    );
    assert_eq!(
        unknown_command(&b(&["SELECT"])),
        Reply::Error("ERR unknown command 'SELECT', with args beginning with: ".into())
    );
    let long = "x".repeat(300);
    let Reply::Error(text) = unknown_command(&b(&["FOO", &long, "next"])) else {
        panic!("not an error")
    };
    assert!(
        text.len() < 300,
        "arguments are cut at 128 bytes: {}",
        text.len()
    );
    assert!(!text.contains("next"));
    let Reply::Error(text) = unknown_command(&b(&["FOO", "a\r\nb"])) else {
        panic!("not an error")
    };
    assert!(!text.contains('\n'), "the error stays one line");
}

#[test]
fn subcommand_and_arity_errors() {
    assert_eq!(
        unknown_subcommand(&Bytes::from_static(b"FOO"), "SENTINEL"),
        Reply::Error("ERR unknown subcommand 'FOO'. Try SENTINEL HELP.".into())
    );
    assert_eq!(
        wrong_arity("sentinel|masters"),
        Reply::Error("ERR wrong number of arguments for 'sentinel|masters' command".into())
    );
    assert!(arity_ok(2, 2));
    assert!(!arity_ok(2, 3));
    assert!(arity_ok(-2, 2));
    assert!(arity_ok(-2, 5));
    assert!(!arity_ok(-3, 2));
}

#[test]
fn integers_parse_like_string2ll() {
    let i = |s: &str| int(&Bytes::copy_from_slice(s.as_bytes()));
    assert_eq!(i("6390"), Some(6390));
    assert_eq!(i("-1"), Some(-1));
    assert_eq!(i("0"), Some(0));
    assert_eq!(i("007"), None);
    assert_eq!(i("+5"), None);
    assert_eq!(i("abc"), None);
    assert_eq!(i(""), None);
    assert_eq!(i("99999999999999999999"), None);
}
