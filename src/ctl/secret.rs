//! `ctl set`'s options with auth-pass taken from stdin (`auth-pass -`) or a file
//! (`--auth-pass-file`), so the password need not appear in argv or shell history.

use std::io::BufRead;
use std::path::Path;

use super::CtlError;
use crate::pb;

/// Printed when a password is given on the command line.
pub const ARGV_WARNING: &str = "warning: a password on the command line is visible to other users (ps, /proc) and stays in shell history; use `raftinel ctl set NAME auth-pass -` (reads it from stdin) or `--auth-pass-file FILE`";

/// The SET options to send, and whether to print [`ARGV_WARNING`]. `stdin` is read only for
/// `auth-pass -`; `file` is `--auth-pass-file`.
pub fn options(
    pairs: &[String],
    file: Option<&Path>,
    stdin: &mut dyn BufRead,
) -> Result<(Vec<pb::SetOption>, bool), CtlError> {
    if pairs.len() % 2 != 0 {
        return Err(CtlError::Usage("set takes OPTION VALUE pairs".into()));
    }
    let mut out = Vec::new();
    let mut warn = false;
    let mut password_given = false;
    for pair in pairs.chunks(2) {
        let [option, value] = pair else { continue };
        let secret = option.eq_ignore_ascii_case("auth-pass");
        let value = if secret && value == "-" {
            first_line(stdin, "stdin")?
        } else {
            warn |= secret && !value.is_empty();
            value.clone()
        };
        if secret {
            if password_given {
                return Err(CtlError::Usage("auth-pass is given twice".into()));
            }
            password_given = true;
        }
        out.push(pb::SetOption {
            option: option.clone(),
            value,
        });
    }
    if let Some(path) = file {
        if password_given {
            return Err(CtlError::Usage(
                "--auth-pass-file and an auth-pass pair both give the password: keep one".into(),
            ));
        }
        let f = std::fs::File::open(path)
            .map_err(|e| CtlError::Usage(format!("--auth-pass-file {}: {e}", path.display())))?;
        let value = first_line(
            &mut std::io::BufReader::new(f),
            &format!("--auth-pass-file {}", path.display()),
        )?;
        out.push(pb::SetOption {
            option: "auth-pass".into(),
            value,
        });
    }
    Ok((out, warn))
}

/// The first line without its line ending; an empty one is refused (an empty value, given as
/// `auth-pass ""`, is how a password is cleared).
fn first_line(r: &mut dyn BufRead, from: &str) -> Result<String, CtlError> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| CtlError::Usage(format!("reading the password from {from}: {e}")))?;
    let pass = line.trim_end_matches(['\n', '\r']);
    if pass.is_empty() {
        return Err(CtlError::Usage(format!(
            "no password on the first line of {from}; to clear auth-pass give an empty value: auth-pass \"\""
        )));
    }
    Ok(pass.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(opts: &[pb::SetOption]) -> Vec<(&str, &str)> {
        opts.iter()
            .map(|o| (o.option.as_str(), o.value.as_str()))
            .collect()
    }

    #[test]
    fn dash_reads_the_first_line_of_stdin() {
        let mut stdin = Cursor::new("s3cret\r\nignored\n");
        let (opts, warn) =
            options(&args(&["quorum", "2", "AUTH-PASS", "-"]), None, &mut stdin).unwrap();
        assert_eq!(pairs(&opts), [("quorum", "2"), ("AUTH-PASS", "s3cret")]);
        assert!(!warn);
        // No newline at the end is fine too.
        let (opts, _) = options(&args(&["auth-pass", "-"]), None, &mut Cursor::new("pw")).unwrap();
        assert_eq!(pairs(&opts), [("auth-pass", "pw")]);
    }

    #[test]
    fn a_password_in_argv_still_works_with_a_warning() {
        let (opts, warn) =
            options(&args(&["auth-pass", "pw"]), None, &mut Cursor::new("")).unwrap();
        assert_eq!(pairs(&opts), [("auth-pass", "pw")]);
        assert!(warn);
        // Clearing it exposes nothing.
        let (_, warn) = options(&args(&["auth-pass", ""]), None, &mut Cursor::new("")).unwrap();
        assert!(!warn);
        // "-" means stdin only for auth-pass.
        let (opts, warn) =
            options(&args(&["auth-user", "-"]), None, &mut Cursor::new("x")).unwrap();
        assert_eq!((pairs(&opts), warn), (vec![("auth-user", "-")], false));
    }

    #[test]
    fn file_gives_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "from-file\n").unwrap();
        let (opts, warn) = options(
            &args(&["auth-user", "sentinel"]),
            Some(&path),
            &mut Cursor::new(""),
        )
        .unwrap();
        assert_eq!(
            pairs(&opts),
            [("auth-user", "sentinel"), ("auth-pass", "from-file")]
        );
        assert!(!warn);
        let e = options(&[], Some(&dir.path().join("nope")), &mut Cursor::new(""));
        assert!(matches!(e, Err(CtlError::Usage(m)) if m.contains("nope")));
    }

    #[test]
    fn refusals() {
        let usage = |r: Result<_, CtlError>| match r {
            Err(CtlError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        };
        let m = usage(options(
            &args(&["auth-pass", "-"]),
            None,
            &mut Cursor::new("\n"),
        ));
        assert!(m.contains("no password"), "{m}");
        let m = usage(options(
            &args(&["auth-pass", "-", "auth-pass", "x"]),
            None,
            &mut Cursor::new("a\n"),
        ));
        assert!(m.contains("twice"), "{m}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "pw\n").unwrap();
        let m = usage(options(
            &args(&["auth-pass", "x"]),
            Some(&path),
            &mut Cursor::new(""),
        ));
        assert!(m.contains("keep one"), "{m}");
        let m = usage(options(&args(&["quorum"]), None, &mut Cursor::new("")));
        assert!(m.contains("pairs"), "{m}");
    }
}
