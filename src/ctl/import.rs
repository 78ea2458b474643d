//! `raftinel import-sentinel FILE`: a Sentinel's `sentinel.conf` applied to the cluster through
//! its admin API (MONITOR, then one SET per setting line), or printed as the `ctl` commands that
//! would do it (`--dry-run`). Every line is accounted for: applied, ignored (and why) or refused
//! (and why); anything refused makes the exit status non-zero. Sentinel's `known-replica` lines
//! are checked: raftinel learns replicas from the master's INFO, and the import waits a few
//! seconds for it to list them (a master down at import time is one it cannot fail over yet).

use std::path::PathBuf;

use clap::Args;

use super::client::Cluster;
use super::sentinel_conf::{self, Master, Skipped};
use super::{Connection, CtlError};
use crate::pb;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The sentinel.conf to read: as Sentinel rewrote it, or as written by hand.
    pub file: PathBuf,
    /// Print the `raftinel ctl` commands instead of applying them.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print one JSON array of `{line, status, text}` at the end instead of lines as they go.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Where each line's fate goes: printed at once, or kept for one JSON array.
struct Out {
    json: bool,
    kept: Vec<serde_json::Value>,
}

impl Out {
    /// A `--dry-run` command: printed as it is, ready to paste, with its line as a comment.
    fn command(&mut self, line: usize, cmd: String) {
        if self.json {
            self.say(line, "command", cmd);
        } else if cmd.contains('#') {
            println!("{cmd} (line {line})");
        } else {
            println!("{cmd}    # line {line}");
        }
    }

    /// `status`: applied, refused, ignored, checked or command (`--dry-run`).
    fn say(&mut self, line: usize, status: &str, text: String) {
        if self.json {
            self.kept
                .push(serde_json::json!({ "line": line, "status": status, "text": text }));
        } else if line == 0 {
            println!("{text}");
        } else {
            println!("line {line}: {text}");
        }
    }
}

pub async fn run(cluster: Option<&Cluster>, args: &ImportArgs) -> Result<(), CtlError> {
    let file = args.file.display();
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| CtlError::Usage(format!("{file}: {e}")))?;
    let plan = sentinel_conf::parse(&text);
    let mut refused = plan.refused.len();
    let out = &mut Out {
        json: args.json,
        kept: Vec::new(),
    };
    if plan.masters.is_empty() {
        out.say(0, "ignored", format!("{file}: no `sentinel monitor` line"));
    }
    for m in &plan.masters {
        match cluster {
            None => print_commands(out, &args.conn.cluster, m),
            Some(c) => {
                refused += apply(out, c, m).await;
                check_replicas(out, c, m).await;
            }
        }
    }
    for s in &plan.ignored {
        let text = format!("ignored: {}  ({})", masked(s), s.why);
        out.say(s.line, "ignored", text);
    }
    for s in &plan.refused {
        let text = format!("refused: {}  ({})", masked(s), s.why);
        out.say(s.line, "refused", text);
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&out.kept)?);
    }
    match refused {
        0 => Ok(()),
        n => Err(CtlError::Usage(format!(
            "{n} line(s) of {file} not applied (see above)"
        ))),
    }
}

/// MONITOR then each SET; returns how many lines were refused.
async fn apply(out: &mut Out, cluster: &Cluster, m: &Master) -> usize {
    let monitor = pb::MonitorRequest {
        name: m.name.clone(),
        host: m.host.clone(),
        port: m.port,
        quorum: m.quorum,
    };
    let what = format!(
        "monitor {} {} {} quorum {}",
        m.name, m.host, m.port, m.quorum
    );
    let r = cluster
        .call(|mut c, r| {
            let req = monitor.clone();
            async move { c.monitor(r.req(req)).await }
        })
        .await;
    match r {
        Ok(_) => out.say(m.line, "applied", format!("{what}: OK")),
        // Imported before: its settings are applied again, if the name is this deployment's
        // (its master or a replica at the file's address), never to another Redis of that name.
        Err(CtlError::Status(e)) if e.contains("Duplicate") => match ours(cluster, m).await {
            Ok(true) => out.say(
                m.line,
                "applied",
                format!("{what}: already monitored; applying its settings"),
            ),
            Ok(false) | Err(_) => {
                let why = format!(
                    "{what}: refused: the cluster monitors another Redis as {} (see `raftinel ctl master {}`)",
                    m.name, m.name
                );
                out.say(m.line, "refused", why);
                return 1 + m.options.len();
            }
        },
        Err(e) => {
            out.say(m.line, "refused", format!("{what}: refused: {e}"));
            for (line, option, _) in &m.options {
                let text = format!("set {} {option}: not sent (no master)", m.name);
                out.say(*line, "refused", text);
            }
            return 1 + m.options.len();
        }
    }
    let mut refused = 0;
    for (line, option, value) in &m.options {
        let req = pb::SetRequest {
            name: m.name.clone(),
            options: vec![pb::SetOption {
                option: option.clone(),
                value: value.clone(),
            }],
        };
        let r = cluster
            .call(|mut c, r| {
                let req = req.clone();
                async move { c.set(r.req(req)).await }
            })
            .await;
        let shown = format!("set {} {option} {}", m.name, secret(option, value));
        match r {
            Ok(_) => out.say(*line, "applied", format!("{shown}: OK")),
            Err(e) => {
                refused += 1;
                out.say(*line, "refused", format!("{shown}: refused: {e}"));
            }
        }
    }
    refused
}

