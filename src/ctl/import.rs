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
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(cluster: Option<&Cluster>, args: &ImportArgs) -> Result<(), CtlError> {
    let file = args.file.display();
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| CtlError::Usage(format!("{file}: {e}")))?;
    let plan = sentinel_conf::parse(&text);
    let mut refused = plan.refused.len();
    if plan.masters.is_empty() {
        println!("{file}: no `sentinel monitor` line");
    }
    for m in &plan.masters {
        match cluster {
            None => print_commands(&args.conn.cluster, m),
            Some(c) => {
                refused += apply(c, m).await;
                check_replicas(c, m).await;
            }
        }
    }
    for s in &plan.ignored {
        println!("line {}: ignored: {}  ({})", s.line, masked(s), s.why);
    }
    for s in &plan.refused {
        println!("line {}: refused: {}  ({})", s.line, masked(s), s.why);
    }
    match refused {
        0 => Ok(()),
        n => Err(CtlError::Usage(format!(
            "{n} line(s) of {file} not applied (see above)"
        ))),
    }
}

/// MONITOR then each SET; returns how many lines were refused.
async fn apply(cluster: &Cluster, m: &Master) -> usize {
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
        Ok(_) => println!("line {}: {what}: OK", m.line),
        // Imported before: its settings are applied again, if the name is this deployment's
        // (its master or a replica at the file's address), never to another Redis of that name.
        Err(CtlError::Status(e)) if e.contains("Duplicate") => match ours(cluster, m).await {
            Ok(true) => println!(
                "line {}: {what}: already monitored; applying its settings",
                m.line
            ),
            Ok(false) | Err(_) => {
                println!(
                    "line {}: {what}: refused: the cluster monitors another Redis as {} (see `raftinel ctl master {}`)",
                    m.line, m.name, m.name
                );
                return 1 + m.options.len();
            }
        },
        Err(e) => {
            println!("line {}: {what}: refused: {e}", m.line);
            for (line, option, _) in &m.options {
                println!("line {line}: set {} {option}: not sent (no master)", m.name);
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
            Ok(_) => println!("line {line}: {shown}: OK"),
            Err(e) => {
                refused += 1;
                println!("line {line}: {shown}: refused: {e}");
            }
        }
    }
    refused
}

/// How long the import waits for the cluster to list a master's known replicas.
const DISCOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) until the cluster lists every `known-replica` of `m`, then says which it has.
async fn check_replicas(cluster: &Cluster, m: &Master) {
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
            println!("line {line}: known-replica {host} {port}: listed by the cluster");
        } else {
            println!(
                "line {line}: known-replica {host} {port}: not listed yet (raftinel learns replicas from the master's INFO: is {} up? see `raftinel ctl master {}`)",
                m.host, m.name
            );
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
fn print_commands(cluster: &str, m: &Master) {
    let ctl = format!("raftinel ctl --cluster {}", quoted(cluster));
    let name = quoted(&m.name);
    println!(
        "{ctl} monitor {name} {} {} {}    # line {}",
        quoted(&m.host),
        m.port,
        m.quorum,
        m.line
    );
    for (line, option, value) in &m.options {
        if option == "auth-pass" {
            println!("{ctl} set {name} auth-pass -    # line {line}: type the password there");
        } else {
            println!(
                "{ctl} set {name} {} {}    # line {line}",
                quoted(option),
                quoted(value)
            );
        }
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
