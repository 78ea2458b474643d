//! Parses the text of `INFO server replication` (or plain `INFO`) into what the monitor keeps:
//! role, replicas or master link, offsets, replication id and run id. Pure: no I/O, never panics.

use std::collections::HashMap;

use super::observation::{ReplicaLink, ReportedRole};
use crate::topology::Addr;

/// Redis's default `replica-priority`, used when a replica does not report one.
pub const DEFAULT_PRIORITY: u32 = 100;

/// What one INFO reply says about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoReply {
    /// `run_id` from the server section; empty when that section was not included.
    pub run_id: String,
    pub role: ReportedRole,
    /// `master_replid`; empty when missing.
    pub replid: String,
    /// `master_repl_offset`; 0 when missing.
    pub repl_offset: u64,
    /// `master_replid2`, as reported (all zeros when none); empty when missing.
    pub replid2: String,
    /// `second_repl_offset`; None when -1 (no previous lineage) or missing.
    pub second_repl_offset: Option<u64>,
}

/// Why an INFO reply could not be used. The text is kept short: the reply may be garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("INFO reply has no role field")]
    MissingRole,
    #[error("INFO reply has an unknown role {0:?}")]
    UnknownRole(String),
    #[error("INFO reply of a replica has no {0} field")]
    MissingField(&'static str),
    #[error("INFO field {field} has an invalid value {value:?}")]
    InvalidValue { field: String, value: String },
}

/// Longest value echoed back in an `InfoError`.
const ECHO_MAX: usize = 64;

fn invalid(field: &str, value: &str) -> InfoError {
    let value: String = value.chars().take(ECHO_MAX).collect();
    let field: String = field.chars().take(ECHO_MAX).collect();
    InfoError::InvalidValue { field, value }
}

/// Parses an INFO reply. Lines may end in `\r\n` or `\n`; section headers, blank lines, lines
/// without `:` and unknown fields are skipped; a known field with a bad value is an error.
pub fn parse(text: &str) -> Result<InfoReply, InfoError> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    let mut slave_lines: Vec<(u32, &str)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match slave_index(key) {
            Some(n) => slave_lines.push((n, value)),
            None => {
                fields.insert(key, value);
            }
        }
    }
    let role = match fields.get("role").copied() {
        None => return Err(InfoError::MissingRole),
        Some("master") => {
            slave_lines.sort_by_key(|(n, _)| *n);
            let replicas = slave_lines
                .iter()
                .map(|(n, value)| parse_slave_line(*n, value))
                .collect::<Result<Vec<_>, _>>()?;
            ReportedRole::Master { replicas }
        }
        Some("slave") => replica_role(&fields)?,
        Some(other) => {
            return Err(InfoError::UnknownRole(
                other.chars().take(ECHO_MAX).collect(),
            ))
        }
    };
    Ok(InfoReply {
        run_id: fields.get("run_id").copied().unwrap_or("").to_owned(),
        role,
        replid: fields
            .get("master_replid")
            .copied()
            .unwrap_or("")
            .to_owned(),
        repl_offset: offset(&fields, "master_repl_offset")?.unwrap_or(0),
        replid2: fields
            .get("master_replid2")
            .copied()
            .unwrap_or("")
            .to_owned(),
        second_repl_offset: signed(&fields, "second_repl_offset")?
            .and_then(|n| u64::try_from(n).ok()),
    })
}

/// `slaveN` (N all digits) is a replica line; `slave_repl_offset` and friends are not.
/// The `run_id` field of an INFO reply, or "" without one.
pub fn run_id(text: &str) -> &str {
    text.lines()
        .find_map(|line| line.trim_end().strip_prefix("run_id:"))
        .unwrap_or("")
}

fn slave_index(key: &str) -> Option<u32> {
    let digits = key.strip_prefix("slave")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `ip=127.0.0.1,port=6380,state=online,offset=100,lag=0`.
fn parse_slave_line(n: u32, value: &str) -> Result<ReplicaLink, InfoError> {
    let field = format!("slave{n}");
    let mut ip = None;
    let mut port = None;
    let mut state = String::new();
    let mut offset = 0u64;
    for part in value.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(invalid(&field, value));
        };
        match k {
            "ip" => ip = Some(v),
            "port" => port = Some(v.parse::<u16>().map_err(|_| invalid(&field, value))?),
            "state" => state = v.to_owned(),
            "offset" => offset = lenient_u64(v).ok_or_else(|| invalid(&field, value))?,
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if !ip.is_empty() => Ok(ReplicaLink {
            addr: Addr::new(ip, port),
            state,
            offset,
        }),
        _ => Err(invalid(&field, value)),
    }
}

fn replica_role(fields: &HashMap<&str, &str>) -> Result<ReportedRole, InfoError> {
    let host = match fields.get("master_host") {
        Some(h) if !h.is_empty() => (*h).to_owned(),
        Some(h) => return Err(invalid("master_host", h)),
        None => return Err(InfoError::MissingField("master_host")),
    };
    let port = match fields.get("master_port") {
        Some(p) => p.parse::<u16>().map_err(|_| invalid("master_port", p))?,
        None => return Err(InfoError::MissingField("master_port")),
    };
    let link_up = fields.get("master_link_status").copied() == Some("up");
    // Absent while the link is up; -1 when the replica never had a link since it started.
    let link_down_ms = match (link_up, signed(fields, "master_link_down_since_seconds")?) {
        (true, _) | (false, None) => 0,
        (false, Some(s)) if s < 0 => u64::MAX,
        (false, Some(s)) => secs_to_ms(s),
    };
    let last_io_ms = match signed(fields, "master_last_io_seconds_ago")? {
        Some(s) if s >= 0 => Some(secs_to_ms(s)),
        _ => None,
    };
    let priority = match fields
        .get("slave_priority")
        .or_else(|| fields.get("replica_priority"))
    {
        Some(p) => p.parse::<u32>().map_err(|_| invalid("slave_priority", p))?,
        None => DEFAULT_PRIORITY,
    };
    let offset = match offset(fields, "slave_read_repl_offset")? {
        Some(o) => o,
        None => offset(fields, "slave_repl_offset")?.unwrap_or(0),
    };
    Ok(ReportedRole::Replica {
        master: Addr::new(host, port),
        link_up,
        link_down_ms,
        priority,
        offset,
        last_io_ms,
    })
}

fn secs_to_ms(s: i64) -> u64 {
    u64::try_from(s).unwrap_or(0).saturating_mul(1000)
}

fn signed(fields: &HashMap<&str, &str>, key: &str) -> Result<Option<i64>, InfoError> {
    match fields.get(key) {
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| invalid(key, v)),
        None => Ok(None),
    }
}

/// An offset field: a negative value (Redis uses -1 for "none") reads as 0.
fn offset(fields: &HashMap<&str, &str>, key: &str) -> Result<Option<u64>, InfoError> {
    match fields.get(key) {
        Some(v) => lenient_u64(v).map(Some).ok_or_else(|| invalid(key, v)),
        None => Ok(None),
    }
}

fn lenient_u64(v: &str) -> Option<u64> {
    let n = v.parse::<i64>().ok()?;
    Some(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
#[path = "info_captures.rs"]
mod captures;

#[cfg(test)]
#[path = "info_tests.rs"]
mod tests;