/// How long the import waits for the cluster to list a master's known replicas.
const DISCOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) until the cluster lists every `known-replica` of `m`, then says which it has.
async fn check_replicas(out: &mut Out, cluster: &Cluster, m: &Master) {
    if m.known_replicas.is_empty() {
        return;
    }
    let req = pb::GetMasterRequest {
        name: m.name.clone(),
        consistency: pb::Consistency::Linearizable as i32,
    };
    let deadline = tokio::time::Instant::now() + DISCOVERY_WAIT;
    let mut listed: Vec<(String, u32)> = Vec::new();
    for _ in 0..50 {
        let got = cluster
            .call(|mut c, r| {
                let req = req.clone();
                async move { c.get_master(r.req(req)).await }
            })
            .await;
        if let Ok(master) = got {
            listed = master
                .replicas
                .iter()
                .map(|r| (r.host.clone(), r.port))
                .collect();
        }
        let all = m
            .known_replicas
            .iter()
            .all(|(_, h, p)| listed.contains(&(h.clone(), *p)));
        if all || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (line, host, port) in &m.known_replicas {
        if listed.contains(&(host.clone(), *port)) {
            let text = format!("known-replica {host} {port}: listed by the cluster");
            out.say(*line, "checked", text);
        } else {
            let text = format!(
                "known-replica {host} {port}: not listed yet (raftinel learns replicas from the master's INFO: is {} up? see `raftinel ctl master {}`)",
                m.host, m.name
            );
            out.say(*line, "checked", text);
        }
    }
}

/// Whether the cluster's `m.name` is the file's: its master or one of its replicas is at the
/// file's address.
async fn ours(cluster: &Cluster, m: &Master) -> Result<bool, CtlError> {
    let req = pb::GetMasterRequest {
        name: m.name.clone(),
        consistency: pb::Consistency::Linearizable as i32,
    };
    let got = cluster
        .call(|mut c, r| {
            let req = req.clone();
            async move { c.get_master(r.req(req)).await }
        })
        .await?;
    let at = |host: &str, port: u32| host.eq_ignore_ascii_case(&m.host) && port == m.port;
    Ok(at(&got.host, got.port) || got.replicas.iter().any(|r| at(&r.host, r.port)))
}

/// `--dry-run`: the ctl commands, passwords read from stdin rather than put in argv.
fn print_commands(out: &mut Out, cluster: &str, m: &Master) {
    let ctl = format!("raftinel ctl --cluster {}", quoted(cluster));
    let name = quoted(&m.name);
    let host = quoted(&m.host);
    let monitor = format!("{ctl} monitor {name} {host} {} {}", m.port, m.quorum);
    out.command(m.line, monitor);
    for (line, option, value) in &m.options {
        let cmd = if option == "auth-pass" {
            format!("{ctl} set {name} auth-pass -    # type the password there")
        } else {
            format!("{ctl} set {name} {} {}", quoted(option), quoted(value))
        };
        out.command(*line, cmd);
    }
}

fn secret<'a>(option: &str, value: &'a str) -> &'a str {
    if option == "auth-pass" {
        "******"
    } else {
        value
    }
}

/// `value` as one shell word.
fn quoted(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// A skipped line as printed: the words after a directive that carries a secret are masked,
/// read as Redis splits them (so no spacing or quoting slips one through).
fn masked(s: &Skipped) -> String {
    let Ok(words) = sentinel_conf::split_args(&s.text) else {
        return "(a line that does not parse, not shown)".to_owned();
    };
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let first = lower.first().map(String::as_str).unwrap_or("");
    let second = lower.get(1).map(String::as_str).unwrap_or("");
    // How many words to show before the secret.
    let keep = match (first, second) {
        ("requirepass" | "masterauth" | "masteruser", _) => Some(1),
        (d, _) if d.starts_with("tls-") && d.ends_with("-pass") => Some(1),
        ("user", _) => Some(2),
        ("sentinel", "auth-pass") => Some(3),
        ("sentinel", "sentinel-pass") => Some(2),
        _ => None,
    };
    match keep {
        Some(n) => format!("{} ******", words[..n.min(words.len())].join(" ")),
        None => s.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_and_masks() {
        assert_eq!(quoted("5000"), "5000");
        assert_eq!(quoted("CONFIG GUARDED"), "'CONFIG GUARDED'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(quoted(""), "''");
        let s = |text: &str| Skipped {
            line: 1,
            text: text.to_owned(),
            why: String::new(),
        };
        assert_eq!(masked(&s("requirepass hunter2")), "requirepass ******");
        assert_eq!(masked(&s("port 26379")), "port 26379");
        assert_eq!(
            masked(&s("sentinel auth-pass m s3cret")),
            "sentinel auth-pass m ******"
        );
        assert_eq!(
            masked(&s("sentinel\tauth-pass  m \"s3 cret\"")),
            "sentinel auth-pass m ******"
        );
        assert_eq!(masked(&s("masterauth hunter2")), "masterauth ******");
        assert_eq!(
            masked(&s("tls-key-file-pass hunter2")),
            "tls-key-file-pass ******"
        );
        assert_eq!(
            masked(&s("user \"bad")),
            "(a line that does not parse, not shown)"
        );
        assert_eq!(secret("auth-pass", "x"), "******");
    }
}
